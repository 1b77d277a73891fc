#!/usr/bin/env bash
# Makes sure the network tools the hostile-network tests use are installed from Debian's
# packages: coturn (/usr/bin/turnserver: tests/tests/turn.rs starts its own on loopback) and
# nftables (/usr/sbin/nft: tests/tests/hostile_network.rs drops UDP inside a network namespace
# it makes). Idempotent: installs only what is missing. Quiet; apt's errors still reach stderr.
set -euo pipefail

TURNSERVER="${TURNSERVER:-/usr/bin/turnserver}"
missing=()
if [ ! -x "$TURNSERVER" ]; then
    if [ "$TURNSERVER" != /usr/bin/turnserver ]; then
        echo "ensure-net-tools: \$TURNSERVER=$TURNSERVER is not an executable file" >&2
        exit 1
    fi
    missing+=(coturn)
fi
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-net-tools: ${missing[*]} missing; run this script as root to install them" >&2
        exit 1
    fi
    echo "ensure-net-tools: installing Debian's ${missing[*]}..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "coturn $("$TURNSERVER" --version 2>/dev/null | head -n1), $(/usr/sbin/nft --version 2>/dev/null || nft --version)"
