//! `crosscheck cloudwatch`: a CloudWatch Logs group compared with the events a run proves.
//!
//! In order:
//!
//! 1. the group's streams are listed (a wrong group name stops the run before any work);
//! 2. the S3 side is verified as [`super::verify`] does, over the range widened by the slack
//!    before and twice the slack after (events near the edges are delivered after them), and
//!    its records are taken, sorted by `eventTime` ([`super::events::verify_and_export`], with
//!    the records of unproven log files too, so that an event found only there is said so
//!    rather than called injected);
//! 3. the range, widened by the slack either side, is cut into windows; the group is read a
//!    batch of windows at a time (every window of the batch and every chunk of 100 streams
//!    one FilterLogEvents answer, all in flight at once), and, window by window, its events and
//!    the records whose `eventTime` falls before the window's end are pushed into the
//!    comparison ([`crate::core::cloudwatch`]), which judges every `eventID` that can receive
//!    nothing more.
//!
//! # Memory
//!
//! Bounded by the time window, not the range: the events of one batch of windows, plus what
//! the comparison holds (the events of the last slack), plus the sort's budget on the S3 side
//! (it spills to temporary files beyond it). Findings are kept for the report, at most
//! [`crate::core::cloudwatch::MAX_FINDINGS`] (beyond, counted by kind).
//!
//! # What the report says
//!
//! The report is the S3 side's (chains, ledger, log-file findings: a tampered log file makes
//! the run fail however the group compares) with the comparison's findings added to its
//! `unchained` findings and its counts as `crosscheck`. Exit status 0 therefore needs every
//! object and hour of the S3 side proven and every event of the range to agree.
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};

use super::events::{verify_and_export, ExportError, ExportOptions, Order, VerifiedRecords};
use super::{EngineError, Settings};
use crate::core::cloudwatch::{Crosscheck, CrosscheckCounts, Scope};
use crate::core::finding::{Evidence, Finding, Kind};
use crate::core::records::{LeftOutReason, Record};
use crate::core::time::{earlier, format_iso, later};
use crate::engine::events::ExportedRecord;
use crate::report::Report;
use crate::source::cloudwatch::{LogGroup, Window};
use crate::source::progress::Observer;
use crate::source::{KeyProvider, ObjectSource, SourceError};

/// What to compare, and how.
#[derive(Debug, Clone)]
pub struct CrosscheckParams {
    /// The range: events whose timestamp or `eventTime` is at or after this...
    pub start: Timestamp,
    /// ... and before this.
    pub end: Timestamp,
    /// How far a group event's timestamp may be from its `eventTime`.
    pub slack: SignedDuration,
    /// Only the streams whose names start so.
    pub stream_prefix: Option<String>,
    /// The length of one window read from the group.
    pub window: SignedDuration,
    /// Windows read at once.
    pub windows_in_flight: usize,
    /// Bytes of records the S3 side's sort holds before it spills.
    pub sort_memory: usize,
    /// Where the sort spills.
    pub temp_dir: PathBuf,
}

impl CrosscheckParams {
    /// A comparison of `start` to `end` with a slack of one hour, windows of 15 minutes four at
    /// a time, and the S3 side's sort spilling beyond 64 MiB to the system's temporary folder.
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        CrosscheckParams {
            start,
            end,
            slack: SignedDuration::from_hours(1),
            stream_prefix: None,
            window: SignedDuration::from_mins(15),
            windows_in_flight: 4,
            sort_memory: 64 << 20,
            temp_dir: std::env::temp_dir(),
        }
    }
}

/// Why the comparison could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrosscheckError {
    /// The S3 side could not be verified.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The log group could not be read.
    #[error("log group {group}: {source}")]
    Group {
        /// The group.
        group: String,
        /// Why.
        source: SourceError,
    },
    /// The S3 side's records could not be sorted.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The range is empty, or a window or the slack is not positive.
    #[error("the range {start} to {end}, with a window of {window} and a slack of {slack}, cannot be compared: the start must be before the end, the window and slack longer than zero")]
    BadRange {
        /// The start, ISO 8601.
        start: String,
        /// The end, ISO 8601.
        end: String,
        /// The window.
        window: String,
        /// The slack.
        slack: String,
    },
}

/// Compares `group` with the events `source` proves (see the [module documentation](self));
/// `settings` select the S3 side's chains (their range is replaced by the comparison's).
pub fn crosscheck_cloudwatch(
    source: &dyn ObjectSource,
    keys: &dyn KeyProvider,
    settings: &Settings,
    group: &dyn LogGroup,
    params: &CrosscheckParams,
    observer: &dyn Observer,
) -> Result<Report, CrosscheckError> {
    let zero = SignedDuration::ZERO;
    if params.start >= params.end || params.window <= zero || params.slack <= zero {
        return Err(CrosscheckError::BadRange {
            start: format_iso(params.start),
            end: format_iso(params.end),
            window: format!("{:#}", params.window),
            slack: format!("{:#}", params.slack),
        });
    }
    let group_error = |source| CrosscheckError::Group {
        group: group.name().to_owned(),
        source,
    };
    let streams = group
        .streams(params.stream_prefix.as_deref())
        .map_err(group_error)?;
    let from = earlier(params.start, params.slack);
    let to = later(params.end, params.slack);
    let s3_settings = Settings {
        start: Some(from),
        end: Some(later(to, params.slack)),
        ..settings.clone()
    };
    let options = ExportOptions {
        include_unverified: true,
        order: Order::Sorted {
            memory: params.sort_memory,
            temp_dir: params.temp_dir.clone(),
        },
        ..ExportOptions::default()
    };
    let (mut report, mut records) =
        verify_and_export(source, keys, &s3_settings, options, None, observer)?;
    let mut check = Crosscheck::new(
        Scope {
            group: group.name().to_owned(),
            start: params.start,
            end: params.end,
            slack: params.slack,
        },
        CrosscheckCounts {
            log_stream_prefix: params.stream_prefix.clone(),
            streams: streams.len(),
            ..CrosscheckCounts::default()
        },
    );
    // The first record is asked for at once: the sort reads every log file then, so what it
    // left out is known whatever follows.
    let mut next = records.next().transpose()?;
    let windows = windows(from, to, params.window);
    for batch in windows.chunks(params.windows_in_flight.max(1)) {
        let read = if streams.is_empty() {
            batch.iter().map(|_| Vec::new()).collect()
        } else {
            group.read(&streams, batch).map_err(group_error)?
        };
        for (window, events) in batch.iter().zip(read) {
            for e in events {
                check.push_group(e);
            }
            next = push_records_before(&mut check, &mut records, next, from, window.1)?;
            check.settle(window.1);
        }
    }
    // Files the S3 side judged (invalid, not proven) are its findings already; the others
    // were proven and still gave no records.
    let left_out: Vec<(LeftOutReason, u64)> = records
        .stats()
        .left_out
        .iter()
        .filter(|(r, _)| !matches!(r, LeftOutReason::Judged(_)))
        .collect();
    drop(records);
    let (mut findings, counts) = check.finish();
    let total: u64 = left_out.iter().map(|(_, n)| n).sum();
    if total > 0 {
        let reasons: Vec<String> = left_out.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        findings.push(
            Finding::new(
                format!("cloudwatch:{}", group.name()),
                Kind::CloudWatchUncompared,
                format!(
                    "the records of {total} proven log files could not be read for the comparison"
                ),
            )
            .with(Evidence {
                detail: Some(reasons.join(", ")),
                ..Evidence::default()
            }),
        );
    }
    report.notes.push(format!(
        "crosscheck cloudwatch: the events of log group {} with a timestamp or eventTime from {} to {} were compared, as parsed JSON, with the records of the log files this run proves; the S3 side was verified from {} to {} so that events near the edges find their copies",
        group.name(),
        format_iso(params.start),
        format_iso(params.end),
        format_iso(from),
        format_iso(later(to, params.slack)),
    ));
    report.notes.push(
        "CloudWatch Logs signs nothing: a match shows that the group holds exactly the proven events of the range, not who wrote them; events outside the range, and streams outside --log-stream-prefix, were not judged".to_owned(),
    );
    report.unchained.extend(findings);
    report.crosscheck = Some(counts);
    Ok(report)
}

/// Pushes the records (starting with `next`) whose `eventTime` is before `before`, skipping
/// those before `from`; answers the first record not pushed.
fn push_records_before(
    check: &mut Crosscheck,
    records: &mut VerifiedRecords<'_>,
    mut next: Option<ExportedRecord>,
    from: Timestamp,
    before: Timestamp,
) -> Result<Option<ExportedRecord>, ExportError> {
    while let Some(record) = next {
        let time = Record::parse(&record.text).ok().and_then(|r| r.event_time);
        match time {
            Some(t) if t >= before => return Ok(Some(record)),
            Some(t) if t < from => {}
            // Without an eventTime (sorted first) it cannot be placed: the comparison says so.
            _ => check.push_proven(&record.text, &record.provenance),
        }
        next = records.next().transpose()?;
    }
    Ok(None)
}

/// `from` to `to` in windows of `length` (the last one shorter).
fn windows(from: Timestamp, to: Timestamp, length: SignedDuration) -> Vec<Window> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = later(start, length).min(to);
        out.push((start, end));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_once() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let w = windows(
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:40:00Z"),
            SignedDuration::from_mins(15),
        );
        assert_eq!(
            w,
            [
                (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:15:00Z")),
                (t("2026-01-01T00:15:00Z"), t("2026-01-01T00:30:00Z")),
                (t("2026-01-01T00:30:00Z"), t("2026-01-01T00:40:00Z")),
            ]
        );
    }
}
