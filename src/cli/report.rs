//! Report output for `verify` (formats, signing) and the `report verify` command.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use clap::{Args, Subcommand};
use jiff::Timestamp;
use ring::rand::SystemRandom;

use super::Format;
use trailproof::core::finding::Finding;
use trailproof::core::time::format_iso;
use trailproof::report::audit::{Document, MergeStamp, RunInfo, ShardStamp};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::{CertError, Certificate, KeyError, PublicKey, SigningKey};
use trailproof::report::statement::{self, ReportError, SignError, Signer, VerifiedReport};
use trailproof::report::timestamp::{self, TimestampError, TrustedTime, TsaCertificate};
use trailproof::report::{html, json, jsonl, text, ChainInfo, Report, Tally};
use trailproof::source::tsa::{self, TsaHttpError, TsaUrl};

/// Signing flags of `verify`.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Also write the report as a signed in-toto statement in a DSSE envelope, signed with this
    /// PKCS#8 PEM private key (Ed25519, ECDSA P-256 or RSA 2048+). With `verify
    /// --checkpoint`, the key that signs the checkpoint (--sign-out is then optional).
    #[arg(long, value_name = "KEY.pem")]
    pub sign_key: Option<PathBuf>,
    /// X.509 certificate (PEM) of the signing key, embedded so a verifier can check the
    /// signer's identity against a CA it trusts.
    #[arg(long, value_name = "CERT.pem", requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
    /// Where to write the signed envelope (the report itself still goes to stdout).
    #[arg(long, value_name = "FILE", requires = "sign_key")]
    pub sign_out: Option<PathBuf>,
    /// Also timestamp the signature: an RFC 3161 token from this timestamp authority
    /// (http:// only), checked and embedded in the envelope.
    #[arg(long, value_name = "URL", requires = "sign_key")]
    pub tsa_url: Option<String>,
    /// The TSA's certificate (PEM): the token must be signed by exactly this certificate.
    #[arg(long, value_name = "CERT.pem", requires = "tsa_url")]
    pub tsa_cert: Option<PathBuf>,
}

/// `trailproof report ...`
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Verify a signed report (a DSSE envelope from `verify --sign-key`) and print its summary.
    ///
    /// Checks the envelope's exact form, the signature, the certificate (with --ca: issued by
    /// the CA, valid now and when the report was made, for the signing key), the payload's
    /// schema, and an RFC 3161 timestamp if the envelope has one (with --tsa-ca: its TSA issued
    /// by that CA). Exit status: 0 the envelope is intact and trusted (whatever the report
    /// found: read its result), 1 it is not (or --tsa-ca cannot trust its time), 2 the check
    /// could not be done.
    Verify(ReportVerifyArgs),
}

#[derive(Debug, Args)]
pub struct ReportVerifyArgs {
    /// The envelope written by `verify --sign-out`.
    pub envelope: PathBuf,
    /// Trust this public key (SubjectPublicKeyInfo PEM).
    #[arg(
        long,
        value_name = "PUB.pem",
        required_unless_present = "ca",
        conflicts_with = "ca"
    )]
    pub key: Option<PathBuf>,
    /// Trust signers whose certificate (embedded in the envelope) this CA issued.
    #[arg(long, value_name = "CA.pem")]
    pub ca: Option<PathBuf>,
    /// Check the envelope's RFC 3161 timestamp: its TSA's certificate must be issued by this
    /// CA and valid at the token's time. Without it, a token's time is shown as unchecked.
    #[arg(long, value_name = "CA.pem")]
    pub tsa_ca: Option<PathBuf>,
}

/// Why the report could not be written, signed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportCliError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot write the report: {0}")]
    Output(io::Error),
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error("{path}: {source}")]
    Cert {
        path: PathBuf,
        source: Box<CertError>,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("--tsa-url: {0}")]
    TsaHttp(#[from] TsaHttpError),
    #[error("--tsa-url: the timestamp was not accepted: {0}")]
    Timestamp(#[from] TimestampError),
    #[error("--sign-key needs --sign-out FILE (where the signed report goes) or, for `verify`, --checkpoint FILE")]
    SignKeyUnused,
}

fn read(path: &Path) -> Result<Vec<u8>, ReportCliError> {
    std::fs::read(path).map_err(|source| ReportCliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn key_error(path: &Path) -> impl FnOnce(KeyError) -> ReportCliError + '_ {
    move |source| ReportCliError::Key {
        path: path.to_owned(),
        source,
    }
}

fn cert_error(path: &Path) -> impl FnOnce(CertError) -> ReportCliError + '_ {
    move |source| ReportCliError::Cert {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// The output of one `verify` run: started before the run so that a bad signing key stops it
/// before any work, and so that the run's clock starts with it.
pub struct Output<W: Write + Send> {
    format: Format,
    verbose: bool,
    out: Mutex<W>,
    /// The first write error of the JSONL stream, reported when the run ends.
    stream_error: Mutex<Option<io::Error>>,
    signer: Option<(Signer, PathBuf)>,
    /// The TSA to timestamp the signature with, and the certificate it must sign with.
    tsa: Option<(TsaUrl, Option<TsaCertificate>)>,
    started: Timestamp,
    /// A shard's stamp (`verify --plan`), put in the document.
    shard: Option<ShardStamp>,
    /// A merged report's stamp (`merge`), put in the document.
    merged: Option<MergeStamp>,
}

impl<W: Write + Send> Output<W> {
    pub fn new(
        format: Format,
        verbose: bool,
        sign: &SignArgs,
        checkpointing: bool,
        out: W,
    ) -> Result<Self, ReportCliError> {
        if sign.sign_key.is_some() && sign.sign_out.is_none() && !checkpointing {
            return Err(ReportCliError::SignKeyUnused);
        }
        let signer = match (&sign.sign_key, &sign.sign_out) {
            (Some(key_path), Some(out_path)) => {
                let key = SigningKey::from_pem(&read(key_path)?).map_err(key_error(key_path))?;
                let cert = match &sign.sign_cert {
                    Some(p) => Some(Certificate::from_pem(&read(p)?).map_err(cert_error(p))?),
                    None => None,
                };
                Some((Signer::new(key, cert)?, out_path.clone()))
            }
            _ => None,
        };
        let tsa = match &sign.tsa_url {
            Some(url) => {
                let cert = match &sign.tsa_cert {
                    Some(p) => Some(TsaCertificate::from_pem(&read(p)?).map_err(cert_error(p))?),
                    None => None,
                };
                Some((TsaUrl::parse(url)?, cert))
            }
            None => None,
        };
        Ok(Output {
            format,
            verbose,
            out: Mutex::new(out),
            stream_error: Mutex::new(None),
            signer,
            tsa,
            started: Timestamp::now(),
            shard: None,
            merged: None,
        })
    }

    /// The output of one shard of a plan: `stamp` goes into the report.
    pub fn shard(self, stamp: ShardStamp) -> Self {
        Output {
            shard: Some(stamp),
            ..self
        }
    }

    /// The output of `merge`: `stamp` goes into the report.
    pub fn merged(self, stamp: MergeStamp) -> Self {
        Output {
            merged: Some(stamp),
            ..self
        }
    }

    /// For JSONL, what the engine hands findings to as it decides them.
    pub fn sink(&self) -> Option<impl Fn(Option<&ChainInfo>, &[Finding]) + Sync + '_> {
        (self.format == Format::Jsonl).then_some(|chain: Option<&ChainInfo>, f: &[Finding]| {
            // A panic while holding the lock cannot leave a half-written line we would care
            // about: the run is over then.
            let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
            // Flushed per batch so a pipeline sees each chain when it is done.
            let written = jsonl::write_findings(&mut *out, chain, f).and_then(|()| out.flush());
            if let Err(e) = written {
                self.stream_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        })
    }

    /// Whether everything streamed so far was written out (and flushed).
    pub fn streamed_whole(&self) -> bool {
        self.stream_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Writes the report (the JSONL summary line), then the signed envelope if asked for.
    pub fn finish(self, report: &Report) -> Result<(), ReportCliError> {
        if let Some(e) = self
            .stream_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(ReportCliError::Output(e));
        }
        let doc = Document {
            shard: self.shard,
            merged: self.merged,
            ..Document::new(
                report,
                RunInfo {
                    started: self.started,
                    finished: Timestamp::now(),
                },
            )
        };
        let mut out = self
            .out
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match self.format {
            Format::Text => text::write(&mut out, report, self.verbose),
            Format::Json => json::write(&mut out, &doc),
            Format::Jsonl => jsonl::write_summary(&mut out, &doc),
            Format::Html => html::write(&mut out, &doc),
        }
        .and_then(|()| out.flush())
        .map_err(ReportCliError::Output)?;
        if let Some((signer, path)) = &self.signer {
            let mut envelope = signer.seal_envelope(&doc, statement::MAX_OBJECT_SUBJECTS)?;
            if let Some((url, pinned)) = &self.tsa {
                let request = timestamp::Request::new(envelope.signature(), &SystemRandom::new())?;
                let token = request.accept(&tsa::post(url, request.der())?, pinned.as_ref())?;
                eprintln!(
                    "trailproof: timestamped by {:?} at {} (checked against the request; `report verify --tsa-ca` checks the TSA)",
                    token.tsa().subject(),
                    format_iso(token.gen_time())
                );
                envelope.attach_timestamp(&token);
            }
            std::fs::write(path, envelope.to_bytes()).map_err(|source| ReportCliError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Syncs stdout to disk when it is a file (a pipe or a terminal has nothing to sync): what a
/// run streamed into a file is on disk before a checkpoint that moves past it is. Found by the
/// red team: the checkpoint was synced, the findings before it were not, and a power loss
/// could keep the one and lose the other.
pub fn sync_stdout() -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let file = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    if file.metadata()?.is_file() {
        file.sync_data()
    } else {
        Ok(())
    }
}

/// Runs `trailproof report ...`; returns the exit status.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<u8, ReportCliError> {
    match &args.command {
        ReportCommand::Verify(v) => verify(v, out),
    }
}

fn verify(args: &ReportVerifyArgs, out: &mut dyn Write) -> Result<u8, ReportCliError> {
    let envelope = read(&args.envelope)?;
    let (key, ca): (PublicKey, Certificate);
    let trust = match (&args.key, &args.ca) {
        (Some(p), _) => {
            key = PublicKey::from_pem(&read(p)?).map_err(key_error(p))?;
            Trust::Key(&key)
        }
        (None, Some(p)) => {
            ca = Certificate::from_pem(&read(p)?).map_err(cert_error(p))?;
            Trust::Ca(&ca)
        }
        // clap requires one of them; without either there is nothing to trust.
        (None, None) => return Ok(2),
    };
    let tsa_ca = match &args.tsa_ca {
        Some(p) => Some(TsaCertificate::from_pem(&read(p)?).map_err(cert_error(p))?),
        None => None,
    };
    let result = statement::verify(&envelope, trust, Timestamp::now());
    let time = result
        .as_ref()
        .ok()
        .and_then(|v| check_time(v, tsa_ca.as_ref()));
    print_verification(out, &args.envelope, &result, &time).map_err(ReportCliError::Output)?;
    Ok(match (&result, &time) {
        (Ok(_), None | Some(Ok(_))) => 0,
        _ => 1,
    })
}

/// Why a report's time is not trusted although a TSA CA was given.
#[derive(Debug, thiserror::Error)]
enum TimeError {
    #[error("the envelope has no timestamp token, and --tsa-ca asks for one")]
    NoToken,
    #[error(transparent)]
    Token(#[from] TimestampError),
}

/// With a TSA CA, the token's time if that CA vouches for its TSA. Nothing without a CA.
fn check_time<'a>(
    verified: &'a VerifiedReport,
    ca: Option<&TsaCertificate>,
) -> Option<Result<(TrustedTime, &'a timestamp::Token), TimeError>> {
    let ca = ca?;
    let Some(token) = &verified.timestamp else {
        return Some(Err(TimeError::NoToken));
    };
    Some(
        token
            .check_issued_by(ca)
            .map(|t| (t, token))
            .map_err(TimeError::from),
    )
}

/// The timestamp line: none when there is no token and no CA was given, so reports without
/// timestamps print exactly what they always did.
fn print_time(
    out: &mut dyn Write,
    verified: &VerifiedReport,
    time: &Option<Result<(TrustedTime, &timestamp::Token), TimeError>>,
) -> io::Result<()> {
    let accuracy = |t: &timestamp::Token| match t.accuracy() {
        Some(a) if !a.is_zero() => format!(" (accuracy {a:#})"),
        _ => String::new(),
    };
    match time {
        None => match &verified.timestamp {
            None => Ok(()),
            Some(t) => writeln!(
                out,
                "Timestamp\t{}{} claimed by TSA {:?}: NOT CHECKED, nothing vouches for this TSA (give --tsa-ca CA.pem)",
                format_iso(t.gen_time()),
                accuracy(t),
                t.tsa().subject()
            ),
        },
        Some(Ok((trusted, t))) => writeln!(
            out,
            "Timestamp\t{}{} by TSA {:?} (issued by {:?}), serial {}, policy {}: the report existed no later than this",
            format_iso(trusted.gen_time),
            accuracy(t),
            trusted.tsa,
            trusted.ca,
            t.serial(),
            t.policy(),
        ),
        Some(Err(e)) => writeln!(out, "Timestamp\tNOT TRUSTED: {e}"),
    }
}

fn tally(t: &Tally) -> String {
    format!(
        "{}/{} valid, {} invalid, {} not verified",
        t.valid,
        t.total(),
        t.invalid,
        t.not_verified
    )
}

fn print_verification(
    out: &mut dyn Write,
    path: &Path,
    result: &Result<VerifiedReport, ReportError>,
    time: &Option<Result<(TrustedTime, &timestamp::Token), TimeError>>,
) -> io::Result<()> {
    let v = match result {
        Err(e) => {
            writeln!(out, "Envelope\t{}\tNOT INTACT: {e}", path.display())?;
            return writeln!(out, "RESULT: the signed report cannot be trusted");
        }
        Ok(v) => v,
    };
    let r = &v.report;
    writeln!(out, "Envelope\t{}\tintact", path.display())?;
    write!(
        out,
        "Signed by\t{} key {}",
        r.signer.algorithm, r.signer.keyid
    )?;
    match &v.certificate {
        Some(c) => writeln!(out, ", certificate {:?}", c.subject())?,
        None => writeln!(out)?,
    }
    writeln!(out, "Report\t{} {}, {}", r.tool, r.version, r.schema)?;
    writeln!(
        out,
        "Run\t{} to {}",
        format_iso(r.run.started),
        format_iso(r.run.finished)
    )?;
    print_time(out, v, time)?;
    writeln!(out, "Source\t{} (bucket {})", r.source, r.bucket)?;
    writeln!(
        out,
        "Range\t{} to {}",
        format_iso(r.range.start),
        format_iso(r.range.end)
    )?;
    writeln!(out, "Chains\t{}", r.chains.len())?;
    writeln!(out, "Digests\t{}", tally(&r.totals.digests))?;
    writeln!(out, "Logs\t{}", tally(&r.totals.logs))?;
    // Reports of `verify-query-results` only.
    for (what, t) in [
        ("Sign files", &r.totals.query_sign_files),
        ("Query results", &r.totals.query_results),
        ("CloudWatch events", &r.totals.cloudwatch_events),
    ] {
        if !t.is_zero() {
            writeln!(out, "{what}\t{}", tally(t))?;
        }
    }
    // Reports of `crosscheck cloudwatch` only.
    if let Some(c) = &r.crosscheck {
        writeln!(
            out,
            "Crosscheck\tlog group {}: {} proven events in range, {} found unaltered, {} over 256 KB absent as expected",
            c.log_group, c.proven_events, c.matched, c.oversized_absent
        )?;
    }
    writeln!(
        out,
        "Gaps and coverage findings\t{}",
        r.totals.coverage_findings
    )?;
    let c = &r.ledger.counts;
    writeln!(
        out,
        "Ledger\t{} verified, {} verified-empty, {} gap, {} missing, {} invalid, {} not-verified of {} hours ({} chains)",
        c.verified,
        c.verified_empty,
        c.gap,
        c.missing,
        c.invalid,
        c.not_verified,
        r.ledger.hours,
        r.ledger.chains
    )?;
    writeln!(
        out,
        "Objects\t{} in the manifest; subjects: {}",
        r.manifest.len(),
        if v.manifest_subject {
            "the manifest's digest".to_owned()
        } else {
            format!("{} objects by SHA-256", v.subjects)
        }
    )?;
    writeln!(out, "Not proven\t{} items", r.not_proven.len())?;
    let verdict = if r.exit_code == 0 {
        "every object in range is valid"
    } else {
        "integrity findings"
    };
    let intact = match time {
        Some(Err(_)) => "intact, but its timestamp cannot be trusted",
        _ => "intact",
    };
    writeln!(
        out,
        "RESULT: the signed report is {intact}; it says: {verdict} (exit_code {})",
        r.exit_code
    )
}
