//! Output of `aws cloudtrail validate-logs`, line for line, for `trailproof validate-logs`.
//!
//! Valid lines (with `--verbose`) and the summary go to stdout, problems to stderr followed by
//! a blank line, with the AWS CLI's spacing rules. Lines come in the CLI's order: a digest, its
//! log files, then what the walk found on the way to the previous digest (a missing digest, a
//! gap). What trailproof finds beyond the CLI (link checks, every missing digest, injected
//! files, gzip problems) uses the same line shape. Coverage notes are left out: the CLI's
//! default end time is "now", whose last hour is never digested yet.

use std::io::{self, Write};

use jiff::Timestamp;

use super::{field, printable, Report};
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::time::format_iso;

/// How a run ends, in the AWS CLI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// 0 all valid, 1 anything invalid, 2 an object could not be read.
    pub exit_code: u8,
}

/// Writes the whole output. `start`/`end` are the requested range as the CLI prints it.
pub fn write(
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    report: &Report,
    trail_arn: &str,
    start: Timestamp,
    end: Timestamp,
    verbose: bool,
) -> io::Result<Outcome> {
    writeln!(
        stdout,
        "Validating log files for trail {trail_arn} between {} and {}\n",
        format_iso(start),
        format_iso(end)
    )?;
    let mut w = Writer {
        stdout,
        stderr,
        verbose,
        last_double_space: true,
    };
    let seen = w.findings(report, start, end)?;
    if !w.last_double_space {
        writeln!(w.stdout)?;
    }
    summary(&mut *w.stdout, &seen, start, end)?;
    let counts = &seen.counts;
    let invalid = counts.digests.1 + counts.backfill.1 + counts.logs.1;
    let exit_code = if seen.unreadable {
        2
    } else if invalid > 0 {
        1
    } else {
        0
    };
    Ok(Outcome { exit_code })
}

/// What the finding lines counted, for the summary and the exit status.
#[derive(Default)]
struct Seen {
    counts: Counts,
    /// The span of the valid digests' windows within the range: the CLI's "Results found".
    found: Option<(Timestamp, Timestamp)>,
    /// Whether an object could not be read (exit status 2).
    unreadable: bool,
}

/// The CLI's closing lines: the range asked for, the range found, and the ratios.
fn summary(out: &mut dyn Write, seen: &Seen, start: Timestamp, end: Timestamp) -> io::Result<()> {
    writeln!(
        out,
        "Results requested for {} to {}",
        format_iso(start),
        format_iso(end)
    )?;
    let counts = &seen.counts;
    let digests_seen = counts.digests.0 + counts.digests.1 + counts.backfill.0 + counts.backfill.1;
    if digests_seen == 0 {
        return writeln!(out, "No digests found");
    }
    match seen.found {
        Some((a, b)) => writeln!(
            out,
            "Results found for {} to {}:",
            format_iso(a),
            format_iso(b)
        )?,
        None => writeln!(out, "No valid digests found in range")?,
    }
    ratio(out, counts.digests, "digest")?;
    ratio(out, counts.backfill, "backfill digest")?;
    ratio(out, counts.logs, "log")?;
    writeln!(out)
}

/// The CLI's order: each digest, its log files, then what it met on the way to the previous
/// digest. The report keeps the latter with the digest, before its log files.
fn cli_order(findings: &[Finding]) -> Vec<&Finding> {
    let mut out = Vec::with_capacity(findings.len());
    let mut after: Vec<&Finding> = Vec::new();
    let mut current: Option<&str> = None;
    for f in findings {
        if comes_after_logs(f.kind) {
            after.push(f);
            continue;
        }
        if f.object() == ObjectKind::Digest && current != Some(f.subject.as_str()) {
            out.append(&mut after);
            current = Some(f.subject.as_str());
        }
        out.push(f);
    }
    out.append(&mut after);
    out
}

/// Findings the CLI reports when it moves on from a digest, after that digest's log files.
fn comes_after_logs(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::DigestMissing
            | Kind::DigestSuccessorMissing
            | Kind::ChainGap
            | Kind::DigestLinkOtherBucket
            | Kind::DigestLinkOutsideChain
    )
}

fn home_region(arn: &str) -> String {
    arn.split(':').nth(3).unwrap_or_default().to_owned()
}

fn ratio(out: &mut dyn Write, (valid, invalid): (usize, usize), name: &str) -> io::Result<()> {
    let total = valid + invalid;
    if total > 0 {
        write!(out, "\n{valid}/{total} {name} files valid")?;
        if invalid > 0 {
            write!(out, ", {invalid}/{total} {name} files INVALID")?;
        }
    }
    Ok(())
}

/// (valid, invalid) per kind of file.
#[derive(Default)]
struct Counts {
    digests: (usize, usize),
    backfill: (usize, usize),
    logs: (usize, usize),
}

struct Writer<'a> {
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    verbose: bool,
    last_double_space: bool,
}

impl Writer<'_> {
    /// The line of every finding, chain by chain in the CLI's order, then those outside every
    /// chain; counts what the summary needs.
    fn findings(&mut self, report: &Report, start: Timestamp, end: Timestamp) -> io::Result<Seen> {
        let mut seen = Seen::default();
        for chain in &report.chains {
            let prefix = if chain.chain.backfill {
                "(backfill) "
            } else {
                ""
            };
            let home = home_region(&chain.chain.trail_arn);
            for f in cli_order(&chain.findings) {
                seen.unreadable |= matches!(f.kind, Kind::DigestUnreadable | Kind::LogUnreadable);
                if f.kind == Kind::DigestValid {
                    if let (Some(from), Some(to)) = (f.evidence.from, f.evidence.to) {
                        let (from, to) = (from.max(start), to.min(end));
                        seen.found = Some(
                            seen.found
                                .map_or((from, to), |(a, b)| (a.min(from), b.max(to))),
                        );
                    }
                }
                self.finding(f, prefix, &home, &mut seen.counts, chain.chain.backfill)?;
            }
            seen.counts.logs.0 += chain.omitted_valid_logs;
        }
        for f in &report.unchained {
            self.finding(f, "", "", &mut seen.counts, false)?;
        }
        Ok(seen)
    }

    fn finding(
        &mut self,
        f: &Finding,
        prefix: &str,
        home: &str,
        counts: &mut Counts,
        backfill: bool,
    ) -> io::Result<()> {
        let digests = if backfill {
            &mut counts.backfill
        } else {
            &mut counts.digests
        };
        let line = match (f.kind, f.verdict) {
            (Kind::DigestValid, _) => {
                digests.0 += 1;
                return self.status(&format!(
                    "{prefix}Digest file\t{}\tvalid",
                    field(&f.subject)
                ));
            }
            (Kind::LogValid, _) => {
                counts.logs.0 += 1;
                return self.status(&format!("Log file\t{}\tvalid", field(&f.subject)));
            }
            // The CLI prints nothing for the log files of a digest it could not validate, and
            // has no notion of coverage.
            (
                Kind::LogUnverifiable
                | Kind::CoverageStart
                | Kind::CoverageEnd
                | Kind::CoverageHole,
                _,
            ) => return Ok(()),
            (Kind::ChainGap, _) => format!("{prefix}{}", f.reason),
            (Kind::DigestSuccessorMissing, _) => {
                digests.1 += 1;
                format!(
                    "{prefix}Digest file\tafter {}\tINVALID: not found; {}",
                    field(&f.subject),
                    field(&f.reason)
                )
            }
            (Kind::DigestLinkOtherBucket | Kind::DigestLinkOutsideChain, _) => {
                format!(
                    "{prefix}Digest file\t{}\tINVALID: {}",
                    field(&f.subject),
                    field(&f.reason)
                )
            }
            (_, Verdict::Valid) => return Ok(()),
            (kind, _) if f.object() == ObjectKind::Digest => {
                digests.1 += 1;
                let reason = match kind {
                    // The CLI names the trail's home Region here.
                    Kind::DigestKeyUnknown => format!(
                        "public key not found in region {home} for fingerprint {}",
                        f.evidence
                            .fingerprint
                            .as_ref()
                            .map(|fp| fp.as_str())
                            .unwrap_or_default()
                    ),
                    // S3 always carries CloudTrail's signature: without it the CLI fails too.
                    Kind::DigestSignatureUnavailable => "signature verification failed".to_owned(),
                    _ => f.reason.clone(),
                };
                format!(
                    "{prefix}Digest file\t{}\tINVALID: {}",
                    field(&f.subject),
                    field(&reason)
                )
            }
            _ => {
                counts.logs.1 += 1;
                format!(
                    "Log file\t{}\tINVALID: {}",
                    field(&f.subject),
                    field(&f.reason)
                )
            }
        };
        match &f.versions {
            // What the bucket's versions hold, on the same line: scripts read one line per
            // object.
            Some(v) => self.error(&format!("{line}; {}", v.describe())),
            None => self.error(&line),
        }
    }

    fn status(&mut self, line: &str) -> io::Result<()> {
        if self.verbose {
            writeln!(self.stdout, "{}", printable(line))?;
            self.last_double_space = false;
        }
        Ok(())
    }

    fn error(&mut self, line: &str) -> io::Result<()> {
        if self.last_double_space {
            write!(self.stderr, "{}\n\n", printable(line))?;
        } else {
            write!(self.stderr, "\n{}\n\n", printable(line))?;
        }
        self.last_double_space = true;
        Ok(())
    }
}
