"""deploy/helm/: the episodes-api chart and the engine examples.

Without Helm: the chart's copies of the rules, dashboards and log shipping files are their sources'
(deploy/helm/sync_sources.py), the Deployments' variables are docker-compose.yml's, values.yaml holds
no credential, the image tag is pinned, and the examples use the operators' API versions and the
engine versions of .env.example.

Rendered by Helm (tests/support/helm.py; skipped until `make tools` has built `helm`): every container
unprivileged, with requests and limits (pinned images and the generic lints:
test_kubernetes_validation.py); the probes; the metrics ports reachable only through
ClusterIP Services and the NetworkPolicy; the PrometheusRules, dashboards and Filebeat inputs equal
to their sources.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.helm import RELEASE, render_chart
from tests.support.scripts import load_script
from tests.support.tools import promql_metric_names

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / "deploy" / "helm"
CHART = HELM_DIR / "episodes-api"
TEMPLATES = CHART / "templates"
EXAMPLES = HELM_DIR / "examples"
EXAMPLE_VALUES = EXAMPLES / "episodes-api-values.yaml"
METRICS_PORTS = {9464, 9465}

# Variables the pods have that compose's services do not: the passwords, which compose pastes into
# DATABASE_URL, REDIS_URL and CELERY_BROKER_URL from .env, and the chart from the Secret through
# Kubernetes' $(NAME) expansion.
PASSWORD_INPUTS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}
CREDENTIAL_KEY = re.compile(r"password|passwd|token|secret|api_?key|webhook", re.IGNORECASE)
# The only credential-like keys values.yaml may have: names of Secrets, not credentials.
ALLOWED_CREDENTIAL_KEYS = {"secret", "secret.existingSecret", "imagePullSecrets"}

# The operators' API versions the examples must use (the newest each operator serves).
EXAMPLE_APIS = {
    ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch"),
    ("kibana.k8s.elastic.co/v1", "Kibana"),
    ("beat.k8s.elastic.co/v1beta1", "Beat"),
    ("logstash.k8s.elastic.co/v1alpha1", "Logstash"),
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("opentelemetry.io/v1beta1", "OpenTelemetryCollector"),
}

Objects = list[dict[str, Any]]


def _sync_script() -> ModuleType:
    return load_script(HELM_DIR / "sync_sources.py", "sync_sources")


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _compose_env_names(service: str) -> set[str]:
    """The variables docker-compose.yml gives a service (PyYAML resolves the x-service-env merge)."""
    return set(_load_yaml(REPO / "docker-compose.yml")["services"][service]["environment"])


def _rule_files(folder: Path) -> dict[str, Any]:
    return {path.name: _load_yaml(path) for path in sorted(folder.glob("*.yml"))}


def _rules(docs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for doc in docs.values():
        for group in doc["groups"]:
            yield from group["rules"]


# --- without Helm -----------------------------------------------------------------------------------

def test_the_chart_copies_are_their_sources() -> None:
    stale = _sync_script().stale_copies()
    assert not stale, "run .venv/bin/python deploy/helm/sync_sources.py:\n" + "\n".join(stale)


def test_the_rule_copies_keep_the_production_for() -> None:
    """The sandbox's short `for:` (SANDBOX_ALERT_FOR) never reaches the chart."""
    # Lists, not dicts: an alert's critical and warning twins share a name.
    source = [(r["alert"], r.get("for")) for r in _rules(_rule_files(REPO / "prometheus" / "rules")) if "alert" in r]
    chart = [(r["alert"], r.get("for")) for r in _rules(_rule_files(CHART / "files" / "prometheus" / "rules"))
             if "alert" in r]
    assert chart == source
    sandbox = _sync_script_override_for().parse_overrides(_env_example()["SANDBOX_ALERT_FOR"])
    assert sandbox, "SANDBOX_ALERT_FOR names no alert: nothing to check"
    for alert, duration in chart:
        assert sandbox.get(alert) != duration, f"{alert}: the chart has the sandbox's for: {duration}"


def _sync_script_override_for() -> ModuleType:
    return load_script(REPO / "prometheus" / "override_for.py", "override_for")


def test_the_rules_select_the_metrics_of_the_source_rules() -> None:
    chart = [r["expr"] for r in _rules(_rule_files(CHART / "files" / "prometheus" / "rules"))]
    source = [r["expr"] for r in _rules(_rule_files(REPO / "prometheus" / "rules"))]
    names = promql_metric_names(sorted(set(chart) | set(source)))
    assert [names[e] for e in chart] == [names[e] for e in source]


def _template_env_names(*templates: str) -> set[str]:
    """The variable names a Deployment template and the shared env helper set, and values' env keys."""
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    # The helper's body: up to the next comment or definition.
    shared = re.split(r"^\{\{(?:/\*|- define)", helpers.split('define "episodes-api.sharedEnv"', 1)[1],
                      maxsplit=1, flags=re.MULTILINE)[0]
    text = shared + "".join((TEMPLATES / name).read_text() for name in templates)
    names = set(re.findall(r"^\s*- name: ([A-Z][A-Z0-9_]*)$", text, re.MULTILINE))
    return names | set(_load_yaml(CHART / "values.yaml")["env"])


@pytest.mark.parametrize("service", ["app", "worker"])
def test_the_deployments_take_compose_variables(service: str) -> None:
    chart = _template_env_names(f"deployment-{service}.yaml")
    assert chart - PASSWORD_INPUTS == _compose_env_names(service)
    assert chart >= PASSWORD_INPUTS


def _keys(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{path}.{key}" if path else str(key)
            yield dotted, value
            yield from _keys(value, dotted)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item, path)


def test_values_hold_no_credential() -> None:
    """No password, token or webhook URL in values.yaml, empty or not: the Secret holds them."""
    values = _load_yaml(CHART / "values.yaml")
    found = {key for key, _ in _keys(values) if CREDENTIAL_KEY.search(key.rsplit(".", 1)[-1])}
    assert found == ALLOWED_CREDENTIAL_KEYS
    assert values["secret"]["existingSecret"] == ""
    secret_env = {"ADMIN_TOKEN", "ALERT_WEBHOOK_URL", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    assert not secret_env & set(values["env"])


def test_a_generated_secret_is_random_once_and_kept() -> None:
    text = (TEMPLATES / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret"' in text and "randAlphaNum 32" in text
    assert 'list "POSTGRES_PASSWORD" "REDIS_PASSWORD" "ADMIN_TOKEN"' in text


def test_the_image_tag_is_the_pinned_app_version() -> None:
    chart = _load_yaml(CHART / "Chart.yaml")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == version
    image = _load_yaml(CHART / "values.yaml")["image"]
    assert image["tag"] in ("", chart["appVersion"])
    assert "latest" not in (image["tag"], chart["appVersion"])


def _example_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


def test_the_examples_use_the_operators_api_versions() -> None:
    resources = {(doc["apiVersion"], doc["kind"]) for _, doc in _example_docs() if "apiVersion" in doc}
    assert resources == EXAMPLE_APIS


def test_the_examples_run_the_versions_of_env_example() -> None:
    env = _env_example()
    for name, doc in _example_docs():
        if doc.get("apiVersion", "").split("/")[0].endswith("k8s.elastic.co"):
            assert doc["spec"]["version"] == env["ELASTIC_VERSION"], name
        if doc.get("kind") == "OpenTelemetryCollector":
            assert doc["spec"]["image"].rsplit(":", 1)[1] == env["JAEGER_VERSION"], name


def _image_references() -> Iterator[tuple[str, str]]:
    for path in sorted(HELM_DIR.rglob("*.yaml")):
        for match in re.finditer(r"^\s*(?:image|repository):\s*\"?([^\s\"#{]+)", path.read_text(), re.MULTILINE):
            yield str(path.relative_to(REPO)), match.group(1)


def test_no_image_names_a_registry_host() -> None:
    references = list(_image_references())
    assert references
    for where, image in references:
        first = image.split("/", 1)[0]
        assert "/" not in image or not ("." in first or ":" in first), f"{where}: {image}"


# --- rendered by Helm -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["defaults", "example values"])
def rendered(request: pytest.FixtureRequest) -> Objects:
    """The chart with its defaults, and with the example values (Ingress, Kafka, other namespaces)."""
    return render_chart() if request.param == "defaults" else render_chart(yaml.safe_load(EXAMPLE_VALUES.read_text()))


def _of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def _deployment(objects: Objects, component: str) -> dict[str, Any]:
    [found] = [o for o in _of_kind(objects, "Deployment") if o["metadata"]["name"] == f"{RELEASE}-{component}"]
    return found


def _containers(objects: Objects) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for deployment in _of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield deployment["metadata"]["name"], pod, container


def test_every_container_runs_unprivileged_with_limits(rendered: Objects) -> None:
    containers = list(_containers(rendered))
    assert len(containers) == 2
    for name, pod, container in containers:
        context = container["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"


def test_the_writable_paths_are_volumes(rendered: Objects) -> None:
    needed = {"app": {"/var/log/app", "/run/metrics", "/tmp", "/var/spool/alerts"},
              "worker": {"/var/log/app", "/run/metrics", "/tmp"}}
    for component, paths in needed.items():
        pod = _deployment(rendered, component)["spec"]["template"]["spec"]
        [container] = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) == paths, component
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert set(mounts.values()) <= empty_dirs, component
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["LOG_FILE"].startswith("/var/log/app/") and env["PROMETHEUS_MULTIPROC_DIR"] == "/run/metrics"


def test_the_probes(rendered: Objects) -> None:
    [app] = _deployment(rendered, "app")["spec"]["template"]["spec"]["containers"]
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"name": "http", "containerPort": 8000} in app["ports"]
    [worker] = _deployment(rendered, "worker")["spec"]["template"]["spec"]["containers"]
    assert "c.control.ping" in " ".join(worker["livenessProbe"]["exec"]["command"])


@pytest.mark.parametrize("component", ["app", "worker"])
def test_the_rendered_variables_are_compose_variables(rendered: Objects, component: str) -> None:
    [container] = _deployment(rendered, component)["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))
    assert set(names) - PASSWORD_INPUTS == _compose_env_names(component)


def _metrics_ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in service["spec"]["ports"] if p["port"] in METRICS_PORTS or p.get("targetPort") == "metrics"]


def test_the_metrics_ports_stay_inside_the_pod_network(rendered: Objects) -> None:
    services = {s["metadata"]["name"]: s for s in _of_kind(rendered, "Service")}
    with_metrics = {name for name, s in services.items() if _metrics_ports(s)}
    assert with_metrics == {f"{RELEASE}-app-metrics", f"{RELEASE}-worker-metrics"}
    for name in with_metrics:
        assert services[name]["spec"]["type"] == "ClusterIP", name
        assert len(services[name]["spec"]["ports"]) == 1, name
    for ingress in _of_kind(rendered, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] not in with_metrics
                assert backend["port"] == {"name": "http"}


def test_the_network_policy_admits_metrics_from_monitoring_only(rendered: Objects) -> None:
    [policy] = _of_kind(rendered, "NetworkPolicy")
    rules = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["spec"]["ingress"]}
    assert set(rules) == {("http",), ("metrics",)}
    [peer] = rules[("metrics",)]["from"]
    assert peer["namespaceSelector"]["matchLabels"] and peer["podSelector"]["matchLabels"]


def test_the_service_monitor_scrapes_both_jobs(rendered: Objects) -> None:
    [monitor] = _of_kind(rendered, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"
    selected = [s for s in _of_kind(rendered, "Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    # The job label's values: the rules select job=~"app|worker" (prometheus/rules/alerts.yml).
    assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected) == ["app", "worker"]


# The target labels the Prometheus Operator adds to every target of a ServiceMonitor.
OPERATOR_TARGET_LABELS = frozenset({"endpoint", "namespace", "pod", "service", "container"})


def test_the_service_monitor_keeps_the_labels_the_rules_group_by(rendered: Objects) -> None:
    grouped = {label.strip() for rule in _rules(_rule_files(REPO / "prometheus" / "rules"))
               for labels in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", str(rule.get("expr", "")))
               for label in labels.split(",") if label.strip()}
    clashing = grouped & OPERATOR_TARGET_LABELS
    [monitor] = _of_kind(rendered, "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        assert not clashing or endpoint.get("honorLabels") is True, (
            f"the rules group by {sorted(clashing)}, which the operator's target labels would rename to exported_*")


def test_a_terminating_app_pod_keeps_serving_until_it_leaves_the_endpoints(rendered: Objects) -> None:
    spec = _deployment(rendered, "app")["spec"]["template"]["spec"]
    [app] = spec["containers"]
    pause = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful_timeout = int(re.search(r"^graceful_timeout = (\d+)$", (REPO / "app" / "gunicorn.conf.py").read_text(),
                                     re.MULTILINE)[1])
    assert pause > 0 and pause + graceful_timeout < spec["terminationGracePeriodSeconds"]


def test_the_prometheus_rules_are_the_source_rules(rendered: Objects) -> None:
    rules = {r["metadata"]["name"].removeprefix(f"{RELEASE}-"): r["spec"] for r in _of_kind(rendered, "PrometheusRule")}
    source = {name.removesuffix(".yml"): doc for name, doc in _rule_files(REPO / "prometheus" / "rules").items()}
    assert rules == source


def test_the_dashboards_are_the_source_dashboards(rendered: Objects) -> None:
    maps = [m for m in _of_kind(rendered, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    dashboards = {key: json.loads(text) for m in maps for key, text in m["data"].items()}
    source = {p.name: json.loads(p.read_text()) for p in sorted((REPO / "grafana" / "dashboards").glob("*.json"))}
    assert dashboards == source


def test_the_filebeat_inputs_are_the_source_inputs(rendered: Objects) -> None:
    [inputs_map] = [m for m in _of_kind(rendered, "ConfigMap") if m["metadata"]["name"] == f"{RELEASE}-filebeat-inputs"]
    inputs = yaml.safe_load(inputs_map["data"]["app-logs.yml"])
    source = _load_yaml(REPO / "filebeat" / "filebeat.yml")["filebeat.inputs"]
    assert [{k: v for k, v in i.items() if k != "paths"} for i in inputs] == \
        [{k: v for k, v in i.items() if k != "paths"} for i in source]
    assert all(i["paths"][0].startswith("/var/lib/kubelet/pods/") for i in inputs)


def test_the_logstash_pipeline_is_the_source_pipeline(rendered: Objects) -> None:
    [pipeline] = [m for m in _of_kind(rendered, "ConfigMap") if m["metadata"]["name"] == f"{RELEASE}-logstash-pipeline"]
    assert pipeline["data"]["app-logs.conf"] == (REPO / "logstash" / "pipeline" / "app-logs.conf").read_text()
    [secret] = [s for s in _of_kind(rendered, "Secret") if s["metadata"]["name"] == f"{RELEASE}-logstash-pipelines"]
    [entry] = yaml.safe_load(secret["stringData"]["pipelines.yml"])
    [source] = _load_yaml(REPO / "logstash" / "config" / "pipelines.yml")
    assert {k: v for k, v in entry.items() if k != "path.config"} == \
        {k: v for k, v in source.items() if k != "path.config"}
    kafka = "kafka-input.conf" in pipeline["data"]
    assert entry["path.config"] == ("/usr/share/logstash/pipeline/*.conf" if kafka else source["path.config"])
