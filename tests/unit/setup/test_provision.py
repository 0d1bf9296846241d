"""setup/provision.py against real local HTTP servers that answer like Elasticsearch and Kibana.

Neither Elasticsearch (with security, ILM) nor Kibana can run on this machine, so these servers are
small fakes: they answer each API the script uses with the status and body shape the real one
documents, check its credentials, and record every request. The script is exercised for real: its
HTTP client, its waiting, its exit code and its output. The real engines are the e2e tests' job.

Kibana's GET /api/status answers are the files in kibana_status/, built from Kibana 9's source (not
captured from a running Kibana): the route and its two body shapes in
src/core/packages/status/server-internal/src/routes/status.ts and status_response_schemas.ts, the
summaries in get_summary_status.ts and in the Elasticsearch and saved-objects services' status.ts.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandbox.net import free_port
from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "setup" / "provision.py"
PASSWORDS = {
    "ELASTIC_PASSWORD": "elastic-Secret-0001",
    "KIBANA_SYSTEM_PASSWORD": "kibana-Secret-0002",
    "LOGSTASH_WRITER_PASSWORD": "writer-Secret-0003",
    "GRAFANA_ES_READER_PASSWORD": "reader-Secret-0004",
}
NO_HANDLER = (400, {"error": "no handler found for uri and method", "status": 400})
# What the integ-test-zip (x-pack core without its feature plugins) really answers to GET /_xpack,
# as seen from Elasticsearch 9.5.4 in the native sandbox.
NO_FEATURE_INFO = (500, {"error": {"type": "illegal_state_exception",
                                   "reason": "failed to find action [cluster:monitor/xpack/info/monitoring]"},
                         "status": 500})
KIBANA_STATUS = Path(__file__).resolve().parent / "kibana_status"


def kibana_status(name: str) -> Any:
    """One of Kibana's GET /api/status bodies (kibana_status/<name>.json)."""
    return json.loads((KIBANA_STATUS / f"{name}.json").read_text())


provision = load_script(SCRIPT, "setup_provision")


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeServer:
    """An HTTP server whose answers are set per (method, path); a list is answered in order, its last
    entry for ever after. Unlisted requests get 404."""

    password: str = ""
    answers: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, url.path, url.query, dict(self.headers.items()),
                                  self.rfile.read(length))
                fake.requests.append(request)
                status, body = fake.answer(request)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = handle_one  # noqa: N815 - http.server's naming

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: Request) -> tuple[int, Any]:
        if self.password:
            expected = "Basic " + base64.b64encode(f"elastic:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return 401, {"error": {"type": "security_exception"}, "status": 401}
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return 404, {"error": f"no fake for {request.method} {request.path}"}
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def set(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self.answers[(method, path)] = list(answers)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def find(self, method: str, path: str) -> Request:
        [found] = [r for r in self.requests if (r.method, r.path) == (method, path)]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ACK = (200, {"acknowledged": True})


def elasticsearch(security: bool = True, ilm: bool = True) -> FakeServer:
    server = FakeServer(password=PASSWORDS["ELASTIC_PASSWORD"] if security else "")
    server.set("GET", "/_cluster/health", (200, {"cluster_name": "sandbox", "status": "green"}))
    if security or ilm:
        # The default distribution: x-pack present, security as configured.
        server.set("GET", "/_xpack", (200, {"features": {"security": {"available": True, "enabled": security}}}))
    else:
        server.set("GET", "/_xpack", NO_FEATURE_INFO)
    server.set("GET", "/_ilm/status", (200, {"operation_mode": "RUNNING"}) if ilm else NO_HANDLER)
    server.set("POST", "/_security/user/kibana_system/_password", (200, {}))
    for role in ("logstash_writer", "grafana_reader"):
        server.set("PUT", f"/_security/role/{role}", (200, {"role": {"created": True}}))
        server.set("PUT", f"/_security/user/{role}", (200, {"created": True}))
    server.set("PUT", "/_ilm/policy/app-logs", ACK)
    server.set("PUT", "/_component_template/app-logs-lifecycle", ACK)
    server.set("PUT", "/_index_template/app-logs", ACK)
    return server


def kibana() -> FakeServer:
    server = FakeServer(password=PASSWORDS["ELASTIC_PASSWORD"])
    server.set("GET", "/api/status", (200, kibana_status("available")))
    server.set("POST", "/api/saved_objects/_import", (200, {"success": True, "successCount": 4}))
    server.set("POST", "/api/data_views/default", ACK)
    return server


@pytest.fixture
def es() -> Iterator[FakeServer]:
    server = elasticsearch()
    yield server
    server.close()


@pytest.fixture
def kb() -> Iterator[FakeServer]:
    server = kibana()
    yield server
    server.close()


def environment(es_url: str, kibana_url: str = "", **overrides: str) -> dict[str, str]:
    env = {"ELASTICSEARCH_URL": es_url, "KIBANA_URL": kibana_url, "SETUP_TIMEOUT_SECONDS": "5", **PASSWORDS}
    env.update(overrides)
    return env


def run(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = provision.main(env, sleep=lambda _seconds: None)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_no_secret(output: str) -> None:
    for value in PASSWORDS.values():
        assert value not in output


FULL_RUN = [
    ("GET", "/_cluster/health"), ("GET", "/_xpack"), ("GET", "/_ilm/status"),
    ("POST", "/_security/user/kibana_system/_password"),
    ("PUT", "/_security/role/grafana_reader"), ("PUT", "/_security/role/logstash_writer"),
    ("PUT", "/_security/user/logstash_writer"), ("PUT", "/_security/user/grafana_reader"),
    ("PUT", "/_ilm/policy/app-logs"), ("PUT", "/_component_template/app-logs-lifecycle"),
    ("PUT", "/_index_template/app-logs"),
]


def test_a_full_run_provisions_everything_from_the_files(es: FakeServer, kb: FakeServer,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(environment(es.url, kb.url), capsys)
    assert code == 0, output
    assert es.calls() == FULL_RUN
    assert kb.calls() == [("GET", "/api/status"), ("POST", "/api/saved_objects/_import"),
                          ("POST", "/api/data_views/default")]

    assert es.find("POST", "/_security/user/kibana_system/_password").json() == {
        "password": PASSWORDS["KIBANA_SYSTEM_PASSWORD"]}
    for role in ("logstash_writer", "grafana_reader"):
        role_file = json.loads((REPO / "elasticsearch" / "roles" / f"{role}.json").read_text())
        assert es.find("PUT", f"/_security/role/{role}").json() == role_file
        assert es.find("PUT", f"/_security/user/{role}").json()["roles"] == [role]
    for user, variable in provision.USERS.items():
        assert es.find("PUT", f"/_security/user/{user}").json()["password"] == PASSWORDS[variable]
    for path, name in (("/_ilm/policy/app-logs", "ilm-policy.json"),
                       ("/_component_template/app-logs-lifecycle", "lifecycle-component-template.json"),
                       ("/_index_template/app-logs", "index-template.json")):
        assert es.find("PUT", path).json() == json.loads((REPO / "elasticsearch" / name).read_text())

    upload = kb.find("POST", "/api/saved_objects/_import")
    assert upload.query == "overwrite=true"
    assert upload.headers["kbn-xsrf"] == "true"
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="saved-objects.ndjson"' in upload.body
    assert (REPO / "kibana" / "saved-objects.ndjson").read_bytes() in upload.body
    assert kb.find("POST", "/api/data_views/default").json() == {"data_view_id": "app-logs", "force": True}
    assert_no_secret(output)
    assert "[setup] done" in output


def test_a_second_run_makes_the_same_requests(es: FakeServer, kb: FakeServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(environment(es.url, kb.url), capsys)[0] == 0
    first = [(r.method, r.path, r.body) for r in es.requests]
    es.requests.clear()
    assert run(environment(es.url, kb.url), capsys)[0] == 0
    assert [(r.method, r.path, r.body) for r in es.requests] == first
    assert all(method in ("GET", "PUT") or path.endswith("/_password") for method, path, _ in first)


def test_without_security_ilm_or_kibana_only_the_template_is_installed(capsys: pytest.CaptureFixture[str]) -> None:
    # Elasticsearch's integ-test-zip, as the native sandbox runs it: no x-pack, no ILM, no Kibana.
    server = elasticsearch(security=False, ilm=False)
    try:
        code, output = run(environment(server.url, ELASTIC_PASSWORD=""), capsys)
        assert code == 0, output
        assert server.calls() == [("GET", "/_cluster/health"), ("GET", "/_xpack"), ("GET", "/_ilm/status"),
                                  ("PUT", "/_index_template/app-logs")]
        assert all("Authorization" not in r.headers for r in server.requests)
        assert "security is off" in output and "no ILM API" in output and "skipping Kibana" in output
    finally:
        server.close()


def test_security_off_with_ilm_skips_only_the_users(capsys: pytest.CaptureFixture[str]) -> None:
    server = elasticsearch(security=False, ilm=True)
    try:
        code, output = run(environment(server.url, ELASTIC_PASSWORD=""), capsys)
        assert code == 0, output
        assert [call for call in server.calls() if "_security" in call[1]] == []
        assert ("PUT", "/_component_template/app-logs-lifecycle") in server.calls()
    finally:
        server.close()


def test_it_waits_for_elasticsearch_with_progress(es: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    es.set("GET", "/_cluster/health", (503, {"error": "master_not_discovered_exception"}),
           (408, {"status": "red", "timed_out": True}), (200, {"status": "yellow"}))
    code, output = run(environment(es.url), capsys)
    assert code == 0, output
    assert output.count("waiting for Elasticsearch") == 2
    assert "HTTP 503" in output and "cluster status yellow" in output


def test_it_gives_up_on_an_elasticsearch_that_never_answers(capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # free: nothing listens there
    clock = iter(range(0, 1000, 2))
    settings = provision.Settings.from_env(environment(closed, SETUP_TIMEOUT_SECONDS="10"))
    provisioner = provision.Provisioner(settings, sleep=lambda _seconds: None, clock=lambda: next(clock))
    refused = r"ConnectionError: \[Errno 111\] Connection refused"
    with pytest.raises(provision.SetupError, match=rf"was not ready after 10 s; last answer: {refused}$"):
        provisioner.run()
    output = capsys.readouterr().out
    # Checked at 0, 2, 4, 6 and 8 s; at 10 s the time is up.
    assert output.count("waiting for Elasticsearch") == 4
    assert "(8/10 s): ConnectionError: [Errno 111] Connection refused\n" in output


def test_a_wrong_elastic_password_fails_at_once_and_says_why(es: FakeServer,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(environment(es.url, ELASTIC_PASSWORD="not-the-one-it-has"), capsys)
    assert code == 1
    assert "refused the elastic user's password (HTTP 401)" in output
    assert "not-the-one-it-has" not in output
    assert es.calls() == [("GET", "/_cluster/health")]


def test_missing_passwords_fail_before_any_change(es: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(environment(es.url, LOGSTASH_WRITER_PASSWORD="", GRAFANA_ES_READER_PASSWORD=""), capsys)
    assert code == 1
    assert "LOGSTASH_WRITER_PASSWORD, GRAFANA_ES_READER_PASSWORD" in output
    assert [method for method, _ in es.calls()] == ["GET", "GET", "GET"]


def test_a_refused_step_fails_with_the_answer_but_no_secret(es: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    # An error body quoting the request, as a careless proxy might.
    es.set("PUT", "/_security/user/logstash_writer",
           (400, {"error": f"bad request: {{\"password\": \"{PASSWORDS['LOGSTASH_WRITER_PASSWORD']}\"}}"}))
    code, output = run(environment(es.url), capsys)
    assert code == 1
    assert "user logstash_writer: PUT /_security/user/logstash_writer failed: HTTP 400" in output
    assert "[REDACTED]" in output
    assert_no_secret(output)
    assert ("PUT", "/_index_template/app-logs") not in es.calls()


def test_transient_answers_are_tried_again(es: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    es.set("PUT", "/_index_template/app-logs", (503, {"error": "unavailable_shards_exception"}), ACK)
    code, output = run(environment(es.url), capsys)
    assert code == 0, output
    assert es.calls().count(("PUT", "/_index_template/app-logs")) == 2


def test_it_waits_for_kibana_and_fails_on_a_partial_import(es: FakeServer, kb: FakeServer,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    kb.set("GET", "/api/status", (503, {"message": "Kibana server is not ready yet"}),
           (503, kibana_status("saved_objects_migrating")), (200, kibana_status("available")))
    kb.set("POST", "/api/saved_objects/_import", (200, {
        "success": False, "successCount": 3,
        "errors": [{"id": "app-logs-errors", "type": "search", "error": {"type": "missing_references"}}]}))
    code, output = run(environment(es.url, kb.url), capsys)
    assert code == 1
    assert output.count("waiting for Kibana") == 2
    assert "savedObjects unavailable: SavedObjects service is running migrations" in output
    assert "search/app-logs-errors: missing_references" in output
    assert ("POST", "/api/data_views/default") not in kb.calls()


@pytest.mark.parametrize(("body", "http_status", "is_ready", "said"), [
    # Kibana 9 answers 503 exactly when a core service is unavailable (status.ts), whatever the plugins.
    ("available", 200, True, "elasticsearch and savedObjects available"),
    # A plugin that stays degraded (taskManager here) keeps the overall level degraded for good; the
    # import and the data view need only Elasticsearch and the saved-objects service.
    ("plugin_degraded", 200, True,
     "elasticsearch and savedObjects available; overall degraded: 0 service(s) and 1 plugin(s) are degraded: "
     "taskManager"),
    ("saved_objects_migrating", 503, False, "savedObjects unavailable: SavedObjects service is running migrations"),
    ("elasticsearch_unavailable", 503, False,
     "elasticsearch unavailable: Waiting for Elasticsearch; savedObjects unavailable: SavedObjects service is not "
     "available without a healthy Elasticearch connection"),
    # The redacted body: what Kibana gives a caller it does not authenticate (status.allowAnonymous is
    # false), its level that of the core services alone; and the preboot route's answer, to everyone.
    ("redacted", 200, False, "only the overall level available, without status.core"),
    ("preboot", 503, False, "only the overall level unavailable, without status.core"),
])
def test_kibana_is_ready_when_its_core_services_are_available(kb: FakeServer, body: str, http_status: int,
                                                              is_ready: bool, said: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    kb.set("GET", "/api/status", (http_status, kibana_status(body)))
    clock = iter(range(0, 1000, 2))
    settings = provision.Settings.from_env(environment("http://127.0.0.1:1", kb.url, SETUP_TIMEOUT_SECONDS="4"))
    provisioner = provision.Provisioner(settings, sleep=lambda _seconds: None, clock=lambda: next(clock))
    if is_ready:
        provisioner.wait_for_kibana()
        assert f"Kibana is ready at {kb.url} ({said})" in capsys.readouterr().out
    else:
        with pytest.raises(provision.SetupError, match=re.escape(f"last answer: HTTP {http_status}: {said}")):
            provisioner.wait_for_kibana()
        assert f"waiting for Kibana at {kb.url} (2/4 s): HTTP {http_status}: {said}" in capsys.readouterr().out


def test_the_script_runs_as_a_program_and_exits_non_zero_on_failure(es: FakeServer, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_PROXY")}
    env.update(environment(es.url, LOGSTASH_WRITER_PASSWORD=""))
    failed = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, check=False)
    assert failed.returncode == 1
    assert "[setup] FAILED: security is on, so these variables must be set: LOGSTASH_WRITER_PASSWORD" in failed.stderr
    env.update(environment(es.url))
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert "[setup] done" in done.stdout
    assert_no_secret(done.stdout + done.stderr)


def test_a_bad_timeout_is_reported() -> None:
    with pytest.raises(provision.SetupError, match="SETUP_TIMEOUT_SECONDS"):
        provision.Settings.from_env({"SETUP_TIMEOUT_SECONDS": "soon"})


def test_any_other_server_error_about_features_stops_the_setup(capsys: pytest.CaptureFixture[str]) -> None:
    server = elasticsearch(security=False, ilm=False)
    server.set("GET", "/_xpack", (500, {"error": {"type": "exception", "reason": "disk on fire"}, "status": 500}))
    try:
        code, output = run(environment(server.url, ELASTIC_PASSWORD=""), capsys)
        assert code != 0
        assert "cannot tell which features Elasticsearch has" in output
        assert ("PUT", "/_index_template/app-logs") not in server.calls()
    finally:
        server.close()
