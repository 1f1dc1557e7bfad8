//! Acquisition: copying the objects of a run from S3 into an evidence directory, with what S3
//! said about each (signatures, sizes, ETags, version ids) and the SHA-256 of the bytes stored.
//!
//! It copies exactly what a `verify` over the same range and filters reads (the digests in
//! range, the log files they name, and every log file delivered in the range), so that a later
//! offline `verify DIR` sees what `verify s3://...` saw. It is resumable and idempotent: an
//! object already on disk whose ETag matches the listing and whose bytes match the recorded
//! SHA-256 is not fetched again. Nothing already in the directory is deleted.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use serde::Serialize;

use super::{for_each_log, plan, EngineError, Plan, Settings};
use crate::core::digest::named_log_files;
use crate::core::evidence::{EvidenceMetadata, ObjectRecord, EVIDENCE_FILE};
use crate::core::gz::{inflate_all, Limits};
use crate::core::types::{S3Location, Sha256};
use crate::source::aws::AwsOptions;
use crate::source::cloudtrail::{caller_identity, CallerIdentity};
use crate::source::progress::Progress;
use crate::source::s3::S3Source;
use crate::source::{ObjectSource, SourceError};

/// The acquisition log at the root of the evidence directory: one entry per run.
pub const ACQUISITION_FILE: &str = "trailproof-acquisition.json";

/// What one acquisition did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AcquireSummary {
    pub wanted: usize,
    pub downloaded: usize,
    pub unchanged: usize,
    pub missing: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl fmt::Display for AcquireSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acquired {} objects: {} downloaded, {} already present and unchanged, {} named by a digest but absent from S3, {} failed",
            self.wanted, self.downloaded, self.unchanged, self.missing, self.failed
        )?;
        for failure in &self.failures {
            write!(f, "\n  failed: {failure}")?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct AcquisitionRecord<'a> {
    tool: &'static str,
    version: &'static str,
    started: Timestamp,
    finished: Timestamp,
    source: String,
    caller: Result<CallerIdentity, String>,
    start_time: Option<Timestamp>,
    end_time: Option<Timestamp>,
    accounts: &'a [String],
    regions: &'a [String],
    trails: &'a [String],
    summary: &'a AcquireSummary,
}

/// Copies the run's objects from `source` into `dir`.
pub fn acquire(
    source: &S3Source,
    options: &AwsOptions,
    settings: &Settings,
    dir: &Path,
) -> Result<AcquireSummary, EngineError> {
    let started = Timestamp::now();
    let bucket = source.bucket().unwrap_or_default();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let meta_path = dir.join(EVIDENCE_FILE);
    let mut metadata = match std::fs::read(&meta_path) {
        Ok(bytes) => EvidenceMetadata::parse(&bytes).map_err(|source| SourceError::Evidence {
            path: meta_path.clone(),
            source,
        })?,
        Err(_) => EvidenceMetadata::new(&bucket),
    };
    if metadata.bucket != bucket {
        return Err(EngineError::BucketConflict {
            given: bucket,
            recorded: metadata.bucket,
        });
    }

    let Plan {
        range,
        mut digests,
        other_trails,
        ..
    } = plan(source, settings)?;
    // `verify` reads the digests of trails the filters leave out but that write to the same
    // folders, to tell their log files from injected ones.
    digests.extend(other_trails);
    let mut summary = AcquireSummary::default();

    // Digests are read whole (they are small and say which log files to fetch).
    let digest_keys: Vec<String> = digests.iter().map(|d| d.format()).collect();
    let mut wanted_logs: BTreeSet<String> = BTreeSet::new();
    let progress = Progress::new("digests read", digest_keys.len());
    let read = source.read_digests(&digest_keys, &progress);
    drop(progress);
    for (key, read) in digest_keys.iter().zip(read) {
        summary.wanted += 1;
        match read {
            Ok(stored) => {
                if let Ok(raw) = inflate_all(&stored.bytes, Limits::DIGEST) {
                    wanted_logs.extend(
                        named_log_files(&raw)
                            .into_iter()
                            .filter(|l| l.bucket == bucket)
                            .map(|l| l.key),
                    );
                }
                match write_object(dir, key, &stored.bytes) {
                    Ok(changed) => {
                        if changed {
                            summary.downloaded += 1;
                        } else {
                            summary.unchanged += 1;
                        }
                        metadata.objects.insert(key.clone(), stored.record);
                    }
                    Err(e) => fail(&mut summary, key, &e),
                }
            }
            Err(crate::source::ReadError::NotFound) => summary.missing += 1,
            Err(e) => fail(&mut summary, key, &format!("{e:?}")),
        }
    }
    let listed = Mutex::new(wanted_logs);
    for_each_log(
        source,
        settings,
        &|key, log| {
            if log.time >= range.start && log.time <= range.end {
                listed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key);
            }
        },
        // Keys that are no CloudTrail key are reported by `verify` from the listing, not copied.
        &|_| {},
    )?;
    let wanted_logs = listed.into_inner().unwrap_or_else(PoisonError::into_inner);

    let mut fetch = Vec::new();
    for key in &wanted_logs {
        summary.wanted += 1;
        let Some(path) = safe_path(dir, key) else {
            fail(&mut summary, key, "key is not a plain relative path");
            continue;
        };
        if unchanged(
            &path,
            metadata.objects.get(key),
            source.listed_etag(key).as_deref(),
        ) {
            summary.unchanged += 1;
        } else {
            fetch.push((S3Location::new(&bucket, key), path));
        }
    }
    let keys: Vec<String> = fetch.iter().map(|(l, _)| l.key.clone()).collect();
    for (key, result) in keys.into_iter().zip(source.download(fetch)) {
        match result {
            Ok(record) => {
                summary.downloaded += 1;
                metadata.objects.insert(key, record);
            }
            Err(crate::source::ReadError::NotFound) => summary.missing += 1,
            Err(e) => fail(&mut summary, &key, &format!("{e:?}")),
        }
    }

    write_json(&meta_path, &metadata)?;
    let record = AcquisitionRecord {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        started,
        finished: Timestamp::now(),
        source: source.describe(),
        caller: caller_identity(options).map_err(|e| e.to_string()),
        start_time: settings.start,
        end_time: settings.end,
        accounts: &settings.accounts,
        regions: &settings.regions,
        trails: &settings.trails,
        summary: &summary,
    };
    append_record(&dir.join(ACQUISITION_FILE), &record)?;
    Ok(summary)
}

fn fail(summary: &mut AcquireSummary, key: &str, why: &str) {
    summary.failed += 1;
    summary.failures.push(format!("{key}: {why}"));
}

/// Only plain relative keys may become paths: a hostile listing must not write outside `dir`.
fn safe_path(dir: &Path, key: &str) -> Option<PathBuf> {
    let rel = Path::new(key);
    (!key.is_empty()
        && !key.contains('\0')
        && rel.components().all(|c| matches!(c, Component::Normal(_))))
    .then(|| dir.join(rel))
}

/// Whether the copy on disk is the object S3 lists now, byte for byte as recorded.
fn unchanged(path: &Path, record: Option<&ObjectRecord>, listed_etag: Option<&str>) -> bool {
    let Some(record) = record else { return false };
    if record.etag.as_deref() != listed_etag || listed_etag.is_none() {
        return false;
    }
    match (std::fs::read(path), &record.sha256) {
        (Ok(bytes), Some(sha)) => Sha256::of(&bytes).to_hex() == *sha,
        _ => false,
    }
}

/// Writes `bytes` at `dir/key` unless the same bytes are already there; says whether it wrote.
fn write_object(dir: &Path, key: &str, bytes: &[u8]) -> Result<bool, String> {
    let path = safe_path(dir, key).ok_or("key is not a plain relative path")?;
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let mut part = path.clone().into_os_string();
    part.push(".part");
    std::fs::write(&part, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&part, &path).map_err(|e| e.to_string())?;
    Ok(true)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), EngineError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| io_error(path, std::io::Error::other(e)))?;
    bytes.push(b'\n');
    let tmp = path.with_extension("json.part");
    std::fs::write(&tmp, bytes).map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

fn append_record(path: &Path, record: &AcquisitionRecord<'_>) -> Result<(), EngineError> {
    let mut runs: Vec<serde_json::Value> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    runs.push(serde_json::to_value(record).map_err(|e| io_error(path, std::io::Error::other(e)))?);
    write_json(path, &runs)
}

fn io_error(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Source(SourceError::Io {
        path: path.to_owned(),
        source,
    })
}
