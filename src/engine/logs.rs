//! Checking the log files the digests name, in batches: each batch's set-aside log lists are
//! read again, its log files hashed in one call, and its digests laid out
//! ([`super::layout`]) before the next batch is read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use super::digests::{not_a_file, Kept};
use super::layout::{LaidOut, Layout};
use super::texts::{TextHashes, TextSet};
use super::unvouched;
use crate::core::chain::{
    archived_reason, walk, DigestCandidate, DigestStatus, Listed, Range, WalkedChain, WalkedDigest,
};
use crate::core::digest::{LogFileEntry, LogFiles, ParsedDigest};
use crate::core::finding::{Evidence, Finding, Kind, Verdict};
use crate::core::gz::{inflate_all, GzOutcome, Limits};
use crate::core::layout::ChainId;
use crate::core::ledger::Span;
use crate::core::sign::KeySet;
use crate::core::time::later;
use crate::core::types::S3Location;
use crate::core::verdict::judge_entry;
use crate::source::progress::{Observer, Phase, Progress};
use crate::source::{ObjectSource, ReadError, ReadFailure, StoredObject};

use super::LogTap;

/// Log files hashed per batch: enough to keep every worker and every S3 request slot busy,
/// few enough that a batch's log lists and outcomes stay small. A batch also ends at
/// `LOG_BATCH_DIGESTS` digests, which bounds the digests read again at once when they list
/// few log files.
const LOG_BATCH: usize = 2048;
const LOG_BATCH_DIGESTS: usize = 256;

/// One step of laying out the chains.
pub(super) enum Step {
    /// A chain whose digests name `listed` log files, with what the walk found of its timeline;
    /// `backfill` for a trail's backfill chain.
    StartOfChain {
        backfill: bool,
        caught_up: bool,
        listed: usize,
        holes: Vec<Span>,
        extent: (Timestamp, Timestamp),
    },
    /// A digest of the chain, newest first.
    Digest(WalkedDigest),
    /// The chain is done: its report can be made.
    EndOfChain(ChainId),
}

/// What a digest names, once known.
pub(super) enum Names {
    /// Named by the walk (a malformed digest's lenient listing).
    Locations(Vec<S3Location>),
    /// The digest's own list.
    Entries(Arc<[LogFileEntry]>),
}

/// Hashes every log file the verified digests name and lays out each chain into `layout`:
/// each digest's findings followed by its log files', newest digest first. Digests go in
/// batches of about [`LOG_BATCH`] log files: the batch's set-aside log lists are taken from
/// `kept` or read again, its log files hashed in one call (so the source can spread them over
/// all its workers), its findings decided, and the lists dropped. From a remote source the next
/// batch is read and hashed while one is finishing, so that the requests in flight never drain
/// between batches (the source bounds them together); batches are laid out in order all the
/// same. Every log file a digest is known to name is added to `referenced`. The hashing is one
/// phase for `observer`.
pub(super) fn check_logs(
    source: &dyn ObjectSource,
    walked: Vec<(ChainId, WalkedChain)>,
    mut layout: Layout<'_>,
    referenced: &mut TextHashes,
    observer: &dyn Observer,
    (tap, kept): (Option<&dyn LogTap>, &Kept),
) -> LaidOut {
    let hashed: usize = walked
        .iter()
        .flat_map(|(_, c)| c.digests.iter())
        .filter(|w| matches!(w.status, DigestStatus::Verified(_)))
        .map(listed_count)
        .sum();
    let progress = Progress::start(observer, Phase::LogFilesHashed, Some(hashed as u64));
    let bucket = layout.bucket().to_owned();
    let check = |batch| {
        let steps = with_lists(source, batch, kept);
        let outcomes = match tap {
            None => hash(source, &bucket, &steps, &progress),
            Some(tap) => hash_tapped(source, &bucket, &steps, &progress, tap),
        };
        (steps, outcomes)
    };
    // A tap hears of one batch's files before the next batch's.
    let ahead = if source.remote() && tap.is_none() {
        2
    } else {
        1
    };
    std::thread::scope(|scope| {
        let mut checking = VecDeque::with_capacity(ahead);
        for batch in batches(walked) {
            if checking.len() == ahead {
                if let Some((steps, outcomes)) = checking.pop_front().map(joined) {
                    layout.lay_out(steps, outcomes, referenced);
                }
            }
            checking.push_back(scope.spawn(|| check(batch)));
        }
        for (steps, outcomes) in checking.into_iter().map(joined) {
            layout.lay_out(steps, outcomes, referenced);
        }
    });
    layout.into_reports()
}

/// Adds to `referenced` the log files that the digests of a search a stopped run left behind
/// name ([`super::Settings::searched`], `chains`): each chain walked over just that stretch,
/// from its search mark to its last verified digest. Only digests whose signature verifies now
/// vouch for anything: a digest rewritten since the run that verified it must not vouch for a
/// file put in its Region (the file is then reported as named by no digest). Their log files
/// are not hashed again: the stopped run did, and its findings were out before its checkpoint
/// moved on. Answers what the walk found wrong with those digests (found by the red team: one
/// that could not be read, copied in, or deleted since, passed unsaid, and a read error made a
/// false `log_unreferenced` and exit status 1 instead of 2): an unreadable one keeps the run
/// from moving the checkpoint past it.
pub(super) fn add_searched(
    source: &dyn ObjectSource,
    chains: BTreeMap<ChainId, Vec<DigestCandidate>>,
    (keys, settings): (&KeySet, &super::Settings),
    bucket: &str,
    referenced: &mut TextHashes,
) -> Vec<Finding> {
    let steps: Vec<Step> = chains
        .into_par_iter()
        .filter_map(|(id, candidates)| {
            let from = settings.searched.get(&id)?;
            let to = settings.resume.get(&id)?;
            let stretch = Range {
                start: later(*from, SignedDuration::from_secs(1)),
                end: *to,
                start_requested: true,
                end_requested: true,
            };
            Some(walk(&id, candidates, keys, stretch).digests)
        })
        .flatten()
        .filter(|w| !w.context)
        .map(Step::Digest)
        .collect();
    let mut found = Vec::new();
    for (step, names) in with_lists(source, steps, &Kept::nothing()) {
        let Step::Digest(w) = step else { continue };
        if let (DigestStatus::Verified(_), Some(Names::Entries(list))) = (&w.status, names) {
            for entry in list.iter().filter(|e| e.location.bucket == bucket) {
                referenced.insert(&entry.location.key);
            }
        }
        // What judges a digest of the stretch; not the stretch's own edges (its first link
        // names a digest before it, which this walk does not read).
        found.extend(
            w.findings
                .into_iter()
                .filter(|f| f.verdict != Verdict::Valid && f.kind.judges_subject()),
        );
    }
    found
}

/// What a scoped thread answered; its panic goes on in the caller.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The chains' steps cut into batches of about [`LOG_BATCH`] log files (or
/// [`LOG_BATCH_DIGESTS`] digests), in order.
fn batches(walked: Vec<(ChainId, WalkedChain)>) -> Vec<Vec<Step>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let (mut batch_logs, mut batch_digests) = (0, 0);
    for (id, chain) in walked {
        batch.push(Step::StartOfChain {
            backfill: id.backfill,
            caught_up: chain.caught_up,
            listed: chain.digests.iter().map(listed_count).sum(),
            holes: chain.holes,
            extent: chain.extent,
        });
        for w in chain.digests {
            batch_logs += listed_count(&w);
            batch_digests += 1;
            batch.push(Step::Digest(w));
            if batch_logs >= LOG_BATCH || batch_digests >= LOG_BATCH_DIGESTS {
                batches.push(std::mem::take(&mut batch));
                (batch_logs, batch_digests) = (0, 0);
            }
        }
        batch.push(Step::EndOfChain(id));
    }
    batches.push(batch);
    batches
}

/// How many log files a walked digest names (none are looked at for a context digest).
pub(super) fn listed_count(w: &WalkedDigest) -> usize {
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

/// The batch's steps, each digest with what it names: held, or in a list set aside, taken
/// from the bytes kept when it was read ([`Kept`]) or read again (in one call). A digest whose
/// list cannot be had again names nothing, and says so.
fn with_lists(
    source: &dyn ObjectSource,
    batch: Vec<Step>,
    kept: &Kept,
) -> Vec<(Step, Option<Names>)> {
    let found: Vec<Option<Result<Names, &ParsedDigest>>> = batch
        .iter()
        .map(|s| match s {
            Step::Digest(w) if !w.context => Some(names(w)),
            _ => None,
        })
        .collect();
    let aside: Vec<(&str, &ParsedDigest, Option<Vec<u8>>)> = batch
        .iter()
        .zip(&found)
        .filter_map(|(s, f)| match (s, f) {
            (Step::Digest(w), Some(Err(d))) => {
                let key = w.location.key.as_str();
                Some((key, *d, kept.take(key)))
            }
            _ => None,
        })
        .collect();
    let keys: Vec<String> = aside
        .iter()
        .filter(|(_, _, bytes)| bytes.is_none())
        .map(|(key, _, _)| (*key).to_owned())
        .collect();
    let mut read = if keys.is_empty() {
        Vec::new()
    } else {
        source.read_digests(&keys, &Progress::hidden())
    }
    .into_iter();
    drop(keys);
    let stored: Vec<(&ParsedDigest, Result<StoredObject, ReadError>)> = aside
        .into_iter()
        .map(|(_, digest, bytes)| {
            let stored = match bytes {
                Some(bytes) => Ok(StoredObject {
                    bytes,
                    ..StoredObject::default()
                }),
                None => read
                    .next()
                    .unwrap_or(Err(ReadError::Failed(ReadFailure::NoResult))),
            };
            (digest, stored)
        })
        .collect();
    let mut lists = stored
        .into_par_iter()
        .map(|(digest, stored)| reread(digest, stored))
        .collect::<Vec<_>>()
        .into_iter();
    let found: Vec<Option<Result<Names, String>>> = found
        .into_iter()
        .map(|f| {
            f.map(|held| match held {
                Ok(names) => Ok(names),
                Err(_) => lists
                    .next()
                    .unwrap_or_else(|| Err(ReadFailure::NoResult.to_string()))
                    .map(Names::Entries),
            })
        })
        .collect();
    batch
        .into_iter()
        .zip(found)
        .map(|(step, found)| match (step, found) {
            (Step::Digest(w), Some(found)) => with_names(w, found),
            // Chain markers, which name nothing.
            (step, _) => (step, None),
        })
        .collect()
}

/// The outcomes of hashing, in one call, every log file the batch's verified digests name, in
/// their order.
fn hash(
    source: &dyn ObjectSource,
    bucket: &str,
    steps: &[(Step, Option<Names>)],
    progress: &Progress<'_>,
) -> std::vec::IntoIter<Result<GzOutcome, ReadError>> {
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
    if wanted.is_empty() {
        Vec::new().into_iter()
    } else {
        source.hash_logs(bucket, &wanted, progress).into_iter()
    }
}

/// Log files inflated at once while tapped: each is held whole in memory (up to the inflated
/// budget of a log file, [`Limits::LOG`]) until its records are taken.
const TAP_BATCH: usize = 16;

/// [`hash`], keeping each file's inflated bytes for a moment: every file whose bytes are
/// exactly those its verified digest lists is handed to `tap` with them.
fn hash_tapped(
    source: &dyn ObjectSource,
    bucket: &str,
    steps: &[(Step, Option<Names>)],
    progress: &Progress<'_>,
    tap: &dyn LogTap,
) -> std::vec::IntoIter<Result<GzOutcome, ReadError>> {
    let wanted: Vec<(&LogFileEntry, &S3Location)> = steps
        .iter()
        .filter_map(|(s, names)| match (s, names) {
            (Step::Digest(w), Some(Names::Entries(list)))
                if matches!(w.status, DigestStatus::Verified(_)) =>
            {
                Some(list.iter().map(|l| (l, &w.location)))
            }
            _ => None,
        })
        .flatten()
        .collect();
    let mut outcomes = Vec::with_capacity(wanted.len());
    for batch in wanted.chunks(TAP_BATCH) {
        let locations: Vec<&S3Location> = batch.iter().map(|(e, _)| &e.location).collect();
        let read = source.inflate_logs(bucket, &locations, progress);
        let done: Vec<Result<GzOutcome, ReadError>> = read
            .into_par_iter()
            .zip(batch)
            .map(|(read, (entry, digest))| {
                read.map(|log| {
                    let outcome = log.inflated.outcome().clone();
                    if outcome.problem.is_none() && outcome.inflated_sha256 == entry.hash {
                        tap.proven(
                            &entry.location,
                            digest,
                            entry.hash,
                            log.inflated,
                            log.version_id,
                        );
                    }
                    outcome
                })
            })
            .collect();
        outcomes.extend(done);
    }
    outcomes.into_iter()
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
pub(super) fn names(w: &WalkedDigest) -> Result<Names, &ParsedDigest> {
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

/// A set-aside log list, from the digest read again: only from the very bytes first parsed
/// (a digest rewritten since its signature was checked vouches for nothing).
pub(super) fn reread(
    digest: &ParsedDigest,
    stored: Result<StoredObject, ReadError>,
) -> Result<Arc<[LogFileEntry]>, String> {
    let stored = stored.map_err(|e| match e {
        ReadError::NotFound => "gone when read again".to_owned(),
        ReadError::Escape(d) => d,
        ReadError::Failed(f) => f.to_string(),
        ReadError::OtherBucket => "in another bucket".to_owned(),
        ReadError::NotAFile(what) => not_a_file(what),
        ReadError::Archived(class) => archived_reason(&class),
    })?;
    let raw = inflate_all(&stored.bytes, Limits::DIGEST).map_err(|p| p.to_string())?;
    digest.log_files_from(&raw).map_err(|e| e.to_string())
}

/// The finding on a log file that `entry` (of the verified digest at `named_by`) vouches for:
/// judged by its bytes (as [`crate::core::verdict::judge_log_file`] does), or by why they
/// could not be had.
pub(super) fn log_finding(
    entry: &LogFileEntry,
    named_by: &S3Location,
    outcome: Result<GzOutcome, ReadError>,
) -> Finding {
    let error = match outcome {
        Ok(outcome) => return judge_entry(entry, named_by, &outcome),
        Err(e) => e,
    };
    let uri = entry.location.uri();
    let base = Evidence {
        expected_sha256: Some(entry.hash),
        named_by: Some(named_by.uri()),
        ..Evidence::default()
    };
    let with_detail = |detail| Evidence {
        detail: Some(detail),
        ..base.clone()
    };
    match error {
        ReadError::NotFound => Finding::new(uri, Kind::LogMissing, "not found").with(base),
        ReadError::OtherBucket => Finding::new(
            uri,
            Kind::LogOtherBucket,
            "in another bucket, outside this evidence",
        )
        .with(base),
        ReadError::Escape(d) => {
            Finding::new(uri, Kind::PathEscape, "path leaves the evidence directory")
                .with(with_detail(d))
        }
        ReadError::Failed(f) => Finding::new(uri, Kind::LogUnreadable, "could not be read")
            .with(with_detail(f.to_string())),
        ReadError::NotAFile(what) => {
            Finding::new(uri, Kind::LogFormat, "invalid format").with(with_detail(not_a_file(what)))
        }
        ReadError::Archived(class) => {
            Finding::new(uri, Kind::LogArchived, archived_reason(&class)).with(base)
        }
    }
}

/// The log files some verified digest of the run names: a log file that one judges gets no
/// "its digest could not be verified" from another digest that names it too (a moved copy).
/// Needed only when a digest that is not verified names log files: a clean run reads nothing
/// again and keeps no set.
pub(super) fn judged(source: &dyn ObjectSource, walked: &[(ChainId, WalkedChain)]) -> TextSet {
    let mut judged = TextHashes::with_capacity(0);
    let digests = || walked.iter().flat_map(|(_, c)| c.digests.iter());
    let unverified_lists =
        digests().any(|w| !matches!(w.status, DigestStatus::Verified(_)) && listed_count(w) > 0);
    if unverified_lists {
        let verified: Vec<&WalkedDigest> = digests()
            .filter(|w| !w.context && matches!(w.status, DigestStatus::Verified(_)))
            .collect();
        unvouched::for_each_listed(source, &verified, &mut |entry| {
            judged.insert(&entry.location.uri())
        });
    }
    judged.into_set()
}
