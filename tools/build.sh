#!/usr/bin/env bash
# Builds the Go programs that the native sandbox runs and the tests use, Prometheus and Mailpit with
# their web UIs, from the pinned tools modules next to this script (tools/<module>/go.mod) and the npm
# registry, into a cache outside the repository:
#
#   ${OBS_TOOLS_DIR:-$HOME/.cache/observability-stack/tools}/bin/<name>
#
# Usage: tools/build.sh NAME...          (the names of tools/go-tools.txt)
#        tools/build.sh --recipe NAME    (the digest of NAME's recipe; see "Up to date" below)
#
# The pins live in .env.example (PROMETHEUS_VERSION, ALERTMANAGER_VERSION, JAEGER_VERSION,
# MAILPIT_VERSION, NODE_EXPORTER_VERSION, OTELCOL_VERSION, COMPOSE_VERSION, HELM_VERSION, PNPM_VERSION
# for Prometheus's UI, and PROMETHEUS_OPERATOR_VERSION and ECK_VERSION for the CRDs kubecheck embeds).
# The go.mod files must select the same module versions; if they do not, the script stops.
#
# Up to date: a binary is left alone when it reports the pinned version and the cache's recipes/<name>
# holds the digest of the recipe that built it: its version, build tags and flags, and for a web UI
# the text of the functions that build it (comments are no part of it) and their pins. A repeated run
# costs milliseconds and needs no Go; a change of version or recipe rebuilds.
#
# How: each program (or group of programs) is built by a background job in three steps, and has one
# line that says what it is doing and for how long (on a terminal the lines are redrawn in place; into
# a pipe: a line when a build starts, a summary every 30 s and a line when it ends):
#   1. downloading modules: `go list -deps` of its packages, which fetches exactly the modules they
#      import into Go's module cache, and for the programs built in a writable copy of their module
#      (Prometheus, Mailpit, the compose plugin) that copy, in <cache>/src; for kubecheck a copy of
#      tools/kubecheck with the operators' CRDs from their modules beside it. Every job downloads at
#      once; what was fetched stays, so a retry after a network failure resumes.
#   2. installing npm packages, then building UI (Prometheus and Mailpit): the UI's locked packages,
#      the few versions the npm registry here does not serve replaced, then the UI's own build. Its
#      assets stay in the copy, so only a new version or UI recipe builds them again.
#   3. compiling: `go build`, CGO off, -trimpath, stripped. Programs of one module with the same
#      flags compile in one `go build` (prometheus with promtool, alertmanager with amtool).
# Building a UI and compiling take a core: at most one job per core (OBS_TOOLS_JOBS overrides) does
# either at a time, shared with concurrent runs, the longest builds first; downloads never wait.
# The whole output of go, npm and pnpm goes to <cache>/logs/<group>.log with each step's wall and CPU
# time; a failed build names its log and prints its last lines. Concurrent runs of this script take
# turns per group (a lock in <cache>/locks).
#
# The compose plugin, docker-compose, is for machines whose Docker engine came without one (Debian's
# docker.io): after the build it is linked into ${DOCKER_CONFIG:-~/.docker}/cli-plugins unless
# `docker compose` already works with a plugin of another origin (which is never shadowed).
#
# Exit codes: 0 ok, 1 build or pin error, 2 usage, 3 a build is needed but its toolchain is missing
# (Go; Node.js and npm for a web UI).
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$tools_dir")
cache_dir="${OBS_TOOLS_DIR:-$HOME/.cache/observability-stack/tools}"
bin_dir="$cache_dir/bin"
recipe_dir="$cache_dir/recipes"  # recipes/<name>: the recipe digest of bin/<name>
log_dir="$cache_dir/logs"
src_dir="$cache_dir/src"         # writable module copies
node_dir="$cache_dir/node"       # pnpm, the npm cache and pnpm's store
lock_dir="$cache_dir/locks"
mapfile -t programs < <(awk '!/^#/ && NF { print $1 }' "$tools_dir/go-tools.txt")
[[ ${#programs[@]} -gt 0 ]] || { echo "tools/build.sh: no program names in $tools_dir/go-tools.txt" >&2; exit 1; }
known="${programs[*]}"
# The order in which waiting builds get a core: the longest first, so that the short ones fill the gaps.
longest_first="jaeger otelcol prometheus docker-compose helm kubecheck mailpit alertmanager node_exporter promql-names compose-check"

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

sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }

source_digest() { # short digest of the files a program of our own is built from
    cat "$@" | sha256 | cut -c1-12
}

reported_version() { # BINARY: its version output; Mailpit has a command for it, not a flag
    case ${1##*/} in
        mailpit) "$1" version --no-release-check 2>&1 ;; # without the option it asks GitHub
        docker-compose | helm) "$1" version 2>&1 ;;
        *) "$1" --version 2>&1 ;; # jaeger logs a line before its version
    esac
}

usage() {
    echo "usage: tools/build.sh NAME...  (one or more of: $known)" >&2
    echo "       tools/build.sh --recipe NAME" >&2
    exit 2
}

mode=build
if [[ ${1:-} == --recipe ]]; then
    mode=recipe
    shift
    [[ $# -eq 1 ]] || usage
fi
[[ $# -gt 0 ]] || usage
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
helm_version=$(pin HELM_VERSION)
prometheus_operator_version=$(pin PROMETHEUS_OPERATOR_VERSION)
eck_version=$(pin ECK_VERSION)
pnpm_version=$(pin PNPM_VERSION)
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
check_pin helm helm.sh/helm/v4 "v$helm_version" HELM_VERSION
check_pin otelcol go.opentelemetry.io/collector/otelcol "v$otelcol_version" OTELCOL_VERSION \
    "in tools/otelcol, 'go get' each module main.go imports at that release (and the stable ones at theirs), then 'go mod tidy'."

# --- recipes --------------------------------------------------------------------------------------

# What every build shares, so that the programs share Go's build cache too. GOWORK=off: a module
# copy's go.work names folders its zip lacks. An -X for a package a program lacks is ignored.
export CGO_ENABLED=0 GOWORK=off
go_build_flags=(-buildvcs=false -trimpath)
common_ldflags="-s -w"
pv=github.com/prometheus/common/version

recipe() { # NAME: sets how NAME is built. group: the programs built by one `go build`; build_in:
    # tools/<module_dir>, or a writable copy of module copy_of, or with crds set a copy of
    # tools/<module_dir> with the operators' CRDs in it; ui: the web UI its binary embeds.
    local main_version_flag="" revision branch
    group=$1 copy_of="" ui="" crds="" tags=netgo version_line=""
    case $1 in
        prometheus | promtool)
            # In the module's copy, where the UI's assets go (-tags builtinassets). Service discovery:
            # file and http (always in), and DNS for a scaled service; promtool has the same set, so
            # that the configurations it accepts are those this prometheus runs.
            group=prometheus module_dir=prometheus copy_of=github.com/prometheus/prometheus package=./cmd/$1
            tags=netgo,builtinassets,remove_all_sd,enable_dns_sd
            [[ $1 == promtool ]] || ui=prometheus
            version=$prometheus_version revision=$prometheus_module_version branch=v$prometheus_version ;;
        promql-names)
            # Our own program: its version names the source, so an edit triggers a rebuild.
            module_dir=prometheus package=./cmd/promql-names
            version="$prometheus_version+src.$(source_digest "$tools_dir"/prometheus/cmd/promql-names/*.go \
                "$tools_dir"/prometheus/go.mod "$tools_dir"/prometheus/go.sum)"
            revision=$version branch=local ;;
        alertmanager | amtool)
            # 0.31.1 carries its compiled classic UI in the module (asset/assets_vfsdata.go).
            group=alertmanager module_dir=alertmanager package=github.com/prometheus/alertmanager/cmd/$1
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
            local jv=github.com/jaegertracing/jaeger/internal/version jaeger_commit=unknown jaeger_date=unknown
            case $jaeger_version in
                2.13.0) jaeger_commit=63b27e1810a710ac54dc4522da0538e540bdc545 jaeger_date=2025-12-03T16:28:56Z ;;
            esac
            main_version_flag=" -X $jv.latestVersion=v$version -X $jv.commitSHA=$jaeger_commit -X $jv.date=$jaeger_date"
            version_line="jaeger version v$version" ;;
        mailpit)
            # In the module's copy, where the UI's assets go (server/ui/dist, embedded by server/embed.go).
            # `mailpit version` prints the path of the binary first.
            module_dir=mailpit copy_of=github.com/axllent/mailpit package=. ui=mailpit
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
        helm)
            # What renders deploy/helm's chart for tests/static (`helm template`: no cluster needed).
            # `helm version` prints the version the -X sets; the module's own says only "v4.3".
            module_dir=helm package=helm.sh/helm/v4/cmd/helm
            version=$helm_version revision=v$helm_version branch=v$helm_version
            main_version_flag=" -X helm.sh/helm/v4/internal/version.version=v$version"
            version_line="Version:\"v$version\"" ;;
        kubecheck)
            # Our own program (the rendered Kubernetes objects' checker for tests/static): versioned by
            # its source and the operator releases whose CRDs it embeds (kubecheck_crds), which the
            # build copies into crds/ of a copy of tools/kubecheck; it reads main.version.
            module_dir=kubecheck package=. crds=kubecheck_crds
            version="src.$(source_digest "$tools_dir"/kubecheck/*.go "$tools_dir"/kubecheck/go.mod \
                "$tools_dir"/kubecheck/go.sum)+prometheus-operator.$prometheus_operator_version+eck.$eck_version"
            revision=$version branch=local main_version_flag=" -X main.version=$version" ;;
        docker-compose)
            # Its own module, built as the main module in a copy: compose's go.mod has exclude
            # directives, which `go install` refuses. No tools/ module pins it: COMPOSE_VERSION does.
            module_dir="" copy_of=github.com/docker/compose/v2 package=./cmd
            version=$compose_version revision=v$compose_version branch=v$compose_version
            main_version_flag=" -X github.com/docker/compose/v2/internal.Version=v$version"
            version_line="Docker Compose version v$version" ;;
    esac
    # What the binary's version output (reported_version) says when it is the pinned build.
    [[ -n $version_line ]] || version_line="$1, version $version "
    # Without the -X flags `--version` would print an empty version; the build date is added at build
    # time and is no part of the recipe (SOURCE_DATE_EPOCH fixes it).
    ldflags="$common_ldflags -X $pv.Version=$version -X $pv.Revision=$revision -X $pv.Branch=$branch"
    ldflags+=" -X $pv.BuildUser=observability-stack$main_version_flag"
}

ui_recipe() { # UI: what makes that UI (its steps and pins), for the recipe's digest
    case $1 in
        prometheus) echo "pnpm $pnpm_version"; declare -f ui_install_prometheus ui_build_prometheus \
                        use_pnpm set_package_field drop_locked_version ;;
        mailpit) declare -f ui_install_mailpit ui_build_mailpit set_package_field ;;
    esac
}

recipe_digest() { # NAME, after `recipe NAME`: what its binary in the cache must have been built by
    { printf '%s\n' "$1" "$version_line" "$module_dir" "$copy_of" "$package" "$tags" "$ldflags" \
          "CGO_ENABLED=$CGO_ENABLED GOWORK=$GOWORK ${go_build_flags[*]}"
      ui_recipe "$ui"
      [[ -z $crds ]] || declare -f "$crds" copy_crds; } | sha256 | cut -c1-16
}

is_current() { # NAME, after `recipe NAME`
    local target="$bin_dir/$1"
    [[ -x $target && $(cat "$recipe_dir/$1" 2>/dev/null) == "$(recipe_digest "$1")" &&
       $(reported_version "$target") == *"$version_line"* ]]
}

# --- the web UIs (run in the module's copy, by the group's job) ------------------------------------

set_package_field() { # FILE SECTION NAME VALUE: package.json's SECTION.NAME = VALUE
    node -e '
        const fs = require("fs");
        const [file, section, name, value] = process.argv.slice(1);
        const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
        pkg[section] = { ...pkg[section], [name]: value };
        fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");' "$@"
}

drop_locked_version() { # LOCKFILE PACKAGE VERSION: forget what pnpm's lockfile locked of PACKAGE@VERSION
    # (its packages and snapshots entries, and the importers' entries resolved to it), so that an
    # install resolves that package again from its package.json's specifier.
    awk -v pkg="$2" -v ver="$3" '
        function key(line) { sub(/^ +/, "", line); sub(/:$/, "", line); gsub(/\047/, "", line); return line }
        {
            indent = match($0, /[^ ]/) - 1
            if (skipping) {
                if ($0 == "" || indent > 2) next
                skipping = 0
            }
            if (indent == 2 && index(key($0), pkg "@" ver) == 1) { skipping = 1; next }
            if (held != "" && indent != 8) {
                if (!drop) printf "%s", held
                held = ""; drop = 0
            }
            if (indent == 6 && key($0) == pkg) { held = $0 "\n"; next }
            if (held != "") {
                held = held $0 "\n"
                if ($1 == "version:" && index($2, ver) == 1) drop = 1
                next
            }
            print
        }
        END { if (held != "" && !drop) printf "%s", held }' "$1" > "$1.tmp" && mv "$1.tmp" "$1"
}

ui_install_prometheus() { # pnpm (PNPM_VERSION, into the cache), then web/ui's workspace packages
    local pnpm_home="$node_dir/pnpm-$pnpm_version"
    if [[ ! -x $pnpm_home/bin/pnpm ]]; then
        rm -rf "$pnpm_home" "$pnpm_home.tmp"
        npm install --global --prefix "$pnpm_home.tmp" "pnpm@$pnpm_version"
        mv "$pnpm_home.tmp" "$pnpm_home"
    fi
    use_pnpm
    cd web/ui
    # The lockfile's versions that the npm registry here does not serve, each replaced by a served
    # one: pinned exactly in package.json and forgotten by the lockfile, which is resolved again
    # where it no longer matches (--no-frozen-lockfile); everything else stays as locked.
    case $prometheus_version in
        3.16.0)
            set_package_field mantine-ui/package.json dependencies @mantine/code-highlight 9.6.2
            drop_locked_version pnpm-lock.yaml @mantine/code-highlight 9.7.2 ;;
    esac
    pnpm install --no-frozen-lockfile --store-dir "$node_dir/pnpm-store"
}

ui_build_prometheus() { # the Mantine UI (the React UI's sources are not in the module), then
    # its assets gzipped and listed in web/ui/embed.go, which -tags builtinassets compiles in
    use_pnpm
    (cd web/ui && CI="" pnpm run build:mantine-ui)
    bash scripts/compress_assets.sh
}

ui_install_mailpit() {
    case $mailpit_version in
        1.33.1) # rapidoc 12 (the API page's viewer) and sass-embedded 1.108.1 are not served here.
            set_package_field package.json dependencies rapidoc 9.3.8
            set_package_field package.json overrides sass-embedded 1.108.2 ;;
    esac
    npm install
}

ui_build_mailpit() { # esbuild into server/ui/dist, which server/embed.go embeds
    npm run build
}

use_pnpm() { # in a UI step's subshell: the pinned pnpm first on PATH (web/ui's scripts call it),
    # its caches and state in the tools cache (XDG_* would move Go's cache too: never set for go)
    export PATH="$node_dir/pnpm-$pnpm_version/bin:$PATH" XDG_CACHE_HOME="$node_dir/cache" \
        XDG_DATA_HOME="$node_dir/data" XDG_STATE_HOME="$node_dir/state"
}

# --- the CRDs kubecheck embeds (copied into its build copy, by its job) ------------------------------

kubecheck_crds() { # operator MODULE VERSION FILES...: where each operator's CustomResourceDefinitions are
    # in its own module. The Prometheus Operator's main module is served at 0.85.0 only here (its
    # pkg/apis module, newer, has the Go types but no CRD files).
    echo "prometheus-operator github.com/prometheus-operator/prometheus-operator v$prometheus_operator_version" \
         "example/prometheus-operator-crd/*.yaml"
    echo "eck github.com/elastic/cloud-on-k8s/v3 v$eck_version config/crds/v1/all-crds.yaml"
}

copy_crds() { # into $work/crds/<operator>/: the files "$crds" names, from the operators' modules
    local operator module module_version files dir
    while read -r operator module module_version files; do
        dir=$(cd "$tools_dir" && go mod download -json "$module@$module_version")
        dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$dir")
        [[ -n $dir ]] || { echo "go mod download $module@$module_version named no directory"; return 1; }
        mkdir -p "$work.tmp/crds/$operator"
        (cd "$dir" && cp $files "$work.tmp/crds/$operator/") # $files: globs, expanded here
    done < <("$crds")
    chmod -R u+w "$work.tmp/crds"
}

crd_copy() { # tools/<module_dir> with the operators' CRDs, in a writable copy at $work
    local marker
    marker="$version $(declare -f "$crds" copy_crds | sha256 | cut -c1-16)"
    [[ $(cat "$work/.obs-copy" 2>/dev/null) != "$marker" ]] || return 0
    rm -rf "$work" "$work.tmp"
    cp -R "$tools_dir/$module_dir" "$work.tmp"
    copy_crds
    echo "$marker" > "$work.tmp/.obs-copy"
    mv "$work.tmp" "$work"
}

# --- --recipe -------------------------------------------------------------------------------------

if [[ $mode == recipe ]]; then
    recipe "$1"
    recipe_digest "$1"
    exit 0
fi

# --- which programs need a build ------------------------------------------------------------------

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

declare -A members=() title=() grp=()  # group -> its programs to build; program -> "name version", its group
groups=() stale=() needs_node=()
for name in "$@"; do
    [[ -z ${grp[$name]:-} ]] || continue
    recipe "$name"
    grp[$name]=$group
    if is_current "$name"; then
        echo "==> $name $version: up to date ($bin_dir/$name)"
        [[ $name != docker-compose ]] || link_compose_plugin
        continue
    fi
    stale+=("$name")
    title[$name]="$name $version"
    [[ -n ${members[$group]:-} ]] || groups+=("$group")
    members[$group]+="${members[$group]:+ }$name"
    [[ -z $ui ]] || needs_node+=("$name")
done
[[ ${#stale[@]} -gt 0 ]] || exit 0

if ! command -v go >/dev/null; then
    echo "tools/build.sh: 'go' is not on PATH, and ${stale[*]} must be built. Install Go (at least" \
         ".env.example's GO_VERSION=$(pin GO_VERSION)) and run this again." >&2
    exit 3
fi
if [[ ${#needs_node[@]} -gt 0 ]]; then
    node_version=$(node -p process.versions.node 2>/dev/null || true)
    IFS=. read -r major minor _ <<<"${node_version:-0.0.0}"
    if ! command -v npm >/dev/null || ((major < 20 || (major == 20 && minor < 19))); then
        echo "tools/build.sh: ${needs_node[*]} must be built with a web UI, which needs Node.js 20.19 or newer" \
             "with npm (found: ${node_version:-no node}$(command -v npm >/dev/null || echo ', no npm'))." \
             "Install them and run this again." >&2
        exit 3
    fi
fi

# --- the builds: one background job per group -----------------------------------------------------

mkdir -p "$bin_dir" "$recipe_dir" "$log_dir" "$src_dir" "$node_dir" "$lock_dir"
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/obs-tools.XXXXXX")
mkdir "$run_dir/queue"
slots=${OBS_TOOLS_JOBS:-$(nproc 2>/dev/null || echo 2)}
((slots >= 1)) || slots=1
# Reproducible unless asked otherwise: the date only changes what `--version` prints.
build_date=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y%m%d-%H:%M:%S)
export npm_config_cache="$node_dir/npm-cache" npm_config_update_notifier=false npm_config_fund=false \
    npm_config_audit=false

fmt_secs() { # SECONDS -> 45s, 2m05s
    if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi
}

set_state() { # TEXT: what the group's job is doing now
    printf '%s\t%s\n' "$EPOCHSECONDS" "$1" > "$run_dir/$group.state.tmp"
    mv -f "$run_dir/$group.state.tmp" "$run_dir/$group.state"
}

step() { # TEXT SHORT COMMAND...: one step of a group's build, timed into its log and summary
    local text=$1 short=$2 started=$EPOCHSECONDS pid status=0 TIMEFORMAT
    shift 2
    set_state "$text"
    printf '\n### %s %s\n' "$(date +%H:%M:%S)" "$text"
    TIMEFORMAT="### $text: %0R s wall, %0U s user, %0S s system CPU"
    # In the background, so that errexit holds inside (it does not in an `if` or before `||`).
    ("$@") &
    pid=$!
    { time wait "$pid"; } 2>&1 || status=$?
    if ((status != 0)); then
        result failed "$text"
        exit 1
    fi
    printf '%s %s\n' "$short" "$(fmt_secs $((EPOCHSECONDS - started)))" >> "$run_dir/$group.steps"
}

acquire_core() { # waits for one of the $slots cores (shared with concurrent runs), longest builds first
    local ticket fd i first=()
    ticket="$run_dir/queue/$(printf '%02d' "$(priority "$group")")-$group"
    : > "$ticket"
    set_state "waiting for a free core"
    while true; do
        first=("$run_dir"/queue/*)
        if [[ ${first[0]} == "$ticket" ]]; then
            for ((i = 1; i <= slots; i++)); do
                exec {fd}> "$lock_dir/core.$i"
                if flock -n "$fd"; then rm -f "$ticket"; return; fi
                exec {fd}>&-
            done
        fi
        sleep 0.5
    done
}

result() { # OUTCOME [TEXT]: the group's end, with how long it took
    printf '%s\t%s\t%s\n' "$1" "$((EPOCHSECONDS - job_started))" "${2:-}" > "$run_dir/$group.result"
}

priority() { # GROUP: its place in longest_first
    local i=0 g
    for g in $longest_first; do
        [[ $g == "$1" ]] && { echo "$i"; return; }
        i=$((i + 1))
    done
    echo "$i"
}

fetch_copy() { # the module copy_of at the group's version, in a writable copy at $work
    local dir marker="$copy_of@$version ${ui_digest:--}"
    [[ $(cat "$work/.obs-copy" 2>/dev/null) != "$marker" ]] || return 0
    if [[ -n $module_dir ]]; then # the version tools/<module_dir>/go.mod selects, checked by its go.sum
        dir=$(cd "$tools_dir/$module_dir" && go mod download -json "$copy_of")
    else
        dir=$(cd "$tools_dir" && go mod download -json "$copy_of@v$version")
    fi
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$dir")
    [[ -n $dir ]] || { echo "go mod download $copy_of named no directory"; return 1; }
    rm -rf "$work" "$work.tmp"
    cp -R "$dir" "$work.tmp"
    chmod -R u+w "$work.tmp"
    echo "$marker" > "$work.tmp/.obs-copy"
    mv "$work.tmp" "$work"
}

download_modules() {
    if [[ -n $copy_of ]]; then fetch_copy; fi
    if [[ -n $crds ]]; then crd_copy; fi
    cd "$build_in"
    go list -deps -tags "$tags" "${packages[@]}" > /dev/null
}

install_ui() {
    cd "$work"
    "ui_install_$ui"
}

build_ui() {
    cd "$work"
    "ui_build_$ui"
    # The assets are built; the packages that built them (about 400 MB) are not needed again.
    find . -name node_modules -type d -prune -exec rm -rf {} +
    echo "$ui_digest" > .obs-ui
}

compile() {
    local out="$bin_dir/.build-$group.$$" name
    rm -rf "$out" && mkdir -p "$out"
    # One program: -o names its file; several: -o names their folder, each file named by its package.
    local target="$out/"
    [[ ${#packages[@]} -gt 1 ]] || target="$out/${names[0]}"
    cd "$build_in"
    nice -n 10 go build "${go_build_flags[@]}" -tags "$tags" -ldflags "$ldflags -X $pv.BuildDate=$build_date" \
        -o "$target" "${packages[@]}"
    for name in "${names[@]}"; do
        recipe "$name"
        [[ $(reported_version "$out/$name") == *"$version_line"* ]] ||
            { echo "$name was built but its version output does not report $version"; return 1; }
    done
    for name in "${names[@]}"; do
        recipe "$name"
        mv -f "$out/$name" "$bin_dir/$name"
        recipe_digest "$name" > "$recipe_dir/$name.tmp"
        mv -f "$recipe_dir/$name.tmp" "$recipe_dir/$name"
    done
    rmdir "$out"
}

build_group() { # GROUP NAME...: a background job; its output goes to the group's log
    group=$1 job_started=$EPOCHSECONDS
    shift
    local names=() packages=() name lock_fd first_ldflags="" first_tags="" needs_ui=""
    exec > /dev/null 2>&1 < /dev/null
    exec {lock_fd}> "$lock_dir/$group.lock"
    if ! flock -n "$lock_fd"; then
        set_state "waiting for another run's build of it"
        flock "$lock_fd"
    fi
    exec > "$log_dir/$group.log" 2>&1  # once it is this run's turn: a concurrent one writes there too
    echo "### tools/build.sh: $group ($*), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for name; do # another run may have built them meanwhile
        recipe "$name"
        is_current "$name" || names+=("$name")
    done
    if [[ ${#names[@]} -eq 0 ]]; then result current; exit 0; fi
    for name in "${names[@]}"; do
        recipe "$name"
        packages+=("$package")
        [[ -z $ui ]] || needs_ui=$ui
        [[ -z $first_ldflags || ($ldflags == "$first_ldflags" && $tags == "$first_tags") ]] ||
            { echo "tools/build.sh: $group's programs differ in flags"; exit 1; }
        first_ldflags=$ldflags first_tags=$tags
    done
    # The group's UI (also when only another of its programs is built: the copy is the UI's).
    recipe "$group"
    ui_digest=""
    [[ -z $ui ]] || ui_digest=$(ui_recipe "$ui" | sha256 | cut -c1-16)
    recipe "${names[0]}"
    work="$src_dir/$group-$version" build_in="$tools_dir/$module_dir"
    [[ -z $copy_of && -z $crds ]] || build_in=$work

    step "downloading modules" "modules" download_modules
    ui=$needs_ui
    if [[ -n $ui && $(cat "$work/.obs-ui" 2>/dev/null) != "$ui_digest" ]]; then
        step "installing npm packages" "npm packages" install_ui
        acquire_core
        step "building UI" "UI" build_ui
    else
        acquire_core
    fi
    step "compiling" "compiling" compile
    result built "$(paste -sd, "$run_dir/$group.steps" | sed 's/,/, /g')"
}

declare -A job_pid=() started=() reported=()
cleanup() {
    local group
    for group in "${!job_pid[@]}"; do kill -- -"${job_pid[$group]}" 2>/dev/null || true; done
    rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

set -m # each job in a process group of its own, which cleanup ends whole
for group in "${groups[@]}"; do
    read -ra group_names <<<"${members[$group]}"
    build_group "$group" "${group_names[@]}" &
    job_pid[$group]=$!
    started[$group]=$EPOCHSECONDS
done
set +m

status_line() { # NAME: its progress line
    local name=$1 g outcome state text elapsed took
    g=${grp[$name]}
    elapsed=$(fmt_secs $((EPOCHSECONDS - started[$g])))
    if [[ -f $run_dir/$g.result ]]; then
        IFS=$'\t' read -r outcome took text < "$run_dir/$g.result"
        elapsed=$(fmt_secs "$took")
        case $outcome in
            built) echo "==> ${title[$name]}: built in $elapsed ($text) ($bin_dir/$name)" ;;
            current) echo "==> ${title[$name]}: up to date, built by another run ($bin_dir/$name)" ;;
            failed) echo "==> ${title[$name]}: FAILED after $elapsed while $text (log: $log_dir/$g.log)" ;;
        esac
        return
    fi
    if ! kill -0 "${job_pid[$g]}" 2>/dev/null; then
        printf 'failed\t%s\t%s\n' "$((EPOCHSECONDS - started[$g]))" "setting up (see its log)" > "$run_dir/$g.result"
        status_line "$name"
        return
    fi
    state=$(group_state "$g")
    local with=() other
    for other in ${members[$g]}; do [[ $other == "$name" ]] || with+=("$other"); done
    echo "==> ${title[$name]}: $elapsed, $state${with[*]:+ (with ${with[*]})}"
}

group_state() { # GROUP: what its job is doing
    local state=""
    IFS=$'\t' read -r _ state 2>/dev/null < "$run_dir/$1.state" || true
    echo "${state:-starting}"
}

running() { # true while a job has not written its result
    local g
    for g in "${groups[@]}"; do
        [[ -f $run_dir/$g.result ]] || { kill -0 "${job_pid[$g]}" 2>/dev/null && return 0; }
    done
    return 1
}

if [[ -t 1 && ${TERM:-dumb} != dumb ]]; then
    # One line per program, redrawn in place; cut to the terminal's width while they change.
    cols=$(tput cols 2>/dev/null || echo 80)
    drawn=0
    draw() { # [full]
        local name line
        ((drawn == 0)) || printf '\033[%dA' "$drawn"
        for name in "${stale[@]}"; do
            line=$(status_line "$name")
            [[ ${1:-} == full ]] || line=${line:0:$((cols - 1))}
            printf '\r\033[K%s\n' "$line"
        done
        drawn=${#stale[@]}
    }
    while running; do draw; sleep 1; done
    draw full
else
    # Into a pipe: a line when each build starts and ends, and every 30 s what the running ones do.
    for name in "${stale[@]}"; do
        echo "==> ${title[$name]}: building from $(recipe "$name"; echo "${copy_of:+a copy of }${copy_of:-tools/$module_dir}${crds:+ with the operator CRDs}") ..." \
             "(log: $log_dir/${grp[$name]}.log)"
    done
    last=$EPOCHSECONDS
    while true; do
        busy=0
        for name in "${stale[@]}"; do
            g=${grp[$name]}
            if [[ -f $run_dir/$g.result ]] || ! kill -0 "${job_pid[$g]}" 2>/dev/null; then
                [[ -n ${reported[$name]:-} ]] || { status_line "$name"; reported[$name]=1; }
            else
                busy=1
            fi
        done
        ((busy)) || break
        if ((EPOCHSECONDS - last >= 30)); then
            last=$EPOCHSECONDS
            summary=()
            for g in "${groups[@]}"; do
                [[ -f $run_dir/$g.result ]] || summary+=("${members[$g]// /+} $(group_state "$g")")
            done
            printf -v joined '%s; ' "${summary[@]}"
            echo "    ... $(fmt_secs $((EPOCHSECONDS - started[${groups[0]}]))): ${joined%; }"
        fi
        sleep 1
    done
fi

failed=()
for group in "${groups[@]}"; do
    wait "${job_pid[$group]}" 2>/dev/null || true
    outcome=$(cut -f1 "$run_dir/$group.result" 2>/dev/null || echo failed)
    [[ $outcome != failed ]] || failed+=("$group")
done
job_pid=()
if [[ ${#failed[@]} -gt 0 ]]; then
    for group in "${failed[@]}"; do
        echo "tools/build.sh: building ${members[$group]} failed; the end of its log ($log_dir/$group.log):" >&2
        tail -n 25 "$log_dir/$group.log" | sed 's/^/    /' >&2
    done
    exit 1
fi
[[ -z ${members[docker-compose]:-} ]] || link_compose_plugin
