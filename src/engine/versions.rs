//! Version recovery: for each object of a chain found invalid, missing or moved on a source
//! with object versions (a versioned S3 bucket), the key's versions are listed and each one is
//! checked as CloudTrail's delivery would be — a log version by its inflated SHA-256 against the
//! hash the verified digest lists, a digest version by its signature at its own key
//! ([`verify_digest_object`], the rules of the main path). What was found is told on the
//! finding ([`Finding::versions`]); its verdict, on what the bucket holds now, is unchanged.
//! A version is never taken on its id, its time or its metadata alone: anyone allowed to write
//! to the bucket can add versions.

use crate::core::custody::{log_version_is_delivered, ListedVersion, VersionRef, VersionSearch};
use crate::core::finding::{Finding, Kind, ObjectKind};
use crate::core::sign::KeySet;
use crate::core::types::{S3Location, Sha256};
use crate::core::verify::{verify_digest_object, DigestObject};
use crate::source::{ObjectSource, ReadError, VersionStore};

/// The version store of a run's source, with what checking a version needs.
pub(crate) struct Recovery<'a> {
    store: &'a dyn VersionStore,
    bucket: &'a str,
    keys: &'a KeySet,
}

/// An object a finding names that is worth looking for in its versions.
struct Wanted {
    /// Where the finding is, in the slice given.
    index: usize,
    key: String,
    object: ObjectKind,
    /// The SHA-256 its content must have, when a verified digest states it (a log file's
    /// `hashValue`, a digest's `previousDigestHashValue` in the next digest).
    expected: Option<Sha256>,
}

/// What one object's versions came to: its search, for the finding, or why the versions could
/// not be listed.
pub(crate) type Searched = (usize, Result<VersionSearch, ReadError>);

impl<'a> Recovery<'a> {
    /// Recovery on `source`, if it has versions.
    pub(crate) fn of(
        source: &'a dyn ObjectSource,
        bucket: &'a str,
        keys: &'a KeySet,
    ) -> Option<Self> {
        Some(Recovery {
            store: source.versions()?,
            bucket,
            keys,
        })
    }

    /// Puts on each finding that is worth it what its key's versions hold; answers a note for
    /// the report if some keys' versions could not be listed (no `s3:ListBucketVersions`).
    pub(crate) fn annotate(&self, findings: &mut [Finding]) -> Option<String> {
        let mut failed = Vec::new();
        for (index, searched) in self.search(findings) {
            match (searched, findings.get_mut(index)) {
                (Ok(search), Some(f)) => f.versions = Some(Box::new(search)),
                (Err(e), Some(f)) => failed.push((f.subject.clone(), e)),
                (_, None) => {}
            }
        }
        let (subject, why) = failed.first()?;
        Some(format!(
            "the versions of {} invalid or missing object{} could not be listed, so none was recovered (first: {subject}: {}); S3 versioning needs s3:ListBucketVersions and s3:GetObjectVersion",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            read_error_text(why)
        ))
    }

    /// The version search of every finding in `findings` that recovery applies to (by index);
    /// keys with nothing worth saying (only their current version, or nothing at all) are left
    /// out.
    pub(crate) fn search(&self, findings: &[Finding]) -> Vec<Searched> {
        let wanted: Vec<Wanted> = findings
            .iter()
            .enumerate()
            .filter_map(|(index, f)| self.wanted(index, f))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = wanted.iter().map(|w| w.key.clone()).collect();
        let listed = self.store.list_versions(&keys);
        let mut out = Vec::new();
        let mut to_check: Vec<(&Wanted, Vec<ListedVersion>)> = Vec::new();
        for (w, listed) in wanted.iter().zip(listed) {
            match listed {
                Ok(listed) if VersionSearch::worth_reporting(&listed) => to_check.push((w, listed)),
                Ok(_) => {}
                Err(e) => out.push((w.index, Err(e))),
            }
        }
        let delivered = self.delivered(&to_check);
        for ((w, listed), (checked, delivered)) in to_check.iter().zip(delivered) {
            out.push((w.index, Ok(VersionSearch::new(listed, checked, delivered))));
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Whether `f` is about an object of the run's bucket that is invalid, missing or moved,
    /// whose delivered content can be told by a hash or a signature.
    fn wanted(&self, index: usize, f: &Finding) -> Option<Wanted> {
        use Kind::*;
        let recoverable = matches!(
            f.kind,
            LogMissing
                | LogHashMismatch
                | LogFormat
                | LogTruncated
                | LogTrailingData
                | DigestMissing
                | DigestMoved
                | DigestFormat
                | DigestSignatureInvalid
                | DigestKeyNotValid
                | DigestLinkHashMismatch
                | DigestLinkSignatureMismatch
                | DigestUnlinked
        );
        if !recoverable {
            return None;
        }
        let key = f
            .subject
            .strip_prefix("s3://")?
            .strip_prefix(self.bucket)?
            .strip_prefix('/')?;
        let object = f.kind.object();
        let expected = f.evidence.expected_sha256;
        // A log version is told only by the hash its digest lists.
        if object == ObjectKind::Log && expected.is_none() {
            return None;
        }
        Some(Wanted {
            index,
            key: key.to_owned(),
            object,
            expected,
        })
    }

    /// For each object, how many versions were checked and the newest that is CloudTrail's.
    /// The versions of all objects are read in one call per kind, so the source can run them
    /// in parallel.
    fn delivered(
        &self,
        objects: &[(&Wanted, Vec<ListedVersion>)],
    ) -> Vec<(usize, Option<VersionRef>)> {
        let mut digest_items = Vec::new();
        let mut log_items = Vec::new();
        for (n, (w, listed)) in objects.iter().enumerate() {
            for v in VersionSearch::candidates(listed) {
                let item = (n, w.key.clone(), v.version_id.clone(), v.written);
                match w.object {
                    ObjectKind::Digest => digest_items.push(item),
                    ObjectKind::Log => log_items.push(item),
                }
            }
        }
        let mut found: Vec<(usize, Option<VersionRef>)> = vec![(0, None); objects.len()];
        let pairs = |items: &[(usize, String, String, jiff::Timestamp)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(_, k, v, _)| (k.clone(), v.clone()))
                .collect()
        };
        let digests = self.store.read_digest_versions(&pairs(&digest_items));
        for ((n, key, version_id, written), read) in digest_items.into_iter().zip(digests) {
            let expected = objects.get(n).and_then(|(w, _)| w.expected);
            let delivered = read.is_ok_and(|stored| {
                let location = S3Location::new(self.bucket, &key);
                let signature = stored.facts.signature.unwrap_or_default();
                verify_digest_object(
                    DigestObject {
                        location: &location,
                        stored: &stored.bytes,
                        signature: &signature,
                        generated: &stored.facts.backfill_generated,
                    },
                    self.keys,
                )
                .is_ok_and(|v| expected.is_none_or(|e| v.digest().sha256() == e))
            });
            note(&mut found, n, delivered, version_id, written);
        }
        let logs = self.store.hash_log_versions(&pairs(&log_items));
        for ((n, _, version_id, written), outcome) in log_items.into_iter().zip(logs) {
            let expected = objects.get(n).and_then(|(w, _)| w.expected);
            let delivered = match (outcome, expected) {
                (Ok(outcome), Some(e)) => log_version_is_delivered(&outcome, &e),
                _ => false,
            };
            note(&mut found, n, delivered, version_id, written);
        }
        found
    }
}

/// Counts a version checked for object `n`, keeping the first (newest) delivered one.
fn note(
    found: &mut [(usize, Option<VersionRef>)],
    n: usize,
    delivered: bool,
    version_id: String,
    written: jiff::Timestamp,
) {
    if let Some((checked, first)) = found.get_mut(n) {
        *checked += 1;
        if delivered && first.is_none() {
            *first = Some(VersionRef {
                version_id,
                written,
            });
        }
    }
}

fn read_error_text(e: &ReadError) -> String {
    match e {
        ReadError::Failed(f) => f.to_string(),
        ReadError::NotFound => "not found".to_owned(),
        other => format!("{other:?}"),
    }
}
