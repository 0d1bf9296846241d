"""Writes the provisioned Grafana dashboards, grafana/dashboards/*.json.

    .venv/bin/python grafana/build_dashboards.py

The dashboards are code: one generator gives them the same layout, refers to data sources by uid
only and keeps the PromQL in one readable place. Commit the generator and its output together;
tests/static/grafana/test_dashboards.py fails when the files differ from what this writes, and
checks every query against the metrics the service exports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
# The classic dashboard JSON model at Grafana 13's schema version, loaded without migration. File
# provisioning takes this model only: Grafana 13's v2 model (`elements`, `layout`) is refused there.
SCHEMA_VERSION = 42
TAG = "observability-stack"

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
ELASTICSEARCH = {"type": "elasticsearch", "uid": "elasticsearch"}
# Grafana's Alerting page for the groups and silences of the Alertmanager data source, which takes
# the data source's name (datasources.yml), not its uid.
ALERTMANAGER_GROUPS_URL = "/alerting/groups?alertmanager=Alertmanager"

RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)

Panel = dict[str, Any]
Target = dict[str, Any]


# --- queries ----------------------------------------------------------------------------------------

def prom(expr: str, legend: str = "", *, instant: bool = False) -> Target:
    return {
        "datasource": PROMETHEUS,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "format": "table" if instant else "time_series",
    }


def quantile_targets(metric: str, by: str, selector: str = "") -> list[Target]:
    """p50, p95 and p99 of a histogram, one series per value of the `by` labels."""
    legend = "/".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return [
        prom(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}[{RATE}])))",
             f"p{round(q * 100)} {legend}")
        for q in QUANTILES
    ]


def es_logs(query: str, limit: int = 100) -> Target:
    """The newest `limit` records matching a Lucene query; trace_id gets the data source's Jaeger link."""
    return {
        "datasource": ELASTICSEARCH,
        "query": query,
        "metrics": [{"id": "1", "type": "logs", "settings": {"limit": str(limit)}}],
        "bucketAggs": [],
        "timeField": "@timestamp",
    }


# --- panels -----------------------------------------------------------------------------------------

def _panel(kind: str, title: str, description: str, targets: Iterable[Target], *, w: int, h: int) -> Panel:
    targets = [{"refId": chr(ord("A") + i), **t} for i, t in enumerate(targets)]
    panel: Panel = {"type": kind, "title": title, "description": description, "gridPos": {"w": w, "h": h}}
    if targets:
        # One data source per panel: never Grafana's "-- Mixed --", which is referred to by name.
        assert len({t["datasource"]["uid"] for t in targets}) == 1, title
        panel["datasource"] = targets[0]["datasource"]
        panel["targets"] = targets
    return panel


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def timeseries(title: str, description: str, targets: Iterable[Target], unit: str, *, w: int = 12, h: int = 8,
               max_value: float | None = None) -> Panel:
    panel = _panel("timeseries", title, description, targets, w=w, h=h)
    defaults: dict[str, Any] = {
        "unit": unit,
        "min": 0,
        "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
    }
    if max_value is not None:
        defaults["max"] = max_value
    panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
    panel["options"] = {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def stat(title: str, description: str, target: Target, unit: str, *, w: int = 4, h: int = 4,
         red_above: float | None = None) -> Panel:
    panel = _panel("stat", title, description, [target], w=w, h=h)
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    panel["fieldConfig"] = {
        "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
        "overrides": [],
    }
    panel["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "auto",
    }
    return panel


def table(title: str, description: str, target: Target, *, w: int = 12, h: int = 8,
          hidden: Iterable[str] = ("Time",)) -> Panel:
    panel = _panel("table", title, description, [target], w=w, h=h)
    panel["fieldConfig"] = {"defaults": {}, "overrides": []}
    panel["options"] = {"showHeader": True, "cellHeight": "sm"}
    panel["transformations"] = [
        {"id": "organize", "options": {"excludeByName": dict.fromkeys(hidden, True)}},
    ]
    return panel


def logs(title: str, description: str, query: str, *, w: int = 24, h: int = 10) -> Panel:
    panel = _panel("logs", title, description, [es_logs(query)], w=w, h=h)
    panel["options"] = {
        "showTime": True,
        "wrapLogMessage": True,
        "enableLogDetails": True,
        "sortOrder": "Descending",
        "dedupStrategy": "none",
        "prettifyLogMessage": False,
        "showLabels": False,
        "showCommonLabels": False,
    }
    return panel


def alert_list(title: str, description: str, *, w: int = 12, h: int = 10) -> Panel:
    """Prometheus's alerting rules in their current state (Prometheus is a rules source: manageAlerts)."""
    panel = _panel("alertlist", title, description, [], w=w, h=h)
    panel["options"] = {
        "viewMode": "list",
        "groupMode": "default",
        "groupBy": [],
        "maxItems": 50,
        "sortOrder": 3,  # importance: firing first
        "dashboardAlerts": False,
        "alertName": "",
        "alertInstanceLabelFilter": "",
        "showInstances": True,
        "stateFilter": {"firing": True, "pending": True, "recovering": True, "noData": False, "normal": False,
                        "error": True},
    }
    return panel


# --- dashboards -------------------------------------------------------------------------------------

def query_variable(name: str, label: str, definition: str) -> dict[str, Any]:
    """A multi-value variable whose values are a label's values (`label_values(selector, label)`)."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROMETHEUS,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change: routes appear as traffic reaches them
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def _place(rows: list[list[Panel]]) -> list[Panel]:
    """Lays the rows out top to bottom, left to right, and numbers the panels."""
    placed, y = [], 0
    for panels in rows:
        x = 0
        for panel in panels:
            panel["gridPos"].update(x=x, y=y)
            x += panel["gridPos"]["w"]
        assert x <= 24, f"row wider than the grid: {[p['title'] for p in panels]}"
        y += max(panel["gridPos"]["h"] for panel in panels)
        placed.extend(panels)
    for number, panel in enumerate(placed, start=1):
        panel["id"] = number
    return placed


def dashboard(uid: str, title: str, description: str, rows: list[list[Panel]], *,
              variables: Iterable[dict[str, Any]] = (), links: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "title": "Dashboards", "tags": [TAG], "asDropdown": True,
             "includeVars": False, "keepTime": True},
            *links,
        ],
        "panels": _place(rows),
    }


def error_logs_panel() -> Panel:
    return logs(
        "Error records",
        "Records at level ERROR and above. Open a record: its trace_id links to the trace in Jaeger.",
        "level:(ERROR OR CRITICAL)",
    )


def service_red() -> dict[str, Any]:
    selected = 'endpoint=~"$endpoint"'
    requests = f"rate(http_requests_total{{{selected}}}[{RATE}])"
    errors = f'rate(http_requests_total{{{selected},status=~"5.."}}[{RATE}])'
    return dashboard(
        "service-red", "Service: rate, errors, duration",
        "RED per endpoint (the route template) of the web process; 5xx responses are the errors, 4xx are "
        "the client's.",
        [
            [row("Overview")],
            [
                stat("Requests", "All responses per second.", prom(f"sum({requests})"), "reqps", w=5),
                stat("5xx ratio", "Share of responses with a 5xx status.",
                     prom(f"sum({errors}) / sum({requests})"), "percentunit", w=5, red_above=0.05),
                stat("p95 latency", "95th percentile of the request duration over the selected endpoints.",
                     prom("histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket"
                          f"{{{selected}}}[{RATE}])))"), "s", w=5, red_above=1),
                stat("In flight", "Requests being served now, summed over the gunicorn workers.",
                     prom("sum(http_requests_in_flight)"), "short", w=4),
                stat("Active users", "Users seen within the activity window (from Redis at scrape time).",
                     prom("max(active_users)"), "short", w=5),
            ],
            [row("Rate")],
            [
                timeseries("Requests by endpoint", "Responses per second per route template.",
                           [prom(f"sum by (endpoint) ({requests})", "{{endpoint}}")], "reqps"),
                timeseries("Requests by status", "Responses per second per status code.",
                           [prom(f"sum by (status) ({requests})", "{{status}}")], "reqps"),
            ],
            [row("Errors")],
            [
                timeseries("5xx ratio by endpoint", "Share of each route's responses with a 5xx status.",
                           [prom(f"sum by (endpoint) ({errors}) / sum by (endpoint) ({requests})",
                                 "{{endpoint}}")], "percentunit", max_value=1),
                timeseries("Unhandled errors by type", "Unhandled exceptions per second, by exception type.",
                           [prom(f"sum by (error_type) (rate(app_errors_total[{RATE}]))", "{{error_type}}")],
                           "short"),
            ],
            [row("Duration")],
            [
                timeseries("Latency by endpoint", "p50, p95 and p99 of the request duration per route template.",
                           quantile_targets("http_request_duration_seconds", "endpoint", f"{{{selected}}}"), "s",
                           w=24, h=10),
            ],
            [row("Saturation")],
            [
                timeseries("Requests in flight", "Requests being served, summed over the gunicorn workers.",
                           [prom("sum(http_requests_in_flight)", "in flight")], "short"),
                timeseries("Active users", "Users seen within the activity window.",
                           [prom("max(active_users)", "active users")], "short"),
            ],
            [row("Logs")],
            [error_logs_panel()],
        ],
        variables=[query_variable("endpoint", "Endpoint", "label_values(http_requests_total, endpoint)")],
    )


def ai_calls() -> dict[str, Any]:
    selected = 'provider=~"$provider",model=~"$model"'
    calls = f"rate(ai_calls_total{{{selected}}}[{RATE}])"
    failed = f'rate(ai_calls_total{{{selected},status="failed"}}[{RATE}])'
    return dashboard(
        "ai-calls", "AI provider calls",
        "Calls to the AI provider that extracts assets from scripts: rate, failures and duration.",
        [
            [
                stat("Calls", "Calls per second.", prom(f"sum({calls})"), "reqps", w=8),
                stat("Failure ratio", "Share of calls that failed.", prom(f"sum({failed}) / sum({calls})"),
                     "percentunit", w=8, red_above=0.1),
                stat("p95 duration", "95th percentile of the call duration.",
                     prom("histogram_quantile(0.95, sum by (le) (rate(ai_call_duration_seconds_bucket"
                          f"{{{selected}}}[{RATE}])))"), "s", w=8),
            ],
            [
                timeseries("Calls by status", "Calls per second, successful and failed.",
                           [prom(f"sum by (status) ({calls})", "{{status}}")], "reqps"),
                timeseries("Failure ratio by provider and model", "Share of each model's calls that failed.",
                           [prom(f"sum by (provider, model) ({failed}) / sum by (provider, model) ({calls})",
                                 "{{provider}}/{{model}}")], "percentunit", max_value=1),
            ],
            [
                timeseries("Duration by provider and model", "p50, p95 and p99 of the call duration.",
                           quantile_targets("ai_call_duration_seconds", "provider, model", f"{{{selected}}}"),
                           "s", w=24, h=10),
            ],
        ],
        variables=[
            query_variable("provider", "Provider", "label_values(ai_calls_total, provider)"),
            query_variable("model", "Model", 'label_values(ai_calls_total{provider=~"$provider"}, model)'),
        ],
    )


def database() -> dict[str, Any]:
    selected = 'operation=~"$operation"'
    return dashboard(
        "database", "Database queries",
        "SQL statements of the web and worker processes: duration by operation and slow statements.",
        [
            [
                timeseries("Statements by operation", "Statements per second by operation.",
                           [prom(f"sum by (operation) (rate(db_query_duration_seconds_count{{{selected}}}[{RATE}]))",
                                 "{{operation}}")], "ops"),
                timeseries("Slow statements by operation",
                           "Statements per second at or above SLOW_QUERY_THRESHOLD_MS.",
                           [prom(f"sum by (operation) (rate(db_slow_queries_total{{{selected}}}[{RATE}]))",
                                 "{{operation}}")], "ops"),
            ],
            [
                timeseries("Duration by operation", "p50, p95 and p99 of the statement duration.",
                           quantile_targets("db_query_duration_seconds", "operation", f"{{{selected}}}"), "s",
                           w=24, h=10),
            ],
            [
                logs("Slow statements",
                     "The slow-query records: statement (parameters are never logged), duration and outcome.",
                     "event:slow_query"),
            ],
        ],
        variables=[query_variable("operation", "Operation",
                                  "label_values(db_query_duration_seconds_count, operation)")],
    )


def celery() -> dict[str, Any]:
    selected = 'task=~"$task"'
    tasks = f"rate(celery_tasks_total{{{selected}}}[{RATE}])"
    return dashboard(
        "celery", "Celery tasks",
        "Tasks of the Celery worker: outcomes, failures and duration.",
        [
            [
                stat("Worker scraped", "1 while Prometheus reaches the worker's metrics listener.",
                     prom('min(up{job="worker"})'), "short", w=6),
                stat("Tasks", "Finished or retried tasks per second.", prom(f"sum({tasks})"), "ops", w=6),
                stat("Failure ratio", "Share of finished tasks that failed; a retry is not an end.",
                     prom(f'sum(rate(celery_tasks_total{{{selected},outcome="failed"}}[{RATE}])) / '
                          f'sum(rate(celery_tasks_total{{{selected},outcome=~"succeeded|failed"}}[{RATE}]))'),
                     "percentunit", w=6, red_above=0.05),
                stat("Retries", "Retries per second.",
                     prom(f'sum(rate(celery_tasks_total{{{selected},outcome="retried"}}[{RATE}]))'), "ops", w=6),
            ],
            [
                timeseries("Tasks by outcome", "Tasks per second: succeeded, failed, retried.",
                           [prom(f"sum by (outcome) ({tasks})", "{{outcome}}")], "ops"),
                timeseries("Tasks by name and outcome", "Tasks per second per task name.",
                           [prom(f"sum by (task, outcome) ({tasks})", "{{task}} {{outcome}}")], "ops"),
            ],
            [
                timeseries("Duration by task", "p50, p95 and p99 of the task duration.",
                           quantile_targets("celery_task_duration_seconds", "task", f"{{{selected}}}"), "s",
                           w=24, h=10),
            ],
        ],
        variables=[query_variable("task", "Task", "label_values(celery_tasks_total, task)")],
    )


def alerts() -> dict[str, Any]:
    return dashboard(
        "alerts", "Alerts and notifications",
        "Alerts Prometheus is firing, scrape health, and the notifications the service sends itself.",
        [
            [
                alert_list("Alert rules", "Prometheus's alerting rules that are firing or pending."),
                table("Firing alerts", "Every firing alert with its labels (Prometheus's ALERTS series).",
                      prom('ALERTS{alertstate="firing"}', instant=True), hidden=("Time", "Value", "__name__")),
            ],
            [
                timeseries("Firing alerts over time", "Firing alerts by name.",
                           [prom('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}")], "short"),
                table("Scrape targets", "1 when Prometheus reaches a target, 0 when it does not.",
                      prom("min by (job, instance) (up)", instant=True)),
            ],
            [
                timeseries("Service notifications by channel and outcome",
                           "The service's own error notifications (webhook, e-mail): queued, deduplicated, "
                           "sent, retried, failed.",
                           [prom(f"sum by (channel, outcome) (rate(alert_notifications_total[{RATE}]))",
                                 "{{channel}} {{outcome}}")], "ops", w=16),
                stat("Failed notifications", "Notifications given up on in the selected time range.",
                     prom('sum(increase(alert_notifications_total{outcome="failed"}[$__range]))'), "short",
                     w=8, h=8, red_above=1),
            ],
            [error_logs_panel()],
        ],
        links=[{"type": "link", "title": "Alertmanager: alert groups and silences", "url": ALERTMANAGER_GROUPS_URL,
                "icon": "bell", "targetBlank": False}],
    )


DASHBOARDS = {
    "service-red.json": service_red,
    "ai-calls.json": ai_calls,
    "database.json": database,
    "celery.json": celery,
    "alerts.json": alerts,
}


def render(build: Callable[[], dict[str, Any]]) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> None:
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (DASHBOARDS_DIR / name).write_text(render(build))


if __name__ == "__main__":
    main()
