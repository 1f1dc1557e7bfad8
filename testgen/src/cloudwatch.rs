//! What CloudTrail would deliver to a CloudWatch Logs group for a corpus: one log event per
//! record of the log files its digests list (once per eventID), re-serialised with its keys
//! sorted (CloudTrail's delivery is not byte for byte the log file), stamped `delay` after its
//! eventTime, in the stream CloudTrail names for its log file's account and Region
//! (`ACCOUNT_CloudTrail_REGION`).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::corpus::Corpus;
use super::encode::gunzip;

/// One log event for the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudWatchEvent {
    /// The stream.
    pub stream: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The record, as JSON.
    pub message: String,
}

impl CloudWatchEvent {
    /// The record's eventID.
    pub fn event_id(&self) -> String {
        let v: Value = serde_json::from_str(&self.message).expect("a record");
        v["eventID"].as_str().unwrap_or_default().to_owned()
    }
}

/// The log events of `corpus`'s records, in eventID order.
pub fn cloudwatch_events(corpus: &Corpus, delay: SignedDuration) -> Vec<CloudWatchEvent> {
    let mut by_id: BTreeMap<String, CloudWatchEvent> = BTreeMap::new();
    for key in corpus.digests().iter().flat_map(|d| d.logs.iter()) {
        let Some(object) = corpus.objects.get(key) else {
            continue;
        };
        // [prefix/]AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/...
        let parts: Vec<&str> = key.split('/').collect();
        let Some(at) = parts.iter().position(|p| *p == "AWSLogs") else {
            continue;
        };
        let mut rest = parts.iter().skip(at + 1);
        let account = match rest.next() {
            Some(o) if o.starts_with("o-") => rest.next(),
            other => other,
        };
        let region = rest.nth(1);
        let (Some(account), Some(region)) = (account, region) else {
            continue;
        };
        let stream = format!("{account}_CloudTrail_{region}");
        let Ok(inflated) = gunzip(&object.bytes) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&inflated) else {
            continue;
        };
        for r in doc["Records"].as_array().into_iter().flatten() {
            let (Some(id), Some(time)) = (r["eventID"].as_str(), r["eventTime"].as_str()) else {
                continue;
            };
            let Ok(time) = time.parse::<Timestamp>() else {
                continue;
            };
            by_id
                .entry(id.to_owned())
                .or_insert_with(|| CloudWatchEvent {
                    stream: stream.clone(),
                    timestamp: (time + delay).as_millisecond(),
                    message: serde_json::to_string(r).expect("a JSON value"),
                });
        }
    }
    by_id.into_values().collect()
}
