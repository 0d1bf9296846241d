"""Every program a healthcheck or an entrypoint runs exists in the service's image (images.py).

A healthcheck whose program is missing fails forever: the service never becomes healthy, whatever
depends on it never starts, and `make up` (`docker compose up --wait`) fails. A CMD-SHELL check
also needs a shell: distroless images (Loki) have none, and must probe themselves (`loki -health`).
Each check is read the way the engine runs it: a CMD's first word, or every command of a CMD-SHELL
script (pipelines, `&&` lists, `$(...)` substitutions, `bash -c` scripts).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

import pytest

from sandbox.env import parse_env
from tests.static.compose.images import FLAGS_SINCE, IMAGES, SHELL_BUILTINS, Image
from tests.static.compose.stack import ENV_EXAMPLE, Stack, image_name

_CONTROL = {"|", "||", "&&", ";", "&", "(", ")", "!"}
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


def shell_programs(script: str) -> set[str]:
    """The programs a POSIX shell script runs: the first word of each simple command."""
    programs: set[str] = set()
    for inner in _SUBSTITUTION.findall(script):
        programs |= shell_programs(inner)
    lexer = shlex.shlex(_SUBSTITUTION.sub("x", script), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    expect_command, skip_redirect_target = True, False
    for token in lexer:
        if token in _CONTROL:
            expect_command = True
        elif set(token) <= set("<>&|;()"):  # a redirection operator: its target follows
            skip_redirect_target = True
        elif skip_redirect_target:
            skip_redirect_target = False
        elif expect_command and (re.fullmatch(r"[A-Za-z_]\w*=.*", token, re.DOTALL) or token.isdigit()):
            continue  # an assignment before the command, or the fd number of a redirection
        elif expect_command and token == "exec":
            continue  # `exec 3<>...` only redirects; `exec prog` runs prog, the next word
        elif expect_command:
            programs.add(token)
            expect_command = False
    return programs


def programs_of(argv: list[str]) -> set[str]:
    """What an argv runs: its program, and the commands of a `sh -c`/`bash -c` script it is given."""
    programs = {argv[0]}
    if posixpath.basename(argv[0]) in ("sh", "bash") and len(argv) > 2 and argv[1] == "-c":
        programs |= shell_programs(argv[2])
    return programs


def healthcheck_programs(test: list[str]) -> set[str]:
    """What a compose healthcheck runs: `CMD-SHELL` goes through /bin/sh -c."""
    if test[0] == "CMD-SHELL":
        return {"/bin/sh"} | shell_programs(" ".join(test[1:]))
    assert test[0] == "CMD", test
    return programs_of(test[1:])


def missing(programs: set[str], image: Image) -> set[str]:
    found = set()
    for program in programs:
        if program in SHELL_BUILTINS and image.shell:
            continue
        if program not in image.programs:
            found.add(program)
    return found


def _image(service: dict[str, Any]) -> tuple[str, Image]:
    name = image_name(service["image"])
    assert name in IMAGES, f"{service['image']}: no entry in tests/static/compose/images.py (research its Dockerfile)"
    return name, IMAGES[name]


# --- the checker itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(("test", "expected"), [
    (["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/-/ready"], {"wget"}),
    (["CMD-SHELL", "curl -fsS http://127.0.0.1:5601/api/status | grep -q '\"level\":\"available\"'"],
     {"/bin/sh", "curl", "grep"}),
    (["CMD-SHELL", "REDISCLI_AUTH=\"$(cat /run/secrets/p)\" redis-cli ping | grep -q PONG"],
     {"/bin/sh", "cat", "redis-cli", "grep"}),
    (["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3"],
     {"bash", "printf", "head"}),
    (["CMD-SHELL", "printf 'user = \"a:%s\"\\n' \"$P\" | curl -K - -fsS -o /dev/null 'http://127.0.0.1:9200/'"],
     {"/bin/sh", "printf", "curl"}),
    (["CMD", "/usr/bin/loki", "-health"], {"/usr/bin/loki"}),
])
def test_the_checker_finds_every_program_a_healthcheck_runs(test: list[str], expected: set[str]) -> None:
    assert healthcheck_programs(test) == expected


def test_the_checker_refuses_a_program_the_image_lacks() -> None:
    """The mistakes this file exists for: wget in a distroless image, curl in a busybox one."""
    assert missing(healthcheck_programs(["CMD", "wget", "-q", "http://127.0.0.1:3100/ready"]),
                   IMAGES["grafana/loki"]) == {"wget"}
    assert missing(healthcheck_programs(["CMD-SHELL", "curl -f http://127.0.0.1:9090/-/ready"]),
                   IMAGES["prom/prometheus"]) == {"curl"}
    assert missing(healthcheck_programs(["CMD-SHELL", "/usr/bin/loki -health"]), IMAGES["grafana/loki"]) == {"/bin/sh"}
    assert missing(healthcheck_programs(["CMD", "curl", "-f", "http://127.0.0.1:8000/readyz"]),
                   IMAGES["observability-stack/app"]) == {"curl"}


# --- the stack --------------------------------------------------------------------------------------


def test_every_image_has_researched_facts(stack: Stack) -> None:
    unknown = {s["image"] for s in stack.services.values() if image_name(s["image"]) not in IMAGES}
    assert not unknown, f"add these images to tests/static/compose/images.py from their Dockerfiles: {unknown}"


def test_every_healthcheck_runs_programs_its_image_has(stack: Stack) -> None:
    problems = []
    for name, service in stack.services.items():
        test = (service.get("healthcheck") or {}).get("test")
        if not test or test[0] == "NONE":
            continue
        image_key, image = _image(service)
        if lacking := missing(healthcheck_programs(test), image):
            problems.append(f"{name} ({image_key}): {sorted(lacking)} not in the image ({image.source})")
    assert not problems, "healthchecks that can never pass:\n" + "\n".join(problems)


def test_every_entrypoint_and_command_runs_a_program_its_image_has(stack: Stack) -> None:
    problems = []
    for name, service in stack.services.items():
        image_key, image = _image(service)
        argv = service.get("entrypoint") or (service.get("command") if image.command_is_program else None)
        if not argv:
            continue  # the image's own ENTRYPOINT, given `command` as its arguments
        if lacking := missing(programs_of(argv), image):
            problems.append(f"{name} ({image_key}): {sorted(lacking)}")
    assert not problems, "containers that cannot start:\n" + "\n".join(problems)


def test_named_users_exist_in_their_images(stack: Stack) -> None:
    for name, service in stack.services.items():
        user = (service.get("user") or "").split(":")[0]
        if user and not user.isdigit():
            _, image = _image(service)
            assert user in image.users, f"{name}: user {user!r} is not a user of its image ({image.source})"


def test_flags_are_as_old_as_the_pinned_version(stack: Stack) -> None:
    """`loki -health` exists since Loki 3.7.0: an older pin would make the check fail forever."""
    pins = parse_env(ENV_EXAMPLE.read_text())
    for service in stack.services.values():
        argv = (service.get("healthcheck") or {}).get("test", [])[1:] + (service.get("command") or [])
        for (image_key, program, flag), (variable, since) in FLAGS_SINCE.items():
            if image_name(service["image"]) == image_key and program in argv and flag in argv:
                pinned = tuple(int(part) for part in pins[variable].split("."))
                assert pinned >= since, f"{variable}={pins[variable]}: {program} {flag} needs {since}"
