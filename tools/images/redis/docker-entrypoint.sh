#!/bin/sh
# The entrypoint of the Redis stand-in, behaving as the official image's does: options or a *.conf file
# alone mean arguments for redis-server; as root, redis-server gets /data handed to the redis user and
# runs as that user; the default umask 0022 is narrowed to 0077 (the dump and AOF files hold the data).
set -eu

case ${1-} in
    -* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$(umask)" = 0022 ]; then
    umask 0077
fi
exec "$@"
