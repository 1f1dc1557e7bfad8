//! Text in the style of `aws cloudtrail validate-logs`, one block per chain plus a grand total.
//!
//! Each chain block has the AWS CLI's lines and summary; what the CLI cannot find uses the same
//! `Digest file<TAB>s3://...<TAB>VERDICT: reason` shape. Everything goes to one stream, so a
//! redirected report keeps findings and summaries in order.

use std::io::{self, Write};

use jiff::Timestamp;

use super::{field, printable, ChainReport, Report, Tally};
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::ledger::Counts;
use crate::core::time::format_iso;

/// Writes the report. `verbose` adds the valid lines and finding details.
pub fn write(out: &mut dyn Write, report: &Report, verbose: bool) -> io::Result<()> {
    for chain in &report.chains {
        write_chain(out, report, chain, verbose)?;
    }
    if !report.unchained.is_empty() {
        writeln!(out, "Log files outside every digest chain:\n")?;
        let mut lines = Lines::new(verbose);
        for f in &report.unchained {
            lines.finding(out, f, "")?;
        }
        lines.close(out)?;
    }
    let t = report.totals();
    let hours = report.ledger_counts();
    writeln!(
        out,
        "Total for {} ({} chain{}, {} to {}):",
        printable(&report.source),
        report.chains.len(),
        if report.chains.len() == 1 { "" } else { "s" },
        format_iso(report.range.start),
        format_iso(report.range.end)
    )?;
    write_tally(out, t.digests, "digest")?;
    write_tally(out, t.logs, "log")?;
    if t.coverage_findings > 0 {
        write!(
            out,
            "\n{} gap or coverage finding{}",
            t.coverage_findings,
            if t.coverage_findings == 1 { "" } else { "s" }
        )?;
    }
    if hours.total() > 0 {
        write!(out, "\n{}", ledger_line(&hours))?;
    }
    if let Some(line) = report.retention.describe() {
        write!(out, "\n{}", printable(&line))?;
    }
    writeln!(out, "\n")?;
    for note in &report.notes {
        writeln!(out, "Note: {}", printable(note))?;
    }
    let problems = report.problems();
    if report.exit_code() == 0 && problems.is_empty() {
        return writeln!(
            out,
            "RESULT: every object in range is valid and every hour of the range is proven"
        );
    }
    let kinds: Vec<&str> = problems.iter().map(|p| p.describe()).collect();
    let kinds = if kinds.is_empty() {
        "see above".to_owned()
    } else {
        kinds.join(", ")
    };
    writeln!(out, "RESULT: integrity findings: {kinds}")
}

fn write_chain(
    out: &mut dyn Write,
    report: &Report,
    chain: &ChainReport,
    verbose: bool,
) -> io::Result<()> {
    let c = &chain.chain;
    writeln!(
        out,
        "Validating log files for trail {} between {} and {}",
        c.trail_arn,
        format_iso(report.range.start),
        format_iso(report.range.end)
    )?;
    let mut scope = format!("account {}, source Region {}", c.account, c.region);
    if let Some(org) = &c.organization {
        scope.push_str(&format!(", organization {org}"));
    }
    if !c.prefix.is_empty() {
        scope.push_str(&format!(", prefix {}", c.prefix));
    }
    if c.backfill {
        scope.push_str(", backfill digests");
    }
    writeln!(out, "({scope})\n")?;

    let prefix = if c.backfill { "(backfill) " } else { "" };
    let mut lines = Lines::new(verbose);
    for f in &chain.findings {
        lines.finding(out, f, prefix)?;
    }
    lines.close(out)?;

    writeln!(
        out,
        "Results requested for {} to {}",
        format_iso(report.range.start),
        format_iso(report.range.end)
    )?;
    let totals = chain.totals();
    if totals.digests.total() == 0 {
        writeln!(out, "No digests found")?;
        if let Some(l) = &chain.ledger {
            writeln!(out, "{}", ledger_line(&l.counts))?;
        }
        return writeln!(out);
    }
    match found_period(&chain.findings, report.range.start, report.range.end) {
        Some((from, to)) => writeln!(
            out,
            "Results found for {} to {}:",
            format_iso(from),
            format_iso(to)
        )?,
        None => writeln!(out, "No valid digests found in range")?,
    }
    write_tally(
        out,
        totals.digests,
        if c.backfill {
            "backfill digest"
        } else {
            "digest"
        },
    )?;
    write_tally(out, totals.logs, "log")?;
    if let Some(l) = &chain.ledger {
        write!(out, "\n{}", ledger_line(&l.counts))?;
    }
    writeln!(out, "\n")
}

/// The AWS CLI's "Results found" period: the valid digests' windows, clipped to the range.
fn found_period(
    findings: &[Finding],
    start: Timestamp,
    end: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let valid = findings.iter().filter(|f| f.kind == Kind::DigestValid);
    let from = valid
        .clone()
        .filter_map(|f| f.evidence.from)
        .map(|t| t.max(start))
        .min()?;
    let to = valid
        .filter_map(|f| f.evidence.to)
        .map(|t| t.min(end))
        .max()?;
    Some((from, to))
}

fn write_tally(out: &mut dyn Write, t: Tally, name: &str) -> io::Result<()> {
    let total = t.total();
    if total == 0 {
        return Ok(());
    }
    write!(out, "\n{}/{total} {name} files valid", t.valid)?;
    if t.invalid > 0 {
        write!(out, ", {}/{total} {name} files INVALID", t.invalid)?;
    }
    if t.not_verified > 0 {
        write!(
            out,
            ", {}/{total} {name} files NOT VERIFIED",
            t.not_verified
        )?;
    }
    Ok(())
}

/// A finding's reason and every further reason its object is not valid: one line per object.
fn reasons(f: &Finding) -> String {
    let mut text = f.reason.clone();
    for r in &f.also {
        text.push_str("; ");
        text.push_str(&r.reason);
    }
    text
}

/// `ledger: N verified, ... of H hours`, the same counts as the JSON report's `ledger`.
fn ledger_line(counts: &Counts) -> String {
    format!(
        "ledger: {} verified, {} verified-empty, {} gap, {} missing, {} invalid, {} not-verified of {} hour{}",
        counts.verified,
        counts.verified_empty,
        counts.gap,
        counts.missing,
        counts.invalid,
        counts.not_verified,
        counts.total(),
        if counts.total() == 1 { "" } else { "s" }
    )
}

/// The AWS CLI's spacing: a problem line is followed by a blank line, and preceded by one when
/// a valid line came just before it.
struct Lines {
    verbose: bool,
    last_was_blank: bool,
}

impl Lines {
    fn new(verbose: bool) -> Self {
        Lines {
            verbose,
            last_was_blank: true,
        }
    }

    fn finding(&mut self, out: &mut dyn Write, f: &Finding, prefix: &str) -> io::Result<()> {
        let object = match f.object() {
            ObjectKind::Digest => "Digest file",
            ObjectKind::Log => "Log file",
            ObjectKind::QuerySign => "Sign file",
            ObjectKind::QueryResult => "Query result file",
            ObjectKind::CloudWatchEvent => "CloudWatch event",
        };
        let line = match (f.kind, f.verdict) {
            (_, Verdict::Valid) => {
                if self.verbose {
                    writeln!(
                        out,
                        "{prefix}{object}\t{}\tvalid",
                        printable(&field(&f.subject))
                    )?;
                    self.last_was_blank = false;
                }
                return Ok(());
            }
            (Kind::ChainGap, _) => format!("{prefix}{}", field(&f.reason)),
            (Kind::DigestSuccessorMissing, _) => format!(
                "{prefix}{object}\tafter {}\tINVALID: not found; {}",
                field(&f.subject),
                field(&f.reason)
            ),
            (Kind::CoverageStart | Kind::CoverageEnd | Kind::CoverageHole, _) => format!(
                "{prefix}Coverage\t{}\tNOT VERIFIED: {}",
                field(&f.subject),
                field(&f.reason)
            ),
            (_, Verdict::NotVerified) => format!(
                "{prefix}{object}\t{}\tNOT VERIFIED: {}",
                field(&f.subject),
                field(&reasons(f))
            ),
            (_, Verdict::Invalid | Verdict::Missing) => format!(
                "{prefix}{object}\t{}\tINVALID: {}",
                field(&f.subject),
                field(&reasons(f))
            ),
        };
        if !self.last_was_blank {
            writeln!(out)?;
        }
        writeln!(out, "{}", printable(&line))?;
        if let Some(v) = &f.versions {
            writeln!(out, "\t{}", printable(&v.describe()))?;
        }
        if self.verbose {
            if let Some(d) = &f.evidence.detail {
                writeln!(out, "\t{}", printable(d))?;
            }
        }
        writeln!(out)?;
        self.last_was_blank = true;
        Ok(())
    }

    fn close(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if !self.last_was_blank {
            writeln!(out)?;
        }
        self.last_was_blank = true;
        Ok(())
    }
}
