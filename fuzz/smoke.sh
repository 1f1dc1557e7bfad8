#!/usr/bin/env bash
# CI smoke test of the fuzz targets: builds them all, then runs each for SMOKE_SECONDS (30 by
# default) from its committed seeds. A crash, a failed property or a timeout exits non-zero;
# the input is kept in fuzz/artifacts/<target>/. New corpus entries go to a temporary
# directory, so the seeds are never changed.
#
# The libFuzzer seed is fixed (SMOKE_SEED, 1 by default): with a fixed seed and fresh corpus
# directory a run is deterministic up to when the clock stops it, so a CI run is a prefix of a
# longer local run with the same seed, and a crash CI finds reproduces. Vary the seed locally to
# explore; the 10-minute runs in fuzz/README.md use random seeds.
#
# Stable Rust: `-s none`, because cargo-fuzz's default AddressSanitizer needs nightly. The
# build keeps debug assertions and overflow checks on (cargo-fuzz's default).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${SMOKE_SECONDS:-30}
seed=${SMOKE_SEED:-1}
flags=(--sanitizer none)

cargo fuzz build "${flags[@]}"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for target in $(cargo fuzz list); do
  echo "== fuzz/$target: ${seconds}s"
  mkdir -p "$corpus/$target"
  # libFuzzer's own status lines are long and many; its last lines say how it ended.
  if ! cargo fuzz run "${flags[@]}" "$target" "$corpus/$target" "seeds/$target" -- \
      -seed="$seed" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      > "$corpus/$target.log" 2>&1; then
    # The panic message comes before libFuzzer's long backtrace; show both ends.
    grep -m1 -A8 'panicked at' "$corpus/$target.log" || true
    tail -n 40 "$corpus/$target.log"
    echo "fuzz/$target FAILED: reproduce with fuzz/artifacts/$target/ (see fuzz/README.md)" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$corpus/$target.log" || true
done
echo "fuzz smoke: all targets ran ${seconds}s without a crash"
