"""What each image of the stack holds that docker-compose.yml relies on, researched in the images'
upstream Dockerfiles (no image can be pulled here). A healthcheck that runs a program its image does
not have never passes, so the service never becomes healthy and `docker compose up --wait` fails;
a named volume starts as a copy of the image's directory (owner, group, mode), so a non-root
service can only write it if the image made that directory writable for it.

When an image or its version changes, check its Dockerfile again and update the entry: every image
of the compose files must have one (test_healthchecks.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.static.compose.stack import REPO

# A POSIX shell's builtins a healthcheck may use without the image having a program of that name.
SHELL_BUILTINS = frozenset({"exec", "printf", "echo", "test", "[", "true", "false", "read", "cd", "export", "set",
                            "umask"})
# busybox's applets that healthchecks and scripts here use (quay.io/prometheus/busybox, alpine).
BUSYBOX = frozenset({"sh", "/bin/sh", "wget", "cat", "grep", "sed", "sort", "head", "mkdir", "rm", "mv"})


@dataclass(frozen=True)
class Directory:
    """A directory as the image creates it: a new named volume mounted there starts as its copy."""

    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class Image:
    # Programs a healthcheck or an entrypoint may run: names on PATH, or absolute paths.
    programs: frozenset[str]
    # Whether /bin/sh exists: a CMD-SHELL healthcheck runs `/bin/sh -c`.
    shell: bool
    # Where these facts come from.
    source: str
    # The users `user:` may name, to uid and gid.
    users: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # The image's directories that compose mounts named volumes on.
    directories: Mapping[str, Directory] = field(default_factory=dict)
    # Whether a service's `command` is the program that runs (no ENTRYPOINT, or one that execs any
    # other command), so that its first word must be one of `programs`.
    command_is_program: bool = False
    # The image's VOLUME paths: without a mount there, each container gets an anonymous volume that
    # `docker compose down` leaves behind.
    volumes: frozenset[str] = frozenset()
    # The image's ENTRYPOINT, where a service's `command` is only its arguments (None: not stated).
    entrypoint: tuple[str, ...] | None = None


def _app_image() -> Image:
    """app/Dockerfile is ours: its user and the directories it creates are read from it, not restated here."""
    text = (REPO / "app" / "Dockerfile").read_text()
    group = re.search(r"groupadd .*--gid (\d+) (\w+)", text)
    user = re.search(r"useradd [^\n]*--uid (\d+) --gid (\w+)[^\n]* (\w+)[ \\]*$", text, re.MULTILINE)
    made = re.findall(r"install -d -o (\w+) -g (\w+) -m (0\d+) (/\S+)", text)
    assert group and user and made, "app/Dockerfile no longer creates its user and directories as expected"
    uid, gid = int(user[1]), int(group[1])
    assert user[2] == group[2]
    assert all((owner, owning_group) == (user[3], group[2]) for owner, owning_group, _, _ in made)
    return Image(
        # python:3.11-slim (Debian): dash as /bin/sh, no curl or wget; the service's programs are in
        # the virtualenv on PATH.
        programs=frozenset({"sh", "/bin/sh", "python", "gunicorn", "celery"}),
        shell=True,
        source="app/Dockerfile (python:<version>-slim-trixie)",
        users={user[3]: (uid, gid)},
        directories={path: Directory(uid, gid, int(mode, 8)) for _, _, mode, path in made},
        command_is_program=True,
    )


IMAGES: dict[str, Image] = {
    "observability-stack/app": _app_image(),
    "postgres": Image(
        programs=frozenset({"postgres", "pg_isready", "psql"}) | BUSYBOX,
        shell=True,
        source="docker-library/postgres <major>/alpine*/Dockerfile: user postgres 70:70, "
               "`install --directory --owner postgres --group postgres --mode 1777 $PGDATA`",
        users={"postgres": (70, 70)},
        directories={"/var/lib/postgresql/data": Directory(70, 70, 0o1777)},
        volumes=frozenset({"/var/lib/postgresql/data"}),
    ),
    "redis": Image(
        programs=frozenset({"redis-server", "redis-cli"}) | BUSYBOX,
        shell=True,
        source="docker-library/redis alpine Dockerfile: adduser -u 999 -G redis (gid 1000), "
               "`mkdir /data && chown redis:redis /data`; "
               "docker-entrypoint.sh execs any command other than redis-server as given",
        users={"redis": (999, 1000)},
        command_is_program=True,
        directories={"/data": Directory(999, 1000, 0o755)},
        volumes=frozenset({"/data"}),
    ),
    "haproxy": Image(
        programs=frozenset({"haproxy"}) | BUSYBOX,
        shell=True,
        source="docker-library/haproxy <version>/alpine/Dockerfile: addgroup --gid 99 and adduser --uid 99 "
               "haproxy, /var/lib/haproxy owned by it and the working directory, USER haproxy, "
               "docker-entrypoint.sh runs haproxy -W -db",
        users={"haproxy": (99, 99)},
    ),
    # Docker Hub's elasticsearch/logstash/kibana images are built from elastic/dockerfiles (branch per
    # minor, 9.x: redhat/ubi9-minimal). ubi9-minimal ships bash as /bin/sh, curl (curl-minimal: the
    # Dockerfiles' own RUN steps call it without installing it) and grep (Elasticsearch's entrypoint
    # uses it without installing it).
    "elasticsearch": Image(
        programs=frozenset({"sh", "/bin/sh", "bash", "curl", "grep", "unzip", "/bin/tini", "elasticsearch",
                            "elasticsearch-certutil", "elasticsearch-users", "elasticsearch-service-tokens"}),
        shell=True,
        source="elastic/dockerfiles 9.x elasticsearch/Dockerfile: USER 1000:0, data/ and logs/ 0775 owned by "
               "elasticsearch (1000), group 0, ENTRYPOINT /bin/tini -- docker-entrypoint.sh; unzip for "
               "elasticsearch-certutil's archives",
        directories={"/usr/share/elasticsearch/data": Directory(1000, 0, 0o775),
                     "/usr/share/elasticsearch/logs": Directory(1000, 0, 0o775)},
        entrypoint=("/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"),
    ),
    "logstash": Image(
        programs=frozenset({"sh", "/bin/sh", "bash", "curl", "grep", "logstash"}),
        shell=True,
        source="elastic/dockerfiles 9.x logstash/Dockerfile: USER 1000, /usr/share/logstash "
               "`chown -R logstash:root` and `chmod -R g=u`",
        directories={"/usr/share/logstash/data": Directory(1000, 0, 0o775)},
    ),
    "kibana": Image(
        programs=frozenset({"sh", "/bin/sh", "bash", "curl", "grep", "kibana", "/bin/tini",
                            "/usr/local/bin/kibana-docker"}),
        shell=True,
        source="elastic/dockerfiles 9.x kibana/Dockerfile: USER 1000, home owned 1000:0 and group-writable, "
               "ENTRYPOINT /bin/tini --, CMD /usr/local/bin/kibana-docker",
    ),
    "elastic/filebeat": Image(
        # The entrypoint is a bash script that passes flags and subcommands (`test config`) to
        # filebeat, which is on PATH (/usr/share/filebeat).
        programs=frozenset({"filebeat", "bash", "sh", "/bin/sh"}),
        shell=True,
        source="elastic/beats dev-tools/packaging/templates/docker/Dockerfile.tmpl: home `chown -R "
               "root:root`, data/ and logs/ 0770, user filebeat (1000) in group 0; docker-entrypoint.tmpl",
        directories={"/usr/share/filebeat/data": Directory(0, 0, 0o770)},
    ),
    # The Prometheus project's images are quay.io/prometheus/busybox with the binary; Prometheus 3.10+
    # also publishes a -distroless variant (no shell, no wget): the plain tag stays busybox.
    "prom/prometheus": Image(
        programs=frozenset({"/bin/prometheus", "promtool"}) | BUSYBOX,
        shell=True,
        source="prometheus/prometheus Dockerfile: busybox, USER nobody, /prometheus nobody:nobody g+w",
        directories={"/prometheus": Directory(65534, 65534, 0o775)},
        volumes=frozenset({"/prometheus"}),
    ),
    "prom/alertmanager": Image(
        programs=frozenset({"/bin/alertmanager", "amtool"}) | BUSYBOX,
        shell=True,
        source="prometheus/alertmanager Dockerfile (v0.31.1): busybox, USER nobody, /alertmanager "
               "nobody:nobody g+w",
        directories={"/alertmanager": Directory(65534, 65534, 0o775)},
        volumes=frozenset({"/alertmanager"}),
    ),
    "prom/node-exporter": Image(
        programs=frozenset({"/bin/node_exporter"}) | BUSYBOX,
        shell=True,
        source="prometheus/node_exporter Dockerfile: busybox, USER nobody",
    ),
    "axllent/mailpit": Image(
        # Its own Dockerfile's HEALTHCHECK is `/mailpit readyz`.
        programs=frozenset({"/mailpit"}) | BUSYBOX,
        shell=True,
        source="axllent/mailpit Dockerfile: alpine, /mailpit, HEALTHCHECK /mailpit readyz",
    ),
    "jaegertracing/jaeger": Image(
        # The release image is built FROM the project's base image, alpine (not scratch), so busybox
        # wget is there; USER 10001.
        programs=frozenset({"/cmd/jaeger/jaeger-linux"}) | BUSYBOX,
        shell=True,
        source="jaegertracing/jaeger v2.13.0 cmd/jaeger/Dockerfile and scripts/build/docker/base/Dockerfile "
               "(alpine 3.22); `VOLUME [\"/tmp\"]`",
        volumes=frozenset({"/tmp"}),
    ),
    # extensions/otel-collector. FROM scratch: no shell, no wget or curl, no passwd, no writable
    # directory; nothing in it can ask the health_check extension, so compose cannot healthcheck it.
    "otel/opentelemetry-collector-contrib": Image(
        programs=frozenset({"/otelcol-contrib"}),
        shell=False,
        source="open-telemetry/opentelemetry-collector-releases v0.156.0 distributions/otelcol-contrib/Dockerfile: "
               "FROM scratch, USER 10001:10001, ENTRYPOINT /otelcol-contrib, "
               "CMD --config /etc/otelcol-contrib/config.yaml",
        entrypoint=("/otelcol-contrib",),
    ),
    "grafana/grafana": Image(
        programs=frozenset({"grafana", "curl", "bash"}) | BUSYBOX,
        shell=True,
        source="grafana/grafana Dockerfile: alpine with `apk add ca-certificates bash curl tzdata musl-utils`, "
               "GF_UID 472, GF_GID 0, $GF_PATHS_DATA chown grafana:0 and chmod 777",
        directories={"/var/lib/grafana": Directory(472, 0, 0o777)},
    ),
    "locustio/locust": Image(
        programs=frozenset({"sh", "/bin/sh", "python", "locust"}),
        shell=True,
        source="locustio/locust Dockerfile: python slim, `useradd --create-home locust` (1000), ENTRYPOINT locust",
    ),
    # Loki's image is distroless since 3.6.0: no shell, no wget or curl. `loki -health` (3.7.0+)
    # probes its own /ready endpoint (grafana/loki#20313).
    "grafana/loki": Image(
        programs=frozenset({"/usr/bin/loki"}),
        shell=False,
        source="grafana/loki cmd/loki/Dockerfile: /loki owned by loki (10001:10001); CHANGELOG 3.7.0 "
               "`add loki health command`",
        directories={"/loki": Directory(10001, 10001, 0o755)},
    ),
    "grafana/alloy": Image(
        programs=frozenset({"/bin/alloy", "bash", "sh", "/bin/sh", "head", "grep"}),
        shell=True,
        source="grafana/alloy Dockerfile: ubuntu, user alloy (473:473) owning /var/lib/alloy (0770)",
        directories={"/var/lib/alloy/data": Directory(473, 473, 0o770)},
    ),
}

# Flags that exist only since a version: (image, program, flag) -> (.env.example variable, version).
FLAGS_SINCE: dict[tuple[str, str, str], tuple[str, tuple[int, ...]]] = {
    ("grafana/loki", "/usr/bin/loki", "-health"): ("LOKI_VERSION", (3, 7, 0)),
}
