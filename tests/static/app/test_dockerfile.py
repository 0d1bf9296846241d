"""app/Dockerfile and .dockerignore, checked without a Docker engine (and without hadolint): the rules
that matter for this image, read from its instructions."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

from sandbox.env import parse_env

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "app" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the ones before the first FROM, i.e. ARGs, excluded)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


@pytest.fixture(scope="module")
def text() -> str:
    return DOCKERFILE.read_text()


def test_the_base_image_is_a_patch_release_of_the_pinned_python(text: str) -> None:
    python = parse_env((REPO / ".env.example").read_text())["PYTHON_VERSION"]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    for _, line in (i for i in instructions(text) if i[0] == "FROM"):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], line.split()[0])
        assert re.fullmatch(rf"python:{re.escape(python)}\.\d+-slim(-\w+)?", image), \
            f"{image} is not python:{python}.<patch>-slim"


def test_no_latest_and_multi_stage(text: str) -> None:
    assert "latest" not in text.lower()
    assert len(stages(text)) >= 2
    assert any(keyword == "COPY" and rest.startswith("--from=") for keyword, rest in stages(text)[-1])


def test_the_runtime_stage_runs_as_a_non_root_user(text: str) -> None:
    users = [rest for keyword, rest in stages(text)[-1] if keyword == "USER"]
    assert users, "the final stage has no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]}: a numeric, non-system uid"
    assert [k for k, _ in stages(text)[-1]].index("USER") > max(
        i for i, (k, _) in enumerate(stages(text)[-1]) if k in ("RUN", "COPY")), "USER must come after RUN and COPY"


def test_requirements_are_installed_from_the_lock_with_hashes(text: str) -> None:
    installs = [rest for keyword, rest in instructions(text) if keyword == "RUN" and "pip install" in rest]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert {"--require-hashes", "--no-deps"} <= set(words)
    assert words[words.index("-r") + 1].endswith("requirements.lock")
    assert "requirements-dev" not in text, "dev dependencies stay out of the image"
    copied = [rest for keyword, rest in instructions(text) if keyword == "COPY"]
    assert any(rest.startswith("requirements.lock ") for rest in copied)


def test_python_runtime_settings(text: str) -> None:
    env = " ".join(rest for keyword, rest in stages(text)[-1] if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_the_image_has_the_app_and_the_webhook_sink(text: str) -> None:
    copies = [rest.split() for keyword, rest in stages(text)[-1] if keyword == "COPY" and not rest.startswith("--")]
    sources = {source for parts in copies for source in parts[:-1]}
    assert {"app/", "sandbox/webhook_sink.py"} <= sources
    assert re.search(r'^CMD \["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"\]$', text, re.MULTILINE)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes, and a pattern that matches a
    directory matches everything in it. Enough of it for this file's patterns."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = (pattern[1:] if negated else pattern).rstrip("/")
        candidates = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes for candidate in candidates) or (
                body.startswith("**/") and any(fnmatch.fnmatchcase(p, body[3:]) for p in parts)):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_build_context_is_an_allow_list(ignore_patterns: list[str]) -> None:
    assert ignore_patterns[0] == "*", "start from nothing, so that .env and .sandbox/ never reach the daemon"
    for secret_or_state in (".env", ".sandbox/endpoints.json", ".venv/bin/python", "tests/conftest.py"):
        assert _ignored(secret_or_state, ignore_patterns), secret_or_state


def test_every_copied_file_is_in_the_build_context(text: str, ignore_patterns: list[str]) -> None:
    for keyword, rest in instructions(text):
        if keyword != "COPY" or rest.startswith("--from="):
            continue
        for source in rest.split()[:-1]:
            assert (REPO / source).exists(), source
            assert not _ignored(source.rstrip("/"), ignore_patterns), f"{source} is excluded by .dockerignore"
    assert _ignored("app/observability_stack.egg-info/PKG-INFO", ignore_patterns)
    assert not _ignored("app/service/api.py", ignore_patterns)
