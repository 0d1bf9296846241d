#!/usr/bin/env bash
# The entrypoint of the PostgreSQL stand-in: the official image's environment interface on Debian's
# PostgreSQL. On the first start (no PG_VERSION in PGDATA) it runs initdb with
#   POSTGRES_USER (default postgres) as the superuser, POSTGRES_PASSWORD as its password,
#   POSTGRES_INITDB_ARGS as extra initdb arguments,
# lets every host in with POSTGRES_HOST_AUTH_METHOD (default scram-sha-256; a password is required
# unless it is trust), creates POSTGRES_DB (default POSTGRES_USER), and runs the *.sh, *.sql and
# *.sql.gz files of /docker-entrypoint-initdb.d in name order against it. Each variable may instead be
# given as NAME_FILE, the path of a file holding the value (a compose secret). As root it hands
# PGDATA to postgres and drops to that user; as postgres it needs PGDATA writable, as a fresh volume is.
set -Eeuo pipefail

die() { echo "docker-entrypoint.sh: $*" >&2; exit 1; }

from_file() { # NAME: NAME from the file NAME_FILE names, when that is set
    local name=$1 file_name="$1_FILE"
    if [[ -n ${!file_name:-} ]]; then
        [[ -z ${!name:-} ]] || die "both $name and $file_name are set; set one"
        export "$name=$(< "${!file_name}")"
    fi
    unset "$file_name"
}

wants_help() { # ARGS: postgres only prints something and exits
    local arg
    for arg; do
        case $arg in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
    done
    return 1
}

psql_as_superuser() { # ARGS: psql over the socket of the temporary server
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"
}

initialize() {
    local name
    for name in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB POSTGRES_INITDB_ARGS; do from_file "$name"; done
    : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
    local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    [[ -n ${POSTGRES_PASSWORD:-} || $auth == trust ]] ||
        die "the database is uninitialized and POSTGRES_PASSWORD is not set (nor POSTGRES_HOST_AUTH_METHOD=trust)"

    local initdb_args=(--username="$POSTGRES_USER" --pgdata="$PGDATA")
    # The password on stdin: it stays off every command line.
    [[ -z ${POSTGRES_PASSWORD:-} ]] || initdb_args+=(--pwfile=/dev/stdin)
    # Word splitting wanted: several arguments in one variable, as the official image takes them.
    # shellcheck disable=SC2086
    initdb "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} <<< "${POSTGRES_PASSWORD:-}"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    printf '\n# Added by docker-entrypoint.sh: every other host, with a password.\nhost all all all %s\n' \
        "$auth" >> "$PGDATA/pg_hba.conf"

    # A temporary server on the socket only, so that nobody connects before initialization is over.
    pg_ctl --pgdata="$PGDATA" --wait --options="-c listen_addresses=''" start
    if [[ $POSTGRES_DB != postgres ]]; then
        psql_as_superuser --dbname postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
    fi
    local file
    shopt -s nullglob
    for file in /docker-entrypoint-initdb.d/*; do
        case $file in
            *.sh)
                echo "docker-entrypoint.sh: running $file"
                # Sourced unless executable, as the official image does.
                # shellcheck disable=SC1090
                if [[ -x $file ]]; then "$file"; else . "$file"; fi ;;
            *.sql) echo "docker-entrypoint.sh: running $file"; psql_as_superuser --dbname "$POSTGRES_DB" -f "$file" ;;
            *.sql.gz) echo "docker-entrypoint.sh: running $file"; gzip -dc "$file" | psql_as_superuser --dbname "$POSTGRES_DB" ;;
            *) echo "docker-entrypoint.sh: ignoring $file" ;;
        esac
    done
    pg_ctl --pgdata="$PGDATA" --wait --mode=fast stop
    echo "docker-entrypoint.sh: initialization done; starting PostgreSQL"
}

# Options alone mean options for postgres.
if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi

if [[ ${1:-} == postgres ]] && ! wants_help "$@"; then
    if [[ $(id -u) == 0 ]]; then
        install -d -o postgres -g postgres -m 0700 "$PGDATA"
        find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
        exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
    [[ -s $PGDATA/PG_VERSION ]] || initialize
fi
exec "$@"
