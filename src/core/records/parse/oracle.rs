//! The reader `parse` had before its byte scanner: serde_json's visitors over a `RawValue`
//! per record. Kept for tests only, as an independent oracle: the scanner must read every
//! input exactly as this did (same records, same fields, malformed for the same files).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess};
use serde_json::value::RawValue;

use super::{string_text, Column, CowStr, Record, RecordLimits, RecordsError};

fn record_from_raw(raw: &str, index: usize) -> Result<Record<'_>, RecordsError> {
    if !raw.starts_with('{') {
        return Err(RecordsError::RecordNotAnObject { index });
    }
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_str(raw);
    let result = de.deserialize_map(FieldsVisitor {
        index,
        failure: &mut failure,
    });
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (Ok(record), None) => Ok(Record { raw, ..record }),
        (Err(e), None) => Err(json_error(e)),
    }
}

fn json_error(e: serde_json::Error) -> RecordsError {
    RecordsError::Json {
        detail: e.to_string(),
    }
}

fn for_each_record<'a>(
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
    let mut walk = Walk {
        each: &mut each,
        limits,
        count: 0,
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = de
        .deserialize_map(EnvelopeVisitor { walk: &mut walk })
        .and_then(|()| de.end());
    match (result, walk.failure) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(walk.count),
        (Err(e), None) => Err(json_error(e)),
    }
}

/// Every record of a log file's inflated bytes, in file order, or why the file is malformed.
pub(super) fn parse_records(
    raw: &[u8],
    limits: RecordLimits,
) -> Result<Vec<Record<'_>>, RecordsError> {
    let mut out = Vec::new();
    for_each_record(raw, limits, |r| out.push(r))?;
    Ok(out)
}

/// The walk's state: the callback, the count, and the typed error that stopped the parser
/// (serde only carries strings).
struct Walk<'w, F> {
    each: &'w mut F,
    limits: RecordLimits,
    count: usize,
    failure: Option<RecordsError>,
}

impl<F> Walk<'_, F> {
    fn fail<E: de::Error>(&mut self, e: RecordsError) -> E {
        let message = e.to_string();
        self.failure = Some(e);
        E::custom(message)
    }
}

struct EnvelopeVisitor<'v, 'w, F> {
    walk: &'v mut Walk<'w, F>,
}

impl<'de, F: FnMut(Record<'de>)> de::Visitor<'de> for EnvelopeVisitor<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"Records\":[...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            if key != "Records" {
                return Err(self.walk.fail(RecordsError::UnexpectedKey {
                    key: key.into_owned(),
                }));
            }
            if seen {
                return Err(self.walk.fail(RecordsError::DuplicateRecords));
            }
            seen = true;
            map.next_value_seed(RecordsSeed {
                walk: &mut *self.walk,
            })?;
        }
        if !seen {
            return Err(self.walk.fail(RecordsError::MissingRecords));
        }
        Ok(())
    }
}

struct RecordsSeed<'v, 'w, F> {
    walk: &'v mut Walk<'w, F>,
}

impl<'de, F: FnMut(Record<'de>)> DeserializeSeed<'de> for RecordsSeed<'_, '_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Record<'de>)> de::Visitor<'de> for RecordsSeed<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let index = self.walk.count;
            if index >= self.walk.limits.max_records {
                let limit = self.walk.limits.max_records;
                return Err(self.walk.fail(RecordsError::TooManyRecords { limit }));
            }
            let record = match record_from_raw(raw.get(), index) {
                Ok(r) => r,
                Err(e) => return Err(self.walk.fail(e)),
            };
            self.walk.count = index.saturating_add(1);
            (self.walk.each)(record);
        }
        Ok(())
    }

    // Any other JSON value: `Records` is not an array.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.walk.fail(RecordsError::RecordsNotAnArray))
    }
}

/// Reads the fields trailproof needs from one record (an object), leniently as to their values
/// and strictly as to duplicates.
struct FieldsVisitor<'f> {
    index: usize,
    failure: &'f mut Option<RecordsError>,
}

impl FieldsVisitor<'_> {
    fn fail<E: de::Error>(&mut self, e: RecordsError) -> E {
        let message = e.to_string();
        *self.failure = Some(e);
        E::custom(message)
    }
}

/// A string value, or `None` when the value is not a readable JSON string.
fn string_value(raw: &RawValue) -> Option<Cow<'_, str>> {
    string_text(raw.get())
}

impl<'de> de::Visitor<'de> for FieldsVisitor<'_> {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Record<'de>, A::Error> {
        let mut record = Record {
            raw: "",
            event_time: None,
            event_id: None,
            event_name: None,
            event_source: None,
            user_arn: None,
            has_error: false,
            read_only: None,
            columns: [None; Column::ALL.len()],
        };
        let mut seen_columns = [false; Column::ALL.len()];
        // Which read fields were seen, in the order of FIELDS.
        const FIELDS: [&str; 7] = [
            "eventTime",
            "eventID",
            "eventName",
            "eventSource",
            "errorCode",
            "readOnly",
            "userIdentity",
        ];
        let mut seen = [false; FIELDS.len()];
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            if key.starts_with("trailproof") {
                let index = self.index;
                return Err(self.fail(RecordsError::ReservedKey { index }));
            }
            if let Some(column) = top_level(&key).filter(|c| *c != Column::ErrorCode) {
                let slot = column.slot();
                match seen_columns.get_mut(slot) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        let index = self.index;
                        let field = column.name();
                        return Err(self.fail(RecordsError::DuplicateField { index, field }));
                    }
                }
                let value: &'de RawValue = map.next_value()?;
                if let Some(c) = record.columns.get_mut(slot) {
                    *c = Some(value.get());
                }
                continue;
            }
            let Some(slot) = FIELDS.iter().position(|f| *f == key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = FIELDS.get(slot).copied().unwrap_or("");
            match seen.get_mut(slot) {
                Some(s) if !*s => *s = true,
                _ => {
                    let index = self.index;
                    return Err(self.fail(RecordsError::DuplicateField { index, field }));
                }
            }
            let value: &'de RawValue = map.next_value()?;
            match field {
                "eventTime" => {
                    record.event_time = string_value(value).and_then(|t| t.parse().ok());
                }
                "eventID" => record.event_id = string_value(value),
                "eventName" => record.event_name = string_value(value),
                "eventSource" => record.event_source = string_value(value),
                "errorCode" => {
                    record.has_error = value.get() != "null";
                    if let Some(c) = record.columns.get_mut(Column::ErrorCode.slot()) {
                        *c = Some(value.get());
                    }
                }
                "readOnly" => {
                    record.read_only = match value.get() {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    }
                }
                _ => {
                    // userIdentity: only an object has an arn.
                    if value.get().starts_with('{') {
                        let mut de = serde_json::Deserializer::from_str(value.get());
                        let identity = de
                            .deserialize_map(IdentityVisitor)
                            .map_err(de::Error::custom)?;
                        if let Some(field) = identity.duplicate {
                            let index = self.index;
                            return Err(self.fail(RecordsError::DuplicateField { index, field }));
                        }
                        record.user_arn = identity.arn.and_then(string_text);
                        for (column, text) in [
                            (Column::UserIdentityType, identity.kind),
                            (Column::UserIdentityAccountId, identity.account),
                        ] {
                            if let Some(c) = record.columns.get_mut(column.slot()) {
                                *c = text;
                            }
                        }
                    }
                }
            }
        }
        Ok(record)
    }
}

/// What a `userIdentity` object holds of what trailproof reads: each value's JSON text, and
/// the first field given twice.
#[derive(Default)]
struct Identity<'de> {
    arn: Option<&'de str>,
    kind: Option<&'de str>,
    account: Option<&'de str>,
    duplicate: Option<&'static str>,
}

struct IdentityVisitor;

impl<'de> de::Visitor<'de> for IdentityVisitor {
    type Value = Identity<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a userIdentity object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Identity<'de>, A::Error> {
        // Read to the end even after a duplicate: the parser checks the object is closed.
        let mut found = Identity::default();
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let (slot, field) = match key.as_ref() {
                "arn" => (&mut found.arn, "userIdentity.arn"),
                "type" => (&mut found.kind, "userIdentity.type"),
                "accountId" => (&mut found.account, "userIdentity.accountId"),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                found.duplicate.get_or_insert(field);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            *slot = Some(value.get());
        }
        Ok(found)
    }
}

/// The top-level column named `key`.
fn top_level(key: &str) -> Option<Column> {
    Column::ALL
        .into_iter()
        .find(|c| c.name() == key && !c.name().contains('.'))
}
