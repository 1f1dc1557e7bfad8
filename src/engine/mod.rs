//! Plans the chains, reads and checks objects in parallel, and assembles the report.
//!
//! Chains are independent, so they are walked in parallel; inside a chain, digests are read
//! and log files hashed in parallel too. Every collection keeps its input order, so the report
//! is the same whatever the thread count. Workers never print.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use crate::core::chain::{
    walk, ContentProblem, DigestCandidate, DigestStatus, Range, WalkedDigest,
};
use crate::core::digest::{LogFileEntry, ParsedDigest};
use crate::core::finding::{Evidence, Finding, Kind};
use crate::core::gz::{inflate_all, GzProblem, Inflater, Limits};
use crate::core::layout::{
    parse_key, ChainId, CloudTrailKey, DigestKey, LogKey, ObjectType, Scope,
};
use crate::core::sign::KeySet;
use crate::core::time::format_iso;
use crate::core::types::S3Location;
use crate::report::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report};
use crate::source::local::LocalEvidence;
use crate::source::ReadError;

/// What to verify, already validated by the CLI.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub trails: Vec<String>,
    pub bucket: Option<String>,
    /// Signatures of chain heads, by digest key.
    pub head_signatures: BTreeMap<String, Vec<u8>>,
    /// Where the keys came from, for the report.
    pub key_origin: String,
}

/// Why the engine could not do the job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no CloudTrail digest or log files under {root} match the filters (is this a copy of a CloudTrail bucket? objects are expected at DIR/AWSLogs/...)")]
    NothingFound { root: String },
    #[error("cannot tell the bucket name from the evidence: pass --s3-bucket")]
    NoBucket,
    #[error("--s3-bucket {given} disagrees with the evidence-metadata file, which records bucket {recorded}")]
    BucketConflict { given: String, recorded: String },
    #[error("the start time {start} is after the end time {end}")]
    BadRange { start: String, end: String },
    #[error("--head-signature names {key}, which is not a digest in the evidence")]
    UnknownHead { key: String },
}

/// Reads at most this much of a digest file; inflated size is bounded by `Limits::DIGEST`.
const MAX_DIGEST_STORED: u64 = 64 << 20;
const READ_CHUNK: usize = 256 * 1024;

/// Verifies an evidence directory.
pub fn verify_local(
    ev: &LocalEvidence,
    keys: &KeySet,
    settings: &Settings,
) -> Result<Report, EngineError> {
    let mut digests: Vec<DigestKey> = Vec::new();
    let mut logs: Vec<(String, LogKey)> = Vec::new();
    for key in ev.keys() {
        match parse_key(key) {
            Ok(CloudTrailKey::Digest(d))
                if selected(settings, &d.scope) && trail_selected(settings, &d.trail) =>
            {
                digests.push(d)
            }
            Ok(CloudTrailKey::Log(l))
                if l.ty == ObjectType::Log && selected(settings, &l.scope) =>
            {
                logs.push((key.clone(), l))
            }
            _ => {}
        }
    }
    for head in settings.head_signatures.keys() {
        if !digests.iter().any(|d| d.format() == *head) {
            return Err(EngineError::UnknownHead { key: head.clone() });
        }
    }
    if digests.is_empty() && logs.is_empty() {
        return Err(EngineError::NothingFound {
            root: ev.root().display().to_string(),
        });
    }
    let (range, derived) = resolve_range(settings, &digests, &logs)?;
    digests.retain(|d| range.holds_digest(d.end_time));

    // Read and parse every digest in range, in parallel.
    let read: Vec<(DigestKey, String, Result<ParsedDigest, ContentProblem>)> = digests
        .into_par_iter()
        .map(|d| {
            let key = d.format();
            let content = read_digest(ev, &key);
            (d, key, content)
        })
        .collect();

    let bucket = resolve_bucket(ev, settings, &read)?;
    let metadata = ev.metadata();
    let mut chains: BTreeMap<ChainId, Vec<DigestCandidate>> = BTreeMap::new();
    for (key, key_text, content) in read {
        let record = metadata.and_then(|m| m.objects.get(&key_text));
        let signature = settings
            .head_signatures
            .get(&key_text)
            .cloned()
            .or_else(|| record.and_then(|r| r.signature()));
        let candidate = DigestCandidate {
            location: S3Location::new(&bucket, &key_text),
            backfill_generated: record.and_then(|r| r.backfill_generated()),
            key: key.clone(),
            content,
            signature,
        };
        chains.entry(key.chain()).or_default().push(candidate);
    }

    let referenced: BTreeSet<S3Location> = chains
        .values()
        .flatten()
        .filter_map(|c| c.content.as_ref().ok())
        .flat_map(|d| d.log_files.iter().map(|l| l.location.clone()))
        .collect();

    let chain_reports: Vec<ChainReport> = chains
        .into_par_iter()
        .map(|(id, candidates)| {
            let walked = walk(&id, candidates, keys, range);
            ChainReport {
                chain: ChainInfo::from(&id),
                findings: chain_findings(ev, &bucket, walked),
            }
        })
        .collect();

    let mut notes = Vec::new();
    let unchained = if settings.trails.is_empty() {
        unreferenced_logs(&bucket, &logs, &referenced, range)
    } else {
        notes.push("log files no digest references were not looked for, because --trail narrows the digests but log files do not name their trail".to_owned());
        Vec::new()
    };
    if !ev.unusable_names().is_empty() {
        notes.push(format!(
            "{} file names in the evidence are not UTF-8 and cannot be S3 keys; they were not read",
            ev.unusable_names().len()
        ));
    }
    if metadata.is_none() {
        notes.push("no evidence-metadata file: digest signatures were taken from each next digest, so the newest digest of each chain segment cannot be verified without --head-signature".to_owned());
    }

    Ok(Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: ev.root().display().to_string(),
        bucket,
        range: RangeInfo {
            start: range.start,
            end: range.end,
            derived_from_evidence: derived,
        },
        filters: Filters {
            accounts: settings.accounts.clone(),
            regions: settings.regions.clone(),
            trails: settings.trails.clone(),
        },
        keys: keys
            .iter()
            .map(|k| KeyInfo {
                fingerprint: k.fingerprint().to_string(),
                valid_from: k.valid_from,
                valid_to: k.valid_to,
                origin: settings.key_origin.clone(),
            })
            .collect(),
        chains: chain_reports,
        unchained,
        notes,
    })
}

fn selected(settings: &Settings, scope: &Scope) -> bool {
    (settings.accounts.is_empty() || settings.accounts.contains(&scope.account))
        && (settings.regions.is_empty() || settings.regions.contains(&scope.region))
}

fn trail_selected(settings: &Settings, trail: &str) -> bool {
    settings.trails.is_empty() || settings.trails.iter().any(|t| t == trail)
}

/// Without a given range, verify everything found: from an hour before the oldest digest ends
/// (its start) to the newest digest's end.
fn resolve_range(
    settings: &Settings,
    digests: &[DigestKey],
    logs: &[(String, LogKey)],
) -> Result<(Range, bool), EngineError> {
    let times = || {
        digests
            .iter()
            .map(|d| d.end_time)
            .chain(logs.iter().map(|(_, l)| l.time))
    };
    let derived = settings.start.is_none() || settings.end.is_none();
    let start = match settings.start {
        Some(s) => s,
        None => times().min().unwrap_or_default() - SignedDuration::from_hours(1),
    };
    let end = match settings.end {
        Some(e) => e,
        None => times().max().unwrap_or_default(),
    };
    if start > end {
        return Err(EngineError::BadRange {
            start: format_iso(start),
            end: format_iso(end),
        });
    }
    Ok((Range { start, end }, derived))
}

/// The bucket: as given, as recorded at acquisition, or as the in-place digests say.
fn resolve_bucket(
    ev: &LocalEvidence,
    settings: &Settings,
    read: &[(DigestKey, String, Result<ParsedDigest, ContentProblem>)],
) -> Result<String, EngineError> {
    let recorded = ev.metadata().map(|m| m.bucket.clone());
    match (&settings.bucket, recorded) {
        (Some(given), Some(recorded)) if *given != recorded => Err(EngineError::BucketConflict {
            given: given.clone(),
            recorded,
        }),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(recorded)) => Ok(recorded),
        (None, None) => {
            // Only digests that sit where they say they were delivered may name the bucket.
            let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, key, content) in read {
                if let Ok(d) = content {
                    if d.location.key == *key {
                        *votes.entry(d.location.bucket.as_str()).or_default() += 1;
                    }
                }
            }
            votes
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(b, _)| b.to_owned())
                .ok_or(EngineError::NoBucket)
        }
    }
}

fn read_digest(ev: &LocalEvidence, key: &str) -> Result<ParsedDigest, ContentProblem> {
    let stored = ev
        .read_object(key, MAX_DIGEST_STORED)
        .map_err(|e| match e {
            ReadError::NotFound => ContentProblem::Unreadable("listed but gone".into()),
            ReadError::Escape(d) => ContentProblem::PathEscape(d),
            ReadError::Io(d) => ContentProblem::Unreadable(d),
        })?;
    let raw =
        inflate_all(&stored, Limits::DIGEST).map_err(|p| ContentProblem::Format(p.to_string()))?;
    Ok(ParsedDigest::parse(&raw)?)
}

/// Each digest's findings followed by its log files' findings, newest digest first.
fn chain_findings(ev: &LocalEvidence, bucket: &str, walked: Vec<WalkedDigest>) -> Vec<Finding> {
    let per_digest: Vec<Vec<Finding>> = walked
        .into_par_iter()
        .map(|w| {
            let mut out = w.findings;
            match &w.status {
                DigestStatus::Verified(v) => {
                    let named_by = w.location.uri();
                    let checked: Vec<Finding> = v
                        .digest()
                        .log_files
                        .par_iter()
                        .map(|l| check_log(ev, bucket, l, &named_by))
                        .collect();
                    out.extend(checked);
                }
                DigestStatus::Unverified(Some(d)) => {
                    out.extend(d.log_files.iter().map(|l| {
                        Finding::new(
                            l.location.uri(),
                            Kind::LogUnverifiable,
                            "its digest could not be verified",
                        )
                        .with(Evidence {
                            named_by: Some(w.location.uri()),
                            ..Evidence::default()
                        })
                    }));
                }
                DigestStatus::Unverified(None) => {}
            }
            out
        })
        .collect();
    per_digest.into_iter().flatten().collect()
}

/// Inflates and hashes one log file and compares it with what its verified digest says.
fn check_log(ev: &LocalEvidence, bucket: &str, entry: &LogFileEntry, named_by: &str) -> Finding {
    let uri = entry.location.uri();
    let base = Evidence {
        expected_sha256: Some(entry.hash),
        named_by: Some(named_by.to_owned()),
        ..Evidence::default()
    };
    if entry.location.bucket != bucket {
        return Finding::new(
            uri,
            Kind::LogOtherBucket,
            "in another bucket, outside this evidence",
        )
        .with(base);
    }
    let mut file = match ev.open_object(&entry.location.key) {
        Ok(f) => f,
        Err(ReadError::NotFound) => {
            return Finding::new(uri, Kind::LogMissing, "not found").with(base)
        }
        Err(ReadError::Escape(d)) => {
            return Finding::new(uri, Kind::PathEscape, "path leaves the evidence directory").with(
                Evidence {
                    detail: Some(d),
                    ..base
                },
            )
        }
        Err(ReadError::Io(d)) => {
            return Finding::new(uri, Kind::LogUnreadable, "could not be read").with(Evidence {
                detail: Some(d),
                ..base
            })
        }
    };
    let mut inflater = Inflater::new(Limits::LOG);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => inflater.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Finding::new(uri, Kind::LogUnreadable, "could not be read").with(Evidence {
                    detail: Some(e.to_string()),
                    ..base
                })
            }
        }
    }
    let (outcome, _) = inflater.finish();
    let evidence = Evidence {
        actual_sha256: Some(outcome.inflated_sha256),
        ..base
    };
    let with_detail = |p: &GzProblem| Evidence {
        detail: Some(p.to_string()),
        ..evidence.clone()
    };
    match &outcome.problem {
        None if outcome.inflated_sha256 == entry.hash => {
            Finding::new(uri, Kind::LogValid, "valid").with(evidence)
        }
        None => Finding::new(uri, Kind::LogHashMismatch, "hash value doesn't match").with(evidence),
        Some(p @ GzProblem::TrailingData { .. }) => Finding::new(
            uri,
            Kind::LogTrailingData,
            "unexpected data after end of compressed stream",
        )
        .with(with_detail(p)),
        Some(p @ GzProblem::Truncated) => {
            Finding::new(uri, Kind::LogTruncated, "compressed stream is truncated")
                .with(with_detail(p))
        }
        Some(p @ GzProblem::Budget { .. }) => Finding::new(
            uri,
            Kind::LogBudgetExceeded,
            "inflating it exceeded the size budget (gzip bomb?)",
        )
        .with(with_detail(p)),
        Some(p) => Finding::new(uri, Kind::LogFormat, "invalid format").with(with_detail(p)),
    }
}

/// Log files delivered inside the range that no digest vouches for.
fn unreferenced_logs(
    bucket: &str,
    logs: &[(String, LogKey)],
    referenced: &BTreeSet<S3Location>,
    range: Range,
) -> Vec<Finding> {
    logs.iter()
        .filter(|(_, l)| l.time >= range.start && l.time <= range.end)
        .filter(|(key, _)| !referenced.contains(&S3Location::new(bucket, key.as_str())))
        .map(|(key, l)| {
            Finding::new(
                S3Location::new(bucket, key.as_str()).uri(),
                Kind::LogUnreferenced,
                "not referenced by any digest: injected, or delivered while log file validation was off",
            )
            .with(Evidence { from: Some(l.time), ..Evidence::default() })
        })
        .collect()
}
