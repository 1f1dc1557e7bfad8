//! Plans the chains, has the source read objects, walks the chains, and assembles the report.
//!
//! The phases run in order and data flows one way: list the digests, read them (their log lists
//! set aside), walk every chain (in parallel: chains are independent), hash the log files the
//! digests name in batches (each batch's digests read again for their lists, or, from S3,
//! their bytes kept from the first read; from S3 the next batch starts while one finishes),
//! then list the log folders for files nobody named (from S3 that listing is started as soon as
//! the plan is made, and runs while the rest does: `ahead`). Listings come in no set order and are sorted; everything
//! else keeps its input order, so the report is the same whatever the thread count. Memory
//! grows with the digests, not with the log files. Nothing prints: findings go to a
//! [`FindingSink`] as they are decided, progress to an [`Observer`].
//!
//! One module per phase, in order: `plan` (the listings: what a run will look at), `digests` (reading and
//! parsing, the bucket, the keys needed), the walk ([`crate::core::chain`]), `logs` (hashing
//! in batches, with the digests read again for their lists), `layout` and `count` (the chain
//! reports, their ledgers, valid log files counted), `unvouched` and `holes` (files no digest
//! of the run names), and `assemble` ([`verify`], the report).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::source::SourceError;

#[cfg(feature = "aws")]
pub mod acquire;
mod ahead;
mod assemble;
mod count;
pub mod crosscheck;
mod digests;
mod ends;
pub mod events;
pub mod fanout;
mod holes;
pub mod lake;
mod layout;
mod logs;
mod plan;
pub mod sort;
mod texts;
mod unvouched;
mod versions;
pub mod watch;

pub use crate::source::progress::{NoObserver, Observer, Phase};

/// Hears, while a run hashes log files, of each one whose bytes are exactly what a verified
/// digest lists, with those bytes: `trailproof events` takes its records then, instead of
/// reading the file again ([`events::verify_and_export`]).
pub(crate) trait LogTap: Sync {
    /// `inflated` are the bytes of `log` as read; `expected` the SHA-256 the verified digest at
    /// `digest` lists for it, which theirs is; `version_id` the S3 version they are from, when known.
    fn proven(
        &self,
        log: &crate::core::types::S3Location,
        digest: &crate::core::types::S3Location,
        expected: crate::core::types::Sha256,
        inflated: crate::core::gz::Inflated,
        version_id: Option<String>,
    );

    /// With valid log files counted rather than kept ([`Settings::omit_valid_logs`]): a valid
    /// listing the report will count and not keep. Called after the file's [`Self::proven`],
    /// if that was called; a file may have more than one listing.
    fn counted_valid(&self, finding: &crate::core::finding::Finding);
}
pub use assemble::{
    empty_report, verify, verify_resumable, verify_streaming, ChainDone, FindingSink, FinishedChain,
};
pub use ends::{ChainEnds, DigestTip, FirstLink};

/// What to verify. `Settings::default()` verifies everything the source holds, over the range
/// the evidence spans. Every filter value must select something the source lists, or the run
/// is an error (unless [`Settings::allow_unmatched_filters`]).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The start of the range; without it, the oldest time in the evidence.
    pub start: Option<Timestamp>,
    /// The end of the range; without it, the newest time in the evidence.
    pub end: Option<Timestamp>,
    /// Only these accounts (all when empty).
    pub accounts: Vec<String>,
    /// Only these Regions (all when empty).
    pub regions: Vec<String>,
    /// Only chains of these trails (all when empty). Their log files share folders with other
    /// trails', which are read only to tell the files apart.
    pub trails: Vec<String>,
    /// Only chains of trails whose home Region is this (a trail ARN names it).
    pub home_region: Option<String>,
    /// The bucket the evidence is a copy of, when the source cannot tell; it must agree with
    /// the source when the source can.
    pub bucket: Option<String>,
    /// Per chain, verify only its digests after this time (a checkpoint's last verified
    /// digest; the newest digest at or before it is read for the link, see
    /// [`ChainEnds::before`]). Log files no digest names are still held to [`Settings::start`].
    pub resume: BTreeMap<crate::core::layout::ChainId, Timestamp>,
    /// Per resumed chain, where the search for log files no digest names was left: a
    /// checkpoint written while a run went on moves a finished chain's last verified digest
    /// before the run searched its Region's folders (see [`crate::report::checkpoint`]). The
    /// chain's digests after this time, up to its [`Settings::resume`] time, are read again
    /// for the log files they name (signatures checked, log files not hashed again), and its
    /// Region's log files are searched from here.
    pub searched: BTreeMap<crate::core::layout::ChainId, Timestamp>,
    /// Signatures of chain heads, by digest key.
    pub head_signatures: BTreeMap<String, Vec<u8>>,
    /// Count valid log files per chain instead of keeping their findings, for outputs that
    /// print only problems: the report then holds no per-file record of what was valid, and a
    /// valid log file costs 8 bytes instead of its finding. The sink does not see them either.
    pub omit_valid_logs: bool,
    /// Accept filter values that select nothing, as `aws cloudtrail validate-logs` does ("No
    /// digests found"). Otherwise each such value is an error ([`EngineError::UnmatchedFilters`]):
    /// a typo would verify nothing and pass.
    ///
    /// This weakens a run: with it, a filter that selects nothing gives a report with nothing
    /// verified and exit code 0. Set it only to reproduce the AWS CLI; check
    /// [`crate::report::Report::totals`] when you do.
    pub allow_unmatched_filters: bool,
    /// One shard's share of the range ([`fanout`]); `None`: all of it.
    pub window: Option<Window>,
}

/// One shard's share of a run ([`fanout`]): the range stays the whole range (`start`, `end`),
/// so every verdict is decided as a run over all of it decides it; only what lies in or next to
/// `read` is listed and read, and only what `owned` holds is reported.
///
/// `owned` is `[from, to)`, cut at clock hours; an end equal to the range's end owns everything
/// beyond it too (the digests up to an hour after the end, the range's own edges). A digest is
/// owned by its key time, a log file no digest names by its delivery time, an hour of the
/// ledger by its own time. `read` holds `owned` and a margin on each side with at least three
/// digests of each chain (see [`fanout::plan_shards`]): every verdict on what `owned` holds
/// depends only on digests that near (a digest, its links, the digests that link to it, the
/// holes between neighbours), so the shards that share a boundary both read the digests
/// across it, and each reports its own side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// What the shard reports: `[from, to)`.
    pub owned: (Timestamp, Timestamp),
    /// What the shard lists and reads: digests with key times in it (and up to an hour after
    /// it), the nearest digest of each chain on either side, and the log folders of its days.
    pub read: (Timestamp, Timestamp),
}

impl Window {
    /// Whether `t` (a digest's key time, a log file's delivery time) is owned, in `range`:
    /// the first window owns all before it, the last all after it.
    pub fn owns(&self, range: (Timestamp, Timestamp), t: Timestamp) -> bool {
        (self.owned.0 <= range.0 || t >= self.owned.0)
            && (self.owned.1 >= range.1 || t < self.owned.1)
    }
}

/// A filter of a run ([`Settings::accounts`], [`Settings::regions`], [`Settings::trails`],
/// [`Settings::home_region`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Filter {
    /// An account id.
    Account,
    /// A source Region.
    Region,
    /// A trail name.
    Trail,
    /// A trail's home Region ([`Settings::home_region`]).
    HomeRegion,
}

/// What the filter selects, as a message says it: "account", "Region", "trail".
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Filter::Account => "account",
            Filter::Region => "Region",
            Filter::Trail => "trail",
            Filter::HomeRegion => "home Region",
        })
    }
}

/// A filter value that selects nothing the source lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnmatchedFilter {
    /// Which filter.
    pub filter: Filter,
    /// The value that matches nothing.
    pub value: String,
}

/// Why the engine could not do the job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The source could not be listed or read as a whole.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The source holds no CloudTrail digest or log file the filters select.
    #[error("no CloudTrail digest or log files in {source_name} match the filters (is this a copy of a CloudTrail bucket? objects are expected at AWSLogs/...)")]
    NothingFound {
        /// The source, as [`crate::source::ObjectSource::describe`] says it.
        source_name: String,
    },
    /// No bucket was given, the source does not know its own, and no digest lies where it says
    /// it was delivered, so none can name it.
    #[error("the bucket name cannot be told from the evidence: it has no evidence-metadata file, and no digest lies at the key it names for itself")]
    NoBucket,
    /// The bucket given ([`Settings::bucket`]) is not the source's.
    #[error("the given bucket {given} disagrees with the source, which is bucket {recorded}")]
    BucketConflict {
        /// The bucket given.
        given: String,
        /// The source's.
        recorded: String,
    },
    /// The range ends before it starts.
    #[error("the start time {start} is after the end time {end}")]
    BadRange {
        /// The start, ISO 8601.
        start: String,
        /// The end, ISO 8601.
        end: String,
    },
    /// A head signature ([`Settings::head_signatures`]) names a key that is no digest there.
    #[error("a head signature is given for {key}, which is not a digest in the evidence")]
    UnknownHead {
        /// The key.
        key: String,
    },
    /// Filter values that select nothing (unless [`Settings::allow_unmatched_filters`]).
    #[error("{}", unmatched_message(.source_name, .unmatched, .trails_found, &|u| format!("the {} {}", u.filter, u.value)))]
    UnmatchedFilters {
        /// The source, as [`crate::source::ObjectSource::describe`] says it.
        source_name: String,
        /// Each value that selects nothing.
        unmatched: Vec<UnmatchedFilter>,
        /// The trails that do have digests under the other filters, to spot a typo.
        trails_found: Vec<String>,
    },
}

/// The message of [`EngineError::UnmatchedFilters`], each value as `name` says it (the
/// library says "the trail X"; a command line may say its flag instead).
pub fn unmatched_message(
    source_name: &str,
    unmatched: &[UnmatchedFilter],
    trails_found: &[String],
    name: &dyn Fn(&UnmatchedFilter) -> String,
) -> String {
    let values: Vec<String> = unmatched.iter().map(name).collect();
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
