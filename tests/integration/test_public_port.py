"""The app's public port under gunicorn, on PostgreSQL and Redis, spoken to over raw sockets: what it
exposes without the admin token, and what it answers to malformed, oversized and fuzzed requests.

Every answer must be a 4xx (or the route's success), never a 5xx or a dropped connection; no
response header may carry bytes the client sent (beyond a well-formed X-Request-ID, echoed on
purpose); the server keeps answering and every line it writes stays one JSON object."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.net import free_port
from tests.integration.conftest import ADMIN_TOKEN, ServerProcess, start_process, wait_until

pytestmark = pytest.mark.integration
MAX_BODY_BYTES = 1_048_576  # the service's default MAX_BODY_BYTES
SECRET_QUERY = "token=sekrit-request-line-0123456789"


@dataclass
class RawResponse:
    status: int | None
    header_lines: list[bytes]
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.header_lines:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Sends bytes as they are and reads until the server closes (requests say Connection: close)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before taking everything: read what it said
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # closed with our bytes unread: what it answered before is in chunks
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() else None
    return RawResponse(status, lines[1:], body)


def request_bytes(target: bytes = b"/api/episodes", method: bytes = b"GET", headers: list[bytes] = (),
                  body: bytes = b"") -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def app_port(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("public-port")
    port, metrics_port = free_port(), free_port()
    env = {**service_env, "APP_BIND": f"127.0.0.1:{port}", "METRICS_PORT": str(metrics_port),
           "WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
    server = ServerProcess(start_process([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                         env, workdir / "gunicorn.log"), workdir / "gunicorn.log", metrics_port, port)
    try:
        wait_until(lambda: _answers(port), what="gunicorn answering")
        yield server
    finally:
        server.stop()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def _assert_still_healthy(server: ServerProcess) -> None:
    assert _answers(server.port)
    records = server.records()  # every line one JSON object, or this fails
    assert [r for r in records if r.get("event") == "unhandled_exception"] == []


# --- exposure -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/admin/metrics", "/-/metrics"])
def test_metrics_are_not_served_on_the_public_port(app_port, path) -> None:
    response = requests.get(f"http://127.0.0.1:{app_port.port}{path}", timeout=5)
    assert response.status_code == 404
    assert "http_requests_total" not in response.text


@pytest.mark.parametrize(("method", "path"), [("GET", "/admin/chaos"), ("PUT", "/admin/chaos"),
                                              ("GET", "/admin/errors")])
@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN[:-1]}",
    f"Bearer {'x' * len(ADMIN_TOKEN)}", f"Bearer {ADMIN_TOKEN[:-1]}{chr(ord(ADMIN_TOKEN[-1]) ^ 1)}",
    f"Bearer {ADMIN_TOKEN}x",
], ids=["none", "empty", "scheme-only", "empty-token", "basic", "one-short", "right-length-wrong",
        "last-byte-wrong", "one-long"])
def test_admin_endpoints_refuse_anything_but_the_token(app_port, method, path, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.request(method, f"http://127.0.0.1:{app_port.port}{path}", headers=headers,
                                json={"error_rate": 1.0}, timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert set(response.json()) == {"error", "request_id"}  # nothing of the admin data


def test_the_token_opens_the_admin_endpoints(app_port) -> None:
    response = requests.get(f"http://127.0.0.1:{app_port.port}/admin/chaos",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    assert response.status_code == 200


# --- malformed and oversized requests ------------------------------------------------------------

HUGE = b"x" * (MAX_BODY_BYTES + 1)
DEEP = b"[" * 100_000 + b"]" * 100_000

MALFORMED = [
    # (what, request bytes, expected status)
    ("request line over 4,094 bytes", request_bytes(b"/api/episodes?" + b"q" * 5000), 414),
    ("a header field over 8,190 bytes", request_bytes(headers=[b"X-Big: " + b"x" * 9000]), 431),
    ("101 header fields", request_bytes(headers=[b"X-H%d: 1" % i for i in range(101)]), 431),
    ("a NUL in a header value", request_bytes(headers=[b"X-User-ID: al\x00ice"]), 400),
    ("a bare LF inside a header value", request_bytes(headers=[b"X-Request-ID: abcdefgh\nSet-Cookie: x=1"]), 400),
    ("a bare CR inside a header value", request_bytes(headers=[b"X-Request-ID: abcdefgh\rSet-Cookie: x=1"]), 400),
    ("an obsolete folded header line", request_bytes(headers=[b"X-User-ID: alice", b" folded"]), 400),
    ("a space before the colon", request_bytes(headers=[b"X-User-ID : alice"]), 400),
    ("a header without a colon", request_bytes(headers=[b"garbage"]), 400),
    ("Content-Length not a number", request_bytes(b"/api/episodes", b"POST", [b"Content-Length: abc"]), 400),
    ("Content-Length negative", request_bytes(b"/api/episodes", b"POST", [b"Content-Length: -1"]), 400),
    ("two different Content-Lengths", request_bytes(b"/api/episodes", b"POST",
                                                    [b"Content-Length: 2", b"Content-Length: 3"], b""), 400),
    ("Content-Length and Transfer-Encoding together (smuggling)",
     request_bytes(b"/api/episodes", b"POST", [b"Content-Length: 4", b"Transfer-Encoding: chunked"]) + b"0\r\n\r\n",
     400),
    ("a transfer coding other than chunked", request_bytes(b"/api/episodes", b"POST", [b"Transfer-Encoding: gzip"]),
     400),
    ("a small chunked JSON body", request_bytes(b"/api/episodes", b"POST", [
        b"Content-Type: application/json", b"Transfer-Encoding: chunked"])
     + b'1a\r\n{"title":"t","script":"s"}\r\n0\r\n\r\n', 201),
    ("a request line of two words", b"GET /api/episodes\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    ("HTTP/9.9", b"GET /api/episodes HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    ("a lower-case method", request_bytes(method=b"get"), 400),
    ("an unknown method", request_bytes(method=b"BREW"), 405),
    ("a CR/LF-encoded header in the path", request_bytes(b"/api/episodes/1%0d%0aSet-Cookie:%20x=1"), 404),
    ("a secret in a malformed request line", b"GET /x?" + SECRET_QUERY.encode() + b"\r\nConnection: close\r\n\r\n",
     400),
    ("a body over MAX_BODY_BYTES", request_bytes(b"/api/episodes", b"POST", [b"Content-Type: application/json"],
                                                 HUGE), 413),
    ("10 GB declared, 10 bytes sent", request_bytes(b"/api/episodes", b"POST", [
        b"Content-Type: application/json", b"Content-Length: 10000000000"]) + b'{"title":', 413),
    ("a chunked body over MAX_BODY_BYTES", request_bytes(b"/api/episodes", b"POST", [
        b"Content-Type: application/json", b"Transfer-Encoding: chunked"])
     + b"%x\r\n" % len(HUGE) + HUGE + b"\r\n0\r\n\r\n", 413),
    ("JSON nested 100,000 deep", request_bytes(b"/api/episodes", b"POST", [b"Content-Type: application/json"],
                                               DEEP), 400),
    ("a NUL in a title (PostgreSQL refuses NUL in text)", request_bytes(
        b"/api/episodes", b"POST", [b"Content-Type: application/json"], b'{"title": "a\\u0000b", "script": "x"}'),
     400),
    ("invalid UTF-8 in a JSON body", request_bytes(b"/api/episodes", b"POST", [b"Content-Type: application/json"],
                                                   b'{"title": "\xff\xfe", "script": "x"}'), 400),
]


@pytest.mark.parametrize(("what", "data", "status"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_and_oversized_requests_get_a_4xx(app_port, what, data, status) -> None:
    response = raw_request(app_port.port, data)
    assert response.status == status, (response.status, response.body[:300])
    for line in response.header_lines:
        assert b"Set-Cookie" not in line and b"sekrit" not in line
    assert b"sekrit" not in response.body or response.header("Content-Type") == "text/html"


def test_the_server_survived_and_logged_no_secret_from_a_bad_request_line(app_port) -> None:
    _assert_still_healthy(app_port)
    text = app_port.log_path.read_text()
    assert "sekrit" not in text


# --- fuzzed headers -------------------------------------------------------------------------------

header_names = st.one_of(
    st.sampled_from([b"X-Request-ID", b"X-User-ID", b"Authorization", b"Cookie", b"Content-Type", b"Host",
                     b"X-Forwarded-For", b"Transfer-Encoding", b"Content-Length", b"Expect", b"traceparent"]),
    st.binary(min_size=1, max_size=40),
)
header_values = st.one_of(st.binary(max_size=300), st.text(max_size=100).map(lambda t: t.encode("utf-8")))


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=4),
       target=st.sampled_from([b"/api/episodes", b"/api/episodes/1", b"/healthz", b"/admin/chaos", b"/nope"]))
def test_fuzzed_header_fields_never_get_a_5xx_or_reach_a_response_header(app_port, headers, target) -> None:
    fields = [name + b": " + value for name, value in headers]
    response = raw_request(app_port.port, request_bytes(target, headers=fields))
    assert response.status is not None, "the server dropped the connection without an answer"
    # RFC 9112 6.1: a transfer coding the server does not implement is answered 501.
    unsupported_coding = response.status == 501 and any(n.lower() == b"transfer-encoding" for n, _ in headers)
    assert 200 <= response.status < 500 or unsupported_coding, (response.status, response.body[:200])
    sent = [value for _, value in headers if len(value.strip()) >= 6]
    for line in response.header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() in {b"x-request-id", b"date", b"content-length", b"x-response-time"}:
            continue  # computed by the server (the request id only when it is well formed)
        leaked = [v for v in sent if v.strip() in value]
        assert not leaked, f"response header {line!r} carries client bytes"
    request_id = response.header("X-Request-ID")
    if request_id is not None:
        assert request_id.isascii() and " " not in request_id and len(request_id) <= 128


def test_the_server_survived_the_fuzzing(app_port) -> None:
    _assert_still_healthy(app_port)
