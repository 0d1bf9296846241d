#!/usr/bin/env bash
# Builds the Go programs that the native sandbox runs and the tests use. They come from the pinned
# tools modules next to this script (tools/<module>/go.mod) and go into a cache outside the repository:
#
#   ${OBS_TOOLS_DIR:-$HOME/.cache/observability-stack/tools}/bin/<name>
#
# Usage: tools/build.sh NAME...   (the names of tools/go-tools.txt)
#
# docker-compose is the compose v2 plugin, for machines whose Docker engine came without one (Debian's
# docker.io): after the build it is linked into ${DOCKER_CONFIG:-~/.docker}/cli-plugins unless
# `docker compose` already works with a plugin of another origin (which is never shadowed).
#
# The pins live in .env.example (PROMETHEUS_VERSION, ALERTMANAGER_VERSION, JAEGER_VERSION,
# MAILPIT_VERSION, NODE_EXPORTER_VERSION, OTELCOL_VERSION). The go.mod files must select the same
# module versions; if they do not, the script stops. A binary that already reports the pinned version
# is left alone, so a repeated run costs milliseconds and needs no Go toolchain. Exit codes: 0 ok, 1 build or pin error, 2 usage, 3 a build is needed but Go is missing.
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$tools_dir")
bin_dir="${OBS_TOOLS_DIR:-$HOME/.cache/observability-stack/tools}/bin"
mapfile -t programs < <(awk '!/^#/ && NF { print $1 }' "$tools_dir/go-tools.txt")
[[ ${#programs[@]} -gt 0 ]] || { echo "tools/build.sh: no program names in $tools_dir/go-tools.txt" >&2; exit 1; }
known="${programs[*]}"

die() { echo "tools/build.sh: $*" >&2; exit 1; }

pin() { # the value of NAME= in .env.example, the one place versions are set
    local value
    value=$(sed -n "s/^$1=//p" "$repo_dir/.env.example")
    [[ -n $value ]] || die "$1 is not set in .env.example"
    echo "$value"
}

required_version() { # MODULE_DIR MODULE: the version go.mod selects for MODULE
    sed -nE "s#^(require)?[[:space:]]*$2 (v[^[:space:]]+).*#\2#p" "$tools_dir/$1/go.mod" | head -n 1
}

check_pin() { # MODULE_DIR MODULE EXPECTED_VERSION VARIABLE [HOW_TO_MOVE_THE_PIN]
    local selected
    selected=$(required_version "$1" "$2")
    [[ $selected == "$3" ]] ||
        die "tools/$1/go.mod selects $2 ${selected:-(nothing)}, but $4 in .env.example means $3." \
            "To move the pin: ${5:-in tools/$1, 'go get -tool $2/cmd/<program>@$3' for each of its tools, then 'go mod tidy'.}"
}

source_digest() { # short digest of the files a program of our own is built from
    local sum=sha256sum
    command -v sha256sum >/dev/null || sum="shasum -a 256"
    cat "$@" | $sum | cut -c1-12
}

reported_version() { # BINARY: its version output; Mailpit has a command for it, not a flag
    case ${1##*/} in
        mailpit) "$1" version --no-release-check 2>&1 ;; # without the option it asks GitHub
        docker-compose) "$1" version 2>&1 ;;
        *) "$1" --version 2>&1 ;; # jaeger logs a line before its version
    esac
}

now() { echo "${EPOCHREALTIME:-$SECONDS}"; }

require_go() { # only a build needs Go: binaries already in the cache run without it
    command -v go >/dev/null && return
    echo "tools/build.sh: 'go' is not on PATH, and $name must be built. Install Go (at least" \
         ".env.example's GO_VERSION=$(pin GO_VERSION)) and run this again." >&2
    exit 3
}

[[ $# -gt 0 ]] || { echo "usage: tools/build.sh NAME...  (one or more of: $known)" >&2; exit 2; }
for name in "$@"; do
    [[ " $known " == *" $name "* ]] || { echo "tools/build.sh: unknown program '$name' (known: $known)" >&2; exit 2; }
done
prometheus_version=$(pin PROMETHEUS_VERSION)
alertmanager_version=$(pin ALERTMANAGER_VERSION)
jaeger_version=$(pin JAEGER_VERSION)
mailpit_version=$(pin MAILPIT_VERSION)
node_exporter_version=$(pin NODE_EXPORTER_VERSION)
compose_version=$(pin COMPOSE_VERSION)
otelcol_version=$(pin OTELCOL_VERSION)
# Prometheus 3.x.y is published as Go module version v0.3xx.y (3.16.0 -> v0.316.0).
IFS=. read -r major minor patch <<<"$prometheus_version"
prometheus_module_version=$(printf 'v0.%d%02d.%d' "$major" "$minor" "$patch")
check_pin prometheus github.com/prometheus/prometheus "$prometheus_module_version" PROMETHEUS_VERSION
check_pin alertmanager github.com/prometheus/alertmanager "v$alertmanager_version" ALERTMANAGER_VERSION
# Jaeger 2.x.y is published as Go module version v1.(63+x).y (2.13.0 -> v1.76.0, the same commit):
# the module path has no /v2, so the v2 tags are no module versions.
IFS=. read -r major minor patch <<<"$jaeger_version"
[[ $major == 2 ]] || die "JAEGER_VERSION=$jaeger_version: only Jaeger 2.x is known to this script"
jaeger_module_version="v1.$((63 + minor)).$patch"
check_pin jaeger github.com/jaegertracing/jaeger "$jaeger_module_version" JAEGER_VERSION
check_pin mailpit github.com/axllent/mailpit "v$mailpit_version" MAILPIT_VERSION
check_pin node-exporter github.com/prometheus/node_exporter "v$node_exporter_version" NODE_EXPORTER_VERSION
check_pin otelcol go.opentelemetry.io/collector/otelcol "v$otelcol_version" OTELCOL_VERSION \
    "in tools/otelcol, 'go get' each module main.go imports at that release (and the stable ones at theirs), then 'go mod tidy'."

build_compose_plugin() { # TARGET: compose's go.mod has exclude directives, which `go install` refuses,
    # so its module is downloaded and built as the main module, in a writable copy.
    local module=github.com/docker/compose/v2 src
    src="$(dirname "$bin_dir")/src/compose-v$compose_version"
    if [[ ! -f $src/go.mod ]]; then
        local dir
        dir=$(go mod download -json "$module@v$compose_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
        [[ -n $dir ]] || die "go mod download $module@v$compose_version named no directory"
        rm -rf "$src.tmp" && mkdir -p "$(dirname "$src")" && cp -R "$dir" "$src.tmp" && chmod -R u+w "$src.tmp"
        mv "$src.tmp" "$src"
    fi
    (cd "$src" && CGO_ENABLED=0 nice -n 10 go build -buildvcs=false -trimpath \
        -ldflags "-s -w -X $module/internal.Version=v$compose_version" -o "$1" ./cmd)
}

link_compose_plugin() { # where the docker CLI looks, unless `docker compose` works without it (a
    # plugin of another origin, in ~/.docker or the system's plugin folders, is never shadowed)
    local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" link
    link="$plugins/docker-compose"
    if [[ -L $link && $(readlink "$link") == "$bin_dir/docker-compose" ]]; then
        return
    fi
    if [[ -e $link ]] || { command -v docker >/dev/null && docker compose version >/dev/null 2>&1; }; then
        echo "==> docker-compose: \`docker compose\` already has a plugin; this build is not linked"
        return
    fi
    mkdir -p "$plugins" && ln -sfn "$bin_dir/docker-compose" "$link"
}

mkdir -p "$bin_dir"
# Reproducible unless asked otherwise: the date only changes what `--version` prints.
build_date=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y%m%d-%H:%M:%S)

for name in "$@"; do
    main_version_flag="" version_line="" source=""
    case $name in
        prometheus | promtool)
            module_dir=prometheus package=github.com/prometheus/prometheus/cmd/$name
            version=$prometheus_version revision=$prometheus_module_version branch=v$prometheus_version ;;
        promql-names)
            # Our own program: its version names the source, so an edit triggers a rebuild.
            module_dir=prometheus package=./cmd/promql-names
            version="$prometheus_version+src.$(source_digest "$tools_dir"/prometheus/cmd/promql-names/*.go \
                "$tools_dir"/prometheus/go.mod "$tools_dir"/prometheus/go.sum)"
            revision=$version branch=local ;;
        alertmanager | amtool)
            module_dir=alertmanager package=github.com/prometheus/alertmanager/cmd/$name
            version=$alertmanager_version revision=v$alertmanager_version branch=v$alertmanager_version ;;
        compose-check)
            # Our own program (docker-compose.yml's loader for tests/static/compose): versioned by its
            # source like promql-names; it reads main.version.
            module_dir=compose package=.
            version="src.$(source_digest "$tools_dir"/compose/*.go "$tools_dir"/compose/go.mod "$tools_dir"/compose/go.sum)"
            revision=$version branch=local main_version_flag=" -X main.version=$version" ;;
        jaeger)
            module_dir=jaeger package=github.com/jaegertracing/jaeger/cmd/jaeger
            version=$jaeger_version revision=v$jaeger_version branch=v$jaeger_version
            # Jaeger's own version variables (scripts/makefiles/BuildInfo.mk upstream); the commit and
            # date are those of the v$jaeger_version tag, which the module zip does not carry.
            jv=github.com/jaegertracing/jaeger/internal/version
            case $jaeger_version in
                2.13.0) jaeger_commit=63b27e1810a710ac54dc4522da0538e540bdc545 jaeger_date=2025-12-03T16:28:56Z ;;
                *) jaeger_commit=unknown jaeger_date=unknown ;;
            esac
            main_version_flag=" -X $jv.latestVersion=v$version -X $jv.commitSHA=$jaeger_commit -X $jv.date=$jaeger_date"
            version_line="jaeger version v$version" ;;
        mailpit)
            # `mailpit version` prints the path of the binary first.
            module_dir=mailpit package=github.com/axllent/mailpit
            version=$mailpit_version revision=v$mailpit_version branch=v$mailpit_version
            main_version_flag=" -X github.com/axllent/mailpit/config.Version=v$version"
            version_line=" v$version compiled with " ;;
        node_exporter)
            module_dir=node-exporter package=github.com/prometheus/node_exporter
            version=$node_exporter_version revision=v$node_exporter_version branch=v$node_exporter_version ;;
        otelcol)
            # Our own composition of the collector (tools/otelcol/main.go): the collector release,
            # then its source, so that a change of components makes a rebuild; it reads main.version.
            module_dir=otelcol package=.
            version="$otelcol_version+src.$(source_digest "$tools_dir"/otelcol/main.go "$tools_dir"/otelcol/go.mod \
                "$tools_dir"/otelcol/go.sum)"
            revision=$version branch=local main_version_flag=" -X main.version=$version"
            version_line="otelcol version $version" ;;
        docker-compose)
            source="its own module, github.com/docker/compose/v2"
            version=$compose_version version_line="Docker Compose version v$version" ;;
    esac
    # What the binary's version output (reported_version) says when it is the pinned build.
    [[ -n $version_line ]] || version_line="$name, version $version "
    target="$bin_dir/$name"
    if [[ -x $target && $(reported_version "$target") == *"$version_line"* ]]; then
        echo "==> $name $version: up to date ($target)"
        [[ $name != docker-compose ]] || link_compose_plugin
        continue
    fi
    require_go
    echo "==> $name $version: building from ${source:-tools/$module_dir} ..."
    started=$(now)
    v=github.com/prometheus/common/version
    # One flag set for every program (CGO off, -trimpath, netgo) so they share the build cache;
    # without the -X flags `--version` would print an empty version (Jaeger and Mailpit have their
    # own variables, in main_version_flag; an -X for a package a program lacks is ignored). Built
    # under a temporary name and renamed, so a concurrent run never executes a half-written binary.
    if [[ $name == docker-compose ]]; then
        build_compose_plugin "$target.tmp.$$" || { rm -f "$target.tmp.$$"; die "building $name failed (go's output above)"; }
    else (
        cd "$tools_dir/$module_dir"
        CGO_ENABLED=0 nice -n 10 go build -buildvcs=false -trimpath -tags netgo \
            -ldflags "-s -w -X $v.Version=$version -X $v.Revision=$revision -X $v.Branch=$branch
                      -X $v.BuildUser=observability-stack -X $v.BuildDate=$build_date$main_version_flag" \
            -o "$target.tmp.$$" "$package"
    ) || { rm -f "$target.tmp.$$"; die "building $name failed (go's output above)"; }
    fi
    mv -f "$target.tmp.$$" "$target"
    [[ $(reported_version "$target") == *"$version_line"* ]] ||
        die "$name was built but its --version does not report $version"
    [[ $name != docker-compose ]] || link_compose_plugin
    echo "==> $name $version: built in $(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s ($target)"
done
