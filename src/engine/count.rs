//! One chain's findings as they are laid out, with valid log files counted rather than kept
//! when the output prints only problems.

use std::collections::HashSet;

use jiff::Timestamp;

use super::texts::TextHashes;
use super::LogTap;
use crate::core::finding::{merge_by_object, Finding, Kind, ObjectKind};
use crate::core::ledger::Span;

/// What becomes of valid log files' findings.
#[derive(Clone, Copy)]
pub(super) enum ValidLogs<'a> {
    /// Kept in the report, one finding per listing.
    Kept,
    /// Counted instead (`Settings::omit_valid_logs`), each first handed to the tap, if any:
    /// `events` learns from it which files the report proves without the report keeping them.
    Counted(Option<&'a dyn LogTap>),
}

/// One chain's findings so far.
pub(super) struct ChainLayout<'a> {
    pub(super) findings: Vec<Finding>,
    /// The chain's timeline so far: holes from the walk, then each digest's window.
    pub(super) spans: Vec<Span>,
    pub(super) extent: (Timestamp, Timestamp),
    /// The range holds nothing of the chain ([`crate::core::chain::WalkedChain::caught_up`]).
    pub(super) caught_up: bool,
    /// The subjects of valid log-file listings counted instead of kept, when counting is on.
    /// A log file may be listed more than once (by two digests), and totals count each file
    /// once, by its worst finding, merging by `s3://` text: so the files are counted when the
    /// chain is done. A hash collision could only miscount valid files, never hide a finding.
    omitted: Option<(TextHashes, Option<&'a dyn LogTap>)>,
}

impl<'a> ChainLayout<'a> {
    /// `listed`: how many log files the chain's digests name, the most that may be counted.
    pub(super) fn new(valid: ValidLogs<'a>, listed: usize) -> Self {
        ChainLayout {
            findings: Vec::new(),
            spans: Vec::new(),
            extent: (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
            caught_up: false,
            omitted: match valid {
                ValidLogs::Kept => None,
                ValidLogs::Counted(tap) => Some((TextHashes::with_capacity(listed), tap)),
            },
        }
    }

    /// Keeps a log file's finding, or counts it if it is valid and counting is on.
    pub(super) fn push(&mut self, finding: Finding) {
        match &mut self.omitted {
            Some((counted, tap)) if finding.kind == Kind::LogValid => {
                if let Some(tap) = tap {
                    tap.counted_valid(&finding);
                }
                counted.insert(&finding.subject);
            }
            _ => self.findings.push(finding),
        }
    }

    /// The findings kept, the valid listings counted, and the log files among those that no
    /// kept finding is about.
    pub(super) fn finish(self) -> (Vec<Finding>, usize, usize) {
        let findings = merge_by_object(self.findings);
        let Some((omitted, _)) = self.omitted else {
            return (findings, 0, 0);
        };
        let listings = omitted.len();
        let counted = omitted.into_set();
        let kept: HashSet<u64> = findings
            .iter()
            .filter(|f| f.object() == ObjectKind::Log)
            .map(|f| counted.hash(&f.subject))
            .collect();
        let files = counted.hashes().filter(|h| !kept.contains(h)).count();
        (findings, listings, files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::S3Location;
    use crate::report::Totals;

    fn finding(bucket: &str, key: &str, kind: Kind) -> Finding {
        Finding::new(S3Location::new(bucket, key).uri(), kind, "")
    }

    #[test]
    fn counted_valid_logs_total_as_the_kept_findings_would() {
        use Kind::{LogHashMismatch as Bad, LogValid as Ok};
        // Files listed twice: valid both times (x), valid then not (y), not then valid (z),
        // under two bucket/key splits that print the same `s3://` text (w); once (v).
        let listings = [
            ("b", "x", Ok),
            ("b", "y", Ok),
            ("b", "x", Ok),
            ("b", "y", Bad),
            ("b", "z", Bad),
            ("b", "z", Ok),
            ("b", "AWSLogs/w", Ok),
            ("b/AWSLogs", "w", Bad),
            ("b", "v", Ok),
        ];
        let mut counted = ChainLayout::new(ValidLogs::Counted(None), listings.len());
        let mut kept = ChainLayout::new(ValidLogs::Kept, listings.len());
        for (b, k, kind) in listings {
            counted.push(finding(b, k, kind));
            kept.push(finding(b, k, kind));
        }
        let (counted_findings, listings_counted, files) = counted.finish();
        assert_eq!(
            listings_counted, 6,
            "every valid listing: the AWS CLI counts each"
        );
        assert_eq!(files, 2, "x and v");
        assert_eq!(counted_findings.len(), 3, "the three bad listings");
        let mut totals = Totals::of(&counted_findings);
        totals.logs.valid += files;
        assert_eq!(totals, Totals::of(&kept.findings));
        assert_eq!(kept.findings.len(), listings.len());
    }
}
