"""Copies the stack's configuration into the Helm chart, deploy/helm/episodes-api/files/.

    .venv/bin/python deploy/helm/sync_sources.py          # write the copies
    .venv/bin/python deploy/helm/sync_sources.py --check  # exit 1, naming each stale copy

Helm reads only files inside the chart (`.Files`), so the chart carries copies of the files it
turns into Kubernetes objects: the Prometheus rules (PrometheusRule), the Grafana dashboards
(ConfigMaps for Grafana's sidecar), the Logstash pipeline and Filebeat's inputs (ConfigMaps for
ECK). The folders they come from stay the one source: the copies are byte for byte, this script is
the only writer, and tests/static/test_helm_chart.py fails when a copy differs from its source,
as grafana/build_dashboards.py and its test do for the dashboards. A symlink would need no script,
but `helm package` does not follow links out of the chart, so a packaged chart would lose them.

The rule files are copied from prometheus/rules/, never from a sandbox's rules directory: the
sandbox shortens some alerts' `for:` (prometheus/override_for.py) in its own copy only, and the
chart must carry the production values.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES_DIR = Path(__file__).resolve().parent / "episodes-api" / "files"

# (source folder in the repository, file pattern): each match is copied to the same relative path
# under files/.
SOURCES: tuple[tuple[str, str], ...] = (
    ("prometheus/rules", "*.yml"),
    ("grafana/dashboards", "*.json"),
    ("logstash/pipeline", "*.conf"),
    ("logstash/config", "pipelines.yml"),
    ("filebeat", "filebeat.yml"),
)


def expected_copies() -> dict[Path, bytes]:
    """Every copy the chart must hold, by its path relative to files/, with its source's bytes."""
    copies: dict[Path, bytes] = {}
    for folder, pattern in SOURCES:
        matches = sorted((REPO / folder).glob(pattern))
        if not matches:
            raise FileNotFoundError(f"no {pattern} in {folder}: the chart would lose those objects")
        for source in matches:
            copies[source.relative_to(REPO)] = source.read_bytes()
    return copies


def _present_copies() -> set[Path]:
    return {path.relative_to(FILES_DIR) for path in FILES_DIR.rglob("*") if path.is_file()}


def stale_copies() -> list[str]:
    """What differs between files/ and the sources: one line per missing, changed or extra file."""
    expected = expected_copies()
    problems = [f"missing: {path}" for path in sorted(expected) if not (FILES_DIR / path).is_file()]
    problems += [f"differs from its source: {path}" for path in sorted(expected)
                 if (FILES_DIR / path).is_file() and (FILES_DIR / path).read_bytes() != expected[path]]
    problems += [f"has no source: {path}" for path in sorted(_present_copies() - set(expected))]
    return problems


def sync() -> None:
    """Write every copy and delete the ones whose source is gone."""
    expected = expected_copies()
    for path in _present_copies() - set(expected):
        (FILES_DIR / path).unlink()
    for path, content in expected.items():
        target = FILES_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)
    for folder in sorted(FILES_DIR.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = stale_copies()
        for problem in problems:
            print(f"{FILES_DIR.relative_to(REPO)}: {problem}", file=sys.stderr)
        if problems:
            print("run: .venv/bin/python deploy/helm/sync_sources.py", file=sys.stderr)
        return 1 if problems else 0
    if argv:
        print("usage: sync_sources.py [--check]", file=sys.stderr)
        return 2
    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
