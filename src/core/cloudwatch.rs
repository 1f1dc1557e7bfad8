//! `crosscheck cloudwatch`: the events of a CloudWatch Logs group compared with the events the
//! S3 side proved, event by event. No I/O: the engine pushes both sides in, time window by time
//! window, and takes findings out.
//!
//! # What CloudTrail puts in CloudWatch Logs
//!
//! A trail with a log group sends each event it logs as one log event whose message is the
//! event's record as JSON, in streams named `ACCOUNT_CloudTrail_REGION`, with `_2`, `_3`, ...
//! when one stream is not enough (AWS CloudTrail User Guide, "CloudWatch log group and log
//! stream naming for CloudTrail"). Events over 256 KB are not sent: "CloudTrail does not send
//! events over 256 KB to CloudWatch Logs or EventBridge" (User Guide, "Quotas in AWS
//! CloudTrail"). Nothing promises the message is byte for byte the record of the log file, and
//! the log event's timestamp is not promised to be the `eventTime` (it is set at delivery);
//! so a message is compared with the proven record **as parsed JSON**, and the timestamp only
//! chooses which proven events it is looked for among.
//!
//! # How two events are compared
//!
//! Both texts are parsed with every object's keys checked for duplicates (at any depth,
//! escaped spellings included: `"event\u0049D"` is `eventID`): readers disagree on which copy
//! of a duplicated key counts, so a message that says two things is never "the same" as
//! anything. Each top-level field's value is then written in a canonical form (object keys
//! sorted, strings as their decoded text, numbers by value: `1.0` is `1`) and hashed; two
//! events are the same when they have the same fields with the same hashes. Which fields
//! differ is what an `altered` finding names.
//!
//! # Windows and the slack
//!
//! A group event is looked for among the proven events with its `eventID` whose `eventTime` is
//! within [`Scope::slack`] of its timestamp. The engine pushes everything up to a time, then
//! calls [`Crosscheck::settle`] with it: every `eventID` whose newest event (by `eventTime` or
//! timestamp) is more than the slack before that time can receive nothing more, and is judged
//! and forgotten. So what is held is the events of the slack and of the windows in flight,
//! whatever the range, and at most [`MAX_FINDINGS`] findings (beyond, each kind's are counted
//! in one finding), so that a group flooded with forged events cannot make it follow the range.
//!
//! What is judged: a proven event whose `eventTime` is in the range, a group event whose
//! timestamp or `eventTime` is in the range. Events of the margins (the slack either side of
//! the range) are read only to be found as partners.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::finding::{Evidence, Finding, Kind, Verdict};
use super::layout::{parse_key, CloudTrailKey};
use super::records::{Provenance, Record};
use super::time::{format_iso, later};
use super::types::{S3Location, Sha256};

/// CloudTrail does not send a record larger than this to CloudWatch Logs: a proven record whose
/// text (as in its log file) is larger is expected to be absent, and counted apart.
pub const MAX_CLOUDWATCH_EVENT: usize = 256 * 1024;

/// One log event as the group answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The stream it is in.
    pub stream: String,
    /// CloudWatch Logs' own id of the log event.
    pub id: String,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Its message.
    pub message: String,
}

/// What is compared, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The log group's name.
    pub group: String,
    /// The start of the range (included).
    pub start: Timestamp,
    /// The end of the range (excluded).
    pub end: Timestamp,
    /// How far a group event's timestamp may be from its `eventTime`.
    pub slack: SignedDuration,
}

/// Why a text cannot be compared as a CloudTrail record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// Not JSON (or nested deeper than the JSON parser allows).
    #[error("not JSON: {detail}")]
    Json {
        /// The parser's message.
        detail: String,
    },
    /// An object holds the same key twice.
    #[error("the key {key:?} is given twice in one object")]
    DuplicateKey {
        /// The key, decoded.
        key: String,
    },
    /// The text is JSON but not an object.
    #[error("not a JSON object")]
    NotAnObject,
}

/// A record's content for comparison: each top-level field and the SHA-256 of its value's
/// canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content(BTreeMap<String, Sha256>);

impl Content {
    /// Parses `text` (see the [module documentation](self)).
    pub fn parse(text: &str) -> Result<Content, ContentError> {
        if !text.trim_start().starts_with('{') {
            // Parsed anyway, so that broken JSON says so rather than "not an object".
            serde_json::from_str::<de::IgnoredAny>(text).map_err(json_error)?;
            return Err(ContentError::NotAnObject);
        }
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de
            .deserialize_map(TopVisitor {
                failure: &mut failure,
            })
            .and_then(|f| de.end().map(|()| f));
        match (fields, failure) {
            (_, Some(e)) => Err(e),
            (Ok(fields), None) => Ok(Content(fields)),
            (Err(e), None) => Err(json_error(e)),
        }
    }

    /// The fields whose values differ, or that only one of the two has, in order.
    pub fn differing(&self, other: &Content) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| other.0.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        out.extend(other.0.keys().filter(|k| !self.0.contains_key(*k)).cloned());
        out.sort();
        out
    }
}

fn json_error(e: serde_json::Error) -> ContentError {
    ContentError::Json {
        detail: e.to_string(),
    }
}

/// The top level: each field's value hashed on its own.
struct TopVisitor<'f> {
    failure: &'f mut Option<ContentError>,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = BTreeMap<String, Sha256>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut value = Vec::new();
            map.next_value_seed(Canon {
                out: &mut value,
                failure: &mut *self.failure,
            })?;
            if fields.contains_key(&key) {
                *self.failure = Some(ContentError::DuplicateKey { key: key.clone() });
                return Err(de::Error::custom("duplicate key"));
            }
            fields.insert(key, Sha256::of(&value));
        }
        Ok(fields)
    }
}

/// Writes one JSON value in canonical form: a tag byte, then a length-prefixed body, so that no
/// two different values write the same bytes.
struct Canon<'o, 'f> {
    out: &'o mut Vec<u8>,
    failure: &'f mut Option<ContentError>,
}

impl Canon<'_, '_> {
    fn text(&mut self, tag: u8, text: &str) {
        self.out.push(tag);
        self.out
            .extend_from_slice(&(text.len() as u64).to_be_bytes());
        self.out.extend_from_slice(text.as_bytes());
    }

    fn number(&mut self, text: &str) {
        self.text(b'#', text);
    }
}

impl<'de> DeserializeSeed<'de> for Canon<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The largest integer an `f64` holds exactly: beyond it, `1e20` and `100000000000000000000`
/// are compared as written.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

impl<'de> Visitor<'de> for Canon<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.push(b'n');
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push(if v { b't' } else { b'f' });
        Ok(())
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.number(&v.to_string());
        Ok(())
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.number(&v.to_string());
        Ok(())
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        // An integral value written as a float (`1.0`, `1e3`) is that integer.
        if v.fract() == 0.0 && v.abs() < EXACT_F64 {
            #[allow(clippy::cast_possible_truncation)]
            let n = v as i64;
            self.number(&n.to_string());
        } else {
            self.number(&v.to_string());
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.text(b's', v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut item = Vec::new();
            let more = seq.next_element_seed(Canon {
                out: &mut item,
                failure: &mut *self.failure,
            })?;
            if more.is_none() {
                break;
            }
            items.push(item);
        }
        self.out.push(b'[');
        self.out
            .extend_from_slice(&(items.len() as u64).to_be_bytes());
        for item in items {
            self.out.extend_from_slice(&item);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut value = Vec::new();
            map.next_value_seed(Canon {
                out: &mut value,
                failure: &mut *self.failure,
            })?;
            if members.contains_key(&key) {
                *self.failure = Some(ContentError::DuplicateKey { key });
                return Err(de::Error::custom("duplicate key"));
            }
            members.insert(key, value);
        }
        self.out.push(b'{');
        self.out
            .extend_from_slice(&(members.len() as u64).to_be_bytes());
        for (key, value) in members {
            let mut key_canon = Canon {
                out: &mut *self.out,
                failure: &mut *self.failure,
            };
            key_canon.text(b'k', &key);
            self.out.extend_from_slice(&value);
        }
        Ok(())
    }
}

/// Whether CloudTrail delivers the events of `account` in `region` to `stream`:
/// `ACCOUNT_CloudTrail_REGION`, with a `_N` suffix when it needs more streams; anything before
/// it (an organization trail's id) is allowed.
pub fn stream_fits(stream: &str, account: &str, region: &str) -> bool {
    let base = format!("{account}_CloudTrail_{region}");
    let stem = match stream.rsplit_once('_') {
        Some((head, n))
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && head.ends_with(&base) =>
        {
            head
        }
        _ => stream,
    };
    stem == base || stem.ends_with(&format!("_{base}"))
}

/// The counts of one comparison, in the JSON report as `crosscheck`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrosscheckCounts {
    /// The log group.
    pub log_group: String,
    /// Only streams whose names start so were read (`--log-stream-prefix`).
    #[serde(default)]
    pub log_stream_prefix: Option<String>,
    /// Streams read.
    pub streams: usize,
    /// The range compared: events whose timestamp or `eventTime` is from `start` (included)...
    pub start: Timestamp,
    /// ... to `end` (excluded).
    pub end: Timestamp,
    /// The slack, in seconds (see the module documentation).
    pub slack_seconds: i64,
    /// Log events read from the group (the margins included).
    pub group_events: u64,
    /// Proven events (in a log file the S3 side proved) whose `eventTime` is in the range.
    pub proven_events: u64,
    /// Of those, found in the group unaltered.
    pub matched: u64,
    /// Further identical copies of a matched event in the group (CloudTrail delivers at least
    /// once): not findings.
    pub duplicates: u64,
    /// Proven events over [`MAX_CLOUDWATCH_EVENT`] absent from the group, as expected.
    pub oversized_absent: u64,
    /// Events of the range only in log files the S3 side could not prove and absent from the
    /// group, counted, not findings (their log files are findings of the S3 side; those found
    /// in the group are `not proven` findings, and not counted here: found by the red team, the
    /// summary line read as if it counted all of them).
    pub unproven_events: u64,
}

/// One proven event (or an event of an unproven log file) held for comparison.
struct ProvenItem {
    time: Timestamp,
    content: Content,
    size: usize,
    sha256: Sha256,
    /// Every log file that carried it, best verdict first.
    carriers: Vec<(S3Location, Verdict)>,
    /// Whether a group event is this one (in any stream).
    found: bool,
    /// Whether one in its own stream was counted as matched.
    counted: bool,
}

impl ProvenItem {
    fn proven(&self) -> bool {
        self.carriers.iter().any(|(_, v)| *v == Verdict::Valid)
    }

    fn log_uri(&self) -> String {
        self.carriers
            .first()
            .map(|(l, _)| l.uri())
            .unwrap_or_default()
    }

    fn fits(&self, stream: &str) -> bool {
        self.carriers.iter().any(|(l, _)| match parse_key(&l.key) {
            Ok(CloudTrailKey::Log(k)) => stream_fits(stream, &k.scope.account, &k.scope.region),
            // A log file's key always parses; nothing to hold the stream against otherwise.
            _ => true,
        })
    }
}

/// One group event held for comparison.
struct GroupItem {
    event: LogEvent,
    event_time: Option<Timestamp>,
    content: Content,
}

/// Everything held for one `eventID`.
#[derive(Default)]
struct Slot {
    proven: Vec<ProvenItem>,
    group: Vec<GroupItem>,
    /// The newest time of anything in it.
    latest: Option<Timestamp>,
}

impl Slot {
    fn touch(&mut self, t: Timestamp) {
        self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
    }
}

/// The comparison of one group with the proven events (see the [module documentation](self)).
pub struct Crosscheck {
    scope: Scope,
    slots: HashMap<String, Slot>,
    findings: Vec<Finding>,
    /// Findings kept at most; beyond, counted by kind.
    max_findings: usize,
    unlisted: BTreeMap<Kind, u64>,
    counts: CrosscheckCounts,
}

/// Findings a comparison keeps, so that a group flooded with forged events cannot make memory
/// follow the range; the rest are counted, one finding per kind saying how many.
pub const MAX_FINDINGS: usize = 100_000;

impl Crosscheck {
    /// A comparison over `scope`; `counts` starts from what the caller knows (the group, its
    /// streams).
    pub fn new(scope: Scope, counts: CrosscheckCounts) -> Self {
        Self::with_max_findings(scope, counts, MAX_FINDINGS)
    }

    /// As [`Crosscheck::new`], keeping at most `max` findings.
    pub fn with_max_findings(scope: Scope, counts: CrosscheckCounts, max: usize) -> Self {
        Crosscheck {
            max_findings: max,
            unlisted: BTreeMap::new(),
            counts: CrosscheckCounts {
                slack_seconds: scope.slack.as_secs(),
                start: scope.start,
                end: scope.end,
                log_group: scope.group.clone(),
                ..counts
            },
            scope,
            slots: HashMap::new(),
            findings: Vec::new(),
        }
    }

    fn report(&mut self, f: Finding) {
        if self.findings.len() < self.max_findings {
            self.findings.push(f);
        } else {
            *self.unlisted.entry(f.kind).or_default() += 1;
        }
    }

    fn in_range(&self, t: Timestamp) -> bool {
        self.scope.start <= t && t < self.scope.end
    }

    /// A record of the S3 side: its text as in its log file and the files that carried it (of
    /// any verdict; only a valid one makes it proven).
    pub fn push_proven(&mut self, text: &str, provenance: &Provenance) {
        let carriers: Vec<(S3Location, Verdict)> = provenance
            .carriers()
            .map(|c| (c.log.clone(), c.verdict))
            .collect();
        let first = carriers.first().map(|(l, _)| l.uri()).unwrap_or_default();
        let record = Record::parse(text);
        let time = record.as_ref().ok().and_then(|r| r.event_time);
        let id = record
            .as_ref()
            .ok()
            .and_then(|r| r.event_id.as_deref().map(str::to_owned));
        let content = Content::parse(text);
        let (Some(time), Some(id), Ok(content)) = (time, id.clone(), content.clone()) else {
            // Only a proven record can leave a hole in the comparison.
            if carriers.iter().any(|(_, v)| *v == Verdict::Valid) {
                let why = match (content, time, id) {
                    (Err(e), _, _) => e.to_string(),
                    (_, None, _) => "no eventTime in RFC 3339".to_owned(),
                    _ => "no eventID".to_owned(),
                };
                let f = Finding::new(
                    format!("{first}#{}", Sha256::of(text.as_bytes())),
                    Kind::CloudWatchUncompared,
                    format!("a proven record that could not be compared: {why}"),
                )
                .with(Evidence {
                    actual_sha256: Some(Sha256::of(text.as_bytes())),
                    named_by: Some(first),
                    ..Evidence::default()
                });
                self.report(f);
            }
            return;
        };
        let slot = self.slots.entry(id).or_default();
        slot.touch(time);
        slot.proven.push(ProvenItem {
            time,
            content,
            size: text.len(),
            sha256: Sha256::of(text.as_bytes()),
            carriers,
            found: false,
            counted: false,
        });
    }

    /// A log event read from the group.
    pub fn push_group(&mut self, event: LogEvent) {
        self.counts.group_events += 1;
        let record = Record::parse(&event.message);
        let id = record
            .as_ref()
            .ok()
            .and_then(|r| r.event_id.as_deref().map(str::to_owned));
        let event_time = record.as_ref().ok().and_then(|r| r.event_time);
        let content = Content::parse(&event.message);
        let (Some(id), Ok(content)) = (id, content.clone()) else {
            let judged =
                self.in_range(event.timestamp) || event_time.is_some_and(|t| self.in_range(t));
            if judged {
                let why = match (content, record) {
                    (Err(e), _) => e.to_string(),
                    (_, Err(e)) => e.to_string(),
                    _ => "no eventID".to_owned(),
                };
                let f = group_finding(
                    &self.scope.group,
                    &event,
                    Kind::CloudWatchInjected,
                    format!("injected in CloudWatch Logs: not a CloudTrail record ({why})"),
                    None,
                    None,
                );
                self.report(f);
            }
            return;
        };
        let slot = self.slots.entry(id).or_default();
        // Its proven copy is within the slack of its timestamp: the eventTime it claims (any
        // time at all) does not keep it waiting.
        slot.touch(event.timestamp);
        slot.group.push(GroupItem {
            event,
            event_time,
            content,
        });
    }

    /// Everything with a time before `before` has been pushed, from both sides: judges every
    /// `eventID` that can receive nothing more.
    pub fn settle(&mut self, before: Timestamp) {
        let slack = self.scope.slack;
        let mut done: Vec<(Timestamp, String)> = self
            .slots
            .iter()
            .filter_map(|(id, s)| {
                let latest = s.latest?;
                (later(latest, slack) < before).then(|| (latest, id.clone()))
            })
            .collect();
        done.sort();
        for (_, id) in done {
            if let Some(slot) = self.slots.remove(&id) {
                self.judge(&id, slot);
            }
        }
    }

    /// Judges everything still held; the findings (by time, then subject) and the counts.
    pub fn finish(mut self) -> (Vec<Finding>, CrosscheckCounts) {
        let mut rest: Vec<(String, Slot)> = self.slots.drain().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, slot) in rest {
            self.judge(&id, slot);
        }
        let mut findings = self.findings;
        findings.sort_by(|a, b| {
            (a.evidence.from, &a.subject, a.kind).cmp(&(b.evidence.from, &b.subject, b.kind))
        });
        for (kind, n) in self.unlisted {
            findings.push(Finding::new(
                format!("cloudwatch:{}:{n} more", self.scope.group),
                kind,
                format!(
                    "{n} more findings of this kind, not listed: a report lists the first {} findings",
                    self.max_findings
                ),
            ));
        }
        (findings, self.counts)
    }

    fn judge(&mut self, id: &str, mut slot: Slot) {
        let slack = self.scope.slack;
        slot.group.sort_by(|a, b| {
            (a.event.timestamp, &a.event.stream, &a.event.id).cmp(&(
                b.event.timestamp,
                &b.event.stream,
                &b.event.id,
            ))
        });
        let mut altered_any = false;
        for g in &slot.group {
            let judged =
                self.in_range(g.event.timestamp) || g.event_time.is_some_and(|t| self.in_range(t));
            let near = |p: &ProvenItem| {
                let gap = p.time.duration_since(g.event.timestamp).abs();
                gap <= slack
            };
            // The proven copy it is, else an unproven one, else any other with its eventID.
            let same = slot
                .proven
                .iter_mut()
                .filter(|p| near(p) && p.content == g.content)
                .max_by_key(|p| p.proven());
            let (kind, reason, named_by, detail) = match same {
                Some(p) if p.proven() => {
                    p.found = true;
                    if !p.fits(&g.event.stream) {
                        (
                            Kind::CloudWatchMoved,
                            "moved in CloudWatch Logs: CloudTrail does not deliver this event to this stream".to_owned(),
                            Some(p.log_uri()),
                            Some(format!("the proven log file's account and Region name the stream {}", expected_stream(p))),
                        )
                    } else {
                        if self.in_range(p.time) {
                            if p.counted {
                                self.counts.duplicates += 1;
                            } else {
                                self.counts.matched += 1;
                            }
                        }
                        p.counted = true;
                        continue;
                    }
                }
                Some(p) => {
                    p.found = true;
                    (
                        Kind::CloudWatchNotProven,
                        "in CloudWatch Logs, and only in log files the S3 side could not prove".to_owned(),
                        Some(p.log_uri()),
                        None,
                    )
                }
                None => match slot.proven.iter().filter(|p| near(p)).max_by_key(|p| p.proven()) {
                    Some(p) => {
                        altered_any = true;
                        let fields = p.content.differing(&g.content);
                        (
                            Kind::CloudWatchAltered,
                            format!(
                                "altered in CloudWatch Logs: differs from the {} record with eventID {id} in {}",
                                if p.proven() { "proven" } else { "unproven" },
                                fields.join(", ")
                            ),
                            Some(p.log_uri()),
                            None,
                        )
                    }
                    None => (
                        Kind::CloudWatchInjected,
                        format!(
                            "injected in CloudWatch Logs: no proven log file has eventID {id} with an eventTime within {} of its timestamp",
                            human(slack)
                        ),
                        None,
                        None,
                    ),
                },
            };
            if judged {
                let f = group_finding(&self.scope.group, &g.event, kind, reason, named_by, detail);
                self.report(f);
            }
        }
        for p in &slot.proven {
            if !self.in_range(p.time) {
                continue;
            }
            if !p.proven() {
                if !p.found {
                    self.counts.unproven_events += 1;
                }
                continue;
            }
            self.counts.proven_events += 1;
            if p.found || altered_any {
                // Found, or a copy with other content was reported as altered.
                continue;
            }
            if p.size > MAX_CLOUDWATCH_EVENT {
                self.counts.oversized_absent += 1;
                continue;
            }
            let log = p.log_uri();
            let f = Finding::new(
                format!("{log}#{id}"),
                Kind::CloudWatchMissing,
                "missing from CloudWatch Logs",
            )
            .with(Evidence {
                actual_sha256: Some(p.sha256),
                from: Some(p.time),
                named_by: Some(log),
                detail: Some(format!(
                    "no event with eventID {id} in log group {} within {} of its eventTime {}",
                    self.scope.group,
                    human(slack),
                    format_iso(p.time)
                )),
                ..Evidence::default()
            });
            self.report(f);
        }
    }
}

/// The stream CloudTrail names for a proven event's log file.
fn expected_stream(p: &ProvenItem) -> String {
    p.carriers
        .iter()
        .find_map(|(l, _)| match parse_key(&l.key) {
            Ok(CloudTrailKey::Log(k)) => {
                Some(format!("{}_CloudTrail_{}", k.scope.account, k.scope.region))
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// `1 h`, `15 min`, `90 s`.
fn human(d: SignedDuration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 {
        format!("{} h", s / 3600)
    } else if s % 60 == 0 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// The subject a group event is reported under: `cloudwatch:GROUP:STREAM:ID` (neither a group
/// nor a stream name can hold a `:`).
pub fn group_subject(group: &str, event: &LogEvent) -> String {
    format!("cloudwatch:{group}:{}:{}", event.stream, event.id)
}

fn group_finding(
    group: &str,
    event: &LogEvent,
    kind: Kind,
    reason: String,
    named_by: Option<String>,
    detail: Option<String>,
) -> Finding {
    let at = format!("timestamp {}", format_iso(event.timestamp));
    Finding::new(group_subject(group, event), kind, reason).with(Evidence {
        actual_sha256: Some(Sha256::of(event.message.as_bytes())),
        from: Some(event.timestamp),
        named_by,
        detail: Some(match detail {
            Some(d) => format!("{at}; {d}"),
            None => at,
        }),
        ..Evidence::default()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::records::Carrier;

    const ACCT: &str = "111122223333";
    const STREAM: &str = "111122223333_CloudTrail_us-east-1";

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn scope() -> Scope {
        Scope {
            group: "CloudTrail/logs".into(),
            start: t("2026-01-01T00:00:00Z"),
            end: t("2026-01-01T01:00:00Z"),
            slack: SignedDuration::from_mins(30),
        }
    }

    fn record(id: &str, time: &str, name: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.09","eventTime":"{time}","eventSource":"s3.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","eventID":"{id}","recipientAccountId":"{ACCT}","requestParameters":{{"bucketName":"b","n":1}}}}"#
        )
    }

    fn provenance(verdict: Verdict) -> Provenance {
        Provenance::new(Arc::new(Carrier {
            log: S3Location::new(
                "bkt",
                format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/01/01/{ACCT}_CloudTrail_us-east-1_20260101T0005Z_abcdefghijklmnop.json.gz"),
            ),
            log_sha256: Sha256([1; 32]),
            digest: None,
            verdict,
            version_id: None,
        }))
    }

    fn event(id: &str, at: &str, message: &str) -> LogEvent {
        LogEvent {
            stream: STREAM.into(),
            id: id.into(),
            timestamp: t(at),
            message: message.into(),
        }
    }

    fn run(proven: &[(&str, Verdict)], group: Vec<LogEvent>) -> (Vec<Finding>, CrosscheckCounts) {
        let mut c = Crosscheck::new(scope(), CrosscheckCounts::default());
        for (text, v) in proven {
            c.push_proven(text, &provenance(*v));
        }
        for e in group {
            c.push_group(e);
        }
        c.finish()
    }

    fn kinds(findings: &[Finding]) -> Vec<Kind> {
        findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_reserialised_copy_matches() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        // Other key order, whitespace, escapes and number spelling: the same JSON.
        let copy = r#"{ "eventID":"e1", "eventName":"Get\u004fbject", "eventTime":"2026-01-01T00:10:00Z",
            "eventSource":"s3.amazonaws.com","awsRegion":"us-east-1","eventVersion":"1.09",
            "recipientAccountId":"111122223333","requestParameters":{"n":1.0,"bucketName":"b"}}"#;
        let (findings, counts) = run(
            &[(&text, Verdict::Valid)],
            vec![event("1", "2026-01-01T00:12:00Z", copy)],
        );
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!((counts.proven_events, counts.matched), (1, 1));
    }

    #[test]
    fn an_event_no_proven_log_has_is_injected() {
        let (findings, _) = run(
            &[],
            vec![event(
                "1",
                "2026-01-01T00:12:00Z",
                &record("forged", "2026-01-01T00:10:00Z", "GetObject"),
            )],
        );
        assert_eq!(kinds(&findings), [Kind::CloudWatchInjected]);
        assert_eq!(
            findings[0].subject,
            format!("cloudwatch:CloudTrail/logs:{STREAM}:1")
        );
    }

    #[test]
    fn a_real_event_id_with_other_content_is_altered_and_names_the_fields() {
        let text = record("e1", "2026-01-01T00:10:00Z", "DeleteBucket");
        let forged = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let (findings, counts) = run(
            &[(&text, Verdict::Valid)],
            vec![event("1", "2026-01-01T00:12:00Z", &forged)],
        );
        assert_eq!(kinds(&findings), [Kind::CloudWatchAltered]);
        assert!(
            findings[0].reason.ends_with("in eventName"),
            "{}",
            findings[0].reason
        );
        // The altered copy stands for the genuine one: not also "missing".
        assert_eq!((counts.proven_events, counts.matched), (1, 0));
    }

    #[test]
    fn a_proven_event_absent_from_the_group_is_missing_unless_oversized() {
        let small = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let big = record(
            "e2",
            "2026-01-01T00:11:00Z",
            &"x".repeat(MAX_CLOUDWATCH_EVENT),
        );
        let (findings, counts) = run(&[(&small, Verdict::Valid), (&big, Verdict::Valid)], vec![]);
        assert_eq!(kinds(&findings), [Kind::CloudWatchMissing]);
        assert!(findings[0].subject.ends_with("#e1"));
        assert_eq!(counts.oversized_absent, 1);
    }

    #[test]
    fn a_message_with_a_duplicated_key_never_matches() {
        // A reader taking the first `eventName` sees DeleteBucket; one taking the last (as
        // serde_json's Value does) sees GetObject, the proven record.
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let forged = text.replacen('{', r#"{"event\u004eame":"DeleteBucket","#, 1);
        let (findings, _) = run(
            &[(&text, Verdict::Valid)],
            vec![event("1", "2026-01-01T00:12:00Z", &forged)],
        );
        assert_eq!(
            kinds(&findings),
            [Kind::CloudWatchMissing, Kind::CloudWatchInjected]
        );
        assert!(findings[1].reason.contains("given twice"));
    }

    #[test]
    fn identical_copies_are_duplicates_and_a_third_with_other_content_is_altered() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let (findings, counts) = run(
            &[(&text, Verdict::Valid)],
            vec![
                event("1", "2026-01-01T00:12:00Z", &text),
                event("2", "2026-01-01T00:13:00Z", &text),
                event(
                    "3",
                    "2026-01-01T00:14:00Z",
                    &record("e1", "2026-01-01T00:10:00Z", "PutObject"),
                ),
            ],
        );
        assert_eq!(kinds(&findings), [Kind::CloudWatchAltered]);
        assert_eq!((counts.matched, counts.duplicates), (1, 1));
    }

    #[test]
    fn an_event_in_another_accounts_stream_is_moved() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let mut moved = event("1", "2026-01-01T00:12:00Z", &text);
        moved.stream = "999999999999_CloudTrail_us-east-1".into();
        let (findings, _) = run(&[(&text, Verdict::Valid)], vec![moved]);
        assert_eq!(kinds(&findings), [Kind::CloudWatchMoved]);
    }

    #[test]
    fn a_copy_in_a_foreign_stream_beside_the_real_one_is_moved_and_the_real_one_matched() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let mut copy = event("1", "2026-01-01T00:11:00Z", &text);
        copy.stream = "999999999999_CloudTrail_us-east-1".into();
        let (findings, counts) = run(
            &[(&text, Verdict::Valid)],
            vec![copy, event("2", "2026-01-01T00:12:00Z", &text)],
        );
        assert_eq!(kinds(&findings), [Kind::CloudWatchMoved]);
        assert_eq!((counts.matched, counts.duplicates), (1, 0));
    }

    #[test]
    fn a_flood_of_forged_events_is_counted_beyond_the_findings_kept() {
        let mut c = Crosscheck::with_max_findings(scope(), CrosscheckCounts::default(), 2);
        for n in 0..5 {
            let text = record(&format!("f{n}"), "2026-01-01T00:10:00Z", "GetObject");
            c.push_group(event(&n.to_string(), "2026-01-01T00:12:00Z", &text));
        }
        // Forged eventTimes far away do not keep an event waiting.
        let far = record("f9", "9999-01-01T00:00:00Z", "GetObject");
        c.push_group(event("9", "2026-01-01T00:13:00Z", &far));
        c.settle(t("2026-01-01T00:44:00Z"));
        assert!(c.slots.is_empty());
        let (findings, _) = c.finish();
        assert_eq!(findings.len(), 3);
        assert_eq!(findings[2].kind, Kind::CloudWatchInjected);
        assert!(
            findings[2]
                .reason
                .starts_with("4 more findings of this kind"),
            "{}",
            findings[2].reason
        );
    }

    #[test]
    fn streams_named_as_cloudtrail_names_them() {
        assert!(stream_fits(STREAM, ACCT, "us-east-1"));
        assert!(stream_fits(&format!("{STREAM}_2"), ACCT, "us-east-1"));
        assert!(stream_fits(
            &format!("o-abc123_{STREAM}"),
            ACCT,
            "us-east-1"
        ));
        assert!(!stream_fits(STREAM, ACCT, "us-east-2"));
        assert!(!stream_fits(
            "x111122223333_CloudTrail_us-east-1",
            ACCT,
            "us-east-1"
        ));
        assert!(!stream_fits(
            "111122223333_CloudTrail_us-east-1_x",
            ACCT,
            "us-east-1"
        ));
    }

    #[test]
    fn events_only_in_unproven_log_files_are_not_proven_either_way() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let absent = record("e2", "2026-01-01T00:11:00Z", "GetObject");
        let (findings, counts) = run(
            &[
                (&text, Verdict::NotVerified),
                (&absent, Verdict::NotVerified),
            ],
            vec![event("1", "2026-01-01T00:12:00Z", &text)],
        );
        assert_eq!(kinds(&findings), [Kind::CloudWatchNotProven]);
        assert_eq!((counts.proven_events, counts.unproven_events), (0, 1));
    }

    #[test]
    fn the_edges_of_the_range_judge_by_timestamp_or_event_time() {
        // Stamped at the end (outside), but its eventTime is inside: judged, and forged.
        let forged = record("f1", "2026-01-01T00:59:59Z", "GetObject");
        // Stamped inside, eventTime outside: judged too.
        let forged2 = record("f2", "2026-01-01T01:10:00Z", "GetObject");
        // Neither inside: a partner only, not judged here.
        let outside = record("f3", "2026-01-01T01:10:00Z", "GetObject");
        let (findings, _) = run(
            &[],
            vec![
                event("1", "2026-01-01T01:00:00Z", &forged),
                event("2", "2026-01-01T00:59:59.999Z", &forged2),
                event("3", "2026-01-01T01:00:00Z", &outside),
            ],
        );
        assert_eq!(
            kinds(&findings),
            [Kind::CloudWatchInjected, Kind::CloudWatchInjected]
        );
        // A proven event just before the start, found just after it: matched, no finding.
        let early = record("e0", "2025-12-31T23:59:59Z", "GetObject");
        let (findings, counts) = run(
            &[(&early, Verdict::Valid)],
            vec![event("4", "2026-01-01T00:00:01Z", &early)],
        );
        assert!(findings.is_empty());
        assert_eq!((counts.proven_events, counts.matched), (0, 0));
    }

    #[test]
    fn a_copy_stamped_beyond_the_slack_is_not_the_proven_event() {
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        let (findings, _) = run(
            &[(&text, Verdict::Valid)],
            vec![event("1", "2026-01-01T00:50:00Z", &text)],
        );
        assert_eq!(
            kinds(&findings),
            [Kind::CloudWatchMissing, Kind::CloudWatchInjected]
        );
    }

    #[test]
    fn settled_event_ids_are_forgotten() {
        let mut c = Crosscheck::new(scope(), CrosscheckCounts::default());
        let text = record("e1", "2026-01-01T00:10:00Z", "GetObject");
        c.push_proven(&text, &provenance(Verdict::Valid));
        c.settle(t("2026-01-01T00:40:00Z"));
        assert_eq!(c.slots.len(), 1, "within the slack it may still be found");
        c.settle(t("2026-01-01T00:40:01Z"));
        assert!(c.slots.is_empty());
        assert_eq!(kinds(&c.findings), [Kind::CloudWatchMissing]);
    }

    #[test]
    fn not_json_or_no_event_id_is_injected() {
        let (findings, _) = run(
            &[],
            vec![
                event("1", "2026-01-01T00:12:00Z", "hello"),
                event(
                    "2",
                    "2026-01-01T00:13:00Z",
                    r#"{"eventTime":"2026-01-01T00:10:00Z"}"#,
                ),
            ],
        );
        assert_eq!(
            kinds(&findings),
            [Kind::CloudWatchInjected, Kind::CloudWatchInjected]
        );
    }

    #[test]
    fn canonical_content_tells_values_apart() {
        let c = |s: &str| Content::parse(s).unwrap();
        assert_eq!(
            c(r#"{"a":[1,"x",{"b":null}]}"#),
            c(r#"{"a":[1.0,"\u0078",{"b":null}]}"#)
        );
        assert_ne!(c(r#"{"a":[1,2]}"#), c(r#"{"a":[2,1]}"#));
        assert_ne!(c(r#"{"a":"1"}"#), c(r#"{"a":1}"#));
        assert_ne!(c(r#"{"a":["ab"]}"#), c(r#"{"a":["a","b"]}"#));
        assert_ne!(c(r#"{"a":{"b":"c"}}"#), c(r#"{"a":{"bc":""}}"#));
        assert_ne!(
            c(r#"{"a":12345678901234567890}"#),
            c(r#"{"a":12345678901234567000}"#)
        );
        assert!(matches!(
            Content::parse("[1]"),
            Err(ContentError::NotAnObject)
        ));
        assert!(matches!(
            Content::parse(r#"{"a":1}x"#),
            Err(ContentError::Json { .. })
        ));
        assert!(matches!(
            Content::parse(r#"{"a":{"b":1,"\u0062":2}}"#),
            Err(ContentError::DuplicateKey { .. })
        ));
    }
}
