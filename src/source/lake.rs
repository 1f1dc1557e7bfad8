//! A CloudTrail Lake query's export folder, read through the evidence sources: a local folder
//! (locked to its root like any evidence directory) or an S3 prefix (with the S3 source's
//! retries, deadlines and page checks). The sign file is read whole, within
//! [`MAX_SIGN_FILE`](crate::core::lake::MAX_SIGN_FILE); result files are hashed as they stream,
//! never held.
use std::io::Read;

use rayon::prelude::*;
use sha2::Digest as _;

use super::local::LocalEvidence;
use super::progress::{Progress, Stored};
use super::{ReadError, SourceError};
use crate::core::lake::ResultRead;
use crate::core::types::Sha256;

/// The most entries an export folder may have: a query writes one file per part of its result,
/// far fewer than this.
pub const MAX_FOLDER_ENTRIES: usize = 1_000_000;

/// One export folder. Names are file names in the folder (no `/`), as the sign file gives
/// them; the core has already refused every name that is not a CloudTrail result name.
pub trait ExportFolder: Sync {
    /// The folder or `s3://bucket/prefix/`, for the report.
    fn describe(&self) -> String;
    /// The bucket, when the folder is on S3.
    fn bucket(&self) -> Option<String>;
    /// The subject a file of the folder is reported under (`s3://...`, or its local path).
    fn uri(&self, name: &str) -> String;
    /// Reads a whole file of at most `max` bytes (the sign file).
    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, ReadError>;
    /// Every entry directly in the folder; sub-folders end in `/`. Bounded by
    /// [`MAX_FOLDER_ENTRIES`].
    fn entries(&self) -> Result<Vec<String>, SourceError>;
    /// SHA-256 of each file's stored bytes, streamed; each file reported to `progress`.
    fn hash_files(&self, names: &[String], progress: &Progress<'_>) -> Vec<ResultRead>;
}

/// SHA-256 and size of an object's stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHash {
    /// The hash.
    pub sha256: Sha256,
    /// How many bytes.
    pub size: u64,
}

impl Stored for StoredHash {
    fn stored_bytes(&self) -> u64 {
        self.size
    }
}

/// A read's outcome as the core judges it.
pub fn result_read(read: Result<StoredHash, ReadError>) -> ResultRead {
    match read {
        Ok(h) => ResultRead::Hashed {
            sha256: h.sha256,
            size: h.size,
        },
        Err(ReadError::NotFound) => ResultRead::Missing,
        Err(ReadError::Escape(detail)) => ResultRead::NotAFile(detail),
        Err(ReadError::NotAFile(what)) => ResultRead::NotAFile(what.to_owned()),
        Err(ReadError::OtherBucket) => ResultRead::Unreadable("in another bucket".to_owned()),
        Err(ReadError::Failed(f)) => ResultRead::Unreadable(f.to_string()),
        Err(ReadError::Archived(class)) => {
            ResultRead::Unreadable(format!("archived ({class}), restore it first"))
        }
    }
}

const READ_CHUNK: usize = 256 * 1024;

impl ExportFolder for LocalEvidence {
    fn describe(&self) -> String {
        super::ObjectSource::describe(self)
    }

    fn bucket(&self) -> Option<String> {
        None
    }

    fn uri(&self, name: &str) -> String {
        self.root().join(name).display().to_string()
    }

    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, ReadError> {
        self.read_object(name, max)
    }

    fn entries(&self) -> Result<Vec<String>, SourceError> {
        let io = |source| SourceError::Io {
            path: self.root().to_owned(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.root()).map_err(io)? {
            let entry = entry.map_err(io)?;
            if names.len() == MAX_FOLDER_ENTRIES {
                return Err(SourceError::TooManyEntries {
                    folder: self.root().display().to_string(),
                    max: MAX_FOLDER_ENTRIES,
                });
            }
            // Never followed: a link to a folder is listed as a file, and reads refuse it.
            let folder = entry.file_type().map_err(io)?.is_dir();
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if folder {
                name.push('/');
            }
            names.push(name);
        }
        Ok(names)
    }

    fn hash_files(&self, names: &[String], progress: &Progress<'_>) -> Vec<ResultRead> {
        names
            .par_iter()
            .map_init(
                || vec![0u8; READ_CHUNK],
                |buf, name| {
                    let read = self.hash_file(name, buf);
                    progress.done(read.as_ref().map_or(0, Stored::stored_bytes));
                    result_read(read)
                },
            )
            .collect()
    }
}

impl LocalEvidence {
    /// SHA-256 of a file's bytes, read in chunks through `buf`.
    fn hash_file(&self, name: &str, buf: &mut [u8]) -> Result<StoredHash, ReadError> {
        let mut file = self.open_object(name)?;
        let mut sha = sha2::Sha256::new();
        let mut size = 0u64;
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    size += n as u64;
                    sha.update(buf.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(super::ReadFailure::io(&e).into()),
            }
        }
        Ok(StoredHash {
            sha256: Sha256(sha.finalize().into()),
            size,
        })
    }
}
