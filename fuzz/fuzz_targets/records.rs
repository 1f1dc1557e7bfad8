//! A log file's records (`core::records::parse_records`, the one-pass scanner) on any bytes.
//! It must never panic, and what it accepts must be what serde_json reads: a `{"Records":[…]}`
//! object whose elements are exactly the records' texts, each with the fields the scanner
//! gave. serde_json's `Value` is the independent reader here (it refuses lone surrogate
//! escapes, which the scanner keeps: such inputs are checked for panics only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trailproof::core::records::{parse_records, Column, RecordLimits};

fuzz_target!(|raw: &[u8]| {
    let limits = RecordLimits { max_records: 64 };
    let Ok(records) = parse_records(raw, limits) else {
        return;
    };
    let Ok(whole) = serde_json::from_slice::<Value>(raw) else {
        return;
    };
    let envelope = whole.as_object().expect("accepted: an object");
    assert_eq!(envelope.len(), 1, "accepted: one top-level key");
    let elements = envelope["Records"].as_array().expect("accepted: Records is an array");
    assert_eq!(elements.len(), records.len());
    for (record, element) in records.iter().zip(elements) {
        let alone: Value = serde_json::from_str(record.raw()).expect("a record's text is JSON");
        assert_eq!(&alone, element, "a record's text is its element");
        let fields = element.as_object().expect("a record is an object");
        assert!(fields.keys().all(|k| !k.starts_with("trailproof")));
        let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        assert_eq!(record.event_id.as_deref().map(str::to_owned), text(element, "eventID"));
        assert_eq!(record.event_name.as_deref().map(str::to_owned), text(element, "eventName"));
        assert_eq!(
            record.event_source.as_deref().map(str::to_owned),
            text(element, "eventSource")
        );
        let time = text(element, "eventTime").and_then(|t| t.parse::<jiff::Timestamp>().ok());
        assert_eq!(record.event_time, time);
        assert_eq!(record.read_only, element.get("readOnly").and_then(Value::as_bool));
        let error = element.get("errorCode").is_some_and(|v| !v.is_null());
        assert_eq!(record.has_error, error);
        let identity = element.get("userIdentity").filter(|v| v.is_object());
        assert_eq!(
            record.user_arn.as_deref().map(str::to_owned),
            identity.and_then(|i| text(i, "arn"))
        );
        for (column, value) in [
            (Column::AwsRegion, text(element, "awsRegion")),
            (Column::UserAgent, text(element, "userAgent")),
            (Column::ErrorCode, text(element, "errorCode")),
            (Column::UserIdentityType, identity.and_then(|i| text(i, "type"))),
            (Column::UserIdentityAccountId, identity.and_then(|i| text(i, "accountId"))),
        ] {
            assert_eq!(record.column(column).map(|c| c.into_owned()), value, "{column:?}");
        }
    }
});
