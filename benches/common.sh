# Shared by the benchmark scripts (sourced, not run): the roofline and release builds, and the
# median of a list of numbers.

# Builds benches/roofline.rs and then the release binaries, and sets `roofline` (its path),
# `bin` (the release folder) and `cores`. The binaries are built after the bench, which writes
# its own build of them (other features) to the same place: what is measured is what
# `cargo build --release` gives a user.
build_roofline_and_release() {
  roofline=$(cargo bench --no-default-features --locked --bench roofline --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "roofline" and m.get("executable"):
        print(m["executable"])')
  cargo build --release --locked --workspace --bins >&2
  bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
  cores=$(nproc)
}

# The median of the numbers on stdin, separated by spaces or lines.
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
