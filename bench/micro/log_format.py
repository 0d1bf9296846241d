"""Micro-benchmark (a): records per second of the project's JSON log formatting versus
python-json-logger 4's own formatters, for the same record.

The record: a message, 12 extra fields and the request context (method, path, ip, user agent,
request id). The project reads the request context from its context variable, so it is activated
for the project; python-json-logger's formatters get it as two more extra fields (`request`,
`request_id`), which puts the same content in every line. Each formatter sits on a stdlib
`StreamHandler` writing to /dev/null, so only the formatting differs; the project's own handler
(one `os.write` per line) is timed as well. A call is `logger.info(...)`: record creation included.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

from bench.micro.scale import Scale
from bench.micro.timing import time_interleaved
from observability import context
from observability.config import ObservabilityConfig
from observability.logging import JsonLineHandler, configure_logging

MESSAGE = "assets extracted"
EXTRA: dict[str, Any] = {
    "event": "assets_extracted", "episode_id": 4711, "script_length": 18_234, "asset_count": 12,
    "provider": "claude", "model": "claude-sonnet", "duration_ms": 812.4, "attempt": 1,
    "cache_hit": False, "queue": "extraction", "outcome": "success", "tags": ["scene", "prop"],
}
REQUEST = {"method": "POST", "path": "/api/episodes/4711/extract", "ip": "203.0.113.7",
           "user_agent": "Mozilla/5.0 (X11; Linux x86_64) bench"}
REQUEST_ID = "0f9c2d4e6a8b4c1d9e7f5a3b2c1d0e9f"
# python-json-logger's usual setup: the level, logger and message, and an ISO-8601 UTC timestamp.
_PJL_FORMAT = "%(levelname)s %(name)s %(message)s"


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.micro.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _null_stream_handler(formatter: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    handler.setFormatter(formatter)
    return handler


def _project_formatter() -> logging.Formatter:
    """The formatter exactly as `configure_logging` installs it on the root logger."""
    configure_logging(ObservabilityConfig())
    formatter = logging.getLogger().handlers[0].formatter
    assert formatter is not None
    return formatter


def measure(scale: Scale) -> dict[str, Any]:
    project = _project_formatter()
    project_handler = JsonLineHandler(os.open(os.devnull, os.O_WRONLY))
    project_handler.setFormatter(project)
    with_context = {**EXTRA, "request": REQUEST, "request_id": REQUEST_ID}
    loggers = {
        "project (observability.logging)": (_logger("project", _null_stream_handler(project)), EXTRA),
        "project, its own handler (os.write)": (_logger("project_fd", project_handler), EXTRA),
        "python-json-logger JsonFormatter": (
            _logger("json", _null_stream_handler(JsonFormatter(_PJL_FORMAT, timestamp=True))), with_context),
        "python-json-logger OrjsonFormatter": (
            _logger("orjson", _null_stream_handler(OrjsonFormatter(_PJL_FORMAT, timestamp=True))), with_context),
    }
    ctx = context.RequestContext(REQUEST_ID, **REQUEST)
    token = context.activate(ctx)  # python-json-logger's formatters ignore it
    try:
        cases = {name: _call(logger, extra) for name, (logger, extra) in loggers.items()}
        timings = time_interleaved(cases, scale.log_records, scale.repeats)
        lines = {name: _one_line(logger.handlers[0].formatter, extra) for name, (logger, extra) in loggers.items()}
    finally:
        context.deactivate(token)
    baseline = timings["python-json-logger JsonFormatter"].median_us
    return {
        "method": ("logger.info(message, extra=12 fields) with the request context, one handler to /dev/null, "
                   f"{scale.log_records} records per timing, median of {scale.repeats}"),
        "records": scale.log_records,
        "repeats": scale.repeats,
        "formatters": {
            name: {
                **timing.as_dict(),
                "records_per_s": round(1e6 / timing.median_us),
                "ratio_to_json_formatter": round(timing.median_us / baseline, 3),
                "line_bytes": len(lines[name].encode()),
            }
            for name, timing in timings.items()
        },
    }


def _call(logger: logging.Logger, extra: dict[str, Any]) -> Any:
    def log() -> None:
        logger.info(MESSAGE, extra=extra)

    return log


def _one_line(formatter: logging.Formatter | None, extra: dict[str, Any]) -> str:
    """One formatted line: its size shows that every formatter wrote the same content."""
    assert formatter is not None
    record = logging.LogRecord("bench", logging.INFO, __file__, 1, MESSAGE, None, None)
    record.__dict__.update(extra)
    return formatter.format(record)
