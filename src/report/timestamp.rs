//! RFC 3161 trusted timestamps over a signed report's signature.
//!
//! A timestamp authority (TSA) signs a statement "this hash existed at genTime". trailproof asks
//! for one over the SHA-256 of the report's DSSE signature bytes (what the in-toto `witness`
//! tool timestamps too), so the token proves that this signature, and with it the signed
//! report, existed no later than the TSA's time. It goes into the envelope next to the
//! signature (see [`super::dsse`] for the exact form); it sits outside the signed payload, as
//! it must, since it is made after the signature.
//!
//! What is checked, here and without any I/O (the request goes over HTTP in
//! `crate::source::tsa`):
//!
//! - when asking ([`Request::accept`]): the TSA granted the request, the token answers it (its
//!   imprint is the one asked for, its nonce the random one sent), and with a pinned TSA
//!   certificate (`--tsa-cert`) the token is signed by that certificate;
//! - every time a token is read ([`Token::parse`], when a report is verified too): the token is
//!   strict DER, a CMS SignedData of one signer over an `id-ct-TSTInfo` content; its signed
//!   attributes carry that content type, the digest of the TSTInfo (`messageDigest`) and the
//!   ESS `signingCertificate` (or V2) naming the signer's certificate, which the token embeds;
//!   the signature over the signed attributes verifies under that certificate's key
//!   (RSA PKCS#1 v1.5 with SHA-256/384/512, 2048 to 8192 bits; ECDSA P-256 or P-384 with
//!   SHA-256 or SHA-384); the TSTInfo's imprint is the SHA-256 of this report's signature; the
//!   certificate is a TSA's (extendedKeyUsage `id-kp-timeStamping` alone, critical; keyUsage, if
//!   any, allowing digitalSignature or nonRepudiation) and was valid at genTime;
//! - with a CA ([`Token::check_issued_by`], `report verify --tsa-ca`): the CA issued the TSA's
//!   certificate directly, and both were valid at genTime. Without it the time is the claim of
//!   a TSA nobody vouched for, and `report verify` says so.
//!
//! Not checked: revocation of the TSA's certificate, the TSA's policy OID (printed), and any
//! other certificate, CRL or unsigned attribute the token carries (none is used).
// Tokens come from the network and from envelopes: hostile bytes, no panics.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::borrow::Cow;

use jiff::{SignedDuration, Timestamp};
use ring::digest;
use ring::rand::SecureRandom;
use ring::signature;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::X509Certificate;

use super::der::{self, encode, encode_all, tag, DerError, Reader, Tlv};
use super::signing::{self, CertError};

/// Object identifiers, as the contents of their DER encoding (checked against their dotted
/// form in the tests).
mod oid {
    pub const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    pub const TST_INFO: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
    ];
    pub const CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
    pub const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
    pub const SIGNING_CERTIFICATE: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x0c,
    ];
    pub const SIGNING_CERTIFICATE_V2: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x2f,
    ];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    pub const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    pub const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    pub const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
}

/// The HTTP media type of a request (RFC 3161, section 3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";
/// The HTTP media type of a response.
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

/// Why a timestamp could not be obtained, or a token is not what it must be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The system's random source failed (no nonce).
    #[error("no random nonce: the system's random source failed")]
    Random,
    /// The response or token is not DER of the expected structure.
    #[error("not a valid RFC 3161 structure: {0}")]
    Der(#[from] DerError),
    /// The TSA did not grant the request.
    #[error("the TSA refused the request: status {status}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        /// The PKIStatus (2 rejection, 3 waiting, 4 revocation warning, 5 revoked).
        status: u64,
        /// The TSA's status text, if any.
        text: Option<String>,
    },
    /// The TSA said "granted" and sent no token.
    #[error("the TSA granted the request but sent no token")]
    NoToken,
    /// A content or attribute type that a timestamp token cannot have.
    #[error("{what} is {found}, expected {expected}")]
    WrongType {
        /// Which field.
        what: &'static str,
        /// Its dotted OID.
        found: String,
        /// The one expected.
        expected: &'static str,
    },
    /// An algorithm or key this verifier does not support.
    #[error("unsupported {what}: {found}")]
    Unsupported {
        /// Which algorithm.
        what: &'static str,
        /// Its dotted OID or description.
        found: String,
    },
    /// Not exactly one signer.
    #[error("the token has {count} signers, expected one")]
    SignerCount {
        /// How many it has.
        count: usize,
    },
    /// The signer's certificate is not in the token.
    #[error("the token does not carry the certificate of its signer")]
    NoCertificate,
    /// A certificate in the token does not parse, or the TSA's is outside its use or validity.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// A signed attribute the token must carry is absent, or one appears twice.
    #[error("signed attribute {name}: {problem}")]
    Attribute {
        /// The attribute.
        name: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The signed `messageDigest` is not the digest of the TSTInfo: the content was changed.
    #[error("the token's content does not match its signed digest (changed after signing)")]
    MessageDigest,
    /// The ESS signingCertificate attribute names another certificate than the signer's.
    #[error(
        "the signed signingCertificate attribute names another certificate than the one embedded"
    )]
    SigningCertificate,
    /// The TSA's signature does not verify.
    #[error("the TSA's signature does not verify under the key of {subject:?}")]
    BadSignature {
        /// The TSA certificate's subject.
        subject: String,
    },
    /// The token is for other data: another report's signature, or another hash.
    #[error("the token's imprint is not the SHA-256 of this report's signature (a token for another report?)")]
    Imprint,
    /// The token does not carry the nonce sent (a reply to another request, or a replay).
    #[error("the token does not carry the nonce of this request (a reply to another request?)")]
    Nonce,
    /// The certificate may not issue timestamps.
    #[error("{subject:?} is not a timestamp authority's certificate: {reason}")]
    NotTsa {
        /// The certificate's subject.
        subject: String,
        /// Why.
        reason: &'static str,
    },
    /// `--tsa-cert` names another TSA than the one that signed.
    #[error("the token is signed by {found:?}, not by the pinned TSA certificate {expected:?}")]
    NotPinned {
        /// The pinned certificate's subject.
        expected: String,
        /// The signer's subject.
        found: String,
    },
}

/// A certificate of a timestamp authority, or of the CA that issues them: any key the
/// timestamp checks support (see the module docs), kept as DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsaCertificate {
    der: Vec<u8>,
    subject: String,
}

impl TsaCertificate {
    /// Reads one X.509 `CERTIFICATE` PEM block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let der = signing::one_pem(pem, "CERTIFICATE").map_err(|found| CertError::Pem { found })?;
        Self::from_der(der)
    }

    fn from_der(der: Vec<u8>) -> Result<Self, CertError> {
        let subject = signing::parse(&der)?.subject().to_string();
        Ok(TsaCertificate { der, subject })
    }

    /// The subject's distinguished name, for people.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// One timestamp request: over a report signature, with a fresh nonce, asking for the TSA's
/// certificate.
#[derive(Debug)]
pub struct Request {
    der: Vec<u8>,
    imprint: Vec<u8>,
    nonce: Vec<u8>,
}

impl Request {
    /// A TimeStampReq (v1) for the SHA-256 of `signature`, with a 128-bit random nonce and
    /// `certReq` true.
    pub fn new(signature: &[u8], rng: &dyn SecureRandom) -> Result<Self, TimestampError> {
        let imprint = digest::digest(&digest::SHA256, signature).as_ref().to_vec();
        let mut nonce = vec![0u8; 16];
        rng.fill(&mut nonce).map_err(|_| TimestampError::Random)?;
        // Positive, and a non-zero first byte: the 16 bytes are the INTEGER's minimal encoding.
        if let Some(first) = nonce.first_mut() {
            *first = (*first & 0x7f) | 0x40;
        }
        let der = encode_all(
            tag::SEQUENCE,
            &[
                &encode(tag::INTEGER, &[1]),
                &message_imprint(&imprint),
                &encode(tag::INTEGER, &nonce),
                &encode(tag::BOOLEAN, &[0xff]),
            ],
        );
        Ok(Request {
            der,
            imprint,
            nonce,
        })
    }

    /// The request's DER, the body of the HTTP POST.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Reads the TSA's TimeStampResp and returns its token if it answers this request: granted,
    /// a token that passes every check of [`Token::parse`] for this imprint, with this nonce,
    /// and signed by `pinned` when given.
    pub fn accept(
        &self,
        response: &[u8],
        pinned: Option<&TsaCertificate>,
    ) -> Result<Token, TimestampError> {
        const CTX: &str = "TimeStampResp";
        let resp = Reader::single(response, tag::SEQUENCE, CTX)?;
        let mut r = Reader::new(resp.value, CTX);
        let status_info = r.expect(tag::SEQUENCE, "no PKIStatusInfo")?;
        let token = r.optional(tag::SEQUENCE)?;
        r.finish()?;
        let mut s = Reader::new(status_info.value, "PKIStatusInfo");
        let status = der::small_uint(&s.expect(tag::INTEGER, "no status")?, "PKIStatusInfo")?;
        // granted (0) and grantedWithMods (1) both come with a token, checked in full below.
        if status > 1 {
            let text = s.optional(tag::SEQUENCE)?.map(|t| status_text(t.value));
            return Err(TimestampError::Refused { status, text });
        }
        let token = token.ok_or(TimestampError::NoToken)?;
        let token = Token::for_imprint(token.raw, &self.imprint)?;
        if token.nonce.as_deref() != Some(self.nonce.as_slice()) {
            return Err(TimestampError::Nonce);
        }
        if let Some(p) = pinned {
            if p.der != token.tsa.der {
                return Err(TimestampError::NotPinned {
                    expected: p.subject.clone(),
                    found: token.tsa.subject.clone(),
                });
            }
        }
        Ok(token)
    }
}

/// The UTF8Strings of a PKIFreeText, joined, for the error message.
fn status_text(free_text: &[u8]) -> String {
    let mut r = Reader::new(free_text, "PKIFreeText");
    let mut parts = Vec::new();
    while let Ok(t) = r.any() {
        parts.push(String::from_utf8_lossy(t.value).into_owned());
    }
    parts.join("; ")
}

fn message_imprint(sha256: &[u8]) -> Vec<u8> {
    encode_all(
        tag::SEQUENCE,
        &[
            &encode_all(
                tag::SEQUENCE,
                &[&encode(tag::OID, oid::SHA256), &encode(tag::NULL, &[])],
            ),
            &encode(tag::OCTET_STRING, sha256),
        ],
    )
}

/// A timestamp token that passed every check but trust in its TSA (see the module docs).
#[derive(Debug, Clone)]
pub struct Token {
    der: Vec<u8>,
    gen_time: Timestamp,
    accuracy: Option<SignedDuration>,
    serial: String,
    policy: String,
    nonce: Option<Vec<u8>>,
    tsa: TsaCertificate,
}

impl Token {
    /// Reads a TimeStampToken (DER) and checks it as the module docs say, for the report
    /// signature `signature`.
    pub fn parse(der: &[u8], signature: &[u8]) -> Result<Token, TimestampError> {
        Self::for_imprint(der, digest::digest(&digest::SHA256, signature).as_ref())
    }

    fn for_imprint(der: &[u8], imprint: &[u8]) -> Result<Token, TimestampError> {
        // Every structure is parsed before any signature is checked, so that all of it is
        // strict DER whatever the signature says (and a fuzzer reaches all of it).
        let signed = SignedData::parse(der)?;
        let info = TstInfo::parse(signed.content)?;
        let cert = signed.signer_certificate()?;
        let subject = cert.subject().to_string();
        signed.check_signature(&cert, &subject)?;
        if info.imprint_algorithm != oid::SHA256 || info.imprint != imprint {
            return Err(TimestampError::Imprint);
        }
        check_tsa_usage(&cert, &subject)?;
        signing::valid_at(&cert, "the TSA's", info.gen_time)?;
        Ok(Token {
            der: der.to_vec(),
            gen_time: info.gen_time,
            accuracy: info.accuracy,
            serial: hex::encode(info.serial),
            policy: dotted(info.policy),
            nonce: info.nonce.map(<[u8]>::to_vec),
            tsa: TsaCertificate {
                der: cert.as_ref().to_vec(),
                subject,
            },
        })
    }

    /// The token's DER, as embedded in the envelope.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The time the TSA says it saw the imprint (`genTime`).
    pub fn gen_time(&self) -> Timestamp {
        self.gen_time
    }

    /// The TSA's stated accuracy of `genTime`, if any.
    pub fn accuracy(&self) -> Option<SignedDuration> {
        self.accuracy
    }

    /// The token's serial number, lowercase hex.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The TSA policy the token was issued under, dotted.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The certificate that signed the token (checked for use and validity, not for trust).
    pub fn tsa(&self) -> &TsaCertificate {
        &self.tsa
    }

    /// Checks that `ca` issued the TSA's certificate directly, both valid at `genTime`.
    pub fn check_issued_by(&self, ca: &TsaCertificate) -> Result<TrustedTime, TimestampError> {
        let leaf = signing::parse(&self.tsa.der)?;
        let anchor = signing::parse(&ca.der)?;
        // The TSA's own use was checked when the token was read.
        signing::check_chain(&leaf, &anchor, "the TSA's", &[self.gen_time], |_| Ok(()))?;
        Ok(TrustedTime {
            gen_time: self.gen_time,
            tsa: self.tsa.subject.clone(),
            ca: ca.subject.clone(),
        })
    }
}

/// A token's time, vouched for by a TSA that a trusted CA issued: only
/// [`Token::check_issued_by`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTime {
    /// The TSA's time.
    pub gen_time: Timestamp,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// The CA's subject.
    pub ca: String,
}

fn dotted(oid: &[u8]) -> String {
    Oid::new(Cow::Borrowed(oid)).to_id_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &[u8]) -> Option<Hash> {
        match oid {
            oid::SHA256 => Some(Hash::Sha256),
            oid::SHA384 => Some(Hash::Sha384),
            oid::SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> digest::Digest {
        let alg = match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data)
    }
}

/// An AlgorithmIdentifier's OID; its parameters must be absent or NULL (none of the
/// algorithms accepted here has others).
fn algorithm<'a>(tlv: &Tlv<'a>, context: &'static str) -> Result<&'a [u8], DerError> {
    let mut r = Reader::new(tlv.value, context);
    let id = r.expect(tag::OID, "no algorithm OID")?;
    if r.optional(tag::NULL)?
        .is_some_and(|null| !null.value.is_empty())
    {
        return Err(r.error("malformed NULL parameters"));
    }
    r.finish()?;
    Ok(id.value)
}

/// How the signer is named (RFC 5652 SignerIdentifier).
enum SignerId<'a> {
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    KeyId(&'a [u8]),
}

/// The parts of a TimeStampToken's SignedData that the checks use.
struct SignedData<'a> {
    content: &'a [u8],
    certificates: Vec<&'a [u8]>,
    signer: SignerId<'a>,
    digest: Hash,
    signed_attrs: Tlv<'a>,
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
}

impl<'a> SignedData<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, TimestampError> {
        let info = Reader::single(der, tag::SEQUENCE, "TimeStampToken")?;
        let mut r = Reader::new(info.value, "TimeStampToken");
        let content_type = r.expect(tag::OID, "no contentType")?;
        expect_oid(
            "the token's contentType",
            content_type.value,
            oid::SIGNED_DATA,
            "id-signedData (1.2.840.113549.1.7.2)",
        )?;
        let explicit = r.expect(tag::context(0), "no content")?;
        r.finish()?;
        let sd = Reader::single(explicit.value, tag::SEQUENCE, "SignedData")?;
        let mut r = Reader::new(sd.value, "SignedData");
        let version = der::small_uint(&r.expect(tag::INTEGER, "no version")?, "SignedData")?;
        if version != 3 {
            return Err(r.error("version is not 3").into());
        }
        let mut digests = Reader::new(
            r.expect(tag::SET, "no digestAlgorithms")?.value,
            "digestAlgorithms",
        );
        let mut digest_algorithms = Vec::new();
        while digests.peek_tag().is_some() {
            digest_algorithms.push(algorithm(
                &digests.expect(tag::SEQUENCE, "not an AlgorithmIdentifier")?,
                "digestAlgorithms",
            )?);
        }
        let encap = r.expect(tag::SEQUENCE, "no encapContentInfo")?;
        let certificates = match r.optional(tag::context(0))? {
            Some(set) => {
                let mut c = Reader::new(set.value, "certificates");
                let mut out = Vec::new();
                while c.peek_tag().is_some() {
                    out.push(c.expect(tag::SEQUENCE, "not a certificate")?.raw);
                }
                out
            }
            None => Vec::new(),
        };
        // CRLs are not used (revocation is not checked), only read past.
        r.optional(tag::context(1))?;
        let signer_infos = r.expect(tag::SET, "no signerInfos")?;
        r.finish()?;

        let mut e = Reader::new(encap.value, "encapContentInfo");
        let e_type = e.expect(tag::OID, "no eContentType")?;
        expect_oid(
            "the token's eContentType",
            e_type.value,
            oid::TST_INFO,
            "id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4)",
        )?;
        let e_content = e.expect(tag::context(0), "no eContent")?;
        e.finish()?;
        let content = Reader::single(e_content.value, tag::OCTET_STRING, "eContent")?.value;

        let mut s = Reader::new(signer_infos.value, "signerInfos");
        let mut infos = Vec::new();
        while s.peek_tag().is_some() {
            infos.push(s.expect(tag::SEQUENCE, "not a SignerInfo")?);
        }
        let [info] = infos.as_slice() else {
            return Err(TimestampError::SignerCount { count: infos.len() });
        };
        let mut r = Reader::new(info.value, "SignerInfo");
        let version = der::small_uint(&r.expect(tag::INTEGER, "no version")?, "SignerInfo")?;
        let signer = match r.peek_tag() {
            Some(tag::SEQUENCE) => {
                let ias = r.any()?;
                let mut i = Reader::new(ias.value, "IssuerAndSerialNumber");
                let issuer = i.expect(tag::SEQUENCE, "no issuer")?.raw;
                let serial = der::integer(
                    &i.expect(tag::INTEGER, "no serialNumber")?,
                    "IssuerAndSerialNumber",
                )?;
                i.finish()?;
                SignerId::IssuerSerial { issuer, serial }
            }
            Some(t) if t == tag::context_primitive(0) => SignerId::KeyId(r.any()?.value),
            _ => return Err(r.error("no signer identifier").into()),
        };
        // RFC 5652 5.3: version 1 names the signer by issuer and serial, 3 by key identifier.
        let expected_version = match signer {
            SignerId::IssuerSerial { .. } => 1,
            SignerId::KeyId(_) => 3,
        };
        if version != expected_version {
            return Err(r
                .error("version does not match the signer identifier")
                .into());
        }
        let digest_oid = algorithm(
            &r.expect(tag::SEQUENCE, "no digestAlgorithm")?,
            "SignerInfo",
        )?;
        let digest = Hash::from_oid(digest_oid).ok_or_else(|| TimestampError::Unsupported {
            what: "digest algorithm",
            found: dotted(digest_oid),
        })?;
        // The SignedData lists the digest algorithms its signers use: here, the one signer's.
        if digest_algorithms != [digest_oid] {
            return Err(Reader::new(&[], "SignedData")
                .error("digestAlgorithms is not the signer's digest algorithm")
                .into());
        }
        let signed_attrs = r
            .optional(tag::context(0))?
            .ok_or(TimestampError::Attribute {
                name: "signedAttrs",
                problem: "absent (a timestamp token must sign its attributes)",
            })?;
        let signature_algorithm = algorithm(
            &r.expect(tag::SEQUENCE, "no signatureAlgorithm")?,
            "SignerInfo",
        )?;
        let signature = r.expect(tag::OCTET_STRING, "no signature")?.value;
        // Unsigned attributes are not used, only read past.
        r.optional(tag::context(1))?;
        r.finish()?;
        Ok(SignedData {
            content,
            certificates,
            signer,
            digest,
            signed_attrs,
            signature_algorithm,
            signature,
        })
    }

    /// The embedded certificate the signer identifier names.
    fn signer_certificate(&self) -> Result<X509Certificate<'a>, TimestampError> {
        for der in &self.certificates {
            let cert = signing::parse(der)?;
            let named = match self.signer {
                SignerId::IssuerSerial { issuer, serial } => {
                    cert.issuer().as_raw() == issuer && cert.raw_serial() == serial
                }
                SignerId::KeyId(id) => cert.extensions().iter().any(|e| {
                    matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(k) if k.0 == id)
                }),
            };
            if named {
                return Ok(cert);
            }
        }
        Err(TimestampError::NoCertificate)
    }

    /// The signed attributes (content type, message digest, ESS signing certificate) and the
    /// signature over them.
    fn check_signature(
        &self,
        cert: &X509Certificate<'_>,
        subject: &str,
    ) -> Result<(), TimestampError> {
        let mut content_type = None;
        let mut message_digest = None;
        let mut signing_cert = None;
        let mut r = Reader::new(self.signed_attrs.value, "signedAttrs");
        while r.peek_tag().is_some() {
            let attr = r.expect(tag::SEQUENCE, "not an Attribute")?;
            let mut a = Reader::new(attr.value, "Attribute");
            let kind = a.expect(tag::OID, "no attribute type")?.value;
            let values = a.expect(tag::SET, "no attribute values")?;
            a.finish()?;
            let slot = match kind {
                oid::CONTENT_TYPE => Some((&mut content_type, "contentType")),
                oid::MESSAGE_DIGEST => Some((&mut message_digest, "messageDigest")),
                oid::SIGNING_CERTIFICATE | oid::SIGNING_CERTIFICATE_V2 => {
                    Some((&mut signing_cert, "signingCertificate"))
                }
                _ => None,
            };
            if let Some((slot, name)) = slot {
                if slot.is_some() {
                    return Err(TimestampError::Attribute {
                        name,
                        problem: "present twice",
                    });
                }
                let mut v = Reader::new(values.value, "attribute values");
                let value = v.any()?;
                if v.peek_tag().is_some() {
                    return Err(TimestampError::Attribute {
                        name,
                        problem: "has more than one value",
                    });
                }
                *slot = Some((kind, value));
            }
        }
        let missing = |name| TimestampError::Attribute {
            name,
            problem: "absent",
        };
        let (_, ct) = content_type.ok_or(missing("contentType"))?;
        if ct.tag != tag::OID {
            return Err(TimestampError::Attribute {
                name: "contentType",
                problem: "not an OID",
            });
        }
        expect_oid(
            "the signed contentType",
            ct.value,
            oid::TST_INFO,
            "id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4)",
        )?;
        let (_, md) = message_digest.ok_or(missing("messageDigest"))?;
        if md.tag != tag::OCTET_STRING || md.value != self.digest.digest(self.content).as_ref() {
            return Err(TimestampError::MessageDigest);
        }
        let (ess_kind, ess) = signing_cert.ok_or(missing("signingCertificate"))?;
        check_ess_cert_id(ess_kind, &ess, cert.as_ref())?;

        // RFC 5652 5.4: the signature is over the DER of the attributes as a SET, not as the
        // [0] IMPLICIT field they are stored in.
        let mut message = self.signed_attrs.raw.to_vec();
        if let Some(first) = message.first_mut() {
            *first = tag::SET;
        }
        let algorithm = verification_algorithm(cert, self.digest, self.signature_algorithm)?;
        signature::UnparsedPublicKey::new(algorithm, &cert.public_key().subject_public_key.data)
            .verify(&message, self.signature)
            .map_err(|_| TimestampError::BadSignature {
                subject: subject.to_owned(),
            })
    }
}

fn expect_oid(
    what: &'static str,
    found: &[u8],
    want: &[u8],
    expected: &'static str,
) -> Result<(), TimestampError> {
    if found == want {
        Ok(())
    } else {
        Err(TimestampError::WrongType {
            what,
            found: dotted(found),
            expected,
        })
    }
}

/// The first certificate the ESS signingCertificate (SHA-1) or signingCertificateV2 (SHA-256
/// by default) attribute names must be the signer's (RFC 5035: the first is the signing one).
fn check_ess_cert_id(kind: &[u8], value: &Tlv<'_>, cert_der: &[u8]) -> Result<(), TimestampError> {
    const CTX: &str = "signingCertificate";
    if value.tag != tag::SEQUENCE {
        return Err(Reader::new(&[], CTX).error("not a SEQUENCE").into());
    }
    let mut r = Reader::new(value.value, CTX);
    let certs = r.expect(tag::SEQUENCE, "no certs")?;
    let first = Reader::new(certs.value, CTX).expect(tag::SEQUENCE, "no ESSCertID")?;
    let mut id = Reader::new(first.value, "ESSCertID");
    let hash = if kind == oid::SIGNING_CERTIFICATE {
        digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der)
    } else {
        let alg = match id.optional(tag::SEQUENCE)? {
            Some(a) => algorithm(&a, "ESSCertIDv2")?,
            None => oid::SHA256,
        };
        Hash::from_oid(alg)
            .ok_or_else(|| TimestampError::Unsupported {
                what: "ESSCertIDv2 hash",
                found: dotted(alg),
            })?
            .digest(cert_der)
    };
    let cert_hash = id.expect(tag::OCTET_STRING, "no certHash")?;
    if cert_hash.value != hash.as_ref() {
        return Err(TimestampError::SigningCertificate);
    }
    Ok(())
}

/// The ring algorithm for the TSA's key, the SignerInfo's digest and its signature algorithm,
/// which must agree.
fn verification_algorithm(
    cert: &X509Certificate<'_>,
    digest: Hash,
    signature_algorithm: &[u8],
) -> Result<&'static dyn signature::VerificationAlgorithm, TimestampError> {
    let spki = cert.public_key();
    let key = spki.algorithm.algorithm.as_bytes();
    let unsupported = || TimestampError::Unsupported {
        what: "TSA signature",
        found: format!(
            "{} with digest {:?} and key {}",
            dotted(signature_algorithm),
            digest,
            dotted(key)
        ),
    };
    if key == oid::RSA_ENCRYPTION {
        // CMS writes either rsaEncryption (the digest named apart) or the combined OID.
        let ok = matches!(
            (signature_algorithm, digest),
            (oid::RSA_ENCRYPTION, _)
                | (oid::SHA256_WITH_RSA, Hash::Sha256)
                | (oid::SHA384_WITH_RSA, Hash::Sha384)
                | (oid::SHA512_WITH_RSA, Hash::Sha512)
        );
        if !ok {
            return Err(unsupported());
        }
        return Ok(match digest {
            Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        });
    }
    if key == oid::EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.as_bytes().to_vec())
            .unwrap_or_default();
        return match (curve.as_slice(), signature_algorithm, digest) {
            (oid::P256, oid::ECDSA_WITH_SHA256, Hash::Sha256) => {
                Ok(&signature::ECDSA_P256_SHA256_ASN1)
            }
            (oid::P256, oid::ECDSA_WITH_SHA384, Hash::Sha384) => {
                Ok(&signature::ECDSA_P256_SHA384_ASN1)
            }
            (oid::P384, oid::ECDSA_WITH_SHA256, Hash::Sha256) => {
                Ok(&signature::ECDSA_P384_SHA256_ASN1)
            }
            (oid::P384, oid::ECDSA_WITH_SHA384, Hash::Sha384) => {
                Ok(&signature::ECDSA_P384_SHA384_ASN1)
            }
            _ => Err(unsupported()),
        };
    }
    Err(unsupported())
}

/// RFC 3161 2.3: the TSA's certificate has one extendedKeyUsage, critical, id-kp-timeStamping
/// alone; a keyUsage, if any, must allow signing.
fn check_tsa_usage(cert: &X509Certificate<'_>, subject: &str) -> Result<(), TimestampError> {
    let not_tsa = |reason| TimestampError::NotTsa {
        subject: subject.to_owned(),
        reason,
    };
    let malformed = |e: x509_parser::error::X509Error| CertError::Malformed {
        detail: e.to_string(),
    };
    let eku = cert
        .extended_key_usage()
        .map_err(malformed)?
        .ok_or_else(|| {
            not_tsa("it has no extendedKeyUsage (id-kp-timeStamping, critical, is required)")
        })?;
    if !eku.value.time_stamping {
        return Err(not_tsa("its extendedKeyUsage lacks id-kp-timeStamping"));
    }
    let e = eku.value;
    if e.any
        || e.server_auth
        || e.client_auth
        || e.code_signing
        || e.email_protection
        || e.ocsp_signing
        || !e.other.is_empty()
    {
        return Err(not_tsa(
            "its extendedKeyUsage allows other purposes than timeStamping",
        ));
    }
    if !eku.critical {
        return Err(not_tsa("its extendedKeyUsage is not critical"));
    }
    if let Some(ku) = cert.key_usage().map_err(malformed)? {
        if !ku.value.digital_signature() && !ku.value.non_repudiation() {
            return Err(not_tsa(
                "its keyUsage allows neither digitalSignature nor nonRepudiation",
            ));
        }
    }
    Ok(())
}

/// The fields of a TSTInfo that are checked or shown.
struct TstInfo<'a> {
    policy: &'a [u8],
    imprint_algorithm: &'a [u8],
    imprint: &'a [u8],
    serial: &'a [u8],
    gen_time: Timestamp,
    accuracy: Option<SignedDuration>,
    nonce: Option<&'a [u8]>,
}

impl<'a> TstInfo<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, TimestampError> {
        const CTX: &str = "TSTInfo";
        let seq = Reader::single(der, tag::SEQUENCE, CTX)?;
        let mut r = Reader::new(seq.value, CTX);
        if der::small_uint(&r.expect(tag::INTEGER, "no version")?, CTX)? != 1 {
            return Err(r.error("version is not 1").into());
        }
        let policy = r.expect(tag::OID, "no policy")?.value;
        let imprint = r.expect(tag::SEQUENCE, "no messageImprint")?;
        let serial = der::integer(&r.expect(tag::INTEGER, "no serialNumber")?, CTX)?;
        let gen_time = der::generalized_time(&r.expect(tag::GENERALIZED_TIME, "no genTime")?, CTX)?;
        let accuracy = match r.optional(tag::SEQUENCE)? {
            Some(a) => Some(accuracy(a.value)?),
            None => None,
        };
        if let Some(o) = r.optional(tag::BOOLEAN)? {
            der::boolean(&o, CTX)?;
        }
        let nonce = match r.optional(tag::INTEGER)? {
            Some(n) => Some(der::integer(&n, CTX)?),
            None => None,
        };
        r.optional(tag::context(0))?; // tsa name: informational
        r.optional(tag::context(1))?; // extensions: none understood, none critical to us
        r.finish()?;
        let mut m = Reader::new(imprint.value, "messageImprint");
        let imprint_algorithm = algorithm(
            &m.expect(tag::SEQUENCE, "no hashAlgorithm")?,
            "messageImprint",
        )?;
        let hashed = m.expect(tag::OCTET_STRING, "no hashedMessage")?.value;
        m.finish()?;
        Ok(TstInfo {
            policy,
            imprint_algorithm,
            imprint: hashed,
            serial,
            gen_time,
            accuracy,
            nonce,
        })
    }
}

/// RFC 3161 Accuracy: seconds, [0] millis, [1] micros, each optional.
fn accuracy(der: &[u8]) -> Result<SignedDuration, TimestampError> {
    const CTX: &str = "Accuracy";
    let mut r = Reader::new(der, CTX);
    let part = |r: &mut Reader<'_>, tag| -> Result<i64, TimestampError> {
        Ok(match r.optional(tag)? {
            Some(t) => {
                i64::try_from(der::small_uint(&t, CTX)?).map_err(|_| r.error("out of range"))?
            }
            None => 0,
        })
    };
    let seconds = part(&mut r, tag::INTEGER)?;
    let millis = part(&mut r, tag::context_primitive(0))?;
    let micros = part(&mut r, tag::context_primitive(1))?;
    r.finish()?;
    if millis > 999 || micros > 999 {
        return Err(r.error("millis or micros out of range").into());
    }
    Ok(SignedDuration::from_secs(seconds.min(i64::from(u32::MAX)))
        + SignedDuration::from_millis(millis)
        + SignedDuration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_the_ones_named() {
        for (bytes, dot) in [
            (oid::SIGNED_DATA, "1.2.840.113549.1.7.2"),
            (oid::TST_INFO, "1.2.840.113549.1.9.16.1.4"),
            (oid::CONTENT_TYPE, "1.2.840.113549.1.9.3"),
            (oid::MESSAGE_DIGEST, "1.2.840.113549.1.9.4"),
            (oid::SIGNING_CERTIFICATE, "1.2.840.113549.1.9.16.2.12"),
            (oid::SIGNING_CERTIFICATE_V2, "1.2.840.113549.1.9.16.2.47"),
            (oid::SHA256, "2.16.840.1.101.3.4.2.1"),
            (oid::SHA384, "2.16.840.1.101.3.4.2.2"),
            (oid::SHA512, "2.16.840.1.101.3.4.2.3"),
            (oid::RSA_ENCRYPTION, "1.2.840.113549.1.1.1"),
            (oid::SHA256_WITH_RSA, "1.2.840.113549.1.1.11"),
            (oid::SHA384_WITH_RSA, "1.2.840.113549.1.1.12"),
            (oid::SHA512_WITH_RSA, "1.2.840.113549.1.1.13"),
            (oid::ECDSA_WITH_SHA256, "1.2.840.10045.4.3.2"),
            (oid::ECDSA_WITH_SHA384, "1.2.840.10045.4.3.3"),
            (oid::EC_PUBLIC_KEY, "1.2.840.10045.2.1"),
            (oid::P256, "1.2.840.10045.3.1.7"),
            (oid::P384, "1.3.132.0.34"),
        ] {
            assert_eq!(dotted(bytes), dot);
        }
    }

    #[test]
    fn a_request_is_the_der_openssl_reads() {
        // The same structure `openssl ts -query -sha256 -cert` writes, with our nonce.
        let rng = ring::rand::SystemRandom::new();
        let a = Request::new(b"signature", &rng).unwrap();
        let b = Request::new(b"signature", &rng).unwrap();
        assert_ne!(a.nonce, b.nonce, "a fresh nonce per request");
        let sha = digest::digest(&digest::SHA256, b"signature");
        let mut want = vec![
            0x30, 0x4b, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
        ];
        want.extend_from_slice(oid::SHA256);
        want.extend_from_slice(&[0x05, 0x00, 0x04, 0x20]);
        want.extend_from_slice(sha.as_ref());
        want.extend_from_slice(&[0x02, 0x10]);
        want.extend_from_slice(&a.nonce);
        want.extend_from_slice(&[0x01, 0x01, 0xff]);
        assert_eq!(a.der(), &want[..]);
        assert_eq!(a.nonce.len(), 16);
        assert_eq!(a.nonce[0] & 0xc0, 0x40);
    }

    fn committed(path: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn openssl_tokens_parse_and_chain_to_their_ca_only() {
        // The fuzz seeds: tokens `openssl ts -reply` made with the test TSAs over this
        // "signature" (fuzz/make-seeds.sh).
        let signature = b"trailproof fuzz seed signature";
        let ca = TsaCertificate::from_pem(&committed("testdata/tsa/ca.pem")).unwrap();
        let other = TsaCertificate::from_pem(&committed("testdata/tsa/other-ca.pem")).unwrap();
        for name in ["p256", "rsa2048"] {
            let der = committed(&format!("fuzz/seeds/timestamp/{name}.tst"));
            let token = Token::parse(&der, signature).unwrap();
            assert_eq!(token.der(), &der[..]);
            assert_eq!(token.policy(), "1.3.6.1.4.1.59999.3161.1");
            assert_eq!(token.accuracy(), Some(SignedDuration::from_millis(1500)));
            assert!(token.tsa().subject().contains(&format!("tsa-{name}")));
            let trusted = token.check_issued_by(&ca).unwrap();
            assert_eq!(trusted.gen_time, token.gen_time());
            assert!(matches!(
                token.check_issued_by(&other),
                Err(TimestampError::Certificate(CertError::WrongIssuer { .. }))
            ));
            assert!(matches!(
                Token::parse(&der, b"another signature"),
                Err(TimestampError::Imprint)
            ));
            // Anything after the token, or the token cut short, is not DER of one token.
            let mut longer = der.clone();
            longer.push(0);
            assert!(matches!(
                Token::parse(&longer, signature),
                Err(TimestampError::Der(_))
            ));
            assert!(Token::parse(&der[..der.len() - 1], signature).is_err());
        }
    }

    #[test]
    fn refusals_say_the_status_and_text() {
        let rng = ring::rand::SystemRandom::new();
        let req = Request::new(b"sig", &rng).unwrap();
        // status 2 (rejection), statusString "bad request"
        let text = encode(0x0c, b"bad request");
        let resp = encode_all(
            tag::SEQUENCE,
            &[&encode_all(
                tag::SEQUENCE,
                &[&encode(tag::INTEGER, &[2]), &encode(tag::SEQUENCE, &text)],
            )],
        );
        let err = req.accept(&resp, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the TSA refused the request: status 2 (bad request)"
        );
        let granted_without_token = encode_all(
            tag::SEQUENCE,
            &[&encode_all(tag::SEQUENCE, &[&encode(tag::INTEGER, &[0])])],
        );
        assert!(matches!(
            req.accept(&granted_without_token, None),
            Err(TimestampError::NoToken)
        ));
        assert!(matches!(
            req.accept(b"<html>", None),
            Err(TimestampError::Der(_))
        ));
    }
}
