//! trailproof: integrity validation and forensics for AWS CloudTrail logs, as a library.
//!
//! CloudTrail delivers gzip'd JSON log files to S3 and, every hour, a digest file per account,
//! Region and trail that lists the SHA-256 of each log file it delivered and links to the
//! previous digest; CloudTrail signs each digest with RSA. trailproof checks all of it: every
//! digest's signature (with a key valid when it was signed, at the location it was delivered
//! to), every log file's hash, every link, and every hour of the range, and names every
//! missing, moved, tampered, injected or unverifiable object and every gap in coverage.
//!
//! # What to use for what
//!
//! | you hold | use | you get |
//! |---|---|---|
//! | one digest file (bytes, where it was read from, its signature) | [`core::verify::verify_digest_object`] | a [`VerifiedDigest`] or why not |
//! | one log file and the [`VerifiedDigest`] that lists it | [`core::gz::Inflater`] + [`core::verdict::judge_log_file`] | the same verdict a full run gives it |
//! | a local copy of a bucket (`aws s3 sync`, or `trailproof acquire`) | [`LocalEvidence`] + [`PinnedKeys`] + [`engine::verify`] | a [`Report`] |
//! | a bucket on S3 (feature `aws`) | `source::s3::S3Source` + `source::cloudtrail::CloudTrailKeys` + [`engine::verify`] | a [`Report`] |
//! | findings and progress as they happen | [`engine::verify_streaming`] with a [`FindingSink`] and an [`Observer`] | each chain's findings, then the [`Report`] |
//! | the records of the log files a run proves, with their provenance | [`engine::events::verify_and_export`] (or [`engine::events::verified_records`] after a run) | an iterator of [`engine::events::ExportedRecord`]s; [`report::records`] writes them as JSONL, Timesketch JSONL or Parquet |
//! | a CloudWatch Logs group a trail delivers to (feature `aws` for the group's client) | [`engine::crosscheck::crosscheck_cloudwatch`] with a `source::cloudwatch::LogGroup` (the comparison itself: [`core::cloudwatch`]) | a [`Report`] with the group's injected, missing and altered events |
//! | a report for people or machines | [`report::text`], [`report::json`], [`report::jsonl`], [`report::html`] | bytes to write |
//! | a report anyone can check later | [`report::statement`] | a signed DSSE envelope and its verification |
//! | a run that goes on from the last one | [`report::checkpoint`] ([`report::checkpoint::VerifiedCheckpoint::resume`] into [`Settings::resume`], then [`report::checkpoint::VerifiedCheckpoint::advance`]) | a signed checkpoint, and the new digests held to it |
//! | deliveries as they come (feature `aws` for the queue: `source::sqs`) | a run as above per batch of [`core::notification`]s, then [`engine::watch::Silence`] for the chains whose next digest is late | findings the hour a digest goes missing |
//! | proof of when a signed report existed | [`report::timestamp`] (the HTTP request: `source::tsa`) | an RFC 3161 token over its signature, checked |
//!
//! Runnable versions of each are in `examples/` (`cargo run --no-default-features --example
//! verify_digest`, `verify_log`, `verify_dir`, `verified_events`; `verify_s3` needs the `aws`
//! feature).
//!
//! A [`Report`]'s [`Report::exit_code`] is the verdict: 0 when every object and every hour of
//! the range is proven, 1 when there are integrity findings or unproven hours, 2 when the
//! evidence could not be read. Findings are not errors: a tampered file is a [`Finding`] and the
//! run goes on; an `Err` means the job could not be done (an unreadable source, a bad range).
//!
//! # What it never does
//!
//! - It never writes to, moves or deletes evidence: sources only read.
//! - The core ([`core`]) never does I/O, reads the clock or the environment, or panics on
//!   evidence; sources ([`source`]) are the only code that touches the disk or the network.
//! - It never calls a digest valid without a verified signature from a key valid when it was
//!   signed, at the location the digest names as its own; nor a log file valid without a
//!   verified digest that lists its hash.
//! - It never draws on a terminal: progress goes to the observer you give the engine, and
//!   findings to your sink.
//!
//! # Features
//!
//! - `aws` (default): the S3 and CloudTrail sources and the SQS queue `watch` reads, on the
//!   AWS SDK and tokio.
//! - `cli` (default): the `trailproof` binary's command line (clap) and progress bars
//!   (indicatif).
//! - `parquet` (default; `cli` needs it): [`report::records`] writes Parquet, with the Apache
//!   Arrow project's `parquet` crate (without Arrow itself).
//!
//! With `default-features = false` the library needs only what verification needs (ring,
//! sha2, md-5, x509-parser, flate2 on zlib-rs, serde_json, jiff, rayon, thiserror).
//!
//! Times are [`Timestamp`]s (from `jiff`, re-exported here with [`SignedDuration`]: no direct
//! `jiff` dependency is needed).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod core;
pub mod engine;
pub mod report;
pub mod source;

pub use jiff::{SignedDuration, Timestamp};

pub use crate::core::finding::{Finding, Kind, Verdict};
pub use crate::core::sign::{KeySet, VerifiedDigest};
pub use crate::core::types::{Fingerprint, S3Location, Sha256};
pub use crate::engine::{
    verify, verify_streaming, EngineError, FindingSink, NoObserver, Observer, Phase, Settings,
};
pub use crate::report::Report;
pub use crate::source::local::LocalEvidence;
pub use crate::source::PinnedKeys;
