#!/bin/bash
# Kibana with the cluster: the service token init.sh made (read here, so that it is in no compose
# file or environment listing), then the image's own start script.
set -euo pipefail
KIBANA_SERVICE_TOKEN=$(< /run/kibana/kibana-service-token)
export KIBANA_SERVICE_TOKEN
exec /usr/local/bin/kibana-docker
