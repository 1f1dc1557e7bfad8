//! Digest signatures: the string to sign, CloudTrail public keys, and the proof type
//! [`VerifiedDigest`] that only a successful RSA check can produce.
use std::collections::BTreeMap;

use jiff::Timestamp;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::{PublicKey as X509PublicKey, RSAPublicKey};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::digest::ParsedDigest;
use super::types::Fingerprint;

/// Why a public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The DER is neither a PKCS#1 `RSAPublicKey` nor an X.509 `SubjectPublicKeyInfo` holding
    /// one, or has bytes after it.
    #[error("key {fingerprint}: not an RSA public key in PKCS#1 or SubjectPublicKeyInfo DER")]
    Encoding {
        /// MD5 of the DER bytes as given.
        fingerprint: Fingerprint,
    },
    /// The RSA modulus is shorter than 2048 bits, which CloudTrail never uses.
    #[error("key {fingerprint}: RSA modulus of {bits} bits; at least 2048 are required")]
    TooSmall {
        /// MD5 of the DER bytes as given.
        fingerprint: Fingerprint,
        /// The modulus length in bits, leading zeros not counted.
        bits: usize,
    },
    /// The validity window ends before it starts.
    #[error("key {fingerprint}: validity starts after it ends")]
    Window {
        /// MD5 of the DER bytes as given.
        fingerprint: Fingerprint,
    },
}

/// Why a digest's signature does not hold. Each is a finding, not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// No key of the set has the digest's `digestPublicKeyFingerprint`; reported as
    /// [`Kind::DigestKeyUnknown`](super::finding::Kind::DigestKeyUnknown).
    #[error("public key not found for fingerprint {fingerprint}")]
    KeyNotFound {
        /// The fingerprint the digest names.
        fingerprint: Fingerprint,
    },
    /// The key exists, but its window does not reach the time the digest was signed;
    /// reported as [`Kind::DigestKeyNotValid`](super::finding::Kind::DigestKeyNotValid). The
    /// signature is not even tried.
    #[error("public key {fingerprint} is valid from {valid_from} to {valid_to}, not {at}")]
    KeyNotValidAt {
        /// The key's fingerprint.
        fingerprint: Fingerprint,
        /// Start of the key's validity window.
        valid_from: Timestamp,
        /// End of the key's validity window.
        valid_to: Timestamp,
        /// When the digest must have been signed.
        at: SigningTime,
    },
    /// The RSA signature does not verify over the string to sign with the named key;
    /// reported as [`Kind::DigestSignatureInvalid`](super::finding::Kind::DigestSignatureInvalid).
    #[error("signature verification failed")]
    BadSignature,
}

/// When the key that signed a digest must have been valid. CloudTrail signs a digest when it
/// generates it, with a key valid then: a key whose window does not reach these times cannot
/// have signed it (a retired key must not vouch for a later period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigningTime {
    /// The key must be valid at some time from `earliest` to `latest` (both included).
    pub earliest: Timestamp,
    /// See `earliest`; equal to it unless the basis is [`SigningBasis::BackfillBound`].
    pub latest: Timestamp,
    /// What the times were taken from, so a verdict can say what it relied on.
    pub basis: SigningBasis,
}

/// Where a [`SigningTime`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningBasis {
    /// A standard digest: its signed `digestEndTime`.
    DigestEnd,
    /// A backfill digest: its `backfill-generation-timestamp`, which is unsigned S3 metadata
    /// (taken only when it does not precede the signed end time).
    BackfillGenerationTimestamp,
    /// A backfill digest without a generation time (a plain copy): any time from its signed
    /// end time to [`BACKFILL_GENERATION_BOUND`] after it.
    BackfillBound,
}

/// How long after a backfill digest's end CloudTrail may have generated it, when its
/// generation time is unknown: the length of a CloudTrail key's validity window. It only
/// admits keys that became valid after the digest's end; a key that expired before the end is
/// refused whatever the bound.
pub const BACKFILL_GENERATION_BOUND: jiff::SignedDuration =
    jiff::SignedDuration::from_hours(30 * 24);

impl SigningTime {
    /// A standard digest: signed at its end time.
    pub fn digest_end(end: Timestamp) -> Self {
        SigningTime {
            earliest: end,
            latest: end,
            basis: SigningBasis::DigestEnd,
        }
    }

    /// A backfill digest whose S3 metadata states when it was generated. The statement is
    /// unsigned: `None` when it precedes the digest's signed end, which CloudTrail cannot do.
    pub fn backfill_generated(end: Timestamp, generated: Timestamp) -> Option<Self> {
        (generated >= end).then_some(SigningTime {
            earliest: generated,
            latest: generated,
            basis: SigningBasis::BackfillGenerationTimestamp,
        })
    }

    /// A backfill digest whose generation time is unknown: generated at or after its end,
    /// within [`BACKFILL_GENERATION_BOUND`].
    pub fn backfill_unknown(end: Timestamp) -> Self {
        SigningTime {
            earliest: end,
            latest: end
                .checked_add(BACKFILL_GENERATION_BOUND)
                .unwrap_or(Timestamp::MAX),
            basis: SigningBasis::BackfillBound,
        }
    }

    /// Whether `key` was valid at some time this allows.
    fn admits(&self, key: &PublicKey) -> bool {
        key.valid_from <= self.latest && key.valid_to >= self.earliest
    }
}

impl std::fmt::Display for SigningTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::time::format_iso;
        match self.basis {
            SigningBasis::DigestEnd => write!(f, "at {}", format_iso(self.earliest)),
            SigningBasis::BackfillGenerationTimestamp => write!(
                f,
                "at {}, the backfill-generation-timestamp of its S3 metadata",
                format_iso(self.earliest)
            ),
            SigningBasis::BackfillBound => write!(
                f,
                "at any time from {} to {} (no backfill-generation-timestamp: from the digest's end to {} days after)",
                format_iso(self.earliest),
                format_iso(self.latest),
                BACKFILL_GENERATION_BOUND.as_hours() / 24
            ),
        }
    }
}

/// A CloudTrail public key for one Region and validity window.
#[derive(Debug, Clone)]
pub struct PublicKey {
    fingerprint: Fingerprint,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    /// First instant of the key's validity window (`ValidityStartTime`).
    pub valid_from: Timestamp,
    /// Last instant of the key's validity window (`ValidityEndTime`), included.
    pub valid_to: Timestamp,
}

impl PublicKey {
    /// Loads DER as delivered by ListPublicKeys (PKCS#1 RSAPublicKey, or SubjectPublicKeyInfo
    /// as one AWS-published key is). The fingerprint is computed, never taken on trust.
    pub fn from_der(
        der: &[u8],
        valid_from: Timestamp,
        valid_to: Timestamp,
    ) -> Result<Self, KeyError> {
        let fingerprint = Fingerprint::of_der(der);
        let encoding = || KeyError::Encoding {
            fingerprint: fingerprint.clone(),
        };
        let components = |k: RSAPublicKey<'_>| {
            (
                strip_zeros(k.modulus).to_vec(),
                strip_zeros(k.exponent).to_vec(),
            )
        };
        let (modulus, exponent) = match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => match spki.parsed() {
                Ok(X509PublicKey::RSA(k)) => components(k),
                _ => return Err(encoding()),
            },
            _ => match RSAPublicKey::from_der(der) {
                Ok(([], k)) => components(k),
                _ => return Err(encoding()),
            },
        };
        // `modulus` has no leading zero byte; it is empty when the modulus is zero.
        let bits = modulus.len() * 8 - modulus.first().map_or(0, |b| b.leading_zeros() as usize);
        if bits < 2048 {
            return Err(KeyError::TooSmall { fingerprint, bits });
        }
        if valid_from > valid_to {
            return Err(KeyError::Window { fingerprint });
        }
        Ok(PublicKey {
            fingerprint,
            modulus,
            exponent,
            valid_from,
            valid_to,
        })
    }

    /// MD5 of the DER bytes the key was loaded from, computed here.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Whether `signature` is this key's signature over `message`, by
    /// RSASSA-PKCS1-v1_5 with SHA-256 only; ring refuses the MD5 and SHA-1 forms.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        // Fuzz builds only (cargo-fuzz sets `--cfg fuzzing`; elsewhere this is a constant false
        // and compiled out): a fuzzer cannot forge RSA, so without this it would never reach the
        // chain walker past the signature check. An empty signature still fails, as under ring,
        // so both outcomes stay reachable.
        if cfg!(fuzzing) {
            return !signature.is_empty();
        }
        RsaPublicKeyComponents {
            n: &self.modulus,
            e: &self.exponent,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// The keys a run may use, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<Fingerprint, PublicKey>,
}

impl KeySet {
    /// Adds `key`, replacing a key with the same fingerprint (same DER bytes) and its window.
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.fingerprint.clone(), key);
    }

    /// The key with this fingerprint, if the set has it.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&PublicKey> {
        self.keys.get(fingerprint)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key (then no digest can verify).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in fingerprint order.
    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }
}

/// A digest whose signature has been checked with a CloudTrail key. Only [`verify_digest`]
/// makes one, so holding it is the proof.
#[derive(Debug, Clone)]
pub struct VerifiedDigest {
    digest: ParsedDigest,
    fingerprint: Fingerprint,
    signed: SigningTime,
    signature: Vec<u8>,
}

impl VerifiedDigest {
    /// The digest whose signature verified.
    pub fn digest(&self) -> &ParsedDigest {
        &self.digest
    }

    /// The fingerprint of the key that verified it.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The times the key was found valid at.
    pub fn signed(&self) -> SigningTime {
        self.signed
    }

    /// The signature that verified: what the next digest's `previousDigestSignature` must
    /// carry (a checkpoint records it, see `report::checkpoint`).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The digest, giving up the proof.
    pub fn into_inner(self) -> ParsedDigest {
        self.digest
    }
}

/// `digestEndTime \n bucket/object \n hex(sha256(raw)) \n previousDigestSignature-or-null`.
pub fn string_to_sign(d: &ParsedDigest) -> Vec<u8> {
    let previous = d
        .previous
        .as_ref()
        .map_or_else(|| "null".to_owned(), |p| hex::encode(&p.signature));
    format!(
        "{}\n{}/{}\n{}\n{}",
        d.end_text,
        d.location.bucket,
        d.location.key,
        d.sha256().to_hex(),
        previous
    )
    .into_bytes()
}

/// Checks `signature` over the digest with the key its fingerprint names, which must have been
/// valid at some time `signed` allows. There is no way to skip that check.
pub fn verify_digest(
    digest: &ParsedDigest,
    signature: &[u8],
    keys: &KeySet,
    signed: SigningTime,
) -> Result<VerifiedDigest, SignatureFailure> {
    let Some(key) = keys.get(&digest.fingerprint) else {
        return Err(SignatureFailure::KeyNotFound {
            fingerprint: digest.fingerprint.clone(),
        });
    };
    if !signed.admits(key) {
        return Err(SignatureFailure::KeyNotValidAt {
            fingerprint: key.fingerprint.clone(),
            valid_from: key.valid_from,
            valid_to: key.valid_to,
            at: signed,
        });
    }
    if !key.verify(&string_to_sign(digest), signature) {
        return Err(SignatureFailure::BadSignature);
    }
    Ok(VerifiedDigest {
        digest: digest.clone(),
        fingerprint: key.fingerprint.clone(),
        signed,
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/testdata/vectors/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("testdata/vectors")
    }

    fn window() -> (Timestamp, Timestamp) {
        (Timestamp::UNIX_EPOCH, Timestamp::MAX)
    }

    #[test]
    fn loads_aws_published_keys_in_both_encodings_with_md5_fingerprints() {
        for fp in [
            "31e8b5433410dfb61a9dc45cc65b22ff", // SubjectPublicKeyInfo
            "7f3f401420072e50a65a141430817ab3",
            "8933b39ddc64d26d8e14ffbf6566fee4",
            "8eba5db5bea9b640d1c96a77256fe7f2",
        ] {
            let der = vector(&format!("aws-docs-public-keys/{fp}.der"));
            let (a, b) = window();
            let key = PublicKey::from_der(&der, a, b).unwrap();
            assert_eq!(key.fingerprint().as_str(), fp);
        }
    }

    #[test]
    fn verifies_the_aws_cli_v2_lake_vector_and_rejects_a_changed_message() {
        // An AWS-authored RSASSA-PKCS1-v1_5/SHA-256 signature over a hash string.
        let der = vector("awscli-v2-verify-query-results/functional_SAMPLE_PUBLIC_KEY_from_test_verifyqueryresults.der");
        let sign: serde_json::Value = serde_json::from_slice(&vector(
            "awscli-v2-verify-query-results/functional_result_sign.json",
        ))
        .unwrap();
        let message = sign["files"][0]["fileHashValue"].as_str().unwrap();
        let signature = hex::decode(sign["hashSignature"].as_str().unwrap()).unwrap();
        let (a, b) = window();
        let key = PublicKey::from_der(&der, a, b).unwrap();
        assert!(key.verify(message.as_bytes(), &signature));
        let mut changed = message.to_owned().into_bytes();
        changed[0] ^= 1;
        assert!(!key.verify(&changed, &signature));
        let mut bad_sig = signature.clone();
        bad_sig[10] ^= 1;
        assert!(!key.verify(message.as_bytes(), &bad_sig));
        assert!(!key.verify(message.as_bytes(), &signature[1..]));
    }

    /// The key check is an overlap of two closed intervals, and an unsigned generation time
    /// before the signed end is refused; a bound past the end of time saturates.
    #[test]
    fn signing_times_bound_the_backfill_generation_time() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let der = vector("aws-docs-public-keys/8eba5db5bea9b640d1c96a77256fe7f2.der");
        let key = PublicKey::from_der(&der, t("2026-01-10T00:00:00Z"), t("2026-02-09T00:00:00Z"))
            .unwrap();
        let end = t("2026-01-01T01:04:04Z");
        assert!(!SigningTime::digest_end(end).admits(&key));
        assert!(SigningTime::backfill_unknown(end).admits(&key));
        assert!(SigningTime::digest_end(t("2026-02-09T00:00:00Z")).admits(&key));
        assert!(!SigningTime::digest_end(t("2026-02-09T00:00:01Z")).admits(&key));
        assert_eq!(
            SigningTime::backfill_generated(end, t("2026-01-01T01:04:03Z")),
            None
        );
        let at = SigningTime::backfill_generated(end, end).unwrap();
        assert_eq!(
            (at.earliest, at.basis),
            (end, SigningBasis::BackfillGenerationTimestamp)
        );
        let last = SigningTime::backfill_unknown(Timestamp::MAX);
        assert_eq!(
            (last.earliest, last.latest),
            (Timestamp::MAX, Timestamp::MAX)
        );
    }

    /// An RSA key whose modulus is zero has no bytes left once leading zeros are stripped;
    /// counting its bits subtracted 8 from 0.
    #[test]
    fn a_zero_modulus_is_too_small_not_an_overflow() {
        let (a, b) = window();
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER 0, publicExponent INTEGER 3 }
        let der = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03];
        assert!(matches!(
            PublicKey::from_der(&der, a, b),
            Err(KeyError::TooSmall { bits: 0, .. })
        ));
    }

    #[test]
    fn rejects_small_and_malformed_keys() {
        let (a, b) = window();
        assert!(matches!(
            PublicKey::from_der(b"\x30\x00", a, b),
            Err(KeyError::Encoding { .. })
        ));
        let small = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/keys/test-rsa-1024-spki.der"
        ))
        .unwrap();
        assert!(matches!(
            PublicKey::from_der(&small, a, b),
            Err(KeyError::TooSmall { bits: 1024, .. })
        ));
        let der = vector("aws-docs-public-keys/8eba5db5bea9b640d1c96a77256fe7f2.der");
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(PublicKey::from_der(&trailing, a, b).is_err());
        assert!(matches!(
            PublicKey::from_der(&der, b, a),
            Err(KeyError::Window { .. })
        ));
    }
}
