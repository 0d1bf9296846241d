"""Reading a Prometheus text exposition (a /metrics answer) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_total(metrics_text: str, family: str, **labels: str) -> float:
    """The sum of the samples named ``family`` (a counter's ``<name>_total``) with these label values."""
    total = 0.0
    for metric in text_string_to_metric_families(metrics_text):
        for sample in metric.samples:
            if sample.name == family and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
