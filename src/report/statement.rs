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
//!
//! The envelope may also carry an RFC 3161 timestamp token over the signature (see
//! [`super::dsse`] for where, [`super::timestamp`] for what is checked): [`verify`] checks
//! every part of it but the trust in its TSA, which [`Token::check_issued_by`] adds.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::audit::{
    Coverage, Document, LedgerTotals, ManifestEntry, NotProven, RunInfo, ShardStamp, SignerInfo,
    SCHEMA,
};
use super::dsse::{self, EnvelopeError, Sealed, Trust};
use super::signing::{Certificate, KeyError, SigningKey};
use super::timestamp::{TimestampError, Token};
use super::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report, Totals};
use crate::core::custody::Retention;
use crate::core::finding::{Finding, Kind, Verdict};
use crate::core::ledger::{Counts, HourState, Ledger};
use crate::core::types::Sha256;

/// The DSSE `payloadType` of a signed report: an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The statement's `_type`: in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The statement's `predicateType`: a trailproof verification report.
pub const PREDICATE_TYPE: &str = "https://trailproof.dev/verification-report/v1";
/// The name of the single subject that stands for the manifest (see the module docs).
pub const MANIFEST_SUBJECT: &str = "trailproof-manifest.json";
/// Above this many hashed objects, the statement names the manifest instead (see above).
pub const MAX_OBJECT_SUBJECTS: usize = 1000;

/// An in-toto subject: something the statement is about, by name and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// An object's `s3://` URI, or [`MANIFEST_SUBJECT`].
    pub name: String,
    /// Its digest.
    pub digest: DigestSet,
}

/// An in-toto digest set; trailproof writes and accepts SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSet {
    /// Lowercase hex SHA-256: of an object's inflated content, or of the compact manifest JSON.
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
    /// The key could not sign.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The certificate is not for the key.
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
    /// A signer; refuses a certificate whose public key is not `key`'s.
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
        Ok(self.seal_envelope(doc, max)?.to_bytes())
    }

    /// As [`Signer::seal`], before the envelope is written out: to timestamp its signature.
    pub fn seal_envelope(&self, doc: &Document<'_>, max: usize) -> Result<Sealed, SignError> {
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

/// The signed predicate as read back: the fields of the audit [`Document`] that verification
/// checks or prints, each as documented there. Fields not named here are not read.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportView {
    /// Must be [`SCHEMA`].
    pub schema: String,
    /// The tool that made the report.
    pub tool: String,
    /// Its version.
    pub version: String,
    /// When the run happened.
    pub run: RunInfo,
    /// Who signed it; checked against the envelope.
    pub signer: SignerInfo,
    /// What was verified.
    pub source: String,
    /// The bucket verified.
    pub bucket: String,
    /// The period verified.
    pub range: RangeInfo,
    /// Every chain.
    pub chains: Vec<ChainView>,
    /// Findings outside every chain.
    pub unchained: Vec<FindingView>,
    /// The report's counts, as signed.
    pub totals: Totals,
    /// Every chain's ledger added up; checked against the chains'.
    pub ledger: LedgerTotals,
    /// A `crosscheck cloudwatch` report's counts (absent otherwise).
    #[serde(default)]
    pub crosscheck: Option<crate::core::cloudwatch::CrosscheckCounts>,
    /// Every judged object; the subjects must follow from it.
    pub manifest: Vec<ManifestEntry>,
    /// What the report does not prove.
    pub not_proven: Vec<NotProven>,
    /// Checked against the findings and the ledgers.
    pub exit_code: i64,
}

/// One chain of a [`ReportView`].
#[derive(Debug, Clone, Deserialize)]
pub struct ChainView {
    /// Which chain.
    pub chain: ChainInfo,
    /// What it covers within the range.
    pub coverage: Coverage,
    /// Its hours; absent for backfill chains.
    #[serde(default)]
    pub ledger: Option<Ledger>,
    /// Its findings.
    pub findings: Vec<FindingView>,
}

/// The part of a finding that verification reads.
#[derive(Debug, Clone, Deserialize)]
pub struct FindingView {
    /// As [`Finding::subject`](crate::core::finding::Finding::subject).
    pub subject: String,
    /// As [`Finding::kind`](crate::core::finding::Finding::kind).
    pub kind: Kind,
    /// Must be the kind's verdict.
    pub verdict: Verdict,
    /// As [`Finding::reason`](crate::core::finding::Finding::reason).
    pub reason: String,
}

/// Why a signed report is not what it claims, beyond the envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The envelope's form, key or signature failed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is not JSON of the statement's shape, or a field is missing or mistyped.
    #[error("the payload is not a trailproof report statement: {detail}")]
    Schema {
        /// The JSON parser's message.
        detail: String,
    },
    /// A field with one possible value (`_type`, `predicateType`, `predicate.schema`) has
    /// another.
    #[error("{field} is {found:?}, expected {expected:?}")]
    Unexpected {
        /// The field's path in the statement.
        field: &'static str,
        /// Its value.
        found: String,
        /// The one value it may have.
        expected: &'static str,
    },
    /// The subjects are neither one per hashed manifest object nor the manifest subject.
    #[error("the subjects are not the ones the manifest gives")]
    Subjects,
    /// The signed `signer` block names another key, algorithm or certificate than the
    /// envelope's.
    #[error("the signed signer block does not match the envelope's {what}")]
    Signer {
        /// Which part differs.
        what: &'static str,
    },
    /// A finding's verdict is not its kind's.
    #[error(
        "finding {subject} of kind {kind:?} has verdict {verdict:?}, which that kind never has"
    )]
    Verdict {
        /// The finding's subject.
        subject: String,
        /// Its kind.
        kind: Kind,
        /// The verdict it claims.
        verdict: Verdict,
    },
    /// `exit_code` says 0 where a finding is not valid or an hour not proven, or the reverse.
    #[error("exit_code {exit_code} contradicts the findings or the ledger")]
    ExitCode {
        /// The exit code as signed.
        exit_code: i64,
    },
    /// A chain's hours, or the totals over the chains, do not add up.
    #[error("the ledger does not add up: {what}")]
    Ledger {
        /// Which sum fails.
        what: &'static str,
    },
    /// With a CA: the signer's certificate was not valid at `run.finished`.
    #[error("signer's certificate at signing time: {0}")]
    SigningTime(super::signing::CertError),
    /// The embedded timestamp token is malformed, tampered with, not over this report's
    /// signature, or not from a timestamp authority's certificate.
    #[error("timestamp token: {0}")]
    Timestamp(#[from] TimestampError),
    /// Read as a shard's report ([`read_shard`]): it has no `shard` block.
    #[error("not a shard's report (it has no shard block: `verify --plan` makes them)")]
    NotAShard,
    /// Read as a shard's report: made by another tool or version, whose findings this one
    /// cannot merge as its own.
    #[error("made by {tool} {version}; merge shard reports with the version that made them ({})", env!("CARGO_PKG_VERSION"))]
    Version {
        /// The tool named.
        tool: String,
        /// Its version.
        version: String,
    },
}

/// A signed report that verified.
#[derive(Debug)]
pub struct VerifiedReport {
    /// The signed report.
    pub report: ReportView,
    /// How many subjects the statement has.
    pub subjects: usize,
    /// Whether the statement names the manifest rather than each object.
    pub manifest_subject: bool,
    /// The CA-checked or key-matched certificate, if the envelope had one.
    pub certificate: Option<Certificate>,
    /// The envelope's timestamp token, checked but for trust in its TSA
    /// ([`Token::check_issued_by`] adds that).
    pub timestamp: Option<Token>,
    /// The statement as signed, to read more of it than [`ReportView`] does.
    pub payload: Vec<u8>,
}

/// Verifies a signed report: the envelope (form, key, signature; with a CA, the certificate at
/// `now`), then the statement, the payload's schema, and that the signed payload agrees with
/// the envelope and with itself. With a CA, the certificate must also be valid when the report
/// says it was made (`run.finished`). A timestamp token, if the envelope has one, must be over
/// this signature and pass every check of [`Token::parse`].
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
    expect("_type", &statement.ty, STATEMENT_TYPE)?;
    expect("predicateType", &statement.predicate_type, PREDICATE_TYPE)?;
    let report = statement.predicate;
    expect("predicate.schema", &report.schema, SCHEMA)?;

    let manifest_form = statement.subject == [manifest_subject(&report.manifest)];
    if !manifest_form && statement.subject != object_subjects(&report.manifest) {
        return Err(ReportError::Subjects);
    }
    check_signer(&report, &opened, trust)?;
    let all_valid = check_verdicts(&report)?;
    let proven = check_ledgers(&report)?;
    if (report.exit_code == 0) != (all_valid && proven) {
        return Err(ReportError::ExitCode {
            exit_code: report.exit_code,
        });
    }
    let timestamp = match &opened.timestamp {
        Some(der) => Some(Token::parse(der, &opened.signature)?),
        None => None,
    };
    Ok(VerifiedReport {
        payload: opened.payload,
        timestamp,
        subjects: statement.subject.len(),
        manifest_subject: manifest_form,
        certificate: opened.certificate,
        report,
    })
}

/// A shard's signed report (`verify --plan`), verified as [`verify`] does, read back whole: its
/// stamp and its report, for [`crate::engine::fanout::merge`].
pub fn read_shard(
    envelope: &[u8],
    trust: Trust<'_>,
    now: Timestamp,
) -> Result<(ShardStamp, Report), ReportError> {
    let verified = verify(envelope, trust, now)?;
    let schema = |e: serde_json::Error| ReportError::Schema {
        detail: e.to_string(),
    };
    let statement: ShardStatement = serde_json::from_slice(&verified.payload).map_err(schema)?;
    let doc = statement.predicate;
    if doc.tool != "trailproof" || doc.version != env!("CARGO_PKG_VERSION") {
        return Err(ReportError::Version {
            tool: doc.tool,
            version: doc.version,
        });
    }
    let stamp = doc.shard.ok_or(ReportError::NotAShard)?;
    let report = Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: doc.source,
        bucket: doc.bucket,
        range: doc.range,
        filters: doc.filters,
        keys: doc.keys,
        chains: doc
            .chains
            .into_iter()
            .map(|c| ChainReport {
                chain: c.chain,
                findings: c.findings,
                omitted_valid_logs: 0,
                omitted_valid_files: 0,
                ledger: c.ledger,
            })
            .collect(),
        unchained: doc.unchained,
        notes: doc.notes,
        retention: doc.retention,
        chain_ends: Vec::new(),
        crosscheck: None,
    };
    Ok((stamp, report))
}

#[derive(Deserialize)]
struct ShardStatement {
    predicate: ShardDoc,
}

/// The fields of a shard's report that make up its [`Report`] (see `src/report/json.rs`).
#[derive(Deserialize)]
struct ShardDoc {
    tool: String,
    version: String,
    shard: Option<ShardStamp>,
    source: String,
    bucket: String,
    range: RangeInfo,
    filters: Filters,
    keys: Vec<KeyInfo>,
    chains: Vec<ShardChain>,
    unchained: Vec<Finding>,
    notes: Vec<String>,
    #[serde(default)]
    retention: Retention,
}

#[derive(Deserialize)]
struct ShardChain {
    chain: ChainInfo,
    #[serde(default)]
    ledger: Option<Ledger>,
    findings: Vec<Finding>,
}

/// A field of the statement that has one possible value.
fn expect(field: &'static str, found: &str, expected: &'static str) -> Result<(), ReportError> {
    if found == expected {
        Ok(())
    } else {
        Err(ReportError::Unexpected {
            field,
            found: found.to_owned(),
            expected,
        })
    }
}

/// The signed `signer` block names the key and certificate that signed the envelope: a report
/// cannot claim another signer than the one that signed it. With a CA, the certificate must
/// also have been valid when the report says it was made.
fn check_signer(
    report: &ReportView,
    opened: &dsse::Opened,
    trust: Trust<'_>,
) -> Result<(), ReportError> {
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
    Ok(())
}

/// Every finding carries the verdict its kind has (the signer's tool cannot have written
/// another). Answers whether every finding is valid.
fn check_verdicts(report: &ReportView) -> Result<bool, ReportError> {
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
    Ok(all_valid)
}

/// The ledgers add up: each chain's hours, and the totals over the chains. Answers whether
/// every hour is proven.
fn check_ledgers(report: &ReportView) -> Result<bool, ReportError> {
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
    Ok(HourState::ALL
        .iter()
        .all(|s| s.is_proven() || counts.get(*s) == 0))
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
