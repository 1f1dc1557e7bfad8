//! The machine-readable report.
//!
//! Schema (`trailproof-report/1`), one JSON object:
//! - `schema`: `"trailproof-report/1"`; `tool`, `version`
//! - `source`: the evidence directory or S3 URI; `bucket`
//! - `range`: `{start, end, derived_from_evidence}` (RFC 3339 UTC)
//! - `filters`: `{accounts, regions, trails}`
//! - `keys`: `[{fingerprint, valid_from, valid_to, origin}]`, the public keys the run could use
//! - `chains`: `[{chain: {trail_arn, trail, home_region, prefix, organization, account, region,
//!   backfill}, findings: [...]}]`, digests newest first, each followed by its log files
//! - `unchained`: findings outside every chain (log files no digest references)
//! - `notes`: what the run could not check, in words
//! - `totals`: `{digests: {valid, invalid, not_verified}, logs: {...}, coverage_findings}`
//! - `exit_code`: 0 all valid, 1 findings, 2 an object could not be read
//!
//! A finding is `{subject, kind, verdict, reason, evidence?}`: `subject` the `s3://` URI,
//! `kind` one of the snake_case names of [`crate::core::finding::Kind`], `verdict` one of
//! `valid`, `not_verified`, `missing`, `invalid`, and `evidence` optional facts
//! (`expected_sha256`, `actual_sha256`, `fingerprint`, `from`, `to`, `named_by`, `detail`).

use std::io::{self, Write};

use serde::Serialize;

use super::{Report, Totals};

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a Report,
    totals: Totals,
    exit_code: u8,
}

pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let doc = Document {
        schema: "trailproof-report/1",
        report,
        totals: report.totals(),
        exit_code: report.exit_code(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
