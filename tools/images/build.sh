#!/usr/bin/env bash
# Builds the images of docker-compose.yml and of its extensions' compose files that can be made
# without an image registry, from package registries only: Debian bases from debootstrap, then one
# recipe per image (tools/images/<recipe>/), each tagged exactly as the compose file names it once
# .env.example's versions are filled in. The app image is built from app/Dockerfile as compose
# builds it. README.md next to this script says what each image is made of and how it differs from
# the upstream image of that name.
#
# Usage: tools/images/build.sh      (make images)
#
# One line per image: built, up to date, or not buildable with the reason. An image is rebuilt only
# when its inputs change (its recipe folder, this script, its versions, the binaries it copies, its
# parent image): their digest is kept in the image's label below. The app image is left to Docker's
# layer cache, as compose leaves it. The logs of long steps, the Debian root filesystems and the
# build contexts live in ${OBS_IMAGES_CACHE:-~/.cache/observability-stack/images}.
# Exit status: 0 when every buildable image is there, 1 when one failed, 2 on a usage error.
set -euo pipefail

images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$images_dir/../.." && pwd)
cache_dir="${OBS_IMAGES_CACHE:-$HOME/.cache/observability-stack/images}"
log_dir="$cache_dir/logs"
tools_bin_dir="${OBS_TOOLS_DIR:-$HOME/.cache/observability-stack/tools}/bin"  # where tools/build.sh puts them
# The machine's CA bundle, and where its ca-certificates package keeps the certificates it ships.
host_ca_bundle=/etc/ssl/certs/ca-certificates.crt
shipped_cas_dir=/usr/share/ca-certificates
label=org.observability-stack.image-inputs
debian_bookworm=observability-stack/debian:bookworm
debian_trixie=observability-stack/debian:trixie
busybox=observability-stack/busybox:local

[[ $# -eq 0 ]] || { echo "usage: tools/images/build.sh   (no arguments)" >&2; exit 2; }

failed=()    # tags that failed here; images built on them are not attempted
replaced=()  # ids of the images that new builds took the tags from

pin() { # the value of NAME= in .env.example, the one place versions are set
    local value
    value=$(sed -n "s/^$1=//p" "$repo_dir/.env.example")
    [[ -n $value ]] || { echo "tools/images/build.sh: $1 is not set in .env.example" >&2; exit 1; }
    echo "$value"
}

compose_image() { # COMPOSE_FILE SERVICE: the service's image, with its YAML alias and ${VARIABLES} resolved
    local file="$repo_dir/$1" image
    image=$(awk -v service="$2" '
        $0 ~ "^  " service ":[[:space:]]*$" { found = 1; next }
        found && /^  [^ ]/ { exit }
        found && /^    image:/ { sub(/^    image:[[:space:]]*/, ""); print; exit }' "$file")
    if [[ $image == \** ]]; then
        image=$(sed -n "s/^[^#]*&${image#\*}[[:space:]]\{1,\}//p" "$file")
    fi
    [[ -n $image ]] || { echo "tools/images/build.sh: no image for '$2' in $1" >&2; exit 1; }
    # ${NAME}, ${NAME:?message} and ${NAME:-default} all become .env.example's value of NAME.
    while [[ $image =~ \$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\} ]]; do
        image=${image/"${BASH_REMATCH[0]}"/$(pin "${BASH_REMATCH[1]}")}
    done
    echo "$image"
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
image_label() { docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true; }

inputs_digest() { # WORD...: a file or folder counts by names, modes and contents; any other word as it is
    local word
    for word; do
        if [[ -d $word ]]; then
            (cd "$word" && find . -type f -printf '%m %p\n' | LC_ALL=C sort &&
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        elif [[ -f $word ]]; then
            sha256sum < "$word"
        else
            echo "$word"
        fi
    done | sha256sum | cut -c1-64
}

current="" previous_id="" started=0
declare -A begun  # the tags that have their line
begin() { # TAG: the start of the image's line; the end comes from report
    printf '%-45s ' "$1"
    begun[$1]=1
    current=$1 previous_id=$(image_id "$1") started=$SECONDS
}
report() { echo "$*"; }
report_built() { # the image that had the tag before is removed at the end, unless nothing changed
    if [[ $(image_id "$current") == "$previous_id" ]]; then report "up to date"; return; fi
    [[ -z $previous_id ]] || replaced+=("$previous_id")
    report "built in $((SECONDS - started)) s"
}
report_failure() { # TAG LOG
    failed+=("$1")
    report "FAILED (log: $2)"
}

failed_parent() { # BUILD_ARG...: the first *_IMAGE argument whose image failed here, if any
    local arg tag
    for arg; do
        [[ ${arg%%=*} == *_IMAGE ]] || continue
        for tag in "${failed[@]}"; do
            [[ ${arg#*=} != "$tag" ]] || { echo "$tag"; return; }
        done
    done
}

debian_base() { # SUITE TAG: debootstrap's minbase of SUITE, imported; its root filesystem is cached
    local suite=$1 tag=$2 digest tarball log
    begin "$tag"
    digest=$(inputs_digest "suite=$suite" "$images_dir/debian")
    if [[ $(image_label "$tag") == "$digest" ]]; then report "up to date"; return; fi
    tarball="$cache_dir/debian-$suite.tar" log="$log_dir/debian-$suite.log"
    # The tarball is reused while its recipe is unchanged: a lost tag costs an import, not a debootstrap.
    if [[ ! -f $tarball || $(cat "$tarball.inputs" 2>/dev/null) != "$digest" ]]; then
        "$images_dir/debian/rootfs.sh" "$suite" "$tarball" > "$log" 2>&1 || { report_failure "$tag" "$log"; return; }
        echo "$digest" > "$tarball.inputs"
    fi
    if docker import --change 'CMD ["bash"]' --change "LABEL $label=$digest" "$tarball" "$tag" >> "$log" 2>&1; then
        report_built
    else
        report_failure "$tag" "$log"
    fi
}

recipe_image() { # TAG RECIPE [BUILD_ARG=VALUE...] [-- FILE...]: tools/images/RECIPE built with the FILEs
    # beside its Dockerfile; a *_IMAGE build argument names a parent image, whose id is an input too.
    begin "$1"
    build_recipe "$@"
}

build_recipe() { # the same as recipe_image, once its line has begun
    local tag=$1 recipe=$2 args=() files=() inputs=() arg parent digest context log
    shift 2
    while [[ $# -gt 0 ]]; do
        if [[ $1 == -- ]]; then shift; files=("$@"); break; fi
        args+=("$1")
        shift
    done
    parent=$(failed_parent "${args[@]}")
    if [[ -n $parent ]]; then failed+=("$tag"); report "FAILED: its parent $parent failed"; return; fi
    inputs=("$images_dir/$recipe" "${BASH_SOURCE[0]}" "${args[@]}" "${files[@]}")
    for arg in "${args[@]}"; do
        [[ ${arg%%=*} != *_IMAGE ]] || inputs+=("$(image_id "${arg#*=}")")
    done
    digest=$(inputs_digest "${inputs[@]}")
    if [[ $(image_label "$tag") == "$digest" ]]; then report "up to date"; return; fi
    context="$cache_dir/context/$recipe" log="$log_dir/$recipe.log"
    rm -rf "$context" && mkdir -p "$context"
    cp -R "$images_dir/$recipe/." "${files[@]}" "$context/"
    # --force-rm: a step that fails leaves no container behind either.
    if docker build --force-rm --label "$label=$digest" "${args[@]/#/--build-arg=}" --tag "$tag" "$context" > "$log" 2>&1; then
        report_built
    else
        report_failure "$tag" "$log"
    fi
    rm -rf "$context"
}

go_image() { # TAG RECIPE "PROGRAM..." [BUILD_ARG=VALUE...]: a recipe on the busybox base that copies
    # tools/build.sh's PROGRAMs; that script builds them first when they are missing or outdated.
    local tag=$1 recipe=$2 programs log="$log_dir/$2-programs.log" status=0 program files=()
    read -ra programs <<< "$3"
    shift 3
    begin "$tag"
    "$repo_dir/tools/build.sh" "${programs[@]}" > "$log" 2>&1 || status=$?
    if [[ $status -eq 3 ]]; then
        report "not buildable: Go is needed to build ${programs[*]} (tools/build.sh; GO_VERSION in .env.example)"
        return
    elif [[ $status -ne 0 ]]; then
        report_failure "$tag" "$log"
        return
    fi
    for program in "${programs[@]}"; do files+=("$tools_bin_dir/$program"); done
    build_recipe "$tag" "$recipe" "BASE_IMAGE=$busybox" "$@" -- "${files[@]}"
}

app_image() { # TAG: app/Dockerfile with the repository as context, as compose builds it
    local tag=$1 parent log="$log_dir/app.log"
    begin "$tag"
    parent=$(failed_parent "PYTHON_IMAGE=$python")
    if [[ -n $parent ]]; then failed+=("$tag"); report "FAILED: its parent $parent failed"; return; fi
    if docker build --force-rm --file "$repo_dir/app/Dockerfile" --tag "$tag" "$repo_dir" > "$log" 2>&1; then
        report_built
    else
        report_failure "$tag" "$log"
    fi
}

elasticsearch_image() { # TAG VERSION: the integ-test-zip of VERSION on Debian; the native sandbox's
    # code downloads it with Maven once, into the cache its own Elasticsearch runs from.
    local tag=$1 version=$2 log="$log_dir/elasticsearch-distribution.log" distribution
    begin "$tag"
    if ! distribution=$(cd "$repo_dir" && python3 -c '
import sys
from sandbox.engines import elasticsearch as es
def say(line): print(line, file=sys.stderr)
print(es.ensure_distribution(sys.argv[1], es.server_user(say), say))' "$version" 2> "$log"); then
        report_failure "$tag" "$log"
        return
    fi
    build_recipe "$tag" elasticsearch "DEBIAN_IMAGE=$debian_trixie" "ELASTIC_VERSION=$version" -- "$distribution"
}

not_buildable() { # TAG REASON
    begin "$1"
    report "not buildable: $2"
}

command -v docker > /dev/null || { echo "tools/images/build.sh: no docker command" >&2; exit 1; }
docker info > /dev/null 2>&1 || { echo "tools/images/build.sh: the Docker engine does not answer (docker info)" >&2; exit 1; }
# BuildKit comes with buildx; without it, the engine's classic builder (Debian's docker.io has no buildx).
docker buildx version > /dev/null 2>&1 || export DOCKER_BUILDKIT=0
mkdir -p "$log_dir"
python=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo_dir/app/Dockerfile")
[[ -n $python ]] || { echo "tools/images/build.sh: no ARG PYTHON_IMAGE= default in app/Dockerfile" >&2; exit 1; }
# The machine's own CAs, which the Python image trusts so that pip works in builds here: what its
# bundle holds beyond what its ca-certificates package shipped. Without that package nothing is
# added (the difference could hold roots that a newer package distrusts).
local_cas="$cache_dir/local-cas"
rm -rf "$local_cas" && mkdir -p "$local_cas"
shipped_cas=()
if [[ -f $host_ca_bundle && -d $shipped_cas_dir ]]; then
    mapfile -d '' shipped_cas < <(find "$shipped_cas_dir" -name '*.crt' -print0 | LC_ALL=C sort -z)
fi
if [[ ${#shipped_cas[@]} -gt 0 ]]; then
    awk -v bundle="$host_ca_bundle" -v out="$local_cas/local-%d.crt" -f "$images_dir/python/local-cas.awk" \
        "${shipped_cas[@]}" "$host_ca_bundle"
fi
# Every tag and version up front: a compose file or .env.example this script cannot read stops it here.
declare -A tag
for service in app app-lb postgres redis prometheus alertmanager node-exporter jaeger mailpit loadgen; do
    tag[$service]=$(compose_image docker-compose.yml "$service")
done
tag[otel-collector]=$(compose_image extensions/otel-collector/docker-compose.otel-collector.yml otel-collector)
tag[elasticsearch]=$(compose_image extensions/elasticsearch-cluster/docker-compose.elasticsearch-cluster.yml elasticsearch-cluster-files)
postgres_major=$(pin POSTGRES_VERSION)
locust_version=$(pin LOCUST_VERSION)
elastic_version=$(pin ELASTIC_VERSION)

debian_base bookworm "$debian_bookworm"
debian_base trixie "$debian_trixie"
recipe_image "$busybox" busybox "DEBIAN_IMAGE=$debian_trixie"
recipe_image "$python" python "DEBIAN_IMAGE=$debian_bookworm" -- "$local_cas"
app_image "${tag[app]}"
recipe_image "${tag[postgres]}" postgres "DEBIAN_IMAGE=$debian_trixie" "PG_MAJOR=$postgres_major"
recipe_image "${tag[redis]}" redis "DEBIAN_IMAGE=$debian_trixie"
recipe_image "${tag[app-lb]}" haproxy "DEBIAN_IMAGE=$debian_trixie"
go_image "${tag[prometheus]}" prometheus "prometheus promtool"
go_image "${tag[alertmanager]}" alertmanager "alertmanager amtool"
go_image "${tag[node-exporter]}" node-exporter node_exporter
go_image "${tag[jaeger]}" jaeger jaeger
go_image "${tag[mailpit]}" mailpit mailpit "DEBIAN_IMAGE=$debian_trixie"
go_image "${tag[otel-collector]}" otelcol-contrib otelcol
recipe_image "${tag[loadgen]}" locust "PYTHON_IMAGE=$python" "LOCUST_VERSION=$locust_version"
elasticsearch_image "${tag[elasticsearch]}" "$elastic_version"

while IFS=$'\t' read -r service file reason; do
    [[ -z $service || $service == \#* ]] && continue
    image=$(compose_image "$file" "$service")
    # Built above for another service (the Elasticsearch stand-in): not_buildable.tsv's reason is for `make up`.
    [[ -n ${begun[$image]:-} ]] || not_buildable "$image" "$reason"
done < "$images_dir/not-buildable.tsv"

# Newest first, so that an image goes before its parent; one that a container still uses stays.
for ((i = ${#replaced[@]} - 1; i >= 0; i--)); do
    docker rmi "${replaced[i]}" > /dev/null 2>&1 || true
done
[[ ${#failed[@]} -eq 0 ]]
