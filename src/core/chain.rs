//! Walking one digest chain: signatures, links, missing digests, gaps and coverage.
//!
//! The walker gets every digest of one chain that lies in the requested range, and the nearest
//! one on either side of it (already read and inflated by the engine), and decides each one's
//! verdict. It goes from the newest digest
//! back in time. A digest's signature may come from its S3 metadata or from the
//! `previousDigestSignature` of the digest that links to it: an RSA signature that verifies
//! under a CloudTrail key authenticates the digest whatever carried it, so a plain copy of a
//! bucket is verifiable except for the newest digest of each unbroken segment.
//!
//! Beyond what `aws cloudtrail validate-logs` checks, every link is checked against the bytes
//! and signature of the digest it names, every missing digest is named (or, when two or more
//! in a row are gone, the one before the hole is), and gaps and uncovered ends of the range
//! are reported as periods.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::digest::{LogFiles, ParsedDigest, PreviousLink};
use super::evidence::GenerationTime;
use super::finding::{Evidence, Finding, Kind};
use super::layout::{parse_key, ChainId, CloudTrailKey, DigestKey};
use super::ledger::{HourState, Span};
use super::sign::{
    verify_digest, KeySet, SignatureFailure, SigningBasis, SigningTime, VerifiedDigest,
};
use super::time::{earlier, format_iso, later};
use super::types::S3Location;
use super::verify::signing_time;

/// Digests are hourly; a hole longer than this between two digests means one is gone.
const SLACK: SignedDuration = SignedDuration::from_mins(90);
const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// The requested time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Log files delivered from this time on are in the range.
    pub start: Timestamp,
    /// Log files delivered up to this time are in the range.
    pub end: Timestamp,
    /// Whether the user asked for these ends. An end taken from the evidence (the oldest or
    /// newest digest of any chain) binds each chain only to within an hour (see `extent`).
    pub start_requested: bool,
    /// Whether the user asked for the end (see `start_requested`).
    pub end_requested: bool,
}

impl Range {
    /// Digests ending up to an hour after the range also cover log files delivered inside it.
    pub fn holds_digest(&self, key_time: Timestamp) -> bool {
        key_time >= self.start && key_time <= later(self.end, HOUR)
    }
}

/// Why a digest's content could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentProblem {
    /// Not gzip, not JSON, or not the digest shape. `listed` holds the log files it names if
    /// its JSON could still be read, so they are reported as unverifiable rather than unknown.
    Format {
        /// What is wrong with it.
        detail: String,
        /// The log files it still names.
        listed: Vec<S3Location>,
    },
    /// The source failed to read it (I/O, permissions).
    Unreadable(String),
    /// Its path leaves the evidence directory.
    PathEscape(String),
    /// Not in the evidence, though the source's own records say it was (a local copy's
    /// evidence-metadata file names it): deleted since acquisition.
    Gone(String),
    /// In an archive storage class (the storage class): it must be restored to be read.
    Archived(String),
}

/// One digest as the source found it.
#[derive(Debug, Clone)]
pub struct DigestCandidate {
    /// Where it was read.
    pub location: S3Location,
    /// Its key, parsed: the chain and the time it belongs to.
    pub key: DigestKey,
    /// Its parsed content (log list set aside or not), or why there is none.
    pub content: Result<ParsedDigest, ContentProblem>,
    /// Its own signature (S3 metadata or given by the user), if known.
    pub signature: Option<Vec<u8>>,
    /// For backfill digests: when CloudTrail generated it, as S3 metadata says (unsigned).
    pub backfill_generated: GenerationTime,
}

/// What the walk decided about one digest.
#[derive(Debug, Clone)]
pub enum DigestStatus {
    /// Signature verified: its log-file hashes can be trusted.
    Verified(Box<VerifiedDigest>),
    /// Not verified, or disproven; the log files it lists cannot be verified through it.
    Unverified {
        /// The log files it names, as far as they can be known.
        listed: Listed,
    },
}

/// The log files an unverified digest names, as far as they can be known.
#[derive(Debug, Clone)]
pub enum Listed {
    /// Named here: a malformed digest's lenient listing, or none for an unreadable one.
    Names(Vec<S3Location>),
    /// In the digest's own list, which was set aside ([`LogFiles`]): read it again to name
    /// them.
    SetAside(Box<ParsedDigest>),
}

/// One digest after the walk, with every finding about it or attached to it.
#[derive(Debug, Clone)]
pub struct WalkedDigest {
    /// Where it was read.
    pub location: S3Location,
    /// Its key, parsed.
    pub key: DigestKey,
    /// Whether it was verified, with what it vouches for.
    pub status: DigestStatus,
    /// Every finding about it, and those about others that the walk attached to it (a missing
    /// neighbour, a gap, a hole in coverage).
    pub findings: Vec<Finding>,
    /// The delivery window it accounts for: a verified digest's own (reaching back to the
    /// digest its link names, when that one is present), otherwise the hour before its key time
    /// (an unverified digest's fields are not believed).
    pub window: (Timestamp, Timestamp),
    /// Outside the range: read only to decide the range's edges (the nearest digest before the
    /// start and after the end, whose links name what is missing at the edges). It is not
    /// reported as an object and its log files are not checked; only findings about other
    /// objects or periods stay on it.
    pub context: bool,
}

/// One chain after the walk.
#[derive(Debug, Clone)]
pub struct WalkedChain {
    /// Newest first.
    pub digests: Vec<WalkedDigest>,
    /// Standard chains: the stretches of the timeline no digest accounts for, in the state
    /// they are in (a signed restart is a `gap`; digests that are gone leave `missing`), at
    /// the range ends too. Empty for backfill chains, which cover late deliveries rather than
    /// a stretch of time. With the digests' windows they make up the chain's ledger.
    pub holes: Vec<Span>,
    /// The part of the range the chain answers for: the requested ends, or where the evidence
    /// starts and ends when an end was not requested.
    pub extent: (Timestamp, Timestamp),
    /// Standard chains: the range holds nothing of the chain. No digest of it is in the range,
    /// and its newest digest before the range ends within the hour before an end taken from
    /// the evidence: a run that took the chain up after that digest (a checkpoint moved on
    /// chain by chain) has nothing new to say of its hours, and makes no ledger of them.
    pub caught_up: bool,
}

/// Walks one chain. `candidates` may come in any order; digests outside the range (see
/// [`WalkedDigest::context`]) may be among them.
pub fn walk(
    chain: &ChainId,
    mut candidates: Vec<DigestCandidate>,
    keys: &KeySet,
    range: Range,
) -> WalkedChain {
    candidates.sort_by(|a, b| {
        b.key
            .end_time
            .cmp(&a.key.end_time)
            .then_with(|| b.location.cmp(&a.location))
    });
    let index: HashMap<&S3Location, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.location, i))
        .collect();
    let incoming = incoming(&candidates, &index);
    let (mut walked, trusted) = judge_all(chain, &candidates, &incoming, keys, range);
    let names_missing = link_findings(chain, &candidates, &index, &trusted, &mut walked, range);
    set_windows(&candidates, &index, &trusted, &mut walked);
    let (extent, caught_up) = extent(&walked, range);
    let holes = if chain.backfill || caught_up {
        Vec::new()
    } else {
        continuity_findings(&candidates, &incoming, &trusted, &mut walked);
        holes(
            &candidates,
            &trusted,
            &names_missing,
            &mut walked,
            range,
            extent,
        )
    };
    for w in &mut walked {
        settle(w);
    }
    WalkedChain {
        digests: walked,
        holes,
        extent,
        caught_up: caught_up && !chain.backfill,
    }
}

/// For each digest (newest first), the newer digests whose link names it.
fn incoming(
    candidates: &[DigestCandidate],
    index: &HashMap<&S3Location, usize>,
) -> Vec<Vec<usize>> {
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    for (j, c) in candidates.iter().enumerate() {
        if let Some(link) = c.content.as_ref().ok().and_then(|d| d.previous.as_ref()) {
            if let Some(&i) = index.get(&link.location) {
                if i > j {
                    if let Some(list) = incoming.get_mut(i) {
                        list.push(j);
                    }
                }
            }
        }
    }
    incoming
}

/// Judges every digest, newest first, each on what the already judged newer digests that
/// link to it say. Answers, per digest, whether its own link fields may be believed
/// (readable, in place, not disproven).
fn judge_all(
    chain: &ChainId,
    candidates: &[DigestCandidate],
    incoming: &[Vec<usize>],
    keys: &KeySet,
    range: Range,
) -> (Vec<WalkedDigest>, Vec<bool>) {
    let mut walked: Vec<WalkedDigest> = Vec::with_capacity(candidates.len());
    let mut trusted: Vec<bool> = Vec::with_capacity(candidates.len());
    for (i, cand) in candidates.iter().enumerate() {
        let successors = incoming.get(i).map(Vec::as_slice).unwrap_or_default();
        let vouching: Vec<(usize, &ParsedDigest)> = successors
            .iter()
            .filter(|&&j| trusted.get(j).copied().unwrap_or(false))
            .filter_map(|&j| {
                candidates
                    .get(j)
                    .and_then(|c| c.content.as_ref().ok())
                    .map(|d| (j, d))
            })
            .collect();
        let signatures_from_successors: Vec<&[u8]> = successors
            .iter()
            .filter_map(|&j| candidates.get(j))
            .filter_map(|c| c.content.as_ref().ok()?.previous.as_ref())
            .map(|l| l.signature.as_slice())
            .collect();
        let (mut w, is_trusted) = judge(chain, cand, &vouching, &signatures_from_successors, keys);
        w.context = !range.holds_digest(cand.key.end_time);
        walked.push(w);
        trusted.push(is_trusted);
    }
    (walked, trusted)
}

/// A digest's findings once the walk is done: a context digest keeps only what it says about
/// others (it is not an object of this run); a verified digest that no finding judges is
/// valid, said first.
fn settle(w: &mut WalkedDigest) {
    let own = w.location.uri();
    if w.context {
        w.findings
            .retain(|f| !(f.kind.judges_subject() && f.subject == own));
        return;
    }
    let judged = w
        .findings
        .iter()
        .any(|f| f.kind.judges_subject() && f.subject == own);
    let DigestStatus::Verified(v) = &w.status else {
        return;
    };
    if judged {
        return;
    }
    let evidence = Evidence {
        // The digest's own hash, so a report's manifest can name it.
        actual_sha256: Some(v.digest().sha256()),
        fingerprint: Some(v.fingerprint().clone()),
        from: Some(v.digest().start),
        to: Some(v.digest().end),
        signing_time: backfill_basis(v.signed()),
        ..Evidence::default()
    };
    // First, in a list no longer than it needs to be: a run holds every digest's.
    let mut findings = Vec::with_capacity(w.findings.len() + 1);
    findings.push(Finding::new(own, Kind::DigestValid, "valid").with(evidence));
    findings.append(&mut w.findings);
    w.findings = findings;
}

/// Decides one digest on its own and on what the digests linking to it say about it. Answers
/// whether its own link fields may be believed.
fn judge(
    chain: &ChainId,
    cand: &DigestCandidate,
    vouching: &[(usize, &ParsedDigest)],
    signatures_from_successors: &[&[u8]],
    keys: &KeySet,
) -> (WalkedDigest, bool) {
    let parsed = match &cand.content {
        Ok(parsed) => parsed,
        Err(problem) => return (content_problem(cand, problem), false),
    };
    if let Some(f) = moved(cand, parsed) {
        return (judged(cand, unverified(parsed), vec![f]), false);
    }
    let mut findings = link_mismatches(cand, parsed, vouching);
    // Backfill metadata CloudTrail cannot have written means the object was rewritten: an
    // "invalid format" finding, as the AWS CLI reports it.
    let signed_at = match signing_time(&cand.key, parsed, &cand.backfill_generated) {
        Ok(t) => t,
        Err(problem) => {
            findings.push(
                Finding::new(cand.location.uri(), Kind::DigestFormat, "invalid format")
                    .with(detail_only(&problem.to_string())),
            );
            return (judged(cand, unverified(parsed), findings), false);
        }
    };
    match verify_signatures(cand, parsed, signatures_from_successors, keys, signed_at) {
        Ok(verified) => {
            let status = DigestStatus::Verified(Box::new(verified));
            (judged(cand, status, findings), true)
        }
        Err(failure) => {
            let (finding, trusted) = signature_finding(chain, cand, parsed, failure);
            findings.push(finding);
            (judged(cand, unverified(parsed), findings), trusted)
        }
    }
}

/// A judged digest, its window the hour before its key time until the walk knows better.
fn judged(cand: &DigestCandidate, status: DigestStatus, findings: Vec<Finding>) -> WalkedDigest {
    WalkedDigest {
        location: cand.location.clone(),
        key: cand.key.clone(),
        status,
        findings,
        window: hour_before(cand.key.end_time),
        context: false,
    }
}

/// A digest whose content could not be had: deleted from a copy (gone, though its records name
/// it), replaced by what is not a digest (not gzip, not JSON, a FIFO), unreadable, or reached
/// through a path that leaves the evidence. Its log files, if its JSON still names them, are
/// reported unverifiable rather than unknown.
fn content_problem(cand: &DigestCandidate, problem: &ContentProblem) -> WalkedDigest {
    let uri = cand.location.uri();
    // Nothing was read, so nothing is known to be listed.
    let mut listed = Vec::new();
    let finding = match problem {
        ContentProblem::Format {
            detail,
            listed: names,
        } => {
            listed.clone_from(names);
            Finding::new(&uri, Kind::DigestFormat, "invalid format").with(detail_only(detail))
        }
        ContentProblem::Unreadable(detail) => {
            Finding::new(&uri, Kind::DigestUnreadable, "could not be read")
                .with(detail_only(detail))
        }
        ContentProblem::Gone(detail) => {
            Finding::new(&uri, Kind::DigestMissing, "not found").with(detail_only(detail))
        }
        ContentProblem::PathEscape(detail) => {
            Finding::new(&uri, Kind::PathEscape, "path leaves the evidence directory")
                .with(detail_only(detail))
        }
        ContentProblem::Archived(class) => {
            Finding::new(&uri, Kind::DigestArchived, archived_reason(class))
        }
    };
    let status = DigestStatus::Unverified {
        listed: Listed::Names(listed),
    };
    judged(cand, status, vec![finding])
}

/// The reason of a finding on an object in an archive storage class.
pub fn archived_reason(class: &str) -> String {
    format!("archived ({class}), restore it first")
}

/// A genuine digest copied to where another belongs (another hour, chain or bucket) to stand
/// in for it: CloudTrail signs where it delivered the digest, and this is not there.
fn moved(cand: &DigestCandidate, parsed: &ParsedDigest) -> Option<Finding> {
    (parsed.location != cand.location).then(|| {
        Finding::new(
            cand.location.uri(),
            Kind::DigestMoved,
            "has been moved from its original location",
        )
        .with(Evidence {
            detail: Some(format!("delivered to {}", parsed.location)),
            ..Evidence::default()
        })
    })
}

/// What the trusted newer digests linking to this one say against it. Their link pins its
/// bytes: a digest rewritten, or swapped for another that CloudTrail did sign, no longer hashes
/// to the link, whatever its own signature says. The link also carries its signature: S3
/// metadata that differs from it was replaced.
fn link_mismatches(
    cand: &DigestCandidate,
    parsed: &ParsedDigest,
    vouching: &[(usize, &ParsedDigest)],
) -> Vec<Finding> {
    let uri = cand.location.uri();
    let mut findings = Vec::new();
    for (j, newer) in vouching {
        let Some(link) = &newer.previous else {
            continue;
        };
        let named_by = Some(newer.location.uri());
        if link.hash != parsed.sha256() {
            findings.push(
                Finding::new(
                    &uri,
                    Kind::DigestLinkHashMismatch,
                    "previousDigestHashValue of the next digest does not match this digest",
                )
                .with(Evidence {
                    expected_sha256: Some(link.hash),
                    actual_sha256: Some(parsed.sha256()),
                    named_by: named_by.clone(),
                    ..Evidence::default()
                }),
            );
        }
        if let Some(own) = &cand.signature {
            if *own != link.signature {
                findings.push(
                    Finding::new(&uri, Kind::DigestLinkSignatureMismatch, "previousDigestSignature of the next digest differs from this digest's signature")
                        .with(Evidence { named_by, detail: Some(format!("next digest #{j}")), ..Evidence::default() }),
                );
            }
        }
    }
    findings
}

/// The digest verified under its own signature (S3 metadata, or given for a chain head), or
/// else under one a newer digest's link carries: an RSA signature that verifies authenticates
/// the digest whatever carried it, so a plain copy without S3 metadata is still verifiable.
/// Without a verifying one, the first failure; `None` when there was no signature to try.
fn verify_signatures(
    cand: &DigestCandidate,
    parsed: &ParsedDigest,
    signatures_from_successors: &[&[u8]],
    keys: &KeySet,
    signed_at: SigningTime,
) -> Result<VerifiedDigest, Option<SignatureFailure>> {
    let mut tried: Vec<&[u8]> = Vec::new();
    let mut first_failure = None;
    for sig in cand
        .signature
        .as_deref()
        .into_iter()
        .chain(signatures_from_successors.iter().copied())
    {
        if tried.contains(&sig) {
            continue;
        }
        tried.push(sig);
        match verify_digest(parsed, sig, keys, signed_at) {
            Ok(verified) => return Ok(verified),
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(first_failure)
}

/// Why a digest is not verified, and whether its link fields may still be believed: yes when
/// nothing disproves it (no signature to check, or no key to check it with), no when its
/// signature fails (forged or altered content) or its key was not valid when it was signed (a
/// retired key used to sign a fake).
fn signature_finding(
    chain: &ChainId,
    cand: &DigestCandidate,
    parsed: &ParsedDigest,
    failure: Option<SignatureFailure>,
) -> (Finding, bool) {
    let uri = cand.location.uri();
    match failure {
        None => (
            Finding::new(
                &uri,
                Kind::DigestSignatureUnavailable,
                "signature unavailable: no S3 metadata for it and no newer digest carries it (see --head-signature)",
            ),
            true,
        ),
        Some(SignatureFailure::KeyNotFound { fingerprint }) => (
            Finding::new(
                &uri,
                Kind::DigestKeyUnknown,
                format!("public key not found in region {} for fingerprint {fingerprint}", chain.scope.region),
            )
            .with(Evidence { fingerprint: Some(fingerprint), ..Evidence::default() }),
            true,
        ),
        Some(SignatureFailure::KeyNotValidAt { fingerprint, valid_from, valid_to, at }) => (
            Finding::new(
                &uri,
                Kind::DigestKeyNotValid,
                format!("public key {fingerprint} is valid from {} to {}, not {at}", format_iso(valid_from), format_iso(valid_to)),
            )
            .with(Evidence { fingerprint: Some(fingerprint), signing_time: backfill_basis(at), ..Evidence::default() }),
            false,
        ),
        Some(SignatureFailure::BadSignature) => (
            Finding::new(&uri, Kind::DigestSignatureInvalid, "signature verification failed")
                .with(Evidence { fingerprint: Some(parsed.fingerprint.clone()), ..Evidence::default() }),
            false,
        ),
    }
}

/// What a report says about a backfill digest's key check, so that a verdict that relied on
/// the unsigned generation time, or on the bound used without it, says so.
fn backfill_basis(signed: SigningTime) -> Option<SigningTime> {
    (signed.basis != SigningBasis::DigestEnd).then_some(signed)
}

/// Findings about where links point: missing digests, other buckets, other chains. Answers,
/// per digest, whether its link named a digest of the range that is not here (`not found`, or
/// in another bucket): the hole before it is then said.
fn link_findings(
    chain: &ChainId,
    candidates: &[DigestCandidate],
    present: &HashMap<&S3Location, usize>,
    trusted: &[bool],
    walked: &mut [WalkedDigest],
    range: Range,
) -> Vec<bool> {
    let mut names_missing = vec![false; candidates.len()];
    for (j, cand) in candidates.iter().enumerate() {
        if !trusted.get(j).copied().unwrap_or(false) {
            continue;
        }
        let Some(link) = cand.content.as_ref().ok().and_then(|d| d.previous.as_ref()) else {
            continue;
        };
        let target = match parse_key(&link.location.key) {
            Ok(CloudTrailKey::Digest(k))
                if k.chain() == *chain && k.end_time < cand.key.end_time =>
            {
                Some(k)
            }
            _ => None,
        };
        let finding = match (&target, present.get(&link.location)) {
            (Some(_), Some(&i)) if i > j => None,
            (Some(k), None) if link.location.bucket != cand.location.bucket => {
                range.holds_digest(k.end_time).then(|| {
                    Finding::new(
                        link.location.uri(),
                        Kind::DigestLinkOtherBucket,
                        "previous digest is in another bucket, outside this evidence",
                    )
                    .with(named(cand))
                })
            }
            (Some(k), None) => range.holds_digest(k.end_time).then(|| {
                Finding::new(link.location.uri(), Kind::DigestMissing, "not found")
                    .with(named(cand))
            }),
            _ => Some(
                Finding::new(
                    cand.location.uri(),
                    Kind::DigestLinkOutsideChain,
                    "previous digest link points outside this chain",
                )
                .with(Evidence {
                    detail: Some(format!("links to {}", link.location)),
                    ..Evidence::default()
                }),
            ),
        };
        if let Some(f) = finding {
            if matches!(f.kind, Kind::DigestMissing | Kind::DigestLinkOtherBucket) {
                if let Some(n) = names_missing.get_mut(j) {
                    *n = true;
                }
            }
            push(walked, j, f);
        }
    }
    names_missing
}

/// Findings between neighbours, by key time: a signed restart (a gap), and a digest no link
/// names (see [`successor_finding`]).
fn continuity_findings(
    candidates: &[DigestCandidate],
    incoming: &[Vec<usize>],
    trusted: &[bool],
    walked: &mut [WalkedDigest],
) {
    for (i, older) in candidates.iter().enumerate().skip(1) {
        let newer_index = i - 1;
        let Some(newer) = candidates.get(newer_index) else {
            continue;
        };
        if !trusted.get(newer_index).copied().unwrap_or(false) {
            continue;
        }
        let Ok(newer_digest) = &newer.content else {
            continue;
        };
        let older_end = end_of(older);
        let finding = match &newer_digest.previous {
            None if newer_digest.start > older_end => Some((
                newer_index,
                restart_gap(newer.location.uri(), older_end, newer_digest.start),
            )),
            None => None,
            Some(link)
                if incoming.get(i).is_some_and(|v| !v.is_empty())
                    || link.location == older.location =>
            {
                None
            }
            Some(link) => successor_finding(candidates, older, newer_digest, link).map(|f| (i, f)),
        };
        if let Some((on, f)) = finding {
            push(walked, on, f);
        }
    }
}

/// Where a digest's period ends: its signed end, or its key's time when it could not be read.
fn end_of(c: &DigestCandidate) -> Timestamp {
    c.content.as_ref().map_or(c.key.end_time, |d| d.end)
}

/// A signed restart of the chain at `subject` (logging stopped, or log file validation was
/// off): CloudTrail says nothing was delivered between `from` and `to`. Said as the AWS CLI
/// says it, so that a stop of logging to hide activity shows.
fn restart_gap(subject: String, from: Timestamp, to: Timestamp) -> Finding {
    let reason = format!(
        "No log files were delivered by CloudTrail between {} and {}",
        format_iso(from),
        format_iso(to)
    );
    Finding::new(subject, Kind::ChainGap, reason).with(period(from, to))
}

/// An older digest that the next newer one's trusted link does not name, and no other link
/// does either. If the link names a digest of this chain that is gone and ends well after
/// the older one, the digests between are gone too (several deleted in a row: only the one
/// the link names is said missing elsewhere, the rest is this stretch). Otherwise the link
/// skips it: a digest planted into the chain, or one the chain was rewritten around.
fn successor_finding(
    candidates: &[DigestCandidate],
    older: &DigestCandidate,
    newer_digest: &ParsedDigest,
    link: &PreviousLink,
) -> Option<Finding> {
    let older_end = end_of(older);
    // A digest of this chain that the link names but that is gone.
    let missing = match parse_key(&link.location.key) {
        Ok(CloudTrailKey::Digest(k))
            if k.chain() == older.key.chain()
                && link.location.bucket == older.location.bucket
                && !candidates.iter().any(|c| c.location == link.location) =>
        {
            Some(k)
        }
        _ => None,
    };
    match missing {
        Some(k) if k.end_time > later(older_end, SLACK) => {
            // The missing digest ended at `k.end_time`, so it started about an hour earlier:
            // whatever lies between is unaccounted for.
            let hole_end = k
                .end_time
                .checked_sub(SignedDuration::from_hours(1))
                .unwrap_or(Timestamp::MIN);
            Some(
                Finding::new(
                    older.location.uri(),
                    Kind::DigestSuccessorMissing,
                    format!(
                        "the digest after this one is missing too: nothing covers {} to {}",
                        format_iso(older_end),
                        format_iso(hole_end)
                    ),
                )
                .with(Evidence {
                    named_by: Some(link.location.uri()),
                    ..period(older_end, hole_end)
                }),
            )
        }
        // The one missing digest was this one's successor.
        Some(k) if k.end_time >= older_end => None,
        // The link skips this digest: to another present digest, to itself, to another chain
        // or bucket, or to something older.
        _ => Some(
            Finding::new(
                older.location.uri(),
                Kind::DigestUnlinked,
                "no digest of its chain links to it",
            )
            .with(period(older_end, newer_digest.start)),
        ),
    }
}

/// Each digest's window (see [`WalkedDigest::window`]).
fn set_windows(
    candidates: &[DigestCandidate],
    present: &HashMap<&S3Location, usize>,
    trusted: &[bool],
    walked: &mut [WalkedDigest],
) {
    // Own windows first: a link may reach back to any of them.
    for w in walked.iter_mut() {
        if let DigestStatus::Verified(v) = &w.status {
            w.window = (v.digest().start.min(v.digest().end), v.digest().end);
        }
    }
    for (j, cand) in candidates.iter().enumerate() {
        let Some(w) = walked.get(j) else { continue };
        if !matches!(w.status, DigestStatus::Verified(_))
            || !trusted.get(j).copied().unwrap_or(false)
        {
            continue;
        }
        let Some(link) = cand.content.as_ref().ok().and_then(|d| d.previous.as_ref()) else {
            continue;
        };
        // CloudTrail vouches that nothing lies between a digest and the one it links to.
        let reaches = present
            .get(&link.location)
            .filter(|&&i| i > j)
            .and_then(|&i| walked.get(i))
            .map(|older| older.window.1);
        if let (Some(older_end), Some(w)) = (reaches, walked.get_mut(j)) {
            w.window.0 = w.window.0.min(older_end);
        }
    }
}

/// The part of the range the chain answers for: the requested ends; where an end was taken
/// from the evidence (the oldest or newest digest of any chain), the chain's own end, but no
/// more than an hour (one digest) short of it: chains deliver hourly, so one that stops (or
/// starts) longer before (after) the others has hours no digest of it proves.
/// The part of the range the chain answers for (see [`WalkedChain::extent`]), and whether it
/// is caught up ([`WalkedChain::caught_up`]).
fn extent(walked: &[WalkedDigest], range: Range) -> ((Timestamp, Timestamp), bool) {
    let members = walked.iter().filter(|w| !w.context);
    let first = members.clone().map(|w| w.window.0).min();
    let last = members.map(|w| w.window.1).max();
    // No digest in the range, the newest before it ending within the hour before an end taken
    // from the evidence: not short at that end (a full run would not be).
    let caught_up = last.is_none()
        && !range.end_requested
        && walked
            .iter()
            .filter(|w| w.context && w.window.1 <= range.start)
            .any(|w| w.window.1 >= earlier(range.end, HOUR));
    let start = match first {
        Some(t) if !range.start_requested => t.max(range.start).min(later(range.start, HOUR)),
        _ => range.start,
    };
    let end = match last {
        Some(t) if !range.end_requested => t.min(range.end).max(earlier(range.end, HOUR)),
        _ => range.end,
    };
    ((start.min(end), end), caught_up)
}

/// A stretch before digest `at` (by where windows end) that no digest accounts for.
struct Stretch {
    from: Timestamp,
    to: Timestamp,
    state: HourState,
    /// Whether a finding already names it (see [`hole_before`]).
    explained: bool,
    /// The digest after it.
    at: usize,
    /// The digest before it, unless it is at the start of the evidence.
    older: Option<usize>,
}

/// The stretches no digest accounts for, with a finding for each one in the range that no
/// other finding explains, so that no hole of the range goes unsaid: deleting digests (and
/// with them the proof of what their hours held) must not pass silently, however many and
/// wherever they are.
fn holes(
    candidates: &[DigestCandidate],
    trusted: &[bool],
    names_missing: &[bool],
    walked: &mut [WalkedDigest],
    range: Range,
    (lo, hi): (Timestamp, Timestamp),
) -> Vec<Span> {
    let before: Vec<(HourState, bool)> = (0..walked.len())
        .map(|i| hole_before(candidates, trusted, names_missing, walked, i))
        .collect();
    // Oldest first, by where each window ends.
    let mut order: Vec<usize> = (0..walked.len()).collect();
    order.sort_by_key(|&i| walked.get(i).map(|w| (w.window.1, w.window.0)));
    let mut spans = Vec::new();
    let mut reached: Option<(Timestamp, usize)> = None;
    for &i in &order {
        let Some((from, to)) = walked.get(i).map(|w| w.window) else {
            continue;
        };
        let hole_from = reached.map_or(lo, |(end, _)| end);
        if from > hole_from {
            let (state, mut explained) = before
                .get(i)
                .copied()
                .unwrap_or((HourState::Missing, false));
            // At the start of the evidence only one missing digest is named by a link (no
            // older digest is left to say `digest_successor_missing`): a longer hole needs its
            // own finding.
            if reached.is_none() && state == HourState::Missing && later(hole_from, SLACK) < from {
                explained = false;
            }
            spans.push(Span {
                from: hole_from,
                to: from,
                state,
            });
            if hole_from.max(lo) < from.min(hi) {
                let stretch = Stretch {
                    from: hole_from,
                    to: from,
                    state,
                    explained,
                    at: i,
                    older: reached.map(|(_, older)| older),
                };
                say_stretch(candidates, walked, range, lo, &stretch);
            }
        }
        if reached.is_none_or(|(end, _)| to > end) {
            reached = Some((to, i));
        }
    }
    if let Some((end, newest)) = reached {
        if end < hi {
            spans.push(Span {
                from: end,
                to: hi,
                state: HourState::Missing,
            });
            let f = coverage_end(candidates, newest, range, (lo, hi), end);
            push(walked, newest, f);
        }
    }
    spans
}

/// The link of digest `i`, if its content could be had (`Some(None)`: it starts the chain).
fn previous(candidates: &[DigestCandidate], i: usize) -> Option<Option<&PreviousLink>> {
    candidates
        .get(i)
        .and_then(|c| c.content.as_ref().ok())
        .map(|d| d.previous.as_ref())
}

/// What the hole before digest `i` is, and whether a finding already names it: a trusted
/// link that names a missing digest of the range (reported as `not found`), or a signed
/// restart (reported as a gap).
fn hole_before(
    candidates: &[DigestCandidate],
    trusted: &[bool],
    names_missing: &[bool],
    walked: &[WalkedDigest],
    i: usize,
) -> (HourState, bool) {
    let trusted = trusted.get(i).copied().unwrap_or(false);
    let w = walked.get(i);
    let verified = w.is_some_and(|w| matches!(w.status, DigestStatus::Verified(_)));
    match previous(candidates, i) {
        Some(None) if verified => (HourState::Gap, true),
        // Said by its own finding, unless it is context (not reported).
        Some(None) if trusted => (HourState::NotVerified, !w.is_some_and(|w| w.context)),
        Some(Some(link)) if trusted => {
            let missing_here = names_missing.get(i).copied().unwrap_or(false);
            if link.location.bucket != candidates.get(i).map_or("", |c| c.location.bucket.as_str())
            {
                (HourState::NotVerified, missing_here)
            } else {
                (HourState::Missing, missing_here)
            }
        }
        _ => (HourState::Missing, false),
    }
}

/// The findings a stretch of the range needs: a restart said as a gap where the pairwise pass
/// did not say it, and the uncovered stretch itself unless a finding explains it.
fn say_stretch(
    candidates: &[DigestCandidate],
    walked: &mut [WalkedDigest],
    range: Range,
    lo: Timestamp,
    s: &Stretch,
) {
    // A restart inside the range: said as a gap on the digest that restarts, where the
    // pairwise pass (by key time) did not already.
    if let (Some(_), true, Some(None)) = (s.older, s.explained, previous(candidates, s.at)) {
        let said = walked
            .get(s.at)
            .is_some_and(|w| w.findings.iter().any(|f| f.kind == Kind::ChainGap));
        if !said {
            let subject = candidates
                .get(s.at)
                .map(|c| c.location.uri())
                .unwrap_or_default();
            let f = restart_gap(subject, s.from, s.to);
            push(walked, s.at, f);
        }
    }
    if let Some((on, kind, reason)) = uncovered(candidates, range, lo, s) {
        let subject = candidates
            .get(on)
            .map(|c| c.location.uri())
            .unwrap_or_default();
        let start = s.from.max(lo);
        push(
            walked,
            on,
            Finding::new(subject, kind, reason).with(period(start, s.to)),
        );
    }
}

/// The finding an unexplained stretch of the range needs, and the digest it goes on: a chain
/// that starts inside the range (signed, or with a digest that could not be verified), a start
/// of the range no verified digest covers (digests deleted at the start), or a hole between
/// two digests (digests deleted, or the next one not verifiable).
fn uncovered(
    candidates: &[DigestCandidate],
    range: Range,
    lo: Timestamp,
    s: &Stretch,
) -> Option<(usize, Kind, String)> {
    let requested = if range.start_requested {
        "requested "
    } else {
        ""
    };
    let start = s.from.max(lo);
    match (s.older, s.state, s.explained) {
        // A chain that starts inside the range: CloudTrail signed that it starts here.
        (None, HourState::Gap, _) => Some((
            s.at,
            Kind::CoverageStart,
            format!(
                "the chain starts at {}, after the {}start {}",
                format_iso(s.to),
                requested,
                format_iso(lo)
            ),
        )),
        (None, _, _) if matches!(previous(candidates, s.at), Some(None)) => Some((
            s.at,
            Kind::CoverageStart,
            format!(
                "the chain starts at {}, after the {}start {}, with a digest that could not be verified",
                format_iso(s.to),
                requested,
                format_iso(lo)
            ),
        )),
        (_, _, true) => None,
        (None, _, false) => Some((
            s.at,
            Kind::CoverageStart,
            format!(
                "no verified digest of this chain covers {} to {}, the start of the {}range",
                format_iso(start),
                format_iso(s.to),
                requested
            ),
        )),
        (Some(older), _, false) => Some((
            older,
            Kind::CoverageHole,
            format!(
                "no verified digest of this chain covers {} to {}: the digests that did are gone, or the next one could not be verified",
                format_iso(s.from),
                format_iso(s.to)
            ),
        )),
    }
}

/// The end of the range that no digest covers, on the newest digest: the chain stops before
/// the end (its latest digests deleted, or logging stopped without a signed restart after).
fn coverage_end(
    candidates: &[DigestCandidate],
    newest: usize,
    range: Range,
    (lo, hi): (Timestamp, Timestamp),
    end: Timestamp,
) -> Finding {
    Finding::new(
        candidates.get(newest).map(|c| c.location.uri()).unwrap_or_default(),
        Kind::CoverageEnd,
        format!(
            "no verified digest of this chain covers {} to {}, the end of the {}range: the chain ends at {}",
            format_iso(end.max(lo)),
            format_iso(hi),
            if range.end_requested { "requested " } else { "" },
            format_iso(end)
        ),
    )
    .with(period(end, hi))
}

/// The hour before `t`, saturating at the start of time.
fn hour_before(t: Timestamp) -> (Timestamp, Timestamp) {
    (t.checked_sub(HOUR).unwrap_or(Timestamp::MIN), t)
}

fn unverified(d: &ParsedDigest) -> DigestStatus {
    let listed = match &d.log_files {
        LogFiles::Parsed(list) => Listed::Names(list.iter().map(|l| l.location.clone()).collect()),
        LogFiles::SetAside { .. } => Listed::SetAside(Box::new(d.clone())),
    };
    DigestStatus::Unverified { listed }
}

fn push(walked: &mut [WalkedDigest], i: usize, f: Finding) {
    if let Some(w) = walked.get_mut(i) {
        w.findings.push(f);
    }
}

fn period(from: Timestamp, to: Timestamp) -> Evidence {
    Evidence {
        from: Some(from),
        to: Some(to),
        ..Evidence::default()
    }
}

fn named(by: &DigestCandidate) -> Evidence {
    Evidence {
        named_by: Some(by.location.uri()),
        ..Evidence::default()
    }
}

fn detail_only(detail: &str) -> Evidence {
    Evidence {
        detail: Some(detail.to_owned()),
        ..Evidence::default()
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};

    use super::*;
    use crate::core::sign::PublicKey;
    use crate::core::time::parse_iso;

    const BUCKET: &str = "trail-bucket";

    struct Signer {
        pair: RsaKeyPair,
        keys: KeySet,
    }

    impl Signer {
        fn new() -> Self {
            let pk8 = include_bytes!("../../testdata/keys/test-rsa-1.pk8");
            let pair = RsaKeyPair::from_pkcs8(pk8).unwrap();
            let mut keys = KeySet::default();
            let key = PublicKey::from_der(
                pair.public_key().as_ref(),
                Timestamp::UNIX_EPOCH,
                Timestamp::MAX,
            )
            .unwrap();
            keys.insert(key);
            Signer { pair, keys }
        }

        fn sign(&self, message: &[u8]) -> Vec<u8> {
            let mut sig = vec![0; self.pair.public().modulus_len()];
            self.pair
                .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                .unwrap();
            sig
        }
    }

    fn key_at(hour: i64) -> DigestKey {
        let CloudTrailKey::Digest(k) = parse_key(&format!(
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_trail1_us-east-1_20260101T{:02}0404Z.json.gz",
            hour
        ))
        .unwrap() else {
            panic!()
        };
        k
    }

    /// Builds a chain of hourly digests 1..=n; `restart_at` makes that digest a chain start.
    /// Returns candidates (with S3 signatures) oldest first.
    fn chain(signer: &Signer, n: i64, restart_at: Option<i64>) -> Vec<DigestCandidate> {
        let mut out: Vec<DigestCandidate> = Vec::new();
        let mut prev: Option<(String, String, Vec<u8>)> = None; // key, sha hex, signature
        for h in 1..=n {
            let key = key_at(h);
            let key_text = key.format();
            let fp = Fingerprint::of_der(signer.pair.public_key().as_ref());
            let link = match (&prev, restart_at == Some(h)) {
                (Some((k, sha, sig)), false) => format!(
                    r#""previousDigestS3Bucket":"{BUCKET}","previousDigestS3Object":"{}","previousDigestHashValue":"{sha}","previousDigestHashAlgorithm":"SHA-256","previousDigestSignature":"{}""#,
                    k.replace('/', "\\/"),
                    hex::encode(sig)
                ),
                _ => r#""previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null"#.to_owned(),
            };
            let raw = format!(
                r#"{{"awsAccountId":"111122223333","digestStartTime":"2026-01-01T{:02}:04:04Z","digestEndTime":"2026-01-01T{h:02}:04:04Z","digestS3Bucket":"{BUCKET}","digestS3Object":"{}","digestPublicKeyFingerprint":"{fp}","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,{link},"logFiles":[]}}"#,
                h - 1,
                key_text.replace('/', "\\/")
            );
            let parsed = ParsedDigest::parse(raw.as_bytes()).unwrap();
            let sig = signer.sign(&crate::core::sign::string_to_sign(&parsed));
            prev = Some((key_text.clone(), parsed.sha256().to_hex(), sig.clone()));
            out.push(DigestCandidate {
                location: S3Location::new(BUCKET, key_text),
                key,
                content: Ok(parsed),
                signature: Some(sig),
                backfill_generated: GenerationTime::Unknown,
            });
        }
        out
    }

    fn walk_digests(
        chain: &ChainId,
        candidates: Vec<DigestCandidate>,
        keys: &KeySet,
        range: Range,
    ) -> Vec<WalkedDigest> {
        walk(chain, candidates, keys, range).digests
    }

    fn range() -> Range {
        Range {
            start: parse_iso("2026-01-01T00:04:04Z").unwrap(),
            end: parse_iso("2026-01-01T09:04:04Z").unwrap(),
            start_requested: true,
            end_requested: true,
        }
    }

    fn kinds(walked: &[WalkedDigest]) -> Vec<(String, Kind)> {
        walked
            .iter()
            .flat_map(|w| w.findings.iter())
            .filter(|f| f.kind != Kind::DigestValid)
            .map(|f| (f.subject.rsplit('_').next().unwrap().to_owned(), f.kind))
            .collect()
    }

    use crate::core::types::Fingerprint;

    /// A chain taken up after its newest digest (a checkpoint moved it on while another chain
    /// was still being verified) with nothing newer: within the hour before an end taken from
    /// the evidence, the range holds nothing of it (no hole, no ledger); later than that, its
    /// silence is a hole.
    #[test]
    fn a_chain_taken_up_after_its_newest_digest_is_caught_up_only_within_the_hour() {
        let s = Signer::new();
        let c = chain(&s, 9, None);
        let id = c[0].key.chain();
        let newest = parse_iso("2026-01-01T09:04:04Z").unwrap();
        let after = |mins: i64| Range {
            start: later(newest, SignedDuration::from_secs(1)),
            end: later(newest, SignedDuration::from_mins(mins)),
            start_requested: true,
            end_requested: false,
        };
        let near = walk(&id, c.clone(), &s.keys, after(40));
        assert!(near.caught_up);
        assert!(near.holes.is_empty());
        assert_eq!(kinds(&near.digests), vec![]);
        let far = walk(&id, c.clone(), &s.keys, after(150));
        assert!(!far.caught_up);
        assert!(!far.holes.is_empty());
        let asked = Range {
            end_requested: true,
            ..after(40)
        };
        assert!(!walk(&id, c, &s.keys, asked).caught_up);
    }

    #[test]
    fn an_intact_chain_with_metadata_is_all_valid() {
        let s = Signer::new();
        let c = chain(&s, 9, None);
        let id = c[0].key.chain();
        let walked = walk_digests(&id, c, &s.keys, range());
        assert_eq!(kinds(&walked), vec![]);
        assert!(walked
            .iter()
            .all(|w| matches!(w.status, DigestStatus::Verified(_))));
    }

    #[test]
    fn a_plain_copy_verifies_all_but_the_head_through_successor_signatures() {
        let s = Signer::new();
        let mut c = chain(&s, 9, None);
        c.iter_mut().for_each(|d| d.signature = None);
        let id = c[0].key.chain();
        let walked = walk_digests(&id, c, &s.keys, range());
        assert_eq!(
            kinds(&walked),
            vec![(
                "20260101T090404Z.json.gz".into(),
                Kind::DigestSignatureUnavailable
            )]
        );
        assert_eq!(
            walked
                .iter()
                .filter(|w| matches!(w.status, DigestStatus::Verified(_)))
                .count(),
            8
        );
    }

    /// One backfill digest for the hour ending 2026-01-01T01:04:04Z, with S3 metadata saying
    /// `generated`, and the key that signed it valid from `from` to `to`.
    fn backfill(from: &str, to: &str, generated: GenerationTime) -> (DigestCandidate, KeySet) {
        let s = Signer::new();
        let CloudTrailKey::Digest(key) = parse_key("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_trail1_us-east-1_20260101T010404Z_backfill.json.gz").unwrap() else {
            panic!()
        };
        let fp = Fingerprint::of_der(s.pair.public_key().as_ref());
        let raw = format!(
            r#"{{"awsAccountId":"111122223333","digestStartTime":"2026-01-01T00:04:04Z","digestEndTime":"2026-01-01T01:04:04Z","digestS3Bucket":"{BUCKET}","digestS3Object":"{}","digestPublicKeyFingerprint":"{fp}","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}}"#,
            key.format().replace('/', "\\/")
        );
        let parsed = ParsedDigest::parse(raw.as_bytes()).unwrap();
        let signature = s.sign(&crate::core::sign::string_to_sign(&parsed));
        let mut keys = KeySet::default();
        keys.insert(
            PublicKey::from_der(
                s.pair.public_key().as_ref(),
                parse_iso(from).unwrap(),
                parse_iso(to).unwrap(),
            )
            .unwrap(),
        );
        let candidate = DigestCandidate {
            location: S3Location::new(BUCKET, key.format()),
            key,
            content: Ok(parsed),
            signature: Some(signature),
            backfill_generated: generated,
        };
        (candidate, keys)
    }

    /// The one finding on a lone backfill digest (`digest_valid` included), and its status.
    fn judge_backfill(c: DigestCandidate, keys: &KeySet) -> (Finding, bool) {
        let id = c.key.chain();
        let mut walked = walk_digests(&id, vec![c], keys, range());
        let w = walked.pop().unwrap();
        assert_eq!(w.findings.len(), 1, "{:?}", w.findings);
        let verified = matches!(w.status, DigestStatus::Verified(_));
        (w.findings.into_iter().next().unwrap(), verified)
    }

    const EXPIRED: (&str, &str) = ("2025-11-01T00:00:00Z", "2025-12-01T00:00:00Z");
    const CURRENT: (&str, &str) = ("2025-12-20T00:00:00Z", "2026-01-19T00:00:00Z");
    const LATER: (&str, &str) = ("2026-01-10T00:00:00Z", "2026-02-09T00:00:00Z");

    /// A plain copy has no generation time: the key check used to be skipped, so a key retired
    /// a month before the digest's hour still vouched for it.
    #[test]
    fn a_backfill_digest_without_a_generation_time_is_refused_a_key_expired_before_its_end() {
        let (c, keys) = backfill(EXPIRED.0, EXPIRED.1, GenerationTime::Unknown);
        let (f, verified) = judge_backfill(c, &keys);
        assert_eq!(f.kind, Kind::DigestKeyNotValid, "{f:?}");
        assert!(!verified);
        assert!(
            f.reason.contains("no backfill-generation-timestamp"),
            "{}",
            f.reason
        );
        let at = f.evidence.signing_time.unwrap();
        assert_eq!(at.basis, SigningBasis::BackfillBound);
        assert_eq!(at.earliest, parse_iso("2026-01-01T01:04:04Z").unwrap());
        assert_eq!(at.latest, parse_iso("2026-01-31T01:04:04Z").unwrap());
    }

    /// Without a generation time, a key valid at the end, or one that became valid after it
    /// within the bound, is accepted, and the report says the bound was what it relied on.
    #[test]
    fn a_backfill_digest_without_a_generation_time_takes_a_key_valid_within_the_bound() {
        for window in [CURRENT, LATER] {
            let (c, keys) = backfill(window.0, window.1, GenerationTime::Unknown);
            let (f, verified) = judge_backfill(c, &keys);
            assert_eq!(f.kind, Kind::DigestValid, "{f:?}");
            assert!(verified);
            let at = f.evidence.signing_time.unwrap();
            assert_eq!(at.basis, SigningBasis::BackfillBound);
            let json = serde_json::to_value(&f).unwrap();
            assert_eq!(json["evidence"]["signing_time"]["basis"], "backfill_bound");
        }
        let (c, keys) = backfill(
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            GenerationTime::Unknown,
        );
        assert_eq!(judge_backfill(c, &keys).0.kind, Kind::DigestKeyNotValid);
    }

    /// Evidence metadata (unsigned) states a generation time inside an expired key's window,
    /// before the digest's own end: it is refused, not believed.
    #[test]
    fn a_generation_time_before_the_digest_end_cannot_bring_an_expired_key_back() {
        let (c, keys) = backfill(
            EXPIRED.0,
            EXPIRED.1,
            GenerationTime::Stated(parse_iso("2025-11-15T00:00:00Z").unwrap()),
        );
        let (f, verified) = judge_backfill(c, &keys);
        assert_eq!(f.kind, Kind::DigestFormat, "{f:?}");
        assert_eq!(f.reason, "invalid format");
        assert!(f
            .evidence
            .detail
            .unwrap()
            .contains("precedes the digest's end"));
        assert!(!verified);
    }

    /// A stated generation time at or after the end is what the key is checked at, and the
    /// valid verdict names it as the unsigned metadata it relied on.
    #[test]
    fn a_valid_backfill_verdict_says_it_relied_on_the_generation_time() {
        let generated = parse_iso("2026-01-01T04:21:17Z").unwrap();
        let (c, keys) = backfill(CURRENT.0, CURRENT.1, GenerationTime::Stated(generated));
        let (f, verified) = judge_backfill(c, &keys);
        assert_eq!(f.kind, Kind::DigestValid, "{f:?}");
        assert!(verified);
        let at = f.evidence.signing_time.unwrap();
        assert_eq!(
            (at.earliest, at.latest, at.basis),
            (
                generated,
                generated,
                SigningBasis::BackfillGenerationTimestamp
            )
        );
        // A key not valid at the stated time is refused, even though it was valid at the end.
        let late = GenerationTime::Stated(parse_iso("2026-01-25T00:00:00Z").unwrap());
        let (c, keys) = backfill(CURRENT.0, CURRENT.1, late);
        let (f, _) = judge_backfill(c, &keys);
        assert_eq!(f.kind, Kind::DigestKeyNotValid);
        assert!(
            f.reason.contains("backfill-generation-timestamp"),
            "{}",
            f.reason
        );
        // A standard digest's verdict carries no such note: its time is signed.
        let s = Signer::new();
        let c = chain(&s, 1, None);
        let id = c[0].key.chain();
        let walked = walk_digests(&id, c, &s.keys, range());
        assert_eq!(walked[0].findings[0].kind, Kind::DigestValid);
        assert_eq!(walked[0].findings[0].evidence.signing_time, None);
    }

    /// S3 metadata with the signature but no generation time is not what CloudTrail writes
    /// on a backfill digest: the object was rewritten. Invalid format, as the AWS CLI says,
    /// and nothing it lists is vouched for.
    #[test]
    fn rewritten_backfill_metadata_is_invalid_format() {
        let missing = GenerationTime::Missing {
            detail: "the S3 metadata has a signature but no backfill-generation-timestamp".into(),
        };
        let (c, keys) = backfill(CURRENT.0, CURRENT.1, missing);
        let (f, verified) = judge_backfill(c, &keys);
        assert_eq!(
            (f.kind, f.reason.as_str()),
            (Kind::DigestFormat, "invalid format")
        );
        assert!(f.evidence.detail.unwrap().contains("rewritten"));
        assert!(!verified);
        // The same metadata on a standard digest means nothing: it has no generation time.
        let s = Signer::new();
        let mut c = chain(&s, 1, None);
        c[0].backfill_generated = GenerationTime::Missing {
            detail: String::new(),
        };
        let id = c[0].key.chain();
        let walked = walk_digests(&id, c, &s.keys, range());
        assert!(matches!(walked[0].status, DigestStatus::Verified(_)));
        assert_eq!(walked[0].findings[0].kind, Kind::DigestValid);
    }

    #[test]
    fn two_consecutive_deletions_give_two_findings() {
        let s = Signer::new();
        let mut c = chain(&s, 9, None);
        c.remove(5); // hour 6
        c.remove(4); // hour 5
        let id = c[0].key.chain();
        let walked = walk_digests(&id, c, &s.keys, range());
        assert_eq!(
            kinds(&walked),
            vec![
                ("20260101T060404Z.json.gz".into(), Kind::DigestMissing),
                (
                    "20260101T040404Z.json.gz".into(),
                    Kind::DigestSuccessorMissing
                ),
            ]
        );
    }

    #[test]
    fn one_deletion_gives_one_finding_and_a_restart_gives_a_gap() {
        let s = Signer::new();
        let mut c = chain(&s, 9, None);
        c.remove(4);
        let id = c[0].key.chain();
        assert_eq!(
            kinds(&walk_digests(&id, c, &s.keys, range())),
            vec![("20260101T050404Z.json.gz".into(), Kind::DigestMissing)]
        );

        let mut c = chain(&s, 9, Some(7));
        c.remove(5); // hour 6: logging stopped for the hour before the restart
        let id = c[0].key.chain();
        assert_eq!(
            kinds(&walk_digests(&id, c, &s.keys, range())),
            vec![("20260101T070404Z.json.gz".into(), Kind::ChainGap)]
        );
    }

    #[test]
    fn tampered_digest_signature_and_link_checks() {
        let s = Signer::new();
        let mut c = chain(&s, 4, None);
        // Hour 2 edited after signing: its own signature fails, and hour 3's link hash disagrees.
        if let Ok(d) = &mut c[1].content {
            let raw = format!(
                "{{\"awsAccountId\":\"111122223333\",\"digestStartTime\":\"2026-01-01T01:04:04Z\",\"digestEndTime\":\"2026-01-01T02:04:04Z\",\"digestS3Bucket\":\"{BUCKET}\",\"digestS3Object\":\"{}\",\"digestPublicKeyFingerprint\":\"{}\",\"digestSignatureAlgorithm\":\"SHA256withRSA\",\"newestEventTime\":null,\"oldestEventTime\":null,\"previousDigestS3Bucket\":null,\"previousDigestS3Object\":null,\"previousDigestHashValue\":null,\"previousDigestHashAlgorithm\":null,\"previousDigestSignature\":null,\"logFiles\":[]}}",
                d.location.key, d.fingerprint
            );
            *d = ParsedDigest::parse(raw.as_bytes()).unwrap();
        }
        // Hour 4's S3 signature replaced: hour 4 fails on it, no successor carries another.
        c[3].signature = Some(vec![1; 256]);
        let id = c[0].key.chain();
        let got = kinds(&walk_digests(
            &id,
            c,
            &s.keys,
            Range {
                end: parse_iso("2026-01-01T04:04:04Z").unwrap(),
                ..range()
            },
        ));
        assert_eq!(
            got,
            vec![
                (
                    "20260101T040404Z.json.gz".into(),
                    Kind::DigestSignatureInvalid
                ),
                (
                    "20260101T020404Z.json.gz".into(),
                    Kind::DigestLinkHashMismatch
                ),
                (
                    "20260101T020404Z.json.gz".into(),
                    Kind::DigestSignatureInvalid
                ),
            ]
        );
    }

    /// Found by fuzz/chain: the walker added its slack to digest and range times with jiff's
    /// `+`, which panics past the last representable time (9999-12-30T22:00:00.999999999Z), and
    /// hostile evidence may carry times up to there.
    #[test]
    fn slack_added_near_the_end_of_time_does_not_overflow() {
        let key = |hms: &str| {
            let CloudTrailKey::Digest(k) = parse_key(&format!(
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/9999/12/30/111122223333_CloudTrail-Digest_us-east-1_trail1_us-east-1_99991230T{hms}Z.json.gz"
            ))
            .unwrap() else {
                panic!()
            };
            k
        };
        let candidate = |k: &DigestKey, link: Option<&DigestKey>| {
            let link = match link {
                Some(l) => format!(
                    r#""previousDigestS3Bucket":"{BUCKET}","previousDigestS3Object":"{}","previousDigestHashValue":"{}","previousDigestHashAlgorithm":"SHA-256","previousDigestSignature":"0102""#,
                    l.format(),
                    "ab".repeat(32)
                ),
                None => r#""previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null"#.to_owned(),
            };
            let end = format_iso(k.end_time);
            let raw = format!(
                r#"{{"awsAccountId":"111122223333","digestStartTime":"{end}","digestEndTime":"{end}","digestS3Bucket":"{BUCKET}","digestS3Object":"{}","digestPublicKeyFingerprint":"{}","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,{link},"logFiles":[]}}"#,
                k.format(),
                "0".repeat(32)
            );
            DigestCandidate {
                location: S3Location::new(BUCKET, k.format()),
                key: k.clone(),
                content: Ok(ParsedDigest::parse(raw.as_bytes()).unwrap()),
                signature: None,
                backfill_generated: GenerationTime::Unknown,
            }
        };
        // The newest names a missing digest; the one before the hole ends within the slack of
        // the end of time, and so does the requested range.
        let (older, missing, newer) = (key("210000"), key("214000"), key("215959"));
        let c = vec![candidate(&older, None), candidate(&newer, Some(&missing))];
        let at = parse_iso("9999-12-30T21:59:59Z").unwrap();
        let range = Range {
            start: at,
            end: at,
            start_requested: true,
            end_requested: true,
        };
        assert!(range.holds_digest(newer.end_time));
        let walked = walk_digests(&older.chain(), c, &KeySet::default(), range);
        assert_eq!(walked.len(), 2);
        // The older one ends before the range: read for the range's start, not judged.
        assert_eq!(
            kinds(&walked),
            vec![(
                "99991230T215959Z.json.gz".into(),
                Kind::DigestSignatureUnavailable
            )]
        );
        assert!(walked[1].context);
    }

    #[test]
    fn a_short_chain_is_a_coverage_finding_and_unknown_keys_are_not_verified() {
        let s = Signer::new();
        let c = chain(&s, 5, None);
        let id = c[0].key.chain();
        let got = kinds(&walk_digests(&id, c.clone(), &s.keys, range()));
        assert_eq!(
            got,
            vec![("20260101T050404Z.json.gz".into(), Kind::CoverageEnd)]
        );
        let got = kinds(&walk_digests(
            &id,
            c,
            &KeySet::default(),
            Range {
                end: parse_iso("2026-01-01T05:04:04Z").unwrap(),
                ..range()
            },
        ));
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|(_, k)| *k == Kind::DigestKeyUnknown));
    }
}
