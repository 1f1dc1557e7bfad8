//! Progress of a run, told to whoever wants to show it.
//!
//! The library draws nothing: the engine and the sources report each phase of a run to an
//! [`Observer`], whose methods all do nothing by default. A command-line tool draws progress
//! bars from it; an embedder may log, meter, or ignore it ([`NoObserver`]). Nothing a run
//! decides depends on its observer.

use super::{InflatedLog, StoredObject};
use crate::core::evidence::ObjectRecord;
use crate::core::gz::GzOutcome;

/// Anything read from a source knows how many stored bytes it took.
pub trait Stored {
    /// The object's size as stored (compressed, for a gzip'd file).
    fn stored_bytes(&self) -> u64;
}

impl Stored for GzOutcome {
    fn stored_bytes(&self) -> u64 {
        self.stored_len
    }
}

impl Stored for InflatedLog {
    fn stored_bytes(&self) -> u64 {
        self.inflated.outcome().stored_len
    }
}

impl Stored for StoredObject {
    fn stored_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl Stored for ObjectRecord {
    fn stored_bytes(&self) -> u64 {
        self.size.unwrap_or(0)
    }
}

/// A stretch of a run that handles many objects of one kind, worth showing as it goes.
///
/// A phase may run more than once in a run (the digests of the selected trails are read, then
/// those of trails the filters leave out); each time is started and finished on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Digest files read (and parsed by the engine). The total is known.
    DigestsRead,
    /// Log files named by verified digests, inflated and hashed. The total is known. Digests
    /// read again for their set-aside log lists during this phase are not reported: the total
    /// counts log files.
    LogFilesHashed,
    /// Objects of an S3 bucket listed while searching it for `AWSLogs/` folders, before the
    /// first listing of a run. The total is not known; objects are counted a page at a time and
    /// not read, so they take no stored bytes.
    AwsLogsFoldersSearched,
    /// Log files copied from S3 into an evidence directory by acquisition. The total is known.
    ObjectsDownloaded,
}

impl std::fmt::Display for Phase {
    /// What the phase counts, as the command line words it ("digests read").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::DigestsRead => "digests read",
            Phase::LogFilesHashed => "log files hashed",
            Phase::AwsLogsFoldersSearched => "objects searched for AWSLogs/ folders",
            Phase::ObjectsDownloaded => "objects downloaded",
        })
    }
}

/// Hears how a run progresses. Every method does nothing unless overridden.
///
/// Calls come from any thread, many at once while objects are read in parallel, so a method
/// must be quick and must not block: it runs on the workers' time. A phase's calls come between
/// its `phase_started` and its `phase_finished`, and the phases of a run follow one another
/// without overlapping.
pub trait Observer: Send + Sync {
    /// `phase` begins; `total` is how many objects it will finish, when known beforehand.
    fn phase_started(&self, phase: Phase, total: Option<u64>) {
        let _ = (phase, total);
    }

    /// `objects` more objects of `phase` are done (read, hashed, or downloaded, or failed at
    /// it), having taken `stored_bytes` stored bytes between them. One object at a time in
    /// phases that read; a page at a time, with no bytes, in one that only counts.
    fn objects_done(&self, phase: Phase, objects: u64, stored_bytes: u64) {
        let _ = (phase, objects, stored_bytes);
    }

    /// `phase` is over, whether or not it finished every object (a run that fails stops early).
    fn phase_finished(&self, phase: Phase) {
        let _ = phase;
    }
}

/// An observer that hears nothing: a run reports to nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// One phase of a run under way, as a source sees it: the engine starts it and hands it to the
/// source, which reports each object it finishes. Dropping it finishes the phase, so a phase is
/// finished however the work ends.
pub struct Progress<'a> {
    observer: &'a dyn Observer,
    phase: Phase,
}

impl<'a> Progress<'a> {
    /// Starts `phase` on `observer`; `total` as for [`Observer::phase_started`].
    pub fn start(observer: &'a dyn Observer, phase: Phase, total: Option<u64>) -> Self {
        observer.phase_started(phase, total);
        Progress { observer, phase }
    }

    /// Work that belongs to a phase already shown, reported to nobody (digests read again for
    /// their log lists while log files are hashed).
    pub fn hidden() -> Progress<'static> {
        Progress {
            observer: &NoObserver,
            // Told to nobody: any phase will do.
            phase: Phase::DigestsRead,
        }
    }

    /// One object finished, having taken `stored_bytes` stored bytes.
    pub fn done(&self, stored_bytes: u64) {
        self.observer.objects_done(self.phase, 1, stored_bytes);
    }

    /// `n` more objects counted without being read (a listing's page).
    pub fn add(&self, n: usize) {
        self.observer.objects_done(self.phase, n as u64, 0);
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.observer.phase_finished(self.phase);
    }
}
