#!/bin/sh
# As upstream's: options alone go to haproxy, and haproxy runs in master-worker mode in the foreground.
set -e
case "$1" in
    -*) set -- haproxy "$@" ;;
esac
if [ "$1" = haproxy ]; then
    shift
    set -- haproxy -W -db "$@"
fi
exec "$@"
