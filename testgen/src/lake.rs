//! CloudTrail Lake query exports: result files (`result_N.csv.gz`) and the `result_sign.json`
//! that lists their hashes and signs them, with test keys. Written from the format facts alone
//! (docs/spec section 7: SHA-256 of the gzip bytes as stored, the hashes joined by single
//! spaces, RSASSA-PKCS1-v1_5/SHA-256), like the digest generator.
//!
//! Fields are public so that tests can take an export apart the way an attacker would: change
//! a file, drop one, add one, edit the unsigned names, time or fingerprint, or sign again with
//! another key.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::encode::{gzip, iso, sha256_hex};
use super::keys::{signing_key, KeyWindow, TestKey};
use super::rng::SplitMix64;

/// One entry of the sign file's `files` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignEntry {
    pub file_hash_value: String,
    pub file_name: String,
}

/// The sign file's fields, written in the order and spacing of AWS's own sample.
#[derive(Clone, Debug)]
pub struct SignDoc {
    pub version: Option<String>,
    pub region: String,
    pub files: Vec<SignEntry>,
    pub hash_algorithm: String,
    pub signature_algorithm: String,
    pub query_complete_time: String,
    pub hash_signature: String,
    pub public_key_fingerprint: String,
}

impl SignDoc {
    /// What CloudTrail signs: the hashes in order, joined by single spaces.
    pub fn string_to_sign(&self) -> String {
        let hashes: Vec<&str> = self
            .files
            .iter()
            .map(|f| f.file_hash_value.as_str())
            .collect();
        hashes.join(" ")
    }

    /// Signs the hash list with `key` and names its fingerprint.
    pub fn sign_with(&mut self, key: TestKey) {
        let k = signing_key(key);
        self.hash_signature = k.sign_hex(self.string_to_sign().as_bytes());
        self.public_key_fingerprint = k.fingerprint().to_owned();
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::Map::new();
        if let Some(version) = &self.version {
            v.insert("version".into(), version.clone().into());
        }
        v.insert("region".into(), self.region.clone().into());
        v.insert(
            "files".into(),
            self.files
                .iter()
                .map(|f| {
                    serde_json::json!({"fileHashValue": f.file_hash_value, "fileName": f.file_name})
                })
                .collect::<Vec<_>>()
                .into(),
        );
        v.insert("hashAlgorithm".into(), self.hash_algorithm.clone().into());
        v.insert(
            "signatureAlgorithm".into(),
            self.signature_algorithm.clone().into(),
        );
        v.insert(
            "queryCompleteTime".into(),
            self.query_complete_time.clone().into(),
        );
        v.insert("hashSignature".into(), self.hash_signature.clone().into());
        v.insert(
            "publicKeyFingerprint".into(),
            self.public_key_fingerprint.clone().into(),
        );
        let mut out = serde_json::to_vec_pretty(&serde_json::Value::Object(v))
            .expect("a JSON map serializes");
        out.push(b'\n');
        out
    }
}

/// A query's export folder: every file by name (result files, the sign file, anything added),
/// and the sign file's model.
#[derive(Clone, Debug)]
pub struct LakeExport {
    /// Files other than the sign file, by name, as they will be written.
    pub files: Vec<(String, Vec<u8>)>,
    pub sign: SignDoc,
    /// Raw sign-file bytes that replace `sign.to_json()` when set (malformed sign files).
    pub sign_bytes: Option<Vec<u8>>,
    /// The key CloudTrail published for the Region, valid around the query.
    pub key: KeyWindow,
}

/// The Region generated exports are signed for, and its test key.
pub const LAKE_REGION: &str = "eu-west-1";
const LAKE_KEY: TestKey = TestKey::Rsa3;

impl LakeExport {
    /// `files` result files of `rows` CSV rows each, from `seed`, completed at `complete` and
    /// signed with the Region's test key (valid 15 days either side).
    pub fn new(seed: u64, files: usize, rows: usize, complete: Timestamp) -> LakeExport {
        let mut rng = SplitMix64::new(seed);
        let results: Vec<(String, Vec<u8>)> = (1..=files)
            .map(|n| {
                let mut csv = String::from("eventTime,eventName,eventSource,awsRegion\n");
                for _ in 0..rows {
                    let t = complete - SignedDuration::from_secs(rng.below(86_400) as i64 + 60);
                    let name = ["ConsoleLogin", "GetObject", "AssumeRole", "RunInstances"]
                        [rng.below(4) as usize];
                    csv.push_str(&format!(
                        "{},{name},{}.amazonaws.com,{LAKE_REGION}\n",
                        iso(t),
                        ["signin", "s3", "sts", "ec2"][rng.below(4) as usize]
                    ));
                }
                (format!("result_{n}.csv.gz"), gzip(csv.as_bytes()))
            })
            .collect();
        let mut sign = SignDoc {
            version: Some("1.0".into()),
            region: LAKE_REGION.into(),
            files: results
                .iter()
                .map(|(name, bytes)| SignEntry {
                    file_hash_value: sha256_hex(bytes),
                    file_name: name.clone(),
                })
                .collect(),
            hash_algorithm: "SHA-256".into(),
            signature_algorithm: "SHA256withRSA".into(),
            query_complete_time: iso(complete),
            hash_signature: String::new(),
            public_key_fingerprint: String::new(),
        };
        sign.sign_with(LAKE_KEY);
        let day = SignedDuration::from_hours(24);
        LakeExport {
            files: results,
            sign,
            sign_bytes: None,
            key: KeyWindow {
                key: LAKE_KEY,
                start: complete - day * 15,
                end: complete + day * 15,
            },
        }
    }

    /// The published keys, in the shape `aws cloudtrail list-public-keys` prints.
    pub fn public_keys_json(&self) -> serde_json::Value {
        serde_json::json!({ "PublicKeyList": [self.key.to_json()] })
    }

    /// The sign file's bytes as they will be written.
    pub fn sign_file(&self) -> Vec<u8> {
        self.sign_bytes
            .clone()
            .unwrap_or_else(|| self.sign.to_json())
    }

    /// The bytes of a file by name.
    pub fn file_mut(&mut self, name: &str) -> &mut Vec<u8> {
        &mut self
            .files
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no file {name}"))
            .1
    }

    /// Writes every file and `result_sign.json` into `dir` (made if needed).
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        }
        let path = dir.join("result_sign.json");
        std::fs::write(&path, self.sign_file()).map_err(|e| io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_file_signs_the_stored_bytes_hashes_joined_by_spaces() {
        let t: Timestamp = "2026-01-10T12:00:00Z".parse().unwrap();
        let export = LakeExport::new(7, 3, 5, t);
        let doc: serde_json::Value = serde_json::from_slice(&export.sign_file()).unwrap();
        let hashes: Vec<String> = export.files.iter().map(|(_, b)| sha256_hex(b)).collect();
        assert_eq!(export.sign.string_to_sign(), hashes.join(" "));
        assert_eq!(doc["files"][2]["fileName"], "result_3.csv.gz");
        let k = signing_key(LAKE_KEY);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            k.public_der(),
        );
        let sig = hex::decode(doc["hashSignature"].as_str().unwrap()).unwrap();
        public.verify(hashes.join(" ").as_bytes(), &sig).unwrap();
        assert_eq!(LakeExport::new(7, 3, 5, t).sign_file(), export.sign_file());
    }
}
