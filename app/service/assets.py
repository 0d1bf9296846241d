"""Asset extraction, traced as the design asks: `extract_assets` with the children
`load_episode`, `ai_call` and `save_assets`, and the AI call counted by provider, model and outcome."""

from __future__ import annotations

import time

from opentelemetry import trace
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.ai import AIProviderError, AssetExtractor, ExtractedAsset
from service.db import Asset, Episode
from service.metrics import AI_CALL_DURATION, AI_CALLS

_tracer = trace.get_tracer("service.assets")


class EpisodeNotFoundError(LookupError):
    pass


def call_ai(provider: AssetExtractor, script: str, failure_rate: float | None) -> list[ExtractedAsset]:
    with _tracer.start_as_current_span("ai_call") as span:
        span.set_attribute("provider", provider.provider)
        span.set_attribute("model", provider.model)
        started = time.perf_counter()
        outcome = "failed"
        try:
            assets = provider.extract(script, failure_rate)
            outcome = "success"
            span.set_attribute("asset_count", len(assets))
            return assets
        finally:
            AI_CALL_DURATION.labels(provider.provider, provider.model).observe(time.perf_counter() - started)
            AI_CALLS.labels(provider.provider, provider.model, outcome).inc()


def extract_assets(session: Session, provider: AssetExtractor, episode_id: int,
                   failure_rate: float | None = None) -> list[Asset]:
    """Replaces the episode's assets with a fresh extraction; raises EpisodeNotFoundError or
    AIProviderError. Runs inside the caller's transaction."""
    with _tracer.start_as_current_span("extract_assets") as span:
        span.set_attribute("episode_id", episode_id)
        with _tracer.start_as_current_span("load_episode"):
            episode = session.get(Episode, episode_id)
            if episode is None:
                raise EpisodeNotFoundError(episode_id)
            span.set_attribute("script_length", len(episode.script_content))
        try:
            extracted = call_ai(provider, episode.script_content, failure_rate)
        except AIProviderError as error:
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, "AI provider failed"))
            raise
        with _tracer.start_as_current_span("save_assets") as save_span:
            session.execute(delete(Asset).where(Asset.episode_id == episode_id))
            rows = [Asset(episode_id=episode_id, kind=a.kind, name=a.name[:200]) for a in extracted]
            session.add_all(rows)
            session.flush()
            save_span.set_attribute("asset_count", len(rows))
        return rows


def list_assets(session: Session, episode_id: int) -> list[Asset]:
    return list(session.scalars(select(Asset).where(Asset.episode_id == episode_id).order_by(Asset.id)))
