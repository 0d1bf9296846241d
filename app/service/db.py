"""Schema and engine. The schema is created on start under an advisory lock, so web and worker
processes starting together do not race each other."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy
from sqlalchemy import DateTime, ForeignKey, String, Text, func, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_SCHEMA_LOCK_ID = 4_242_001
# Below gunicorn's 30 s worker timeout, so that a request can still answer 503.
CONNECT_TIMEOUT_SECONDS = 3


class Base(DeclarativeBase):
    pass


class Episode(Base):
    __tablename__ = "episodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    script_content: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def as_dict(self, with_script: bool = False) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id, "title": self.title, "created_by": self.created_by,
            "created_at": _utc(self.created_at or datetime.now(UTC)).isoformat(),
            "script_length": len(self.script_content),
        }
        if with_script:
            body["script"] = self.script_content
        return body


class Asset(Base):
    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "episode_id": self.episode_id, "kind": self.kind, "name": self.name}


def _utc(moment: datetime) -> datetime:
    # SQLite keeps no offset (it stores CURRENT_TIMESTAMP, which is UTC): the API always shows one.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def make_engine(database_url: str) -> Engine:
    # hide_parameters: SQLAlchemy's own error messages must never carry bound values (secrets).
    # sqlalchemy.create_engine is looked up at call time: once tracing is on, it is the traced one.
    engine = sqlalchemy.create_engine(database_url, hide_parameters=True, pool_pre_ping=True, pool_size=5,
                                      max_overflow=5, pool_timeout=5, connect_args=_connect_args(database_url))
    return engine


def _connect_args(database_url: str) -> dict[str, int]:
    # libpq waits for a server that accepts but never answers (a hung host, a black-holed route)
    # forever by default: each request would hold its gunicorn worker until the worker is killed.
    if sqlalchemy.make_url(database_url).get_backend_name() == "postgresql":
        return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return {}


def ensure_schema(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
        Base.metadata.create_all(connection, checkfirst=True)
