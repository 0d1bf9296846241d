"""gunicorn's entry point: `bench.apps.wsgi:app`, the variant named by BENCH_VARIANT.

The harness sets BENCH_VARIANT, BENCH_DATABASE_URL (when `db` is driven) and, for project variants,
the package's own variables (REDIS_URL, PROMETHEUS_MULTIPROC_DIR, METRICS_PORT, the OTLP endpoint).
Each kind of app is imported only when it is the one served: the seed registers metrics with the
same names as the project's in prometheus_client's default registry, and installs process-wide
SQLAlchemy listeners and a tracer provider.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bench.apps.routes import build_engine
from bench.variants import BARE, OTEL, SDK_FLOOR, SEED, VARIANTS

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication


def _load() -> WSGIApplication:
    variant = VARIANTS[os.environ["BENCH_VARIANT"]]
    if variant.name == SEED:
        from bench.apps.seed import app as seed_app  # noqa: PLC0415

        return seed_app
    engine = build_engine(os.environ.get("BENCH_DATABASE_URL"))
    if variant.name == BARE:
        from bench.apps import bare  # noqa: PLC0415

        return bare.create_app(engine)
    if variant.name == OTEL:
        from bench.apps import otel  # noqa: PLC0415

        return otel.create_app(engine)
    if variant.name == SDK_FLOOR:
        from bench.apps import sdk_floor  # noqa: PLC0415

        return sdk_floor.create_app(engine)
    from bench.apps import project  # noqa: PLC0415
    from observability.config import ObservabilityConfig  # noqa: PLC0415

    return project.create_app(variant.observability_config(ObservabilityConfig.from_env()), engine)


app = _load()
