//! Progress on stderr while objects are read: objects done, bytes, rate. Drawn only when
//! stderr is a terminal, so piped and redirected runs print nothing extra.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::StoredObject;
use crate::core::evidence::ObjectRecord;
use crate::core::gz::GzOutcome;

/// Anything read from a source knows how many stored bytes it took.
pub trait Stored {
    fn stored_bytes(&self) -> u64;
}

impl Stored for GzOutcome {
    fn stored_bytes(&self) -> u64 {
        self.stored_len
    }
}

impl Stored for StoredObject {
    fn stored_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl Stored for ObjectRecord {
    fn stored_bytes(&self) -> u64 {
        self.size.unwrap_or(0)
    }
}

/// One phase's bar.
pub struct Progress {
    bar: ProgressBar,
    bytes: AtomicU64,
    started: Instant,
}

impl Progress {
    pub fn new(what: &str, total: usize) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::to(target, what, total)
    }

    /// Work that another bar already shows (reading digests again while log files are hashed).
    pub fn hidden() -> Self {
        Self::to(ProgressDrawTarget::hidden(), "", 0)
    }

    fn to(target: ProgressDrawTarget, what: &str, total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        if let Ok(style) = ProgressStyle::with_template("{pos}/{len} {prefix} [{elapsed}] {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// A count of things seen where the total is not known beforehand (objects searched).
    pub fn counting(what: &str) -> Self {
        let progress = Self::new(what, 0);
        if let Ok(style) = ProgressStyle::with_template("{pos} {prefix} [{elapsed}]") {
            progress.bar.set_style(style);
        }
        progress
    }

    /// `n` more things seen, for [`Progress::counting`].
    pub fn add(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    /// One object finished, having read `bytes` stored bytes.
    pub fn done(&self, bytes: u64) {
        // Called for every object, from every worker: nothing to do when nothing is drawn.
        if self.bar.is_hidden() {
            return;
        }
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.bar.position() as f64 / secs;
        self.bar.set_message(format!(
            "{:.1} MB, {:.1} MB/s, {rate:.0} objects/s",
            mb(total),
            mb(total) / secs
        ));
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
