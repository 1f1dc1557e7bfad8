//! Signed reports: an in-toto Statement v1 in a DSSE envelope, and its verification.
//!
//! The statement's predicate is the audit [`Document`] (schema `trailproof-report/1`, plus the
//! `signer` block), its predicate type [`PREDICATE_TYPE`]. Subjects name what was checked:
//!
//! - one subject per checked object whose content was read: name the `s3://` URI, digest the
//!   SHA-256 of the inflated content (what CloudTrail's digests hash, not the gzip bytes);
//! - when there are more than [`MAX_OBJECT_SUBJECTS`] such objects, or none, a single subject
//!   [`MANIFEST_SUBJECT`] whose SHA-256 is that of the predicate's `manifest` array serialized as
//!   compact JSON (keys in the order written, no spaces). Thousands of subjects make envelopes
//!   that attestation stores and policy engines handle badly, and the manifest in the signed
//!   predicate names every object anyway.
//!
//! A verifier accepts either form, as long as it is exactly what the predicate's manifest gives.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::audit::{
    Coverage, Document, LedgerTotals, ManifestEntry, NotProven, RunInfo, SignerInfo, SCHEMA,
};
use super::dsse::{self, EnvelopeError, Trust};
use super::signing::{Certificate, KeyError, SigningKey};
use super::{ChainInfo, RangeInfo, Totals};
use crate::core::finding::{Kind, Verdict};
use crate::core::ledger::{Counts, HourState, Ledger};
use crate::core::types::Sha256;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://trailproof.dev/verification-report/v1";
pub const MANIFEST_SUBJECT: &str = "trailproof-manifest.json";
/// Above this many hashed objects, the statement names the manifest instead (see above).
pub const MAX_OBJECT_SUBJECTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: DigestSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSet {
    pub sha256: String,
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    ty: &'static str,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: &'a Document<'a>,
}

fn object_subjects(manifest: &[ManifestEntry]) -> Vec<Subject> {
    manifest
        .iter()
        .filter_map(|e| {
            Some(Subject {
                name: e.uri.clone(),
                digest: DigestSet {
                    sha256: e.sha256.clone()?,
                },
            })
        })
        .collect()
}

fn manifest_subject(manifest: &[ManifestEntry]) -> Subject {
    // Serializing strings, enums and options cannot fail.
    let bytes = serde_json::to_vec(manifest).unwrap_or_default();
    Subject {
        name: MANIFEST_SUBJECT.to_owned(),
        digest: DigestSet {
            sha256: Sha256::of(&bytes).to_hex(),
        },
    }
}

/// The subjects for a manifest, one per hashed object up to `max`, else the manifest's digest.
pub fn subjects(manifest: &[ManifestEntry], max: usize) -> Vec<Subject> {
    let objects = object_subjects(manifest);
    if objects.is_empty() || objects.len() > max {
        vec![manifest_subject(manifest)]
    } else {
        objects
    }
}

/// Why a report could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("--sign-cert: {0}")]
    Certificate(#[from] super::signing::CertError),
}

/// A key and optional certificate, checked to belong together.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    certificate: Option<Certificate>,
}

impl Signer {
    pub fn new(key: SigningKey, certificate: Option<Certificate>) -> Result<Self, SignError> {
        if let Some(c) = &certificate {
            c.check_key(key.public())?;
        }
        Ok(Signer { key, certificate })
    }

    fn info(&self) -> SignerInfo {
        SignerInfo {
            keyid: self.key.public().keyid(),
            algorithm: self.key.public().algorithm().name().to_owned(),
            certificate_sha256: self
                .certificate
                .as_ref()
                .map(|c| Sha256::of(c.pem()).to_hex()),
            certificate_subject: self.certificate.as_ref().map(|c| c.subject().to_owned()),
        }
    }

    /// The DSSE envelope of `doc`, with subjects as described above (`max` objects at most).
    pub fn seal(&self, doc: &Document<'_>, max: usize) -> Result<Vec<u8>, SignError> {
        let mut doc = doc.clone();
        doc.signer = Some(self.info());
        let statement = Statement {
            ty: STATEMENT_TYPE,
            subject: subjects(&doc.manifest, max),
            predicate_type: PREDICATE_TYPE,
            predicate: &doc,
        };
        // Serializing the document cannot fail: no maps with non-string keys, no floats.
        let payload = serde_json::to_vec(&statement).unwrap_or_default();
        Ok(dsse::seal(
            PAYLOAD_TYPE,
            &payload,
            &self.key,
            self.certificate.as_ref(),
        )?)
    }
}

/// The parts of a signed report that `report verify` checks and prints. Deserializing it is the
/// payload's schema check: every field named here must be present with its type.
#[derive(Debug, Deserialize)]
struct StatementView {
    #[serde(rename = "_type")]
    ty: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: ReportView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportView {
    pub schema: String,
    pub tool: String,
    pub version: String,
    pub run: RunInfo,
    pub signer: SignerInfo,
    pub source: String,
    pub bucket: String,
    pub range: RangeInfo,
    pub chains: Vec<ChainView>,
    pub unchained: Vec<FindingView>,
    pub totals: Totals,
    pub ledger: LedgerTotals,
    pub manifest: Vec<ManifestEntry>,
    pub not_proven: Vec<NotProven>,
    pub exit_code: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChainView {
    pub chain: ChainInfo,
    pub coverage: Coverage,
    #[serde(default)]
    pub ledger: Option<Ledger>,
    pub findings: Vec<FindingView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FindingView {
    pub subject: String,
    pub kind: Kind,
    pub verdict: Verdict,
    pub reason: String,
}

/// Why a signed report is not what it claims, beyond the envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the payload is not a trailproof report statement: {detail}")]
    Schema { detail: String },
    #[error("{field} is {found:?}, expected {expected:?}")]
    Unexpected {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("the subjects are not the ones the manifest gives")]
    Subjects,
    #[error("the signed signer block does not match the envelope's {what}")]
    Signer { what: &'static str },
    #[error(
        "finding {subject} of kind {kind:?} has verdict {verdict:?}, which that kind never has"
    )]
    Verdict {
        subject: String,
        kind: Kind,
        verdict: Verdict,
    },
    #[error("exit_code {exit_code} contradicts the findings or the ledger")]
    ExitCode { exit_code: i64 },
    #[error("the ledger does not add up: {what}")]
    Ledger { what: &'static str },
    #[error("signer's certificate at signing time: {0}")]
    SigningTime(super::signing::CertError),
}

/// A signed report that verified.
#[derive(Debug)]
pub struct VerifiedReport {
    pub report: ReportView,
    pub subjects: usize,
    pub manifest_subject: bool,
    /// The CA-checked or key-matched certificate, if the envelope had one.
    pub certificate: Option<Certificate>,
}

/// Verifies a signed report: the envelope (form, key, signature; with a CA, the certificate at
/// `now`), then the statement, the payload's schema, and that the signed payload agrees with
/// the envelope and with itself. With a CA, the certificate must also be valid when the report
/// says it was made (`run.finished`).
pub fn verify(
    envelope: &[u8],
    trust: Trust<'_>,
    now: Timestamp,
) -> Result<VerifiedReport, ReportError> {
    let opened = dsse::open(envelope, PAYLOAD_TYPE, trust, &[now])?;
    let statement: StatementView =
        serde_json::from_slice(&opened.payload).map_err(|e| ReportError::Schema {
            detail: e.to_string(),
        })?;
    let expect = |field, found: &str, expected: &'static str| {
        if found == expected {
            Ok(())
        } else {
            Err(ReportError::Unexpected {
                field,
                found: found.to_owned(),
                expected,
            })
        }
    };
    expect("_type", &statement.ty, STATEMENT_TYPE)?;
    expect("predicateType", &statement.predicate_type, PREDICATE_TYPE)?;
    let report = statement.predicate;
    expect("predicate.schema", &report.schema, SCHEMA)?;

    let manifest_form = statement.subject == [manifest_subject(&report.manifest)];
    if !manifest_form && statement.subject != object_subjects(&report.manifest) {
        return Err(ReportError::Subjects);
    }

    let signer = &report.signer;
    if signer.keyid != opened.key.keyid() {
        return Err(ReportError::Signer { what: "key id" });
    }
    if signer.algorithm != opened.key.algorithm().name() {
        return Err(ReportError::Signer { what: "algorithm" });
    }
    let cert_sha = opened
        .certificate
        .as_ref()
        .map(|c| Sha256::of(c.pem()).to_hex());
    if signer.certificate_sha256 != cert_sha {
        return Err(ReportError::Signer {
            what: "certificate",
        });
    }
    if signer.certificate_subject.as_deref() != opened.certificate.as_ref().map(|c| c.subject()) {
        return Err(ReportError::Signer {
            what: "certificate subject",
        });
    }
    if let (Trust::Ca(ca), Some(cert)) = (trust, &opened.certificate) {
        cert.check_issued_by(ca, &[report.run.finished])
            .map_err(ReportError::SigningTime)?;
    }

    let findings = report
        .chains
        .iter()
        .flat_map(|c| c.findings.iter())
        .chain(report.unchained.iter());
    let mut all_valid = true;
    for f in findings {
        if f.verdict != f.kind.verdict() {
            return Err(ReportError::Verdict {
                subject: f.subject.clone(),
                kind: f.kind,
                verdict: f.verdict,
            });
        }
        all_valid &= f.verdict == Verdict::Valid;
    }
    // The ledgers add up: each chain's hours, and the totals over the chains.
    let mut counts = Counts::default();
    let mut chains = 0;
    for l in report.chains.iter().filter_map(|c| c.ledger.as_ref()) {
        let by_runs = |state| {
            l.runs
                .iter()
                .filter(|r| r.state == state)
                .map(|r| r.hours)
                .sum::<u64>()
        };
        if l.hours != l.counts.total()
            || HourState::ALL
                .iter()
                .any(|s| by_runs(*s) != l.counts.get(*s))
        {
            return Err(ReportError::Ledger {
                what: "a chain's hours",
            });
        }
        counts.add_all(&l.counts);
        chains += 1;
    }
    if counts != report.ledger.counts
        || chains != report.ledger.chains
        || report.ledger.hours != counts.total()
    {
        return Err(ReportError::Ledger {
            what: "the totals over the chains",
        });
    }
    let proven = HourState::ALL
        .iter()
        .all(|s| s.is_proven() || counts.get(*s) == 0);
    if (report.exit_code == 0) != (all_valid && proven) {
        return Err(ReportError::ExitCode {
            exit_code: report.exit_code,
        });
    }
    Ok(VerifiedReport {
        subjects: statement.subject.len(),
        manifest_subject: manifest_form,
        certificate: opened.certificate,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::super::signing::tests::key_file;
    use super::*;
    use crate::core::finding::ObjectKind;

    fn entry(uri: &str, sha: Option<&str>) -> ManifestEntry {
        ManifestEntry {
            uri: uri.into(),
            object: ObjectKind::Log,
            version_id: None,
            sha256: sha.map(str::to_owned),
            verdict: Verdict::Valid,
        }
    }

    #[test]
    fn subjects_name_hashed_objects_or_the_manifest() {
        let m = vec![
            entry("s3://b/a", Some(&"a".repeat(64))),
            entry("s3://b/missing", None),
            entry("s3://b/c", Some(&"c".repeat(64))),
        ];
        let s = subjects(&m, 2);
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["s3://b/a", "s3://b/c"]
        );
        let s = subjects(&m, 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, MANIFEST_SUBJECT);
        // The manifest digest is over the compact JSON an independent tool can rebuild.
        let compact = serde_json::to_string(&m).unwrap();
        assert!(compact.starts_with(r#"[{"uri":"s3://b/a","object":"log","version_id":null,"#));
        assert_eq!(s[0].digest.sha256, Sha256::of(compact.as_bytes()).to_hex());
        assert_eq!(
            subjects(&[entry("s3://b/x", None)], 5)[0].name,
            MANIFEST_SUBJECT
        );
    }

    #[test]
    fn a_certificate_for_another_key_is_refused_when_signing() {
        let key = SigningKey::from_pem(&key_file("ed25519.pem")).unwrap();
        let cert = Certificate::from_pem(&key_file("p256.cert.pem")).unwrap();
        assert!(matches!(
            Signer::new(key, Some(cert)),
            Err(SignError::Certificate(_))
        ));
    }
}
