//! A CloudTrail bucket read straight from S3 (or an S3-compatible server).
//!
//! Listing follows the requested range: the account folders of every trail under the prefix
//! are found once (one listing that jumps over each of them), Regions and object types with
//! delimited listings, then only the day folders in range are listed. Every paginated answer
//! is checked page by page ([`super::pages`]). Reads run as tokio tasks, at most
//! `concurrency` at a time, so network latency overlaps; each log body is inflated and hashed
//! as it streams in, so memory is bounded by the concurrency, not the corpus. An object that
//! cannot be read (access denied, an error that persists through the SDK's retries, a body
//! that stalls or comes slower than the minimum rate) is "not verified", never "valid".
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::EncodingType;
use aws_sdk_s3::Client;
use futures_util::{stream, StreamExt, TryStreamExt};
use jiff::{Timestamp, ToSpan};
use sha2::Digest as _;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::adaptive::{send, Gate, ThrottlingIsRetriedThroughTheWindow};
use super::aws::{load, AwsError, AwsOptions, Failure, NoRetryWhereNothingListens, Operation};
use super::pages::Pager;
use super::progress::{Observer, Phase, Progress, Stored};
use super::{
    InflatedLog, ListRequest, ObjectSource, ReadError, ReadFailure, SourceError, StoredObject,
    VersionStore,
};
use crate::core::aimd::Adaptation;
use crate::core::custody::{Custody, ListedVersion};
use crate::core::evidence::{DigestFacts, ObjectRecord};
use crate::core::gz::{GzOutcome, Inflater, Limits};
use crate::core::layout::{is_account, is_org_id};
use crate::core::types::{form_decode, S3Location};

/// Default number of requests in flight at most (the ceiling of the adaptive window, see
/// [`crate::core::aimd`]). Enough to hide 100 ms of latency per request (benches/compare.sh
/// measures 20 and 100 ms); S3 serves thousands of GETs per second per prefix, and when it
/// throttles, the window comes down. Each request in flight holds one body chunk and one
/// inflater at a time: about 40 KB.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Keys asked for in the first page of the search for account folders (see
/// [`S3Source::account_folders`]); each page without one asks for four times more, up to
/// S3's 1,000.
const FIRST_SEARCH_PAGE: i32 = 16;
/// Whole-object attempts when a body breaks off or stalls (the SDK retries the request itself).
/// A body that outlasts its deadline is not tried again: the server is slow, not flaky.
const BODY_ATTEMPTS: usize = 3;
const MAX_DIGEST_STORED: u64 = 64 << 20;
/// The most a deadline is computed for, whatever size a server claims: a log file larger than
/// its inflate budget cannot be valid anyway.
const MAX_BODY_FOR_DEADLINE: u64 = Limits::LOG.max_inflated;
/// Pages one delimited listing (organization or account folders, Regions) may take: a million
/// folders, far beyond any real bucket.
const MAX_FOLDER_PAGES: usize = 1_000;
/// Pages one key's ListObjectVersions may take: 100,000 versions, far beyond what CloudTrail
/// and any overwriting leave.
const MAX_VERSION_PAGES: usize = 100;
/// Pages one listing of keys may take (a day folder, a Region listed without a range, or the
/// search for account folders): 100 million keys.
const MAX_KEY_PAGES: usize = 100_000;

/// What a listing said about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its ETag, quotes included.
    pub etag: Option<String>,
    /// Its size in bytes.
    pub size: Option<u64>,
}

/// A bucket (and optional prefix) on S3.
pub struct S3Source {
    runtime: tokio::runtime::Runtime,
    /// What the listings said about every object, so acquisition can tell a copy on disk
    /// that is the object S3 holds; kept only when asked for ([`S3Source::remembering_listings`]):
    /// verification needs none, and keeps no per-object state.
    listed: Option<Mutex<BTreeMap<String, Listed>>>,
    s3: Requests,
    /// How the client was made; failed calls name its endpoint.
    options: AwsOptions,
    bucket: String,
    /// Without trailing slash; empty for none.
    prefix: String,
    /// The prefix is a trail's own ([`S3Source::trail_prefix`]).
    trail_prefix: bool,
    /// The account folders found, once per run (every listing of a run needs them).
    accounts: OnceCell<BTreeSet<String>>,
    concurrency: usize,
    pace: Pace,
    /// What the GetObject responses said of custody (version, storage class, Object Lock), per
    /// key read, for objects where S3 said more than the defaults ([`Custody::of`]).
    custody: Mutex<HashMap<String, Custody>>,
}

/// The client, and the window of requests in flight every request of the run goes through
/// ([`super::adaptive`]).
#[derive(Clone)]
struct Requests {
    client: Client,
    gate: Arc<Gate>,
}

/// How slow a body may be.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// A body that sends nothing for this long is abandoned (and fetched again).
    stall: Duration,
    /// Bytes per second a body must average over its whole length.
    min_rate: u64,
}

impl Pace {
    /// How long a body of `size` bytes may take in all: the stall allowance plus its size at
    /// the minimum rate.
    fn allowance(self, size: u64) -> Duration {
        let size = size.min(MAX_BODY_FOR_DEADLINE);
        self.stall + Duration::from_secs(size.div_ceil(self.min_rate.max(1)))
    }
}

impl S3Source {
    /// Connects to the bucket, finding its Region unless a custom endpoint is used. Fails when
    /// AWS cannot be asked at all (no credentials, no connection).
    pub fn connect(
        options: &AwsOptions,
        bucket: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Result<Self, SourceError> {
        let runtime = super::aws::runtime(true)?;
        let client = runtime.block_on(bucket_client(options, bucket))?;
        let concurrency = concurrency.max(1);
        Ok(S3Source {
            runtime,
            listed: None,
            s3: Requests {
                client,
                gate: Gate::new(concurrency),
            },
            options: options.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            trail_prefix: false,
            accounts: OnceCell::new(),
            concurrency,
            pace: Pace {
                stall: options.read_timeout,
                min_rate: options.min_rate,
            },
            custody: Mutex::default(),
        })
    }

    /// What throttling the run met, and how the number of requests in flight adapted to it
    /// (starting at the concurrency given to [`S3Source::connect`], its ceiling).
    pub fn adaptation(&self) -> Adaptation {
        self.s3.gate.adaptation()
    }

    /// The prefix is one trail's own (`validate-logs`): only `PREFIX/AWSLogs/` is listed, and
    /// no other trail is searched for.
    pub fn trail_prefix(mut self) -> Self {
        self.trail_prefix = true;
        self
    }

    /// Runs one job per item as tokio tasks, at most `concurrency` at once; results come back
    /// in input order. Jobs finish in any order, so one slow response does not hold the next
    /// ones back.
    fn run_all<T, I, O, F, Fut>(
        &self,
        progress: &Progress<'_>,
        items: T,
        job: F,
    ) -> Vec<Result<O, ReadError>>
    where
        T: IntoIterator<Item = I>,
        T::IntoIter: ExactSizeIterator,
        I: Send + 'static,
        O: Stored + Send + 'static,
        F: Fn(Requests, I) -> Fut,
        Fut: Future<Output = Result<O, ReadError>> + Send + 'static,
    {
        let s3 = self.s3.clone();
        let items = items.into_iter();
        let mut done: Vec<(usize, Result<O, ReadError>)> = self.runtime.block_on(async {
            stream::iter(items.enumerate())
                .map(|(i, item)| {
                    let task = tokio::spawn(job(s3.clone(), item));
                    async move { (i, task.await) }
                })
                .buffer_unordered(self.concurrency)
                .map(|(i, joined)| {
                    let result = joined.unwrap_or_else(|e| {
                        Err(ReadFailure::Worker {
                            message: e.to_string(),
                        }
                        .into())
                    });
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
        observer: &dyn Observer,
    ) -> Result<(), SourceError> {
        let mut account_folders: Vec<&String> = self
            .accounts
            .get_or_try_init(|| self.account_folders(observer))
            .await?
            .iter()
            .collect();
        account_folders.retain(|f| {
            let account = f
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            request.accounts.is_empty() || request.accounts.iter().any(|a| a == account)
        });
        let ty = request.objects.folder();
        // Every account's Regions at once (an organization's bucket has hundreds of accounts,
        // each a round trip), in account order, the first failure in that order. A key
        // directly in the type's folder, beside the Regions', is handed on (it belongs nowhere).
        let mut region_folders: Vec<String> = stream::iter(account_folders)
            .map(|account| async move { self.list(&format!("{account}{ty}/"), true, each).await })
            .buffered(self.concurrency)
            .try_concat()
            .await?;
        region_folders.retain(|region| {
            let name = region
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            request.regions.is_empty() || request.regions.iter().any(|r| r == name)
        });
        // The range's day folders (and what is out of place above them), or each Region's
        // whole history.
        let days: Option<BTreeSet<String>> =
            request.range.map(|(start, end)| days(start, end).collect());
        // Each page of keys is handed on as it comes: only the pages being read are held.
        let mut listed = stream::iter(region_folders)
            .map(|region| {
                let days = &days;
                async move {
                    match days {
                        None => self.list_history(&region, each).await,
                        Some(days) => self.list_range(&region, (days, request.to_now), each).await,
                    }
                }
            })
            .buffer_unordered(self.concurrency);
        while let Some(listed) = listed.next().await {
            listed?;
        }
        Ok(())
    }

    /// A Region's folder for a range: its day folders of the range (`days`, `YYYY/MM/DD`), and
    /// whatever is out of place above them. Found by the red team: a run over a range (every
    /// incremental run, the watch) listed only the day folders, so an object directly in a
    /// Region's, a year's or a month's folder, or under a folder that is no year, month or day
    /// (`2026/01/1/`, a Region folder named ``), was never seen. The Region's folder and those
    /// of the range's years and months are listed delimited (one request each, as many pages
    /// as they take), while the day folders are listed: their keys are handed on, and a
    /// sub-folder that is no year, month or real day is listed whole. A year, month or day
    /// folder before the range is not listed: a run over a range answers for its range
    /// (SECURITY.md); nor one after it, unless the range goes on to now (`to_now`: every
    /// incremental run, the watch), where whatever is dated after it cannot be CloudTrail's yet
    /// and is listed whole.
    async fn list_range(
        &self,
        region: &str,
        (days, to_now): (&BTreeSet<String>, bool),
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        let listed = self.list_whole(days.iter().map(|day| format!("{region}{day}/")), each);
        let above = self.out_of_place(region, (days, to_now), each);
        futures_util::future::try_join(listed, above)
            .await
            .map(drop)
    }

    /// Hands on the keys directly in a Region's folder and in the folders of the range's
    /// years and months (`days`), and every key under a folder among them that is no year,
    /// month or real day, or (`to_now`) that is dated after the range (see
    /// [`Self::list_range`]).
    async fn out_of_place(
        &self,
        region: &str,
        (days, to_now): (&BTreeSet<String>, bool),
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        // `YYYY`, `YYYY/MM` and `YYYY/MM/DD` compare as the times they name.
        let after = |path: &str| {
            to_now
                && days
                    .last()
                    .is_some_and(|last| path > last.as_str() && !last.starts_with(path))
        };
        // The Region's folder holds years (`YYYY`), a year months (`YYYY/MM`), a month days.
        // The Region's folder and those of the range's years and months are listed all at
        // once, delimited: the range's are known from `days` without waiting for the level
        // above (one round trip, not three, before the plan can be made).
        let levels: BTreeSet<(usize, &str)> = std::iter::once((0, Some("")))
            .chain(days.iter().flat_map(|d| [(1, d.get(..4)), (2, d.get(..7))]))
            .filter_map(|(depth, path)| Some((depth, path?)))
            .collect();
        let listed: Vec<(usize, Vec<String>)> = stream::iter(levels)
            .map(|(depth, path)| async move {
                let folder = match path {
                    "" => region.to_owned(),
                    _ => format!("{region}{path}/"),
                };
                Ok::<_, SourceError>((depth, self.list(&folder, true, each).await?))
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut whole: Vec<String> = Vec::new();
        for (depth, subs) in listed {
            for sub in subs {
                // `YYYY`, `YYYY/MM` or `YYYY/MM/DD` below the Region's folder.
                let path = sub
                    .strip_prefix(region)
                    .and_then(|p| p.strip_suffix('/'))
                    .unwrap_or_default();
                match dated(path, depth) {
                    None => whole.push(sub),
                    // A run to now lists what is dated after its range: nothing, unless put
                    // there (a folder `2099/` hid from every incremental run).
                    Some(_) if after(path) => whole.push(sub),
                    // The range's years and months are listed above, its days by
                    // `list_range`; those outside the range, not.
                    Some(_) => {}
                }
            }
        }
        self.list_whole(whole, each).await
    }

    /// Lists every key under each of `folders`, all at once (as many as the source allows).
    async fn list_whole(
        &self,
        folders: impl IntoIterator<Item = String>,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        stream::iter(folders)
            .map(|folder| async move { self.list(&folder, false, each).await.map(drop) })
            .buffer_unordered(self.concurrency)
            .try_for_each(|()| async { Ok(()) })
            .await
    }

    /// The source's prefix as a listing prefix: empty, or ending with `/`.
    fn start(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// Every account folder (`[prefix/]AWSLogs/[o-ORG/]ACCOUNT/`) under the source's prefix,
    /// however deep its `AWSLogs/` folder and however much else the bucket holds: trails may
    /// write under prefixes of their own (`logs/prod/AWSLogs/...`), and a bucket-wide run must
    /// find them all or fail. One listing of every key under the prefix, in key order, that
    /// jumps over each account folder as soon as it meets one: its cost is one request per
    /// 1,000 objects outside account folders (three more while the pages grow to that) plus one
    /// per account folder, never the trails' own objects. Nothing is searched for inside an account folder (a trail whose prefix
    /// lies there is found when named by its prefix). For a trail's own prefix
    /// ([`S3Source::trail_prefix`]) only its `AWSLogs/` folder is listed.
    async fn account_folders(
        &self,
        observer: &dyn Observer,
    ) -> Result<BTreeSet<String>, SourceError> {
        let mut start = self.start();
        if self.trail_prefix {
            start.push_str("AWSLogs/");
        }
        let target = format!("s3://{}/{start}", self.bucket);
        let fail = |problem| SourceError::Pages {
            operation: Operation::ListObjectsV2,
            target: target.clone(),
            problem,
        };
        let progress = Progress::start(observer, Phase::AwsLogsFoldersSearched, None);
        let mut found = BTreeSet::new();
        let mut pager = Pager::new(MAX_KEY_PAGES);
        let (mut after, mut token) = (None::<String>, None::<String>);
        // Only a page's keys up to the first in an account folder are used, and most buckets
        // hold little else: a page of S3's 1,000 keys took 36 ms of a 300 ms incremental run
        // here, and an organization's bucket paid 1,000 keys per member account. Pages start
        // small and grow while they meet no account folder (a bucket full of other objects).
        let mut size = FIRST_SEARCH_PAGE;
        loop {
            let page = self
                .page(&start, false, (after.take(), token.take()), Some(size))
                .await?;
            let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
            let jump = keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| account_folder(k).map(|folder| (i, folder)));
            let seen = jump.map_or(keys.len(), |(i, _)| i + 1);
            if jump.is_none() {
                size = (size * 4).min(1000);
            }
            pager
                .entries(keys.iter().take(seen).copied())
                .map_err(fail)?;
            progress.add(seen);
            match jump {
                Some((_, folder)) => {
                    // Every key in the folder starts `.../ACCOUNT/`; the first key after them
                    // all is at least `.../ACCOUNT0` ('0' follows '/'), and that key itself
                    // holds no folder.
                    let beyond = format!("{}0", folder.trim_end_matches('/'));
                    found.insert(folder.to_owned());
                    pager.restart_after(&beyond).map_err(fail)?;
                    after = Some(beyond);
                }
                None => {
                    match pager
                        .next(page.truncated, page.token.as_deref())
                        .map_err(fail)?
                    {
                        Some(t) => token = Some(t),
                        None => return Ok(found),
                    }
                }
            }
        }
    }

    /// Lists `prefix` to its end, handing every key to `each` page by page; answers the
    /// sub-folders of a delimited listing. Each page must go beyond the last, with a token
    /// never given before, within a bounded number of pages.
    async fn list(
        &self,
        prefix: &str,
        delimited: bool,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<String>, SourceError> {
        let fail = |problem| SourceError::Pages {
            operation: Operation::ListObjectsV2,
            target: format!("s3://{}/{prefix}", self.bucket),
            problem,
        };
        let mut pager = Pager::new(if delimited {
            MAX_FOLDER_PAGES
        } else {
            MAX_KEY_PAGES
        });
        let mut folders = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .page(prefix, delimited, (None, token.take()), None)
                .await?;
            let next = pager
                .next(page.truncated, page.token.as_deref())
                .map_err(fail)?;
            let keys = page.objects.iter().map(|o| o.key.as_str());
            let subfolders = page.folders.iter().map(String::as_str);
            pager.entries(keys.chain(subfolders)).map_err(fail)?;
            self.hand_on(&page, each);
            folders.extend(page.folders);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(folders),
            }
        }
    }

    /// Hands `each` the keys of a listing page, recording what the listing said of them when
    /// asked to ([`S3Source::listed`]).
    fn hand_on(&self, page: &Page, each: &(dyn Fn(String) + Sync)) {
        for o in &page.objects {
            // The empty object the S3 console makes for a "folder" holds nothing to report.
            // A key ending in `/` with a body is an object like any other: found by the red
            // team, a whole log file stored at `<log name>/` was skipped.
            if o.key.ends_with('/') && o.size == Some(0) {
                continue;
            }
            if let Some(mut seen) = self.listed.as_ref().and_then(|m| m.lock().ok()) {
                let (etag, size) = (o.etag.clone(), o.size);
                seen.insert(o.key.clone(), Listed { etag, size });
            }
            each(o.key.clone());
        }
    }

    /// Lists everything under a Region's folder (its whole history: a run without a range).
    /// Most histories fit in one page. A longer one, listed page after page, would cost a
    /// round trip per 1,000 keys one after another (a year of one trail's hourly digests is
    /// 9 pages; its log files, hundreds): instead its year folders, then their month folders,
    /// are listed, and every month at once. Every key is still listed: those directly in the
    /// Region's folder or in a year folder come with the delimited listings, and any other
    /// folder at those levels is gone through the same way as a year or a month.
    async fn list_history(
        &self,
        folder: &str,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<(), SourceError> {
        let first = self.page(folder, false, (None, None), None).await?;
        if !first.truncated {
            let mut pager = Pager::new(1);
            let keys = first.objects.iter().map(|o| o.key.as_str());
            pager
                .entries(keys)
                .and_then(|()| pager.next(false, None).map(drop))
                .map_err(|problem| SourceError::Pages {
                    operation: Operation::ListObjectsV2,
                    target: format!("s3://{}/{folder}", self.bucket),
                    problem,
                })?;
            self.hand_on(&first, each);
            return Ok(());
        }
        let years = self.list(folder, true, each).await?;
        let months: Vec<String> = stream::iter(years)
            .map(|year| async move { self.list(&year, true, each).await })
            .buffer_unordered(self.concurrency)
            .try_concat()
            .await?;
        self.list_whole(months, each).await
    }

    /// One ListObjectsV2 request, its keys asked for URL-encoded and decoded here. XML 1.0
    /// cannot carry every character a key may hold: found by the red team, one key with a
    /// control character anywhere in the bucket made every listing fail, so every run stopped.
    async fn page(
        &self,
        prefix: &str,
        delimited: bool,
        (start_after, token): (Option<String>, Option<String>),
        max_keys: Option<i32>,
    ) -> Result<Page, SourceError> {
        let request = |watch| {
            self.s3
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url)
                .set_start_after(start_after.clone())
                .set_continuation_token(token.clone())
                .set_delimiter(delimited.then(|| "/".to_owned()))
                .set_max_keys(max_keys)
                .customize()
                .interceptor(watch)
                .send()
        };
        let target = || format!("s3://{}/{prefix}", self.bucket);
        let page = match send(&self.s3.gate, request).await {
            Ok((page, _)) => page,
            Err(e) => {
                return Err(
                    AwsError::new(&e, Operation::ListObjectsV2, target(), &self.options).into(),
                )
            }
        };
        // A server that does not encode says so by leaving out `EncodingType` (as botocore
        // reads it): its keys are taken as they come.
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        let decode = |key: &str| {
            if !encoded {
                return Ok(key.to_owned());
            }
            form_decode(key).ok_or_else(|| SourceError::Undecodable {
                operation: Operation::ListObjectsV2,
                target: target(),
                text: key.to_owned(),
            })
        };
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(|k| (k, o)))
            .map(|(k, o)| {
                Ok(PageObject {
                    key: decode(k)?,
                    size: o.size().and_then(|n| u64::try_from(n).ok()),
                    etag: o.e_tag().map(str::to_owned),
                })
            })
            .collect::<Result<_, SourceError>>()?;
        let folders = page
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            objects,
            folders,
            truncated: page.is_truncated() == Some(true),
            token: page.next_continuation_token().map(str::to_owned),
        })
    }
}

/// A ListObjectsV2 answer, decoded.
struct Page {
    /// The objects listed.
    objects: Vec<PageObject>,
    /// The sub-folders of a delimited listing (`CommonPrefixes`).
    folders: Vec<String>,
    /// Whether S3 says there is more (`IsTruncated`).
    truncated: bool,
    /// What to ask for the rest with (`NextContinuationToken`).
    token: Option<String>,
}

/// An object of a listing page.
struct PageObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
}

/// The account folder (`...AWSLogs/[o-ORG/]ACCOUNT/`) a key lies in, if it lies in one: the
/// first `AWSLogs/` path segment followed by an account id (or an organization id and an
/// account id) that are folders of the key.
fn account_folder(key: &str) -> Option<&str> {
    let mut from = 0;
    loop {
        let at = from + key.get(from..)?.find("AWSLogs/")?;
        from = at + 1;
        if at > 0 && key.as_bytes().get(at - 1) != Some(&b'/') {
            continue;
        }
        let below = at + "AWSLogs/".len();
        let mut segments = key.get(below..)?.split('/');
        let first = segments.next()?;
        let folder_end = if is_org_id(first) {
            segments
                .next()
                .filter(|a| is_account(a))
                .map(|a| below + first.len() + 1 + a.len() + 1)
        } else {
            is_account(first).then(|| below + first.len() + 1)
        };
        // The account id must be a folder: something follows its slash.
        if let Some(end) = folder_end.filter(|&end| end < key.len()) {
            return key.get(..end);
        }
    }
}

/// How fast S3 should restore archived objects (`RestoreObject`'s tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTier {
    /// Hours (GLACIER: 3-5, DEEP_ARCHIVE: within 12).
    Standard,
    /// Cheapest, slowest (GLACIER: 5-12 hours, DEEP_ARCHIVE: within 48).
    Bulk,
}

/// Where a restore stands after asking for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreState {
    /// S3 took the request (or the object is restored already).
    Requested,
    /// A restore was already under way (`RestoreAlreadyInProgress`).
    InProgress,
}

/// A restore request holds no object body.
impl Stored for RestoreState {
    fn stored_bytes(&self) -> u64 {
        0
    }
}

impl S3Source {
    /// Asks S3 to restore each of `keys` (archived objects) for `days` days at `tier`. Results
    /// in input order.
    pub fn restore(
        &self,
        keys: &[String],
        days: i32,
        tier: RestoreTier,
    ) -> Vec<Result<RestoreState, ReadError>> {
        let bucket = self.bucket.clone();
        let items = keys.iter().map(|k| (bucket.clone(), k.clone()));
        self.run_all(
            &Progress::hidden(),
            items,
            move |s3, (bucket, key)| async move {
                let tier = match tier {
                    RestoreTier::Standard => aws_sdk_s3::types::Tier::Standard,
                    RestoreTier::Bulk => aws_sdk_s3::types::Tier::Bulk,
                };
                let job = aws_sdk_s3::types::GlacierJobParameters::builder()
                    .tier(tier)
                    .build()
                    .map_err(|e| ReadFailure::Request {
                        code: None,
                        status: None,
                        message: e.to_string(),
                    })?;
                let request = aws_sdk_s3::types::RestoreRequest::builder()
                    .days(days)
                    .glacier_job_parameters(job)
                    .build();
                let restore = |watch| {
                    s3.client
                        .restore_object()
                        .bucket(&bucket)
                        .key(&key)
                        .restore_request(request.clone())
                        .customize()
                        .interceptor(watch)
                        .send()
                };
                match send(&s3.gate, restore).await {
                    Ok(_) => Ok(RestoreState::Requested),
                    Err(e) if e.code() == Some("RestoreAlreadyInProgress") => {
                        Ok(RestoreState::InProgress)
                    }
                    Err(e) => Err(classify(&e)),
                }
            },
        )
    }

    /// Keeps what S3 said of `key`'s custody, if it said more than the defaults.
    fn remember_custody(&self, key: &str, record: &ObjectRecord) {
        if let (Some(c), Ok(mut all)) = (Custody::of(record), self.custody.lock()) {
            all.insert(key.to_owned(), c);
        }
    }

    /// Remembers what the listings said about every object, for [`S3Source::listed`].
    pub fn remembering_listings(mut self) -> Self {
        self.listed = Some(Default::default());
        self
    }

    /// Whether `key` lies under the source's prefix: whether its listings can have it.
    pub fn covers(&self, key: &str) -> bool {
        key.starts_with(&self.start())
    }

    /// What a listing said about `key`, if listings are remembered.
    pub fn listed(&self, key: &str) -> Option<Listed> {
        self.listed.as_ref()?.lock().ok()?.get(key).cloned()
    }

    /// Downloads objects (the current version, or the version given) to their destinations,
    /// hashing the stored bytes on the way. Results in input order.
    pub fn download<D: Destination>(
        &self,
        items: Vec<(S3Location, Option<String>, D)>,
        observer: &dyn Observer,
    ) -> Vec<Result<ObjectRecord, ReadError>> {
        let pace = self.pace;
        let total = Some(items.len() as u64);
        let progress = Progress::start(observer, Phase::ObjectsDownloaded, total);
        self.run_all(&progress, items, move |c, i| download_one(c, i, pace))
    }
}

/// The `YYYY/MM/DD` folders from `start`'s day to `end`'s day.
/// Whether `path` below a Region's folder is a proper year (`depth` 0: `YYYY`), month (1:
/// `YYYY/MM`) or day (2: `YYYY/MM/DD`, a real date) folder's: `None` when it is not, else
/// whether it is a day's.
fn dated(path: &str, depth: usize) -> Option<bool> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = path.split('/').collect();
    let proper = match parts.as_slice() {
        [y] => depth == 0 && digits(y, 4),
        [y, m] => depth == 1 && digits(y, 4) && digits(m, 2) && ("01"..="12").contains(m),
        [y, m, d] => {
            depth == 2
                && digits(y, 4)
                && digits(m, 2)
                && digits(d, 2)
                && jiff::civil::Date::strptime("%Y/%m/%d", path).is_ok()
        }
        _ => false,
    };
    proper.then_some(depth == 2)
}

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
/// custom endpoint the Region hardly matters, so an answer that is an error (a caller may list
/// the bucket without being allowed GetBucketLocation) falls back to the configured Region.
/// No answer at all (no credentials, no connection) is an error: the listing would fail the
/// same way, after its own retries.
async fn bucket_client(options: &AwsOptions, bucket: &str) -> Result<Client, SourceError> {
    let mut base = load(options, None).await;
    if base.region().is_none() {
        // Like the AWS CLI: with no Region configured, ask us-east-1 where the bucket is.
        base = load(options, Some("us-east-1")).await;
    }
    let configured = s3_client(&base, options);
    if options.custom_endpoint() {
        return Ok(configured);
    }
    let region = match configured.get_bucket_location().bucket(bucket).send().await {
        Ok(out) => match out.location_constraint().map(|c| c.as_str().to_owned()) {
            Some(r) if !r.is_empty() => r,
            _ => "us-east-1".to_owned(),
        },
        Err(e) => {
            let err = AwsError::new(
                &e,
                Operation::GetBucketLocation,
                format!("s3://{bucket}"),
                options,
            );
            return match err.failure {
                Failure::Service | Failure::Response => Ok(configured),
                _ => Err(err.into()),
            };
        }
    };
    if base.region().map(|r| r.as_ref()) == Some(region.as_str()) {
        return Ok(configured);
    }
    Ok(s3_client(&load(options, Some(&region)).await, options))
}

fn s3_client(config: &aws_config::SdkConfig, options: &AwsOptions) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(options.custom_endpoint())
        .retry_classifier(NoRetryWhereNothingListens)
        .retry_classifier(ThrottlingIsRetriedThroughTheWindow)
        .build();
    Client::from_conf(conf)
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &SdkError<E>) -> ReadError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (status, err.code()) {
        (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => ReadError::NotFound,
        (Some(403), _) | (_, Some("AccessDenied")) => ReadFailure::AccessDenied.into(),
        (status, code) => ReadFailure::Request {
            code: code.map(str::to_owned),
            status,
            message: DisplayErrorContext(err).to_string(),
        }
        .into(),
    }
}

/// An object in an archive storage class: S3 answers GetObject with `InvalidObjectState` (HTTP
/// 403, which is no refusal of access) until it is restored.
fn archived(err: &SdkError<GetObjectError>) -> Option<ReadError> {
    match err.as_service_error()? {
        GetObjectError::InvalidObjectState(e) => Some(ReadError::Archived(
            e.storage_class()
                .map_or("an archive storage class", |c| c.as_str())
                .to_owned(),
        )),
        _ => None,
    }
}

/// The next chunk of a body, within the stall allowance and before the body's deadline.
async fn next_chunk(
    body: &mut aws_sdk_s3::primitives::ByteStream,
    stall: Duration,
    deadline: Instant,
) -> Result<Option<bytes::Bytes>, BodyError> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(stall.min(left), body.try_next()).await {
        Err(_) if left <= stall => Err(BodyError::Deadline),
        Err(_) => Err(BodyError::Retry(ReadFailure::Stalled {
            secs: stall.as_secs(),
        })),
        Ok(Err(e)) => Err(BodyError::Retry(ReadFailure::BrokeOff {
            message: e.to_string(),
        })),
        Ok(Ok(chunk)) => Ok(chunk),
    }
}

/// Why a body was not read to its end.
enum BodyError {
    /// Worth fetching again (a break, a stall).
    Retry(ReadFailure),
    /// The body outlasted its deadline: not fetched again.
    Deadline,
    /// What the bytes were fed to refused them.
    Feed(ReadError),
}

/// GETs an object and streams its body into a fresh `state` per attempt; a body that breaks
/// off or stalls is fetched again, up to `BODY_ATTEMPTS` times. Each attempt's body must be
/// complete within [`Pace::allowance`] of its size (the size S3 announces, at most `max_size`,
/// which is also taken when none is announced). Answers the final state and what S3 said about
/// the object.
async fn get_streamed<S>(
    s3: &Requests,
    loc: &S3Location,
    version: Option<&str>,
    pace: Pace,
    max_size: u64,
    mut fresh: impl FnMut() -> Result<S, ReadError>,
    mut feed: impl FnMut(&mut S, &[u8]) -> Result<(), ReadError>,
) -> Result<(S, ObjectRecord), ReadError> {
    // Replaced by the first failed attempt before it can be returned (BODY_ATTEMPTS > 0).
    let mut last = ReadFailure::NoResult;
    for _ in 0..BODY_ATTEMPTS {
        let get = |watch| {
            s3.client
                .get_object()
                .bucket(&loc.bucket)
                .key(&loc.key)
                .set_version_id(version.map(str::to_owned))
                .customize()
                .interceptor(watch)
                .send()
        };
        // Held while the body comes: the request is in flight until then.
        let (out, pass) = send(&s3.gate, get)
            .await
            .map_err(|e| archived(&e).unwrap_or_else(|| classify(&e)))?;
        let record = record_of(&out);
        let size = record.size.unwrap_or(max_size).min(max_size);
        let allowance = pace.allowance(size);
        let deadline = Instant::now() + allowance;
        let mut body = out.body;
        let mut state = fresh()?;
        let read = loop {
            match next_chunk(&mut body, pace.stall, deadline).await {
                Ok(Some(chunk)) => {
                    if let Err(e) = feed(&mut state, &chunk) {
                        break Err(BodyError::Feed(e));
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match read {
            Ok(()) => return Ok((state, record)),
            Err(BodyError::Retry(e)) => {
                pass.timed_out();
                last = e;
            }
            Err(BodyError::Feed(e)) => return Err(e),
            Err(BodyError::Deadline) => {
                return Err(ReadFailure::Deadline {
                    size,
                    secs: allowance.as_secs(),
                    min_rate_kib: pace.min_rate / 1024,
                }
                .into())
            }
        }
    }
    Err(last.into())
}

/// A download that could not be written to the evidence directory.
fn write_failure(e: &std::io::Error) -> ReadError {
    ReadFailure::Write {
        kind: e.kind(),
        detail: e.to_string(),
    }
    .into()
}

async fn read_digest(
    s3: Requests,
    (loc, version): (S3Location, Option<String>),
    pace: Pace,
) -> Result<StoredObject, ReadError> {
    let (bytes, record) = get_streamed(
        &s3,
        &loc,
        version.as_deref(),
        pace,
        MAX_DIGEST_STORED,
        || Ok(Vec::new()),
        |bytes: &mut Vec<u8>, chunk| {
            bytes.extend_from_slice(chunk);
            if bytes.len() as u64 > MAX_DIGEST_STORED {
                return Err(ReadFailure::TooLarge {
                    max: MAX_DIGEST_STORED,
                }
                .into());
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
    s3: Requests,
    (loc, version): (S3Location, Option<String>),
    pace: Pace,
) -> Result<(GzOutcome, ObjectRecord), ReadError> {
    let fresh = || Ok(Inflater::new(Limits::LOG));
    let (inflater, record) = get_streamed(
        &s3,
        &loc,
        version.as_deref(),
        pace,
        MAX_BODY_FOR_DEADLINE,
        fresh,
        feed_inflater,
    )
    .await?;
    Ok((inflater.finish().0, record))
}

fn feed_inflater(i: &mut Inflater, chunk: &[u8]) -> Result<(), ReadError> {
    i.update(chunk);
    Ok(())
}

/// [`hash_log`] keeping the inflated bytes, with what S3 said of the object.
async fn inflate_log(
    s3: Requests,
    loc: S3Location,
    pace: Pace,
) -> Result<(InflatedLog, ObjectRecord), ReadError> {
    let fresh = || Ok(Inflater::new(Limits::LOG).keep_output());
    let (inflater, record) = get_streamed(
        &s3,
        &loc,
        None,
        pace,
        MAX_BODY_FOR_DEADLINE,
        fresh,
        feed_inflater,
    )
    .await?;
    let log = InflatedLog {
        inflated: inflater.finish_kept().ok_or(ReadFailure::NoResult)?,
        version_id: record.version_id.clone(),
    };
    Ok((log, record))
}

/// Where one download goes: a new file for each attempt, put in place once complete. The
/// source only streams bytes into it; where and how files are made is the caller's.
pub trait Destination: Send + 'static {
    /// A new, empty file for an attempt.
    fn create(&mut self) -> Result<std::fs::File, ReadError>;
    /// The last file made is complete (and synced): put it in place.
    fn keep(&mut self) -> Result<(), ReadError>;
    /// The object could not be read: take away what `create` made.
    fn discard(&mut self);
}

/// Streams an object into its destination, hashing the stored bytes on the way.
async fn download_one<D: Destination>(
    s3: Requests,
    (loc, version, mut dest): (S3Location, Option<String>, D),
    pace: Pace,
) -> Result<ObjectRecord, ReadError> {
    use std::io::Write as _;
    let streamed = {
        let fresh = || Ok((dest.create()?, sha2::Sha256::new()));
        let feed = |(file, sha): &mut (std::fs::File, sha2::Sha256), chunk: &[u8]| {
            sha.update(chunk);
            file.write_all(chunk).map_err(|e| write_failure(&e))
        };
        get_streamed(
            &s3,
            &loc,
            version.as_deref(),
            pace,
            MAX_BODY_FOR_DEADLINE,
            fresh,
            feed,
        )
        .await
    };
    let kept = streamed.and_then(|((file, sha), record)| {
        file.sync_all().map_err(|e| write_failure(&e))?;
        drop(file);
        dest.keep()?;
        Ok(ObjectRecord {
            sha256: Some(hex::encode(sha.finalize())),
            ..record
        })
    });
    if kept.is_err() {
        dest.discard();
    }
    kept
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
        storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
        lock_mode: out.object_lock_mode().map(|m| m.as_str().to_owned()),
        lock_retain_until: out
            .object_lock_retain_until_date()
            .and_then(|t| Timestamp::new(t.secs(), 0).ok()),
        legal_hold: out
            .object_lock_legal_hold_status()
            .map(|h| h.as_str().to_owned()),
        recovered: None,
        gone: None,
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
        observer: &dyn Observer,
    ) -> Result<(), SourceError> {
        self.runtime
            .block_on(self.list_all(request, each, observer))
    }

    fn read_digests(
        &self,
        keys: &[String],
        progress: &Progress<'_>,
    ) -> Vec<Result<StoredObject, ReadError>> {
        let items: Vec<_> = keys
            .iter()
            .map(|k| (S3Location::new(&self.bucket, k), None))
            .collect();
        let pace = self.pace;
        let read = self.run_all(progress, items, move |c, i| read_digest(c, i, pace));
        for (key, stored) in keys.iter().zip(&read) {
            if let Ok(stored) = stored {
                self.remember_custody(key, &stored.record);
            }
        }
        read
    }

    /// Log files in other buckets (a trail moved between buckets) are read too: S3 has them.
    fn hash_logs(
        &self,
        _bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<GzOutcome, ReadError>> {
        let pace = self.pace;
        // Cloned as each one is started, so only those in flight exist twice.
        let items = locations.iter().map(|&l| (l.clone(), None));
        let hashed = self.run_all(progress, items, move |c, i| hash_log(c, i, pace));
        self.remembering_custody(locations, hashed)
    }

    fn remote(&self) -> bool {
        true
    }

    fn take_custody(&self, key: &str) -> Option<Custody> {
        self.custody.lock().ok()?.remove(key)
    }

    fn inflate_logs(
        &self,
        _bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<InflatedLog, ReadError>> {
        let pace = self.pace;
        let items = locations.iter().map(|&l| l.clone());
        let read = self.run_all(progress, items, move |c, i| inflate_log(c, i, pace));
        self.remembering_custody(locations, read)
    }

    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    fn versions(&self) -> Option<&dyn VersionStore> {
        Some(self)
    }
}

impl VersionStore for S3Source {
    fn list_versions(&self, keys: &[String]) -> Vec<Result<Vec<ListedVersion>, ReadError>> {
        let bucket = self.bucket.clone();
        let items = keys.iter().map(|k| (bucket.clone(), k.clone()));
        self.run_all(&Progress::hidden(), items, list_key_versions)
    }

    fn read_digest_versions(
        &self,
        items: &[(String, String)],
    ) -> Vec<Result<StoredObject, ReadError>> {
        let pace = self.pace;
        let items: Vec<_> = items
            .iter()
            .map(|(k, v)| (S3Location::new(&self.bucket, k), Some(v.clone())))
            .collect();
        self.run_all(&Progress::hidden(), items, move |c, i| {
            read_digest(c, i, pace)
        })
    }

    fn hash_log_versions(&self, items: &[(String, String)]) -> Vec<Result<GzOutcome, ReadError>> {
        let pace = self.pace;
        let items: Vec<_> = items
            .iter()
            .map(|(k, v)| (S3Location::new(&self.bucket, k), Some(v.clone())))
            .collect();
        self.run_all(&Progress::hidden(), items, move |c, i| hash_log(c, i, pace))
            .into_iter()
            .map(|hashed| hashed.map(|(outcome, _)| outcome))
            .collect()
    }
}

impl S3Source {
    /// Each read log file's outcome, what S3 said of it kept for its finding (see
    /// `take_custody`): the same whether the run only hashes or also keeps the bytes.
    fn remembering_custody<T>(
        &self,
        locations: &[&S3Location],
        read: Vec<Result<(T, ObjectRecord), ReadError>>,
    ) -> Vec<Result<T, ReadError>> {
        locations
            .iter()
            .zip(read)
            .map(|(l, read)| {
                let (outcome, record) = read?;
                if l.bucket == self.bucket {
                    self.remember_custody(&l.key, &record);
                }
                Ok(outcome)
            })
            .collect()
    }
}

/// A log file read for its records and what S3 said of it.
impl Stored for (InflatedLog, ObjectRecord) {
    fn stored_bytes(&self) -> u64 {
        self.0.stored_bytes()
    }
}

/// A hashed log file and what S3 said of it.
impl Stored for (GzOutcome, ObjectRecord) {
    fn stored_bytes(&self) -> u64 {
        self.0.stored_len
    }
}

/// A listing holds no object body.
impl Stored for Vec<ListedVersion> {
    fn stored_bytes(&self) -> u64 {
        0
    }
}

/// Every version and delete marker of exactly `key` (ListObjectVersions with the key as
/// prefix; longer keys that share it are skipped). Pages are bounded, and a page that hands
/// back the markers it was asked with ends the listing as a failure, not a loop.
async fn list_key_versions(
    s3: Requests,
    (bucket, key): (String, String),
) -> Result<Vec<ListedVersion>, ReadError> {
    let mut out = Vec::new();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    for _ in 0..MAX_VERSION_PAGES {
        let list = |watch| {
            s3.client
                .list_object_versions()
                .bucket(&bucket)
                .prefix(&key)
                .set_key_marker(markers.0.clone())
                .set_version_id_marker(markers.1.clone())
                .customize()
                .interceptor(watch)
                .send()
        };
        let (page, _) = send(&s3.gate, list).await.map_err(|e| classify(&e))?;
        let versions = page.versions().iter().map(|v| {
            (
                v.key(),
                v.version_id(),
                v.last_modified(),
                v.is_latest(),
                false,
            )
        });
        let deleted = page.delete_markers().iter().map(|m| {
            (
                m.key(),
                m.version_id(),
                m.last_modified(),
                m.is_latest(),
                true,
            )
        });
        for (k, id, written, latest, delete_marker) in versions.chain(deleted) {
            if k != Some(key.as_str()) {
                continue;
            }
            let written = written.and_then(|t| Timestamp::new(t.secs(), 0).ok());
            let (Some(id), Some(written)) = (id, written) else {
                continue;
            };
            out.push(ListedVersion {
                version_id: id.to_owned(),
                written,
                latest: latest == Some(true),
                delete_marker,
            });
        }
        let next = (
            page.next_key_marker().map(str::to_owned),
            page.next_version_id_marker().map(str::to_owned),
        );
        // Versions of `key` come first in key order: once a page ends past it, nothing more
        // of it follows.
        let past = page.next_key_marker().is_some_and(|k| k != key);
        if page.is_truncated() != Some(true) || past {
            return Ok(out);
        }
        if next == markers || next.0.is_none() {
            return Err(ReadFailure::Request {
                code: None,
                status: None,
                message: "ListObjectVersions said there is more but gave no new marker".to_owned(),
            }
            .into());
        }
        markers = next;
    }
    Err(ReadFailure::Request {
        code: None,
        status: None,
        message: format!("ListObjectVersions took more than {MAX_VERSION_PAGES} pages for one key"),
    }
    .into())
}

/// A CloudTrail Lake export folder at the source's prefix (`verify-query-results`).
impl super::lake::ExportFolder for S3Source {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.start())
    }

    fn bucket(&self) -> Option<String> {
        Some(self.bucket.clone())
    }

    fn uri(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.start())
    }

    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, ReadError> {
        let loc = S3Location::new(&self.bucket, format!("{}{name}", self.start()));
        let read = get_streamed(
            &self.s3,
            &loc,
            None,
            self.pace,
            max,
            || Ok(Vec::new()),
            |bytes: &mut Vec<u8>, chunk| {
                bytes.extend_from_slice(chunk);
                if bytes.len() as u64 > max {
                    return Err(ReadFailure::TooLarge { max }.into());
                }
                Ok(())
            },
        );
        self.runtime.block_on(read).map(|(bytes, _)| bytes)
    }

    /// A delimited listing of the prefix: its objects, and its sub-folders ending in `/`.
    fn entries(&self) -> Result<Vec<String>, SourceError> {
        let start = self.start();
        let names = Mutex::new(Vec::new());
        let too_many = || SourceError::TooManyEntries {
            folder: super::lake::ExportFolder::describe(self),
            max: super::lake::MAX_FOLDER_ENTRIES,
        };
        let each = |key: String| {
            if let (Some(name), Ok(mut names)) = (key.strip_prefix(&start), names.lock()) {
                if names.len() <= super::lake::MAX_FOLDER_ENTRIES {
                    names.push(name.to_owned());
                }
            }
        };
        let folders = self.runtime.block_on(self.list(&start, true, &each))?;
        let mut names = names
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        names.extend(
            folders
                .iter()
                .filter_map(|f| f.strip_prefix(&start).map(str::to_owned)),
        );
        if names.len() > super::lake::MAX_FOLDER_ENTRIES {
            return Err(too_many());
        }
        Ok(names)
    }

    fn hash_files(
        &self,
        names: &[String],
        progress: &Progress<'_>,
    ) -> Vec<crate::core::lake::ResultRead> {
        let pace = self.pace;
        let start = self.start();
        let items = names
            .iter()
            .map(|n| S3Location::new(&self.bucket, format!("{start}{n}")));
        self.run_all(progress, items, move |c, loc| hash_stored(c, loc, pace))
            .into_iter()
            .map(super::lake::result_read)
            .collect()
    }
}

/// SHA-256 of an object's stored bytes, as they stream in.
async fn hash_stored(
    s3: Requests,
    loc: S3Location,
    pace: Pace,
) -> Result<super::lake::StoredHash, ReadError> {
    let fresh = || Ok((sha2::Sha256::new(), 0u64));
    let feed = |(sha, size): &mut (sha2::Sha256, u64), chunk: &[u8]| {
        sha.update(chunk);
        *size += chunk.len() as u64;
        Ok(())
    };
    let ((sha, size), _) =
        get_streamed(&s3, &loc, None, pace, MAX_BODY_FOR_DEADLINE, fresh, feed).await?;
    Ok(super::lake::StoredHash {
        sha256: crate::core::types::Sha256(sha.finalize().into()),
        size,
    })
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

    /// What a ranged listing goes into (a year, a month, a real day) and lists whole (all
    /// else, at the depth it is found).
    #[test]
    fn only_years_months_and_real_days_are_dated_folders() {
        assert_eq!(dated("2026", 0), Some(false));
        assert_eq!(dated("2026/02", 1), Some(false));
        assert_eq!(dated("2026/02/28", 2), Some(true));
        for (odd, depth) in [
            ("", 0),
            ("202", 0),
            ("20266", 0),
            ("junk", 0),
            ("2026", 1),
            ("2026/13", 1),
            ("2026/00", 1),
            ("2026/1", 1),
            ("2026/02/30", 2),
            ("2026/02/1", 2),
            ("2026/02/+1", 2),
            ("2026/02/28", 1),
            ("2026/02/28/x", 2),
        ] {
            assert_eq!(dated(odd, depth), None, "{odd} at {depth}");
        }
    }

    #[test]
    fn account_folders_are_found_at_any_depth_and_nothing_else_is_one() {
        let cases = [
            (
                "AWSLogs/111122223333/CloudTrail/x",
                Some("AWSLogs/111122223333/"),
            ),
            (
                "a/b/AWSLogs/o-abcdefghij/111122223333/CloudTrail/x",
                Some("a/b/AWSLogs/o-abcdefghij/111122223333/"),
            ),
            (
                "a/AWSLogs/junk/AWSLogs/111122223333/x",
                Some("a/AWSLogs/junk/AWSLogs/111122223333/"),
            ),
            (
                "/x/AWSLogs/111122223333/f",
                Some("/x/AWSLogs/111122223333/"),
            ),
            ("a/b/AWSLogs/readme.txt", None),
            ("xAWSLogs/111122223333/x", None),
            ("AWSLogs/o-abcdefghij/readme/x", None),
            ("AWSLogs/111122223333", None),
            ("AWSLogs/111122223333/", None),
            ("AWSLogs0", None),
        ];
        for (key, folder) in cases {
            assert_eq!(account_folder(key), folder, "{key}");
            // The listing goes on after `FOLDER0`: every key in the folder sorts before it.
            if let Some(folder) = folder {
                assert!(key < format!("{}0", folder.trim_end_matches('/')).as_str());
            }
        }
    }
}
