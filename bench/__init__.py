"""`make bench`: what the instrumentation costs, measured.

Whole-process figures come from gunicorn variants on loopback driven by wrk (`bench.harness`);
micro-benchmarks time single parts in-process (`bench.micro`). Results go to
`bench/results/latest.json` and the README's Performance section (`bench.report`).
"""
