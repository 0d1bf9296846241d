"""Who may read and write what, for services that run as non-root users:

- a new named volume is a copy of the image's directory at its mount point (owner, group, mode,
  images.py); each service must be able to write the volumes it mounts read-write, and read those
  it mounts read-only, with the uid, gid and extra groups compose gives it;
- the app's log files (created by the app with the mode app/observability/logging.py gives them)
  must be readable by every shipper that mounts the app-logs volume;
- a host path bound into a container asks for no mount propagation, which Docker Desktop, WSL2 and
  rootless engines refuse for `/` (the container would never start);
- every VOLUME an image declares has a mount, so that no container leaves an anonymous volume;
- a tmpfs is owned (uid, gid) by the user of its service: a restarted container gets its tmpfs back
  as mode 0755 whatever `mode=` said, keeping only the owner (docker/for-linux#138; seen on Engine
  20.10 here, still open upstream), so a mode that lets others write works only until a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.static.compose.images import IMAGES, Directory
from tests.static.compose.stack import REPO, Stack, image_name, mounts

APP_LOGGING = REPO / "app" / "observability" / "logging.py"
APP_LOGS_VOLUME = "app-logs"


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int  # the primary group: the group of the files the process creates
    extra_gids: frozenset[int] = frozenset()  # `group_add`

    @property
    def gids(self) -> frozenset[int]:
        return self.extra_gids | {self.gid}


def identity(service: dict[str, Any]) -> Identity:
    """The uid and groups a service's processes run with (compose's `user:` and `group_add:`)."""
    image = IMAGES[image_name(service["image"])]
    user, _, group = (service.get("user") or "").partition(":")
    assert user, "every service names its user (tests/static/compose/test_compose.py)"
    if user.isdigit():
        uid, default_gid = int(user), int(user)
    else:
        uid, default_gid = image.users[user]
    # With a numeric uid and no group, the engine takes the group of that uid's passwd entry; the
    # images here give their users a group of the same number.
    gid = int(group) if group else default_gid
    return Identity(uid, gid, frozenset(int(g) for g in service.get("group_add") or []))


def may(who: Identity, directory: Directory, access: str) -> bool:
    """Whether `who` has every permission in `access` ("r", "w", "x") on `directory`."""
    if who.uid == 0:
        return True
    shift = 6 if who.uid == directory.uid else 3 if directory.gid in who.gids else 0
    bits = {"r": 4, "w": 2, "x": 1}
    return all(directory.mode >> shift & bits[a] for a in access)


def volume_directories(stack: Stack) -> dict[str, Directory]:
    """The directory each named volume starts as: the image's directory at its mount point, in the
    images that have one (an image without that path contributes nothing to the copy)."""
    found: dict[str, set[Directory]] = {}
    for service in stack.services.values():
        image = IMAGES[image_name(service["image"])]
        for mount in mounts(service):
            if mount.kind == "volume" and str(mount.target) in image.directories:
                found.setdefault(mount.source, set()).add(image.directories[str(mount.target)])
    for volume, directories in found.items():
        assert len(directories) == 1, f"{volume} would start as a different directory depending on who mounts it first"
    return {volume: directories.pop() for volume, directories in found.items()}


def app_log_file_mode() -> int:
    """The mode the app creates its log file with (os.open(..., 0o640)), less the usual umask 022."""
    modes = re.findall(r"os\.open\([^)]*O_CREAT[^)]*,\s*(0o[0-7]+)\)", APP_LOGGING.read_text())
    assert len(modes) == 1, f"{APP_LOGGING.relative_to(REPO)}: expected one os.open(..., O_CREAT, <mode>)"
    return int(modes[0], 8) & ~0o022


# --- the rules themselves ---------------------------------------------------------------------------


def test_the_permission_rules_refuse_what_the_kernel_refuses() -> None:
    app_logs = Directory(10001, 10001, 0o750)
    assert may(Identity(10001, 10001), app_logs, "rwx")
    assert not may(Identity(1000, 0), app_logs, "rx"), "Filebeat without the app's group"
    assert may(Identity(1000, 0, frozenset({10001})), app_logs, "rx")
    assert not may(Identity(1000, 0, frozenset({10001})), app_logs, "w")
    assert not may(Identity(1000, 1000), Directory(0, 0, 0o770), "w"), "a beat's data dir needs group 0"


# --- the stack --------------------------------------------------------------------------------------


def test_every_named_volume_starts_as_a_known_directory(stack: Stack) -> None:
    """A volume no image has a directory for starts as root:root 0755: no non-root service can write it."""
    known = volume_directories(stack)
    used = {m.source for s in stack.services.values() for m in mounts(s) if m.kind == "volume"}
    assert used <= set(known), f"volumes whose mount point no image creates (see images.py): {used - set(known)}"


def test_each_service_can_use_its_volumes(stack: Stack) -> None:
    directories = volume_directories(stack)
    refused = []
    for name, service in stack.services.items():
        who = identity(service)
        for mount in mounts(service):
            if mount.kind != "volume":
                continue
            access = "rx" if mount.read_only else "rwx"
            if not may(who, directories[mount.source], access):
                refused.append(f"{name} (uid {who.uid}, groups {sorted(who.gids)}) cannot {access} "
                               f"{mount.source} at {mount.target}: {directories[mount.source]}")
    assert not refused, "\n".join(refused)


def test_every_shipper_can_read_the_app_log_files(stack: Stack) -> None:
    """The files live in the volume's directory, owned by the writing process (the app's uid and
    primary group) with the app's mode: a reader needs that group."""
    writers = [s for s in stack.services.values()
               if any(m.source == APP_LOGS_VOLUME and not m.read_only for m in mounts(s))]
    assert writers, "nothing writes the app's log files"
    mode = app_log_file_mode()
    for writer in writers:
        owner = identity(writer)
        log_file = Directory(owner.uid, owner.gid, mode)
        for name, service in stack.services.items():
            if any(m.source == APP_LOGS_VOLUME and m.read_only for m in mounts(service)):
                assert may(identity(service), log_file, "r"), f"{name} cannot read the app's log files ({oct(mode)})"


@pytest.mark.parametrize("propagation", ["rslave", "rshared", "slave", "shared"])
def test_a_propagation_request_is_caught(propagation: str) -> None:
    assert _propagation_problems({"x": {"volumes": [{"type": "bind", "source": "/", "target": "/host",
                                                      "bind": {"propagation": propagation}}]}})


def _propagation_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            propagation = (volume.get("bind") or {}).get("propagation")
            if volume["type"] == "bind" and not Path(volume["source"]).is_relative_to(REPO) and \
                    propagation not in (None, "", "rprivate", "private"):
                problems.append(f"{name}: {volume['source']}:{volume['target']} asks for {propagation}")
    return problems


def test_host_mounts_ask_for_no_mount_propagation(stack: Stack) -> None:
    """`/:/host:ro,rslave` (node-exporter's README) fails with "path / is mounted on / but it is not a
    shared or slave mount" wherever / is a private mount: Docker Desktop, WSL2, rootless Docker."""
    problems = _propagation_problems(stack.services)
    assert not problems, "\n".join(problems)


def _tmpfs_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, service in services.items():
        who = identity(service)
        for entry in service.get("tmpfs") or []:
            path, _, options = entry.partition(":")
            given = dict(option.partition("=")[::2] for option in options.split(",") if option)
            if who.uid != 0 and (given.get("uid"), given.get("gid")) != (str(who.uid), str(who.gid)):
                problems.append(f"{name}: tmpfs {path} is not owned by {who.uid}:{who.gid} ({options or 'no options'})")
    return problems


def test_a_tmpfs_owned_by_mode_alone_is_caught() -> None:
    service = {"image": "redis:8.2-alpine", "user": "redis", "tmpfs": ["/run/redis:mode=1777,size=1m"]}
    expected = "redis: tmpfs /run/redis is not owned by 999:1000 (mode=1777,size=1m)"
    assert _tmpfs_problems({"redis": service}) == [expected]


def test_every_tmpfs_is_owned_by_its_services_user(stack: Stack) -> None:
    assert _tmpfs_problems(stack.services) == []


def _anonymous_volumes(services: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, service in services.items():
        mounted = {str(mount.target) for mount in mounts(service)}
        problems += [f"{name}: {image_name(service['image'])} declares VOLUME {path}, and nothing is mounted there"
                     for path in sorted(IMAGES[image_name(service["image"])].volumes - mounted)]
    return problems


def test_an_image_volume_without_a_mount_is_caught() -> None:
    service = {"image": "jaegertracing/jaeger:2.13.0", "user": "10001"}
    assert _anonymous_volumes({"jaeger": service}) == [
        "jaeger: jaegertracing/jaeger declares VOLUME /tmp, and nothing is mounted there"]


def test_no_container_leaves_an_anonymous_volume(stack: Stack) -> None:
    """`make down` keeps anonymous volumes: every VOLUME of an image gets a named volume, a bind or a tmpfs."""
    assert _anonymous_volumes(stack.services) == []
