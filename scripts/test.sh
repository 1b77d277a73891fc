#!/usr/bin/env bash
# Runs every test of rtcast, as CI does: formatting, lints, unit tests, end-to-end tests with a
# native WebRTC client and with headless Chromium (installed here if missing, as is coturn for the
# TURN test).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-chromium.sh
scripts/ensure-net-tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --release --workspace --all-targets --features rtcast-ffi/test-hooks -- -D warnings

echo "== cargo clippy (the library alone, without the program's features)"
cargo clippy --release -p rtcast --no-default-features -- -D warnings

echo "== cargo build (the C library and the binaries the tests run)"
# `cargo test` does not build the cdylib/staticlib that the C tests link against.
# test-hooks: the C library gets `rtcast_test_force_panic`, for the C test of panics at the boundary.
cargo build --release --workspace --features rtcast-ffi/test-hooks

echo "== cargo test (release: the media path and the encoder need optimized code)"
cargo test --release --workspace --features rtcast-ffi/test-hooks

echo "== fuzz corpora and crash regressions (each input through its fuzz target once; scripts/fuzz.sh fuzzes)"
cargo clippy --release -p rtcast --features fuzzing --all-targets -- -D warnings
cargo test --release -p rtcast --features fuzzing --test fuzz_corpus
bindings/python/test.sh
bindings/node/test.sh
