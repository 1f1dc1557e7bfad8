#!/usr/bin/env bash
# Offline benchmark: `trailproof verify DIR` against the roofline (benches/roofline.rs: read,
# inflate and SHA-256 every log file with all cores, nothing else), then a thread sweep, then
# the same corpus at several sizes for the scaling exponent and peak memory.
#
#   benches/offline.sh [HOURS] [LOGS_PER_HOUR] [RECORDS_PER_LOG] [RUNS]
#
# Defaults: 48 hourly digests x 50 log files of 100 records (~120 KB inflated each) per scale
# unit, 5 runs per measurement, alternating the two programs; SCALES="1 3 10" multiplies the
# hours. Files are read warm from the page cache (one untimed pass first), so this measures
# the CPU work, as the roofline does. Needs a Rust toolchain, python3 and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${1:-48} LOGS=${2:-50} RECORDS=${3:-100} RUNS=${4:-5}
SCALES=${SCALES:-1 3 10}
work=$(mktemp -d /tmp/trailproof-offline.XXXXXX)
trap 'rm -rf "$work"' EXIT

. benches/common.sh
build_roofline_and_release

# program dir threads -> "seconds peak_kib" (wall to the millisecond, whole process)
measure() {
  local out=$work/out code=0 t0 t1
  t0=$(date +%s%N)
  if [ "$1" = roofline ]; then
    RAYON_NUM_THREADS=$3 /usr/bin/time -f '%M' -o "$work/time" "$roofline" "$2" > "$out" 2>&1 || code=$?
  else
    (cd "$2/.." && /usr/bin/time -f '%M' -o "$work/time" "$bin/trailproof" verify bucket \
      "${args[@]}" --threads "$3" > "$out" 2>&1) || code=$?
  fi
  t1=$(date +%s%N)
  if [ "$code" != 0 ]; then echo "$1 failed ($code):" >&2; tail -5 "$out" >&2; exit 2; fi
  echo "$(echo "($t1 - $t0) / 1000000000" | bc -l | cut -c1-6) $(cat "$work/time")"
}
# program dir threads -> median seconds, median and max peak KiB over RUNS (a run's peak
# memory varies with thread timing, like its wall time)
runs() {
  local t="" r="" m=0 s k
  for _ in $(seq "$RUNS"); do
    read -r s k < <(measure "$@")
    t+="$s "; r+="$k "; [ "$k" -gt "$m" ] && m=$k
  done
  echo "$(echo "$t" | median) $(echo "$r" | median) $m"
}

declare -A size secs rss rssmax roof
for scale in $SCALES; do
  dir=$work/x$scale
  "$bin/trailproof-testgen" corpus "$dir" --hours $((HOURS * scale)) --logs-per-hour "$LOGS" \
    --records-per-log "$RECORDS" >&2
  mapfile -t args < <(python3 -c "import json; print('\n'.join(json.load(open('$dir/expected.json'))['args']))")
  measure roofline "$dir/bucket" "$cores" > /dev/null   # warm the page cache
  size[$scale]=$("$roofline" "$dir/bucket" | sed 's/.*inflated_bytes=\([0-9]*\).*/\1/')
  logs=$(find "$dir/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
  if [ "$scale" = "$(echo $SCALES | cut -d' ' -f1)" ]; then
    echo
    echo "corpus x$scale: $logs log files, $((size[$scale] / 1000000)) MB inflated; $cores cores; $RUNS runs each, alternating"
    printf '%-26s %8s %10s %10s %21s\n' program threads "wall (s)" "MB/s" "median peak RSS (MB)"
    declare -A best
    for threads in $(seq "$cores"); do
      for prog in roofline trailproof; do
        read -r s k _ < <(runs $prog "$dir/bucket" "$threads")
        best[$prog.$threads]=$s
        printf '%-26s %8s %10.3f %10.0f %21.1f\n' \
          "$([ $prog = roofline ] && echo roofline || echo 'trailproof verify DIR')" "$threads" "$s" \
          "$(echo "${size[$scale]} / 1000000 / $s" | bc -l)" "$(echo "$k / 1024" | bc -l)"
      done
    done
    echo "trailproof / roofline throughput at $cores threads: $(echo "${best[roofline.$cores]} / ${best[trailproof.$cores]}" | bc -l | cut -c1-5)"
  fi
  read -r secs[$scale] rss[$scale] rssmax[$scale] < <(runs trailproof "$dir/bucket" "$cores")
  read -r roof[$scale] _ < <(runs roofline "$dir/bucket" "$cores")
  rm -rf "$dir"
done

echo
echo "scaling of trailproof verify DIR ($cores threads)"
printf '%-8s %14s %10s %21s %16s\n' scale "inflated MB" "wall (s)" "median peak RSS (MB)" "of roofline"
for scale in $SCALES; do
  printf '%-8s %14.0f %10.3f %21.1f %16.2f\n' "x$scale" "$(echo "${size[$scale]} / 1000000" | bc -l)" "${secs[$scale]}" \
    "$(echo "${rss[$scale]} / 1024" | bc -l)" "$(echo "${roof[$scale]} / ${secs[$scale]}" | bc -l)"
done
python3 - "$SCALES" "$(for s in $SCALES; do echo -n "${size[$s]}:${secs[$s]}:${rss[$s]}:${rssmax[$s]} "; done)" <<'EOF'
import math, sys
points = [tuple(float(v) for v in p.split(":")) for p in sys.argv[2].split()]
xs = [math.log(p[0]) for p in points]; ys = [math.log(p[1]) for p in points]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
print(f"fitted exponent (wall ~ size^k): k = {slope:.3f}")
print(f"peak RSS, largest / smallest corpus ({points[-1][0] / points[0][0]:.1f}x the data): "
      f"{points[-1][2] / points[0][2]:.2f}x (medians), {points[-1][3] / points[0][3]:.2f}x (maxima)")
EOF
