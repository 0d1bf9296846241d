"""An alert as the notifier builds it, shared by the notification tests."""

from observability.alert_transports import Alert

ALERT = Alert(fingerprint="f00dfeed", alert_id="1700000000-abcd1234", severity="critical",
              title="[CRITICAL] KeyError in api", message="KeyError: <?>", service="episodes-api", environment="test",
              details={"request_id": "req-123456", "trace_id": "ab" * 16})
