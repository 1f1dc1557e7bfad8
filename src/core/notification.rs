//! What an SQS message body says was delivered, for `trailproof watch`: an S3 event
//! notification, or CloudTrail's SNS notification, possibly inside an SNS envelope.
//!
//! A notification is only a hint that something new may be in the bucket: nothing here is
//! believed about the objects themselves (the watch reads and verifies them from S3), and a
//! message nobody sent, or one that is withheld, changes no verdict. The shapes read:
//!
//! - S3 event notifications: `{"Records":[{"eventName":"ObjectCreated:Put","eventTime":T,"s3":
//!   {"bucket":{"name":B},"object":{"key":K}}},..]}`, keys URL-encoded as S3 sends them (`+` for
//!   a space); records of other events (`ObjectRemoved:*`) name nothing delivered. `eventTime`
//!   is kept when it reads as a time (the watch uses it only to decide to verify more).
//! - S3's test event: `{"Service":"Amazon S3","Event":"s3:TestEvent",..}`.
//! - CloudTrail's SNS notification: `{"s3Bucket":B,"s3ObjectKey":[K,..]}`.
//! - Either of the above as the `Message` (a JSON string) of an SNS envelope
//!   (`{"Type":"Notification","Message":..}`), when the queue is subscribed to a topic without
//!   raw message delivery.

use jiff::Timestamp;
use serde_json::Value;

use super::types::{form_decode, S3Location};

/// An object a message says was written, and when, if it says (S3 events do, CloudTrail's
/// notifications do not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The object.
    pub object: S3Location,
    /// The record's `eventTime`.
    pub event_time: Option<Timestamp>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// These objects were delivered (possibly none: a record of another event).
    Delivered(Vec<Delivery>),
    /// S3's `s3:TestEvent`, sent when a notification is configured.
    Test,
}

/// Why a message body is no notification this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// It is JSON, in none of the shapes above.
    #[error("the body is not an S3 event or CloudTrail notification: {0}")]
    Shape(&'static str),
}

/// Reads one SQS message body.
pub fn parse(body: &str) -> Result<Notice, NoticeError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| NoticeError::NotJson(e.to_string()))?;
    read(&value, true)
}

fn read(value: &Value, envelope_allowed: bool) -> Result<Notice, NoticeError> {
    let Some(object) = value.as_object() else {
        return Err(NoticeError::Shape("not a JSON object"));
    };
    if let Some(records) = object.get("Records") {
        return s3_event(records);
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Test);
    }
    if let Some(bucket) = object.get("s3Bucket") {
        return cloudtrail(bucket, object.get("s3ObjectKey"));
    }
    match (
        object.get("Type").and_then(Value::as_str),
        object.get("Message"),
    ) {
        (Some("Notification"), Some(Value::String(inner))) if envelope_allowed => {
            let inner: Value = serde_json::from_str(inner)
                .map_err(|_| NoticeError::Shape("an SNS message that is not JSON"))?;
            read(&inner, false)
        }
        (Some(_), _) => Err(NoticeError::Shape("an SNS message of another kind")),
        _ => Err(NoticeError::Shape("none of the fields of a notification")),
    }
}

fn s3_event(records: &Value) -> Result<Notice, NoticeError> {
    let shape = NoticeError::Shape;
    let records = records.as_array().ok_or(shape("`Records` is not a list"))?;
    let mut delivered = Vec::new();
    for record in records {
        let name = record
            .get("eventName")
            .and_then(Value::as_str)
            .ok_or(shape("a record without `eventName`"))?;
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let s3 = record.get("s3").ok_or(shape("a record without `s3`"))?;
        let bucket = s3
            .get("bucket")
            .and_then(|b| b.get("name"))
            .and_then(Value::as_str)
            .ok_or(shape("a record without `s3.bucket.name`"))?;
        let key = s3
            .get("object")
            .and_then(|o| o.get("key"))
            .and_then(Value::as_str)
            .ok_or(shape("a record without `s3.object.key`"))?;
        let key = form_decode(key).ok_or(shape("an object key that is not URL-encoded UTF-8"))?;
        let event_time = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok());
        delivered.push(Delivery {
            object: S3Location::new(bucket, key),
            event_time,
        });
    }
    Ok(Notice::Delivered(delivered))
}

fn cloudtrail(bucket: &Value, keys: Option<&Value>) -> Result<Notice, NoticeError> {
    let shape = NoticeError::Shape;
    let bucket = bucket.as_str().ok_or(shape("`s3Bucket` is not a string"))?;
    let keys = keys
        .and_then(Value::as_array)
        .ok_or(shape("`s3ObjectKey` is not a list"))?;
    keys.iter()
        .map(|k| {
            k.as_str()
                .map(|k| Delivery {
                    object: S3Location::new(bucket, k),
                    event_time: None,
                })
                .ok_or(shape("an `s3ObjectKey` that is not a string"))
        })
        .collect::<Result<_, _>>()
        .map(Notice::Delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20260101T010000Z.json.gz";

    #[test]
    fn an_s3_event_names_its_created_objects_with_keys_decoded() {
        let body = serde_json::json!({"Records": [
            {"eventName": "ObjectCreated:Put", "eventTime": "2026-01-01T01:02:03.456Z",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "a+b%3Dc"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "gone"}}},
        ]});
        assert_eq!(
            parse(&body.to_string()).unwrap(),
            Notice::Delivered(vec![Delivery {
                object: S3Location::new("b", "a b=c"),
                event_time: Some("2026-01-01T01:02:03.456Z".parse().unwrap())
            }])
        );
    }

    #[test]
    fn cloudtrails_sns_notification_in_its_envelope() {
        let inner = serde_json::json!({"s3Bucket": "b", "s3ObjectKey": [KEY]});
        let body = serde_json::json!({"Type": "Notification", "Message": inner.to_string()});
        assert_eq!(
            parse(&body.to_string()).unwrap(),
            Notice::Delivered(vec![Delivery {
                object: S3Location::new("b", KEY),
                event_time: None
            }])
        );
        assert_eq!(
            parse(&inner.to_string()).unwrap(),
            Notice::Delivered(vec![Delivery {
                object: S3Location::new("b", KEY),
                event_time: None
            }])
        );
    }

    #[test]
    fn test_events_and_garbage() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        assert_eq!(parse(test).unwrap(), Notice::Test);
        assert!(matches!(parse("nope"), Err(NoticeError::NotJson(_))));
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#).is_err());
        assert!(parse(r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "%zz"}}}]}"#).is_err());
        // An envelope inside an envelope is not something SNS sends.
        let inner = serde_json::json!({"Type": "Notification", "Message": "{}"});
        let twice = serde_json::json!({"Type": "Notification", "Message": inner.to_string()});
        assert!(parse(&twice.to_string()).is_err());
    }
}
