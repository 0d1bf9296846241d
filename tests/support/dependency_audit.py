"""The dependency audit of `make check`: pip-audit over a hashed lock file, and what its report means.

pip-audit exits 0 and prints "No known vulnerabilities found" when it could audit nothing at all
(every dependency skipped because the vulnerability service did not answer for it). So the report
is read here, and a lock passes only when every dependency in it was audited and none is
vulnerable; a lock that could not be (fully) audited is said to be so, never passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

# Signs, in pip-audit's error output, that the vulnerability service could not be reached at all.
_UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Name or service not known",
                "Temporary failure in name resolution", "timed out", "Connection refused",
                "Network is unreachable", "No route to host")
AUDIT_TIMEOUT_SECONDS = 300


class Verdict(Enum):
    PASSED = "passed"
    VULNERABLE = "vulnerable"
    NOT_AUDITED = "not audited"
    TOOL_FAILED = "tool failed"


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    fix_versions: tuple[str, ...]

    def __str__(self) -> str:
        fixed = f"fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "no fix released"
        return f"{self.package} {self.version}: {self.id} ({fixed})"


@dataclass(frozen=True)
class AuditOutcome:
    verdict: Verdict
    message: str
    audited: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    vulnerabilities: tuple[Vulnerability, ...] = ()


def read_report(report: str) -> AuditOutcome:
    """The verdict on one pip-audit `-f json` report."""
    dependencies = json.loads(report)["dependencies"]
    skipped = {d["name"]: d["skip_reason"] for d in dependencies if "skip_reason" in d}
    audited = tuple(d["name"] for d in dependencies if "skip_reason" not in d)
    vulnerabilities = tuple(Vulnerability(d["name"], d["version"], v["id"], tuple(v.get("fix_versions", ())))
                            for d in dependencies if "skip_reason" not in d for v in d.get("vulns", ()))
    if vulnerabilities:
        listed = "\n  ".join(str(v) for v in vulnerabilities)
        message = f"{len(vulnerabilities)} known vulnerabilities:\n  {listed}"
        return AuditOutcome(Verdict.VULNERABLE, message, audited, skipped, vulnerabilities)
    if not dependencies:
        return AuditOutcome(Verdict.TOOL_FAILED, "the report lists no dependency at all")
    if not audited:
        first = next(iter(skipped.values()))
        message = f"not audited: no vulnerability service reachable (all {len(skipped)} skipped, e.g. {first!r})"
        return AuditOutcome(Verdict.NOT_AUDITED, message, audited, skipped)
    if skipped:
        message = (f"partly audited: {len(skipped)} of {len(dependencies)} dependencies could not be audited "
                   f"({', '.join(sorted(skipped))}), no known vulnerability in the other {len(audited)}")
        return AuditOutcome(Verdict.NOT_AUDITED, message, audited, skipped)
    return AuditOutcome(Verdict.PASSED, f"no known vulnerability in {len(audited)} dependencies", audited)


def read_run(returncode: int, stdout: str, stderr: str) -> AuditOutcome:
    """The verdict on a whole pip-audit run: its report if it wrote one, else why it did not."""
    # pip-audit exits 1 when it found vulnerabilities, with the report written all the same.
    if stdout.strip():
        try:
            return read_report(stdout)
        except (ValueError, KeyError, TypeError) as error:
            return AuditOutcome(Verdict.TOOL_FAILED, f"unreadable report ({error}): {stdout[:300]!r}")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {returncode}"
    if any(sign in stderr for sign in _UNREACHABLE):
        return AuditOutcome(Verdict.NOT_AUDITED, f"not audited: no vulnerability service reachable ({last})")
    return AuditOutcome(Verdict.TOOL_FAILED, f"pip-audit failed ({returncode}): {last}")


def audit_lock_file(lock: Path) -> AuditOutcome:
    """Runs pip-audit on a lock file with hashes, exactly as pinned: no resolution, no pip."""
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--require-hashes", "--disable-pip",
               "--format", "json", "--progress-spinner", "off", "--timeout", "15"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=AUDIT_TIMEOUT_SECONDS)
    return read_run(done.returncode, done.stdout, done.stderr)
