"""Redaction rules: field names, free-text assignments, query strings and URLs, span attributes,
configured credentials, and values a database quotes back in its errors."""

from __future__ import annotations

import logging
import sqlite3

import pytest
import sqlalchemy
from sqlalchemy import event, text

from observability.config import ObservabilityConfig
from observability.redaction import (
    REDACTED,
    RedactingFilter,
    Redactor,
    configured_secrets,
    hide_bound_values_in_errors,
)

DEFAULT = Redactor(ObservabilityConfig().redact_keys)
SECRET = "hunter2-S3CR3T"


def test_secret_field_names_are_redacted_in_nested_dicts_and_lists() -> None:
    logged = DEFAULT.field("request", {
        "headers": [{"name": "Authorization", "authorization": f"Bearer {SECRET}"}, {"cookie": SECRET}],
        "attempts": ({"api_key": SECRET, "n": 1}, "plain"),
        "users": [[{"password": SECRET}]],
        "ok": True,
    })
    assert SECRET not in repr(logged)
    assert logged["headers"] == [{"name": "Authorization", "authorization": REDACTED}, {"cookie": REDACTED}]
    assert logged["attempts"] == [{"api_key": REDACTED, "n": 1}, "plain"]
    assert logged["users"] == [[{"password": REDACTED}]]
    assert DEFAULT.field("session_token", ["a", "b"]) == REDACTED


@pytest.mark.parametrize("message", [
    f"login failed: password={SECRET}",
    f"login failed: password = '{SECRET}'",
    f'{{"password": "{SECRET}"}}',
    f"Authorization: Bearer {SECRET}",
    f"authorization=Basic {SECRET}",
    f"Cookie: session={SECRET}",
    f"GET /x?access_token={SECRET}&page=2",
    f"db_passwd:{SECRET}",
])
def test_assignments_in_free_text_are_redacted(message) -> None:
    redacted = DEFAULT.text(message)
    assert SECRET not in redacted
    assert REDACTED in redacted


def test_text_without_a_separator_or_secret_word_is_returned_as_is() -> None:
    message = "division by zero in order 12345"
    assert DEFAULT.text(message) is message
    assert DEFAULT.text("retry after: 5 seconds") == "retry after: 5 seconds"


@pytest.mark.parametrize(("query", "expected"), [
    (f"token={SECRET}&api_key={SECRET}", f"token={REDACTED}&api_key={REDACTED}"),
    (f"limit=5&access_token={SECRET}", f"limit=5&access_token={REDACTED}"),
    (f"api%5Fkey={SECRET}", f"api%5Fkey={REDACTED}"),           # the name URL-encoded
    (f"PASSWORD={SECRET}&password={SECRET}", f"PASSWORD={REDACTED}&password={REDACTED}"),
    (f"token[]={SECRET}", f"token[]={REDACTED}"),
    (f"token={SECRET}%26more", f"token={REDACTED}"),           # an encoded & stays in the value
    ("limit=5&offset=10&flag", "limit=5&offset=10&flag"),
])
def test_secret_query_parameters_lose_their_values(query, expected) -> None:
    assert DEFAULT.query(query) == expected


def test_urls_lose_their_password_and_secret_parameters() -> None:
    url = f"https://alice:{SECRET}@example.test/api/episodes?limit=5&token={SECRET}#access_token={SECRET}"
    assert DEFAULT.url(url) == (f"https://alice:{REDACTED}@example.test/api/episodes?limit=5&token={REDACTED}"
                                f"#access_token={REDACTED}")
    assert DEFAULT.url("/api/episodes?limit=5") == "/api/episodes?limit=5"


def test_span_attributes_are_redacted_by_name_url_and_text() -> None:
    attributes = {
        "http.target": f"/api/episodes?token={SECRET}&api_key={SECRET}",
        "http.url": f"http://127.0.0.1/api/episodes?token={SECRET}",
        "url.full": f"http://u:{SECRET}@127.0.0.1/x",
        "url.query": f"token={SECRET}",
        "http.request.header.authorization": (f"Bearer {SECRET}",),
        "http.request.header.cookie": (f"session={SECRET}",),
        "exception.message": f"login failed password={SECRET}",
        "http.status_code": 500,
        "http.route": "/api/episodes",
    }
    redacted = DEFAULT.attributes(attributes)
    assert redacted is not None
    assert SECRET not in repr(redacted)
    assert redacted["http.target"] == f"/api/episodes?token={REDACTED}&api_key={REDACTED}"
    assert redacted["url.query"] == f"token={REDACTED}"
    assert redacted["http.request.header.authorization"] == REDACTED
    assert redacted["http.status_code"] == 500
    assert redacted["http.route"] == "/api/episodes"
    assert attributes["http.target"].endswith(SECRET)  # the original is left alone


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("url.query", f"limit=5&pass%77ord={SECRET}", f"limit=5&pass%77ord={REDACTED}"),  # only the query rule decodes
    ("http.target", f"/x?pass%77ord={SECRET}", f"/x?pass%77ord={REDACTED}"),          # nor does free text's
    ("exception.message", f"failed password={SECRET}", f"failed password={REDACTED}"),
    ("user.password", "plain", REDACTED),
    ("session.token", 1234, REDACTED),
    ("http.route", "/x?pass%77ord=kept", "/x?pass%77ord=kept"),  # not a URL attribute: text rule only
])
def test_each_attribute_is_cleaned_by_the_rule_its_name_picks_one_value_or_many(key, value, expected) -> None:
    redactor = Redactor(ObservabilityConfig().redact_keys)
    for _ in range(2):  # the second time by the rule kept for the name
        assert redactor.attribute(key, value) == expected
        assert (redactor.attributes({key: value}) or {key: value})[key] == expected


def test_attributes_without_secrets_are_not_copied() -> None:
    assert DEFAULT.attributes({"http.target": "/api/episodes?limit=5", "http.method": "GET"}) is None
    assert DEFAULT.attributes(None) is None


def test_the_word_list_is_configurable_through_redact_keys() -> None:
    redactor = Redactor.from_config(ObservabilityConfig.from_env({"REDACT_KEYS": "pin, session"}))
    assert redactor.field("card_pin", "1234") == REDACTED
    assert redactor.query(f"session={SECRET}&token=visible") == f"session={REDACTED}&token=visible"
    assert redactor.text(f"pin={SECRET} password=visible") == f"pin={REDACTED} password=visible"
    assert Redactor(()).text(f"password={SECRET}") == f"password={SECRET}"  # an empty list redacts nothing


def test_configured_credentials_are_replaced_wherever_they_appear() -> None:
    config = ObservabilityConfig(admin_token=f"admin-{SECRET}", smtp_password=f"smtp-{SECRET}",
                                 alert_webhook_url=f"https://hooks.example.test/services/T0/B0/{SECRET}")
    assert set(configured_secrets(config)) == {f"admin-{SECRET}", f"smtp-{SECRET}", f"/services/T0/B0/{SECRET}"}
    redactor = Redactor.from_config(config)
    assert redactor.url(config.alert_webhook_url) == f"https://hooks.example.test{REDACTED}"
    assert redactor.text(f"sent with admin-{SECRET} and smtp-{SECRET}") == f"sent with {REDACTED} and {REDACTED}"
    # Too short to be told apart from ordinary words: not treated as a known secret.
    assert Redactor((), known_secrets=["abc"]).text("abcdef") == "abcdef"


@pytest.fixture
def echoing_engine():
    """SQLite does not quote bad values back; this engine's 'database' does, as PostgreSQL does."""
    engine = sqlalchemy.create_engine("sqlite://", hide_parameters=True)
    hide_bound_values_in_errors(engine)

    @event.listens_for(engine, "do_execute")
    def refuse(_cursor, _statement, parameters, _context) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        raise sqlite3.DataError(f'invalid input syntax for type integer: "{next(iter(values))}"')

    return engine


def test_values_a_database_quotes_back_are_hidden_in_its_error(echoing_engine) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError) as raised, echoing_engine.connect() as connection:
        connection.execute(text("SELECT CAST(:password AS INTEGER)"), {"password": SECRET})
    assert SECRET not in str(raised.value)
    assert SECRET not in str(raised.value.orig)
    assert f'"{REDACTED}"' in str(raised.value.orig)
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(raised.value)


def test_parameters_stay_hidden_even_if_the_engine_shows_them() -> None:
    engine = sqlalchemy.create_engine("sqlite://")  # hide_parameters not set
    hide_bound_values_in_errors(engine)
    with pytest.raises(sqlalchemy.exc.DBAPIError) as raised, engine.connect() as connection:
        connection.execute(text("SELECT * FROM missing_table WHERE secret = :value"), {"value": SECRET})
    assert SECRET not in str(raised.value)


def test_short_and_non_string_values_are_left_in_the_message(echoing_engine) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError) as raised, echoing_engine.connect() as connection:
        connection.execute(text("SELECT :v"), {"v": "abc"})
    assert '"abc"' in str(raised.value.orig)


def test_the_logging_filter_redacts_a_quoted_request_line() -> None:
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, "Invalid request from ip=%s: %s",
                               ("127.0.0.1", f"Invalid HTTP request line: 'GET /x?token={SECRET}'"), None)
    assert RedactingFilter(DEFAULT).filter(record) is True
    assert record.getMessage() == (
        f"Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /x?token={REDACTED}'")
    plain = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Booting worker with pid: %s", (42,), None)
    RedactingFilter(DEFAULT).filter(plain)
    assert (plain.msg, plain.args) == ("Booting worker with pid: %s", (42,))  # untouched, not re-rendered
