#!/usr/bin/env bash
# Makes sure Debian's coturn is installed (/usr/bin/turnserver), as the TURN test in tests/
# (tests/tests/turn.rs) expects: it starts its own turnserver on loopback. Idempotent: does
# nothing if it is already there. Output is quiet; apt's errors still reach stderr.
set -euo pipefail

TURNSERVER="${TURNSERVER:-/usr/bin/turnserver}"

if [ ! -x "$TURNSERVER" ]; then
    if [ "$TURNSERVER" != /usr/bin/turnserver ]; then
        echo "ensure-coturn: \$TURNSERVER=$TURNSERVER is not an executable file" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-coturn: /usr/bin/turnserver is missing; run this script as root to install coturn" >&2
        exit 1
    fi
    echo "ensure-coturn: installing Debian's coturn package..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends coturn >/dev/null
fi

echo "coturn $("$TURNSERVER" --version 2>/dev/null | head -n1)"
