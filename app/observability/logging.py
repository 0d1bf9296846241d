"""JSON logs: one line per record, through stdlib logging and python-json-logger's orjson formatter.

Every record carries `timestamp` (UTC, ISO-8601), `level`, `logger`, `message`, `service` (name, version,
environment, and `node.name`: the host name, which tells containers sharing one log file apart), `pid`, the log
`layer` of the design (`application` with a `category` of business/error/audit, `access`, `system`)
and, when known, the request context, `user_id`, `request_id`, `trace_id`, `span_id`, task and
`error` (type, message, stack_trace). Values of fields whose names look secret are redacted.

Lines are written with one `os.write` each, so several processes can share stdout or one file (opened
with O_APPEND) without interleaving. The file rotates by size under an `flock` shared by the
processes, so exactly one of them renames it and the others reopen.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from observability import context
from observability.config import ObservabilityConfig
from observability.redaction import Redactor

ACCESS_LOGGER = "observability.access"
ERRORS_LOGGER = "observability.errors"  # unhandled exceptions: the application's error layer
AUDIT_LOGGER = "audit"

# Loggers of libraries and servers: their records form the "system" layer.
_SYSTEM_PREFIXES = (
    "gunicorn", "celery", "kombu", "amqp", "sqlalchemy", "werkzeug", "urllib3", "opentelemetry",
    "observability", "redis", "py.warnings",
)
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "message", "service", "pid", "layer", "category"})
_SKIPPED_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime", "color_message"}
# The record attribute under which `log_fast` hands the formatter its fields (skipped as private).
_FIXED_FIELDS = "_observability_fields"


@functools.lru_cache(maxsize=512)
def _layer_of(logger_name: str) -> str:
    if logger_name == ACCESS_LOGGER:
        return "access"
    if logger_name == AUDIT_LOGGER or logger_name.startswith(AUDIT_LOGGER + "."):
        return "audit"
    if logger_name == ERRORS_LOGGER:
        return "application"
    if logger_name.startswith(_SYSTEM_PREFIXES):
        return "system"
    return "application"


class JsonLogFormatter(OrjsonFormatter):
    """The project's record shape on top of `OrjsonFormatter`."""

    def __init__(self, config: ObservabilityConfig | None = None) -> None:
        config = config or ObservabilityConfig()
        super().__init__(reserved_attrs=sorted(_SKIPPED_ATTRS))
        self._service = {
            "name": config.service_name,
            "version": config.service_version,
            "environment": config.environment,
            # ECS's service.node.name: pids repeat across containers that write the same file.
            "node": {"name": socket.gethostname()},
        }
        self._with_trace_ids = config.tracing_enabled
        self._redactor = Redactor.from_config(config)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        layer = self._add_own_fields(log_data, name=record.name, levelno=record.levelno,
                                     levelname=record.levelname, created=record.created,
                                     pid=record.process, message=record.message)
        # The access record's fields are the project's own (and the hot path): not scanned.
        self._merge_extras(log_data, record, layer != "access")
        stack = message_dict.get("exc_info")
        if stack:
            log_data["error"] = self._error_fields(record, stack)

    def _add_own_fields(self, log_data: dict[str, Any], *, name: str, levelno: int, levelname: str,
                        created: float, pid: int | None, message: str) -> str:
        """The fields every record has, the request context's and the trace ids; returns the layer."""
        layer = _layer_of(name)
        log_data["timestamp"] = datetime.fromtimestamp(created, UTC)
        log_data["level"] = levelname
        log_data["logger"] = name
        # The access record's message is the project's own constant: not scanned.
        log_data["message"] = message if layer == "access" else self._redactor.text(message)
        log_data["service"] = self._service
        log_data["pid"] = pid  # several worker processes share one stream
        if layer in ("application", "audit"):
            log_data["layer"] = "application"
            log_data["category"] = "audit" if layer == "audit" else (
                "error" if levelno >= logging.ERROR else "business")
        else:
            log_data["layer"] = layer
        ctx = context.current()
        if ctx is not None:
            log_data.update(ctx.log_fields())
        if self._with_trace_ids:
            _add_trace_ids(log_data)
        return layer

    def format(self, record: logging.LogRecord) -> str:
        fixed = record.__dict__.get(_FIXED_FIELDS)
        if fixed is None:
            return super().format(record)
        return self.jsonify_log_record(self._fixed_record_data(record, fixed))

    def format_line(self, record: logging.LogRecord) -> bytes:
        """The record as the handlers write it: one JSON line, newline included, in UTF-8."""
        fixed = record.__dict__.get(_FIXED_FIELDS)
        if fixed is None:
            return (super().format(record) + "\n").encode()
        return self._dumps(self._fixed_record_data(record, fixed), orjson.OPT_APPEND_NEWLINE)

    def fixed_line(self, name: str, level: int, message: str, fields: dict[str, Any], *, created: float,
                   pid: int | None) -> bytes:
        """The line `format_line` writes for a `log_fast` record with these attributes, without the record."""
        log_data: dict[str, Any] = {}
        self._add_own_fields(log_data, name=name, levelno=level, levelname=logging.getLevelName(level),
                             created=created, pid=pid, message=message)
        log_data.update(fields)
        return self._dumps(log_data, orjson.OPT_APPEND_NEWLINE)

    def _fixed_record_data(self, record: logging.LogRecord, fixed: dict[str, Any]) -> dict[str, Any]:
        # A record of `log_fast`: its message has no arguments, it carries no exception, and its
        # fields go in as they are; python-json-logger's general path has nothing to add. (Written
        # out in `fixed_line` too: one shared call with the fields as keywords costs the access
        # record 9,000 instructions.)
        log_data: dict[str, Any] = {}
        self._add_own_fields(log_data, name=record.name, levelno=record.levelno, levelname=record.levelname,
                             created=record.created, pid=record.process, message=record.msg)
        log_data.update(fixed)
        return log_data

    def _merge_extras(self, log_data: dict[str, Any], record: logging.LogRecord, scan_text: bool) -> None:
        # python-json-logger's merge_record_extra, fused with renaming and redaction: one pass
        # instead of three on a path every record takes.
        skipped = self._skip_fields
        field = self._redactor.field
        text = self._redactor.text
        for key, value in record.__dict__.items():
            if key in skipped or key.startswith("_"):
                continue
            # A caller's extra never overwrites the record's own fields.
            name = "extra_" + key if key in _OWN_FIELDS else key
            clean = field(name, value)
            log_data[name] = text(clean) if scan_text and type(clean) is str else clean

    def _error_fields(self, record: logging.LogRecord, stack: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"stack_trace": self._redactor.text(stack)}
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            fields["type"] = exc_type.__name__
            fields["message"] = self._redactor.text(_printable(exc))
        return fields

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return self._dumps(log_data).decode()

    def _dumps(self, log_data: dict[str, Any], option: int = 0) -> bytes:
        try:
            return orjson.dumps(log_data, default=self.json_default, option=option)
        except (orjson.JSONEncodeError, TypeError):
            return _dumps_unusual(log_data, self.json_default, option)


def _dumps_unusual(log_data: dict[str, Any], default: Any, option: int) -> bytes:
    """An extra's dict with keys that are not strings, or an integer wider than 64 bits: slower
    ways, so that the record is not lost for them (orjson's key conversion costs every record)."""
    try:
        return orjson.dumps(log_data, default=default, option=option | orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        line = json.dumps(log_data, default=str, ensure_ascii=False)
        return (line + "\n" if option & orjson.OPT_APPEND_NEWLINE else line).encode()


def log_fast(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, message, extra=fields)` for records written on every request: without
    looking up the caller's frame (no record of this project shows it), without checking that
    `fields` shadow no record attribute, and written as they are, without walking the record's
    attributes for others, renaming or redaction. So `fields` must be the caller's constant names,
    none of them a record attribute or one of the formatter's own fields, with values that hold no
    secret (the access record's status, duration, route template and size).

    Where every handler the record would reach is one of this module's, without filters, and the
    record factory is logging's own, the lines are written without a `LogRecord`: nothing else
    would see it, and building it (thread and process names, the source path) and passing it through
    `Logger.handle` cost more than the line."""
    handlers = _own_handlers_only(logger, level)
    if handlers is None:
        logger.handle(_fast_record(logger, level, message, fields))
        return
    created = time.time()
    pid = os.getpid() if logging.logProcesses else None
    for handler in handlers:
        try:
            line = handler.formatter.fixed_line(logger.name, level, message, fields, created=created, pid=pid)
            with handler.lock:
                handler._write(line)
        except Exception:
            handler.handleError(_fast_record(logger, level, message, fields))


def _fast_record(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> logging.LogRecord:
    record = logging.getLogRecordFactory()(logger.name, level, "", 0, message, (), None)
    record.__dict__.update(fields)
    record.__dict__[_FIXED_FIELDS] = fields
    return record


def _own_handlers_only(logger: logging.Logger, level: int) -> list[JsonLineHandler] | None:
    """The handlers `logger.handle` would call for a record at `level`, if all of them are this
    module's JSON handlers without filters and `logger` has none (its ancestors' are not asked);
    else None."""
    if logging.getLogRecordFactory() is not logging.LogRecord or logger.disabled or logger.filters:
        return None
    handlers: list[JsonLineHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if level < handler.level:
                continue
            if (type(handler) not in _OWN_HANDLER_TYPES or handler.filters
                    or type(handler.formatter) is not JsonLogFormatter):
                return None
            handlers.append(handler)
        current = current.parent if current.propagate else None
    return handlers or None  # none: logging's last resort handler decides


def _printable(error: BaseException | None) -> str:
    try:
        return str(error)
    except Exception:
        return "<exception str() failed>"


def _add_trace_ids(log_data: dict[str, Any]) -> None:
    span_context = _get_current_span().get_span_context()
    if span_context.is_valid:
        log_data["trace_id"] = format(span_context.trace_id, "032x")
        log_data["span_id"] = format(span_context.span_id, "016x")


def _get_current_span() -> Any:
    from opentelemetry.trace import get_current_span  # noqa: PLC0415 - keeps tracing optional

    global _get_current_span  # noqa: PLW0603 - bind the import once
    _get_current_span = get_current_span
    return get_current_span()


class JsonLineHandler(logging.Handler):
    """Writes each record as one line with a single `os.write` (atomic for O_APPEND files)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter
            if isinstance(formatter, JsonLogFormatter):
                self._write(formatter.format_line(record))
            else:
                self._write((self.format(record) + "\n").encode())
        except Exception:
            self.handleError(record)

    def _write(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        if written < len(data):  # a pipe or a terminal may take part of it
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(self._fd, view):]


class SharedRotatingFileHandler(JsonLineHandler):
    """An append-only file shared by several processes, rotated by size by exactly one of them."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        super().__init__(self._open())

    def _open(self) -> int:
        return os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _write(self, data: bytes) -> None:
        super()._write(data)
        if os.fstat(self._fd).st_size >= self._max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        with open(self._path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                mine = os.fstat(self._fd)
                try:
                    current = os.stat(self._path)
                except FileNotFoundError:
                    current = None
                # Another process may have rotated already: then only reopen.
                if current is not None and current.st_ino == mine.st_ino and mine.st_size >= self._max_bytes:
                    self._shift_backups()
                self._reopen()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _shift_backups(self) -> None:
        for index in range(self._backups - 1, 0, -1):
            older = f"{self._path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self._path}.{index + 1}")
        if self._backups > 0:
            os.replace(self._path, f"{self._path}.1")
        else:
            os.truncate(self._path, 0)

    def _reopen(self) -> None:
        old = self._fd
        self._fd = self._open()
        os.close(old)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        super().close()


_OWN_HANDLER_TYPES = (JsonLineHandler, SharedRotatingFileHandler)


def build_handlers(config: ObservabilityConfig) -> list[logging.Handler]:
    formatter = JsonLogFormatter(config)
    # File descriptor 1, not sys.stdout: Celery and test runners replace sys.stdout with their own objects.
    handlers: list[logging.Handler] = [JsonLineHandler(1)]
    if config.log_file:
        handlers.append(SharedRotatingFileHandler(config.log_file, config.log_file_max_bytes,
                                                  config.log_file_backups))
    for handler in handlers:
        handler.setFormatter(formatter)
    return handlers


# Loggers that install handlers of their own; they must reach the root handlers instead. Flask's
# app logger is not among them: `init_observability` removes only Flask's default handler from it.
_ROUTED_LOGGERS = ("gunicorn.error", "gunicorn.access", "celery", "celery.task", "werkzeug")
_OURS = "_observability_handler"  # marks the handlers this module installed


def configure_logging(config: ObservabilityConfig) -> None:
    """Adds the JSON handlers to the root logger and routes the servers' loggers to it.

    Handlers the host application installed stay (as Flask's own logging set-up respects them);
    calling again replaces only the handlers an earlier call added.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    for handler in build_handlers(config):
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(config.log_level)
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    # SQLAlchemy's INFO logs statements with their parameters: never at INFO.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.captureWarnings(True)

