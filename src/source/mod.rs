//! Adapters: the only code that touches the disk or the network.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod cloudtrail;
pub mod local;
#[cfg(feature = "aws")]
pub mod pages;
pub mod progress;
#[cfg(feature = "aws")]
pub mod s3;

use std::collections::BTreeSet;
use std::path::PathBuf;

use jiff::Timestamp;

use crate::core::evidence::{DigestFacts, ObjectRecord};
use crate::core::gz::GzOutcome;
use crate::core::layout::ObjectType;
use crate::core::sign::KeySet;
use crate::core::types::S3Location;
use progress::{Observer, Progress};

/// Why a source could not be used at all (as opposed to one object failing, which is a finding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot open evidence directory {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Evidence {
        path: PathBuf,
        source: crate::core::evidence::EvidenceError,
    },
    /// The evidence-metadata file could not be read or parsed (the detail names it).
    #[error("{detail}")]
    Metadata { detail: String },
    /// The evidence-metadata file leads out of the evidence directory: it is not read.
    #[error("{path} leads out of the evidence directory ({detail}): it was not read")]
    MetadataEscape { path: PathBuf, detail: String },
    /// The evidence-metadata file is a FIFO, a device, ...: it is not read.
    #[error("{path} is not a regular file but {what}: it was not read")]
    MetadataNotAFile { path: PathBuf, what: &'static str },
    /// An AWS call that the run cannot do without (a listing, the public keys).
    #[error("could not {what}: {detail}")]
    Aws { what: String, detail: String },
    /// A paginated answer (a listing, the public keys) that did not end as a real one does.
    #[cfg(feature = "aws")]
    #[error("could not {what}: {problem}")]
    Pages {
        what: String,
        problem: pages::PageError,
    },
    /// Where acquisition must write, the evidence directory holds a symbolic link or something
    /// other than a plain file or folder: writing there could land outside the directory.
    #[error("{path} is a symbolic link or not a plain file or folder; nothing is written through it (remove it and run again)")]
    NotPlain { path: PathBuf },
    /// A key that is not a plain relative path, where acquisition would write it.
    #[error("the key {key:?} is not a plain relative path: nothing is written for it")]
    UnsafeKey { key: String },
}

/// Why one object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    /// The key would resolve outside the evidence root (`..`, absolute, NUL, or a symlink out).
    Escape(String),
    /// The object is in a bucket this source does not hold.
    OtherBucket,
    /// What sits at the key is not a regular file (a FIFO, a device, a socket, a folder): it is
    /// never read, since a FIFO or a device may block or never end. S3 holds nothing of the kind,
    /// so the copy was altered.
    NotAFile(&'static str),
    /// Access denied, or an error that persisted through retries.
    Io(String),
}

/// Something a listing found under the CloudTrail folders that no S3 key can name: reported,
/// never read. Only a copy on disk has such things.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stray {
    /// Its path as a key, bytes that are not UTF-8 replaced by U+FFFD; a folder ends in `/`.
    pub key: String,
    pub problem: StrayProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StrayProblem {
    /// Its name is not UTF-8, which no S3 key can be; `raw` shows its bytes.
    NotUtf8 { raw: String },
    /// A link to a folder, not followed: what it holds was not listed. `out` when it leads out
    /// of the evidence directory.
    FolderLink { target: String, out: bool },
}

/// A stored digest as read, with its facts.
#[derive(Debug, Clone, Default)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    /// Its signature and backfill time, from S3's metadata or the evidence record.
    pub facts: DigestFacts,
    /// What S3 said about it, when read from S3 (acquisition records it); empty otherwise.
    pub record: ObjectRecord,
}

/// What the engine wants listed.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Digests or log files.
    pub objects: ObjectType,
    /// Digest key times of interest; `None` lists everything.
    pub range: Option<(Timestamp, Timestamp)>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// Where the objects come from. Calls are batched so that each source can run them in
/// parallel its own way (threads for a disk, bounded async requests for S3); results come
/// back in input order.
pub trait ObjectSource: Sync {
    /// The directory or `s3://` URI, for the report.
    fn describe(&self) -> String;
    /// The bucket, when the source knows it (a bucket name or an evidence-metadata file).
    fn bucket(&self) -> Option<String>;
    /// Hands `each` every key of the requested type under the requested accounts, Regions and
    /// times, in no set order and from any thread. It may hand more (the engine parses every
    /// key), but it keeps nothing: a bucket may hold millions of log files. Work of its own
    /// before listing (searching a bucket for its `AWSLogs/` folders) is reported to
    /// `observer` as a phase.
    fn list(
        &self,
        request: &ListRequest,
        each: &(dyn Fn(String) + Sync),
        observer: &dyn Observer,
    ) -> Result<(), SourceError>;
    /// Reads whole digest files (stored bytes) with their S3 facts.
    /// A run reads in batches of one phase; each object read is reported to `progress`.
    fn read_digests(
        &self,
        keys: &[String],
        progress: &Progress<'_>,
    ) -> Vec<Result<StoredObject, ReadError>>;
    /// Inflates and hashes log files as they stream in. `bucket` is the bucket the run is
    /// about; a source that holds only that bucket answers `OtherBucket` for the rest.
    /// A run hashes in batches of one phase; each log file is reported to `progress`.
    fn hash_logs(
        &self,
        bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<GzOutcome, ReadError>>;
    /// What the listings so far found that no key can name.
    fn strays(&self) -> Vec<Stray> {
        Vec::new()
    }
    /// Digest keys the source's own records say it holds, whether or not a listing finds them
    /// (a local copy's evidence-metadata file): one that is gone was deleted since.
    fn recorded_digests(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this source could not see, in words.
    fn notes(&self) -> Vec<String>;
}

/// What keys a run needs: the source Regions of its chains, and the time windows the AWS CLI
/// asks for (the range plus two hours; each backfill digest's generation time plus or minus an
/// hour).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyNeeds {
    pub regions: BTreeSet<String>,
    pub windows: Vec<(Timestamp, Timestamp)>,
}

/// Where public keys come from: a pinned file, or CloudTrail.
pub trait KeyProvider {
    fn keys(&self, needs: &KeyNeeds) -> Result<KeySet, SourceError>;
    /// Said in the report next to each key.
    fn origin(&self) -> String;
}

/// Keys read from a file; the same whatever the run needs.
pub struct PinnedKeys {
    pub keys: KeySet,
    pub path: PathBuf,
}

impl KeyProvider for PinnedKeys {
    fn keys(&self, _needs: &KeyNeeds) -> Result<KeySet, SourceError> {
        Ok(self.keys.clone())
    }

    fn origin(&self) -> String {
        format!("pinned file {}", self.path.display())
    }
}
