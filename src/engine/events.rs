//! The records of the log files a run proved, with their provenance: what `trailproof events`
//! writes, as an iterator an embedder can use without the CLI.
//!
//! ```no_run
//! use trailproof::engine::events::{verified_records, ExportOptions};
//! use trailproof::{verify, LocalEvidence, PinnedKeys, Settings};
//!
//! let evidence = LocalEvidence::open("bucket-copy".as_ref())?;
//! let keys = PinnedKeys::from_file("public-keys.json".as_ref())?;
//! let report = verify(&evidence, &keys, &Settings::default())?;
//! let mut records = verified_records(&evidence, &report, ExportOptions::default());
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
//! The run's report says which log files are valid and the inflated SHA-256 their verified
//! digest lists ([`candidates`]). Each such file is read once more through the same source and
//! its records are taken only from a [`ProvenLog`]: bytes whose own SHA-256 equals that hash.
//! A file that changed since it was verified, that can no longer be read, or whose records
//! are malformed is left out and counted ([`ExportStats::left_out`]), as is every log file the
//! run did not prove. Records of INVALID files are never given, whatever the options.
//!
//! # Order and duplicates
//!
//! CloudTrail delivers at least once: one event may come in two log files. One record per
//! `eventID` and content is given, its provenance listing every file that carried it; a record
//! whose `eventID` another record with other content has is given as well, beside it (counted
//! in [`ExportStats::conflicts`]: it is evidence too).
//!
//! - [`Order::Sorted`] (the default): by (eventTime, eventID). Records are held in memory up to
//!   a budget, then spilled in sorted runs to temporary files and merged
//!   ([`super::sort`]); copies of a record come out next to each other and are merged exactly.
//! - [`Order::Unsorted`]: as their files are read (oldest delivery first). A record waits at
//!   most a window of delivery time (and a number of records) for a second delivery of it,
//!   because CloudTrail's duplicates arrive within hours of each other; see
//!   [`crate::core::records::Dedupe`].
//!
//! # Memory and speed
//!
//! Files are read in batches of [`ExportOptions::batch`]: the source reads a batch in parallel
//! (threads on a disk, requests in flight on S3), then the batch's files are checked and
//! parsed in parallel on rayon's pool, and their records pushed in file order. A batch's
//! inflated files are in memory at once; the sort's budget or the dedupe window bounds the
//! rest. One [`Carrier`] per file read is kept until the end.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use super::sort::{Entry, ExternalSort, Sorted};
use crate::core::records::{
    candidates, write_line, Candidate, Carrier, Dedupe, EventFilter, LeftOut, LeftOutReason,
    LineError, ProvenLog, Provenance, RecordLimits,
};
use crate::report::Report;
use crate::source::progress::Progress;
use crate::source::{ObjectSource, ReadError};

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
    /// Log files read at once (each held whole in memory while its records are parsed).
    pub batch: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            filter: EventFilter::default(),
            include_unverified: false,
            order: Order::sorted(),
            batch: 64,
        }
    }
}

/// The order records are given in.
#[derive(Debug, Clone)]
pub enum Order {
    /// By (eventTime, eventID), records without an eventTime first.
    Sorted {
        /// Bytes of records held before a sorted run is spilled to a file.
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

/// The records of the log files `report` proved, read again from `source` (the source the
/// report was made from). See the [module documentation](self).
pub fn verified_records<'s>(
    source: &'s dyn ObjectSource,
    report: &Report,
    options: ExportOptions,
) -> VerifiedRecords<'s> {
    let mut left_out = LeftOut::default();
    let candidates = candidates(
        report.all_findings(),
        &report.bucket,
        options.include_unverified,
        &mut left_out,
    );
    let state = match &options.order {
        Order::Sorted { memory, temp_dir } => State::Filling {
            memory: *memory,
            temp_dir: temp_dir.clone(),
        },
        Order::Unsorted {
            window,
            max_pending,
        } => State::Streaming(Box::new(Dedupe::new(*window, *max_pending))),
    };
    VerifiedRecords {
        source,
        bucket: report.bucket.clone(),
        carriers: Vec::with_capacity(candidates.len()),
        candidates,
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

/// The iterator [`verified_records`] returns.
pub struct VerifiedRecords<'s> {
    source: &'s dyn ObjectSource,
    bucket: String,
    candidates: Vec<Candidate>,
    /// The carrier of each file read, by its index in `candidates` (`None`: left out).
    carriers: Vec<Option<Arc<Carrier>>>,
    /// The next candidate to read.
    next: usize,
    filter: EventFilter,
    batch: usize,
    state: State,
    /// Records ready to be given, in order.
    ready: VecDeque<ExportedRecord>,
    stats: ExportStats,
}

enum State {
    /// Sorted order: no file read yet.
    Filling {
        memory: usize,
        temp_dir: PathBuf,
    },
    /// Sorted order: every file read; the merge of the sorted runs, and the records of the
    /// (eventTime, eventID) key being gathered.
    Merging {
        sorted: Sorted,
        _temp: TempDir,
        group: Vec<ExportedRecord>,
        group_key: Option<(Option<Timestamp>, String)>,
    },
    /// As read.
    Streaming(Box<Dedupe<String>>),
    Done,
}

impl VerifiedRecords<'_> {
    /// What the export did so far; all of it once the iterator has ended.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Reads the next batch of files: each one's records (filtered) in file order, as sort
    /// entries, or `None` when every file has been read.
    fn read_batch(&mut self) -> Option<Vec<(usize, Vec<Entry>)>> {
        let start = self.next;
        let end = (start + self.batch).min(self.candidates.len());
        if start == end {
            return None;
        }
        self.next = end;
        let batch = self.candidates.get(start..end).unwrap_or_default();
        let locations: Vec<_> = batch.iter().map(|c| &c.log).collect();
        let read = self
            .source
            .inflate_logs(&self.bucket, &locations, &Progress::hidden());
        let filter = &self.filter;
        let checked: Vec<Result<(Carrier, Vec<Entry>), LeftOutReason>> = batch
            .par_iter()
            .zip(read)
            .zip(start..end)
            .map(|((candidate, read), index)| {
                // Indexes fit: `fill` refuses more files than u32 counts.
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let log = read.map_err(|_: ReadError| LeftOutReason::UnreadableAtExport)?;
                let proven = ProvenLog::check(candidate, log.inflated, log.version_id)?;
                let records = proven
                    .records(RecordLimits::LOG)
                    .map_err(|_| LeftOutReason::RecordsMalformed)?;
                let parsed = records
                    .iter()
                    .filter(|r| filter.matches(r))
                    .map(|r| Entry {
                        time: r.event_time,
                        payload: payload(r.raw(), r.event_id.is_some(), index),
                        event_id: r.event_id.as_deref().unwrap_or_default().to_owned(),
                    })
                    .collect();
                Ok((proven.carrier().clone(), parsed))
            })
            .collect();
        let mut out = Vec::with_capacity(checked.len());
        for (i, result) in (start..end).zip(checked) {
            match result {
                Ok((carrier, parsed)) => {
                    self.carriers.push(Some(Arc::new(carrier)));
                    out.push((i, parsed));
                }
                Err(reason) => {
                    self.carriers.push(None);
                    self.stats.left_out.add(reason);
                }
            }
        }
        Some(out)
    }

    fn carrier(&self, index: usize) -> Result<Arc<Carrier>, ExportError> {
        self.carriers
            .get(index)
            .cloned()
            .flatten()
            .ok_or(ExportError::DamagedRun)
    }

    /// Sorted order: reads every file into the sort.
    fn fill(&mut self, memory: usize, temp_dir: PathBuf) -> Result<State, ExportError> {
        if u32::try_from(self.candidates.len()).is_err() {
            return Err(ExportError::TooManyFiles);
        }
        let temp = TempDir::new(temp_dir).map_err(ExportError::Sort)?;
        let mut sort = ExternalSort::new(&temp.0, memory);
        while let Some(files) = self.read_batch() {
            for entry in files.into_iter().flat_map(|(_, entries)| entries) {
                sort.push(entry).map_err(ExportError::Sort)?;
            }
        }
        Ok(State::Merging {
            sorted: sort.finish().map_err(ExportError::Sort)?,
            _temp: temp,
            group: Vec::new(),
            group_key: None,
        })
    }

    /// Sorted order: takes merged entries until a record is ready (or none is left).
    fn merge_some(&mut self) -> Result<bool, ExportError> {
        loop {
            let State::Merging {
                sorted,
                group,
                group_key,
                ..
            } = &mut self.state
            else {
                return Ok(false);
            };
            let Some(entry) = sorted.next() else {
                self.ready.extend(group.drain(..));
                return Ok(false);
            };
            let entry = entry.map_err(ExportError::Sort)?;
            let (text, has_id, index) = unpack(entry.payload)?;
            let key = (entry.time, entry.event_id);
            let closes = !has_id || group_key.as_ref() != Some(&key);
            if closes {
                self.ready.extend(group.drain(..));
                *group_key = has_id.then_some(key);
            }
            let carrier = self.carrier(index)?;
            let State::Merging { group, .. } = &mut self.state else {
                return Ok(false);
            };
            if let Some(same) = group.iter_mut().find(|r| r.text == text) {
                same.provenance.merge(Provenance::new(carrier));
                self.stats.duplicates += 1;
            } else {
                if !group.is_empty() {
                    self.stats.conflicts += 1;
                }
                group.push(ExportedRecord {
                    text,
                    provenance: Provenance::new(carrier),
                });
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
                while let Some((text, provenance)) = dedupe.pop_any() {
                    self.ready.push_back(ExportedRecord { text, provenance });
                }
                let stats = dedupe.stats();
                self.stats.duplicates = stats.duplicates_removed;
                self.stats.conflicts = stats.conflicts;
            }
            return false;
        };
        for (index, records) in files {
            let (Some(Some(carrier)), Some(candidate)) =
                (self.carriers.get(index), self.candidates.get(index))
            else {
                continue;
            };
            let State::Streaming(dedupe) = &mut self.state else {
                return false;
            };
            for entry in records {
                let Ok((text, has_id, _)) = unpack(entry.payload) else {
                    continue;
                };
                dedupe.push(
                    &text,
                    has_id.then_some(entry.event_id.as_str()),
                    candidate.delivered,
                    text.clone(),
                    Provenance::new(Arc::clone(carrier)),
                );
                while let Some((text, provenance)) = dedupe.pop_ready() {
                    self.ready.push_back(ExportedRecord { text, provenance });
                }
            }
        }
        true
    }

    fn advance(&mut self) -> Result<(), ExportError> {
        while self.ready.is_empty() {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Filling { memory, temp_dir } => self.state = self.fill(memory, temp_dir)?,
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

/// The bytes after a record's text in its sort payload.
const TRAILER: usize = 5;

/// A sort entry's payload: the record's text, then whether it has an eventID and the index of
/// its file. The text comes first so that [`unpack`] gives it back without copying.
fn payload(text: &str, has_id: bool, file: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(text.len() + TRAILER);
    p.extend_from_slice(text.as_bytes());
    p.push(u8::from(has_id));
    p.extend_from_slice(&file.to_le_bytes());
    p
}

fn unpack(mut payload: Vec<u8>) -> Result<(String, bool, usize), ExportError> {
    let at = payload
        .len()
        .checked_sub(TRAILER)
        .ok_or(ExportError::DamagedRun)?;
    let trailer = payload.split_off(at);
    let [flag, index @ ..] = trailer.as_slice() else {
        return Err(ExportError::DamagedRun);
    };
    let index: [u8; 4] = index.try_into().map_err(|_| ExportError::DamagedRun)?;
    let text = String::from_utf8(payload).map_err(|_| ExportError::DamagedRun)?;
    Ok((text, *flag == 1, u32::from_le_bytes(index) as usize))
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
            match std::fs::create_dir(&path) {
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
    fn sort_payloads_round_trip() {
        let p = payload(r#"{"a":1}"#, true, 70_000);
        assert_eq!(unpack(p).unwrap(), (r#"{"a":1}"#.to_owned(), true, 70_000));
        assert!(unpack(vec![1, 0]).is_err());
        assert!(unpack(vec![0xff, 1, 0, 0, 0, 0]).is_err());
    }
}
