//! The records of the log files a run proved, with their provenance: what `trailproof events`
//! writes, as an iterator an embedder can use without the CLI.
//!
//! ```no_run
//! use trailproof::engine::events::{verify_and_export, ExportOptions};
//! use trailproof::{LocalEvidence, NoObserver, PinnedKeys, Settings};
//!
//! let evidence = LocalEvidence::open("bucket-copy".as_ref())?;
//! let keys = PinnedKeys::from_file("public-keys.json".as_ref())?;
//! let (report, mut records) = verify_and_export(
//!     &evidence, &keys, &Settings::default(), ExportOptions::default(), None, &NoObserver)?;
//! for record in &mut records {
//!     let record = record?;
//!     println!("{} from {}", record.text.len(), record.provenance.carrier.log);
//! }
//! println!("{} log files left out", records.stats().left_out.total());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How proof is kept
//!
//! Records are taken only from a [`ProvenLog`]: inflated bytes whose SHA-256 (computed while
//! inflating exactly those bytes) is the one a verified digest lists for the file. Which files
//! count is decided by the run's report ([`candidates`](crate::core::records::candidates)):
//! those judged valid (and, when asked, those judged NOT VERIFIED). Records of INVALID files are
//! never given, whatever the options.
//!
//! [`verify_and_export`] in sorted order takes the records while the run hashes the log files,
//! from the bytes it hashes: one read of each file. Once the report is made, the records of a
//! file are kept only if the report judges it valid by the same digest and hash; a file the
//! report judges otherwise (a second digest naming it finds it wrong, say) gives none. Files
//! the report wants that were not taken then (unproven files with `include_unverified`, a file
//! proven by another digest than the one that was hashing it) are read again, as
//! [`verified_records`] reads every file: its records are used only when those bytes are the
//! proven ones, so a file that changed since it was verified is left out. Every file left out
//! is counted ([`ExportStats::left_out`]), as is every log file the run did not prove.
//!
//! # Order and duplicates
//!
//! CloudTrail delivers at least once: one event may come in two log files. One record per
//! `eventID` and content is given, its provenance listing every file that carried it; a record
//! whose `eventID` another record with other content has is given as well, beside it (counted
//! in [`ExportStats::conflicts`]: it is evidence too).
//!
//! - [`Order::Sorted`] (the default): by (eventTime, eventID). Records are held in memory up to
//!   a budget, then spilled in sorted runs to temporary files and merged, on a thread of its
//!   own ([`super::sort`]); copies of a record come out next to each other and are merged
//!   exactly.
//! - [`Order::Unsorted`]: as their files are read (oldest delivery first). A record waits at
//!   most a window of delivery time (and a number of records) for a second delivery of it,
//!   because CloudTrail's duplicates arrive within hours of each other; see
//!   [`crate::core::records::Dedupe`]. Copies further apart are given twice, and counted
//!   ([`ExportStats::released_early`], [`ExportStats::outside_window`]).
//!
//! The output is the same for any thread count: records with the same (eventTime, eventID)
//! are put in the order of their files' delivery (then key) before they are merged, and a
//! record without an eventID sorts by its file's key and its place in the file.
//!
//! # Memory and speed
//!
//! Files are read in batches: while the run hashes (16 files), or of [`ExportOptions::batch`]
//! files when read again. The source reads a batch in parallel (threads on a disk, requests in
//! flight on S3), then the batch's files are checked and parsed in parallel on rayon's pool. A
//! batch's inflated files are in memory at once (each at most the inflated budget of a log
//! file, 1 GiB; CloudTrail's are a few MB); the sort's budget or the dedupe window bounds the
//! rest. Sorted, one [`Carrier`] per file read is kept until the end; unsorted, a file's
//! carrier lives as long as its records wait, and the files still to read are held as their
//! keys, hashes and the number of their digest.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use super::assemble::verify_tapped;
use super::sort::{Background, Batch, ExternalSort, Spill, Written};
use super::{EngineError, FindingSink, LogTap, Settings};
use crate::core::finding::{Finding, Verdict};
use crate::core::gz::Inflated;
use crate::core::layout::{parse_key, CloudTrailKey};
use crate::core::records::{
    candidates_where, log_file_judged, write_line, Candidate, Carrier, Dedupe, EventFilter,
    LeftOut, LeftOutReason, LineError, ProvenLog, Provenance, Record, RecordLimits,
};
use crate::core::types::{S3Location, Sha256};
use crate::report::Report;
use crate::source::progress::{Observer, Progress};
use crate::source::{KeyProvider, ObjectSource, ReadError};

/// How records are exported.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Only records that pass (all pass by default).
    pub filter: EventFilter,
    /// Also give the records of log files the run could not prove (NOT VERIFIED: named by no
    /// digest, signature unavailable, ...), with their verdict. Never those of INVALID files.
    pub include_unverified: bool,
    /// Sorted or as read.
    pub order: Order,
    /// Log files read again at once (each held whole in memory while its records are parsed).
    pub batch: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            filter: EventFilter::default(),
            include_unverified: false,
            order: Order::sorted(),
            batch: 16,
        }
    }
}

/// The order records are given in.
#[derive(Debug, Clone)]
pub enum Order {
    /// By (eventTime, eventID), records without an eventTime first.
    Sorted {
        /// Bytes of records held before a sorted run is spilled to a file. While the run
        /// hashes, a run is spilled at half this, written by a thread of its own as the next
        /// half fills.
        memory: usize,
        /// Where run files go (a new folder is made in it, and removed).
        temp_dir: PathBuf,
    },
    /// As their files are read, oldest delivery first.
    Unsorted {
        /// How long (in delivery time) a record waits for a second delivery of it.
        window: SignedDuration,
        /// At most this many records wait; beyond, the oldest is given at once.
        max_pending: usize,
    },
}

impl Order {
    /// Sorted, spilling beyond 64 MiB to the system's temporary folder.
    pub fn sorted() -> Self {
        Order::Sorted {
            memory: 64 << 20,
            temp_dir: std::env::temp_dir(),
        }
    }

    /// As read, each record waiting up to 12 hours of delivery time (and among at most
    /// 200,000) for a second delivery of it.
    pub fn unsorted() -> Self {
        Order::Unsorted {
            window: SignedDuration::from_hours(12),
            max_pending: 200_000,
        }
    }
}

/// One record: its JSON text exactly as in the log file, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedRecord {
    /// The record's JSON text, from its `{` to its `}`.
    pub text: String,
    /// The log files that carried it.
    pub provenance: Provenance,
}

impl ExportedRecord {
    /// Appends its JSONL line to `out` (see [`write_line`]).
    pub fn write_jsonl(&self, out: &mut Vec<u8>) -> Result<(), LineError> {
        write_line(out, &self.text, &self.provenance)
    }
}

/// What an export did, so far or in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records given.
    pub written: u64,
    /// Copies of a record (same eventID, same content) merged into it.
    pub duplicates: u64,
    /// Records given beside another with the same eventID and other content.
    pub conflicts: u64,
    /// Unsorted order: records given before their de-duplication window had passed, because
    /// too many records waited ([`crate::core::records::DedupeStats::released_early`]): a later copy of one of
    /// them is given again.
    pub released_early: u64,
    /// Unsorted order: records whose copies the de-duplication window cannot vouch were all
    /// merged ([`crate::core::records::DedupeStats::outside_window`]): a copy of one delivered further apart than
    /// the window is given again.
    pub outside_window: u64,
    /// Log files whose records were not given, by reason.
    pub left_out: LeftOut,
}

/// Why an export stopped. The iterator gives nothing after one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The sort's temporary files could not be made, written or read.
    #[error("the sort's temporary files: {0}")]
    Sort(#[source] io::Error),
    /// A temporary run file came back with an entry this export did not write.
    #[error("a temporary sort file holds a damaged entry")]
    DamagedRun,
    /// More log files than the sort can number (2^32).
    #[error("more than 4,294,967,295 log files to sort: narrow the range")]
    TooManyFiles,
}

/// Verifies `source` as [`super::verify_streaming`] does and gives the records of the log
/// files the run proves. In sorted order, the records are taken while the run hashes the log
/// files, from the bytes it hashes (see the [module documentation](self)); unsorted, they are
/// read again once the run is done, as [`verified_records`] does.
///
/// With [`Settings::omit_valid_logs`], the report counts valid log files instead of keeping a
/// finding for each (memory that grows with the range), in sorted order; unsorted, the files
/// to read are found in the report, which then keeps them all whatever the setting.
pub fn verify_and_export<'s>(
    source: &'s dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    options: ExportOptions,
    sink: Option<FindingSink<'_>>,
    observer: &dyn Observer,
) -> Result<(Report, VerifiedRecords<'s>), EngineError> {
    let Order::Sorted { memory, temp_dir } = &options.order else {
        // The files are found in the report afterwards: it must keep every valid one.
        let settings = &Settings {
            omit_valid_logs: false,
            ..settings.clone()
        };
        let report = verify_tapped(source, key_provider, settings, sink, observer, None)?;
        let records = verified_records(source, &report, options);
        return Ok((report, records));
    };
    let (spills, to_write) = sync_channel::<Spill>(0);
    let tap = SortTap {
        filter: &options.filter,
        spiller: Mutex::new(Some(spills)),
        state: Mutex::new(TapState {
            // Two blocks of half the budget: one fills while the other's run is written.
            sort: TempDir::new(temp_dir.clone()).map(|t| {
                let sort = ExternalSort::new(&t.0, *memory / 2);
                (t, sort)
            }),
            files: Vec::new(),
            taken: HashMap::new(),
            counted: Vec::new(),
            others: Vec::new(),
            hasher: RandomState::new(),
        }),
    };
    let report = std::thread::scope(|scope| {
        let spiller = scope.spawn(|| {
            for spill in to_write {
                tap.add_run(spill.write());
            }
        });
        // The spill thread ends once it has written what it was handed and its sender is
        // gone: dropped after the run, or while a panic unwinds (the scope waits for the
        // thread, which would otherwise wait for spills forever).
        let closing = CloseSpills(&tap.spiller);
        let report = verify_tapped(source, key_provider, settings, sink, observer, Some(&tap));
        drop(closing);
        if spiller.join().is_err() {
            tap.add_run(Err(io::Error::other(
                "the thread writing the sort's runs panicked",
            )));
        }
        report
    })?;
    let state = tap
        .state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let records = VerifiedRecords::new(source, &report, options, Some(state));
    Ok((report, records))
}

/// The records of the log files `report` proved, read again from `source` (the source the
/// report was made from, without [`Settings::omit_valid_logs`]: a valid file the report only
/// counts is not found). See the [module documentation](self).
pub fn verified_records<'s>(
    source: &'s dyn ObjectSource,
    report: &Report,
    options: ExportOptions,
) -> VerifiedRecords<'s> {
    VerifiedRecords::new(source, report, options, None)
}

/// A file whose records went into the export.
struct FileSlot {
    carrier: Arc<Carrier>,
    delivered: Timestamp,
}

/// What the tap gathered while the run hashed log files.
struct TapState {
    /// The sort and its folder, or why the folder could not be made.
    sort: io::Result<(TempDir, ExternalSort)>,
    /// The files whose records are in the sort, by slot.
    files: Vec<FileSlot>,
    /// The slot of each file, by the hash of its key (not the key: a copy per file is memory
    /// that grows with the range). Two keys with one hash (never seen, keys are random per
    /// run): the second file is not taken, and is read again.
    taken: HashMap<u64, usize>,
    /// By slot: whether a valid listing the report counts (and does not keep) names the file
    /// with the digest and hash it was taken with.
    counted: Vec<bool>,
    /// The valid listings the report counts that name no file taken, or name one with another
    /// digest or hash: judged with the report's findings, and read again if they are wanted.
    others: Vec<Finding>,
    hasher: RandomState,
}

/// Drops the spill thread's sender when dropped.
struct CloseSpills<'t>(&'t Mutex<Option<SyncSender<Spill>>>);

impl Drop for CloseSpills<'_> {
    fn drop(&mut self) {
        drop(self.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// Takes the records of each proven file into the sort as the run hashes it.
struct SortTap<'f> {
    filter: &'f EventFilter,
    state: Mutex<TapState>,
    /// Hands a run to write to the spill thread, when it is idle (a channel without room: a
    /// spill is taken only by a thread waiting for one); `None` once the run is done.
    spiller: Mutex<Option<SyncSender<Spill>>>,
}

impl SortTap<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a run the spill thread wrote; an error ends the sort.
    fn add_run(&self, run: io::Result<Written>) {
        let mut state = self.lock();
        let added = match (run, &mut state.sort) {
            (Ok(run), Ok((_, sort))) => sort.add_run(run),
            (Ok(_), Err(_)) => Ok(()),
            (Err(e), _) => Err(e),
        };
        if let Err(e) = added {
            state.sort = Err(e);
        }
    }

    /// Hands `spill` to the spill thread if it is idle; gives it back if not.
    fn hand_over(&self, spill: Spill) -> Option<Spill> {
        let spiller = self.spiller.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(spiller) = spiller.as_ref() else {
            return Some(spill);
        };
        match spiller.try_send(spill) {
            Ok(()) => None,
            Err(TrySendError::Full(spill) | TrySendError::Disconnected(spill)) => Some(spill),
        }
    }
}

impl LogTap for SortTap<'_> {
    fn proven(
        &self,
        log: &S3Location,
        digest: &S3Location,
        expected: Sha256,
        inflated: Inflated,
        version_id: Option<String>,
    ) {
        let Some(delivered) = delivered(log) else {
            return;
        };
        let candidate = Candidate {
            log: log.clone(),
            delivered,
            expected: Some(expected),
            digest: Some(digest.clone()),
            verdict: Verdict::Valid,
        };
        // A file that fails here is not taken: if the report wants it, it is read again, and
        // fails there too, counted.
        let Ok(proven) = ProvenLog::check(&candidate, inflated, version_id) else {
            return;
        };
        let Ok(records) = proven.records(RecordLimits::LOG) else {
            return;
        };
        let slot = {
            let mut state = self.lock();
            // Named by two digests, a file is hashed twice: its records are taken once.
            let hash = state.hasher.hash_one(log.key.as_str());
            let slot = state.files.len();
            if state.sort.is_err() || state.taken.contains_key(&hash) {
                return;
            }
            state.taken.insert(hash, slot);
            state.files.push(FileSlot {
                carrier: Arc::new(proven.carrier().clone()),
                delivered,
            });
            state.counted.push(false);
            slot
        };
        // Which records pass is decided before the lock is taken (a filter may be slow).
        let places = passing(&records, self.filter);
        let bytes = entries_bytes(&records, &places, &log.key);
        let mut state = self.lock();
        let TapState {
            sort: Ok((_, sort)),
            ..
        } = &mut *state
        else {
            return;
        };
        // Straight into the sort's block, locked: one copy of the records, where a copy into
        // a batch of the file's own was then copied into the block, locked.
        // A slot past u32 is caught when the export starts (too many files).
        let pushed = sort.push_deferred_with(bytes, |held| {
            sort_entries(&records, &places, &log.key, slot_u32(slot), held)
        });
        let (mut result, spills) = match pushed {
            Ok(spills) => (Ok(()), spills),
            Err(e) => (Err(e), Vec::new()),
        };
        for spill in spills {
            // A run is written by the spill thread, so that no thread taking records waits
            // for one (they hash files in batches: one waiting held up the others at the
            // batch's end); while it writes one, another is written here, locked: memory
            // stays within the sort's two blocks however many threads there are.
            let Some(spill) = self.hand_over(spill) else {
                continue;
            };
            if result.is_ok() {
                result = spill.write().and_then(|run| sort.add_run(run));
            }
        }
        if let Err(e) = result {
            state.sort = Err(e);
        }
    }

    fn counted_valid(&self, finding: &Finding) {
        let mut state = self.lock();
        let TapState {
            files,
            taken,
            counted,
            others,
            hasher,
            ..
        } = &mut *state;
        let slot = log_file_judged(finding)
            .and_then(|key| taken.get(&hasher.hash_one(key)))
            .copied();
        let same = slot.and_then(|s| files.get(s)).is_some_and(|f| {
            // Compared without making the texts: this runs for every valid file, locked.
            f.carrier.log.is_uri(&finding.subject)
                && finding.evidence.expected_sha256 == Some(f.carrier.log_sha256)
                && match (&finding.evidence.named_by, &f.carrier.digest) {
                    (Some(named_by), Some(digest)) => digest.is_uri(named_by),
                    (named_by, digest) => named_by.is_none() && digest.is_none(),
                }
        });
        match slot.and_then(|s| counted.get_mut(s)) {
            Some(c) if same => *c = true,
            _ => others.push(finding.clone()),
        }
    }
}

fn slot_u32(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX)
}

fn delivered(log: &S3Location) -> Option<Timestamp> {
    match parse_key(&log.key) {
        Ok(CloudTrailKey::Log(l)) => Some(l.time),
        _ => None,
    }
}

/// The places of the records that pass `filter`.
fn passing(records: &[Record<'_>], filter: &EventFilter) -> Vec<usize> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| filter.matches(r))
        .map(|(place, _)| place)
        .collect()
}

/// Bytes of event IDs and payloads [`sort_entries`] pushes for the records at `places` of the
/// file `key`, at most.
fn entries_bytes(records: &[Record<'_>], places: &[usize], key: &str) -> usize {
    // A record without an eventID is keyed by the file's key and its place (12 bytes more).
    places
        .iter()
        .filter_map(|&place| records.get(place))
        .map(|r| {
            r.raw().len() + TRAILER + r.event_id.as_ref().map_or(key.len() + 12, |id| id.len())
        })
        .sum()
}

/// Pushes to `batch` the sort entries of the records at `places` of a file. A record without
/// an eventID is keyed by its file's key and its place in the file, so that its place in the
/// output does not depend on which file was read first.
fn sort_entries(
    records: &[Record<'_>],
    places: &[usize],
    key: &str,
    slot: u32,
    batch: &mut Batch,
) -> io::Result<()> {
    for (place, r) in places
        .iter()
        .filter_map(|&place| Some((place, records.get(place)?)))
    {
        let trailer = trailer(Origin {
            has_id: r.event_id.is_some(),
            slot,
            place: slot_u32(place),
        });
        let payload = [r.raw().as_bytes(), &trailer];
        match &r.event_id {
            Some(id) => batch.push(r.event_time, id, &payload)?,
            None => batch.push(
                r.event_time,
                &format!("\u{0}{key}\u{0}{place:010}"),
                &payload,
            )?,
        }
    }
    Ok(())
}

/// The files to read (again), oldest delivery first, held small: one per log file of the range
/// (as [`Candidate`]s, a copy of the bucket and of the digest's location each, they were the
/// memory that grew most with the range, unsorted).
struct Wanted {
    files: Vec<WantedFile>,
    /// The digests that prove them, each once.
    digests: Vec<S3Location>,
}

/// A [`Candidate`] in the run's bucket, its digest's location in [`Wanted::digests`].
struct WantedFile {
    key: Box<str>,
    delivered: Timestamp,
    expected: Option<Sha256>,
    digest: Option<u32>,
    verdict: Verdict,
}

impl Wanted {
    /// `candidates` are in the run's bucket (see [`candidates_where`]).
    fn new(candidates: Vec<Candidate>) -> Self {
        let mut digests = Vec::new();
        let mut numbers: HashMap<S3Location, u32> = HashMap::new();
        // Not collected in place: the candidates' larger allocation would be kept.
        let mut files = Vec::with_capacity(candidates.len());
        files.extend(candidates.into_iter().map(|c| WantedFile {
            key: c.log.key.into_boxed_str(),
            delivered: c.delivered,
            expected: c.expected,
            digest: c.digest.map(|d| {
                *numbers.entry(d).or_insert_with_key(|d| {
                    digests.push(d.clone());
                    slot_u32(digests.len() - 1)
                })
            }),
            verdict: c.verdict,
        }));
        Wanted { files, digests }
    }

    fn get(&self, bucket: &str, i: usize) -> Option<Candidate> {
        let f = self.files.get(i)?;
        Some(Candidate {
            log: S3Location::new(bucket, &*f.key),
            delivered: f.delivered,
            expected: f.expected,
            digest: f.digest.and_then(|d| self.digests.get(d as usize)).cloned(),
            verdict: f.verdict,
        })
    }
}

/// The iterator [`verified_records`] and [`verify_and_export`] return.
pub struct VerifiedRecords<'s> {
    source: &'s dyn ObjectSource,
    bucket: String,
    /// The files to read (again).
    candidates: Wanted,
    /// The next candidate to read.
    next: usize,
    /// Every file's slot: those taken while the run hashed, then the candidates read, in
    /// order (`None`: left out, or taken and then not wanted).
    files: Vec<Option<FileSlot>>,
    /// The slot of `candidates[0]`.
    base: usize,
    /// Each slot's place in delivery order (then key), for ties in the sort.
    ranks: Vec<u32>,
    filter: EventFilter,
    batch: usize,
    state: State,
    /// Records ready to be given, in order.
    ready: VecDeque<ExportedRecord>,
    stats: ExportStats,
}

enum State {
    /// Sorted order: the files not taken while the run hashed still to be read.
    Filling {
        sort: io::Result<(TempDir, ExternalSort)>,
    },
    /// Sorted order: every file read; the merge of the sorted runs, and the records of the
    /// (eventTime, eventID) key being gathered, with their file's rank.
    Merging {
        /// Dropped before the folder: its thread removes the run files.
        merged: Background,
        _temp: TempDir,
        /// The batch of merged entries being taken, and the next one's place in it.
        batch: Batch,
        at: usize,
        group: Vec<RecordCopy>,
        group_key: Option<(Option<Timestamp>, Vec<u8>)>,
    },
    /// As read.
    Streaming(Box<Dedupe<()>>),
    Done,
}

impl<'s> VerifiedRecords<'s> {
    fn new(
        source: &'s dyn ObjectSource,
        report: &Report,
        options: ExportOptions,
        tapped: Option<TapState>,
    ) -> Self {
        let mut left_out = LeftOut::default();
        // `extra`: findings the report counted rather than kept, to judge with its own.
        let judged = |extra: &[Finding],
                      left_out: &mut LeftOut,
                      keep: &mut dyn FnMut(&Candidate) -> bool| {
            candidates_where(
                report.all_findings().chain(extra),
                &report.bucket,
                options.include_unverified,
                left_out,
                keep,
            )
        };
        let (files, state, wanted) = match (&options.order, tapped) {
            (_, Some(tap)) => {
                // A file taken while the run hashed is kept when the run judged it valid by the
                // same digest and hash, and nothing worse: by a valid listing the report counted
                // (and no finding about the file it keeps), or by a finding it keeps. The files
                // the report wants otherwise are read again.
                let TapState {
                    sort,
                    files,
                    taken: slots,
                    counted: mut keep,
                    others,
                    hasher,
                    ..
                } = tap;
                let slot_of = |key: &str| slots.get(&hasher.hash_one(key)).copied();
                for key in report
                    .all_findings()
                    .chain(&others)
                    .filter_map(log_file_judged)
                {
                    if let Some(k) = slot_of(key).and_then(|s| keep.get_mut(s)) {
                        *k = false;
                    }
                }
                let again = judged(&others, &mut left_out, &mut |c| {
                    let Some(slot) = slot_of(&c.log.key) else {
                        return true;
                    };
                    let same = files.get(slot).is_some_and(|f| {
                        f.carrier.log.key == c.log.key
                            && c.expected == Some(f.carrier.log_sha256)
                            && c.digest == f.carrier.digest
                            && c.verdict == Verdict::Valid
                    });
                    if let Some(k) = keep.get_mut(slot).filter(|_| same) {
                        *k = true;
                    }
                    !same
                });
                let files: Vec<Option<FileSlot>> = files
                    .into_iter()
                    .zip(keep)
                    .map(|(slot, keep)| keep.then_some(slot))
                    .collect();
                (files, State::Filling { sort }, again)
            }
            (Order::Sorted { memory, temp_dir }, None) => {
                let sort = TempDir::new(temp_dir.clone()).map(|t| {
                    let sort = ExternalSort::new(&t.0, *memory);
                    (t, sort)
                });
                let all = judged(&[], &mut left_out, &mut |_| true);
                (Vec::new(), State::Filling { sort }, all)
            }
            (
                Order::Unsorted {
                    window,
                    max_pending,
                },
                None,
            ) => (
                Vec::new(),
                State::Streaming(Box::new(Dedupe::new(*window, *max_pending))),
                judged(&[], &mut left_out, &mut |_| true),
            ),
        };
        VerifiedRecords {
            source,
            bucket: report.bucket.clone(),
            base: files.len(),
            files,
            ranks: Vec::new(),
            candidates: Wanted::new(wanted),
            next: 0,
            filter: options.filter,
            batch: options.batch.max(1),
            state,
            ready: VecDeque::new(),
            stats: ExportStats {
                left_out,
                ..ExportStats::default()
            },
        }
    }

    /// What the export did so far; all of it once the iterator has ended.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Reads the next batch of candidates: each one's slot and sort entries, or `None` when
    /// every candidate has been read.
    fn read_batch(&mut self) -> Option<Vec<(usize, Batch)>> {
        let start = self.next;
        let end = (start + self.batch).min(self.candidates.files.len());
        if start == end {
            return None;
        }
        self.next = end;
        let base = self.base;
        let batch: Vec<Candidate> = (start..end)
            .filter_map(|i| self.candidates.get(&self.bucket, i))
            .collect();
        let locations: Vec<_> = batch.iter().map(|c| &c.log).collect();
        let read = self
            .source
            .inflate_logs(&self.bucket, &locations, &Progress::hidden());
        let filter = &self.filter;
        let checked: Vec<Result<(Carrier, Batch), LeftOutReason>> = batch
            .par_iter()
            .zip(read)
            .zip(start..end)
            .map(|((candidate, read), i)| {
                let log = read.map_err(|_: ReadError| LeftOutReason::UnreadableAtExport)?;
                let proven = ProvenLog::check(candidate, log.inflated, log.version_id)?;
                let records = proven
                    .records(RecordLimits::LOG)
                    .map_err(|_| LeftOutReason::RecordsMalformed)?;
                let slot = slot_u32(base + i);
                // An entry of 4 GiB: not a record of a log file (inflated, one is at most 1 GiB).
                let key = &candidate.log.key;
                let places = passing(&records, filter);
                let mut entries = Batch::with_capacity(entries_bytes(&records, &places, key));
                sort_entries(&records, &places, key, slot, &mut entries)
                    .map_err(|_| LeftOutReason::RecordsMalformed)?;
                Ok((proven.carrier().clone(), entries))
            })
            .collect();
        let mut out = Vec::with_capacity(checked.len());
        for (candidate, result) in batch.iter().zip(checked) {
            let slot = self.files.len();
            match result {
                Ok((carrier, entries)) => {
                    self.files.push(Some(FileSlot {
                        carrier: Arc::new(carrier),
                        delivered: candidate.delivered,
                    }));
                    out.push((slot, entries));
                }
                Err(reason) => {
                    self.files.push(None);
                    self.stats.left_out.add(reason);
                }
            }
        }
        Some(out)
    }

    /// Sorted order: reads the files not yet in the sort into it.
    fn fill(&mut self, sort: io::Result<(TempDir, ExternalSort)>) -> Result<State, ExportError> {
        if u32::try_from(self.base + self.candidates.files.len()).is_err() {
            return Err(ExportError::TooManyFiles);
        }
        let (temp, mut sort) = sort.map_err(ExportError::Sort)?;
        while let Some(files) = self.read_batch() {
            for (_, batch) in files {
                sort.push(batch).map_err(ExportError::Sort)?;
            }
        }
        // Each slot's rank in delivery order, then key: the order copies are merged in.
        let mut order: Vec<(usize, &FileSlot)> = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, f.as_ref()?)))
            .collect();
        order.sort_by(|(_, a), (_, b)| {
            (a.delivered, &a.carrier.log.key).cmp(&(b.delivered, &b.carrier.log.key))
        });
        let mut ranks = vec![u32::MAX; self.files.len()];
        for (rank, (slot, _)) in order.into_iter().enumerate() {
            if let Some(r) = ranks.get_mut(slot) {
                *r = slot_u32(rank);
            }
        }
        self.ranks = ranks;
        let merged = sort
            .finish()
            .and_then(|sorted| sorted.in_background(MERGED_BATCH))
            .map_err(ExportError::Sort)?;
        Ok(State::Merging {
            merged,
            _temp: temp,
            batch: Batch::default(),
            at: 0,
            group: Vec::new(),
            group_key: None,
        })
    }

    /// Sorted order: the group's records, in their files' order, copies merged, made ready.
    fn close_group(&mut self, group: &mut Vec<RecordCopy>) {
        // Most records are delivered once: nothing to order or merge.
        if group.len() == 1 {
            if let Some(RecordCopy { text, carrier, .. }) = group.pop() {
                self.ready.push_back(ExportedRecord {
                    text,
                    provenance: Provenance::new(carrier),
                });
            }
            return;
        }
        // By file, then place in the file: the order the sort gave equal keys in depends on
        // which thread spilled first.
        group.sort_by_key(|c| c.order);
        let first = self.ready.len();
        // Each text's place among the group's records, by a hash keyed afresh (no text can be
        // made to collide): found by the red team, a file of 40,000 records with one eventID and
        // as many contents took 18 s when each was compared with all before it.
        let hasher = RandomState::new();
        let mut placed: HashMap<u64, Vec<usize>> = HashMap::new();
        for RecordCopy { text, carrier, .. } in group.drain(..) {
            let hash = hasher.hash_one(text.as_str());
            let same = placed.get(&hash).and_then(|at| {
                at.iter()
                    .copied()
                    .find(|&i| self.ready.get(i).is_some_and(|r| r.text == text))
            });
            if let Some(same) = same.and_then(|i| self.ready.get_mut(i)) {
                same.provenance.merge(Provenance::new(carrier));
                self.stats.duplicates += 1;
            } else {
                placed.entry(hash).or_default().push(self.ready.len());
                if self.ready.len() > first {
                    self.stats.conflicts += 1;
                }
                self.ready.push_back(ExportedRecord {
                    text,
                    provenance: Provenance::new(carrier),
                });
            }
        }
    }

    /// Sorted order: takes merged entries until a record is ready (or none is left).
    fn merge_some(&mut self) -> Result<bool, ExportError> {
        loop {
            let State::Merging {
                merged,
                batch,
                at,
                group,
                group_key,
                ..
            } = &mut self.state
            else {
                return Ok(false);
            };
            let Some((time, id, payload)) = batch.get(*at) else {
                match merged.next_batch(std::mem::take(batch)) {
                    Some(next) => {
                        *batch = next.map_err(ExportError::Sort)?;
                        *at = 0;
                        continue;
                    }
                    None => {
                        let mut group = std::mem::take(group);
                        self.close_group(&mut group);
                        return Ok(false);
                    }
                }
            };
            *at += 1;
            let (text, origin) = unpack(payload)?;
            let text = text.to_owned();
            let same = group_key
                .as_ref()
                .is_some_and(|(t, k)| *t == time && k.as_slice() == id);
            let closes = !origin.has_id || !same;
            if closes {
                match (origin.has_id, group_key.as_mut()) {
                    (false, _) => *group_key = None,
                    (true, Some((t, k))) => {
                        *t = time;
                        k.clear();
                        k.extend_from_slice(id);
                    }
                    (true, None) => *group_key = Some((time, id.to_vec())),
                }
            }
            // Taken out while the group is closed, and put back: its room is reused.
            let mut group = std::mem::take(group);
            if closes {
                self.close_group(&mut group);
            }
            let slot = origin.slot as usize;
            let file = self.files.get(slot).ok_or(ExportError::DamagedRun)?;
            // A file taken while the run hashed that the report did not want: its records go.
            if let Some(f) = file {
                let rank = self.ranks.get(slot).copied().unwrap_or(u32::MAX);
                group.push(RecordCopy {
                    order: (rank, origin.place),
                    text,
                    carrier: Arc::clone(&f.carrier),
                });
            }
            if let State::Merging { group: g, .. } = &mut self.state {
                *g = group;
            }
            if closes && !self.ready.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Unsorted order: reads the next batch through the dedupe window.
    fn stream_some(&mut self) -> bool {
        let Some(files) = self.read_batch() else {
            if let State::Streaming(dedupe) = &mut self.state {
                while let Some((text, (), provenance)) = dedupe.pop_any() {
                    self.ready.push_back(ExportedRecord { text, provenance });
                }
                let stats = dedupe.stats();
                self.stats.duplicates = stats.duplicates_removed;
                self.stats.conflicts = stats.conflicts;
                self.stats.released_early = stats.released_early;
                self.stats.outside_window = stats.outside_window;
            }
            return false;
        };
        for (slot, entries) in files {
            let Some(Some(file)) = self.files.get(slot) else {
                continue;
            };
            let State::Streaming(dedupe) = &mut self.state else {
                return false;
            };
            // Neither fails: the batch was made here, of record texts and event IDs.
            for (time, id, payload) in entries.entries() {
                let (Ok((text, Origin { has_id, .. })), Ok(id)) =
                    (unpack(payload), std::str::from_utf8(id))
                else {
                    continue;
                };
                dedupe.push(
                    text,
                    has_id.then_some(id),
                    time,
                    file.delivered,
                    (),
                    Provenance::new(Arc::clone(&file.carrier)),
                );
                while let Some((text, (), provenance)) = dedupe.pop_ready() {
                    self.ready.push_back(ExportedRecord { text, provenance });
                }
            }
        }
        // The records waiting hold their files' carriers: a slot per file read would be memory
        // that grows with the range.
        self.files.clear();
        true
    }

    fn advance(&mut self) -> Result<(), ExportError> {
        while self.ready.is_empty() {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Filling { sort } => self.state = self.fill(sort)?,
                merging @ State::Merging { .. } => {
                    self.state = merging;
                    if !self.merge_some()? {
                        self.state = State::Done;
                    }
                }
                streaming @ State::Streaming(_) => {
                    self.state = streaming;
                    if !self.stream_some() {
                        self.state = State::Done;
                    }
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

impl Iterator for VerifiedRecords<'_> {
    type Item = Result<ExportedRecord, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.advance() {
            self.state = State::Done;
            self.ready.clear();
            return Some(Err(e));
        }
        let record = self.ready.pop_front()?;
        self.stats.written += 1;
        Some(Ok(record))
    }
}

/// One copy of a record in a group of equal (eventTime, eventID): its file's rank and its
/// place in the file, its text and its file.
struct RecordCopy {
    order: (u32, u32),
    text: String,
    carrier: Arc<Carrier>,
}

/// Where a sorted record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    /// Whether it has an eventID.
    has_id: bool,
    /// Its file's slot.
    slot: u32,
    /// Its place among its file's records.
    place: u32,
}

/// The bytes after a record's text in its sort payload.
const TRAILER: usize = 9;

/// Bytes of merged entries handed over at once by the merging thread.
const MERGED_BATCH: usize = 256 << 10;

/// What follows a record's text in its sort payload: its [`Origin`]. The text comes first so
/// that [`unpack`] gives it back as a slice of the payload.
fn trailer(origin: Origin) -> [u8; TRAILER] {
    let [s0, s1, s2, s3] = origin.slot.to_le_bytes();
    let [p0, p1, p2, p3] = origin.place.to_le_bytes();
    [u8::from(origin.has_id), s0, s1, s2, s3, p0, p1, p2, p3]
}

/// The length of the record's text in a sort payload, and its [`Origin`].
fn origin(payload: &[u8]) -> Result<(usize, Origin), ExportError> {
    let at = payload
        .len()
        .checked_sub(TRAILER)
        .ok_or(ExportError::DamagedRun)?;
    let Some(&[flag, s0, s1, s2, s3, p0, p1, p2, p3]) = payload.get(at..) else {
        return Err(ExportError::DamagedRun);
    };
    let origin = Origin {
        has_id: flag == 1,
        slot: u32::from_le_bytes([s0, s1, s2, s3]),
        place: u32::from_le_bytes([p0, p1, p2, p3]),
    };
    Ok((at, origin))
}

/// A record's text and [`Origin`] from its sort payload.
fn unpack(payload: &[u8]) -> Result<(&str, Origin), ExportError> {
    let (at, origin) = origin(payload)?;
    let text = payload
        .get(..at)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(ExportError::DamagedRun)?;
    Ok((text, origin))
}

/// A new, empty folder for the sort's runs, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(base: PathBuf) -> io::Result<Self> {
        let nanos = Timestamp::now().as_nanosecond();
        for n in 0..100u32 {
            let path = base.join(format!(
                "trailproof-events-{}-{nanos}-{n}",
                std::process::id()
            ));
            // Only its owner may list it or put files in it (see `sort::Run`).
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("cannot create a temporary folder"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sorts_folder_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let t = TempDir::new(base.path().to_owned()).unwrap();
        let mode = std::fs::metadata(&t.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn sort_payloads_round_trip() {
        let origin = Origin {
            has_id: true,
            slot: 70_000,
            place: 3,
        };
        let p = [br#"{"a":1}"#.as_slice(), &trailer(origin)].concat();
        assert_eq!(unpack(&p).unwrap(), (r#"{"a":1}"#, origin));
        assert!(unpack(&[1, 0]).is_err());
        assert!(unpack(&[0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
