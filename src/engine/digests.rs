//! Reading the digests: their bytes parsed (log lists set aside), the bucket they are about,
//! the chains they make up, and the public keys those chains need.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use jiff::SignedDuration;
use rayon::prelude::*;

use super::{EngineError, Settings};
use crate::core::chain::{ContentProblem, DigestCandidate, Range};
use crate::core::digest::{listed_log_files, ParsedDigest};
use crate::core::evidence::GenerationTime;
use crate::core::gz::{inflate_all, Limits};
use crate::core::layout::{ChainId, DigestKey};
use crate::core::sign::SigningTime;
use crate::core::time::{earlier, later};
use crate::core::types::S3Location;
use crate::source::progress::{Observer, Phase, Progress};
use crate::source::{KeyNeeds, ObjectSource, ReadError, StoredObject};

/// Digests read per batch: their stored bytes are held only until they are parsed (or kept,
/// see [`Kept`]). Enough to fill the requests in flight of a remote source.
const DIGEST_BATCH: usize = 512;

/// The most stored digest bytes a run keeps for their log lists ([`Kept`]): tens of
/// thousands of digests; beyond it, digests are read again.
const KEPT_BUDGET: usize = 64 << 20;

/// The stored bytes of digests read from a remote source, kept (within [`KEPT_BUDGET`]) until
/// their log lists are needed, so that each digest is fetched once: reading one again costs a
/// request, and the log files it names wait for it. Only bytes whose strict parse passed are
/// kept, and they are used only through [`ParsedDigest::log_files_from`], like bytes read
/// again: they are the very bytes first parsed. A local copy keeps nothing (reading again is
/// a read from the disk) and memory stays flat in the number of digests.
pub(super) struct Kept {
    bytes: Mutex<(HashMap<String, Vec<u8>>, usize)>,
}

impl Kept {
    /// Keeps digests read from `source` if it is remote.
    pub(super) fn for_source(source: &dyn ObjectSource) -> Self {
        Kept::with_budget(if source.remote() { KEPT_BUDGET } else { 0 })
    }

    /// Keeps nothing.
    pub(super) fn nothing() -> Self {
        Kept::with_budget(0)
    }

    fn with_budget(budget: usize) -> Self {
        Kept {
            bytes: Mutex::new((HashMap::new(), budget)),
        }
    }

    /// Keeps `bytes` as what was read at `key`, if the budget allows.
    fn keep(&self, key: &str, bytes: Vec<u8>) {
        let mut kept = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, left) = &mut *kept;
        if bytes.len() <= *left {
            *left -= bytes.len();
            map.insert(key.to_owned(), bytes);
        }
    }

    /// What was kept for `key`, given up.
    pub(super) fn take(&self, key: &str) -> Option<Vec<u8>> {
        let mut kept = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, left) = &mut *kept;
        let bytes = map.remove(key)?;
        *left += bytes.len();
        Some(bytes)
    }
}

/// One digest after reading and parsing.
pub(super) struct ReadDigest {
    key: DigestKey,
    key_text: String,
    content: Result<ParsedDigest, ContentProblem>,
    signature: Option<Vec<u8>>,
    backfill_generated: GenerationTime,
}

/// Reads and parses the digests, setting their log lists aside (see
/// [`crate::core::digest::LogFiles`]) and their bytes in `kept`, as one phase for `observer`.
/// `gone`: the keys the source's records name but no listing found.
pub(super) fn read_digests(
    source: &dyn ObjectSource,
    digests: Vec<DigestKey>,
    gone: &BTreeSet<String>,
    observer: &dyn Observer,
    kept: &Kept,
) -> Vec<ReadDigest> {
    let total = Some(digests.len() as u64);
    let progress = Progress::start(observer, Phase::DigestsRead, total);
    let mut read = Vec::with_capacity(digests.len());
    for batch in digests.chunks(DIGEST_BATCH) {
        let keys: Vec<String> = batch.iter().map(DigestKey::format).collect();
        let stored = source.read_digests(&keys, &progress);
        read.par_extend(
            batch
                .par_iter()
                .zip(keys)
                .zip(stored)
                .map(|((key, key_text), stored)| {
                    let recorded = gone.contains(&key_text);
                    ReadDigest::new(key.clone(), key_text, stored, recorded, kept)
                }),
        );
    }
    read
}

impl ReadDigest {
    fn new(
        key: DigestKey,
        key_text: String,
        stored: Result<StoredObject, ReadError>,
        // Named by the source's records, found by no listing.
        recorded: bool,
        kept: &Kept,
    ) -> Self {
        let (content, signature, backfill_generated) = match stored {
            Ok(StoredObject { bytes, facts, .. }) => {
                let content = parse(&bytes);
                if content.is_ok() {
                    kept.keep(&key_text, bytes);
                }
                (content, facts.signature, facts.backfill_generated)
            }
            Err(e) => (Err(unread(e, recorded)), None, GenerationTime::Unknown),
        };
        ReadDigest {
            key,
            key_text,
            content,
            signature,
            backfill_generated,
        }
    }
}

/// A digest's stored bytes, inflated and parsed, its log list set aside.
fn parse(bytes: &[u8]) -> Result<ParsedDigest, ContentProblem> {
    let raw = inflate_all(bytes, Limits::DIGEST).map_err(|p| ContentProblem::Format {
        detail: p.to_string(),
        listed: Vec::new(),
    })?;
    match ParsedDigest::parse(&raw) {
        Ok(mut digest) => {
            digest.set_aside_log_files();
            Ok(digest)
        }
        Err(e) => Err(lenient_format(e.to_string(), &raw)),
    }
}

/// Why a digest has no content, from why it could not be read. `recorded`: the source's
/// records name it though no listing found it.
fn unread(e: ReadError, recorded: bool) -> ContentProblem {
    match e {
        ReadError::NotFound if recorded => ContentProblem::Gone(
            "the evidence-metadata file records it (at acquisition); the copy does not hold it"
                .into(),
        ),
        ReadError::NotFound => ContentProblem::Unreadable("listed but gone when read".into()),
        ReadError::Escape(d) => ContentProblem::PathEscape(d),
        ReadError::OtherBucket => ContentProblem::Unreadable("in another bucket".into()),
        ReadError::Failed(f) => ContentProblem::Unreadable(f.to_string()),
        // Not a digest file at all: its format is wrong, not its reading.
        ReadError::NotAFile(what) => ContentProblem::Format {
            detail: not_a_file(what),
            listed: Vec::new(),
        },
        ReadError::Archived(class) => ContentProblem::Archived(class),
    }
}

/// A digest that failed the strict parse, with the log files it still names (at most
/// [`crate::core::digest::MAX_LENIENTLY_LISTED`]; the detail says when it lists more).
fn lenient_format(mut detail: String, raw: &[u8]) -> ContentProblem {
    let listing = listed_log_files(raw);
    if listing.entries > listing.names.len() {
        detail.push_str(&format!(
            "; it lists {} log files, of which only the first {} named are reported",
            listing.entries,
            listing.names.len()
        ));
    }
    ContentProblem::Format {
        detail,
        listed: listing.names,
    }
}

/// The detail of a finding on something that is not a file at all (a FIFO, a device), which no
/// copy of an S3 object can be: it was not read.
pub(super) fn not_a_file(what: &str) -> String {
    format!("not a regular file but {what}: not read")
}

/// The digests read, by chain, ready to walk. A signature given for a chain head
/// ([`Settings::head_signatures`]) takes the place of the one stored with it.
pub(super) fn candidates(
    read: Vec<ReadDigest>,
    bucket: &str,
    settings: &Settings,
) -> BTreeMap<ChainId, Vec<DigestCandidate>> {
    let mut chains: BTreeMap<ChainId, Vec<DigestCandidate>> = BTreeMap::new();
    for r in read {
        let signature = settings
            .head_signatures
            .get(&r.key_text)
            .cloned()
            .or(r.signature);
        let candidate = DigestCandidate {
            location: S3Location::new(bucket, &r.key_text),
            backfill_generated: r.backfill_generated,
            key: r.key.clone(),
            content: r.content,
            signature,
        };
        chains.entry(r.key.chain()).or_default().push(candidate);
    }
    chains
}

/// The bucket: as given, as the source knows it, or as the in-place digests say.
pub(super) fn resolve_bucket(
    source: &dyn ObjectSource,
    settings: &Settings,
    read: &[ReadDigest],
) -> Result<String, EngineError> {
    match (&settings.bucket, source.bucket()) {
        (Some(given), Some(recorded)) if *given != recorded => Err(EngineError::BucketConflict {
            given: given.clone(),
            recorded,
        }),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(recorded)) => Ok(recorded),
        (None, None) => {
            // Only digests that sit where they say they were delivered may name the bucket:
            // a copied-in digest of another bucket must not redirect the run.
            let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
            for r in read {
                if let Ok(d) = &r.content {
                    if d.location.key == r.key_text {
                        *votes.entry(d.location.bucket.as_str()).or_default() += 1;
                    }
                }
            }
            votes
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(b, _)| b.to_owned())
                .ok_or(EngineError::NoBucket)
        }
    }
}

/// The keys the AWS CLI would ask for: the range plus two hours in each source Region, and each
/// backfill digest's generation time plus or minus an hour; without a generation time, from the
/// digest's end over the bound the chain walker allows (`SigningTime::backfill_unknown`).
/// Times from the evidence (a key's, unsigned S3 metadata) and from flags may lie at the ends
/// of what a timestamp can hold: the windows saturate there.
pub(super) fn key_needs(
    chains: &[&BTreeMap<ChainId, Vec<DigestCandidate>>],
    range: Range,
) -> KeyNeeds {
    let digests = chains.iter().flat_map(|c| c.values()).flatten();
    needs(
        digests.map(|c| (&c.key, Some(&c.backfill_generated))),
        range,
    )
}

/// What [`key_needs`] can tell from the digests' keys alone, before they are read: all but
/// the windows of backfill digests, which their S3 metadata gives. Asked for while the
/// digests are read, so that most runs find their keys at hand.
pub(super) fn listed_key_needs(digests: &[&[DigestKey]], range: Range) -> KeyNeeds {
    needs(digests.iter().copied().flatten().map(|k| (k, None)), range)
}

/// The keys needed for digests with these keys and generation times (`None`: not read yet).
fn needs<'a>(
    digests: impl Iterator<Item = (&'a DigestKey, Option<&'a GenerationTime>)>,
    range: Range,
) -> KeyNeeds {
    let hour = SignedDuration::from_hours(1);
    let mut windows = vec![(range.start, later(range.end, 2 * hour))];
    let mut regions = BTreeSet::new();
    for (key, generated) in digests {
        regions.insert(key.scope.region.clone());
        match generated {
            Some(GenerationTime::Stated(t)) => windows.push((earlier(*t, hour), later(*t, hour))),
            Some(GenerationTime::Unknown) if key.backfill => {
                let bound = SigningTime::backfill_unknown(key.end_time);
                windows.push((bound.earliest, bound.latest));
            }
            _ => {}
        }
        // Digests read only for the range's edges are verified too: their links are believed
        // only then.
        let t = key.end_time;
        if !range.holds_digest(t) {
            windows.push((earlier(t, hour), later(t, hour)));
        }
    }
    windows.sort();
    windows.dedup();
    KeyNeeds { regions, windows }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::core::layout::{parse_key, CloudTrailKey, ObjectType};
    use crate::engine::plan::{list_request, resolve_range};

    /// The keys a remote run asks for while it reads its digests ([`listed_key_needs`]) are
    /// keys it then needs: every Region, and every window but those the backfill digests'
    /// metadata gives. A Region or window asked ahead but not needed would be a request the
    /// run waits for in vain; one missing, a round trip after the digests are read.
    #[test]
    fn keys_asked_ahead_are_the_keys_the_run_needs() {
        use crate::engine::plan::plan;
        use crate::source::progress::NoObserver;
        for name in [
            "clean-plain",
            "clean-org",
            "clean-backfill",
            "clean-key-rotation",
        ] {
            let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/cases")
                .join(name);
            let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
            let settings = Settings::default();
            let plan = plan(&source, &settings, &NoObserver).unwrap();
            let ahead = listed_key_needs(&[&plan.digests, &plan.other_trails], plan.range);
            let read = read_digests(
                &source,
                plan.digests.clone(),
                &plan.gone,
                &NoObserver,
                &Kept::nothing(),
            );
            let bucket = resolve_bucket(&source, &settings, &read).unwrap();
            let chains = candidates(read, &bucket, &settings);
            let needs = key_needs(&[&chains], plan.range);
            assert_eq!(ahead.regions, needs.regions, "{name}");
            assert!(
                ahead.windows.iter().all(|w| needs.windows.contains(w)),
                "{name}: {ahead:?} {needs:?}"
            );
            let backfill = plan.digests.iter().any(|d| d.backfill);
            assert_eq!(backfill, name == "clean-backfill", "{name}");
            if !backfill {
                assert_eq!(ahead, needs, "{name}");
            }
        }
    }

    /// A digest key ending 9999-12-30T21:59:59Z, a backfill generation time at either end of
    /// what a timestamp holds (unsigned S3 metadata) and `--end-time 9999-12-30T21:00:00Z`
    /// each panicked in this arithmetic.
    #[test]
    fn times_at_the_ends_of_the_representable_range_saturate() {
        let last: Timestamp = "9999-12-30T21:59:59Z".parse().unwrap();
        let first: Timestamp = "-009999-01-02T01:59:59Z".parse().unwrap();
        let key = parse_key("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/9999/12/30/111122223333_CloudTrail-Digest_us-east-1_trail-a_us-east-1_99991230T215959Z_backfill.json.gz").unwrap();
        let CloudTrailKey::Digest(key) = key else {
            panic!("a digest key")
        };
        let candidate = |t| DigestCandidate {
            location: S3Location::new("b", "k"),
            key: key.clone(),
            content: Err(ContentProblem::Unreadable(String::new())),
            signature: None,
            backfill_generated: GenerationTime::Stated(t),
        };
        let chains = BTreeMap::from([(key.chain(), vec![candidate(first), candidate(last)])]);
        // An end from the evidence stops at the clock: the end of time is asked for.
        let to_the_end = Settings {
            end: Some(last),
            ..Settings::default()
        };
        let (range, _) = resolve_range(&to_the_end, (first, last)).unwrap();
        assert_eq!((range.start, range.end), (Timestamp::MIN, last));
        let needs = key_needs(&[&chains], range);
        assert_eq!(
            needs.windows,
            [
                (
                    Timestamp::MIN,
                    first.checked_add(SignedDuration::from_hours(1)).unwrap()
                ),
                (Timestamp::MIN, Timestamp::MAX),
                (
                    last.checked_sub(SignedDuration::from_hours(1)).unwrap(),
                    Timestamp::MAX
                ),
            ]
        );
        let settings = Settings {
            start: Some(first),
            end: Some("9999-12-30T21:00:00Z".parse().unwrap()),
            ..Settings::default()
        };
        let request = list_request(&settings, ObjectType::Log);
        assert_eq!(
            request.range,
            Some((first, "9999-12-30T22:00:00Z".parse().unwrap()))
        );
        let settings = Settings {
            end: Some(last),
            ..settings
        };
        let request = list_request(&settings, ObjectType::Log);
        assert_eq!(request.range, Some((first, Timestamp::MAX)));
    }
}
