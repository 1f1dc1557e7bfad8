//! The text output of `crosscheck cloudwatch`.
//!
//! ```text
//! Crosscheck of log group GROUP (N streams) with the proven events of SOURCE
//! Events with a timestamp or eventTime from START to END; a copy may be stamped up to N min from its eventTime
//!
//! CloudWatch event<TAB>cloudwatch:GROUP:STREAM:ID<TAB>INVALID: injected in CloudWatch Logs: ...
//! <TAB>timestamp ...; proven copy in s3://...
//!
//! Log file<TAB>s3://...<TAB>INVALID: hash value doesn't match     (the S3 side's findings)
//!
//! S3 side: C chains, START to END: D/D digest files valid, L/L log files valid; ledger: ...
//! CloudWatch Logs: E events read; P proven events in range, M found unaltered, ...
//! Findings: I injected, M missing, A altered, V moved, U not proven, X not compared
//! RESULT: the log group matches the proven events of the range
//! ```
//!
//! One line per finding that is not valid (CloudWatch events first, by time, then the S3
//! side's), each followed by a tab-indented line of details for a CloudWatch event (the S3
//! side's details with `verbose`). The result line is `RESULT: the log group matches the
//! proven events of the range` only when the exit status is 0; otherwise it names what does
//! not match. Subjects and reasons come from the evidence and are printed with control
//! characters escaped.
use std::io::{self, Write};

use super::{field, printable, Report, Tally};
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::time::format_iso;

/// Writes the text of a `crosscheck cloudwatch` report.
pub fn write(out: &mut dyn Write, report: &Report, verbose: bool) -> io::Result<()> {
    let counts = report.crosscheck.clone().unwrap_or_default();
    let cloudwatch = |f: &&Finding| f.object() == ObjectKind::CloudWatchEvent;
    writeln!(
        out,
        "Crosscheck of log group {} ({} stream{}{}) with the proven events of {}",
        printable(&counts.log_group),
        counts.streams,
        if counts.streams == 1 { "" } else { "s" },
        match &counts.log_stream_prefix {
            Some(p) => format!(" starting {}", printable(p)),
            None => String::new(),
        },
        printable(&report.source)
    )?;
    writeln!(
        out,
        "Events with a timestamp or eventTime from {} to {}; a copy may be stamped up to {} from its eventTime\n",
        format_iso(counts.start),
        format_iso(counts.end),
        match counts.slack_seconds {
            s if s % 60 == 0 => format!("{} min", s / 60),
            s => format!("{s} s"),
        }
    )?;
    for f in report.unchained.iter().filter(cloudwatch) {
        line(out, f, true)?;
    }
    for f in report
        .all_findings()
        .filter(|f| !cloudwatch(f) && f.verdict != Verdict::Valid)
    {
        line(out, f, verbose)?;
    }
    let totals = report.totals();
    let hours = report.ledger_counts();
    writeln!(
        out,
        "S3 side: {} chain{}, {} to {}: {}, {}; ledger: {} verified, {} verified-empty, {} gap, {} missing, {} invalid, {} not-verified of {} hours",
        report.chains.len(),
        if report.chains.len() == 1 { "" } else { "s" },
        format_iso(report.range.start),
        format_iso(report.range.end),
        tally(totals.digests, "digest"),
        tally(totals.logs, "log"),
        hours.verified,
        hours.verified_empty,
        hours.gap,
        hours.missing,
        hours.invalid,
        hours.not_verified,
        hours.total()
    )?;
    writeln!(
        out,
        "CloudWatch Logs: {} events read; {} proven events in range, {} found unaltered, {} further identical copies, {} over 256 KB absent as expected, {} absent and only in log files the S3 side could not prove",
        counts.group_events,
        counts.proven_events,
        counts.matched,
        counts.duplicates,
        counts.oversized_absent,
        counts.unproven_events
    )?;
    let n = |kind: Kind| report.unchained.iter().filter(|f| f.kind == kind).count();
    let found = [
        (n(Kind::CloudWatchInjected), "injected"),
        (n(Kind::CloudWatchMissing), "missing"),
        (n(Kind::CloudWatchAltered), "altered"),
        (n(Kind::CloudWatchMoved), "moved"),
        (n(Kind::CloudWatchNotProven), "not proven"),
        (n(Kind::CloudWatchUncompared), "not compared"),
    ];
    let listed: Vec<String> = found.iter().map(|(k, w)| format!("{k} {w}")).collect();
    writeln!(out, "Findings: {}", listed.join(", "))?;
    for note in &report.notes {
        if verbose {
            writeln!(out, "Note: {}", printable(note))?;
        }
    }
    if report.exit_code() == 0 {
        return writeln!(
            out,
            "RESULT: the log group matches the proven events of the range"
        );
    }
    let mut problems: Vec<String> = found
        .iter()
        .filter(|(k, _)| *k > 0)
        .map(|(_, w)| format!("{w} events"))
        .collect();
    if report
        .all_findings()
        .any(|f| !cloudwatch(&f) && f.verdict != Verdict::Valid)
        || !report.ledgers().all(|l| l.is_proven())
    {
        problems.push("findings on the S3 side (`trailproof verify` gives its full report)".into());
    }
    writeln!(
        out,
        "RESULT: the log group does not match the proven events: {}",
        problems.join(", ")
    )
}

fn tally(t: Tally, name: &str) -> String {
    let mut s = format!("{}/{} {name} files valid", t.valid, t.total());
    if t.invalid > 0 {
        s.push_str(&format!(", {} INVALID", t.invalid));
    }
    if t.not_verified > 0 {
        s.push_str(&format!(", {} NOT VERIFIED", t.not_verified));
    }
    s
}

fn line(out: &mut dyn Write, f: &Finding, details: bool) -> io::Result<()> {
    let object = match f.object() {
        ObjectKind::Digest => "Digest file",
        ObjectKind::Log => "Log file",
        ObjectKind::QuerySign => "Sign file",
        ObjectKind::QueryResult => "Query result file",
        ObjectKind::CloudWatchEvent => "CloudWatch event",
    };
    let verdict = match f.verdict {
        Verdict::NotVerified => "NOT VERIFIED",
        _ => "INVALID",
    };
    writeln!(
        out,
        "{}",
        printable(&format!(
            "{object}\t{}\t{verdict}: {}",
            field(&f.subject),
            field(&f.reason)
        ))
    )?;
    if details {
        let mut more: Vec<String> = f.evidence.detail.iter().cloned().collect();
        // A missing event's subject names its log file already.
        if let Some(log) = f
            .evidence
            .named_by
            .as_ref()
            .filter(|l| !f.subject.starts_with(*l))
        {
            more.push(format!("the S3 side's record in {log}"));
        }
        if !more.is_empty() {
            writeln!(out, "\t{}", printable(&more.join("; ")))?;
        }
    }
    writeln!(out)
}
