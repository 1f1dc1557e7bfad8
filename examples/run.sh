#!/usr/bin/env bash
# Builds the embedder examples as an embedder would (no default features; `aws` for the S3 one)
# and runs each on the committed cases, checking its exit status and what it says. The S3
# example runs against moto on loopback (tests/support/moto_server.py, which adds the
# ListPublicKeys call moto lacks). Needs the test peers: python3 -m pip install -r
# tests/requirements.txt. Run from anywhere; CI runs it after the tests (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet --no-default-features --examples
cargo build --locked --quiet --no-default-features --features aws --example verify_s3
bin=${CARGO_TARGET_DIR:-target}/debug/examples
case_dir=testdata/cases/clean-plain
keys=$case_dir/public-keys.json

# expect STATUS PATTERN CMD...: runs CMD, checks its exit status and that its output has PATTERN.
expect() {
  local status=$1 pattern=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" != "$status" ] || ! grep -q -- "$pattern" <<<"$out"; then
    printf 'FAIL: %s\n  wanted exit %s and /%s/, got exit %s:\n%s\n' "$*" "$status" "$pattern" "$rc" "$out" >&2
    exit 1
  fi
  printf 'ok: %s -> exit %s, says /%s/\n' "$(basename "$1")" "$rc" "$pattern"
}

# One digest, with the signature its S3 metadata carried (kept in the evidence-metadata file).
digest=$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1]))["objects"]; k=sorted(k for k in o if "CloudTrail-Digest" in k)[0]; print(k, o[k]["metadata"]["signature"])' "$case_dir/bucket/trailproof-evidence.json")
read -r key signature <<<"$digest"
expect 0 ': valid, signed with key' "$bin/verify_digest" "$keys" acme-cloudtrail-logs "$key" "$case_dir/bucket/$key" "$signature"
# The same bytes and signature read from another bucket: a copy, not the digest CloudTrail delivered there.
expect 1 'has been moved' "$bin/verify_digest" "$keys" another-bucket "$key" "$case_dir/bucket/$key" "$signature"
# A signature that is not the digest's.
expect 1 'signature verification failed' "$bin/verify_digest" "$keys" acme-cloudtrail-logs "$key" "$case_dir/bucket/$key" "${signature/#??/00}"

# One log file against that digest: as delivered, and with one record edited and recompressed.
log=$(python3 -c 'import gzip,json,sys; d=json.loads(gzip.open(sys.argv[1]).read()); print(d["logFiles"][0]["s3Object"])' "$case_dir/bucket/$key")
expect 0 ': Valid: valid' "$bin/verify_log" "$keys" acme-cloudtrail-logs "$key" "$case_dir/bucket/$key" "$signature" "$log" "$case_dir/bucket/$log"
edited=$(mktemp)
python3 -c 'import gzip,sys; t=gzip.open(sys.argv[1]).read().replace(b"\"eventName\":\"", b"\"eventName\":\"x", 1); open(sys.argv[2],"wb").write(gzip.compress(t))' "$case_dir/bucket/$log" "$edited"
expect 1 "Invalid: hash value doesn't match" "$bin/verify_log" "$keys" acme-cloudtrail-logs "$key" "$case_dir/bucket/$key" "$signature" "$log" "$edited"
rm -f "$edited"
# The intact bytes under a key the digest does not list: no digest vouches for them there.
expect 1 'NOT VERIFIED by .*does not list' "$bin/verify_log" "$keys" acme-cloudtrail-logs "$key" "$case_dir/bucket/$key" "$signature" "${log%/*}/injected.json.gz" "$case_dir/bucket/$log"

# A whole copy: intact, and the tampered sample.
expect 0 'log files: 12 valid, 0 invalid, 0 not verified' "$bin/verify_dir" "$case_dir/bucket" "$keys"
expect 1 'INVALID\|Invalid' "$bin/verify_dir" testdata/sample/bucket testdata/sample/public-keys.json

# The records of the proven log files: all of them from the intact copy; none of the tampered
# or injected files' from the sample, which are counted as left out.
expect 0 'records, [0-9]* duplicates merged, 0 log files left out' "$bin/verified_events" "$case_dir/bucket" "$keys"
expect 1 'log_hash_mismatch: 1' "$bin/verified_events" testdata/sample/bucket testdata/sample/public-keys.json

# From S3: moto on a free loopback port, the intact case uploaded with its S3 metadata.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 tests/support/moto_server.py "$port" "$keys" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
  sleep 0.1
done
python3 benches/upload.py "$case_dir" acme-cloudtrail-logs >/dev/null
expect 0 '"exit_code": 0' "$bin/verify_s3" acme-cloudtrail-logs
echo "examples: all ran as expected"
