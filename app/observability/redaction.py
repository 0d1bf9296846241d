"""Keeping secrets out of logs, span attributes and notifications.

Two rules, both driven by `REDACT_KEYS`: a field whose name contains a secret word has its value
replaced, and `word=value` / `word: value` assignments inside free text (exception messages,
tracebacks) have the value replaced.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"


class Redactor:
    def __init__(self, secret_words: tuple[str, ...]) -> None:
        self._words = tuple(word.lower() for word in secret_words)
        self._assignment = _assignment_pattern(self._words)
        self._verdicts: dict[str, bool] = {}  # field names come from code: a small, fixed set

    def is_secret_key(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            lowered = key.lower()
            verdict = any(word in lowered for word in self._words)
            if len(self._verdicts) < 4096:
                self._verdicts[key] = verdict
        return verdict

    def field(self, key: str, value: Any) -> Any:
        """The value to log for `key`: redacted when the name is secret, nested dicts walked."""
        if self.is_secret_key(key):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.field(str(k), v) for k, v in value.items()}
        return value

    def text(self, text: str) -> str:
        if self._assignment is None:
            return text
        return self._assignment.sub(lambda match: match.group(1) + REDACTED, text)


def _assignment_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    names = "|".join(re.escape(word) for word in words)
    # name, separator, optional auth scheme; then the value up to a delimiter.
    return re.compile(
        rf"((?:{names})[\w-]*['\"]?\s*[=:]\s*['\"]?(?:bearer\s+|basic\s+)?)[^\s,;&'\"}}\)]+",
        re.IGNORECASE,
    )
