//! The evidence-metadata file `trailproof-evidence.json` at the root of an evidence directory.
//!
//! `aws s3 sync` drops S3 object metadata, and with it each digest's signature. This file keeps
//! what S3 said about every object when the evidence was acquired:
//!
//! ```json
//! {"format": "trailproof-evidence/1",
//!  "bucket": "my-trail-bucket",
//!  "objects": {
//!    "AWSLogs/.../x_CloudTrail-Digest_..._20260101T010404Z.json.gz": {
//!      "size": 1234, "etag": "\"9b2c...\"", "version_id": null,
//!      "sha256": "<hex SHA-256 of the stored bytes>",
//!      "metadata": {"signature": "<hex>", "signature-algorithm": "SHA256withRSA"}},
//!    "AWSLogs/.../x_CloudTrail_us-east-1_20260101T0005Z_abcdefgh12345678.json.gz": {
//!      "size": 999, "etag": "\"...\"", "version_id": null, "sha256": "...", "metadata": {}}}}
//! ```
//! `metadata` holds the S3 user metadata with the `x-amz-meta-` prefix removed and names in
//! lower case (`signature`, `signature-algorithm`, and on backfill digests
//! `backfill-generation-timestamp`). Every field but `format`, `bucket` and `objects` is optional
//! per object, so a partial record (for example signatures only) is valid.
//!
//! What S3 said about custody, from the GetObject response that read the object (no other
//! request), each field left out when S3 said nothing:
//!
//! - `storage_class`: `x-amz-storage-class` (S3 sends none for `STANDARD`);
//! - `lock_mode`: `x-amz-object-lock-mode`, `GOVERNANCE` or `COMPLIANCE`;
//! - `lock_retain_until`: `x-amz-object-lock-retain-until-date`, RFC 3339;
//! - `legal_hold`: `x-amz-object-lock-legal-hold`, `ON` or `OFF`.
//!
//! An object whose copy is a version recovered from S3 versioning (the current version was not
//! the one CloudTrail delivered; see [`super::custody`]) has `version_id` = the recovered
//! version and
//!
//! ```json
//! "recovered": {"written": "2026-01-01T00:05:31Z",
//!               "current": {"state": "overwritten", "version_id": "W", "written": "2026-01-02T10:00:00Z"}}
//! ```
//!
//! (`current` is `{"state": "delete_marker", "version_id": "M", "at": T}` for a deleted object,
//! `{"state": "absent"}` when nothing was current). An offline `verify` judges the copy's content
//! as always, and reports the record as a finding (`overwritten_in_bucket`,
//! `deleted_in_bucket`): a record can add a finding, never make content valid. None of these
//! fields is signed by anyone: they say what S3 answered at acquisition.
//!
//! An object a later acquisition looked for and did not find in the bucket (its listing did not
//! have it: deleted, in a bucket without versioning, or whose versions held nothing better)
//! keeps its copy and has `"gone": T`, the time that acquisition started; an offline `verify`
//! reports it `deleted_in_bucket`. A later acquisition that finds the object again writes its
//! record anew, without `gone`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::custody::Recovered;
use super::layout::{parse_key, CloudTrailKey};

/// The file name, at the root of the evidence directory.
pub const EVIDENCE_FILE: &str = "trailproof-evidence.json";
/// The `format` value this version writes and the only one it reads.
pub const EVIDENCE_FORMAT: &str = "trailproof-evidence/1";

/// Why an evidence-metadata file could not be used. The file is then refused whole: a record
/// half understood could hide a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Not JSON, or not the document's shape (an unknown top-level field included).
    #[error("not an evidence-metadata document: {detail}")]
    Json {
        /// The JSON parser's message.
        detail: String,
    },
    /// A `format` other than [`EVIDENCE_FORMAT`], which this version cannot read.
    #[error("unsupported evidence format {0:?} (expected {EVIDENCE_FORMAT:?})")]
    Format(String),
}

/// What S3 said about the objects of one bucket at acquisition time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceMetadata {
    /// Always [`EVIDENCE_FORMAT`] once parsed.
    pub format: String,
    /// The S3 bucket the objects were acquired from.
    pub bucket: String,
    /// Per object key (as in S3, no bucket, no leading `/`), what S3 said about it.
    pub objects: BTreeMap<String, ObjectRecord>,
}

/// One object's S3 facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// The stored (compressed) size in bytes, as S3 listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The S3 ETag, quotes included, as S3 returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The S3 version acquired; `null` for an unversioned bucket.
    #[serde(default)]
    pub version_id: Option<String>,
    /// Lowercase hex SHA-256 of the stored (compressed) bytes as acquired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// S3 user metadata, `x-amz-meta-` removed, names in lower case.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `x-amz-storage-class`, when S3 sent one (it sends none for `STANDARD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `x-amz-object-lock-mode`: `GOVERNANCE` or `COMPLIANCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// `x-amz-object-lock-retain-until-date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_retain_until: Option<jiff::Timestamp>,
    /// `x-amz-object-lock-legal-hold`: `ON` or `OFF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<String>,
    /// The copy is `version_id`, recovered from S3 versioning: see the module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovered>,
    /// When an acquisition started that no longer found the object in the bucket: see the
    /// module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<jiff::Timestamp>,
}

impl ObjectRecord {
    /// The digest signature, if S3 had one with the only algorithm CloudTrail uses.
    /// A record naming another algorithm gives an empty signature, which fails verification:
    /// the evidence says something we must not silently ignore.
    pub fn signature(&self) -> Option<Vec<u8>> {
        let text = self.metadata.get("signature")?;
        match self.metadata.get("signature-algorithm").map(String::as_str) {
            Some("SHA256withRSA") | None => {
                Some(super::types::decode_lower_hex(text).unwrap_or_default())
            }
            Some(_) => Some(Vec::new()),
        }
    }

    /// What the metadata says about when CloudTrail generated the digest. CloudTrail writes
    /// `backfill-generation-timestamp` with the signature of every backfill digest.
    pub fn backfill_generated(&self) -> GenerationTime {
        match self.metadata.get("backfill-generation-timestamp") {
            Some(text) => match text.parse() {
                Ok(t) => GenerationTime::Stated(t),
                Err(_) => GenerationTime::Missing {
                    detail: format!(
                        "the S3 metadata's backfill-generation-timestamp {text:?} is not a timestamp"
                    ),
                },
            },
            None if self.metadata.contains_key("signature") => GenerationTime::Missing {
                detail: "the S3 metadata has a signature but no backfill-generation-timestamp"
                    .to_owned(),
            },
            None => GenerationTime::Unknown,
        }
    }
}

/// When CloudTrail generated a backfill digest, as its S3 metadata says. The metadata is not
/// signed: the chain walker bounds it by the digest's signed end time (see
/// [`super::sign::SigningTime`]). Meaningful for backfill digests only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GenerationTime {
    /// No S3 metadata for the digest: a plain copy.
    #[default]
    Unknown,
    /// `backfill-generation-timestamp`.
    Stated(jiff::Timestamp),
    /// S3 metadata without a readable `backfill-generation-timestamp`. On a backfill digest
    /// that metadata is not what CloudTrail wrote: the object was rewritten.
    Missing {
        /// What is wrong with it, for the finding.
        detail: String,
    },
}

impl EvidenceMetadata {
    /// An empty record for `bucket`, in the current format.
    pub fn new(bucket: impl Into<String>) -> Self {
        EvidenceMetadata {
            format: EVIDENCE_FORMAT.to_owned(),
            bucket: bucket.into(),
            objects: BTreeMap::new(),
        }
    }

    /// Parses a whole document; refuses unknown top-level fields and any format but
    /// [`EVIDENCE_FORMAT`].
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let m: EvidenceMetadata = serde_json::from_slice(bytes).map_err(json_error)?;
        known_format(&m.format)?;
        Ok(m)
    }
}

fn json_error(e: serde_json::Error) -> EvidenceError {
    EvidenceError::Json {
        detail: e.to_string(),
    }
}

fn known_format(format: &str) -> Result<(), EvidenceError> {
    if format == EVIDENCE_FORMAT {
        Ok(())
    } else {
        Err(EvidenceError::Format(format.to_owned()))
    }
}

/// What verification takes from a digest's record, decoded once: its signature and backfill
/// time. Records are mostly text, and a copy may hold many digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestFacts {
    /// As [`ObjectRecord::signature`]: decoded bytes, empty when the record's text or
    /// algorithm cannot be CloudTrail's (so that verification fails rather than skips).
    pub signature: Option<Vec<u8>>,
    /// As [`ObjectRecord::backfill_generated`].
    pub backfill_generated: GenerationTime,
}

impl From<&ObjectRecord> for DigestFacts {
    fn from(r: &ObjectRecord) -> Self {
        DigestFacts {
            signature: r.signature(),
            backfill_generated: r.backfill_generated(),
        }
    }
}

/// An evidence-metadata file as verification reads it: the bucket and each digest's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRecords {
    /// As [`EvidenceMetadata::bucket`].
    pub bucket: String,
    /// Per digest key, its facts. Keys of log files and other objects are not kept.
    pub digests: BTreeMap<String, DigestFacts>,
    /// Per key (digest or log file), the objects whose copy was recovered from S3
    /// versioning, with the version recorded.
    pub recovered: BTreeMap<String, (Option<String>, Recovered)>,
    /// Per key, when an acquisition no longer found the object in the bucket
    /// ([`ObjectRecord::gone`]).
    pub gone: BTreeMap<String, jiff::Timestamp>,
}

impl DigestRecords {
    /// Parses like [`EvidenceMetadata::parse`], every record checked, but keeps only the facts
    /// of digest files: verification needs nothing else, and a copy may hold millions of log
    /// files. The document is read as it is parsed, never whole.
    pub fn parse(reader: impl std::io::Read) -> Result<Self, EvidenceError> {
        let m: DigestRecordsDocument = serde_json::from_reader(reader).map_err(json_error)?;
        known_format(&m.format)?;
        Ok(DigestRecords {
            bucket: m.bucket,
            digests: m.objects.digests,
            recovered: m.objects.recovered,
            gone: m.objects.gone,
        })
    }
}

/// The evidence-metadata document with only digests' facts kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestRecordsDocument {
    format: String,
    bucket: String,
    #[serde(deserialize_with = "digest_records")]
    objects: KeptRecords,
}

/// What [`DigestRecords`] keeps of the records.
#[derive(Default)]
struct KeptRecords {
    digests: BTreeMap<String, DigestFacts>,
    recovered: BTreeMap<String, (Option<String>, Recovered)>,
    gone: BTreeMap<String, jiff::Timestamp>,
}

fn digest_records<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KeptRecords, D::Error> {
    struct Records;
    impl<'de> serde::de::Visitor<'de> for Records {
        type Value = KeptRecords;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of object records")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = KeptRecords::default();
            while let Some(key) = map.next_key::<String>()? {
                let record: ObjectRecord = map.next_value()?;
                if let Some(recovered) = record.recovered.clone() {
                    out.recovered
                        .insert(key.clone(), (record.version_id.clone(), recovered));
                }
                if let Some(at) = record.gone {
                    out.gone.insert(key.clone(), at);
                }
                if matches!(parse_key(&key), Ok(CloudTrailKey::Digest(_))) {
                    out.digests.insert(key, DigestFacts::from(&record));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let doc = br#"{"format":"trailproof-evidence/1","bucket":"b-1","objects":{"k":{"size":3,"etag":"\"x\"","version_id":null,"sha256":"00","metadata":{"signature":"0a0b","signature-algorithm":"SHA256withRSA","backfill-generation-timestamp":"2026-01-01T00:00:00Z"}},"l":{}}}"#;
        let m = EvidenceMetadata::parse(doc).unwrap();
        assert_eq!(m.objects["k"].signature(), Some(vec![0x0a, 0x0b]));
        assert!(matches!(
            m.objects["k"].backfill_generated(),
            GenerationTime::Stated(_)
        ));
        assert_eq!(m.objects["l"].signature(), None);
        let round = serde_json::to_vec(&m).unwrap();
        assert_eq!(EvidenceMetadata::parse(&round).unwrap(), m);
    }

    #[test]
    fn digest_records_only_and_every_record_checked() {
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20260101T010000Z.json.gz";
        let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0005Z_abcdefgh12345678.json.gz";
        let doc = |log_record: &str| {
            format!(
                r#"{{"format":"trailproof-evidence/1","bucket":"b","objects":{{"{digest}":{{"metadata":{{"signature":"0a"}}}},"{log}":{log_record}}}}}"#
            )
        };
        let m = DigestRecords::parse(doc("{}").as_bytes()).unwrap();
        assert_eq!(m.digests.keys().collect::<Vec<_>>(), [digest]);
        assert_eq!(m.digests[digest].signature, Some(vec![0x0a]));
        // A malformed record is an error even where it would be dropped.
        assert!(DigestRecords::parse(doc(r#"{"size":"x"}"#).as_bytes()).is_err());
        assert!(DigestRecords::parse(
            &br#"{"format":"trailproof-evidence/1","bucket":"b","objects":{},"extra":1}"#[..]
        )
        .is_err());
    }

    /// CloudTrail writes the generation time with the signature of every backfill digest, so
    /// metadata with a signature and no readable generation time was rewritten; no metadata
    /// at all is a plain copy.
    #[test]
    fn a_signature_without_a_generation_time_is_told_from_a_plain_copy() {
        let mut r = ObjectRecord::default();
        assert_eq!(r.backfill_generated(), GenerationTime::Unknown);
        r.metadata.insert("signature".into(), "0a".into());
        assert!(matches!(
            r.backfill_generated(),
            GenerationTime::Missing { .. }
        ));
        r.metadata
            .insert("backfill-generation-timestamp".into(), "yesterday".into());
        assert!(matches!(
            r.backfill_generated(),
            GenerationTime::Missing { detail } if detail.contains("yesterday")
        ));
        r.metadata.insert(
            "backfill-generation-timestamp".into(),
            "2026-01-01T03:00:00Z".into(),
        );
        assert_eq!(
            DigestFacts::from(&r).backfill_generated,
            GenerationTime::Stated("2026-01-01T03:00:00Z".parse().unwrap())
        );
    }

    /// Custody fields and recovery records round-trip, and verification keeps the recovery
    /// record of every object (log files too), with the version recorded.
    #[test]
    fn custody_and_recovery_records_are_kept() {
        let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0005Z_abcdefgh12345678.json.gz";
        let doc = format!(
            r#"{{"format":"trailproof-evidence/1","bucket":"b","objects":{{"{log}":{{"version_id":"v1","storage_class":"GLACIER","lock_mode":"COMPLIANCE","lock_retain_until":"2030-01-01T00:00:00Z","legal_hold":"ON","recovered":{{"written":"2026-01-01T00:06:00Z","current":{{"state":"delete_marker","version_id":"m","at":"2026-02-01T00:00:00Z"}}}}}}}}}}"#
        );
        let m = EvidenceMetadata::parse(doc.as_bytes()).unwrap();
        assert_eq!(m.objects[log].lock_mode.as_deref(), Some("COMPLIANCE"));
        let round = serde_json::to_vec(&m).unwrap();
        assert_eq!(EvidenceMetadata::parse(&round).unwrap(), m);
        let kept = DigestRecords::parse(doc.as_bytes()).unwrap();
        let (version, recovered) = &kept.recovered[log];
        assert_eq!(version.as_deref(), Some("v1"));
        assert!(matches!(
            recovered.current,
            crate::core::custody::CurrentVersion::DeleteMarker { .. }
        ));
        // A recovery record with a field this version does not know is refused, not half read.
        let odd = doc.replace(r#""state":"delete_marker""#, r#""state":"restored""#);
        assert!(DigestRecords::parse(odd.as_bytes()).is_err());
    }

    #[test]
    fn odd_signatures_never_verify() {
        let mut r = ObjectRecord::default();
        r.metadata.insert("signature".into(), "ABCD".into());
        assert_eq!(r.signature(), Some(Vec::new()));
        r.metadata.insert("signature".into(), "abcd".into());
        r.metadata
            .insert("signature-algorithm".into(), "SHA1withRSA".into());
        assert_eq!(r.signature(), Some(Vec::new()));
        assert!(
            EvidenceMetadata::parse(br#"{"format":"other","bucket":"b","objects":{}}"#).is_err()
        );
    }
}
