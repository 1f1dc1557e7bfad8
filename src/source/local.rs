//! An evidence directory or a plain bucket copy on disk, locked to its root.
//!
//! Objects live at `ROOT/<key>`, as `aws s3 sync s3://BUCKET ROOT` writes them. Every path a
//! digest names is resolved under the root; a key with `..`, an absolute path, a NUL, or a
//! symlink leading out of the root is refused and becomes a finding. Nothing is ever written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use rayon::prelude::*;

use super::progress::{Progress, Stored};
use super::{ListRequest, ObjectSource, ReadError, SourceError, StoredObject};
use crate::core::evidence::{DigestRecords, ObjectRecord, EVIDENCE_FILE};
use crate::core::gz::{GzOutcome, Inflater, Limits};
use crate::core::types::S3Location;

/// Reads at most this much of a digest file; inflated size is bounded by `Limits::DIGEST`.
const MAX_DIGEST_STORED: u64 = 64 << 20;
const READ_CHUNK: usize = 256 * 1024;

/// An opened evidence directory.
#[derive(Debug)]
pub struct LocalEvidence {
    root: PathBuf,
    metadata: Option<DigestRecords>,
    /// How many names the last listing found that are not UTF-8 and so cannot be S3 keys;
    /// reported, not read.
    unusable: AtomicUsize,
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
        let meta_path = root.join(EVIDENCE_FILE);
        let metadata = match std::fs::File::open(&meta_path) {
            // Verification reads only digests' records (their signatures); keeping the log
            // files' would make memory grow with every file of the copy.
            Ok(file) => Some(
                DigestRecords::parse(BufReader::new(file)).map_err(|source| {
                    SourceError::Evidence {
                        path: meta_path,
                        source,
                    }
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SourceError::Io {
                    path: meta_path,
                    source,
                })
            }
        };
        Ok(LocalEvidence {
            root,
            metadata,
            unusable: AtomicUsize::new(0),
            parents: RwLock::default(),
        })
    }

    /// Walks the tree without following directory symlinks (no loops, no escape by listing),
    /// handing each file's key to `each`; nothing is kept.
    fn walk_tree(&self, each: &mut dyn FnMut(String)) -> Result<(), SourceError> {
        let mut unusable = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| SourceError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                let ty = entry.file_type().map_err(|source| SourceError::Io {
                    path: path.clone(),
                    source,
                })?;
                if ty.is_dir() {
                    stack.push(path);
                    continue;
                }
                if ty.is_symlink() && path.is_dir() {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                match rel.to_str() {
                    Some(EVIDENCE_FILE) => {}
                    Some(key) => each(key.replace(std::path::MAIN_SEPARATOR, "/")),
                    None => unusable += 1,
                }
            }
        }
        self.unusable.store(unusable, Ordering::Relaxed);
        Ok(())
    }

    /// Resolves a key to a path under the root, refusing anything that would leave it.
    pub fn resolve(&self, key: &str) -> Result<PathBuf, ReadError> {
        if key.is_empty() || key.contains('\0') {
            return Err(ReadError::Escape(format!("unusable key {key:?}")));
        }
        let rel = Path::new(key);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(ReadError::Escape(format!(
                "key {key:?} is not a plain relative path"
            )));
        }
        let path = self.root.join(rel);
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
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }

    /// Opens an object for streaming.
    pub fn open_object(&self, key: &str) -> Result<File, ReadError> {
        let path = self.resolve(key)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e.to_string()),
        })?;
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
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::Io(e.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(ReadError::Io(format!("larger than {max} bytes")));
        }
        Ok(bytes)
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

impl LocalEvidence {
    /// `buf` is reused from file to file, so it is not zeroed again for each one.
    fn hash_log(
        &self,
        location: &S3Location,
        bucket: &str,
        buf: &mut [u8],
    ) -> Result<GzOutcome, ReadError> {
        if location.bucket != bucket {
            return Err(ReadError::OtherBucket);
        }
        let mut file = self.open_object(&location.key)?;
        let mut inflater = Inflater::new(Limits::LOG);
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => inflater.update(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e.to_string())),
            }
        }
        Ok(inflater.finish().0)
    }
}

impl ObjectSource for LocalEvidence {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn bucket(&self) -> Option<String> {
        self.metadata.as_ref().map(|m| m.bucket.clone())
    }

    /// A directory is listed whole: it is already on disk, so narrowing would save little.
    fn list(
        &self,
        _request: &ListRequest,
        each: &mut dyn FnMut(String),
    ) -> Result<(), SourceError> {
        self.walk_tree(each)
    }

    fn read_digests(&self, keys: &[String]) -> Vec<Result<StoredObject, ReadError>> {
        keys.par_iter()
            .map(|key| {
                let bytes = self.read_object(key, MAX_DIGEST_STORED)?;
                let facts = self
                    .metadata
                    .as_ref()
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
        progress: &Progress,
    ) -> Vec<Result<GzOutcome, ReadError>> {
        locations
            .par_iter()
            .map_init(
                || vec![0u8; READ_CHUNK],
                |buf, l| {
                    let result = self.hash_log(l, bucket, buf);
                    progress.done(result.as_ref().map_or(0, Stored::stored_bytes));
                    result
                },
            )
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let unusable = self.unusable.load(Ordering::Relaxed);
        if unusable > 0 {
            notes.push(format!(
                "{} file names in the evidence are not UTF-8 and cannot be S3 keys; they were not read",
                unusable
            ));
        }
        if self.metadata.is_none() {
            notes.push("no evidence-metadata file: digest signatures were taken from each next digest, so the newest digest of each chain segment cannot be verified without --head-signature".to_owned());
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_locks_reads_to_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("copy");
        std::fs::create_dir_all(root.join("AWSLogs/a")).unwrap();
        std::fs::write(root.join("AWSLogs/a/x.json.gz"), b"x").unwrap();
        std::fs::write(outer.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(
            outer.path().join("secret"),
            root.join("AWSLogs/a/out.json.gz"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outer.path(), root.join("AWSLogs/loop")).unwrap();
        let ev = LocalEvidence::open(&root).unwrap();
        let mut keys = Vec::new();
        let request = ListRequest {
            objects: crate::core::layout::ObjectType::Log,
            range: None,
            accounts: Vec::new(),
            regions: Vec::new(),
        };
        ev.list(&request, &mut |k| keys.push(k)).unwrap();
        keys.sort();
        assert_eq!(keys, ["AWSLogs/a/out.json.gz", "AWSLogs/a/x.json.gz"]);
        assert_eq!(ev.read_object("AWSLogs/a/x.json.gz", 10).unwrap(), b"x");
        assert!(matches!(
            ev.read_object("AWSLogs/a/out.json.gz", 10),
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
            ev.read_object("AWSLogs/a/none.json.gz", 10),
            Err(ReadError::NotFound)
        );
        assert!(matches!(
            ev.read_object("AWSLogs/a/x.json.gz", 0),
            Err(ReadError::Io(_))
        ));
        // The check after opening sees the real path, so a swapped folder would be caught.
        let opened = ev.open_object("AWSLogs/a/x.json.gz").unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(
            opened_path(&opened),
            Some(root.canonicalize().unwrap().join("AWSLogs/a/x.json.gz"))
        );
        // A folder swapped for a link out after its canonical form was cached.
        std::fs::create_dir_all(outer.path().join("elsewhere")).unwrap();
        std::fs::write(outer.path().join("elsewhere/x.json.gz"), b"outside").unwrap();
        std::fs::rename(root.join("AWSLogs/a"), outer.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outer.path().join("elsewhere"), root.join("AWSLogs/a")).unwrap();
        drop(opened);
        assert!(matches!(
            ev.read_object("AWSLogs/a/x.json.gz", 10),
            Err(ReadError::Escape(_))
        ));
    }
}
