//! The verdict on one log file: what inflating and hashing its stored bytes gave, against the
//! entry of the verified digest that vouches for it.
//!
//! This is the rule every reader of CloudTrail evidence needs once it holds a log file's bytes,
//! whatever it read them from: feed the bytes to [`super::gz::Inflater`], then judge the
//! [`GzOutcome`] here. Whether the file could be read at all (missing, unreadable, in another
//! bucket) is the reader's to say: no bytes, no [`GzOutcome`].

use super::digest::{LogFileEntry, LogFiles};
use super::finding::{Evidence, Finding, Kind};
use super::gz::{GzOutcome, GzProblem};
use super::sign::VerifiedDigest;
use super::types::S3Location;

/// Judges the log file at `log` by what inflating it gave, against the entry for it in
/// `digest`, whose signature was verified: the only way to hold a [`VerifiedDigest`].
///
/// `Err` when the digest does not vouch for the file: it does not list it (the file is not
/// proven by this digest; another digest may list it, or none: injected), or its list was set
/// aside by a run (only [`crate::engine`] does that). Otherwise the finding is the one a full
/// run gives: only a complete gzip stream whose inflated bytes hash to the entry's SHA-256 is
/// valid. A damaged stream is judged by its damage, whatever its hash (the hash is then of the
/// part that came out, and data appended after a valid member would otherwise pass); an intact
/// one by its hash. The finding's evidence carries the expected and the actual hash, the
/// digest that names the file, and what went wrong with the stream.
///
/// Feed the stored bytes to [`super::gz::Inflater`] in whatever chunks they arrive, then judge
/// its outcome here; `examples/verify_log.rs` does it end to end.
pub fn judge_log_file(
    digest: &VerifiedDigest,
    log: &S3Location,
    outcome: &GzOutcome,
) -> Result<Finding, NotVouched> {
    let LogFiles::Parsed(entries) = &digest.digest().log_files else {
        return Err(NotVouched::ListSetAside);
    };
    let entry = entries
        .iter()
        .find(|e| e.location == *log)
        .ok_or(NotVouched::NotListed)?;
    Ok(judge_entry(entry, &digest.digest().location, outcome))
}

/// Why a verified digest cannot judge a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotVouched {
    /// The digest does not list the file.
    #[error("the digest does not list this log file")]
    NotListed,
    /// The digest's list was set aside (by a run, to save memory): read the digest again.
    #[error("the digest's log list was set aside")]
    ListSetAside,
}

/// The verdict on a log file that `entry`, of the verified digest at `named_by`, vouches for.
/// The engine's way in: its entries come from verified digests' lists, some read again from
/// the very bytes verified ([`super::digest::ParsedDigest::log_files_from`]).
pub(crate) fn judge_entry(
    entry: &LogFileEntry,
    named_by: &S3Location,
    outcome: &GzOutcome,
) -> Finding {
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
        // A reader that passed bytes over before the outcome was known did not read the file.
        GzProblem::Skipped { .. } => (Kind::LogUnreadable, "could not be read"),
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
        judge_entry(&entry(Sha256::of(LOG)), &digest, &outcome)
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

    /// The public way in takes the entry from a verified digest: an entry from an edited,
    /// unsigned digest (its fields are public) used to be judged as if a digest vouched for it.
    #[test]
    fn only_a_verified_digest_vouches_and_only_for_what_it_lists() {
        use crate::core::evidence::GenerationTime;
        use crate::core::keyfile::parse_key_file;
        use crate::core::verify::{verify_digest_object, DigestObject};
        let corpus = trailproof_testgen::World::new("acme-logs").hours(2).build();
        let keys = parse_key_file(corpus.public_keys_json().to_string().as_bytes()).unwrap();
        let info = &corpus.digests()[0];
        let object = &corpus.objects[&info.key];
        let location = S3Location::new(&corpus.bucket, &info.key);
        let signature = hex::decode(&object.metadata["signature"]).unwrap();
        let verified = verify_digest_object(
            DigestObject {
                location: &location,
                stored: &object.bytes,
                signature: &signature,
                generated: &GenerationTime::Unknown,
            },
            &keys,
        )
        .unwrap();
        let outcome = |stored: &[u8]| {
            let mut inflater = Inflater::new(Limits::LOG);
            inflater.update(stored);
            inflater.finish().0
        };
        let log = &info.logs[0];
        let at = S3Location::new(&corpus.bucket, log);
        let intact = outcome(&corpus.objects[log].bytes);
        let f = judge_log_file(&verified, &at, &intact).unwrap();
        assert_eq!(
            (f.kind, f.evidence.named_by),
            (Kind::LogValid, Some(location.uri()))
        );
        let replaced = outcome(&gzip(LOG));
        let f = judge_log_file(&verified, &at, &replaced).unwrap();
        assert_eq!(f.kind, Kind::LogHashMismatch);
        let elsewhere = S3Location::new(&corpus.bucket, "AWSLogs/injected.json.gz");
        assert_eq!(
            judge_log_file(&verified, &elsewhere, &intact).unwrap_err(),
            NotVouched::NotListed
        );
    }
}
