from __future__ import annotations

from bench.targets import evaluate


def _by_name(result: dict) -> dict:
    return {target["name"]: target for target in evaluate(result)}


def test_throughput_ratios_must_reach_their_limit_and_costs_stay_under_theirs() -> None:
    result = {
        "results": [
            {"variant": "full-100", "endpoint": "trivial", "ratio_to_bare": 0.56},
            {"variant": "full-100", "endpoint": "db", "ratio_to_bare": 0.69},
        ],
        "micro": {
            "request_path": {"overhead_us": 50.0},
            "tracing": {"project_over_request_ids_only_us": 121.0, "otel_over_bare_us": 100.0},
            "metrics_scrape": {"scenarios": [{"live_workers": 4, "restarts": 100, "median_ms": 3.0},
                                             {"live_workers": 4, "restarts": 0, "median_ms": 90.0}]},
        },
    }
    targets = _by_name(result)
    assert (targets["full_100_trivial_ratio"]["measured"], targets["full_100_trivial_ratio"]["met"]) == (0.56, True)
    assert targets["full_100_db_ratio"]["met"] is False
    assert targets["request_path_overhead_us"]["met"] is True  # the limit itself is within it
    # The tracing part excludes the request ids, which are on in both of the project's cases.
    assert (targets["tracing_part_ratio_to_otel"]["measured"], targets["tracing_part_ratio_to_otel"]["met"]) == (
        1.21, False)
    assert (targets["metrics_scrape_4_workers_100_restarts_ms"]["measured"],
            targets["metrics_scrape_4_workers_100_restarts_ms"]["met"]) == (3.0, True)


def test_what_a_partial_run_did_not_measure_is_neither_met_nor_missed() -> None:
    targets = _by_name({"results": [], "micro": {}})
    assert {target["met"] for target in targets.values()} == {None}
    assert {target["measured"] for target in targets.values()} == {None}
