//! Plans the chains, has the source read objects, walks the chains, and assembles the report.
//!
//! The phases run in order and data flows one way: list, read digests, walk every chain (in
//! parallel: chains are independent), hash the log files the verified digests name, then look
//! for log files nobody named. Every collection keeps its input order, so the report is the
//! same whatever the thread count. Workers never print.

use std::collections::{BTreeMap, BTreeSet, HashSet};

#[cfg(feature = "aws")]
pub mod acquire;

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use crate::core::chain::{
    walk, ContentProblem, DigestCandidate, DigestStatus, Range, WalkedDigest,
};
use crate::core::digest::{listed_log_files, ParsedDigest};
use crate::core::finding::{Evidence, Finding, Kind};
use crate::core::gz::{inflate_all, GzOutcome, GzProblem, Limits};
use crate::core::layout::{parse_key, ChainId, CloudTrailKey, DigestKey, ObjectType, Scope};
use crate::core::time::format_iso;
use crate::core::types::S3Location;
use crate::report::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report};
use crate::source::{
    KeyNeeds, KeyProvider, ListRequest, ObjectSource, ReadError, SourceError, StoredObject,
};

/// What to verify, already validated by the CLI.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub trails: Vec<String>,
    /// Only chains of trails whose home Region is this (a trail ARN names it).
    pub home_region: Option<String>,
    pub bucket: Option<String>,
    /// Signatures of chain heads, by digest key.
    pub head_signatures: BTreeMap<String, Vec<u8>>,
    /// Count valid log files per chain instead of keeping their findings, for outputs that
    /// print only problems: the report then holds no per-file record of what was valid, and
    /// memory no longer grows with the number of valid log files. The sink does not see
    /// them either.
    pub omit_valid_logs: bool,
}

/// Why the engine could not do the job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("no CloudTrail digest or log files in {source_name} match the filters (is this a copy of a CloudTrail bucket? objects are expected at AWSLogs/...)")]
    NothingFound { source_name: String },
    #[error("cannot tell the bucket name from the evidence: pass --s3-bucket")]
    NoBucket,
    #[error("--s3-bucket {given} disagrees with the source, which is bucket {recorded}")]
    BucketConflict { given: String, recorded: String },
    #[error("the start time {start} is after the end time {end}")]
    BadRange { start: String, end: String },
    #[error("--head-signature names {key}, which is not a digest in the evidence")]
    UnknownHead { key: String },
}

/// What a run will look at: the range and the objects in it, before anything is read.
#[derive(Debug, Clone)]
pub struct Plan {
    pub range: Range,
    /// True when the range was taken from the evidence rather than given.
    pub derived: bool,
    /// Digests of the selected chains whose key time falls in the range.
    pub digests: Vec<DigestKey>,
    /// Log files of the selected accounts and Regions.
    pub logs: Vec<ListedLog>,
    /// The account/Region folders the log files are in (`ListedLog::scope` indexes this).
    pub scopes: Vec<Scope>,
    /// Account/Region folders where a trail that the filters leave out also writes digests:
    /// their log files may be that trail's, so none of them can be called unreferenced.
    pub shared_scopes: BTreeSet<Scope>,
}

/// A log file the listing found, kept small: a run may list millions of them.
#[derive(Debug, Clone)]
pub struct ListedLog {
    pub key: String,
    /// Delivery time, from the key.
    pub time: Timestamp,
    /// Its folder: an index into `Plan::scopes`.
    pub scope: usize,
}

/// Lists the source and decides what is in the run.
pub fn plan(source: &dyn ObjectSource, settings: &Settings) -> Result<Plan, EngineError> {
    let request = ListRequest {
        range: settings.start.map(|s| {
            (
                s,
                settings.end.unwrap_or_else(Timestamp::now) + SignedDuration::from_hours(1),
            )
        }),
        accounts: settings.accounts.clone(),
        regions: settings.regions.clone(),
    };
    let mut digests: Vec<DigestKey> = Vec::new();
    let mut logs: Vec<ListedLog> = Vec::new();
    let mut scope_ids: BTreeMap<Scope, usize> = BTreeMap::new();
    let mut shared_scopes = BTreeSet::new();
    for key in source.list(&request)? {
        match parse_key(&key) {
            Ok(CloudTrailKey::Digest(d)) if selected(settings, &d.scope) => {
                if trail_selected(settings, &d) {
                    digests.push(d)
                } else {
                    shared_scopes.insert(d.scope);
                }
            }
            Ok(CloudTrailKey::Log(l))
                if l.ty == ObjectType::Log && selected(settings, &l.scope) =>
            {
                let next = scope_ids.len();
                let scope = *scope_ids.entry(l.scope).or_insert(next);
                logs.push(ListedLog {
                    key,
                    time: l.time,
                    scope,
                });
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
            source_name: source.describe(),
        });
    }
    let (range, derived) = resolve_range(settings, &digests, &logs)?;
    digests.retain(|d| range.holds_digest(d.end_time));
    let mut scopes: Vec<(usize, Scope)> = scope_ids.into_iter().map(|(s, i)| (i, s)).collect();
    scopes.sort_by_key(|(i, _)| *i);
    Ok(Plan {
        range,
        derived,
        digests,
        logs,
        scopes: scopes.into_iter().map(|(_, s)| s).collect(),
        shared_scopes,
    })
}

/// The report of a run that found nothing at all (the AWS CLI prints "No digests found").
pub fn empty_report(source: &dyn ObjectSource, settings: &Settings) -> Report {
    let start = settings.start.unwrap_or_default();
    Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: source.describe(),
        bucket: source.bucket().unwrap_or_default(),
        range: RangeInfo {
            start,
            end: settings.end.unwrap_or(start),
            derived_from_evidence: false,
        },
        filters: Filters {
            accounts: settings.accounts.clone(),
            regions: settings.regions.clone(),
            trails: settings.trails.clone(),
        },
        keys: Vec::new(),
        chains: Vec::new(),
        unchained: Vec::new(),
        notes: vec!["nothing in the source matched the filters".to_owned()],
    }
}

/// Receives findings while the engine runs, for output that cannot wait for the whole report:
/// each chain's findings once its walk and log checks are done, then those of the pass over log
/// files no digest names (chain `None`). Called in report order, one batch at a time, so the
/// stream is the same at any thread count; `Sync` so the engine may run inside a thread pool.
pub type FindingSink<'a> = &'a (dyn Fn(Option<&ChainInfo>, &[Finding]) + Sync);

/// Verifies what `source` holds.
pub fn verify(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
) -> Result<Report, EngineError> {
    verify_streaming(source, key_provider, settings, None)
}

/// [`verify`], handing findings to `sink` as they are decided. The report is the same.
pub fn verify_streaming(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    sink: Option<FindingSink<'_>>,
) -> Result<Report, EngineError> {
    let Plan {
        range,
        derived,
        digests,
        logs,
        scopes,
        shared_scopes,
    } = plan(source, settings)?;
    let digest_keys: Vec<String> = digests.iter().map(DigestKey::format).collect();
    let stored = source.read_digests(&digest_keys);
    let read: Vec<ReadDigest> = digests
        .into_iter()
        .zip(digest_keys)
        .zip(stored)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|((key, key_text), stored)| ReadDigest::new(key, key_text, stored))
        .collect();

    let bucket = resolve_bucket(source, settings, &read)?;
    let mut chains: BTreeMap<ChainId, Vec<DigestCandidate>> = BTreeMap::new();
    for r in read {
        let signature = settings
            .head_signatures
            .get(&r.key_text)
            .cloned()
            .or(r.signature);
        let candidate = DigestCandidate {
            location: S3Location::new(&bucket, &r.key_text),
            backfill_generated: r.backfill_generated,
            key: r.key.clone(),
            content: r.content,
            signature,
        };
        chains.entry(r.key.chain()).or_default().push(candidate);
    }
    let keys = key_provider.keys(&key_needs(&chains, range))?;
    let keys = &keys;
    let walked: Vec<(ChainId, Vec<WalkedDigest>)> = chains
        .into_par_iter()
        .map(|(id, candidates)| {
            let w = walk(&id, candidates, keys, range);
            (id, w)
        })
        .collect();
    let mut notes = source.notes();
    let (checkable, shared): (Vec<_>, Vec<_>) = logs.into_iter().partition(|l| {
        scopes
            .get(l.scope)
            .is_none_or(|s| !shared_scopes.contains(s))
    });
    if !shared.is_empty() {
        notes.push(format!(
            "{} log files were not checked for digest references: other trails, left out by the filters, write to the same folders",
            shared.len()
        ));
    }
    // Decided before the log files are hashed, while the walked digests can be borrowed
    // rather than copied; handed to the sink after the chains, as before.
    let unchained = unreferenced_logs(&bucket, &checkable, &walked, range);
    drop(checkable);
    let chain_reports = check_logs(source, &bucket, walked, sink, settings.omit_valid_logs);

    if let Some(sink) = sink {
        sink(None, &unchained);
    }

    Ok(Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: source.describe(),
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
                origin: key_provider.origin(),
            })
            .collect(),
        chains: chain_reports,
        unchained,
        notes,
    })
}

/// One digest after reading and parsing.
struct ReadDigest {
    key: DigestKey,
    key_text: String,
    content: Result<ParsedDigest, ContentProblem>,
    signature: Option<Vec<u8>>,
    backfill_generated: Option<Timestamp>,
}

impl ReadDigest {
    fn new(key: DigestKey, key_text: String, stored: Result<StoredObject, ReadError>) -> Self {
        let (content, signature, backfill_generated) = match stored {
            Ok(StoredObject { bytes, record }) => {
                let content = match inflate_all(&bytes, Limits::DIGEST) {
                    Err(p) => Err(ContentProblem::Format {
                        detail: p.to_string(),
                        listed: Vec::new(),
                    }),
                    Ok(raw) => ParsedDigest::parse(&raw).map_err(|e| ContentProblem::Format {
                        detail: e.to_string(),
                        listed: listed_log_files(&raw),
                    }),
                };
                (content, record.signature(), record.backfill_generated())
            }
            Err(e) => {
                let problem = match e {
                    ReadError::NotFound => {
                        ContentProblem::Unreadable("listed but gone when read".into())
                    }
                    ReadError::Escape(d) => ContentProblem::PathEscape(d),
                    ReadError::OtherBucket => {
                        ContentProblem::Unreadable("in another bucket".into())
                    }
                    ReadError::Io(d) => ContentProblem::Unreadable(d),
                };
                (Err(problem), None, None)
            }
        };
        ReadDigest {
            key,
            key_text,
            content,
            signature,
            backfill_generated,
        }
    }
}

/// The keys the AWS CLI would ask for: the range plus two hours in each source Region, and each
/// backfill digest's generation time plus or minus an hour.
fn key_needs(chains: &BTreeMap<ChainId, Vec<DigestCandidate>>, range: Range) -> KeyNeeds {
    let hour = SignedDuration::from_hours(1);
    let mut windows = vec![(range.start, range.end + 2 * hour)];
    for c in chains.values().flatten() {
        if let Some(t) = c.backfill_generated {
            windows.push((t - hour, t + hour));
        }
    }
    windows.sort();
    windows.dedup();
    KeyNeeds {
        regions: chains.keys().map(|c| c.scope.region.clone()).collect(),
        windows,
    }
}

fn selected(settings: &Settings, scope: &Scope) -> bool {
    (settings.accounts.is_empty() || settings.accounts.contains(&scope.account))
        && (settings.regions.is_empty() || settings.regions.contains(&scope.region))
}

fn trail_selected(settings: &Settings, digest: &DigestKey) -> bool {
    (settings.trails.is_empty() || settings.trails.contains(&digest.trail))
        && settings
            .home_region
            .as_ref()
            .is_none_or(|h| *h == digest.home_region)
}

/// Without a given range, verify everything found: from an hour before the oldest digest ends
/// (its start) to the newest digest's end.
fn resolve_range(
    settings: &Settings,
    digests: &[DigestKey],
    logs: &[ListedLog],
) -> Result<(Range, bool), EngineError> {
    // The evidence's own extent: digests if there are any, else log files.
    let times: Vec<Timestamp> = if digests.is_empty() {
        logs.iter().map(|l| l.time).collect()
    } else {
        digests.iter().map(|d| d.end_time).collect()
    };
    let derived = settings.start.is_none() || settings.end.is_none();
    let start = match settings.start {
        Some(s) => s,
        None => times.iter().min().copied().unwrap_or_default() - SignedDuration::from_hours(1),
    };
    let end = match settings.end {
        Some(e) => e,
        None => times.iter().max().copied().unwrap_or_default(),
    };
    if start > end {
        return Err(EngineError::BadRange {
            start: format_iso(start),
            end: format_iso(end),
        });
    }
    let range = Range {
        start,
        end,
        start_requested: settings.start.is_some(),
        end_requested: settings.end.is_some(),
    };
    Ok((range, derived))
}

/// The bucket: as given, as the source knows it, or as the in-place digests say.
fn resolve_bucket(
    source: &dyn ObjectSource,
    settings: &Settings,
    read: &[ReadDigest],
) -> Result<String, EngineError> {
    match (&settings.bucket, source.bucket()) {
        (Some(given), Some(recorded)) if *given != recorded => Err(EngineError::BucketConflict {
            given: given.clone(),
            recorded,
        }),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(recorded)) => Ok(recorded),
        (None, None) => {
            // Only digests that sit where they say they were delivered may name the bucket.
            let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
            for r in read {
                if let Ok(d) = &r.content {
                    if d.location.key == r.key_text {
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

/// Hashes every log file the verified digests name, in one batch so the source can spread it
/// over all its workers, then lays out each chain: each digest's findings followed by its log
/// files', newest digest first.
fn check_logs(
    source: &dyn ObjectSource,
    bucket: &str,
    walked: Vec<(ChainId, Vec<WalkedDigest>)>,
    sink: Option<FindingSink<'_>>,
    omit_valid_logs: bool,
) -> Vec<ChainReport> {
    let wanted: Vec<&S3Location> = walked
        .iter()
        .flat_map(|(_, ws)| ws.iter())
        .filter_map(|w| match &w.status {
            DigestStatus::Verified(v) => Some(v.digest().log_files.iter().map(|l| &l.location)),
            DigestStatus::Unverified { .. } => None,
        })
        .flatten()
        .collect();
    let outcomes = source.hash_logs(bucket, &wanted);
    drop(wanted);
    let mut outcomes = outcomes.into_iter();

    walked
        .into_iter()
        .map(|(id, ws)| {
            // A log file two digests of the chain list is counted once, by its worst finding
            // (`Totals::of`): only a file listed once may be counted without its finding.
            let omittable = if omit_valid_logs {
                omittable_valid_logs(&ws)
            } else {
                None
            };
            let mut omitted = 0;
            let mut findings = Vec::new();
            for w in ws {
                findings.extend(w.findings);
                let named_by = w.location.uri();
                match &w.status {
                    DigestStatus::Verified(v) => {
                        for entry in v.digest().log_files.iter() {
                            let outcome = outcomes
                                .next()
                                .unwrap_or(Err(ReadError::Io("no result".into())));
                            let finding =
                                log_finding(&entry.location, entry.hash, &named_by, outcome);
                            if finding.kind == Kind::LogValid
                                && omittable
                                    .as_ref()
                                    .is_some_and(|repeated| !repeated.contains(&entry.location))
                            {
                                omitted += 1;
                            } else {
                                findings.push(finding);
                            }
                        }
                    }
                    DigestStatus::Unverified { listed } => {
                        findings.extend(listed.iter().map(|l| {
                            Finding::new(
                                l.uri(),
                                Kind::LogUnverifiable,
                                "its digest could not be verified",
                            )
                            .with(Evidence {
                                named_by: Some(named_by.clone()),
                                ..Evidence::default()
                            })
                        }));
                    }
                }
            }
            let report = ChainReport {
                chain: ChainInfo::from(&id),
                findings,
                omitted_valid_logs: omitted,
            };
            if let Some(sink) = sink {
                sink(Some(&report.chain), &report.findings);
            }
            report
        })
        .collect()
}

/// Which valid log files of a chain may be counted without their finding: `None` when none
/// may, else the exceptions, the files listed more than once. Totals merge findings by their
/// `s3://` text, and a bucket name with a `/` (which only a malformed digest's lenient listing
/// can carry) can give two locations the same text: then nothing is omitted.
fn omittable_valid_logs(ws: &[WalkedDigest]) -> Option<HashSet<S3Location>> {
    let mut seen = HashSet::new();
    let mut repeated = HashSet::new();
    for l in ws.iter().flat_map(|w| listed(&w.status)) {
        if l.bucket.contains('/') {
            return None;
        }
        if !seen.insert(l) {
            repeated.insert(l.clone());
        }
    }
    Some(repeated)
}

/// The log files a walked digest lists.
fn listed(status: &DigestStatus) -> Box<dyn Iterator<Item = &S3Location> + '_> {
    match status {
        DigestStatus::Verified(v) => Box::new(v.digest().log_files.iter().map(|l| &l.location)),
        DigestStatus::Unverified { listed } => Box::new(listed.iter()),
    }
}

/// Turns one log file's read outcome into its finding.
fn log_finding(
    location: &S3Location,
    expected: crate::core::types::Sha256,
    named_by: &str,
    outcome: Result<GzOutcome, ReadError>,
) -> Finding {
    let uri = location.uri();
    let base = Evidence {
        expected_sha256: Some(expected),
        named_by: Some(named_by.to_owned()),
        ..Evidence::default()
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(ReadError::NotFound) => {
            return Finding::new(uri, Kind::LogMissing, "not found").with(base)
        }
        Err(ReadError::OtherBucket) => {
            return Finding::new(
                uri,
                Kind::LogOtherBucket,
                "in another bucket, outside this evidence",
            )
            .with(base)
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
    let evidence = Evidence {
        actual_sha256: Some(outcome.inflated_sha256),
        ..base
    };
    let with_detail = |p: &GzProblem| Evidence {
        detail: Some(p.to_string()),
        ..evidence.clone()
    };
    match &outcome.problem {
        None if outcome.inflated_sha256 == expected => {
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
    logs: &[ListedLog],
    walked: &[(ChainId, Vec<WalkedDigest>)],
    range: Range,
) -> Vec<Finding> {
    let referenced: HashSet<(&str, &str)> = walked
        .iter()
        .flat_map(|(_, ws)| ws.iter())
        .flat_map(|w| listed(&w.status))
        .map(|l| (l.bucket.as_str(), l.key.as_str()))
        .collect();
    logs.iter()
        .filter(|l| l.time >= range.start && l.time <= range.end)
        .filter(|l| !referenced.contains(&(bucket, l.key.as_str())))
        .map(|l| {
            Finding::new(
                S3Location::new(bucket, l.key.as_str()).uri(),
                Kind::LogUnreferenced,
                "not referenced by any digest: injected, or delivered while log file validation was off",
            )
            .with(Evidence { from: Some(l.time), ..Evidence::default() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(listed: &[(&str, &str)]) -> WalkedDigest {
        let key = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20260101T010000Z.json.gz";
        let Ok(CloudTrailKey::Digest(parsed)) = parse_key(key) else {
            panic!("a digest key");
        };
        WalkedDigest {
            location: S3Location::new("b", key),
            key: parsed,
            status: DigestStatus::Unverified {
                listed: listed
                    .iter()
                    .map(|(b, k)| S3Location::new(*b, *k))
                    .collect(),
            },
            findings: Vec::new(),
        }
    }

    #[test]
    fn valid_logs_listed_twice_or_under_a_slashed_bucket_are_kept() {
        let chain = [walked(&[("b", "x"), ("b", "y")]), walked(&[("b", "x")])];
        assert_eq!(
            omittable_valid_logs(&chain),
            Some(HashSet::from([S3Location::new("b", "x")]))
        );
        // `s3://b/AWSLogs/x` is also what ("b", "AWSLogs/x") prints as.
        let chain = [walked(&[("b", "AWSLogs/x")]), walked(&[("b/AWSLogs", "x")])];
        assert_eq!(omittable_valid_logs(&chain), None);
    }
}
