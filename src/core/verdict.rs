//! The verdict on one log file: what inflating and hashing its stored bytes gave, against the
//! entry of the verified digest that vouches for it.
//!
//! This is the rule every reader of CloudTrail evidence needs once it holds a log file's bytes,
//! whatever it read them from: feed the bytes to [`super::gz::Inflater`], then judge the
//! [`GzOutcome`] here. Whether the file could be read at all (missing, unreadable, in another
//! bucket) is the reader's to say: no bytes, no [`GzOutcome`].

use super::digest::LogFileEntry;
use super::finding::{Evidence, Finding, Kind};
use super::gz::{GzOutcome, GzProblem};
use super::types::S3Location;

/// Judges a log file that `entry` (of the verified digest at `named_by`) vouches for, by what
/// inflating it gave.
///
/// Only a complete gzip stream whose inflated bytes hash to the entry's SHA-256 is valid. A
/// damaged stream is judged by its damage, whatever its hash (the hash is then of the part
/// that came out, and data appended after a valid member would otherwise pass); an intact one
/// by its hash. The finding's evidence carries the expected and the actual hash, the digest
/// that names the file, and what went wrong with the stream.
///
/// ```
/// # use trailproof::core::{digest::LogFileEntry, gz::{Inflater, Limits}, S3Location, Sha256};
/// # use trailproof::core::finding::Kind;
/// # use trailproof::core::verdict::judge_log_file;
/// let log = b"{\"Records\":[]}";
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// std::io::Write::write_all(&mut gz, log).unwrap();
/// let stored = gz.finish().unwrap();
/// // Fed in whatever chunks the bytes arrive in.
/// let mut inflater = Inflater::new(Limits::LOG);
/// inflater.update(&stored);
/// let (outcome, _) = inflater.finish();
/// let entry = LogFileEntry {
///     location: S3Location::new("bucket", "AWSLogs/.../log.json.gz"),
///     hash: Sha256::of(log),
///     newest_event: None,
///     oldest_event: None,
/// };
/// let digest = S3Location::new("bucket", "AWSLogs/.../digest.json.gz");
/// let finding = judge_log_file(&entry, &digest, &outcome);
/// assert_eq!(finding.kind, Kind::LogValid);
/// ```
pub fn judge_log_file(entry: &LogFileEntry, named_by: &S3Location, outcome: &GzOutcome) -> Finding {
    let evidence = Evidence {
        expected_sha256: Some(entry.hash),
        actual_sha256: Some(outcome.inflated_sha256),
        named_by: Some(named_by.uri()),
        ..Evidence::default()
    };
    let uri = entry.location.uri();
    let Some(problem) = &outcome.problem else {
        return if outcome.inflated_sha256 == entry.hash {
            Finding::new(uri, Kind::LogValid, "valid").with(evidence)
        } else {
            Finding::new(uri, Kind::LogHashMismatch, "hash value doesn't match").with(evidence)
        };
    };
    let (kind, reason) = damage(problem);
    Finding::new(uri, kind, reason).with(Evidence {
        detail: Some(problem.to_string()),
        ..evidence
    })
}

/// What a damaged gzip stream makes of a log file. Data after the end of the stream is not
/// part of the file CloudTrail hashed: it was appended (an attacker hiding records behind a
/// valid member). A stream that stops early was cut. Inflating past the budget is a gzip
/// bomb, or a file too big to judge: not verified rather than invalid, since the file may be
/// intact. Anything else is not the gzip CloudTrail writes.
fn damage(problem: &GzProblem) -> (Kind, &'static str) {
    match problem {
        GzProblem::TrailingData { .. } => (
            Kind::LogTrailingData,
            "unexpected data after end of compressed stream",
        ),
        GzProblem::Truncated => (Kind::LogTruncated, "compressed stream is truncated"),
        GzProblem::Budget { .. } => (
            Kind::LogBudgetExceeded,
            "inflating it exceeded the size budget (gzip bomb?)",
        ),
        GzProblem::Empty | GzProblem::NotGzip | GzProblem::Corrupt { .. } => {
            (Kind::LogFormat, "invalid format")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Verdict;
    use crate::core::gz::{Inflater, Limits};
    use crate::core::types::Sha256;

    const LOG: &[u8] = br#"{"Records":[{"eventName":"ConsoleLogin"}]}"#;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, bytes).unwrap();
        gz.finish().unwrap()
    }

    fn entry(hash: Sha256) -> LogFileEntry {
        LogFileEntry {
            location: S3Location::new("b", "AWSLogs/log.json.gz"),
            hash,
            newest_event: None,
            oldest_event: None,
        }
    }

    fn judge(stored: &[u8], limits: Limits) -> Finding {
        let mut inflater = Inflater::new(limits);
        inflater.update(stored);
        let (outcome, _) = inflater.finish();
        let digest = S3Location::new("b", "AWSLogs/digest.json.gz");
        judge_log_file(&entry(Sha256::of(LOG)), &digest, &outcome)
    }

    #[test]
    fn a_complete_stream_with_the_listed_hash_is_valid() {
        let f = judge(&gzip(LOG), Limits::LOG);
        assert_eq!((f.kind, f.verdict), (Kind::LogValid, Verdict::Valid));
        assert_eq!(f.subject, "s3://b/AWSLogs/log.json.gz");
        assert_eq!(f.evidence.expected_sha256, f.evidence.actual_sha256);
        assert_eq!(
            f.evidence.named_by.as_deref(),
            Some("s3://b/AWSLogs/digest.json.gz")
        );
        assert_eq!(f.evidence.detail, None);
    }

    #[test]
    fn other_content_is_a_hash_mismatch() {
        let f = judge(&gzip(b"{\"Records\":[]}"), Limits::LOG);
        assert_eq!(
            (f.kind, f.verdict),
            (Kind::LogHashMismatch, Verdict::Invalid)
        );
        assert_eq!(
            f.evidence.actual_sha256,
            Some(Sha256::of(b"{\"Records\":[]}"))
        );
    }

    #[test]
    fn data_after_the_stream_is_invalid_even_when_the_stream_hashes_right() {
        let mut stored = gzip(LOG);
        stored.extend_from_slice(&gzip(b"{\"Records\":[{\"eventName\":\"Hidden\"}]}"));
        let f = judge(&stored, Limits::LOG);
        assert_eq!(
            (f.kind, f.verdict),
            (Kind::LogTrailingData, Verdict::Invalid)
        );
        assert_eq!(f.evidence.actual_sha256, Some(Sha256::of(LOG)));
        assert!(f.evidence.detail.is_some());
    }

    #[test]
    fn a_cut_stream_is_truncated() {
        let stored = gzip(LOG);
        let f = judge(stored.get(..stored.len() - 4).unwrap(), Limits::LOG);
        assert_eq!((f.kind, f.verdict), (Kind::LogTruncated, Verdict::Invalid));
    }

    #[test]
    fn what_is_not_gzip_is_an_invalid_format() {
        for stored in [&b""[..], LOG] {
            let f = judge(stored, Limits::LOG);
            assert_eq!((f.kind, f.verdict), (Kind::LogFormat, Verdict::Invalid));
            assert!(f.evidence.detail.is_some());
        }
    }

    #[test]
    fn over_the_budget_is_not_verified_rather_than_invalid() {
        let bomb = gzip(&vec![b' '; 1 << 20]);
        let limits = Limits {
            max_inflated: 1 << 10,
            ..Limits::LOG
        };
        let f = judge(&bomb, limits);
        assert_eq!(
            (f.kind, f.verdict),
            (Kind::LogBudgetExceeded, Verdict::NotVerified)
        );
    }
}
