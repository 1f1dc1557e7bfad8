//! The report of one run, and its renderings.
pub mod audit;
pub mod checkpoint;
pub mod cli_compat;
pub mod crosscheck;
pub mod der;
pub mod dsse;
pub mod html;
pub mod json;
pub mod jsonl;
pub mod lake;
pub mod records;
pub mod signing;
pub mod statement;
pub mod text;
pub mod timestamp;

use std::borrow::Cow;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::cloudwatch::CrosscheckCounts;
use crate::core::custody::Retention;
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::layout::ChainId;
use crate::core::ledger::{Counts, HourState, Ledger};

/// Everything one run established, in a deterministic order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The tool's name, `trailproof`.
    pub tool: &'static str,
    /// The tool's version (the crate version).
    pub version: &'static str,
    /// What was verified: an evidence directory path or an S3 URI.
    pub source: String,
    /// The S3 bucket verified, or the one a local copy was taken from.
    pub bucket: String,
    /// The period verified.
    pub range: RangeInfo,
    /// The accounts, Regions and trails the run was limited to.
    pub filters: Filters,
    /// The public keys the run could use.
    pub keys: Vec<KeyInfo>,
    /// One per digest chain found, standard and backfill, in a fixed order.
    pub chains: Vec<ChainReport>,
    /// Findings that belong to no chain: log files no digest references.
    pub unchained: Vec<Finding>,
    /// Things the run could not check, said plainly.
    pub notes: Vec<String>,
    /// Of the proven objects, how many S3 said were under Object Lock retention, and until
    /// when (S3 runs only; left out when none).
    #[serde(skip_serializing_if = "Retention::is_empty")]
    pub retention: Retention,
    /// Where each chain walked starts and stops, for a checkpoint ([`checkpoint`]); not part
    /// of any output.
    #[serde(skip)]
    pub chain_ends: Vec<crate::engine::ChainEnds>,
    /// `crosscheck cloudwatch` only: what was compared with the log group, and the counts
    /// that are not findings (matched, duplicates, oversized). Left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crosscheck: Option<CrosscheckCounts>,
}

/// The period a run verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RangeInfo {
    /// Start of the period.
    pub start: Timestamp,
    /// End of the period.
    pub end: Timestamp,
    /// True when the range was not given and was taken from the digests found.
    pub derived_from_evidence: bool,
}

/// What a run was limited to; an empty list limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// Account ids (12 digits).
    pub accounts: Vec<String>,
    /// Source Regions of the chains.
    pub regions: Vec<String>,
    /// Trail names.
    pub trails: Vec<String>,
}

/// A CloudTrail public key a run could use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Lowercase hex MD5 of the key's DER bytes.
    pub fingerprint: String,
    /// Start of the key's validity window.
    pub valid_from: Timestamp,
    /// End of the key's validity window.
    pub valid_to: Timestamp,
    /// Where the key came from, for people (`pinned file PATH`, `cloudtrail:ListPublicKeys`).
    pub origin: String,
}

/// One chain: the digests newest first, each followed by its log files.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Which chain.
    pub chain: ChainInfo,
    /// One finding per judged object plus the chain notes, digests newest first.
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

/// Which chain a [`ChainReport`] is about: a [`ChainId`] spelled out for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// As [`ChainId::trail_arn`].
    pub trail_arn: String,
    /// The trail name.
    pub trail: String,
    /// The Region the trail was created in.
    pub home_region: String,
    /// The key prefix before `AWSLogs/`, without slashes; empty for none.
    pub prefix: String,
    /// The `o-...` id of an organization trail.
    pub organization: Option<String>,
    /// The account whose events the chain covers.
    pub account: String,
    /// The source Region of the chain.
    pub region: String,
    /// Whether this is the trail's backfill sequence.
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
    /// Objects whose worst finding is valid.
    pub valid: usize,
    /// Objects whose worst finding is invalid or missing.
    pub invalid: usize,
    /// Objects whose worst finding is not verified.
    pub not_verified: usize,
}

impl Tally {
    /// All objects counted.
    pub fn total(&self) -> usize {
        self.valid + self.invalid + self.not_verified
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        self.total() == 0
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
    /// Digest files.
    pub digests: Tally,
    /// Log files.
    pub logs: Tally,
    /// Gaps, uncovered ends of the range, links that leave the chain or the evidence.
    pub coverage_findings: usize,
    /// CloudTrail Lake sign files (`verify-query-results` only; absent when none).
    #[serde(default, skip_serializing_if = "Tally::is_zero")]
    pub query_sign_files: Tally,
    /// CloudTrail Lake result files and other files of the export folder (`verify-query-results`
    /// only; absent when none).
    #[serde(default, skip_serializing_if = "Tally::is_zero")]
    pub query_results: Tally,
    /// CloudWatch Logs events judged by `crosscheck cloudwatch` (events found unaltered are
    /// counted in `crosscheck.matched`, not here; absent when none).
    #[serde(default, skip_serializing_if = "Tally::is_zero")]
    pub cloudwatch_events: Tally,
}

impl Totals {
    /// The counts of `findings`: each object once, by its worst judging finding; chain notes
    /// as coverage findings; a [`Kind::DigestSuccessorMissing`] as one invalid digest.
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
                ObjectKind::QuerySign => &mut totals.query_sign_files,
                ObjectKind::QueryResult => &mut totals.query_results,
                ObjectKind::CloudWatchEvent => &mut totals.cloudwatch_events,
            };
            match verdict {
                Verdict::Valid => tally.valid += 1,
                Verdict::NotVerified => tally.not_verified += 1,
                Verdict::Missing | Verdict::Invalid => tally.invalid += 1,
            }
        }
        totals
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Totals) {
        self.digests.add(other.digests);
        self.logs.add(other.logs);
        self.coverage_findings += other.coverage_findings;
        self.query_sign_files.add(other.query_sign_files);
        self.query_results.add(other.query_results);
        self.cloudwatch_events.add(other.cloudwatch_events);
    }
}

impl Report {
    /// Every finding: each chain's in order, then the unchained ones.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.chains
            .iter()
            .flat_map(|c| c.findings.iter())
            .chain(self.unchained.iter())
    }

    /// Counts over every chain and the unchained findings.
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
        if self.all_findings().any(|f| f.kind.unread()) {
            2
        } else if self.all_findings().all(|f| f.verdict == Verdict::Valid)
            && self.ledgers().all(Ledger::is_proven)
        {
            0
        } else {
            1
        }
    }

    /// The ledgers of the standard chains.
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
    /// The words for it on the result line.
    pub fn describe(self) -> &'static str {
        match self {
            Problem::Invalid => "tampered or invalid evidence",
            Problem::Missing => "missing evidence",
            Problem::NotVerified => "evidence that could not be verified",
            Problem::Gaps => "coverage gaps (logging or validation was off)",
        }
    }
}

/// A field of a tab-separated line (an object key, a reason) with its tabs escaped (`\t`):
/// found by the red team, a key holding a tab shifted the columns, and `cut -f3` read "valid"
/// on an invalid object's line. The line is then made [`printable`] whole.
pub(crate) fn field(text: &str) -> Cow<'_, str> {
    if text.contains('\t') {
        Cow::Owned(text.replace('\t', "\\t"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` with every control character but the tab, and every Unicode direction override,
/// escaped (`\n`, `\u{1b}`, `\u{202e}`), for the reports read on a terminal. Object keys
/// and finding details come from the evidence: a key holding a newline and an escape sequence
/// could otherwise print a forged line (a "RESULT: ... valid") or erase the real ones.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
