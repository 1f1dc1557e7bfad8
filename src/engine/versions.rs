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
                    // Lake exports are judged by their own command, never here.
                    ObjectKind::QuerySign
                    | ObjectKind::QueryResult
                    | ObjectKind::CloudWatchEvent => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Evidence;
    use crate::core::gz::{GzOutcome, Inflater, Limits};
    use crate::source::StoredObject;

    /// One version of a log file: key, version id, written, latest, content (`None`: a delete
    /// marker).
    type Version = (
        &'static str,
        &'static str,
        &'static str,
        bool,
        Option<Vec<u8>>,
    );

    /// A bucket's versions of log files, in memory.
    struct Versions(Vec<Version>);

    impl VersionStore for Versions {
        fn list_versions(&self, keys: &[String]) -> Vec<Result<Vec<ListedVersion>, ReadError>> {
            keys.iter()
                .map(|k| {
                    Ok(self
                        .0
                        .iter()
                        .filter(|v| v.0 == k)
                        .map(|v| ListedVersion {
                            version_id: v.1.into(),
                            written: v.2.parse().unwrap(),
                            latest: v.3,
                            delete_marker: v.4.is_none(),
                        })
                        .collect())
                })
                .collect()
        }
        fn read_digest_versions(
            &self,
            items: &[(String, String)],
        ) -> Vec<Result<StoredObject, ReadError>> {
            items.iter().map(|_| Err(ReadError::NotFound)).collect()
        }
        fn hash_log_versions(
            &self,
            items: &[(String, String)],
        ) -> Vec<Result<GzOutcome, ReadError>> {
            items
                .iter()
                .map(|(k, id)| {
                    let v = self.0.iter().find(|v| v.0 == k && v.1 == id).unwrap();
                    let mut inflater = Inflater::new(Limits::LOG);
                    inflater.update(&gzip(v.4.as_deref().unwrap()));
                    Ok(inflater.finish().0)
                })
                .collect()
        }
    }

    fn gzip(content: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut gz, content).unwrap();
        gz.finish().unwrap()
    }

    fn mismatch(subject: &str) -> Finding {
        Finding::new(subject, Kind::LogHashMismatch, "hash value doesn't match").with(Evidence {
            expected_sha256: Some(Sha256::of(b"delivered")),
            ..Evidence::default()
        })
    }

    #[test]
    fn only_an_older_version_with_the_listed_hash_is_the_delivered_one() {
        let store = Versions(vec![
            (
                "a",
                "v1",
                "2026-01-01T00:00:00Z",
                false,
                Some(b"delivered".to_vec()),
            ),
            (
                "a",
                "v2",
                "2026-01-02T00:00:00Z",
                false,
                Some(b"forged".to_vec()),
            ),
            (
                "a",
                "v3",
                "2026-01-03T00:00:00Z",
                true,
                Some(b"forged again".to_vec()),
            ),
            // The current version holds the delivered content: it was judged already, and a
            // finding on it would not exist; an older forged one is not taken instead.
            (
                "b",
                "w1",
                "2026-01-01T00:00:00Z",
                false,
                Some(b"forged".to_vec()),
            ),
            (
                "b",
                "w2",
                "2026-01-02T00:00:00Z",
                true,
                Some(b"delivered".to_vec()),
            ),
            // Only its current version: nothing to say (an unversioned bucket).
            (
                "c",
                "null",
                "2026-01-01T00:00:00Z",
                true,
                Some(b"forged".to_vec()),
            ),
        ]);
        let keys = KeySet::default();
        let recovery = Recovery {
            store: &store,
            bucket: "bkt",
            keys: &keys,
        };
        let mut findings = vec![
            mismatch("s3://bkt/a"),
            mismatch("s3://bkt/b"),
            mismatch("s3://bkt/c"),
            // Another bucket's object is not this bucket's to search.
            mismatch("s3://other/a"),
            Finding::new("s3://bkt/a", Kind::LogUnreferenced, "not referenced"),
        ];
        assert_eq!(recovery.annotate(&mut findings), None);
        let a = findings[0].versions.as_deref().unwrap();
        assert_eq!(a.checked, 2);
        assert_eq!(a.delivered.as_ref().unwrap().version_id, "v1");
        let b = findings[1].versions.as_deref().unwrap();
        assert_eq!((b.checked, b.delivered.is_none()), (1, true));
        assert!(findings[2..].iter().all(|f| f.versions.is_none()));
    }
}
