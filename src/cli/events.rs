//! `trailproof events SOURCE`: the CloudTrail records of the log files a run proves, with
//! their provenance, as JSONL, Timesketch JSONL or Parquet.
//!
//! The run verifies as `verify` does (the same engine, settings and exit status); the records
//! come from [`trailproof::engine::events`], taken from the bytes the run hashes and proves.

use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use jiff::Timestamp;

use trailproof::core::records::{EventFilter, Glob};
use trailproof::engine::events::{
    verify_and_export, ExportOptions, ExportStats, ExportedRecord, Order,
};
use trailproof::engine::Settings;
use trailproof::report::records::{Jsonl, Parquet, RecordWriter, Timesketch, WriteError};
use trailproof::source::{KeyProvider, ObjectSource};

use super::error::CliError;
use super::output_file::{new_exclusive, remove_unfinished, unfinished, Destination};
use super::progress::Bars;
use super::{parse_threads, parse_time, EvidenceArgs};

/// Memory the sort holds before it spills a run to a temporary file.
const SORT_BUDGET: usize = 64 << 20;

// Described in `--format`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    Jsonl,
    Timesketch,
    Parquet,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// s3://BUCKET[/PREFIX], or a directory holding each object at DIR/KEY (its S3 key).
    pub source: String,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// Only records whose eventTime is at or after TIME (eventTime, not delivery time).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub event_time_from: Option<Timestamp>,
    /// Only records whose eventTime is at or before TIME.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub event_time_to: Option<Timestamp>,
    /// Only records with this eventName (repeatable: any of them).
    #[arg(long = "event-name", value_name = "NAME")]
    pub event_names: Vec<String>,
    /// Only records with this eventSource (repeatable: any of them).
    #[arg(long = "event-source", value_name = "SOURCE")]
    pub event_sources: Vec<String>,
    /// Only records whose userIdentity.arn matches this glob (`*`, `?`; repeatable: any).
    #[arg(long = "user-arn", value_name = "GLOB")]
    pub user_arns: Vec<String>,
    /// Only records with an errorCode.
    #[arg(long)]
    pub errors_only: bool,
    /// Only records whose readOnly is this.
    #[arg(long, value_name = "BOOL")]
    pub read_only: Option<bool>,
    /// Also write the records of log files that are not proven (not referenced by any digest,
    /// signature unavailable), with their verdict. Never those of invalid files.
    #[arg(long)]
    pub include_unverified: bool,
    /// Write records as their files are proven instead of sorted by (eventTime, eventID).
    #[arg(long)]
    pub unsorted: bool,
    /// Worker threads for verification (default: one per core).
    /// At most 1024: each is a thread of the system's.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// jsonl: each record unchanged plus its provenance under "trailproof", one per line;
    /// timesketch: flat JSONL lines with the message, datetime and timestamp_desc fields
    /// Timesketch imports; parquet: one row per record with columns for the common fields
    /// (needs --out).
    #[arg(long, value_enum, ignore_case = true, default_value_t = EventsFormat::Jsonl)]
    pub format: EventsFormat,
    /// Write to FILE (made under a temporary name, then renamed once complete) instead of
    /// standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Bytes of records the sort holds before it spills a run to a temporary file (for tests).
    #[arg(long, value_name = "BYTES", default_value_t = SORT_BUDGET, hide = true)]
    pub sort_memory: usize,
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: super::aws::AwsArgs,
}

impl EventsArgs {
    fn settings(&self) -> Settings {
        // Valid log files counted, not kept: the sort learns of each from the run as it goes
        // (unsorted, the engine keeps them: it reads them again from the report).
        self.evidence.settings(true)
    }

    fn options(&self, temp_dir: &Path) -> ExportOptions {
        ExportOptions {
            filter: EventFilter {
                from: self.event_time_from,
                to: self.event_time_to,
                names: self.event_names.clone(),
                sources: self.event_sources.clone(),
                user_arns: self.user_arns.iter().map(|g| Glob::new(g)).collect(),
                errors_only: self.errors_only,
                read_only: self.read_only,
            },
            include_unverified: self.include_unverified,
            order: if self.unsorted {
                Order::unsorted()
            } else {
                Order::Sorted {
                    memory: self.sort_memory,
                    temp_dir: temp_dir.to_owned(),
                }
            },
            ..ExportOptions::default()
        }
    }
}

/// The source and its keys.
type Opened = (Box<dyn ObjectSource>, Box<dyn KeyProvider>);

fn open(args: &EventsArgs) -> Result<Opened, CliError> {
    if args.source.starts_with("s3://") {
        return open_s3(args);
    }
    let (evidence, keys) = args.evidence.open_local(Path::new(&args.source))?;
    Ok((Box::new(evidence), Box::new(keys)))
}

#[cfg(feature = "aws")]
fn open_s3(args: &EventsArgs) -> Result<Opened, CliError> {
    let (source, keys) =
        super::aws::open_s3(&args.source, &args.aws, args.evidence.public_keys.as_ref())?;
    Ok((Box::new(source), keys))
}

#[cfg(not(feature = "aws"))]
fn open_s3(_args: &EventsArgs) -> Result<Opened, CliError> {
    Err(CliError::NoS3Support)
}

/// A new folder of this run's own (for the sort's files), removed when dropped and when the run
/// is interrupted.
struct RunFolder(PathBuf);

impl RunFolder {
    fn new() -> Result<Self, CliError> {
        // Only its owner may list it or put files in it: the sort's runs are in it.
        let (path, _) = new_exclusive(&std::env::temp_dir(), "trailproof-events", |p| {
            std::fs::DirBuilder::new().mode(0o700).create(p)
        })?;
        unfinished().push(path.clone());
        Ok(RunFolder(path))
    }
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        unfinished().retain(|p| *p != self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: &EventsArgs) -> Result<u8, CliError> {
    if args.format == EventsFormat::Parquet && args.out.is_none() {
        return Err(CliError::ParquetNeedsOut);
    }
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(CliError::Threads)?;
    }
    // Interrupted, the run removes what it had not finished; the exit status is the shell's
    // for a signal (130).
    let _ = ctrlc::set_handler(|| {
        remove_unfinished();
        std::process::exit(130);
    });
    let (source, keys) = open(args)?;
    let local = (!args.source.starts_with("s3://")).then(|| Path::new(&args.source));
    let inputs: Vec<&Path> = args
        .evidence
        .public_keys
        .iter()
        .map(|p| p.as_path())
        .collect();
    // The output is made before the run, so a folder that cannot be written to stops it
    // before any work.
    let (dest, out) = Destination::new(args.out.as_deref(), local, &inputs)?;
    let folder = match RunFolder::new() {
        Ok(f) => f,
        Err(e) => {
            dest.discard();
            return Err(e);
        }
    };
    let run = verify_and_export(
        source.as_ref(),
        keys.as_ref(),
        &args.settings(),
        args.options(&folder.0),
        None,
        &Bars::on_stderr(),
    );
    let (report, mut records) = match run {
        Ok(run) => run,
        Err(e) => {
            dest.discard();
            return Err(CliError::in_folder(e, Path::new(&args.source)));
        }
    };
    // The report's findings (one per log file) are not needed while the records are written.
    let mut code = report.exit_code();
    drop(report);
    let written = write_all(args.format, out, &mut records);
    let stats = records.stats().clone();
    drop(records);
    drop(folder);
    let failure = match written {
        Ok(()) => dest.keep().err().map(Failure::Keep),
        Err(failure) => {
            dest.discard();
            Some(failure)
        }
    };
    // stderr may be gone too (2>/dev/full): what cannot be said is not said, and the exit
    // status still tells.
    let mut stderr = io::stderr();
    match failure {
        None => {}
        // A reader that stopped early (`| head`) closed the pipe: the output is cut, which the
        // exit status says, and the reader asked for no more, so nothing is printed about it.
        Some(Failure::Write(WriteError::Io(e))) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(2)
        }
        Some(failure) => {
            let _ = writeln!(stderr, "trailproof: events: {failure}");
            return Ok(2);
        }
    }
    let _ = writeln!(stderr, "{}", summary(&stats));
    if stats.left_out.unreadable() {
        code = code.max(2);
    } else if stats.left_out.total() > 0 {
        code = code.max(1);
    }
    Ok(code)
}

/// Why the records could not all be written.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot write the records: {0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Export(#[from] trailproof::engine::events::ExportError),
    #[error("cannot put the output in place: {0}")]
    Keep(io::Error),
}

/// Records handed to the writing thread at once.
const HANDOFF: usize = 1024;

/// Writes the records on a thread of its own while this one merges them: the merge and the
/// writing are each one thread's work, so they overlap rather than add up.
fn write_all(
    format: EventsFormat,
    out: Box<dyn Write + Send>,
    records: &mut trailproof::engine::events::VerifiedRecords<'_>,
) -> Result<(), Failure> {
    let mut writer: Box<dyn RecordWriter + Send> = match format {
        EventsFormat::Jsonl => Box::new(Jsonl::new(out)),
        EventsFormat::Timesketch => Box::new(Timesketch::new(out)),
        EventsFormat::Parquet => Box::new(Parquet::new(out)?),
    };
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<ExportedRecord>>(4);
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> Result<(), WriteError> {
            for batch in receive {
                for record in &batch {
                    writer.write(record)?;
                }
            }
            writer.finish()
        });
        let mut batch = Vec::with_capacity(HANDOFF);
        let mut merged = Ok(());
        for record in records {
            match record {
                Ok(r) => batch.push(r),
                Err(e) => {
                    merged = Err(Failure::Export(e));
                    break;
                }
            }
            if batch.len() == HANDOFF
                && send
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(HANDOFF)))
                    .is_err()
            {
                // The writer stopped: its error says why.
                break;
            }
        }
        if merged.is_ok() && !batch.is_empty() {
            let _ = send.send(batch);
        }
        drop(send);
        let written = written
            .join()
            .unwrap_or_else(|_| Err(WriteError::Io(io::Error::other("the writer panicked"))));
        // What the writer met comes first: a closed pipe stops the merge too.
        written.map_err(Failure::Write)?;
        merged
    })
}

fn summary(stats: &ExportStats) -> String {
    let mut summary = format!(
        "trailproof events: {} records written, {} duplicates removed",
        stats.written, stats.duplicates
    );
    if stats.conflicts > 0 {
        summary.push_str(&format!(
            ", {} records kept beside another with the same eventID and other content",
            stats.conflicts
        ));
    }
    // Unsorted, copies further apart than the window are not merged: said, never silent.
    let unvouched = stats.released_early + stats.outside_window;
    if unvouched > 0 {
        summary.push_str(&format!(
            ", {unvouched} records outside the de-duplication window (a copy of them may be \
             written twice; the sorted output de-duplicates exactly)"
        ));
    }
    summary.push_str(&format!(", {} log files left out", stats.left_out.total()));
    if stats.left_out.total() > 0 {
        let reasons: Vec<String> = stats
            .left_out
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        summary.push_str(&format!(" ({})", reasons.join(", ")));
    }
    summary
}
