//! A record's provenance (the log files that carried it) and the JSONL output line that
//! carries it under the key `trailproof`.

use std::sync::Arc;

use serde::Serialize;

use crate::core::finding::Verdict;
use crate::core::types::{S3Location, Sha256};

/// One log file that carried a record, as the output's provenance names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    /// Where the log file was delivered.
    pub log: S3Location,
    /// SHA-256 of the inflated log file, as the digest lists it.
    pub log_sha256: Sha256,
    /// The digest that proves the file; `None` for a file no digest proves (only written with
    /// `--include-unverified`, then with a verdict other than valid).
    pub digest: Option<S3Location>,
    /// The log file's verdict.
    pub verdict: Verdict,
    /// The S3 version the bytes were read from, when known.
    pub version_id: Option<String>,
}

/// Where a record comes from: the log file it was taken from and every other file that
/// carried the same record (at-least-once delivery).
///
/// Written under the key `trailproof` as `{"log":"s3://…","log_sha256":"…","digest":"s3://…",
/// "verdict":"valid","version_id":"…","also":[{…}, …]}`; `digest` and `version_id` are left
/// out when unknown, `also` when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The file the written record is taken from: of all the carriers, the first with the
    /// best verdict. Shared: every record of a file has the same one.
    pub carrier: Arc<Carrier>,
    /// The other files that carried the same record, in the order they came.
    pub also: Vec<Arc<Carrier>>,
}

impl Provenance {
    /// The provenance of a record carried by one file.
    pub fn new(carrier: impl Into<Arc<Carrier>>) -> Self {
        Provenance {
            carrier: carrier.into(),
            also: Vec::new(),
        }
    }

    /// Every file that carried the record: [`Self::carrier`], then [`Self::also`].
    pub fn carriers(&self) -> impl Iterator<Item = &Carrier> {
        std::iter::once(&*self.carrier).chain(self.also.iter().map(|c| &**c))
    }

    /// Adds the carriers of `other` (the same record delivered again). A carrier with a
    /// better verdict ([`Verdict`] orders best first) becomes [`Self::carrier`]; a carrier
    /// already listed is not listed twice.
    pub fn merge(&mut self, other: Provenance) {
        for c in std::iter::once(other.carrier).chain(other.also) {
            if self.carriers().any(|have| *have == *c) {
                continue;
            }
            if c.verdict < self.carrier.verdict {
                let was = std::mem::replace(&mut self.carrier, c);
                self.also.insert(0, was);
            } else {
                self.also.push(c);
            }
        }
    }
}

#[derive(Serialize)]
struct CarrierWire<'p> {
    log: String,
    log_sha256: Sha256,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<&'p str>,
}

impl<'p> CarrierWire<'p> {
    fn of(c: &'p Carrier) -> Self {
        CarrierWire {
            log: c.log.uri(),
            log_sha256: c.log_sha256,
            digest: c.digest.as_ref().map(S3Location::uri),
            verdict: c.verdict,
            version_id: c.version_id.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct ProvenanceWire<'p> {
    #[serde(flatten)]
    carrier: CarrierWire<'p>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<CarrierWire<'p>>,
}

/// Why an output line could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The record's text does not start with `{` and end with `}` (never so for a
    /// [`Record::raw`](super::Record::raw)).
    #[error("the record is not a JSON object")]
    NotAnObject,
    /// serde_json failed to write the provenance (it does not for these types).
    #[error("cannot write the provenance: {detail}")]
    Provenance {
        /// serde_json's message.
        detail: String,
    },
}

/// Appends one JSONL line to `out`: the record's text with `,"trailproof":{…}` (see
/// [`Provenance`]) inserted before its closing `}`, then `\n`.
///
/// The record's own bytes are kept, with one exception: a line break between two tokens
/// (never inside a string: JSON strings cannot hold one) becomes a space, so that the line is
/// one line. CloudTrail writes records without any. Whitespace before the closing brace stays
/// where it was; an empty object gets no comma.
pub fn write_line(
    out: &mut Vec<u8>,
    record: &str,
    provenance: &Provenance,
) -> Result<(), LineError> {
    write_line_with(out, record, &provenance_json(provenance)?)
}

/// The provenance as the value of a line's `trailproof` key (compact JSON).
pub fn provenance_json(provenance: &Provenance) -> Result<Vec<u8>, LineError> {
    let wire = ProvenanceWire {
        carrier: CarrierWire::of(&provenance.carrier),
        also: provenance.also.iter().map(|c| CarrierWire::of(c)).collect(),
    };
    serde_json::to_vec(&wire).map_err(|e| LineError::Provenance {
        detail: e.to_string(),
    })
}

/// [`write_line`] with the provenance already made by [`provenance_json`] (a writer may keep
/// it for the next record of the same file).
pub fn write_line_with(
    out: &mut Vec<u8>,
    record: &str,
    trailproof: &[u8],
) -> Result<(), LineError> {
    let text = record.as_bytes().trim_ascii();
    let body = text
        .strip_prefix(b"{")
        .and_then(|t| t.strip_suffix(b"}"))
        .ok_or(LineError::NotAnObject)?;
    out.reserve(text.len() + trailproof.len() + 16);
    out.push(b'{');
    // CloudTrail's records have no line breaks: copied whole (one SIMD search for both and a
    // memcpy), not byte by byte.
    if memchr::memchr2(b'\n', b'\r', body).is_some() {
        out.extend(
            body.iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(body);
    }
    if !body.trim_ascii().is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"trailproof\":");
    out.extend_from_slice(trailproof);
    out.extend_from_slice(b"}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::testutil::{carrier, generated_logs};
    use crate::core::records::{parse_records, RecordLimits};

    fn line(record: &str, p: &Provenance) -> String {
        let mut out = Vec::new();
        write_line(&mut out, record, p).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn output_line_is_the_record_plus_trailproof() {
        for log in generated_logs().iter().take(3) {
            for r in parse_records(log, RecordLimits::LOG).unwrap() {
                let mut c = carrier(1, Verdict::Valid);
                c.version_id = Some("v\"1".into());
                let p = Provenance::new(c);
                let text = line(r.raw(), &p);
                assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
                // The record's bytes come first, unchanged.
                assert!(text.starts_with(&r.raw()[..r.raw().len() - 1]));
                let mut got: serde_json::Value = serde_json::from_str(&text).unwrap();
                let prov = got.as_object_mut().unwrap().remove("trailproof").unwrap();
                let want: serde_json::Value = serde_json::from_str(r.raw()).unwrap();
                assert_eq!(got, want);
                assert_eq!(
                    prov,
                    serde_json::json!({
                        "log": "s3://b/AWSLogs/1/CloudTrail/r/2024/01/01/f1.json.gz",
                        "log_sha256": Sha256([1; 32]).to_hex(),
                        "digest": "s3://b/AWSLogs/1/CloudTrail-Digest/d1.json.gz",
                        "verdict": "valid",
                        "version_id": "v\"1",
                    })
                );
            }
        }
    }

    #[test]
    fn output_line_edge_cases() {
        let mut c = carrier(2, Verdict::NotVerified);
        c.digest = None;
        let p = Provenance::new(c);
        let tp = r#""trailproof":{"log":"s3://b/AWSLogs/1/CloudTrail/r/2024/01/01/f2.json.gz","log_sha256":"0202020202020202020202020202020202020202020202020202020202020202","verdict":"not_verified"}"#;
        assert_eq!(line("{}", &p), format!("{{{tp}}}\n"));
        assert_eq!(line(" { \t } ", &p), format!("{{ \t {tp}}}\n"));
        assert_eq!(line(r#"{"a":1 }"#, &p), format!("{{\"a\":1 ,{tp}}}\n"));
        assert_eq!(
            line("{\"a\":\n1\r\n}", &p),
            format!("{{\"a\": 1  ,{tp}}}\n")
        );
        let mut out = Vec::new();
        for bad in ["", "[]", "{", "}", "\"{}\""] {
            assert_eq!(write_line(&mut out, bad, &p), Err(LineError::NotAnObject));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn provenance_merge_keeps_the_best_carrier_first_and_lists_each_once() {
        let mut p = Provenance::new(carrier(1, Verdict::NotVerified));
        p.merge(Provenance::new(carrier(2, Verdict::Valid)));
        p.merge(Provenance::new(carrier(3, Verdict::Valid)));
        p.merge(Provenance::new(carrier(2, Verdict::Valid)));
        let order: Vec<u8> = p.carriers().map(|c| c.log_sha256.0[0]).collect();
        assert_eq!(order, [2, 1, 3]);
        let text = line("{}", &p);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["trailproof"]["verdict"], "valid");
        assert_eq!(v["trailproof"]["also"].as_array().unwrap().len(), 2);
        assert_eq!(v["trailproof"]["also"][0]["verdict"], "not_verified");
    }
}
