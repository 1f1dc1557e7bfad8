#!/usr/bin/env bash
# Benchmark of `trailproof events DIR > /dev/null` (JSONL, sorted by default, and --unsorted)
# against the roofline (benches/roofline.rs: read, inflate and SHA-256 every log file with all
# cores, nothing else) and against `zcat FILES | jq -c '.Records[]' > /dev/null` on the same
# log files; then peak memory as the corpus grows.
#
#   benches/events.sh [HOURS] [LOGS_PER_HOUR] [RECORDS_PER_LOG] [RUNS]
#
# Defaults: 48 hourly digests x 50 log files of 100 records per scale unit (the corpus of
# benches/offline.sh), 3 runs per measurement (the median is shown); SCALES="1 10" multiplies
# the hours. jq runs at the first scale only (it takes minutes beyond). Files are read warm
# from the page cache. Needs a Rust toolchain, python3, jq, zcat and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${1:-48} LOGS=${2:-50} RECORDS=${3:-100} RUNS=${4:-3}
SCALES=${SCALES:-1 10}
work=$(mktemp -d /tmp/trailproof-events.XXXXXX)
trap 'rm -rf "$work"' EXIT

. benches/common.sh
build_roofline_and_release

# what dir -> "seconds peak_kib" (wall to the millisecond, whole pipeline's largest process)
measure() {
  local what=$1 dir=$2 code=0 t0 t1
  t0=$(date +%s%N)
  case $what in
    roofline) /usr/bin/time -f '%M' -o "$work/time" "$roofline" "$dir" > /dev/null 2>"$work/err" || code=$? ;;
    sorted|unsorted)
      local extra=(); [ "$what" = unsorted ] && extra=(--unsorted)
      (cd "$dir/.." && /usr/bin/time -f '%M' -o "$work/time" "$bin/trailproof" events bucket \
        "${args[@]}" "${extra[@]}" > /dev/null 2>"$work/err") || code=$? ;;
    jq)
      # zcat's and jq's peaks: the larger is jq's.
      /usr/bin/time -f '%M' -o "$work/time" bash -c \
        'find "$1" -path "*/CloudTrail/*" -name "*.json.gz" -print0 | sort -z | xargs -0 zcat | jq -c ".Records[]" > /dev/null' \
        _ "$dir" 2>"$work/err" || code=$? ;;
  esac
  t1=$(date +%s%N)
  if [ "$code" != 0 ]; then echo "$what failed ($code):" >&2; tail -5 "$work/err" >&2; exit 2; fi
  echo "$(echo "($t1 - $t0) / 1000000000" | bc -l | cut -c1-7) $(tail -1 "$work/time")"
}
runs() {
  local t="" r="" s k
  for _ in $(seq "$RUNS"); do
    read -r s k < <(measure "$@")
    t+="$s "; r+="$k "
  done
  echo "$(echo "$t" | median) $(echo "$r" | median)"
}

first=$(echo $SCALES | cut -d' ' -f1)
declare -A size secs rss
printf '%-6s %-28s %10s %10s %12s %14s\n' scale program "wall (s)" "MB/s" "of roofline" "peak RSS (MB)"
for scale in $SCALES; do
  dir=$work/x$scale
  "$bin/trailproof-testgen" corpus "$dir" --hours $((HOURS * scale)) --logs-per-hour "$LOGS" \
    --records-per-log "$RECORDS" >&2
  mapfile -t args < <(python3 -c "import json; print('\n'.join(json.load(open('$dir/expected.json'))['args']))")
  measure roofline "$dir/bucket" > /dev/null   # warm the page cache
  size[$scale]=$("$roofline" "$dir/bucket" | sed 's/.*inflated_bytes=\([0-9]*\).*/\1/')
  programs="roofline sorted unsorted"
  [ "$scale" = "$first" ] && programs+=" jq"
  for p in $programs; do
    read -r s k < <(runs "$p" "$dir/bucket")
    secs[$scale.$p]=$s rss[$scale.$p]=$k
    printf '%-6s %-28s %10.3f %10.0f %12.2f %14.1f\n' "x$scale" \
      "$(case $p in roofline) echo roofline;; sorted) echo 'trailproof events';; unsorted) echo 'trailproof events --unsorted';; jq) echo "zcat | jq -c '.Records[]'";; esac)" \
      "$s" "$(echo "${size[$scale]} / 1000000 / $s" | bc -l)" "$(echo "${secs[$scale.roofline]} / $s" | bc -l)" \
      "$(echo "$k / 1024" | bc -l)"
  done
  lines=$(cd "$dir" && "$bin/trailproof" events bucket "${args[@]}" 2>/dev/null | wc -l)
  echo "x$scale: $((size[$scale] / 1000000)) MB inflated, $lines records written; $cores cores" >&2
  rm -rf "$dir"
done
last=$(echo $SCALES | awk '{print $NF}')
echo
echo "trailproof events vs zcat | jq (x$first): $(echo "${secs[$first.jq]} / ${secs[$first.sorted]}" | bc -l | cut -c1-6)x faster sorted, $(echo "${secs[$first.jq]} / ${secs[$first.unsorted]}" | bc -l | cut -c1-6)x unsorted"
echo "peak RSS x$last / x$first: sorted $(echo "${rss[$last.sorted]} / ${rss[$first.sorted]}" | bc -l | cut -c1-5)x, unsorted $(echo "${rss[$last.unsorted]} / ${rss[$first.unsorted]}" | bc -l | cut -c1-5)x"
