//! Adapters: the only code that touches the disk or the network.
#[cfg(feature = "aws")]
mod adaptive;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod cloudtrail;
pub mod cloudwatch;
pub mod lake;
pub mod local;
#[cfg(feature = "aws")]
pub mod pages;
pub mod progress;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sqs;
pub mod tsa;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::core::custody::{Custody, ListedVersion, Recovered};
use crate::core::evidence::{DigestFacts, ObjectRecord};
use crate::core::gz::GzOutcome;
use crate::core::keyfile::{parse_key_file, KeyFileError};
use crate::core::layout::ObjectType;
use crate::core::sign::KeySet;
use crate::core::types::S3Location;
use progress::{Observer, Progress};

/// Why a source could not be used at all (as opposed to one object failing, which is a finding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The evidence directory cannot be opened (missing, not a folder, not readable).
    #[error("cannot open evidence directory {path}: {source}")]
    Root {
        /// The directory as given.
        path: PathBuf,
        /// Why (its [`std::io::ErrorKind`] tells a missing folder from a permission problem).
        source: std::io::Error,
    },
    /// A file or folder of the evidence cannot be read or written.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The evidence-metadata file is not one.
    #[error("{path}: {source}")]
    Evidence {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::core::evidence::EvidenceError,
    },
    /// The evidence-metadata file could not be read.
    #[error("cannot read {path}: {source}")]
    MetadataUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ReadFailure,
    },
    /// Reading the evidence-metadata file stopped half-way (its reader panicked): it is not
    /// used, rather than used in part.
    #[error("{path} could not be read to its end")]
    MetadataIncomplete {
        /// The file.
        path: PathBuf,
    },
    /// The evidence-metadata file leads out of the evidence directory: it is not read.
    #[error("{path} leads out of the evidence directory ({detail}): it was not read")]
    MetadataEscape {
        /// The file.
        path: PathBuf,
        /// Where it leads.
        detail: String,
    },
    /// The evidence-metadata file is a FIFO, a device, ...: it is not read.
    #[error("{path} is not a regular file but {what}: it was not read")]
    MetadataNotAFile {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// The async runtime the AWS clients run on could not be started.
    #[error("cannot start the async runtime: {source}")]
    Runtime {
        /// Why (the system refused threads or file descriptors).
        source: std::io::Error,
    },
    /// An AWS call that the run cannot do without (a listing, the public keys, a trail).
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(Box<aws::AwsError>),
    /// A listing answered a key or folder that is not URL-encoded UTF-8, though it was asked
    /// for keys URL-encoded.
    #[cfg(feature = "aws")]
    #[error("{operation} ({target}) answered {text:?}, which is not a URL-encoded UTF-8 key")]
    Undecodable {
        /// The request.
        operation: aws::Operation,
        /// The bucket and prefix asked for.
        target: String,
        /// What came.
        text: String,
    },
    /// A paginated answer (a listing, the public keys) that did not end as a real one does.
    #[cfg(feature = "aws")]
    #[error("{operation} ({target}) gave an answer that cannot be complete: {problem}")]
    Pages {
        /// The call.
        operation: aws::Operation,
        /// What it was about (`s3://BUCKET/PREFIX`, a Region's keys).
        target: String,
        /// How its pages went wrong.
        problem: pages::PageError,
    },
    /// CloudTrail answered a public key without its value or its validity times.
    #[cfg(feature = "aws")]
    #[error("ListPublicKeys ({region}) answered a key without {missing}")]
    IncompleteKey {
        /// The Region asked.
        region: String,
        /// What the key lacks: `"a value"` or `"a validity time"`.
        missing: &'static str,
    },
    /// CloudWatch Logs answered a log event without something every log event has, or outside
    /// the time window asked for.
    #[cfg(feature = "aws")]
    #[error("FilterLogEvents ({group}) answered a log event without {missing}")]
    IncompleteLogEvent {
        /// The log group.
        group: String,
        /// What the event lacks.
        missing: &'static str,
    },
    /// CloudWatch Logs answered the same log event twice in one answer: asked again, it would
    /// go round in circles.
    #[cfg(feature = "aws")]
    #[error(
        "FilterLogEvents ({group}) answered the log event {id} twice: the answer would never end"
    )]
    RepeatedLogEvent {
        /// The log group.
        group: String,
        /// The log event's id.
        id: String,
    },
    /// The keys CloudTrail answered are not usable keys.
    #[cfg(feature = "aws")]
    #[error("the public keys CloudTrail answered are not usable: {source}")]
    UnusableKeys {
        /// What is wrong with them.
        source: KeyFileError,
    },
    /// DescribeTrails does not know the trail.
    #[cfg(feature = "aws")]
    #[error("DescribeTrails in {region} does not know the trail {arn}")]
    NoSuchTrail {
        /// The trail ARN asked for.
        arn: String,
        /// The Region asked.
        region: String,
    },
    /// The trail writes to no S3 bucket.
    #[cfg(feature = "aws")]
    #[error("the trail {arn} has no S3 bucket")]
    TrailWithoutBucket {
        /// The trail ARN.
        arn: String,
    },
    /// Where acquisition must write, the evidence directory holds a symbolic link or something
    /// other than a plain file or folder: writing there could land outside the directory.
    #[error(
        "{path} is a symbolic link, or not a plain file or folder, or a file where a folder must be; nothing is written through it"
    )]
    NotPlain {
        /// What is there.
        path: PathBuf,
    },
    /// A folder holds more entries than a run will list (`verify-query-results`' export
    /// folder): no real export comes near it.
    #[error("{folder} holds more than {max} entries: it was not listed to its end")]
    TooManyEntries {
        /// The folder or `s3://` prefix.
        folder: String,
        /// The most entries listed.
        max: usize,
    },
    /// A key that is not a plain relative path, where acquisition would write it.
    #[error("the key {key:?} is not a plain relative path: nothing is written for it")]
    UnsafeKey {
        /// The key.
        key: String,
    },
}

#[cfg(feature = "aws")]
impl From<aws::AwsError> for SourceError {
    fn from(err: aws::AwsError) -> Self {
        SourceError::Aws(Box::new(err))
    }
}

/// Why one object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing is at the key.
    NotFound,
    /// The key would resolve outside the evidence root (`..`, absolute, NUL, or a symlink out).
    Escape(String),
    /// The object is in a bucket this source does not hold.
    OtherBucket,
    /// What sits at the key is not a regular file (a FIFO, a device, a socket, a folder): it is
    /// never read, since a FIFO or a device may block or never end. S3 holds nothing of the kind,
    /// so the copy was altered.
    NotAFile(&'static str),
    /// The object is there, but could not be read through.
    Failed(ReadFailure),
    /// The object is in an archive storage class (S3 answered `InvalidObjectState`): it must
    /// be restored (`RestoreObject`) before it can be read. Its storage class, as S3 said it.
    Archived(String),
}

/// Why an object that is there could not be read through. Its text is the detail of the
/// "could not be read" finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadFailure {
    /// The disk failed to open, stat, read or write it.
    #[error("{detail}")]
    Io {
        /// The failure's kind (permission denied, I/O error, ...).
        kind: std::io::ErrorKind,
        /// The operating system's message.
        detail: String,
    },
    /// Larger than the budget for its kind of object (digests are held in memory).
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The budget, in stored bytes.
        max: u64,
    },
    /// S3 refused access to the object (HTTP 403 / `AccessDenied`).
    #[error("access denied")]
    AccessDenied,
    /// S3 answered with another error, or the request failed, through every retry.
    #[error("{message}")]
    Request {
        /// The S3 error code, when S3 answered.
        code: Option<String>,
        /// The HTTP status, when S3 answered.
        status: Option<u16>,
        /// The SDK's description of the failure.
        message: String,
    },
    /// The body sent nothing for longer than the stall allowance, on the last attempt.
    #[error("body stalled for {secs} s")]
    Stalled {
        /// The allowance, in seconds.
        secs: u64,
    },
    /// The connection broke off in the middle of the body, on the last attempt.
    #[error("body broke off: {message}")]
    BrokeOff {
        /// Why, as the HTTP stack said it.
        message: String,
    },
    /// The body did not arrive within its deadline: the stall allowance plus its size at the
    /// minimum rate. A body dripped out slowly cannot hold a run for hours.
    #[error("body of {size} bytes not complete within {secs} s (the read timeout plus its size at the minimum rate, {min_rate_kib} KiB/s); on a slow link lower the minimum rate or the concurrency")]
    Deadline {
        /// The body's size as S3 stated it (bounded by the budget).
        size: u64,
        /// The deadline, in seconds.
        secs: u64,
        /// The minimum rate, in KiB/s.
        min_rate_kib: u64,
    },
    /// A download could not be written to the evidence directory.
    #[error("cannot write: {detail}")]
    Write {
        /// The failure's kind (no space, permission denied, ...).
        kind: std::io::ErrorKind,
        /// The operating system's message.
        detail: String,
    },
    /// The worker reading it failed (panicked or was cancelled).
    #[error("worker failed: {message}")]
    Worker {
        /// What the runtime said.
        message: String,
    },
    /// The source gave no result for it (a source that answers fewer objects than asked).
    #[error("no result")]
    NoResult,
}

impl ReadFailure {
    /// A failure of the disk.
    pub fn io(e: &std::io::Error) -> Self {
        ReadFailure::Io {
            kind: e.kind(),
            detail: e.to_string(),
        }
    }
}

impl From<ReadFailure> for ReadError {
    fn from(failure: ReadFailure) -> Self {
        ReadError::Failed(failure)
    }
}

/// Something a listing found under the CloudTrail folders that no S3 key can name: reported,
/// never read. Only a copy on disk has such things.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stray {
    /// Its path as a key, bytes that are not UTF-8 replaced by U+FFFD; a folder ends in `/`.
    pub key: String,
    /// Why no key can name it.
    pub problem: StrayProblem,
}

/// Why a [`Stray`] is one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StrayProblem {
    /// Its name is not UTF-8, which no S3 key can be.
    NotUtf8 {
        /// Its name's bytes, shown escaped.
        raw: String,
    },
    /// A link to a folder, not followed: what it holds was not listed.
    FolderLink {
        /// Where it leads.
        target: String,
        /// Whether that is out of the evidence directory.
        out: bool,
    },
}

/// A stored digest as read, with its facts.
#[derive(Debug, Clone, Default)]
pub struct StoredObject {
    /// The stored (compressed) bytes.
    pub bytes: Vec<u8>,
    /// Its signature and backfill time, from S3's metadata or the evidence record.
    pub facts: DigestFacts,
    /// What S3 said about it, when read from S3 (acquisition records it); empty otherwise.
    pub record: ObjectRecord,
}

/// A log file read again for its records (`trailproof events`): its inflated bytes, and the
/// S3 version they are from when S3 said.
#[derive(Debug, Clone)]
pub struct InflatedLog {
    /// The bytes with what inflating them gave.
    pub inflated: crate::core::gz::Inflated,
    /// The S3 version the bytes are from, when S3 said.
    pub version_id: Option<String>,
}

/// What the engine wants listed.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Digests or log files.
    pub objects: ObjectType,
    /// Digest key times of interest; `None` lists everything.
    pub range: Option<(Timestamp, Timestamp)>,
    /// The range goes on to now (no end was given): what is dated after it is listed too
    /// (whole: CloudTrail cannot have written there yet; the engine judges it).
    pub to_now: bool,
    /// Only these accounts (all when empty).
    pub accounts: Vec<String>,
    /// Only these source Regions (all when empty).
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
    /// [`Self::hash_logs`], keeping each file's inflated bytes. Every file of the batch is
    /// held whole in memory at once: the caller bounds the batch.
    fn inflate_logs(
        &self,
        bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<InflatedLog, ReadError>>;
    /// Whether reading an object again costs a request over the network (S3), rather than a
    /// read from the disk: the engine then keeps the digests it has read, within a budget,
    /// instead of reading them again for their log lists.
    fn remote(&self) -> bool {
        false
    }
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
    /// What S3 said of `key`'s custody when the run read it (version id, storage class, Object
    /// Lock), if more than the defaults; sources that are not S3 say nothing. Answered once per
    /// read: the source forgets it then, so a run holds it only between reading an object and
    /// laying out its finding.
    fn take_custody(&self, _key: &str) -> Option<Custody> {
        None
    }
    /// The object versions of a versioned bucket, when the source can read them (S3).
    fn versions(&self) -> Option<&dyn VersionStore> {
        None
    }
    /// The version id and recovery record of `key`, when the source's own records say its
    /// copy was recovered from S3 versioning (a local copy's evidence-metadata file).
    fn recovered(&self, _key: &str) -> Option<(Option<String>, Recovered)> {
        None
    }
    /// When an acquisition no longer found `key` in the bucket, when the source's own records
    /// say so (a local copy's evidence-metadata file).
    fn gone(&self, _key: &str) -> Option<jiff::Timestamp> {
        None
    }
}

/// Reads the versions of objects in a versioned bucket (see [`crate::core::custody`]). Results
/// come back in input order; `progress` hears of each object read.
pub trait VersionStore: Sync {
    /// Each key's versions and delete markers (`ListObjectVersions`).
    fn list_versions(&self, keys: &[String]) -> Vec<Result<Vec<ListedVersion>, ReadError>>;
    /// Reads digest versions (key, version id) whole, with their S3 facts.
    fn read_digest_versions(
        &self,
        items: &[(String, String)],
    ) -> Vec<Result<StoredObject, ReadError>>;
    /// Inflates and hashes log-file versions (key, version id).
    fn hash_log_versions(&self, items: &[(String, String)]) -> Vec<Result<GzOutcome, ReadError>>;
}

/// What keys a run needs: the source Regions of its chains, and the time windows the AWS CLI
/// asks for (the range plus two hours; each backfill digest's generation time plus or minus an
/// hour).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyNeeds {
    /// The source Regions (keys are per Region).
    pub regions: BTreeSet<String>,
    /// The time windows, each from its start to its end.
    pub windows: Vec<(Timestamp, Timestamp)>,
}

/// Where public keys come from: a pinned file, or CloudTrail.
pub trait KeyProvider {
    /// The keys a run with these needs may meet.
    fn keys(&self, needs: &KeyNeeds) -> Result<KeySet, SourceError>;
    /// Asks ahead for the keys a run will likely need, while it reads its digests, so that
    /// [`Self::keys`] finds them at hand instead of waiting for them. What this gets is never
    /// used unless `keys` is asked for it; a failure here is left for `keys` to meet.
    fn warm(&self, _needs: &KeyNeeds) {}
    /// Said in the report next to each key.
    fn origin(&self) -> String;
}

/// The longest public-key file read (a real one lists a few keys, a few KB).
pub const MAX_KEY_FILE: u64 = 16 << 20;

/// CloudTrail public keys the caller supplies (pinned): trusted as given and the same whatever
/// the run needs, so a run with them is offline and repeatable. Reports name where they came
/// from.
#[derive(Debug, Clone)]
pub struct PinnedKeys {
    keys: KeySet,
    origin: String,
}

/// Why pinned keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinnedKeysError {
    /// The key file could not be read.
    #[error("cannot read the public-key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (its [`std::io::ErrorKind`] tells a missing file from a permission problem).
        source: std::io::Error,
    },
    /// The key file is not a key file, or a key in it is unusable.
    #[error("public-key file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyFileError,
    },
}

impl PinnedKeys {
    /// Reads a key file in the format `aws cloudtrail list-public-keys` prints (or
    /// `trailproof keys fetch` saves); see [`crate::core::keyfile`].
    pub fn from_file(path: &Path) -> Result<Self, PinnedKeysError> {
        let read = |source| PinnedKeysError::Read {
            path: path.to_owned(),
            source,
        };
        // A key file is a few KB: read at most MAX_KEY_FILE bytes (/dev/zero ends there), and
        // anything longer is not one.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
            .map_err(read)?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("longer than {MAX_KEY_FILE} bytes: not a key file"),
            )));
        }
        let keys = parse_key_file(&bytes).map_err(|source| PinnedKeysError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Ok(PinnedKeys {
            keys,
            origin: format!("pinned file {}", path.display()),
        })
    }

    /// Keys already in memory, in the key-file format; `name` says in reports where they came
    /// from (for example the vault entry or the case number they were taken from).
    pub fn from_json(bytes: &[u8], name: &str) -> Result<Self, KeyFileError> {
        Ok(Self::new(parse_key_file(bytes)?, name))
    }

    /// Keys already parsed; `name` says in reports where they came from.
    pub fn new(keys: KeySet, name: &str) -> Self {
        PinnedKeys {
            keys,
            origin: format!("pinned {name}"),
        }
    }

    /// The keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
}

impl KeyProvider for PinnedKeys {
    fn keys(&self, _needs: &KeyNeeds) -> Result<KeySet, SourceError> {
        Ok(self.keys.clone())
    }

    fn origin(&self) -> String {
        self.origin.clone()
    }
}
