//! The text output of `verify-query-results`, in the words of `aws cloudtrail
//! verify-query-results` (AWS CLI v2) where it has them.
//!
//! All valid: `Successfully validated sign and query result files` on its own line (stdout),
//! as the AWS CLI prints it. Otherwise one line per finding that is not valid, on the error
//! stream, prefixed `ValidationError: ` as the AWS CLI's exception is; where the AWS CLI stops
//! at the first problem, every one is printed. With `verbose`, each valid file first, as
//! `Sign file\tURI\tvalid` or `Query result file\tURI\tvalid` (stdout). Keys and reasons come
//! from the evidence and are printed with control characters escaped.
use std::io::{self, Write};

use super::{field, printable, Report};
use crate::core::finding::{Finding, Kind, ObjectKind, Verdict};
use crate::core::lake::SignFileError;

/// The AWS CLI's success line.
pub const SUCCESS: &str = "Successfully validated sign and query result files";

/// Writes `report` (of a `verify-query-results` run); answers whether everything was valid.
pub fn write(
    out: &mut dyn Write,
    err: &mut dyn Write,
    report: &Report,
    verbose: bool,
) -> io::Result<bool> {
    let all_valid = report.exit_code() == 0;
    for f in report.all_findings() {
        if f.verdict == Verdict::Valid {
            if verbose {
                let object = match f.object() {
                    ObjectKind::QuerySign => "Sign file",
                    _ => "Query result file",
                };
                writeln!(out, "{object}\t{}\tvalid", printable(&field(&f.subject)))?;
            }
            continue;
        }
        writeln!(err, "{}", printable(&line(f)))?;
    }
    if all_valid {
        writeln!(out, "{SUCCESS}")?;
    }
    Ok(all_valid)
}

/// One finding as the AWS CLI would word it.
fn line(f: &Finding) -> String {
    let name = f.subject.rsplit('/').next().unwrap_or(&f.subject);
    let hashes = (f.evidence.expected_sha256, f.evidence.actual_sha256);
    let mut line = match (f.kind, hashes) {
        (Kind::QueryResultHashMismatch, (Some(e), Some(a))) => format!(
            "ValidationError: File {name} has inconsistent hash value with hash value recorded in sign file, hash value in sign file is {e} , but get {a}"
        ),
        (Kind::QuerySignSignatureInvalid, _) => {
            "ValidationError: Invalid signature in sign file".to_owned()
        }
        (Kind::QuerySignKeyUnknown, _) => match &f.evidence.fingerprint {
            Some(fp) => format!("No public keys found for key with fingerprint: {fp}"),
            None => format!("ValidationError: {}", f.reason),
        },
        (Kind::QuerySignFormat, _)
            if f.evidence.detail.as_deref() == Some(&SignFileError::NoFiles.to_string()) =>
        {
            return "ValidationError: No export file was found in sign file.".to_owned();
        }
        _ => {
            let object = match f.object() {
                ObjectKind::QuerySign => "Sign file",
                _ => "File",
            };
            format!("ValidationError: {object} {}: {}", f.subject, f.reason)
        }
    };
    if let Some(detail) = &f.evidence.detail {
        line.push_str(&format!(" ({detail})"));
    }
    line
}
