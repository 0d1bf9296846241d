"""The sample service as gunicorn runs it, plus three routes that put a secret where only a bug or a
careless caller would: an exception message, a failing statement's bound value, a slow statement's
bound value. For tests/integration/test_secrets.py: `gunicorn ... tests.integration.planted_secrets_app:app`."""

from __future__ import annotations

import os
from typing import Any

from flask import jsonify
from sqlalchemy import text

from service import create_app

app = create_app()
_SECRETS = {name: os.environ[f"PLANTED_{name.upper()}"] for name in ("exception", "sql_error", "slow_sql")}


@app.get("/planted/exception")
def exception_with_a_password() -> Any:
    raise RuntimeError(f"login failed for alice: password={_SECRETS['exception']} rejected")


@app.get("/planted/sql-error")
def failing_statement_with_a_password() -> Any:
    # PostgreSQL answers: invalid input syntax for type integer: "<the bound value>"
    with app.extensions["service"].engine.connect() as connection:
        connection.execute(text("SELECT CAST(:password AS integer)"), {"password": _SECRETS["sql_error"]})
    return jsonify({"unexpected": "the statement succeeded"})


@app.get("/planted/slow-sql")
def slow_statement_with_a_password() -> Any:
    with app.extensions["service"].engine.connect() as connection:
        connection.execute(text("SELECT pg_sleep(0.05), CAST(:password AS text)"), {"password": _SECRETS["slow_sql"]})
    return jsonify({"ok": True})
