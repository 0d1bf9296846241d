"""The end-to-end tests' clients of the stack's APIs: what they resend, and what they do not."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.support.e2e_clients import reader_session, session


@contextmanager
def _server_dropping_second_request() -> Iterator[str]:
    """An HTTP/1.1 server on 127.0.0.1 that keeps connections alive and closes the one that carries
    the second request without answering, as a component that restarted in between would."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests_seen = 0

    def serve(connection: socket.socket) -> None:
        nonlocal requests_seen
        with connection:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    pending += chunk
                pending = pending.split(b"\r\n\r\n", 1)[1]
                requests_seen += 1
                if requests_seen == 2:
                    return
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        listener.close()


def test_a_request_lost_with_a_closed_kept_alive_connection_is_sent_again() -> None:
    with _server_dropping_second_request() as url:
        http = reader_session()
        assert [http.get(url, timeout=5).text for _ in range(2)] == ["ok", "ok"]


def test_requests_to_the_app_under_test_are_never_sent_again() -> None:
    with _server_dropping_second_request() as url:
        http = session()
        assert http.get(url, timeout=5).text == "ok"
        with pytest.raises(requests.ConnectionError):
            http.get(url, timeout=5)
