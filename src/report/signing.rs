//! Keys and certificates that sign and verify reports.
//!
//! Three signature schemes, each fixed by the key's type so that a key can never be used with
//! another scheme than the one it was made for: Ed25519; ECDSA P-256 with SHA-256 (ASN.1 DER
//! signatures); RSA PKCS#1 v1.5 with SHA-256, 2048 bits or more. Private keys are PKCS#8 PEM
//! (`openssl genpkey` writes them), public keys SubjectPublicKeyInfo PEM (`openssl pkey
//! -pubout`), certificates X.509 PEM. A key's id is the lowercase hex SHA-256 of its
//! SubjectPublicKeyInfo DER, as `openssl pkey -pubin -outform DER | sha256sum` prints it.

use std::fmt;

use jiff::Timestamp;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::core::types::Sha256;

/// The smallest RSA modulus accepted, for signing and for verifying.
const MIN_RSA_BITS: usize = 2048;

/// A report signature scheme, fixed by the key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA on P-256 with SHA-256, ASN.1 DER signatures.
    EcdsaP256Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit modulus or more.
    RsaPkcs1Sha256,
}

impl Algorithm {
    /// The name reports and the signed `signer` block use (`ed25519`, `ecdsa-p256-sha256`,
    /// `rsa-pkcs1v15-sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::RsaPkcs1Sha256 => "rsa-pkcs1v15-sha256",
        }
    }

    /// The AlgorithmIdentifier of a SubjectPublicKeyInfo for this key type, in DER.
    fn spki_algorithm_der(self) -> &'static [u8] {
        match self {
            // SEQUENCE { OID 1.3.101.112 }
            Algorithm::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            // SEQUENCE { OID id-ecPublicKey, OID prime256v1 }
            Algorithm::EcdsaP256Sha256 => &[
                0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
                0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ],
            // SEQUENCE { OID rsaEncryption, NULL }
            Algorithm::RsaPkcs1Sha256 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00,
            ],
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The file is not exactly one PEM block with the expected label.
    #[error("expected one PEM block labelled {expected:?}, found {found:?}")]
    Pem {
        /// The label wanted (`PRIVATE KEY`, `PUBLIC KEY`).
        expected: &'static str,
        /// The labels of the blocks found.
        found: Vec<String>,
    },
    /// The key is of a supported type, but the crypto library refused it.
    #[error("the {scheme} key was rejected: {reason}")]
    Rejected {
        /// The scheme the key is for.
        scheme: Algorithm,
        /// The library's reason.
        reason: String,
    },
    /// A private key that is not Ed25519, ECDSA P-256 or RSA in PKCS#8.
    #[error("not an Ed25519, ECDSA P-256 or RSA key in PKCS#8 form (convert with `openssl pkcs8 -topk8 -nocrypt`)")]
    UnsupportedPrivateKey,
    /// A public key of another algorithm.
    #[error("unsupported public key algorithm {oid} (Ed25519, ECDSA P-256 and RSA are supported)")]
    UnsupportedPublicKey {
        /// The key's algorithm OID, dotted.
        oid: String,
    },
    /// The SubjectPublicKeyInfo DER does not parse, or has bytes after it.
    #[error("malformed SubjectPublicKeyInfo")]
    MalformedPublicKey,
    /// An RSA modulus below 2048 bits.
    #[error("RSA key of {bits} bits: at least {MIN_RSA_BITS} are required")]
    RsaTooSmall {
        /// The modulus size (0 when it could not be read).
        bits: usize,
    },
    /// The crypto library failed to sign.
    #[error("signing failed")]
    Signing,
}

/// Why a certificate cannot be used or trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// The file is not exactly one `CERTIFICATE` PEM block.
    #[error("expected one PEM block labelled \"CERTIFICATE\", found {found:?}")]
    Pem {
        /// The labels of the blocks found.
        found: Vec<String>,
    },
    /// The DER is not an X.509 certificate.
    #[error("malformed X.509 certificate: {detail}")]
    Malformed {
        /// The parser's message.
        detail: String,
    },
    /// The certificate's public key is not one reports can be signed with.
    #[error("the certificate's public key: {0}")]
    Key(KeyError),
    /// The certificate is for another key than the one that signs or signed.
    #[error("the certificate is for key {certificate_keyid}, not for key {keyid}")]
    KeyMismatch {
        /// The key id of the signing key.
        keyid: String,
        /// The key id of the certificate's key.
        certificate_keyid: String,
    },
    /// The certificate (or its CA) is outside its validity at a time it must be valid.
    #[error(
        "{which} certificate {subject:?} is not valid at {at} (valid {not_before} to {not_after})"
    )]
    NotValidAt {
        /// Which certificate: the signer's or the CA's.
        which: &'static str,
        /// Its subject.
        subject: String,
        /// The time checked, RFC 3339 UTC.
        at: String,
        /// Its `notBefore`.
        not_before: String,
        /// Its `notAfter`.
        not_after: String,
    },
    /// The certificate's issuer is not the CA's subject.
    #[error("the certificate was issued by {issuer:?}, not by the CA {ca:?}")]
    WrongIssuer {
        /// The certificate's issuer.
        issuer: String,
        /// The CA's subject.
        ca: String,
    },
    /// The CA certificate may not issue certificates.
    #[error("the CA certificate {subject:?} is not a CA (basicConstraints CA:TRUE and keyCertSign are required)")]
    NotACa {
        /// The CA certificate's subject.
        subject: String,
    },
    /// The certificate's key usage does not allow signing.
    #[error("the certificate may not sign (its keyUsage lacks digitalSignature)")]
    NoDigitalSignature,
    /// A certificate has a critical extension this check does not process (RFC 5280: such a
    /// certificate must be refused, as `openssl verify` does).
    #[error("{which} {subject:?} has a critical extension {oid} that is not checked here")]
    UnknownCriticalExtension {
        /// Which certificate ("the CA", "the signer's certificate", ...).
        which: &'static str,
        /// Its subject.
        subject: String,
        /// The extension's OID, dotted.
        oid: String,
    },
    /// The CA signed the certificate with an algorithm not accepted (SHA-1, MD5, ...).
    #[error("the certificate's signature algorithm {oid} is not accepted (RSA or ECDSA with SHA-256/384/512, or Ed25519)")]
    WeakSignatureAlgorithm {
        /// The signature algorithm OID, dotted.
        oid: String,
    },
    /// The CA's key does not verify the certificate's signature.
    #[error("the certificate's signature does not verify under the CA's key")]
    BadSignature,
}

/// Exactly one PEM block with `label`.
pub(crate) fn one_pem(bytes: &[u8], label: &'static str) -> Result<Vec<u8>, Vec<String>> {
    let blocks: Vec<Pem> = Pem::iter_from_buffer(bytes).map_while(Result::ok).collect();
    match blocks.as_slice() {
        [only] if only.label == label => Ok(only.contents.clone()),
        _ => Err(blocks.into_iter().map(|b| b.label).collect()),
    }
}

fn der_length(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

/// SubjectPublicKeyInfo DER from an algorithm and the raw key bits ring hands out.
fn spki_der(algorithm: Algorithm, key: &[u8]) -> Vec<u8> {
    let mut bit_string = vec![0x03];
    bit_string.extend(der_length(key.len() + 1));
    bit_string.push(0); // no unused bits
    bit_string.extend_from_slice(key);
    let alg = algorithm.spki_algorithm_der();
    let mut out = vec![0x30];
    out.extend(der_length(alg.len() + bit_string.len()));
    out.extend_from_slice(alg);
    out.extend(bit_string);
    out
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs reports.
pub struct SigningKey {
    pair: Pair,
    public: PublicKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(
            f,
            "SigningKey({}, {})",
            self.public.algorithm,
            self.public.keyid()
        )
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = one_pem(pem, "PRIVATE KEY").map_err(|found| KeyError::Pem {
            expected: "PRIVATE KEY",
            found,
        })?;
        let rng = SystemRandom::new();
        // ring tells the key types apart: each parser refuses another type's key with
        // "WrongAlgorithm", so the first other answer is the real one.
        let rejected = |scheme, e: ring::error::KeyRejected| KeyError::Rejected {
            scheme,
            reason: e.to_string(),
        };
        let wrong = |e: &ring::error::KeyRejected| e.to_string() == "WrongAlgorithm";
        let (pair, algorithm, raw_public) = match Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            Ok(k) => {
                let raw = k.public_key().as_ref().to_vec();
                (Pair::Ed25519(k), Algorithm::Ed25519, raw)
            }
            Err(e) if !wrong(&e) => return Err(rejected(Algorithm::Ed25519, e)),
            Err(_) => match EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &der,
                &rng,
            ) {
                Ok(k) => {
                    let raw = k.public_key().as_ref().to_vec();
                    (Pair::Ecdsa(k), Algorithm::EcdsaP256Sha256, raw)
                }
                Err(e) if !wrong(&e) => return Err(rejected(Algorithm::EcdsaP256Sha256, e)),
                Err(_) => match RsaKeyPair::from_pkcs8(&der) {
                    Ok(k) => {
                        let bits = k.public().modulus_len() * 8;
                        if bits < MIN_RSA_BITS {
                            return Err(KeyError::RsaTooSmall { bits });
                        }
                        let raw = k.public().as_ref().to_vec();
                        (Pair::Rsa(k), Algorithm::RsaPkcs1Sha256, raw)
                    }
                    Err(e) if e.to_string() == "TooSmall" => {
                        return Err(KeyError::RsaTooSmall {
                            bits: rsa_bits_of_pkcs8(&der).unwrap_or(0),
                        })
                    }
                    Err(e) if !wrong(&e) => return Err(rejected(Algorithm::RsaPkcs1Sha256, e)),
                    Err(_) => return Err(KeyError::UnsupportedPrivateKey),
                },
            },
        };
        let public = PublicKey::from_spki_der(&spki_der(algorithm, &raw_public))?;
        Ok(SigningKey { pair, public, rng })
    }

    /// The public half: what a verifier needs, and what the key id is of.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` with the key's one scheme.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Pair::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| KeyError::Signing)?;
                Ok(sig)
            }
        }
    }
}

/// The modulus size of a PKCS#8 RSA key ring refused as too small, for the error message:
/// ring does not say, so read it from the key's public half.
fn rsa_bits_of_pkcs8(der: &[u8]) -> Option<usize> {
    use x509_parser::der_parser::der::parse_der;
    let (_, info) = parse_der(der).ok()?;
    let fields = info.as_sequence().ok()?;
    let key = fields.get(2)?.as_slice().ok()?;
    let (_, rsa) = parse_der(key).ok()?;
    let modulus = rsa.as_sequence().ok()?.get(1)?.as_bigint().ok()?;
    Some(modulus.bits() as usize)
}

/// A public key that verifies reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    spki: Vec<u8>,
    /// The BIT STRING contents of the SubjectPublicKeyInfo: what ring verifies with.
    raw: Vec<u8>,
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = one_pem(pem, "PUBLIC KEY").map_err(|found| KeyError::Pem {
            expected: "PUBLIC KEY",
            found,
        })?;
        Self::from_spki_der(&der)
    }

    /// Reads SubjectPublicKeyInfo DER; nothing may follow it.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => Self::from_spki(&spki),
            _ => Err(KeyError::MalformedPublicKey),
        }
    }

    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        let oid = &spki.algorithm.algorithm;
        let algorithm = if *oid == OID_SIG_ED25519 {
            Algorithm::Ed25519
        } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve != Some(OID_EC_P256) {
                return Err(KeyError::UnsupportedPublicKey {
                    oid: format!("{oid} on curve {curve:?}"),
                });
            }
            Algorithm::EcdsaP256Sha256
        } else if *oid == OID_PKCS1_RSAENCRYPTION {
            let bits = match spki.parsed() {
                Ok(ParsedKey::RSA(rsa)) => rsa.key_size(),
                _ => return Err(KeyError::MalformedPublicKey),
            };
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooSmall { bits });
            }
            Algorithm::RsaPkcs1Sha256
        } else {
            return Err(KeyError::UnsupportedPublicKey {
                oid: oid.to_id_string(),
            });
        };
        Ok(PublicKey {
            algorithm,
            spki: spki.raw.to_vec(),
            raw: spki.subject_public_key.data.to_vec(),
        })
    }

    /// The one scheme the key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn keyid(&self) -> String {
        Sha256::of(&self.spki).to_hex()
    }

    /// Whether `sig` is this key's signature over `message`, by the key's scheme only.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, sig)
            .is_ok()
    }
}

/// An X.509 certificate, kept as its PEM text (what the envelope embeds) and DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pem: Vec<u8>,
    der: Vec<u8>,
    subject: String,
    public: PublicKey,
}

impl Certificate {
    /// Reads one X.509 `CERTIFICATE` PEM block; its key must be one reports can use.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let der = one_pem(pem, "CERTIFICATE").map_err(|found| CertError::Pem { found })?;
        let (subject, public) = {
            let cert = parse(&der)?;
            (
                cert.subject().to_string(),
                PublicKey::from_spki(cert.public_key()).map_err(CertError::Key)?,
            )
        };
        Ok(Certificate {
            pem: pem.to_vec(),
            der,
            subject,
            public,
        })
    }

    /// The exact PEM bytes, as read.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The subject's distinguished name, for people.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The key the certificate is for.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Refuses a certificate that is not for `key`.
    pub fn check_key(&self, key: &PublicKey) -> Result<(), CertError> {
        if self.public == *key {
            Ok(())
        } else {
            Err(CertError::KeyMismatch {
                keyid: key.keyid(),
                certificate_keyid: self.public.keyid(),
            })
        }
    }

    /// Checks that `ca` issued this certificate for signing, and that both are valid at every
    /// time in `at`. Only a certificate issued directly by the CA is accepted.
    pub fn check_issued_by(&self, ca: &Certificate, at: &[Timestamp]) -> Result<(), CertError> {
        let leaf = parse(&self.der)?;
        let anchor = parse(&ca.der)?;
        check_chain(&leaf, &anchor, "the signer's", at, |leaf| {
            match leaf.key_usage() {
                Ok(Some(ku)) if !ku.value.digital_signature() => Err(CertError::NoDigitalSignature),
                Err(e) => Err(CertError::Malformed {
                    detail: e.to_string(),
                }),
                _ => Ok(()),
            }
        })
    }
}

/// Checks that `anchor` issued `leaf` directly, and that both are valid at every time in `at`
/// (`which` names the leaf in errors): the anchor is a CA that may sign certificates, the
/// leaf's own use is accepted by `usage`, and the leaf is signed with an accepted algorithm
/// under the anchor's key. Report signers and timestamp authorities share it.
pub(crate) fn check_chain(
    leaf: &X509Certificate<'_>,
    anchor: &X509Certificate<'_>,
    which: &'static str,
    at: &[Timestamp],
    usage: impl FnOnce(&X509Certificate<'_>) -> Result<(), CertError>,
) -> Result<(), CertError> {
    for &t in at {
        valid_at(anchor, "the CA", t)?;
        valid_at(leaf, which, t)?;
    }
    if leaf.issuer().as_raw() != anchor.subject().as_raw() {
        return Err(CertError::WrongIssuer {
            issuer: leaf.issuer().to_string(),
            ca: anchor.subject().to_string(),
        });
    }
    let key_cert_sign = match anchor.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    known_critical_only(anchor, "the CA")?;
    known_critical_only(leaf, which)?;
    if !anchor.is_ca() || !key_cert_sign {
        return Err(CertError::NotACa {
            subject: anchor.subject().to_string(),
        });
    }
    usage(leaf)?;
    let alg = &leaf.signature_algorithm.algorithm;
    let accepted = [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ED25519,
    ];
    if !accepted.contains(alg) {
        return Err(CertError::WeakSignatureAlgorithm {
            oid: alg.to_id_string(),
        });
    }
    leaf.verify_signature(Some(anchor.public_key()))
        .map_err(|_| CertError::BadSignature)
}

/// Refuses a certificate with a critical extension other than those checked here or that
/// constrain nothing checked here (basicConstraints, keyUsage, extendedKeyUsage, and
/// subjectAltName, which names are never matched against). Found by the red team: a TSA
/// certificate with an unknown critical extension was accepted, where openssl refuses it.
fn known_critical_only(cert: &X509Certificate<'_>, which: &'static str) -> Result<(), CertError> {
    let known = [
        OID_X509_EXT_BASIC_CONSTRAINTS,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    ];
    match cert
        .extensions()
        .iter()
        .find(|e| e.critical && !known.contains(&e.oid))
    {
        Some(e) => Err(CertError::UnknownCriticalExtension {
            which,
            subject: cert.subject().to_string(),
            oid: e.oid.to_id_string(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Malformed {
            detail: "trailing data after the certificate".into(),
        }),
        Err(e) => Err(CertError::Malformed {
            detail: e.to_string(),
        }),
    }
}

pub(crate) fn valid_at(
    cert: &X509Certificate<'_>,
    which: &'static str,
    t: Timestamp,
) -> Result<(), CertError> {
    let ok = ASN1Time::from_timestamp(t.as_second())
        .map(|at| cert.validity().is_valid_at(at))
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    Err(CertError::NotValidAt {
        which,
        subject: cert.subject().to_string(),
        at: crate::core::time::format_iso(t),
        not_before: cert.validity().not_before.to_string(),
        not_after: cert.validity().not_after.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key_file(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/report-keys")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn each_key_type_signs_and_its_openssl_public_key_verifies() {
        for (name, alg) in [
            ("ed25519", Algorithm::Ed25519),
            ("p256", Algorithm::EcdsaP256Sha256),
            ("rsa2048", Algorithm::RsaPkcs1Sha256),
        ] {
            let key = SigningKey::from_pem(&key_file(&format!("{name}.pem"))).unwrap();
            let public = PublicKey::from_pem(&key_file(&format!("{name}.pub.pem"))).unwrap();
            // The SubjectPublicKeyInfo built from ring's key bits is openssl's, byte for byte.
            assert_eq!(key.public(), &public, "{name}");
            assert_eq!(public.algorithm(), alg);
            let sig = key.sign(b"message").unwrap();
            assert!(public.verify(b"message", &sig), "{name}");
            assert!(!public.verify(b"messagE", &sig), "{name}");
        }
    }

    #[test]
    fn unsupported_and_weak_keys_are_refused_by_name() {
        assert_eq!(
            SigningKey::from_pem(&key_file("rsa1024.pem")).unwrap_err(),
            KeyError::RsaTooSmall { bits: 1024 }
        );
        assert_eq!(
            SigningKey::from_pem(&key_file("p384.pem")).unwrap_err(),
            KeyError::UnsupportedPrivateKey
        );
        assert!(matches!(
            SigningKey::from_pem(&key_file("p256.pub.pem")),
            Err(KeyError::Pem { .. })
        ));
        assert!(matches!(
            PublicKey::from_pem(&key_file("p256.pem")),
            Err(KeyError::Pem { .. })
        ));
    }

    #[test]
    fn certificates_match_their_key_and_chain_to_their_ca_only() {
        let now = Timestamp::now();
        let ca = Certificate::from_pem(&key_file("ca.pem")).unwrap();
        let other = Certificate::from_pem(&key_file("other-ca.pem")).unwrap();
        let p256 = PublicKey::from_pem(&key_file("p256.pub.pem")).unwrap();
        let ed = PublicKey::from_pem(&key_file("ed25519.pub.pem")).unwrap();
        for name in ["ed25519", "p256", "rsa2048"] {
            let cert = Certificate::from_pem(&key_file(&format!("{name}.cert.pem"))).unwrap();
            cert.check_issued_by(&ca, &[now]).unwrap();
            assert!(matches!(
                cert.check_issued_by(&other, &[now]),
                Err(CertError::WrongIssuer { .. })
            ));
        }
        let cert = Certificate::from_pem(&key_file("p256.cert.pem")).unwrap();
        cert.check_key(&p256).unwrap();
        assert!(matches!(
            cert.check_key(&ed),
            Err(CertError::KeyMismatch { .. })
        ));
        // Issued by the other CA under the same name scheme: refused by ours.
        let foreign = Certificate::from_pem(&key_file("p256.other-ca.cert.pem")).unwrap();
        assert!(foreign.check_issued_by(&ca, &[now]).is_err());
        foreign.check_issued_by(&other, &[now]).unwrap();
        // A CA certificate used as a signer's CA must be a CA: the signer's own is not.
        assert!(matches!(
            cert.check_issued_by(&cert, &[now]),
            Err(CertError::WrongIssuer { .. } | CertError::NotACa { .. })
        ));
        // Outside the validity period (the committed certificates run for 100 years).
        let late = "2200-01-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            cert.check_issued_by(&ca, &[now, late]),
            Err(CertError::NotValidAt { .. })
        ));
        let early = "2001-01-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            cert.check_issued_by(&ca, &[early]),
            Err(CertError::NotValidAt { .. })
        ));
    }
}
