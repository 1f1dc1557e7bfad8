//! Pinned public keys in the JSON shape `aws cloudtrail list-public-keys` prints.
//!
//! ```json
//! {"PublicKeyList":[{"Value":"<base64 DER>","ValidityStartTime":1735689600,
//!   "ValidityEndTime":1738281600,"Fingerprint":"<md5 hex of the DER>"}]}
//! ```
//! Times may be epoch seconds (as the CLI prints them) or ISO 8601 text.
use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::sign::{KeyError, KeySet, PublicKey};
use super::types::Fingerprint;

/// Why a key file cannot be used. Every entry must be right: a wrong key file is a broken
/// trust anchor, not something to work around.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not JSON, or not the `{"PublicKeyList": [...]}` shape.
    #[error("not a list-public-keys JSON document: {detail}")]
    Json {
        /// The JSON parser's message.
        detail: String,
    },
    /// An entry's `Value` is not standard base64.
    #[error("entry {index}: Value is not base64")]
    Base64 {
        /// Position of the entry in `PublicKeyList`, from 0.
        index: usize,
    },
    /// A validity time is neither whole epoch seconds nor ISO 8601 with whole seconds.
    #[error("entry {index}: bad time {value:?}")]
    Time {
        /// Position of the entry in `PublicKeyList`, from 0.
        index: usize,
        /// The time as written.
        value: String,
    },
    /// An entry's `Fingerprint` is not the MD5 of its own DER bytes.
    #[error("entry {index}: Fingerprint {stated} does not match the key, whose MD5 is {actual}")]
    FingerprintMismatch {
        /// Position of the entry in `PublicKeyList`, from 0.
        index: usize,
        /// The fingerprint as written in the file.
        stated: String,
        /// The MD5 of the key's DER bytes.
        actual: Fingerprint,
    },
    /// The DER bytes are not an RSA key CloudTrail could use.
    #[error("entry {index}: {source}")]
    Key {
        /// Position of the entry in `PublicKeyList`, from 0.
        index: usize,
        /// Why the key was refused.
        source: KeyError,
    },
    /// The same key is listed again with another validity window: which window is right cannot
    /// be told, and the wrong one would let the key vouch for digests it never signed (or
    /// refuse ones it did).
    #[error("entry {index}: key {fingerprint} is listed again with another validity window")]
    ConflictingWindows {
        /// Position of the later entry in `PublicKeyList`, from 0.
        index: usize,
        /// The key's fingerprint.
        fingerprint: Fingerprint,
    },
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    public_key_list: Vec<WireKey>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct WireKey {
    value: String,
    validity_start_time: WireTime,
    validity_end_time: WireTime,
    fingerprint: String,
}

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum WireTime {
    Seconds(i64),
    Epoch(f64),
    Text(String),
}

impl WireTime {
    fn resolve(&self, index: usize) -> Result<Timestamp, KeyFileError> {
        let bad = |value: String| KeyFileError::Time { index, value };
        match self {
            WireTime::Seconds(secs) => {
                Timestamp::from_second(*secs).map_err(|_| bad(secs.to_string()))
            }
            WireTime::Epoch(secs) if secs.is_finite() && secs.fract() == 0.0 => {
                Timestamp::from_second(*secs as i64).map_err(|_| bad(secs.to_string()))
            }
            WireTime::Epoch(secs) => Err(bad(secs.to_string())),
            // Whole seconds only, as for epoch numbers: the file is written back in epoch
            // seconds, and a window must not change by being written.
            WireTime::Text(text) => text
                .parse::<Timestamp>()
                .ok()
                .filter(|t| t.subsec_nanosecond() == 0)
                .ok_or_else(|| bad(text.clone())),
        }
    }
}

/// One key as ListPublicKeys delivers it: DER bytes, validity window, stated fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's DER bytes (`Value`, base64-decoded once): PKCS#1 `RSAPublicKey` or X.509
    /// `SubjectPublicKeyInfo`.
    pub der: Vec<u8>,
    /// `ValidityStartTime`: the first instant CloudTrail may sign with the key.
    pub valid_from: Timestamp,
    /// `ValidityEndTime`: the last instant CloudTrail may sign with the key.
    pub valid_to: Timestamp,
    /// `Fingerprint` as stated, not yet checked against `der`.
    pub fingerprint: String,
}

/// Reads the records of a key file without judging the keys.
pub fn read_key_file(bytes: &[u8]) -> Result<Vec<KeyRecord>, KeyFileError> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| KeyFileError::Json {
        detail: e.to_string(),
    })?;
    wire.public_key_list
        .iter()
        .enumerate()
        .map(|(index, k)| {
            Ok(KeyRecord {
                der: base64::engine::general_purpose::STANDARD
                    .decode(k.value.trim())
                    .map_err(|_| KeyFileError::Base64 { index })?,
                valid_from: k.validity_start_time.resolve(index)?,
                valid_to: k.validity_end_time.resolve(index)?,
                fingerprint: k.fingerprint.clone(),
            })
        })
        .collect()
}

/// Turns records into usable keys, checking each fingerprint against its key.
pub fn key_set(records: &[KeyRecord]) -> Result<KeySet, KeyFileError> {
    let mut set = KeySet::default();
    for (index, r) in records.iter().enumerate() {
        let key = PublicKey::from_der(&r.der, r.valid_from, r.valid_to)
            .map_err(|source| KeyFileError::Key { index, source })?;
        if key.fingerprint().as_str() != r.fingerprint {
            return Err(KeyFileError::FingerprintMismatch {
                index,
                stated: r.fingerprint.clone(),
                actual: key.fingerprint().clone(),
            });
        }
        // ListPublicKeys asked per Region and window may list a key more than once, the same.
        if let Some(known) = set.get(key.fingerprint()) {
            if (known.valid_from, known.valid_to) != (key.valid_from, key.valid_to) {
                return Err(KeyFileError::ConflictingWindows {
                    index,
                    fingerprint: key.fingerprint().clone(),
                });
            }
        }
        set.insert(key);
    }
    Ok(set)
}

/// Parses a key file into a key set.
pub fn parse_key_file(bytes: &[u8]) -> Result<KeySet, KeyFileError> {
    key_set(&read_key_file(bytes)?)
}

/// Writes records in the shape `aws cloudtrail list-public-keys` prints (epoch seconds),
/// sorted by fingerprint so the same keys always give the same file.
pub fn write_key_file(records: &[KeyRecord]) -> Vec<u8> {
    let mut sorted: Vec<&KeyRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    sorted.dedup_by(|a, b| a.fingerprint == b.fingerprint);
    let wire = Wire {
        public_key_list: sorted
            .iter()
            .map(|r| WireKey {
                value: base64::engine::general_purpose::STANDARD.encode(&r.der),
                validity_start_time: WireTime::Seconds(r.valid_from.as_second()),
                validity_end_time: WireTime::Seconds(r.valid_to.as_second()),
                fingerprint: r.fingerprint.clone(),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&wire).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_keys_json() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/vectors/aws-docs-public-keys/keys.json"
        ))
        .unwrap()
    }

    /// Builds a key file from the AWS-published keys, in whatever shape `keys.json` holds them.
    fn key_file(time: impl Fn(i64) -> serde_json::Value, corrupt_fp: bool) -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_slice(&aws_keys_json()).unwrap();
        let list = v
            .get("PublicKeyList")
            .or_else(|| v.get("keys"))
            .and_then(|l| l.as_array())
            .unwrap()
            .clone();
        let entries: Vec<serde_json::Value> = list
            .iter()
            .map(|k| {
                let fp = k["Fingerprint"]
                    .as_str()
                    .or(k["fingerprint"].as_str())
                    .unwrap();
                let der = std::fs::read(format!(
                    "{}/testdata/vectors/aws-docs-public-keys/{fp}.der",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap();
                let fp = if corrupt_fp {
                    "0".repeat(32)
                } else {
                    fp.to_owned()
                };
                serde_json::json!({
                    "Value": base64::engine::general_purpose::STANDARD.encode(der),
                    "ValidityStartTime": time(1_400_000_000),
                    "ValidityEndTime": time(1_402_592_000),
                    "Fingerprint": fp,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "PublicKeyList": entries })).unwrap()
    }

    #[test]
    fn reads_epoch_and_iso_times_and_checks_fingerprints() {
        let set = parse_key_file(&key_file(|s| serde_json::json!(s), false)).unwrap();
        assert_eq!(set.len(), 4);
        let iso = parse_key_file(&key_file(
            |s| serde_json::json!(Timestamp::from_second(s).unwrap().to_string()),
            false,
        ))
        .unwrap();
        assert_eq!(iso.len(), 4);
        let k = iso.iter().next().unwrap();
        assert_eq!(k.valid_from.as_second(), 1_400_000_000);
        assert!(matches!(
            parse_key_file(&key_file(|s| serde_json::json!(s), true)),
            Err(KeyFileError::FingerprintMismatch { index: 0, .. })
        ));
    }

    /// A second entry for a key used to replace the first one's window silently: a pinned file
    /// could widen (or narrow) the time a key vouches for without anyone noticing.
    #[test]
    fn a_key_listed_twice_with_other_windows_is_refused() {
        let file = key_file(|s| serde_json::json!(s), false);
        let mut v: serde_json::Value = serde_json::from_slice(&file).unwrap();
        let list = v["PublicKeyList"].as_array_mut().unwrap();
        let mut again = list[0].clone();
        list.push(again.clone());
        // The same entry twice is what ListPublicKeys per Region gives: accepted.
        assert_eq!(
            parse_key_file(&serde_json::to_vec(&v).unwrap())
                .unwrap()
                .len(),
            4
        );
        again["ValidityEndTime"] = serde_json::json!(4_000_000_000_i64);
        let list = v["PublicKeyList"].as_array_mut().unwrap();
        list.push(again);
        assert!(matches!(
            parse_key_file(&serde_json::to_vec(&v).unwrap()),
            Err(KeyFileError::ConflictingWindows { index: 5, .. })
        ));
    }

    #[test]
    fn written_files_read_back_identically() {
        let records = read_key_file(&aws_keys_json()).unwrap();
        let written = write_key_file(&records);
        let again = read_key_file(&written).unwrap();
        assert_eq!(again.len(), 4);
        assert_eq!(write_key_file(&again), written);
        assert!(String::from_utf8(written)
            .unwrap()
            .contains("\"ValidityStartTime\": 1436317441,"));
    }

    /// Found by fuzz/keyfile: an ISO 8601 time with a fraction of a second was read as is and
    /// written back truncated to the second, so writing a key file moved a key's window.
    #[test]
    fn sub_second_iso_times_are_rejected_not_truncated_on_write() {
        let file = |end: &str| {
            format!(
                r#"{{"PublicKeyList":[{{"Value":"AAAA","ValidityStartTime":0,"ValidityEndTime":"{end}","Fingerprint":"x"}}]}}"#
            )
        };
        assert!(matches!(
            read_key_file(file("2026-01-06T00:00:06.5Z").as_bytes()),
            Err(KeyFileError::Time { index: 0, .. })
        ));
        let records = read_key_file(file("2026-01-06T00:00:06.000Z").as_bytes()).unwrap();
        assert_eq!(read_key_file(&write_key_file(&records)).unwrap(), records);
    }

    #[test]
    fn rejects_malformed_files() {
        for bad in [
            &b"{}"[..],
            b"[]",
            br#"{"PublicKeyList":[{"Value":"!!","ValidityStartTime":0,"ValidityEndTime":1,"Fingerprint":"x"}]}"#,
            br#"{"PublicKeyList":[{"Value":"AAAA","ValidityStartTime":0.5,"ValidityEndTime":1,"Fingerprint":"x"}]}"#,
            br#"{"PublicKeyList":[{"Value":"AAAA","ValidityStartTime":"yesterday","ValidityEndTime":1,"Fingerprint":"x"}]}"#,
        ] {
            assert!(parse_key_file(bad).is_err());
        }
        assert_eq!(parse_key_file(br#"{"PublicKeyList":[]}"#).unwrap().len(), 0);
    }
}
