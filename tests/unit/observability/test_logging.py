from __future__ import annotations

import json
import logging
import logging.handlers
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from observability import ObservabilityConfig
from observability.context import RequestContext, activate, deactivate
from observability.logging import JsonLogFormatter, SharedRotatingFileHandler, configure_logging


def _format(record_logger: str = "service.x", level: int = logging.INFO, msg: str = "hello",
            extra: dict | None = None, exc_info: object = None, config: ObservabilityConfig | None = None) -> dict:
    formatter = JsonLogFormatter(config or ObservabilityConfig(tracing_enabled=False))
    record = logging.getLogger(record_logger).makeRecord(
        record_logger, level, __file__, 1, msg, (), exc_info, extra=extra)
    line = formatter.format(record)
    assert "\n" not in line
    return json.loads(line)


def test_record_has_the_documented_fields() -> None:
    record = _format()
    assert record["timestamp"].endswith("+00:00")
    assert record["level"] == "INFO"
    assert record["logger"] == "service.x"
    assert record["message"] == "hello"
    assert record["service"] == {"name": "episodes-api", "version": "0.1.0", "environment": "development",
                                 "node": {"name": socket.gethostname()}}
    assert (record["layer"], record["category"]) == ("application", "business")


def test_layers_follow_the_design() -> None:
    assert _format("observability.access")["layer"] == "access"
    assert _format("gunicorn.error")["layer"] == "system"
    assert _format("sqlalchemy.engine")["layer"] == "system"
    assert (_format("audit")["layer"], _format("audit")["category"]) == ("application", "audit")
    assert _format("service.api", level=logging.ERROR)["category"] == "error"


def test_request_context_is_attached_and_released() -> None:
    ctx = RequestContext("req-12345678", method="GET", path="/x", ip="10.0.0.1", user_agent="ua")
    ctx.user_id = "u-7"
    token = activate(ctx)
    try:
        record = _format()
    finally:
        deactivate(token)
    assert record["request_id"] == "req-12345678"
    assert record["request"] == {"method": "GET", "path": "/x", "ip": "10.0.0.1", "user_agent": "ua"}
    assert record["user_id"] == "u-7"
    assert "request_id" not in _format()


def test_newlines_in_messages_cannot_forge_lines() -> None:
    forged = 'x"}\n{"level": "CRITICAL", "message": "forged"}'
    record = _format(msg=forged)
    assert record["message"] == forged


def test_extras_cannot_overwrite_own_fields() -> None:
    record = _format(extra={"level": "FAKE", "service": "other", "event": "e"})
    assert record["level"] == "INFO"
    assert record["extra_level"] == "FAKE"
    assert record["service"]["name"] == "episodes-api"
    assert record["event"] == "e"


def test_secret_fields_and_assignments_are_redacted() -> None:
    try:
        raise ValueError("login failed: password=hunter2 token: abc.def")
    except ValueError as error:
        record = _format(level=logging.ERROR, msg="failed",
                         extra={"db_password": "hunter2", "headers": {"Authorization": "Bearer xyz"}},
                         exc_info=(type(error), error, error.__traceback__))
    text = json.dumps(record)
    assert "hunter2" not in text and "abc.def" not in text and "xyz" not in text
    assert record["db_password"] == "[REDACTED]"
    assert record["error"]["type"] == "ValueError"
    assert "Traceback" in record["error"]["stack_trace"]


def test_messages_and_string_extras_lose_assignments_and_configured_credentials() -> None:
    config = ObservabilityConfig(tracing_enabled=False, admin_token="admin-token-0123456789abcdef",
                                 smtp_password="smtp-password-42")
    record = _format(msg="retrying with password=hunter2 as admin-token-0123456789abcdef", config=config,
                     extra={"detail": "login smtp-password-42 refused"})
    text = json.dumps(record)
    assert "hunter2" not in text and "admin-token-0123456789abcdef" not in text and "smtp-password-42" not in text
    assert record["message"] == "retrying with password=[REDACTED] as [REDACTED]"
    assert record["detail"] == "login [REDACTED] refused"


def test_integers_wider_than_64_bits_do_not_lose_the_record() -> None:
    record = _format(extra={"huge": 2**70, "nan": float("nan")})
    assert record["huge"] == 2**70


def _write_lines(path: str, count: int, marker: int) -> None:
    handler = SharedRotatingFileHandler(path, max_bytes=20_000, backups=50)
    handler.setFormatter(JsonLogFormatter(ObservabilityConfig(tracing_enabled=False)))
    logger = logging.Logger(f"writer{marker}")
    logger.addHandler(handler)
    for index in range(count):
        logger.info("line", extra={"writer": marker, "index": index, "padding": "x" * (index % 300)})
    handler.close()


def test_processes_sharing_a_rotating_file_lose_and_interleave_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "app.log")
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_lines, args=(path, 400, marker)) for marker in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
        assert writer.exitcode == 0
    files = sorted(p for p in os.listdir(tmp_path) if p.startswith("app.log") and not p.endswith(".lock"))
    assert len(files) > 2, "the file should have rotated"
    seen = set()
    for name in files:
        for line in (tmp_path / name).read_text().splitlines():
            record = json.loads(line)
            seen.add((record["writer"], record["index"]))
    assert seen == {(marker, index) for marker in range(4) for index in range(400)}
    for name in files:
        assert os.path.getsize(tmp_path / name) < 20_000 + 2_000  # bounded: at most one line over


def test_configure_logging_routes_library_loggers(capfd) -> None:
    configure_logging(ObservabilityConfig(tracing_enabled=False))
    logging.getLogger("gunicorn.error").warning("from gunicorn")
    logging.getLogger("celery").warning("from celery")
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(r["logger"], r["layer"]) for r in lines] == [("gunicorn.error", "system"), ("celery", "system")]
    assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING


def test_configure_logging_keeps_the_host_applications_handlers_and_replaces_only_its_own(capfd) -> None:
    root = logging.getLogger()
    host = logging.handlers.MemoryHandler(capacity=100)
    root.addHandler(host)
    try:
        configure_logging(ObservabilityConfig(tracing_enabled=False))
        configure_logging(ObservabilityConfig(tracing_enabled=False))  # again: no second JSON handler
        capfd.readouterr()
        logging.getLogger("host.module").warning("seen by both")
        json_lines = capfd.readouterr().out.splitlines()
        assert host in root.handlers
        assert [record.getMessage() for record in host.buffer] == ["seen by both"]
        assert [json.loads(line)["message"] for line in json_lines] == ["seen by both"]
    finally:
        root.removeHandler(host)


def test_log_fast_writes_the_record_logging_would_with_those_extras() -> None:
    from observability.logging import ACCESS_LOGGER, log_fast

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[dict] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(json.loads(self.format(record)))

    keep = Keep()
    keep.setFormatter(JsonLogFormatter(ObservabilityConfig(tracing_enabled=False)))
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(keep)
    fields = {"event": "api_access", "status_code": 200, "duration_ms": 1.5, "endpoint": "/x/<int:id>",
              "response_bytes": None}
    ctx = RequestContext("req-12345678", method="GET", path="/x/1", ip="10.0.0.1", user_agent="ua")
    token = activate(ctx)
    try:
        log_fast(logger, logging.INFO, "api_access", fields)
        logger.info("api_access", extra=fields)
    finally:
        deactivate(token)
        logger.removeHandler(keep)
    fast, usual = keep.lines
    assert fast.pop("timestamp") and usual.pop("timestamp")
    assert fast == usual  # the same fields in the same order, and nothing of the shortcut's own
    assert list(fast) == list(usual)


def test_extras_json_cannot_encode_directly_still_reach_the_line() -> None:
    from observability.logging import log_fast

    lines: list[bytes] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.formatter.format_line(record))

    keep = Keep()
    keep.setFormatter(JsonLogFormatter(ObservabilityConfig(tracing_enabled=False)))
    logger = logging.getLogger("service.keys")
    logger.addHandler(keep)
    try:
        logger.warning("by id", extra={"counts": {7: "seven", None: "none"}})
        logger.warning("wide", extra={"big": 2**70})
        log_fast(logger, logging.WARNING, "fast", {"event": {1: "one"}})
    finally:
        logger.removeHandler(keep)
    assert all(line.endswith(b"}\n") and line.count(b"\n") == 1 for line in lines)
    by_id, wide, fast = (json.loads(line) for line in lines)
    assert by_id["counts"] == {"7": "seven", "null": "none"}
    assert wide["big"] == 2**70
    assert fast["event"] == {"1": "one"}


def test_a_line_the_kernel_takes_in_parts_is_written_whole(monkeypatch, tmp_path: Path) -> None:
    from observability import logging as json_logging

    real_write = os.write
    monkeypatch.setattr(json_logging.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    path = tmp_path / "parts.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    handler = json_logging.JsonLineHandler(fd)
    handler.setFormatter(JsonLogFormatter(ObservabilityConfig(tracing_enabled=False)))
    try:
        handler.emit(logging.LogRecord("service.x", logging.INFO, __file__, 1, "in parts", (), None))
    finally:
        os.close(fd)
    line = path.read_bytes()
    assert line.endswith(b"\n") and json.loads(line)["message"] == "in parts"


def _json_logger(name: str, path: Path) -> tuple[logging.Logger, logging.Handler]:
    """A logger whose records reach one JSON file handler and nothing else."""
    from observability.logging import JsonLineHandler

    handler = JsonLineHandler(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    handler.setFormatter(JsonLogFormatter(ObservabilityConfig(tracing_enabled=False)))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    return logger, handler


def _drop(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.removeHandler(handler)
    logger.propagate = True
    handler.close()
    os.close(handler._fd)


_ACCESS_FIELDS = {"event": "api_access", "status_code": 200, "duration_ms": 1.5, "endpoint": "/x/<int:id>",
                  "response_bytes": 17}


def test_log_fast_to_own_handlers_only_writes_without_a_record_the_line_logging_would(
        monkeypatch, tmp_path: Path) -> None:
    from observability.logging import log_fast

    path = tmp_path / "direct.log"
    logger, handler = _json_logger("observability.access.direct", path)
    ctx = RequestContext("req-12345678", method="GET", path="/x/1", ip="10.0.0.1", user_agent="ua")
    token = activate(ctx)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(logger, "handle", lambda record: pytest.fail("a record was built"))
            log_fast(logger, logging.INFO, "api_access", _ACCESS_FIELDS)
        logger.info("api_access", extra=_ACCESS_FIELDS)
    finally:
        deactivate(token)
        _drop(logger, handler)
    direct, usual = (json.loads(line) for line in path.read_text().splitlines())
    assert direct.pop("timestamp") and usual.pop("timestamp")
    assert list(direct.items()) == list(usual.items())
    assert direct["pid"] == os.getpid() and direct["request_id"] == "req-12345678"


def test_log_fast_builds_the_record_when_anything_but_own_handlers_could_see_it(
        monkeypatch, tmp_path: Path) -> None:
    from observability.logging import log_fast

    seen: list[str] = []

    def note(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append("kept " + record.getMessage())

    def factory(*args, **kwargs) -> logging.LogRecord:
        seen.append("factory")
        return logging.LogRecord(*args, **kwargs)

    path = tmp_path / "fallback.log"
    logger, handler = _json_logger("observability.access.fallback", path)
    parent = logging.getLogger("observability.access")
    keep = Keep()
    try:
        logger.addFilter(note)
        log_fast(logger, logging.INFO, "logger filter", _ACCESS_FIELDS)
        logger.removeFilter(note)
        handler.addFilter(note)
        log_fast(logger, logging.INFO, "handler filter", _ACCESS_FIELDS)
        handler.removeFilter(note)
        with monkeypatch.context() as patched:
            patched.setattr(logging, "getLogRecordFactory", lambda: factory)
            log_fast(logger, logging.INFO, "record factory", _ACCESS_FIELDS)
        logger.propagate = True
        parent.addHandler(keep)
        log_fast(logger, logging.INFO, "other handler", _ACCESS_FIELDS)
    finally:
        parent.removeHandler(keep)
        _drop(logger, handler)
    assert seen == ["logger filter", "handler filter", "factory", "kept other handler"]
    written = [json.loads(line)["message"] for line in path.read_text().splitlines()]
    assert written == ["logger filter", "handler filter", "record factory", "other handler"]


def test_log_fast_skips_a_handler_above_the_level_and_reports_a_failed_write(tmp_path: Path) -> None:
    from observability.logging import JsonLineHandler, log_fast

    logger, handler = _json_logger("observability.access.levels", tmp_path / "info.log")
    quiet = JsonLineHandler(os.open(tmp_path / "errors.log", os.O_WRONLY | os.O_CREAT))
    quiet.setFormatter(handler.formatter)
    quiet.setLevel(logging.ERROR)
    broken = JsonLineHandler(os.open(tmp_path / "broken.log", os.O_RDONLY | os.O_CREAT))
    broken.setFormatter(handler.formatter)
    failures: list[logging.LogRecord] = []
    broken.handleError = failures.append
    for extra in (quiet, broken):
        logger.addHandler(extra)
    try:
        log_fast(logger, logging.INFO, "api_access", _ACCESS_FIELDS)
    finally:
        for extra in (quiet, broken):
            logger.removeHandler(extra)
            os.close(extra._fd)
        _drop(logger, handler)
    assert json.loads((tmp_path / "info.log").read_text())["message"] == "api_access"
    assert (tmp_path / "errors.log").read_bytes() == b""
    assert [(r.name, r.getMessage(), r.status_code) for r in failures] == [
        ("observability.access.levels", "api_access", 200)]
