//! Plans the chains, has the source read objects, walks the chains, and assembles the report.
//!
//! The phases run in order and data flows one way: list the digests, read them (their log lists
//! set aside), walk every chain (in parallel: chains are independent), hash the log files the
//! digests name in batches (reading each batch's digests again for their lists), then list the
//! log folders for files nobody named. Listings come in no set order and are sorted; everything
//! else keeps its input order, so the report is the same whatever the thread count. Memory
//! grows with the digests, not with the log files. Workers never print.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(feature = "aws")]
pub mod acquire;
mod unvouched;

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use crate::core::chain::{
    walk, ContentProblem, DigestCandidate, DigestStatus, Listed, Range, WalkedChain, WalkedDigest,
};
use crate::core::digest::{listed_log_files, LogFileEntry, LogFiles, ParsedDigest};
use crate::core::evidence::GenerationTime;
use crate::core::finding::{merge_by_object, Evidence, Finding, Kind, ObjectKind, Verdict};
use crate::core::gz::{inflate_all, GzOutcome, GzProblem, Limits};
use crate::core::layout::{
    parse_key, ChainId, CloudTrailKey, DigestKey, LogKey, ObjectType, Scope,
};
use crate::core::ledger::{HourState, Ledger, Span};
use crate::core::sign::SigningTime;
use crate::core::time::{earlier, format_iso, later};
use crate::core::types::S3Location;
use crate::report::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report};
use crate::source::progress::Progress;
pub use crate::source::progress::{NoObserver, Observer, Phase};
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
    /// print only problems: the report then holds no per-file record of what was valid, and a
    /// valid log file costs 8 bytes instead of its finding. The sink does not see them either.
    pub omit_valid_logs: bool,
    /// Accept filter values that select nothing, as `aws cloudtrail validate-logs` does ("No
    /// digests found"). Otherwise each such value is an error ([`EngineError::UnmatchedFilters`]):
    /// a typo would verify nothing and pass.
    pub allow_unmatched_filters: bool,
}

/// A filter flag of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Filter {
    Account,
    Region,
    Trail,
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Filter::Account => "--account-id",
            Filter::Region => "--region",
            Filter::Trail => "--trail",
        })
    }
}

/// A filter value that selects nothing the source lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnmatchedFilter {
    pub filter: Filter,
    pub value: String,
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
    #[error("{}", unmatched_message(.source_name, .unmatched, .trails_found))]
    UnmatchedFilters {
        source_name: String,
        unmatched: Vec<UnmatchedFilter>,
        /// The trails that do have digests under the other filters, to spot a typo.
        trails_found: Vec<String>,
    },
}

fn unmatched_message(
    source_name: &str,
    unmatched: &[UnmatchedFilter],
    trails_found: &[String],
) -> String {
    let values: Vec<String> = unmatched
        .iter()
        .map(|u| format!("{} {}", u.filter, u.value))
        .collect();
    let mut message = format!(
        "nothing in {source_name} matches {} (checked against every digest and log file listed for the range and the other filters); nothing was verified",
        values.join(", ")
    );
    if unmatched.iter().any(|u| u.filter == Filter::Trail) {
        message.push_str(&match trails_found {
            [] => "; no trail has digests there".to_owned(),
            found => format!("; trails with digests there: {}", found.join(", ")),
        });
    }
    message
}

/// What a run will look at: the range and the digests in it, before anything is read. Log
/// files are listed later, once, against what the digests name: a run keeps no list of them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub range: Range,
    /// True when the range was taken from the evidence rather than given.
    pub derived: bool,
    /// Digests of the selected chains whose key time falls in the range, and of each chain
    /// the nearest digest before the range and after it (context: read only to decide the
    /// range's edges, see [`WalkedDigest::context`]).
    pub digests: Vec<DigestKey>,
    /// Digests in the range of trails the filters leave out, in the selected accounts and
    /// Regions: their log files share folders with the run's, and are told apart only through
    /// these digests, once verified.
    pub other_trails: Vec<DigestKey>,
    /// Keys in CloudTrail digest folders that are not digest keys.
    pub unrecognised: Vec<String>,
    /// Digests of the range the source's records name but no listing found (deleted since
    /// acquisition); they are among `digests`, to be reported missing.
    pub gone: BTreeSet<String>,
}

/// Digests found by the listing: those that may be in the range, and of each chain the nearest
/// on either side of it.
#[derive(Default)]
struct Found {
    digests: Vec<DigestKey>,
    before: BTreeMap<ChainId, DigestKey>,
    after: BTreeMap<ChainId, DigestKey>,
    extent: Option<(Timestamp, Timestamp)>,
    /// Digests of trails the filters leave out that may be in the range.
    other_trails: Vec<DigestKey>,
    /// Keys in the digest folders that are no CloudTrail key.
    unrecognised: Vec<String>,
    /// Trail names seen in the selected accounts and Regions, to name them when a `--trail`
    /// matches none.
    trails: BTreeSet<String>,
}

impl Found {
    /// Keeps a digest that may be in the range; of the others, only the nearest per chain.
    fn add(&mut self, settings: &Settings, d: DigestKey) {
        let t = d.end_time;
        self.extent = Some(self.extent.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        let after_end = settings
            .end
            .is_some_and(|end| t > later(end, SignedDuration::from_hours(1)));
        if settings.start.is_some_and(|start| t < start) {
            let slot = self.before.entry(d.chain());
            let kept = slot.or_insert_with(|| d.clone());
            if d > *kept {
                *kept = d;
            }
        } else if after_end {
            let slot = self.after.entry(d.chain());
            let kept = slot.or_insert_with(|| d.clone());
            if d < *kept {
                *kept = d;
            }
        } else {
            self.digests.push(d);
        }
    }

    /// Keeps a digest of a trail the filters leave out if it may be in the range.
    fn other_trail(&mut self, settings: &Settings, d: DigestKey) {
        let t = d.end_time;
        let outside = settings.start.is_some_and(|start| t < start)
            || settings
                .end
                .is_some_and(|end| t > later(end, SignedDuration::from_hours(1)));
        if !outside {
            self.other_trails.push(d);
        }
    }
}

/// Lists the digests and decides what is in the run.
///
/// Every digest of the selected accounts and Regions is listed, whatever its time: a chain is
/// known from any digest of it, and the nearest digest on either side of the range decides
/// its edges (the one after the end names, by its link, a missing digest at the end; the one
/// before the start, where a hole at the start begins). Listing costs one request per
/// thousand digests of a chain's history on S3 (about nine a year); only the digests in the
/// range and those two per chain are read. Each filter value must select something the source
/// lists (see [`Settings::allow_unmatched_filters`]).
pub fn plan(
    source: &dyn ObjectSource,
    settings: &Settings,
    observer: &dyn Observer,
) -> Result<Plan, EngineError> {
    let found = Mutex::new(Found::default());
    let mut request = list_request(settings, ObjectType::Digest);
    request.range = None;
    source.list(
        &request,
        &|key| {
            let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
            match parse_key(&key) {
                Ok(CloudTrailKey::Digest(d)) if selected(settings, &d.scope) => {
                    if !found.trails.contains(&d.trail) {
                        found.trails.insert(d.trail.clone());
                    }
                    if trail_selected(settings, &d) {
                        found.add(settings, d)
                    } else {
                        found.other_trail(settings, d);
                    }
                }
                Ok(_) => {}
                Err(_) => found.unrecognised.push(key),
            }
        },
        observer,
    )?;
    let Found {
        mut digests,
        before,
        after,
        extent,
        mut other_trails,
        unrecognised,
        trails: trails_found,
    } = found.into_inner().unwrap_or_else(PoisonError::into_inner);
    // Listings come in no set order, and need not give each key once.
    for keys in [&mut digests, &mut other_trails] {
        keys.sort_unstable();
        keys.dedup();
    }
    for head in settings.head_signatures.keys() {
        let known = digests
            .iter()
            .chain(before.values())
            .chain(after.values())
            .any(|d| d.format() == *head);
        if !known {
            return Err(EngineError::UnknownHead { key: head.clone() });
        }
    }
    let mut unmatched = if settings.allow_unmatched_filters {
        Vec::new()
    } else {
        let listed: Vec<DigestKey> = digests
            .iter()
            .chain(before.values())
            .chain(after.values())
            .cloned()
            .collect();
        unmatched_filters(settings, &listed)
    };
    // Log files name an account and a Region too (not a trail): list them when there are no
    // digests (the evidence's extent is then theirs), or to see whether an account or Region
    // no digest has is there.
    // The source's own records of digests (a copy's evidence-metadata file) belong to the
    // evidence's extent too: a deleted tail still ends it where it ended.
    let recorded: Vec<DigestKey> = source
        .recorded_digests()
        .iter()
        .filter_map(|key| match parse_key(key) {
            Ok(CloudTrailKey::Digest(d))
                if selected(settings, &d.scope) && trail_selected(settings, &d) =>
            {
                Some(d)
            }
            _ => None,
        })
        .collect();
    let mut extent = recorded.iter().map(|d| d.end_time).fold(extent, |e, t| {
        Some(e.map_or((t, t), |(a, b): (Timestamp, Timestamp)| {
            (a.min(t), b.max(t))
        }))
    });
    if extent.is_none() || unmatched.iter().any(|u| u.filter != Filter::Trail) {
        let logs = Mutex::new((BTreeSet::new(), None::<(Timestamp, Timestamp)>));
        for_each_log(
            source,
            settings,
            &|_, log| {
                let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
                let t = log.time;
                logs.1 = Some(logs.1.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
                if !logs.0.contains(&log.scope) {
                    logs.0.insert(log.scope);
                }
            },
            &|_| {},
            observer,
        )?;
        let (log_scopes, log_extent) = logs.into_inner().unwrap_or_else(PoisonError::into_inner);
        extent = extent.or(log_extent);
        unmatched.retain(|u| {
            !log_scopes.iter().any(|s| match u.filter {
                Filter::Account => s.account == u.value,
                Filter::Region => s.region == u.value,
                Filter::Trail => false,
            })
        });
    }
    if !unmatched.is_empty() {
        return Err(EngineError::UnmatchedFilters {
            source_name: source.describe(),
            unmatched,
            trails_found: trails_found.into_iter().collect(),
        });
    }
    let Some(extent) = extent else {
        return Err(EngineError::NothingFound {
            source_name: source.describe(),
        });
    };
    let (range, derived) = resolve_range(settings, extent)?;
    digests.retain(|d| range.holds_digest(d.end_time));
    // What the source's records name in the range that no listing found: gone since.
    let listed: HashSet<String> = digests.iter().map(DigestKey::format).collect();
    let mut gone = BTreeSet::new();
    for d in recorded {
        let key = d.format();
        if range.holds_digest(d.end_time) && !listed.contains(&key) {
            gone.insert(key);
            digests.push(d);
        }
    }
    drop(listed);
    digests.extend(before.into_values().chain(after.into_values()));
    digests.sort_unstable();
    other_trails.retain(|d| range.holds_digest(d.end_time));
    Ok(Plan {
        range,
        derived,
        digests,
        other_trails,
        unrecognised,
        gone,
    })
}

/// The filter values no selected digest has, in flag order.
fn unmatched_filters(settings: &Settings, digests: &[DigestKey]) -> Vec<UnmatchedFilter> {
    let mut unmatched = Vec::new();
    let mut check = |filter: Filter, values: &[String], has: &dyn Fn(&DigestKey, &str) -> bool| {
        for value in values {
            if !digests.iter().any(|d| has(d, value)) {
                unmatched.push(UnmatchedFilter {
                    filter,
                    value: value.clone(),
                });
            }
        }
    };
    check(Filter::Account, &settings.accounts, &|d, v| {
        d.scope.account == v
    });
    check(Filter::Region, &settings.regions, &|d, v| {
        d.scope.region == v
    });
    check(Filter::Trail, &settings.trails, &|d, v| d.trail == v);
    unmatched
}

fn list_request(settings: &Settings, objects: ObjectType) -> ListRequest {
    ListRequest {
        objects,
        range: settings.start.map(|s| {
            (
                s,
                later(
                    settings.end.unwrap_or_else(Timestamp::now),
                    SignedDuration::from_hours(1),
                ),
            )
        }),
        accounts: settings.accounts.clone(),
        regions: settings.regions.clone(),
    }
}

/// Hands `each` every log file of the selected accounts and Regions, with its parsed key, and
/// `unrecognised` every listed key that is no CloudTrail key, in no set order and from any
/// thread.
fn for_each_log(
    source: &dyn ObjectSource,
    settings: &Settings,
    each: &(dyn Fn(String, LogKey) + Sync),
    unrecognised: &(dyn Fn(String) + Sync),
    observer: &dyn Observer,
) -> Result<(), SourceError> {
    source.list(
        &list_request(settings, ObjectType::Log),
        &|key| match parse_key(&key) {
            Ok(CloudTrailKey::Log(l)) => {
                if l.ty == ObjectType::Log && selected(settings, &l.scope) {
                    each(key, l);
                }
            }
            Ok(CloudTrailKey::Digest(_)) => {}
            Err(_) => unrecognised(key),
        },
        observer,
    )
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
    verify_streaming(source, key_provider, settings, None, &NoObserver)
}

/// [`verify`], handing findings to `sink` as they are decided. The report is the same. The log
/// folders are listed after the chains were handed on, so an error (a listing that fails) may
/// come after the sink has had findings: the run then failed, and what the sink wrote is
/// incomplete.
pub fn verify_streaming(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    sink: Option<FindingSink<'_>>,
    observer: &dyn Observer,
) -> Result<Report, EngineError> {
    let Plan {
        range,
        derived,
        digests,
        other_trails,
        unrecognised,
        gone,
    } = plan(source, settings, observer)?;
    let read = read_digests(source, digests, &gone, observer);
    let others = if other_trails.is_empty() {
        Vec::new()
    } else {
        read_digests(source, other_trails, &BTreeSet::new(), observer)
    };

    let bucket = resolve_bucket(source, settings, &read)?;
    let chains = candidates(read, &bucket, settings);
    let other_chains = candidates(others, &bucket, settings);
    let keys = key_provider.keys(&key_needs(&[&chains, &other_chains], range))?;
    let keys = &keys;
    let other_trails = unvouched::OtherTrails::attribute(source, other_chains, keys, range);
    let walked: Vec<(ChainId, WalkedChain)> = chains
        .into_par_iter()
        .map(|(id, candidates)| {
            let w = walk(&id, candidates, keys, range);
            (id, w)
        })
        .collect();
    // A log file that a verified digest judges gets no "its digest could not be verified"
    // from another digest that names it too (a moved copy). Needed only when a digest that is
    // not verified names log files: a clean run reads nothing again and keeps no set.
    let mut judged = TextHashes::with_capacity(0);
    let unverified_lists = walked
        .iter()
        .flat_map(|(_, c)| c.digests.iter())
        .any(|w| !matches!(w.status, DigestStatus::Verified(_)) && listed_count(w) > 0);
    if unverified_lists {
        let verified: Vec<&WalkedDigest> = walked
            .iter()
            .flat_map(|(_, c)| c.digests.iter())
            .filter(|w| !w.context && matches!(w.status, DigestStatus::Verified(_)))
            .collect();
        unvouched::for_each_listed(source, &verified, &mut |entry| {
            judged.insert(&entry.location.uri())
        });
    }
    let judged = judged.into_set();
    let holes = Holes::of(&bucket, &walked);
    let mut referenced = TextHashes::with_capacity(
        walked
            .iter()
            .flat_map(|(_, c)| c.digests.iter())
            .map(listed_count)
            .sum(),
    );
    let layout = Layout {
        bucket: &bucket,
        sink,
        omit_valid_logs: settings.omit_valid_logs,
        judged: &judged,
        standard: None,
        reports: Vec::with_capacity(walked.len()),
        chain: ChainLayout::new(settings.omit_valid_logs, 0),
    };
    let chain_reports = check_logs(source, walked, layout, &mut referenced, observer);
    let referenced = referenced.into_set();
    let attributed = AtomicUsize::new(0);
    let unchained = Mutex::new(Vec::new());
    let unrecognised = Mutex::new(unrecognised);
    for_each_log(
        source,
        settings,
        &|key, log| {
            if log.time < range.start || log.time > range.end || referenced.contains(&key) {
                return;
            }
            if other_trails.vouch_for(&key) {
                attributed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let finding = other_trails.unattributed(
                unreferenced(&bucket, key, log.time, holes.around(&log)),
                &log.scope,
            );
            unchained
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(finding);
        },
        &|key| {
            unrecognised
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(key)
        },
        observer,
    )?;
    let attributed = attributed.into_inner();
    let mut unchained = unchained
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    unchained.extend(other_trails.decoys);
    unchained.extend(unvouched::unrecognised(
        &bucket,
        settings,
        range,
        unrecognised
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner),
        source.strays(),
    ));
    // Listings come in no set order, and need not give each key once; the report's order is
    // the keys'.
    unchained.sort_by(|a, b| a.subject.cmp(&b.subject));
    unchained.dedup_by(|a, b| a.subject == b.subject);
    let mut notes = source.notes();
    if attributed > 0 {
        notes.push(format!(
            "{attributed} log files were not checked: verified digests of trails left out by the filters, which write to the same folders, name them"
        ));
    }

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

/// The digests read, by chain, ready to walk.
fn candidates(
    read: Vec<ReadDigest>,
    bucket: &str,
    settings: &Settings,
) -> BTreeMap<ChainId, Vec<DigestCandidate>> {
    let mut chains: BTreeMap<ChainId, Vec<DigestCandidate>> = BTreeMap::new();
    for r in read {
        let signature = settings
            .head_signatures
            .get(&r.key_text)
            .cloned()
            .or(r.signature);
        let candidate = DigestCandidate {
            location: S3Location::new(bucket, &r.key_text),
            backfill_generated: r.backfill_generated,
            key: r.key.clone(),
            content: r.content,
            signature,
        };
        chains.entry(r.key.chain()).or_default().push(candidate);
    }
    chains
}

/// Digests read per batch: their stored bytes are held only until they are parsed.
const DIGEST_BATCH: usize = 64;

/// Reads and parses the digests, setting their log lists aside (see [`LogFiles`]).
fn read_digests(
    source: &dyn ObjectSource,
    digests: Vec<DigestKey>,
    gone: &BTreeSet<String>,
    observer: &dyn Observer,
) -> Vec<ReadDigest> {
    let total = Some(digests.len() as u64);
    let progress = Progress::start(observer, Phase::DigestsRead, total);
    let mut read = Vec::with_capacity(digests.len());
    for batch in digests.chunks(DIGEST_BATCH) {
        let keys: Vec<String> = batch.iter().map(DigestKey::format).collect();
        let stored = source.read_digests(&keys, &progress);
        read.par_extend(
            batch
                .par_iter()
                .zip(keys)
                .zip(stored)
                .map(|((key, key_text), stored)| {
                    let recorded = gone.contains(&key_text);
                    ReadDigest::new(key.clone(), key_text, stored, recorded)
                }),
        );
    }
    read
}

/// One digest after reading and parsing.
struct ReadDigest {
    key: DigestKey,
    key_text: String,
    content: Result<ParsedDigest, ContentProblem>,
    signature: Option<Vec<u8>>,
    backfill_generated: GenerationTime,
}

impl ReadDigest {
    fn new(
        key: DigestKey,
        key_text: String,
        stored: Result<StoredObject, ReadError>,
        // Named by the source's records, found by no listing.
        recorded: bool,
    ) -> Self {
        let (content, signature, backfill_generated) = match stored {
            Ok(StoredObject { bytes, facts, .. }) => {
                let content = match inflate_all(&bytes, Limits::DIGEST) {
                    Err(p) => Err(ContentProblem::Format {
                        detail: p.to_string(),
                        listed: Vec::new(),
                    }),
                    Ok(raw) => match ParsedDigest::parse(&raw) {
                        Ok(mut digest) => {
                            digest.set_aside_log_files();
                            Ok(digest)
                        }
                        Err(e) => Err(lenient_format(e.to_string(), &raw)),
                    },
                };
                (content, facts.signature, facts.backfill_generated)
            }
            Err(e) => {
                let problem = match e {
                    ReadError::NotFound if recorded => ContentProblem::Gone(
                        "the evidence-metadata file records it (at acquisition); the copy does not hold it".into(),
                    ),
                    ReadError::NotFound => {
                        ContentProblem::Unreadable("listed but gone when read".into())
                    }
                    ReadError::Escape(d) => ContentProblem::PathEscape(d),
                    ReadError::OtherBucket => {
                        ContentProblem::Unreadable("in another bucket".into())
                    }
                    ReadError::Io(d) => ContentProblem::Unreadable(d),
                    // Not a digest file at all: its format is wrong, not its reading.
                    ReadError::NotAFile(what) => ContentProblem::Format {
                        detail: not_a_file(what),
                        listed: Vec::new(),
                    },
                };
                (Err(problem), None, GenerationTime::Unknown)
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

/// A digest that failed the strict parse, with the log files it still names (at most
/// [`crate::core::digest::MAX_LENIENTLY_LISTED`]; the detail says when it lists more).
fn lenient_format(mut detail: String, raw: &[u8]) -> ContentProblem {
    let listing = listed_log_files(raw);
    if listing.entries > listing.names.len() {
        detail.push_str(&format!(
            "; it lists {} log files, of which only the first {} named are reported",
            listing.entries,
            listing.names.len()
        ));
    }
    ContentProblem::Format {
        detail,
        listed: listing.names,
    }
}

/// The keys the AWS CLI would ask for: the range plus two hours in each source Region, and each
/// backfill digest's generation time plus or minus an hour; without a generation time, from the
/// digest's end over the bound the chain walker allows (`SigningTime::backfill_unknown`).
/// Times from the evidence (a key's, unsigned S3 metadata) and from flags may lie at the ends
/// of what a timestamp can hold: the windows saturate there.
fn key_needs(chains: &[&BTreeMap<ChainId, Vec<DigestCandidate>>], range: Range) -> KeyNeeds {
    let hour = SignedDuration::from_hours(1);
    let mut windows = vec![(range.start, later(range.end, 2 * hour))];
    for c in chains.iter().flat_map(|c| c.values()).flatten() {
        match &c.backfill_generated {
            GenerationTime::Stated(t) => windows.push((earlier(*t, hour), later(*t, hour))),
            GenerationTime::Unknown if c.key.backfill => {
                let bound = SigningTime::backfill_unknown(c.key.end_time);
                windows.push((bound.earliest, bound.latest));
            }
            _ => {}
        }
        // Digests read only for the range's edges are verified too: their links are believed
        // only then.
        let t = c.key.end_time;
        if !range.holds_digest(t) {
            windows.push((earlier(t, hour), later(t, hour)));
        }
    }
    windows.sort();
    windows.dedup();
    KeyNeeds {
        regions: chains
            .iter()
            .flat_map(|c| c.keys())
            .map(|c| c.scope.region.clone())
            .collect(),
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

/// Without a given range, verify everything found: from an hour before the oldest time in the
/// evidence's `extent` (a digest's end is an hour after its start) to the newest.
fn resolve_range(
    settings: &Settings,
    extent: (Timestamp, Timestamp),
) -> Result<(Range, bool), EngineError> {
    let derived = settings.start.is_none() || settings.end.is_none();
    let start = settings
        .start
        .unwrap_or_else(|| earlier(extent.0, SignedDuration::from_hours(1)));
    let end = settings.end.unwrap_or(extent.1);
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

/// Log files hashed per batch: enough to keep every worker and every S3 request slot busy,
/// few enough that a batch's log lists and outcomes stay small. A batch also ends at
/// `LOG_BATCH_DIGESTS` digests, which bounds the digests read again at once when they list
/// few log files.
const LOG_BATCH: usize = 2048;
const LOG_BATCH_DIGESTS: usize = 256;

/// One step of laying out the chains.
enum Step {
    /// A chain whose digests name `listed` log files, with what the walk found of its timeline.
    StartOfChain {
        listed: usize,
        holes: Vec<Span>,
        extent: (Timestamp, Timestamp),
    },
    Digest(WalkedDigest),
    EndOfChain(ChainId),
}

/// Hashes every log file the verified digests name and lays out each chain: each digest's
/// findings followed by its log files', newest digest first. Digests go in batches of about
/// [`LOG_BATCH`] log files: the batch's set-aside log lists are read again, its log files
/// hashed in one call (so the source can spread them over all its workers), its findings
/// decided, and the lists dropped. Every log file a digest is known to name is added to
/// `referenced`.
fn check_logs(
    source: &dyn ObjectSource,
    walked: Vec<(ChainId, WalkedChain)>,
    mut layout: Layout<'_>,
    referenced: &mut TextHashes,
    observer: &dyn Observer,
) -> Vec<ChainReport> {
    let hashed: usize = walked
        .iter()
        .flat_map(|(_, c)| c.digests.iter())
        .filter(|w| matches!(w.status, DigestStatus::Verified(_)))
        .map(listed_count)
        .sum();
    let progress = Progress::start(observer, Phase::LogFilesHashed, Some(hashed as u64));
    let mut batch = Vec::new();
    let (mut batch_logs, mut batch_digests) = (0, 0);
    for (id, chain) in walked {
        batch.push(Step::StartOfChain {
            listed: chain.digests.iter().map(listed_count).sum(),
            holes: chain.holes,
            extent: chain.extent,
        });
        for w in chain.digests {
            batch_logs += listed_count(&w);
            batch_digests += 1;
            batch.push(Step::Digest(w));
            if batch_logs >= LOG_BATCH || batch_digests >= LOG_BATCH_DIGESTS {
                layout.run(source, std::mem::take(&mut batch), referenced, &progress);
                (batch_logs, batch_digests) = (0, 0);
            }
        }
        batch.push(Step::EndOfChain(id));
    }
    layout.run(source, batch, referenced, &progress);
    layout.reports
}

/// How many log files a walked digest names (none are looked at for a context digest).
fn listed_count(w: &WalkedDigest) -> usize {
    if w.context {
        return 0;
    }
    match &w.status {
        DigestStatus::Verified(v) => v.digest().log_files.len(),
        DigestStatus::Unverified {
            listed: Listed::SetAside(d),
        } => d.log_files.len(),
        DigestStatus::Unverified {
            listed: Listed::Names(names),
        } => names.len(),
    }
}

/// The chain reports laid out so far, and the chain being laid out.
struct Layout<'a> {
    bucket: &'a str,
    sink: Option<FindingSink<'a>>,
    omit_valid_logs: bool,
    /// Log files some verified digest of the run names.
    judged: &'a TextSet,
    /// The standard chain laid out last, with its timeline, for its backfill chain (next).
    standard: Option<(ChainId, (Timestamp, Timestamp), Vec<Span>)>,
    reports: Vec<ChainReport>,
    chain: ChainLayout,
}

/// What an unverified digest's log files are, once known.
enum Names {
    Locations(Vec<S3Location>),
    Entries(Arc<[LogFileEntry]>),
}

impl Layout<'_> {
    fn run(
        &mut self,
        source: &dyn ObjectSource,
        batch: Vec<Step>,
        referenced: &mut TextHashes,
        progress: &Progress<'_>,
    ) {
        // What each digest names: held, or in a list set aside, read again (in one call).
        let found: Vec<Option<Result<Names, &ParsedDigest>>> = batch
            .iter()
            .map(|s| match s {
                Step::Digest(w) if !w.context => Some(names(w)),
                _ => None,
            })
            .collect();
        let (keys, aside): (Vec<String>, Vec<&ParsedDigest>) = batch
            .iter()
            .zip(&found)
            .filter_map(|(s, f)| match (s, f) {
                (Step::Digest(w), Some(Err(d))) => Some((w.location.key.clone(), *d)),
                _ => None,
            })
            .unzip();
        let mut lists = if keys.is_empty() {
            Vec::new()
        } else {
            source
                .read_digests(&keys, &Progress::hidden())
                .into_par_iter()
                .zip(aside)
                .map(|(stored, digest)| reread(digest, stored))
                .collect()
        }
        .into_iter();
        let found: Vec<Option<Result<Names, String>>> = found
            .into_iter()
            .map(|f| {
                f.map(|held| match held {
                    Ok(names) => Ok(names),
                    Err(_) => lists
                        .next()
                        .unwrap_or_else(|| Err(NO_RESULT.to_owned()))
                        .map(Names::Entries),
                })
            })
            .collect();
        drop(keys);

        // Each digest with what it names: verified entries are hashed, the rest only named.
        let steps: Vec<(Step, Option<Names>)> = batch
            .into_iter()
            .zip(found)
            .map(|(step, found)| match (step, found) {
                (Step::Digest(w), Some(found)) => with_names(w, found),
                // Chain markers, which name nothing.
                (step, _) => (step, None),
            })
            .collect();

        let wanted: Vec<&S3Location> = steps
            .iter()
            .filter_map(|(s, names)| match (s, names) {
                (Step::Digest(w), Some(Names::Entries(list)))
                    if matches!(w.status, DigestStatus::Verified(_)) =>
                {
                    Some(list.iter().map(|l| &l.location))
                }
                _ => None,
            })
            .flatten()
            .collect();
        let outcomes = if wanted.is_empty() {
            Vec::new()
        } else {
            source.hash_logs(self.bucket, &wanted, progress)
        };
        drop(wanted);
        let mut outcomes = outcomes.into_iter();

        for (step, names) in steps {
            let w = match step {
                Step::StartOfChain {
                    listed,
                    holes,
                    extent,
                } => {
                    self.chain = ChainLayout::new(self.omit_valid_logs, listed);
                    self.chain.spans = holes;
                    self.chain.extent = extent;
                    continue;
                }
                Step::EndOfChain(id) => {
                    self.end_chain(&id);
                    continue;
                }
                Step::Digest(w) => w,
            };
            let uri = w.location.uri();
            // The worst verdict of the digest itself, then of the log files it names.
            let mut worst = w
                .findings
                .iter()
                .filter(|f| f.kind.judges_subject() && f.subject == uri)
                .map(|f| f.verdict)
                .max()
                .unwrap_or(Verdict::Valid);
            let verified = matches!(w.status, DigestStatus::Verified(_)) && names.is_some();
            let mut listed_any = false;
            self.chain.findings.extend(w.findings);
            let named_by = uri;
            match (&w.status, names) {
                (_, None) => {}
                (DigestStatus::Verified(_), Some(Names::Entries(list))) => {
                    for entry in list.iter() {
                        if entry.location.bucket == self.bucket {
                            referenced.insert(&entry.location.key);
                        }
                        let outcome = outcomes
                            .next()
                            .unwrap_or_else(|| Err(ReadError::Io(NO_RESULT.to_owned())));
                        let finding = log_finding(&entry.location, entry.hash, &named_by, outcome);
                        worst = worst.max(finding.verdict);
                        listed_any = true;
                        self.chain.push(finding);
                    }
                }
                (_, Some(names)) => {
                    let locations: Box<dyn Iterator<Item = &S3Location>> = match &names {
                        Names::Locations(l) => Box::new(l.iter()),
                        Names::Entries(l) => Box::new(l.iter().map(|e| &e.location)),
                    };
                    for l in locations {
                        let text = l.uri();
                        // A verified digest judges it: that verdict is the file's own.
                        if self.judged.contains(&text) {
                            continue;
                        }
                        if l.bucket == self.bucket {
                            referenced.insert(&l.key);
                        }
                        self.chain.push(
                            Finding::new(
                                text,
                                Kind::LogUnverifiable,
                                "its digest could not be verified",
                            )
                            .with(Evidence {
                                named_by: Some(named_by.clone()),
                                ..Evidence::default()
                            }),
                        );
                    }
                }
            }
            let state = if w.context {
                // Its log files were not looked at: whatever of the range it covers is not
                // proven by it.
                HourState::NotVerified
            } else {
                hour_state(worst, verified, listed_any)
            };
            self.chain.spans.push(Span {
                from: w.window.0,
                to: w.window.1,
                state,
            });
        }
    }

    fn end_chain(&mut self, id: &ChainId) {
        let mut done = std::mem::replace(&mut self.chain, ChainLayout::new(false, 0));
        let ledger = if id.backfill {
            if self.add_backfill(id, &done.spans) {
                None
            } else {
                // Backfill digests of a trail that has no standard digest left: those were
                // deleted, every one (CloudTrail writes a standard digest every hour). Nothing
                // proves the range for this trail.
                let subject = done
                    .findings
                    .iter()
                    .find(|f| f.object() == ObjectKind::Digest)
                    .map(|f| f.subject.clone())
                    .unwrap_or_default();
                done.findings.push(
                    Finding::new(
                        subject,
                        Kind::CoverageHole,
                        "backfill digests of this trail remain but no standard digest of it does: its standard digests are gone, and no hour of the range is proven",
                    )
                    .with(Evidence {
                        from: Some(done.extent.0),
                        to: Some(done.extent.1),
                        ..Evidence::default()
                    }),
                );
                Some(Ledger::of(done.extent.0, done.extent.1, &[]))
            }
        } else {
            let ledger = Ledger::of(done.extent.0, done.extent.1, &done.spans);
            self.standard = Some((id.clone(), done.extent, std::mem::take(&mut done.spans)));
            Some(ledger)
        };
        let (findings, omitted_valid_logs, omitted_valid_files) = done.finish();
        let report = ChainReport {
            chain: ChainInfo::from(id),
            findings,
            omitted_valid_logs,
            omitted_valid_files,
            ledger,
        };
        if let Some(sink) = self.sink {
            sink(Some(&report.chain), &report.findings);
        }
        self.reports.push(report);
    }

    /// A backfill digest covers log files its standard chain's digests left out: what it
    /// leaves unproven (an invalid digest, a log file missing or changed) is unproven in the
    /// standard chain's hours too. What it proves adds nothing there (it fills no hole). Chains
    /// come in order, so the standard chain of the same trail has just been laid out.
    /// Returns whether the standard chain was there.
    fn add_backfill(&mut self, id: &ChainId, spans: &[Span]) -> bool {
        let Some((standard, extent, mut all)) = self.standard.take() else {
            return false;
        };
        let sibling = standard.scope == id.scope
            && standard.trail == id.trail
            && standard.home_region == id.home_region;
        if !sibling {
            return false;
        }
        let bad = spans.iter().filter(|s| !s.state.is_proven()).copied();
        let before = all.len();
        all.extend(bad);
        if all.len() > before {
            if let Some(report) = self.reports.last_mut() {
                report.ledger = Some(Ledger::of(extent.0, extent.1, &all));
            }
        }
        true
    }
}

/// A digest with what it names, or, if its list could not be read again, with the finding that
/// says so.
fn with_names(mut w: WalkedDigest, found: Result<Names, String>) -> (Step, Option<Names>) {
    let detail = match found {
        Ok(names) => return (Step::Digest(w), Some(names)),
        Err(detail) => detail,
    };
    // Its signature held for the bytes first read, but nothing it names can be checked
    // through it: it is not valid.
    w.findings.retain(|f| f.kind != Kind::DigestValid);
    w.findings.push(
        Finding::new(
            w.location.uri(),
            Kind::DigestUnreadable,
            "could not be read again for the log files it lists: they were not checked, and show as not referenced by any digest",
        )
        .with(Evidence {
            detail: Some(detail),
            ..Evidence::default()
        }),
    );
    (Step::Digest(w), None)
}

/// What a walked digest names, or the digest whose list was set aside, to be read again.
fn names(w: &WalkedDigest) -> Result<Names, &ParsedDigest> {
    let digest = match &w.status {
        DigestStatus::Verified(v) => v.digest(),
        DigestStatus::Unverified {
            listed: Listed::SetAside(d),
        } => d,
        DigestStatus::Unverified {
            listed: Listed::Names(names),
        } => return Ok(Names::Locations(names.clone())),
    };
    match &digest.log_files {
        LogFiles::Parsed(list) => Ok(Names::Entries(list.clone())),
        LogFiles::SetAside { .. } => Err(digest),
    }
}

/// A set-aside log list, from the digest read again: only from the very bytes first parsed.
fn reread(
    digest: &ParsedDigest,
    stored: Result<StoredObject, ReadError>,
) -> Result<Arc<[LogFileEntry]>, String> {
    let stored = stored.map_err(|e| match e {
        ReadError::NotFound => "gone when read again".to_owned(),
        ReadError::Escape(d) | ReadError::Io(d) => d,
        ReadError::OtherBucket => "in another bucket".to_owned(),
        ReadError::NotAFile(what) => not_a_file(what),
    })?;
    let raw = inflate_all(&stored.bytes, Limits::DIGEST).map_err(|p| p.to_string())?;
    digest.log_files_from(&raw).map_err(|e| e.to_string())
}

/// The state of the hours a digest's window covers, from the worst verdict of the digest and
/// of the log files it names.
fn hour_state(worst: Verdict, verified: bool, listed_any: bool) -> HourState {
    match worst {
        Verdict::Invalid => HourState::Invalid,
        Verdict::Missing => HourState::Missing,
        Verdict::NotVerified => HourState::NotVerified,
        Verdict::Valid if !verified => HourState::NotVerified,
        Verdict::Valid if listed_any => HourState::Verified,
        Verdict::Valid => HourState::VerifiedEmpty,
    }
}

/// What a read the source owed never came back as (a source that returns too few results).
const NO_RESULT: &str = "no result";

/// One chain's findings so far.
struct ChainLayout {
    findings: Vec<Finding>,
    /// The chain's timeline so far: holes from the walk, then each digest's window.
    spans: Vec<Span>,
    extent: (Timestamp, Timestamp),
    /// The subjects of valid log-file listings counted instead of kept, when counting is on.
    /// A log file may be listed more than once (by two digests), and totals count each file
    /// once, by its worst finding, merging by `s3://` text: so the files are counted when the
    /// chain is done. A hash collision could only miscount valid files, never hide a finding.
    omitted: Option<TextHashes>,
}

impl ChainLayout {
    /// `listed`: how many log files the chain's digests name, the most that may be counted.
    fn new(omit_valid_logs: bool, listed: usize) -> Self {
        ChainLayout {
            findings: Vec::new(),
            spans: Vec::new(),
            extent: (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
            omitted: omit_valid_logs.then(|| TextHashes::with_capacity(listed)),
        }
    }

    /// Keeps a log file's finding, or counts it if it is valid and counting is on.
    fn push(&mut self, finding: Finding) {
        match &mut self.omitted {
            Some(o) if finding.kind == Kind::LogValid => o.insert(&finding.subject),
            _ => self.findings.push(finding),
        }
    }

    /// The findings kept, the valid listings counted, and the log files among those that no
    /// kept finding is about.
    fn finish(self) -> (Vec<Finding>, usize, usize) {
        let findings = merge_by_object(self.findings);
        let Some(omitted) = self.omitted else {
            return (findings, 0, 0);
        };
        let listings = omitted.hashes.len();
        let counted = omitted.into_set();
        let kept: HashSet<u64> = findings
            .iter()
            .filter(|f| f.object() == ObjectKind::Log)
            .map(|f| counted.hash(&f.subject))
            .collect();
        let files = counted.hashes().filter(|h| !kept.contains(h)).count();
        (findings, listings, files)
    }
}

/// Texts remembered as 64-bit hashes rather than themselves, so that a run can keep one per
/// log file: the keys the digests name (to find files no digest names), the valid files
/// counted. The hash is keyed afresh for every run, so no text can be crafted to collide with
/// another; by chance, with a million texts held, another is taken for one of them with odds
/// of about 1 in 2e13.
struct TextHashes {
    hashes: Vec<u64>,
    hasher: RandomState,
}

impl TextHashes {
    fn with_capacity(n: usize) -> Self {
        TextHashes {
            hashes: Vec::with_capacity(n),
            hasher: RandomState::new(),
        }
    }

    fn insert(&mut self, text: &str) {
        self.hashes.push(self.hash(text));
    }

    fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    /// Sorted, each once, for lookups.
    fn into_set(mut self) -> TextSet {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        TextSet(self)
    }
}

struct TextSet(TextHashes);

impl TextSet {
    fn contains(&self, text: &str) -> bool {
        self.0.hashes.binary_search(&self.hash(text)).is_ok()
    }

    fn hash(&self, text: &str) -> u64 {
        self.0.hash(text)
    }

    fn hashes(&self) -> impl Iterator<Item = &u64> {
        self.0.hashes.iter()
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
        Err(ReadError::NotAFile(what)) => {
            return Finding::new(uri, Kind::LogFormat, "invalid format").with(Evidence {
                detail: Some(not_a_file(what)),
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

/// The detail of a finding on something that is not a file at all (a FIFO, a device), which no
/// copy of an S3 object can be: it was not read.
fn not_a_file(what: &str) -> String {
    format!("not a regular file but {what}: not read")
}

/// A log file delivered inside the range that no digest vouches for. Inside a hole of its
/// chain, the hole is named: its digest is gone, which is not the same as a file no digest ever
/// listed.
fn unreferenced(bucket: &str, key: String, time: Timestamp, hole: Option<&Hole>) -> Finding {
    let (reason, named_by) = match hole {
        Some(h) => (
            format!(
                "not referenced by any digest: delivered inside a hole of its chain: {}",
                h.why
            ),
            h.named_by.clone(),
        ),
        None => (
            "not referenced by any digest: injected, or delivered while log file validation was off"
                .to_owned(),
            None,
        ),
    };
    Finding::new(
        S3Location::new(bucket, key).uri(),
        Kind::LogUnreferenced,
        reason,
    )
    .with(Evidence {
        from: Some(time),
        named_by,
        ..Evidence::default()
    })
}

/// A stretch of a chain whose digests are gone, as the walk found it.
struct Hole {
    from: Timestamp,
    to: Timestamp,
    /// The latest end of this hole and of those before it (see [`Holes::of`]).
    reach: Timestamp,
    why: String,
    named_by: Option<String>,
}

/// The holes of every standard chain, by the account/Region folder its log files are in.
struct Holes(BTreeMap<Scope, Vec<Hole>>);

impl Holes {
    fn of(bucket: &str, walked: &[(ChainId, WalkedChain)]) -> Holes {
        let mut out: BTreeMap<Scope, Vec<Hole>> = BTreeMap::new();
        let prefix = format!("s3://{bucket}/");
        for (id, chain) in walked.iter().filter(|(id, _)| !id.backfill) {
            for f in chain.digests.iter().flat_map(|w| &w.findings) {
                let hole = match f.kind {
                    Kind::DigestMissing => {
                        let key = f
                            .subject
                            .strip_prefix(&prefix)
                            .and_then(|k| parse_key(k).ok());
                        let Some(CloudTrailKey::Digest(k)) = key else {
                            continue;
                        };
                        Hole {
                            from: k
                                .end_time
                                .checked_sub(SignedDuration::from_hours(1))
                                .unwrap_or(Timestamp::MIN),
                            to: k.end_time,
                            reach: k.end_time,
                            why: match &f.evidence.named_by {
                                Some(n) => format!(
                                    "its digest {} is missing (named by the link from {n})",
                                    f.subject
                                ),
                                None => format!("its digest {} is missing", f.subject),
                            },
                            named_by: f.evidence.named_by.clone(),
                        }
                    }
                    Kind::DigestSuccessorMissing | Kind::CoverageHole | Kind::CoverageEnd => {
                        let (Some(from), Some(to)) = (f.evidence.from, f.evidence.to) else {
                            continue;
                        };
                        Hole {
                            from,
                            to,
                            reach: to,
                            why: format!(
                                "no digest covers {} to {} (the digests after {} are missing)",
                                format_iso(from),
                                format_iso(to),
                                f.subject
                            ),
                            named_by: f.evidence.named_by.clone(),
                        }
                    }
                    _ => continue,
                };
                out.entry(id.scope.clone()).or_default().push(hole);
            }
        }
        for holes in out.values_mut() {
            holes.sort_by_key(|h| h.from);
            // Each hole's `reach`: the latest end of it and every hole before it, so a lookup
            // stops as soon as nothing earlier can still cover a time.
            let mut reach = Timestamp::MIN;
            for h in holes.iter_mut() {
                reach = reach.max(h.to);
                h.reach = reach;
            }
        }
        Holes(out)
    }

    /// The hole of the log file's own folder that its delivery time falls in, if any: a
    /// binary search, so that many injected files and many holes cost no more than their sum.
    fn around(&self, log: &LogKey) -> Option<&Hole> {
        let holes = self.0.get(&log.scope)?;
        let started = holes.partition_point(|h| h.from <= log.time);
        holes
            .get(..started)?
            .iter()
            .rev()
            .take_while(|h| h.reach >= log.time)
            .find(|h| log.time <= h.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Totals;

    fn finding(bucket: &str, key: &str, kind: Kind) -> Finding {
        Finding::new(S3Location::new(bucket, key).uri(), kind, "")
    }

    /// A copy whose digests change after their first read, as if rewritten during the run.
    struct Rewritten {
        copy: crate::source::local::LocalEvidence,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl ObjectSource for Rewritten {
        fn describe(&self) -> String {
            self.copy.describe()
        }
        fn bucket(&self) -> Option<String> {
            self.copy.bucket()
        }
        fn list(
            &self,
            request: &ListRequest,
            each: &(dyn Fn(String) + Sync),
            observer: &dyn Observer,
        ) -> Result<(), SourceError> {
            self.copy.list(request, each, observer)
        }
        fn read_digests(
            &self,
            keys: &[String],
            progress: &Progress<'_>,
        ) -> Vec<Result<StoredObject, ReadError>> {
            let mut read = self.copy.read_digests(keys, progress);
            let later = self
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                > 0;
            for stored in read.iter_mut().flatten().filter(|_| later) {
                // Still a well-formed digest, listing the same log files: one more space.
                let mut raw = inflate_all(&stored.bytes, Limits::DIGEST).unwrap();
                raw.push(b' ');
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                std::io::Write::write_all(&mut gz, &raw).unwrap();
                stored.bytes = gz.finish().unwrap();
            }
            read
        }
        fn hash_logs(
            &self,
            bucket: &str,
            locations: &[&S3Location],
            progress: &Progress<'_>,
        ) -> Vec<Result<crate::core::gz::GzOutcome, ReadError>> {
            self.copy.hash_logs(bucket, locations, progress)
        }
        fn notes(&self) -> Vec<String> {
            self.copy.notes()
        }
    }

    #[test]
    fn a_digest_rewritten_during_the_run_vouches_for_nothing() {
        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-plain");
        let keys = crate::source::PinnedKeys {
            keys: crate::core::keyfile::parse_key_file(
                &std::fs::read(case.join("public-keys.json")).unwrap(),
            )
            .unwrap(),
            path: case.join("public-keys.json"),
        };
        let source = Rewritten {
            copy: crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap(),
            reads: Default::default(),
        };
        let report = verify(&source, &keys, &Settings::default()).unwrap();
        let kinds = |kind| report.all_findings().filter(|f| f.kind == kind).count();
        // Their signatures verified over the first bytes, the lists would come from the second:
        // none is valid.
        assert_eq!(kinds(Kind::DigestValid), 0);
        assert_eq!(kinds(Kind::DigestUnreadable), 6);
        assert_eq!(kinds(Kind::LogValid), 0);
        assert_eq!(kinds(Kind::LogUnreferenced), 12);
        assert!(report
            .all_findings()
            .filter(|f| f.kind == Kind::DigestUnreadable)
            .all(|f| f
                .evidence
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("changed"))));
        assert_eq!(report.totals().digests.not_verified, 6);
        assert_eq!(report.exit_code(), 2);

        // Read once, as it was: all valid.
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        let report = verify(&source, &keys, &Settings::default()).unwrap();
        assert_eq!(report.totals().logs.valid, 12);
        assert_eq!(report.exit_code(), 0);
    }

    /// Each filter value must select something: a typo used to verify nothing and exit 0
    /// (for `--trail`), or pass unnoticed beside a value that matched.
    #[test]
    fn each_filter_value_that_matches_nothing_is_named() {
        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-org");
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        let with = |accounts: &[&str], regions: &[&str], trails: &[&str]| Settings {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            trails: trails.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        };
        let unmatched = |settings: &Settings| match plan(&source, settings, &NoObserver) {
            Err(EngineError::UnmatchedFilters {
                unmatched,
                trails_found,
                ..
            }) => (
                unmatched
                    .iter()
                    .map(|u| format!("{} {}", u.filter, u.value))
                    .collect::<Vec<_>>(),
                trails_found,
            ),
            Ok(_) => (Vec::new(), Vec::new()),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            unmatched(&with(&[], &[], &["org-trail"])).0,
            Vec::<String>::new()
        );
        let (values, found) = unmatched(&with(&[], &[], &["org-trial"]));
        assert_eq!(values, ["--trail org-trial"]);
        assert_eq!(found, ["org-trail"]);
        assert_eq!(
            unmatched(&with(
                &["111122223333", "111122223334"],
                &["us-east-1", "us-east-2"],
                &["org-trail", "x"]
            ))
            .0,
            [
                "--account-id 111122223334",
                "--region us-east-2",
                "--trail x"
            ]
        );
        // A value the other filters rule out matches nothing either.
        assert_eq!(
            unmatched(&with(&["444455556666"], &[], &["org-trail"])).0,
            Vec::<String>::new()
        );
        let message = plan(&source, &with(&[], &[], &["org-trial"]), &NoObserver)
            .unwrap_err()
            .to_string();
        assert!(message.contains("--trail org-trial"), "{message}");
        assert!(
            message.contains("trails with digests there: org-trail"),
            "{message}"
        );
        // As `aws cloudtrail validate-logs` does, when asked to.
        let lenient = Settings {
            allow_unmatched_filters: true,
            ..with(&[], &[], &["org-trial"])
        };
        assert!(plan(&source, &lenient, &NoObserver)
            .unwrap()
            .digests
            .is_empty());
    }

    /// A digest key ending 9999-12-30T21:59:59Z, a backfill generation time at either end of
    /// what a timestamp holds (unsigned S3 metadata) and `--end-time 9999-12-30T21:00:00Z`
    /// each panicked in this arithmetic.
    #[test]
    fn times_at_the_ends_of_the_representable_range_saturate() {
        let last: Timestamp = "9999-12-30T21:59:59Z".parse().unwrap();
        let first: Timestamp = "-009999-01-02T01:59:59Z".parse().unwrap();
        let key = parse_key("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/9999/12/30/111122223333_CloudTrail-Digest_us-east-1_trail-a_us-east-1_99991230T215959Z_backfill.json.gz").unwrap();
        let CloudTrailKey::Digest(key) = key else {
            panic!("a digest key")
        };
        let candidate = |t| DigestCandidate {
            location: S3Location::new("b", "k"),
            key: key.clone(),
            content: Err(ContentProblem::Unreadable(String::new())),
            signature: None,
            backfill_generated: GenerationTime::Stated(t),
        };
        let chains = BTreeMap::from([(key.chain(), vec![candidate(first), candidate(last)])]);
        let (range, _) = resolve_range(&Settings::default(), (first, last)).unwrap();
        assert_eq!((range.start, range.end), (Timestamp::MIN, last));
        let needs = key_needs(&[&chains], range);
        assert_eq!(
            needs.windows,
            [
                (
                    Timestamp::MIN,
                    first.checked_add(SignedDuration::from_hours(1)).unwrap()
                ),
                (Timestamp::MIN, Timestamp::MAX),
                (
                    last.checked_sub(SignedDuration::from_hours(1)).unwrap(),
                    Timestamp::MAX
                ),
            ]
        );
        let settings = Settings {
            start: Some(first),
            end: Some("9999-12-30T21:00:00Z".parse().unwrap()),
            ..Settings::default()
        };
        let request = list_request(&settings, ObjectType::Log);
        assert_eq!(
            request.range,
            Some((first, "9999-12-30T22:00:00Z".parse().unwrap()))
        );
        let settings = Settings {
            end: Some(last),
            ..settings
        };
        let request = list_request(&settings, ObjectType::Log);
        assert_eq!(request.range, Some((first, Timestamp::MAX)));
    }

    #[test]
    fn counted_valid_logs_total_as_the_kept_findings_would() {
        use Kind::{LogHashMismatch as Bad, LogValid as Ok};
        // Files listed twice: valid both times (x), valid then not (y), not then valid (z),
        // under two bucket/key splits that print the same `s3://` text (w); once (v).
        let listings = [
            ("b", "x", Ok),
            ("b", "y", Ok),
            ("b", "x", Ok),
            ("b", "y", Bad),
            ("b", "z", Bad),
            ("b", "z", Ok),
            ("b", "AWSLogs/w", Ok),
            ("b/AWSLogs", "w", Bad),
            ("b", "v", Ok),
        ];
        let mut counted = ChainLayout::new(true, listings.len());
        let mut kept = ChainLayout::new(false, listings.len());
        for (b, k, kind) in listings {
            counted.push(finding(b, k, kind));
            kept.push(finding(b, k, kind));
        }
        let (counted_findings, listings_counted, files) = counted.finish();
        assert_eq!(
            listings_counted, 6,
            "every valid listing: the AWS CLI counts each"
        );
        assert_eq!(files, 2, "x and v");
        assert_eq!(counted_findings.len(), 3, "the three bad listings");
        let mut totals = Totals::of(&counted_findings);
        totals.logs.valid += files;
        assert_eq!(totals, Totals::of(&kept.findings));
        assert_eq!(kept.findings.len(), listings.len());
    }
}
