//! Findings: what was checked, and what came out. A failed check is a finding, never an error.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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
                | DigestSuccessorMissing
                | DigestLinkOutsideChain
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
}

/// One checked subject and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `s3://bucket/key` of the object the finding is about.
    pub subject: String,
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
        }
    }

    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }
}
