"""The server variants the harness compares, and the endpoints it drives.

Every variant serves the same routes (`bench.apps.routes`); they differ only in instrumentation.
Project variants are this project's `observability` package with an `ObservabilityConfig` whose
concern switches are set here; request ids and error capture are always on in the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for annotations: importing `observability` registers its metrics, which the seed's
    # process (whose own metrics have the same names) must never do.
    from observability.config import ObservabilityConfig

BARE = "bare"
SEED = "seed"
OTEL = "otel"  # a peer beside the project's variants: OpenTelemetry's own instrumentation alone
SDK_FLOOR = "sdk-floor"  # the least a span through the OpenTelemetry SDK's tracer costs: a bound, not a peer


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # Overrides of ObservabilityConfig for project variants; None for bare and seed.
    config: dict[str, Any] | None = field(default=None)

    @property
    def is_project(self) -> bool:
        return self.config is not None

    @property
    def traced(self) -> bool:
        return self.name in (SEED, OTEL) or bool(self.config and self.config["tracing_enabled"])

    def observability_config(self, base: ObservabilityConfig) -> ObservabilityConfig:
        """`base` (from the server's environment: Redis, metrics dir, ports) with this variant's switches."""
        if self.config is None:
            raise ValueError(f"{self.name} is not a project variant")
        return replace(base, **self.config)


def _project(access_log: bool, metrics: bool, tracing: bool, sampler: str = "parentbased_always_on",
             ratio: str = "1.0") -> dict[str, Any]:
    return {
        "access_log_enabled": access_log,
        "http_metrics_enabled": metrics,
        "tracing_enabled": tracing,
        "traces_sampler": sampler,
        "traces_sampler_arg": ratio,
    }


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(BARE, "same routes, no instrumentation"),
    Variant(SEED, "the seed design's snippets as written (JsonFormatter, prometheus_client, OTel SDK 100 %)"),
    Variant(OTEL, "OpenTelemetry's own Flask and SQLAlchemy instrumentation, SDK, OTLP exporter, 100 % (reference)"),
    Variant(SDK_FLOOR, "one SDK server span per request and nothing else: BatchSpanProcessor, spans discarded "
                       "(the SDK's floor)"),
    Variant("full-100", "this project, everything on, 100 % of traces sampled",
            _project(access_log=True, metrics=True, tracing=True)),
    Variant("full-default", "this project, everything on, production sampling (parentbased_traceidratio 0.1)",
            _project(access_log=True, metrics=True, tracing=True, sampler="parentbased_traceidratio",
                     ratio="0.1")),
    # What full-default pays before any of its sampled spans: the bound of its ratio to otel.
    Variant("full-unsampled", "this project, everything on, no trace sampled (parentbased_always_off)",
            _project(access_log=True, metrics=True, tracing=True, sampler="parentbased_always_off")),
    Variant("logs-only", "this project, access log only (metrics and tracing off)",
            _project(access_log=True, metrics=False, tracing=False)),
    Variant("metrics-only", "this project, HTTP metrics only (access log and tracing off)",
            _project(access_log=False, metrics=True, tracing=False)),
    # 100 % sampled, so that it shows the whole cost of the concern, as the micro-benchmark does.
    Variant("tracing-only", "this project, tracing only at 100 % sampling (access log and metrics off)",
            _project(access_log=False, metrics=False, tracing=True)),
)}

# Path of each endpoint; `db` runs one PostgreSQL query through SQLAlchemy.
ENDPOINTS: dict[str, str] = {"trivial": "/trivial", "db": "/db"}
