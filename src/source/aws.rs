//! AWS configuration shared by the S3 and CloudTrail clients: the credential chain of
//! aws-config (environment, profiles, SSO, instance roles, assume-role through a profile),
//! retries with backoff, timeouts, and an HTTPS client on rustls with ring, the crypto library
//! the verifier already uses. Also what a failed AWS call is made into: [`AwsError`].
use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Where and as whom to talk to AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// A named profile of the AWS config files (else the default chain's choice).
    pub profile: Option<String>,
    /// The Region to send requests to (else the configured one).
    pub region: Option<String>,
    /// An S3-compatible or local endpoint; implies path-style addressing.
    pub endpoint_url: Option<String>,
    /// How long a response may send nothing before it is abandoned and retried.
    pub read_timeout: Duration,
    /// Bytes per second an object's body must average: with `read_timeout`, its deadline.
    pub min_rate: u64,
}

/// The default `min_rate`: 32 KiB/s, slow enough for a modest link shared by the default
/// concurrency, fast enough that no body can be dripped out for hours.
pub const DEFAULT_MIN_RATE_KIB: u64 = 32;

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            profile: None,
            region: None,
            endpoint_url: None,
            read_timeout: Duration::from_secs(60),
            min_rate: DEFAULT_MIN_RATE_KIB * 1024,
        }
    }
}

impl AwsOptions {
    /// Path-style addressing is needed whenever a custom endpoint is in play, whether given as
    /// a flag or through the AWS CLI's environment variables.
    pub fn custom_endpoint(&self) -> bool {
        self.endpoint_url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    }

    /// The endpoint requests to `service` go to when it is not AWS's own: the option, else
    /// the service's `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL`, as the SDK reads
    /// them. Errors name it, so that a wrong one is seen at once.
    pub fn endpoint(&self, service: Service) -> Option<String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.endpoint_url
            .clone()
            .or_else(|| env(service.endpoint_variable()))
            .or_else(|| env("AWS_ENDPOINT_URL"))
    }
}

/// An AWS service the run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Service {
    /// Amazon S3.
    S3,
    /// AWS CloudTrail.
    CloudTrail,
    /// AWS STS.
    Sts,
    /// Amazon CloudWatch Logs.
    CloudWatchLogs,
    /// Amazon SQS (`watch`).
    Sqs,
}

impl Service {
    /// The variable that sets this service's endpoint alone.
    fn endpoint_variable(self) -> &'static str {
        match self {
            Service::S3 => "AWS_ENDPOINT_URL_S3",
            Service::CloudTrail => "AWS_ENDPOINT_URL_CLOUDTRAIL",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
            Service::CloudWatchLogs => "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
            Service::Sqs => "AWS_ENDPOINT_URL_SQS",
        }
    }
}

/// Attempts per request; the SDK backs off exponentially between them on throttling, 5xx and
/// connection errors (but see [`NoRetryWhereNothingListens`]).
const MAX_ATTEMPTS: u32 = 6;

/// How long a connection may take to open. S3 and CloudTrail answer in milliseconds; a few
/// seconds allow for a lost packet or two, and an address that never answers fails in
/// seconds, not in the minutes of every attempt's timeout added up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A tokio runtime for the blocking façade the engine sees.
pub fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, super::SourceError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|source| super::SourceError::Runtime { source })
}

/// HTTPS on rustls with ring (no aws-lc C build).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration for `options`, in `region` if given (else the configured one).
pub async fn load(options: &AwsOptions, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(options.read_timeout)
                .operation_attempt_timeout(Duration::from_secs(300))
                .build(),
        );
    if let Some(p) = &options.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region.or(options.region.as_deref()) {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if let Some(e) = &options.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// Refuses retries where nothing can answer: a connection refused, a host or network that
/// cannot be reached, a name that does not resolve. Those do not pass in the seconds that the
/// SDK's backoff waits (six attempts took 17 s to report a wrong `--endpoint-url`); a reset or
/// a broken answer from a server that did answer is still retried, as are throttling and 5xx.
#[derive(Debug)]
pub(crate) struct NoRetryWhereNothingListens;

impl ClassifyRetry for NoRetryWhereNothingListens {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(connector) = err.as_connector_error() else {
            return RetryAction::NoActionIndicated;
        };
        if nothing_listens(connector) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "NoRetryWhereNothingListens"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether an error says that no connection could be opened at all.
fn nothing_listens(err: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
    chain(err).any(|e| {
        e.is::<ResolveDnsError>()
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ConnectionRefused | HostUnreachable | NetworkUnreachable
                )
            })
    })
}

/// An error and its sources, outermost first.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// An AWS operation the run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// S3 ListObjectsV2: listing a bucket.
    ListObjectsV2,
    /// S3 GetBucketLocation: the bucket's Region.
    GetBucketLocation,
    /// CloudTrail ListPublicKeys: the keys digests are signed with.
    ListPublicKeys,
    /// CloudTrail DescribeTrails: a trail's bucket and prefix.
    DescribeTrails,
    /// STS GetCallerIdentity: who the run acts as.
    GetCallerIdentity,
    /// CloudWatch Logs DescribeLogStreams: a log group's streams.
    DescribeLogStreams,
    /// CloudWatch Logs FilterLogEvents: a log group's events in a time window.
    FilterLogEvents,
    /// SQS ReceiveMessage: the notifications `watch` waits for.
    ReceiveMessage,
    /// SQS DeleteMessage: the notifications a durable checkpoint covers.
    DeleteMessage,
}

impl Operation {
    /// The service the operation belongs to.
    pub fn service(self) -> Service {
        match self {
            Operation::ListObjectsV2 | Operation::GetBucketLocation => Service::S3,
            Operation::ListPublicKeys | Operation::DescribeTrails => Service::CloudTrail,
            Operation::GetCallerIdentity => Service::Sts,
            Operation::DescribeLogStreams | Operation::FilterLogEvents => Service::CloudWatchLogs,
            Operation::ReceiveMessage | Operation::DeleteMessage => Service::Sqs,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::GetBucketLocation => "GetBucketLocation",
            Operation::ListPublicKeys => "ListPublicKeys",
            Operation::DescribeTrails => "DescribeTrails",
            Operation::GetCallerIdentity => "GetCallerIdentity",
            Operation::DescribeLogStreams => "DescribeLogStreams",
            Operation::FilterLogEvents => "FilterLogEvents",
            Operation::ReceiveMessage => "ReceiveMessage",
            Operation::DeleteMessage => "DeleteMessage",
        })
    }
}

/// How an AWS call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// No credentials were found anywhere the SDK looks (environment, config and credentials
    /// files, SSO, web identity, container and instance roles): nothing was sent.
    NoCredentials,
    /// Credentials were configured but could not be loaded (a broken profile, an expired SSO
    /// session, a failing credential process): nothing was sent.
    Credentials,
    /// No connection could be made, or it broke before an answer came.
    Connect,
    /// No answer came in time.
    Timeout,
    /// The service answered with an error (see the code and status).
    Service,
    /// An answer came but could not be read.
    Response,
    /// The request could not be made (a Region or an endpoint the SDK cannot use).
    Request,
}

/// An AWS call the run cannot do without, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsError {
    /// The call.
    pub operation: Operation,
    /// What it was about: `s3://BUCKET/PREFIX`, a Region's keys, a trail ARN.
    pub target: String,
    /// The endpoint it went to, when not AWS's own ([`AwsOptions::endpoint`]).
    pub endpoint: Option<String>,
    /// How it failed.
    pub failure: Failure,
    /// The service's error code (`AccessDenied`, `NoSuchBucket`, `InvalidAccessKeyId`,
    /// `ExpiredToken`, ...), when it answered one.
    pub code: Option<String>,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The kind of I/O error under a failed connection.
    pub io: Option<std::io::ErrorKind>,
    /// The service's own message, or the innermost error's for a failure without an answer.
    pub message: Option<String>,
}

impl AwsError {
    /// Makes an SDK error into an [`AwsError`] of `operation` on `target`.
    pub(crate) fn new<E>(
        err: &SdkError<E, HttpResponse>,
        operation: Operation,
        target: String,
        options: &AwsOptions,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let credentials = chain(err).find_map(|e| e.downcast_ref::<CredentialsError>());
        let innermost = || chain(err).last().map(one_line);
        let (failure, message) = match (credentials, err) {
            (Some(CredentialsError::CredentialsNotLoaded(_)), _) => (Failure::NoCredentials, None),
            (Some(c), _) => (Failure::Credentials, c.source().map(one_line)),
            (None, SdkError::ServiceError(s)) => {
                (Failure::Service, s.err().message().map(str::to_owned))
            }
            (None, SdkError::TimeoutError(_)) => (Failure::Timeout, None),
            (None, SdkError::DispatchFailure(d)) if d.is_timeout() => (Failure::Timeout, None),
            (None, SdkError::DispatchFailure(d)) if d.is_user() => (Failure::Request, innermost()),
            (None, SdkError::DispatchFailure(_)) => (Failure::Connect, innermost()),
            (None, SdkError::ResponseError(_)) => (Failure::Response, innermost()),
            (None, _) => (Failure::Request, innermost()),
        };
        AwsError {
            operation,
            target,
            endpoint: options.endpoint(operation.service()),
            failure,
            code: err.code().map(str::to_owned),
            status: err.raw_response().map(|r| r.status().as_u16()),
            io: chain(err).find_map(|e| e.downcast_ref::<std::io::Error>().map(|io| io.kind())),
            message,
        }
    }
}

/// An error's message on one line (credential chains and some I/O errors span several).
fn one_line(err: &(dyn StdError + 'static)) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.endpoint.as_deref().unwrap_or("the AWS endpoint");
        write!(f, "{} ({}) ", self.operation, self.target)?;
        match self.failure {
            Failure::NoCredentials => f.write_str("was not sent: no AWS credentials were found")?,
            Failure::Credentials => {
                f.write_str("was not sent: the AWS credentials could not be loaded")?
            }
            Failure::Connect => write!(f, "failed: no connection to {at}")?,
            Failure::Timeout => write!(f, "failed: no answer in time from {at}")?,
            Failure::Service => f.write_str("failed")?,
            Failure::Response => write!(f, "failed: the answer of {at} could not be read")?,
            Failure::Request => f.write_str("could not be made")?,
        }
        match (&self.code, self.status) {
            (Some(code), Some(status)) => write!(f, ": {code} (HTTP {status})")?,
            (Some(code), None) => write!(f, ": {code}")?,
            (None, Some(status)) if self.failure == Failure::Service => {
                write!(f, ": HTTP {status}")?
            }
            _ => {}
        }
        match &self.message {
            Some(m) if !m.is_empty() => write!(f, ": {m}"),
            _ => Ok(()),
        }
    }
}

impl StdError for AwsError {}
