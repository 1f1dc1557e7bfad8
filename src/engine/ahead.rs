//! The log folders listed ahead. The last pass of a run (log files no digest names, see
//! `unvouched`) holds every log file of the range against what the digests named, so it can
//! only judge once the log files are hashed; but its listing needs nothing from them. From a
//! remote source that listing is a chain of round trips (the Regions, then each day folder's
//! pages one after another), so it is started as soon as the plan is made, on a thread of its
//! own, while the digests are read and the log files hashed, and its keys wait for the pass.
//!
//! Memory stays bounded: the keys are kept up to [`AHEAD_BUDGET`] bytes. A listing that
//! outgrows it keeps nothing more (it still runs to its end, since a source's listing cannot be
//! stopped) and the folders are listed again when the pass needs them, as without this: one
//! request per thousand log files more, next to one per log file read. Either way the pass sees
//! every key one whole listing gave, or fails as that listing failed.

use std::sync::{Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use super::plan::{for_each_log, list_request, sort_log_key};
use super::Settings;
use crate::core::layout::{LogKey, ObjectType};
use crate::source::progress::{NoObserver, Observer};
use crate::source::{ObjectSource, SourceError};

/// The most key bytes a listing ahead keeps: about 150,000 log files, two months of a busy
/// Region's, in 16 MiB.
const AHEAD_BUDGET: usize = 16 << 20;

/// The log-folder listing of a run: under way, or left for when it is needed.
pub(super) enum LogListing<'scope> {
    /// Listed when needed: a local copy lists in a moment, and its listing reports strays
    /// and progress as it goes.
    Later,
    /// Listing on its own thread: the keys, unless they outgrew the budget.
    Ahead(ScopedJoinHandle<'scope, Result<Option<Vec<String>>, SourceError>>),
}

impl<'scope> LogListing<'scope> {
    /// Starts listing the log folders `settings` select on a thread of `scope`, if `source`
    /// is remote.
    pub(super) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env dyn ObjectSource,
        settings: &'env Settings,
    ) -> Self {
        Self::within(scope, source, settings, AHEAD_BUDGET)
    }

    /// [`Self::start`], keeping at most `budget` key bytes.
    fn within<'env>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env dyn ObjectSource,
        settings: &'env Settings,
        budget: usize,
    ) -> Self {
        if !source.remote() {
            return LogListing::Later;
        }
        LogListing::Ahead(scope.spawn(move || {
            let kept = Mutex::new(Some((Vec::new(), budget)));
            // No progress is reported from here: the phases under way are the run's own.
            source.list(
                &list_request(settings, ObjectType::Log),
                &|key| {
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    let over = match &mut *kept {
                        Some((keys, left)) if key.len() <= *left => {
                            *left -= key.len();
                            keys.push(key);
                            false
                        }
                        Some(_) => true,
                        None => false,
                    };
                    if over {
                        *kept = None;
                    }
                },
                &NoObserver,
            )?;
            Ok(kept
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .map(|(keys, _)| keys))
        }))
    }

    /// Hands `each` every log file of the selected accounts and Regions, with its parsed key,
    /// and `unrecognised` every listed key that is no CloudTrail key (see
    /// [`super::plan::for_each_log`]): from the listing ahead, or listed now.
    pub(super) fn for_each_log(
        self,
        source: &dyn ObjectSource,
        settings: &Settings,
        each: &(dyn Fn(String, LogKey) + Sync),
        unrecognised: &(dyn Fn(String) + Sync),
        observer: &dyn Observer,
    ) -> Result<(), SourceError> {
        let listed = match self {
            LogListing::Later => None,
            LogListing::Ahead(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
        };
        match listed {
            Some(keys) => {
                for key in keys {
                    sort_log_key(settings, key, each, unrecognised);
                }
                Ok(())
            }
            None => for_each_log(source, settings, each, unrecognised, observer),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::core::gz::GzOutcome;
    use crate::core::types::S3Location;
    use crate::source::local::LocalEvidence;
    use crate::source::progress::Progress;
    use crate::source::{ListRequest, ReadError, StoredObject};

    /// A copy on disk that says it is remote (so its log folders are listed ahead) and counts
    /// its log-folder listings.
    struct Remote {
        copy: LocalEvidence,
        log_listings: AtomicUsize,
    }

    impl ObjectSource for Remote {
        fn describe(&self) -> String {
            self.copy.describe()
        }
        fn bucket(&self) -> Option<String> {
            self.copy.bucket()
        }
        fn list(
            &self,
            request: &ListRequest,
            each: &(dyn Fn(String) + Sync),
            observer: &dyn Observer,
        ) -> Result<(), SourceError> {
            if request.objects == ObjectType::Log {
                self.log_listings.fetch_add(1, Ordering::Relaxed);
            }
            self.copy.list(request, each, observer)
        }
        fn read_digests(
            &self,
            keys: &[String],
            progress: &Progress<'_>,
        ) -> Vec<Result<StoredObject, ReadError>> {
            self.copy.read_digests(keys, progress)
        }
        fn hash_logs(
            &self,
            bucket: &str,
            locations: &[&S3Location],
            progress: &Progress<'_>,
        ) -> Vec<Result<GzOutcome, ReadError>> {
            self.copy.hash_logs(bucket, locations, progress)
        }
        fn inflate_logs(
            &self,
            bucket: &str,
            locations: &[&S3Location],
            progress: &Progress<'_>,
        ) -> Vec<Result<crate::source::InflatedLog, ReadError>> {
            self.copy.inflate_logs(bucket, locations, progress)
        }
        fn remote(&self) -> bool {
            true
        }
        fn notes(&self) -> Vec<String> {
            self.copy.notes()
        }
    }

    /// The log files and strays a listing hands on, sorted: listed ahead (within `budget`) or
    /// when needed; and how many log-folder listings the source gave.
    fn handed(case: &str, budget: Option<usize>) -> (Vec<String>, usize) {
        let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/cases")
            .join(case);
        let source = Remote {
            copy: LocalEvidence::open(&case.join("bucket")).unwrap(),
            log_listings: AtomicUsize::new(0),
        };
        let settings = Settings::default();
        let found = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let listing = match budget {
                Some(budget) => LogListing::within(scope, &source, &settings, budget),
                None => LogListing::Later,
            };
            listing
                .for_each_log(
                    &source,
                    &settings,
                    &|key, _| found.lock().unwrap().push(format!("log {key}")),
                    &|key| found.lock().unwrap().push(format!("unrecognised {key}")),
                    &NoObserver,
                )
                .unwrap();
        });
        let mut found = found.into_inner().unwrap();
        found.sort();
        (found, source.log_listings.into_inner())
    }

    /// A listing ahead that outgrows its budget must not hand on what it kept as if that were
    /// all (the log files beyond it would be named by no one and reported by no pass): it is
    /// dropped and the folders listed again. Within the budget the folders are listed once.
    #[test]
    fn a_listing_ahead_over_its_budget_is_listed_again_not_cut_short() {
        let (now, listings) = handed("log-injected", None);
        assert_eq!(listings, 1);
        assert!(now.iter().any(|k| k.starts_with("log ")), "{now:?}");
        let (ahead, listings) = handed("log-injected", Some(AHEAD_BUDGET));
        assert_eq!((&ahead, listings), (&now, 1));
        // Room for one key only.
        let (over, listings) = handed("log-injected", Some(200));
        assert_eq!((&over, listings), (&now, 2));
    }
}
