#!/bin/bash
# A cluster node's start: the shared files init.sh made (mounted read-only at /run/cluster) go into
# the node's own config directory, where Elasticsearch reads its file realm, roles, service tokens
# and certificates; then the image's own entrypoint runs Elasticsearch.
set -euo pipefail
config=/usr/share/elasticsearch/config
cp /run/cluster/roles.yml /run/cluster/users /run/cluster/users_roles /run/cluster/service_tokens "$config/"
mkdir -p "$config/certs"
cp /run/cluster/certs/ca.crt "/run/cluster/certs/$NODE_NAME.crt" "/run/cluster/certs/$NODE_NAME.key" "$config/certs/"
exec /usr/local/bin/docker-entrypoint.sh eswrapper
