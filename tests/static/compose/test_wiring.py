"""What the services' files expect of docker-compose.yml, checked across the files for every variant:

- every environment variable a mounted config file or script reads without a default is set on
  that service (an unset one becomes an empty password, host or URL at start), and those a script
  reads with an "off" fallback are passed through;
- every `host:port` that names a compose service uses one of that service's container ports, in
  the environment, in commands and in mounted files alike; healthchecks probe their own service;
  and a listener another container reaches binds every interface of its container, not loopback;
- every path a program is told to read (flags, and paths inside its config files) is a file this
  repository mounts there, and each program's fixed config location (its image's convention) is;
- the start-up order is a DAG.
"""

from __future__ import annotations

import ast
import configparser
import glob
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.static.compose.stack import CONTAINER_PORTS, REPO, Stack, host_path, image_name, mount_of, mounted_repo_files
from tests.support.scripts import load_script

# --- environment variables -----------------------------------------------------------------------

# How a file reads a variable: REQUIRED has no fallback (unset means an empty password, host or URL);
# DEFAULTED has one in the file, by design (${env:X:-127.0.0.1} for the native sandbox); PASSED is a
# script's `.get(...)`: its fallback means "off", so compose must pass the variable through (a value,
# or a bare `NAME:` taken from the shell) unless a reason below says the fallback is what it wants.
REQUIRED, DEFAULTED, PASSED = "required", "defaulted", "passed"
Reader = Callable[[PurePosixPath, str], Iterator[tuple[str, str]]]


def _without_comment_lines(text: str, marker: str = "#") -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(marker))


def _dollar_brace(default_separator: str) -> Reader:
    """`${NAME}` and `${NAME<separator>default}`: Kibana and Logstash (`:`), render.sh (`:-`)."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(" + re.escape(default_separator) + r"[^}]*)?\}")

    def read(_path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
        for match in pattern.finditer(_without_comment_lines(text)):
            if "." not in match[1]:  # a dotted name is a setting (Filebeat's ${path.data}), not a variable
                yield match[1], DEFAULTED if match[2] is not None else REQUIRED
    return read


def _only(suffixes: tuple[str, ...], under: str, reader: Reader) -> Reader:
    def read(path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
        if path.suffix in suffixes and PurePosixPath(under) in path.parents:
            yield from reader(path, text)
    return read


def _grafana_provisioning(_path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
    """Grafana replaces $NAME and ${NAME} in provisioning files; `$$` is a literal `$`."""
    for match in re.finditer(r"\$\$|\$\{(\w+)\}|\$(\w+)", _without_comment_lines(text)):
        if match[0] != "$$":
            yield match[1] or match[2], REQUIRED


def _jaeger(_path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
    """The OpenTelemetry Collector's env provider: ${env:NAME} and ${env:NAME:-default}."""
    for match in re.finditer(r"\$\{env:(\w+)(:-[^}]*)?\}", _without_comment_lines(text)):
        yield match[1], DEFAULTED if match[2] is not None else REQUIRED


def _alloy(_path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
    for match in re.finditer(r"sys\.env\(\"(\w+)\"\)", _without_comment_lines(text, "//")):
        yield match[1], REQUIRED


def _python(path: PurePosixPath, text: str) -> Iterator[tuple[str, str]]:
    """`<env>["NAME"]` and `<env>.get("NAME", ...)` with a literal name, where <env> is os.environ or a
    mapping named env/environ."""
    if path.suffix != ".py":
        return

    def is_environment(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("env", "environ")) or (
            isinstance(node, ast.Attribute) and node.attr == "environ")

    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and is_environment(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            yield str(node.args[0].value), PASSED
        elif (isinstance(node, ast.Subscript) and is_environment(node.value)
              and isinstance(node.slice, ast.Constant)):
            yield str(node.slice.value), REQUIRED


# How each image's program reads the environment in its files. Images not named here do not expand
# the environment in the files compose gives them (Prometheus; Loki without -config.expand-env).
READERS: dict[str, Reader] = {
    "kibana": _only((".yml",), "/usr/share/kibana/config", _dollar_brace(":")),
    "logstash": _dollar_brace(":"),
    "elastic/filebeat": _dollar_brace(":"),
    "grafana/grafana": _only((".yml", ".yaml"), "/etc/grafana/provisioning", _grafana_provisioning),
    "jaegertracing/jaeger": _jaeger,
    # alertmanager/render.sh fills ${NAME} and ${NAME:-default} in the templates (alertmanager/README.md).
    "prom/alertmanager": _only((".tmpl",), "/etc/alertmanager/src", _dollar_brace(":-")),
    "grafana/alloy": _alloy,
    "locustio/locust": _python,
    "observability-stack/app": _python,
}
# Programs that read only the file their command line names (of the folder compose mounts): Jaeger
# reads config.yaml or config-elasticsearch.yaml, never both.
READS_ONLY_FILES_IT_IS_GIVEN = frozenset({"jaegertracing/jaeger", "grafana/alloy", "locustio/locust",
                                          "observability-stack/app"})
# Variables a script reads with a fallback that compose deliberately leaves to it.
FALLBACK_IS_RIGHT = {
    ("setup", "SETUP_TIMEOUT_SECONDS"): "300 s per wait suits compose, which waits up to 15 min in all",
}


def environment_references(service: dict[str, Any]) -> Iterator[tuple[Path, str, str]]:
    """(file, variable, how it is read) of what the service's program reads in its mounted files."""
    image = image_name(service["image"])
    reader = READERS.get(image)
    if reader is None:
        return
    given = set(_flag_paths([*(service.get("entrypoint") or []), *(service.get("command") or [])]))
    for container_path, file in mounted_repo_files(service):
        if image in READS_ONLY_FILES_IT_IS_GIVEN and str(container_path) not in given:
            continue
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        for name, how in reader(container_path, text):
            yield file, name, how


def test_the_readers_find_references_and_how_they_are_read() -> None:
    """The patterns above can fail: they see a missing variable, and a default where there is one."""
    conf = 'a => "${A}"\nb => "${B:x:1}"\n# ${C}\n${path.data}'
    assert list(_dollar_brace(":")(PurePosixPath("/x.conf"), conf)) == [("A", REQUIRED), ("B", DEFAULTED)]
    provisioning = "p: $PW\nq: ${Q}\nurl: '$${__value.raw}'"
    assert list(_grafana_provisioning(PurePosixPath("/d.yml"), provisioning)) == [("PW", REQUIRED), ("Q", REQUIRED)]
    assert list(_jaeger(PurePosixPath("/c.yaml"), "h: ${env:H:-127.0.0.1}\np: ${env:P}")) == [
        ("H", DEFAULTED), ("P", REQUIRED)]
    script = "import os\nos.environ['A']\nenv.get('B', '')\nx.get('C')"
    assert set(_python(PurePosixPath("/s.py"), script)) == {("A", REQUIRED), ("B", PASSED)}


def exported_by_entrypoint(service: dict[str, Any]) -> set[str]:
    """Variables that a script of ours, mounted and run as the service's entrypoint or command, exports
    before it starts the program (extensions/elasticsearch-cluster/kibana-start.sh)."""
    run = {str(word) for word in [*(service.get("entrypoint") or []), *(service.get("command") or [])]}
    return {variable for container_path, file in mounted_repo_files(service) if str(container_path) in run
            for variable in re.findall(r"^\s*export\s+([A-Z_][A-Z0-9_]*)", file.read_text(), re.MULTILINE)}


def test_every_variable_a_mounted_file_reads_is_set_on_its_service(stack: Stack) -> None:
    unset = []
    for name, service in stack.services.items():
        environment = {**dict.fromkeys(exported_by_entrypoint(service), "(exported)"),
                       **(service.get("environment") or {})}
        for file, variable, how in environment_references(service):
            without_value = how == REQUIRED and not environment.get(variable)
            not_passed = how == PASSED and variable not in environment and (name, variable) not in FALLBACK_IS_RIGHT
            if without_value or not_passed:
                unset.append(f"{name}: {variable} ({how}) in {file.relative_to(REPO)}")
    assert not unset, "variables the service's files read but docker-compose.yml does not set:\n" + "\n".join(unset)


def test_setup_gets_every_password_and_the_compose_urls(stack: Stack) -> None:
    """setup/provision.py takes its password variables' names from its tables (USERS): read them there."""
    provision = _load_provision()
    environment = stack.services["setup"]["environment"]
    settings = provision.Settings.from_env(environment)
    assert settings.elastic_password, "ELASTIC_PASSWORD"
    assert all(settings.passwords.values()), {k for k, v in settings.passwords.items() if not v}
    assert settings.elasticsearch_url == "http://elasticsearch:9200"
    assert settings.kibana_url == "http://kibana:5601"


def _load_provision() -> ModuleType:
    return load_script(REPO / "setup" / "provision.py", "compose_wiring_provision")


# --- host:port ------------------------------------------------------------------------------------

# `host:port`, `//host:port`, `@host:port`; not part of a longer name, a number or an IP address.
_HOST_PORT = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d{2,5})(?!\d)")


def _texts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) of everything of a service that can name another service's address."""
    for key, value in (service.get("environment") or {}).items():
        yield f"environment {key}", value or ""
    for key in ("command", "entrypoint"):
        yield key, " ".join(service.get(key) or [])
    for _, file in mounted_repo_files(service):
        try:
            yield str(file.relative_to(REPO)), file.read_text()
        except UnicodeDecodeError:
            continue


def test_the_port_table_covers_every_service(stack: Stack) -> None:
    assert set(stack.services) <= set(CONTAINER_PORTS), set(stack.services) - set(CONTAINER_PORTS)


def test_every_address_of_a_service_uses_one_of_its_ports(stack: Stack) -> None:
    wrong = []
    for name, service in stack.services.items():
        for where, text in _texts(service):
            for host, port in _HOST_PORT.findall(text):
                if host in stack.services and int(port) not in CONTAINER_PORTS[host]:
                    wrong.append(f"{name}, {where}: {host}:{port} (its ports: {sorted(CONTAINER_PORTS[host])})")
        environment = service.get("environment") or {}
        for key, value in environment.items():  # SMTP_HOST=mailpit with SMTP_PORT=1025, and the like
            port_key = key.removesuffix("_HOST") + "_PORT"
            if (key.endswith("_HOST") and value in stack.services and port_key in environment
                    and int(environment[port_key]) not in CONTAINER_PORTS[value]):
                wrong.append(f"{name}: {key}={value} with {port_key}={environment[port_key]}")
    assert not wrong, "addresses that reach no listener:\n" + "\n".join(wrong)


def test_the_address_pattern_sees_hosts_and_skips_the_rest() -> None:
    text = "postgresql://app:pw@postgres:5432/app http://jaeger:4318 worker@%h 10.0.0.1:80 image:9.5.6 x.app:1"
    assert _HOST_PORT.findall(text) == [("postgres", "5432"), ("jaeger", "4318")]


def test_published_ports_and_healthchecks_use_the_service_own_ports(stack: Stack) -> None:
    for name, service in stack.services.items():
        for port in service.get("ports") or []:
            assert port["target"] in CONTAINER_PORTS[name], f"{name} publishes container port {port['target']}"
        test = " ".join((service.get("healthcheck") or {}).get("test") or [])
        for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", test):
            assert int(port) in CONTAINER_PORTS[name], f"{name}'s healthcheck probes port {port}, not its own"


# Listeners that other containers reach (or the host, through a published port) must bind every
# interface of their container, not its loopback; what says so for each, where compose decides it.
LISTEN_ADDRESS: dict[tuple[str, int], Callable[[dict[str, Any]], str | None]] = {
    ("app", 8000): lambda s: s["environment"]["APP_BIND"].rsplit(":", 1)[0],
    ("app", 9464): lambda s: s["environment"].get("METRICS_BIND_ADDRESS"),
    ("worker", 9465): lambda s: s["environment"].get("METRICS_BIND_ADDRESS"),
    ("webhook-sink", 9099): lambda s: s["command"][s["command"].index("--host") + 1],
    ("app-lb", 8000): lambda s: _haproxy_bind(s, "app"),
    ("kibana", 5601): lambda s: yaml.safe_load(host_path(s, "/usr/share/kibana/config/kibana.yml").read_text())[
        "server.host"],
    # jaeger/config*.yaml default to 127.0.0.1 for the native sandbox: compose must say 0.0.0.0.
    **{("jaeger", port): (lambda s: (s.get("environment") or {}).get("JAEGER_LISTEN_HOST"))
       for port in (16686, 4317, 4318, 8888)},
}


def _haproxy_bind(service: dict[str, Any], frontend: str) -> str | None:
    """The address of the `bind` line of HAProxy's ``frontend`` (``:8000`` is every interface)."""
    text = host_path(service, "/usr/local/etc/haproxy/haproxy.cfg").read_text()
    section = re.search(rf"^frontend {frontend}\n((?:[ \t]+.*\n|\n)*)", text, re.MULTILINE)
    bind = re.search(r"^\s+bind (\S*):\d+", section[1], re.MULTILINE) if section else None
    return (bind[1] or "0.0.0.0") if bind else None


# The image's program listens on every interface unless told otherwise, and compose does not tell it.
ALL_INTERFACES_BY_DEFAULT = frozenset({
    ("postgres", 5432), ("redis", 6379), ("elasticsearch", 9200), ("elasticsearch-2", 9200),
    ("elasticsearch-3", 9200), ("logstash", 5044), ("prometheus", 9090),
    ("alertmanager", 9093), ("grafana", 3000), ("mailpit", 8025), ("mailpit", 1025), ("node-exporter", 9100),
    ("loadgen", 8089), ("loki", 3100),
})


def test_listeners_that_others_reach_bind_every_interface(stack: Stack) -> None:
    reached = {(name, port["target"]) for name, s in stack.services.items() for port in s.get("ports") or []}
    for name, service in stack.services.items():
        for _, text in _texts(service):
            reached |= {(host, int(port)) for host, port in _HOST_PORT.findall(text)
                        if host in stack.services and host != name}
    for service_name, port in sorted(reached):
        if (service_name, port) in ALL_INTERFACES_BY_DEFAULT:
            continue
        assert (service_name, port) in LISTEN_ADDRESS, f"{service_name}:{port} is reached: say where it binds"
        address = LISTEN_ADDRESS[(service_name, port)](stack.services[service_name])
        assert address == "0.0.0.0", f"{service_name}:{port} listens on {address!r}: other containers cannot reach it"


# --- paths ------------------------------------------------------------------------------------------

# Where each program reads its configuration when nothing says otherwise: the image's convention.
# compose must mount the repository's file exactly there.
CONVENTIONAL_CONFIG: dict[str, tuple[str, ...]] = {
    # path.settings of the Logstash image (elastic/dockerfiles logstash/Dockerfile COPYs both there).
    "logstash": ("/usr/share/logstash/config/logstash.yml", "/usr/share/logstash/config/pipelines.yml"),
    # The Kibana image's config directory (elastic/dockerfiles kibana/Dockerfile).
    "kibana": ("/usr/share/kibana/config/kibana.yml",),
    # path.config is path.home, the image's WORKDIR /usr/share/filebeat.
    "elastic/filebeat": ("/usr/share/filebeat/filebeat.yml",),
    # GF_PATHS_CONFIG of the Grafana image.
    "grafana/grafana": ("/etc/grafana/grafana.ini",),
}
# Directories a program scans for files of its own (Grafana: GF_PATHS_PROVISIONING/<kind>/).
CONVENTIONAL_DIRECTORIES: dict[str, tuple[str, ...]] = {
    "grafana/grafana": ("/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"),
}


def _flag_paths(argv: list[str]) -> Iterator[str]:
    """Absolute paths in an argv: arguments, `--flag=/path` and `-flag=/path`."""
    for argument in argv:
        value = argument.split("=", 1)[1] if argument.startswith("-") and "=" in argument else argument
        if value.startswith("/"):
            yield value


def _config_paths(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, container path) of the paths the service's own config files name."""
    for container_path, file in mounted_repo_files(service):
        if file.name == "pipelines.yml":
            for pipeline in yaml.safe_load(file.read_text()):
                yield f"{file.name} path.config", pipeline["path.config"]
        elif file.name == "dashboards.yml" and "provisioning" in file.parts:
            for provider in yaml.safe_load(file.read_text())["providers"]:
                yield f"{file.name} options.path", provider["options"]["path"]
        elif file.name == "grafana.ini":
            ini = configparser.ConfigParser()
            ini.read_string(file.read_text())
            if ini.has_option("dashboards", "default_home_dashboard_path"):
                yield "grafana.ini default_home_dashboard_path", ini["dashboards"]["default_home_dashboard_path"]
        elif file.name == "prometheus.yml" and container_path.name == "prometheus.yml" and "targets" not in file.parts:
            config = yaml.safe_load(file.read_text())
            relative = list(config.get("rule_files") or [])
            for job in [*config.get("scrape_configs", []), *config.get("alerting", {}).get("alertmanagers", [])]:
                for sd in job.get("file_sd_configs", []):
                    relative += sd["files"]
            for pattern in relative:
                yield f"{file.name} {pattern}", str(container_path.parent / pattern)


def test_every_path_a_program_is_given_is_mounted_from_an_existing_file(stack: Stack) -> None:
    missing = []
    for name, service in stack.services.items():
        argv = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
        wanted = [(f"argument {p}", p) for p in _flag_paths(argv)] + list(_config_paths(service))
        for what, path in wanted:
            mount = mount_of(service, path)
            if mount is None or mount.kind != "bind" or not Path(mount.source).is_relative_to(REPO):
                continue  # the image's own file, a volume, a tmpfs or the host's: nothing of the repository
            source = host_path(service, path)
            if source is None or not glob.glob(str(source)):
                missing.append(f"{name}: {what} -> {source or path}")
    assert not missing, "paths that point at no file of the repository:\n" + "\n".join(missing)


def test_each_program_reads_its_config_where_compose_mounts_it(stack: Stack) -> None:
    for name, service in stack.services.items():
        key = image_name(service["image"])
        for path in CONVENTIONAL_CONFIG.get(key, ()):
            source = host_path(service, path)
            assert source is not None and source.is_file(), f"{name} reads {path}, which compose does not mount"
        for directory in CONVENTIONAL_DIRECTORIES.get(key, ()):
            mounted = [p for p, _ in mounted_repo_files(service) if PurePosixPath(directory) in p.parents]
            assert mounted, f"{name} scans {directory}/, where compose mounts nothing"


# --- start-up order ------------------------------------------------------------------------------


def start_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """The services in an order compose can start them; fails on a cycle."""
    order: list[str] = []
    remaining = {name: set(s.get("depends_on") or {}) for name, s in services.items()}
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if deps <= set(order))
        assert ready, f"depends_on has a cycle among {sorted(remaining)}"
        order += ready
        for name in ready:
            del remaining[name]
    return order


def test_the_start_order_is_a_dag_whose_waits_can_be_met(stack: Stack) -> None:
    order = start_order(stack.services)
    assert order.index("elasticsearch") < order.index("setup") < order.index("logstash") < order.index("filebeat")
    for name, service in stack.services.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            if dependency["condition"] == "service_healthy":
                check = stack.services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits for {target}'s health: none"


def test_the_cycle_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="cycle"):
        start_order({"a": {"depends_on": {"b": {}}}, "b": {"depends_on": {"a": {}}}})
