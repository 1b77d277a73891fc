#!/usr/bin/env bash
# Tests the Node binding the way a user gets it: `npm install` here (dev tools: @napi-rs/cli for
# the index.d.ts check, playwright-core to drive headless Chromium), then `npm install <this
# folder>` into a scratch project under a temporary directory, which builds the native module from
# source with cargo; then `node --test` against that installed package.
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"

"$here/../../scripts/ensure-chromium.sh"

echo "== npm install (bindings/node)"
npm install --no-audit --no-fund --loglevel=error

scratch="$(mktemp -d "${TMPDIR:-/tmp}/rtcast-node-test.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
echo "== npm install $here (into the scratch project $scratch)"
# Without the module built above, so that this install is the one that builds it.
rm -f "$here"/rtcast.*.node
(cd "$scratch" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --loglevel=error --foreground-scripts "$here")

echo "== node --test"
if [ $# -eq 0 ]; then set -- test/*.test.mjs; fi
RTCAST_TEST_PROJECT="$scratch" node --test --test-concurrency=1 --test-timeout=120000 "$@"
