//! Where each chain of a run starts and stops: what a checkpoint records of a run
//! ([`crate::report::checkpoint`]), and what the next run's first digest must link to.
//!
//! Taken from the walk, before any log file is read; it decides nothing and reports nothing:
//! the walk's findings stand as they are.

use jiff::Timestamp;

use crate::core::chain::{DigestStatus, Listed, Range, WalkedChain};
use crate::core::digest::PreviousLink;
use crate::core::layout::ChainId;
use crate::core::types::{S3Location, Sha256};

/// One chain's ends in a run.
#[derive(Debug, Clone)]
pub struct ChainEnds {
    /// Which chain.
    pub chain: ChainId,
    /// The newest digest of the range whose signature verified.
    pub newest: Option<DigestTip>,
    /// What the oldest digest of the range links to.
    pub oldest: FirstLink,
    /// The nearest digest before the range (read only for the range's edge): where it is, and
    /// the SHA-256 of its content when it could be read as a digest.
    pub before: Option<(S3Location, Option<Sha256>)>,
}

/// A verified digest, as the next digest of its chain must name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestTip {
    /// Where it is.
    pub location: S3Location,
    /// SHA-256 of its content (`previousDigestHashValue` of the next one).
    pub sha256: Sha256,
    /// The signature that verified (`previousDigestSignature` of the next one).
    pub signature: Vec<u8>,
    /// `digestEndTime`.
    pub end: Timestamp,
}

/// What the oldest digest of a run's range says came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLink {
    /// The chain has no digest in the range.
    NoDigest,
    /// The oldest digest did not verify: its link is not believed.
    Unverified,
    /// It verified and starts the chain (logging or validation was started or restarted).
    Start,
    /// It verified and links to this digest.
    Link(PreviousLink),
}

impl ChainEnds {
    /// The ends of a walked chain over `range`.
    pub(super) fn of(chain: &ChainId, walked: &WalkedChain, range: Range) -> ChainEnds {
        // Newest first; context digests lie outside the range.
        let members = || walked.digests.iter().filter(|w| !w.context);
        let newest = members().find_map(|w| match &w.status {
            DigestStatus::Verified(v) => Some(DigestTip {
                location: w.location.clone(),
                sha256: v.digest().sha256(),
                signature: v.signature().to_vec(),
                end: v.digest().end,
            }),
            DigestStatus::Unverified { .. } => None,
        });
        let oldest = match members().next_back().map(|w| &w.status) {
            None => FirstLink::NoDigest,
            Some(DigestStatus::Unverified { .. }) => FirstLink::Unverified,
            Some(DigestStatus::Verified(v)) => match &v.digest().previous {
                None => FirstLink::Start,
                Some(link) => FirstLink::Link(link.clone()),
            },
        };
        let before = walked
            .digests
            .iter()
            .filter(|w| w.context && w.key.end_time < range.start)
            .max_by_key(|w| w.key.end_time)
            .map(|w| {
                let sha256 = match &w.status {
                    DigestStatus::Verified(v) => Some(v.digest().sha256()),
                    DigestStatus::Unverified {
                        listed: Listed::SetAside(d),
                    } => Some(d.sha256()),
                    DigestStatus::Unverified {
                        listed: Listed::Names(_),
                    } => None,
                };
                (w.location.clone(), sha256)
            });
        ChainEnds {
            chain: chain.clone(),
            newest,
            oldest,
            before,
        }
    }
}
