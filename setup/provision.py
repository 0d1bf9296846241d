"""One-shot provisioning of Elasticsearch and Kibana for the app's logs; safe to run again and again.

1. Wait for Elasticsearch (bounded, with progress).
2. With security on and the native realm: set kibana_system's password, create the roles of
   elasticsearch/roles/*.json and their users (logstash_writer, grafana_reader) with the passwords from
   the environment. With ELASTICSEARCH_USERS=file the nodes' file realm has them already
   (extensions/elasticsearch-cluster/init.sh): nothing to do.
3. Where the ILM API exists: the lifecycle policy and the component template that attaches it.
4. The index template for app-logs-*.
5. Unless KIBANA_URL is empty: wait for Kibana's core services (Elasticsearch, saved objects), import
   kibana/saved-objects.ndjson (data view and saved searches), make the data view Kibana's default.

Every step is a PUT, or an import with overwrite: a second run changes nothing that the first one
made, and brings back what someone changed by hand. The script prints what it does, never a password,
and exits 1 with the reason when a step fails.

Environment (Python 3.11, the standard library and requests: it runs in the app's image):
  ELASTICSEARCH_URL        default http://elasticsearch:9200
  KIBANA_URL               empty: skip Kibana (the native sandbox has none)
  ELASTIC_PASSWORD         the superuser's; empty when Elasticsearch runs without security
  KIBANA_SYSTEM_PASSWORD, LOGSTASH_WRITER_PASSWORD, GRAFANA_ES_READER_PASSWORD
                           needed when security is on
  ELASTICSEARCH_USERS      native (default): users and roles made through the security API;
                           file: they come from the nodes' files, setup makes none
  SETUP_TIMEOUT_SECONDS    how long to wait for each of Elasticsearch and Kibana (default 300)

It reads its JSON files from the folders beside its own: ../elasticsearch and ../kibana (compose
mounts ./setup, ./elasticsearch and ./kibana side by side).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

STACK_DIR = Path(__file__).resolve().parent.parent
ELASTICSEARCH_DIR = STACK_DIR / "elasticsearch"
KIBANA_DIR = STACK_DIR / "kibana"

INDEX_TEMPLATE = "app-logs"
ILM_POLICY = "app-logs"
# Holds only index.lifecycle.name: the index template composes it where it exists.
LIFECYCLE_COMPONENT = "app-logs-lifecycle"
DATA_VIEW_ID = "app-logs"
# The Kibana services the import and the default data view need: GET /api/status's status.core.<name>.
# Not status.overall: it also sums up every plugin's level, and one plugin that stays degraded (Task
# Manager, for one) keeps it "degraded" for good while the APIs this script calls work.
KIBANA_CORE_SERVICES = ("elasticsearch", "savedObjects")
# Each user gets the role of the same name (elasticsearch/roles/<user>.json); value: its password's variable.
USERS = {"logstash_writer": "LOGSTASH_WRITER_PASSWORD", "grafana_reader": "GRAFANA_ES_READER_PASSWORD"}
KIBANA_SYSTEM_PASSWORD_VAR = "KIBANA_SYSTEM_PASSWORD"  # noqa: S105 - the name of a variable
# The native realm refuses shorter passwords.
MIN_PASSWORD_LENGTH = 6
USER_REALMS = ("native", "file")

REQUEST_TIMEOUT_SECONDS = 30
# Statuses worth another try within a step: the node is busy or a dependency is still starting.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
STEP_ATTEMPTS = 5
# What an Elasticsearch without the API answers (integ-test-zip has no x-pack and no ILM).
NO_SUCH_API = frozenset({400, 404, 405, 410})


class SetupError(Exception):
    """A step failed; the message says why and holds no secret."""


@dataclass(frozen=True)
class Settings:
    elasticsearch_url: str
    kibana_url: str
    elastic_password: str = field(repr=False)
    # The users' passwords by variable name, KIBANA_SYSTEM_PASSWORD included.
    passwords: Mapping[str, str] = field(repr=False)
    timeout_seconds: float = 300.0
    poll_seconds: float = 2.0
    users_realm: str = "native"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        raw_timeout = env.get("SETUP_TIMEOUT_SECONDS", "") or "300"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise SetupError(f"SETUP_TIMEOUT_SECONDS must be a number of seconds, not {raw_timeout!r}") from None
        names = (KIBANA_SYSTEM_PASSWORD_VAR, *USERS.values())
        realm = env.get("ELASTICSEARCH_USERS", "") or "native"
        if realm not in USER_REALMS:
            raise SetupError(f"ELASTICSEARCH_USERS must be one of {', '.join(USER_REALMS)}, not {realm!r}")
        return cls(
            elasticsearch_url=(env.get("ELASTICSEARCH_URL") or "http://elasticsearch:9200").rstrip("/"),
            kibana_url=env.get("KIBANA_URL", "").rstrip("/"),
            elastic_password=env.get("ELASTIC_PASSWORD", ""),
            passwords={name: env.get(name, "") for name in names},
            timeout_seconds=timeout,
            users_realm=realm,
        )

    def secrets(self) -> list[str]:
        return [value for value in (self.elastic_password, *self.passwords.values()) if value]


def log(message: str) -> None:
    print(f"[setup] {message}", flush=True)


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


class UnreachableError(Exception):
    """No HTTP answer at all: connection refused, DNS, timeout."""


class Http:
    """One service's base URL, credentials and error reporting."""

    def __init__(self, name: str, base_url: str, password: str, redact: Redactor,
                 headers: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self._redact = redact
        self._session = requests.Session()
        # The services are on the compose network (or loopback): a proxy from the environment would
        # only get in the way, and so would credentials from a ~/.netrc.
        self._session.trust_env = False
        if password:
            self._session.auth = ("elastic", password)
        self._session.headers.update(headers or {})

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self.base_url + path, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as exc:
            raise UnreachableError(self._redact(_reason(exc))) from None

    def describe(self, response: requests.Response) -> str:
        body = " ".join(response.text.split())[:400]
        return self._redact(f"HTTP {response.status_code}: {body}")

    def step(self, method: str, path: str, what: str, sleep: Callable[[float], None], poll: float,
             **kwargs: Any) -> Any:
        """One idempotent request, tried again while the answer is transient; its JSON answer."""
        for attempt in range(1, STEP_ATTEMPTS + 1):
            try:
                response = self.call(method, path, **kwargs)
            except UnreachableError as exc:
                problem = str(exc)
            else:
                if response.status_code == 401:
                    raise SetupError(f"{what}: {self.name} refused the credentials (HTTP 401)")
                if response.ok:
                    return _json_or_empty(response)
                problem = self.describe(response)
                if response.status_code not in TRANSIENT_STATUSES:
                    raise SetupError(f"{what}: {method} {path} failed: {problem}")
            if attempt < STEP_ATTEMPTS:
                log(f"{what}: {problem}; trying again ({attempt}/{STEP_ATTEMPTS})")
                sleep(poll)
        raise SetupError(f"{what}: {method} {path} still failing after {STEP_ATTEMPTS} attempts: {problem}")


def _reason(exc: requests.RequestException) -> str:
    """The useful end of a connection error ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {REQUEST_TIMEOUT_SECONDS} s"
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", str(exc))
    return f"{type(exc).__name__}: {errno.group().strip() if errno else str(exc)[:200]}"


def _json_or_empty(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _kibana_core_state(http_status: int, status: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether Kibana's core services are available, from the `status` of its GET /api/status answer.

    Kibana gives the whole status (overall, core, plugins) to a caller it authenticates. To anyone else,
    and to everyone while it boots (its preboot route), it gives only {"overall": {"level": ...}}: the
    core services' combined level, without saying which one is missing. This script sends credentials,
    so that answer means Kibana has not taken them yet: wait, and say so."""
    overall = status["overall"]
    core = status.get("core")
    if not isinstance(core, dict):
        return False, (f"HTTP {http_status}: only the overall level {overall.get('level')}, without status.core "
                       "(Kibana answers so while it boots, and to a caller it does not authenticate)")
    missing = []
    for name in KIBANA_CORE_SERVICES:
        service = core.get(name) if isinstance(core.get(name), dict) else {}
        level, summary = service.get("level", "not reported"), service.get("summary")
        if level != "available":
            missing.append(f"{name} {level}: {summary}" if summary else f"{name} {level}")
    if missing:
        return False, f"HTTP {http_status}: " + "; ".join(missing)
    state = " and ".join(KIBANA_CORE_SERVICES) + " available"
    if overall.get("level") != "available":
        state += f"; overall {overall.get('level')}: {overall.get('summary', '')}"
    return True, state


def _no_feature_info(response: requests.Response) -> bool:
    """The integ-test-zip has x-pack core without its feature plugins: GET /_xpack answers 500
    "failed to find action [cluster:monitor/xpack/info/monitoring]" there, which means no security."""
    return response.status_code == 500 and "failed to find action" in response.text


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Features:
    security: bool
    ilm: bool


class Provisioner:
    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = clock
        self.redact = Redactor(settings.secrets())
        self.es = Http("Elasticsearch", settings.elasticsearch_url, settings.elastic_password, self.redact)
        # Kibana refuses API writes without kbn-xsrf (its protection against cross-site requests).
        self.kibana = Http("Kibana", settings.kibana_url, settings.elastic_password, self.redact,
                           {"kbn-xsrf": "true"})

    def run(self) -> None:
        self.wait_for_elasticsearch()
        features = self.detect_features()
        if features.security and self.settings.users_realm == "file":
            log("security is on, users and roles from the nodes' file realm (ELASTICSEARCH_USERS=file): none to make")
        elif features.security:
            self.provision_security()
        else:
            log("security is off: no users, roles or passwords to set")
        if features.ilm:
            self.provision_lifecycle()
        else:
            log("no ILM API here: indices get no lifecycle policy and are kept until deleted")
        self.es_step("PUT", f"/_index_template/{INDEX_TEMPLATE}", f"index template {INDEX_TEMPLATE}",
                     json=load_json(ELASTICSEARCH_DIR / "index-template.json"))
        log(f"index template {INDEX_TEMPLATE} installed (app-logs-*)")
        if self.settings.kibana_url:
            self.wait_for_kibana()
            self.import_saved_objects()
        else:
            log("KIBANA_URL is empty: skipping Kibana")

    def es_step(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self.es.step(method, path, what, self.sleep, self.settings.poll_seconds, **kwargs)

    def kibana_step(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self.kibana.step(method, path, what, self.sleep, self.settings.poll_seconds, **kwargs)

    # --- waiting ----------------------------------------------------------------------------------

    def _wait(self, http: Http, ready: Callable[[], tuple[bool, str]]) -> None:
        started = self.clock()
        deadline = started + self.settings.timeout_seconds
        while True:
            is_ready, state = ready()
            if is_ready:
                log(f"{http.name} is ready at {http.base_url} ({state})")
                return
            now = self.clock()
            if now >= deadline:
                raise SetupError(f"{http.name} at {http.base_url} was not ready after "
                                 f"{self.settings.timeout_seconds:.0f} s; last answer: {state}")
            log(f"waiting for {http.name} at {http.base_url} "
                f"({now - started:.0f}/{self.settings.timeout_seconds:.0f} s): {state}")
            self.sleep(min(self.settings.poll_seconds, deadline - now))

    def _refused(self, http: Http) -> SetupError:
        if not self.settings.elastic_password:
            return SetupError(f"{http.name} asks for credentials (HTTP 401) but ELASTIC_PASSWORD is empty")
        return SetupError(
            f"{http.name} refused the elastic user's password (HTTP 401). Elasticsearch keeps the password "
            "it was first started with (in its data volume): ELASTIC_PASSWORD must still be that one")

    def wait_for_elasticsearch(self) -> None:
        def ready() -> tuple[bool, str]:
            try:
                response = self.es.call("GET", "/_cluster/health",
                                        params={"wait_for_status": "yellow", "timeout": "5s"})
            except UnreachableError as exc:
                return False, str(exc)
            if response.status_code == 401:
                raise self._refused(self.es)
            status = _json_or_empty(response).get("status") if response.ok else None
            if status in ("green", "yellow"):
                return True, f"cluster status {status}"
            return False, self.es.describe(response)

        self._wait(self.es, ready)

    def wait_for_kibana(self) -> None:
        def ready() -> tuple[bool, str]:
            try:
                response = self.kibana.call("GET", "/api/status")
            except UnreachableError as exc:
                return False, str(exc)
            if response.status_code == 401:
                raise self._refused(self.kibana)
            body = _json_or_empty(response)
            status = body.get("status") if isinstance(body, dict) else None
            if not isinstance(status, dict) or not isinstance(status.get("overall"), dict):
                return False, self.kibana.describe(response)
            return _kibana_core_state(response.status_code, status)

        self._wait(self.kibana, ready)

    # --- Elasticsearch ------------------------------------------------------------------------------

    def detect_features(self) -> Features:
        try:
            xpack = self.es.call("GET", "/_xpack", params={"categories": "features"})
            ilm = self.es.call("GET", "/_ilm/status")
        except UnreachableError as exc:
            raise SetupError(f"Elasticsearch went away: {exc}") from None
        for response in (xpack, ilm):
            if not response.ok and response.status_code not in NO_SUCH_API and not _no_feature_info(response):
                raise SetupError(f"cannot tell which features Elasticsearch has: {self.es.describe(response)}")
        features = _json_or_empty(xpack).get("features", {}) if xpack.ok else {}
        found = Features(security=bool(features.get("security", {}).get("enabled")), ilm=ilm.ok)
        log(f"Elasticsearch features: security {'on' if found.security else 'off'}, "
            f"ILM {'available' if found.ilm else 'absent'}")
        return found

    def provision_security(self) -> None:
        passwords = self.settings.passwords
        missing = [name for name, value in passwords.items() if not value]
        if missing:
            raise SetupError(f"security is on, so these variables must be set: {', '.join(missing)}")
        short = [name for name, value in passwords.items() if len(value) < MIN_PASSWORD_LENGTH]
        if short:
            raise SetupError(f"passwords shorter than {MIN_PASSWORD_LENGTH} characters: {', '.join(short)}")
        roles = {path.stem: path for path in sorted((ELASTICSEARCH_DIR / "roles").glob("*.json"))}
        for user in USERS:
            if user not in roles:
                raise SetupError(f"no role file for user {user}: expected {ELASTICSEARCH_DIR / 'roles' / user}.json")

        self.es_step("POST", "/_security/user/kibana_system/_password", "kibana_system's password",
                     json={"password": passwords[KIBANA_SYSTEM_PASSWORD_VAR]})
        log("kibana_system: password set")
        for name, path in roles.items():
            self.es_step("PUT", f"/_security/role/{name}", f"role {name}", json=load_json(path))
            log(f"role {name}: {path.name}")
        for user, variable in USERS.items():
            self.es_step("PUT", f"/_security/user/{user}", f"user {user}", json={
                "password": passwords[variable],
                "roles": [user],
                "full_name": f"{user} (setup/provision.py)",
                "metadata": {"managed_by": "setup/provision.py"},
            })
            log(f"user {user}: role {user}, password from {variable}")

    def provision_lifecycle(self) -> None:
        self.es_step("PUT", f"/_ilm/policy/{ILM_POLICY}", f"ILM policy {ILM_POLICY}",
                     json=load_json(ELASTICSEARCH_DIR / "ilm-policy.json"))
        self.es_step("PUT", f"/_component_template/{LIFECYCLE_COMPONENT}", f"component template {LIFECYCLE_COMPONENT}",
                     json=load_json(ELASTICSEARCH_DIR / "lifecycle-component-template.json"))
        log(f"ILM policy {ILM_POLICY} installed and attached through {LIFECYCLE_COMPONENT}")

    # --- Kibana -------------------------------------------------------------------------------------

    def import_saved_objects(self) -> None:
        path = KIBANA_DIR / "saved-objects.ndjson"
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SetupError(f"cannot read {path}: {exc}") from None
        # Kibana takes the file only under a name ending in .ndjson.
        result = self.kibana_step("POST", "/api/saved_objects/_import", "saved objects import",
                                  params={"overwrite": "true"},
                                  files={"file": (path.name, content, "application/ndjson")})
        if result.get("success") is not True:
            errors = "; ".join(f"{e.get('type')}/{e.get('id')}: {(e.get('error') or {}).get('type')}"
                               for e in result.get("errors", [])) or "no details"
            raise SetupError(self.redact(f"Kibana did not import {path.name}: {errors}"))
        log(f"Kibana: {result.get('successCount', 0)} saved objects imported from {path.name}")
        self.kibana_step("POST", "/api/data_views/default", "default data view",
                         json={"data_view_id": DATA_VIEW_ID, "force": True})
        log(f"Kibana: default data view is {DATA_VIEW_ID}")


def main(env: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    env = os.environ if env is None else env
    try:
        settings = Settings.from_env(env)
        Provisioner(settings, sleep=sleep).run()
    except SetupError as exc:
        print(f"[setup] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
