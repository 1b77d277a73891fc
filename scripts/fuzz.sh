#!/usr/bin/env bash
# Fuzzes rtcast's parsers with cargo fuzz (libFuzzer + AddressSanitizer): every target in
# fuzz/fuzz_targets, or the ones named, for SECONDS each (default 600), starting from the seed
# corpora in fuzz/corpus/TARGET. New inputs go to target/fuzz-corpus/TARGET (not committed); a
# crash is written to fuzz/artifacts/TARGET and ends that target's run (the others go on; the
# script then exits non-zero). Prints libFuzzer's final stats
# (executions, coverage) per target, and a summary line each, also kept in target/fuzz-logs/.
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   scripts/fuzz.sh 60 sdp datagram # two targets, a minute each
#
# FUZZ_TARGET_DIR=DIR builds in DIR instead of fuzz/target (a worktree can share another's
# build: a cold one takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io..." >&2
    cargo install cargo-fuzz --locked --quiet
fi
# cargo fuzz passes -Z flags (sanitizers, coverage) that only nightly compilers take; this
# lets the stable toolchain of this machine take them too.
export RUSTC_BOOTSTRAP=1

build=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    build=(--target-dir "$FUZZ_TARGET_DIR")
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
mkdir -p target/fuzz-logs
failed=0
for t in "${targets[@]}"; do
    mkdir -p "target/fuzz-corpus/$t" "fuzz/corpus/$t"
    log="target/fuzz-logs/$t.log"
    echo "== fuzz $t for ${seconds}s"
    # -jobs/-workers stay at 1: the machine has two cores, and tests may run beside it.
    cargo fuzz run --fuzz-dir fuzz --release "${build[@]}" "$t" \
        "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -timeout=10 \
        >"$log" 2>&1 || {
        tail -n 40 "$log"
        echo "fuzz $t: CRASH or error (log: $log; the input is in fuzz/artifacts/$t)"
        failed=1
        continue
    }
    execs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse).*cov:' "$log" | tail -n1 | sed -E 's/.*cov: ([0-9]+).*ft: ([0-9]+).*/cov \1 ft \2/')
    echo "fuzz $t: ${seconds}s, ${execs:-?} executions, ${cov:-coverage ?}, no crash"
done
exit "$failed"
