//! Acquisition: copying the objects of a run from S3 into an evidence directory, with what S3
//! said about each (signatures, sizes, ETags, version ids) and the SHA-256 of the bytes stored.
//!
//! It copies exactly what a `verify` over the same range and filters reads (the digests in
//! range, the log files they name, and every log file delivered in the range) and every object
//! it reports as no CloudTrail file, so that a later offline `verify DIR` sees what
//! `verify s3://...` saw. A key no file can stand for alone (`a/./b`, `a//b`, a key ending in
//! `/` that holds a body) is a failure of the acquisition, never written. It is resumable and idempotent, and
//! trusts nothing the directory says about itself: a digest is read from S3 every time and
//! written unless the same bytes are on disk; a log file on disk is kept only when its size is
//! the listed size and its MD5 the listed single-part ETag (which is S3's MD5 of the object),
//! and its record is then made from the listing and the SHA-256 computed now. Everything else
//! is fetched again. Nothing already in the directory is deleted, and nothing is written
//! through a link: the directory is written under the same root lock as it is read
//! ([`WritableRoot`]), and a run that finds a link where it must write stops before writing.
//!
//! Then the copy is verified offline, and each object it finds invalid or missing is looked
//! for in the bucket's versions ([`crate::core::custody`]): a version proven CloudTrail's (by the
//! hash its digest lists, or by its signature) replaces the copy, and its record keeps both
//! versions (`version_id` and `recovered`, see [`crate::core::evidence`]). A recovered digest
//! brings the log files it names; the copy is verified again, at most [`RECOVERY_ROUNDS`]
//! times. An offline `verify` of the directory then proves the delivered content and still
//! reports that the bucket held something else.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use md5::Digest as _;
use serde::Serialize;

use super::plan::{for_each_log, selected, trail_selected};
use super::plan::{plan, Plan};
use super::versions::Recovery;
use super::{EngineError, Settings};
use crate::core::chain::Range;
use crate::core::custody::{CurrentVersion, Recovered, VersionRef, VersionSearch};
use crate::core::digest::named_log_files;
use crate::core::evidence::{EvidenceMetadata, ObjectRecord, EVIDENCE_FILE};
use crate::core::finding::Finding;
use crate::core::gz::{inflate_all, Limits};
use crate::core::layout::{parse_key, CloudTrailKey};
use crate::core::sign::KeySet;
use crate::core::types::S3Location;
use crate::source::aws::AwsOptions;
use crate::source::cloudtrail::{caller_identity, CallerIdentity};
use crate::source::local::{plain_key, LocalEvidence, WritableRoot};
use crate::source::progress::{Observer, Phase, Progress};
use crate::source::s3::{Destination, Listed, RestoreState, RestoreTier, S3Source};
use crate::source::{
    KeyNeeds, KeyProvider, ObjectSource, ReadError, ReadFailure, SourceError, StoredObject,
};

/// The acquisition log at the root of the evidence directory: one entry per run.
pub const ACQUISITION_FILE: &str = "trailproof-acquisition.json";

/// What one acquisition did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AcquireSummary {
    /// Objects the run needs: digests and log files.
    pub wanted: usize,
    /// Objects written, new or changed.
    pub downloaded: usize,
    /// Objects already in the directory as S3 holds them.
    pub unchanged: usize,
    /// Objects named (by a digest, or a listing) that S3 no longer has.
    pub missing: usize,
    /// Objects that could not be copied; see `failures`.
    pub failed: usize,
    /// Objects copied by an earlier acquisition that the bucket no longer has: their copies
    /// are kept and their records marked ([`ObjectRecord::gone`]).
    pub gone: Vec<String>,
    /// Each failure: the key and why.
    pub failures: Vec<String>,
    /// Objects whose copy is the version CloudTrail delivered, recovered from S3 versioning
    /// because the bucket's current version was another one or a delete marker.
    pub recovered: Vec<String>,
    /// Why the bucket's versions were not searched, if they were not (the keys could not be
    /// had, the copy could not be verified).
    pub versions_not_searched: Option<String>,
    /// Objects the run needs that are in an archive storage class (key, storage class): not
    /// copied. A later run copies them once restored.
    pub archived: Vec<(String, String)>,
    /// Of those, the ones whose restore this run asked S3 for.
    pub restore_requested: usize,
    /// Of those, the ones already being restored (asked for by an earlier run).
    pub restore_in_progress: usize,
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
        for key in &self.gone {
            write!(
                f,
                "\n  no longer in the bucket (the copy of an earlier acquisition is kept, recorded as gone): {key}"
            )?;
        }
        for key in &self.recovered {
            write!(
                f,
                "\n  recovered from an earlier version (the bucket's current one is not CloudTrail's): {key}"
            )?;
        }
        if let Some(why) = &self.versions_not_searched {
            write!(f, "\n  object versions were not searched: {why}")?;
        }
        if !self.archived.is_empty() {
            write!(
                f,
                "\n{} archived objects were not copied: restore requested now for {}, already in progress for {}; run again once restored",
                self.archived.len(),
                self.restore_requested,
                self.restore_in_progress
            )?;
            if self.restore_requested + self.restore_in_progress < self.archived.len() {
                write!(f, " (--restore-days N asks S3 to restore them)")?;
            }
        }
        for (key, class) in &self.archived {
            write!(f, "\n  archived ({class}): {key}")?;
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

/// How many times at most the copy is verified and recovered from versions: a recovered
/// digest names log files, which may need recovering in turn.
pub const RECOVERY_ROUNDS: usize = 3;

/// What an acquisition works with besides the bucket, the range and the directory.
pub struct AcquireWith<'a> {
    /// The keys object versions are checked with.
    pub keys: &'a dyn KeyProvider,
    /// Ask S3 to restore the archived objects the range needs: for how many days, how fast.
    pub restore: Option<(i32, RestoreTier)>,
    /// Hears of each phase (digests read, objects downloaded).
    pub observer: &'a dyn Observer,
}

/// Copies the run's objects from `source` into `dir`; then recovers from the bucket's versions
/// what the copy shows tampered with, and asks S3 to restore what is archived, if told to.
pub fn acquire(
    source: &S3Source,
    options: &AwsOptions,
    settings: &Settings,
    dir: &Path,
    with: AcquireWith<'_>,
) -> Result<AcquireSummary, EngineError> {
    let AcquireWith {
        keys,
        restore,
        observer,
    } = with;
    let started = Timestamp::now();
    let bucket = source.bucket().unwrap_or_default();
    let root = WritableRoot::create(dir)?;
    for name in [EVIDENCE_FILE, ACQUISITION_FILE] {
        root.check(name)?;
    }
    let metadata = open_metadata(&root, dir, &bucket)?;
    let Plan {
        range,
        mut digests,
        other_trails,
        unrecognised,
        ahead,
        ..
    } = plan(source, settings, observer)?;
    // `verify` reads the digests of trails the filters leave out but that write to the same
    // folders, to tell their log files from injected ones; and reports those named for a time
    // after its clock.
    digests.extend(other_trails);
    digests.extend(ahead);
    // Digests are read whole (they are small and say which log files to fetch).
    let digest_keys: Vec<String> = digests.iter().map(|d| d.format()).collect();
    let read = {
        let total = Some(digest_keys.len() as u64);
        let progress = Progress::start(observer, Phase::DigestsRead, total);
        source.read_digests(&digest_keys, &progress)
    };
    let wanted_logs = wanted_logs(
        source,
        settings,
        (range, &bucket),
        &read,
        unrecognised,
        observer,
    )?;
    // Before anything is written: a link (or anything but a plain folder or file) where this
    // run would write stops it. Keys that are not plain paths are failures of their own below.
    for key in digest_keys.iter().chain(&wanted_logs) {
        match root.check(key) {
            Ok(()) | Err(SourceError::UnsafeKey { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut copy = Acquisition {
        root,
        metadata,
        summary: AcquireSummary::default(),
        started,
    };
    copy.store_digests(&digest_keys, read);
    let fetch = copy.sort_out_logs(source, &bucket, &wanted_logs);
    copy.fetch(source, fetch, observer);
    copy.mark_gone(source, settings, range);
    write_json(&copy.root, EVIDENCE_FILE, &copy.metadata)?;
    if copy.summary.wanted > 0 {
        copy.recover(source, settings, dir, keys, observer)?;
    }
    if let Some((days, tier)) = restore {
        copy.restore(source, days, tier);
    }
    let Acquisition {
        root,
        metadata: _,
        summary,
        started: _,
    } = copy;
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
    append_record(&root, &record)?;
    Ok(summary)
}

/// The directory's evidence-metadata file, or a new one for `bucket`; a file of another
/// bucket stops the run (one directory holds one bucket's objects).
fn open_metadata(
    root: &WritableRoot,
    dir: &Path,
    bucket: &str,
) -> Result<EvidenceMetadata, EngineError> {
    let metadata = match read_file(root, EVIDENCE_FILE)? {
        Some(bytes) => EvidenceMetadata::parse(&bytes).map_err(|source| SourceError::Evidence {
            path: dir.join(EVIDENCE_FILE),
            source,
        })?,
        None => EvidenceMetadata::new(bucket),
    };
    if metadata.bucket != bucket {
        return Err(EngineError::BucketConflict {
            given: bucket.to_owned(),
            recorded: metadata.bucket,
        });
    }
    Ok(metadata)
}

/// The log files `verify` would read: those the digests `read` name in `bucket`, and every log
/// file listed in the range.
fn wanted_logs(
    source: &S3Source,
    settings: &Settings,
    (range, bucket): (Range, &str),
    read: &[Result<StoredObject, ReadError>],
    in_digest_folders: Vec<String>,
    observer: &dyn Observer,
) -> Result<BTreeSet<String>, EngineError> {
    let mut wanted_logs: BTreeSet<String> = BTreeSet::new();
    for stored in read.iter().flatten() {
        if let Ok(raw) = inflate_all(&stored.bytes, Limits::DIGEST) {
            wanted_logs.extend(
                named_log_files(&raw)
                    .into_iter()
                    .filter(|l| l.bucket == bucket)
                    .map(|l| l.key),
            );
        }
    }
    let listed = Mutex::new(wanted_logs);
    let unrecognised = Mutex::new(in_digest_folders);
    // As `verify` reports them (`unvouched`).
    let clock = super::plan::clock_bound(settings);
    for_each_log(
        source,
        settings,
        &|key, log| {
            let ahead = clock.is_some_and(|c| log.time > c);
            if log.time >= range.start && (log.time <= range.end || ahead) {
                listed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key);
            }
        },
        &|key| {
            unrecognised
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(key)
        },
        observer,
    )?;
    let mut wanted = listed.into_inner().unwrap_or_else(PoisonError::into_inner);
    // What `verify` reports as no CloudTrail file is copied too, chosen by the same rule, so
    // that the copy's verify reports it as the bucket's did. Found by the lead: a file put in
    // a log folder under a name CloudTrail never writes made `verify s3://` exit 1 and the
    // acquired copy's verify exit 0.
    let unrecognised = unrecognised
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    wanted.extend(
        super::unvouched::unrecognised(bucket, settings, range, unrecognised, Vec::new())
            .iter()
            .filter_map(|f| key_of(&f.subject, bucket)),
    );
    Ok(wanted)
}

/// An acquisition under way: the directory, its evidence-metadata file as it will be written,
/// and what was done so far.
struct Acquisition {
    root: WritableRoot,
    metadata: EvidenceMetadata,
    summary: AcquireSummary,
    /// When the run started: what a `gone` mark says.
    started: Timestamp,
}

impl Acquisition {
    /// Downloads `fetch` (current versions) and records what came of it.
    fn fetch(
        &mut self,
        source: &S3Source,
        fetch: Vec<(S3Location, Part)>,
        observer: &dyn Observer,
    ) {
        let keys: Vec<String> = fetch.iter().map(|(l, _)| l.key.clone()).collect();
        let items = fetch.into_iter().map(|(l, p)| (l, None, p)).collect();
        self.store_downloads(keys, source.download(items, observer));
    }

    /// Verifies the copy offline and replaces each object it finds invalid or missing with the
    /// version of it proven CloudTrail's, if the bucket still has one; again for the log files
    /// recovered digests name, up to [`RECOVERY_ROUNDS`] times. Writes the evidence-metadata
    /// file after each round. A copy that cannot be verified (no keys) is said in the summary,
    /// not an error: the current objects were copied.
    fn recover(
        &mut self,
        source: &S3Source,
        settings: &Settings,
        dir: &Path,
        keys: &dyn KeyProvider,
        observer: &dyn Observer,
    ) -> Result<(), EngineError> {
        let bucket = self.metadata.bucket.clone();
        let offline = Settings {
            bucket: Some(bucket.clone()),
            ..settings.clone()
        };
        let mut tried: BTreeSet<String> = BTreeSet::new();
        for _ in 0..RECOVERY_ROUNDS {
            // An archived object was not copied because S3 cannot serve it yet, not because
            // the bucket lost it: an older version is no recovery (found by the red team: an
            // archived copy of a genuine log was reported as an overwrite).
            let archived: BTreeSet<String> = self
                .summary
                .archived
                .iter()
                .map(|(k, _)| k.clone())
                .collect();
            let remembered = RememberedKeys::new(keys);
            let report = LocalEvidence::open(dir)
                .map_err(EngineError::from)
                .and_then(|copy| super::verify(&copy, &remembered, &offline));
            let (report, key_set) = match (report, remembered.taken()) {
                (Ok(report), Some(key_set)) => (report, key_set),
                (Err(e), _) => {
                    self.summary.versions_not_searched = Some(e.to_string());
                    return Ok(());
                }
                (Ok(_), None) => return Ok(()),
            };
            let findings: Vec<Finding> = report
                .chains
                .into_iter()
                .flat_map(|c| c.findings)
                .filter(|f| !tried.contains(&f.subject))
                .filter(|f| key_of(&f.subject, &bucket).is_none_or(|k| !archived.contains(&k)))
                .collect();
            let Some(recovery) = Recovery::of(source, &bucket, &key_set) else {
                return Ok(());
            };
            let mut versions = Vec::new();
            for (index, searched) in recovery.search(&findings) {
                let Some(f) = findings.get(index) else {
                    continue;
                };
                tried.insert(f.subject.clone());
                let Ok(VersionSearch {
                    delivered: Some(delivered),
                    current,
                    ..
                }) = searched
                else {
                    continue;
                };
                let Some(key) = key_of(&f.subject, &bucket) else {
                    continue;
                };
                versions.push((key, delivered, current));
            }
            if versions.is_empty() {
                return Ok(());
            }
            let named = self.store_versions(source, versions, observer);
            let wanted: BTreeSet<String> = named
                .into_iter()
                .filter(|k| !self.metadata.objects.contains_key(k))
                .collect();
            if !wanted.is_empty() {
                for key in &wanted {
                    match self.root.check(key) {
                        Ok(()) | Err(SourceError::UnsafeKey { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let fetch = self.sort_out_logs(source, &bucket, &wanted);
                self.fetch(source, fetch, observer);
            }
            write_json(&self.root, EVIDENCE_FILE, &self.metadata)?;
        }
        Ok(())
    }

    /// Downloads each delivered version over the copy of its key and records it with what the
    /// bucket held; answers the log files the recovered digests name in the bucket.
    fn store_versions(
        &mut self,
        source: &S3Source,
        versions: Vec<(String, VersionRef, CurrentVersion)>,
        observer: &dyn Observer,
    ) -> BTreeSet<String> {
        let bucket = self.metadata.bucket.clone();
        let items = versions
            .iter()
            .map(|(key, v, _)| {
                let part = Part {
                    root: self.root.clone(),
                    key: key.clone(),
                };
                (
                    S3Location::new(&bucket, key),
                    Some(v.version_id.clone()),
                    part,
                )
            })
            .collect();
        let mut named = BTreeSet::new();
        for ((key, delivered, current), result) in
            versions.into_iter().zip(source.download(items, observer))
        {
            match result {
                Ok(mut record) => {
                    record.version_id = Some(delivered.version_id);
                    record.recovered = Some(Recovered {
                        written: delivered.written,
                        current,
                    });
                    if record.signature().is_some() {
                        named.extend(self.named_logs(&key, &bucket));
                    }
                    self.metadata.objects.insert(key.clone(), record);
                    self.summary.recovered.push(key);
                }
                Err(e) => self.fail(&key, &format!("{e:?}")),
            }
        }
        named
    }

    /// The log files in `bucket` that the digest stored at `key` names.
    fn named_logs(&self, key: &str, bucket: &str) -> Vec<String> {
        let Ok(Some(bytes)) = read_file(&self.root, key) else {
            return Vec::new();
        };
        let Ok(raw) = inflate_all(&bytes, Limits::DIGEST) else {
            return Vec::new();
        };
        named_log_files(&raw)
            .into_iter()
            .filter(|l| l.bucket == bucket)
            .map(|l| l.key)
            .collect()
    }

    /// Writes the digests read (unless the same bytes are there) and records them.
    fn store_digests(&mut self, keys: &[String], read: Vec<Result<StoredObject, ReadError>>) {
        for (key, read) in keys.iter().zip(read) {
            self.summary.wanted += 1;
            let read = read.and_then(|stored| writable_key(key).map(|()| stored));
            match read {
                Ok(stored) if self.keeps_recovered(key, stored.record.sha256.as_deref()) => {
                    self.summary.unchanged += 1;
                }
                Ok(stored) => match write_object(&self.root, key, &stored.bytes) {
                    Ok(changed) => {
                        if changed {
                            self.summary.downloaded += 1;
                        } else {
                            self.summary.unchanged += 1;
                        }
                        self.metadata.objects.insert(key.clone(), stored.record);
                    }
                    Err(e) => self.fail(key, &e.to_string()),
                },
                Err(ReadError::NotFound) => self.summary.missing += 1,
                Err(ReadError::Archived(class)) => self.summary.archived.push((key.clone(), class)),
                Err(e) => self.fail(key, &format!("{e:?}")),
            }
        }
    }

    /// Whether the copy of `key` is a version an earlier run recovered, still as recorded,
    /// while the bucket holds something else now (`current_sha256`: the stored bytes' SHA-256
    /// of what S3 holds, when known): it is kept, never replaced by the bucket's current
    /// object. Its content is judged again by the offline verification that follows, as
    /// always; when the bucket holds the same bytes again, the copy is the current object and
    /// its record is made anew.
    fn keeps_recovered(&self, key: &str, current_sha256: Option<&str>) -> bool {
        let Some(old) = self.metadata.objects.get(key) else {
            return false;
        };
        let (Some(_), Some(recorded)) = (&old.recovered, &old.sha256) else {
            return false;
        };
        if current_sha256 == Some(recorded.as_str()) {
            return false;
        }
        matches!(read_file(&self.root, key), Ok(Some(bytes)) if hex::encode(sha2::Sha256::digest(&bytes)) == *recorded)
    }

    /// Asks S3 to restore every archived object the run needs.
    fn restore(&mut self, source: &S3Source, days: i32, tier: RestoreTier) {
        let keys: Vec<String> = self
            .summary
            .archived
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        for (key, asked) in keys.iter().zip(source.restore(&keys, days, tier)) {
            match asked {
                Ok(RestoreState::Requested) => self.summary.restore_requested += 1,
                Ok(RestoreState::InProgress) => self.summary.restore_in_progress += 1,
                Err(e) => self.fail(key, &format!("restore not requested: {e:?}")),
            }
        }
    }

    /// Records the wanted log files already on disk as S3 lists them, and answers the rest,
    /// to download.
    fn sort_out_logs(
        &mut self,
        source: &S3Source,
        bucket: &str,
        wanted: &BTreeSet<String>,
    ) -> Vec<(S3Location, Part)> {
        let mut fetch = Vec::new();
        for key in wanted {
            self.summary.wanted += 1;
            if let Err(e) = writable_key(key) {
                self.fail(key, &format!("{e:?}"));
                continue;
            }
            let old = self.metadata.objects.get(key);
            match unchanged(&self.root, key, source.listed(key), old) {
                Ok(Some(record)) => {
                    self.summary.unchanged += 1;
                    self.metadata.objects.insert(key.clone(), record);
                }
                Ok(None) if self.keeps_recovered(key, None) => self.summary.unchanged += 1,
                Ok(None) => fetch.push((
                    S3Location::new(bucket, key),
                    Part {
                        root: self.root.clone(),
                        key: key.clone(),
                    },
                )),
                Err(e) => self.fail(key, &e.to_string()),
            }
        }
        fetch
    }

    /// Records what the downloads of `keys` came to.
    fn store_downloads(
        &mut self,
        keys: Vec<String>,
        results: Vec<Result<ObjectRecord, ReadError>>,
    ) {
        for (key, result) in keys.into_iter().zip(results) {
            match result {
                Ok(record) => {
                    self.summary.downloaded += 1;
                    self.metadata.objects.insert(key, record);
                }
                Err(ReadError::NotFound) => {
                    self.summary.missing += 1;
                    // Found by the red team: a log file of the day before, named by a digest of
                    // the range, was copied and then deleted; no listing of the run has its
                    // folder, so only this answer says it is gone.
                    self.mark_one_gone(key);
                }
                Err(ReadError::Archived(class)) => self.summary.archived.push((key, class)),
                Err(e) => self.fail(&key, &format!("{e:?}")),
            }
        }
    }

    /// Marks `gone` ([`ObjectRecord::gone`]) the records of objects this run's listings would
    /// have had but did not: the selected chains' digests (their listing is the whole
    /// history) and the selected log files of the range. Their copies stay, as CloudTrail
    /// delivered them; the copy's `verify` says the bucket lost them. Found by the red team: a
    /// log file or the newest digest deleted from an unversioned bucket after a first
    /// acquisition was kept and nothing recorded, so the copy verified valid and the bucket did
    /// not.
    /// Only keys under the source's prefix are its listings' (red team: acquiring another
    /// trail's prefix into the same directory marked every object of the first gone).
    fn mark_gone(&mut self, source: &S3Source, settings: &Settings, range: Range) {
        let mut gone = Vec::new();
        for (key, record) in &self.metadata.objects {
            if record.gone.is_some() || !source.covers(key) || source.listed(key).is_some() {
                continue;
            }
            let listed_by_the_run = match parse_key(key) {
                Ok(CloudTrailKey::Digest(d)) => {
                    selected(settings, &d.scope) && trail_selected(settings, &d)
                }
                Ok(CloudTrailKey::Log(l)) => {
                    selected(settings, &l.scope) && l.time >= range.start && l.time <= range.end
                }
                Err(_) => false,
            };
            if listed_by_the_run {
                gone.push(key.clone());
            }
        }
        for key in gone {
            self.mark_one_gone(key);
        }
    }

    /// Marks `key`'s record `gone`, if the directory has one that is not so marked: the
    /// object was named or listed before and S3 no longer has it.
    fn mark_one_gone(&mut self, key: String) {
        if let Some(record) = self.metadata.objects.get_mut(&key) {
            if record.gone.is_none() {
                record.gone = Some(self.started);
                self.summary.gone.push(key);
            }
        }
    }

    fn fail(&mut self, key: &str, why: &str) {
        self.summary.failed += 1;
        self.summary.failures.push(format!("{key}: {why}"));
    }
}

/// A log file's place in the evidence directory, as a download destination.
struct Part {
    root: WritableRoot,
    key: String,
}

impl Destination for Part {
    fn create(&mut self) -> Result<std::fs::File, ReadError> {
        self.root.create_part(&self.key).map_err(store_failure)
    }

    fn keep(&mut self) -> Result<(), ReadError> {
        self.root.commit(&self.key).map_err(store_failure)
    }

    fn discard(&mut self) {
        self.root.discard(&self.key);
    }
}

/// The record of the copy of `key` on disk if it is the object S3 lists now: the same size,
/// and an MD5 equal to the listed ETag, when that ETag is a single-part MD5 (objects
/// encrypted with KMS or uploaded in parts have other ETags, and are fetched again). The
/// directory's own record is not trusted; only its version id and metadata are carried over
/// when it names the same ETag.
fn unchanged(
    root: &WritableRoot,
    key: &str,
    listed: Option<Listed>,
    old: Option<&ObjectRecord>,
) -> Result<Option<ObjectRecord>, SourceError> {
    let Some(Listed {
        etag: Some(etag),
        size: Some(size),
    }) = listed
    else {
        return Ok(None);
    };
    let md5 = etag.trim_matches('"');
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let Some(mut file) = root.open(key)? else {
        return Ok(None);
    };
    let io = |source| SourceError::Io {
        path: key.into(),
        source,
    };
    if file.metadata().map_err(io)?.len() != size {
        return Ok(None);
    }
    let (mut md5_now, mut sha_now) = (md5::Md5::new(), sha2::Sha256::new());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        md5_now.update(chunk);
        sha_now.update(chunk);
    }
    if !hex::encode(md5_now.finalize()).eq_ignore_ascii_case(md5) {
        return Ok(None);
    }
    // The recovery record and `gone` are not carried: the copy is the current object now.
    let carried = old
        .filter(|o| o.etag.as_deref() == Some(etag.as_str()) && o.recovered.is_none())
        .cloned()
        .unwrap_or_default();
    Ok(Some(ObjectRecord {
        size: Some(size),
        sha256: Some(hex::encode(sha_now.finalize())),
        etag: Some(etag),
        gone: None,
        ..carried
    }))
}

/// Whether the copy of `key` may be written: a plain relative path ([`plain_key`]) that is not,
/// and does not lie under, the directory's own files. Found by the red team: under a trail
/// prefix named `trailproof-evidence.json`, the objects were written and the evidence-metadata
/// file then could not be (exit 2, no metadata left).
fn writable_key(key: &str) -> Result<(), ReadError> {
    plain_key(key)?;
    let first = key.split('/').next().unwrap_or_default();
    if [EVIDENCE_FILE, ACQUISITION_FILE].contains(&first) {
        return Err(ReadError::Escape(format!(
            "key {key:?} would take the place of the directory's {first}"
        )));
    }
    Ok(())
}

/// The key of `subject` (`s3://BUCKET/KEY`) in `bucket`.
fn key_of(subject: &str, bucket: &str) -> Option<String> {
    subject
        .strip_prefix("s3://")?
        .strip_prefix(bucket)?
        .strip_prefix('/')
        .map(str::to_owned)
}

/// A key provider that keeps the keys it gave, so the versions of a run can be checked with
/// the very keys the run used.
struct RememberedKeys<'a> {
    inner: &'a dyn KeyProvider,
    given: Mutex<Option<KeySet>>,
}

impl<'a> RememberedKeys<'a> {
    fn new(inner: &'a dyn KeyProvider) -> Self {
        RememberedKeys {
            inner,
            given: Mutex::new(None),
        }
    }

    fn taken(self) -> Option<KeySet> {
        self.given
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl KeyProvider for RememberedKeys<'_> {
    fn keys(&self, needs: &KeyNeeds) -> Result<KeySet, SourceError> {
        let keys = self.inner.keys(needs)?;
        *self.given.lock().unwrap_or_else(PoisonError::into_inner) = Some(keys.clone());
        Ok(keys)
    }

    fn warm(&self, needs: &KeyNeeds) {
        self.inner.warm(needs);
    }

    fn origin(&self) -> String {
        self.inner.origin()
    }
}

/// A file of the directory, read whole, if it exists.
fn read_file(root: &WritableRoot, name: &str) -> Result<Option<Vec<u8>>, SourceError> {
    let Some(mut file) = root.open(name)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| SourceError::Io {
            path: name.into(),
            source,
        })?;
    Ok(Some(bytes))
}

/// Writes `bytes` at `key` unless the same bytes are already there; says whether it wrote.
fn write_object(root: &WritableRoot, key: &str, bytes: &[u8]) -> Result<bool, SourceError> {
    let same = |file: std::fs::File| -> Result<bool, SourceError> {
        // Read at most one byte more than `bytes`: a longer file differs, however long.
        let mut old = Vec::with_capacity(bytes.len());
        file.take(bytes.len() as u64 + 1)
            .read_to_end(&mut old)
            .map_err(|source| SourceError::Io {
                path: key.into(),
                source,
            })?;
        Ok(old == bytes)
    };
    if let Some(file) = root.open(key)? {
        if same(file)? {
            return Ok(false);
        }
    }
    write_new(root, key, bytes)?;
    Ok(true)
}

/// Writes `bytes` to a new `name.part` and renames it over `name`.
fn write_new(root: &WritableRoot, name: &str, bytes: &[u8]) -> Result<(), SourceError> {
    use std::io::Write as _;
    let mut file = root.create_part(name)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        root.discard(name);
        return Err(SourceError::Io {
            path: name.into(),
            source,
        });
    }
    root.commit(name)
}

fn write_json<T: Serialize>(root: &WritableRoot, name: &str, value: &T) -> Result<(), EngineError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| SourceError::Io {
        path: name.into(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    Ok(write_new(root, name, &bytes)?)
}

fn append_record(root: &WritableRoot, record: &AcquisitionRecord<'_>) -> Result<(), EngineError> {
    let mut runs: Vec<serde_json::Value> = read_file(root, ACQUISITION_FILE)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    runs.push(serde_json::to_value(record).map_err(|e| SourceError::Io {
        path: ACQUISITION_FILE.into(),
        source: std::io::Error::other(e),
    })?);
    write_json(root, ACQUISITION_FILE, &runs)
}

/// A download the evidence directory would not take (a folder in the way, no space): the
/// object is not stored, and says why.
fn store_failure(e: SourceError) -> ReadError {
    let kind = match &e {
        SourceError::Io { source, .. } | SourceError::Root { source, .. } => source.kind(),
        _ => std::io::ErrorKind::Other,
    };
    ReadFailure::Write {
        kind,
        detail: e.to_string(),
    }
    .into()
}
