"""Keeping secrets out of logs, span attributes and notifications.

One list of secret words (`REDACT_KEYS`) drives every rule:

- a field, span attribute or query parameter whose name contains a secret word has its value
  replaced (nested dicts and lists walked);
- `word=value` / `word: value` assignments inside free text (exception messages, tracebacks,
  statements, span status descriptions) have the value replaced;
- URLs lose their userinfo password and the values of secret query parameters;
- configured credentials (`known_secrets`: the admin token, the SMTP password, the webhook URL's
  path) are replaced wherever they appear in a span;
- values bound to SQL statements are replaced in the database's error messages, which quote them
  back (`invalid input syntax for type integer: "..."`): `hide_parameters` holds for errors too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, ExceptionContext

    from observability.config import ObservabilityConfig

REDACTED = "[REDACTED]"
# Attribute names (OpenTelemetry semantic conventions, old and new) whose values are URLs or request
# targets: `http.url`, `http.target`, `url.full`; `url.query` holds the query string alone.
_URL_ATTRIBUTE_SUFFIXES = (".url", ".target", ".full", ".uri")
_QUERY_ATTRIBUTE_SUFFIX = ".query"
# A known secret shorter than this would replace ordinary words; such a value is no secret anyway.
_KNOWN_SECRET_MIN_CHARS = 8
# Shorter bound values (ids, flags, 'USD') would mangle the message they were looked for in.
_BOUND_VALUE_MIN_CHARS = 4
_CLEAN_TEXT_CACHE_SIZE = 4096  # span attribute values already scrubbed, emptied when full
_SCRUBBERS_KEPT = 4096
_USERINFO_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/?#@:]*:)[^/?#@]*@", re.IGNORECASE)


class Redactor:
    def __init__(self, secret_words: tuple[str, ...], known_secrets: Iterable[str] = ()) -> None:
        self._words = tuple(word.lower() for word in secret_words)
        self._assignment = _assignment_pattern(self._words)
        self._verdicts: dict[str, bool] = {}  # field names come from code: a small, fixed set
        self._clean_attribute_texts: dict[tuple[str, str], str] = {}
        self._scrubbers: dict[str, Callable[[str], str]] = {}  # per attribute name (from code: few)
        # Longest first: a secret that contains another is replaced whole.
        self._known = tuple(sorted({s for s in known_secrets if len(s) >= _KNOWN_SECRET_MIN_CHARS},
                                   key=len, reverse=True))

    @classmethod
    def from_config(cls, config: ObservabilityConfig) -> Redactor:
        """The redactor of a process: `REDACT_KEYS`, and the credentials this process is configured with."""
        return cls(config.redact_keys, known_secrets=configured_secrets(config))

    def is_secret_key(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            lowered = key.lower()
            verdict = any(word in lowered for word in self._words)
            if len(self._verdicts) < 4096:
                self._verdicts[key] = verdict
        return verdict

    def field(self, key: str, value: Any) -> Any:
        """The value to log for `key`: redacted when the name is secret; dicts and lists walked."""
        if self.is_secret_key(key):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # Items have no names of their own: the dicts among them are walked.
            return [self.field(key, item) for item in value]
        return value

    def text(self, text: str) -> str:
        """Free text with `secret=value` assignments and known secrets replaced."""
        return self._assignments(self._known_secrets(text) if self._known else text)

    def _known_secrets(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _assignments(self, text: str) -> str:
        # Every assignment has a separator: most texts are skipped without running the pattern.
        if self._assignment is None or ("=" not in text and ":" not in text):
            return text
        return self._assignment.sub(lambda match: match.group(1) + REDACTED, text)

    def name(self, name: str) -> str:
        """A span or event name (route templates, operations: few, repeating) as `text` would clean it."""
        return self._clean_attribute_texts.get(("", name)) or self._attribute_text("", name)

    def query(self, query: str) -> str:
        """A query string with the values of secret parameters replaced (names are URL-decoded)."""
        pairs = query.split("&")
        for index, pair in enumerate(pairs):
            name, equals, _ = pair.partition("=")
            if equals and self.is_secret_key(unquote_plus(name)):
                pairs[index] = f"{name}={REDACTED}"
        return "&".join(pairs)

    def url(self, url: str) -> str:
        """A URL or request target without its userinfo password and secret query values."""
        url = _USERINFO_PASSWORD.sub(lambda match: match.group(1) + REDACTED + "@", self._known_secrets(url))
        rest, hash_mark, fragment = url.partition("#")
        head, question_mark, query = rest.partition("?")
        if question_mark:
            query = self.query(query)
        if hash_mark:
            fragment = self.query(fragment)  # OAuth implicit flows put tokens in the fragment
        return self._assignments(head) + question_mark + query + hash_mark + fragment

    def attribute(self, key: str, value: Any) -> Any:
        """One span attribute's value with secrets replaced, nothing cached (the OTLP/JSON encoding
        keeps what it encoded)."""
        if type(value) is str:  # most are: one lookup of how this key's text is cleaned
            return (self._scrubbers.get(key) or self._scrubber(key))(value)
        return self._clean_attribute(key, value, self._scrub_attribute_text)

    def _clean_attribute(self, key: str, value: Any, scrub: Callable[[str, str], str]) -> Any:
        if self.is_secret_key(key):
            return REDACTED
        if type(value) is str:
            return scrub(key, value)
        if isinstance(value, tuple | list):
            return tuple(scrub(key, v) if isinstance(v, str) else v for v in value)
        return value

    def attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Span or event attributes with secrets replaced; None when nothing needed replacing."""
        if not attributes:
            return None
        redacted: dict[str, Any] | None = None
        for key, value in attributes.items():
            clean = self._clean_attribute(key, value, self._attribute_text)
            if clean is not value and clean != value:
                if redacted is None:
                    redacted = dict(attributes)
                redacted[key] = clean
        return redacted

    def _attribute_text(self, key: str, value: str) -> str:
        # Most attribute values repeat span after span (methods, hosts, routes, user agents).
        clean = self._clean_attribute_texts.get((key, value))
        if clean is None:
            if len(self._clean_attribute_texts) >= _CLEAN_TEXT_CACHE_SIZE:
                self._clean_attribute_texts.clear()
            clean = self._clean_attribute_texts[key, value] = self._scrub_attribute_text(key, value)
        return clean

    def _scrub_attribute_text(self, key: str, value: str) -> str:
        return (self._scrubbers.get(key) or self._scrubber(key))(value)

    def _scrubber(self, key: str) -> Callable[[str], str]:
        """How the text of attribute `key` is cleaned, by its name: decided once per name."""
        if self.is_secret_key(key):
            scrubber = _redacted
        elif key.endswith(_QUERY_ATTRIBUTE_SUFFIX):
            scrubber = self._query_text
        elif key.endswith(_URL_ATTRIBUTE_SUFFIXES):
            scrubber = self.url
        else:
            scrubber = self.text
        if len(self._scrubbers) < _SCRUBBERS_KEPT:
            self._scrubbers[key] = scrubber
        return scrubber

    def _query_text(self, query: str) -> str:
        return self.query(self._known_secrets(query))


def _redacted(_: str) -> str:
    return REDACTED


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through `Redactor.text`, for a logger that quotes what a client
    sent: gunicorn warns `Invalid request from ip=...: Invalid HTTP request line: 'GET /x?token=...'`."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configured_secrets(config: ObservabilityConfig) -> tuple[str, ...]:
    """The credentials in a configuration, as they could appear in telemetry."""
    webhook = urlsplit(config.alert_webhook_url)
    # A Slack-style webhook URL carries its secret in the path (and maybe the query).
    webhook_secret = webhook.path + (f"?{webhook.query}" if webhook.query else "")
    return tuple(s for s in (config.admin_token, config.smtp_password, webhook_secret) if s)


def _assignment_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    names = "|".join(re.escape(word) for word in words)
    # name, separator, optional auth scheme; then the value up to a delimiter.
    return re.compile(
        rf"((?:{names})[\w-]*['\"]?\s*[=:]\s*['\"]?(?:bearer\s+|basic\s+)?)[^\s,;&'\"}}\)]+",
        re.IGNORECASE,
    )


def hide_bound_values_in_errors(engine: Engine) -> None:
    """Replaces the values bound to a failed statement wherever the error message repeats them.

    `hide_parameters=True` keeps SQLAlchemy from listing parameters, but the database itself quotes
    a value it could not use (PostgreSQL: `invalid input syntax for type integer: "..."`), and that
    text reaches log records, span statuses and alerts. Inserted first among the engine's
    `handle_error` listeners, so the tracing listener's span status sees the scrubbed text.
    """
    from sqlalchemy import event  # noqa: PLC0415 - the module stays usable without SQLAlchemy

    event.listen(engine, "handle_error", _scrub_bound_values, insert=True)


def _scrub_bound_values(context: ExceptionContext) -> None:
    statement_error = context.sqlalchemy_exception
    if statement_error is not None and hasattr(statement_error, "hide_parameters"):
        statement_error.hide_parameters = True  # even if the engine was created without it
    values = sorted(set(_bound_strings(context.parameters)), key=len, reverse=True)
    if not values:
        return
    for error in (context.original_exception, statement_error):
        if error is not None:
            error.args = tuple(_without(arg, values) if isinstance(arg, str) else arg for arg in error.args)


def _bound_strings(parameters: Any) -> Iterable[str]:
    """Every string value in a DBAPI parameter set: a mapping, a sequence, or a list of either."""
    if isinstance(parameters, str):
        if len(parameters) >= _BOUND_VALUE_MIN_CHARS:
            yield parameters
    elif isinstance(parameters, Mapping):
        for value in parameters.values():
            yield from _bound_strings(value)
    elif isinstance(parameters, list | tuple):
        for value in parameters:
            yield from _bound_strings(value)


def _without(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, REDACTED)
    return text
