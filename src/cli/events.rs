//! `trailproof events SOURCE`: the CloudTrail records of the log files a run proves, one JSON
//! line each, with their provenance under the key `trailproof`.
//!
//! How proof is kept: the run verifies as `verify` does (the same engine, settings and exit
//! status), then takes the log files the report judges. A file is read once more, inflated in
//! memory, and its records are used only when the SHA-256 of those inflated bytes equals the
//! hash its verified digest lists (the report's `expected_sha256`): the records written are
//! taken from exactly the bytes that hash proves. A file that changed since is left out and
//! counted. One file is held at a time.
//!
//! Local copies only for now; `s3://` sources say so and exit 2.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use jiff::{SignedDuration, Timestamp};

use trailproof::core::finding::{Finding, Kind, ObjectKind, Verdict};
use trailproof::core::gz::{Inflater, Limits};
use trailproof::core::layout::{parse_key, CloudTrailKey};
use trailproof::core::records::{
    parse_records, write_line, Carrier, Dedupe, EventFilter, Glob, Provenance, RecordLimits,
};
use trailproof::core::types::{S3Location, Sha256};
use trailproof::engine::sort::{Entry, ExternalSort};
use trailproof::engine::{self, Settings};
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;

use super::error::CliError;
use super::progress::Bars;
use super::{parse_time, EvidenceArgs};

/// Memory the sort holds before it spills a run to a temporary file.
const SORT_BUDGET: usize = 64 << 20;
/// `--unsorted`: how long (delivery time) a record waits for a second delivery of it.
const DEDUPE_WINDOW: SignedDuration = SignedDuration::from_hours(12);
/// `--unsorted`: at most this many records wait for a second delivery.
const DEDUPE_MAX_PENDING: usize = 200_000;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// A directory holding each object at DIR/KEY (its S3 key). s3:// is not supported yet.
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
    /// Bytes of records the sort holds before it spills a run to a temporary file (for tests).
    #[arg(long, value_name = "BYTES", default_value_t = SORT_BUDGET, hide = true)]
    pub sort_memory: usize,
}

impl EventsArgs {
    fn settings(&self) -> Settings {
        // Every valid log file's finding is needed: it names the digest and the hash.
        self.evidence.settings(false)
    }

    fn filter(&self) -> EventFilter {
        EventFilter {
            from: self.event_time_from,
            to: self.event_time_to,
            names: self.event_names.clone(),
            sources: self.event_sources.clone(),
            user_arns: self.user_arns.iter().map(|g| Glob::new(g)).collect(),
            errors_only: self.errors_only,
            read_only: self.read_only,
        }
    }
}

/// A log file whose records may be written.
struct Candidate {
    key: String,
    delivered: Timestamp,
    /// The hash a verified digest lists; `None` for an unproven file (`--include-unverified`).
    expected: Option<Sha256>,
    digest: Option<S3Location>,
    verdict: Verdict,
}

/// Files left out, by reason; and whether any could not be read (exit 2).
#[derive(Default)]
struct LeftOut {
    by_reason: BTreeMap<String, u64>,
    unreadable: bool,
}

impl LeftOut {
    fn add(&mut self, reason: impl Into<String>) {
        *self.by_reason.entry(reason.into()).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }
}

pub fn run(args: &EventsArgs) -> Result<u8, CliError> {
    if args.source.starts_with("s3://") {
        eprintln!(
            "trailproof: events: s3:// sources are not supported yet; make a local copy (`trailproof acquire` or `aws s3 sync`) and run events on it"
        );
        return Ok(2);
    }
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(CliError::Threads)?;
    }
    let path = args
        .evidence
        .public_keys
        .as_ref()
        .ok_or(CliError::NoPublicKeys)?;
    let keys = PinnedKeys::from_file(path)?;
    let dir = Path::new(&args.source);
    let evidence = LocalEvidence::open(dir)?;
    let report =
        engine::verify_streaming(&evidence, &keys, &args.settings(), None, &Bars::on_stderr())
            .map_err(|e| CliError::in_folder(e, dir))?;

    let mut left_out = LeftOut::default();
    let candidates = candidates(
        report.all_findings(),
        &report.bucket,
        args.include_unverified,
        &mut left_out,
    );
    let filter = args.filter();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = if args.unsorted {
        write_unsorted(
            &evidence,
            &report.bucket,
            &candidates,
            &filter,
            &mut out,
            &mut left_out,
        )
    } else {
        write_sorted(
            &evidence,
            &report.bucket,
            &candidates,
            &filter,
            args.sort_memory,
            &mut out,
            &mut left_out,
        )
    };
    let written = written.and_then(|w| out.flush().map(|()| w));
    let counts = match written {
        Ok(counts) => counts,
        // A reader that stopped early (`| head`) closed the pipe: the output is cut, which the
        // exit status says, and the reader asked for no more, so nothing is printed about it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(2),
        Err(e) => {
            eprintln!("trailproof: events: cannot write the records: {e}");
            return Ok(2);
        }
    };
    let mut summary = format!(
        "trailproof events: {} records written, {} duplicates removed",
        counts.written, counts.duplicates
    );
    if counts.conflicts > 0 {
        summary.push_str(&format!(
            ", {} records kept beside another with the same eventID and other content",
            counts.conflicts
        ));
    }
    summary.push_str(&format!(", {} log files left out", left_out.total()));
    if !left_out.by_reason.is_empty() {
        let reasons: Vec<String> = left_out
            .by_reason
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        summary.push_str(&format!(" ({})", reasons.join(", ")));
    }
    eprintln!("{summary}");
    let mut code = report.exit_code();
    if left_out.unreadable {
        code = code.max(2);
    } else if left_out.total() > 0 {
        code = code.max(1);
    }
    Ok(code)
}

/// The log files of the report whose records may be written, oldest delivery first; the
/// others counted in `left_out` by their finding's kind.
fn candidates<'a>(
    findings: impl Iterator<Item = &'a Finding>,
    bucket: &str,
    include_unverified: bool,
    left_out: &mut LeftOut,
) -> Vec<Candidate> {
    // One judgement per log file: its worst finding.
    let mut logs: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in findings.filter(|f| f.kind.object() == ObjectKind::Log) {
        logs.entry(f.subject.as_str())
            .and_modify(|have| {
                if f.verdict > have.verdict {
                    *have = f;
                }
            })
            .or_insert(f);
    }
    let prefix = format!("s3://{bucket}/");
    let mut out = Vec::new();
    for (subject, f) in logs {
        let key = subject.strip_prefix(&prefix);
        let delivered = key.and_then(|k| match parse_key(k) {
            Ok(CloudTrailKey::Log(l)) => Some(l.time),
            _ => None,
        });
        let (Some(key), Some(delivered)) = (key, delivered) else {
            left_out.add(kind_name(f.kind));
            continue;
        };
        let expected = f.evidence.expected_sha256;
        let proven = f.kind == Kind::LogValid && expected.is_some();
        let unproven_ok = include_unverified
            && f.verdict == Verdict::NotVerified
            && !matches!(f.kind, Kind::LogOtherBucket);
        if !proven && !unproven_ok {
            left_out.add(kind_name(f.kind));
            continue;
        }
        out.push(Candidate {
            key: key.to_owned(),
            delivered,
            expected: if proven { expected } else { None },
            digest: if proven {
                f.evidence.named_by.as_deref().and_then(parse_uri)
            } else {
                None
            },
            verdict: f.verdict,
        });
    }
    out.sort_by(|a, b| (a.delivered, &a.key).cmp(&(b.delivered, &b.key)));
    out
}

/// The kind as the JSON report spells it (`log_hash_mismatch`).
fn kind_name(kind: Kind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn parse_uri(uri: &str) -> Option<S3Location> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    Some(S3Location::new(bucket, key))
}

/// Reads a candidate once and inflates it; the inflated bytes only when they are the ones its
/// digest proves (or, unproven, one complete gzip stream), with the hash they have.
fn read_proven(
    evidence: &LocalEvidence,
    c: &Candidate,
    left_out: &mut LeftOut,
) -> Option<(Vec<u8>, Sha256)> {
    let mut file = match evidence.open_object(&c.key) {
        Ok(f) => f,
        Err(_) => {
            left_out.add("unreadable_at_export");
            left_out.unreadable = true;
            return None;
        }
    };
    let mut inflater = Inflater::new(Limits::LOG).keep_output();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => inflater.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                left_out.add("unreadable_at_export");
                left_out.unreadable = true;
                return None;
            }
        }
    }
    let (outcome, bytes) = inflater.finish();
    let bytes = bytes?;
    if c.expected.is_some_and(|e| e != outcome.inflated_sha256) || outcome.problem.is_some() {
        // A proven file whose bytes are no longer the proven ones, or an unproven one that is
        // not (any more) one complete gzip stream.
        left_out.add(if c.expected.is_some() {
            "changed_since_verified"
        } else {
            "not_one_gzip_stream"
        });
        return None;
    }
    Some((bytes, outcome.inflated_sha256))
}

#[derive(Default)]
struct Counts {
    written: u64,
    duplicates: u64,
    conflicts: u64,
}

fn carrier(bucket: &str, c: &Candidate, sha: Sha256) -> Carrier {
    Carrier {
        log: S3Location::new(bucket, c.key.clone()),
        log_sha256: sha,
        digest: c.digest.clone(),
        verdict: c.verdict,
        version_id: None,
    }
}

fn line_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// `--unsorted`: records in delivery order, deduplicated within [`DEDUPE_WINDOW`].
fn write_unsorted(
    evidence: &LocalEvidence,
    bucket: &str,
    candidates: &[Candidate],
    filter: &EventFilter,
    out: &mut dyn Write,
    left_out: &mut LeftOut,
) -> io::Result<Counts> {
    let mut dedupe: Dedupe<String> = Dedupe::new(DEDUPE_WINDOW, DEDUPE_MAX_PENDING);
    let mut counts = Counts::default();
    let mut line = Vec::new();
    let mut emit = |text: String, p: Provenance, counts: &mut Counts| -> io::Result<()> {
        line.clear();
        write_line(&mut line, &text, &p).map_err(line_error)?;
        counts.written += 1;
        out.write_all(&line)
    };
    for c in candidates {
        let Some((bytes, sha)) = read_proven(evidence, c, left_out) else {
            continue;
        };
        let Ok(records) = parse_records(&bytes, RecordLimits::LOG) else {
            left_out.add("records_malformed");
            continue;
        };
        let carrier = carrier(bucket, c, sha);
        for r in records.iter().filter(|r| filter.matches(r)) {
            dedupe.push(
                r.raw(),
                r.event_id.as_deref(),
                c.delivered,
                r.raw().to_owned(),
                Provenance::new(carrier.clone()),
            );
            while let Some((text, p)) = dedupe.pop_ready() {
                emit(text, p, &mut counts)?;
            }
        }
    }
    while let Some((text, p)) = dedupe.pop_any() {
        emit(text, p, &mut counts)?;
    }
    let stats = dedupe.stats();
    counts.duplicates = stats.duplicates_removed;
    counts.conflicts = stats.conflicts;
    Ok(counts)
}

/// A new, empty folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<Self> {
        let base = std::env::temp_dir();
        let nanos = Timestamp::now().as_nanosecond();
        for n in 0..100u32 {
            let path = base.join(format!(
                "trailproof-events-{}-{nanos}-{n}",
                std::process::id()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("cannot create a temporary folder"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sort entry's payload: whether the record has an eventID, the index of its carrier, and
/// the record's text.
fn payload(has_id: bool, carrier: u32, text: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + text.len());
    p.push(u8::from(has_id));
    p.extend_from_slice(&carrier.to_le_bytes());
    p.extend_from_slice(text.as_bytes());
    p
}

fn unpack(payload: &[u8]) -> io::Result<(bool, usize, &str)> {
    let bad = || io::Error::other("a sort run holds a damaged entry");
    let (&flag, rest) = payload.split_first().ok_or_else(bad)?;
    let (index, text) = rest.split_at_checked(4).ok_or_else(bad)?;
    let index = u32::from_le_bytes(index.try_into().map_err(|_| bad())?) as usize;
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    Ok((flag == 1, index, text))
}

/// Sorted by (eventTime, eventID); copies of a record (same eventID, same text) come out next
/// to each other and are merged into one line listing every carrier.
fn write_sorted(
    evidence: &LocalEvidence,
    bucket: &str,
    candidates: &[Candidate],
    filter: &EventFilter,
    memory: usize,
    out: &mut dyn Write,
    left_out: &mut LeftOut,
) -> io::Result<Counts> {
    let tmp = TempDir::new()?;
    let mut sort = ExternalSort::new(&tmp.0, memory);
    // One carrier per file read: memory grows with the files, not the records.
    let mut carriers: Vec<Carrier> = Vec::new();
    for c in candidates {
        let Some((bytes, sha)) = read_proven(evidence, c, left_out) else {
            continue;
        };
        let Ok(records) = parse_records(&bytes, RecordLimits::LOG) else {
            left_out.add("records_malformed");
            continue;
        };
        let index = u32::try_from(carriers.len()).map_err(line_error)?;
        carriers.push(carrier(bucket, c, sha));
        for r in records.iter().filter(|r| filter.matches(r)) {
            sort.push(Entry {
                time: r.event_time,
                event_id: r.event_id.as_deref().unwrap_or_default().to_owned(),
                payload: payload(r.event_id.is_some(), index, r.raw()),
            })?;
        }
    }
    let mut counts = Counts::default();
    let mut line = Vec::new();
    // The records of one (eventTime, eventID) key, each distinct text once with its carriers.
    let mut group: Vec<(Vec<u8>, Provenance)> = Vec::new();
    let mut group_key: Option<(Option<Timestamp>, String)> = None;
    let mut flush = |group: &mut Vec<(Vec<u8>, Provenance)>, counts: &mut Counts| {
        for (text, p) in group.drain(..) {
            let text = String::from_utf8(text).map_err(line_error)?;
            line.clear();
            write_line(&mut line, &text, &p).map_err(line_error)?;
            out.write_all(&line)?;
            counts.written += 1;
        }
        io::Result::Ok(())
    };
    for entry in sort.finish()? {
        let entry = entry?;
        let (has_id, index, text) = unpack(&entry.payload)?;
        let carrier = carriers
            .get(index)
            .cloned()
            .ok_or_else(|| line_error("bad carrier"))?;
        let key = (entry.time, entry.event_id.clone());
        if !has_id || group_key.as_ref() != Some(&key) {
            flush(&mut group, &mut counts)?;
            group_key = has_id.then_some(key);
        }
        if let Some((_, p)) = group.iter_mut().find(|(t, _)| t == text.as_bytes()) {
            p.merge(Provenance::new(carrier));
            counts.duplicates += 1;
        } else {
            if !group.is_empty() {
                counts.conflicts += 1;
            }
            group.push((text.as_bytes().to_vec(), Provenance::new(carrier)));
        }
    }
    flush(&mut group, &mut counts)?;
    drop(tmp);
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0005Z_abcdefghijklmnop.json.gz";

    fn candidate(expected: Option<Sha256>) -> Candidate {
        Candidate {
            key: KEY.into(),
            delivered: "2026-01-01T00:05:00Z".parse().unwrap(),
            expected,
            digest: None,
            verdict: Verdict::Valid,
        }
    }

    /// A log file that no longer hashes to what its digest listed is not read for records:
    /// the check is made on the very bytes the records are then taken from.
    #[test]
    fn a_file_changed_since_it_was_verified_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let inflated = br#"{"Records":[{"eventID":"e1"}]}"#;
        std::fs::write(&path, trailproof_testgen::gzip(inflated)).unwrap();
        let evidence = LocalEvidence::open(dir.path()).unwrap();

        let mut left_out = LeftOut::default();
        let proven = candidate(Some(Sha256::of(inflated)));
        let (bytes, sha) = read_proven(&evidence, &proven, &mut left_out).unwrap();
        assert_eq!(
            (bytes.as_slice(), sha),
            (&inflated[..], Sha256::of(inflated))
        );
        assert_eq!(left_out.total(), 0);

        let changed = candidate(Some(Sha256([7; 32])));
        assert!(read_proven(&evidence, &changed, &mut left_out).is_none());
        assert_eq!(left_out.by_reason["changed_since_verified"], 1);
        assert!(!left_out.unreadable);

        // Not gzip any more: left out whether proven or not.
        std::fs::write(&path, inflated).unwrap();
        assert!(read_proven(&evidence, &proven, &mut left_out).is_none());
        assert!(read_proven(&evidence, &candidate(None), &mut left_out).is_none());
        assert_eq!(left_out.by_reason["changed_since_verified"], 2);
        assert_eq!(left_out.by_reason["not_one_gzip_stream"], 1);

        std::fs::remove_file(&path).unwrap();
        assert!(read_proven(&evidence, &proven, &mut left_out).is_none());
        assert!(left_out.unreadable);
    }

    #[test]
    fn sort_payloads_round_trip() {
        let p = payload(true, 70_000, r#"{"a":1}"#);
        assert_eq!(unpack(&p).unwrap(), (true, 70_000, r#"{"a":1}"#));
        assert!(unpack(&[1, 0]).is_err());
    }
}
