//! Planning: what a run will look at, from the listings alone, before anything is read.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

use super::{EngineError, Filter, Settings, UnmatchedFilter};
use crate::core::chain::Range;
use crate::core::layout::{
    parse_key, ChainId, CloudTrailKey, DigestKey, LogKey, ObjectType, Scope,
};
use crate::core::time::{earlier, format_iso, later};
use crate::source::progress::Observer;
use crate::source::{ListRequest, ObjectSource, SourceError};

/// What a run will look at: the range and the digests in it, before anything is read. Log
/// files are listed later, once, against what the digests name: a run keeps no list of them.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The range verified: as given, or what the evidence spans (see `derived`).
    pub range: Range,
    /// True when the range was taken from the evidence rather than given.
    pub derived: bool,
    /// Digests of the selected chains whose key time falls in the range, and of each chain
    /// the nearest digest before the range and after it (context: read only to decide the
    /// range's edges, see [`crate::core::chain::WalkedDigest::context`]).
    pub digests: Vec<DigestKey>,
    /// Digests in the range of trails the filters leave out, in the selected accounts and
    /// Regions: their log files share folders with the run's, and are told apart only through
    /// these digests, once verified.
    pub other_trails: Vec<DigestKey>,
    /// Keys in CloudTrail digest folders that are not digest keys.
    pub unrecognised: Vec<String>,
    /// Digests of the range the source's records name but no listing found (deleted since
    /// acquisition); they are among `digests`, to be reported missing.
    pub gone: BTreeSet<String>,
    /// Digests a run that stopped early verified before it searched their Regions' folders
    /// ([`Settings::searched`]): read only for the log files they name.
    pub searched: Vec<DigestKey>,
    /// Digests of the selected trails named for a time more than [`CLOCK_SKEW`] after the
    /// run's clock, in a run without an end: CloudTrail cannot have delivered them yet. They are
    /// reported, and take no part in the range or the chains (a digest named for 2099 made a
    /// ledger of 1.28 million missing hours, and moved a checkpoint to 2099, after which no
    /// run found anything new).
    pub ahead: Vec<DigestKey>,
}

/// The oldest and the newest time of what was found.
type Extent = (Timestamp, Timestamp);

/// Digests found by the listing: those that may be in the range, and of each chain the nearest
/// on either side of it.
#[derive(Default)]
struct Found {
    digests: Vec<DigestKey>,
    before: BTreeMap<ChainId, DigestKey>,
    after: BTreeMap<ChainId, DigestKey>,
    extent: Option<Extent>,
    /// Digests of trails the filters leave out that may be in the range.
    other_trails: Vec<DigestKey>,
    /// Digests between a chain's [`Settings::searched`] and [`Settings::resume`] times.
    searched: Vec<DigestKey>,
    /// Keys in the digest folders that are no CloudTrail key.
    unrecognised: Vec<String>,
    /// The run's clock with [`CLOCK_SKEW`], when it has no end; and the digests named for
    /// a later time ([`Plan::ahead`]).
    clock: Option<Timestamp>,
    ahead: Vec<DigestKey>,
    /// Trail names seen in the selected accounts and Regions, to name them when a `--trail`
    /// matches none.
    trails: BTreeSet<String>,
}

impl Found {
    /// Files one listed key where it belongs.
    fn take(&mut self, settings: &Settings, key: String) {
        match parse_key(&key) {
            Ok(CloudTrailKey::Digest(d)) if selected(settings, &d.scope) => {
                if !self.trails.contains(&d.trail) {
                    self.trails.insert(d.trail.clone());
                }
                if trail_selected(settings, &d) {
                    self.add(settings, d)
                } else {
                    self.other_trail(settings, d);
                }
            }
            Ok(_) => {}
            Err(_) => self.unrecognised.push(key),
        }
    }

    /// Keeps a digest that may be in the range; of the others, only the nearest per chain.
    fn add(&mut self, settings: &Settings, d: DigestKey) {
        let t = d.end_time;
        if self.clock.is_some_and(|clock| t > clock) {
            self.ahead.push(d);
            return;
        }
        self.extent = widen(self.extent, t);
        let (start, end) = listed_span(settings);
        let after_end = end.is_some_and(|end| t > later(end, SignedDuration::from_hours(1)));
        let start = match settings.resume.is_empty() {
            true => start,
            false => resumed(settings, &d.chain()).or(start),
        };
        let behind = settings.searched.get(&d.chain()).is_some_and(|s| t > *s);
        if behind && start.is_some_and(|start| t < start) {
            self.searched.push(d.clone());
        }
        if start.is_some_and(|start| t < start) {
            let slot = self.before.entry(d.chain());
            let kept = slot.or_insert_with(|| d.clone());
            if d > *kept {
                *kept = d;
            }
        } else if after_end {
            let slot = self.after.entry(d.chain());
            let kept = slot.or_insert_with(|| d.clone());
            if d < *kept {
                *kept = d;
            }
        } else {
            self.digests.push(d);
        }
    }

    /// Keeps a digest of a trail the filters leave out if it may be in the range.
    fn other_trail(&mut self, settings: &Settings, d: DigestKey) {
        let t = d.end_time;
        let (start, end) = listed_span(settings);
        let outside = start.is_some_and(|start| t < start)
            || end.is_some_and(|end| t > later(end, SignedDuration::from_hours(1)));
        if !outside {
            self.other_trails.push(d);
        }
    }

    /// Every digest of the selected chains listed: in the range or not.
    fn listed(&self) -> impl Iterator<Item = &DigestKey> {
        self.digests
            .iter()
            .chain(self.before.values())
            .chain(self.after.values())
    }

    /// The plan for `range`: the digests it holds, those the source's records name in it
    /// that no listing found (gone since), and the nearest on either side of it.
    fn into_plan(
        self,
        settings: &Settings,
        range: Range,
        derived: bool,
        recorded: Vec<DigestKey>,
    ) -> Plan {
        let Found {
            mut digests,
            before,
            after,
            mut other_trails,
            unrecognised,
            searched,
            mut ahead,
            ..
        } = self;
        ahead.sort_unstable();
        ahead.dedup();
        let holds = |d: &DigestKey| match settings.resume.is_empty() {
            true => range.holds_digest(d.end_time),
            false => chain_range(range, settings, &d.chain()).holds_digest(d.end_time),
        };
        digests.retain(holds);
        let listed: HashSet<String> = digests.iter().map(DigestKey::format).collect();
        let mut gone = BTreeSet::new();
        for d in recorded {
            let key = d.format();
            if holds(&d) && !listed.contains(&key) {
                gone.insert(key);
                digests.push(d);
            }
        }
        drop(listed);
        digests.extend(before.into_values().chain(after.into_values()));
        digests.sort_unstable();
        other_trails.retain(|d| range.holds_digest(d.end_time));
        Plan {
            range,
            derived,
            digests,
            other_trails,
            unrecognised,
            gone,
            searched,
            ahead,
        }
    }
}

/// `extent` grown to hold `t`.
fn widen(extent: Option<Extent>, t: Timestamp) -> Option<Extent> {
    Some(extent.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
}

/// Lists the digests and decides what is in the run.
///
/// Every digest of the selected accounts and Regions is listed, whatever its time (a resumed
/// run: from the day of the oldest digest it takes a chain up after, see
/// [`Settings::resume`]): a chain is known from any digest of it, and the nearest digest on either side of the range decides
/// its edges (the one after the end names, by its link, a missing digest at the end; the one
/// before the start, where a hole at the start begins). Listing costs one request per
/// thousand digests of a chain's history on S3 (about nine a year); only the digests in the
/// range and those two per chain are read. Each filter value must select something the source
/// lists (see [`Settings::allow_unmatched_filters`]). Work the source does before its first
/// listing is reported to `observer`.
pub fn plan(
    source: &dyn ObjectSource,
    settings: &Settings,
    observer: &dyn Observer,
) -> Result<Plan, EngineError> {
    let clock = clock_bound(settings);
    let found = list_digests(source, settings, clock, observer)?;
    // A shard lists only near its share; `trailproof plan` checked the heads against all.
    let heads = settings
        .head_signatures
        .keys()
        .filter(|_| settings.window.is_none());
    for head in heads {
        if !found.listed().any(|d| d.format() == *head) {
            return Err(EngineError::UnknownHead { key: head.clone() });
        }
    }
    let mut unmatched = if settings.allow_unmatched_filters {
        Vec::new()
    } else {
        unmatched_filters(settings, found.listed())
    };
    // The source's own records of digests (a copy's evidence-metadata file) belong to the
    // evidence's extent too: a deleted tail still ends it where it ended.
    // Those named for after the run's clock are said from the listing (`Plan::ahead`) and
    // take no part, as online (red team: a copy whose records named a digest of 2099, even 7
    // bytes of garbage, ran its range and its checkpoint to 2099, where the bucket did not).
    let mut recorded = recorded_digests(source, settings);
    recorded.retain(|d| clock.is_none_or(|c| d.end_time <= c));
    let mut extent = recorded
        .iter()
        .fold(found.extent, |e, d| widen(e, d.end_time));
    // Log files name an account and a Region too (not a trail): list them when there are no
    // digests (the evidence's extent is then theirs), or to see whether an account or Region
    // no digest has is there.
    if extent.is_none()
        || unmatched
            .iter()
            .any(|u| matches!(u.filter, Filter::Account | Filter::Region))
    {
        let (log_scopes, log_extent) = log_scopes(source, settings, observer)?;
        extent = extent.or(log_extent);
        unmatched.retain(|u| !log_scopes.iter().any(|s| u.selects(s)));
    }
    if !unmatched.is_empty() {
        return Err(EngineError::UnmatchedFilters {
            source_name: source.describe(),
            unmatched,
            trails_found: found.trails.iter().cloned().collect(),
        });
    }
    let Some(extent) = extent else {
        return Err(EngineError::NothingFound {
            source_name: source.describe(),
        });
    };
    let (range, derived) = resolve_range(settings, extent)?;
    Ok(found.into_plan(settings, range, derived, recorded))
}

/// Every digest of the selected accounts and Regions, whatever its time, sorted.
fn list_digests(
    source: &dyn ObjectSource,
    settings: &Settings,
    clock: Option<Timestamp>,
    observer: &dyn Observer,
) -> Result<Found, EngineError> {
    let mut request = list_request(settings, ObjectType::Digest);
    let found = Mutex::new(Found {
        clock,
        ..Found::default()
    });
    // A resumed run needs of each chain only its digests from the last one verified on
    // (`Settings::resume`): the day folders from the oldest of those on. Otherwise all.
    request.range = match taken_up(settings) {
        Some(from) => request.range.map(|(_, to)| (from, to)),
        None => None,
    };
    source.list(
        &request,
        &|key| {
            let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
            found.take(settings, key);
        },
        observer,
    )?;
    let mut found = found.into_inner().unwrap_or_else(PoisonError::into_inner);
    // Listings come in no set order, and need not give each key once.
    for keys in [
        &mut found.digests,
        &mut found.other_trails,
        &mut found.searched,
    ] {
        keys.sort_unstable();
        keys.dedup();
    }
    Ok(found)
}

/// The digests of the selected chains that the source's own records name.
fn recorded_digests(source: &dyn ObjectSource, settings: &Settings) -> Vec<DigestKey> {
    source
        .recorded_digests()
        .iter()
        .filter_map(|key| match parse_key(key) {
            Ok(CloudTrailKey::Digest(d))
                if selected(settings, &d.scope) && trail_selected(settings, &d) =>
            {
                Some(d)
            }
            _ => None,
        })
        .collect()
}

/// The account/Region folders the selected log files are in, and the times they span.
pub(super) fn log_scopes(
    source: &dyn ObjectSource,
    settings: &Settings,
    observer: &dyn Observer,
) -> Result<(BTreeSet<Scope>, Option<Extent>), SourceError> {
    let logs = Mutex::new((BTreeSet::new(), None));
    for_each_log(
        source,
        settings,
        &|_, log| {
            let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
            logs.1 = widen(logs.1, log.time);
            if !logs.0.contains(&log.scope) {
                logs.0.insert(log.scope);
            }
        },
        &|_| {},
        observer,
    )?;
    Ok(logs.into_inner().unwrap_or_else(PoisonError::into_inner))
}

impl UnmatchedFilter {
    /// Whether the value selects log files of `scope` (no log file names a trail).
    fn selects(&self, scope: &Scope) -> bool {
        match self.filter {
            Filter::Account => scope.account == self.value,
            Filter::Region => scope.region == self.value,
            Filter::Trail | Filter::HomeRegion => false,
        }
    }
}

/// The filter values no selected digest has, in flag order.
fn unmatched_filters<'a>(
    settings: &Settings,
    digests: impl Iterator<Item = &'a DigestKey>,
) -> Vec<UnmatchedFilter> {
    let digests: Vec<&DigestKey> = digests.collect();
    let mut unmatched = Vec::new();
    let mut check = |filter: Filter, values: &[String], has: &dyn Fn(&DigestKey, &str) -> bool| {
        for value in values {
            if !digests.iter().any(|d| has(d, value)) {
                unmatched.push(UnmatchedFilter {
                    filter,
                    value: value.clone(),
                });
            }
        }
    };
    check(Filter::Account, &settings.accounts, &|d, v| {
        d.scope.account == v
    });
    check(Filter::Region, &settings.regions, &|d, v| {
        d.scope.region == v
    });
    check(Filter::Trail, &settings.trails, &|d, v| d.trail == v);
    check(
        Filter::HomeRegion,
        settings.home_region.as_slice(),
        &|d, v| d.home_region == v,
    );
    unmatched
}

/// What to ask the source to list of `objects`: the filters' accounts and Regions, and from
/// the start an hour past the end (a digest ends up to an hour after what it covers).
pub(super) fn list_request(settings: &Settings, objects: ObjectType) -> ListRequest {
    let (start, end) = listed_span(settings);
    // A resumed run looks for log files no digest names from each chain's last verified
    // digest on (see `unvouched`), which may be before the checkpoint's end.
    let start = match (objects, taken_up(settings)) {
        (ObjectType::Log, Some(resumed)) => start.map(|s| s.min(resumed)),
        _ => start,
    };
    ListRequest {
        objects,
        range: start.map(|s| {
            (
                s,
                later(
                    end.unwrap_or_else(Timestamp::now),
                    SignedDuration::from_hours(1),
                ),
            )
        }),
        to_now: open_ended(settings),
        accounts: settings.accounts.clone(),
        regions: settings.regions.clone(),
    }
}

/// Hands `each` every log file of the selected accounts and Regions, with its parsed key, and
/// `unrecognised` every listed key that is no CloudTrail key, in no set order and from any
/// thread.
pub(super) fn for_each_log(
    source: &dyn ObjectSource,
    settings: &Settings,
    each: &(dyn Fn(String, LogKey) + Sync),
    unrecognised: &(dyn Fn(String) + Sync),
    observer: &dyn Observer,
) -> Result<(), SourceError> {
    source.list(
        &list_request(settings, ObjectType::Log),
        &|key| sort_log_key(settings, key, each, unrecognised),
        observer,
    )
}

/// Hands a key the log-folder listing gave to `each` (a selected log file, with its parsed key)
/// or to `unrecognised` (no CloudTrail key), or to neither (a digest, an unselected scope).
pub(super) fn sort_log_key(
    settings: &Settings,
    key: String,
    each: &(dyn Fn(String, LogKey) + Sync),
    unrecognised: &(dyn Fn(String) + Sync),
) {
    match parse_key(&key) {
        Ok(CloudTrailKey::Log(l)) => {
            if l.ty == ObjectType::Log && selected(settings, &l.scope) {
                each(key, l);
            }
        }
        Ok(CloudTrailKey::Digest(_)) => {}
        Err(_) => unrecognised(key),
    }
}

/// The times whose digests and log folders a run lists and reads: a shard's read window
/// ([`super::Window`]), else the range as given.
fn listed_span(settings: &Settings) -> (Option<Timestamp>, Option<Timestamp>) {
    match settings.window {
        Some(w) => (Some(w.read.0), Some(w.read.1)),
        None => (settings.start, settings.end),
    }
}

/// Whether the run goes on to now: no end was given (nor a shard's window). Then whatever lies
/// in the CloudTrail folders after the range is the run's to judge: CloudTrail cannot have
/// written it yet, and no later run's range would reach a folder dated years ahead (red team:
/// `2099/` was a blind spot of every incremental run).
pub(super) fn open_ended(settings: &Settings) -> bool {
    settings.end.is_none() && settings.window.is_none()
}

/// How far the clocks of CloudTrail and of the run may differ. CloudTrail names each digest and
/// log file for the time it delivers it, so nothing it wrote is named for after its clock; a
/// synchronised host (NTP) is off by well under a second. Larger than that, and small next to
/// an hour: a digest named for the hour ahead (put there) took a checkpoint past now (red team).
pub(super) const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(15);

/// For a run without an end, the latest time CloudTrail can have delivered anything by: the
/// run's clock, with [`CLOCK_SKEW`].
pub(super) fn clock_bound(settings: &Settings) -> Option<Timestamp> {
    open_ended(settings).then(|| later(Timestamp::now(), CLOCK_SKEW))
}

/// Whether the account and Region filters select `scope`.
pub(super) fn selected(settings: &Settings, scope: &Scope) -> bool {
    (settings.accounts.is_empty() || settings.accounts.contains(&scope.account))
        && (settings.regions.is_empty() || settings.regions.contains(&scope.region))
}

/// Whether the trail and home-Region filters select the digest's trail.
pub(super) fn trail_selected(settings: &Settings, digest: &DigestKey) -> bool {
    (settings.trails.is_empty() || settings.trails.contains(&digest.trail))
        && settings
            .home_region
            .as_ref()
            .is_none_or(|h| *h == digest.home_region)
}

/// The earliest time a resumed run takes any chain up from ([`Settings::resume`]), or its
/// search for log files no digest names ([`Settings::searched`]).
fn taken_up(settings: &Settings) -> Option<Timestamp> {
    settings
        .resume
        .values()
        .chain(settings.searched.values())
        .min()
        .copied()
}

/// Where a chain's range starts when the run resumes it ([`Settings::resume`]): just after the
/// time given for it.
fn resumed(settings: &Settings, chain: &ChainId) -> Option<Timestamp> {
    let t = settings.resume.get(chain)?;
    Some(later(*t, SignedDuration::from_secs(1)))
}

/// The range of one chain's digests: the run's, or from where the run resumes the chain
/// ([`Settings::resume`]). Log files no digest names are held to the run's range.
pub(super) fn chain_range(range: Range, settings: &Settings, chain: &ChainId) -> Range {
    match resumed(settings, chain) {
        Some(start) => Range {
            start,
            start_requested: true,
            ..range
        },
        None => range,
    }
}

/// Without a given range, verify everything found: from an hour before the oldest time in the
/// evidence's `extent` (a digest's end is an hour after its start) to the newest.
pub(super) fn resolve_range(
    settings: &Settings,
    extent: Extent,
) -> Result<(Range, bool), EngineError> {
    let derived = settings.start.is_none() || settings.end.is_none();
    let start = settings
        .start
        .unwrap_or_else(|| earlier(extent.0, SignedDuration::from_hours(1)));
    // An end taken from the evidence is no later than the run's clock: a digest named for
    // the minutes of skew after it (put there) is judged, but does not carry the range, and a
    // checkpoint, past now (red team: every later run then found "no digest newer" until a
    // real one passed the fake's time).
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(extent.1);
    let end = match settings.end {
        Some(end) => end,
        None if open_ended(settings) => extent.1.min(now),
        None => extent.1,
    };
    if start > end {
        return Err(EngineError::BadRange {
            start: format_iso(start),
            end: format_iso(end),
        });
    }
    let range = Range {
        start,
        end,
        start_requested: settings.start.is_some(),
        end_requested: settings.end.is_some(),
    };
    Ok((range, derived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::progress::NoObserver;

    /// A home Region no trail has used to select nothing and verify nothing, with exit 0: it
    /// was no `Filter`, so the check that every filter selects something passed it by.
    #[test]
    fn a_home_region_no_trail_has_is_an_unmatched_filter() {
        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-plain");
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        for home in ["us-east-9", "eu-west-1"] {
            let settings = Settings {
                home_region: Some(home.into()),
                ..Settings::default()
            };
            match plan(&source, &settings, &NoObserver) {
                Err(EngineError::UnmatchedFilters { unmatched, .. }) => assert_eq!(
                    unmatched,
                    [UnmatchedFilter {
                        filter: Filter::HomeRegion,
                        value: home.into()
                    }]
                ),
                other => panic!("{home}: {other:?}"),
            }
        }
        let home = Settings {
            home_region: Some("us-east-1".into()),
            ..Settings::default()
        };
        assert!(!plan(&source, &home, &NoObserver)
            .unwrap()
            .digests
            .is_empty());
    }

    /// Each filter value must select something: a typo used to verify nothing and exit 0
    /// (for `--trail`), or pass unnoticed beside a value that matched.
    #[test]
    fn each_filter_value_that_matches_nothing_is_named() {
        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-org");
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        let with = |accounts: &[&str], regions: &[&str], trails: &[&str]| Settings {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            trails: trails.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        };
        let unmatched = |settings: &Settings| match plan(&source, settings, &NoObserver) {
            Err(EngineError::UnmatchedFilters {
                unmatched,
                trails_found,
                ..
            }) => (
                unmatched
                    .iter()
                    .map(|u| format!("{} {}", u.filter, u.value))
                    .collect::<Vec<_>>(),
                trails_found,
            ),
            Ok(_) => (Vec::new(), Vec::new()),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            unmatched(&with(&[], &[], &["org-trail"])).0,
            Vec::<String>::new()
        );
        let (values, found) = unmatched(&with(&[], &[], &["org-trial"]));
        assert_eq!(values, ["trail org-trial"]);
        assert_eq!(found, ["org-trail"]);
        assert_eq!(
            unmatched(&with(
                &["111122223333", "111122223334"],
                &["us-east-1", "us-east-2"],
                &["org-trail", "x"]
            ))
            .0,
            ["account 111122223334", "Region us-east-2", "trail x"]
        );
        // A value the other filters rule out matches nothing either.
        assert_eq!(
            unmatched(&with(&["444455556666"], &[], &["org-trail"])).0,
            Vec::<String>::new()
        );
        let message = plan(&source, &with(&[], &[], &["org-trial"]), &NoObserver)
            .unwrap_err()
            .to_string();
        assert!(message.contains("the trail org-trial"), "{message}");
        assert!(
            message.contains("trails with digests there: org-trail"),
            "{message}"
        );
        // As `aws cloudtrail validate-logs` does, when asked to.
        let lenient = Settings {
            allow_unmatched_filters: true,
            ..with(&[], &[], &["org-trial"])
        };
        assert!(plan(&source, &lenient, &NoObserver)
            .unwrap()
            .digests
            .is_empty());
    }
}
