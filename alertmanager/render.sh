#!/bin/sh
# Renders Alertmanager's configuration from the environment, then optionally runs a command.
#
#   render.sh SOURCE_DIR OUTPUT_DIR [COMMAND [ARG...]]
#
# Reads SOURCE_DIR/alertmanager.yml.tmpl and SOURCE_DIR/templates/*.tmpl, and writes
# OUTPUT_DIR/alertmanager.yml and OUTPUT_DIR/templates/*.tmpl with every placeholder replaced:
#   ${NAME}             the variable's value; unset or empty is an error
#   ${NAME:-default}    the variable's value, or the default when it is unset or empty (a default
#                       is made of letters, digits and . _ : / @ -)
# Every missing variable is reported at once, and nothing is written then. Values must not contain a
# single quote or a line break (they are pasted into single-quoted YAML scalars). The rendered files
# hold the webhook URL, a secret: they are written readable by their owner only.
# With a COMMAND, the script execs it after rendering: the compose entrypoint renders and starts
# Alertmanager in one line. POSIX sh: runs under busybox (the Alertmanager image) as well as dash/bash.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: render.sh SOURCE_DIR OUTPUT_DIR [COMMAND [ARG...]]" >&2
    exit 2
fi
src=$1
out=$2
shift 2
umask 077

placeholders=$(cat "$src/alertmanager.yml.tmpl" "$src"/templates/*.tmpl |
    grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*(:-[A-Za-z0-9_.:/@-]*)?\}' | sort -u) || true

# One sed expression per placeholder. The value is escaped for the replacement side (\ & |), the
# placeholder for the pattern side (a default may hold . * [ and the like).
script=""
missing=""
set -f # a token is never a file pattern
for token in $placeholders; do
    name=$(printf '%s' "$token" | sed 's/^\${\([A-Za-z0-9_]*\).*/\1/')
    eval "value=\${$name-}"
    case $token in
        *:-*) [ -n "$value" ] || value=$(printf '%s' "$token" | sed 's/^[^:]*:-\(.*\)}$/\1/') ;;
        *) [ -n "$value" ] || { missing="$missing $name"; continue; } ;;
    esac
    case $value in
        *"'"* | *'
'*) echo "render.sh: $name contains a single quote or a line break, which the configuration cannot hold" >&2
           exit 1 ;;
    esac
    pattern=$(printf '%s' "$token" | sed 's/[]\\.*^$[]/\\&/g')
    replacement=$(printf '%s' "$value" | sed 's/[\\&|]/\\&/g')
    script="$script
s|$pattern|$replacement|g"
done
set +f
if [ -n "$missing" ]; then
    echo "render.sh: not set:$missing (see alertmanager/README.md)" >&2
    exit 1
fi

mkdir -p "$out/templates"
rm -f "$out"/templates/*.tmpl
sed -e "$script" "$src/alertmanager.yml.tmpl" > "$out/alertmanager.yml.new"
mv "$out/alertmanager.yml.new" "$out/alertmanager.yml"
for file in "$src"/templates/*.tmpl; do
    sed -e "$script" "$file" > "$out/templates/${file##*/}"
done

[ "$#" -eq 0 ] || exec "$@"
