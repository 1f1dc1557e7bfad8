#!/usr/bin/env bash
# Rebuilds fuzz/seeds/ from testdata/ (layout, digest, gz, keyfile, evidence, timestamp). The chain
# target's input is `arbitrary` bytes with no counterpart in testdata, so its seeds are a
# minimized corpus of a short run (see README.md) and are left alone here.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=testdata/cases
out=fuzz/seeds
rm -rf "$out"/{layout,digest,gz,keyfile,evidence}
mkdir -p "$out"/{layout,digest,gz,keyfile,evidence}

# One digest and one log key from each layout variant (plain, prefix, organization,
# backfill), plus near misses.
for c in clean-plain clean-prefix clean-org clean-backfill; do
  n=0
  for pattern in '*_backfill.json.gz' '*CloudTrail-Digest_*.json.gz' '*_CloudTrail_*.json.gz'; do
    f=$(cd "$cases/$c/bucket" && find . -name "$pattern" | sort | head -1)
    if [ -n "$f" ]; then
      printf '%s' "${f#./}" > "$out/layout/$c-$n"
      n=$((n + 1))
    fi
  done
done
printf '%s' 'AWSLogs/x/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz' > "$out/layout/nested-awslogs"
printf '%s' 'AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2026/01/02/111122223333_CloudTrail-Insight_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz' > "$out/layout/insight"
printf '%s' 'AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/02/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20260102T030405Z.json.gz' > "$out/layout/short-trail"

# Inflated digests: intact (chain start, linked, backfill, organization), and the damaged
# digest of each digest case (the subject of its first expected finding).
subject() { # case: the key of the first expected finding's subject
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["findings"][0]["subject"].split("/", 3)[3])' "$cases/$1/expected.json"
}
for c in clean-plain clean-backfill clean-org; do
  i=0
  for f in $(find "$cases/$c/bucket" -path '*CloudTrail-Digest*' -name '*.json.gz' | sort | head -2); do
    gzip -dc "$f" > "$out/digest/$c-$i.json"
    i=$((i + 1))
  done
done
for c in digest-bad-algorithm digest-modified link-hash-mismatch; do
  gzip -dc "$cases/$c/bucket/$(subject "$c")" > "$out/digest/$c.json"
done

# gzip streams behind the target's 4-byte header [max_inflated, max_ratio, ratio_floor, n]
# and n chunk sizes: no chunking with the largest budget, then 1-, 7- and 200-byte chunks.
gz_seed() { # name header-bytes file
  { printf "$2"; cat "$3"; } > "$out/gz/$1"
}
log=$(find "$cases/clean-plain/bucket" -name '*_CloudTrail_*.json.gz' | sort | head -1)
dig=$(find "$cases/clean-plain/bucket" -name '*CloudTrail-Digest*.json.gz' | sort | head -1)
# records: a whole inflated log file, and one record of every odd kind the reader keeps.
rm -rf "$out/records" && mkdir -p "$out/records"
gzip -dc "$log" > "$out/records/clean-plain-log.json"
printf '%s' '{"Records":[{"eventID":"e\u0041","eventTime":"2026-01-02T03:04:05.5Z","userIdentity":{"arn":"a","type":1,"x":[{"arn":2}]},"readOnly":null,"errorCode":null,"n":[-0.5e+3,0,1E2,true,false,null,{}],"s":"\"\\\/\b\f\n\r\t\ud800"},{ }]}' > "$out/records/odd.json"
gz_seed log-whole '\xff\xff\x00\x00' "$log"
gz_seed log-1 '\xff\xff\x00\x01\x00' "$log"
gz_seed digest-7-200 '\xff\x10\x00\x02\x06\xc7' "$dig"
gz_seed log-tiny-budget '\x00\x00\x00\x01\x40' "$log"
for c in log-truncated log-truncated-trailer log-appended log-not-gzip digest-not-gzip; do
  gz_seed "$c" '\xff\xff\x00\x01\x1f' "$cases/$c/bucket/$(subject "$c")"
done
printf '\xff\xff\x00\x00' > "$out/gz/empty"

# Key files: epoch seconds as delivered, a rotation, and ISO 8601 times.
cp "$cases/clean-plain/public-keys.json" "$out/keyfile/plain.json"
cp "$cases/clean-key-rotation/public-keys.json" "$out/keyfile/rotation.json"
python3 - "$cases/clean-plain/public-keys.json" > "$out/keyfile/iso.json" <<'PY'
import json, sys, datetime
d = json.load(open(sys.argv[1]))
for k in d["PublicKeyList"][:2]:
    for f in ("ValidityStartTime", "ValidityEndTime"):
        k[f] = datetime.datetime.fromtimestamp(k[f], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
d["PublicKeyList"] = d["PublicKeyList"][:2]
json.dump(d, sys.stdout)
PY
# A key whose RSA modulus is zero (PKCS#1 DER 30 06 02 01 00 02 01 03): once an overflow.
python3 - > "$out/keyfile/zero-modulus.json" <<'PY'
import base64, hashlib, json
der = bytes([0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03])
print(json.dumps({"PublicKeyList": [{"Value": base64.b64encode(der).decode(), "ValidityStartTime": 1765065600, "ValidityEndTime": 1767657600, "Fingerprint": hashlib.md5(der).hexdigest()}]}))
PY

# Evidence metadata: plain, organization (two accounts), backfill (its extra metadata).
for c in clean-plain clean-org clean-backfill; do
  cp "$cases/$c/bucket/trailproof-evidence.json" "$out/evidence/$c.json"
done
# Timestamp tokens: `openssl ts -reply` with the test TSAs (testdata/tsa) over the signature
# the timestamp target checks them against.
rm -rf "$out/timestamp"
mkdir -p "$out/timestamp"
work=$(mktemp -d)
printf '%s' 'trailproof fuzz seed signature' > "$work/sig"
echo 01 > "$work/serial"
openssl ts -query -data "$work/sig" -sha256 -cert -out "$work/q.tsq"
for k in p256 rsa2048; do
  TSA_SERIAL="$work/serial" openssl ts -reply -config testdata/tsa/tsa.cnf -queryfile "$work/q.tsq" \
    -signer "testdata/tsa/tsa-$k.cert.pem" -inkey "testdata/tsa/tsa-$k.pem" -sha256 \
    -token_out -out "$out/timestamp/$k.tst"
done
rm -r "$work"
du -sh "$out"
