"""Redis in the compose stack keeps its keys across a restart: the alert claims (a Redis restarted empty
would let an error already notified be notified again) and the broker's queued tasks."""

from __future__ import annotations

import re
from typing import Any

from tests.static.compose.stack import Stack, mount_of

# The configuration the redis service writes before it starts redis-server (its command's printf).
_PRINTF_FORMAT = re.compile(r"printf '(?P<format>[^']*)'")


def redis_directives(service: dict[str, Any]) -> dict[str, str]:
    """directive -> value of the redis.conf the service's command writes."""
    script = " ".join(service["command"])
    match = _PRINTF_FORMAT.search(script)
    assert match is not None, f"the redis service writes no redis.conf with printf: {script}"
    lines = (line.strip() for line in match["format"].split("\\n"))
    return dict(line.split(" ", 1) for line in lines if line)


def test_redis_appends_every_write_to_a_file_synced_every_second(stack: Stack) -> None:
    directives = redis_directives(stack.services["redis"])
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["dir"] == "/data"


def test_redis_keeps_its_memory_ceiling_and_refuses_writes_beyond_it(stack: Stack) -> None:
    """noeviction: a full Redis answers errors instead of silently dropping claims or queued tasks."""
    directives = redis_directives(stack.services["redis"])
    assert directives["maxmemory"] == "96mb"
    assert directives["maxmemory-policy"] == "noeviction"


def test_redis_data_is_a_named_volume(stack: Stack) -> None:
    mount = mount_of(stack.services["redis"], "/data")
    assert mount is not None and (mount.kind, mount.source) == ("volume", "redis-data"), mount
    assert not mount.read_only
    assert "redis-data" in stack.volumes
