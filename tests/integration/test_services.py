"""The test servers from tests/support/services.py: reachable, usable, stoppable, restartable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.pool import NullPool

from tests.support.services import PostgresServer, RedisServer, provide_postgres, provide_redis

pytestmark = pytest.mark.integration


@contextmanager
def _engine(dsn: str) -> Iterator[sa.Engine]:
    # NullPool: no pooled connection may outlive a server stop and be reused after it.
    engine = sa.create_engine(dsn, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        yield engine
    finally:
        engine.dispose()


def _redis_client(url: str) -> redis.Redis:
    # No retries, so a stopped server shows at once instead of after redis-py's backoff.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0))


def _listening_addresses(port: int) -> set[str]:
    """The addresses this machine listens on at TCP ``port`` (IPv4 and IPv6, from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


# 127.0.0.1 as /proc/net/tcp writes it (little-endian hex), and ::1 or ::ffff:127.0.0.1 in tcp6.
LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.parametrize("server", ["postgres", "redis_server"])
def test_the_servers_listen_on_loopback_only(server: str, request: pytest.FixtureRequest) -> None:
    """Whichever provider runs them (testcontainers' published port, or the local binaries)."""
    port = request.getfixturevalue(server).port
    addresses = _listening_addresses(port)
    assert addresses, f"nothing listens on port {port}"
    assert addresses <= LOOPBACK_HEX, addresses


def _table_name() -> str:
    # The server is shared by the whole session: every test gets its own table.
    return f"t_{uuid.uuid4().hex[:12]}"


def _assert_postgres_refuses(dsn: str) -> None:
    with _engine(dsn) as engine, pytest.raises(sa.exc.OperationalError):
        engine.connect().close()


def test_postgres_sql_round_trip(postgres_dsn: str) -> None:
    table = _table_name()
    with _engine(postgres_dsn) as engine, engine.begin() as conn:
        assert conn.execute(sa.text("select 1")).scalar_one() == 1
        conn.execute(sa.text(f"create table {table} (id int primary key, name text not null)"))
        conn.execute(sa.text(f"insert into {table} values (1, 'one'), (2, 'two')"))
        rows = conn.execute(sa.text(f"select id, name from {table} order by id")).all()
        assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]
        assert conn.execute(sa.text("select current_user, current_database()")).one() == ("app", "app")


def test_redis_set_get(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    with _redis_client(redis_url) as client:
        assert client.set(key, "value")
        assert client.get(key) == b"value"


def test_postgres_stop_start_keeps_data_and_port(postgres: PostgresServer) -> None:
    table = _table_name()
    with _engine(postgres.dsn) as engine, engine.begin() as conn:
        conn.execute(sa.text(f"create table {table} (id int primary key)"))
        conn.execute(sa.text(f"insert into {table} values (42)"))

    postgres.stop()
    try:
        _assert_postgres_refuses(postgres.dsn)
    finally:
        postgres.start()  # the session's other tests need the server back in any case

    # The same DSN, so the same port, reaches the restarted server, with the row still there.
    with _engine(postgres.dsn) as engine, engine.connect() as conn:
        assert conn.execute(sa.text(f"select id from {table}")).scalars().all() == [42]


def test_redis_stop_start_same_port(redis_server: RedisServer) -> None:
    key = f"test:{uuid.uuid4().hex}"
    with _redis_client(redis_server.url) as client:
        client.set(key, "before restart")

    redis_server.stop()
    try:
        with _redis_client(redis_server.url) as client, pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        redis_server.start()

    with _redis_client(redis_server.url) as client:  # the same URL, so the same port
        assert client.ping()
        # No persistence: a restarted Redis is empty, as a real one without RDB/AOF would be.
        assert client.get(key) is None


@pytest.mark.usefixtures("postgres", "redis_server")  # skip or fail first as they do
def test_close_removes_servers(tmp_path: Path) -> None:
    pg = provide_postgres(tmp_path)
    try:
        _assert_postgres_connects(pg.dsn)
    finally:
        pg.close()
    _assert_postgres_refuses(pg.dsn)
    pg.close()  # a second close is harmless

    rs = provide_redis(tmp_path)
    try:
        with _redis_client(rs.url) as client:
            assert client.ping()
    finally:
        rs.close()
    with _redis_client(rs.url) as client, pytest.raises(redis.ConnectionError):
        client.ping()
    rs.close()

    # The local providers' files are gone (as root, PostgreSQL's live in the system temp dir).
    assert list(tmp_path.iterdir()) == []


def _assert_postgres_connects(dsn: str) -> None:
    with _engine(dsn) as engine, engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar_one() == 1
