//! Files under the CloudTrail folders that no digest of the run vouches for: those of trails the
//! filters leave out (attributed to them only through their own verified digests), and those
//! that are no CloudTrail object at all (a name CloudTrail never writes, a name that is not
//! UTF-8, a link to a folder).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use rayon::prelude::*;

use super::ahead::LogListing;
use super::holes::{unreferenced, Holes};
use super::logs::{names, reread, Names};
use super::plan::{clock_bound, open_ended, CLOCK_SKEW};
use super::texts::{TextHashes, TextSet};
use super::Settings;
use crate::core::chain::{walk, DigestCandidate, DigestStatus, Range, WalkedDigest};
use crate::core::digest::LogFileEntry;
use crate::core::finding::{Evidence, Finding, Kind, Verdict};
use crate::core::layout::{folders, parse_key, ChainId, DigestKey, Folders, ObjectType, Scope};
use crate::core::sign::KeySet;
use crate::core::time::{earlier, format_iso, later, parse_compact};
use crate::core::types::S3Location;
use crate::source::progress::{Observer, Progress};
use crate::source::{ObjectSource, SourceError, Stray, StrayProblem};

/// Digests read again at once for their lists.
const REREAD_BATCH: usize = 64;

/// What the digests of trails left out by the filters say about the shared folders.
pub(super) struct OtherTrails {
    /// The log files their verified digests name.
    theirs: TextSet,
    /// Folders where such a trail is real: at least one of its digests verifies.
    real: BTreeMap<Scope, BTreeSet<String>>,
    /// The findings of trails none of whose digests verify: their files are strays (an empty
    /// file named like another trail's digest would otherwise hide what lies in its folder).
    pub(super) decoys: Vec<Finding>,
}

impl OtherTrails {
    /// Walks the chains of trails the filters leave out (read like the run's own) and keeps
    /// the names of the log files their verified digests list.
    pub(super) fn attribute(
        source: &dyn ObjectSource,
        chains: BTreeMap<ChainId, Vec<DigestCandidate>>,
        keys: &KeySet,
        range: Range,
    ) -> Self {
        let walked: Vec<(ChainId, Vec<WalkedDigest>)> = chains
            .into_par_iter()
            .map(|(id, candidates)| {
                let w = walk(&id, candidates, keys, range).digests;
                (id, w)
            })
            .collect();
        let mut theirs = TextHashes::with_capacity(0);
        let mut real: BTreeMap<Scope, BTreeSet<String>> = BTreeMap::new();
        let mut decoys = Vec::new();
        let mut verified = Vec::new();
        for (id, ws) in walked {
            let (good, bad): (Vec<_>, Vec<_>) = ws
                .into_iter()
                .partition(|w| matches!(w.status, DigestStatus::Verified(_)));
            if good.is_empty() {
                decoys.extend(
                    bad.into_iter()
                        .flat_map(|w| w.findings)
                        .filter(|f| f.verdict != Verdict::Valid && f.kind.judges_subject()),
                );
            } else {
                real.entry(id.scope.clone()).or_default().insert(id.trail);
                verified.extend(good);
            }
        }
        let verified: Vec<&WalkedDigest> = verified.iter().collect();
        for_each_listed(source, &verified, &mut |entry| {
            theirs.insert(&entry.location.key)
        });
        OtherTrails {
            theirs: theirs.into_set(),
            real,
            decoys,
        }
    }

    /// Whether a verified digest of a trail left out by the filters names `key`.
    pub(super) fn vouch_for(&self, key: &str) -> bool {
        self.theirs.contains(key)
    }

    /// A log file no digest names, in a folder that a real trail left out by the filters also
    /// writes to: say that it could not be attributed to that trail either.
    pub(super) fn unattributed(&self, finding: Finding, scope: &Scope) -> Finding {
        let Some(trails) = self.real.get(scope) else {
            return finding;
        };
        let detail = format!(
            "trails left out by the filters also write to this folder ({}); none of their verified digests names it either",
            trails.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        Finding {
            evidence: Evidence {
                detail: Some(detail),
                ..finding.evidence
            },
            ..finding
        }
    }
}

/// Hands `each` every log-file entry the verified `digests` list: held, or from the digest read
/// again in batches (only the very bytes first verified count: a digest changed since vouches
/// for nothing, and is skipped).
pub(super) fn for_each_listed(
    source: &dyn ObjectSource,
    digests: &[&WalkedDigest],
    each: &mut dyn FnMut(&LogFileEntry),
) {
    for batch in digests.chunks(REREAD_BATCH) {
        let found: Vec<_> = batch.iter().map(|w| names(w)).collect();
        let aside: Vec<_> = found.iter().filter_map(|f| f.as_ref().err()).collect();
        let keys: Vec<String> = aside.iter().map(|d| d.location.key.clone()).collect();
        let reread_lists: Vec<_> = if keys.is_empty() {
            Vec::new()
        } else {
            source
                .read_digests(&keys, &Progress::hidden())
                .into_iter()
                .zip(&aside)
                .map(|(stored, digest)| reread(digest, stored))
                .collect()
        };
        let mut reread_lists = reread_lists.into_iter();
        for f in found {
            let list = match f {
                Ok(Names::Entries(list)) => list,
                // Only unverified digests are held by location.
                Ok(Names::Locations(_)) => continue,
                Err(_) => match reread_lists.next() {
                    Some(Ok(list)) => list,
                    _ => continue,
                },
            };
            list.iter().for_each(&mut *each);
        }
    }
}

/// What the run's digests vouch for, once checked: what the last listing, of the log folders,
/// is held against.
pub(super) struct Vouched<'a> {
    pub(super) bucket: &'a str,
    pub(super) range: Range,
    /// The keys in `bucket` that the run's digests name.
    pub(super) referenced: TextSet,
    pub(super) other_trails: OtherTrails,
    pub(super) holes: Holes,
}

impl Vouched<'_> {
    /// Lists the log folders (or takes what `logs` listed ahead) for the files of the range that
    /// no digest of the run names, and adds what the listings found that is no CloudTrail
    /// object (`unrecognised`: the digest folders' so far). Returns their findings, in key order, and how many log files verified
    /// digests of trails left out by the filters name (not checked).
    pub(super) fn unchained(
        self,
        source: &dyn ObjectSource,
        settings: &Settings,
        unrecognised: Vec<String>,
        logs: LogListing<'_>,
        observer: &dyn Observer,
    ) -> Result<(Vec<Finding>, usize), SourceError> {
        // A resumed run answers for each folder's log files from its chains' last verified
        // digest on, not from the checkpoint's end (the newest chain's): found by the red team,
        // a log file put in a Region's folder between the two was named by no digest and
        // reported by no run.
        let mut resumed: BTreeMap<&Scope, Timestamp> = BTreeMap::new();
        // A search a stopped run left behind goes back to where it was left.
        for (chain, t) in settings.resume.iter().chain(&settings.searched) {
            let at = later(*t, SignedDuration::from_secs(1));
            resumed
                .entry(&chain.scope)
                .and_modify(|s| *s = (*s).min(at))
                .or_insert(at);
        }
        // A run without an end judges log files named for a time after its clock (with
        // `CLOCK_SKEW`): CloudTrail cannot have delivered them, and no later
        // run's range would reach them before their time (a name years ahead hid from every
        // incremental run).
        let clock = clock_bound(settings);
        let attributed = AtomicUsize::new(0);
        let unchained = Mutex::new(Vec::new());
        let unrecognised = Mutex::new(unrecognised);
        logs.for_each_log(
            source,
            settings,
            &|key, log| {
                let range = self.range;
                let start = resumed
                    .get(&log.scope)
                    .map_or(range.start, |t| range.start.min(*t));
                let ahead = clock.filter(|c| log.time > *c);
                if log.time < start
                    || (log.time > range.end && ahead.is_none())
                    || self.referenced.contains(&key)
                {
                    return;
                }
                if self.other_trails.vouch_for(&key) {
                    attributed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut finding = self.other_trails.unattributed(
                    unreferenced(self.bucket, key, log.time, self.holes.around(&log)),
                    &log.scope,
                );
                if let Some(clock) = ahead {
                    let said = format!(
                        "named for {}, more than {} minutes after the run's clock ({}): CloudTrail cannot have delivered it yet",
                        format_iso(log.time),
                        CLOCK_SKEW.as_mins(),
                        format_iso(earlier(clock, CLOCK_SKEW)),
                    );
                    finding.evidence.detail = Some(match finding.evidence.detail.take() {
                        Some(other) => format!("{said}; {other}"),
                        None => said,
                    });
                }
                unchained
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(finding);
            },
            &|key| {
                unrecognised
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(key)
            },
            observer,
        )?;
        let mut unchained = unchained
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        unchained.extend(self.other_trails.decoys);
        unchained.extend(self::unrecognised(
            self.bucket,
            settings,
            self.range,
            unrecognised
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            source.strays(),
        ));
        // Listings come in no set order, and need not give each key once; the report's order
        // is the keys'.
        unchained.sort_by(|a, b| a.subject.cmp(&b.subject));
        unchained.dedup_by(|a, b| a.subject == b.subject);
        Ok((unchained, attributed.into_inner()))
    }
}

/// Findings for the digests named for a time after the run's clock ([`super::Plan::ahead`]).
pub(super) fn ahead_of_clock(bucket: &str, digests: &[DigestKey]) -> Vec<Finding> {
    digests
        .iter()
        .map(|d| {
            Finding::new(
                S3Location::new(bucket, d.format()).uri(),
                Kind::DigestUnrecognised,
                "named for a time CloudTrail cannot have delivered it by: no chain takes it",
            )
            .with(Evidence {
                detail: Some(format!(
                    "named for {}, more than {} minutes after the run's clock ({})",
                    format_iso(d.end_time),
                    CLOCK_SKEW.as_mins(),
                    format_iso(Timestamp::now()),
                )),
                ..Evidence::default()
            })
        })
        .collect()
}

/// Findings for what the listings found under the CloudTrail folders that is no CloudTrail
/// object: `keys` that do not parse, and the source's strays. Where the folders tell an account,
/// a Region or a day, the filters and the range apply as to CloudTrail objects.
pub(super) fn unrecognised(
    bucket: &str,
    settings: &Settings,
    range: Range,
    keys: Vec<String>,
    strays: Vec<Stray>,
) -> Vec<Finding> {
    let subject = |key: &str| S3Location::new(bucket, key).uri();
    let mut found = Vec::new();
    // The sources keep back the empty "folder" objects the S3 console creates; a key here
    // that ends in `/` holds something.
    for key in keys {
        let Some(place) = folders(&key)
            .filter(|f| in_run(settings, range, f) || named_in_range(settings, range, f, &key))
        else {
            continue;
        };
        let Some(kind) = unrecognised_kind(&place) else {
            continue;
        };
        let detail = parse_key(&key).err().map(|e| e.to_string());
        found.push(
            Finding::new(
                subject(&key),
                kind,
                "not a CloudTrail file name: no digest vouches for it",
            )
            .with(Evidence {
                detail,
                ..Evidence::default()
            }),
        );
    }
    for Stray { key, problem } in strays {
        let Some(place) = folders(&key).filter(|f| in_run(settings, range, f)) else {
            continue;
        };
        let finding = match problem {
            StrayProblem::NotUtf8 { raw } => {
                let Some(kind) = unrecognised_kind(&place) else {
                    continue;
                };
                Finding::new(
                    subject(&key),
                    kind,
                    "its name is not UTF-8, which no S3 key can be: no digest vouches for it",
                )
                .with(Evidence {
                    detail: Some(raw),
                    ..Evidence::default()
                })
            }
            // A link above the type folders may hide either kind.
            StrayProblem::FolderLink { target, out } => {
                let (kind, reason) = if out {
                    (
                        Kind::PathEscape,
                        "a link to a folder outside the evidence directory: not followed, what it holds was not checked",
                    )
                } else {
                    (
                        unrecognised_kind(&place).unwrap_or(Kind::LogUnrecognised),
                        "a link to a folder: not followed, what it holds was not checked",
                    )
                };
                Finding::new(subject(&key), kind, reason).with(Evidence {
                    detail: Some(format!("links to {target}")),
                    ..Evidence::default()
                })
            }
        };
        found.push(finding);
    }
    found
}

/// The kind for a stray in a log or digest folder; `None` elsewhere (Insights files are not
/// digested at all).
fn unrecognised_kind(place: &Folders) -> Option<Kind> {
    match place.ty? {
        ObjectType::Log => Some(Kind::LogUnrecognised),
        ObjectType::Digest => Some(Kind::DigestUnrecognised),
        ObjectType::Insight => None,
    }
}

/// Whether the file's own name carries a CloudTrail timestamp in the range, whatever day folder
/// it sits in: a log named for an hour of the range, put in another day's folder, is read by
/// whatever ingests the prefix, and no digest vouches for it.
fn named_in_range(settings: &Settings, range: Range, place: &Folders, key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or_default();
    let named = name
        .split(['_', '.'])
        .filter_map(parse_compact)
        .any(|t| t >= range.start && t <= later(range.end, SignedDuration::from_hours(1)));
    named
        && in_run(
            settings,
            range,
            &Folders {
                dated: None,
                ..place.clone()
            },
        )
}

/// Whether what the folders tell puts a stray inside the run: the accounts and Regions selected
/// and a dated folder (a year's, a month's or a day's) that meets the range (digests up to an
/// hour after it count), or that lies after it when the run has no end
/// ([`open_ended`]). A
/// stray directly in a year or month folder wholly outside the range is outside the run, as one
/// in such a day folder is: a ranged run over S3 does not list those folders (red team: the
/// local copy reported `2025/x` to a run over 2026 and the bucket did not).
fn in_run(settings: &Settings, range: Range, place: &Folders) -> bool {
    let account = place
        .account
        .is_none_or(|a| settings.accounts.is_empty() || settings.accounts.iter().any(|s| s == a));
    let region = place
        .region
        .is_none_or(|r| settings.regions.is_empty() || settings.regions.iter().any(|s| s == r));
    let at = |day: jiff::civil::Date| day.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp());
    let dated = place.dated.is_none_or(|d| {
        let (first, after) = d.span();
        // A day that cannot be placed (the last ones a timestamp can hold) counts as in range.
        let begins_in_time = at(first).map_or(true, |start| {
            open_ended(settings) || start <= later(range.end, SignedDuration::from_hours(1))
        });
        let ends_after_start = after
            .and_then(|a| at(a).ok())
            .is_none_or(|end| end > range.start);
        begins_in_time && ends_after_start
    });
    account && region && dated
}
