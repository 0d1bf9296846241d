"""The catalogue and the public API for declaring metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from observability import metrics


def test_the_design_metric_names_are_exported() -> None:
    import service.metrics  # noqa: F401 - the sample service declares the AI call metrics

    names = {metric.name for metric in REGISTRY.collect()}
    # prometheus_client strips _total from counter family names.
    for name in ("http_requests", "http_request_duration_seconds", "ai_calls", "db_query_duration_seconds",
                 "celery_tasks", "app_errors", "http_requests_in_flight"):
        assert name in names


def test_a_counter_must_say_it_counts() -> None:
    with pytest.raises(ValueError, match="must end in _total"):
        metrics.counter("widgets_made", "Widgets.")


def test_a_gauge_must_not_look_like_a_counter() -> None:
    with pytest.raises(ValueError, match="must not end in _total"):
        metrics.gauge("queue_depth_total", "Depth.", "livesum")


def test_declared_metrics_land_in_the_default_registry_with_their_labels_and_buckets() -> None:
    made = metrics.counter("unit_widgets_made_total", "Widgets made.", ["colour"])
    took = metrics.histogram("unit_widget_seconds", "Time per widget.", ["colour"], buckets=(0.5, 1.0))
    depth = metrics.gauge("unit_widget_queue_depth", "Widgets waiting.", "livemax")
    made.labels("red").inc(3)
    took.labels("red").observe(0.7)
    depth.set(4)
    assert REGISTRY.get_sample_value("unit_widgets_made_total", {"colour": "red"}) == 3
    assert REGISTRY.get_sample_value("unit_widget_seconds_bucket", {"colour": "red", "le": "0.5"}) == 0
    assert REGISTRY.get_sample_value("unit_widget_seconds_bucket", {"colour": "red", "le": "1.0"}) == 1
    assert depth._multiprocess_mode == "livemax"
