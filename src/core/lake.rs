//! CloudTrail Lake query results: a `result_sign.json` in, a strictly typed [`SignFile`] out;
//! its signature checked into a [`VerifiedSignFile`]; each result file judged against it.
//!
//! When CloudTrail Lake saves a query's results to S3 it writes the result files
//! (`result_1.csv.gz`, `result_2.csv.gz`, ...) and a sign file listing the SHA-256 of each
//! result file **as stored** (the gzip bytes, not the CSV), signed with the Region's CloudTrail
//! key (RSASSA-PKCS1-v1_5, SHA-256) over the hashes joined by single spaces.
//!
//! Only the hash list is signed. The file names, `queryCompleteTime`, `region` and
//! `publicKeyFingerprint` are not: anyone who can write the sign file can change them. So:
//!
//! - a name that is not a CloudTrail result name (`result_N.csv.gz`), or a name listed twice,
//!   is a finding and that file is not read (a name such as `../../etc/passwd` never reaches a
//!   source);
//! - the time and fingerprint only choose among genuine CloudTrail keys: the signature must
//!   still verify under a key valid at `queryCompleteTime`, so they cannot make a forgery pass;
//! - which name carries which signed hash is not signed. Swapping two result files *and* their
//!   names in the sign file leaves every file's content authentic, in the signed order; that is
//!   what a valid result proves.
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::finding::{Evidence, Finding, Kind};
use super::sign::KeySet;
use super::time::{format_iso, parse_iso};
use super::types::{decode_lower_hex, Fingerprint, Sha256};

/// The sign file's name in the export folder.
pub const SIGN_FILE: &str = "result_sign.json";
/// The most bytes of a sign file that are read: about 150,000 result files' entries. A larger
/// one is not read at all.
pub const MAX_SIGN_FILE: u64 = 16 << 20;
/// The AWS CLI asks ListPublicKeys for keys from `queryCompleteTime` to this much after it.
pub const KEY_SEARCH: SignedDuration = SignedDuration::from_hours(20 * 24);

/// Why a sign file is not a well-formed CloudTrail Lake sign file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignFileError {
    /// Not UTF-8, not JSON, a field missing, unknown or of the wrong JSON type, or a field given
    /// twice.
    #[error("not UTF-8 JSON of the sign-file shape: {detail}")]
    Json {
        /// The UTF-8 or JSON parser's message.
        detail: String,
    },
    /// A field's value is not what CloudTrail writes (upper-case or short hex, a bad time or
    /// Region).
    #[error("field {field} has an invalid value {value:?}")]
    Field {
        /// The field's name (`files.fileHashValue` for an entry's hash).
        field: &'static str,
        /// The value as written.
        value: String,
    },
    /// An algorithm other than `SHA256withRSA` for the signature or `SHA-256` for the hashes.
    #[error("unsupported {field} {value:?}")]
    Algorithm {
        /// The field's name.
        field: &'static str,
        /// The algorithm as written.
        value: String,
    },
    /// `files` is empty: nothing is vouched for (the AWS CLI: "No export file was found in
    /// sign file.").
    #[error("the sign file lists no result file")]
    NoFiles,
}

/// One result file the sign file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEntry {
    /// `fileName`, as written (unsigned; see [`SignFile::readable`]).
    pub name: String,
    /// `fileHashValue`: SHA-256 of the stored (compressed) file. Signed.
    pub hash: Sha256,
}

/// A sign file whose content is well formed. Not yet trusted: see [`VerifiedSignFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignFile {
    /// `region`: the Region whose key signed it (unsigned).
    pub region: String,
    /// `files`, in the signed order; never empty.
    pub files: Vec<ResultEntry>,
    /// `queryCompleteTime`: the key must be valid then (unsigned).
    pub complete: Timestamp,
    /// `publicKeyFingerprint`: which key signed it (unsigned).
    pub fingerprint: Fingerprint,
    /// `hashSignature`, decoded.
    pub signature: Vec<u8>,
}

impl SignFile {
    /// Parses a sign file's bytes strictly: every field CloudTrail writes must be there with
    /// its exact form (`version` may be absent, as in the AWS CLI's own test resource), and no
    /// other field.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignFileError> {
        let json = |detail: String| SignFileError::Json { detail };
        let text = std::str::from_utf8(bytes).map_err(|e| json(e.to_string()))?;
        let w: Wire = serde_json::from_str(text).map_err(|e| json(e.to_string()))?;
        if let Some(v) = &w.version {
            if v != "1.0" {
                return Err(bad("version", v));
            }
        }
        if !is_region(&w.region) {
            return Err(bad("region", &w.region));
        }
        if w.hash_algorithm != "SHA-256" {
            return Err(SignFileError::Algorithm {
                field: "hashAlgorithm",
                value: w.hash_algorithm,
            });
        }
        if w.signature_algorithm != "SHA256withRSA" {
            return Err(SignFileError::Algorithm {
                field: "signatureAlgorithm",
                value: w.signature_algorithm,
            });
        }
        let complete = parse_iso(&w.query_complete_time)
            .ok_or_else(|| bad("queryCompleteTime", &w.query_complete_time))?;
        let fingerprint = Fingerprint::parse(&w.public_key_fingerprint)
            .ok_or_else(|| bad("publicKeyFingerprint", &w.public_key_fingerprint))?;
        let signature = decode_lower_hex(&w.hash_signature)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("hashSignature", &w.hash_signature))?;
        if w.files.is_empty() {
            return Err(SignFileError::NoFiles);
        }
        // Only 64 lowercase hex digits: the string to sign is rebuilt from the parsed hashes,
        // and that is the exact text written only for this one spelling.
        let files = w
            .files
            .into_iter()
            .map(|f| {
                Ok(ResultEntry {
                    hash: Sha256::from_lower_hex(&f.file_hash_value)
                        .ok_or_else(|| bad("files.fileHashValue", &f.file_hash_value))?,
                    name: f.file_name,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignFile {
            region: w.region,
            files,
            complete,
            fingerprint,
            signature,
        })
    }

    /// What CloudTrail signs: the `fileHashValue`s in order, joined by single spaces.
    pub fn string_to_sign(&self) -> Vec<u8> {
        let hashes: Vec<String> = self.files.iter().map(|f| f.hash.to_hex()).collect();
        hashes.join(" ").into_bytes()
    }

    /// For each entry, whether its file may be read: its name is a CloudTrail result name and
    /// no earlier entry has it. The others are judged by [`judge_export`] without a read.
    pub fn readable(&self) -> Vec<bool> {
        let mut seen = std::collections::BTreeSet::new();
        self.files
            .iter()
            .map(|f| is_result_name(&f.name) && seen.insert(f.name.as_str()))
            .collect()
    }
}

/// Why a sign file's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignFileFailure {
    /// No key at hand has the fingerprint the sign file names.
    #[error("no public key with fingerprint {fingerprint}")]
    KeyNotFound {
        /// The fingerprint named.
        fingerprint: Fingerprint,
    },
    /// The key is known but was not valid at `queryCompleteTime`.
    #[error("the key {fingerprint} is valid from {} to {}, not at the query's completion time {}", format_iso(*valid_from), format_iso(*valid_to), format_iso(*at))]
    KeyNotValidAt {
        /// The key.
        fingerprint: Fingerprint,
        /// Start of its window.
        valid_from: Timestamp,
        /// End of its window.
        valid_to: Timestamp,
        /// `queryCompleteTime`.
        at: Timestamp,
    },
    /// The signature does not verify over the hash list with the named key.
    #[error("Invalid signature in sign file")]
    BadSignature,
}

/// A sign file whose signature verified with a CloudTrail key valid at its
/// `queryCompleteTime`. Only [`verify_sign_file`] makes one, so holding it is the proof that
/// its hash list is CloudTrail's.
#[derive(Debug, Clone)]
pub struct VerifiedSignFile {
    sign: SignFile,
}

impl VerifiedSignFile {
    /// The sign file.
    pub fn sign_file(&self) -> &SignFile {
        &self.sign
    }
}

/// Checks the signature over the hash list with the key the fingerprint names, which must be
/// valid at `queryCompleteTime`. There is no way to skip either check.
pub fn verify_sign_file(
    sign: &SignFile,
    keys: &KeySet,
) -> Result<VerifiedSignFile, SignFileFailure> {
    let key = keys
        .get(&sign.fingerprint)
        .ok_or_else(|| SignFileFailure::KeyNotFound {
            fingerprint: sign.fingerprint.clone(),
        })?;
    if !(key.valid_from <= sign.complete && sign.complete <= key.valid_to) {
        return Err(SignFileFailure::KeyNotValidAt {
            fingerprint: sign.fingerprint.clone(),
            valid_from: key.valid_from,
            valid_to: key.valid_to,
            at: sign.complete,
        });
    }
    if !key.verify(&sign.string_to_sign(), &sign.signature) {
        return Err(SignFileFailure::BadSignature);
    }
    Ok(VerifiedSignFile { sign: sign.clone() })
}

/// Whether `name` is a name CloudTrail gives a result file: `result_N.csv.gz`, N a positive
/// decimal number of at most 9 digits without leading zeros. Nothing else (no folder, no `..`)
/// is ever read.
pub fn is_result_name(name: &str) -> bool {
    name.strip_prefix("result_")
        .and_then(|rest| rest.strip_suffix(".csv.gz"))
        .is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 9
                && !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// What reading one result file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultRead {
    /// SHA-256 of its stored bytes, and how many there were.
    Hashed {
        /// The hash.
        sha256: Sha256,
        /// Its size in bytes.
        size: u64,
    },
    /// Nothing is there.
    Missing,
    /// Something is there that is not a plain file of the folder (a link out of it, a FIFO, a
    /// device): never read.
    NotAFile(String),
    /// It is there but could not be read (permissions, I/O, S3 errors): the job is not done.
    Unreadable(String),
}

/// The sign file as the run found it.
#[derive(Debug, Clone, Copy)]
pub enum SignState<'a> {
    /// Verified: its hashes vouch for the result files.
    Verified(&'a VerifiedSignFile),
    /// Well formed, but its signature was not accepted: its hashes are compared, nothing is
    /// vouched for.
    Unverified(&'a SignFile),
}

impl SignState<'_> {
    fn file(&self) -> &SignFile {
        match self {
            SignState::Verified(v) => v.sign_file(),
            SignState::Unverified(s) => s,
        }
    }
}

/// The finding on the sign file itself: valid, or why its signature was not accepted.
pub fn sign_file_finding(
    subject: &str,
    sign: &SignFile,
    verdict: &Result<VerifiedSignFile, SignFileFailure>,
) -> Finding {
    let evidence = Evidence {
        fingerprint: Some(sign.fingerprint.clone()),
        from: Some(sign.complete),
        to: Some(sign.complete),
        ..Evidence::default()
    };
    let (kind, reason) = match verdict {
        Ok(_) => (Kind::QuerySignValid, "valid".to_owned()),
        Err(e @ SignFileFailure::KeyNotFound { .. }) => (
            Kind::QuerySignKeyUnknown,
            format!("{e} in region {}", sign.region),
        ),
        Err(e @ SignFileFailure::KeyNotValidAt { .. }) => {
            (Kind::QuerySignKeyNotValid, e.to_string())
        }
        Err(SignFileFailure::BadSignature) => (
            Kind::QuerySignSignatureInvalid,
            "signature verification failed".to_owned(),
        ),
    };
    Finding::new(subject, kind, reason).with(evidence)
}

/// The findings on the result files: one per entry of the sign file, in its order, then one
/// per file in the folder that it does not list (`unlisted`, as the folder's listing named
/// them, the sign file itself left out by the caller). `reads` has one element per entry:
/// `None` where [`SignFile::readable`] said not to read. `uri` makes a subject of a name.
pub fn judge_export(
    sign: SignState<'_>,
    reads: &[Option<ResultRead>],
    unlisted: &[String],
    uri: &dyn Fn(&str) -> String,
) -> Vec<Finding> {
    let file = sign.file();
    let readable = file.readable();
    let mut findings = Vec::with_capacity(file.files.len() + unlisted.len());
    for (i, entry) in file.files.iter().enumerate() {
        let subject = uri(&entry.name);
        let expected = Evidence {
            expected_sha256: Some(entry.hash),
            ..Evidence::default()
        };
        let read = reads.get(i).and_then(Option::as_ref);
        let finding = match (readable.get(i).copied().unwrap_or(false), read) {
            (false, _) if is_result_name(&entry.name) => Finding::new(
                subject,
                Kind::QueryResultName,
                "listed more than once in the sign file",
            ),
            (false, _) => Finding::new(
                subject,
                Kind::QueryResultName,
                "not a CloudTrail result file name (result_N.csv.gz): not read",
            ),
            (true, None) => Finding::new(subject, Kind::QueryResultUnreadable, "not read"),
            (true, Some(ResultRead::Missing)) => {
                Finding::new(subject, Kind::QueryResultMissing, "not found")
            }
            (true, Some(ResultRead::NotAFile(what))) => Finding::new(
                subject,
                Kind::QueryResultNotAFile,
                format!("not a plain file of the export folder: {what}"),
            ),
            (true, Some(ResultRead::Unreadable(why))) => Finding::new(
                subject,
                Kind::QueryResultUnreadable,
                format!("could not be read: {why}"),
            ),
            (true, Some(ResultRead::Hashed { sha256, .. })) => {
                let evidence = Evidence {
                    actual_sha256: Some(*sha256),
                    ..expected.clone()
                };
                let (kind, reason) = match (*sha256 == entry.hash, sign) {
                    (false, _) => (Kind::QueryResultHashMismatch, "hash value doesn't match"),
                    (true, SignState::Verified(_)) => (Kind::QueryResultValid, "valid"),
                    (true, SignState::Unverified(_)) => (
                        Kind::QueryResultUnverifiable,
                        "hash matches the sign file, whose signature was not accepted",
                    ),
                };
                Finding::new(subject, kind, reason).with(evidence)
            }
        };
        let finding = if finding.evidence == Evidence::default() {
            finding.with(expected)
        } else {
            finding
        };
        findings.push(finding);
    }
    for name in unlisted {
        findings.push(Finding::new(
            uri(name),
            Kind::QueryResultUnlisted,
            "in the export folder but not in the sign file",
        ));
    }
    findings
}

/// The names of a folder listing (sub-folders ending in `/`) that the sign file does not
/// account for: neither the sign file itself nor a listed result file. Sorted, each once.
pub fn unlisted<'a>(
    sign: Option<&SignFile>,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let listed: std::collections::BTreeSet<&str> = sign
        .map(|s| s.files.iter().map(|f| f.name.as_str()).collect())
        .unwrap_or_default();
    let mut out: Vec<String> = names
        .into_iter()
        // A folder carrying a listed name is that entry's finding (not a file), not another.
        .filter(|n| {
            let bare = n.strip_suffix('/').unwrap_or(n);
            bare != SIGN_FILE && !listed.contains(bare)
        })
        .map(str::to_owned)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn bad(field: &'static str, value: &str) -> SignFileError {
    SignFileError::Field {
        field,
        value: value.to_owned(),
    }
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.contains('-')
}

/// The sign file as CloudTrail writes it. Unknown fields are refused, and serde refuses a known
/// field given twice.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    version: Option<String>,
    region: String,
    files: Vec<WireFile>,
    hash_algorithm: String,
    signature_algorithm: String,
    query_complete_time: String,
    hash_signature: String,
    public_key_fingerprint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireFile {
    file_hash_value: String,
    file_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sign::PublicKey;

    fn vector(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/testdata/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn aws_sign_file() -> Vec<u8> {
        vector("lake/awscli-v2-functional/result_sign.json")
    }

    /// The vector's key, valid around its query: its fingerprint is the MD5 of its DER, not the
    /// vector's label (see testdata/lake/README.md).
    fn aws_key() -> KeySet {
        let der = vector("lake/awscli-v2-functional-key.der");
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let key = PublicKey::from_der(&der, t("2022-05-01T00:00:00Z"), t("2022-05-31T00:00:00Z"))
            .unwrap();
        let mut keys = KeySet::default();
        keys.insert(key);
        keys
    }

    fn relabelled(bytes: &[u8], fingerprint: &str) -> SignFile {
        let mut sign = SignFile::parse(bytes).unwrap();
        sign.fingerprint = Fingerprint::parse(fingerprint).unwrap();
        sign
    }

    #[test]
    fn the_aws_cli_vector_parses_and_verifies_under_its_key() {
        let sign = SignFile::parse(&aws_sign_file()).unwrap();
        assert_eq!(sign.region, "us-east-1");
        assert_eq!(sign.files.len(), 1);
        assert_eq!(sign.files[0].name, "result_1.csv.gz");
        assert_eq!(
            sign.files[0].hash,
            Sha256::of(&vector("lake/awscli-v2-functional/result_1.csv.gz"))
        );
        // The vector's fingerprint is a label no key has: never verified as it stands.
        assert_eq!(
            verify_sign_file(&sign, &aws_key()).unwrap_err(),
            SignFileFailure::KeyNotFound {
                fingerprint: sign.fingerprint.clone()
            }
        );
        let sign = relabelled(&aws_sign_file(), "e00b881a39d15623efee61d0eaf2874a");
        assert!(verify_sign_file(&sign, &aws_key()).is_ok());
    }

    #[test]
    fn the_aws_cli_unit_vectors_placeholder_signature_is_a_format_error() {
        let bytes = vector("vectors/awscli-v2-verify-query-results/unit_result_sign.json");
        assert_eq!(
            SignFile::parse(&bytes),
            Err(SignFileError::Field {
                field: "hashSignature",
                value: "hashSignature".into()
            })
        );
    }

    #[test]
    fn a_key_outside_its_window_at_query_completion_never_verifies() {
        let mut sign = relabelled(&aws_sign_file(), "e00b881a39d15623efee61d0eaf2874a");
        sign.complete = "2022-06-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            verify_sign_file(&sign, &aws_key()),
            Err(SignFileFailure::KeyNotValidAt { .. })
        ));
    }

    #[test]
    fn a_changed_hash_list_fails_the_signature() {
        let mut sign = relabelled(&aws_sign_file(), "e00b881a39d15623efee61d0eaf2874a");
        sign.files.push(sign.files[0].clone());
        assert_eq!(
            verify_sign_file(&sign, &aws_key()).unwrap_err(),
            SignFileFailure::BadSignature
        );
    }

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&aws_sign_file()).unwrap();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn odd_hash_spellings_and_fields_are_format_errors() {
        let hash = "5b918b3fb6e1f00ea4a004eb40223a87c75f4bf4cf69a75e47843144d3fbaf80";
        for spelled in [
            hash.to_uppercase(),
            format!(" {hash}"),
            format!("{hash} "),
            format!("{hash} {hash}"),
            hash[..63].to_owned(),
        ] {
            let bytes = with(
                "files",
                serde_json::json!([{"fileHashValue": spelled, "fileName": "result_1.csv.gz"}]),
            );
            assert!(
                matches!(
                    SignFile::parse(&bytes),
                    Err(SignFileError::Field {
                        field: "files.fileHashValue",
                        ..
                    })
                ),
                "{spelled:?}"
            );
        }
        assert_eq!(
            SignFile::parse(&with("files", serde_json::json!([]))),
            Err(SignFileError::NoFiles)
        );
        assert!(matches!(
            SignFile::parse(&with("hashAlgorithm", "MD5".into())),
            Err(SignFileError::Algorithm { .. })
        ));
        assert!(matches!(
            SignFile::parse(&with("signatureAlgorithm", "SHA1withRSA".into())),
            Err(SignFileError::Algorithm { .. })
        ));
        assert!(matches!(
            SignFile::parse(&with("queryCompleteTime", "2022-05-10 22:06:30".into())),
            Err(SignFileError::Field { .. })
        ));
        assert!(matches!(
            SignFile::parse(&with("extra", 1.into())),
            Err(SignFileError::Json { .. })
        ));
        let twice = String::from_utf8(aws_sign_file()).unwrap().replacen(
            "\"region\" : \"us-east-1\",",
            "\"region\" : \"us-east-1\", \"region\": \"us-west-2\",",
            1,
        );
        assert!(matches!(
            SignFile::parse(twice.as_bytes()),
            Err(SignFileError::Json { .. })
        ));
    }

    #[test]
    fn only_cloudtrail_result_names_are_read() {
        for good in ["result_1.csv.gz", "result_12.csv.gz"] {
            assert!(is_result_name(good), "{good}");
        }
        for bad in [
            "../result_1.csv.gz",
            "/etc/passwd",
            "a/result_1.csv.gz",
            "result_01.csv.gz",
            "result_.csv.gz",
            "result_1.csv.gz/..",
            "result_1.csv",
            "RESULT_1.csv.gz",
            "result_sign.json",
            "",
        ] {
            assert!(!is_result_name(bad), "{bad}");
        }
    }

    fn two_files() -> SignFile {
        let mut sign = SignFile::parse(&aws_sign_file()).unwrap();
        sign.files.push(ResultEntry {
            name: "result_2.csv.gz".into(),
            hash: Sha256::of(b"two"),
        });
        sign
    }

    fn kinds(findings: &[Finding]) -> Vec<(String, Kind)> {
        findings
            .iter()
            .map(|f| (f.subject.clone(), f.kind))
            .collect()
    }

    #[test]
    fn every_failing_file_is_named_and_unverified_hashes_are_not_valid() {
        let sign = two_files();
        let reads = [
            Some(ResultRead::Hashed {
                sha256: Sha256::of(b"not one"),
                size: 7,
            }),
            Some(ResultRead::Missing),
        ];
        let uri = |n: &str| format!("x/{n}");
        let got = judge_export(
            SignState::Unverified(&sign),
            &reads,
            &["notes.txt".into()],
            &uri,
        );
        assert_eq!(
            kinds(&got),
            [
                ("x/result_1.csv.gz".into(), Kind::QueryResultHashMismatch),
                ("x/result_2.csv.gz".into(), Kind::QueryResultMissing),
                ("x/notes.txt".into(), Kind::QueryResultUnlisted),
            ]
        );
        let right = [Some(ResultRead::Hashed {
            sha256: sign.files[0].hash,
            size: 1,
        })];
        let got = judge_export(SignState::Unverified(&sign), &right, &[], &uri);
        assert_eq!(got[0].kind, Kind::QueryResultUnverifiable);
    }

    #[test]
    fn a_name_listed_twice_or_leading_out_is_a_finding_and_never_read() {
        let mut sign = two_files();
        sign.files[1].name = "result_1.csv.gz".into();
        assert_eq!(sign.readable(), [true, false]);
        sign.files[1].name = "../../etc/passwd".into();
        assert_eq!(sign.readable(), [true, false]);
        let got = judge_export(
            SignState::Unverified(&sign),
            &[Some(ResultRead::Missing), None],
            &[],
            &|n| n.to_owned(),
        );
        assert_eq!(got[1].kind, Kind::QueryResultName);
        assert_eq!(got[1].verdict, crate::core::finding::Verdict::Invalid);
    }

    #[test]
    fn the_sign_file_and_its_results_are_not_unlisted() {
        let sign = two_files();
        let names = [
            "result_sign.json",
            "result_1.csv.gz",
            "result_3.csv.gz",
            "result_3.csv.gz",
        ];
        assert_eq!(unlisted(Some(&sign), names), ["result_3.csv.gz"]);
        // A folder named like a listed file is that file's finding; any other folder is extra.
        assert_eq!(
            unlisted(Some(&sign), ["result_2.csv.gz/", "more/"]),
            ["more/"]
        );
        assert_eq!(
            unlisted(None, names),
            ["result_1.csv.gz", "result_3.csv.gz"]
        );
    }
}
