//! The machine-readable report: the audit [`Document`], pretty-printed.
//!
//! Schema (`trailproof-report/1`), one JSON object:
//! - `schema`: `"trailproof-report/1"`; `tool`, `version`
//! - `run`: `{started, finished}`, the run's own clock (the only fields that differ between two
//!   identical runs)
//! - `signer` (signed payloads only): `{keyid, algorithm, certificate_sha256,
//!   certificate_subject}`, see `src/report/dsse.rs`
//! - `shard` (a shard's report only, `verify --plan`): `{plan_sha256, index, shards, keys}`,
//!   the SHA-256 of the plan file the shard ran, its index, the plan's number of shards, and
//!   where its keys came from (`cloudtrail:ListPublicKeys` or `pinned:SHA256` of the key file).
//!   A shard's `chains`, `unchained` and `ledger` are only what its shares own (see
//!   `src/engine/fanout.rs`); its `range` and `filters` are the plan's. `merge` reads back
//!   everything but `run`, `signer`, `totals`, `ledger`, `manifest`, `not_proven` and
//!   `exit_code`, which it computes again from the merged chains
//! - `merged` (a merged report only, `merge`): `{plan_sha256, shards}`, the SHA-256 of the plan
//!   file its shard reports were made for (the one `plan` printed) and the plan's number of
//!   shards, each merged once. A report whose plan is not the one kept proves nothing of it
//! - `source`: the evidence directory or S3 URI; `bucket`
//! - `range`: `{start, end, derived_from_evidence}` (RFC 3339 UTC)
//! - `filters`: `{accounts, regions, trails}`
//! - `keys`: `[{fingerprint, valid_from, valid_to, origin, digests_verified}]`, the public keys
//!   the run could use and how many digests each verified
//! - `chains`: `[{chain: {trail_arn, trail, home_region, prefix, organization, account, region,
//!   backfill}, coverage: {verified, gaps, not_verified}, ledger?, findings: [...]}]`, findings
//!   with digests newest first, each followed by its log files; coverage lists are
//!   `[{from, to}]` periods clipped to the range, taken from the ledger (`gaps`: gap and
//!   missing; `not_verified`: not-verified and invalid)
//! - `chains[].ledger` (standard chains, not backfill): `{from, to, hours, counts: {verified,
//!   verified-empty, gap, missing, invalid, not-verified}, runs: [{from, to, state, hours}],
//!   periods: [{from, to, state}]}`: every clock hour of the range in exactly one state (the
//!   worst of what overlaps it), `runs` consecutive hours in one state, `periods` the exact
//!   stretches behind them (see `src/core/ledger.rs`)
//! - `unchained`: findings outside every chain (log files no digest references)
//! - `notes`: what the run could not check, in words
//! - `totals`: `{digests: {valid, invalid, not_verified}, logs: {...}, coverage_findings}`, each
//!   object counted once
//! - `retention` (S3 runs, when S3 said any proven object is under Object Lock):
//!   `{compliance: {objects, earliest_until?, latest_until?}, governance: {...}, legal_hold}`,
//!   counted over the proven objects, from what the GetObject responses said (S3's word)
//! - `ledger`: `{chains, hours, counts}`, every chain's ledger added up
//! - `crosscheck` (`crosscheck cloudwatch` only): `{log_group, log_stream_prefix, streams,
//!   start, end, slack_seconds, group_events, proven_events, matched, duplicates,
//!   oversized_absent, unproven_events}` (see [`crate::core::cloudwatch::CrosscheckCounts`]);
//!   its findings are in `unchained` (kinds `cloud_watch_*`, subjects
//!   `cloudwatch:GROUP:STREAM:ID` for a log event, `s3://BUCKET/KEY#EVENTID` for a proven event
//!   missing from the group) and counted in `totals.cloudwatch_events`
//! - `manifest`: `[{uri, object, version_id, sha256, verdict}]`, every judged object sorted by
//!   URI; `sha256` of the inflated content when it was read; `version_id` null for local copies
//! - `not_proven`: `[{what, chain, subject, period, detail}]`, what this report does not prove
//!   (`what`: `gap`, `not_verified_period`, `unverifiable_head`, `unreferenced_log`,
//!   `not_verified_object`, `outside_range`, `trusted_keys`, `note`)
//! - `exit_code`: 0 all valid, 1 findings, 2 an object could not be read
//!
//! A finding is `{subject, kind, verdict, reason, evidence?, also?}` and there is one per object
//! (chain notes such as gaps apart): `also` lists the object's other reasons, each
//! `{kind, verdict, reason, evidence?}`. Its fields: `subject` the `s3://` URI,
//! `kind` one of the snake_case names of [`crate::core::finding::Kind`], `verdict` one of
//! `valid`, `not_verified`, `missing`, `invalid`, and `evidence` optional facts
//! (`expected_sha256`, `actual_sha256`, `fingerprint`, `from`, `to`, `named_by`, `detail`,
//! `signing_time`). `signing_time` is on every verdict about a backfill digest's key:
//! `{earliest, latest, basis}`, the times the key had to be valid at some point of, `basis`
//! `backfill_generation_timestamp` (the verdict relied on that unsigned S3 metadata) or
//! `backfill_bound` (no generation time: from the digest's end to 30 days after).
//!
//! On S3, a finding may carry `custody`, what the GetObject that read the object said when it
//! said more than the defaults: `{version_id?, storage_class?, lock_mode?, lock_retain_until?,
//! legal_hold?}` (S3's word, not proof).
//!
//! On S3, a finding on an object that is invalid, missing or moved may carry `versions`
//! (only when the key has versions besides its current one, or a delete marker; see
//! `src/core/custody.rs`): `{checked, delivered?: {version_id, written}, current: {state:
//! "overwritten", version_id, written} | {state: "delete_marker", version_id, at} | {state:
//! "absent"}}`, `checked` the other versions read, `delivered` the newest of them whose content
//! is proven CloudTrail's (a log version's inflated SHA-256 equal to the digest's, a digest
//! version whose signature verifies at its key). The finding's verdict stays that of the
//! current state. An offline copy made by `acquire` from such a version has a finding of kind
//! `overwritten_in_bucket` (invalid) or `deleted_in_bucket` (missing) on it.

use std::io::{self, Write};

use super::audit::Document;

/// Writes `doc` as pretty-printed JSON and a final newline.
pub fn write(out: &mut dyn Write, doc: &Document<'_>) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}
