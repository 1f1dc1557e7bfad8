//! CloudTrail and STS calls: public keys (ListPublicKeys, per Region, paginated, cached for
//! the run), trail lookup (DescribeTrails), and the caller's identity for acquisition records.
use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_smithy_types::DateTime;
use jiff::Timestamp;

use super::aws::{load, AwsError, AwsOptions, NoRetryWhereNothingListens, Operation};
use super::pages::{PageError, Pager};
use super::{KeyNeeds, KeyProvider, SourceError};
use crate::core::keyfile::{key_set, KeyRecord};
use crate::core::sign::KeySet;

/// Fetches keys from CloudTrail in each source Region the run needs.
pub struct CloudTrailKeys {
    runtime: tokio::runtime::Runtime,
    options: AwsOptions,
    /// Everything fetched so far, by (Region, window), so repeated needs cost nothing.
    cache: Mutex<BTreeMap<(String, i64, i64), Vec<KeyRecord>>>,
    /// Why asking ahead ([`KeyProvider::warm`]) failed: the next call that asks for what is
    /// not fetched answers it, rather than ask (and wait) again.
    warm_failure: Mutex<Option<SourceError>>,
    /// The configuration every Region's client is made from, loaded once: loading it (the
    /// config files, the credential chain) took about 10 ms, once per (Region, window) asked
    /// for, one after another, while the run waited for the keys.
    base: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl CloudTrailKeys {
    /// Keys asked for with `options` (its Region is replaced by each source Region's).
    pub fn new(options: &AwsOptions) -> Result<Self, SourceError> {
        let runtime = super::aws::runtime(false)?;
        Ok(CloudTrailKeys {
            runtime,
            options: options.clone(),
            cache: Mutex::new(BTreeMap::new()),
            warm_failure: Mutex::new(None),
            base: tokio::sync::OnceCell::new(),
        })
    }

    /// The raw records for the needs, as a pinned key file would hold them. The (Region,
    /// window) pairs not fetched yet are asked for all at once: each is a round trip, and the
    /// run waits for them.
    pub fn records(&self, needs: &KeyNeeds) -> Result<Vec<KeyRecord>, SourceError> {
        let slots: Vec<(String, Timestamp, Timestamp)> = needs
            .regions
            .iter()
            .flat_map(|r| needs.windows.iter().map(|&(s, e)| (r.clone(), s, e)))
            .collect();
        let id =
            |(r, s, e): &(String, Timestamp, Timestamp)| (r.clone(), s.as_second(), e.as_second());
        let cached = |slot| self.cache.lock().ok().and_then(|c| c.get(&slot).cloned());
        let missing: Vec<&(String, Timestamp, Timestamp)> =
            slots.iter().filter(|s| cached(id(s)).is_none()).collect();
        // Asked ahead for less than this, it got nothing: a failed answer caches no window.
        let failed = self.warm_failure.lock().ok().and_then(|mut f| f.take());
        if let Some(failure) = failed.filter(|_| !missing.is_empty()) {
            return Err(failure);
        }
        let fetched = self.runtime.block_on(async {
            let base = self.base.get_or_init(|| load(&self.options, None)).await;
            futures_util::future::join_all(
                missing
                    .iter()
                    .map(|(r, s, e)| list_public_keys(base, &self.options, r, *s, *e)),
            )
            .await
        });
        let mut fresh = BTreeMap::new();
        for (slot, records) in missing.into_iter().zip(fetched) {
            // The first failure in the order of the needs, as when they were asked in turn.
            fresh.insert(id(slot), records?);
        }
        if let Ok(mut c) = self.cache.lock() {
            c.extend(fresh.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut all = Vec::new();
        for slot in &slots {
            let slot = id(slot);
            all.extend(
                fresh
                    .get(&slot)
                    .cloned()
                    .or_else(|| cached(slot))
                    .unwrap_or_default(),
            );
        }
        Ok(all)
    }
}

impl KeyProvider for CloudTrailKeys {
    fn keys(&self, needs: &KeyNeeds) -> Result<KeySet, SourceError> {
        key_set(&self.records(needs)?).map_err(|source| SourceError::UnusableKeys { source })
    }

    /// Fetches into the cache; a failure is kept for the `keys` call that follows.
    fn warm(&self, needs: &KeyNeeds) {
        if let Err(failure) = self.records(needs) {
            if let Ok(mut kept) = self.warm_failure.lock() {
                *kept = Some(failure);
            }
        }
    }

    fn origin(&self) -> String {
        "cloudtrail:ListPublicKeys".to_owned()
    }
}

/// Pages a ListPublicKeys answer may take. CloudTrail has a key or two per Region per
/// validity period, and answers them in one page; a hundred pages is a server that never ends.
const MAX_KEY_PAGES: usize = 100;
/// Keys one answer may hold, so that memory stays bounded whatever a server sends.
const MAX_KEYS: usize = 10_000;

async fn list_public_keys(
    base: &aws_config::SdkConfig,
    options: &AwsOptions,
    region: &str,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<KeyRecord>, SourceError> {
    let client = cloudtrail_client(base, region);
    let target = region.to_owned();
    let incomplete = |missing| SourceError::IncompleteKey {
        region: region.to_owned(),
        missing,
    };
    let pages = |problem| SourceError::Pages {
        operation: Operation::ListPublicKeys,
        target: target.clone(),
        problem,
    };
    let mut pager = Pager::new(MAX_KEY_PAGES);
    let mut records = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_public_keys()
            .start_time(DateTime::from_secs(start.as_second()))
            .end_time(DateTime::from_secs(end.as_second()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::new(&e, Operation::ListPublicKeys, target.clone(), options))?;
        pager.items(page.public_key_list().len()).map_err(pages)?;
        if records.len() + page.public_key_list().len() > MAX_KEYS {
            return Err(pages(PageError::TooManyItems { max: MAX_KEYS }));
        }
        for k in page.public_key_list() {
            let time = |t: Option<&DateTime>| {
                t.and_then(|t| Timestamp::from_second(t.secs()).ok())
                    .ok_or_else(|| incomplete("a validity time"))
            };
            records.push(KeyRecord {
                // The SDK has already decoded the base64 of the wire: these are the DER bytes.
                der: k
                    .value()
                    .map(|b| b.as_ref().to_vec())
                    .ok_or_else(|| incomplete("a value"))?,
                valid_from: time(k.validity_start_time())?,
                valid_to: time(k.validity_end_time())?,
                fingerprint: k.fingerprint().unwrap_or_default().to_owned(),
            });
        }
        let more = page.next_token().is_some();
        token = pager.next(more, page.next_token()).map_err(pages)?;
        if token.is_none() {
            return Ok(records);
        }
    }
}

/// What DescribeTrails says about a trail.
#[derive(Debug, Clone)]
pub struct TrailInfo {
    /// The bucket it delivers to.
    pub bucket: String,
    /// Its key prefix, if it has one.
    pub prefix: Option<String>,
    /// Whether it is an organization trail (its chains are per member account).
    pub organization_trail: bool,
}

/// Looks a trail up by ARN in `region`.
pub fn describe_trail(
    options: &AwsOptions,
    region: &str,
    trail_arn: &str,
) -> Result<TrailInfo, SourceError> {
    let runtime = super::aws::runtime(false)?;
    runtime.block_on(async {
        let client = cloudtrail_client(&load(options, None).await, region);
        let out = client
            .describe_trails()
            .trail_name_list(trail_arn)
            .send()
            .await
            .map_err(|e| {
                AwsError::new(&e, Operation::DescribeTrails, trail_arn.to_owned(), options)
            })?;
        // Some servers ignore the name list, so pick the trail by ARN.
        let trail = out
            .trail_list()
            .iter()
            .find(|t| t.trail_arn() == Some(trail_arn))
            .ok_or_else(|| SourceError::NoSuchTrail {
                arn: trail_arn.to_owned(),
                region: region.to_owned(),
            })?;
        Ok(TrailInfo {
            bucket: trail
                .s3_bucket_name()
                .ok_or_else(|| SourceError::TrailWithoutBucket {
                    arn: trail_arn.to_owned(),
                })?
                .to_owned(),
            prefix: trail
                .s3_key_prefix()
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            organization_trail: trail.is_organization_trail().unwrap_or(false),
        })
    })
}

/// Who the run is acting as (STS GetCallerIdentity), for acquisition records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallerIdentity {
    /// The account it belongs to.
    pub account: Option<String>,
    /// Its ARN (a user, a role session).
    pub arn: Option<String>,
    /// Its unique id.
    pub user_id: Option<String>,
}

/// Asks STS who the run acts as.
pub fn caller_identity(options: &AwsOptions) -> Result<CallerIdentity, SourceError> {
    let runtime = super::aws::runtime(false)?;
    runtime.block_on(async {
        let config = aws_sdk_sts::config::Builder::from(&load(options, None).await)
            .retry_classifier(NoRetryWhereNothingListens)
            .build();
        let out = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                AwsError::new(
                    &e,
                    Operation::GetCallerIdentity,
                    "the caller".into(),
                    options,
                )
            })?;
        Ok(CallerIdentity {
            account: out.account().map(str::to_owned),
            arn: out.arn().map(str::to_owned),
            user_id: out.user_id().map(str::to_owned),
        })
    })
}

/// A CloudTrail client in `region`, made from `base`.
fn cloudtrail_client(base: &aws_config::SdkConfig, region: &str) -> aws_sdk_cloudtrail::Client {
    let config = aws_sdk_cloudtrail::config::Builder::from(base)
        .region(aws_config::Region::new(region.to_owned()))
        .retry_classifier(NoRetryWhereNothingListens)
        .build();
    aws_sdk_cloudtrail::Client::from_conf(config)
}
