//! The report of one run, and its renderings.

pub mod audit;
pub mod cli_compat;
pub mod dsse;
pub mod html;
pub mod json;
pub mod jsonl;
pub mod signing;
pub mod statement;
pub mod text;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::layout::ChainId;
use crate::core::ledger::{Counts, HourState, Ledger};

/// Everything one run established, in a deterministic order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    /// What was verified: an evidence directory path or an S3 URI.
    pub source: String,
    pub bucket: String,
    pub range: RangeInfo,
    pub filters: Filters,
    /// The public keys the run could use.
    pub keys: Vec<KeyInfo>,
    pub chains: Vec<ChainReport>,
    /// Findings that belong to no chain: log files no digest references.
    pub unchained: Vec<Finding>,
    /// Things the run could not check, said plainly.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RangeInfo {
    pub start: Timestamp,
    pub end: Timestamp,
    /// True when the range was not given and was taken from the digests found.
    pub derived_from_evidence: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filters {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub trails: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    pub fingerprint: String,
    pub valid_from: Timestamp,
    pub valid_to: Timestamp,
    pub origin: String,
}

/// One chain: the digests newest first, each followed by its log files.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub chain: ChainInfo,
    pub findings: Vec<Finding>,
    /// Valid log-file listings counted but not kept as findings (`Settings::omit_valid_logs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted_valid_logs: usize,
    /// Of those, the log files no kept finding is about, each counted once: what `totals`
    /// adds (a file two digests list is one log file).
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted_valid_files: usize,
    /// Every hour of the range in exactly one state (standard chains; `None` for backfill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<Ledger>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ChainReport {
    /// Counts per object kind, the omitted valid log files included.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::of(&self.findings);
        t.logs.valid += self.omitted_valid_files;
        t
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainInfo {
    pub trail_arn: String,
    pub trail: String,
    pub home_region: String,
    pub prefix: String,
    pub organization: Option<String>,
    pub account: String,
    pub region: String,
    pub backfill: bool,
}

impl From<&ChainId> for ChainInfo {
    fn from(c: &ChainId) -> Self {
        ChainInfo {
            trail_arn: c.trail_arn(),
            trail: c.trail.clone(),
            home_region: c.home_region.clone(),
            prefix: c.scope.prefix.clone(),
            organization: c.scope.organization.clone(),
            account: c.scope.account.clone(),
            region: c.scope.region.clone(),
            backfill: c.backfill,
        }
    }
}

/// Valid / not verified / invalid (including missing) objects of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub valid: usize,
    pub invalid: usize,
    pub not_verified: usize,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.valid + self.invalid + self.not_verified
    }

    fn add(&mut self, other: Tally) {
        self.valid += other.valid;
        self.invalid += other.invalid;
        self.not_verified += other.not_verified;
    }
}

/// Counts per object kind, one per subject (its worst judging finding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub digests: Tally,
    pub logs: Tally,
    /// Gaps, uncovered ends of the range, links that leave the chain or the evidence.
    pub coverage_findings: usize,
}

impl Totals {
    pub fn of(findings: &[Finding]) -> Totals {
        use std::collections::BTreeMap;
        let mut worst: BTreeMap<(ObjectKind, &str), Verdict> = BTreeMap::new();
        let mut totals = Totals::default();
        for f in findings {
            match f.kind {
                Kind::ChainGap
                | Kind::CoverageStart
                | Kind::CoverageEnd
                | Kind::CoverageHole
                | Kind::DigestLinkOtherBucket => {
                    totals.coverage_findings += 1;
                    continue;
                }
                // A missing digest nobody can name is still one digest missing.
                Kind::DigestSuccessorMissing => {
                    totals.digests.invalid += 1;
                    continue;
                }
                _ => {}
            }
            let slot = worst
                .entry((f.object(), f.subject.as_str()))
                .or_insert(f.verdict);
            *slot = (*slot).max(f.verdict);
        }
        for ((object, _), verdict) in worst {
            let tally = match object {
                ObjectKind::Digest => &mut totals.digests,
                ObjectKind::Log => &mut totals.logs,
            };
            match verdict {
                Verdict::Valid => tally.valid += 1,
                Verdict::NotVerified => tally.not_verified += 1,
                Verdict::Missing | Verdict::Invalid => tally.invalid += 1,
            }
        }
        totals
    }

    pub fn add(&mut self, other: Totals) {
        self.digests.add(other.digests);
        self.logs.add(other.logs);
        self.coverage_findings += other.coverage_findings;
    }
}

impl Report {
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.chains
            .iter()
            .flat_map(|c| c.findings.iter())
            .chain(self.unchained.iter())
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.chains {
            t.add(c.totals());
        }
        t.add(Totals::of(&self.unchained));
        t
    }

    /// 0 when everything checked is valid and every hour of every chain's ledger is proven,
    /// 1 when anything is not, 2 when an object could not be read at all (the job was not
    /// fully done).
    pub fn exit_code(&self) -> u8 {
        if self
            .all_findings()
            .any(|f| matches!(f.kind, Kind::DigestUnreadable | Kind::LogUnreadable))
        {
            2
        } else if self.all_findings().all(|f| f.verdict == Verdict::Valid)
            && self.ledgers().all(Ledger::is_proven)
        {
            0
        } else {
            1
        }
    }

    pub fn ledgers(&self) -> impl Iterator<Item = &Ledger> {
        self.chains.iter().filter_map(|c| c.ledger.as_ref())
    }

    /// The hours of every chain's ledger, added up.
    pub fn ledger_counts(&self) -> Counts {
        let mut counts = Counts::default();
        for l in self.ledgers() {
            counts.add_all(&l.counts);
        }
        counts
    }

    /// What kinds of problem the run found, worst first, for the result line.
    pub fn problems(&self) -> Vec<Problem> {
        let hours = self.ledger_counts();
        let any = |v: Verdict| self.all_findings().any(|f| f.verdict == v);
        let mut out = Vec::new();
        if any(Verdict::Invalid) || hours.get(HourState::Invalid) > 0 {
            out.push(Problem::Invalid);
        }
        if any(Verdict::Missing) || hours.get(HourState::Missing) > 0 {
            out.push(Problem::Missing);
        }
        let unproven = self
            .all_findings()
            .any(|f| f.verdict == Verdict::NotVerified && !matches!(f.kind, Kind::ChainGap));
        if unproven || hours.get(HourState::NotVerified) > 0 {
            out.push(Problem::NotVerified);
        }
        if hours.get(HourState::Gap) > 0 || self.all_findings().any(|f| f.kind == Kind::ChainGap) {
            out.push(Problem::Gaps);
        }
        out
    }
}

/// A kind of problem a run can find, for the result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Tampered or otherwise invalid evidence.
    Invalid,
    /// Evidence that should be there and is not.
    Missing,
    /// Evidence that could not be checked.
    NotVerified,
    /// Periods CloudTrail itself says it did not log or validate (signed restarts).
    Gaps,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::Invalid => "tampered or invalid evidence",
            Problem::Missing => "missing evidence",
            Problem::NotVerified => "evidence that could not be verified",
            Problem::Gaps => "coverage gaps (logging or validation was off)",
        }
    }
}
