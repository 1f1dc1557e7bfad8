//! Reading a log file's records: the envelope walk and each record's fields, in one pass of a
//! JSON scanner ([`Scanner`]). What is an error and what is a record is set out in the documentation
//! of `core::records`, the parent module ("the module documentation" below).

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::de;

#[cfg(test)]
mod oracle;

/// Why a log file's content is not a well-formed log file: see the module documentation for
/// the rule. Every record of such a file is left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// Not UTF-8 or not JSON (the parser's message says where).
    #[error("not UTF-8 JSON: {detail}")]
    Json {
        /// The UTF-8 or JSON parser's message.
        detail: String,
    },
    /// The top-level value is not a JSON object.
    #[error("the top-level value is not an object")]
    NotAnObject,
    /// The top-level object has a key other than `Records`.
    #[error("unexpected top-level key {key:?}")]
    UnexpectedKey {
        /// The key as decoded.
        key: String,
    },
    /// The top-level object has no `Records`.
    #[error("no Records array")]
    MissingRecords,
    /// The top-level object has `Records` more than once.
    #[error("Records given more than once")]
    DuplicateRecords,
    /// `Records` is not an array.
    #[error("Records is not an array")]
    RecordsNotAnArray,
    /// An element of `Records` is not a JSON object.
    #[error("record {index} is not an object")]
    RecordNotAnObject {
        /// Its position in `Records`, from 0.
        index: usize,
    },
    /// A record has a field that trailproof reads more than once.
    #[error("record {index} has {field} more than once")]
    DuplicateField {
        /// Its position in `Records`, from 0.
        index: usize,
        /// The field, as `userIdentity.arn` for a nested one.
        field: &'static str,
    },
    /// A record has a top-level key starting `trailproof`, which the outputs reserve for
    /// provenance.
    #[error("record {index} has a top-level key starting \"trailproof\"")]
    ReservedKey {
        /// Its position in `Records`, from 0.
        index: usize,
    },
    /// More records than the limit allows.
    #[error("more than {limit} records")]
    TooManyRecords {
        /// [`RecordLimits::max_records`].
        limit: usize,
    },
}

/// How much one log file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Records at most. A [`Record`] costs about 150 bytes besides the text it borrows, and a
    /// hostile file can hold a record every 3 bytes (`{},`).
    pub max_records: usize,
}

impl RecordLimits {
    /// Real log files hold tens of thousands of records (a record is about 1 KB; a file
    /// inflates to tens of MB): a million leaves room and bounds the index to about 150 MB.
    pub const LOG: RecordLimits = RecordLimits {
        max_records: 1_000_000,
    };
}

/// One CloudTrail record: its exact text and the fields trailproof reads from it.
///
/// Borrowed from the log file's inflated bytes. A field is `None` when the record does not
/// have it in the form CloudTrail writes (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    raw: &'a str,
    /// `eventTime`, RFC 3339.
    pub event_time: Option<Timestamp>,
    /// `eventID`.
    pub event_id: Option<Cow<'a, str>>,
    /// `eventName`.
    pub event_name: Option<Cow<'a, str>>,
    /// `eventSource`.
    pub event_source: Option<Cow<'a, str>>,
    /// `userIdentity.arn`.
    pub user_arn: Option<Cow<'a, str>>,
    /// Whether `errorCode` is present and not `null`.
    pub has_error: bool,
    /// `readOnly`, a JSON boolean.
    pub read_only: Option<bool>,
    /// The JSON text of each [`Column`]'s value, read as a string only when asked.
    columns: [Option<&'a str>; Column::ALL.len()],
}

/// A string field of a record that trailproof does not filter on but writes out as a column
/// (Parquet, Timesketch): read with [`Record::column`]. Like the fields above, each is
/// refused given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Column {
    /// `eventType`.
    EventType,
    /// `awsRegion`.
    AwsRegion,
    /// `recipientAccountId`.
    RecipientAccountId,
    /// `sourceIPAddress`.
    SourceIpAddress,
    /// `userAgent`.
    UserAgent,
    /// `errorCode`.
    ErrorCode,
    /// `errorMessage`.
    ErrorMessage,
    /// `userIdentity.type`.
    UserIdentityType,
    /// `userIdentity.accountId`.
    UserIdentityAccountId,
}

impl Column {
    /// Every column, in this order.
    pub const ALL: [Column; 9] = [
        Column::EventType,
        Column::AwsRegion,
        Column::RecipientAccountId,
        Column::SourceIpAddress,
        Column::UserAgent,
        Column::ErrorCode,
        Column::ErrorMessage,
        Column::UserIdentityType,
        Column::UserIdentityAccountId,
    ];

    /// Its name in the record (`userIdentity.type` for a nested one).
    pub fn name(self) -> &'static str {
        match self {
            Column::EventType => "eventType",
            Column::AwsRegion => "awsRegion",
            Column::RecipientAccountId => "recipientAccountId",
            Column::SourceIpAddress => "sourceIPAddress",
            Column::UserAgent => "userAgent",
            Column::ErrorCode => "errorCode",
            Column::ErrorMessage => "errorMessage",
            Column::UserIdentityType => "userIdentity.type",
            Column::UserIdentityAccountId => "userIdentity.accountId",
        }
    }

    fn slot(self) -> usize {
        Column::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

impl<'a> Record<'a> {
    /// The record's JSON text exactly as in the file, from its `{` to its `}`.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// A column's value, when the record has it as a readable JSON string (`None` otherwise,
    /// as for the fields above).
    pub fn column(&self, column: Column) -> Option<Cow<'a, str>> {
        self.columns
            .get(column.slot())
            .copied()
            .flatten()
            .and_then(string_text)
    }

    /// Reads one record from its JSON text (an output line of `trailproof events` reads back as
    /// its record plus the `trailproof` key, so that one is refused here: use serde_json).
    pub fn parse(text: &'a str) -> Result<Record<'a>, RecordsError> {
        let mut scan = Scanner::new(text);
        scan.space();
        let record = if scan.peek() == Some(b'{') {
            scan.record(0)?
        } else {
            scan.value()?;
            return Err(RecordsError::RecordNotAnObject { index: 0 });
        };
        scan.space();
        scan.end()?;
        Ok(record)
    }

    fn empty() -> Record<'a> {
        Record {
            raw: "",
            event_time: None,
            event_id: None,
            event_name: None,
            event_source: None,
            user_arn: None,
            has_error: false,
            read_only: None,
            columns: [None; Column::ALL.len()],
        }
    }
}

/// Hands each record of a log file's inflated bytes to `each`, in file order, and returns how
/// many there were.
///
/// Streaming: no list of records is built. The envelope is checked as it goes, so on `Err` some
/// records may already have been handed over: a caller that writes as it goes must be able to
/// take them back (or use [`parse_records`], which hands over nothing unless the whole file is
/// well formed).
pub fn for_each_record<'a>(
    raw: &'a [u8],
    limits: RecordLimits,
    mut each: impl FnMut(Record<'a>),
) -> Result<usize, RecordsError> {
    let text = std::str::from_utf8(raw).map_err(|e| RecordsError::Json {
        detail: e.to_string(),
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(RecordsError::NotAnObject);
    }
    let mut scan = Scanner::new(text);
    scan.space();
    scan.expect(b'{', "'{'")?;
    scan.space();
    if scan.peek() == Some(b'}') {
        return Err(RecordsError::MissingRecords);
    }
    let mut count = None;
    loop {
        scan.space();
        let key = scan.key()?;
        if key != "Records" {
            let key = key.into_owned();
            return Err(RecordsError::UnexpectedKey { key });
        }
        if count.is_some() {
            return Err(RecordsError::DuplicateRecords);
        }
        scan.colon()?;
        count = Some(scan.records(limits, &mut each)?);
        scan.space();
        if scan.close(b'}')? {
            break;
        }
    }
    scan.space();
    scan.end()?;
    count.ok_or(RecordsError::MissingRecords)
}

/// Every record of a log file's inflated bytes, in file order, or why the file is malformed.
pub fn parse_records(raw: &[u8], limits: RecordLimits) -> Result<Vec<Record<'_>>, RecordsError> {
    let mut out = Vec::new();
    for_each_record(raw, limits, |r| out.push(r))?;
    Ok(out)
}

/// A string, borrowed from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string value's text (quotes included) decoded, or `None` when it is not a readable JSON
/// string (not a string, or a lone surrogate escape, which no Rust string can hold).
fn string_text(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // Without escapes (and so without quotes or control characters) a string is its own text
    // (looked for as the scanner looks: byte by byte was 1.3 % of an export's instructions).
    if plain_run(inner.as_bytes()) == inner.len() {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<CowStr<'_>>(text).ok().map(|s| s.0)
}

/// A read field of a record: the fields above and the columns.
#[derive(Clone, Copy)]
enum Field {
    EventTime,
    EventId,
    EventName,
    EventSource,
    ErrorCode,
    ReadOnly,
    UserIdentity,
    Column(Column),
}

impl Field {
    /// The field a record's top-level key names, if trailproof reads it.
    fn named(key: &str) -> Option<Field> {
        Some(match key {
            "eventTime" => Field::EventTime,
            "eventID" => Field::EventId,
            "eventName" => Field::EventName,
            "eventSource" => Field::EventSource,
            "errorCode" => Field::ErrorCode,
            "readOnly" => Field::ReadOnly,
            "userIdentity" => Field::UserIdentity,
            "eventType" => Field::Column(Column::EventType),
            "awsRegion" => Field::Column(Column::AwsRegion),
            "recipientAccountId" => Field::Column(Column::RecipientAccountId),
            "sourceIPAddress" => Field::Column(Column::SourceIpAddress),
            "userAgent" => Field::Column(Column::UserAgent),
            "errorMessage" => Field::Column(Column::ErrorMessage),
            _ => return None,
        })
    }

    /// Its place among the fields a record may give once, and its name.
    fn slot(self) -> (usize, &'static str) {
        match self {
            Field::EventTime => (0, "eventTime"),
            Field::EventId => (1, "eventID"),
            Field::EventName => (2, "eventName"),
            Field::EventSource => (3, "eventSource"),
            Field::ErrorCode => (4, "errorCode"),
            Field::ReadOnly => (5, "readOnly"),
            Field::UserIdentity => (6, "userIdentity"),
            Field::Column(c) => (7 + c.slot(), c.name()),
        }
    }
}

/// Fields a record may give once: [`Field::slot`]'s places.
const ONCE: usize = 7 + Column::ALL.len();

/// A JSON scanner over a log file's text, made for CloudTrail's envelope: it checks the JSON
/// grammar (RFC 8259, as serde_json reads it: any depth, numbers of any size, `\u` escapes not
/// paired) in one pass, and reads only the fields trailproof needs, keeping every value's text.
///
/// One pass matters: a record is read once, not scanned as a value and then parsed again. The
/// scanner never recurses (containers it skips are tracked in `open`), so no input can
/// overflow the stack.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The containers being skipped, innermost last: `true` for an object.
    open: Vec<bool>,
}

/// Bytes of a string's body up to the first `"`, `\\` or control character (none: its length).
/// Most strings of a record are short (keys, names, IDs): their first [`SHORT`] bytes are
/// looked at eight at a time in a machine word, which ends them before a SIMD search would be
/// set up (byte by byte was slower than the search). Beyond, memchr finds the first quote or
/// backslash with SIMD; the control-character check before it has no early exit, so it
/// vectorises too. Inlined in both its callers: a call per string cost more than it saved.
#[inline(always)]
fn plain_run(rest: &[u8]) -> usize {
    let mut at = 0;
    while at < SHORT {
        let Some(Ok(word)) = rest.get(at..at + 8).map(<[u8; 8]>::try_from) else {
            break;
        };
        let found = special(u64::from_le_bytes(word));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + long_run(rest.get(at..).unwrap_or_default())
}

/// The bytes [`plain_run`] looks at a word at a time.
const SHORT: usize = 32;

/// The high bit of each byte of `word` (little-endian) that is `"`, `\\` or below 0x20, and
/// maybe of bytes after the first such: the lowest bit set is exact (the borrows of the
/// subtractions only run upwards).
fn special(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
        | below(word, 0x20)
}

/// [`plain_run`] past its first bytes.
fn long_run(rest: &[u8]) -> usize {
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let run = rest.get(..end).unwrap_or_default();
    if run.iter().fold(false, |control, &b| control | (b < 0x20)) {
        return run.iter().position(|&b| b < 0x20).unwrap_or(end);
    }
    end
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            open: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The text from `start` to here.
    fn since(&self, start: usize) -> &'a str {
        self.text.get(start..self.at).unwrap_or_default()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A syntax error here, placed as serde_json places its own (line and column, from 1).
    fn fault(&self, what: &str) -> RecordsError {
        let before = self.bytes.get(..self.at).unwrap_or_default();
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = self.at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |n| n + 1)
            + 1;
        let what = if self.at >= self.bytes.len() {
            format!("end of input while expecting {what}")
        } else {
            format!("expected {what}")
        };
        RecordsError::Json {
            detail: format!("{what} at line {line} column {column}"),
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), RecordsError> {
        if self.peek() != Some(b) {
            return Err(self.fault(what));
        }
        self.at += 1;
        Ok(())
    }

    fn end(&self) -> Result<(), RecordsError> {
        match self.at < self.bytes.len() {
            true => Err(self.fault("the end of the input")),
            false => Ok(()),
        }
    }

    /// After a member or element: `,` (then `false`) or the closing `end` (then `true`).
    fn close(&mut self, end: u8) -> Result<bool, RecordsError> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(false)
            }
            Some(b) if b == end => {
                self.at += 1;
                Ok(true)
            }
            _ => Err(self.fault(if end == b'}' {
                "',' or '}'"
            } else {
                "',' or ']'"
            })),
        }
    }

    /// A string from its opening quote; whether it has escapes.
    fn string(&mut self) -> Result<bool, RecordsError> {
        self.expect(b'"', "a string")?;
        let mut escaped = false;
        loop {
            self.at += plain_run(self.bytes.get(self.at..).unwrap_or_default());
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1
                        }
                        Some(b'u') => {
                            self.at += 1;
                            let hex = self.bytes.get(self.at..self.at + 4);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.fault("four hex digits after \\u"));
                            }
                            self.at += 4;
                        }
                        _ => return Err(self.fault("an escape")),
                    }
                }
                Some(_) => return Err(self.fault("no control character in a string")),
                None => return Err(self.fault("'\"'")),
            }
        }
    }

    /// A member's key and the `:` after it; the key decoded (escapes are rare: only then is
    /// it copied).
    fn key(&mut self) -> Result<Cow<'a, str>, RecordsError> {
        let start = self.at;
        let escaped = self.string()?;
        let text = self.since(start);
        if !escaped {
            return Ok(Cow::Borrowed(
                text.get(1..text.len() - 1).unwrap_or_default(),
            ));
        }
        // A lone surrogate cannot be a key: an error, as serde_json makes it.
        string_text(text).ok_or_else(|| RecordsError::Json {
            detail: format!("unreadable key {text}"),
        })
    }

    fn colon(&mut self) -> Result<(), RecordsError> {
        self.space();
        self.expect(b':', "':'")?;
        self.space();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), RecordsError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.fault("no digit after a leading 0"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fault("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.fault("a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.fault("a digit in the exponent"));
            }
        }
        Ok(())
    }

    /// A value that is not a container.
    fn scalar(&mut self) -> Result<(), RecordsError> {
        let word: Option<&[u8]> = match self.peek() {
            Some(b'"') => return self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => return self.number(),
            Some(b't') => Some(b"true"),
            Some(b'f') => Some(b"false"),
            Some(b'n') => Some(b"null"),
            _ => None,
        };
        match word {
            Some(w) if self.bytes.get(self.at..self.at + w.len()) == Some(w) => {
                self.at += w.len();
                Ok(())
            }
            _ => Err(self.fault("a value")),
        }
    }

    /// Skips one value (at its first byte), checking it.
    fn value(&mut self) -> Result<(), RecordsError> {
        self.open.clear();
        loop {
            // A value begins.
            match self.peek() {
                Some(b'{') => {
                    self.at += 1;
                    self.space();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        self.open.push(true);
                        self.key()?;
                        self.colon()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    self.space();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        self.open.push(false);
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // A value ended: close what it ends, up to a container with more to come.
            loop {
                let Some(&object) = self.open.last() else {
                    return Ok(());
                };
                self.space();
                if !self.close(if object { b'}' } else { b']' })? {
                    self.space();
                    if object {
                        self.key()?;
                        self.colon()?;
                    }
                    break;
                }
                self.open.pop();
            }
        }
    }

    /// The `Records` array's elements, each handed to `each`; how many there were.
    fn records(
        &mut self,
        limits: RecordLimits,
        each: &mut impl FnMut(Record<'a>),
    ) -> Result<usize, RecordsError> {
        match self.peek() {
            Some(b'[') => self.at += 1,
            Some(b'{') => return Err(RecordsError::RecordsNotAnArray),
            _ => {
                self.scalar()?;
                return Err(RecordsError::RecordsNotAnArray);
            }
        }
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(0);
        }
        let mut count = 0;
        loop {
            self.space();
            if count >= limits.max_records {
                let limit = limits.max_records;
                return Err(RecordsError::TooManyRecords { limit });
            }
            if self.peek() != Some(b'{') {
                self.value()?;
                return Err(RecordsError::RecordNotAnObject { index: count });
            }
            each(self.record(count)?);
            count += 1;
            self.space();
            if self.close(b']')? {
                return Ok(count);
            }
        }
    }

    /// One record, from its `{`.
    fn record(&mut self, index: usize) -> Result<Record<'a>, RecordsError> {
        let start = self.at;
        let mut record = Record::empty();
        let mut seen = [false; ONCE];
        self.at += 1;
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            record.raw = self.since(start);
            return Ok(record);
        }
        loop {
            self.space();
            let key = self.key()?;
            if key.starts_with("trailproof") {
                return Err(RecordsError::ReservedKey { index });
            }
            let field = Field::named(&key);
            self.colon()?;
            let Some(field) = field else {
                self.value()?;
                self.space();
                if self.close(b'}')? {
                    break;
                }
                continue;
            };
            let (slot, name) = field.slot();
            match seen.get_mut(slot) {
                Some(s) if !*s => *s = true,
                _ => return Err(RecordsError::DuplicateField { index, field: name }),
            }
            let value_start = self.at;
            if matches!(field, Field::UserIdentity) && self.peek() == Some(b'{') {
                self.identity(index, &mut record)?;
            } else {
                self.value()?;
            }
            let value = self.since(value_start);
            match field {
                Field::EventTime => {
                    record.event_time = string_text(value).and_then(|t| t.parse().ok());
                }
                Field::EventId => record.event_id = string_text(value),
                Field::EventName => record.event_name = string_text(value),
                Field::EventSource => record.event_source = string_text(value),
                Field::ErrorCode => {
                    record.has_error = value != "null";
                    record.set_column(Column::ErrorCode, value);
                }
                Field::ReadOnly => {
                    record.read_only = match value {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    }
                }
                Field::UserIdentity => {}
                // Once each: `seen` refused a second.
                Field::Column(c) => {
                    record.set_column(c, value);
                }
            }
            self.space();
            if self.close(b'}')? {
                break;
            }
        }
        record.raw = self.since(start);
        Ok(record)
    }

    /// A `userIdentity` object, from its `{`: its `arn`, `type` and `accountId`.
    fn identity(&mut self, index: usize, record: &mut Record<'a>) -> Result<(), RecordsError> {
        self.at += 1;
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        let mut arn = None;
        loop {
            self.space();
            let key = self.key()?;
            let (slot, column, name) = match key.as_ref() {
                "arn" => (0, None, "userIdentity.arn"),
                "type" => (1, Some(Column::UserIdentityType), "userIdentity.type"),
                "accountId" => (
                    2,
                    Some(Column::UserIdentityAccountId),
                    "userIdentity.accountId",
                ),
                _ => (3, None, ""),
            };
            self.colon()?;
            let value_start = self.at;
            self.value()?;
            let value = self.since(value_start);
            if slot < 3 {
                let taken = match column {
                    None => arn.replace(value).is_some(),
                    Some(c) => record.set_column(c, value),
                };
                if taken {
                    return Err(RecordsError::DuplicateField { index, field: name });
                }
            }
            self.space();
            if self.close(b'}')? {
                break;
            }
        }
        record.user_arn = arn.and_then(string_text);
        Ok(())
    }
}

impl<'a> Record<'a> {
    /// Sets a column's text; whether it was already set.
    fn set_column(&mut self, column: Column, value: &'a str) -> bool {
        self.columns
            .get_mut(column.slot())
            .is_some_and(|c| c.replace(value).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::testutil::{generated_logs, parse};

    #[test]
    fn generated_records_read_back_exactly() {
        for log in generated_logs() {
            let text = std::str::from_utf8(&log).unwrap();
            let records = parse_records(&log, RecordLimits::LOG).unwrap();
            assert_eq!(records.len(), text.matches("\"eventID\"").count());
            let whole: serde_json::Value = serde_json::from_slice(&log).unwrap();
            let values = whole["Records"].as_array().unwrap();
            assert_eq!(values.len(), records.len());
            for (r, v) in records.iter().zip(values) {
                // The raw text is a slice of the file, and is that record.
                let start = r.raw().as_ptr() as usize - text.as_ptr() as usize;
                assert_eq!(&text[start..start + r.raw().len()], r.raw());
                assert_eq!(
                    &serde_json::from_str::<serde_json::Value>(r.raw()).unwrap(),
                    v
                );
                let time: Timestamp = v["eventTime"].as_str().unwrap().parse().unwrap();
                assert_eq!(r.event_time, Some(time));
                assert_eq!(r.event_id.as_deref(), v["eventID"].as_str());
                assert_eq!(r.event_name.as_deref(), v["eventName"].as_str());
                assert_eq!(r.event_source.as_deref(), v["eventSource"].as_str());
                assert_eq!(r.user_arn.as_deref(), v["userIdentity"]["arn"].as_str());
                assert_eq!(r.has_error, v.get("errorCode").is_some());
                assert_eq!(r.read_only, v["readOnly"].as_bool());
                assert!(r.read_only.is_some());
                // Without escapes, nothing is copied.
                assert!(matches!(r.event_id, Some(Cow::Borrowed(_))));
            }
            let mut streamed = 0;
            let n = for_each_record(&log, RecordLimits::LOG, |_| streamed += 1).unwrap();
            assert_eq!((n, streamed), (records.len(), records.len()));
        }
    }

    #[test]
    fn whitespace_and_empty_records() {
        let text = " { \"Records\" : [ {\"eventID\":\"x\"} ,\n{ } ] } \n";
        let records = parse(text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].raw(), "{\"eventID\":\"x\"}");
        assert_eq!(records[1].raw(), "{ }");
        assert_eq!(records[1].event_id, None);
        assert_eq!(parse("{\"Records\":[]}").unwrap().len(), 0);
    }

    #[test]
    fn envelope_faults_make_the_file_malformed() {
        use RecordsError as E;
        assert!(matches!(parse(""), Err(E::NotAnObject)));
        assert!(matches!(parse("[]"), Err(E::NotAnObject)));
        assert!(matches!(parse("\"Records\""), Err(E::NotAnObject)));
        assert!(matches!(parse("{"), Err(E::Json { .. })));
        assert!(matches!(parse("{\"Records\":[{}"), Err(E::Json { .. })));
        assert!(matches!(parse("{\"Records\":[{}]} x"), Err(E::Json { .. })));
        assert!(matches!(parse("{\"Records\":[{}]}{}"), Err(E::Json { .. })));
        assert!(matches!(
            parse_records(b"{\"Records\":[{\"a\":\"\xff\"}]}", RecordLimits::LOG),
            Err(E::Json { .. })
        ));
        assert_eq!(parse("{}"), Err(E::MissingRecords));
        assert_eq!(
            parse("{\"Records\":[],\"Records\":[]}"),
            Err(E::DuplicateRecords)
        );
        // An escaped spelling is the same key.
        assert_eq!(
            parse("{\"Records\":[],\"Rec\\u006frds\":[]}"),
            Err(E::DuplicateRecords)
        );
        assert_eq!(
            parse("{\"Records\":[],\"extra\":1}"),
            Err(E::UnexpectedKey {
                key: "extra".into()
            })
        );
        for not_array in ["{}", "1", "-1", "1.5", "\"x\"", "null", "true"] {
            let text = format!("{{\"Records\":{not_array}}}");
            assert_eq!(parse(&text), Err(E::RecordsNotAnArray), "{text}");
        }
        for not_object in ["1", "null", "[]", "\"x\"", "true"] {
            let text = format!("{{\"Records\":[{{}},{not_object}]}}");
            assert_eq!(
                parse(&text),
                Err(E::RecordNotAnObject { index: 1 }),
                "{text}"
            );
        }
    }

    #[test]
    fn too_many_records_are_refused_and_deep_nesting_does_not_panic() {
        let limits = RecordLimits { max_records: 3 };
        let three = "{\"Records\":[{},{},{}]}";
        assert_eq!(parse_records(three.as_bytes(), limits).unwrap().len(), 3);
        let four = "{\"Records\":[{},{},{},{}]}";
        assert_eq!(
            parse_records(four.as_bytes(), limits),
            Err(RecordsError::TooManyRecords { limit: 3 })
        );
        // Far deeper than a recursive parser's stack: serde_json skips values it does not
        // read with a loop, so the record is kept, and nothing overflows.
        let deep = format!(
            "{{\"Records\":[{{\"x\":{}{}}}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(&deep).unwrap().len(), 1);
        // Unbalanced: an error.
        let unbalanced = format!("{{\"Records\":[{{\"x\":{}}}]}}", "[".repeat(100_000));
        assert!(matches!(parse(&unbalanced), Err(RecordsError::Json { .. })));
        // Deep inside userIdentity, which is read: also skipped with a loop.
        let deep_identity = format!(
            "{{\"Records\":[{{\"userIdentity\":{{\"x\":{}{}}}}}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(&deep_identity).unwrap().len(), 1);
    }

    #[test]
    fn a_read_field_twice_or_a_trailproof_key_makes_the_file_malformed() {
        use RecordsError as E;
        let cases = [
            (r#"{"eventID":"a","eventID":"b"}"#, "eventID"),
            (r#"{"eventID":"a","event\u0049D":"b"}"#, "eventID"),
            (r#"{"eventTime":"x","eventTime":1}"#, "eventTime"),
            (r#"{"errorCode":null,"errorCode":null}"#, "errorCode"),
            (r#"{"readOnly":true,"readOnly":false}"#, "readOnly"),
            (r#"{"userIdentity":{},"userIdentity":{}}"#, "userIdentity"),
            (
                r#"{"userIdentity":{"arn":"a","type":"x","arn":"b"}}"#,
                "userIdentity.arn",
            ),
            (r#"{"awsRegion":"a","aws\u0052egion":"b"}"#, "awsRegion"),
            (r#"{"errorMessage":"a","errorMessage":"b"}"#, "errorMessage"),
            (
                r#"{"userIdentity":{"type":"a","type":"b"}}"#,
                "userIdentity.type",
            ),
            (
                r#"{"userIdentity":{"accountId":"1","accountId":"2"}}"#,
                "userIdentity.accountId",
            ),
        ];
        for (record, field) in cases {
            let text = format!("{{\"Records\":[{{}},{record}]}}");
            assert_eq!(
                parse(&text),
                Err(E::DuplicateField { index: 1, field }),
                "{record}"
            );
        }
        assert_eq!(
            parse(r#"{"Records":[{"trailproof":{}}]}"#),
            Err(E::ReservedKey { index: 0 })
        );
        assert_eq!(
            parse(r#"{"Records":[{"trailpr\u006fof":1}]}"#),
            Err(E::ReservedKey { index: 0 })
        );
        // Found by the red team: a record's own `trailproof_verdict` became a column of that
        // name in DuckDB's `read_json_auto`, beside the provenance's.
        assert_eq!(
            parse(r#"{"Records":[{"trailproof_verdict":"valid"}]}"#),
            Err(E::ReservedKey { index: 0 })
        );
        // A nested `trailproof` or a repeated key trailproof does not read: kept as written.
        let kept = r#"{"Records":[{"requestParameters":{"trailproof":1},"vpcEndpointId":"a","vpcEndpointId":"b"}]}"#;
        assert_eq!(parse(kept).unwrap().len(), 1);
    }

    #[test]
    fn columns_are_read_as_strings_or_not_at_all() {
        let text = r#"{"Records":[
            {"awsRegion":"eu-west-1","errorCode":"AccessDenied","sourceIPAddress":"\u0031.2.3.4",
             "userIdentity":{"type":"IAMUser","accountId":"111122223333","arn":"a"},
             "userAgent":7,"errorMessage":"\ud800"},
            {"errorCode":null,"userIdentity":"root"}
        ]}"#;
        let r = parse(text).unwrap();
        let got = |i: usize, c| r[i].column(c).map(|v| v.into_owned());
        assert_eq!(got(0, Column::AwsRegion).as_deref(), Some("eu-west-1"));
        assert_eq!(got(0, Column::ErrorCode).as_deref(), Some("AccessDenied"));
        assert_eq!(got(0, Column::SourceIpAddress).as_deref(), Some("1.2.3.4"));
        assert_eq!(got(0, Column::UserIdentityType).as_deref(), Some("IAMUser"));
        assert_eq!(
            got(0, Column::UserIdentityAccountId).as_deref(),
            Some("111122223333")
        );
        assert_eq!(got(0, Column::UserAgent), None);
        assert_eq!(got(0, Column::ErrorMessage), None);
        assert!(r[0].has_error);
        for c in Column::ALL {
            assert_eq!(got(1, c), None, "{c:?}");
        }
        assert!(!r[1].has_error);
    }

    #[test]
    fn odd_values_are_kept_and_read_as_absent() {
        let text = r#"{"Records":[
            {"eventTime":12,"eventID":7,"eventName":null,"readOnly":"true","errorCode":null,"userIdentity":"root"},
            {"eventTime":"yesterday","eventSource":["s3"],"readOnly":1,"userIdentity":{"arn":5}},
            {"eventTime":"2024-03-01T12:00:00.123Z","errorCode":"","userIdentity":{"arn":"arn:aws:iam::1:user/\u0061"}},
            {"eventName":"\ud800"}
        ]}"#;
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 4);
        for field in [&r[0], &r[1]] {
            assert_eq!(field.event_time, None);
            assert_eq!(field.event_id, None);
            assert_eq!(field.event_name, None);
            assert_eq!(field.event_source, None);
            assert_eq!(field.user_arn, None);
            assert_eq!(field.read_only, None);
            assert!(!field.has_error);
        }
        assert_eq!(
            r[2].event_time,
            Some("2024-03-01T12:00:00.123Z".parse().unwrap())
        );
        assert!(r[2].has_error);
        // Decoded, so owned.
        assert_eq!(r[2].user_arn.as_deref(), Some("arn:aws:iam::1:user/a"));
        // A lone surrogate cannot be a Rust string: absent, the record kept.
        assert_eq!(r[3].event_name, None);
        assert_eq!(r[3].raw(), r#"{"eventName":"\ud800"}"#);
    }

    /// The first bytes of a string are looked at one by one and the rest with SIMD: either
    /// way its end is the first quote, backslash or control character, wherever that is.
    #[test]
    fn a_strings_end_is_found_on_either_side_of_the_short_path() {
        // Neighbours of the bytes looked for, and bytes of multi-byte characters.
        let fill = [
            b'x', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        for len in 0..3 * SHORT {
            for stop in [b'"', b'\\', 0x1f, b'\n', 0, b'a'] {
                let mut s: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
                s.push(stop);
                s.extend_from_slice(b"y\\\"");
                let want = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                assert_eq!(plain_run(&s), want.unwrap_or(s.len()), "{len} {stop}");
                assert_eq!(plain_run(&s[..len]), len);
            }
        }
    }

    #[test]
    fn one_record_parses_alone() {
        let r = Record::parse(r#" {"eventID":"e1","readOnly":false} "#).unwrap();
        assert_eq!(r.raw(), r#"{"eventID":"e1","readOnly":false}"#);
        assert_eq!(r.event_id.as_deref(), Some("e1"));
        assert_eq!(r.read_only, Some(false));
        assert!(Record::parse("[1]").is_err());
        assert!(Record::parse("{").is_err());
    }

    #[test]
    fn values_trailproof_does_not_read_are_skipped_whatever_they_are() {
        let text = r#"{"Records":[{"x":1e999999,"y":-0.0e-99999999999,"z":123456789012345678901234567890,"s":"\u0000\ud83d\ude00","eventID":"e"}]}"#;
        let r = parse(text).unwrap();
        assert_eq!(r[0].event_id.as_deref(), Some("e"));
        assert_eq!(r[0].raw().len() + "{\"Records\":[]}".len(), text.len());
    }

    /// The scanner against the serde reader it replaced: the same records with the same
    /// fields, or malformed both (the first fault found may differ: both refuse the file).
    fn same_as_the_serde_reader(bytes: &[u8], limits: RecordLimits) -> bool {
        let ours = parse_records(bytes, limits);
        let theirs = oracle::parse_records(bytes, limits);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(bytes)),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "scanner {ours:?}, serde {theirs:?} on {}",
                String::from_utf8_lossy(bytes)
            ),
        }
        ours.is_ok()
    }

    #[test]
    fn the_scanner_reads_damaged_files_as_the_serde_reader_did() {
        let logs = generated_logs();
        for log in &logs {
            assert!(same_as_the_serde_reader(log, RecordLimits::LOG));
        }
        let whole = &logs[0];
        let first: Vec<&str> = parse_records(whole, RecordLimits::LOG)
            .unwrap()
            .iter()
            .take(6)
            .map(|r| r.raw())
            .collect();
        let odd = r#"{"eventID":"e\u0041","userIdentity":{"arn":"a","type":1,"x":[{"arn":2}]},"readOnly":null,"n":[-0.5e+3,0,1E2,true,false,null,{}],"s":"\"\\\/\b\f\n\r\t"}"#;
        let log = format!("{{\"Records\":[{},{odd}]}}", first.join(","));
        let log = log.as_bytes();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = b"{}[]\",:\\ 0123456789eE.+-tfnuaxdD\x01\x1f\t\r\n";
        let mut kept = 0;
        for round in 0..20_000 {
            let mut bytes = log.to_vec();
            for _ in 0..1 + round % 3 {
                let at = (rand() as usize) % bytes.len();
                let b = specials[(rand() as usize) % specials.len()];
                match rand() % 4 {
                    0 => bytes.truncate(at.max(1)),
                    1 => bytes[at] = b,
                    2 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b),
                }
                if bytes.is_empty() {
                    bytes.push(b'{');
                }
            }
            let limits = RecordLimits {
                max_records: 1 + round % 8,
            };
            kept += usize::from(same_as_the_serde_reader(&bytes, limits));
        }
        assert!(kept > 2_000, "{kept}");
    }

    #[test]
    fn damaged_files_never_panic_and_kept_records_are_objects() {
        let whole = generated_logs().swap_remove(0);
        let first: Vec<&str> = parse_records(&whole, RecordLimits::LOG)
            .unwrap()
            .iter()
            .take(4)
            .map(|r| r.raw())
            .collect();
        let log = format!("{{\"Records\":[{}]}}", first.join(","));
        let log = log.as_bytes();
        let mut kept = 0;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = b"{}[]\",:\\ 0tnu";
        for round in 0..3_000 {
            let mut bytes = log.to_vec();
            let at = (rand() as usize) % bytes.len();
            match round % 4 {
                0 => bytes.truncate(at),
                1 => bytes[at] = specials[(rand() as usize) % specials.len()],
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, specials[(rand() as usize) % specials.len()]),
            }
            if let Ok(records) = parse_records(&bytes, RecordLimits::LOG) {
                kept += 1;
                for r in records {
                    let v: serde_json::Value = serde_json::from_str(r.raw()).unwrap();
                    assert!(v.is_object());
                    assert!(v.get("trailproof").is_none());
                }
            }
        }
        // Many damaged files still parse (a changed byte inside a string): those were checked.
        assert!(kept > 300, "{kept}");
    }
}
