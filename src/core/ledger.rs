//! The completeness ledger: every hour of a chain's range in exactly one state.
//!
//! The walk ([`super::chain`]) turns a chain into [`Span`]s: each digest's delivery window with
//! the state its verdict and its log files' verdicts give, and the holes between digests (a
//! CloudTrail-signed restart, or digests that are gone). [`Ledger::of`] cuts the range into
//! clock hours (`[H:00, H+1:00)`, the first and last clipped to the range) and gives each hour
//! the worst state of any span that overlaps it; an hour no span touches is `missing`. So the
//! counts add up to the hours of the range, and an hour is `verified` only when something
//! proved every part of it.
//!
//! Work is proportional to the spans, not to the hours: a range of ten thousand years costs no
//! more than one of a day.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What is known about one hour (or span) of a chain, from best to worst. An hour takes the
/// worst state of what overlaps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HourState {
    /// Covered by valid digests that list no log files.
    VerifiedEmpty,
    /// Covered by valid digests whose log files are all valid.
    Verified,
    /// A CloudTrail-signed restart: logging or validation was off.
    Gap,
    /// Could not be checked: an unavailable signature, an unreadable object, no key.
    NotVerified,
    /// A digest (or a log file) that should cover it is gone.
    Missing,
    /// The covering digest or one of its log files is invalid.
    Invalid,
}

impl HourState {
    /// Every state, in the order reports list them (best first, then the problems).
    pub const ALL: [HourState; 6] = [
        HourState::Verified,
        HourState::VerifiedEmpty,
        HourState::Gap,
        HourState::Missing,
        HourState::Invalid,
        HourState::NotVerified,
    ];

    /// Whether the hour is proven.
    pub fn is_proven(self) -> bool {
        matches!(self, HourState::Verified | HourState::VerifiedEmpty)
    }

    /// The name used in every report (`verified`, `verified-empty`, `gap`, ...).
    pub fn name(self) -> &'static str {
        match self {
            HourState::Verified => "verified",
            HourState::VerifiedEmpty => "verified-empty",
            HourState::Gap => "gap",
            HourState::Missing => "missing",
            HourState::Invalid => "invalid",
            HourState::NotVerified => "not-verified",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A closed period of a chain's timeline and what is known about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Start of the period, included.
    pub from: Timestamp,
    /// End of the period, included.
    pub to: Timestamp,
    /// What is known about every instant of it.
    pub state: HourState,
}

/// How many hours are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counts {
    /// Hours in [`HourState::Verified`].
    pub verified: u64,
    /// Hours in [`HourState::VerifiedEmpty`].
    pub verified_empty: u64,
    /// Hours in [`HourState::Gap`].
    pub gap: u64,
    /// Hours in [`HourState::Missing`].
    pub missing: u64,
    /// Hours in [`HourState::Invalid`].
    pub invalid: u64,
    /// Hours in [`HourState::NotVerified`].
    pub not_verified: u64,
}

impl Counts {
    /// The hours in `state`.
    pub fn get(&self, state: HourState) -> u64 {
        match state {
            HourState::Verified => self.verified,
            HourState::VerifiedEmpty => self.verified_empty,
            HourState::Gap => self.gap,
            HourState::Missing => self.missing,
            HourState::Invalid => self.invalid,
            HourState::NotVerified => self.not_verified,
        }
    }

    fn add(&mut self, state: HourState, n: u64) {
        let slot = match state {
            HourState::Verified => &mut self.verified,
            HourState::VerifiedEmpty => &mut self.verified_empty,
            HourState::Gap => &mut self.gap,
            HourState::Missing => &mut self.missing,
            HourState::Invalid => &mut self.invalid,
            HourState::NotVerified => &mut self.not_verified,
        };
        *slot = slot.saturating_add(n);
    }

    /// Hours in any state: the hours of the range (or ranges, once added up).
    pub fn total(&self) -> u64 {
        HourState::ALL.iter().map(|s| self.get(*s)).sum()
    }

    /// Adds `other`'s hours, state by state (saturating, never wrapping).
    pub fn add_all(&mut self, other: &Counts) {
        for s in HourState::ALL {
            self.add(s, other.get(s));
        }
    }
}

/// Consecutive hours in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The first hour's start (the range start if it is later).
    pub from: Timestamp,
    /// The last hour's end (the range end if it is earlier).
    pub to: Timestamp,
    /// The state of every hour of the run.
    pub state: HourState,
    /// How many clock hours the run has (a clipped hour counts as one).
    pub hours: u64,
}

/// One chain's hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Start of the range, included.
    pub from: Timestamp,
    /// End of the range.
    pub to: Timestamp,
    /// The clock hours the range touches, clipped at both ends; each is in `counts` once.
    pub hours: u64,
    /// Hours per state; they add up to `hours`.
    pub counts: Counts,
    /// The hours in order, consecutive hours of one state as one run.
    pub runs: Vec<Run>,
    /// The exact periods behind the hours, clipped to the range: each instant in the worst
    /// state of what covers it (`missing` where nothing does).
    pub periods: Vec<Span>,
}

const HOUR: i64 = 3600;

impl Ledger {
    /// The ledger of `[from, to]` (a single instant when they are equal) given `spans`.
    pub fn of(from: Timestamp, to: Timestamp, spans: &[Span]) -> Ledger {
        let (lo, hi) = (from.as_second(), to.as_second().max(from.as_second()));
        let pieces = pieces(lo, hi, spans);
        let mut hours = Hours {
            runs: Vec::new(),
            open: None,
            lo,
            hi,
        };
        if lo == hi {
            // A single instant: the worst of what contains it.
            let state = spans
                .iter()
                .filter(|s| s.from.as_second() <= lo && s.to.as_second() >= lo)
                .map(|s| s.state)
                .max()
                .unwrap_or(HourState::Missing);
            hours.close(lo, hi, state, 1);
        } else {
            for &(a, b, state) in &pieces {
                hours.piece(a, b, state);
            }
            hours.flush();
        }
        let runs = hours.runs;
        let mut counts = Counts::default();
        for r in &runs {
            counts.add(r.state, r.hours);
        }
        Ledger {
            from,
            to,
            hours: counts.total(),
            counts,
            runs,
            periods: pieces
                .into_iter()
                .map(|(a, b, state)| Span {
                    from: ts(a),
                    to: ts(b),
                    state,
                })
                .collect(),
        }
    }

    /// Whether every hour is proven.
    pub fn is_proven(&self) -> bool {
        self.runs.iter().all(|r| r.state.is_proven())
    }
}

/// `[lo, hi]` cut where the worst covering state changes: consecutive pieces differ in state.
fn pieces(lo: i64, hi: i64, spans: &[Span]) -> Vec<(i64, i64, HourState)> {
    // +1 where a span starts, -1 where it ends, per state; sorted by time.
    let mut events: Vec<(i64, i32, HourState)> = Vec::with_capacity(spans.len() * 2);
    for s in spans {
        let (a, b) = (s.from.as_second().max(lo), s.to.as_second().min(hi));
        if a < b {
            events.push((a, 1, s.state));
            events.push((b, -1, s.state));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut active = [0i32; 6];
    let worst = |active: &[i32; 6]| {
        HourState::ALL
            .iter()
            .copied()
            .filter(|s| active.get(s.index()).is_some_and(|n| *n > 0))
            .max()
            .unwrap_or(HourState::Missing)
    };
    let mut out: Vec<(i64, i64, HourState)> = Vec::new();
    let mut cursor = lo;
    let mut i = 0;
    while cursor < hi {
        while let Some(&(t, delta, state)) = events.get(i) {
            if t > cursor {
                break;
            }
            if let Some(n) = active.get_mut(state.index()) {
                *n += delta;
            }
            i += 1;
        }
        let next = events.get(i).map_or(hi, |e| e.0.min(hi));
        let state = worst(&active);
        match out.last_mut() {
            Some(last) if last.2 == state && last.1 == cursor => last.1 = next,
            _ => out.push((cursor, next, state)),
        }
        cursor = next;
    }
    out
}

/// Hours of `[lo, hi]` being laid out: the runs so far and the hour in progress.
struct Hours {
    runs: Vec<Run>,
    /// The hour being filled: its index (start / 3600) and worst state so far.
    open: Option<(i64, HourState)>,
    lo: i64,
    hi: i64,
}

impl Hours {
    /// Adds the piece `[a, b)` of state `state`; pieces come in order and without holes.
    fn piece(&mut self, a: i64, b: i64, state: HourState) {
        let first = a.div_euclid(HOUR);
        // The hour holding the piece's last instant.
        let last = (b - 1).div_euclid(HOUR);
        match self.open {
            Some((h, s)) if h == first => self.open = Some((h, s.max(state))),
            Some((h, s)) => {
                self.close_hour(h, s);
                self.open = Some((first, state));
            }
            None => self.open = Some((first, state)),
        }
        if last > first {
            if let Some((h, s)) = self.open.take() {
                self.close_hour(h, s);
            }
            // Whole hours strictly inside the piece.
            if last - first > 1 {
                let from = (first + 1).saturating_mul(HOUR);
                let to = last.saturating_mul(HOUR);
                self.close(from, to, state, (last - first - 1).unsigned_abs());
            }
            self.open = Some((last, state));
        }
    }

    fn flush(&mut self) {
        if let Some((h, s)) = self.open.take() {
            self.close_hour(h, s);
        }
    }

    fn close_hour(&mut self, h: i64, state: HourState) {
        let from = h.saturating_mul(HOUR).max(self.lo);
        let to = h.saturating_add(1).saturating_mul(HOUR).min(self.hi);
        self.close(from, to, state, 1);
    }

    /// Appends `n` hours from `from` to `to` in `state`, joining the previous run if it is in
    /// the same state and ends where these start.
    fn close(&mut self, from: i64, to: i64, state: HourState, n: u64) {
        match self.runs.last_mut() {
            Some(r) if r.state == state && r.to.as_second() == from => {
                r.to = ts(to);
                r.hours = r.hours.saturating_add(n);
            }
            _ => self.runs.push(Run {
                from: ts(from),
                to: ts(to),
                state,
                hours: n,
            }),
        }
    }
}

/// Seconds back to a timestamp; every value here lies between two timestamps, so it fits.
fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or(if s < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::parse_iso;

    fn t(s: &str) -> Timestamp {
        parse_iso(s).unwrap()
    }

    fn span(a: &str, b: &str, state: HourState) -> Span {
        Span {
            from: t(a),
            to: t(b),
            state,
        }
    }

    #[test]
    fn hourly_digests_off_the_hour_verify_every_clock_hour() {
        let spans: Vec<Span> = (0..24)
            .map(|h| Span {
                from: ts(1_767_225_600 + (h - 1) * HOUR + 244),
                to: ts(1_767_225_600 + h * HOUR + 244),
                state: HourState::Verified,
            })
            .collect();
        let l = Ledger::of(t("2026-01-01T00:00:00Z"), t("2026-01-01T23:00:00Z"), &spans);
        assert_eq!(l.hours, 23);
        assert_eq!(l.counts.verified, 23);
        assert!(l.is_proven());
        assert_eq!(l.runs.len(), 1);
    }

    #[test]
    fn an_hour_takes_the_worst_state_that_touches_it_and_nothing_is_missing() {
        let spans = [
            span(
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:30:00Z",
                HourState::Verified,
            ),
            span(
                "2026-01-01T01:30:00Z",
                "2026-01-01T02:00:00Z",
                HourState::VerifiedEmpty,
            ),
            span(
                "2026-01-01T02:00:00Z",
                "2026-01-01T03:10:00Z",
                HourState::Gap,
            ),
            span(
                "2026-01-01T03:10:00Z",
                "2026-01-01T05:00:00Z",
                HourState::Verified,
            ),
            // nothing covers 05:00-06:00
            span(
                "2026-01-01T06:00:00Z",
                "2026-01-01T08:00:00Z",
                HourState::NotVerified,
            ),
            span(
                "2026-01-01T06:30:00Z",
                "2026-01-01T06:40:00Z",
                HourState::Invalid,
            ),
        ];
        let l = Ledger::of(t("2026-01-01T00:00:00Z"), t("2026-01-01T08:00:00Z"), &spans);
        let states: Vec<(HourState, u64)> = l.runs.iter().map(|r| (r.state, r.hours)).collect();
        assert_eq!(
            states,
            vec![
                (HourState::Verified, 2),
                (HourState::Gap, 2),
                (HourState::Verified, 1),
                (HourState::Missing, 1),
                (HourState::Invalid, 1),
                (HourState::NotVerified, 1),
            ]
        );
        assert_eq!(l.hours, 8);
        assert_eq!(l.counts.total(), 8);
        assert!(!l.is_proven());
    }

    #[test]
    fn partial_hours_at_the_range_ends_count_once_each() {
        let spans = [span(
            "2026-01-01T00:00:00Z",
            "2026-01-01T03:00:00Z",
            HourState::Verified,
        )];
        let l = Ledger::of(t("2026-01-01T00:30:00Z"), t("2026-01-01T02:30:00Z"), &spans);
        assert_eq!(l.hours, 3);
        assert_eq!(l.runs[0].from, t("2026-01-01T00:30:00Z"));
        assert_eq!(l.runs[0].to, t("2026-01-01T02:30:00Z"));
        // Uncovered by 10 minutes at the end: that hour is missing.
        let l = Ledger::of(t("2026-01-01T00:30:00Z"), t("2026-01-01T03:10:00Z"), &spans);
        assert_eq!(l.counts.verified, 3);
        assert_eq!(l.counts.missing, 1);
    }

    #[test]
    fn an_instant_range_is_one_hour_and_an_empty_ledger_is_all_missing() {
        let spans = [span(
            "2026-01-01T00:00:00Z",
            "2026-01-01T03:00:00Z",
            HourState::Verified,
        )];
        let at = t("2026-01-01T01:00:00Z");
        assert_eq!(Ledger::of(at, at, &spans).counts.verified, 1);
        let l = Ledger::of(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z"), &[]);
        assert_eq!((l.hours, l.counts.missing), (24, 24));
    }

    #[test]
    fn the_whole_representable_range_is_cheap_and_adds_up() {
        let l = Ledger::of(
            Timestamp::MIN,
            Timestamp::MAX,
            &[span(
                "2026-01-01T00:00:00Z",
                "2026-01-01T03:00:00Z",
                HourState::Verified,
            )],
        );
        assert_eq!(l.counts.verified, 3);
        assert_eq!(l.hours, l.counts.total());
        assert_eq!(l.runs.len(), 3);
    }
}
