//! The streaming inflater on any bytes, fed in chunkings taken from the input.
//!
//! A run that stops reading once the inflater has decided, counting the rest unread, gives
//! the same outcome.
//!
//! Input: `[max_inflated, max_ratio, ratio_floor, n, size_1 .. size_n, stream..]`. The limits
//! are kept small (at most 1 MiB inflated) so that a budget is reached within a fuzz run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::gz::{inflate_all, GzOutcome, GzProblem, Inflater, Limits};
use trailproof::core::Sha256;

/// The inflater's output buffer: one `decompress` call can overshoot a budget by this much.
const OUT_CHUNK: u64 = 64 * 1024;

fn run(stream: &[u8], limits: Limits, sizes: &[usize]) -> (GzOutcome, Vec<u8>) {
    let mut inflater = Inflater::new(limits).hash_stored().keep_output();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        inflater.update(chunk);
        rest = tail;
    }
    let (outcome, kept) = inflater.finish();
    (outcome, kept.expect("keep_output was asked for"))
}

/// As a source that knows the object's length reads it: in chunks of `size` until the
/// inflater has decided, the rest counted unread.
fn run_until_decided(stream: &[u8], limits: Limits, size: usize) -> GzOutcome {
    let mut inflater = Inflater::new(limits);
    let mut read = 0;
    while read < stream.len() && !inflater.decided() {
        let chunk = &stream[read..(read + size).min(stream.len())];
        inflater.update(chunk);
        read += chunk.len();
    }
    inflater.skip((stream.len() - read) as u64);
    inflater.finish().0
}

fn check_one(stream: &[u8], limits: Limits, outcome: &GzOutcome, kept: &[u8]) {
    assert_eq!(outcome.stored_len, stream.len() as u64);
    assert_eq!(outcome.stored_sha256, Some(Sha256::of(stream)));
    assert_eq!(outcome.inflated_len, kept.len() as u64);
    assert_eq!(outcome.inflated_sha256, Sha256::of(kept));
    assert!(
        outcome.inflated_len <= limits.max_inflated + OUT_CHUNK,
        "inflated {} past the budget {}",
        outcome.inflated_len,
        limits.max_inflated
    );
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, n, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_inflated: (u64::from(*a) + 1) * 4096,
        max_ratio: if *b == u8::MAX {
            u64::MAX
        } else {
            u64::from(*b) + 1
        },
        ratio_floor: u64::from(*c) * 1024,
    };
    let n = usize::from(*n % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();

    let (whole, whole_kept) = run(stream, limits, &[stream.len().max(1)]);
    check_one(stream, limits, &whole, &whole_kept);
    assert_eq!(
        inflate_all(stream, limits),
        match &whole.problem {
            None => Ok(whole_kept.clone()),
            Some(p) => Err(p.clone()),
        }
    );
    // Stopping once the verdict is known changes nothing but the stored hash, not taken.
    let decided = run_until_decided(stream, limits, sizes.first().copied().unwrap_or(4096));
    if !matches!(whole.problem, Some(GzProblem::Budget { .. })) {
        assert_eq!(
            decided,
            GzOutcome {
                stored_sha256: None,
                ..whole.clone()
            },
            "stopping at the verdict changed the outcome"
        );
    }
    if sizes.is_empty() {
        return;
    }
    let (chunked, chunked_kept) = run(stream, limits, &sizes);
    check_one(stream, limits, &chunked, &chunked_kept);
    match (&whole.problem, &chunked.problem) {
        // Where a budget stops inflating depends on how much came out per call, so only
        // the verdict must agree; everything else must be identical.
        (Some(GzProblem::Budget { .. }), Some(GzProblem::Budget { .. })) => {}
        _ => {
            assert_eq!(whole, chunked, "chunking {sizes:?} changed the outcome");
            assert_eq!(whole_kept, chunked_kept);
        }
    }
});
