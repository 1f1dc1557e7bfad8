//! Sets of texts kept as 64-bit hashes: a run remembers one per log file.

use std::hash::{BuildHasher, RandomState};

/// Texts remembered as 64-bit hashes rather than themselves, so that a run can keep one per
/// log file: the keys the digests name (to find files no digest names), the valid files
/// counted. The hash is keyed afresh for every run, so no text can be crafted to collide with
/// another; by chance, with a million texts held, another is taken for one of them with odds
/// of about 1 in 2e13.
pub(super) struct TextHashes {
    hashes: Vec<u64>,
    hasher: RandomState,
}

impl TextHashes {
    /// Room for `n` texts.
    pub(super) fn with_capacity(n: usize) -> Self {
        TextHashes {
            hashes: Vec::with_capacity(n),
            hasher: RandomState::new(),
        }
    }

    /// Adds `text`, even if it is there already (see [`TextHashes::len`]).
    pub(super) fn insert(&mut self, text: &str) {
        self.hashes.push(self.hash(text));
    }

    /// How many texts were inserted, counting each time.
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    /// Sorted, each once, for lookups.
    pub(super) fn into_set(mut self) -> TextSet {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        TextSet(self)
    }
}

/// [`TextHashes`] ready for lookups, each once.
pub(super) struct TextSet(TextHashes);

impl TextSet {
    /// Whether `text` (or, by chance, a text of the same hash) is in the set.
    pub(super) fn contains(&self, text: &str) -> bool {
        self.0.hashes.binary_search(&self.hash(text)).is_ok()
    }

    /// The hash `text` has in this set.
    pub(super) fn hash(&self, text: &str) -> u64 {
        self.0.hash(text)
    }

    /// The hashes held, each once.
    pub(super) fn hashes(&self) -> impl Iterator<Item = &u64> {
        self.0.hashes.iter()
    }
}
