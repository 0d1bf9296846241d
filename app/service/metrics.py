"""The sample service's own metrics, declared through the instrumentation's public API."""

from observability.metrics import SLOW_CALL_BUCKETS, counter, histogram

AI_CALLS = counter(
    "ai_calls_total", "Calls to the AI provider, by outcome (success or failed).", ["provider", "model", "status"])
AI_CALL_DURATION = histogram(
    "ai_call_duration_seconds", "Duration of calls to the AI provider.", ["provider", "model"], SLOW_CALL_BUCKETS)
