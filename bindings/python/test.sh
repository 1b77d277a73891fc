#!/usr/bin/env bash
# Tests the Python module as a user gets it: a fresh venv, `pip install ./bindings/python` (maturin
# builds the extension from source into the workspace's target/), then pytest with an independent
# WebRTC client (aiortc) from PyPI. Extra arguments go to pytest (e.g. -k lifecycle).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
venv="$(mktemp -d "${TMPDIR:-/tmp}/rtcast-py-test.XXXXXX")"
trap 'rm -rf "$venv"' EXIT

echo "== python: fresh venv ($("$PYTHON" --version)) in $venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
echo "== pip install ./bindings/python"
"$venv/bin/python" -m pip install --quiet ./bindings/python
"$venv/bin/python" -m pip install --quiet pytest aiortc av numpy mypy  # mypy: stubtest

echo "== pytest bindings/python/tests"
# Run from the tests folder, so `import rtcast` finds the installed package, not the sources.
cd bindings/python/tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
