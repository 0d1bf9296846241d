#!/bin/bash
# The official image's environment interface, written for the stand-in:
# - `eswrapper` (the CMD) or options first: run Elasticsearch; any other command runs as given;
# - every variable named like a setting (lower case, with a dot: node.name, discovery.type, ...)
#   becomes -E<name>=<value>, except those of modules this distribution lacks (GeoIP downloads,
#   machine learning): they would switch off what is not there, and Elasticsearch refuses
#   settings it does not know;
# - ELASTIC_PASSWORD (or ELASTIC_PASSWORD_FILE): the elastic user's bootstrap password, written to
#   the keystore, which is created when missing.
set -euo pipefail

if [[ $# -gt 0 && $1 != eswrapper && $1 != -* ]]; then
    exec "$@"
fi
[[ ${1:-} != eswrapper ]] || shift

settings=()
while IFS= read -r -d '' entry; do
    name=${entry%%=*}
    if [[ $name =~ ^[a-z0-9_]+(\.[a-z0-9_-]+)+$ && $name != ingest.geoip.* && $name != xpack.ml.* ]]; then
        settings+=("-E$entry")
    fi
done < <(env -0)

if [[ -n ${ELASTIC_PASSWORD_FILE:-} ]]; then
    ELASTIC_PASSWORD=$(< "$ELASTIC_PASSWORD_FILE")
fi
if [[ -n ${ELASTIC_PASSWORD:-} ]]; then
    [[ -f ${ES_PATH_CONF:-config}/elasticsearch.keystore ]] || elasticsearch-keystore create > /dev/null
    # From stdin: the password is on no command line.
    printf '%s' "$ELASTIC_PASSWORD" | elasticsearch-keystore add -x -f bootstrap.password
fi
unset ELASTIC_PASSWORD ELASTIC_PASSWORD_FILE

exec elasticsearch "${settings[@]}" "$@"
