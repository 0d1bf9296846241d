"""The sample service's own settings, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceSettings:
    database_url: str = field(default="postgresql+psycopg://app@127.0.0.1:5432/app", repr=False)
    broker_url: str = field(default="redis://127.0.0.1:6379/1", repr=False)
    max_body_bytes: int = 1_048_576
    trusted_proxy_hops: int = 0
    ai_provider: str = "simulated"
    ai_model: str = "sim-extractor-1"
    ai_latency_ms: float = 20.0
    ai_failure_rate: float = 0.0
    chaos_refresh_seconds: float = 1.0
    admin_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            broker_url=env.get("CELERY_BROKER_URL") or defaults.broker_url,
            max_body_bytes=int(env.get("MAX_BODY_BYTES") or defaults.max_body_bytes),
            trusted_proxy_hops=int(env.get("TRUSTED_PROXY_HOPS") or defaults.trusted_proxy_hops),
            ai_provider=env.get("AI_PROVIDER") or defaults.ai_provider,
            ai_model=env.get("AI_MODEL") or defaults.ai_model,
            ai_latency_ms=float(env.get("AI_LATENCY_MS") or defaults.ai_latency_ms),
            ai_failure_rate=float(env.get("AI_FAILURE_RATE") or defaults.ai_failure_rate),
            chaos_refresh_seconds=float(env.get("CHAOS_REFRESH_SECONDS") or defaults.chaos_refresh_seconds),
            admin_token=env.get("ADMIN_TOKEN", ""),
        )
