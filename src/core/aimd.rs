//! How many requests to keep in flight against a service that throttles: additive increase,
//! multiplicative decrease (AIMD), as TCP does with its congestion window.
//!
//! S3 answers `503 SlowDown` when a prefix gets more requests than it serves. The SDK retries
//! each request with backoff, but a run that keeps 128 requests in flight keeps hammering, and
//! the SDK's retry quota runs dry, so requests fail. A [`Window`] lowers the number in flight
//! when the service pushes back and raises it again, slowly, while the service keeps up.
//!
//! Everything here is arithmetic on counters: no clock, no I/O. The source feeds it what each
//! request's attempts met (`source::adaptive`) and waits for the room it allows.
//!
//! - **Start**: at [`INITIAL`] requests (or the ceiling, if lower), growing by one per answer,
//!   so doubling every round trip ("slow start"), until the first throttling or the ceiling: a
//!   run that S3 does not throttle reaches full speed within a round trip or two (the first
//!   listings and digests), one that it does is not thrown the whole ceiling at once.
//! - **Increase**: afterwards, one more request in flight per window's worth of answers (with
//!   32 in flight, every 32 answers allow a 33rd), up to the ceiling.
//! - **Decrease**: halved (never below the floor) when a request is throttled or times out,
//!   at most once per round: a request started before the last decrease ran under the old
//!   window, so what it meets says nothing of the new one (a burst of 100 throttled answers to
//!   one burst of requests halves the window once, not 100 times).
//! - **Sending again**: a throttled request is sent again after a pause ([`Window::resend`]),
//!   doubling from [`FIRST_PAUSE`] up to [`MAX_PAUSE`], each spread by a deterministic jitter
//!   so that requests throttled together do not come back together, up to [`MAX_ROUNDS`]
//!   times. When [`STORM`] requests in a row have failed that way with nothing answered in
//!   between, the service is refusing rather than pacing: a throttled request then fails at
//!   once, as it did before, and the run reports it (a storm ends a run instead of stretching
//!   it without end); the first answer ends the storm.

use std::time::Duration;

/// Requests in flight at the start (slow start grows them from there).
pub const INITIAL: usize = 64;

/// Times a request may be sent in all while it is throttled: with the pauses, about half a
/// minute.
pub const MAX_ROUNDS: u32 = 10;

/// The pause before a request is sent again after it was throttled the first time, doubled
/// each time up to [`MAX_PAUSE`]: S3 counts requests per second, so pauses of about a second
/// let its count fall.
pub const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between two sendings of a request.
pub const MAX_PAUSE: Duration = Duration::from_secs(4);

/// Requests in a row that failed throttled, with nothing answered in between, that make a
/// storm.
pub const STORM: u32 = 4;

/// Error codes AWS services use for throttling (those the AWS SDKs treat as throttling).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Whether an answer is the service pushing back: HTTP 429 or 503 (S3's `SlowDown`; a 503
/// from S3 means it is overloaded whatever its code), or a throttling error code at any status.
pub fn is_throttling(status: Option<u16>, code: Option<&str>) -> bool {
    matches!(status, Some(429 | 503)) || code.is_some_and(|c| THROTTLING_CODES.contains(&c))
}

/// What one attempt of a request met, as far as the window cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The service answered (with the object, or with an error that is not about load).
    Served,
    /// The service pushed back ([`is_throttling`]).
    Throttled,
    /// No answer in time: a service that is overloaded, or a path that is.
    TimedOut,
}

/// The round of the window a request started in, for [`Window::attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    round: u64,
}

/// What a window has been through, for the run's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adaptation {
    /// Attempts the service throttled.
    pub throttled: u64,
    /// Attempts that timed out.
    pub timed_out: u64,
    /// Times the window was halved.
    pub decreases: u64,
    /// Requests sent again after they were throttled.
    pub resent: u64,
    /// Requests that failed throttled (reported as not read, as every failed read is).
    pub gave_up: u64,
    /// The fewest requests in flight it allowed after a decrease (the ceiling if none).
    pub lowest: usize,
}

/// The number of requests allowed in flight, between a floor and a ceiling.
#[derive(Debug, Clone)]
pub struct Window {
    floor: usize,
    ceiling: usize,
    limit: usize,
    /// Slow start until the first decrease.
    slow_start: bool,
    /// Answers since the limit last changed.
    credit: usize,
    /// Decreases so far: requests started in an earlier round do not decrease it again.
    round: u64,
    /// Requests that failed throttled since the last answer.
    refused: u32,
    seen: Adaptation,
}

impl Window {
    /// A window of at most `ceiling` and never below `floor` requests (both at least 1, the
    /// floor at most the ceiling), starting at [`INITIAL`].
    pub fn new(floor: usize, ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        let floor = floor.clamp(1, ceiling);
        Window {
            floor,
            ceiling,
            limit: INITIAL.clamp(floor, ceiling),
            slow_start: true,
            credit: 0,
            round: 0,
            refused: 0,
            seen: Adaptation {
                lowest: ceiling,
                ..Adaptation::default()
            },
        }
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What the window has been through so far.
    pub fn adaptation(&self) -> Adaptation {
        self.seen
    }

    /// A request starts now.
    pub fn ticket(&self) -> Ticket {
        Ticket { round: self.round }
    }

    /// One attempt of the request holding `ticket` met `signal`.
    pub fn attempt(&mut self, ticket: Ticket, signal: Signal) {
        match signal {
            Signal::Served => return,
            Signal::Throttled => self.seen.throttled += 1,
            Signal::TimedOut => self.seen.timed_out += 1,
        }
        if ticket.round == self.round {
            self.limit = (self.limit / 2).max(self.floor);
            self.slow_start = false;
            self.credit = 0;
            self.round += 1;
            self.seen.decreases += 1;
            self.seen.lowest = self.seen.lowest.min(self.limit);
        }
    }

    /// A request ended with an answer (whatever it said): one step towards one more in flight.
    pub fn answered(&mut self) {
        self.refused = 0;
        self.credit += 1;
        if self.slow_start || self.credit >= self.limit {
            self.credit = 0;
            self.limit = (self.limit + 1).min(self.ceiling);
        }
    }

    /// A request was throttled the `rounds`-th time it was sent (1 for the first): the pause
    /// before it is sent again, or `None` when it must fail (and is counted as failed).
    pub fn resend(&mut self, rounds: u32) -> Option<Duration> {
        if rounds >= MAX_ROUNDS || self.refused >= STORM {
            self.refused = self.refused.saturating_add(1);
            self.seen.gave_up += 1;
            return None;
        }
        self.seen.resent += 1;
        let doubled = FIRST_PAUSE.saturating_mul(1 << rounds.saturating_sub(1).min(16));
        let pause = doubled.min(MAX_PAUSE);
        // Half the pause, plus up to as much again, from a sequence that differs from one
        // request to the next: deterministic, and no two requests throttled together share it.
        let spread = splitmix(self.seen.resent) % 1024;
        Some(pause / 2 + pause / 2 * u32::try_from(spread).unwrap_or(0) / 1024)
    }
}

/// A well-mixed 64-bit value from a counter (SplitMix64's output function).
fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Throttles one request started now.
    fn throttle(w: &mut Window) {
        let t = w.ticket();
        w.attempt(t, Signal::Throttled);
    }

    #[test]
    fn a_window_starts_small_and_doubles_each_round_trip_until_throttled() {
        let mut w = Window::new(1, 512);
        assert_eq!(w.limit(), INITIAL);
        // Each answer adds one: a round trip of 64 answers makes 128, then 256, then 512.
        for _ in 0..64 {
            w.answered();
        }
        assert_eq!(w.limit(), 128);
        for _ in 0..(128 + 256 + 100) {
            w.answered();
        }
        assert_eq!(w.limit(), 512, "never beyond the ceiling");
        assert_eq!(Window::new(1, 4).limit(), 4, "a ceiling below the start");
    }

    #[test]
    fn the_window_halves_once_per_round_of_throttling() {
        let mut w = Window::new(1, 128);
        for _ in 0..64 {
            w.answered();
        }
        assert_eq!(w.limit(), 128);
        // 128 requests in flight, all throttled: one halving, not 128.
        let burst: Vec<Ticket> = (0..128).map(|_| w.ticket()).collect();
        for t in &burst {
            w.attempt(*t, Signal::Throttled);
        }
        assert_eq!(w.limit(), 64);
        // Their next attempts (same tickets) do not halve it again either.
        for t in &burst {
            w.attempt(*t, Signal::Throttled);
        }
        assert_eq!(w.limit(), 64);
        // A request started under the new window and throttled halves it.
        throttle(&mut w);
        assert_eq!(w.limit(), 32);
        let seen = w.adaptation();
        assert_eq!((seen.throttled, seen.decreases, seen.lowest), (257, 2, 32));
    }

    #[test]
    fn after_throttling_the_window_grows_by_one_per_window_of_answers() {
        let mut w = Window::new(1, 10);
        for _ in 0..4 {
            throttle(&mut w);
        }
        assert_eq!(w.limit(), 1, "10 -> 5 -> 2 -> 1, and the floor");
        let mut steps = Vec::new();
        for _ in 0..(1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 50) {
            w.answered();
            steps.push(w.limit());
        }
        // One answer takes 1 to 2, two more 2 to 3, three more 3 to 4...
        assert_eq!(&steps[..6], &[2, 2, 3, 3, 3, 4]);
        assert_eq!(w.limit(), 10, "never beyond the ceiling");
    }

    #[test]
    fn the_floor_holds_and_timeouts_count_as_congestion() {
        let mut w = Window::new(4, 16);
        for _ in 0..10 {
            let t = w.ticket();
            w.attempt(t, Signal::TimedOut);
        }
        assert_eq!(w.limit(), 4);
        assert_eq!(w.adaptation().timed_out, 10);
        let t = w.ticket();
        w.attempt(t, Signal::Served);
        assert_eq!(w.limit(), 4, "an answer is no congestion");
        // A floor above the ceiling, a zero ceiling: clamped to something that can run.
        assert_eq!(Window::new(50, 8).limit(), 8);
        let mut one = Window::new(0, 0);
        throttle(&mut one);
        assert_eq!(one.limit(), 1);
    }

    #[test]
    fn a_throttled_request_is_sent_again_after_growing_spread_pauses_and_never_without_end() {
        let mut w = Window::new(1, 8);
        let pauses: Vec<Option<Duration>> = (1..=MAX_ROUNDS).map(|r| w.resend(r)).collect();
        assert_eq!(pauses.last(), Some(&None), "{MAX_ROUNDS} times at most");
        let pauses: Vec<Duration> = pauses.into_iter().flatten().collect();
        assert_eq!(pauses.len() as u32, MAX_ROUNDS - 1);
        for (r, pause) in pauses.iter().enumerate() {
            let full = (FIRST_PAUSE * (1 << r)).min(MAX_PAUSE);
            assert!(*pause >= full / 2 && *pause <= full, "round {r}: {pause:?}");
        }
        // Spread: requests throttled together come back at different times.
        let mut firsts: Vec<Duration> = (0..8).filter_map(|_| w.resend(1)).collect();
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() >= 6, "{firsts:?}");
        let seen = w.adaptation();
        assert_eq!(
            (seen.resent, seen.gave_up),
            (u64::from(MAX_ROUNDS) - 1 + 8, 1)
        );
    }

    #[test]
    fn in_a_storm_throttled_requests_fail_at_once_until_something_is_answered() {
        let mut w = Window::new(1, 8);
        for _ in 0..STORM {
            assert_eq!(w.resend(MAX_ROUNDS), None);
        }
        // STORM requests in a row gave up: the next throttled one fails at its first answer.
        assert_eq!(w.resend(1), None);
        w.answered();
        assert!(w.resend(1).is_some(), "an answer ends the storm");
        assert_eq!(w.adaptation().gave_up, u64::from(STORM) + 1);
    }

    #[test]
    fn throttling_is_told_by_status_or_code() {
        assert!(is_throttling(Some(503), Some("SlowDown")));
        assert!(is_throttling(Some(503), None));
        assert!(is_throttling(Some(429), None));
        assert!(is_throttling(Some(400), Some("ThrottlingException")));
        assert!(is_throttling(None, Some("SlowDown")));
        assert!(!is_throttling(Some(500), Some("InternalError")));
        assert!(!is_throttling(Some(403), Some("AccessDenied")));
        assert!(!is_throttling(Some(404), Some("NoSuchKey")));
        assert!(!is_throttling(None, None));
    }
}
