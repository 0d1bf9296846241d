"""A local stand-in for a Slack-compatible incoming webhook, so alerts work offline.

POST any path: the JSON body is recorded and answered with the next scripted status (200 when
nothing is scripted). GET /messages lists what was received, with every attempt (time, path, status,
text); DELETE /messages forgets it all. POST /_script with `[{"status": 500}, {"status": 429,
"retry_after": 1}]` scripts the next answers, for fault tests; an answer with `"match": "..."` is
kept for the next post whose body contains that text, so the app's notifications can be failed
while Alertmanager's, posted to the same sink, go through; `"trickle_s": N` sends that answer's
body one byte a second for N seconds (each read gets a byte within any client timeout, the whole
answer takes N seconds), and the post is not kept as a message. Run: `python -m sandbox.webhook_sink
--port 9099` (binds 127.0.0.1; the control endpoints have no authentication: loopback only).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MAX_BODY = 1_048_576
_MAX_KEPT = 10_000
_TEXT_KEPT = 200  # characters of each attempt's text in the attempt log


class SinkState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: deque[dict[str, Any]] = deque(maxlen=_MAX_KEPT)
        self.script: deque[dict[str, Any]] = deque()
        self.attempts = 0
        self.attempt_log: deque[dict[str, Any]] = deque(maxlen=_MAX_KEPT)

    def next_answer(self, raw: str) -> dict[str, Any]:
        """The first scripted answer meant for this body (removed from the script), else 200."""
        for scripted in self.script:
            if scripted.get("match", "") in raw:
                self.script.remove(scripted)
                return scripted
        return {"status": 200}


class _Handler(BaseHTTPRequestHandler):
    server: WebhookSink

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the sandbox read /messages instead

    def _body(self) -> tuple[Any, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(length).decode(errors="replace")
        return (json.loads(raw) if raw else None), raw

    def _answer(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload if payload is not None else {"ok": status < 400}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.rstrip("/") == "/messages":
            with state.lock:
                self._answer(200, {"messages": list(state.messages), "attempts": state.attempts,
                                   "attempt_log": list(state.attempt_log)})
        elif self.path == "/healthz":
            self._answer(200)
        else:
            self._answer(404)

    def do_DELETE(self) -> None:
        with self.server.state.lock:
            self.server.state.messages.clear()
            self.server.state.script.clear()
            self.server.state.attempts = 0
            self.server.state.attempt_log.clear()
        self._answer(200)

    def do_POST(self) -> None:
        state = self.server.state
        try:
            body, raw = self._body()
        except ValueError:
            self._answer(400, {"ok": False, "error": "invalid JSON or body too large"})
            return
        if self.path == "/_script":
            with state.lock:
                state.script.extend(body or [])
            self._answer(200)
            return
        with state.lock:
            state.attempts += 1
            scripted = state.next_answer(raw)
            text = body.get("text", "") if isinstance(body, dict) else ""
            state.attempt_log.append({"at": time.time(), "path": self.path, "status": scripted["status"],
                                      "text": str(text)[:_TEXT_KEPT]})
            if scripted["status"] < 300 and "trickle_s" not in scripted:
                state.messages.append({"path": self.path, "body": body})
        if "trickle_s" in scripted:
            self._trickle(scripted["status"], int(scripted["trickle_s"]))
            return
        headers = {"Retry-After": str(scripted["retry_after"])} if "retry_after" in scripted else None
        self._answer(scripted["status"], headers=headers)

    def _trickle(self, status: int, seconds: int) -> None:
        length = max(1, seconds)  # one byte a second
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        for _ in range(length):
            time.sleep(1)
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:  # the client gave up
                return


class WebhookSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.state = SinkState()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> WebhookSink:
        threading.Thread(target=self.serve_forever, name="webhook-sink", daemon=True).start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    args = parser.parse_args()
    WebhookSink(args.host, args.port).serve_forever()


if __name__ == "__main__":
    main()
