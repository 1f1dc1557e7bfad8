//! `verify-query-results`: one CloudTrail Lake export folder, checked into a [`Report`].
//!
//! In order: list the folder, read the sign file (bounded), parse it, get the keys for its
//! Region around its `queryCompleteTime`, verify its signature, hash every result file it
//! lists (streamed, in parallel), then judge each file and everything else in the folder
//! ([`crate::core::lake`]). A bad sign file, a missing or changed file, or an extra file is a
//! finding and the run goes on; an `Err` only when the folder cannot be listed or the keys
//! cannot be had.
use std::collections::BTreeSet;

use jiff::Timestamp;

use super::EngineError;
use crate::core::finding::{merge_by_object, Evidence, Finding, Kind};
use crate::core::lake::{
    judge_export, sign_file_finding, unlisted, verify_sign_file, SignFile, SignState, KEY_SEARCH,
    MAX_SIGN_FILE, SIGN_FILE,
};
use crate::core::time::later;
use crate::core::types::Sha256;
use crate::report::{Filters, RangeInfo, Report};
use crate::source::lake::ExportFolder;
use crate::source::progress::{Observer, Phase, Progress};
use crate::source::{KeyNeeds, KeyProvider, ReadError};

/// What a report on query results cannot prove, said in every such report.
const NOTES: [&str; 2] = [
    "CloudTrail Lake signs only the list of result-file hashes: the file names, queryCompleteTime, region and publicKeyFingerprint of result_sign.json are unsigned (they can only choose among genuine CloudTrail keys, never make a forgery pass)",
    "a valid result proves each listed file's bytes are the query's, in the signed order; not that the query asked the right question, nor anything about events outside its results",
];

/// Verifies the export folder `folder` with the keys `keys` gives for `key_region` (default:
/// the sign file's `region`); `now` stands in for the report's time range when the sign file
/// gives none.
pub fn verify_query_results(
    folder: &dyn ExportFolder,
    keys: &dyn KeyProvider,
    key_region: Option<&str>,
    observer: &dyn Observer,
    now: Timestamp,
) -> Result<Report, EngineError> {
    let entries = folder.entries()?;
    let names = || entries.iter().map(String::as_str);
    let sign_uri = folder.uri(SIGN_FILE);
    let mut report = Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: folder.describe(),
        bucket: folder.bucket().unwrap_or_default(),
        range: RangeInfo {
            start: now,
            end: now,
            derived_from_evidence: true,
        },
        filters: Filters::default(),
        keys: Vec::new(),
        chains: Vec::new(),
        unchained: Vec::new(),
        notes: NOTES.iter().map(|n| (*n).to_owned()).collect(),
        retention: Default::default(),
        chain_ends: Vec::new(),
        crosscheck: None,
    };
    let uri = |name: &str| folder.uri(name);
    let unlisted_findings =
        |sign: Option<&SignFile>| judge_export_unlisted(&unlisted(sign, names()), &uri);
    let bytes = match folder.read_small(SIGN_FILE, MAX_SIGN_FILE) {
        Ok(bytes) => bytes,
        Err(e) => {
            let (kind, reason) = match e {
                ReadError::NotFound => (Kind::QuerySignMissing, "not found".to_owned()),
                ReadError::Escape(d) => (
                    Kind::QuerySignFormat,
                    format!("not a plain file of the export folder: {d}"),
                ),
                ReadError::NotAFile(what) => (
                    Kind::QuerySignFormat,
                    format!("not a plain file of the export folder: {what}"),
                ),
                ReadError::OtherBucket => {
                    (Kind::QuerySignUnreadable, "in another bucket".to_owned())
                }
                ReadError::Failed(f) => {
                    (Kind::QuerySignUnreadable, format!("could not be read: {f}"))
                }
                ReadError::Archived(class) => (
                    Kind::QuerySignUnreadable,
                    format!("archived ({class}), restore it first"),
                ),
            };
            report.unchained.push(Finding::new(&sign_uri, kind, reason));
            report.unchained.extend(unlisted_findings(None));
            return Ok(report);
        }
    };
    let sign = match SignFile::parse(&bytes) {
        Ok(sign) => sign,
        Err(e) => {
            let evidence = Evidence {
                detail: Some(e.to_string()),
                ..Evidence::default()
            };
            report.unchained.push(
                Finding::new(&sign_uri, Kind::QuerySignFormat, "invalid format").with(evidence),
            );
            report.unchained.extend(unlisted_findings(None));
            return Ok(report);
        }
    };
    report.range.start = sign.complete;
    report.range.end = sign.complete;
    let needs = KeyNeeds {
        regions: BTreeSet::from([key_region.unwrap_or(&sign.region).to_owned()]),
        windows: vec![(sign.complete, later(sign.complete, KEY_SEARCH))],
    };
    let keyset = keys.keys(&needs)?;
    report.keys = super::assemble::key_infos(&keyset, keys);
    let verified = verify_sign_file(&sign, &keyset);
    let readable = sign.readable();
    let to_read: Vec<String> = sign
        .files
        .iter()
        .zip(&readable)
        .filter(|(_, r)| **r)
        .map(|(f, _)| f.name.clone())
        .collect();
    let hashed = {
        let progress = Progress::start(
            observer,
            Phase::QueryResultsHashed,
            Some(to_read.len() as u64),
        );
        folder.hash_files(&to_read, &progress)
    };
    let mut hashed = hashed.into_iter();
    let reads: Vec<_> = readable
        .iter()
        .map(|r| if *r { hashed.next() } else { None })
        .collect();
    let state = match &verified {
        Ok(v) => SignState::Verified(v),
        Err(_) => SignState::Unverified(&sign),
    };
    let mut sign_finding = sign_file_finding(&sign_uri, &sign, &verified);
    // Names the sign file's bytes in the manifest (and a signed report's subjects).
    sign_finding.evidence.actual_sha256 = Some(Sha256::of(&bytes));
    let mut findings = vec![sign_finding];
    findings.extend(judge_export(
        state,
        &reads,
        &unlisted(Some(&sign), names()),
        &uri,
    ));
    report.unchained = merge_by_object(findings);
    Ok(report)
}

fn judge_export_unlisted(names: &[String], uri: &dyn Fn(&str) -> String) -> Vec<Finding> {
    names
        .iter()
        .map(|n| {
            Finding::new(
                uri(n),
                Kind::QueryResultUnlisted,
                "in the export folder, and no readable sign file lists it",
            )
        })
        .collect()
}
