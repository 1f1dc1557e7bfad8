//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>, protocol v1).
//!
//! The signature covers the pre-authentication encoding
//! `"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload` (lengths as ASCII decimal).
//! trailproof writes one signature per envelope, as compact JSON in a fixed field order plus a
//! newline:
//!
//! `{"payload":B64,"payloadType":TYPE,"signatures":[{"keyid":HEX,"sig":B64[,"certificate":B64]}]}`
//!
//! `keyid` is the SHA-256 of the signer's SubjectPublicKeyInfo; `certificate`, when present, is
//! the base64 of the signer's X.509 certificate in PEM (the field name and encoding of the
//! in-toto `witness` tool). Both sit outside the signature, so the signed payload repeats them
//! (see [`super::audit::SignerInfo`]), and an envelope is accepted only in exactly this form:
//! any change to any byte of an envelope, even whitespace, fails verification.
//!
//! A timestamped envelope (`--tsa-url`) has one more field in its signature, last, again as
//! `witness` writes it:
//!
//! `..."certificate":B64],"timestamps":[{"type":"tsp","data":B64}]}]}`
//!
//! `data` is the base64 of an RFC 3161 TimeStampToken (DER) whose imprint is the SHA-256 of the
//! signature's bytes (the decoded `sig`); see [`super::timestamp`] for what is checked. There is
//! exactly one timestamp, of type `tsp`, or no `timestamps` field at all: envelopes written
//! before timestamps existed, and envelopes signed without `--tsa-url`, are unchanged and
//! verify byte for byte as before. The token is made after the signature, so the signed payload
//! cannot name it; it binds itself to the signature instead, and its bytes are covered by the
//! TSA's signature (the certificates, CRLs and unsigned attributes a token may also carry are
//! not used for anything).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::signing::{Algorithm, CertError, Certificate, KeyError, PublicKey, SigningKey};
use super::timestamp::Token;

/// The one timestamp type written and read: an RFC 3161 token (`witness`'s name for it).
const TIMESTAMP_TYPE: &str = "tsp";

/// What trust a verifier starts from.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// This key signed it.
    Key(&'a PublicKey),
    /// A certificate this CA issued, embedded in the envelope, names the key.
    Ca(&'a Certificate),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<Signature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signature {
    keyid: String,
    sig: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamps: Option<Vec<SignatureTimestamp>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureTimestamp {
    #[serde(rename = "type")]
    ty: String,
    data: String,
}

/// Why an envelope is not intact, or not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not JSON of the envelope's shape (unknown fields included).
    #[error("not a DSSE envelope: {detail}")]
    Json {
        /// The JSON parser's message.
        detail: String,
    },
    /// The bytes are not what trailproof writes for the same envelope: reformatted, reordered
    /// or otherwise touched after signing.
    #[error("the envelope is not in trailproof's exact form (changed after signing?)")]
    NotCanonical,
    /// `payloadType` is not the one expected.
    #[error("payloadType is {found:?}, expected {expected:?}")]
    PayloadType {
        /// The envelope's `payloadType`.
        found: String,
        /// The one expected.
        expected: &'static str,
    },
    /// Not exactly one signature.
    #[error("expected exactly one signature, found {count}")]
    SignatureCount {
        /// How many the envelope has.
        count: usize,
    },
    /// A base64 field does not decode, or is not the one standard spelling of its bytes.
    #[error("{field} is not canonical base64")]
    Base64 {
        /// Which field.
        field: &'static str,
    },
    /// The envelope's `keyid` is not the verifying key's.
    #[error("the envelope names key {found}, but the verifying key is {expected}")]
    KeyIdMismatch {
        /// The envelope's `keyid`.
        found: String,
        /// The verifying key's id.
        expected: String,
    },
    /// Trust in a CA was asked for, and the envelope embeds no certificate.
    #[error("--ca needs a certificate in the envelope, and there is none")]
    NoCertificate,
    /// The embedded certificate is malformed, not for the key, or not trusted.
    #[error("embedded certificate: {0}")]
    Certificate(#[from] CertError),
    /// The `timestamps` field is not exactly one RFC 3161 token.
    #[error("timestamps: expected one of type \"tsp\", found {found}")]
    Timestamps {
        /// What was found.
        found: String,
    },
    /// The signature does not verify over the payload's pre-authentication encoding.
    #[error("the signature does not verify under the {algorithm} key {keyid}")]
    BadSignature {
        /// The key's scheme.
        algorithm: Algorithm,
        /// The key's id.
        keyid: String,
    },
}

/// The DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A signed envelope not yet written out: its signature can still be timestamped.
#[derive(Debug)]
pub struct Sealed {
    envelope: Envelope,
    signature: Vec<u8>,
}

impl Sealed {
    /// The signature's bytes: what a timestamp is requested over.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Embeds `token` (checked to be over [`Sealed::signature`]; see [`Token::parse`]).
    pub fn attach_timestamp(&mut self, token: &Token) {
        for s in &mut self.envelope.signatures {
            s.timestamps = Some(vec![SignatureTimestamp {
                ty: TIMESTAMP_TYPE.to_owned(),
                data: STANDARD.encode(token.der()),
            }]);
        }
    }

    /// The envelope's bytes, in the one form verification accepts.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical(&self.envelope)
    }
}

/// Signs `payload` into an envelope.
pub(crate) fn seal(
    payload_type: &str,
    payload: &[u8],
    key: &SigningKey,
    certificate: Option<&Certificate>,
) -> Result<Sealed, KeyError> {
    let signature = key.sign(&pae(payload_type, payload))?;
    let envelope = Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![Signature {
            keyid: key.public().keyid(),
            sig: STANDARD.encode(&signature),
            certificate: certificate.map(|c| STANDARD.encode(c.pem())),
            timestamps: None,
        }],
    };
    Ok(Sealed {
        envelope,
        signature,
    })
}

fn canonical(envelope: &Envelope) -> Vec<u8> {
    // Serializing plain strings and vectors cannot fail.
    let mut out = serde_json::to_vec(envelope).unwrap_or_default();
    out.push(b'\n');
    out
}

/// An envelope whose signature verified.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The payload, base64-decoded: the bytes the signature covers.
    pub payload: Vec<u8>,
    /// The key that verified it (the given key, or the certificate's).
    pub key: PublicKey,
    /// The embedded certificate, checked against the key (and the CA, with [`Trust::Ca`]).
    pub certificate: Option<Certificate>,
    /// The signature's bytes.
    pub signature: Vec<u8>,
    /// The embedded timestamp token's DER, not yet checked.
    pub timestamp: Option<Vec<u8>>,
}

fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, EnvelopeError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| EnvelopeError::Base64 { field })?;
    // Only one spelling per byte string, so no byte of the envelope is free to change.
    if STANDARD.encode(&bytes) != text {
        return Err(EnvelopeError::Base64 { field });
    }
    Ok(bytes)
}

/// Verifies an envelope's form, key and signature, and returns its payload. `ca_times` are the
/// moments the certificate must be valid at (with [`Trust::Ca`]).
pub(crate) fn open(
    bytes: &[u8],
    payload_type: &'static str,
    trust: Trust<'_>,
    ca_times: &[jiff::Timestamp],
) -> Result<Opened, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json {
        detail: e.to_string(),
    })?;
    if canonical(&envelope) != bytes {
        return Err(EnvelopeError::NotCanonical);
    }
    if envelope.payload_type != payload_type {
        return Err(EnvelopeError::PayloadType {
            found: envelope.payload_type,
            expected: payload_type,
        });
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(EnvelopeError::SignatureCount {
            count: envelope.signatures.len(),
        });
    };
    let payload = decode("payload", &envelope.payload)?;
    let sig = decode("sig", &signature.sig)?;
    let timestamp = match signature.timestamps.as_deref() {
        None => None,
        Some([t]) if t.ty == TIMESTAMP_TYPE => Some(decode("timestamps.data", &t.data)?),
        Some(other) => {
            return Err(EnvelopeError::Timestamps {
                found: format!(
                    "{:?}",
                    other.iter().map(|t| t.ty.as_str()).collect::<Vec<_>>()
                ),
            })
        }
    };
    let certificate = match &signature.certificate {
        Some(c) => Some(Certificate::from_pem(&decode("certificate", c)?)?),
        None => None,
    };
    let key = match (trust, &certificate) {
        (Trust::Key(key), Some(cert)) => {
            cert.check_key(key)?;
            key.clone()
        }
        (Trust::Key(key), None) => key.clone(),
        (Trust::Ca(ca), Some(cert)) => {
            cert.check_issued_by(ca, ca_times)?;
            cert.public_key().clone()
        }
        (Trust::Ca(_), None) => return Err(EnvelopeError::NoCertificate),
    };
    if signature.keyid != key.keyid() {
        return Err(EnvelopeError::KeyIdMismatch {
            found: signature.keyid.clone(),
            expected: key.keyid(),
        });
    }
    if !key.verify(&pae(payload_type, &payload), &sig) {
        return Err(EnvelopeError::BadSignature {
            algorithm: key.algorithm(),
            keyid: key.keyid(),
        });
    }
    Ok(Opened {
        payload,
        key,
        certificate,
        signature: sig,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::super::signing::tests::key_file;
    use super::*;

    const TYPE: &str = "application/example";

    #[test]
    fn pae_is_the_spec_s_example() {
        // The DSSE protocol document's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sealed_envelopes_open_with_the_right_trust_only() {
        let key = SigningKey::from_pem(&key_file("p256.pem")).unwrap();
        let cert = Certificate::from_pem(&key_file("p256.cert.pem")).unwrap();
        let ca = Certificate::from_pem(&key_file("ca.pem")).unwrap();
        let other_ca = Certificate::from_pem(&key_file("other-ca.pem")).unwrap();
        let ed = PublicKey::from_pem(&key_file("ed25519.pub.pem")).unwrap();
        let now = [jiff::Timestamp::now()];

        let env = seal(TYPE, b"{}", &key, Some(&cert)).unwrap().to_bytes();
        let opened = open(&env, TYPE, Trust::Key(key.public()), &now).unwrap();
        assert_eq!(opened.payload, b"{}");
        assert_eq!(opened.certificate.as_ref(), Some(&cert));
        open(&env, TYPE, Trust::Ca(&ca), &now).unwrap();
        assert!(matches!(
            open(&env, TYPE, Trust::Ca(&other_ca), &now),
            Err(EnvelopeError::Certificate(CertError::WrongIssuer { .. }))
        ));
        assert!(matches!(
            open(&env, TYPE, Trust::Key(&ed), &now),
            Err(EnvelopeError::Certificate(CertError::KeyMismatch { .. }))
        ));
        assert!(matches!(
            open(&env, "other/type", Trust::Key(key.public()), &now),
            Err(EnvelopeError::PayloadType { .. })
        ));

        let bare = seal(TYPE, b"{}", &key, None).unwrap().to_bytes();
        assert!(matches!(
            open(&bare, TYPE, Trust::Ca(&ca), &now),
            Err(EnvelopeError::NoCertificate)
        ));
        assert!(matches!(
            open(&bare, TYPE, Trust::Key(&ed), &now),
            Err(EnvelopeError::KeyIdMismatch { .. })
        ));
        // Pretty-printing an envelope changes bytes the signature does not cover: refused.
        let v: serde_json::Value = serde_json::from_slice(&bare).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert!(matches!(
            open(&pretty, TYPE, Trust::Key(key.public()), &now),
            Err(EnvelopeError::NotCanonical)
        ));
    }
}
