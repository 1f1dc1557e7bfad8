//! CloudTrail log records: the inflated bytes of a log file in, each record's exact JSON text
//! plus the few fields that `events` filters, sorts and deduplicates on out.
//!
//! What `trailproof events` is made of ([`crate::engine::events`] runs it). No I/O, no clock.
//!
//! # What is an error, what is a record
//!
//! A log file is `{"Records":[...]}`. The **envelope** is checked strictly, and any fault in it
//! makes the whole file malformed ([`RecordsError`]): not UTF-8, not JSON, anything after the
//! closing brace, a top-level value that is not an object, a key other than `Records`,
//! `Records` missing or given twice, `Records` not an array, an element of it that is not an
//! object, or more elements than [`RecordLimits::max_records`]. Two more faults inside a
//! record make the file malformed, because the output could not be unambiguous otherwise:
//!
//! - a field trailproof reads (`eventTime`, `eventID`, `eventName`, `eventSource`,
//!   `errorCode`, `readOnly`, `userIdentity`, `userIdentity.arn`, and the [`Column`]s written
//!   out as columns: `eventType`, `awsRegion`, `recipientAccountId`, `sourceIPAddress`,
//!   `userAgent`, `errorMessage`, `userIdentity.type`, `userIdentity.accountId`) given twice,
//!   escaped spellings included (`"event\u0049D"` is `eventID`): readers disagree on which
//!   copy counts (jq takes the last), so a filter's decision or a column would depend on the
//!   reader;
//! - a top-level key `trailproof`, or any key starting so (`trailproof_verdict`): the output
//!   adds the provenance under that key (and the Timesketch and Parquet outputs under
//!   `trailproof_*` names), and a record's own would let it forge them for readers that take
//!   the first, or that flatten the lines into columns (DuckDB's `read_json_auto`).
//!
//! Everything else is a **record, kept and exported unchanged**: the file was proven, so its
//! records are evidence as CloudTrail wrote them, however strange. A field that is missing, of
//! another JSON type than CloudTrail writes, or unreadable (an `eventTime` that is not RFC 3339,
//! a string with a lone surrogate escape) reads as absent (`None`): such a record passes no
//! filter on that field, is never deduplicated when it has no `eventID`, and sorts before the
//! records that have an `eventTime`. Duplicate keys that trailproof does not read stay as
//! written. Nesting depth is not limited: the reader skips the values trailproof does not read
//! with a loop, not recursion, so deep nesting costs time linear in its size and no stack.
//!
//! The reader is a one-pass JSON scanner of its own (a record is read once, not scanned as a
//! value and then parsed again), held to serde_json's reading of every input: the same records
//! with the same fields, and malformed for the same files. Its tests check that against the
//! serde_json reader it replaced, on every generated log file and on 20,000 damaged ones.
//!
//! `readOnly` is read only as a JSON boolean (CloudTrail writes `true`/`false`); a string
//! `"true"` reads as absent. `errorCode` counts as present when it is there and not `null`.
//!
//! # Example
//!
//! ```
//! use trailproof::core::records::{parse_records, write_line, Carrier, EventFilter, Glob};
//! use trailproof::core::records::{Provenance, RecordLimits};
//! use trailproof::{S3Location, Sha256, Verdict};
//!
//! let log = br#"{"Records":[
//!     {"eventTime":"2024-05-01T10:00:00Z","eventID":"e1","eventName":"GetObject",
//!      "userIdentity":{"arn":"arn:aws:iam::111122223333:user/alice"}},
//!     {"eventTime":"2024-05-01T10:01:00Z","eventID":"e2","eventName":"PutObject"}]}"#;
//! let filter = EventFilter {
//!     user_arns: vec![Glob::new("arn:aws:iam::*:user/alice")],
//!     ..EventFilter::default()
//! };
//! let provenance = Provenance::new(Carrier {
//!     log: S3Location::new("bucket", "AWSLogs/111122223333/CloudTrail/log.json.gz"),
//!     log_sha256: Sha256::of(log),
//!     digest: Some(S3Location::new("bucket", "AWSLogs/111122223333/CloudTrail-Digest/d.json.gz")),
//!     verdict: Verdict::Valid,
//!     version_id: None,
//! });
//! let mut out = Vec::new();
//! for record in parse_records(log, RecordLimits::LOG)? {
//!     if filter.matches(&record) {
//!         write_line(&mut out, record.raw(), &provenance)?;
//!     }
//! }
//! let line = String::from_utf8(out)?;
//! assert!(line.starts_with(r#"{"eventTime":"2024-05-01T10:00:00Z","eventID":"e1","#));
//! assert!(line.contains(r#","trailproof":{"log":"s3://bucket/AWSLogs/"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dedupe;
mod filter;
mod parse;
mod proven;
mod provenance;

pub use dedupe::{Dedupe, DedupeStats, Pushed};
pub use filter::{EventFilter, Glob};
pub use parse::{for_each_record, parse_records, Column, Record, RecordLimits, RecordsError};
pub use proven::{
    candidates, candidates_where, log_file_judged, Candidate, LeftOut, LeftOutReason, ProvenLog,
};
pub use provenance::{
    provenance_json, write_line, write_line_with, Carrier, LineError, Provenance,
};

/// Test helpers shared by the submodules' tests.
#[cfg(test)]
mod testutil {
    use super::{parse_records, Carrier, Record, RecordLimits, RecordsError};
    use crate::core::finding::Verdict;
    use crate::core::types::{S3Location, Sha256};

    pub(super) fn parse(text: &str) -> Result<Vec<Record<'_>>, RecordsError> {
        parse_records(text.as_bytes(), RecordLimits::LOG)
    }

    /// The inflated log files of a generated one-hour corpus.
    pub(super) fn generated_logs() -> Vec<Vec<u8>> {
        let corpus = trailproof_testgen::World::new("b").hours(1).build();
        let logs: Vec<Vec<u8>> = corpus
            .objects
            .iter()
            .filter(|(k, _)| k.contains("/CloudTrail/") && k.ends_with(".json.gz"))
            .map(|(_, o)| trailproof_testgen::gunzip(&o.bytes).unwrap())
            .collect();
        assert!(!logs.is_empty());
        logs
    }

    pub(super) fn carrier(n: u8, verdict: Verdict) -> Carrier {
        Carrier {
            log: S3Location::new(
                "b",
                format!("AWSLogs/1/CloudTrail/r/2024/01/01/f{n}.json.gz"),
            ),
            log_sha256: Sha256([n; 32]),
            digest: Some(S3Location::new(
                "b",
                format!("AWSLogs/1/CloudTrail-Digest/d{n}.json.gz"),
            )),
            verdict,
            version_id: None,
        }
    }
}
