//! Organization scale: one run cut into shards that separate machines verify (on a job engine's
//! array of workers), and the shards' reports put back together into the report of one run.
//!
//! Not to be confused with the scan plan of one run (`engine::plan`, the digests a run reads):
//! a [`ShardPlan`] says which run each worker does.
//!
//! # The plan file (`trailproof plan ... --out plan.json`)
//!
//! Pretty-printed JSON, schema [`PLAN_FORMAT`]; its SHA-256 is that of the file's bytes, which
//! every shard report names and `merge` checks (a plan edited after the shards ran is another
//! plan):
//!
//! - `format`: `"trailproof-plan/1"`
//! - `source`: the S3 URI or directory as given to `plan`, and as every shard's report names it
//! - `bucket`: the bucket every shard verifies (the source's, or `--s3-bucket` for a copy that
//!   does not say: a share with no digest could not tell it)
//! - `range`: `{start, end}` (RFC 3339 UTC), the range every shard verifies
//! - `filters`: `{accounts, regions, trails}`, as given to `plan`
//! - `keys`: where every shard must take its public keys: `cloudtrail:ListPublicKeys`, or
//!   `pinned:` and the lowercase hex SHA-256 of the `--public-keys` file
//! - `digests`: the digests of the range the listing found
//! - `shards`: `[{index, digests, items: [{account, region, digests, owned: {from, to}, read:
//!   {from, to}}]}]`, index 0 to N-1 in order; each item is one account and source Region
//!   (every trail and prefix in it) and a share of the range: `owned` is what the shard reports
//!   (`[from, to)` cut at clock hours; the first share of an account and Region starts at the
//!   range start, the last ends at its end), `read` what it reads (see [`Window`]). The owned
//!   shares of one account and Region cover the range once; a shard holds at most one share of
//!   each; a shard may hold none (more shards than work).
//!
//! # Cutting
//!
//! The account/Region folders are laid end to end in key order, each weighing its digests in
//! the range (at least one), and the line is cut into N pieces of equal weight; a folder that a
//! cut falls in is cut at the clock hour of the digest there. Listing sizes are not weighed:
//! sources list keys only. A cut is moved into the next piece when it would make an empty
//! share (two cuts in one hour), so a piece may weigh more than its part.
//!
//! # Why the shards' verdicts are the single run's
//!
//! Every shard verifies the whole range (its verdicts are decided against the range's own
//! ends), but lists and reads only near its share: its `read` window reaches at least three
//! digests of every chain beyond each end of its share (and two hours), or the range's end. A
//! digest's verdict depends on itself, the digest its link names and the digests linking to it;
//! an hour's state on the digests around it and the holes between neighbours: all read by the
//! shard that owns them. The digests across a boundary are read by both neighbouring shards,
//! each link checked by both, and each reports only its own side.
//!
//! What a shard cannot see the same way (see SECURITY.md): a log file that only a backfill
//! digest outside the shard's read window names (reported as named by no digest, never as
//! valid).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::plan::{log_scopes, plan};
use super::{verify_streaming, EngineError, Settings, Window};
use crate::core::chain::Range;
use crate::core::finding::merge_by_object;
use crate::core::layout::{ChainId, DigestKey, Scope};
use crate::core::ledger::Ledger;
use crate::core::types::Sha256;
use crate::report::audit::ShardStamp;
use crate::report::{ChainReport, Filters, KeyInfo, RangeInfo, Report};
use crate::source::progress::Observer;
use crate::source::{KeyProvider, ObjectSource};

/// The plan file's `format`.
pub const PLAN_FORMAT: &str = "trailproof-plan/1";
/// `keys` of a plan whose shards ask CloudTrail for the keys.
pub const KEYS_FROM_CLOUDTRAIL: &str = "cloudtrail:ListPublicKeys";
/// Digests of each chain a shard reads beyond each end of its share (see the module docs).
const MARGIN_DIGESTS: usize = 3;
const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// A period of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Its start.
    pub from: Timestamp,
    /// Its end.
    pub to: Timestamp,
}

/// The range of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRange {
    /// As `--start-time`.
    pub start: Timestamp,
    /// As `--end-time`.
    pub end: Timestamp,
}

/// One account and source Region, and the share of the range a shard verifies of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The account id.
    pub account: String,
    /// The source Region.
    pub region: String,
    /// Digests of the range in the share, as listed when planning.
    pub digests: u64,
    /// What the shard reports (see [`Window::owned`]).
    pub owned: Period,
    /// What the shard reads (see [`Window::read`]).
    pub read: Period,
}

/// One shard: what one worker verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// From 0; the job engine's array index.
    pub index: usize,
    /// Digests of the range in its items.
    pub digests: u64,
    /// Its shares, in account and Region order.
    pub items: Vec<Item>,
}

/// A run cut into shards (the plan file; see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPlan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// The source as given.
    pub source: String,
    /// The S3 endpoint the plan was listed from when it is not AWS's own (`--endpoint-url`,
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`); every shard must read the same one, or a
    /// shard could verify another store's bucket of the same name. Absent for AWS and for a
    /// local copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The range.
    pub range: PlanRange,
    /// The filters.
    pub filters: Filters,
    /// Where the keys come from: [`KEYS_FROM_CLOUDTRAIL`] or `pinned:SHA256`.
    pub keys: String,
    /// Digests of the range listed.
    pub digests: u64,
    /// The shards.
    pub shards: Vec<Shard>,
}

/// Why a plan could not be made, read, run or merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// The engine could not list or verify.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A plan needs both ends of the range.
    #[error("a plan needs --start-time and --end-time: every shard must verify the same range")]
    NoRange,
    /// A copy that does not say its bucket, and no bucket given.
    #[error("the copy does not say which bucket it is (no evidence-metadata file): every shard must verify the same one")]
    NoBucket,
    /// A plan needs at least one shard.
    #[error("--shards must be at least 1")]
    NoShards,
    /// The plan file is not a plan, or not one this tool made.
    #[error("the plan file is not a {PLAN_FORMAT} plan: {detail}")]
    BadPlan {
        /// What is wrong.
        detail: String,
    },
    /// The shard index is not one of the plan's.
    #[error("shard {index} is not in the plan, which has shards 0 to {last}")]
    NoSuchShard {
        /// The index asked for.
        index: usize,
        /// The plan's last index.
        last: usize,
    },
    /// A shard report is not one that belongs in this merge.
    #[error("shard report {file}: {problem}")]
    Shard {
        /// The report's file, as given.
        file: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Shards of the plan have no report.
    #[error("no report for shard(s) {}: the merge would cover less than the plan; run them, then merge every report", list(.missing))]
    Missing {
        /// Their indices.
        missing: Vec<usize>,
    },
}

fn list(indices: &[usize]) -> String {
    indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ShardPlan {
    /// The plan file's bytes: what its SHA-256 is taken over.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing strings, numbers and timestamps cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Reads a plan file, with the SHA-256 of its bytes, checking that its shares are what
    /// [`plan_shards`] makes: indices in order, at most one share of an account and Region per
    /// shard, the owned shares of each covering the range once, each read window holding its
    /// share.
    pub fn parse(bytes: &[u8]) -> Result<(ShardPlan, Sha256), FanoutError> {
        let bad = |detail: String| FanoutError::BadPlan { detail };
        let plan: ShardPlan = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if plan.format != PLAN_FORMAT {
            return Err(bad(format!("format is {:?}", plan.format)));
        }
        let PlanRange { start, end } = plan.range;
        if start > end || plan.shards.is_empty() {
            return Err(bad("an empty range or no shards".into()));
        }
        let mut shares: BTreeMap<(&str, &str), Vec<&Item>> = BTreeMap::new();
        for (i, shard) in plan.shards.iter().enumerate() {
            if shard.index != i {
                return Err(bad(format!("shard {i} is numbered {}", shard.index)));
            }
            let mut seen = BTreeSet::new();
            for item in &shard.items {
                let unit = (item.account.as_str(), item.region.as_str());
                let inside = item.read.from <= item.owned.from
                    && item.owned.to <= item.read.to
                    && item.owned.from < item.owned.to;
                if !seen.insert(unit) || !inside {
                    return Err(bad(format!(
                        "shard {i}: share of {} {} is not one of a plan's",
                        item.account, item.region
                    )));
                }
                shares.entry(unit).or_default().push(item);
            }
        }
        for ((account, region), mut items) in shares {
            items.sort_by_key(|item| item.owned.from);
            let mut at = start;
            for item in &items {
                if item.owned.from != at {
                    return Err(bad(format!(
                        "the shares of {account} {region} do not cover the range once"
                    )));
                }
                at = item.owned.to;
            }
            if at != end {
                return Err(bad(format!(
                    "the shares of {account} {region} do not reach the range's end"
                )));
            }
        }
        Ok((plan, Sha256::of(bytes)))
    }

    /// The shard at `index`.
    pub fn shard(&self, index: usize) -> Result<&Shard, FanoutError> {
        self.shards.get(index).ok_or(FanoutError::NoSuchShard {
            index,
            last: self.shards.len().saturating_sub(1),
        })
    }

    /// The settings of one share: `base` (the bucket, head signatures) with the plan's range
    /// and filters, the share's account and Region, and its window.
    pub fn settings(&self, item: &Item, base: &Settings) -> Settings {
        Settings {
            start: Some(self.range.start),
            end: Some(self.range.end),
            accounts: vec![item.account.clone()],
            regions: vec![item.region.clone()],
            trails: self.filters.trails.clone(),
            home_region: None,
            bucket: Some(self.bucket.clone()),
            omit_valid_logs: false,
            allow_unmatched_filters: false,
            window: Some(Window {
                owned: (item.owned.from, item.owned.to),
                read: (item.read.from, item.read.to),
            }),
            ..base.clone()
        }
    }
}

/// The keys' source as a plan and a shard stamp say it: [`KEYS_FROM_CLOUDTRAIL`], or
/// `pinned:` and the SHA-256 of the key file's bytes.
pub fn keys_source(pinned_file: Option<&[u8]>) -> String {
    match pinned_file {
        Some(bytes) => format!("pinned:{}", Sha256::of(bytes).to_hex()),
        None => KEYS_FROM_CLOUDTRAIL.to_owned(),
    }
}

/// Lists the digests that `settings` select (and the account/Region folders of the range's
/// log files: a folder with log files and no digest is a share too) and cuts the range into
/// `shards` shards of about equal numbers of digests (see the module docs). `source_name` is
/// the source as given, `keys` as [`keys_source`] says it.
pub fn plan_shards(
    source: &dyn ObjectSource,
    settings: &Settings,
    shards: usize,
    (source_name, keys): (&str, String),
    observer: &dyn Observer,
) -> Result<ShardPlan, FanoutError> {
    let (Some(start), Some(end)) = (settings.start, settings.end) else {
        return Err(FanoutError::NoRange);
    };
    if shards == 0 {
        return Err(FanoutError::NoShards);
    }
    let bucket = match (settings.bucket.clone(), source.bucket()) {
        (Some(given), Some(recorded)) if given != recorded => {
            return Err(EngineError::BucketConflict { given, recorded }.into())
        }
        (Some(b), _) | (None, Some(b)) => b,
        (None, None) => return Err(FanoutError::NoBucket),
    };
    let listed = plan(source, settings, observer)?;
    let range = listed.range;
    let mut units: BTreeMap<(String, String), Unit> = BTreeMap::new();
    for d in listed.digests {
        units
            .entry((d.scope.account.clone(), d.scope.region.clone()))
            .or_default()
            .add(d, range);
    }
    // A folder with log files of the range and no digest at all (every one deleted, or never
    // delivered) is a share of its own: its files are reported as a single run reports them.
    let (log_scopes, _) = log_scopes(source, settings, observer).map_err(EngineError::from)?;
    for scope in log_scopes {
        units.entry((scope.account, scope.region)).or_default();
    }
    let weight = |u: &Unit| (u.in_range.len() as u64).max(1);
    let total: u64 = units.values().map(weight).sum();
    let n = shards as u64;
    let mut plan = ShardPlan {
        format: PLAN_FORMAT.to_owned(),
        source: source_name.to_owned(),
        endpoint: None,
        bucket,
        range: PlanRange { start, end },
        filters: Filters {
            accounts: settings.accounts.clone(),
            regions: settings.regions.clone(),
            trails: settings.trails.clone(),
        },
        keys,
        digests: units.values().map(|u| u.in_range.len() as u64).sum(),
        shards: (0..shards)
            .map(|index| Shard {
                index,
                digests: 0,
                items: Vec::new(),
            })
            .collect(),
    };
    let mut position = 0u64;
    for ((account, region), unit) in units {
        let w = weight(&unit);
        let first = position * n / total;
        let last = (position + w - 1) * n / total;
        // The shares: each starts where its shard's piece of the line starts in this unit.
        let mut cuts: Vec<(u64, Timestamp)> = vec![(first, start)];
        for s in first + 1..=last {
            let k = (s * total).div_ceil(n) - position;
            let Some(t) = unit.in_range.get(k as usize).map(|t| hour_floor(*t)) else {
                continue;
            };
            let after_last = cuts.last().is_none_or(|(_, c)| t > *c);
            if t > start && t < end && after_last {
                cuts.push((s, t));
            }
        }
        for (i, &(s, from)) in cuts.iter().enumerate() {
            let to = cuts.get(i + 1).map_or(end, |(_, t)| *t);
            let digests = unit
                .in_range
                .iter()
                .filter(|t| owns((from, to), (start, end), **t))
                .count() as u64;
            let item = Item {
                account: account.clone(),
                region: region.clone(),
                digests,
                owned: Period { from, to },
                read: unit.read_window((from, to), (start, end)),
            };
            if let Some(shard) = usize::try_from(s).ok().and_then(|s| plan.shards.get_mut(s)) {
                shard.digests += digests;
                shard.items.push(item);
            }
        }
        position += w;
    }
    Ok(plan)
}

/// The digests of one account and Region.
#[derive(Default)]
struct Unit {
    /// Key times of the digests in the range, sorted.
    in_range: Vec<Timestamp>,
    /// Key times of every digest listed, by chain, sorted.
    chains: BTreeMap<ChainId, Vec<Timestamp>>,
}

impl Unit {
    fn add(&mut self, d: DigestKey, range: Range) {
        if range.holds_digest(d.end_time) {
            let at = self.in_range.partition_point(|t| *t <= d.end_time);
            self.in_range.insert(at, d.end_time);
        }
        let times = self.chains.entry(d.chain()).or_default();
        let at = times.partition_point(|t| *t <= d.end_time);
        times.insert(at, d.end_time);
    }

    /// What the shard of `owned` reads: [`MARGIN_DIGESTS`] digests of every chain (and two
    /// hours) beyond each end of it, or the range's end.
    fn read_window(&self, owned: (Timestamp, Timestamp), range: (Timestamp, Timestamp)) -> Period {
        let mut from = if owned.0 <= range.0 {
            range.0
        } else {
            owned
                .0
                .checked_sub(2 * HOUR)
                .unwrap_or(range.0)
                .max(range.0)
        };
        let mut to = if owned.1 >= range.1 {
            range.1
        } else {
            owned
                .1
                .checked_add(2 * HOUR)
                .unwrap_or(range.1)
                .min(range.1)
        };
        for times in self.chains.values() {
            if from > range.0 {
                let before = times.partition_point(|t| *t < owned.0);
                from = match before
                    .checked_sub(MARGIN_DIGESTS)
                    .and_then(|i| times.get(i))
                {
                    Some(t) if *t >= range.0 => from.min(*t),
                    _ => range.0,
                };
            }
            if to < range.1 {
                let after = times.partition_point(|t| *t < owned.1);
                to = match times.get(after + MARGIN_DIGESTS - 1) {
                    Some(t) if *t <= range.1 => to.max(*t),
                    _ => range.1,
                };
            }
        }
        Period { from, to }
    }
}

/// The clock hour `t` is in.
fn hour_floor(t: Timestamp) -> Timestamp {
    let s = t.as_second();
    Timestamp::from_second(s - s.rem_euclid(3600)).unwrap_or(t)
}

/// Whether a share owning `owned` of `range` owns time `t` (see [`Window::owns`]).
fn owns(owned: (Timestamp, Timestamp), range: (Timestamp, Timestamp), t: Timestamp) -> bool {
    Window { owned, read: owned }.owns(range, t)
}

/// Verifies one shard: each of its shares in turn, made one report (with no shares, a report
/// of nothing). `base` carries the bucket and head signatures; the rest is the plan's.
pub fn run_shard(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    plan: &ShardPlan,
    shard: &Shard,
    base: &Settings,
    observer: &dyn Observer,
) -> Result<Report, FanoutError> {
    let mut parts = Vec::with_capacity(shard.items.len());
    for item in &shard.items {
        let settings = plan.settings(item, base);
        parts.push(verify_streaming(
            source,
            key_provider,
            &settings,
            None,
            observer,
        )?);
    }
    Ok(combine(
        plan,
        source.describe(),
        plan.bucket.clone(),
        parts.into_iter().map(|r| (None, r)).collect(),
    ))
}

/// Reports of disjoint parts of one plan's run made one: chains in chain order (a chain's
/// parts, each with the start of the share it owns, newest share first, its findings merged by
/// object and its ledger made again over the whole range from the parts' periods), findings no
/// chain has in key order, keys by fingerprint, notes once each.
fn combine(
    plan: &ShardPlan,
    source: String,
    bucket: String,
    parts: Vec<(Option<Timestamp>, Report)>,
) -> Report {
    let range = (plan.range.start, plan.range.end);
    let mut chains: BTreeMap<ChainId, Vec<(Option<Timestamp>, ChainReport)>> = BTreeMap::new();
    let mut unchained = Vec::new();
    let mut keys: BTreeMap<String, KeyInfo> = BTreeMap::new();
    let mut notes: Vec<String> = Vec::new();
    let mut retention = crate::core::custody::Retention::default();
    for (owned_from, report) in parts {
        for c in report.chains {
            chains
                .entry(chain_id(&c))
                .or_default()
                .push((owned_from, c));
        }
        unchained.extend(report.unchained);
        for k in report.keys {
            keys.entry(k.fingerprint.clone()).or_insert(k);
        }
        for note in report.notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        retention.add_all(&report.retention);
    }
    let chains = chains
        .into_values()
        .filter_map(|mut parts| {
            if parts.len() == 1 {
                return parts.pop().map(|(_, c)| c);
            }
            parts.sort_by_key(|p| std::cmp::Reverse(p.0));
            let ledgers: Vec<&Ledger> = parts
                .iter()
                .filter_map(|(_, c)| c.ledger.as_ref())
                .collect();
            let ledger = (!ledgers.is_empty()).then(|| {
                let periods: Vec<_> = ledgers
                    .iter()
                    .flat_map(|l| l.periods.iter().copied())
                    .collect();
                Ledger::of(range.0, range.1, &periods)
            });
            let mut parts = parts.into_iter().map(|(_, c)| c);
            let mut first = parts.next()?;
            let mut findings = std::mem::take(&mut first.findings);
            for c in parts {
                findings.extend(c.findings);
            }
            Some(ChainReport {
                findings: merge_by_object(findings),
                ledger,
                ..first
            })
        })
        .collect();
    // As the engine orders and dedupes them (by subject): listings overlap.
    unchained.sort_by(|a: &crate::core::finding::Finding, b| a.subject.cmp(&b.subject));
    unchained.dedup_by(|a, b| a.subject == b.subject);
    Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source,
        bucket,
        range: RangeInfo {
            start: range.0,
            end: range.1,
            derived_from_evidence: false,
        },
        filters: plan.filters.clone(),
        keys: keys.into_values().collect(),
        chains,
        unchained,
        notes,
        retention,
        // A merged report is not taken up by `--checkpoint` (refused with `--plan`).
        chain_ends: Vec::new(),
        crosscheck: None,
    }
}

/// The chain a report names.
fn chain_id(c: &ChainReport) -> ChainId {
    let i = &c.chain;
    ChainId {
        scope: Scope {
            prefix: i.prefix.clone(),
            organization: i.organization.clone(),
            account: i.account.clone(),
            region: i.region.clone(),
        },
        trail: i.trail.clone(),
        home_region: i.home_region.clone(),
        backfill: i.backfill,
    }
}

/// One shard's signed report, read back (see `report::statement::read_shard`): its stamp and
/// its report, and the file it came from for messages.
#[derive(Debug)]
pub struct ShardReport {
    /// The file it was read from, as given.
    pub file: String,
    /// Which plan and shard it says it is.
    pub stamp: ShardStamp,
    /// Its report.
    pub report: Report,
}

/// The report of the whole plan from its shards' reports: every shard of `plan` (whose file
/// has `plan_sha256`) exactly once, each made for this plan, with its keys and its shares;
/// else an error, never a report of less.
pub fn merge(
    plan: &ShardPlan,
    plan_sha256: &Sha256,
    shards: Vec<ShardReport>,
) -> Result<Report, FanoutError> {
    let n = plan.shards.len();
    let mut by_index: BTreeMap<usize, ShardReport> = BTreeMap::new();
    for s in shards {
        let problem = |problem: String| FanoutError::Shard {
            file: s.file.clone(),
            problem,
        };
        let stamp = &s.stamp;
        if stamp.plan_sha256 != plan_sha256.to_hex() {
            return Err(problem(format!(
                "made for another plan (SHA-256 {}), not this one ({}): a foreign report, or the plan file was changed after the shards ran",
                stamp.plan_sha256,
                plan_sha256.to_hex()
            )));
        }
        if stamp.index >= n || stamp.shards != n {
            return Err(problem(format!(
                "says it is shard {} of {}; the plan has {n}",
                stamp.index, stamp.shards
            )));
        }
        if stamp.keys != plan.keys {
            return Err(problem(format!(
                "verified with keys from {}; the plan says {}",
                stamp.keys, plan.keys
            )));
        }
        check_share(plan, &s).map_err(problem)?;
        if let Some(other) = by_index.get(&stamp.index) {
            return Err(problem(format!(
                "shard {} is given twice (also {})",
                stamp.index, other.file
            )));
        }
        by_index.insert(stamp.index, s);
    }
    let missing: Vec<usize> = (0..n).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        return Err(FanoutError::Missing { missing });
    }
    let mut parts = Vec::new();
    let (mut source, mut bucket) = (None::<String>, None::<String>);
    for (index, s) in by_index {
        let problem = |problem: String| FanoutError::Shard {
            file: s.file.clone(),
            problem,
        };
        let items = &plan.shard(index)?.items;
        if source.get_or_insert_with(|| s.report.source.clone()) != &s.report.source {
            return Err(problem(format!(
                "is a report on {}, not {}",
                s.report.source,
                source.unwrap_or_default()
            )));
        }
        if !items.is_empty()
            && bucket.get_or_insert_with(|| s.report.bucket.clone()) != &s.report.bucket
        {
            return Err(problem(format!(
                "is a report on bucket {}, not {}",
                s.report.bucket,
                bucket.unwrap_or_default()
            )));
        }
        let mut rest = s.report;
        let empty = empty_like(&rest);
        for c in std::mem::take(&mut rest.chains) {
            let from = items
                .iter()
                .find(|i| i.account == c.chain.account && i.region == c.chain.region)
                .map(|i| i.owned.from);
            parts.push((
                from,
                Report {
                    chains: vec![c],
                    ..empty.clone()
                },
            ));
        }
        parts.push((None, rest));
    }
    Ok(combine(
        plan,
        source.unwrap_or_default(),
        bucket.unwrap_or_default(),
        parts,
    ))
}

/// A report with `r`'s run facts and nothing found.
fn empty_like(r: &Report) -> Report {
    Report {
        chains: Vec::new(),
        unchained: Vec::new(),
        notes: Vec::new(),
        keys: Vec::new(),
        retention: Default::default(),
        chain_ends: Vec::new(),
        crosscheck: None,
        source: r.source.clone(),
        bucket: r.bucket.clone(),
        range: r.range.clone(),
        filters: r.filters.clone(),
        ..*r
    }
}

/// A shard's report is the one its plan asked for: the plan's range and filters, and chains
/// only of its shares' accounts and Regions.
fn check_share(plan: &ShardPlan, s: &ShardReport) -> Result<(), String> {
    let r = &s.report;
    if (r.range.start, r.range.end, r.range.derived_from_evidence)
        != (plan.range.start, plan.range.end, false)
    {
        return Err(format!(
            "covers {} to {}; the plan's range is {} to {}",
            r.range.start, r.range.end, plan.range.start, plan.range.end
        ));
    }
    if r.filters != plan.filters {
        return Err("was run with other filters than the plan's".into());
    }
    let items = &plan.shards.get(s.stamp.index).map(|sh| &sh.items);
    let outside = r.chains.iter().find(|c| {
        !items.is_some_and(|items| {
            items
                .iter()
                .any(|i| i.account == c.chain.account && i.region == c.chain.region)
        })
    });
    if let Some(c) = outside {
        return Err(format!(
            "holds chain {} ({} {}), which is not in its shares",
            c.chain.trail_arn, c.chain.account, c.chain.region
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::progress::NoObserver;

    /// A plan of 12 hours of one chain, cut into `shards`.
    fn plan_of_half_a_day(shards: usize) -> ShardPlan {
        let dir = tempfile::tempdir().unwrap();
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        trailproof_testgen::World::new("b")
            .start(start)
            .hours(12)
            .build()
            .write(dir.path())
            .unwrap();
        let source = crate::source::local::LocalEvidence::open(&dir.path().join("bucket")).unwrap();
        let settings = Settings {
            start: Some(start),
            end: Some(start + SignedDuration::from_hours(12)),
            ..Settings::default()
        };
        plan_shards(
            &source,
            &settings,
            shards,
            ("bucket", keys_source(None)),
            &NoObserver,
        )
        .unwrap()
    }

    /// A plan file whose shares do not cover each account and Region's range exactly once (a
    /// share dropped, or given to two shards) would verify less, or twice: it is refused.
    #[test]
    fn a_plan_whose_shares_do_not_cover_the_range_once_is_refused() {
        let plan = plan_of_half_a_day(4);
        let (parsed, sha) = ShardPlan::parse(&plan.to_bytes()).unwrap();
        assert_eq!(parsed, plan);
        assert_eq!(sha, Sha256::of(&plan.to_bytes()));
        let items: usize = plan.shards.iter().map(|s| s.items.len()).sum();
        assert_eq!(items, 4, "one folder, cut in four: {plan:?}");

        let mut dropped = plan.clone();
        let shard = dropped
            .shards
            .iter_mut()
            .find(|s| !s.items.is_empty())
            .unwrap();
        shard.items.pop();
        assert!(ShardPlan::parse(&dropped.to_bytes()).is_err());

        let mut twice = plan.clone();
        let item = twice.shards[0].items[0].clone();
        twice.shards[1].items.push(item);
        assert!(ShardPlan::parse(&twice.to_bytes()).is_err());

        let mut renumbered = plan.clone();
        renumbered.shards.swap(0, 1);
        assert!(ShardPlan::parse(&renumbered.to_bytes()).is_err());

        let mut narrow = plan;
        let item = narrow
            .shards
            .iter_mut()
            .flat_map(|s| &mut s.items)
            .next()
            .unwrap();
        item.read.to = item.owned.from;
        assert!(ShardPlan::parse(&narrow.to_bytes()).is_err());
    }

    /// Shares are cut at clock hours inside the range, and each reads at least two hours past
    /// its ends (or to the range's ends).
    #[test]
    fn shares_are_cut_at_clock_hours_with_margins() {
        let plan = plan_of_half_a_day(4);
        let (start, end) = (plan.range.start, plan.range.end);
        for item in plan.shards.iter().flat_map(|s| &s.items) {
            for t in [item.owned.from, item.owned.to] {
                assert!(
                    t == start || t == end || t.as_second() % 3600 == 0,
                    "{item:?}"
                );
            }
            let two = SignedDuration::from_hours(2);
            assert!(item.read.from == start || item.read.from <= item.owned.from - two);
            assert!(item.read.to == end || item.read.to >= item.owned.to + two);
        }
    }
}
