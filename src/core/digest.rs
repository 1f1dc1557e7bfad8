//! Digest files: inflated JSON bytes in, a strictly typed [`ParsedDigest`] out.
//!
//! The raw bytes are kept because the signature and the next digest's link cover them exactly
//! as delivered (CloudTrail escapes `/` as `\/`, so a re-serialisation would hash differently).
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;

use super::time::parse_iso;
use super::types::{decode_lower_hex, Fingerprint, S3Location, Sha256};

/// Why a digest's content is not a well-formed digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestFormatError {
    /// Not UTF-8, not JSON, or a field missing or of the wrong JSON type.
    #[error("not UTF-8 JSON of the digest shape: {detail}")]
    Json {
        /// The UTF-8 or JSON parser's message.
        detail: String,
    },
    /// A field's value is not what CloudTrail writes (account not 12 digits, a bad timestamp,
    /// upper-case or short hex, a malformed bucket name or key).
    #[error("field {field} has an invalid value {value:?}")]
    Field {
        /// The field's name in the digest (`logFiles.hashValue` for a log entry's).
        field: &'static str,
        /// The value as written.
        value: String,
    },
    /// An algorithm other than `SHA256withRSA` for the signature or `SHA-256` for a hash.
    #[error("unsupported {field} {value:?}")]
    Algorithm {
        /// The field's name in the digest.
        field: &'static str,
        /// The algorithm as written.
        value: String,
    },
    /// Some `previousDigest*` fields are null and some are not.
    #[error("the previousDigest* fields must be all null or all set")]
    PartialLink,
    /// `digestStartTime` is after `digestEndTime`.
    #[error("digestStartTime is after digestEndTime")]
    Period,
}

/// The link a digest carries to its predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousLink {
    /// `previousDigestS3Bucket`/`previousDigestS3Object`: where the previous digest was
    /// delivered.
    pub location: S3Location,
    /// `previousDigestHashValue`: SHA-256 of the previous digest's inflated bytes.
    pub hash: Sha256,
    /// Decoded signature bytes. As written it is part of this digest's string to sign; only
    /// lowercase hex is accepted, so re-encoding gives back exactly what was written.
    pub signature: Vec<u8>,
}

/// One log file a digest vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileEntry {
    /// `s3Bucket`/`s3Object`: where CloudTrail delivered the log file.
    pub location: S3Location,
    /// SHA-256 of the inflated log file.
    pub hash: Sha256,
    /// `newestEventTime`: the latest `eventTime` among its records, as the digest states it.
    pub newest_event: Option<Timestamp>,
    /// `oldestEventTime`: the earliest `eventTime` among its records, as the digest states it.
    pub oldest_event: Option<Timestamp>,
}

/// A digest whose content is well formed. Not yet trusted: see [`super::sign::VerifiedDigest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDigest {
    raw_sha256: Sha256,
    /// `awsAccountId`: 12 digits; the member account for an organization trail.
    pub account: String,
    /// `digestStartTime`: start of the delivery window the digest covers.
    pub start: Timestamp,
    /// `digestEndTime`: end of that window; the digest's key carries the same time.
    pub end: Timestamp,
    /// `digestEndTime` as written: it starts the string to sign.
    pub end_text: String,
    /// Where CloudTrail delivered it, as written inside the file.
    pub location: S3Location,
    /// `digestPublicKeyFingerprint`: which CloudTrail key signed it.
    pub fingerprint: Fingerprint,
    /// `newestEventTime`: the latest event among its log files; `None` when it lists none.
    pub newest_event: Option<Timestamp>,
    /// `oldestEventTime`: the earliest event among its log files; `None` when it lists none.
    pub oldest_event: Option<Timestamp>,
    /// `None` at a chain start.
    pub previous: Option<PreviousLink>,
    /// `logFiles`: what the digest vouches for (possibly set aside).
    pub log_files: LogFiles,
}

/// The log files a digest names.
///
/// Log lists are most of a digest, and a run holds every digest of its chains at once (the
/// walk needs them all); so a run may set a digest's list aside once the strict parse has
/// checked it, and parse it again from the same bytes when it gets to those log files
/// ([`ParsedDigest::log_files_from`]). That keeps a run's memory flat in the number of log
/// files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFiles {
    /// Shared, so that the verified copy of a digest (`VerifiedDigest`) and the walk's own
    /// share one list.
    Parsed(Arc<[LogFileEntry]>),
    /// Set aside after the strict parse checked it; get it back with
    /// [`ParsedDigest::log_files_from`].
    SetAside {
        /// How many entries the list has.
        count: usize,
    },
}

impl LogFiles {
    /// How many log files the digest lists, whether the list is held or set aside.
    pub fn len(&self) -> usize {
        match self {
            LogFiles::Parsed(l) => l.len(),
            LogFiles::SetAside { count } => *count,
        }
    }

    /// Whether the digest lists no log file (an hour with no events still gets a digest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a digest's log list could not be had again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RereadError {
    /// The bytes given are not the ones the digest was parsed (and verified) from.
    #[error("its content changed after it was first read (SHA-256 {now}, was {was})")]
    Changed {
        /// SHA-256 of the bytes first parsed.
        was: Sha256,
        /// SHA-256 of the bytes given now.
        now: Sha256,
    },
    /// The bytes are the same but fail the strict parse, which they passed when first read.
    #[error(transparent)]
    Format(#[from] DigestFormatError),
}

impl ParsedDigest {
    /// Parses the inflated bytes of a digest file.
    pub fn parse(raw: &[u8]) -> Result<Self, DigestFormatError> {
        let (mut digest, list) = Self::parse_parts(raw)?;
        digest.log_files = LogFiles::Parsed(list);
        Ok(digest)
    }

    /// The digest with its list set aside, and the list.
    fn parse_parts(raw: &[u8]) -> Result<(Self, Arc<[LogFileEntry]>), DigestFormatError> {
        let text = std::str::from_utf8(raw).map_err(|e| DigestFormatError::Json {
            detail: e.to_string(),
        })?;
        let wire: Wire = serde_json::from_str(text).map_err(|e| DigestFormatError::Json {
            detail: e.to_string(),
        })?;
        Self::from_wire(wire, Sha256::of(raw))
    }

    /// SHA-256 of the inflated bytes this digest was parsed from.
    pub fn sha256(&self) -> Sha256 {
        self.raw_sha256
    }

    /// Drops the parsed log list, keeping its length: see [`LogFiles`].
    pub fn set_aside_log_files(&mut self) {
        self.log_files = LogFiles::SetAside {
            count: self.log_files.len(),
        };
    }

    /// This digest's log list, parsed from `raw` if that is, byte for byte, what this digest
    /// was parsed from: what was verified about the digest holds for the list too.
    pub fn log_files_from(&self, raw: &[u8]) -> Result<Arc<[LogFileEntry]>, RereadError> {
        let now = Sha256::of(raw);
        if now != self.raw_sha256 {
            return Err(RereadError::Changed {
                was: self.raw_sha256,
                now,
            });
        }
        Ok(Self::parse_parts(raw)?.1)
    }

    /// Checks every field of the wire form, in the order CloudTrail writes them, and builds
    /// the digest; the first field that fails is the error.
    fn from_wire(
        w: Wire,
        raw_sha256: Sha256,
    ) -> Result<(Self, Arc<[LogFileEntry]>), DigestFormatError> {
        if w.aws_account_id.len() != 12 || !w.aws_account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("awsAccountId", &w.aws_account_id));
        }
        let start = parse_iso(&w.digest_start_time)
            .ok_or_else(|| bad("digestStartTime", &w.digest_start_time))?;
        let end = parse_iso(&w.digest_end_time)
            .ok_or_else(|| bad("digestEndTime", &w.digest_end_time))?;
        if start > end {
            return Err(DigestFormatError::Period);
        }
        if w.digest_signature_algorithm != "SHA256withRSA" {
            return Err(DigestFormatError::Algorithm {
                field: "digestSignatureAlgorithm",
                value: w.digest_signature_algorithm,
            });
        }
        let fingerprint =
            Fingerprint::parse(&w.digest_public_key_fingerprint).ok_or_else(|| {
                bad(
                    "digestPublicKeyFingerprint",
                    &w.digest_public_key_fingerprint,
                )
            })?;
        let location = parse_location(&w.digest_s3_bucket, &w.digest_s3_object, "digestS3Object")?;
        let newest_event = optional_time("newestEventTime", &w.newest_event_time)?;
        let oldest_event = optional_time("oldestEventTime", &w.oldest_event_time)?;
        let previous = previous_link(
            w.previous_digest_s3_bucket,
            w.previous_digest_s3_object,
            w.previous_digest_hash_value,
            w.previous_digest_hash_algorithm,
            w.previous_digest_signature,
        )?;
        let log_files = w
            .log_files
            .into_iter()
            .map(log_file_entry)
            .collect::<Result<Vec<_>, _>>()?;

        let digest = ParsedDigest {
            raw_sha256,
            account: w.aws_account_id,
            start,
            end,
            end_text: w.digest_end_time,
            location,
            fingerprint,
            newest_event,
            oldest_event,
            previous,
            log_files: LogFiles::SetAside {
                count: log_files.len(),
            },
        };
        Ok((digest, log_files.into()))
    }
}

/// The error for a field whose value is not what CloudTrail writes.
fn bad(field: &'static str, value: &str) -> DigestFormatError {
    DigestFormatError::Field {
        field,
        value: value.to_owned(),
    }
}

/// A timestamp field that may be null.
fn optional_time(
    field: &'static str,
    value: &Option<String>,
) -> Result<Option<Timestamp>, DigestFormatError> {
    match value {
        None => Ok(None),
        Some(t) => parse_iso(t).map(Some).ok_or_else(|| bad(field, t)),
    }
}

/// The five `previousDigest*` fields: all null at a chain start, all set otherwise. A link
/// only partly there is malformed, not a chain start: a half-written link must not be taken
/// for the start of a chain.
fn previous_link(
    bucket: Option<String>,
    object: Option<String>,
    hash: Option<String>,
    algorithm: Option<String>,
    signature: Option<String>,
) -> Result<Option<PreviousLink>, DigestFormatError> {
    match (bucket, object, hash, algorithm, signature) {
        (None, None, None, None, None) => Ok(None),
        (Some(bucket), Some(object), Some(hash), Some(algorithm), Some(signature_text)) => {
            if algorithm != "SHA-256" {
                return Err(DigestFormatError::Algorithm {
                    field: "previousDigestHashAlgorithm",
                    value: algorithm,
                });
            }
            Ok(Some(PreviousLink {
                location: parse_location(&bucket, &object, "previousDigestS3Object")?,
                hash: Sha256::from_lower_hex(&hash)
                    .ok_or_else(|| bad("previousDigestHashValue", &hash))?,
                signature: decode_lower_hex(&signature_text)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("previousDigestSignature", &signature_text))?,
            }))
        }
        _ => Err(DigestFormatError::PartialLink),
    }
}

/// One `logFiles` entry: SHA-256 only, lowercase hex, a well-formed location.
fn log_file_entry(l: WireLog) -> Result<LogFileEntry, DigestFormatError> {
    if l.hash_algorithm != "SHA-256" {
        return Err(DigestFormatError::Algorithm {
            field: "logFiles.hashAlgorithm",
            value: l.hash_algorithm,
        });
    }
    Ok(LogFileEntry {
        location: parse_location(&l.s3_bucket, &l.s3_object, "logFiles.s3Object")?,
        hash: Sha256::from_lower_hex(&l.hash_value)
            .ok_or_else(|| bad("logFiles.hashValue", &l.hash_value))?,
        newest_event: optional_time("logFiles.newestEventTime", &l.newest_event_time)?,
        oldest_event: optional_time("logFiles.oldestEventTime", &l.oldest_event_time)?,
    })
}

/// Every log file a digest names, from the strict parse if it passes (a digest being copied
/// need not verify to say what to copy with it), else from the lenient one.
pub fn named_log_files(raw: &[u8]) -> Vec<S3Location> {
    match ParsedDigest::parse_parts(raw) {
        Ok((_, list)) => list.iter().map(|l| l.location.clone()).collect(),
        Err(_) => listed_log_files(raw).names,
    }
}

/// At most this many log files are named from a digest that failed the strict parse.
pub const MAX_LENIENTLY_LISTED: usize = 10_000;

/// What a digest that failed the strict parse still names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenientListing {
    /// The first [`MAX_LENIENTLY_LISTED`] entries with a string `s3Bucket` and `s3Object`.
    pub names: Vec<S3Location>,
    /// Every entry of `logFiles`, named or not.
    pub entries: usize,
}

/// The log files a digest names, read leniently from JSON that failed the strict parse, so
/// that a damaged digest's log files can still be reported by name.
///
/// The JSON is streamed, nothing but the names kept, and only the first
/// [`MAX_LENIENTLY_LISTED`]: a digest that fails the strict parse vouches for nothing, so its
/// list only decides whether a log file shows as "its digest could not be verified" or as "not
/// referenced by any digest". (Read into a JSON tree, 61 MiB listing two million entries took
/// 3 GiB.)
pub fn listed_log_files(raw: &[u8]) -> LenientListing {
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(rename = "logFiles", default)]
        log_files: LenientListing,
    }
    serde_json::from_slice::<Lenient>(raw)
        .map(|l| l.log_files)
        .unwrap_or_default()
}

impl<'de> Deserialize<'de> for LenientListing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = LenientListing;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut listing = LenientListing::default();
                while listing.names.len() < MAX_LENIENTLY_LISTED {
                    match seq.next_element::<LenientEntry>()? {
                        Some(entry) => {
                            listing.entries += 1;
                            if let LenientEntry(Some(location)) = entry {
                                listing.names.push(location);
                            }
                        }
                        None => return Ok(listing),
                    }
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    listing.entries += 1;
                }
                Ok(listing)
            }
        }
        d.deserialize_seq(Entries)
    }
}

/// Visitor methods that take any JSON scalar but a string to `$value`.
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// One `logFiles` entry, whatever it holds: its location if it has a string bucket and key.
struct LenientEntry(Option<S3Location>);

impl<'de> Deserialize<'de> for LenientEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = LenientEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("anything")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let (mut bucket, mut key) = (None, None);
                while let Some(field) = map.next_key::<EntryField>()? {
                    let slot = match field {
                        EntryField::Bucket => &mut bucket,
                        EntryField::Object => &mut key,
                        EntryField::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<MaybeString>()?.0;
                }
                Ok(LenientEntry(match (bucket, key) {
                    (Some(b), Some(k)) => Some(S3Location::new(b, k)),
                    _ => None,
                }))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(LenientEntry(None))
            }
            scalars_are!(LenientEntry(None));
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(LenientEntry(None))
            }
        }
        d.deserialize_any(Entry)
    }
}

/// The fields of a `logFiles` entry that name it; the rest are skipped unread.
enum EntryField {
    Bucket,
    Object,
    Other,
}

impl<'de> Deserialize<'de> for EntryField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Field;
        impl serde::de::Visitor<'_> for Field {
            type Value = EntryField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(match name {
                    "s3Bucket" => EntryField::Bucket,
                    "s3Object" => EntryField::Object,
                    _ => EntryField::Other,
                })
            }
        }
        d.deserialize_identifier(Field)
    }
}

/// A string, or `None` for any other JSON value (skipped unread).
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = MaybeString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("anything")
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(MaybeString(Some(s.to_owned())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeString(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
            scalars_are!(MaybeString(None));
        }
        d.deserialize_any(Text)
    }
}

fn parse_location(
    bucket: &str,
    key: &str,
    field: &'static str,
) -> Result<S3Location, DigestFormatError> {
    // S3 bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(DigestFormatError::Field {
            field: "s3 bucket",
            value: bucket.to_owned(),
        });
    }
    if key.is_empty() || key.len() > 1024 {
        return Err(DigestFormatError::Field {
            field,
            value: key.to_owned(),
        });
    }
    Ok(S3Location::new(bucket, key))
}

/// The JSON shape, field names as CloudTrail writes them. Unknown fields are tolerated (AWS may
/// add some); duplicate known fields are rejected by serde.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    aws_account_id: String,
    digest_start_time: String,
    digest_end_time: String,
    digest_s3_bucket: String,
    digest_s3_object: String,
    digest_public_key_fingerprint: String,
    digest_signature_algorithm: String,
    // These may be null but must be present, like the rest.
    #[serde(deserialize_with = "nullable")]
    newest_event_time: Option<String>,
    #[serde(deserialize_with = "nullable")]
    oldest_event_time: Option<String>,
    #[serde(deserialize_with = "nullable")]
    previous_digest_s3_bucket: Option<String>,
    #[serde(deserialize_with = "nullable")]
    previous_digest_s3_object: Option<String>,
    #[serde(deserialize_with = "nullable")]
    previous_digest_hash_value: Option<String>,
    #[serde(deserialize_with = "nullable")]
    previous_digest_hash_algorithm: Option<String>,
    #[serde(deserialize_with = "nullable")]
    previous_digest_signature: Option<String>,
    log_files: Vec<WireLog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLog {
    s3_bucket: String,
    s3_object: String,
    hash_value: String,
    hash_algorithm: String,
    #[serde(deserialize_with = "nullable", default)]
    newest_event_time: Option<String>,
    #[serde(deserialize_with = "nullable", default)]
    oldest_event_time: Option<String>,
}

/// A field that must be present but may be `null`: serde's `Option` alone would also accept a
/// missing field.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_digest() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/vectors/llm-guard-real-digest/327878933619_CloudTrail-Digest_ap-northeast-1_llm-guard-trail_us-west-2_20231015T230404Z.json"
        ))
        .expect("testdata/vectors")
    }

    #[test]
    fn parses_a_real_digest_and_hashes_its_raw_bytes() {
        let raw = real_digest();
        let d = ParsedDigest::parse(&raw).unwrap();
        assert_eq!(
            d.sha256().to_hex(),
            "4277102dccf54c0c247738ca5e6e3504b7370206ef1c82855994ec23441ae1ed"
        );
        assert_eq!(d.account, "327878933619");
        assert_eq!(d.end_text, "2023-10-15T23:04:04Z");
        assert_eq!(d.fingerprint.as_str(), "be2f0b997552f44942837300ba1aba9d");
        assert_eq!(d.log_files.len(), 5);
        assert!(d.location.key.ends_with("20231015T230404Z.json.gz"));
        assert!(
            !d.location.key.contains('\\'),
            "\\/ is unescaped in the parsed value"
        );
        let prev = d.previous.expect("linked");
        assert_eq!(prev.signature.len(), 256);
    }

    fn edit(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(raw).unwrap();
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn rejects_wrong_algorithms_types_and_missing_fields() {
        let raw = real_digest();
        let cases = [
            edit(&raw, "\"SHA256withRSA\"", "\"SHA1withRSA\""),
            edit(
                &raw,
                "\"previousDigestHashAlgorithm\":\"SHA-256\"",
                "\"previousDigestHashAlgorithm\":\"MD5\"",
            ),
            edit(
                &raw,
                "\"awsAccountId\":\"327878933619\"",
                "\"awsAccountId\":327878933619",
            ),
            edit(&raw, "\"awsAccountId\":\"327878933619\",", ""),
            edit(
                &raw,
                "\"digestEndTime\":\"2023-10-15T23:04:04Z\"",
                "\"digestEndTime\":\"2023-10-15 23:04:04\"",
            ),
            edit(
                &raw,
                "\"digestPublicKeyFingerprint\":\"be2f0b997552f44942837300ba1aba9d\"",
                "\"digestPublicKeyFingerprint\":\"BE2F0B997552F44942837300BA1ABA9D\"",
            ),
            edit(
                &raw,
                "\"previousDigestHashAlgorithm\":\"SHA-256\"",
                "\"previousDigestHashAlgorithm\":null",
            ),
            edit(
                &raw,
                "{\"awsAccountId\"",
                "{\"awsAccountId\":\"327878933619\",\"awsAccountId\"",
            ),
            edit(&raw, "\"newestEventTime\":", "\"newestEventTimeX\":"),
            b"not json".to_vec(),
            vec![0xff, 0xfe],
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(ParsedDigest::parse(c).is_err(), "case {i} should fail");
        }
    }

    /// A junk digest of 61 MiB listing two million entries was read into a JSON tree: 3.1 GiB.
    #[test]
    fn a_junk_digest_names_at_most_its_cap_of_log_files() {
        let entry = r#"{"s3Bucket":"bucket-a","s3Object":"k","x":[1,{"y":2}]}"#;
        let n = MAX_LENIENTLY_LISTED + 5;
        let raw = format!(
            r#"{{"awsAccountId":1,"logFiles":[7,"s",null,[{{}}],{{"s3Bucket":1,"s3Object":"k"}},{}]}}"#,
            vec![entry; n].join(",")
        );
        let listing = listed_log_files(raw.as_bytes());
        assert_eq!(listing.entries, n + 5);
        assert_eq!(listing.names.len(), MAX_LENIENTLY_LISTED);
        assert_eq!(listing.names[0], S3Location::new("bucket-a", "k"));
        assert!(named_log_files(raw.as_bytes()).len() == MAX_LENIENTLY_LISTED);
        assert_eq!(listed_log_files(b"{\"logFiles\":[").entries, 0, "not JSON");
        assert_eq!(listed_log_files(b"[]").entries, 0, "not an object");
    }

    #[test]
    fn empty_hour_digest_has_nulls() {
        let raw = br#"{"awsAccountId":"111122223333","digestStartTime":"2026-01-01T00:04:04Z","digestEndTime":"2026-01-01T01:04:04Z","digestS3Bucket":"bucket-a","digestS3Object":"k","digestPublicKeyFingerprint":"d41d8cd98f00b204e9800998ecf8427e","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#;
        let d = ParsedDigest::parse(raw).unwrap();
        assert!(d.previous.is_none());
        assert!(d.log_files.is_empty());
        assert_eq!(d.newest_event, None);
    }
}
