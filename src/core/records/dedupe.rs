//! One record per `eventID` among records delivered more than once, with bounded memory.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

use super::Provenance;
use crate::core::time::earlier;
use crate::core::types::Sha256;

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
}

struct Slot<T> {
    delivered: Timestamp,
    key: Option<(String, Sha256)>,
    item: T,
    provenance: Provenance,
}

/// One record per `eventID` among records that arrive in roughly delivery order, with bounded
/// memory: CloudTrail delivers at least once, and a second delivery comes within hours of the
/// first.
///
/// Records wait in arrival order. A record is released ([`Self::pop_ready`]) once the newest
/// delivery time pushed so far is `window` or more after its own delivery time (by then any
/// copy of it should have come), or at once, oldest first, when more than `max_pending`
/// records wait. Until it is released, a copy of it (same `eventID`, same text) is merged into
/// its provenance and counted; a record with the same `eventID` but another text is kept too
/// (both are evidence) and counted as a conflict; a record without `eventID` is never merged.
///
/// **Memory**: at most `max_pending` records wait (with their items and provenance) when the
/// caller calls [`Self::pop_ready`] until it gives `None` after each push; in a normal run far
/// fewer, about the records delivered in one `window`. Besides the items, a waiting record
/// costs three copies of its `eventID` (queue and two indexes), a SHA-256 of its text and its
/// provenance; every operation is a constant number of hash-map steps, whatever the input. A copy that comes after its
/// record was released is not caught and is written again: a sorted output deduplicates
/// exactly while merging instead, where copies are next to each other.
pub struct Dedupe<T> {
    window: SignedDuration,
    max_pending: usize,
    queue: VecDeque<Slot<T>>,
    /// The sequence number of `queue`'s front; a record's number is its arrival count.
    front_seq: u64,
    /// The waiting records with an `eventID`, by `eventID` and text hash: their sequence
    /// numbers. Unique: a second record with the same pair is merged, not queued.
    by_key: HashMap<(String, Sha256), u64>,
    /// How many waiting records have each `eventID` (more than one after a conflict).
    ids: HashMap<String, usize>,
    newest: Option<Timestamp>,
    stats: DedupeStats,
}

impl<T> Dedupe<T> {
    /// Holds records for `window` of delivery time, and never more than `max_pending` of them
    /// (at least one).
    pub fn new(window: SignedDuration, max_pending: usize) -> Self {
        Dedupe {
            window,
            max_pending: max_pending.max(1),
            queue: VecDeque::new(),
            front_seq: 0,
            by_key: HashMap::new(),
            ids: HashMap::new(),
            newest: None,
            stats: DedupeStats::default(),
        }
    }

    /// Takes one record: `text` is its JSON text ([`Record::raw`](super::Record::raw)),
    /// `event_id` its `eventID`, `delivered` when the log file that carried it was delivered
    /// (its key's time), `item` what the caller wants back on release, `provenance` the file
    /// that carried it.
    pub fn push(
        &mut self,
        text: &str,
        event_id: Option<&str>,
        delivered: Timestamp,
        item: T,
        provenance: Provenance,
    ) -> Pushed {
        self.newest = Some(self.newest.map_or(delivered, |n| n.max(delivered)));
        let Some(id) = event_id else {
            self.queue.push_back(Slot {
                delivered,
                key: None,
                item,
                provenance,
            });
            return Pushed::New;
        };
        let key = (id.to_owned(), Sha256::of(text.as_bytes()));
        if let Some(slot) = self
            .by_key
            .get(&key)
            .and_then(|seq| seq.checked_sub(self.front_seq))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.queue.get_mut(i))
        {
            slot.provenance.merge(provenance);
            self.stats.duplicates_removed += 1;
            return Pushed::Duplicate;
        }
        let seq = self.front_seq.saturating_add(self.queue.len() as u64);
        let same_id = self.ids.entry(id.to_owned()).or_insert(0);
        let conflict = *same_id > 0;
        *same_id += 1;
        self.by_key.insert(key.clone(), seq);
        self.queue.push_back(Slot {
            delivered,
            key: Some(key),
            item,
            provenance,
        });
        if conflict {
            self.stats.conflicts += 1;
            Pushed::Conflict
        } else {
            Pushed::New
        }
    }

    /// The oldest waiting record if its window has passed or the cap is exceeded; `None`
    /// when nothing is due yet.
    pub fn pop_ready(&mut self) -> Option<(T, Provenance)> {
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
    pub fn pop_any(&mut self) -> Option<(T, Provenance)> {
        let slot = self.queue.pop_front()?;
        self.front_seq = self.front_seq.saturating_add(1);
        if let Some(key) = &slot.key {
            self.by_key.remove(key);
            if let Some(n) = self.ids.get_mut(&key.0) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.ids.remove(&key.0);
                }
            }
        }
        Some((slot.item, slot.provenance))
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
        std::iter::from_fn(|| d.pop_any()).collect()
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
                d.push(r.raw(), r.event_id.as_deref(), at(n.into()), item, p);
                released.extend(std::iter::from_fn(|| d.pop_ready()));
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
            d.push("{\"eventID\":\"a\"}", Some("a"), at(0), "a", p(1)),
            Pushed::New
        );
        assert_eq!(d.push("{}", None, at(1), "none", p(1)), Pushed::New);
        assert_eq!(d.push("{}", None, at(2), "none again", p(2)), Pushed::New);
        assert_eq!(
            d.push("{\"eventID\":\"b\"}", Some("b"), at(59), "b", p(2)),
            Pushed::New
        );
        assert!(d.pop_ready().is_none());
        // A copy of `a` within the window is merged.
        assert_eq!(
            d.push("{\"eventID\":\"a\"}", Some("a"), at(60), "a2", p(3)),
            Pushed::Duplicate
        );
        assert_eq!(
            d.pop_ready().map(|(i, p)| (i, p.also.len())),
            Some(("a", 1))
        );
        assert!(d.pop_ready().is_none(), "delivered at 1, window to 61");
        // A copy of `a` after it was released is not caught.
        assert_eq!(
            d.push("{\"eventID\":\"a\"}", Some("a"), at(62), "a3", p(4)),
            Pushed::New
        );
        let ready: Vec<&str> = std::iter::from_fn(|| d.pop_ready())
            .map(|(i, _)| i)
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
        assert_eq!(d.push(x1, Some("x"), at(0), 1, p(1)), Pushed::New);
        assert_eq!(d.push(x2, Some("x"), at(0), 2, p(2)), Pushed::Conflict);
        assert_eq!(d.push(x2, Some("x"), at(0), 3, p(3)), Pushed::Duplicate);
        assert_eq!(d.push(x1, Some("x"), at(0), 4, p(4)), Pushed::Duplicate);
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
            d.push(id, Some(id), at(0), i, p(1));
            assert!(d.pending() <= 3);
            while d.pop_ready().is_some() {}
            assert!(d.pending() <= 2);
        }
        assert_eq!(d.stats().released_early, 1);
        assert_eq!(d.push("p", Some("p"), at(0), 9, p(2)), Pushed::New);
        // Queue q, r, p: over the cap, q goes; the index stays in step with the queue.
        assert_eq!(d.pop_ready().map(|(i, _)| i), Some(1));
        assert!(d.pop_ready().is_none());
        assert_eq!(d.stats().released_early, 2);
        assert_eq!(
            d.push("q", Some("q"), at(0), 9, p(2)),
            Pushed::New,
            "q was released"
        );
        assert_eq!(d.push("r", Some("r"), at(0), 9, p(2)), Pushed::Duplicate);
        assert_eq!(d.push("p", Some("p"), at(0), 9, p(3)), Pushed::Duplicate);
    }

    #[test]
    fn dedupe_stays_fast_when_one_event_id_has_many_texts() {
        let p = || Provenance::new(carrier(1, Verdict::Valid));
        let mut d = Dedupe::new(SignedDuration::from_hours(24), 1_000_000);
        let start = std::time::Instant::now();
        for i in 0..100_000 {
            let text = format!("{{\"eventID\":\"same\",\"n\":{i}}}");
            d.push(&text, Some("same"), at(0), (), p());
        }
        assert_eq!(d.stats().conflicts, 99_999);
        assert_eq!(drain(&mut d).len(), 100_000);
        assert!(d.ids.is_empty() && d.by_key.is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }
}
