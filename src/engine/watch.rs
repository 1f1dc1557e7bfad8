//! What `trailproof watch` says about silence: a chain whose next digest has not come within
//! the grace after its last verified digest's end.
//!
//! A chain cannot show by itself that its newest digests were deleted, or that logging was
//! stopped: the digests that would say so are the ones missing. So the watch holds each chain
//! of its checkpoint to the clock: CloudTrail delivers a digest about an hour after the last
//! one's end, and when none has been verified `grace` after that end, the chain's last verified
//! digest gets a [`Kind::DigestSuccessorMissing`] finding, once per gap. No message, and no
//! missing message, makes a chain "on time": only a verified digest moves its end on.
//!
//! Which gaps were said is kept in the checkpoint itself ([`ChainMark::gap_reported`], signed
//! with it), not in memory: a restarted watch does not say a still-late chain again, and a
//! gap after a newer digest is a new one. The caller writes the checkpoint after the findings.
//!
//! The clock is a parameter (`now`), never read here.

use jiff::{SignedDuration, Timestamp};

use crate::core::finding::{Evidence, Finding, Kind};
use crate::core::time::{format_iso, later};
use crate::report::checkpoint::{ChainMark, Checkpoint};
use crate::report::ChainInfo;

/// When a chain's next digest is late.
#[derive(Debug, Clone)]
pub struct Silence {
    grace: SignedDuration,
}

impl Silence {
    /// Chains are overdue `grace` after their last verified digest's end.
    pub fn new(grace: SignedDuration) -> Self {
        Silence { grace }
    }

    /// The standard chains of `checkpoint` overdue at `now` and not said before, each with
    /// its finding, marked said in `checkpoint` ([`ChainMark::gap_reported`]); they are not
    /// said again until a newer digest of the chain is verified and falls silent in turn.
    /// Backfill chains get no hourly digests and are never overdue.
    pub fn overdue(
        &self,
        checkpoint: &mut Checkpoint,
        now: Timestamp,
    ) -> Vec<(ChainInfo, Finding)> {
        let mut found = Vec::new();
        let bucket = checkpoint.bucket.clone();
        for mark in checkpoint.chains.iter_mut().filter(|m| waits(m)) {
            let Some(last) = &mark.last else { continue };
            if later(last.end, self.grace) > now {
                continue;
            }
            mark.gap_reported = Some(last.key.clone());
            let finding = Finding::new(
                format!("s3://{bucket}/{}", last.key),
                Kind::DigestSuccessorMissing,
                format!(
                    "no digest followed this one within the digest grace ({}): nothing covers {} to {} (the next digest was deleted, or logging was stopped)",
                    self.grace_text(),
                    format_iso(last.end),
                    format_iso(now)
                ),
            )
            .with(Evidence {
                from: Some(last.end),
                to: Some(now),
                ..Evidence::default()
            });
            found.push((mark.chain.clone(), finding));
        }
        found
    }

    /// When the next chain of `checkpoint` not said yet falls overdue, if any can.
    pub fn next_deadline(&self, checkpoint: &Checkpoint) -> Option<Timestamp> {
        checkpoint
            .chains
            .iter()
            .filter(|m| waits(m))
            .filter_map(|m| m.last.as_ref())
            .map(|l| later(l.end, self.grace))
            .min()
    }

    fn grace_text(&self) -> String {
        let secs = self.grace.as_secs();
        if secs % 60 == 0 {
            format!("{} min", secs / 60)
        } else {
            format!("{secs} s")
        }
    }
}

/// Whether a chain waits for its next digest: a standard chain whose gap is not said yet.
fn waits(mark: &ChainMark) -> bool {
    !mark.chain.backfill && !mark.gap_said()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::checkpoint::{FiltersMark, LastDigest, SCHEMA};

    fn chain(region: &str, backfill: bool) -> ChainInfo {
        serde_json::from_value(serde_json::json!({
            "prefix": "", "organization": null, "account": "111122223333", "region": region,
            "trail": "main", "home_region": "us-east-1", "backfill": backfill,
            "trail_arn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"
        }))
        .unwrap()
    }

    fn checkpoint(ends: &[(&str, bool, &str, &str)]) -> Checkpoint {
        Checkpoint {
            schema: SCHEMA.into(),
            bucket: "b".into(),
            filters: FiltersMark {
                accounts: vec![],
                regions: vec![],
                trails: vec![],
            },
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            through: "2026-01-01T03:00:00Z".parse().unwrap(),
            chains: ends
                .iter()
                .map(|(region, backfill, key, end)| ChainMark {
                    chain: chain(region, *backfill),
                    last: Some(LastDigest {
                        key: (*key).into(),
                        sha256: "00".repeat(32),
                        signature: "01".into(),
                        end: end.parse().unwrap(),
                    }),
                    ledger: None,
                    gap_reported: None,
                    searched: None,
                })
                .collect(),
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    /// The hour a digest is deleted (or logging stopped) is the hour it is reported: once the
    /// grace after the last digest's end has passed, not before, and once per gap, not at every
    /// tick.
    #[test]
    fn a_silent_chain_is_reported_once_when_its_grace_has_passed() {
        let cp = checkpoint(&[
            ("us-east-1", false, "k1", "2026-01-01T03:00:00Z"),
            ("eu-west-1", false, "k2", "2026-01-01T03:20:00Z"),
            ("us-east-1", true, "k3", "2026-01-01T01:00:00Z"),
        ]);
        let mut cp = cp;
        let silence = Silence::new(SignedDuration::from_mins(90));
        assert_eq!(silence.next_deadline(&cp), Some(at("2026-01-01T04:30:00Z")));
        assert!(silence
            .overdue(&mut cp, at("2026-01-01T04:29:59Z"))
            .is_empty());
        let found = silence.overdue(&mut cp, at("2026-01-01T04:30:00Z"));
        assert_eq!(found.len(), 1);
        let (info, finding) = &found[0];
        assert_eq!(info.region, "us-east-1");
        assert_eq!(finding.kind, Kind::DigestSuccessorMissing);
        assert_eq!(finding.subject, "s3://b/k1");
        assert_eq!(finding.evidence.from, Some(at("2026-01-01T03:00:00Z")));
        assert!(silence
            .overdue(&mut cp, at("2026-01-01T04:40:00Z"))
            .is_empty());
        assert_eq!(silence.next_deadline(&cp), Some(at("2026-01-01T04:50:00Z")));
        assert_eq!(
            silence.overdue(&mut cp, at("2026-01-01T05:00:00Z")).len(),
            1
        );
        // Only the backfill chain is left, and it is never overdue.
        assert_eq!(silence.next_deadline(&cp), None);
        // A newer digest verified: a new gap can be said.
        cp.chains[0].last.as_mut().unwrap().key = "k4".into();
        assert_eq!(
            silence.overdue(&mut cp, at("2026-01-01T06:00:00Z")).len(),
            1
        );
    }

    /// Which gaps were said was kept in memory: a restarted watch (here, a new `Silence` and
    /// the checkpoint as written and read back) said a still-late chain again. It is in the
    /// checkpoint now; a gap after a newer digest is still said.
    #[test]
    fn a_gap_said_before_a_restart_is_not_said_again() {
        let mut cp = checkpoint(&[("us-east-1", false, "k1", "2026-01-01T03:00:00Z")]);
        let said = Silence::new(SignedDuration::from_mins(90))
            .overdue(&mut cp, at("2026-01-01T05:00:00Z"));
        assert_eq!(said.len(), 1);
        let mut restarted: Checkpoint =
            serde_json::from_slice(&serde_json::to_vec(&cp).unwrap()).unwrap();
        let silence = Silence::new(SignedDuration::from_mins(90));
        assert_eq!(silence.next_deadline(&restarted), None);
        assert!(silence
            .overdue(&mut restarted, at("2026-01-01T09:00:00Z"))
            .is_empty());
        restarted.chains[0].last.as_mut().unwrap().key = "k2".into();
        assert_eq!(
            silence
                .overdue(&mut restarted, at("2026-01-01T09:00:00Z"))
                .len(),
            1
        );
    }
}
