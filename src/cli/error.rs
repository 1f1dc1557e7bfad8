//! What the command line says when a job cannot be done: the cause in one line, in the
//! layers' own words, then what to do about it in the command's terms (which flag, which
//! credentials, which IAM permission). The library's errors never name a flag; this is the only
//! place that knows them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use trailproof::core::evidence::EVIDENCE_FILE;
use trailproof::core::keyfile::KeyFileError;
#[cfg(feature = "aws")]
use trailproof::engine::crosscheck::CrosscheckError;
use trailproof::engine::{unmatched_message, EngineError, Filter, UnmatchedFilter};
use trailproof::source::{PinnedKeysError, SourceError};

use super::report::ReportCliError;

/// Why a command could not do its job (exit status 2).
/// The variants only the commands that talk to AWS meet exist only in builds that have them.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// The engine could not do the job.
    Engine(EngineError),
    /// A source could not be opened or asked (before the engine runs).
    Source(SourceError),
    /// The pinned public-key file.
    Keys(PinnedKeysError),
    /// The report could not be written, signed or checked.
    Report(ReportCliError),
    /// `verify DIR` where DIR holds no bucket copy but a folder under it does.
    FolderAboveCopy {
        /// The directory given.
        dir: PathBuf,
        /// The copy under it.
        copy: PathBuf,
    },
    #[cfg(feature = "aws")]
    /// `acquire` into a directory holding another bucket's evidence.
    OtherBucketsEvidence {
        /// The directory given.
        dir: PathBuf,
        /// The bucket being acquired.
        bucket: String,
        /// The bucket its evidence-metadata file records.
        recorded: String,
    },
    /// `verify DIR` without `--public-keys`.
    NoPublicKeys,
    #[cfg(feature = "aws")]
    /// A source that should be `s3://BUCKET[/PREFIX]` and is not.
    NotS3Uri {
        /// What was given.
        uri: String,
    },
    /// `verify s3://...` in a build without S3.
    #[cfg(not(feature = "aws"))]
    NoS3Support,
    /// `--threads` could not be set up.
    Threads(rayon::ThreadPoolBuildError),
    #[cfg(feature = "aws")]
    /// `validate-logs`: the trail ARN is not one (worded as the AWS CLI words it).
    InvalidTrailArn {
        /// What was given.
        arn: String,
    },
    #[cfg(feature = "aws")]
    /// `validate-logs`: the start is after the end (worded as the AWS CLI words it).
    InvalidTimeRange,
    #[cfg(feature = "aws")]
    /// `validate-logs` of an organization trail without `--account-id`.
    OrganizationTrailNeedsAccount,
    /// A file could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    #[cfg(feature = "aws")]
    /// Standard output could not be written.
    Output(io::Error),
    /// `events --format parquet` without `--out`.
    ParquetNeedsOut,
    /// `plan`, `verify --plan` and `merge`: see [`super::fanout::FanoutCliError`].
    Fanout(Box<super::fanout::FanoutCliError>),
    /// `verify --checkpoint`: the checkpoint could not be used, or the evidence contradicts it.
    Checkpoint(Box<super::checkpoint::CheckpointCliError>),
    #[cfg(feature = "aws")]
    /// `watch` could not start or go on.
    Watch(Box<super::watch::WatchCliError>),
    #[cfg(feature = "aws")]
    /// `crosscheck` without `--start-time` and `--end-time`.
    CrosscheckNeedsRange,
    #[cfg(feature = "aws")]
    /// `crosscheck`: the log group could not be read, or the comparison could not be made.
    Crosscheck(CrosscheckError),
    /// `--out` would write over something the user gave.
    OutputIsInput {
        /// The output asked for.
        path: PathBuf,
        /// What it would write over or into.
        input: PathBuf,
    },
}

impl From<EngineError> for CliError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Source(e) => CliError::Source(e),
            e => CliError::Engine(e),
        }
    }
}

impl From<SourceError> for CliError {
    fn from(err: SourceError) -> Self {
        CliError::Source(err)
    }
}

impl From<PinnedKeysError> for CliError {
    fn from(err: PinnedKeysError) -> Self {
        CliError::Keys(err)
    }
}

impl From<ReportCliError> for CliError {
    fn from(err: ReportCliError) -> Self {
        CliError::Report(err)
    }
}

impl From<super::fanout::FanoutCliError> for CliError {
    fn from(err: super::fanout::FanoutCliError) -> Self {
        CliError::Fanout(Box::new(err))
    }
}

impl std::error::Error for CliError {}

/// The cause, in one line; then, on a line of its own, what to do.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause(f)?;
        match self.advice() {
            Some(advice) => write!(f, "\nhint: {advice}"),
            None => Ok(()),
        }
    }
}

impl CliError {
    /// For `verify DIR` that found no bucket name: when DIR is the folder above a bucket copy
    /// (`testdata/sample` instead of `testdata/sample/bucket`), says so, instead of asking for
    /// `--s3-bucket` (which would make every digest "moved").
    pub fn in_folder(err: EngineError, dir: &Path) -> Self {
        match (&err, copy_below(dir)) {
            (EngineError::NoBucket, Some(copy)) => CliError::FolderAboveCopy {
                dir: dir.to_owned(),
                copy,
            },
            _ => err.into(),
        }
    }

    /// A `crosscheck` that could not be done; an S3 side's error as `verify` says it.
    #[cfg(feature = "aws")]
    pub fn crosscheck(err: CrosscheckError, dir: &Path) -> Self {
        match err {
            CrosscheckError::Engine(e) => CliError::in_folder(e, dir),
            e => CliError::Crosscheck(e),
        }
    }

    fn cause(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Engine(EngineError::BucketConflict { given, recorded }) => write!(
                f,
                "--s3-bucket {given} disagrees with the source, which is bucket {recorded}"
            ),
            CliError::Engine(EngineError::UnknownHead { key }) => write!(
                f,
                "--head-signature names {key}, which is not a digest in the evidence"
            ),
            CliError::Engine(EngineError::UnmatchedFilters {
                source_name,
                unmatched,
                trails_found,
            }) => f.write_str(&unmatched_message(
                source_name,
                unmatched,
                trails_found,
                &flag_and_value,
            )),
            CliError::Engine(e) => write!(f, "{e}"),
            CliError::Source(e) => write!(f, "{e}"),
            CliError::Keys(PinnedKeysError::Parse {
                path,
                source: KeyFileError::Json { detail },
            }) => write!(
                f,
                "{} is not a public-key file: expected the JSON that `aws cloudtrail list-public-keys` prints ({{\"PublicKeyList\": [...]}}), but {detail}",
                path.display()
            ),
            CliError::Keys(e) => write!(f, "{e}"),
            CliError::Report(e) => write!(f, "{e}"),
            CliError::Fanout(e) => write!(f, "{e}"),
            CliError::FolderAboveCopy { dir, copy } => write!(
                f,
                "{} holds no AWSLogs/ folder, but {} does: it is the folder above a bucket copy",
                dir.display(),
                copy.display()
            ),
            #[cfg(feature = "aws")]
            CliError::OtherBucketsEvidence {
                dir,
                bucket,
                recorded,
            } => write!(
                f,
                "{} holds evidence of bucket {recorded}, not of {bucket}",
                dir.display()
            ),
            CliError::NoPublicKeys => f.write_str("a local copy needs public keys to verify with"),
            #[cfg(feature = "aws")]
            CliError::NotS3Uri { uri } => write!(f, "{uri} is not an s3://BUCKET[/PREFIX] URI"),
            #[cfg(not(feature = "aws"))]
            CliError::NoS3Support => {
                f.write_str("this build has no S3 support (built without the `aws` feature)")
            }
            CliError::Threads(e) => write!(f, "cannot start the worker threads: {e}"),
            #[cfg(feature = "aws")]
            CliError::InvalidTrailArn { arn } => write!(f, "Invalid trail ARN provided: {arn}"),
            #[cfg(feature = "aws")]
            CliError::InvalidTimeRange => {
                f.write_str("Invalid time range specified: start-time must occur before end-time")
            }
            #[cfg(feature = "aws")]
            CliError::OrganizationTrailNeedsAccount => {
                f.write_str("Missing required parameter for organization trail: '--account-id'")
            }
            CliError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            #[cfg(feature = "aws")]
            CliError::Output(e) => write!(f, "cannot write the output: {e}"),
            CliError::ParquetNeedsOut => {
                f.write_str("--format parquet writes a file, not standard output")
            }
            CliError::Checkpoint(e) => write!(f, "{e}"),
            #[cfg(feature = "aws")]
            CliError::Watch(e) => write!(f, "{e}"),
            #[cfg(feature = "aws")]
            CliError::CrosscheckNeedsRange => {
                f.write_str("crosscheck compares a range: --start-time and --end-time are needed")
            }
            #[cfg(feature = "aws")]
            CliError::Crosscheck(e) => write!(f, "{e}"),
            CliError::OutputIsInput { path, input } => write!(
                f,
                "--out {} would write over or into {}, which is input to this run",
                path.display(),
                input.display()
            ),
        }
    }

    /// What to do about it, when there is something to say.
    fn advice(&self) -> Option<String> {
        Some(match self {
            CliError::Engine(e) => return engine_advice(e),
            CliError::Source(e) => return source_advice(e),
            CliError::Keys(PinnedKeysError::Read { path, source })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                save_keys(path)
            }
            // Not the file's own name: saving over a file that is something else would lose it.
            CliError::Keys(PinnedKeysError::Parse {
                source: KeyFileError::Json { .. },
                ..
            }) => save_keys(Path::new("KEYS.json")),
            CliError::Keys(_) | CliError::Report(_) => return None,
            CliError::Fanout(e) => return e.advice(),
            CliError::FolderAboveCopy { copy, .. } => {
                format!("did you mean `trailproof verify {}`?", copy.display())
            }
            #[cfg(feature = "aws")]
            CliError::OtherBucketsEvidence { .. } => {
                "acquire into a directory of its own (one directory per bucket)".to_owned()
            }
            CliError::NoPublicKeys => {
                "pass --public-keys KEYS.json (save them with `trailproof keys fetch` or `aws cloudtrail list-public-keys`)".to_owned()
            }
            #[cfg(feature = "aws")]
            CliError::NotS3Uri { .. } => "write it as s3://BUCKET or s3://BUCKET/PREFIX".to_owned(),
            #[cfg(not(feature = "aws"))]
            CliError::NoS3Support => {
                "verify a local copy (`aws s3 sync s3://BUCKET DIR`, then `trailproof verify DIR`)"
                    .to_owned()
            }
            CliError::Threads(_) => "try a smaller --threads".to_owned(),
            #[cfg(feature = "aws")]
            CliError::InvalidTrailArn { .. } => {
                "the ARN looks like arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME".to_owned()
            }
            CliError::ParquetNeedsOut => "add --out FILE.parquet".to_owned(),
            CliError::Checkpoint(e) => return e.advice(),
            #[cfg(feature = "aws")]
            CliError::Watch(e) => return e.advice(),
            #[cfg(feature = "aws")]
            CliError::CrosscheckNeedsRange => {
                "give the range whose events to compare, e.g. --start-time 2026-01-01T00:00:00Z --end-time 2026-01-02T00:00:00Z".to_owned()
            }
            #[cfg(feature = "aws")]
            CliError::Crosscheck(CrosscheckError::Group { source, .. }) => {
                return source_advice(source)
            }
            #[cfg(feature = "aws")]
            CliError::Crosscheck(_) => return None,
            CliError::OutputIsInput { .. } => {
                "write the output outside the evidence directory, to a file of its own".to_owned()
            }
            #[cfg(feature = "aws")]
            CliError::InvalidTimeRange
            | CliError::OrganizationTrailNeedsAccount
            | CliError::Output(_) => return None,
            CliError::Write { .. } => return None,
        })
    }
}

/// How the command line spells a filter value: its flag.
fn flag_and_value(u: &UnmatchedFilter) -> String {
    let flag = match u.filter {
        Filter::Account => "--account-id",
        Filter::Region => "--region",
        Filter::Trail => "--trail",
        _ => return format!("{} {}", u.filter, u.value),
    };
    format!("{flag} {}", u.value)
}

fn save_keys(path: &Path) -> String {
    format!(
        "save one with `trailproof keys fetch --region REGION --start-time TIME --out {0}` or `aws cloudtrail list-public-keys --start-time TIME > {0}`",
        path.display()
    )
}

/// The folder under `dir` that holds a bucket copy (an `AWSLogs/` folder or an
/// evidence-metadata file), when `dir` itself holds neither. Only one level down: a copy's own
/// trail prefixes (`DIR/logs/AWSLogs/`) make the digests name the bucket, so the run does not
/// get here for them.
fn copy_below(dir: &Path) -> Option<PathBuf> {
    let is_copy = |d: &Path| d.join("AWSLogs").is_dir() || d.join(EVIDENCE_FILE).is_file();
    if is_copy(dir) {
        return None;
    }
    let mut copies: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| is_copy(p))
        .collect();
    copies.sort();
    copies.into_iter().next()
}

fn engine_advice(err: &EngineError) -> Option<String> {
    Some(match err {
        EngineError::NoBucket => {
            "pass --s3-bucket BUCKET, the bucket the copy was made from".to_owned()
        }
        EngineError::BucketConflict { recorded, .. } => {
            format!("drop --s3-bucket, or pass --s3-bucket {recorded}")
        }
        EngineError::UnknownHead { .. } => {
            "name a chain's newest digest by its key (KEY=HEX or s3://BUCKET/KEY=HEX)".to_owned()
        }
        EngineError::BadRange { .. } => "check --start-time and --end-time".to_owned(),
        EngineError::NothingFound { .. } => {
            "check the source (a bucket copy holds AWSLogs/ at its top, as `aws s3 sync s3://BUCKET DIR` makes it) and the filters (--start-time, --end-time, --account-id, --region, --trail)".to_owned()
        }
        EngineError::Source(e) => return source_advice(e),
        _ => return None,
    })
}

fn source_advice(err: &SourceError) -> Option<String> {
    Some(match err {
        #[cfg(feature = "aws")]
        SourceError::Aws(e) => return aws::advice(e),
        #[cfg(feature = "aws")]
        SourceError::Pages {
            problem: trailproof::source::pages::PageError::TooManyPages { .. },
            ..
        } => "name a trail's prefix (s3://BUCKET/PREFIX) to search only under it".to_owned(),
        #[cfg(feature = "aws")]
        SourceError::IncompleteKey { .. } | SourceError::UnusableKeys { .. } => {
            "pin keys you trust with --public-keys KEYS.json".to_owned()
        }
        #[cfg(feature = "aws")]
        SourceError::NoSuchTrail { .. } => {
            "check --trail-arn and --region, or pass --s3-bucket (and --s3-prefix) to skip the lookup"
                .to_owned()
        }
        #[cfg(feature = "aws")]
        SourceError::TrailWithoutBucket { .. } => "pass --s3-bucket".to_owned(),
        // Found by the red team: the file in the way may be the copy of an object (`KEY`,
        // where the bucket now has `KEY/x`); removing it lost the delivered bytes.
        SourceError::NotPlain { .. } => {
            "move it out of the directory (keep it: it may be a copy of evidence) and run again"
                .to_owned()
        }
        SourceError::Root { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            "check the path: SOURCE is a directory or s3://BUCKET[/PREFIX]".to_owned()
        }
        _ => return None,
    })
}

#[cfg(feature = "aws")]
mod aws {
    use trailproof::source::aws::{AwsError, Failure, Operation};

    /// What to do about a failed AWS call.
    pub(super) fn advice(err: &AwsError) -> Option<String> {
        let endpoint = err.endpoint.as_deref();
        Some(match err.failure {
            Failure::NoCredentials => {
                "give AWS credentials: a profile (--profile NAME or AWS_PROFILE; `aws configure` or `aws sso login` sets one up), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned()
            }
            Failure::Credentials => {
                "check the profile's credentials (--profile, AWS_PROFILE); for SSO, run `aws sso login`".to_owned()
            }
            Failure::Connect => match endpoint {
                Some(e) => format!("is a server listening at {e}? Check --endpoint-url (and AWS_ENDPOINT_URL)"),
                None => "check the network connection (and any proxy); for an S3-compatible server pass --endpoint-url".to_owned(),
            },
            Failure::Timeout => match endpoint {
                Some(e) => format!("check --endpoint-url {e}; on a slow link raise --read-timeout"),
                None => "check the network connection; on a slow link raise --read-timeout".to_owned(),
            },
            Failure::Response | Failure::Request => match endpoint {
                Some(e) => format!("check --endpoint-url {e} and the Region (AWS_REGION)"),
                None => "check the Region (AWS_REGION or the profile's)".to_owned(),
            },
            Failure::Service => return service_advice(err),
            _ => return None,
        })
    }

    fn service_advice(err: &AwsError) -> Option<String> {
        let code = err.code.as_deref().unwrap_or_default();
        Some(match code {
            "AccessDenied" | "AccessDeniedException" | "AllAccessDisabled" => permission(err.operation),
            "ResourceNotFoundException"
                if matches!(err.operation, Operation::DescribeLogStreams | Operation::FilterLogEvents) =>
            {
                "check --log-group and --log-group-region (the group's name and Region)".to_owned()
            }
            "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => {
                "check --sqs-queue: the queue URL (and that AWS_REGION is the queue's Region)".to_owned()
            }
            "NoSuchBucket" => match &err.endpoint {
                Some(e) => format!("check the bucket name, and that --endpoint-url {e} is the server that holds it"),
                None => "check the bucket name".to_owned(),
            },
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidClientTokenId"
            | "UnrecognizedClientException" | "AuthFailure" => {
                "the credentials are not valid there: check the access key and secret, or the profile (--profile, AWS_PROFILE)".to_owned()
            }
            "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" | "RequestExpired" => {
                "the session credentials have expired: renew them (`aws sso login`, or new temporary credentials)".to_owned()
            }
            "SlowDown" | "Throttling" | "ThrottlingException" | "InternalError" | "ServiceUnavailable" => {
                "the service is throttling or failing: try again later, or with a lower --concurrency".to_owned()
            }
            _ if err.status == Some(403) => permission(err.operation),
            _ => return None,
        })
    }

    /// The IAM permission a call needs, and the way around it where there is one.
    fn permission(operation: Operation) -> String {
        match operation {
            Operation::ListObjectsV2 => "the caller needs s3:ListBucket on the bucket (and s3:GetObject on its objects)".to_owned(),
            Operation::GetBucketLocation => "the caller needs s3:GetBucketLocation on the bucket".to_owned(),
            Operation::ListPublicKeys => "the caller needs cloudtrail:ListPublicKeys, or pin keys with --public-keys KEYS.json".to_owned(),
            Operation::DescribeTrails => "the caller needs cloudtrail:DescribeTrails, or pass --s3-bucket (and --s3-prefix)".to_owned(),
            Operation::GetCallerIdentity => "the caller needs sts:GetCallerIdentity".to_owned(),
            Operation::DescribeLogStreams => "the caller needs logs:DescribeLogStreams on the log group".to_owned(),
            Operation::FilterLogEvents => "the caller needs logs:FilterLogEvents on the log group".to_owned(),
            Operation::ReceiveMessage => "the caller needs sqs:ReceiveMessage on the queue (and kms:Decrypt if it is encrypted with a KMS key)".to_owned(),
            Operation::DeleteMessage => "the caller needs sqs:DeleteMessage on the queue".to_owned(),
            op => format!("the caller needs the permission for {op}"),
        }
    }
}
