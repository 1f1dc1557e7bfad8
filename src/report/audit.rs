//! The audit document: a [`Report`] with the run's own times, per-chain coverage, a manifest of
//! every checked object and what the run does not prove. The JSON, JSONL, HTML and signed
//! (in-toto) outputs all render this one document.
//!
//! Everything here is derived from the report's findings, which the engine emits in a fixed
//! order, so the document is the same at any thread count. The only wall-clock facts are in
//! [`RunInfo`]: fix it (library tests) or strip the `run` object (binary tests) to compare two
//! runs byte for byte.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report, Totals};
use crate::core::cloudwatch::CrosscheckCounts;
use crate::core::custody::Retention;
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::ledger::{Counts, HourState, Ledger};
use crate::core::time::format_iso;

/// The JSON schema name; `report verify` accepts exactly this.
pub const SCHEMA: &str = "trailproof-report/1";

/// When the run happened: the only facts of a report that differ between two identical runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// When the run began, by the wall clock of the machine that ran it.
    pub started: Timestamp,
    /// When the report was made; a CA-issued signer certificate must be valid then.
    pub finished: Timestamp,
}

/// Who signed a report, inside the signed payload so that the envelope's unsigned hints (key id,
/// certificate) are bound to the signature: changing them is detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerInfo {
    /// Lowercase hex SHA-256 of the signing key's SubjectPublicKeyInfo (DER).
    pub keyid: String,
    /// The signature algorithm's name (see [`super::signing::Algorithm::name`]).
    pub algorithm: String,
    /// Lowercase hex SHA-256 of the embedded certificate's PEM bytes, when one is embedded.
    pub certificate_sha256: Option<String>,
    /// The certificate's subject, for people.
    pub certificate_subject: Option<String>,
}

/// A closed period of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Start, included.
    pub from: Timestamp,
    /// End, included.
    pub to: Timestamp,
}

/// What one chain covers within the range. The three lists are disjoint and, for a standard
/// chain, together make up the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Covered by valid digests.
    pub verified: Vec<Period>,
    /// Nothing covers them: gaps between chain segments, missing digests, uncovered range ends.
    pub gaps: Vec<Period>,
    /// Digests exist (or may) but none could be verified. Always empty for backfill chains,
    /// whose digests cover late deliveries, not a stretch of time.
    pub not_verified: Vec<Period>,
}

/// One checked object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// `s3://bucket/key` of the object.
    pub uri: String,
    /// Digest or log file.
    pub object: ObjectKind,
    /// The S3 version id, when the source knows it (local copies do not).
    pub version_id: Option<String>,
    /// Lowercase hex SHA-256 of the inflated content (what CloudTrail digests hash), when the
    /// object could be read.
    pub sha256: Option<String>,
    /// The worst verdict of the findings that judge it.
    pub verdict: Verdict,
}

/// Kinds of things a report does not prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unproven {
    /// A period no digest covers.
    Gap,
    /// A period whose digests could not be verified.
    NotVerifiedPeriod,
    /// A chain's newest digest without its signature.
    UnverifiableHead,
    /// A log file in no digest: delivered while validation was off, or injected.
    UnreferencedLog,
    /// Any other object that could not be checked.
    NotVerifiedObject,
    /// Time outside the range, other buckets, Insights files.
    OutsideRange,
    /// The public keys are a trust anchor.
    TrustedKeys,
    /// What the source or the engine said it could not check.
    Note,
}

/// One thing the report does not prove, so that a reader of a clean report knows its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotProven {
    /// What kind of limit.
    pub what: Unproven,
    /// `account Region trail` of the chain concerned, if one.
    pub chain: Option<String>,
    /// The `s3://` URI of the object concerned, if one.
    pub subject: Option<String>,
    /// The period concerned, if one.
    pub period: Option<Period>,
    /// The limit in words.
    pub detail: String,
}

/// A public key the run could use, and how many digests it verified.
#[derive(Debug, Clone, Serialize)]
pub struct KeyUse<'a> {
    /// The key; its fields appear inline in the JSON.
    #[serde(flatten)]
    pub key: &'a KeyInfo,
    /// How many digests it verified (valid digests only).
    pub digests_verified: usize,
}

/// One chain in the audit document.
#[derive(Debug, Clone, Serialize)]
pub struct ChainDoc<'a> {
    /// Which chain.
    pub chain: &'a ChainInfo,
    /// What it covers within the range.
    pub coverage: Coverage,
    /// Every hour of the range in one state; absent for backfill chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<&'a Ledger>,
    /// Its findings, digests newest first, each followed by its log files.
    pub findings: &'a [Finding],
}

/// What makes a report one shard's of a plan (`verify --plan`, see
/// [`crate::engine::fanout`]), for `merge` to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardStamp {
    /// Lowercase hex SHA-256 of the plan file's bytes, as the shard read them.
    pub plan_sha256: String,
    /// The shard's index in the plan, from 0.
    pub index: usize,
    /// How many shards the plan has.
    pub shards: usize,
    /// Where the shard's public keys came from: `cloudtrail:ListPublicKeys`, or `pinned:` and
    /// the lowercase hex SHA-256 of the key file (the plan says which it must be).
    pub keys: String,
}

/// What a merged report was made from (`merge`): the plan, by the SHA-256 `plan` printed, and
/// its number of shards, each merged once. It ties the report to the plan an auditor kept: a
/// plan edited before the shards ran (a folder left out) has another SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeStamp {
    /// Lowercase hex SHA-256 of the plan file's bytes.
    pub plan_sha256: String,
    /// How many shards the plan has.
    pub shards: usize,
}

/// The ledgers of every chain, added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Standard chains with a ledger.
    pub chains: usize,
    /// Hours of all of them (chains x hours of the range, when every chain answers for the
    /// whole range).
    pub hours: u64,
    /// Hours per state, over all of them.
    pub counts: Counts,
}

/// The audit document (JSON schema [`SCHEMA`]; field by field in `src/report/json.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct Document<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// As [`Report::tool`].
    pub tool: &'a str,
    /// As [`Report::version`].
    pub version: &'a str,
    /// When the run happened.
    pub run: RunInfo,
    /// Who signed it; set only in a signed statement's payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<SignerInfo>,
    /// Set only in a shard's report (`verify --plan`): which plan and which shard of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardStamp>,
    /// Set only in a merged report (`merge`): which plan its shards ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeStamp>,
    /// As [`Report::source`].
    pub source: &'a str,
    /// As [`Report::bucket`].
    pub bucket: &'a str,
    /// As [`Report::range`].
    pub range: &'a RangeInfo,
    /// As [`Report::filters`].
    pub filters: &'a Filters,
    /// The keys the run could use, each with how many digests it verified.
    pub keys: Vec<KeyUse<'a>>,
    /// Every chain, in the report's order.
    pub chains: Vec<ChainDoc<'a>>,
    /// As [`Report::unchained`].
    pub unchained: &'a [Finding],
    /// As [`Report::notes`].
    pub notes: &'a [String],
    /// As [`Report::totals`].
    pub totals: Totals,
    /// As [`Report::retention`]; left out when empty.
    #[serde(skip_serializing_if = "Retention::is_empty")]
    pub retention: Retention,
    /// Every chain's ledger added up.
    pub ledger: LedgerTotals,
    /// As [`Report::crosscheck`]; left out when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crosscheck: Option<&'a CrosscheckCounts>,
    /// Every judged object, sorted by URI.
    pub manifest: Vec<ManifestEntry>,
    /// What the report does not prove.
    pub not_proven: Vec<NotProven>,
    /// As [`Report::exit_code`].
    pub exit_code: i64,
}

impl<'a> Document<'a> {
    /// The document of `report`, made at `run`. Everything but `run` follows from the report.
    pub fn new(report: &'a Report, run: RunInfo) -> Self {
        let range = Period {
            from: report.range.start,
            to: report.range.end,
        };
        let chains: Vec<ChainDoc<'a>> = report
            .chains
            .iter()
            .map(|c| ChainDoc {
                chain: &c.chain,
                coverage: coverage(c, range),
                ledger: c.ledger.as_ref(),
                findings: &c.findings,
            })
            .collect();
        let mut used: BTreeMap<&str, usize> = BTreeMap::new();
        for f in report.all_findings() {
            if let (Kind::DigestValid, Some(fp)) = (f.kind, &f.evidence.fingerprint) {
                *used.entry(fp.as_str()).or_default() += 1;
            }
        }
        let not_proven = not_proven(report, &chains);
        Document {
            schema: SCHEMA,
            tool: report.tool,
            version: report.version,
            run,
            signer: None,
            shard: None,
            merged: None,
            source: &report.source,
            bucket: &report.bucket,
            range: &report.range,
            filters: &report.filters,
            keys: report
                .keys
                .iter()
                .map(|k| KeyUse {
                    key: k,
                    digests_verified: used.get(k.fingerprint.as_str()).copied().unwrap_or(0),
                })
                .collect(),
            chains,
            unchained: &report.unchained,
            notes: &report.notes,
            totals: report.totals(),
            retention: report.retention,
            ledger: LedgerTotals {
                chains: report.ledgers().count(),
                hours: report.ledger_counts().total(),
                counts: report.ledger_counts(),
            },
            crosscheck: report.crosscheck.as_ref(),
            manifest: manifest(report),
            not_proven,
            exit_code: report.exit_code().into(),
        }
    }

    /// Every finding, in report order.
    pub fn findings(&self) -> impl Iterator<Item = (Option<&'a ChainInfo>, &'a Finding)> + '_ {
        self.chains
            .iter()
            .flat_map(|c| c.findings.iter().map(|f| (Some(c.chain), f)))
            .chain(self.unchained.iter().map(|f| (None, f)))
    }
}

/// `account Region trail`, the way people name a chain.
pub(crate) fn chain_label(c: &ChainInfo) -> String {
    format!(
        "{} {} {}{}",
        c.account,
        c.region,
        c.trail,
        if c.backfill { " (backfill)" } else { "" }
    )
}

/// Periods are closed; two that touch make one.
fn merge(mut periods: Vec<Period>) -> Vec<Period> {
    periods.retain(|p| p.from < p.to);
    periods.sort();
    let mut out: Vec<Period> = Vec::with_capacity(periods.len());
    for p in periods {
        match out.last_mut() {
            Some(last) if p.from <= last.to => last.to = last.to.max(p.to),
            _ => out.push(p),
        }
    }
    out
}

fn clip(periods: impl IntoIterator<Item = Period>, range: Period) -> Vec<Period> {
    merge(
        periods
            .into_iter()
            .map(|p| Period {
                from: p.from.max(range.from),
                to: p.to.min(range.to),
            })
            .collect(),
    )
}

fn period_of(f: &Finding) -> Option<Period> {
    Some(Period {
        from: f.evidence.from?,
        to: f.evidence.to?,
    })
}

fn is_gap(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::ChainGap | Kind::CoverageStart | Kind::CoverageEnd | Kind::DigestSuccessorMissing
    )
}

/// A standard chain's coverage is its ledger's exact periods: verified (valid digests whose log
/// files are valid), gaps (signed restarts and missing digests: nothing covers them) and not
/// verified (the rest: unverifiable or invalid). A backfill chain has only its valid digests'
/// windows.
fn coverage(chain: &ChainReport, range: Period) -> Coverage {
    let Some(ledger) = &chain.ledger else {
        return backfill_coverage(&chain.findings, range);
    };
    let of = |states: &[HourState]| {
        clip(
            ledger
                .periods
                .iter()
                .filter(|p| states.contains(&p.state))
                .map(|p| Period {
                    from: p.from,
                    to: p.to,
                }),
            range,
        )
    };
    Coverage {
        verified: of(&[HourState::Verified, HourState::VerifiedEmpty]),
        gaps: of(&[HourState::Gap, HourState::Missing]),
        not_verified: of(&[HourState::NotVerified, HourState::Invalid]),
    }
}

/// A backfill chain's coverage: the windows of its valid digests (they cover late deliveries,
/// not a stretch of time, so nothing else is said).
fn backfill_coverage(findings: &[Finding], range: Period) -> Coverage {
    Coverage {
        verified: clip(
            findings
                .iter()
                .filter(|f| f.kind == Kind::DigestValid)
                .filter_map(period_of),
            range,
        ),
        ..Coverage::default()
    }
}

/// One entry per judged subject, sorted by URI.
pub fn manifest(report: &Report) -> Vec<ManifestEntry> {
    let mut by_uri: BTreeMap<&str, ManifestEntry> = BTreeMap::new();
    for f in report.all_findings().filter(|f| f.kind.judges_subject()) {
        let entry = by_uri
            .entry(f.subject.as_str())
            .or_insert_with(|| ManifestEntry {
                uri: f.subject.clone(),
                object: f.object(),
                version_id: f.custody.as_ref().and_then(|c| c.version_id.clone()),
                sha256: None,
                verdict: f.verdict,
            });
        entry.verdict = entry.verdict.max(f.verdict);
        if entry.sha256.is_none() {
            entry.sha256 = f.evidence.actual_sha256.map(|h| h.to_hex());
        }
    }
    by_uri.into_values().collect()
}

fn not_proven(report: &Report, chains: &[ChainDoc<'_>]) -> Vec<NotProven> {
    let mut out = Vec::new();
    let item = |what, chain: Option<&ChainInfo>, f: &Finding| NotProven {
        what,
        chain: chain.map(chain_label),
        subject: Some(f.subject.clone()),
        period: period_of(f),
        detail: f.reason.clone(),
    };
    for c in chains {
        for f in c.findings {
            let what = match f.kind {
                k if is_gap(k) => Unproven::Gap,
                Kind::DigestSignatureUnavailable => Unproven::UnverifiableHead,
                _ if f.verdict == Verdict::NotVerified => Unproven::NotVerifiedObject,
                _ => continue,
            };
            out.push(item(what, Some(c.chain), f));
        }
        // Every stretch of the ledger that is not proven, with its state.
        for p in c.ledger.iter().flat_map(|l| &l.periods) {
            let what = match p.state {
                HourState::Verified | HourState::VerifiedEmpty => continue,
                HourState::Gap | HourState::Missing => Unproven::Gap,
                HourState::NotVerified | HourState::Invalid => Unproven::NotVerifiedPeriod,
            };
            out.push(NotProven {
                what,
                chain: Some(chain_label(c.chain)),
                subject: None,
                period: Some(Period {
                    from: p.from,
                    to: p.to,
                }),
                detail: format!("ledger: {}", p.state.name()),
            });
        }
    }
    for f in &report.unchained {
        let what = match f.kind {
            Kind::LogUnreferenced => Unproven::UnreferencedLog,
            _ if f.verdict == Verdict::NotVerified => Unproven::NotVerifiedObject,
            _ => continue,
        };
        out.push(item(what, None, f));
    }
    // A query-results report (`verify-query-results`) states its own limits in its notes.
    let query_results = report
        .unchained
        .iter()
        .any(|f| f.object() == ObjectKind::QuerySign);
    if !query_results {
        out.push(NotProven {
            what: Unproven::OutsideRange,
            chain: None,
            subject: None,
            period: None,
            detail: format!(
                "anything delivered before {} or after {}, objects in other buckets, Insights files (CloudTrail does not digest them), and accounts, Regions or trails the filters leave out",
                format_iso(report.range.start),
                format_iso(report.range.end)
            ),
        });
    }
    let mut origins: Vec<&str> = report.keys.iter().map(|k| k.origin.as_str()).collect();
    origins.sort_unstable();
    origins.dedup();
    for origin in origins {
        out.push(NotProven {
            what: Unproven::TrustedKeys,
            chain: None,
            subject: None,
            period: None,
            detail: format!("the CloudTrail public keys from {origin} are trusted as given"),
        });
    }
    out.extend(report.notes.iter().map(|n| NotProven {
        what: Unproven::Note,
        chain: None,
        subject: None,
        period: None,
        detail: n.clone(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Evidence;

    fn t(h: i64) -> Timestamp {
        Timestamp::from_second(h * 3600).unwrap()
    }

    fn p(a: i64, b: i64) -> Period {
        Period {
            from: t(a),
            to: t(b),
        }
    }

    fn windowed(kind: Kind, a: i64, b: i64) -> Finding {
        Finding::new(format!("s3://b/{kind:?}{a}"), kind, "r").with(Evidence {
            from: Some(t(a)),
            to: Some(t(b)),
            ..Evidence::default()
        })
    }

    #[test]
    fn touching_periods_merge() {
        assert_eq!(
            merge(vec![p(2, 3), p(0, 1), p(1, 2), p(5, 6)]),
            vec![p(0, 3), p(5, 6)]
        );
    }

    #[test]
    fn coverage_is_the_ledger_and_backfill_has_only_valid_windows() {
        use crate::core::ledger::Span;
        let span = |a, b, state| Span {
            from: t(a),
            to: t(b),
            state,
        };
        let findings = vec![
            windowed(Kind::DigestValid, 0, 1),
            windowed(Kind::DigestValid, 1, 2),
            windowed(Kind::ChainGap, 2, 4),
            windowed(Kind::DigestValid, 4, 5),
        ];
        let ledger = Ledger::of(
            t(0),
            t(6),
            &[
                span(0, 2, HourState::Verified),
                span(2, 3, HourState::Gap),
                span(3, 4, HourState::Missing),
                span(4, 5, HourState::VerifiedEmpty),
                span(5, 6, HourState::Invalid),
            ],
        );
        let chain = |backfill: bool| ChainReport {
            chain: ChainInfo {
                trail_arn: String::new(),
                trail: "t".into(),
                home_region: "us-east-1".into(),
                prefix: String::new(),
                organization: None,
                account: "111122223333".into(),
                region: "us-east-1".into(),
                backfill,
            },
            findings: findings.clone(),
            omitted_valid_logs: 0,
            omitted_valid_files: 0,
            ledger: (!backfill).then(|| ledger.clone()),
        };
        let c = coverage(&chain(false), p(0, 6));
        assert_eq!(c.verified, vec![p(0, 2), p(4, 5)]);
        assert_eq!(c.gaps, vec![p(2, 4)]);
        assert_eq!(c.not_verified, vec![p(5, 6)]);
        let backfill = coverage(&chain(true), p(0, 6));
        assert_eq!(backfill.verified, vec![p(0, 2), p(4, 5)]);
        assert!(backfill.gaps.is_empty() && backfill.not_verified.is_empty());
        // Windows reaching past the range are clipped to it.
        let c = backfill_coverage(&[windowed(Kind::DigestValid, 0, 9)], p(1, 3));
        assert_eq!(c.verified, vec![p(1, 3)]);
    }
}
