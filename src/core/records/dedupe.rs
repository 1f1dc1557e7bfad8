//! One record per `eventID` among records delivered more than once, with bounded memory.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use jiff::{SignedDuration, Timestamp};

use super::Provenance;
use crate::core::time::earlier;

/// What [`Dedupe::push`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Kept: no record with its `eventID` is pending (or it has none).
    New,
    /// A duplicate: a pending record has the same `eventID` and the same text; its provenance
    /// now lists this one's carriers (see [`Provenance::merge`]), and this one's item is
    /// dropped: the first copy's item is the one released.
    Duplicate,
    /// Kept, though a pending record has the same `eventID`: their texts differ, so they are
    /// two records as far as the evidence goes, and both are written.
    Conflict,
}

/// What a [`Dedupe`] did, for the run's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupeStats {
    /// Records dropped as duplicates of a pending one ([`Pushed::Duplicate`]).
    pub duplicates_removed: u64,
    /// Records kept beside a pending one with the same `eventID` and another text
    /// ([`Pushed::Conflict`]).
    pub conflicts: u64,
    /// Records released before their window had passed because [`Dedupe`]'s cap was reached:
    /// a later copy of one of them is written again.
    pub released_early: u64,
    /// Records with an `eventID` for which the window cannot vouch that every copy of them
    /// was merged: one with no `eventTime`, one whose `eventTime` is more than a slack
    /// ([`Dedupe::SLACK`]) after its delivery, or more than the window less that slack before
    /// the newest delivery pushed (a copy delivered so late may come after the first was
    /// released). Every copy written twice has itself or its first copy counted here or in
    /// `released_early`: a duplicate that escapes the window never goes unsaid.
    pub outside_window: u64,
}

/// A waiting record. Its text (then its `eventID`) is in the [`Texts`].
struct Slot<T> {
    delivered: Timestamp,
    /// Where its text starts in the [`Texts`]: chunk number and offset.
    chunk: u64,
    at: usize,
    text_len: usize,
    /// The length of its `eventID` (stored after the text) and the hashes it is indexed by
    /// (of the eventID and text, of the eventID); `None` without an `eventID`.
    id: Option<(usize, u32, u32)>,
    item: T,
    provenance: Provenance,
}

/// The texts of the waiting records, first in first out, in chunks of [`Texts::CHUNK`] bytes
/// (or one record's size, when larger): no allocation per record, and memory given back in
/// whole chunks as records are released, however long the run (held as one `String` per
/// record, the heap fragmented as records of every size came and went: peak memory grew by
/// half for ten times the records).
struct Texts {
    chunks: VecDeque<String>,
    /// The number of `chunks`' front.
    front: u64,
    /// An emptied chunk, kept to be filled again.
    spare: Option<String>,
}

impl Texts {
    const CHUNK: usize = 1 << 20;

    /// Appends `parts` together; gives their chunk and offset.
    fn push(&mut self, parts: [&str; 2]) -> (u64, usize) {
        let len = parts[0].len() + parts[1].len();
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.capacity() - c.len() >= len);
        if !fits {
            let chunk = match self.spare.take() {
                Some(c) if c.capacity() >= len => c,
                _ => String::with_capacity(len.max(Self::CHUNK)),
            };
            self.chunks.push_back(chunk);
        }
        let number = self.front + self.chunks.len() as u64 - 1;
        let Some(chunk) = self.chunks.back_mut() else {
            return (number, 0);
        };
        let at = chunk.len();
        chunk.push_str(parts[0]);
        chunk.push_str(parts[1]);
        (number, at)
    }

    fn get(&self, chunk: u64, at: usize, len: usize) -> &str {
        chunk
            .checked_sub(self.front)
            .and_then(|i| self.chunks.get(usize::try_from(i).ok()?))
            .and_then(|c| c.get(at..at.checked_add(len)?))
            // Never: every range asked for was recorded by `push`.
            .unwrap_or_default()
    }

    /// Gives back the chunks before `chunk` (all but the last one when `None`: nothing waits).
    fn release_before(&mut self, chunk: Option<u64>) {
        let keep = chunk.unwrap_or(self.front + (self.chunks.len() as u64).saturating_sub(1));
        while self.front < keep {
            let Some(mut c) = self.chunks.pop_front() else {
                break;
            };
            self.front += 1;
            c.clear();
            if c.capacity() == Self::CHUNK {
                self.spare = Some(c);
            }
        }
        if chunk.is_none() {
            if let Some(c) = self.chunks.back_mut() {
                c.clear();
            }
        }
    }
}

/// One record per `eventID` among records that arrive in roughly delivery order, with bounded
/// memory: CloudTrail delivers at least once, and a second delivery comes within hours of the
/// first.
///
/// Records wait in arrival order. A record is released ([`Self::pop_ready`]) once the newest
/// delivery time pushed so far is `window` or more after its own delivery time (by then any
/// copy of it should have come), or at once, oldest first, when more than `max_pending`
/// records wait. Until it is released, a copy of it (same `eventID`, same text, compared
/// byte for byte) is merged into its provenance and counted; a record with the same `eventID`
/// but another text is kept too (both are evidence) and counted as a conflict; a record
/// without `eventID` is never merged.
///
/// A copy that comes after its record was released is not caught and is written again (a
/// sorted output deduplicates exactly while merging instead, where copies are next to each
/// other), but never silently: it or its first copy is counted in
/// [`DedupeStats::released_early`] or [`DedupeStats::outside_window`].
///
/// **Memory**: at most `max_pending` records wait (with their items and provenance) when the
/// caller calls [`Self::pop_ready`] until it gives `None` after each push; in a normal run far
/// fewer, about the records delivered in one `window`. A waiting record costs its text and
/// `eventID` (in chunks of 1 MiB, given back as records are released), a slot of a few words
/// and two index entries of a few words; every operation is a constant number of hash-table
/// steps, whatever the input (the hashes are keyed afresh for each `Dedupe`, so no input can
/// be made to collide).
pub struct Dedupe<T> {
    window: SignedDuration,
    max_pending: usize,
    queue: VecDeque<Slot<T>>,
    /// The sequence number of `queue`'s front; a record's number is its arrival count.
    front_seq: u64,
    texts: Texts,
    /// The waiting records with an `eventID`, by `eventID` and text: (hash, sequence number).
    /// Unique: a second record with the same pair is merged, not queued. Entries of 32-bit
    /// hashes and sequence numbers (see [`wide`], [`Seq`]): the tables' memory is a few bytes
    /// per record, so that their doubling (removals leave tombstones, and a table more than
    /// half full when they use up its room grows) does not show in the peak.
    by_record: HashTable<(u32, Seq)>,
    /// The waiting records by `eventID`: (hash, the newest one's sequence number, how many;
    /// more than one after a conflict).
    by_id: HashTable<(u32, Seq, u32)>,
    hasher: RandomState,
    newest: Option<Timestamp>,
    stats: DedupeStats,
}

/// A waiting record's sequence number, modulo 2^32: unique among the waiting records, which
/// are never more than `u32::MAX` (see [`Dedupe::new`]).
type Seq = u32;

/// A table's 64-bit hash of a 32-bit one: the low bits pick the bucket, the top seven are the
/// tag a probe compares first.
fn wide(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

/// A 32-bit hash of `value`, keyed by `hasher`.
fn hash32(hasher: &RandomState, value: impl std::hash::Hash) -> u32 {
    let h = hasher.hash_one(value);
    // Both halves, so that neither half's bits are lost.
    (h ^ (h >> 32)) as u32
}

/// The waiting record `seq`'s `eventID` and text.
fn record_at<'a, T>(
    queue: &'a VecDeque<Slot<T>>,
    texts: &'a Texts,
    front_seq: u64,
    seq: Seq,
) -> Option<(&'a str, &'a str)> {
    let slot = queue.get(usize::try_from(seq.wrapping_sub(front_seq as Seq)).ok()?)?;
    let (id_len, _, _) = slot.id?;
    let both = texts.get(slot.chunk, slot.at, slot.text_len + id_len);
    let (text, id) = both.split_at_checked(slot.text_len)?;
    Some((id, text))
}

impl<T> Dedupe<T> {
    /// How far an `eventTime` may be after its delivery, or short of the window before the
    /// newest delivery, and the window still vouch for its copies
    /// ([`DedupeStats::outside_window`]); half the window when that is shorter. CloudTrail
    /// delivers within minutes of an event; a log file's name gives its delivery time to the
    /// minute.
    pub const SLACK: SignedDuration = SignedDuration::from_hours(1);

    /// Holds records for `window` of delivery time, and never more than `max_pending` of them
    /// (at least one, at most `u32::MAX`).
    pub fn new(window: SignedDuration, max_pending: usize) -> Self {
        Dedupe {
            window,
            max_pending: max_pending.clamp(1, Seq::MAX as usize),
            queue: VecDeque::new(),
            front_seq: 0,
            texts: Texts {
                chunks: VecDeque::new(),
                front: 0,
                spare: None,
            },
            by_record: HashTable::new(),
            by_id: HashTable::new(),
            hasher: RandomState::new(),
            newest: None,
            stats: DedupeStats::default(),
        }
    }

    /// Takes one record: `text` is its JSON text ([`Record::raw`](super::Record::raw)),
    /// `event_id` its `eventID` and `event_time` its `eventTime`, `delivered` when the log
    /// file that carried it was delivered (its key's time), `item` what the caller wants back
    /// on release, `provenance` the file that carried it.
    pub fn push(
        &mut self,
        text: &str,
        event_id: Option<&str>,
        event_time: Option<Timestamp>,
        delivered: Timestamp,
        item: T,
        provenance: Provenance,
    ) -> Pushed {
        let window = self.window;
        let newest = self.newest.map_or(delivered, |n| n.max(delivered));
        self.newest = Some(newest);
        let seq = self.front_seq.wrapping_add(self.queue.len() as u64) as Seq;
        let Some(id) = event_id else {
            let (chunk, at) = self.texts.push([text, ""]);
            self.queue.push_back(Slot {
                delivered,
                chunk,
                at,
                text_len: text.len(),
                id: None,
                item,
                provenance,
            });
            return Pushed::New;
        };
        let Dedupe {
            queue,
            front_seq,
            texts,
            by_record,
            by_id,
            hasher,
            stats,
            ..
        } = self;
        let record_hash = hash32(hasher, (id, text));
        let same = by_record.find(wide(record_hash), |&(h, s)| {
            h == record_hash && record_at(queue, texts, *front_seq, s) == Some((id, text))
        });
        if let Some(slot) = same
            .map(|&(_, s)| s.wrapping_sub(*front_seq as Seq))
            .and_then(|i| queue.get_mut(usize::try_from(i).ok()?))
        {
            slot.provenance.merge(provenance);
            stats.duplicates_removed += 1;
            return Pushed::Duplicate;
        }
        // Slack s: a copy written twice was pushed when the newest delivery was at least the
        // window W after its first copy's delivery d. If the first's eventTime is at most
        // d + s, the copy's is at least W - s before the newest: counted now; if not, the
        // first was counted.
        let slack = Self::SLACK.min(window / 2);
        let vouched = event_time.is_some_and(|t| {
            t <= delivered.saturating_add(slack).unwrap_or(delivered)
                && t > earlier(newest, window.saturating_sub(slack))
        });
        if !vouched {
            stats.outside_window += 1;
        }
        let id_hash = hash32(hasher, id);
        let conflict = match by_id.find_mut(wide(id_hash), |&(h, s, _)| {
            h == id_hash && record_at(queue, texts, *front_seq, s).map(|(i, _)| i) == Some(id)
        }) {
            Some((_, newest_seq, count)) => {
                *newest_seq = seq;
                *count += 1;
                true
            }
            None => {
                by_id.insert_unique(wide(id_hash), (id_hash, seq, 1), |e| wide(e.0));
                false
            }
        };
        by_record.insert_unique(wide(record_hash), (record_hash, seq), |e| wide(e.0));
        let (chunk, at) = texts.push([text, id]);
        queue.push_back(Slot {
            delivered,
            chunk,
            at,
            text_len: text.len(),
            id: Some((id.len(), record_hash, id_hash)),
            item,
            provenance,
        });
        if conflict {
            stats.conflicts += 1;
            Pushed::Conflict
        } else {
            Pushed::New
        }
    }

    /// The oldest waiting record (its text, item and provenance) if its window has passed or
    /// the cap is exceeded; `None` when nothing is due yet.
    pub fn pop_ready(&mut self) -> Option<(String, T, Provenance)> {
        let over = self.queue.len() > self.max_pending;
        let due = match (self.queue.front(), self.newest) {
            (Some(front), Some(newest)) => front.delivered <= earlier(newest, self.window),
            _ => false,
        };
        if over && !due {
            self.stats.released_early += 1;
        }
        if over || due {
            self.pop_any()
        } else {
            None
        }
    }

    /// The oldest waiting record, due or not: after the last push, call until `None`.
    pub fn pop_any(&mut self) -> Option<(String, T, Provenance)> {
        let front_seq = self.front_seq;
        let seq = front_seq as Seq;
        let front = self.queue.front()?;
        let text = self
            .texts
            .get(front.chunk, front.at, front.text_len)
            .to_owned();
        if let Some((_, record_hash, id_hash)) = front.id {
            if let Ok(e) = self
                .by_record
                .find_entry(wide(record_hash), |&(h, s)| h == record_hash && s == seq)
            {
                e.remove();
            }
            // The eventID's entry names its newest waiting record, this one or a later one.
            let (queue, texts) = (&self.queue, &self.texts);
            let id = record_at(queue, texts, front_seq, seq).map(|(id, _)| id);
            if let Ok(mut e) = self.by_id.find_entry(wide(id_hash), |&(h, s, _)| {
                h == id_hash && record_at(queue, texts, front_seq, s).map(|(i, _)| i) == id
            }) {
                let (_, _, count) = e.get_mut();
                *count = count.saturating_sub(1);
                if *count == 0 {
                    e.remove();
                }
            }
        }
        let slot = self.queue.pop_front()?;
        self.front_seq = self.front_seq.saturating_add(1);
        self.texts
            .release_before(self.queue.front().map(|next| next.chunk));
        Some((text, slot.item, slot.provenance))
    }

    /// How many records wait.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// What was merged, kept and released so far.
    pub fn stats(&self) -> DedupeStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Verdict;
    use crate::core::records::testutil::{carrier, generated_logs};
    use crate::core::records::{parse_records, RecordLimits};

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + minutes * 60).unwrap()
    }

    fn drain<T>(d: &mut Dedupe<T>) -> Vec<(T, Provenance)> {
        std::iter::from_fn(|| d.pop_any())
            .map(|(_, i, p)| (i, p))
            .collect()
    }

    #[test]
    fn dedupe_on_generated_deliveries() {
        // Each generated file carries some records twice; and deliver the first file again
        // as a second file, as CloudTrail may.
        let logs = generated_logs();
        let mut d = Dedupe::new(SignedDuration::from_hours(24), 1_000_000);
        let mut distinct = std::collections::HashSet::new();
        let mut total = 0;
        let mut deliveries: Vec<(u8, &Vec<u8>)> = (0u8..).zip(&logs).collect();
        deliveries.push((200, &logs[0]));
        let mut released = Vec::new();
        for (n, log) in deliveries {
            for r in parse_records(log, RecordLimits::LOG).unwrap() {
                total += 1;
                distinct.insert(r.raw().to_owned());
                let item = r.raw().to_owned();
                let p = Provenance::new(carrier(n, Verdict::Valid));
                d.push(
                    r.raw(),
                    r.event_id.as_deref(),
                    r.event_time,
                    at(n.into()),
                    item,
                    p,
                );
                released.extend(std::iter::from_fn(|| d.pop_ready()).map(|(_, i, p)| (i, p)));
            }
        }
        assert!(released.is_empty(), "all within the window");
        released.extend(drain(&mut d));
        assert_eq!(released.len(), distinct.len());
        let stats = d.stats();
        assert_eq!(stats.duplicates_removed as usize, total - distinct.len());
        assert!(stats.duplicates_removed > 0);
        assert_eq!((stats.conflicts, stats.released_early), (0, 0));
        // The records of the file delivered twice list both files.
        let first: std::collections::HashSet<String> = parse_records(&logs[0], RecordLimits::LOG)
            .unwrap()
            .iter()
            .map(|r| r.raw().to_owned())
            .collect();
        for (text, p) in &released {
            let carriers: Vec<u8> = p.carriers().map(|c| c.log_sha256.0[0]).collect();
            if first.contains(text) {
                assert_eq!(carriers, [0, 200], "{text}");
            } else {
                assert_eq!(carriers.len(), 1);
            }
        }
    }

    #[test]
    fn dedupe_releases_after_the_window_in_arrival_order() {
        let mut d = Dedupe::new(SignedDuration::from_mins(60), 100);
        let p = |n| Provenance::new(carrier(n, Verdict::Valid));
        assert_eq!(
            d.push(
                "{\"eventID\":\"a\"}",
                Some("a"),
                Some(at(0)),
                at(0),
                "a",
                p(1)
            ),
            Pushed::New
        );
        assert_eq!(
            d.push("{}", None, Some(at(1)), at(1), "none", p(1)),
            Pushed::New
        );
        assert_eq!(
            d.push("{}", None, Some(at(2)), at(2), "none again", p(2)),
            Pushed::New
        );
        assert_eq!(
            d.push(
                "{\"eventID\":\"b\"}",
                Some("b"),
                Some(at(59)),
                at(59),
                "b",
                p(2)
            ),
            Pushed::New
        );
        assert!(d.pop_ready().is_none());
        // A copy of `a` within the window is merged.
        assert_eq!(
            d.push(
                "{\"eventID\":\"a\"}",
                Some("a"),
                Some(at(60)),
                at(60),
                "a2",
                p(3)
            ),
            Pushed::Duplicate
        );
        assert_eq!(
            d.pop_ready().map(|(_, i, p)| (i, p.also.len())),
            Some(("a", 1))
        );
        assert!(d.pop_ready().is_none(), "delivered at 1, window to 61");
        assert_eq!(d.stats().outside_window, 0);
        // A copy of `a` after it was released is not caught, but it is counted: its eventTime
        // is further before the newest delivery than the window vouches for.
        assert_eq!(
            d.push(
                "{\"eventID\":\"a\"}",
                Some("a"),
                Some(at(0)),
                at(62),
                "a3",
                p(4)
            ),
            Pushed::New
        );
        assert_eq!(d.stats().outside_window, 1);
        let ready: Vec<&str> = std::iter::from_fn(|| d.pop_ready())
            .map(|(_, i, _)| i)
            .collect();
        assert_eq!(ready, ["none", "none again"]);
        assert_eq!(d.pending(), 2);
        let rest: Vec<&str> = drain(&mut d).into_iter().map(|(i, _)| i).collect();
        assert_eq!(rest, ["b", "a3"]);
        assert_eq!(d.stats().duplicates_removed, 1);
    }

    #[test]
    fn dedupe_keeps_conflicting_texts_and_respects_its_cap() {
        let p = |n| Provenance::new(carrier(n, Verdict::Valid));
        let mut d = Dedupe::new(SignedDuration::from_hours(24), 100);
        let (x1, x2) = (r#"{"eventID":"x","v":1}"#, r#"{"eventID":"x","v":2}"#);
        assert_eq!(
            d.push(x1, Some("x"), Some(at(0)), at(0), 1, p(1)),
            Pushed::New
        );
        assert_eq!(
            d.push(x2, Some("x"), Some(at(0)), at(0), 2, p(2)),
            Pushed::Conflict
        );
        assert_eq!(
            d.push(x2, Some("x"), Some(at(0)), at(0), 3, p(3)),
            Pushed::Duplicate
        );
        assert_eq!(
            d.push(x1, Some("x"), Some(at(0)), at(0), 4, p(4)),
            Pushed::Duplicate
        );
        let out: Vec<(i32, usize)> = drain(&mut d)
            .into_iter()
            .map(|(i, p)| (i, p.also.len()))
            .collect();
        assert_eq!(out, [(1, 1), (2, 1)]);
        assert_eq!(d.stats().conflicts, 1);
        assert_eq!(d.stats().duplicates_removed, 2);

        // Cap of 2: the third push releases the first early, whatever the window.
        let mut d = Dedupe::new(SignedDuration::from_hours(24), 2);
        for (i, id) in ["p", "q", "r"].into_iter().enumerate() {
            d.push(id, Some(id), Some(at(0)), at(0), i, p(1));
            assert!(d.pending() <= 3);
            while d.pop_ready().is_some() {}
            assert!(d.pending() <= 2);
        }
        assert_eq!(d.stats().released_early, 1);
        assert_eq!(
            d.push("p", Some("p"), Some(at(0)), at(0), 9, p(2)),
            Pushed::New
        );
        // Queue q, r, p: over the cap, q goes; the index stays in step with the queue.
        assert_eq!(d.pop_ready().map(|(_, i, _)| i), Some(1));
        assert!(d.pop_ready().is_none());
        assert_eq!(d.stats().released_early, 2);
        assert_eq!(
            d.push("q", Some("q"), Some(at(0)), at(0), 9, p(2)),
            Pushed::New,
            "q was released"
        );
        assert_eq!(
            d.push("r", Some("r"), Some(at(0)), at(0), 9, p(2)),
            Pushed::Duplicate
        );
        assert_eq!(
            d.push("p", Some("p"), Some(at(0)), at(0), 9, p(3)),
            Pushed::Duplicate
        );
    }

    #[test]
    fn a_copy_that_escapes_the_window_is_counted_on_it_or_its_first() {
        let p = |n| Provenance::new(carrier(n, Verdict::Valid));
        let mut d = Dedupe::new(SignedDuration::from_mins(60), 100);
        let a = r#"{"eventID":"a"}"#;
        // Its eventTime is more than the slack (30 minutes here) after its delivery: a copy
        // delivered a window later, past its release, looks in time. Counted on the first.
        assert_eq!(
            d.push(a, Some("a"), Some(at(40)), at(0), 1, p(1)),
            Pushed::New
        );
        assert_eq!(d.stats().outside_window, 1);
        assert_eq!(
            d.push("x", Some("x"), Some(at(61)), at(61), 2, p(2)),
            Pushed::New
        );
        assert_eq!(d.pop_ready().map(|(_, i, _)| i), Some(1));
        assert_eq!(
            d.push(a, Some("a"), Some(at(40)), at(61), 3, p(3)),
            Pushed::New
        );
        assert_eq!(d.stats().outside_window, 1, "the copy looks in time");
        // Without an eventTime nothing vouches for it.
        d.push("y", Some("y"), None, at(61), 4, p(4));
        assert_eq!(d.stats().outside_window, 2);
        // Without an eventID it is never merged, so never counted.
        d.push("z", None, None, at(61), 5, p(4));
        assert_eq!(d.stats().outside_window, 2);
        assert_eq!(d.stats().released_early, 0);
    }

    #[test]
    fn dedupe_stays_fast_when_one_event_id_has_many_texts() {
        let p = || Provenance::new(carrier(1, Verdict::Valid));
        let mut d = Dedupe::new(SignedDuration::from_hours(24), 1_000_000);
        let start = std::time::Instant::now();
        for i in 0..100_000 {
            let text = format!("{{\"eventID\":\"same\",\"n\":{i}}}");
            d.push(&text, Some("same"), Some(at(0)), at(0), (), p());
        }
        assert_eq!(d.stats().conflicts, 99_999);
        assert_eq!(drain(&mut d).len(), 100_000);
        assert!(d.by_id.is_empty() && d.by_record.is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }
}
