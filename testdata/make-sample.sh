#!/usr/bin/env bash
# Rebuilds testdata/sample: a small organization bucket copy (two accounts, two Regions, six
# hours) with three attacks applied: a log file edited, a digest deleted, a log file injected.
set -euo pipefail
cd "$(dirname "$0")/.."
out=testdata/sample
rm -rf "$out"
gen() { cargo run -q -p trailproof-testgen -- "$@"; }
gen corpus "$out" --seed 7 --org --accounts 2 --regions 2 --hours 6 --logs-per-hour 3 --records-per-log 20 --bucket acme-cloudtrail-logs
pick() { (cd "$out/bucket" && find AWSLogs -path "*$1*" -name '*.json.gz' | sort | sed -n "${2}p"); }
gen tamper "$out" log-modify "$(pick /CloudTrail/us-east-1/ 5)"
gen tamper "$out" digest-delete "$(pick /CloudTrail-Digest/eu-west-1/ 3)"
gen tamper "$out" log-inject "$(pick /CloudTrail/eu-west-1/ 2)"
