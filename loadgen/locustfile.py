"""Traffic for the compose stack: what a few users of the episodes API would do.

Each simulated user writes episodes, reads lists and single episodes, extracts assets now and
through the Celery queue, and reads the assets; now and then it asks for an episode that does not
exist (404) or sends an invalid body (400), as real clients do. Requests carry ``X-User-ID`` (the
service's stand-in for authentication), so ``active_users`` moves.

With ``CHAOS=1`` in the environment, one of the users (``fixed_count``, taken from ``--users``)
operates the service's chaos knobs through the admin API (``ADMIN_TOKEN``): a few minutes of
errors, latency, AI failures or slow queries, then a quiet spell, so that alerts fire and resolve.

Run by the ``loadgen`` service of docker-compose.yml; by hand against a native sandbox:
``locust -f loadgen/locustfile.py --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from locust import HttpUser, between, task

USERS = [f"user-{n:03d}" for n in range(1, 41)]
MISSING_EPISODE_ID = 2_000_000_000  # a valid id that no sandbox reaches

_PLACES = ["KITCHEN", "ROOFTOP", "POLICE STATION", "BEACH HOUSE", "SUBWAY CAR", "GARAGE"]
_PEOPLE = ["ALICE", "BOB", "DETECTIVE RAMOS", "MRS. CHEN", "THE COURIER"]
_PROPS = ["umbrella", "red phone", "map", "broken watch", "envelope", "coffee cup", "keys"]

# One disturbance at a time: the knobs it sets (the others are reset), and what it should show.
CHAOS_SCENARIOS: list[dict[str, float]] = [
    {"error_rate": 0.3},  # HighErrorRate, unhandled exceptions, notifications
    {"latency_ms": 1500.0},  # latency percentiles
    {"ai_failure_rate": 0.6},  # AI call failures, 502s
    {"slow_query_ms": 250.0},  # slow-query records and counter
]
CHAOS_ON_SECONDS = (120, 240)
CHAOS_OFF_SECONDS = (180, 360)


def make_script(rng: random.Random) -> str:
    """A short screenplay the simulated AI provider can extract characters, places and props from."""
    lines = []
    for _ in range(rng.randint(1, 3)):
        lines += [f"INT. {rng.choice(_PLACES)} - {rng.choice(['DAY', 'NIGHT'])}", ""]
        for speaker in rng.sample(_PEOPLE, k=2):
            lines += [speaker, f"Have you seen the [{rng.choice(_PROPS)}]?", ""]
    return "\n".join(lines)


def chaos_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("CHAOS", "0").strip().lower() not in ("", "0", "false", "no")


class EpisodeUser(HttpUser):
    """A user of the API: mostly reads, some writes, and the odd mistake."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.rng = random.Random()  # noqa: S311 - traffic shapes, not secrets
        self.client.headers["X-User-ID"] = self.rng.choice(USERS)
        self.episode_ids: list[int] = []
        self.create_episode()

    def _known_id(self) -> int | None:
        return self.rng.choice(self.episode_ids) if self.episode_ids else None

    @task(2)
    def create_episode(self) -> None:
        body = {"title": f"Episode {self.rng.randint(1, 999)}", "script": make_script(self.rng)}
        with self.client.post("/api/episodes", json=body, name="/api/episodes [create]",
                              catch_response=True) as response:
            if response.status_code == 201:
                self.episode_ids = ([*self.episode_ids, response.json()["id"]])[-20:]

    @task(5)
    def list_episodes(self) -> None:
        self.client.get(f"/api/episodes?limit={self.rng.choice([10, 20, 50])}", name="/api/episodes [list]")

    @task(5)
    def get_episode(self) -> None:
        if (episode_id := self._known_id()) is not None:
            self.client.get(f"/api/episodes/{episode_id}", name="/api/episodes/<id>")

    @task(1)
    def extract_now(self) -> None:
        if (episode_id := self._known_id()) is not None:
            self.client.post(f"/api/episodes/{episode_id}/extract", name="/api/episodes/<id>/extract")

    @task(2)
    def extract_later(self) -> None:
        if (episode_id := self._known_id()) is not None:
            self.client.post(f"/api/episodes/{episode_id}/extract-async", name="/api/episodes/<id>/extract-async")

    @task(3)
    def get_assets(self) -> None:
        if (episode_id := self._known_id()) is not None:
            self.client.get(f"/api/episodes/{episode_id}/assets", name="/api/episodes/<id>/assets")

    @task(1)
    def missing_episode(self) -> None:
        with self.client.get(f"/api/episodes/{MISSING_EPISODE_ID}", name="/api/episodes/<id> [missing]",
                             catch_response=True) as response:
            if response.status_code == 404:
                response.success()  # expected: a client's mistake, not a failure of the test

    @task(1)
    def invalid_body(self) -> None:
        body = self.rng.choice([{"title": ""}, {"script": "no title"}, ["not", "an", "object"]])
        with self.client.post("/api/episodes", json=body, name="/api/episodes [invalid]",
                              catch_response=True) as response:
            if response.status_code == 400:
                response.success()


class ChaosOperator(HttpUser):
    """One operator, only with CHAOS=1: a disturbance for a few minutes, then quiet, and again."""

    abstract = not chaos_enabled()  # an abstract user class is never spawned
    fixed_count = 1

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ.get('ADMIN_TOKEN', '')}"
        self.rng = random.Random()  # noqa: S311 - traffic shapes, not secrets
        self.disturbing = False

    def wait_time(self) -> float:
        return self.rng.uniform(*(CHAOS_ON_SECONDS if self.disturbing else CHAOS_OFF_SECONDS))

    def on_stop(self) -> None:
        if self.disturbing:
            self._set_knobs({})  # leave the service undisturbed

    @task
    def toggle(self) -> None:
        self.disturbing = not self.disturbing
        self._set_knobs(self.rng.choice(CHAOS_SCENARIOS) if self.disturbing else {})

    def _set_knobs(self, knobs: dict[str, float]) -> None:
        """PUT replaces every knob: the ones not named go back to their defaults."""
        self.client.put("/admin/chaos", json=knobs, name="/admin/chaos")
