#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed at /usr/bin/chromium (Debian's package),
# as the end-to-end tests in tests/ expect. Idempotent: does nothing if it is already there.
# Output is quiet; apt's errors still reach stderr.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
    if [ "$CHROMIUM" != /usr/bin/chromium ]; then
        echo "ensure-chromium: \$CHROMIUM=$CHROMIUM is not an executable file" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-chromium: /usr/bin/chromium is missing; run this script as root to install it" >&2
        exit 1
    fi
    echo "ensure-chromium: installing Debian's chromium package..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

"$CHROMIUM" --version
