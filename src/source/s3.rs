//! A CloudTrail bucket read straight from S3 (or an S3-compatible server).
//!
//! Listing follows the requested range: accounts, Regions and object types are discovered
//! with delimited listings, then only the day folders in range are listed. Reads run as
//! tokio tasks, at most `concurrency` at a time, so network latency overlaps; each log body is
//! inflated and hashed as it streams in, so memory is bounded by the concurrency, not the
//! corpus. An object that cannot be read (access denied, an error that persists through the
//! SDK's retries, a stalled body) is "not verified", never "valid".

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use futures_util::{stream, StreamExt};
use jiff::{Timestamp, ToSpan};
use sha2::Digest as _;

use super::aws::{load, AwsOptions};
use super::progress::{Progress, Stored};
use super::{ListRequest, ObjectSource, ReadError, SourceError, StoredObject};
use crate::core::evidence::{DigestFacts, ObjectRecord};
use crate::core::gz::{GzOutcome, Inflater, Limits};
use crate::core::types::S3Location;

/// Default number of requests in flight. Enough to hide tens of milliseconds of latency per
/// request (benches/compare.sh measures 20 ms); S3 serves thousands of GETs per second per
/// prefix. Each request in flight holds one body chunk at a time, so memory stays small.
pub const DEFAULT_CONCURRENCY: usize = 128;
/// Whole-object attempts when a body breaks off mid-stream (the SDK retries the request itself).
const BODY_ATTEMPTS: usize = 3;
const MAX_DIGEST_STORED: u64 = 64 << 20;
/// How deep below the given prefix trail prefixes are looked for.
const MAX_PREFIX_DEPTH: usize = 4;
const MAX_DISCOVERY_LISTINGS: usize = 256;

/// A bucket (and optional prefix) on S3.
pub struct S3Source {
    runtime: tokio::runtime::Runtime,
    /// ETag of every object the listings saw, so acquisition can skip unchanged objects; kept
    /// only when asked for ([`S3Source::remembering_etags`]): verification needs none, and
    /// keeps no per-object state.
    listed_etags: Option<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    client: Client,
    bucket: String,
    /// Without trailing slash; empty for none.
    prefix: String,
    concurrency: usize,
    /// A body that sends nothing for this long is abandoned (and retried).
    stall: Duration,
}

impl S3Source {
    /// Connects to the bucket, finding its Region unless a custom endpoint is used.
    pub fn connect(
        options: &AwsOptions,
        bucket: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Result<Self, SourceError> {
        let runtime = super::aws::runtime(true)?;
        let client = runtime.block_on(bucket_client(options, bucket));
        Ok(S3Source {
            runtime,
            listed_etags: None,
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            concurrency: concurrency.max(1),
            stall: options.read_timeout,
        })
    }

    /// Runs one job per item as tokio tasks, at most `concurrency` at once; results come back
    /// in input order. Jobs finish in any order, so one slow response does not hold the next
    /// ones back.
    fn run_all<T, I, O, F, Fut>(
        &self,
        progress: &Progress,
        items: T,
        job: F,
    ) -> Vec<Result<O, ReadError>>
    where
        T: IntoIterator<Item = I>,
        T::IntoIter: ExactSizeIterator,
        I: Send + 'static,
        O: Stored + Send + 'static,
        F: Fn(Client, I) -> Fut,
        Fut: Future<Output = Result<O, ReadError>> + Send + 'static,
    {
        let client = self.client.clone();
        let items = items.into_iter();
        let mut done: Vec<(usize, Result<O, ReadError>)> = self.runtime.block_on(async {
            stream::iter(items.enumerate())
                .map(|(i, item)| {
                    let task = tokio::spawn(job(client.clone(), item));
                    async move { (i, task.await) }
                })
                .buffer_unordered(self.concurrency)
                .map(|(i, joined)| {
                    let result = joined
                        .unwrap_or_else(|e| Err(ReadError::Io(format!("worker failed: {e}"))));
                    progress.done(result.as_ref().map_or(0, Stored::stored_bytes));
                    (i, result)
                })
                .collect()
                .await
        });
        done.sort_unstable_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    async fn list_all(
        &self,
        request: &ListRequest,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        let mut account_folders = Vec::new();
        let mut top = Vec::new();
        for root in self.awslogs_roots().await? {
            top.extend(self.folders(&root).await?);
        }
        for folder in top {
            let name = folder
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            if name.starts_with("o-") {
                account_folders.extend(self.folders(&folder).await?);
            } else {
                account_folders.push(folder);
            }
        }
        account_folders.retain(|f| {
            let account = f
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            request.accounts.is_empty() || request.accounts.iter().any(|a| a == account)
        });
        let mut region_folders = Vec::new();
        let ty = request.objects.folder();
        for account in &account_folders {
            for region in self.folders(&format!("{account}{ty}/")).await? {
                let name = region
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                if request.regions.is_empty() || request.regions.iter().any(|r| r == name) {
                    region_folders.push(region);
                }
            }
        }
        let prefixes: Vec<String> = match request.range {
            Some((start, end)) => region_folders
                .iter()
                .flat_map(|r| days(start, end).map(move |d| format!("{r}{d}/")))
                .collect(),
            None => region_folders,
        };
        // Each folder's keys are handed on as its listing completes: only the folders being
        // listed are held.
        let mut listed = stream::iter(prefixes)
            .map(|p| async move { self.keys_under(&p).await })
            .buffer_unordered(self.concurrency);
        while let Some(keys) = listed.next().await {
            keys?.into_iter().for_each(each);
        }
        Ok(())
    }

    /// Every `AWSLogs/` folder under the source's prefix: trails may write under prefixes of
    /// their own (`logs/prod/AWSLogs/...`), and a bucket-wide run should find them all. The
    /// search stops at `MAX_PREFIX_DEPTH` levels and `MAX_DISCOVERY_LISTINGS` listings.
    async fn awslogs_roots(&self) -> Result<Vec<String>, SourceError> {
        let start = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut roots = Vec::new();
        let mut level = vec![start];
        let mut listings = 0;
        for _ in 0..=MAX_PREFIX_DEPTH {
            let mut next = Vec::new();
            for folder in level {
                if listings >= MAX_DISCOVERY_LISTINGS {
                    break;
                }
                listings += 1;
                for child in self.folders(&folder).await? {
                    if child.ends_with("/AWSLogs/") || child == "AWSLogs/" {
                        roots.push(child);
                    } else {
                        next.push(child);
                    }
                }
            }
            level = next;
        }
        roots.sort();
        Ok(roots)
    }

    /// The sub-folders directly under `prefix`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        Ok(self.list(prefix, true).await?.1)
    }

    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        Ok(self.list(prefix, false).await?.0)
    }

    async fn list(
        &self,
        prefix: &str,
        delimited: bool,
    ) -> Result<(Vec<String>, Vec<String>), SourceError> {
        let mut keys = Vec::new();
        let mut folders = Vec::new();
        let mut token = None;
        loop {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token);
            if delimited {
                req = req.delimiter("/");
            }
            let page = req.send().await.map_err(|e| SourceError::Aws {
                what: format!("list s3://{}/{prefix}", self.bucket),
                detail: with_hint(DisplayErrorContext(&e).to_string()),
            })?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    keys.push(k.to_owned());
                    let seen = self.listed_etags.as_ref().and_then(|m| m.lock().ok());
                    if let (Some(etag), Some(mut seen)) = (o.e_tag(), seen) {
                        seen.insert(k.to_owned(), etag.to_owned());
                    }
                }
            }
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || page.is_truncated() != Some(true) {
                break;
            }
        }
        Ok((keys, folders))
    }
}

impl S3Source {
    /// Remembers the ETag of every object listed, for [`S3Source::listed_etag`].
    pub fn remembering_etags(mut self) -> Self {
        self.listed_etags = Some(Default::default());
        self
    }

    /// The ETag a listing gave for `key`, if ETags are remembered.
    pub fn listed_etag(&self, key: &str) -> Option<String> {
        self.listed_etags.as_ref()?.lock().ok()?.get(key).cloned()
    }

    /// Downloads objects to files (through a `.part` file renamed when complete), hashing the
    /// stored bytes on the way. Results in input order.
    pub fn download(
        &self,
        items: Vec<(S3Location, std::path::PathBuf)>,
    ) -> Vec<Result<ObjectRecord, ReadError>> {
        let stall = self.stall;
        let progress = Progress::new("objects downloaded", items.len());
        self.run_all(&progress, items, move |c, i| download_one(c, i, stall))
    }
}

/// The `YYYY/MM/DD` folders from `start`'s day to `end`'s day.
fn days(start: Timestamp, end: Timestamp) -> impl Iterator<Item = String> {
    let first = start.to_zoned(jiff::tz::TimeZone::UTC).date();
    let last = end.to_zoned(jiff::tz::TimeZone::UTC).date();
    std::iter::successors(Some(first), move |d| {
        d.checked_add(1.day()).ok().filter(|n| *n <= last)
    })
    .map(|d| d.strftime("%Y/%m/%d").to_string())
}

/// A client in the bucket's Region. GetBucketLocation answers an empty constraint for
/// us-east-1; some S3-compatible servers answer something the SDK cannot parse, and with a
/// custom endpoint the Region hardly matters, so failure falls back to the configured Region.
async fn bucket_client(options: &AwsOptions, bucket: &str) -> Client {
    let mut base = load(options, None).await;
    if base.region().is_none() {
        // Like the AWS CLI: with no Region configured, ask us-east-1 where the bucket is.
        base = load(options, Some("us-east-1")).await;
    }
    let configured = s3_client(&base, options);
    if options.custom_endpoint() {
        return configured;
    }
    let region = match configured.get_bucket_location().bucket(bucket).send().await {
        Ok(out) => match out.location_constraint().map(|c| c.as_str().to_owned()) {
            Some(r) if !r.is_empty() => r,
            _ => "us-east-1".to_owned(),
        },
        Err(_) => return configured,
    };
    if base.region().map(|r| r.as_ref()) == Some(region.as_str()) {
        return configured;
    }
    s3_client(&load(options, Some(&region)).await, options)
}

fn s3_client(config: &aws_config::SdkConfig, options: &AwsOptions) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(options.custom_endpoint())
        .build();
    Client::from_conf(conf)
}

/// Adds what to do next to the errors people meet first.
fn with_hint(detail: String) -> String {
    let hint = if detail.contains("credentials") {
        "; no usable AWS credentials: set AWS_PROFILE or pass --profile, run `aws configure` or `aws sso login`"
    } else if detail.contains("AccessDenied") || detail.contains("403") {
        "; access denied: the caller needs s3:ListBucket on the bucket"
    } else if detail.contains("NoSuchBucket") {
        "; no such bucket (check the name, and --endpoint-url for S3-compatible servers)"
    } else {
        ""
    };
    format!("{detail}{hint}")
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &SdkError<E>) -> ReadError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (status, err.code()) {
        (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => ReadError::NotFound,
        (Some(403), _) | (_, Some("AccessDenied")) => ReadError::Io("access denied".into()),
        _ => ReadError::Io(DisplayErrorContext(err).to_string()),
    }
}

async fn next_chunk(
    body: &mut aws_sdk_s3::primitives::ByteStream,
    stall: Duration,
) -> Result<Option<bytes::Bytes>, ReadError> {
    match tokio::time::timeout(stall, body.try_next()).await {
        Err(_) => Err(ReadError::Io(format!(
            "body stalled for {} s",
            stall.as_secs()
        ))),
        Ok(Err(e)) => Err(ReadError::Io(format!("body broke off: {e}"))),
        Ok(Ok(chunk)) => Ok(chunk),
    }
}

/// GETs an object and streams its body into a fresh `state` per attempt; a body that breaks
/// off or stalls is fetched again, up to `BODY_ATTEMPTS` times. Answers the final state and
/// what S3 said about the object.
async fn get_streamed<S>(
    client: &Client,
    loc: &S3Location,
    stall: Duration,
    mut fresh: impl FnMut() -> Result<S, ReadError>,
    mut feed: impl FnMut(&mut S, &[u8]) -> Result<(), ReadError>,
) -> Result<(S, ObjectRecord), ReadError> {
    let mut last = ReadError::Io("not tried".into());
    for _ in 0..BODY_ATTEMPTS {
        let out = client
            .get_object()
            .bucket(&loc.bucket)
            .key(&loc.key)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let record = record_of(&out);
        let mut body = out.body;
        let mut state = fresh()?;
        let read = loop {
            match next_chunk(&mut body, stall).await {
                Ok(Some(chunk)) => feed(&mut state, &chunk)?,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match read {
            Ok(()) => return Ok((state, record)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn read_digest(
    client: Client,
    loc: S3Location,
    stall: Duration,
) -> Result<StoredObject, ReadError> {
    let (bytes, record) = get_streamed(
        &client,
        &loc,
        stall,
        || Ok(Vec::new()),
        |bytes: &mut Vec<u8>, chunk| {
            bytes.extend_from_slice(chunk);
            if bytes.len() as u64 > MAX_DIGEST_STORED {
                return Err(ReadError::Io(format!(
                    "larger than {MAX_DIGEST_STORED} bytes"
                )));
            }
            Ok(())
        },
    )
    .await?;
    let record = ObjectRecord {
        sha256: Some(hex::encode(sha2::Sha256::digest(&bytes))),
        ..record
    };
    Ok(StoredObject {
        bytes,
        facts: DigestFacts::from(&record),
        record,
    })
}

async fn hash_log(
    client: Client,
    loc: S3Location,
    stall: Duration,
) -> Result<GzOutcome, ReadError> {
    let fresh = || Ok(Inflater::new(Limits::LOG));
    let (inflater, _) = get_streamed(&client, &loc, stall, fresh, |i: &mut Inflater, chunk| {
        i.update(chunk);
        Ok(())
    })
    .await?;
    Ok(inflater.finish().0)
}

/// Streams an object into `path` through a `.part` file renamed when complete, hashing the
/// stored bytes on the way.
async fn download_one(
    client: Client,
    (loc, path): (S3Location, std::path::PathBuf),
    stall: Duration,
) -> Result<ObjectRecord, ReadError> {
    use std::io::Write as _;
    let io = |e: std::io::Error| ReadError::Io(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut part = path.clone().into_os_string();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let fresh = || {
        Ok((
            std::fs::File::create(&part).map_err(io)?,
            sha2::Sha256::new(),
        ))
    };
    let feed = |(file, sha): &mut (std::fs::File, sha2::Sha256), chunk: &[u8]| {
        sha.update(chunk);
        file.write_all(chunk).map_err(io)
    };
    match get_streamed(&client, &loc, stall, fresh, feed).await {
        Ok(((file, sha), record)) => {
            file.sync_all().map_err(io)?;
            std::fs::rename(&part, &path).map_err(io)?;
            Ok(ObjectRecord {
                sha256: Some(hex::encode(sha.finalize())),
                ..record
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

fn record_of(out: &aws_sdk_s3::operation::get_object::GetObjectOutput) -> ObjectRecord {
    ObjectRecord {
        size: out.content_length().and_then(|n| u64::try_from(n).ok()),
        etag: out.e_tag().map(str::to_owned),
        version_id: out.version_id().map(str::to_owned),
        sha256: None,
        metadata: out
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl ObjectSource for S3Source {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn bucket(&self) -> Option<String> {
        Some(self.bucket.clone())
    }

    fn list(
        &self,
        request: &ListRequest,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        self.runtime.block_on(self.list_all(request, each))
    }

    fn read_digests(
        &self,
        keys: &[String],
        progress: &Progress,
    ) -> Vec<Result<StoredObject, ReadError>> {
        let items: Vec<_> = keys
            .iter()
            .map(|k| S3Location::new(&self.bucket, k))
            .collect();
        let stall = self.stall;
        self.run_all(progress, items, move |c, i| read_digest(c, i, stall))
    }

    /// Log files in other buckets (a trail moved between buckets) are read too: S3 has them.
    fn hash_logs(
        &self,
        _bucket: &str,
        locations: &[&S3Location],
        progress: &Progress,
    ) -> Vec<Result<GzOutcome, ReadError>> {
        let stall = self.stall;
        // Cloned as each one is started, so only those in flight exist twice.
        let items = locations.iter().map(|&l| l.clone());
        self.run_all(progress, items, move |c, i| hash_log(c, i, stall))
    }

    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_folders_cover_the_range() {
        let s: Timestamp = "2026-01-30T23:00:00Z".parse().unwrap();
        let e: Timestamp = "2026-02-01T01:00:00Z".parse().unwrap();
        assert_eq!(
            days(s, e).collect::<Vec<_>>(),
            ["2026/01/30", "2026/01/31", "2026/02/01"]
        );
        assert_eq!(days(s, s).count(), 1);
    }
}
