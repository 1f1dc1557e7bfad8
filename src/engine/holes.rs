//! The holes of the chains, to say of a log file no digest names whether its digest is gone.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::core::chain::WalkedChain;
use crate::core::finding::{Evidence, Finding, Kind};
use crate::core::layout::{parse_key, ChainId, CloudTrailKey, LogKey, Scope};
use crate::core::time::format_iso;
use crate::core::types::S3Location;

/// A stretch of a chain whose digests are gone, as the walk found it.
pub(super) struct Hole {
    from: Timestamp,
    to: Timestamp,
    /// The latest end of this hole and of those before it (see [`Holes::of`]).
    reach: Timestamp,
    why: String,
    named_by: Option<String>,
}

/// The holes of every standard chain, by the account/Region folder its log files are in.
pub(super) struct Holes(BTreeMap<Scope, Vec<Hole>>);

impl Holes {
    /// The holes the walk's findings name, in the standard chains of `bucket`.
    pub(super) fn of(bucket: &str, walked: &[(ChainId, WalkedChain)]) -> Holes {
        let mut out: BTreeMap<Scope, Vec<Hole>> = BTreeMap::new();
        let prefix = format!("s3://{bucket}/");
        for (id, chain) in walked.iter().filter(|(id, _)| !id.backfill) {
            for f in chain.digests.iter().flat_map(|w| &w.findings) {
                if let Some(hole) = Hole::of(&prefix, f) {
                    out.entry(id.scope.clone()).or_default().push(hole);
                }
            }
        }
        for holes in out.values_mut() {
            holes.sort_by_key(|h| h.from);
            // Each hole's `reach`: the latest end of it and every hole before it, so a lookup
            // stops as soon as nothing earlier can still cover a time.
            let mut reach = Timestamp::MIN;
            for h in holes.iter_mut() {
                reach = reach.max(h.to);
                h.reach = reach;
            }
        }
        Holes(out)
    }

    /// The hole of the log file's own folder that its delivery time falls in, if any: a
    /// binary search, so that many injected files and many holes cost no more than their sum.
    pub(super) fn around(&self, log: &LogKey) -> Option<&Hole> {
        let holes = self.0.get(&log.scope)?;
        let started = holes.partition_point(|h| h.from <= log.time);
        holes
            .get(..started)?
            .iter()
            .rev()
            .take_while(|h| h.reach >= log.time)
            .find(|h| log.time <= h.to)
    }
}

impl Hole {
    /// The hole a finding names, if it names one: a missing digest (its hour), or a stretch
    /// no digest covers. `prefix`: `s3://BUCKET/` of the run.
    fn of(prefix: &str, f: &Finding) -> Option<Hole> {
        match f.kind {
            Kind::DigestMissing => {
                let key = f
                    .subject
                    .strip_prefix(prefix)
                    .and_then(|k| parse_key(k).ok());
                let Some(CloudTrailKey::Digest(k)) = key else {
                    return None;
                };
                Some(Hole {
                    from: k
                        .end_time
                        .checked_sub(SignedDuration::from_hours(1))
                        .unwrap_or(Timestamp::MIN),
                    to: k.end_time,
                    reach: k.end_time,
                    why: match &f.evidence.named_by {
                        Some(n) => format!(
                            "its digest {} is missing (named by the link from {n})",
                            f.subject
                        ),
                        None => format!("its digest {} is missing", f.subject),
                    },
                    named_by: f.evidence.named_by.clone(),
                })
            }
            Kind::DigestSuccessorMissing | Kind::CoverageHole | Kind::CoverageEnd => {
                let (Some(from), Some(to)) = (f.evidence.from, f.evidence.to) else {
                    return None;
                };
                Some(Hole {
                    from,
                    to,
                    reach: to,
                    why: format!(
                        "no digest covers {} to {} (the digests after {} are missing)",
                        format_iso(from),
                        format_iso(to),
                        f.subject
                    ),
                    named_by: f.evidence.named_by.clone(),
                })
            }
            _ => None,
        }
    }
}

/// A log file delivered inside the range that no digest vouches for. Inside a hole of its
/// chain, the hole is named: its digest is gone, which is not the same as a file no digest ever
/// listed.
pub(super) fn unreferenced(
    bucket: &str,
    key: String,
    time: Timestamp,
    hole: Option<&Hole>,
) -> Finding {
    let (reason, named_by) = match hole {
        Some(h) => (
            format!(
                "not referenced by any digest: delivered inside a hole of its chain: {}",
                h.why
            ),
            h.named_by.clone(),
        ),
        None => (
            "not referenced by any digest: injected, or delivered while log file validation was off"
                .to_owned(),
            None,
        ),
    };
    Finding::new(
        S3Location::new(bucket, key).uri(),
        Kind::LogUnreferenced,
        reason,
    )
    .with(Evidence {
        from: Some(time),
        named_by,
        ..Evidence::default()
    })
}
