"""Every setting is declared once, as a field of `ObservabilityConfig`; `from_env` and the
documented table (`SETTINGS`) come from those declarations."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from observability.config import SDK_SETTINGS, SETTING, SETTINGS, ObservabilityConfig, Setting

FIELDS = dataclasses.fields(ObservabilityConfig)
TYPES = typing.get_type_hints(ObservabilityConfig)
SECRETS = {"redis_url", "alert_webhook_url", "smtp_password", "admin_token"}


def _setting(field: dataclasses.Field) -> Setting:
    return field.metadata[SETTING]


def _other_value(field: dataclasses.Field) -> tuple[str, Any]:
    """A value unlike the default, from the field's declared type: the text for the environment
    and the value the field should then hold."""
    declared, default = TYPES[field.name], field.default
    if declared is bool:
        return ("false" if default != _setting(field).negated else "true"), not default
    if declared is int:
        return str(default + 7), default + 7
    if declared is float:
        return str(default + 0.5), default + 0.5
    if declared == tuple[str, ...]:
        return f" x-{field.name} ,, y ", (f"x-{field.name}", "y")
    assert declared is str, f"{field.name}: no test value for {declared}"
    # Mixed case, so the expected value is whatever case the setting keeps.
    text = f"Other-{field.name}"
    return text, text if _setting(field).normalize is None else _setting(field).normalize(text)


def test_the_defaults_are_what_an_empty_environment_gives() -> None:
    assert ObservabilityConfig.from_env({}) == ObservabilityConfig()


def test_every_field_has_one_setting() -> None:
    for field in FIELDS:
        assert isinstance(field.metadata.get(SETTING), Setting), field.name
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs)), "a variable is declared twice"
    assert tuple(_setting(f) for f in FIELDS) + SDK_SETTINGS == SETTINGS
    assert {s.env for s in SDK_SETTINGS} == {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_BSP_SCHEDULE_DELAY"}


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_the_documented_default_is_the_fields_default(field: dataclasses.Field) -> None:
    declared, default = TYPES[field.name], field.default
    if declared == tuple[str, ...]:
        assert isinstance(default, tuple) and all(isinstance(v, str) for v in default)
    else:
        assert type(default) is declared, f"{field.name}: default {default!r} is not a {declared}"
    # The documented text, set explicitly, gives the same value as leaving the variable unset.
    explicit = ObservabilityConfig.from_env({_setting(field).env: _setting(field).default})
    assert getattr(explicit, field.name) == default


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_variable_reaches_its_field(field: dataclasses.Field) -> None:
    text, expected = _other_value(field)
    config = ObservabilityConfig.from_env({_setting(field).env: text})
    assert getattr(config, field.name) == expected != field.default
    assert type(getattr(config, field.name)) is type(field.default)
    assert dataclasses.replace(config, **{field.name: field.default}) == ObservabilityConfig(), "other fields moved"


def test_every_variable_at_once() -> None:
    values = {_setting(f).env: _other_value(f)[0] for f in FIELDS}
    config = ObservabilityConfig.from_env(values)
    assert {f.name: getattr(config, f.name) for f in FIELDS} == {f.name: _other_value(f)[1] for f in FIELDS}


def test_from_env_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_VERSION", "9.9.9")
    monkeypatch.setenv("METRICS_PORT", "19464")
    config = ObservabilityConfig.from_env()
    assert (config.service_version, config.metrics_port) == ("9.9.9", 19464)


def test_an_empty_variable_means_its_default() -> None:
    config = ObservabilityConfig.from_env({"OTEL_SERVICE_NAME": "", "METRICS_PORT": "", "REDACT_KEYS": "",
                                           "ACCESS_LOG_ENABLED": "", "OTEL_SDK_DISABLED": ""})
    assert config == ObservabilityConfig()


def test_an_empty_excluded_paths_variable_excludes_nothing() -> None:
    assert ObservabilityConfig().access_log_excluded_paths == ("/healthz", "/readyz")
    assert ObservabilityConfig.from_env({}).access_log_excluded_paths == ("/healthz", "/readyz")
    assert ObservabilityConfig.from_env({"ACCESS_LOG_EXCLUDED_PATHS": ""}).access_log_excluded_paths == ()
    assert ObservabilityConfig.from_env({"ACCESS_LOG_EXCLUDED_PATHS": " , "}).access_log_excluded_paths == ()
    assert ObservabilityConfig.from_env({"ACCESS_LOG_EXCLUDED_PATHS": "/a, /b"}).access_log_excluded_paths == (
        "/a", "/b")


def test_log_level_is_upper_case_and_sampler_lower_case() -> None:
    config = ObservabilityConfig.from_env({"LOG_LEVEL": "debug", "OTEL_TRACES_SAMPLER": "ParentBased_Always_On"})
    assert (config.log_level, config.traces_sampler) == ("DEBUG", "parentbased_always_on")
    # Other text is kept as written.
    assert ObservabilityConfig.from_env({"SERVICE_VERSION": "1.0-RC"}).service_version == "1.0-RC"


@pytest.mark.parametrize(("text", "enabled"), [("true", False), ("1", False), (" Yes ", False), ("on", False),
                                               ("false", True), ("0", True), ("no", True), ("", True)])
def test_tracing_is_on_unless_the_sdk_is_disabled(text: str, enabled: bool) -> None:
    assert ObservabilityConfig.from_env({"OTEL_SDK_DISABLED": text}).tracing_enabled is enabled
    assert ObservabilityConfig().tracing_enabled is True
    assert _setting(next(f for f in FIELDS if f.name == "tracing_enabled")).default == "false"


@pytest.mark.parametrize(("text", "value"), [("1", True), ("TRUE", True), ("yes", True), ("on", True),
                                             ("0", False), ("false", False), ("off", False), ("maybe", False)])
def test_flags(text: str, value: bool) -> None:
    assert ObservabilityConfig.from_env({"TRACE_SQL_COMMENTER": text}).sql_commenter is value


def test_comma_lists_drop_blanks() -> None:
    config = ObservabilityConfig.from_env({"ALERT_EMAIL_TO": " a@x.test, ,b@x.test,", "REDACT_KEYS": "pin"})
    assert (config.alert_email_to, config.redact_keys) == (("a@x.test", "b@x.test"), ("pin",))


def test_log_file_and_multiproc_dir_default_to_empty() -> None:
    config = ObservabilityConfig.from_env({})
    assert (config.log_file, config.multiproc_dir, config.alert_email_to) == ("", "", ())


def test_a_bad_number_is_an_error() -> None:
    with pytest.raises(ValueError, match="ninety"):
        ObservabilityConfig.from_env({"METRICS_PORT": "ninety"})


def test_secrets_stay_out_of_the_repr() -> None:
    assert {f.name for f in FIELDS if not f.repr} == SECRETS
    values = {name: f"marker-{name}" for name in SECRETS}
    shown = repr(ObservabilityConfig(service_name="shown-name", **values))
    assert "shown-name" in shown
    for value in values.values():
        assert value not in shown
    assert {_setting(f).env for f in FIELDS if _setting(f).secret} == {
        "REDIS_URL", "ALERT_WEBHOOK_URL", "SMTP_PASSWORD", "ADMIN_TOKEN"}


def test_the_configuration_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ObservabilityConfig().service_name = "other"  # type: ignore[misc]


def test_as_worker_takes_the_worker_service_name() -> None:
    config = ObservabilityConfig.from_env({"WORKER_SERVICE_NAME": "w", "SERVICE_VERSION": "2"})
    worker = config.as_worker()
    assert (worker.service_name, worker.service_version) == ("w", "2")
    assert dataclasses.replace(worker, service_name=config.service_name) == config
