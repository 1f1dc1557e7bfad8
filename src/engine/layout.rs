//! Laying out the chain reports: each digest's findings followed by its log files', and each
//! chain's ledger of hours from the walk's holes and the digests' windows.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use jiff::Timestamp;

use super::assemble::{ChainDone, FindingSink, FinishedChain};
use super::count::{ChainLayout, ValidLogs};
use super::ends::ChainEnds;
use super::logs::{log_finding, Names, Step};
use super::texts::{TextHashes, TextSet};
use super::versions::Recovery;
use crate::core::chain::{DigestStatus, WalkedDigest};
use crate::core::custody::{CurrentVersion, Retention};
use crate::core::digest::LogFileEntry;
use crate::core::finding::{Evidence, Finding, Kind, ObjectKind, Verdict};
use crate::core::gz::GzOutcome;
use crate::core::layout::ChainId;
use crate::core::ledger::{HourState, Ledger, Span};
use crate::core::types::S3Location;
use crate::report::{ChainInfo, ChainReport, RangeInfo};
use crate::source::{ObjectSource, ReadError, ReadFailure};

/// What laying out the chains came to.
pub(super) struct LaidOut {
    /// The chain reports, in order.
    pub(super) chains: Vec<ChainReport>,
    /// Notes for the report.
    pub(super) notes: Vec<String>,
    /// Proven objects under Object Lock retention.
    pub(super) retention: Retention,
}

/// The part of the range a chain answers for ([`crate::core::chain::WalkedChain::extent`]).
type Extent = (Timestamp, Timestamp);

/// The chain reports laid out so far, and the chain being laid out.
pub(super) struct Layout<'a> {
    bucket: &'a str,
    /// The source, for what its records say of recovered copies.
    source: &'a dyn ObjectSource,
    /// Version recovery for the chains' bad objects, when the source has versions.
    recovery: Option<Recovery<'a>>,
    /// Notes for the report (versions that could not be listed).
    notes: Vec<String>,
    /// Proven objects under Object Lock, as S3 said, each counted once (by a hash of its
    /// subject, keyed afresh per run).
    retention: Retention,
    /// When the run read the objects: a retention date before it protects nothing.
    now: jiff::Timestamp,
    retained: (HashSet<u64>, RandomState),
    sink: Option<FindingSink<'a>>,
    valid_logs: ValidLogs<'a>,
    /// Log files some verified digest of the run names.
    judged: &'a TextSet,
    /// The standard chain laid out last, with its timeline (none when it is caught up, see
    /// [`crate::core::chain::WalkedChain::caught_up`]), for its backfill chain (next).
    standard: Option<(ChainId, Option<Extent>, Vec<Span>)>,
    reports: Vec<ChainReport>,
    chain: ChainLayout<'a>,
    /// A shard's share of the range, and the range ([`super::Window`]): what lies outside it
    /// is laid out for the ledger's sake only, and not reported.
    window: Option<(super::Window, (Timestamp, Timestamp))>,
    /// Whether the digest being laid out is reported (always, without a window).
    owned: bool,
    /// Who is told of each chain once it is final, the chains' ends (in the chains' order),
    /// and the range; and how many chains were told of so far.
    done: Option<(ChainDone<'a>, &'a [ChainEnds], RangeInfo)>,
    told: usize,
}

impl<'a> Layout<'a> {
    /// A layout of `chains` chains of `bucket`, handing each to `sink` once laid out.
    pub(super) fn new(
        (bucket, source, recovery): (&'a str, &'a dyn ObjectSource, Option<Recovery<'a>>),
        sink: Option<FindingSink<'a>>,
        valid_logs: ValidLogs<'a>,
        judged: &'a TextSet,
        chains: usize,
    ) -> Self {
        Layout {
            bucket,
            source,
            recovery,
            notes: Vec::new(),
            retention: Retention::default(),
            now: jiff::Timestamp::now(),
            retained: Default::default(),
            sink,
            valid_logs,
            judged,
            standard: None,
            reports: Vec::with_capacity(chains),
            chain: ChainLayout::new(valid_logs, 0),
            window: None,
            owned: true,
            done: None,
            told: 0,
        }
    }

    /// Tells `done` of each chain once it is final, with its ends (`ends`, in the order the
    /// chains are laid out).
    pub(super) fn telling(self, done: Option<(ChainDone<'a>, &'a [ChainEnds], RangeInfo)>) -> Self {
        Layout { done, ..self }
    }

    /// Tells of the chains laid out so far but the last `held` (a standard chain waits for the
    /// next one: its backfill chain, if that is the next, changes its ledger).
    fn tell(&mut self, held: usize) {
        let Some((done, all, range)) = &self.done else {
            return;
        };
        let upto = self.reports.len().saturating_sub(held);
        let mut told = self.told;
        for (report, ends) in self
            .reports
            .iter()
            .zip(all.iter())
            .take(upto)
            .skip(self.told)
        {
            // Chains are laid out in the order of their ends; a chain told with another's
            // ends would move a checkpoint wrongly, so a mismatch tells nothing more.
            if ChainInfo::from(&ends.chain) != report.chain {
                break;
            }
            done(&FinishedChain {
                bucket: self.bucket,
                range: range.clone(),
                report,
                ends,
                every: all,
            });
            told += 1;
        }
        if told < upto {
            self.done = None;
        }
        self.told = told;
    }

    /// Lays out only `window`'s share of `range` (a shard's, see [`super::Window`]).
    pub(super) fn windowed(
        self,
        window: Option<super::Window>,
        range: (Timestamp, Timestamp),
    ) -> Self {
        Layout {
            window: window.map(|w| (w, range)),
            ..self
        }
    }

    /// The ledger of the hours from `from` to `to` that the layout reports.
    fn ledger(&self, (from, to): (Timestamp, Timestamp), spans: &[Span]) -> Ledger {
        match self.window {
            Some((w, (start, end))) => {
                let from = if w.owned.0 <= start {
                    from
                } else {
                    from.max(w.owned.0)
                };
                let to = if w.owned.1 >= end {
                    to
                } else {
                    to.min(w.owned.1)
                };
                Ledger::of(from, to.max(from), spans)
            }
            None => Ledger::of(from, to, spans),
        }
    }

    /// The bucket the run is about.
    pub(super) fn bucket(&self) -> &'a str {
        self.bucket
    }

    /// The chain reports, in the order the chains were laid out, with what the report says of
    /// them all.
    pub(super) fn into_reports(mut self) -> LaidOut {
        self.tell(0);
        LaidOut {
            chains: self.reports,
            notes: self.notes,
            retention: self.retention,
        }
    }

    /// Puts on `f` what S3 said of its object's custody when it was read, and counts a proven
    /// object's retention once.
    fn custody(&mut self, f: &mut Finding, location: &S3Location) {
        if location.bucket != self.bucket {
            return;
        }
        let Some(custody) = self.source.take_custody(&location.key) else {
            return;
        };
        let (seen, hasher) = &mut self.retained;
        if self.owned && f.verdict == Verdict::Valid && seen.insert(hasher.hash_one(&f.subject)) {
            self.retention.add(&custody, self.now);
        }
        f.custody = Some(Box::new(custody));
    }

    /// The finding on an object of the run's bucket whose copy the source's records say was
    /// recovered from S3 versioning, or was no longer in the bucket when acquired again: the
    /// bucket did not hold it as current. Its content is judged by the other findings, never
    /// by this record.
    fn recovered(&self, location: &S3Location) -> Option<Finding> {
        if location.bucket != self.bucket {
            return None;
        }
        let Some((version_id, recovered)) = self.source.recovered(&location.key) else {
            let at = self.source.gone(&location.key)?;
            return Some(Finding::new(
                location.uri(),
                Kind::DeletedInBucket,
                format!("the bucket no longer held this object when it was acquired again at {at}; this copy is from an earlier acquisition (evidence-metadata record)"),
            ));
        };
        let kind = match recovered.current {
            CurrentVersion::DeleteMarker { .. } => Kind::DeletedInBucket,
            CurrentVersion::Overwritten { .. } | CurrentVersion::Absent => {
                Kind::OverwrittenInBucket
            }
        };
        let reason = recovered.describe(version_id.as_deref());
        Some(Finding::new(location.uri(), kind, reason))
    }

    /// Lays out one batch: its steps, each digest with what it names, and the outcomes of
    /// hashing the log files its verified digests name, in their order.
    pub(super) fn lay_out(
        &mut self,
        steps: Vec<(Step, Option<Names>)>,
        outcomes: impl IntoIterator<Item = Result<GzOutcome, ReadError>>,
        referenced: &mut TextHashes,
    ) {
        let mut outcomes = outcomes.into_iter();
        for (step, names) in steps {
            match step {
                Step::StartOfChain {
                    backfill,
                    caught_up,
                    listed,
                    holes,
                    extent,
                } => {
                    // A standard chain laid out before is final unless this is its backfill
                    // chain: it is told of now, not only when this one ends (which may be much
                    // later, its log files still in flight).
                    if !backfill {
                        self.tell(0);
                    }
                    self.chain = ChainLayout::new(self.valid_logs, listed);
                    self.chain.spans = holes;
                    self.chain.extent = extent;
                    self.chain.caught_up = caught_up;
                }
                Step::EndOfChain(id) => self.end_chain(&id),
                Step::Digest(w) => self.digest(w, names, &mut outcomes, referenced),
            }
        }
    }

    /// A digest's findings, then those of the log files it names, and the span of hours its
    /// window covers, in the state the worst of them leaves it.
    fn digest(
        &mut self,
        w: WalkedDigest,
        names: Option<Names>,
        outcomes: &mut dyn Iterator<Item = Result<GzOutcome, ReadError>>,
        referenced: &mut TextHashes,
    ) {
        let mut w = w;
        self.owned = self
            .window
            .is_none_or(|(window, range)| window.owns(range, w.key.end_time));
        // What a shard does not own is laid out for the ledger, then taken back.
        let reported = self.chain.findings.len();
        let uri = w.location.uri();
        if let Some(f) = self.recovered(&w.location) {
            w.findings.push(f);
        }
        // The worst verdict of the digest itself, then of the log files it names.
        let own = w
            .findings
            .iter()
            .filter(|f| f.kind.judges_subject() && f.subject == uri)
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Valid);
        // What S3 said of it goes on the finding that judges it, carrying its verdict.
        if let Some(f) = w
            .findings
            .iter_mut()
            .filter(|f| f.kind.judges_subject() && f.subject == uri)
            .max_by_key(|f| f.verdict)
        {
            self.custody(f, &w.location);
        }
        let verified = matches!(w.status, DigestStatus::Verified(_)) && names.is_some();
        self.chain.findings.extend(w.findings);
        let logs = match (&w.status, names) {
            (_, None) => None,
            (DigestStatus::Verified(_), Some(Names::Entries(list))) => {
                self.verified_logs(&list, &w.location, outcomes, referenced)
            }
            (_, Some(names)) => {
                self.unverifiable_logs(&names, uri, referenced);
                None
            }
        };
        let state = if w.context {
            // Its log files were not looked at: whatever of the range it covers is not
            // proven by it.
            HourState::NotVerified
        } else {
            hour_state(logs.map_or(own, |l| own.max(l)), verified, logs.is_some())
        };
        self.chain.spans.push(Span {
            from: w.window.0,
            to: w.window.1,
            state,
        });
        if !self.owned {
            self.chain.findings.truncate(reported);
        }
    }

    /// The findings on the log files a verified digest (at `named_by`) lists, from their
    /// outcomes; the worst of their verdicts, if it lists any.
    fn verified_logs(
        &mut self,
        list: &[LogFileEntry],
        named_by: &S3Location,
        outcomes: &mut dyn Iterator<Item = Result<GzOutcome, ReadError>>,
        referenced: &mut TextHashes,
    ) -> Option<Verdict> {
        let mut worst = None;
        for entry in list {
            if entry.location.bucket == self.bucket {
                referenced.insert(&entry.location.key);
            }
            let outcome = outcomes
                .next()
                .unwrap_or(Err(ReadError::Failed(ReadFailure::NoResult)));
            let mut finding = log_finding(entry, named_by, outcome);
            self.custody(&mut finding, &entry.location);
            worst = worst.max(Some(finding.verdict));
            self.chain.push(finding);
            if let Some(f) = self.recovered(&entry.location) {
                worst = worst.max(Some(f.verdict));
                self.chain.push(f);
            }
        }
        worst
    }

    /// The log files an unverified digest (at `named_by`) names: none can be checked through
    /// it. One that a verified digest judges has that verdict, its own, and is not repeated.
    fn unverifiable_logs(&mut self, names: &Names, named_by: String, referenced: &mut TextHashes) {
        let locations: Box<dyn Iterator<Item = &S3Location>> = match names {
            Names::Locations(l) => Box::new(l.iter()),
            Names::Entries(l) => Box::new(l.iter().map(|e| &e.location)),
        };
        for l in locations {
            let text = l.uri();
            if self.judged.contains(&text) {
                continue;
            }
            if l.bucket == self.bucket {
                referenced.insert(&l.key);
            }
            self.chain.push(
                Finding::new(
                    text,
                    Kind::LogUnverifiable,
                    "its digest could not be verified",
                )
                .with(Evidence {
                    named_by: Some(named_by.clone()),
                    ..Evidence::default()
                }),
            );
        }
    }

    /// The chain is laid out: its report, with its ledger, goes to the sink and the reports.
    fn end_chain(&mut self, id: &ChainId) {
        let mut done = std::mem::replace(&mut self.chain, ChainLayout::new(ValidLogs::Kept, 0));
        let ledger = if id.backfill {
            if self.add_backfill(id, &done.spans) {
                None
            } else {
                // Said once, by the shard that owns the range's end (see `Window`).
                if self.window.is_none_or(|(w, (_, end))| w.owned.1 >= end) {
                    orphan_backfill(&mut done);
                }
                Some(self.ledger(done.extent, &[]))
            }
        } else {
            let extent = (!done.caught_up).then_some(done.extent);
            let ledger = extent.map(|e| self.ledger(e, &done.spans));
            self.standard = Some((id.clone(), extent, std::mem::take(&mut done.spans)));
            ledger
        };
        let (mut findings, omitted_valid_logs, omitted_valid_files) = done.finish();
        if let Some(note) = self
            .recovery
            .as_ref()
            .and_then(|r| r.annotate(&mut findings))
        {
            self.notes.push(format!("{}: {note}", id.trail_arn()));
        }
        let report = ChainReport {
            chain: ChainInfo::from(id),
            findings,
            omitted_valid_logs,
            omitted_valid_files,
            ledger,
        };
        if let Some(sink) = self.sink {
            sink(Some(&report.chain), &report.findings);
        }
        self.reports.push(report);
        self.tell(usize::from(!id.backfill));
    }

    /// A backfill digest covers log files its standard chain's digests left out: what it
    /// leaves unproven (an invalid digest, a log file missing or changed) is unproven in the
    /// standard chain's hours too. What it proves adds nothing there (it fills no hole). Chains
    /// come in order, so the standard chain of the same trail has just been laid out.
    /// Returns whether the standard chain was there.
    fn add_backfill(&mut self, id: &ChainId, spans: &[Span]) -> bool {
        let Some((standard, extent, mut all)) = self.standard.take() else {
            return false;
        };
        let sibling = standard.scope == id.scope
            && standard.trail == id.trail
            && standard.home_region == id.home_region;
        if !sibling {
            return false;
        }
        // A caught-up chain has no ledger in this run to add to.
        let Some(extent) = extent else {
            return true;
        };
        let bad = spans.iter().filter(|s| !s.state.is_proven()).copied();
        let before = all.len();
        all.extend(bad);
        if all.len() > before {
            let ledger = self.ledger(extent, &all);
            if let Some(report) = self.reports.last_mut() {
                report.ledger = Some(ledger);
            }
        }
        true
    }
}

/// Backfill digests of a trail that has no standard digest left: those were deleted, every one
/// (CloudTrail writes a standard digest every hour; deleting them all must not pass as a trail
/// with only late deliveries). Nothing proves the range for this trail: its ledger is empty.
fn orphan_backfill(done: &mut ChainLayout) {
    let subject = done
        .findings
        .iter()
        .find(|f| f.object() == ObjectKind::Digest)
        .map(|f| f.subject.clone())
        .unwrap_or_default();
    done.findings.push(
        Finding::new(
            subject,
            Kind::CoverageHole,
            "backfill digests of this trail remain but no standard digest of it does: its standard digests are gone, and no hour of the range is proven",
        )
        .with(Evidence {
            from: Some(done.extent.0),
            to: Some(done.extent.1),
            ..Evidence::default()
        }),
    );
}

/// The state of the hours a digest's window covers, from the worst verdict of the digest and
/// of the log files it names.
fn hour_state(worst: Verdict, verified: bool, listed_any: bool) -> HourState {
    match worst {
        Verdict::Invalid => HourState::Invalid,
        Verdict::Missing => HourState::Missing,
        Verdict::NotVerified => HourState::NotVerified,
        Verdict::Valid if !verified => HourState::NotVerified,
        Verdict::Valid if listed_any => HourState::Verified,
        Verdict::Valid => HourState::VerifiedEmpty,
    }
}
