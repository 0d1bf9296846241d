"""The sandbox's .env: secrets generated once, never overwritten, private to the user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sandbox.env import ROOT, Settings, create_env_file, fill_secrets, load_settings, parse_env

EXAMPLE = """# comment: POSTGRES_PASSWORD= in a comment stays as it is
APP_PORT=8000
POSTGRES_PASSWORD=
REDIS_PASSWORD=
ADMIN_TOKEN=
SMTP_PASSWORD=kept-as-written
API_TOKEN_TTL=
SANDBOX_DIR=.sandbox
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_empty_secrets_are_filled_and_everything_else_is_kept() -> None:
    values = parse_env(fill_secrets(EXAMPLE))
    secrets = [values[key] for key in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "ADMIN_TOKEN")]
    assert all(len(secret) >= 32 for secret in secrets)
    assert len(set(secrets)) == 3  # one secret per key
    assert values["SMTP_PASSWORD"] == "kept-as-written"  # a value already there is not replaced
    assert values["API_TOKEN_TTL"] == ""  # not a *_TOKEN key
    assert values["APP_PORT"] == "8000"
    assert fill_secrets(EXAMPLE).splitlines()[0] == EXAMPLE.splitlines()[0]


def test_secrets_are_url_safe() -> None:
    secret = parse_env(fill_secrets("POSTGRES_PASSWORD=\n"))["POSTGRES_PASSWORD"]
    assert secret.replace("-", "").replace("_", "").isalnum()  # fits in a DSN without quoting


def test_env_file_is_created_private(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    assert create_env_file(tmp_path / ".env.example", tmp_path / ".env")
    assert _mode(tmp_path / ".env") == 0o600
    assert parse_env((tmp_path / ".env").read_text())["POSTGRES_PASSWORD"]


def test_env_file_may_be_named_in_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    target = tmp_path / "elsewhere" / "sandbox.env"  # SANDBOX_ENV_FILE somewhere new
    assert create_env_file(tmp_path / ".env.example", target)
    assert _mode(target) == 0o600


def test_env_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    (tmp_path / ".env.example").write_text(EXAMPLE)
    old = os.umask(0)
    try:
        create_env_file(tmp_path / ".env.example", tmp_path / ".env")
    finally:
        os.umask(old)
    assert _mode(tmp_path / ".env") == 0o600


def test_existing_env_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    existing = "POSTGRES_PASSWORD=mine\n"
    (tmp_path / ".env").write_text(existing)
    assert not create_env_file(tmp_path / ".env.example", tmp_path / ".env")
    assert (tmp_path / ".env").read_text() == existing


def test_a_second_run_keeps_the_first_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    create_env_file(tmp_path / ".env.example", tmp_path / ".env")
    first = (tmp_path / ".env").read_text()
    assert not create_env_file(tmp_path / ".env.example", tmp_path / ".env")
    assert (tmp_path / ".env").read_text() == first


def test_settings_merge_example_env_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    (tmp_path / ".env").write_text("APP_PORT=8100\nPOSTGRES_PASSWORD='quoted'\n")
    settings = load_settings(tmp_path, {"APP_PORT": "8200", "UNRELATED": "x"})
    assert settings.port("APP_PORT") == 8200  # the environment wins, as with docker compose
    assert settings["POSTGRES_PASSWORD"] == "quoted"
    assert "UNRELATED" not in settings.values
    assert settings.state_dir == tmp_path / ".sandbox"
    assert settings.missing_secrets() == ["REDIS_PASSWORD", "ADMIN_TOKEN"]


@pytest.mark.parametrize("override", ["SANDBOX_ENV_FILE", "SANDBOX_DIR"])
def test_tests_can_point_the_sandbox_elsewhere(tmp_path: Path, override: str) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "env").write_text("APP_PORT=8300\n")
    environ = {"SANDBOX_ENV_FILE": str(elsewhere / "env")} if override == "SANDBOX_ENV_FILE" else {
        "SANDBOX_DIR": str(elsewhere / "state")}
    settings = load_settings(tmp_path, environ)
    if override == "SANDBOX_ENV_FILE":
        assert settings.env_file == elsewhere / "env"
        assert settings.port("APP_PORT") == 8300
    else:
        assert settings.state_dir == elsewhere / "state"
        assert settings.log("app") == elsewhere / "state" / "logs" / "app.log"


def test_typed_settings_parse_their_key_once_with_its_default(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE + "SANDBOX_START_TIMEOUT=\nPOSTGRES_VERSION=\n")
    settings = load_settings(tmp_path, {"APP_PORT": "8200", "POSTGRES_PASSWORD": "p"})
    assert settings.app_port == 8200
    assert settings.postgres_password == "p"
    assert settings.start_timeout == 180.0  # empty in .env: the default
    assert settings.postgres_version == ""  # empty: the newest PostgreSQL installed
    assert load_settings(tmp_path, {"SANDBOX_START_TIMEOUT": "2.5"}).start_timeout == 2.5


def test_a_typed_setting_without_a_default_must_be_there(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    with pytest.raises(KeyError, match="REDIS_PORT"):
        _ = load_settings(tmp_path, {}).redis_port


def test_every_typed_setting_is_a_key_of_env_example() -> None:
    keys = {attribute.key for attribute in vars(Settings).values() if hasattr(attribute, "key")}
    assert {"SANDBOX_START_TIMEOUT", "POSTGRES_PASSWORD", "REDIS_PORT"} <= keys
    assert keys <= set(parse_env((ROOT / ".env.example").read_text()))
