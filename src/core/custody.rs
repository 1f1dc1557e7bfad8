//! Custody of an object in a versioned bucket: which of a key's versions is the one CloudTrail
//! delivered, and what the key holds now.
//!
//! With S3 versioning, overwriting or deleting an object leaves the delivered version in place
//! (`ListObjectVersions` lists it, a delete marker hides it). Whoever may write to the bucket
//! may also add versions, so a version is CloudTrail's only when its content says so: a log
//! version whose inflated SHA-256 equals the hash a verified digest lists, a digest version
//! whose signature verifies at its key ([`crate::core::verify::verify_digest_object`]). Version
//! ids, times and storage classes are S3's word, never proof: they only say where the proven
//! content was found. The engine does the reading; this module decides, without I/O.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::gz::GzOutcome;
use super::types::Sha256;

/// One entry of a key's `ListObjectVersions` answer: a version or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// The version id (`null` in a bucket that was never versioned).
    pub version_id: String,
    /// When S3 says it was written (`LastModified`).
    pub written: Timestamp,
    /// Whether it is the key's current state.
    pub latest: bool,
    /// A delete marker rather than content.
    pub delete_marker: bool,
}

/// A version of an object, by id and the time S3 says it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    /// The S3 version id.
    pub version_id: String,
    /// `LastModified`, as S3 listed it.
    pub written: Timestamp,
}

/// What a key holds now, in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CurrentVersion {
    /// Another version of the key is current: the delivered one was overwritten.
    Overwritten {
        /// The current version.
        version_id: String,
        /// When it was written.
        written: Timestamp,
    },
    /// A delete marker is current: the object was deleted.
    DeleteMarker {
        /// The marker's version id.
        version_id: String,
        /// When it was placed.
        at: Timestamp,
    },
    /// No version and no marker is current (every version listed is older, or none is listed).
    Absent,
}

/// What searching a key's versions found, for the finding on that object. The finding's own
/// verdict (on the current state) is unchanged: the bucket was tampered with either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSearch {
    /// Versions with content that were read and checked (the current one not counted: it was
    /// judged already).
    pub checked: usize,
    /// The version whose content is CloudTrail's, when one is still in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<VersionRef>,
    /// What the key holds now.
    pub current: CurrentVersion,
}

impl VersionSearch {
    /// The search over `listed` (one key's versions and delete markers, in any order) when
    /// it is worth saying anything: only if the key has more than one entry, or a delete
    /// marker. A key with only its current version (an unversioned bucket) or with nothing
    /// (every version deleted) has nothing to add to the finding.
    pub fn worth_reporting(listed: &[ListedVersion]) -> bool {
        listed.len() > 1 || listed.iter().any(|v| v.delete_marker)
    }

    /// The versions to read and check, newest first: every version with content that is not
    /// the current one.
    pub fn candidates(listed: &[ListedVersion]) -> Vec<&ListedVersion> {
        let mut out: Vec<&ListedVersion> = listed
            .iter()
            .filter(|v| !v.delete_marker && !v.latest)
            .collect();
        out.sort_by(|a, b| {
            b.written
                .cmp(&a.written)
                .then_with(|| a.version_id.cmp(&b.version_id))
        });
        out
    }

    /// The finding's annotation: `checked` versions read, `delivered` the one proven CloudTrail's
    /// (if any), and the key's current state from `listed`.
    pub fn new(listed: &[ListedVersion], checked: usize, delivered: Option<VersionRef>) -> Self {
        let current = match listed.iter().find(|v| v.latest) {
            Some(v) if v.delete_marker => CurrentVersion::DeleteMarker {
                version_id: v.version_id.clone(),
                at: v.written,
            },
            Some(v) => CurrentVersion::Overwritten {
                version_id: v.version_id.clone(),
                written: v.written,
            },
            None => CurrentVersion::Absent,
        };
        VersionSearch {
            checked,
            delivered,
            current,
        }
    }

    /// One line for people, in the words the reports use.
    pub fn describe(&self) -> String {
        let current = match &self.current {
            CurrentVersion::Overwritten {
                version_id,
                written,
            } => format!("the current version {version_id} was written {written}"),
            CurrentVersion::DeleteMarker { at, .. } => {
                format!("deleted by a delete marker at {at}")
            }
            CurrentVersion::Absent => "no version of it is current".to_owned(),
        };
        match &self.delivered {
            Some(v) => format!(
                "what CloudTrail delivered is still in the bucket, proven by its hash or signature: version {} (written {}); {current}",
                v.version_id, v.written
            ),
            None => format!(
                "no version in the bucket holds what CloudTrail delivered ({} other version{} checked); {current}",
                self.checked,
                if self.checked == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Whether a log version's content is what the verified digest lists: one complete gzip member
/// whose inflated SHA-256 is `expected`. Nothing else about the version counts.
pub fn log_version_is_delivered(outcome: &GzOutcome, expected: &Sha256) -> bool {
    outcome.problem.is_none() && outcome.inflated_sha256 == *expected
}

/// How the copy of a recovered object relates to its key in the bucket, as the
/// evidence-metadata file records it (`recovered` of [`super::evidence::ObjectRecord`]): the
/// copy is the delivered version, the bucket held `current` when it was acquired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovered {
    /// When S3 says the delivered version (the record's `version_id`) was written.
    pub written: Timestamp,
    /// What the key held at acquisition.
    pub current: CurrentVersion,
}

impl Recovered {
    /// What an offline run says of the copy: the content is judged on its own; this only adds
    /// that the bucket did not hold it as current.
    pub fn describe(&self, version_id: Option<&str>) -> String {
        let version = version_id.unwrap_or("(no id recorded)");
        let current = match &self.current {
            CurrentVersion::Overwritten {
                version_id,
                written,
            } => format!("overwritten in the bucket by version {version_id} written {written}"),
            CurrentVersion::DeleteMarker { at, .. } => {
                format!("deleted in the bucket by a delete marker at {at}")
            }
            CurrentVersion::Absent => "no longer current in the bucket".to_owned(),
        };
        format!(
            "this copy was recovered from version {version} (written {}); the object was {current} (evidence-metadata record)",
            self.written
        )
    }
}

/// What S3 said about an object's custody when it was read (the GetObject response's
/// headers), for the reports. S3's word, not proof: only the content is proven. Left out
/// when S3 said nothing beyond the defaults (no version id, `STANDARD`, no lock).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Custody {
    /// `x-amz-version-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// `x-amz-storage-class` (S3 sends none for `STANDARD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `x-amz-object-lock-mode`: `GOVERNANCE` or `COMPLIANCE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// `x-amz-object-lock-retain-until-date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_retain_until: Option<Timestamp>,
    /// `x-amz-object-lock-legal-hold`: `ON` or `OFF`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<String>,
}

impl Custody {
    /// The custody facts of `record`, if S3 said anything beyond the defaults.
    pub fn of(record: &super::evidence::ObjectRecord) -> Option<Self> {
        let c = Custody {
            version_id: record.version_id.clone().filter(|v| v != "null"),
            storage_class: record.storage_class.clone().filter(|c| c != "STANDARD"),
            lock_mode: record.lock_mode.clone(),
            lock_retain_until: record.lock_retain_until,
            legal_hold: record.legal_hold.clone(),
        };
        (c != Custody::default()).then_some(c)
    }
}

/// Proven objects under one Object Lock retention mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTally {
    /// How many.
    pub objects: usize,
    /// The earliest retain-until date among them: all are retained at least until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_until: Option<Timestamp>,
    /// The latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_until: Option<Timestamp>,
}

impl LockTally {
    fn add(&mut self, until: Option<Timestamp>) {
        self.objects += 1;
        if let Some(t) = until {
            self.earliest_until = Some(self.earliest_until.map_or(t, |e| e.min(t)));
            self.latest_until = Some(self.latest_until.map_or(t, |l| l.max(t)));
        }
    }

    fn add_all(&mut self, other: &LockTally) {
        self.objects += other.objects;
        let pick = |a: Option<Timestamp>,
                    b: Option<Timestamp>,
                    f: fn(Timestamp, Timestamp) -> Timestamp| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        self.earliest_until = pick(self.earliest_until, other.earliest_until, Timestamp::min);
        self.latest_until = pick(self.latest_until, other.latest_until, Timestamp::max);
    }

    fn describe(&self, mode: &str) -> Option<String> {
        if self.objects == 0 {
            return None;
        }
        let until = match (self.earliest_until, self.latest_until) {
            (Some(e), Some(l)) if e == l => format!(" until {e}"),
            (Some(e), Some(l)) => format!(" until {e} to {l}"),
            _ => String::new(),
        };
        Some(format!("{} under {mode} retention{until}", self.objects))
    }
}

/// How many of a run's proven objects S3 said were under Object Lock retention, and until
/// when: the report's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Under `COMPLIANCE` retention (no one can shorten it or delete the version before).
    pub compliance: LockTally,
    /// Under `GOVERNANCE` retention (users with `s3:BypassGovernanceRetention` can).
    pub governance: LockTally,
    /// With a legal hold on.
    pub legal_hold: usize,
    /// With a lock mode whose retain-until date had passed when the run read them: no longer
    /// protected, so not counted above.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lapsed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Retention {
    /// Counts one proven object, as S3 described it when read at `now`. Found by the red team:
    /// a retain-until date already past was counted as protection.
    pub fn add(&mut self, c: &Custody, now: Timestamp) {
        let lapsed = c.lock_retain_until.is_some_and(|until| until <= now);
        match c.lock_mode.as_deref() {
            Some("COMPLIANCE" | "GOVERNANCE") if lapsed => self.lapsed += 1,
            Some("COMPLIANCE") => self.compliance.add(c.lock_retain_until),
            Some("GOVERNANCE") => self.governance.add(c.lock_retain_until),
            _ => {}
        }
        if c.legal_hold.as_deref() == Some("ON") {
            self.legal_hold += 1;
        }
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    /// Adds the counts of `other`, of other objects (a shard's, for `merge`).
    pub fn add_all(&mut self, other: &Retention) {
        self.compliance.add_all(&other.compliance);
        self.governance.add_all(&other.governance);
        self.legal_hold += other.legal_hold;
        self.lapsed += other.lapsed;
    }

    /// The summary line, if anything was counted.
    pub fn describe(&self) -> Option<String> {
        let mut parts: Vec<String> = [
            self.compliance.describe("COMPLIANCE"),
            self.governance.describe("GOVERNANCE"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.legal_hold > 0 {
            parts.push(format!("{} under legal hold", self.legal_hold));
        }
        if self.lapsed > 0 {
            parts.push(format!(
                "{} whose retention had lapsed (no longer protected)",
                self.lapsed
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "Object Lock, as S3 answered: of the proven objects, {}",
                parts.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, at: &str, latest: bool, marker: bool) -> ListedVersion {
        ListedVersion {
            version_id: id.into(),
            written: at.parse().unwrap(),
            latest,
            delete_marker: marker,
        }
    }

    #[test]
    fn retention_counts_each_mode_and_its_dates() {
        let mut r = Retention::default();
        assert_eq!(r.describe(), None);
        let locked = |mode: &str, until: &str| Custody {
            lock_mode: Some(mode.into()),
            lock_retain_until: Some(until.parse().unwrap()),
            ..Custody::default()
        };
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        r.add(&locked("COMPLIANCE", "2030-01-01T00:00:00Z"), now);
        r.add(&locked("COMPLIANCE", "2031-01-01T00:00:00Z"), now);
        r.add(
            &Custody {
                legal_hold: Some("ON".into()),
                ..locked("GOVERNANCE", "2029-01-01T00:00:00Z")
            },
            now,
        );
        r.add(&Custody::default(), now);
        assert_eq!(
            r.describe().unwrap(),
            "Object Lock, as S3 answered: of the proven objects, 2 under COMPLIANCE retention until 2030-01-01T00:00:00Z to 2031-01-01T00:00:00Z, 1 under GOVERNANCE retention until 2029-01-01T00:00:00Z, 1 under legal hold"
        );
        // A date already past protects nothing: counted apart, not as retention.
        r.add(&locked("COMPLIANCE", "2020-01-01T00:00:00Z"), now);
        assert_eq!(r.compliance.objects, 2);
        assert!(r
            .describe()
            .unwrap()
            .ends_with(", 1 whose retention had lapsed (no longer protected)"));
    }

    #[test]
    fn custody_is_left_out_when_s3_said_only_the_defaults() {
        use crate::core::evidence::ObjectRecord;
        let mut record = ObjectRecord {
            version_id: Some("null".into()),
            storage_class: Some("STANDARD".into()),
            ..ObjectRecord::default()
        };
        assert_eq!(Custody::of(&record), None);
        record.version_id = Some("v1".into());
        assert_eq!(
            Custody::of(&record).unwrap().version_id.as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn an_unversioned_key_or_one_with_every_version_gone_adds_nothing() {
        assert!(!VersionSearch::worth_reporting(&[v(
            "null",
            "2026-01-01T00:00:00Z",
            true,
            false
        )]));
        assert!(!VersionSearch::worth_reporting(&[]));
        // A delete marker alone still says when the object was deleted.
        assert!(VersionSearch::worth_reporting(&[v(
            "m",
            "2026-01-01T00:00:00Z",
            true,
            true
        )]));
    }

    #[test]
    fn candidates_are_older_versions_with_content_newest_first() {
        let listed = [
            v("a", "2026-01-01T00:00:00Z", false, false),
            v("m", "2026-01-03T00:00:00Z", true, true),
            v("b", "2026-01-02T00:00:00Z", false, false),
        ];
        let ids: Vec<&str> = VersionSearch::candidates(&listed)
            .iter()
            .map(|v| v.version_id.as_str())
            .collect();
        assert_eq!(ids, ["b", "a"]);
        let search = VersionSearch::new(
            &listed,
            2,
            Some(VersionRef {
                version_id: "a".into(),
                written: "2026-01-01T00:00:00Z".parse().unwrap(),
            }),
        );
        assert_eq!(
            search.describe(),
            "what CloudTrail delivered is still in the bucket, proven by its hash or signature: version a (written 2026-01-01T00:00:00Z); deleted by a delete marker at 2026-01-03T00:00:00Z"
        );
    }

    fn outcome(content: &[u8]) -> GzOutcome {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut gz, content).unwrap();
        let mut inflater = crate::core::gz::Inflater::new(crate::core::gz::Limits::LOG);
        inflater.update(&gz.finish().unwrap());
        inflater.finish().0
    }

    /// An attacker's version must hash right and be one complete gzip member.
    #[test]
    fn a_version_with_the_right_hash_but_damaged_gzip_is_not_the_delivered_one() {
        let expected = Sha256::of(b"x");
        let mut good = outcome(b"x");
        assert!(log_version_is_delivered(&good, &expected));
        good.problem = Some(crate::core::gz::GzProblem::Truncated);
        assert!(!log_version_is_delivered(&good, &expected));
        assert!(!log_version_is_delivered(&outcome(b"y"), &expected));
    }
}
