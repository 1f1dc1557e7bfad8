//! Signed checkpoints: where the last run stopped, so that the next verifies only what is new.
//!
//! A checkpoint is a DSSE envelope ([`super::dsse`], the same form and key types as signed
//! reports) whose payload type is [`PAYLOAD_TYPE`] and whose payload is a [`Checkpoint`] as
//! compact JSON (schema [`SCHEMA`]):
//!
//! ```text
//! {"schema":"trailproof-checkpoint/3","bucket":B,"filters":{"accounts":[..],"regions":[..],"trails":[..]},
//!  "start":T,"through":T,"chains":[{"chain":{..ChainInfo..},
//!    "last":{"key":K,"sha256":HEX,"signature":HEX,"end":T} | null,
//!    "ledger":{"from":T,"to":T,"periods":[{"from":T,"to":T,"state":S},..]} | null,
//!    "gap_reported":K (absent when none),
//!    "searched":T (absent when none)}, ..]}
//! ```
//!
//! Schema 3 adds `searched`, for checkpoints written while a run goes on ([`Underway`]): a run
//! moves each chain's `last` and `ledger` on as soon as it is done with the chain, but it
//! searches the Regions' folders for log files no digest names only at its end. Until a run
//! has done that search, a moved chain keeps in `searched` where the search was left (its
//! `last` time before the run; for a chain the checkpoint did not know, `through`). The next
//! run takes the chain up after `last`, reads its digests after `searched` up to `last` again
//! (signatures checked) for the log files they name, without hashing those files again, and
//! searches the Region's folder from `searched` on ([`crate::engine::Settings::searched`]). A
//! run that ends writes the checkpoint without `searched`. `through` moves only when a run
//! ends: chains may be past it. A first run stopped early leaves `through` one second before
//! `start`.
//!
//! Schema 2 added `gap_reported`: the key of the chain's last digest when `trailproof watch`
//! has already reported that no digest followed it within the grace
//! ([`crate::engine::watch::Silence`]), so that a restarted watch does not report the same gap
//! again; it names a gap only while it is the chain's `last`, and is dropped when `last` moves
//! on (a new gap is then reported). Files of schema 1 ([`SCHEMA_1`], which has no such field)
//! are still read, as schema 2 files without gaps: a checkpoint written before an upgrade goes
//! on working; the next one written is of the newest schema. A file that carries a field its
//! schema does not have is refused.
//!
//! `through` is the end of the range the newest run verified: the next run verifies the digests
//! after it ([`VerifiedCheckpoint::resume_at`]). Per chain, `last` is the newest digest whose
//! signature verified (what the next digest's `previousDigestS3Object`,
//! `previousDigestHashValue` and `previousDigestSignature` must name), and `ledger` the exact
//! periods of every run so far, each hour in the worst state any run found it in.
//!
//! Only [`VerifiedCheckpoint::open`] makes a [`VerifiedCheckpoint`], after the signature
//! verified; only [`VerifiedCheckpoint::advance`] moves one on, after the run's evidence was
//! checked against it: the digest before the run's range in each chain must be the recorded
//! `last`, byte for byte, and the oldest new digest must link to it ([`Contradiction`]
//! otherwise).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::dsse::{self, EnvelopeError, Trust};
use super::signing::{KeyError, SigningKey};
use super::{ChainInfo, Filters, Report};
use crate::core::layout::{parse_key, ChainId, CloudTrailKey, Scope};
use crate::core::ledger::{Counts, Ledger, Span};
use crate::core::time::{earlier, later};
use crate::core::types::{decode_lower_hex, S3Location, Sha256};
use crate::engine::{ChainEnds, FinishedChain, FirstLink};

/// The DSSE `payloadType` of a checkpoint.
pub const PAYLOAD_TYPE: &str = "application/vnd.trailproof.checkpoint+json";
/// The payload's `schema`, as written.
pub const SCHEMA: &str = "trailproof-checkpoint/3";
/// The previous schema, still read (see the module docs).
pub const SCHEMA_2: &str = "trailproof-checkpoint/2";
/// The first schema, still read (see the module docs).
pub const SCHEMA_1: &str = "trailproof-checkpoint/1";

/// A checkpoint's payload (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The bucket verified.
    pub bucket: String,
    /// The filters every run of the checkpoint used.
    pub filters: FiltersMark,
    /// The start of the first run's range.
    pub start: Timestamp,
    /// The end of the newest run's range: what the next run starts after.
    pub through: Timestamp,
    /// Every chain verified so far, in chain order.
    pub chains: Vec<ChainMark>,
}

/// The filters of a run, as a checkpoint records them (compared as written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersMark {
    /// `--account-id` values.
    pub accounts: Vec<String>,
    /// `--region` values.
    pub regions: Vec<String>,
    /// `--trail` values.
    pub trails: Vec<String>,
}

/// One chain of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainMark {
    /// Which chain.
    pub chain: ChainInfo,
    /// The newest digest verified so far, if any was.
    pub last: Option<LastDigest>,
    /// Every period so far (standard chains).
    pub ledger: Option<LedgerMark>,
    /// The key of `last` when the watch has reported that no digest followed it in time
    /// (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_reported: Option<String>,
    /// Where the search for log files no digest names was left, when a run that moved `last`
    /// on had not done it yet (schema 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched: Option<Timestamp>,
}

impl ChainMark {
    /// Whether the watch has reported the gap after the chain's last verified digest.
    pub fn gap_said(&self) -> bool {
        matches!((&self.last, &self.gap_reported), (Some(l), Some(k)) if l.key == *k)
    }
}

/// A chain's newest verified digest, as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastDigest {
    /// Its key in the bucket.
    pub key: String,
    /// Lowercase hex SHA-256 of its content.
    pub sha256: String,
    /// Lowercase hex of the signature that verified.
    pub signature: String,
    /// Its `digestEndTime`.
    pub end: Timestamp,
}

/// A chain's ledger so far: its range and exact periods ([`Ledger::periods`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerMark {
    /// Start of the chain's range, over every run.
    pub from: Timestamp,
    /// End of it.
    pub to: Timestamp,
    /// The periods, in order.
    pub periods: Vec<Span>,
}

impl LedgerMark {
    /// The ledger these periods make.
    pub fn ledger(&self) -> Ledger {
        Ledger::of(self.from, self.to, &self.periods)
    }
}

/// Why a checkpoint cannot be read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The envelope is not intact, not signed by the expected key, or not a checkpoint.
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    /// The signed payload is not a checkpoint of this schema.
    #[error("the signed payload is not a {SCHEMA} checkpoint: {detail}")]
    Schema {
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint could not be signed.
    #[error("signing the checkpoint: {0}")]
    Sign(#[from] KeyError),
}

/// Why the evidence contradicts a checkpoint: the run stops, and the checkpoint stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Contradiction {
    /// The checkpoint is of another bucket.
    #[error("the checkpoint is of bucket {checkpoint}, the evidence is bucket {evidence}")]
    Bucket {
        /// The checkpoint's.
        checkpoint: String,
        /// The run's.
        evidence: String,
    },
    /// The run's filters are not the checkpoint's.
    #[error("the checkpoint was made with other filters (--account-id, --region, --trail): {checkpoint}")]
    Filters {
        /// The checkpoint's, as JSON.
        checkpoint: String,
    },
    /// No digest of a chain of the checkpoint is left at or after its last verified one.
    #[error("{chain}: no digest of this chain of the checkpoint is in the evidence any more (its last verified digest was {last})")]
    ChainGone {
        /// The chain's trail ARN and Region.
        chain: String,
        /// The last verified digest's key, or `none`.
        last: String,
    },
    /// The digest before the run's range is not the checkpoint's last one.
    #[error("{chain}: the checkpoint's last verified digest is {last}, but the digest before the new ones is {found}")]
    LastReplaced {
        /// The chain.
        chain: String,
        /// The checkpoint's.
        last: String,
        /// What the evidence holds (`nothing` when no digest is there).
        found: String,
    },
    /// The checkpoint's last digest is there, with other content.
    #[error("{chain}: the checkpoint's last verified digest {last} has changed since the checkpoint (SHA-256 {found}, was {recorded})")]
    LastChanged {
        /// The chain.
        chain: String,
        /// Its key.
        last: String,
        /// The SHA-256 recorded.
        recorded: String,
        /// What it is now (`unreadable` when it cannot be read as a digest).
        found: String,
    },
    /// The oldest new digest links to the checkpoint's last one with another hash or
    /// signature, or to another digest of the checkpoint's time.
    #[error("{chain}: the oldest new digest links to {links_to} {what}, not to the checkpoint's last verified digest {last}")]
    Link {
        /// The chain.
        chain: String,
        /// What it links to.
        links_to: String,
        /// How it differs: `with another hash`, `with another signature`, `(not in the checkpoint)`.
        what: &'static str,
        /// The checkpoint's last digest.
        last: String,
    },
    /// A chain with digests before the checkpoint's end that the checkpoint does not know.
    #[error("{chain}: this chain has digests before the checkpoint's end ({before}) but is not in the checkpoint")]
    UnknownChain {
        /// The chain.
        chain: String,
        /// The digest before the range, or the one the chain's oldest new digest links to.
        before: String,
    },
}

/// A chain's last verified digest, as recorded.
#[derive(Debug, Clone)]
struct Tip {
    location: S3Location,
    sha256: Sha256,
    signature: Vec<u8>,
    /// The time its key names.
    key_time: Timestamp,
}

/// One second: a run takes a chain up just after its last verified digest's time.
const SECOND: SignedDuration = SignedDuration::from_secs(1);

/// A checkpoint whose signature verified. Only [`VerifiedCheckpoint::open`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    /// Per chain, in the checkpoint's order: the chain and its last digest, parsed.
    marks: Vec<(ChainId, Option<Tip>)>,
}

impl VerifiedCheckpoint {
    /// Verifies a checkpoint envelope under `trust` and parses its payload.
    pub fn open(envelope: &[u8], trust: Trust<'_>) -> Result<Self, CheckpointError> {
        let opened = dsse::open(envelope, PAYLOAD_TYPE, trust, &[Timestamp::now()])?;
        let schema = |detail: String| CheckpointError::Schema { detail };
        let checkpoint: Checkpoint =
            serde_json::from_slice(&opened.payload).map_err(|e| schema(e.to_string()))?;
        let gaps = checkpoint.chains.iter().any(|c| c.gap_reported.is_some());
        let searched = checkpoint.chains.iter().any(|c| c.searched.is_some());
        let known = match checkpoint.schema.as_str() {
            SCHEMA => true,
            SCHEMA_2 => !searched,
            SCHEMA_1 => !searched && !gaps,
            _ => false,
        };
        if !known {
            return Err(schema(format!("schema is {:?}", checkpoint.schema)));
        }
        // A first run stopped early ends one second before its start.
        if checkpoint.start > later(checkpoint.through, SECOND) {
            return Err(schema("it starts after its end".into()));
        }
        let mut marks = Vec::with_capacity(checkpoint.chains.len());
        for mark in &checkpoint.chains {
            let chain = chain_id(&mark.chain);
            let last = match &mark.last {
                None => None,
                Some(last) => Some(tip(&checkpoint.bucket, &chain, last).map_err(schema)?),
            };
            if marks.iter().any(|(c, _)| *c == chain) {
                return Err(schema(format!("{} is in it twice", name(&chain))));
            }
            marks.push((chain, last));
        }
        Ok(VerifiedCheckpoint { checkpoint, marks })
    }

    /// What was signed.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Whether this is a first run's checkpoint written while it went on, before it ended (it
    /// ends one second before its start): the next run is run as that first run was, from the
    /// start given or the evidence's.
    pub fn first_run_unfinished(&self) -> bool {
        self.checkpoint.through < self.checkpoint.start
    }

    /// Where the next run's range starts: just after the checkpoint's end (a digest whose
    /// time is the end was verified). Log files no digest names are held to it.
    pub fn resume_at(&self) -> Timestamp {
        later(self.checkpoint.through, SECOND)
    }

    /// Where the next run takes up each chain ([`crate::engine::Settings::resume`]): after its
    /// last verified digest, so that digests the last run could not verify are read again; a
    /// chain none of whose digests verified, from the checkpoint's start.
    pub fn resume(&self) -> BTreeMap<ChainId, Timestamp> {
        self.marks
            .iter()
            .map(|(chain, last)| (chain.clone(), self.cut(last.as_ref())))
            .collect()
    }

    /// Per chain whose search for log files no digest names a stopped run left behind, where
    /// it was left ([`crate::engine::Settings::searched`]).
    pub fn searched(&self) -> BTreeMap<ChainId, Timestamp> {
        self.checkpoint
            .chains
            .iter()
            .filter_map(|m| Some((chain_id(&m.chain), m.searched?)))
            .collect()
    }

    /// Where a chain is taken up: its last digest's time, or just before the start.
    fn cut(&self, last: Option<&Tip>) -> Timestamp {
        match last {
            Some(l) => l.key_time,
            None => earlier(self.checkpoint.start, SECOND),
        }
    }

    /// The checkpoint after `report`, a run over the range from [`Self::resume_at`], once the
    /// run's evidence agrees with this checkpoint: per chain, the digest before the range is
    /// the recorded last one with the recorded content, and the oldest new digest (if it
    /// verified and has a link) links to it with its hash and signature, or to a newer digest
    /// (which the run then reports missing); a chain the checkpoint does not know has no
    /// digest before the range.
    pub fn advance(&self, report: &Report) -> Result<Checkpoint, Contradiction> {
        let filters = FiltersMark::from(&report.filters);
        self.agrees_all(&report.bucket, &filters, &report.chain_ends)?;
        Ok(next(Some(self), report, self.checkpoint.start))
    }

    /// A run of `bucket` with `filters` whose chains ended as `every` says agrees with the
    /// checkpoint (see [`Self::advance`]).
    fn agrees_all(
        &self,
        bucket: &str,
        filters: &FiltersMark,
        every: &[ChainEnds],
    ) -> Result<(), Contradiction> {
        self.same_evidence(bucket, filters)?;
        for (chain, last) in &self.marks {
            let ends = every.iter().find(|e| e.chain == *chain);
            self.agrees(chain, last.as_ref(), ends)?;
        }
        every.iter().try_for_each(|ends| self.agrees_new(ends))
    }

    /// The run's bucket and filters are the checkpoint's.
    fn same_evidence(&self, bucket: &str, filters: &FiltersMark) -> Result<(), Contradiction> {
        let cp = &self.checkpoint;
        if cp.bucket != bucket {
            return Err(Contradiction::Bucket {
                checkpoint: cp.bucket.clone(),
                evidence: bucket.to_owned(),
            });
        }
        if cp.filters != *filters {
            return Err(Contradiction::Filters {
                checkpoint: serde_json::to_string(&cp.filters).unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// A chain of the run: the checkpoint's, or one with no digest in the checkpoint's time.
    fn agrees_new(&self, ends: &ChainEnds) -> Result<(), Contradiction> {
        if self.marks.iter().any(|(c, _)| *c == ends.chain) {
            return Ok(());
        }
        // A chain the checkpoint does not know, with a digest in the checkpoint's time:
        // one found before the range, or one its oldest new digest links to (deleted, or
        // not: a full run reports the link either way; found by the red team, a chain
        // whose history was deleted before the first run then passed in silence).
        let linked = match &ends.oldest {
            FirstLink::Link(link) => match parse_key(&link.location.key) {
                Ok(CloudTrailKey::Digest(k)) if k.end_time <= self.checkpoint.through => {
                    Some(&link.location)
                }
                // Not a digest's name: the run's own findings say so.
                _ => None,
            },
            _ => None,
        };
        match ends.before.as_ref().map(|(b, _)| b).or(linked) {
            Some(before) => Err(Contradiction::UnknownChain {
                chain: name(&ends.chain),
                before: before.uri(),
            }),
            None => Ok(()),
        }
    }

    /// One chain of the checkpoint against what the run found of it.
    fn agrees(
        &self,
        chain: &ChainId,
        last: Option<&Tip>,
        ends: Option<&ChainEnds>,
    ) -> Result<(), Contradiction> {
        let last_name = || last.map_or("none".to_owned(), |l| l.location.uri());
        let Some(ends) = ends else {
            return Err(Contradiction::ChainGone {
                chain: name(chain),
                last: last_name(),
            });
        };
        // A chain none of whose digests verified so far: nothing to hold the evidence to.
        let Some(last) = last else { return Ok(()) };
        match &ends.before {
            Some((at, sha)) if *at == last.location => {
                if *sha != Some(last.sha256) {
                    return Err(Contradiction::LastChanged {
                        chain: name(chain),
                        last: last_name(),
                        recorded: last.sha256.to_hex(),
                        found: sha.map_or("unreadable".to_owned(), |s| s.to_hex()),
                    });
                }
            }
            other => {
                return Err(Contradiction::LastReplaced {
                    chain: name(chain),
                    last: last_name(),
                    found: other
                        .as_ref()
                        .map_or("nothing".to_owned(), |(at, _)| at.uri()),
                })
            }
        }
        let FirstLink::Link(link) = &ends.oldest else {
            // No new digest, one that did not verify, or a signed restart: the run's own
            // findings say what that means.
            return Ok(());
        };
        let mismatch = |what| Contradiction::Link {
            chain: name(chain),
            links_to: link.location.uri(),
            what,
            last: last_name(),
        };
        if link.location == last.location {
            if link.hash != last.sha256 {
                return Err(mismatch("with another hash"));
            }
            if link.signature != last.signature {
                return Err(mismatch("with another signature"));
            }
            return Ok(());
        }
        // A link to a digest after the last one names one the run reports missing; one to
        // an older digest goes around the last one.
        let after_end = match parse_key(&link.location.key) {
            Ok(CloudTrailKey::Digest(k)) => k.end_time > last.key_time,
            _ => false,
        };
        if after_end && link.location.bucket == last.location.bucket {
            Ok(())
        } else {
            Err(mismatch("(not the checkpoint's last digest)"))
        }
    }
}

impl Checkpoint {
    /// The first checkpoint, after a run without one (`report`).
    pub fn first(report: &Report) -> Checkpoint {
        next(None, report, report.range.start)
    }

    /// Per chain with a verified digest, the time its last verified digest's key names: what
    /// the next run takes the chain up after ([`VerifiedCheckpoint::resume`]).
    pub fn verified_through(&self) -> BTreeMap<ChainId, Timestamp> {
        self.chains
            .iter()
            .filter_map(|m| match parse_key(&m.last.as_ref()?.key) {
                Ok(CloudTrailKey::Digest(k)) => Some((chain_id(&m.chain), k.end_time)),
                _ => None,
            })
            .collect()
    }

    /// The hours of every chain so far, per state.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for mark in self.chains.iter().filter_map(|c| c.ledger.as_ref()) {
            counts.add_all(&mark.ledger().counts);
        }
        counts
    }

    /// The checkpoint as a signed envelope (compact JSON payload), with a newline.
    pub fn seal(&self, key: &SigningKey) -> Result<Vec<u8>, CheckpointError> {
        let payload = serde_json::to_vec(self).map_err(|e| CheckpointError::Schema {
            detail: e.to_string(),
        })?;
        Ok(dsse::seal(PAYLOAD_TYPE, &payload, key, None)?.to_bytes())
    }
}

/// The checkpoint after `report`, from `prior` (already checked against it). The run searched
/// every Region's folder from where any search was left: no chain keeps a `searched` mark.
fn next(prior: Option<&VerifiedCheckpoint>, report: &Report, start: Timestamp) -> Checkpoint {
    let mut chains: Vec<ChainMark> = prior
        .map(|p| p.checkpoint.chains.clone())
        .unwrap_or_default();
    let cuts = prior.map(VerifiedCheckpoint::resume).unwrap_or_default();
    for ends in &report.chain_ends {
        let info = ChainInfo::from(&ends.chain);
        let run_ledger = report
            .chains
            .iter()
            .find(|c| same_chain(&c.chain, &info))
            .and_then(|c| c.ledger.as_ref());
        move_on(
            &mut chains,
            ends,
            run_ledger,
            cuts.get(&ends.chain).copied(),
        );
    }
    for mark in &mut chains {
        mark.searched = None;
    }
    chains.sort_by_key(|m| chain_id(&m.chain));
    Checkpoint {
        schema: SCHEMA.to_owned(),
        bucket: report.bucket.clone(),
        filters: FiltersMark::from(&report.filters),
        start,
        through: report.range.end,
        chains,
    }
}

/// Moves the mark of the chain `ends` is about on, in `chains` (added if new): its last verified
/// digest, and its ledger joined to the run's (`run`) at where the run took it up (`cut`).
/// Returns the mark.
fn move_on<'c>(
    chains: &'c mut Vec<ChainMark>,
    ends: &ChainEnds,
    run: Option<&Ledger>,
    cut: Option<Timestamp>,
) -> &'c mut ChainMark {
    let info = ChainInfo::from(&ends.chain);
    let slot = match chains.iter().position(|m| same_chain(&m.chain, &info)) {
        Some(i) => i,
        None => {
            chains.push(ChainMark {
                chain: info,
                last: None,
                ledger: None,
                gap_reported: None,
                searched: None,
            });
            chains.len() - 1
        }
    };
    let mark = &mut chains[slot];
    if let Some(newest) = &ends.newest {
        // A gap is said of one last digest: a newer one ends it.
        if mark.gap_reported.as_deref() != Some(newest.location.key.as_str()) {
            mark.gap_reported = None;
        }
        mark.last = Some(LastDigest {
            key: newest.location.key.clone(),
            sha256: newest.sha256.to_hex(),
            signature: hex::encode(&newest.signature),
            end: newest.end,
        });
    }
    if let Some(run) = run {
        let prior = mark.ledger.take();
        mark.ledger = Some(joined(prior.zip(cut), run));
    }
    mark
}

/// A checkpoint moved on chain by chain while a run goes on
/// ([`crate::engine::verify_resumable`]), so that a run stopped halfway loses only the chains
/// in flight: each chain the run is done with is checked against the checkpoint read (as
/// [`VerifiedCheckpoint::advance`] checks a whole run) and its mark moved on, with `searched`
/// kept (see the module docs); `through` stays.
pub struct Underway<'a> {
    prior: Option<&'a VerifiedCheckpoint>,
    /// Where the run takes up each chain of `prior`.
    cuts: BTreeMap<ChainId, Timestamp>,
    /// The checkpoint so far, once the first chain is done; or why the run's evidence
    /// contradicts the checkpoint read (nothing is written then).
    checkpoint: Option<Result<Checkpoint, Contradiction>>,
    filters: FiltersMark,
}

impl<'a> Underway<'a> {
    /// A run with `filters`, after `prior` (if the file existed).
    pub fn new(prior: Option<&'a VerifiedCheckpoint>, filters: &Filters) -> Self {
        Underway {
            prior,
            cuts: prior.map(VerifiedCheckpoint::resume).unwrap_or_default(),
            checkpoint: None,
            filters: FiltersMark::from(filters),
        }
    }

    /// The checkpoint so far, if a chain moved it on.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()?.as_ref().ok()
    }

    /// The checkpoint with `chain`'s mark moved on, once the run's evidence agrees with the
    /// checkpoint read (every chain of it is checked the first time, as
    /// [`VerifiedCheckpoint::advance`] checks a whole run: a contradiction writes nothing);
    /// `None` when the mark did not move (no newer digest verified).
    pub fn finish(
        &mut self,
        chain: &FinishedChain<'_>,
    ) -> Result<Option<&Checkpoint>, Contradiction> {
        let ends = chain.ends;
        let slot = self.checkpoint.get_or_insert_with(|| match self.prior {
            Some(prior) => prior
                .agrees_all(chain.bucket, &self.filters, chain.every)
                .map(|()| prior.checkpoint.clone()),
            None => Ok(Checkpoint {
                schema: SCHEMA.to_owned(),
                bucket: chain.bucket.to_owned(),
                filters: self.filters.clone(),
                start: chain.range.start,
                through: earlier(chain.range.start, SECOND),
                chains: Vec::new(),
            }),
        });
        let checkpoint = slot.as_mut().map_err(|e| e.clone())?;
        let cut = self.cuts.get(&ends.chain).copied();
        let before = checkpoint
            .chains
            .iter()
            .find(|m| chain_id(&m.chain) == ends.chain)
            .and_then(|m| m.last.clone());
        // Where the next run's search must go back to: where this run's started.
        let left = cut.unwrap_or(checkpoint.through);
        let mark = move_on(
            &mut checkpoint.chains,
            ends,
            chain.report.ledger.as_ref(),
            cut,
        );
        if mark.last == before {
            // Nothing newer verified: the next run takes the chain up where this one did.
            return Ok(None);
        }
        mark.searched = Some(mark.searched.map_or(left, |s| s.min(left)));
        checkpoint.chains.sort_by_key(|m| chain_id(&m.chain));
        Ok(Some(checkpoint))
    }
}

/// The ledger so far, up to where the run took the chain up (`cut`), and the run's from there,
/// as one: the run's periods start just after the cut, and the first of them reaches back to it
/// (its first digest's window starts at the previous digest's end, which the range cut off).
fn joined(prior: Option<(LedgerMark, Timestamp)>, run: &Ledger) -> LedgerMark {
    let Some((prior, cut)) = prior else {
        return LedgerMark {
            from: run.from,
            to: run.to,
            periods: run.periods.clone(),
        };
    };
    let mut periods: Vec<Span> = prior
        .periods
        .iter()
        .filter(|p| p.from < cut)
        .map(|p| Span {
            to: p.to.min(cut),
            ..*p
        })
        .collect();
    let mut run_periods = run.periods.iter().copied();
    if let Some(mut first) = run_periods.next() {
        first.from = first.from.min(cut);
        periods.push(first);
    }
    periods.extend(run_periods);
    let (from, to) = (prior.from.min(run.from), run.to.max(cut));
    let periods = Ledger::of(from, to, &periods).periods;
    LedgerMark { from, to, periods }
}

impl From<&Filters> for FiltersMark {
    /// The filters as a checkpoint records them.
    fn from(f: &Filters) -> FiltersMark {
        // As sets: `--region a --region b` selects what `--region b --region a` does (found by
        // the red team: the other order was refused as other filters).
        let set = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v.dedup();
            v
        };
        FiltersMark {
            accounts: set(&f.accounts),
            regions: set(&f.regions),
            trails: set(&f.trails),
        }
    }
}

/// A checkpoint's chain, as the engine names it.
fn chain_id(info: &ChainInfo) -> ChainId {
    ChainId {
        scope: Scope {
            prefix: info.prefix.clone(),
            organization: info.organization.clone(),
            account: info.account.clone(),
            region: info.region.clone(),
        },
        trail: info.trail.clone(),
        home_region: info.home_region.clone(),
        backfill: info.backfill,
    }
}

fn same_chain(a: &ChainInfo, b: &ChainInfo) -> bool {
    chain_id(a) == chain_id(b)
}

/// A chain as messages name it.
fn name(chain: &ChainId) -> String {
    let kind = if chain.backfill { " (backfill)" } else { "" };
    format!("{} in {}{kind}", chain.trail_arn(), chain.scope.region)
}

/// A recorded last digest, parsed: a digest key of `chain`, a SHA-256, a signature.
fn tip(bucket: &str, chain: &ChainId, last: &LastDigest) -> Result<Tip, String> {
    let key_time = match parse_key(&last.key) {
        Ok(CloudTrailKey::Digest(k)) if k.chain() == *chain => k.end_time,
        _ => return Err(format!("{} is no digest of its chain", last.key)),
    };
    let sha256 = Sha256::from_lower_hex(&last.sha256)
        .ok_or_else(|| format!("{}: sha256 is not lowercase hex", last.key))?;
    let signature = decode_lower_hex(&last.signature)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: signature is not lowercase hex", last.key))?;
    Ok(Tip {
        location: S3Location::new(bucket, &last.key),
        sha256,
        signature,
        key_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pem(&crate::report::signing::tests::key_file("ed25519.pem")).unwrap()
    }

    /// A checkpoint of `schema` with one chain, its gap said or not, its search left or not.
    fn sealed(schema: &str, gap: bool, searched: bool) -> Vec<u8> {
        let key = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20260101T012828Z.json.gz";
        let chain: ChainInfo = serde_json::from_value(serde_json::json!({
            "prefix": "", "organization": null, "account": "111122223333", "region": "us-east-1",
            "trail": "main", "home_region": "us-east-1", "backfill": false,
            "trail_arn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"
        }))
        .unwrap();
        let checkpoint = Checkpoint {
            schema: schema.into(),
            bucket: "b".into(),
            filters: FiltersMark::from(&Filters::default()),
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            through: "2026-01-01T01:28:28Z".parse().unwrap(),
            chains: vec![ChainMark {
                chain,
                last: Some(LastDigest {
                    key: key.into(),
                    sha256: "00".repeat(32),
                    signature: "01".into(),
                    end: "2026-01-01T01:00:00Z".parse().unwrap(),
                }),
                ledger: None,
                gap_reported: gap.then(|| key.to_owned()),
                searched: searched.then(|| "2026-01-01T00:00:00Z".parse().unwrap()),
            }],
        };
        checkpoint.seal(&self::key()).unwrap()
    }

    /// Checkpoints written before schemas 2 and 3 are still read (a daily job goes on after
    /// an upgrade); a file cannot carry a later schema's fields (gap marks, search marks), and
    /// other schemas are refused.
    #[test]
    fn older_schemas_are_still_read_and_others_refused() {
        let k = key();
        let open = |bytes: &[u8]| VerifiedCheckpoint::open(bytes, Trust::Key(k.public()));
        let v1 = open(&sealed(SCHEMA_1, false, false)).unwrap();
        assert!(!v1.checkpoint().chains[0].gap_said());
        let v2 = open(&sealed(SCHEMA_2, true, false)).unwrap();
        assert!(v2.checkpoint().chains[0].gap_said());
        assert!(v2.searched().is_empty());
        let v3 = open(&sealed(SCHEMA, true, true)).unwrap();
        assert_eq!(v3.searched().len(), 1);
        for (schema, gap, searched) in [
            (SCHEMA_1, true, false),
            (SCHEMA_1, false, true),
            (SCHEMA_2, false, true),
            ("trailproof-checkpoint/4", false, false),
        ] {
            assert!(matches!(
                open(&sealed(schema, gap, searched)),
                Err(CheckpointError::Schema { .. })
            ));
        }
    }

    /// Found by the red team: a checkpoint made with `--region us-east-1 --region eu-west-1`
    /// refused a run given the same Regions in the other order.
    #[test]
    fn filters_given_in_another_order_are_the_same_filters() {
        let f = |regions: &[&str]| Filters {
            accounts: vec!["111122223333".into()],
            regions: regions.iter().map(|r| r.to_string()).collect(),
            trails: Vec::new(),
        };
        let a = FiltersMark::from(&f(&["us-east-1", "eu-west-1"]));
        assert_eq!(a, FiltersMark::from(&f(&["eu-west-1", "us-east-1"])));
        assert_eq!(
            a,
            FiltersMark::from(&f(&["eu-west-1", "us-east-1", "eu-west-1"]))
        );
        assert_ne!(a, FiltersMark::from(&f(&["eu-west-1"])));
    }
}
