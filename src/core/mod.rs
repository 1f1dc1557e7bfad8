//! The verification core: bytes in, typed results out.
//!
//! Nothing in here performs I/O, reads the clock or the environment, or needs an async runtime,
//! so an embedder can verify evidence it already holds. Sources (`crate::source`) feed it bytes;
//! the engine (`crate::engine`) decides what to feed in which order.
// Evidence is hostile: no code path in the core may panic on it. Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod aimd;
pub mod chain;
pub mod cloudwatch;
pub mod custody;
pub mod digest;
pub mod evidence;
pub mod finding;
pub mod gz;
pub mod keyfile;
pub mod lake;
pub mod layout;
pub mod ledger;
pub mod notification;
pub mod records;
pub mod sign;
pub mod time;
pub mod types;
pub mod verdict;
pub mod verify;

pub use types::{Fingerprint, S3Location, Sha256};
