//! One digest file in one call: the checks a full run makes of a single digest, for an embedder
//! that holds one object (from an S3 event, a SIEM pipeline, an evidence locker).
//!
//! [`verify_digest_object`] takes the object as read — its stored bytes, the S3 location they
//! were read from, and the signature S3 keeps with it — and gives a [`VerifiedDigest`] only
//! when all of this holds:
//!
//! - the bytes are a gzip'd digest within [`Limits::DIGEST`], in CloudTrail's digest format;
//! - the digest names the location it was read from as its own (`digestS3Bucket`,
//!   `digestS3Object`): a digest copied or moved to another key does not verify there, even
//!   though its signature is intact;
//! - the key its fingerprint names is in the key set and was valid when CloudTrail signed it
//!   (the digest's end time; for a backfill digest, the generation time S3 metadata states,
//!   bounded by the end time) — a retired or not-yet-valid key vouches for nothing;
//! - the RSA signature verifies over CloudTrail's string to sign.
//!
//! There is no way to skip a check. What one digest cannot tell — whether the digest before it
//! is present, whether its log files are intact, whether hours are missing — needs the chain
//! ([`crate::core::chain::walk`]) or a whole run ([`crate::engine::verify`]).

use crate::core::digest::{DigestFormatError, ParsedDigest};
use crate::core::evidence::GenerationTime;
use crate::core::gz::{inflate_all, GzProblem, Limits};
use crate::core::layout::{parse_key, CloudTrailKey, DigestKey, LayoutError};
use crate::core::sign::{verify_digest, KeySet, SignatureFailure, SigningTime, VerifiedDigest};
use crate::core::time::format_iso;
use crate::core::types::S3Location;

/// A digest file as read from S3 (or from a copy that kept its S3 key).
#[derive(Debug, Clone, Copy)]
pub struct DigestObject<'a> {
    /// The bucket and key it was read from.
    pub location: &'a S3Location,
    /// Its bytes as stored (gzip), unchanged.
    pub stored: &'a [u8],
    /// Its signature: the object's `x-amz-meta-signature` metadata, decoded from hex (or the
    /// `previousDigestSignature` of the digest after it).
    pub signature: &'a [u8],
    /// For a backfill digest, the `backfill-generation-timestamp` S3 metadata;
    /// [`GenerationTime::Unknown`] when the metadata is not at hand. Ignored for standard
    /// digests.
    pub generated: &'a GenerationTime,
}

/// Why a digest file does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The key is not where CloudTrail writes digests, so what the digest covers is unknown.
    #[error("{key} is not a CloudTrail digest key: {source}")]
    NotADigestKey {
        /// The key read from.
        key: String,
        /// Why it is not one.
        source: LayoutError,
    },
    /// The key is a CloudTrail key, but of a log file (or another kind of object).
    #[error("{key} is a CloudTrail key, but not of a digest")]
    NotADigest {
        /// The key read from.
        key: String,
    },
    /// The stored bytes are not a complete gzip stream within the digest budget.
    #[error("not a gzip'd digest file: {0}")]
    Gzip(#[source] GzProblem),
    /// The inflated bytes are not a digest in CloudTrail's format.
    #[error("invalid format: {0}")]
    Format(#[source] DigestFormatError),
    /// The digest names another location as its own: it was copied or moved there.
    #[error("has been moved from its original location: read from {read_from}, delivered to {delivered_to}")]
    Moved {
        /// Where it was read from.
        read_from: S3Location,
        /// Where CloudTrail delivered it, as the digest states.
        delivered_to: S3Location,
    },
    /// The backfill digest's S3 metadata contradicts it: the object was rewritten.
    #[error(transparent)]
    GenerationTime(#[from] GenerationTimeError),
    /// The signature does not verify with a key valid when CloudTrail signed it.
    #[error(transparent)]
    Signature(#[from] SignatureFailure),
}

/// S3 metadata of a backfill digest that CloudTrail cannot have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerationTimeError {
    /// The stated generation time is before the end of the period the digest covers.
    #[error("the S3 metadata's backfill-generation-timestamp {} precedes the digest's end {}: CloudTrail cannot have generated it then, so the object was rewritten", format_iso(*.generated), format_iso(*.end))]
    BeforeEnd {
        /// The stated generation time.
        generated: jiff::Timestamp,
        /// The digest's signed end time.
        end: jiff::Timestamp,
    },
    /// S3 metadata is there, but without a readable generation time.
    #[error(
        "{detail}; CloudTrail writes both on every backfill digest, so the object was rewritten"
    )]
    Missing {
        /// What is wrong with the metadata.
        detail: String,
    },
}

/// When the key that signed the digest under `key` must have been valid: the digest's end time.
/// A backfill digest's generation time is unsigned S3 metadata: it is taken only when it does
/// not precede the digest's signed end (CloudTrail generates a backfill digest after the period
/// it covers); without it, any time from the end to
/// [`crate::core::sign::BACKFILL_GENERATION_BOUND`] after. Metadata that CloudTrail cannot have
/// written (a signature without a generation time, one that is not a timestamp or precedes the
/// end) is an error: the object was rewritten.
pub fn signing_time(
    key: &DigestKey,
    digest: &ParsedDigest,
    generated: &GenerationTime,
) -> Result<SigningTime, GenerationTimeError> {
    if !key.backfill {
        return Ok(SigningTime::digest_end(digest.end));
    }
    match generated {
        GenerationTime::Unknown => Ok(SigningTime::backfill_unknown(digest.end)),
        GenerationTime::Stated(at) => {
            SigningTime::backfill_generated(digest.end, *at).ok_or(GenerationTimeError::BeforeEnd {
                generated: *at,
                end: digest.end,
            })
        }
        GenerationTime::Missing { detail } => Err(GenerationTimeError::Missing {
            detail: detail.clone(),
        }),
    }
}

/// Verifies one digest file as read (see the module docs for what is checked).
pub fn verify_digest_object(
    object: DigestObject<'_>,
    keys: &KeySet,
) -> Result<VerifiedDigest, DigestError> {
    let key = match parse_key(&object.location.key) {
        Ok(CloudTrailKey::Digest(key)) => key,
        Ok(_) => {
            return Err(DigestError::NotADigest {
                key: object.location.key.clone(),
            })
        }
        Err(source) => {
            return Err(DigestError::NotADigestKey {
                key: object.location.key.clone(),
                source,
            })
        }
    };
    let raw = inflate_all(object.stored, Limits::DIGEST).map_err(DigestError::Gzip)?;
    let digest = ParsedDigest::parse(&raw).map_err(DigestError::Format)?;
    if digest.location != *object.location {
        return Err(DigestError::Moved {
            read_from: object.location.clone(),
            delivered_to: digest.location,
        });
    }
    let signed = signing_time(&key, &digest, object.generated)?;
    Ok(verify_digest(&digest, object.signature, keys, signed)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::keyfile::parse_key_file;
    use trailproof_testgen::{Corpus, World};

    fn corpus() -> Corpus {
        World::new("acme-logs").hours(3).build()
    }

    fn keys(corpus: &Corpus) -> KeySet {
        parse_key_file(corpus.public_keys_json().to_string().as_bytes()).unwrap()
    }

    /// The newest digest of the corpus, with its stored bytes and signature.
    fn newest(corpus: &Corpus) -> (S3Location, Vec<u8>, Vec<u8>) {
        let key = &corpus.segment_heads()[0].key;
        let object = &corpus.objects[key];
        let signature = hex::decode(&object.metadata["signature"]).unwrap();
        (
            S3Location::new(&corpus.bucket, key),
            object.bytes.clone(),
            signature,
        )
    }

    fn check(
        location: &S3Location,
        stored: &[u8],
        signature: &[u8],
        keys: &KeySet,
    ) -> Result<VerifiedDigest, DigestError> {
        verify_digest_object(
            DigestObject {
                location,
                stored,
                signature,
                generated: &GenerationTime::Unknown,
            },
            keys,
        )
    }

    #[test]
    fn an_intact_digest_verifies_and_names_its_key() {
        let corpus = corpus();
        let (location, stored, signature) = newest(&corpus);
        let verified = check(&location, &stored, &signature, &keys(&corpus)).unwrap();
        assert_eq!(verified.digest().location, location);
    }

    /// The signature is over the digest's own bucket and key, so a copy elsewhere still has a
    /// good signature: only the location check tells it was moved.
    #[test]
    fn a_digest_copied_to_another_key_does_not_verify_there() {
        let corpus = corpus();
        let (location, stored, signature) = newest(&corpus);
        // Over an older digest of the same chain.
        let elsewhere = S3Location::new(&location.bucket, &corpus.digests()[0].key);
        assert_ne!(elsewhere, location);
        let other_bucket = S3Location::new("attacker-bucket", &location.key);
        for read_from in [elsewhere, other_bucket] {
            match check(&read_from, &stored, &signature, &keys(&corpus)) {
                Err(DigestError::Moved { delivered_to, .. }) => assert_eq!(delivered_to, location),
                other => panic!("{read_from}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_key_outside_its_validity_window_vouches_for_nothing() {
        let corpus = corpus();
        let (location, stored, signature) = newest(&corpus);
        let mut json = corpus.public_keys_json();
        for key in json["PublicKeyList"].as_array_mut().unwrap() {
            // Retired a day before the corpus starts.
            key["ValidityEndTime"] = 1_700_000_000.into();
            key["ValidityStartTime"] = 1_690_000_000.into();
        }
        let expired = parse_key_file(json.to_string().as_bytes()).unwrap();
        assert!(matches!(
            check(&location, &stored, &signature, &expired),
            Err(DigestError::Signature(
                SignatureFailure::KeyNotValidAt { .. }
            ))
        ));
    }

    #[test]
    fn a_rewritten_digest_or_signature_fails() {
        let corpus = corpus();
        let (location, stored, signature) = newest(&corpus);
        let keys = keys(&corpus);
        let mut bad_signature = signature.clone();
        bad_signature[0] ^= 1;
        assert!(matches!(
            check(&location, &stored, &bad_signature, &keys),
            Err(DigestError::Signature(SignatureFailure::BadSignature))
        ));
        // Trailing whitespace keeps it valid JSON, with another SHA-256 than was signed.
        let mut edited = trailproof_testgen::gunzip(&stored).unwrap();
        edited.push(b' ');
        let rewritten = trailproof_testgen::gzip(&edited);
        assert!(matches!(
            check(&location, &rewritten, &signature, &keys),
            Err(DigestError::Signature(SignatureFailure::BadSignature))
        ));
        assert!(matches!(
            check(&location, b"not gzip", &signature, &keys),
            Err(DigestError::Gzip(_))
        ));
    }

    #[test]
    fn a_log_file_key_is_not_a_digest() {
        let corpus = corpus();
        let (_, stored, signature) = newest(&corpus);
        let log = corpus.digests()[0].logs[0].clone();
        let read_from = S3Location::new(&corpus.bucket, log);
        assert!(matches!(
            check(&read_from, &stored, &signature, &keys(&corpus)),
            Err(DigestError::NotADigest { .. })
        ));
        let nowhere = S3Location::new(&corpus.bucket, "digest.json.gz");
        assert!(matches!(
            check(&nowhere, &stored, &signature, &keys(&corpus)),
            Err(DigestError::NotADigestKey { .. })
        ));
    }

    #[test]
    fn backfill_metadata_stated_before_the_end_is_a_rewrite() {
        let key = DigestKey {
            scope: crate::core::layout::Scope {
                prefix: String::new(),
                organization: None,
                account: "111122223333".into(),
                region: "us-east-1".into(),
            },
            trail: "t".into(),
            home_region: "us-east-1".into(),
            end_time: "2026-01-01T01:00:00Z".parse().unwrap(),
            backfill: true,
        };
        let corpus = corpus();
        let (_, stored, _) = newest(&corpus);
        let digest = ParsedDigest::parse(&trailproof_testgen::gunzip(&stored).unwrap()).unwrap();
        let before = digest.end - jiff::SignedDuration::from_hours(1);
        assert_eq!(
            signing_time(&key, &digest, &GenerationTime::Stated(before)),
            Err(GenerationTimeError::BeforeEnd {
                generated: before,
                end: digest.end
            })
        );
    }
}
