//! Verified records ([`ExportedRecord`]) written out: JSONL, Timesketch JSONL and Parquet.
//!
//! # `jsonl`
//!
//! One line per record: the record's JSON text exactly as in the log file, with its
//! provenance added under the key `trailproof` (see [`crate::core::records::write_line`]).
//!
//! # `timesketch`
//!
//! One JSON object per line, as Timesketch's JSONL importer takes it: the three fields it
//! requires, `message` (what happened, in words: `eventName by ARN (eventSource, awsRegion)`,
//! then `: errorCode` for a failed call), `datetime` (ISO 8601 with offset,
//! `2026-01-01T00:05:00+00:00`) and `timestamp_desc`, plus `timestamp` (microseconds since
//! the epoch, as Timesketch stores it). `datetime` is the record's `eventTime`
//! (`timestamp_desc` `Event Time`); a record without a readable `eventTime` gets its log
//! file's delivery time instead, with `timestamp_desc` `Log Delivered (record has no
//! eventTime)`, so it is still on the timeline and says why it sits where it does.
//!
//! Timesketch indexes every field, and CloudTrail's nested values (`requestParameters` and
//! the like) take a different shape per API call, which breaks a search index's mapping. So
//! the line is flat: `data_type` `aws:cloudtrail:event`; the common fields as strings under
//! snake-case names (`event_name`, `event_source`, `event_id`, `event_type`, `aws_region`,
//! `recipient_account_id`, `source_ip_address`, `user_agent`, `error_code`, `error_message`,
//! `user_identity_type`, `user_identity_arn`, `user_identity_account_id`) and `read_only` as a
//! boolean, each left out when the record does not have it as a string (a boolean); the whole
//! record as JSON text in `cloudtrail_record`; the provenance as `trailproof_verdict`,
//! `trailproof_log`, `trailproof_log_sha256`, `trailproof_digest`, `trailproof_version_id`
//! and, when other files carried the record too, `trailproof_also` (their `s3://` URIs).
//!
//! # `parquet`
//!
//! One row per record, in the order given, in row groups of at most [`ROW_GROUP_ROWS`] rows
//! or about [`ROW_GROUP_BYTES`] bytes of text, Snappy-compressed. The schema:
//!
//! ```text
//! message cloudtrail_event {
//!   OPTIONAL INT64 eventTime (TIMESTAMP(MICROS,true));
//!   OPTIONAL BYTE_ARRAY eventID (STRING);  -- and likewise eventName, eventSource,
//!       eventType, awsRegion, recipientAccountId, sourceIPAddress, userAgent, errorCode,
//!       errorMessage, userIdentityType, userIdentityArn, userIdentityAccountId
//!   OPTIONAL BOOLEAN readOnly;
//!   REQUIRED BYTE_ARRAY record (STRING);              -- the record's JSON text
//!   REQUIRED BYTE_ARRAY trailproof_verdict (STRING);  -- valid, not_verified
//!   REQUIRED BYTE_ARRAY trailproof_log (STRING);      -- s3:// URI
//!   REQUIRED BYTE_ARRAY trailproof_log_sha256 (STRING);
//!   OPTIONAL BYTE_ARRAY trailproof_digest (STRING);   -- s3:// URI
//!   OPTIONAL BYTE_ARRAY trailproof_version_id (STRING);
//!   REQUIRED BYTE_ARRAY trailproof (STRING);          -- the provenance as the JSONL has it
//! }
//! ```
//!
//! A column holds a value only when the record has that field as a string (`readOnly`: a
//! boolean; `eventTime`: an RFC 3339 string); otherwise it is null, and `record` still has
//! everything. The file is complete only once [`RecordWriter::finish`] has written its footer.
//!
//! # Fields read
//!
//! The fields are read from the record's text as parsed JSON; a key given twice counts as its
//! last copy, as jq reads it. (`events` has already refused log files where the fields it
//! filters and sorts on are given twice: see [`crate::core::records`].)

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use crate::core::layout::{parse_key, CloudTrailKey};
use crate::core::records::{provenance_json, write_line_with, Carrier, LineError};
use crate::engine::events::ExportedRecord;

/// Why records could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The output could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A record could not be made into its line.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The Parquet writer failed.
    #[cfg(feature = "parquet")]
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Where records go, one at a time.
pub trait RecordWriter {
    /// Writes one record.
    fn write(&mut self, record: &ExportedRecord) -> Result<(), WriteError>;
    /// Writes what is still held and the end of the output, and flushes it.
    fn finish(self: Box<Self>) -> Result<(), WriteError>;
}

/// `jsonl`: the records with their provenance, one per line.
pub struct Jsonl<W: Write> {
    out: W,
    line: Vec<u8>,
    /// The `trailproof` value of records carried by one file only, by file: made once per file
    /// rather than once per record. Each entry holds its carrier, so its address stays its own.
    made: HashMap<usize, (Arc<Carrier>, Vec<u8>)>,
}

/// Files whose `trailproof` value is kept; beyond, the values are made again.
const MADE_FILES: usize = 4096;

impl<W: Write> Jsonl<W> {
    /// Writes to `out` (buffer it: one `write_all` per record).
    pub fn new(out: W) -> Self {
        Jsonl {
            out,
            line: Vec::new(),
            made: HashMap::new(),
        }
    }
}

impl<W: Write> RecordWriter for Jsonl<W> {
    fn write(&mut self, record: &ExportedRecord) -> Result<(), WriteError> {
        self.line.clear();
        let p = &record.provenance;
        if p.also.is_empty() {
            let file = Arc::as_ptr(&p.carrier) as usize;
            if !self.made.contains_key(&file) {
                if self.made.len() >= MADE_FILES {
                    self.made.clear();
                }
                let value = provenance_json(p)?;
                self.made.insert(file, (Arc::clone(&p.carrier), value));
            }
            let value = self.made.get(&file).map(|(_, v)| v.as_slice());
            write_line_with(&mut self.line, &record.text, value.unwrap_or_default())?;
        } else {
            record.write_jsonl(&mut self.line)?;
        }
        self.out.write_all(&self.line)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), WriteError> {
        self.out.flush()?;
        Ok(())
    }
}

/// The common fields of a record, as the Parquet columns and Timesketch lines carry them.
#[derive(Debug, Default, PartialEq)]
struct Fields {
    event_time: Option<Timestamp>,
    strings: [Option<String>; STRING_FIELDS.len()],
    read_only: Option<bool>,
}

/// The string fields: (path in the record, Parquet column, Timesketch field).
const STRING_FIELDS: [(&[&str], &str, &str); 13] = [
    (&["eventID"], "eventID", "event_id"),
    (&["eventName"], "eventName", "event_name"),
    (&["eventSource"], "eventSource", "event_source"),
    (&["eventType"], "eventType", "event_type"),
    (&["awsRegion"], "awsRegion", "aws_region"),
    (
        &["recipientAccountId"],
        "recipientAccountId",
        "recipient_account_id",
    ),
    (&["sourceIPAddress"], "sourceIPAddress", "source_ip_address"),
    (&["userAgent"], "userAgent", "user_agent"),
    (&["errorCode"], "errorCode", "error_code"),
    (&["errorMessage"], "errorMessage", "error_message"),
    (
        &["userIdentity", "type"],
        "userIdentityType",
        "user_identity_type",
    ),
    (
        &["userIdentity", "arn"],
        "userIdentityArn",
        "user_identity_arn",
    ),
    (
        &["userIdentity", "accountId"],
        "userIdentityAccountId",
        "user_identity_account_id",
    ),
];

const EVENT_NAME: usize = 1;
const EVENT_SOURCE: usize = 2;
const AWS_REGION: usize = 4;
const ERROR_CODE: usize = 8;
const USER_TYPE: usize = 10;
const USER_ARN: usize = 11;

impl Fields {
    fn of(text: &str) -> Fields {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return Fields::default();
        };
        let at = |path: &[&str]| path.iter().try_fold(&value, |v, k| v.get(k));
        Fields {
            event_time: at(&["eventTime"])
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok()),
            strings: STRING_FIELDS
                .map(|(path, _, _)| at(path).and_then(Value::as_str).map(str::to_owned)),
            read_only: at(&["readOnly"]).and_then(Value::as_bool),
        }
    }

    fn get(&self, index: usize) -> Option<&str> {
        self.strings.get(index).and_then(|s| s.as_deref())
    }
}

/// `timesketch`: lines Timesketch's JSONL importer takes (see the module documentation).
pub struct Timesketch<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> Timesketch<W> {
    /// Writes to `out` (buffer it: one `write_all` per record).
    pub fn new(out: W) -> Self {
        Timesketch {
            out,
            line: Vec::new(),
        }
    }
}

fn delivered(carrier: &Carrier) -> Option<Timestamp> {
    match parse_key(&carrier.log.key) {
        Ok(CloudTrailKey::Log(l)) => Some(l.time),
        _ => None,
    }
}

/// What happened, in words, for Timesketch's `message`.
fn message(fields: &Fields) -> String {
    let who = fields
        .get(USER_ARN)
        .or(fields.get(USER_TYPE))
        .unwrap_or("an unknown identity");
    let mut text = format!(
        "{} by {who} ({}, {})",
        fields.get(EVENT_NAME).unwrap_or("an unnamed event"),
        fields.get(EVENT_SOURCE).unwrap_or("no eventSource"),
        fields.get(AWS_REGION).unwrap_or("no awsRegion"),
    );
    if let Some(code) = fields.get(ERROR_CODE) {
        text.push_str(": ");
        text.push_str(code);
    }
    text
}

impl<W: Write> RecordWriter for Timesketch<W> {
    fn write(&mut self, record: &ExportedRecord) -> Result<(), WriteError> {
        let fields = Fields::of(&record.text);
        let carrier = &record.provenance.carrier;
        let (time, desc) = match (fields.event_time, delivered(carrier)) {
            (Some(t), _) => (t, "Event Time"),
            (None, Some(t)) => (t, "Log Delivered (record has no eventTime)"),
            // A carrier is a log file's location, whose name has its delivery time.
            (None, None) => (Timestamp::UNIX_EPOCH, "Unknown (record has no eventTime)"),
        };
        let mut line = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            line.insert(k.to_owned(), v);
        };
        put("message", Value::from(message(&fields)));
        put(
            "datetime",
            Value::from(time.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
        );
        put("timestamp", Value::from(time.as_microsecond()));
        put("timestamp_desc", Value::from(desc));
        put("data_type", Value::from("aws:cloudtrail:event"));
        for (i, (_, _, name)) in STRING_FIELDS.iter().enumerate() {
            if let Some(v) = fields.get(i) {
                put(name, Value::from(v));
            }
        }
        if let Some(r) = fields.read_only {
            put("read_only", Value::from(r));
        }
        put("cloudtrail_record", Value::from(record.text.as_str()));
        put(
            "trailproof_verdict",
            serde_json::to_value(carrier.verdict).unwrap_or_default(),
        );
        put("trailproof_log", Value::from(carrier.log.uri()));
        put(
            "trailproof_log_sha256",
            Value::from(carrier.log_sha256.to_hex()),
        );
        if let Some(d) = &carrier.digest {
            put("trailproof_digest", Value::from(d.uri()));
        }
        if let Some(v) = &carrier.version_id {
            put("trailproof_version_id", Value::from(v.as_str()));
        }
        if !record.provenance.also.is_empty() {
            let also: Vec<Value> = record
                .provenance
                .also
                .iter()
                .map(|c| Value::from(c.log.uri()))
                .collect();
            put("trailproof_also", Value::from(also));
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line).map_err(std::io::Error::from)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), WriteError> {
        self.out.flush()?;
        Ok(())
    }
}

/// A row group is written once it has this many rows...
pub const ROW_GROUP_ROWS: usize = 65_536;
/// ... or about this many bytes of text.
pub const ROW_GROUP_BYTES: usize = 64 << 20;

#[cfg(feature = "parquet")]
pub use parquet_writer::Parquet;

#[cfg(feature = "parquet")]
mod parquet_writer {
    use std::io::Write;
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::{Fields, RecordWriter, WriteError, ROW_GROUP_BYTES, ROW_GROUP_ROWS, STRING_FIELDS};
    use crate::core::records::provenance_json;
    use crate::engine::events::ExportedRecord;

    /// An optional column's values (nulls left out) and definition levels (1: a value).
    #[derive(Default)]
    struct Optional<T> {
        values: Vec<T>,
        defined: Vec<i16>,
    }

    impl<T> Optional<T> {
        fn push(&mut self, value: Option<T>) {
            self.defined.push(i16::from(value.is_some()));
            self.values.extend(value);
        }
        fn clear(&mut self) {
            self.values.clear();
            self.defined.clear();
        }
    }

    /// The columns of the rows not yet written, in schema order.
    #[derive(Default)]
    struct Rows {
        event_time: Optional<i64>,
        strings: Vec<Optional<ByteArray>>,
        read_only: Optional<bool>,
        /// record, verdict, log, log_sha256.
        required: [Vec<ByteArray>; 4],
        digest: Optional<ByteArray>,
        version_id: Optional<ByteArray>,
        provenance: Vec<ByteArray>,
        count: usize,
        bytes: usize,
    }

    /// `parquet`: one row per record (see the module documentation).
    pub struct Parquet<W: Write + Send> {
        writer: SerializedFileWriter<W>,
        rows: Rows,
    }

    fn text(s: impl Into<String>) -> ByteArray {
        ByteArray::from(s.into().into_bytes())
    }

    fn schema() -> Result<Type, parquet::errors::ParquetError> {
        let mut message = String::from("message cloudtrail_event {\n");
        message.push_str("  OPTIONAL INT64 eventTime (TIMESTAMP(MICROS,true));\n");
        for (_, column, _) in STRING_FIELDS {
            message.push_str(&format!("  OPTIONAL BYTE_ARRAY {column} (STRING);\n"));
        }
        message.push_str(
            "  OPTIONAL BOOLEAN readOnly;
  REQUIRED BYTE_ARRAY record (STRING);
  REQUIRED BYTE_ARRAY trailproof_verdict (STRING);
  REQUIRED BYTE_ARRAY trailproof_log (STRING);
  REQUIRED BYTE_ARRAY trailproof_log_sha256 (STRING);
  OPTIONAL BYTE_ARRAY trailproof_digest (STRING);
  OPTIONAL BYTE_ARRAY trailproof_version_id (STRING);
  REQUIRED BYTE_ARRAY trailproof (STRING);
}",
        );
        parquet::schema::parser::parse_message_type(&message)
    }

    impl<W: Write + Send> Parquet<W> {
        /// Starts a Parquet file on `out` (its header is written at once).
        pub fn new(out: W) -> Result<Self, WriteError> {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("trailproof {}", env!("CARGO_PKG_VERSION")))
                .build();
            let writer = SerializedFileWriter::new(out, Arc::new(schema()?), Arc::new(props))?;
            Ok(Parquet {
                writer,
                rows: Rows {
                    strings: STRING_FIELDS.iter().map(|_| Optional::default()).collect(),
                    ..Rows::default()
                },
            })
        }

        fn flush_rows(&mut self) -> Result<(), WriteError> {
            if self.rows.count == 0 {
                return Ok(());
            }
            let rows = &mut self.rows;
            let mut group = self.writer.next_row_group()?;
            let mut index = 0;
            while let Some(mut column) = group.next_column()? {
                let strings = STRING_FIELDS.len();
                match index {
                    0 => {
                        let c = &rows.event_time;
                        column.typed::<Int64Type>().write_batch(
                            &c.values,
                            Some(&c.defined),
                            None,
                        )?;
                    }
                    i if i <= strings => {
                        let c = rows.strings.get(i - 1).ok_or_else(|| column_count(i))?;
                        column.typed::<ByteArrayType>().write_batch(
                            &c.values,
                            Some(&c.defined),
                            None,
                        )?;
                    }
                    i if i == strings + 1 => {
                        let c = &rows.read_only;
                        column.typed::<BoolType>().write_batch(
                            &c.values,
                            Some(&c.defined),
                            None,
                        )?;
                    }
                    i if i <= strings + 5 => {
                        let c = rows
                            .required
                            .get(i - strings - 2)
                            .ok_or_else(|| column_count(i))?;
                        column.typed::<ByteArrayType>().write_batch(c, None, None)?;
                    }
                    i if i <= strings + 7 => {
                        let c = if i == strings + 6 {
                            &rows.digest
                        } else {
                            &rows.version_id
                        };
                        column.typed::<ByteArrayType>().write_batch(
                            &c.values,
                            Some(&c.defined),
                            None,
                        )?;
                    }
                    i if i == strings + 8 => {
                        column.typed::<ByteArrayType>().write_batch(
                            &rows.provenance,
                            None,
                            None,
                        )?;
                    }
                    i => return Err(column_count(i).into()),
                }
                column.close()?;
                index += 1;
            }
            group.close()?;
            rows.event_time.clear();
            rows.strings.iter_mut().for_each(Optional::clear);
            rows.read_only.clear();
            rows.required.iter_mut().for_each(Vec::clear);
            rows.digest.clear();
            rows.version_id.clear();
            rows.provenance.clear();
            rows.count = 0;
            rows.bytes = 0;
            Ok(())
        }
    }

    /// The schema and the columns written disagree: a bug here, said rather than panicked.
    fn column_count(i: usize) -> parquet::errors::ParquetError {
        parquet::errors::ParquetError::General(format!("no data for column {i}"))
    }

    impl<W: Write + Send> RecordWriter for Parquet<W> {
        fn write(&mut self, record: &ExportedRecord) -> Result<(), WriteError> {
            let fields = Fields::of(&record.text);
            let carrier = &record.provenance.carrier;
            let rows = &mut self.rows;
            rows.event_time
                .push(fields.event_time.map(|t| t.as_microsecond()));
            for (column, value) in rows.strings.iter_mut().zip(fields.strings) {
                column.push(value.map(text));
            }
            rows.read_only.push(fields.read_only);
            let verdict = match serde_json::to_value(carrier.verdict) {
                Ok(serde_json::Value::String(v)) => v,
                _ => format!("{:?}", carrier.verdict),
            };
            let [record_text, verdict_col, log, sha] = &mut rows.required;
            record_text.push(text(record.text.as_str()));
            verdict_col.push(text(verdict));
            log.push(text(carrier.log.uri()));
            sha.push(text(carrier.log_sha256.to_hex()));
            rows.digest
                .push(carrier.digest.as_ref().map(|d| text(d.uri())));
            rows.version_id
                .push(carrier.version_id.as_deref().map(text));
            // The provenance exactly as the JSONL line has it.
            let provenance = provenance_json(&record.provenance)?;
            let provenance_len = provenance.len();
            rows.provenance.push(ByteArray::from(provenance));
            rows.count += 1;
            rows.bytes += record.text.len() + provenance_len;
            if rows.count >= ROW_GROUP_ROWS || rows.bytes >= ROW_GROUP_BYTES {
                self.flush_rows()?;
            }
            Ok(())
        }

        fn finish(mut self: Box<Self>) -> Result<(), WriteError> {
            self.flush_rows()?;
            let mut out = self.writer.into_inner()?;
            out.flush()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Verdict;
    use crate::core::records::Provenance;
    use crate::core::types::{S3Location, Sha256};

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0005Z_abcdefghijklmnop.json.gz";

    fn record(text: &str) -> ExportedRecord {
        ExportedRecord {
            text: text.to_owned(),
            provenance: Provenance::new(Carrier {
                log: S3Location::new("b", KEY),
                log_sha256: Sha256([1; 32]),
                digest: None,
                verdict: Verdict::NotVerified,
                version_id: None,
            }),
        }
    }

    /// The writer keeps each file's `trailproof` value; its lines are those of
    /// [`ExportedRecord::write_jsonl`], for records of one file, of several, and beyond what
    /// it keeps.
    #[test]
    fn jsonl_lines_are_the_records_lines() {
        let shared = record(r#"{"eventID":"a"}"#);
        let mut records = vec![shared.clone(), shared.clone()];
        let mut also = shared.clone();
        also.provenance.merge(Provenance::new(Carrier {
            verdict: Verdict::Valid,
            ..(*shared.provenance.carrier).clone()
        }));
        records.push(also);
        for n in 0..(MADE_FILES + 5) {
            let mut r = record(&format!(r#"{{"eventID":"{n}"}}"#));
            r.provenance = Provenance::new(Carrier {
                log_sha256: Sha256([(n % 251) as u8; 32]),
                ..(*r.provenance.carrier).clone()
            });
            records.push(r.clone());
            records.push(r);
        }
        let mut got = Vec::new();
        let mut writer = Jsonl::new(&mut got);
        let mut want = Vec::new();
        for r in &records {
            writer.write(r).unwrap();
            r.write_jsonl(&mut want).unwrap();
        }
        Box::new(writer).finish().unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    fn timesketch(text: &str) -> serde_json::Value {
        let mut out = Vec::new();
        Timesketch::new(&mut out).write(&record(text)).unwrap();
        assert!(out.ends_with(b"}\n") && out.iter().filter(|&&b| b == b'\n').count() == 1);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn timesketch_lines_have_the_fields_its_importer_requires() {
        let v = timesketch(
            r#"{"eventTime":"2026-01-01T00:03:07Z","eventName":"GetObject","eventSource":"s3.amazonaws.com","awsRegion":"us-east-1","errorCode":"AccessDenied","readOnly":true,"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice"},"requestParameters":{"bucketName":"x"}}"#,
        );
        assert_eq!(v["datetime"], "2026-01-01T00:03:07+00:00");
        assert_eq!(v["timestamp"], 1_767_225_787_000_000i64);
        assert_eq!(v["timestamp_desc"], "Event Time");
        assert_eq!(
            v["message"],
            "GetObject by arn:aws:iam::111122223333:user/alice (s3.amazonaws.com, us-east-1): AccessDenied"
        );
        assert_eq!(v["read_only"], true);
        assert_eq!(v["user_identity_type"], "IAMUser");
        assert_eq!(v["trailproof_verdict"], "not_verified");
        assert!(v.get("trailproof_digest").is_none());
        // Nested values only as text: a search index maps every field once.
        assert!(v["cloudtrail_record"]
            .as_str()
            .unwrap()
            .contains("requestParameters"));
        assert!(v.get("requestParameters").is_none());
    }

    /// A record without an eventTime still goes on the timeline, at its file's delivery, and
    /// says so; a field of another type than CloudTrail writes is left out, not stringified.
    #[test]
    fn timesketch_record_without_event_time_sits_at_delivery() {
        let v = timesketch(r#"{"eventTime":"yesterday","eventName":7}"#);
        assert_eq!(v["datetime"], "2026-01-01T00:05:00+00:00");
        assert_eq!(
            v["timestamp_desc"],
            "Log Delivered (record has no eventTime)"
        );
        assert!(v.get("event_name").is_none());
        assert_eq!(
            v["message"],
            "an unnamed event by an unknown identity (no eventSource, no awsRegion)"
        );
    }

    #[test]
    fn fields_take_the_last_copy_of_a_key_as_jq_does() {
        let f = Fields::of(r#"{"awsRegion":"a","awsRegion":"b"}"#);
        assert_eq!(f.get(AWS_REGION), Some("b"));
        assert_eq!(Fields::of("not json"), Fields::default());
    }

    /// More rows than a row group holds: every row is in the file, over two row groups, as
    /// the Parquet crate's own reader counts them.
    #[cfg(feature = "parquet")]
    #[test]
    fn parquet_rows_beyond_one_row_group_are_all_written() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let mut writer: Box<dyn RecordWriter> =
            Box::new(Parquet::new(std::fs::File::create(&path).unwrap()).unwrap());
        let rows = ROW_GROUP_ROWS + 10;
        for i in 0..rows {
            let text = format!(r#"{{"eventID":"e{i}","eventTime":"2026-01-01T00:00:00Z"}}"#);
            writer.write(&record(&text)).unwrap();
        }
        writer.finish().unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), rows as i64);
        assert_eq!(meta.num_row_groups(), 2);
        assert_eq!(meta.row_group(1).num_rows(), 10);
    }
}
