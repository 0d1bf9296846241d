"""jaeger/config.yaml (memory) and jaeger/config-elasticsearch.yaml: the same collector, the agreed
ports, loopback unless told otherwise, and a storage backend each. (`jaeger validate --config FILE`
of Jaeger 2.13.0 accepts both; it needs the jaeger binary, which this test does not build.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CONFIGS = {"memory": REPO / "jaeger" / "config.yaml", "elasticsearch": REPO / "jaeger" / "config-elasticsearch.yaml"}
# Container ports agreed for the stack (README of the brief; docker-compose.yml publishes 16686, 4318).
PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "query_http": 16686, "health": 13133, "metrics": 8888}
_ENDPOINT = re.compile(r"^\$\{env:JAEGER_LISTEN_HOST:-127\.0\.0\.1\}:\$\{env:JAEGER_\w+_PORT:-(?P<port>\d+)\}$")
_PORT = re.compile(r"^\$\{env:JAEGER_\w+_PORT:-(?P<port>\d+)\}$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def endpoint_port(value: str) -> int:
    match = _ENDPOINT.match(value)
    assert match, f"{value!r}: listen on ${{env:JAEGER_LISTEN_HOST:-127.0.0.1}} and a port with a default"
    return int(match["port"])


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, load(CONFIGS[request.param])


def test_listeners_use_the_agreed_ports_on_loopback_by_default(config: tuple[str, dict[str, Any]]) -> None:
    _, cfg = config
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert endpoint_port(protocols["grpc"]["endpoint"]) == PORTS["otlp_grpc"]
    assert endpoint_port(protocols["http"]["endpoint"]) == PORTS["otlp_http"]
    assert endpoint_port(cfg["extensions"]["jaeger_query"]["http"]["endpoint"]) == PORTS["query_http"]
    assert endpoint_port(cfg["extensions"]["healthcheckv2"]["http"]["endpoint"]) == PORTS["health"]
    reader = cfg["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert reader["host"] == "${env:JAEGER_LISTEN_HOST:-127.0.0.1}"
    assert int(_PORT.match(reader["port"])["port"]) == PORTS["metrics"]


def test_the_pipeline_stores_what_the_query_reads(config: tuple[str, dict[str, Any]]) -> None:
    kind, cfg = config
    service = cfg["service"]
    assert set(service["extensions"]) == {"jaeger_storage", "jaeger_query", "healthcheckv2"}
    assert service["pipelines"]["traces"] == {"receivers": ["otlp"], "processors": ["batch"],
                                              "exporters": ["jaeger_storage_exporter"]}
    store = cfg["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert cfg["extensions"]["jaeger_query"]["storage"]["traces"] == store
    assert list(cfg["extensions"]["jaeger_storage"]["backends"][store]) == [kind]
    assert cfg["extensions"]["jaeger_query"]["enable_tracing"] is False  # Jaeger would store its own spans


def test_the_two_files_differ_only_in_storage() -> None:
    memory, elasticsearch = (load(CONFIGS[k]) for k in ("memory", "elasticsearch"))
    for cfg in (memory, elasticsearch):
        cfg["extensions"].pop("jaeger_storage")
    assert memory == elasticsearch


def test_elasticsearch_storage_takes_its_address_and_credentials_from_the_environment() -> None:
    backend = load(CONFIGS["elasticsearch"])["extensions"]["jaeger_storage"]["backends"]["traces"]["elasticsearch"]
    assert backend["server_urls"] == ["${env:JAEGER_ES_URL:-http://127.0.0.1:9200}"]
    assert backend["auth"]["basic"] == {"username": "${env:JAEGER_ES_USERNAME}",
                                        "password": "${env:JAEGER_ES_PASSWORD}"}
    assert backend["indices"]["spans"]["replicas"] == 0  # one node: a replica could never be allocated


def test_compose_runs_these_files() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    assert '- ./jaeger:/etc/jaeger:ro' in compose
    assert 'command: ["--config", "/etc/jaeger/config.yaml"]' in compose
    fragment = (REPO / "jaeger" / "compose.elasticsearch.yml").read_text()
    assert 'command: ["--config", "/etc/jaeger/config-elasticsearch.yaml"]' in fragment
    targets = yaml.safe_load((REPO / "prometheus" / "targets" / "compose" / "jaeger.yml").read_text())
    assert targets[0]["targets"] == [f"jaeger:{PORTS['metrics']}"]
