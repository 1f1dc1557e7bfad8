//! `trailproof events SOURCE`: the CloudTrail records of the log files a run proves, with
//! their provenance, as JSONL, Timesketch JSONL or Parquet.
//!
//! The run verifies as `verify` does (the same engine, settings and exit status); the records
//! come from [`trailproof::engine::events`], taken from the bytes the run hashes and proves.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use jiff::Timestamp;

use trailproof::core::records::{EventFilter, Glob};
use trailproof::engine::events::{verify_and_export, ExportOptions, ExportStats, Order};
use trailproof::engine::Settings;
use trailproof::report::records::{Jsonl, Parquet, RecordWriter, Timesketch, WriteError};
use trailproof::source::local::LocalEvidence;
use trailproof::source::{KeyProvider, ObjectSource, PinnedKeys};

use super::error::CliError;
use super::progress::Bars;
use super::{parse_time, EvidenceArgs};

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
    #[arg(long, value_name = "N")]
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
        // Every valid log file's finding is needed: it names the digest and the hash.
        self.evidence.settings(false)
    }

    fn options(&self) -> ExportOptions {
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
                    temp_dir: std::env::temp_dir(),
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
    let path = args
        .evidence
        .public_keys
        .as_ref()
        .ok_or(CliError::NoPublicKeys)?;
    let keys = PinnedKeys::from_file(path)?;
    let evidence = LocalEvidence::open(Path::new(&args.source))?;
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

/// Where the records go: standard output, or a file made under a temporary name and renamed
/// into place once complete (a run that fails leaves no half-written file behind).
enum Destination {
    Stdout,
    File { part: PathBuf, path: PathBuf },
}

impl Destination {
    fn new(out: Option<&Path>) -> Result<(Self, Box<dyn Write + Send>), CliError> {
        let Some(path) = out else {
            let stdout = Box::new(BufWriter::with_capacity(1 << 16, io::stdout()));
            return Ok((Destination::Stdout, stdout));
        };
        let mut part = path.as_os_str().to_owned();
        part.push(format!(".trailproof-{}.part", std::process::id()));
        let part = PathBuf::from(part);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&part)
            .map_err(|source| CliError::Write {
                path: part.clone(),
                source,
            })?;
        let dest = Destination::File {
            part,
            path: path.to_owned(),
        };
        Ok((dest, Box::new(BufWriter::with_capacity(1 << 16, file))))
    }

    /// The output is complete: put it in place.
    fn keep(self) -> io::Result<()> {
        match self {
            Destination::Stdout => Ok(()),
            Destination::File { part, path } => std::fs::rename(&part, &path).inspect_err(|_| {
                let _ = std::fs::remove_file(&part);
            }),
        }
    }

    /// The output is not complete: take away what was written.
    fn discard(self) {
        if let Destination::File { part, .. } = self {
            let _ = std::fs::remove_file(part);
        }
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
    let (source, keys) = open(args)?;
    // The output is made before the run, so a folder that cannot be written to stops it
    // before any work.
    let (dest, out) = Destination::new(args.out.as_deref())?;
    let run = verify_and_export(
        source.as_ref(),
        keys.as_ref(),
        &args.settings(),
        args.options(),
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
    let written = write_all(args.format, out, &mut records);
    let stats = records.stats().clone();
    match written.and_then(|()| dest_keep(dest)) {
        Ok(()) => {}
        // A reader that stopped early (`| head`) closed the pipe: the output is cut, which the
        // exit status says, and the reader asked for no more, so nothing is printed about it.
        Err(Failure::Write(WriteError::Io(e))) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(2)
        }
        Err(failure) => {
            eprintln!("trailproof: events: {failure}");
            return Ok(2);
        }
    }
    eprintln!("{}", summary(&stats));
    let mut code = report.exit_code();
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

fn dest_keep(dest: Destination) -> Result<(), Failure> {
    dest.keep().map_err(Failure::Keep)
}

fn write_all(
    format: EventsFormat,
    out: Box<dyn Write + Send>,
    records: &mut trailproof::engine::events::VerifiedRecords<'_>,
) -> Result<(), Failure> {
    let mut writer: Box<dyn RecordWriter> = match format {
        EventsFormat::Jsonl => Box::new(Jsonl::new(out)),
        EventsFormat::Timesketch => Box::new(Timesketch::new(out)),
        EventsFormat::Parquet => Box::new(Parquet::new(out)?),
    };
    for record in records {
        writer.write(&record?)?;
    }
    writer.finish()?;
    Ok(())
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
