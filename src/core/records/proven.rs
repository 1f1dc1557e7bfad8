//! Which log files' records may be exported after a run, and the proof that the bytes read for
//! their records are the bytes the run proved.
//!
//! A run judges log files by hashing them as they stream past; it keeps no bytes. Exporting
//! reads each file once more, so between the two reads the file may have changed. The records
//! are therefore taken only from a [`ProvenLog`], whose constructor hashes the very bytes the
//! records are then parsed from and compares that with the hash the verified digest lists.
//!
//! Which files: those whose finding is `log_valid` with the digest's hash
//! ([`Candidate::expected`]); with `include_unverified`, also those judged NOT VERIFIED
//! (no digest names them, the digest's signature could not be checked, ...), which then carry
//! their verdict and no digest. Never an INVALID one, and never one in a bucket the run is not
//! about. Every file left out is counted by [`LeftOutReason`].

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;

use super::parse::{parse_records, Record, RecordLimits, RecordsError};
use super::provenance::Carrier;
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::gz::Inflated;
use crate::core::layout::{parse_key, CloudTrailKey};
use crate::core::types::{S3Location, Sha256};

/// A log file whose records may be exported, as the run judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it was delivered.
    pub log: S3Location,
    /// The delivery time in its name (files are exported oldest first).
    pub delivered: Timestamp,
    /// The inflated SHA-256 a verified digest lists; `None` for an unproven file.
    pub expected: Option<Sha256>,
    /// The digest that proves it (proven files only).
    pub digest: Option<S3Location>,
    /// The run's verdict on it.
    pub verdict: Verdict,
}

/// Why a log file's records were not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LeftOutReason {
    /// The run's judgement of it (invalid, missing, not proven, ...).
    Judged(Kind),
    /// It could not be read again for its records.
    UnreadableAtExport,
    /// Read again, its inflated bytes no longer hash to what its digest lists.
    ChangedSinceVerified,
    /// An unproven file (`include_unverified`) that is not one complete gzip stream.
    NotOneGzipStream,
    /// Its content is not a CloudTrail log file (see [`RecordsError`]).
    RecordsMalformed,
}

impl fmt::Display for LeftOutReason {
    /// As the JSON report spells kinds (`log_hash_mismatch`); the others in the same style.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOutReason::Judged(kind) => match serde_json::to_value(kind) {
                Ok(serde_json::Value::String(name)) => f.write_str(&name),
                _ => write!(f, "{kind:?}"),
            },
            LeftOutReason::UnreadableAtExport => f.write_str("unreadable_at_export"),
            LeftOutReason::ChangedSinceVerified => f.write_str("changed_since_verified"),
            LeftOutReason::NotOneGzipStream => f.write_str("not_one_gzip_stream"),
            LeftOutReason::RecordsMalformed => f.write_str("records_malformed"),
        }
    }
}

/// The log files left out, counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftOut {
    by_reason: BTreeMap<LeftOutReason, u64>,
}

impl LeftOut {
    /// Counts one more file left out.
    pub fn add(&mut self, reason: LeftOutReason) {
        *self.by_reason.entry(reason).or_default() += 1;
    }

    /// All files left out.
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }

    /// Files left out for `reason`.
    pub fn count(&self, reason: LeftOutReason) -> u64 {
        self.by_reason.get(&reason).copied().unwrap_or(0)
    }

    /// Each reason with its count, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (LeftOutReason, u64)> + '_ {
        self.by_reason.iter().map(|(r, n)| (*r, *n))
    }

    /// Whether a file could not be read at all (the export could not do its job for it).
    pub fn unreadable(&self) -> bool {
        self.count(LeftOutReason::UnreadableAtExport) > 0
    }
}

/// The log files of a run's findings whose records may be exported, oldest delivery first;
/// every other log file counted in `left_out`. `bucket` is the run's bucket.
pub fn candidates<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    bucket: &str,
    include_unverified: bool,
    left_out: &mut LeftOut,
) -> Vec<Candidate> {
    candidates_where(findings, bucket, include_unverified, left_out, |_| true)
}

/// [`candidates`], less those `keep` says no to (not counted in `left_out`: the caller has
/// them another way), without holding them all first: one candidate per log file of a long
/// range is memory that grows with the range.
pub fn candidates_where<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    bucket: &str,
    include_unverified: bool,
    left_out: &mut LeftOut,
    mut keep: impl FnMut(&Candidate) -> bool,
) -> Vec<Candidate> {
    // One judgement per log file (by key, whatever bucket a finding names): its worst
    // finding.
    let mut logs: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in findings {
        let Some(key) = log_file_judged(f) else {
            continue;
        };
        logs.entry(key)
            .and_modify(|have| {
                if f.verdict > have.verdict {
                    *have = f;
                }
            })
            .or_insert(f);
    }
    let prefix = format!("s3://{bucket}/");
    let mut out = Vec::new();
    for (key, f) in logs {
        let in_bucket = f.subject.strip_prefix(&prefix) == Some(key);
        let delivered = match parse_key(key) {
            Ok(CloudTrailKey::Log(l)) if in_bucket => Some(l.time),
            _ => None,
        };
        let Some(delivered) = delivered else {
            left_out.add(LeftOutReason::Judged(f.kind));
            continue;
        };
        let expected = f.evidence.expected_sha256;
        let proven = f.kind == Kind::LogValid && expected.is_some();
        let unproven_ok = include_unverified
            && f.verdict == Verdict::NotVerified
            && !matches!(f.kind, Kind::LogOtherBucket);
        if !proven && !unproven_ok {
            left_out.add(LeftOutReason::Judged(f.kind));
            continue;
        }
        let candidate = Candidate {
            log: S3Location::new(bucket, key),
            delivered,
            expected: if proven { expected } else { None },
            digest: if proven {
                f.evidence.named_by.as_deref().and_then(parse_uri)
            } else {
                None
            },
            verdict: f.verdict,
        };
        if keep(&candidate) {
            out.push(candidate);
        }
    }
    out.sort_by(|a, b| (a.delivered, &a.log.key).cmp(&(b.delivered, &b.log.key)));
    out
}

/// The key of the log file `finding` judges, if it judges one: what a log finding is about, or
/// anything at a log file's key (a link leading out of the copy there is a `path_escape`).
pub fn log_file_judged(finding: &Finding) -> Option<&str> {
    let key = key_of(&finding.subject);
    let log_key = matches!(parse_key(key), Ok(CloudTrailKey::Log(_)));
    (finding.kind.object() == ObjectKind::Log || log_key).then_some(key)
}

/// The key of an `s3://BUCKET/KEY` subject (a subject that is not one is its own key).
fn key_of(subject: &str) -> &str {
    subject
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map_or(subject, |(_, key)| key)
}

fn parse_uri(uri: &str) -> Option<S3Location> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    Some(S3Location::new(bucket, key))
}

/// The inflated bytes of a [`Candidate`], checked: for a proven file, their SHA-256 is the one
/// its digest lists; for an unproven one, they are one complete gzip stream. The records an
/// export writes come only from here.
#[derive(Debug, Clone)]
pub struct ProvenLog {
    inflated: Inflated,
    carrier: Carrier,
}

impl ProvenLog {
    /// Checks what reading `candidate` again gave. The hash checked is the one the inflater
    /// computed over exactly these bytes ([`Inflated`] binds the two): the check is made on
    /// the bytes the records are then taken from.
    pub fn check(
        candidate: &Candidate,
        inflated: Inflated,
        version_id: Option<String>,
    ) -> Result<ProvenLog, LeftOutReason> {
        let outcome = inflated.outcome();
        let whole = outcome.problem.is_none();
        let sha = outcome.inflated_sha256;
        match candidate.expected {
            Some(expected) if expected != sha || !whole => {
                return Err(LeftOutReason::ChangedSinceVerified)
            }
            None if !whole => return Err(LeftOutReason::NotOneGzipStream),
            _ => {}
        }
        Ok(ProvenLog {
            inflated,
            carrier: Carrier {
                log: candidate.log.clone(),
                log_sha256: sha,
                digest: candidate.digest.clone(),
                verdict: candidate.verdict,
                version_id,
            },
        })
    }

    /// The file's records (see [`parse_records`]).
    pub fn records(&self, limits: RecordLimits) -> Result<Vec<Record<'_>>, RecordsError> {
        parse_records(self.inflated.bytes(), limits)
    }

    /// The file, as a record's provenance names it.
    pub fn carrier(&self) -> &Carrier {
        &self.carrier
    }

    /// The inflated bytes.
    pub fn inflated(&self) -> &[u8] {
        self.inflated.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Evidence;
    use crate::core::gz::{Inflater, Limits};

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0005Z_abcdefghijklmnop.json.gz";
    const LOG: &[u8] = br#"{"Records":[{"eventID":"e1"}]}"#;

    fn candidate(expected: Option<Sha256>) -> Candidate {
        Candidate {
            log: S3Location::new("b", KEY),
            delivered: "2026-01-01T00:05:00Z".parse().unwrap(),
            expected,
            digest: None,
            verdict: if expected.is_some() {
                Verdict::Valid
            } else {
                Verdict::NotVerified
            },
        }
    }

    fn inflate(stored: &[u8]) -> Inflated {
        let mut i = Inflater::new(Limits::LOG).keep_output();
        i.update(stored);
        i.finish_kept().unwrap()
    }

    #[test]
    fn a_file_changed_since_it_was_verified_is_left_out() {
        let inflated = inflate(&trailproof_testgen::gzip(LOG));
        let proven =
            ProvenLog::check(&candidate(Some(Sha256::of(LOG))), inflated.clone(), None).unwrap();
        assert_eq!(proven.inflated(), LOG);
        assert_eq!(proven.carrier().log_sha256, Sha256::of(LOG));
        assert_eq!(proven.records(RecordLimits::LOG).unwrap().len(), 1);

        let changed = ProvenLog::check(&candidate(Some(Sha256([7; 32]))), inflated, None);
        assert_eq!(changed.unwrap_err(), LeftOutReason::ChangedSinceVerified);
    }

    /// The bytes checked are all the bytes kept: an inflater asked to keep its output only
    /// once it has inflated some keeps none, rather than a tail its hash does not describe.
    #[test]
    fn kept_bytes_are_exactly_the_hashed_bytes() {
        let stored = trailproof_testgen::gzip(LOG);
        let (head, tail) = stored.split_at(10);
        let mut i = Inflater::new(Limits::LOG);
        i.update(head);
        let mut i = i.keep_output();
        i.update(tail);
        assert!(i.finish_kept().is_none());
        let whole = inflate(&stored);
        assert_eq!(whole.bytes(), LOG);
        assert_eq!(whole.outcome().inflated_sha256, Sha256::of(LOG));
    }

    #[test]
    fn an_unproven_file_must_be_one_whole_gzip_stream() {
        let mut stored = trailproof_testgen::gzip(LOG);
        assert!(ProvenLog::check(&candidate(None), inflate(&stored), None).is_ok());
        stored.extend_from_slice(b"trailing");
        let got = ProvenLog::check(&candidate(None), inflate(&stored), None);
        assert_eq!(got.unwrap_err(), LeftOutReason::NotOneGzipStream);
        // Proven by its hash, but with something after it: not what was delivered.
        let got = ProvenLog::check(&candidate(Some(Sha256::of(LOG))), inflate(&stored), None);
        assert_eq!(got.unwrap_err(), LeftOutReason::ChangedSinceVerified);
    }

    fn finding(subject: &str, kind: Kind, expected: Option<Sha256>) -> Finding {
        let mut f = Finding::new(subject.to_owned(), kind, String::new());
        f.evidence = Evidence {
            expected_sha256: expected,
            named_by: Some("s3://b/AWSLogs/111122223333/CloudTrail-Digest/d.json.gz".into()),
            ..Evidence::default()
        };
        f
    }

    #[test]
    fn only_proven_files_are_candidates_unless_unverified_ones_are_asked_for() {
        let subject = format!("s3://b/{KEY}");
        let other = subject.replace("T0005Z", "T0010Z");
        let invalid = subject.replace("T0005Z", "T0015Z");
        let findings = [
            finding(&subject, Kind::LogValid, Some(Sha256::of(LOG))),
            finding(&other, Kind::LogUnreferenced, None),
            finding(&invalid, Kind::LogHashMismatch, Some(Sha256::of(LOG))),
            finding(
                "s3://elsewhere/x.json.gz",
                Kind::LogValid,
                Some(Sha256::of(LOG)),
            ),
        ];
        let mut left_out = LeftOut::default();
        let got = candidates(&findings, "b", false, &mut left_out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].log.key, KEY);
        assert_eq!(got[0].expected, Some(Sha256::of(LOG)));
        assert_eq!(
            got[0].digest.as_ref().map(S3Location::uri).as_deref(),
            Some("s3://b/AWSLogs/111122223333/CloudTrail-Digest/d.json.gz")
        );
        assert_eq!(left_out.total(), 3);
        assert_eq!(
            left_out.count(LeftOutReason::Judged(Kind::LogHashMismatch)),
            1
        );

        let mut left_out = LeftOut::default();
        let got = candidates(&findings, "b", true, &mut left_out);
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].expected, got[1].digest.as_ref()), (None, None));
        // Invalid files are never candidates, nor files outside the run's bucket.
        assert_eq!(left_out.total(), 2);
        assert_eq!(
            LeftOutReason::Judged(Kind::LogHashMismatch).to_string(),
            "log_hash_mismatch"
        );
    }

    /// Found by the red team: a log file replaced by a link out of the copy is a `path_escape`
    /// finding (not a log kind) and was not counted as left out; the same file named in two
    /// buckets was counted twice. Something unrecognised in a log folder counts too: its
    /// content, whatever it is, was not exported.
    #[test]
    fn left_out_log_files_are_counted_once_each_whatever_the_finding_kind() {
        let subject = format!("s3://b/{KEY}");
        let findings = [
            finding(&subject, Kind::PathEscape, None),
            finding(&format!("s3://renamed/{KEY}"), Kind::LogMissing, None),
            finding(
                "s3://b/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/",
                Kind::LogUnrecognised,
                None,
            ),
        ];
        let mut left_out = LeftOut::default();
        assert!(candidates(&findings, "b", true, &mut left_out).is_empty());
        assert_eq!(left_out.total(), 2, "{left_out:?}");
        assert_eq!(left_out.count(LeftOutReason::Judged(Kind::PathEscape)), 1);
    }

    #[test]
    fn a_log_judged_twice_counts_by_its_worst_finding() {
        let subject = format!("s3://b/{KEY}");
        let findings = [
            finding(&subject, Kind::LogValid, Some(Sha256::of(LOG))),
            finding(&subject, Kind::LogHashMismatch, Some(Sha256::of(LOG))),
        ];
        let mut left_out = LeftOut::default();
        assert!(candidates(&findings, "b", true, &mut left_out).is_empty());
        assert_eq!(left_out.total(), 1);
    }
}
