#!/bin/bash
# One-shot, before the nodes start: everything the three nodes share, written to the volume mounted at
# $FILES (a fresh volume takes the owner of the image's data directory: the elasticsearch user).
#   certs/          a CA and one certificate per node for transport TLS; made once, kept after
#   roles.yml       the roles of elasticsearch/roles/*.json (JSON is YAML: each file goes in as it is)
#   users, users_roles
#                   the file realm: logstash_writer and grafana_reader, each with the role of its
#                   name, passwords from the environment; made again on every run
#   service_tokens  the Kibana service account's token (hashed); made once, kept after
# and, in $KIBANA_FILES, kibana-service-token: that token, for Kibana (its own volume: Kibana sees
# nothing else of this). The nodes copy these files into their config directory when they start
# (node-start.sh). The CLI tools write into a scratch config directory, never into a node's.
set -euo pipefail

FILES=${FILES:-/usr/share/elasticsearch/data}
KIBANA_FILES=${KIBANA_FILES:-/usr/share/elasticsearch/logs}
read -ra nodes <<< "${CLUSTER_NODES:?the node names, separated by spaces}"
umask 0027

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -R /usr/share/elasticsearch/config "$scratch/config"
: > "$scratch/config/users"
: > "$scratch/config/users_roles"
export ES_PATH_CONF=$scratch/config

if [[ ! -f $FILES/certs/ca.crt ]]; then
    echo "transport TLS: a CA and certificates for ${nodes[*]}"
    elasticsearch-certutil ca --silent --pem --days 3650 --out "$scratch/ca.zip"
    unzip -q "$scratch/ca.zip" -d "$scratch"
    {
        echo "instances:"
        for node in "${nodes[@]}"; do
            printf '  - name: %s\n    dns: [%s, localhost]\n    ip: [127.0.0.1]\n' "$node" "$node"
        done
    } > "$scratch/instances.yml"
    elasticsearch-certutil cert --silent --pem --days 3650 --in "$scratch/instances.yml" \
        --ca-cert "$scratch/ca/ca.crt" --ca-key "$scratch/ca/ca.key" --out "$scratch/certs.zip"
    unzip -q "$scratch/certs.zip" -d "$scratch/certs"
    mkdir -p "$scratch/certs-flat"
    cp "$scratch/ca/ca.crt" "$scratch/certs-flat/"
    for node in "${nodes[@]}"; do
        cp "$scratch/certs/$node/$node.crt" "$scratch/certs/$node/$node.key" "$scratch/certs-flat/"
    done
    rm -rf "$FILES/certs.new" && mv "$scratch/certs-flat" "$FILES/certs.new" && mv "$FILES/certs.new" "$FILES/certs"
else
    echo "transport TLS: the certificates made before are kept"
fi

echo "roles: $(cd /roles && echo *.json)"
for role in /roles/*.json; do
    printf '%s:\n' "$(basename "$role" .json)"
    sed 's/^/  /' "$role"
done > "$scratch/config/roles.yml"

add_user() { # NAME PASSWORD: the password goes in on stdin, twice (the tool asks again to confirm)
    local output
    if ! output=$(printf '%s\n%s\n' "$2" "$2" | elasticsearch-users useradd "$1" -r "$1" 2>&1); then
        echo "elasticsearch-users useradd $1 failed: $output" >&2
        exit 1
    fi
    echo "user $1: role $1"
}
add_user logstash_writer "${LOGSTASH_WRITER_PASSWORD:?}"
add_user grafana_reader "${GRAFANA_ES_READER_PASSWORD:?}"

if [[ -f $FILES/service_tokens && -s $KIBANA_FILES/kibana-service-token ]]; then
    echo "Kibana's service token: the one made before is kept"
else
    : > "$scratch/config/service_tokens"
    token=$(elasticsearch-service-tokens create elastic/kibana compose | sed -n 's/^SERVICE_TOKEN elastic\/kibana\/compose = //p')
    [[ -n $token ]] || { echo "elasticsearch-service-tokens printed no token" >&2; exit 1; }
    cp "$scratch/config/service_tokens" "$FILES/service_tokens"
    printf '%s' "$token" > "$KIBANA_FILES/kibana-service-token"
    echo "Kibana's service token: made (elastic/kibana/compose)"
fi

for file in roles.yml users users_roles; do
    cp "$scratch/config/$file" "$FILES/$file.new" && mv "$FILES/$file.new" "$FILES/$file"
done
