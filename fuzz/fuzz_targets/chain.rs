//! The chain walker on a handful of digests built from structured input: links to present,
//! missing, foreign and nonsense digests, wrong hashes, moved and unreadable digests, key
//! windows, gaps and ranges.
//!
//! Signatures: the fuzz build of `PublicKey::verify` accepts every non-empty signature (see
//! `src/core/sign.rs`), so a digest verifies when its fingerprint names a pinned key valid at
//! its time and some non-empty signature is offered for it.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;
use trailproof::core::chain::{walk, ContentProblem, DigestCandidate, DigestStatus, Range};
use trailproof::core::digest::ParsedDigest;
use trailproof::core::evidence::GenerationTime;
use trailproof::core::finding::{Kind, Verdict};
use trailproof::core::keyfile::parse_key_file;
use trailproof::core::layout::{DigestKey, Scope};
use trailproof::core::ledger::{HourState, Ledger, Span};
use trailproof::core::sign::KeySet;
use trailproof::core::{S3Location, Sha256};

const BUCKET: &str = "trail-bucket";
const MAX_DIGESTS: usize = 8;
#[derive(Arbitrary, Debug)]
struct Input {
    epoch: Epoch,
    backfill: bool,
    range: RangeSpec,
    digests: Vec<Spec>,
}

/// Where hour 0 is.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Epoch {
    /// 2026-01-01T00:00:00Z. The pinned keys' windows end 5 and 25 days later, so hour
    /// offsets up to 255 reach keys that are no longer valid.
    Now,
    /// Hour 255 ends just before the last second jiff can represent (late 9999-12-30): hostile
    /// digests may carry any time `parse_iso` accepts, and the walker adds slack to them.
    EndOfTime,
    /// Hour 0 is the first second jiff can represent (-009999-01-02T01:59:59Z): a backfill
    /// generation time there is unsigned S3 metadata, and the engine subtracts slack from it.
    StartOfTime,
}

impl Epoch {
    fn second(self) -> i64 {
        match self {
            Epoch::Now => 1_767_225_600,
            Epoch::EndOfTime => Timestamp::MAX.as_second() - 255 * 3600 - 4 * 60 - 4 - 60,
            Epoch::StartOfTime => Timestamp::MIN.as_second(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RangeSpec {
    start_hour: u8,
    hours: u8,
    start_requested: bool,
    end_requested: bool,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    /// The key's end time, in hours after `BASE`.
    hour: u8,
    content: Content,
    /// `Some(0)`: an empty signature, which never verifies.
    signature: Option<u8>,
    backfill_generated: Generation,
}

/// A backfill digest's generation time as its S3 metadata states it.
#[derive(Arbitrary, Debug)]
enum Generation {
    Unknown,
    /// In hours after `BASE`: before, at or after the digest's end.
    Stated(u8),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Content {
    Ok(Body),
    Format { listed: u8 },
    Unreadable,
    PathEscape,
}

#[derive(Arbitrary, Debug)]
struct Body {
    /// `digestStartTime` this many hours (mod 4) before the end.
    length: u8,
    /// Non-zero: `digestEndTime` disagrees with the key by this many minutes.
    end_shift_minutes: i8,
    delivered_to: Delivered,
    /// Index into the pinned keys' fingerprints; one past them is an unknown key.
    fingerprint: u8,
    link: Option<Link>,
    log_files: u8,
}

#[derive(Arbitrary, Debug)]
enum Delivered {
    Here,
    OtherHour(u8),
    OtherBucket,
}

#[derive(Arbitrary, Debug)]
struct Link {
    target: Target,
    /// Whether `previousDigestHashValue` is the target's real hash (when it has one).
    right_hash: bool,
    /// 0: the target's own signature; otherwise this byte repeated.
    signature: u8,
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// One of the digests built before this one (by index, modulo their count).
    Built(u8),
    /// A digest of this chain at that hour, usually absent.
    Hour(u8),
    OtherBucket(u8),
    /// Same account and Region, another trail.
    OtherChain(u8),
    /// A key that is no digest key at all.
    Garbage,
}

fn keys() -> &'static (KeySet, Vec<String>) {
    static KEYS: OnceLock<(KeySet, Vec<String>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let set = parse_key_file(include_bytes!(
            "../../testdata/cases/clean-plain/public-keys.json"
        ))
        .expect("the test key file parses");
        let fps = set.iter().map(|k| k.fingerprint().to_string()).collect();
        (set, fps)
    })
}

fn at_hour(epoch: Epoch, hour: u8) -> Timestamp {
    // Minutes past the hour as CloudTrail's are: not on the hour.
    Timestamp::from_second(epoch.second() + i64::from(hour) * 3600 + 4 * 60 + 4).expect("in range")
}

/// `t + d`, or the last whole second there is.
fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or_else(|_| {
        Timestamp::from_second(Timestamp::MAX.as_second()).expect("the last second")
    })
}

fn key(epoch: Epoch, trail: &str, hour: u8, backfill: bool) -> DigestKey {
    DigestKey {
        scope: Scope {
            prefix: String::new(),
            organization: None,
            account: "111122223333".into(),
            region: "us-east-1".into(),
        },
        trail: trail.into(),
        home_region: "us-east-1".into(),
        end_time: at_hour(epoch, hour),
        backfill,
    }
}

fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn log_location(i: u8) -> S3Location {
    S3Location::new(
        BUCKET,
        format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0000Z_AbCdEfGh1234567{}.json.gz", i % 10),
    )
}

/// What a built digest offers to the digests linking to it.
struct Built {
    location: S3Location,
    sha: Option<Sha256>,
    signature: Option<Vec<u8>>,
}

fn body_json(
    epoch: Epoch,
    body: &Body,
    key: &DigestKey,
    backfill: bool,
    built: &[Built],
    fingerprints: &[String],
) -> Vec<u8> {
    let end = add(
        key.end_time,
        SignedDuration::from_mins(i64::from(body.end_shift_minutes)),
    );
    // The first epoch lies at the start of time: saturate as the walker must.
    let start = end
        .checked_sub(SignedDuration::from_hours(i64::from(body.length % 4)))
        .unwrap_or(Timestamp::MIN);
    let object = match body.delivered_to {
        Delivered::Here | Delivered::OtherBucket => key.format(),
        Delivered::OtherHour(h) => self::key(epoch, "trail1", h, backfill).format(),
    };
    let bucket = match body.delivered_to {
        Delivered::OtherBucket => "other-bucket",
        _ => BUCKET,
    };
    let fingerprint = fingerprints
        .get(usize::from(body.fingerprint) % (fingerprints.len() + 1))
        .cloned()
        .unwrap_or_else(|| "0".repeat(32));
    let link = body.link.as_ref().map(|l| {
        let (location, sha, own_signature) = match l.target {
            Target::Built(i) if !built.is_empty() => {
                let b = &built[usize::from(i) % built.len()];
                (b.location.clone(), b.sha, b.signature.clone())
            }
            Target::Built(h) | Target::Hour(h) => (
                S3Location::new(BUCKET, self::key(epoch, "trail1", h, backfill).format()),
                None,
                None,
            ),
            Target::OtherBucket(h) => (
                S3Location::new(
                    "other-bucket",
                    self::key(epoch, "trail1", h, backfill).format(),
                ),
                None,
                None,
            ),
            Target::OtherChain(h) => (
                S3Location::new(BUCKET, self::key(epoch, "trail2", h, backfill).format()),
                None,
                None,
            ),
            Target::Garbage => (S3Location::new(BUCKET, "not/a/digest.json.gz"), None, None),
        };
        let hash = match sha {
            Some(sha) if l.right_hash => sha.to_hex(),
            _ => "ab".repeat(32),
        };
        let signature = match own_signature {
            Some(s) if l.signature == 0 && !s.is_empty() => s,
            _ => vec![l.signature.max(1); 8],
        };
        (location, hash, signature)
    });
    let (pb, po, ph, pa, ps) = match &link {
        Some((loc, hash, sig)) => (
            serde_json::json!(loc.bucket),
            serde_json::json!(loc.key),
            serde_json::json!(hash),
            serde_json::json!("SHA-256"),
            serde_json::json!(hex(sig)),
        ),
        None => Default::default(),
    };
    let log_files: Vec<_> = (0..body.log_files % 3)
        .map(|i| {
            let l = log_location(i);
            serde_json::json!({
                "s3Bucket": l.bucket, "s3Object": l.key, "hashValue": "cd".repeat(32),
                "hashAlgorithm": "SHA-256", "newestEventTime": iso(end), "oldestEventTime": iso(start),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "awsAccountId": "111122223333",
        "digestStartTime": iso(start),
        "digestEndTime": iso(end),
        "digestS3Bucket": bucket,
        "digestS3Object": object,
        "digestPublicKeyFingerprint": fingerprint,
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": null,
        "oldestEventTime": null,
        "previousDigestS3Bucket": pb,
        "previousDigestS3Object": po,
        "previousDigestHashValue": ph,
        "previousDigestHashAlgorithm": pa,
        "previousDigestSignature": ps,
        "logFiles": log_files,
    }))
    .expect("serialising JSON values")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|input: Input| {
    let (keys, fingerprints) = keys();
    let mut specs = input.digests;
    specs.truncate(MAX_DIGESTS);
    // Oldest first, so that `Target::Built` links point back in time as real links do.
    specs.sort_by_key(|s| s.hour);

    let mut built: Vec<Built> = Vec::new();
    let mut candidates = Vec::new();
    for spec in &specs {
        let key = key(input.epoch, "trail1", spec.hour, input.backfill);
        let location = S3Location::new(BUCKET, key.format());
        let content = match &spec.content {
            Content::Ok(body) => {
                let raw = body_json(
                    input.epoch,
                    body,
                    &key,
                    input.backfill,
                    &built,
                    fingerprints,
                );
                ParsedDigest::parse(&raw).map_err(|e| ContentProblem::Format {
                    detail: e.to_string(),
                    listed: Vec::new(),
                })
            }
            Content::Format { listed } => Err(ContentProblem::Format {
                detail: "fuzz".into(),
                listed: (0..listed % 3).map(log_location).collect(),
            }),
            Content::Unreadable => Err(ContentProblem::Unreadable("fuzz".into())),
            Content::PathEscape => Err(ContentProblem::PathEscape("fuzz".into())),
        };
        let signature = spec.signature.map(|s| vec![s; usize::from(s.min(1)) * 8]);
        built.push(Built {
            location: location.clone(),
            sha: content.as_ref().ok().map(ParsedDigest::sha256),
            signature: signature.clone(),
        });
        candidates.push(DigestCandidate {
            location,
            key,
            content,
            signature,
            backfill_generated: match spec.backfill_generated {
                Generation::Unknown => GenerationTime::Unknown,
                Generation::Stated(h) => GenerationTime::Stated(at_hour(input.epoch, h)),
                Generation::Missing => GenerationTime::Missing {
                    detail: "fuzz".into(),
                },
            },
        });
    }

    let start = at_hour(input.epoch, input.range.start_hour);
    let range = Range {
        start,
        end: add(
            start,
            SignedDuration::from_hours(i64::from(input.range.hours)),
        ),
        start_requested: input.range.start_requested,
        end_requested: input.range.end_requested,
    };
    let chain = key(input.epoch, "trail1", 0, input.backfill).chain();
    // The engine keeps the digests the range holds; that check must not fail either.
    for c in &candidates {
        let _ = range.holds_digest(c.key.end_time);
    }

    // Per location: how many candidates there are, and how many have content.
    let mut given: HashMap<S3Location, (usize, usize)> = HashMap::new();
    for c in &candidates {
        let e = given.entry(c.location.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(c.content.is_ok());
    }

    let walked_chain = walk(&chain, candidates, keys, range);
    let walked = &walked_chain.digests;

    // The ledger adds up, and silence is never a verdict: a hole inside the range always comes
    // with a finding that is not `valid`.
    let mut spans = walked_chain.holes.clone();
    spans.extend(walked.iter().map(|w| Span {
        from: w.window.0,
        to: w.window.1,
        state: if matches!(w.status, DigestStatus::Verified(_)) && !w.context {
            HourState::Verified
        } else {
            HourState::NotVerified
        },
    }));
    let (from, to) = walked_chain.extent;
    let ledger = Ledger::of(from, to, &spans);
    assert_eq!(
        ledger.hours,
        ledger.counts.total(),
        "ledger does not add up"
    );
    assert!(from <= to, "extent runs backwards");
    let said = walked
        .iter()
        .flat_map(|w| w.findings.iter())
        .any(|f| f.verdict != Verdict::Valid);
    // Within what the chain answers for (the range, or within an hour of an end taken from the
    // evidence).
    for hole in &walked_chain.holes {
        assert!(!hole.state.is_proven(), "a hole counted as proven");
        if hole.from.max(from) < hole.to.min(to) {
            assert!(said, "a hole in the range with no finding: {hole:?}");
        }
    }

    let mut seen: HashMap<S3Location, (usize, usize)> = HashMap::new();
    for w in walked {
        let valid = w.findings.iter().filter(|f| f.kind == Kind::DigestValid);
        let mut valid_count = 0;
        for f in valid {
            assert_eq!(
                f.subject,
                w.location.uri(),
                "digest_valid about another digest"
            );
            valid_count += 1;
        }
        assert!(
            valid_count <= 1,
            "two digest_valid findings for {}",
            w.location
        );
        if let DigestStatus::Verified(v) = &w.status {
            // The key was valid at some time the digest allows, never before its signed end
            // (a backfill digest's unsigned generation time cannot move that).
            let signed = v.signed();
            let key = keys
                .get(v.fingerprint())
                .expect("verified with a pinned key");
            assert!(
                signed.earliest >= v.digest().end
                    && key.valid_from <= signed.latest
                    && key.valid_to >= signed.earliest,
                "{}: key {}..{} accepted for {signed:?}",
                w.location,
                key.valid_from,
                key.valid_to
            );
        }
        let verified = matches!(w.status, DigestStatus::Verified(_));
        assert!(
            valid_count == 0 || verified,
            "digest_valid without a verified signature"
        );
        let e = seen.entry(w.location.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(verified);
    }
    for (location, (out, verified)) in &seen {
        let (count, with_content) = given.get(location).copied().unwrap_or_default();
        assert_eq!(
            *out, count,
            "{location} in the output {out} times, given {count}"
        );
        assert!(
            *verified <= with_content,
            "{location}: {verified} verified, only {with_content} had content"
        );
    }
    assert_eq!(walked.len(), given.values().map(|v| v.0).sum::<usize>());
});
