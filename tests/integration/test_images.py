"""Every image of the compose stack that is on this machine, checked against what compose relies on
(tests/static/compose/images.py, researched in the upstream Dockerfiles): the programs its
healthchecks and commands run, its named users' uid and gid, the owner, group and mode of the
directories named volumes are mounted on (a new volume starts as their copy), and its entrypoint
where compose gives it only arguments.

An image with a shell is probed by a script run in it; one without (FROM scratch, distroless) by its
files, which `docker cp` reads from a container that is created and never started.

Here that checks the stand-ins `make images` builds (tools/images/) against upstream's layout; where
a registry served the real images, it checks the researched facts themselves. An image that is not
on this machine is skipped with the reason (in CI, where `make images` ran, a buildable one fails).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile

import pytest

from sandbox import docker_engine
from sandbox.compose import not_buildable
from sandbox.env import ROOT, fill_secrets
from tests.static.compose.images import IMAGES, Image
from tests.static.compose.stack import ENV_EXAMPLE, VARIANTS, image_name, load_stack


def _compose_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Repository -> the image reference compose names for it and the service, over every variant."""
    env_file = tmp_path_factory.mktemp("images") / ".env"
    env_file.write_text(fill_secrets(ENV_EXAMPLE.read_text(), lambda: "x" * 32))
    images = {}
    for variant in VARIANTS:
        for name, service in load_stack(variant, env_file).services.items():
            images[image_name(service["image"])] = (service["image"], name)
    return images


@pytest.fixture(scope="module")
def compose_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    if not docker_engine.docker_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no Docker engine answers `docker version` (.ci/run starts one)", pytrace=False)
        pytest.skip("no Docker engine answers `docker version`")
    return _compose_images(tmp_path_factory)


def _probe_script(image: Image) -> str:
    """A POSIX shell script that prints one line per fact: `program NAME yes|no`, `user NAME UID GID`,
    `dir PATH UID GID MODE` (octal)."""
    lines = [f'if command -v {shlex.quote(p)} >/dev/null 2>&1 || [ -x {shlex.quote(p)} ]; then echo "program {p} yes"; '
             f'else echo "program {p} no"; fi' for p in sorted(image.programs)]
    lines += [f'echo "user {name} $(id -u {name}) $(id -g {name})"' for name in image.users]
    lines += [f'echo "dir {path} $(stat -c "%u %g %a" {shlex.quote(path)})"' for path in image.directories]
    return "\n".join(lines)


def _run_probe(reference: str, script: str) -> list[list[str]]:
    done = subprocess.run(["docker", "run", "--rm", "--user", "0", "--entrypoint", "/bin/sh", reference, "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{reference}: {done.stderr}"
    return [line.split() for line in done.stdout.splitlines()]


def _file(container: str, path: str) -> tuple[tarfile.TarInfo, bytes] | None:
    """The entry of ``path`` in a container's files (symbolic links followed) and, for a regular file,
    its content; None if there is no such path."""
    done = subprocess.run(["docker", "cp", "--follow-link", f"{container}:{path}", "-"], capture_output=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        entry = archive.next()
        assert entry is not None, f"docker cp {path}: an empty archive"
        content = archive.extractfile(entry) if entry.isfile() else None
        return entry, content.read() if content else b""


def _read_files(reference: str, image: Image) -> list[list[str]]:
    """The facts of _probe_script, read from the image's files instead of by a shell: programs must
    be absolute paths, and users come from /etc/passwd."""
    relative = sorted(p for p in image.programs if not p.startswith("/"))
    assert not relative, f"{reference} has no shell to find {relative} on a PATH: name them by absolute path"
    container = docker_engine.docker("create", reference)
    assert container, f"docker create {reference} failed"
    try:
        facts = []
        for program in sorted(image.programs):
            found = _file(container, program)
            executable = found is not None and found[0].isfile() and found[0].mode & 0o111
            facts.append(["program", program, "yes" if executable else "no"])
        passwd = _file(container, "/etc/passwd") if image.users else None
        if passwd is not None:
            entries = [line.split(":") for line in passwd[1].decode().splitlines()]
            facts += [["user", e[0], e[2], e[3]] for e in entries if len(e) > 3 and e[0] in image.users]
        for path in image.directories:
            found = _file(container, path)
            if found is not None and found[0].isdir():
                entry = found[0]
                facts.append(["dir", path, str(entry.uid), str(entry.gid), f"{entry.mode & 0o7777:o}"])
        return facts
    finally:
        docker_engine.docker("rm", container)


def _present(reference: str) -> bool:
    return docker_engine.docker("image", "inspect", reference) is not None


@pytest.mark.parametrize("repository", sorted(name for name in IMAGES if name != "observability-stack/app"))
def test_the_image_on_this_machine_has_what_compose_relies_on(repository: str,
                                                              compose_images: dict[str, tuple[str, str]]) -> None:
    if repository not in compose_images:
        pytest.skip(f"no compose file of tests/static/compose/stack.py's VARIANTS names {repository} yet")
    reference, service = compose_images[repository]
    if not _present(reference):
        if (reason := not_buildable(ROOT).get(service)) is not None:
            pytest.skip(f"{reference} is not on this machine and cannot be built here: {reason}")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reference} is missing: `make images` should have built it", pytrace=False)
        pytest.skip(f"{reference} is not on this machine: `make images` builds it")
    image = IMAGES[repository]
    facts = _run_probe(reference, _probe_script(image)) if image.shell else _read_files(reference, image)
    missing = [fact[1] for fact in facts if fact[0] == "program" and fact[2] == "no"]
    assert not missing, f"{reference} lacks {missing} ({image.source})"
    users = {fact[1]: (int(fact[2]), int(fact[3])) for fact in facts if fact[0] == "user" and len(fact) == 4}
    assert users == dict(image.users), f"{reference}: users {users}, upstream {dict(image.users)} ({image.source})"
    directories = {fact[1]: (int(fact[2]), int(fact[3]), int(fact[4], 8)) for fact in facts
                   if fact[0] == "dir" and len(fact) == 5}
    expected = {path: (d.uid, d.gid, d.mode) for path, d in image.directories.items()}
    assert directories == expected, f"{reference}: directories {directories}, upstream {expected} ({image.source})"
    if image.entrypoint is not None:
        inspected = docker_engine.docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}", reference)
        entrypoint = tuple(json.loads(inspected or "null") or ())
        assert entrypoint == image.entrypoint, f"{reference}: entrypoint {entrypoint}, upstream {image.entrypoint}"
