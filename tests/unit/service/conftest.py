from __future__ import annotations

from pathlib import Path

import pytest

from service import create_app
from service.settings import ServiceSettings


@pytest.fixture
def make_service(tmp_path: Path, make_config, dead_redis_url):
    """The real service on SQLite, with Redis and the broker unreachable."""

    def make(tracing: bool = False, **settings):
        values = {"database_url": f"sqlite:///{tmp_path / 'service.db'}",
                  "broker_url": dead_redis_url, "ai_latency_ms": 0.0}
        values.update(settings)
        config = make_config(tracing_enabled=tracing, admin_token=values.get("admin_token", ""))
        return create_app(ServiceSettings(**values), config)

    return make


@pytest.fixture
def client(make_service):
    return make_service().test_client()


SCRIPT = """FADE IN:
INT. KITCHEN - NIGHT
ALICE
Pass me the [kettle].
BOB
Not before the [letter] is read.
EXT. HARBOUR - DAWN
ALICE
CUT TO:
"""
