"""The routes every variant serves, and the database they read.

`trivial` answers a small JSON document without I/O: it shows the instrumentation's own cost.
`db` runs one indexed PostgreSQL query through SQLAlchemy 2, the shape of most API requests.
"""

from __future__ import annotations

from flask import Flask, abort, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, create_engine, text

TABLE = "bench_episodes"
ROWS = 100
_SELECT = text(f"SELECT id, title, script_length FROM {TABLE} WHERE id = :id")  # noqa: S608 - constant name


def build_engine(url: str | None) -> Engine | None:
    """The service's engine settings (parameters never logged); no connection is made here."""
    return create_engine(url, hide_parameters=True) if url else None


def prepare_database(engine: Engine) -> None:
    """Creates and fills the table `db` reads; safe on an existing database (nothing is dropped)."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                          "(id integer PRIMARY KEY, title text NOT NULL, script_length integer NOT NULL)"))
        conn.execute(
            text(f"INSERT INTO {TABLE} (id, title, script_length) VALUES (:id, :title, :length) "  # noqa: S608
                 "ON CONFLICT (id) DO NOTHING"),
            [{"id": i, "title": f"Episode {i}", "length": 1000 + i} for i in range(1, ROWS + 1)],
        )


def add_routes(app: Flask, engine: Engine | None) -> None:
    def trivial() -> ResponseReturnValue:
        return jsonify(status="ok", service="episodes-api", items=3)

    def db() -> ResponseReturnValue:
        if engine is None:
            abort(503, "no database configured (BENCH_DATABASE_URL)")
        with engine.connect() as conn:
            row = conn.execute(_SELECT, {"id": 42}).one()
        return jsonify(id=row.id, title=row.title, script_length=row.script_length)

    app.add_url_rule("/trivial", "trivial", trivial)
    app.add_url_rule("/db", "db", db)
