//! Findings: what was checked, and what came out. A failed check is a finding, never an error.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::sign::SigningTime;
use super::types::{Fingerprint, Sha256};

/// The outcome for one subject, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    NotVerified,
    Missing,
    Invalid,
}

/// What kind of object a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Digest,
    Log,
}

/// Every kind of finding. The verdict follows from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    DigestValid,
    DigestMissing,
    DigestSuccessorMissing,
    DigestMoved,
    DigestFormat,
    DigestSignatureInvalid,
    DigestKeyUnknown,
    DigestKeyNotValid,
    DigestSignatureUnavailable,
    DigestLinkHashMismatch,
    DigestLinkSignatureMismatch,
    DigestLinkOutsideChain,
    DigestLinkOtherBucket,
    DigestUnlinked,
    DigestUnreadable,
    ChainGap,
    CoverageStart,
    CoverageEnd,
    /// A stretch inside the range that no digest accounts for and no other finding names.
    CoverageHole,
    LogValid,
    LogMissing,
    LogHashMismatch,
    LogFormat,
    LogTruncated,
    LogTrailingData,
    LogBudgetExceeded,
    LogUnverifiable,
    LogUnreferenced,
    LogOtherBucket,
    LogUnreadable,
    PathEscape,
    /// A file in a CloudTrail log folder that no digest can vouch for: its name is not a
    /// CloudTrail log file name (or not UTF-8), or it is a link to a folder (not followed).
    LogUnrecognised,
    /// The same in a CloudTrail digest folder.
    DigestUnrecognised,
}

impl Kind {
    pub fn verdict(self) -> Verdict {
        use Kind::*;
        match self {
            DigestValid | LogValid => Verdict::Valid,
            DigestMissing | DigestSuccessorMissing | LogMissing => Verdict::Missing,
            DigestMoved
            | DigestFormat
            | DigestSignatureInvalid
            | DigestKeyNotValid
            | DigestLinkHashMismatch
            | DigestLinkSignatureMismatch
            | DigestLinkOutsideChain
            | DigestUnlinked
            | LogHashMismatch
            | LogFormat
            | LogTruncated
            | LogTrailingData
            | PathEscape
            | LogUnrecognised
            | DigestUnrecognised => Verdict::Invalid,
            DigestKeyUnknown
            | DigestSignatureUnavailable
            | DigestLinkOtherBucket
            | DigestUnreadable
            | ChainGap
            | CoverageStart
            | CoverageEnd
            | CoverageHole
            | LogBudgetExceeded
            | LogUnverifiable
            | LogUnreferenced
            | LogOtherBucket
            | LogUnreadable => Verdict::NotVerified,
        }
    }

    /// Whether the finding judges its subject itself. Chain notes (gaps, coverage, a missing
    /// neighbour, a link leaving the evidence) sit on a digest without saying it is bad.
    pub fn judges_subject(self) -> bool {
        use Kind::*;
        !matches!(
            self,
            ChainGap
                | CoverageStart
                | CoverageEnd
                | CoverageHole
                | DigestSuccessorMissing
                | DigestLinkOtherBucket
        )
    }

    pub fn object(self) -> ObjectKind {
        use Kind::*;
        match self {
            LogValid | LogMissing | LogHashMismatch | LogFormat | LogTruncated
            | LogTrailingData | LogBudgetExceeded | LogUnverifiable | LogUnreferenced
            | LogOtherBucket | LogUnreadable | LogUnrecognised => ObjectKind::Log,
            _ => ObjectKind::Digest,
        }
    }
}

/// Facts behind a finding, for people and for machines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<Sha256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<Sha256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The period the finding is about (a digest's window, a gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// The digest that names the subject (for links and log files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a backfill digest: the times its key was checked against, and their `basis` — the
    /// unsigned `backfill-generation-timestamp` S3 metadata, or without it the bound after the
    /// digest's end. A verdict on a backfill digest always says which it relied on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<SigningTime>,
}

/// One checked subject and its outcome. An object has one finding that judges it (its worst,
/// see [`merge_by_object`]); the other reasons it is not valid are in `also`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `s3://bucket/key` of the object the finding is about.
    pub subject: String,
    pub kind: Kind,
    pub verdict: Verdict,
    pub reason: String,
    #[serde(skip_serializing_if = "is_empty_evidence")]
    pub evidence: Evidence,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Reason>,
}

/// A further reason an object is not valid, besides its finding's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub kind: Kind,
    pub verdict: Verdict,
    pub reason: String,
    #[serde(skip_serializing_if = "is_empty_evidence")]
    pub evidence: Evidence,
}

fn is_empty_evidence(e: &Evidence) -> bool {
    *e == Evidence::default()
}

impl Finding {
    pub fn new(subject: impl Into<String>, kind: Kind, reason: impl Into<String>) -> Self {
        Finding {
            subject: subject.into(),
            kind,
            verdict: kind.verdict(),
            reason: reason.into(),
            evidence: Evidence::default(),
            also: Vec::new(),
        }
    }

    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }

    /// What kind of object the finding is about. A path escape may be about either: its
    /// subject's key tells (a log file symlinked out of the copy is a log file).
    pub fn object(&self) -> ObjectKind {
        if self.kind != Kind::PathEscape {
            return self.kind.object();
        }
        let key = self
            .subject
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, key)| key);
        match key.map(|k| (super::layout::parse_key(k), super::layout::folders(k))) {
            Some((Ok(super::layout::CloudTrailKey::Log(_)), _)) => ObjectKind::Log,
            // Not a CloudTrail key (a link to a folder): the folder it is in tells.
            Some((Err(_), Some(f))) if f.ty == Some(super::layout::ObjectType::Log) => {
                ObjectKind::Log
            }
            _ => ObjectKind::Digest,
        }
    }
}

/// One finding per judged object: an object's findings that judge it become one, the worst
/// (the first of the worst, in order) carrying the others' reasons in `also`; a `valid` finding
/// gives way to any other. Findings that do not judge their subject (gaps, coverage, a missing
/// neighbour) stay as they are. Order is kept: each object where its first finding was.
pub fn merge_by_object(findings: Vec<Finding>) -> Vec<Finding> {
    use std::collections::HashMap;
    let mut first: HashMap<(ObjectKind, String), usize> = HashMap::new();
    let mut out: Vec<Option<Finding>> = Vec::with_capacity(findings.len());
    for f in findings {
        if !f.kind.judges_subject() {
            out.push(Some(f));
            continue;
        }
        let key = (f.object(), f.subject.clone());
        let Some(slot) = first
            .get(&key)
            .and_then(|&i| out.get_mut(i))
            .and_then(Option::as_mut)
        else {
            first.insert(key, out.len());
            out.push(Some(f));
            continue;
        };
        if f.verdict > slot.verdict {
            let mut worse = f;
            let kept = std::mem::replace(slot, Finding::new("", Kind::DigestValid, ""));
            worse.also = kept.also;
            if kept.verdict != Verdict::Valid {
                worse.also.insert(
                    0,
                    Reason {
                        kind: kept.kind,
                        verdict: kept.verdict,
                        reason: kept.reason,
                        evidence: kept.evidence,
                    },
                );
            }
            *slot = worse;
        } else if f.verdict != Verdict::Valid
            && !(f.kind == slot.kind && f.reason == slot.reason)
            && !slot
                .also
                .iter()
                .any(|r| r.kind == f.kind && r.reason == f.reason)
        {
            slot.also.push(Reason {
                kind: f.kind,
                verdict: f.verdict,
                reason: f.reason,
                evidence: f.evidence,
            });
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_broken_digest_is_one_invalid_line_not_valid_and_invalid() {
        let merged = merge_by_object(vec![
            Finding::new("s3://b/d", Kind::DigestValid, "valid"),
            Finding::new("s3://b/d", Kind::ChainGap, "gap"),
            Finding::new("s3://b/l", Kind::LogValid, "valid"),
            Finding::new("s3://b/d", Kind::DigestLinkOutsideChain, "outside"),
            Finding::new("s3://b/l", Kind::LogValid, "valid"),
            Finding::new("s3://b/d", Kind::DigestKeyUnknown, "no key"),
        ]);
        let got: Vec<(&str, Kind, Vec<Kind>)> = merged
            .iter()
            .map(|f| {
                (
                    f.subject.as_str(),
                    f.kind,
                    f.also.iter().map(|r| r.kind).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "s3://b/d",
                    Kind::DigestLinkOutsideChain,
                    vec![Kind::DigestKeyUnknown]
                ),
                ("s3://b/d", Kind::ChainGap, vec![]),
                ("s3://b/l", Kind::LogValid, vec![]),
            ]
        );
    }
}
