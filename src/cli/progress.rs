//! Progress bars on stderr, from the engine's observer: objects done, bytes, rate. Drawn only
//! when stderr is a terminal, so piped and redirected runs print nothing extra.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use trailproof::source::progress::{Observer, Phase};

/// The bars of a run, one per phase under way.
pub struct Bars {
    draw: bool,
    phases: Mutex<HashMap<Phase, Bar>>,
}

struct Bar {
    bar: ProgressBar,
    bytes: u64,
    started: Instant,
}

impl Bars {
    /// Bars on stderr when it is a terminal; otherwise nothing is drawn.
    pub fn on_stderr() -> Self {
        Bars {
            draw: std::io::stderr().is_terminal(),
            phases: Mutex::new(HashMap::new()),
        }
    }
}

impl Observer for Bars {
    fn phase_started(&self, phase: Phase, total: Option<u64>) {
        if !self.draw {
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = match total {
            Some(_) => "{pos}/{len} {prefix} [{elapsed}] {msg}",
            // A count of things seen where the total is not known beforehand.
            None => "{pos} {prefix} [{elapsed}]",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(phase.to_string());
        let started = Instant::now();
        let old = self
            .phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                phase,
                Bar {
                    bar,
                    bytes: 0,
                    started,
                },
            );
        if let Some(old) = old {
            old.bar.finish_and_clear();
        }
    }

    fn objects_done(&self, phase: Phase, objects: u64, stored_bytes: u64) {
        if !self.draw {
            return;
        }
        let mut phases = self.phases.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(bar) = phases.get_mut(&phase) else {
            return;
        };
        bar.bar.inc(objects);
        if stored_bytes > 0 {
            bar.bytes += stored_bytes;
            let secs = bar.started.elapsed().as_secs_f64().max(0.001);
            let rate = bar.bar.position() as f64 / secs;
            let mb = bar.bytes as f64 / 1e6;
            bar.bar.set_message(format!(
                "{mb:.1} MB, {:.1} MB/s, {rate:.0} objects/s",
                mb / secs
            ));
        }
    }

    fn phase_finished(&self, phase: Phase) {
        let bar = self
            .phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&phase);
        if let Some(bar) = bar {
            bar.bar.finish_and_clear();
        }
    }
}
