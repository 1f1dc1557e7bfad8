//! AWS configuration shared by the S3 and CloudTrail clients: the credential chain of
//! aws-config (environment, profiles, SSO, instance roles, assume-role through a profile),
//! retries with backoff, timeouts, and an HTTPS client on rustls with ring, the crypto library
//! the verifier already uses.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Where and as whom to talk to AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub profile: Option<String>,
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
}

/// Attempts per request; the SDK backs off exponentially between them on throttling, 5xx and
/// connection errors.
const MAX_ATTEMPTS: u32 = 6;

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
        .map_err(|e| super::SourceError::Aws {
            what: "start the async runtime".into(),
            detail: e.to_string(),
        })
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
                .connect_timeout(Duration::from_secs(10))
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
