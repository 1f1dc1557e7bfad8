//! An evidence directory or a plain bucket copy on disk, locked to its root.
//!
//! Objects live at `ROOT/<key>`, as `aws s3 sync s3://BUCKET ROOT` writes them. Every path a
//! digest names is resolved under the root; a key with `..`, an absolute path, a NUL, or a
//! symlink leading out of the root is refused and becomes a finding. Nothing is ever written.
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::progress::{Observer, Progress, Stored};
use super::{
    InflatedLog, ListRequest, ObjectSource, ReadError, ReadFailure, SourceError, StoredObject,
    Stray, StrayProblem,
};
use crate::core::custody::Recovered;
use crate::core::evidence::{DigestRecords, EvidenceError, ObjectRecord, EVIDENCE_FILE};
use crate::core::gz::{GzOutcome, Inflater, Limits};
use crate::core::types::S3Location;

/// Reads at most this much of a digest file; inflated size is bounded by `Limits::DIGEST`.
const MAX_DIGEST_STORED: u64 = 64 << 20;
const READ_CHUNK: usize = 256 * 1024;

/// An opened evidence directory.
#[derive(Debug)]
pub struct LocalEvidence {
    root: PathBuf,
    /// The evidence-metadata file's digest facts. It names every object of the copy, so it is
    /// parsed on a thread of its own from `open` on, overlapping the first listing; the first
    /// method that needs it waits ([`LocalEvidence::metadata`]). `Err(None)`: its parse
    /// panicked.
    metadata: OnceLock<Result<Option<DigestRecords>, Option<EvidenceError>>>,
    parsing: Mutex<Option<JoinHandle<Result<DigestRecords, EvidenceError>>>>,
    /// What the listings found that no key can name, for [`ObjectSource::strays`].
    strays: Mutex<BTreeSet<Stray>>,
    /// Directories under the root and their canonical paths, filled as keys are resolved.
    parents: RwLock<HashMap<PathBuf, PathBuf>>,
}

impl LocalEvidence {
    /// Opens `dir`, reads its evidence-metadata file if any, and lists every object under it.
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let root = dir.canonicalize().map_err(|source| SourceError::Root {
            path: dir.to_owned(),
            source,
        })?;
        if !root.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
            return Err(SourceError::Root {
                path: dir.to_owned(),
                source,
            });
        }
        let evidence = LocalEvidence {
            root,
            metadata: OnceLock::new(),
            parsing: Mutex::new(None),
            strays: Mutex::default(),
            parents: RwLock::default(),
        };
        // Under the same lock as every object: a link out of the root, a FIFO or a device is
        // refused, never read.
        let meta_path = evidence.root.join(EVIDENCE_FILE);
        match evidence.open_object(EVIDENCE_FILE) {
            // Verification reads only digests' records (their signatures); keeping the log
            // files' would make memory grow with every file of the copy.
            Ok(file) => {
                let parsing =
                    std::thread::spawn(move || DigestRecords::parse(BufReader::new(file)));
                *evidence
                    .parsing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(parsing);
            }
            // Only `hash_log` says `OtherBucket`, for a location in another bucket; only S3
            // says `Archived`.
            Err(ReadError::NotFound | ReadError::OtherBucket | ReadError::Archived(_)) => {
                let _ = evidence.metadata.set(Ok(None));
            }
            Err(ReadError::Escape(detail)) => {
                return Err(SourceError::MetadataEscape {
                    path: meta_path,
                    detail,
                })
            }
            Err(ReadError::NotAFile(what)) => {
                return Err(SourceError::MetadataNotAFile {
                    path: meta_path,
                    what,
                })
            }
            Err(ReadError::Failed(source)) => {
                return Err(SourceError::MetadataUnreadable {
                    path: meta_path,
                    source,
                })
            }
        }
        Ok(evidence)
    }

    /// The evidence-metadata file's digest facts (`None` without the file), once parsed; an
    /// error if it could not be.
    fn metadata(&self) -> Result<Option<&DigestRecords>, SourceError> {
        let mut parsing = self.parsing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = parsing.take() {
            let parsed = match handle.join() {
                Ok(parsed) => parsed.map(Some).map_err(Some),
                Err(_) => Err(None),
            };
            let _ = self.metadata.set(parsed);
        }
        drop(parsing);
        let path = || self.root.join(EVIDENCE_FILE);
        // `open` either set it or left the parse to join above.
        match self.metadata.get_or_init(|| Ok(None)) {
            Ok(m) => Ok(m.as_ref()),
            Err(Some(source)) => Err(SourceError::Evidence {
                path: path(),
                source: source.clone(),
            }),
            Err(None) => Err(SourceError::MetadataIncomplete { path: path() }),
        }
    }

    /// Walks the tree without following directory symlinks (no loops, no escape by listing),
    /// handing `each` the key of every file with `/{folder}/` in its path (every key of that
    /// object type has it); nothing is kept but what no key can name (see [`Stray`]). The
    /// folders of each level are read in parallel.
    fn walk_tree(&self, folder: &str, each: &(dyn Fn(String) + Sync)) -> Result<(), SourceError> {
        let needle = format!("/{folder}/");
        let mut level = vec![self.root.clone()];
        while !level.is_empty() {
            let next = level
                .par_iter()
                .map(|dir| self.walk_folder(dir, &needle, each))
                .collect::<Result<Vec<_>, _>>()?;
            level = next.into_iter().flatten().collect();
        }
        Ok(())
    }

    /// One folder of [`LocalEvidence::walk_tree`]: hands on its files, returns its folders.
    fn walk_folder(
        &self,
        dir: &Path,
        needle: &str,
        each: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<PathBuf>, SourceError> {
        let mut folders = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            let ty = entry.file_type().map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
            if ty.is_dir() {
                folders.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(&self.root) else {
                continue;
            };
            let key = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            if ty.is_symlink() && path.is_dir() {
                // Anything below AWSLogs/ may hold CloudTrail folders: what the link leads to
                // was not listed, so it is reported rather than followed.
                let key = key + "/";
                if key.contains(needle) || key.starts_with("AWSLogs/") || key.contains("/AWSLogs/")
                {
                    let out = path
                        .canonicalize()
                        .map_or(true, |real| !real.starts_with(&self.root));
                    let target = std::fs::read_link(&path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    self.stray(key, StrayProblem::FolderLink { target, out });
                }
                continue;
            }
            match rel.to_str() {
                Some(EVIDENCE_FILE) => {}
                Some(_) if key.contains(needle) => each(key),
                Some(_) => {}
                None if key.contains(needle) => {
                    let raw = format!("{:?}", rel.as_os_str());
                    self.stray(key, StrayProblem::NotUtf8 { raw });
                }
                None => {}
            }
        }
        Ok(folders)
    }

    fn stray(&self, key: String, problem: StrayProblem) {
        self.strays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Stray { key, problem });
    }

    /// The evidence directory, as its canonical path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a key to a path under the root, refusing anything that would leave it.
    pub fn resolve(&self, key: &str) -> Result<PathBuf, ReadError> {
        let path = self.root.join(plain_key(key)?);
        // Most keys share a few day folders: a parent already known to lie under the root
        // costs one lstat of the file instead of a readlink per path component.
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            let known = self
                .parents
                .read()
                .ok()
                .and_then(|p| p.get(parent).cloned());
            let real_parent = known.or_else(|| {
                let real = parent.canonicalize().ok()?;
                if !real.starts_with(&self.root) {
                    return None;
                }
                if let Ok(mut p) = self.parents.write() {
                    p.insert(parent.to_owned(), real.clone());
                }
                Some(real)
            });
            if let Some(real_parent) = real_parent {
                if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_symlink()) {
                    return Ok(real_parent.join(name));
                }
            }
        }
        match path.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(real),
            Ok(real) => Err(ReadError::Escape(format!(
                "{key} resolves to {}",
                real.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink is still a link: say where it points rather than "missing".
                match std::fs::read_link(&path) {
                    Ok(target) => Err(ReadError::Escape(format!(
                        "{key} is a dangling link to {}",
                        target.display()
                    ))),
                    Err(_) => Err(ReadError::NotFound),
                }
            }
            Err(e) => Err(ReadFailure::io(&e).into()),
        }
    }

    /// Opens an object for streaming: a regular file under the root, nothing else.
    pub fn open_object(&self, key: &str) -> Result<File, ReadError> {
        let path = self.resolve(key)?;
        let file = open_regular(&path)?;
        // `resolve` checked the path, but a folder swapped for a symlink since then (or since
        // its canonical form was cached) would be followed by `open`: check what was opened.
        match opened_path(&file) {
            Some(real) if !real.starts_with(&self.root) => Err(ReadError::Escape(format!(
                "{key} resolves to {}",
                real.display()
            ))),
            _ => Ok(file),
        }
    }

    /// Reads a whole object, refusing more than `max` bytes (digests are held in memory).
    pub fn read_object(&self, key: &str, max: u64) -> Result<Vec<u8>, ReadError> {
        let file = self.open_object(key)?;
        let too_large = || ReadError::Failed(ReadFailure::TooLarge { max });
        // A file stating more than `max` bytes (a sparse one costs no disk) is not read at all.
        if file.metadata().is_ok_and(|m| m.len() > max) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadFailure::io(&e))?;
        if bytes.len() as u64 > max {
            return Err(too_large());
        }
        Ok(bytes)
    }
}

/// Opens `path` for reading if it is a regular file. A FIFO would block `open` until a writer
/// came, and a FIFO or a device (`/dev/zero`, as a tar extracted by root creates) could be read
/// forever: neither is ever read. The type is checked before opening (opening a device can have
/// effects of its own) and again on what was opened (it may have been swapped in between);
/// the open does not block.
fn open_regular(path: &Path) -> Result<File, ReadError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadFailure::io(&e).into(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    // A copy holds the objects `KEY/...` as files in a folder `KEY`, which S3 keeps apart
    // from an object `KEY`: the folder is not that object, which is absent. Found by the red
    // team: with `KEY` deleted and `KEY/x` put, the bucket's run said "not found" and the
    // copy's "invalid format".
    if meta.is_dir() {
        return Err(ReadError::NotFound);
    }
    regular(&meta)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // On a regular file O_NONBLOCK changes nothing; O_NOCTTY keeps a terminal from becoming
        // ours should one be swapped in.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(io)?;
    regular(&file.metadata().map_err(io)?)?;
    Ok(file)
}

/// `Ok` for a regular file, else what it is instead.
fn regular(meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let ty = meta.file_type();
    if ty.is_file() {
        return Ok(());
    }
    Err(ReadError::NotAFile(file_type_name(ty)))
}

/// What a file that is not a regular one is, in words.
fn file_type_name(ty: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO";
        }
        if ty.is_char_device() {
            return "a character device";
        }
        if ty.is_block_device() {
            return "a block device";
        }
        if ty.is_socket() {
            return "a socket";
        }
    }
    if ty.is_dir() {
        "a folder"
    } else if ty.is_symlink() {
        "a link"
    } else {
        "not a regular file"
    }
}

/// The path the kernel has for an open file (Linux: `/proc/self/fd/N`); `None` where that is not
/// available, and then only `resolve`'s check stands.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

/// A key as a path relative to a root, refused if it is empty, holds a NUL, or has any part
/// but plain names (`..`, `.`, a root or a drive): such keys would resolve outside it. Refused
/// too when the path would name the file of another key: paths drop an empty part (`a//b`,
/// a trailing `/`) and an inner `.`, S3 keys do not, so `a/./b` is the file `a/b` and a copy
/// of it would overwrite that key's.
pub fn plain_key(key: &str) -> Result<&Path, ReadError> {
    if key.is_empty() || key.contains('\0') {
        return Err(ReadError::Escape(format!("unusable key {key:?}")));
    }
    let rel = Path::new(key);
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
        || rel.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ReadError::Escape(format!(
            "key {key:?} is not a plain relative path"
        )));
    }
    Ok(rel)
}

/// An evidence directory being written (by `acquire`), locked to its root as a directory
/// being read is: names are plain relative paths ([`plain_key`]); every folder on the way to a
/// file must be a plain folder and every file read or replaced a plain file, never a symbolic
/// link (nor a FIFO or device); files are made new (`create_new`: `O_CREAT|O_EXCL`, which
/// never follows a link) as `NAME.part` and a byte no key has (see `part_of`), renamed over
/// `NAME` once complete; and on Linux what
/// was opened is checked to lie under the root (`opened_path`), so a folder swapped for a
/// link while the run goes on is caught too.
#[derive(Debug, Clone)]
pub struct WritableRoot {
    root: PathBuf,
}

impl WritableRoot {
    /// Creates `dir` if need be and locks to it.
    pub fn create(dir: &Path) -> Result<Self, SourceError> {
        let root_error = |source| SourceError::Root {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(root_error)?;
        Ok(WritableRoot {
            root: dir.canonicalize().map_err(root_error)?,
        })
    }

    /// Checks, touching nothing, that `name` and `name.part` could be written: every part of
    /// the way that exists is a plain folder, and each of the two files, if it exists, a plain
    /// file.
    pub fn check(&self, name: &str) -> Result<(), SourceError> {
        if self.folders(name, false)? {
            let path = self.path(name)?;
            plain(&path, false)?;
            plain(&part_of(&path), false)?;
        }
        Ok(())
    }

    /// Opens `name` for reading if it exists.
    pub fn open(&self, name: &str) -> Result<Option<File>, SourceError> {
        if !self.folders(name, false)? {
            return Ok(None);
        }
        let path = self.path(name)?;
        if !plain(&path, false)? {
            return Ok(None);
        }
        let file = File::open(&path).map_err(|source| write_root_error(&path, source))?;
        self.opened_under_root(&file, &path)?;
        Ok(Some(file))
    }

    /// Makes the folders on the way to `name` and a new, empty `name.part` (an old plain one,
    /// left by an interrupted run, is removed first).
    pub fn create_part(&self, name: &str) -> Result<File, SourceError> {
        self.folders(name, true)?;
        let part = part_of(&self.path(name)?);
        if plain(&part, false)? {
            std::fs::remove_file(&part).map_err(|source| write_root_error(&part, source))?;
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&part)
            .map_err(|source| write_root_error(&part, source))?;
        if let Err(e) = self.opened_under_root(&file, &part) {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        Ok(file)
    }

    /// Renames a complete `name.part` over `name`, which must be a plain file if it exists.
    pub fn commit(&self, name: &str) -> Result<(), SourceError> {
        let path = self.path(name)?;
        plain(&path, false)?;
        let part = part_of(&path);
        std::fs::rename(&part, &path).map_err(|source| write_root_error(&path, source))
    }

    /// Removes `name.part` if it is a plain file.
    pub fn discard(&self, name: &str) {
        if let Ok(part) = self.path(name).map(|p| part_of(&p)) {
            if plain(&part, false).unwrap_or(false) {
                let _ = std::fs::remove_file(part);
            }
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf, SourceError> {
        let rel = plain_key(name).map_err(|_| SourceError::UnsafeKey {
            key: name.to_owned(),
        })?;
        Ok(self.root.join(rel))
    }

    /// Walks the folders from the root to `name`'s, each of which must be a plain folder,
    /// making those missing when `make` is set. Answers whether `name`'s folder exists
    /// (always, once made).
    fn folders(&self, name: &str, make: bool) -> Result<bool, SourceError> {
        let rel = plain_key(name).map_err(|_| SourceError::UnsafeKey {
            key: name.to_owned(),
        })?;
        let mut folder = self.root.clone();
        let parts: Vec<_> = rel.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            folder.push(part);
            if plain(&folder, true)? {
                continue;
            }
            if !make {
                return Ok(false);
            }
            // `create_dir` does not follow a link put there meanwhile: it fails. Another writer
            // of this run may have made the folder since it was looked at: then it must be a
            // plain folder now, as if it had been there.
            match std::fs::create_dir(&folder) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !plain(&folder, true)? {
                        return Err(write_root_error(&folder, e));
                    }
                }
                Err(e) => return Err(write_root_error(&folder, e)),
            }
        }
        Ok(true)
    }

    fn opened_under_root(&self, file: &File, path: &Path) -> Result<(), SourceError> {
        match opened_path(file) {
            Some(real) if !real.starts_with(&self.root) => Err(SourceError::NotPlain {
                path: path.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Whether `path` exists as a plain folder (`dir`) or a plain file; an error when something
/// else is there (a link, a FIFO, a device, a file where a folder should be).
fn plain(path: &Path, dir: bool) -> Result<bool, SourceError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if (dir && m.is_dir()) || (!dir && m.is_file()) => Ok(true),
        Ok(_) => Err(SourceError::NotPlain {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(write_root_error(path, source)),
    }
}

/// Where `path` is written before it is complete: its name and `.part`, then a byte that is
/// not UTF-8. Every key is UTF-8, so this is no key's file: found by the red team, with
/// `NAME.part` the copy of an object at `KEY.part` was removed, or took the bytes of `KEY`,
/// when `KEY` was fetched.
fn part_of(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut part = path.as_os_str().to_owned();
    part.push(std::ffi::OsStr::from_bytes(b".part\xff"));
    PathBuf::from(part)
}

fn write_root_error(path: &Path, source: std::io::Error) -> SourceError {
    SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

impl LocalEvidence {
    /// Streams a log file through `inflater`. `buf` is reused from file to file, so it is not
    /// zeroed again for each one.
    fn inflate_log(
        &self,
        location: &S3Location,
        bucket: &str,
        buf: &mut [u8],
        mut inflater: Inflater,
    ) -> Result<Inflater, ReadError> {
        if location.bucket != bucket {
            return Err(ReadError::OtherBucket);
        }
        let mut file = self.open_object(&location.key)?;
        let len = file.metadata().map_err(|e| ReadFailure::io(&e))?.len();
        let mut read = 0u64;
        // Once the verdict is known (a complete member followed by data, or a failure) the rest
        // is only counted: a member followed by a 16 GiB sparse tail is not read to its end.
        while !inflater.decided() {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    read += n as u64;
                    inflater.update(buf.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadFailure::io(&e).into()),
            }
        }
        inflater.skip(len.saturating_sub(read));
        Ok(inflater)
    }
}

impl ObjectSource for LocalEvidence {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn bucket(&self) -> Option<String> {
        self.metadata().ok().flatten().map(|m| m.bucket.clone())
    }

    /// A directory is walked whole, whatever the accounts, Regions and times: narrowing would
    /// save little on a disk.
    fn list(
        &self,
        request: &ListRequest,
        each: &(dyn Fn(String) + Sync),
        _observer: &dyn Observer,
    ) -> Result<(), SourceError> {
        self.walk_tree(request.objects.folder(), each)?;
        // The first listing is the first call of a run: a bad evidence-metadata file stops it.
        self.metadata().map(drop)
    }

    fn read_digests(
        &self,
        keys: &[String],
        progress: &Progress<'_>,
    ) -> Vec<Result<StoredObject, ReadError>> {
        // A bad file has stopped the run at its first listing.
        let metadata = self.metadata().ok().flatten();
        keys.par_iter()
            .map(|key| {
                let bytes = self.read_object(key, MAX_DIGEST_STORED)?;
                progress.done(bytes.len() as u64);
                let facts = metadata
                    .and_then(|m| m.digests.get(key))
                    .cloned()
                    .unwrap_or_default();
                Ok(StoredObject {
                    bytes,
                    facts,
                    record: ObjectRecord::default(),
                })
            })
            .collect()
    }

    fn hash_logs(
        &self,
        bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<GzOutcome, ReadError>> {
        locations
            .par_iter()
            .map_init(
                || vec![0u8; READ_CHUNK],
                |buf, l| {
                    let result = self
                        .inflate_log(l, bucket, buf, Inflater::new(Limits::LOG))
                        .map(|i| i.finish().0);
                    progress.done(result.as_ref().map_or(0, Stored::stored_bytes));
                    result
                },
            )
            .collect()
    }

    fn inflate_logs(
        &self,
        bucket: &str,
        locations: &[&S3Location],
        progress: &Progress<'_>,
    ) -> Vec<Result<InflatedLog, ReadError>> {
        locations
            .par_iter()
            .map_init(
                || vec![0u8; READ_CHUNK],
                |buf, l| {
                    let inflater = Inflater::new(Limits::LOG).keep_output();
                    let result = self.inflate_log(l, bucket, buf, inflater).and_then(|i| {
                        Ok(InflatedLog {
                            inflated: i.finish_kept().ok_or(ReadFailure::NoResult)?,
                            version_id: None,
                        })
                    });
                    progress.done(result.as_ref().map_or(0, Stored::stored_bytes));
                    result
                },
            )
            .collect()
    }

    fn recovered(&self, key: &str) -> Option<(Option<String>, Recovered)> {
        self.metadata().ok().flatten()?.recovered.get(key).cloned()
    }

    fn gone(&self, key: &str) -> Option<jiff::Timestamp> {
        self.metadata().ok().flatten()?.gone.get(key).copied()
    }

    fn recorded_digests(&self) -> Vec<String> {
        self.metadata()
            .ok()
            .flatten()
            .map(|m| m.digests.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn strays(&self) -> Vec<Stray> {
        self.strays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if matches!(self.metadata(), Ok(None)) {
            notes.push("no evidence-metadata file: digest signatures were taken from each next digest, so the newest digest of each chain segment cannot be verified without --head-signature".to_owned());
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::progress::NoObserver;

    /// Paths drop empty parts and inner `.`s that S3 keys keep: `acquire` would have written
    /// the object at `a/./b` (or `a/b/`) over the copy of `a/b`.
    #[test]
    fn a_key_that_names_another_keys_file_is_not_plain() {
        assert_eq!(
            plain_key("AWSLogs/a/b.json.gz").unwrap(),
            Path::new("AWSLogs/a/b.json.gz")
        );
        for key in [
            "AWSLogs/a/./b.json.gz",
            "AWSLogs/a//b.json.gz",
            "AWSLogs/a/b.json.gz/",
            "./AWSLogs/a/b.json.gz",
            "/AWSLogs/a/b.json.gz",
            "AWSLogs/../b.json.gz",
            "",
        ] {
            assert!(plain_key(key).is_err(), "{key:?}");
        }
    }

    #[test]
    fn a_bad_evidence_metadata_file_stops_the_first_listing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(EVIDENCE_FILE), b"{\"format\": 1").unwrap();
        let ev = LocalEvidence::open(root.path()).unwrap();
        let request = ListRequest {
            objects: crate::core::layout::ObjectType::Digest,
            range: None,
            to_now: false,
            accounts: Vec::new(),
            regions: Vec::new(),
        };
        for _ in 0..2 {
            let err = ev
                .list(&request, &|_| {}, &NoObserver)
                .unwrap_err()
                .to_string();
            assert!(err.contains(EVIDENCE_FILE), "{err}");
        }
        assert_eq!(ev.bucket(), None);
        assert!(ev.notes().is_empty(), "the file is there, just bad");
    }

    /// A FIFO in place of a log, a digest or the evidence-metadata file hung the run: `open`
    /// blocks until a writer comes.
    #[test]
    fn a_fifo_is_never_opened_for_reading() {
        let root = tempfile::tempdir().unwrap();
        let fifo = |name: &str| {
            let path = root.path().join(name);
            assert!(std::process::Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success());
        };
        fifo("log.json.gz");
        let ev = LocalEvidence::open(root.path()).unwrap();
        assert_eq!(
            ev.read_object("log.json.gz", 10),
            Err(ReadError::NotAFile("a FIFO"))
        );
        // A folder holds other keys' copies (`folder/x`): the object `folder` is absent.
        std::fs::create_dir(root.path().join("folder")).unwrap();
        assert_eq!(ev.read_object("folder", 10), Err(ReadError::NotFound));
        fifo(EVIDENCE_FILE);
        let err = LocalEvidence::open(root.path()).unwrap_err();
        assert!(
            matches!(err, SourceError::MetadataNotAFile { what: "a FIFO", .. }),
            "{err}"
        );
    }

    #[test]
    fn lists_and_locks_reads_to_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("copy");
        std::fs::create_dir_all(root.join("AWSLogs/CloudTrail")).unwrap();
        std::fs::write(root.join("AWSLogs/CloudTrail/x.json.gz"), b"x").unwrap();
        // Listed only when digests are asked for.
        std::fs::create_dir_all(root.join("AWSLogs/CloudTrail-Digest")).unwrap();
        std::fs::write(root.join("AWSLogs/CloudTrail-Digest/d.json.gz"), b"d").unwrap();
        std::fs::write(outer.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(
            outer.path().join("secret"),
            root.join("AWSLogs/CloudTrail/out.json.gz"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outer.path(), root.join("AWSLogs/loop")).unwrap();
        let ev = LocalEvidence::open(&root).unwrap();
        let keys = std::sync::Mutex::new(Vec::new());
        let request = ListRequest {
            objects: crate::core::layout::ObjectType::Log,
            range: None,
            to_now: false,
            accounts: Vec::new(),
            regions: Vec::new(),
        };
        ev.list(&request, &|k| keys.lock().unwrap().push(k), &NoObserver)
            .unwrap();
        let mut keys = keys.into_inner().unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                "AWSLogs/CloudTrail/out.json.gz",
                "AWSLogs/CloudTrail/x.json.gz"
            ]
        );
        // The link to a folder is not followed, but kept to be reported.
        assert_eq!(
            ev.strays(),
            [Stray {
                key: "AWSLogs/loop/".into(),
                problem: StrayProblem::FolderLink {
                    target: outer.path().display().to_string(),
                    out: true
                }
            }]
        );
        assert_eq!(
            ev.read_object("AWSLogs/CloudTrail/x.json.gz", 10).unwrap(),
            b"x"
        );
        assert!(matches!(
            ev.read_object("AWSLogs/CloudTrail/out.json.gz", 10),
            Err(ReadError::Escape(_))
        ));
        assert!(matches!(
            ev.read_object("AWSLogs/../../secret", 10),
            Err(ReadError::Escape(_))
        ));
        assert!(matches!(
            ev.read_object("/etc/passwd", 10),
            Err(ReadError::Escape(_))
        ));
        assert!(matches!(
            ev.read_object("AWSLogs/loop/secret", 10),
            Err(ReadError::Escape(_))
        ));
        assert!(matches!(
            ev.read_object("a\0b", 10),
            Err(ReadError::Escape(_))
        ));
        assert_eq!(
            ev.read_object("AWSLogs/CloudTrail/none.json.gz", 10),
            Err(ReadError::NotFound)
        );
        assert!(matches!(
            ev.read_object("AWSLogs/CloudTrail/x.json.gz", 0),
            Err(ReadError::Failed(ReadFailure::TooLarge { max: 0 }))
        ));
        // The check after opening sees the real path, so a swapped folder would be caught.
        let opened = ev.open_object("AWSLogs/CloudTrail/x.json.gz").unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(
            opened_path(&opened),
            Some(
                root.canonicalize()
                    .unwrap()
                    .join("AWSLogs/CloudTrail/x.json.gz")
            )
        );
        // A folder swapped for a link out after its canonical form was cached.
        std::fs::create_dir_all(outer.path().join("elsewhere")).unwrap();
        std::fs::write(outer.path().join("elsewhere/x.json.gz"), b"outside").unwrap();
        std::fs::rename(root.join("AWSLogs/CloudTrail"), outer.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(
            outer.path().join("elsewhere"),
            root.join("AWSLogs/CloudTrail"),
        )
        .unwrap();
        drop(opened);
        assert!(matches!(
            ev.read_object("AWSLogs/CloudTrail/x.json.gz", 10),
            Err(ReadError::Escape(_))
        ));
    }
}
