"""The engine's connection settings, against sockets of the test's own (no database needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from service.db import CONNECT_TIMEOUT_SECONDS, make_engine


@pytest.mark.timeout(CONNECT_TIMEOUT_SECONDS + 20)  # without a connect timeout libpq waits for ever
def test_a_server_that_accepts_but_never_answers_fails_the_connection() -> None:
    # The kernel completes the handshake on a listening socket nobody accepts from: a hung server.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql+psycopg://app:unused@127.0.0.1:{port}/app")
        with pytest.raises(OperationalError, match="timeout"):
            engine.connect()
        engine.dispose()


def test_sqlite_gets_no_postgres_connect_arguments(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")  # sqlite3.connect() refuses unknown ones
    with engine.connect():
        pass
    engine.dispose()
