"""The seed design's instrumentation, as its snippets are written: the baseline this project is
measured against (design-log-monitoring.zh.md §1.2, §1.3, §2.1, §2.2, §4.1, §4.2, §5.1). It lives
in bench/ only; the product never imports it.

Kept as written, defects included, because they are part of what the seed costs: the deprecated
`pythonjsonlogger.jsonlogger` module (a shim over `pythonjsonlogger.json.JsonFormatter` that only
warns), `datetime.utcnow()`, the client's X-Request-ID trusted as is, two `before_request` timers,
records on stderr (StreamHandler's default), `/metrics` on the public port from one in-process
registry, the slow-query listeners keeping start times on `conn.info` and logging raw parameters,
and a TracerProvider with the SDK's default sampler (every trace sampled).

One defect shows in the figures: `setup_logging` puts the handler on both the root logger and
`app.logger`, so the records of any logger at or below the app's name are written twice. The access
log's `logging.getLogger(__name__)` is such a logger whenever it lives in the app's package (Flask's
recommended layout), and here, in the app's own module, it is `app.logger` itself: every access
record is written twice, as it would be in such a deployment.

Minimal fixes, each only because the snippet cannot run otherwise:

1. `opentelemetry.exporter.jaeger.thrift.JaegerExporter(agent_host_name='localhost', agent_port=6831)`
   became `OTLPSpanExporter()` from `opentelemetry.exporter.otlp.proto.http`: the Jaeger exporter is
   removed upstream; with SDK 1.45 it cannot be installed beside the OTLP exporter and alone it no
   longer imports. The endpoint comes from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the harness's receiver).
2. The snippets use `app` and Flask-SQLAlchemy's `db.engine` without defining them: one module-level
   `app = Flask(__name__)`, and the benchmark's engine (BENCH_DATABASE_URL) in place of `db.engine`.
3. `setup_logging(app)` and `setup_tracing(app)` are defined but never called: both are called once,
   right after the app is created, as an application factory would.
4. Without a database (runs that drive only `trivial`) there is no engine to instrument, so
   `SQLAlchemyInstrumentor().instrument(engine=...)` is skipped then.

Type hints were added to the snippets' functions (the project's lint wants them); nothing else
changed. Left out: the error handler and ErrorAggregator (§3), which run only when a request fails
and no benchmark request does, and §5.2's custom spans, which belong to the sample service's
extraction, not to these routes.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime
from typing import Any

from flask import Flask, Response, g, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # fix 1
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pythonjsonlogger import jsonlogger
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.apps.routes import add_routes, build_engine

# --- §1.2 structured logging ---------------------------------------------------------------------


class CustomJsonFormatter(jsonlogger.JsonFormatter):
    """自定义JSON日志格式化器"""

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)

        log_record['timestamp'] = datetime.utcnow().isoformat() + 'Z'
        log_record['level'] = record.levelname

        if request:
            log_record['request'] = {
                'method': request.method,
                'path': request.path,
                'ip': request.remote_addr,
                'user_agent': request.headers.get('User-Agent', '')
            }

        if hasattr(g, 'current_user_id'):
            log_record['user_id'] = g.current_user_id

        if hasattr(g, 'request_id'):
            log_record['request_id'] = g.request_id


def setup_logging(app: Flask) -> None:
    handler = logging.StreamHandler()
    formatter = CustomJsonFormatter(
        '%(timestamp)s %(level)s %(name)s %(message)s'
    )
    handler.setFormatter(formatter)

    root_logger = logging.getLogger()
    root_logger.setLevel(logging.INFO)
    root_logger.addHandler(handler)

    app.logger.setLevel(logging.INFO)
    app.logger.addHandler(handler)

    if not app.debug:
        logging.getLogger('sqlalchemy.engine').setLevel(logging.WARNING)


# --- §5.1 tracing --------------------------------------------------------------------------------


def setup_tracing(app: Flask) -> None:
    trace.set_tracer_provider(TracerProvider())

    otlp_exporter = OTLPSpanExporter()  # fix 1: was JaegerExporter(agent_host_name='localhost', agent_port=6831)

    trace.get_tracer_provider().add_span_processor(
        BatchSpanProcessor(otlp_exporter)
    )

    FlaskInstrumentor().instrument_app(app)

    if engine is not None:  # fix 4
        SQLAlchemyInstrumentor().instrument(engine=engine)  # fix 2: `db.engine` in the snippet


app = Flask(__name__)  # fix 2
engine = build_engine(os.environ.get("BENCH_DATABASE_URL"))  # fix 2: stands for `db.engine`
setup_logging(app)  # fix 3
setup_tracing(app)  # fix 3

# --- §1.3 request id -----------------------------------------------------------------------------


@app.before_request
def add_request_id() -> None:
    request_id = request.headers.get('X-Request-ID')

    if not request_id:
        request_id = str(uuid.uuid4())

    g.request_id = request_id


@app.after_request
def add_request_id_header(response: Response) -> Response:
    if hasattr(g, 'request_id'):
        response.headers['X-Request-ID'] = g.request_id
    return response


# --- §2.1 access log -----------------------------------------------------------------------------

logger = logging.getLogger(__name__)


@app.before_request
def log_request_start() -> None:
    g.request_start_time = time.time()


@app.after_request
def log_request_end(response: Response) -> Response:
    if not hasattr(g, 'request_start_time'):
        return response

    duration_ms = int((time.time() - g.request_start_time) * 1000)

    logger.info('API访问', extra={
        'event': 'api_access',
        'method': request.method,
        'path': request.path,
        'status_code': response.status_code,
        'duration_ms': duration_ms,
        'user_id': getattr(g, 'current_user_id', None),
        'ip': request.remote_addr,
        'user_agent': request.headers.get('User-Agent', ''),
        'request_id': getattr(g, 'request_id', None)
    })

    response.headers['X-Response-Time'] = f"{duration_ms}ms"

    return response


# --- §2.2 slow queries ---------------------------------------------------------------------------


@event.listens_for(Engine, "before_cursor_execute")
def before_cursor_execute(  # noqa: PLR0917 - SQLAlchemy's listener signature
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    conn.info.setdefault('query_start_time', []).append(time.time())


@event.listens_for(Engine, "after_cursor_execute")
def after_cursor_execute(  # noqa: PLR0917 - SQLAlchemy's listener signature
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    total_time = time.time() - conn.info['query_start_time'].pop()
    duration_ms = int(total_time * 1000)

    if duration_ms > 100:
        logger.warning('慢查询检测', extra={
            'event': 'slow_query',
            'duration_ms': duration_ms,
            'statement': statement,
            'parameters': parameters
        })


# --- §4.1 metrics --------------------------------------------------------------------------------

request_count = Counter(
    'http_requests_total',
    'Total HTTP requests',
    ['method', 'endpoint', 'status']
)

request_duration = Histogram(
    'http_request_duration_seconds',
    'HTTP request duration',
    ['method', 'endpoint']
)

active_users = Gauge(
    'active_users_total',
    'Number of active users'
)

ai_call_count = Counter(
    'ai_calls_total',
    'Total AI API calls',
    ['provider', 'model', 'status']
)


@app.before_request
def start_timer() -> None:
    g.start_time = time.time()


@app.after_request
def record_metrics(response: Response) -> Response:
    if hasattr(g, 'start_time'):
        duration = time.time() - g.start_time

        request_count.labels(
            method=request.method,
            endpoint=request.endpoint or 'unknown',
            status=response.status_code
        ).inc()

        request_duration.labels(
            method=request.method,
            endpoint=request.endpoint or 'unknown'
        ).observe(duration)

    return response


# --- §4.2 /metrics -------------------------------------------------------------------------------


@app.route('/metrics')
def metrics() -> tuple[bytes, int, dict[str, str]]:
    return generate_latest(), 200, {'Content-Type': CONTENT_TYPE_LATEST}


add_routes(app, engine)  # the benchmark's routes, the same in every variant
