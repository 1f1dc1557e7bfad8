//! A CloudWatch Logs log group, read for `crosscheck cloudwatch`: its streams
//! (DescribeLogStreams) and the log events of time windows (FilterLogEvents), many requests in
//! flight at once, each paginated answer checked as it comes ([`super::pages`]).
//!
//! Only reads: nothing here writes to, or deletes from, the group.
use jiff::Timestamp;

use super::SourceError;
use crate::core::cloudwatch::LogEvent;

/// A window of time: from (included) to (excluded).
pub type Window = (Timestamp, Timestamp);

/// A log group as the engine reads it.
pub trait LogGroup: Sync {
    /// The group's name.
    fn name(&self) -> &str;
    /// The names of its streams that start with `prefix` (all without one), in name order.
    fn streams(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError>;
    /// The log events of `streams` in each window (by their timestamps), one list per window in
    /// the order given.
    fn read(
        &self,
        streams: &[String],
        windows: &[Window],
    ) -> Result<Vec<Vec<LogEvent>>, SourceError>;
}

#[cfg(feature = "aws")]
pub use self::aws_group::CloudWatchGroup;

#[cfg(feature = "aws")]
mod aws_group {
    use std::collections::HashSet;

    use futures_util::{stream, StreamExt};
    use jiff::Timestamp;

    use super::{LogGroup, Window};
    use crate::core::cloudwatch::LogEvent;
    use crate::source::aws::{load, AwsError, AwsOptions, NoRetryWhereNothingListens, Operation};
    use crate::source::pages::{PageError, Pager};
    use crate::source::SourceError;

    /// Streams one request may name (FilterLogEvents takes at most 100).
    const STREAMS_PER_REQUEST: usize = 100;
    /// Streams a group may have: CloudTrail makes a few per account and Region.
    const MAX_STREAMS: usize = 100_000;
    /// Log events one window may hold, so that memory stays bounded whatever the group holds
    /// (about 2 GB of CloudTrail events): a window with more stops the run, asking for smaller
    /// windows.
    const MAX_WINDOW_EVENTS: usize = 2_000_000;
    /// Pages one answer may take: FilterLogEvents pages hold up to 10,000 events or 1 MB, and
    /// may be empty while it searches.
    const MAX_PAGES: usize = 100_000;

    /// A log group on CloudWatch Logs.
    pub struct CloudWatchGroup {
        runtime: tokio::runtime::Runtime,
        client: aws_sdk_cloudwatchlogs::Client,
        options: AwsOptions,
        group: String,
        concurrency: usize,
        page_limit: Option<i32>,
    }

    impl CloudWatchGroup {
        /// The group `group` in the Region of `options` (else the configured one), read with at
        /// most `concurrency` requests in flight; `page_limit` asks for pages of at most that
        /// many events (the service's default otherwise).
        pub fn connect(
            options: &AwsOptions,
            group: &str,
            concurrency: usize,
            page_limit: Option<i32>,
        ) -> Result<Self, SourceError> {
            let runtime = crate::source::aws::runtime(true)?;
            let client = runtime.block_on(async {
                let config =
                    aws_sdk_cloudwatchlogs::config::Builder::from(&load(options, None).await)
                        .retry_classifier(NoRetryWhereNothingListens)
                        .build();
                aws_sdk_cloudwatchlogs::Client::from_conf(config)
            });
            Ok(CloudWatchGroup {
                runtime,
                client,
                options: options.clone(),
                group: group.to_owned(),
                concurrency: concurrency.max(1),
                page_limit,
            })
        }

        fn pages(&self, operation: Operation) -> impl Fn(PageError) -> SourceError + '_ {
            move |problem| SourceError::Pages {
                operation,
                target: self.group.clone(),
                problem,
            }
        }

        /// One window of some streams, every page of it.
        async fn filter(
            &self,
            streams: &[String],
            window: Window,
        ) -> Result<Vec<LogEvent>, SourceError> {
            let (from, to) = (window.0.as_millisecond(), window.1.as_millisecond());
            let pages = self.pages(Operation::FilterLogEvents);
            let mut pager = Pager::new(MAX_PAGES);
            let mut events = Vec::new();
            // Each event comes once: one given again is a server going round in circles.
            let mut seen = HashSet::new();
            let mut token = None;
            loop {
                // `endTime` is included by the service: the window's end is not.
                let page = self
                    .client
                    .filter_log_events()
                    .log_group_name(&self.group)
                    .set_log_stream_names(Some(streams.to_vec()))
                    .start_time(from)
                    .end_time(to - 1)
                    .set_limit(self.page_limit)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::new(
                            &e,
                            Operation::FilterLogEvents,
                            self.group.clone(),
                            &self.options,
                        )
                    })?;
                for e in page.events() {
                    let incomplete = |missing| SourceError::IncompleteLogEvent {
                        group: self.group.clone(),
                        missing,
                    };
                    let timestamp = e
                        .timestamp()
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                        .ok_or_else(|| incomplete("a timestamp"))?;
                    if !(window.0 <= timestamp && timestamp < window.1) {
                        return Err(incomplete("a timestamp in the window asked for"));
                    }
                    let id = e.event_id().ok_or_else(|| incomplete("an event id"))?;
                    if !seen.insert(id.to_owned()) {
                        return Err(SourceError::RepeatedLogEvent {
                            group: self.group.clone(),
                            id: id.to_owned(),
                        });
                    }
                    events.push(LogEvent {
                        stream: e
                            .log_stream_name()
                            .ok_or_else(|| incomplete("a stream name"))?
                            .to_owned(),
                        id: id.to_owned(),
                        timestamp,
                        message: e.message().unwrap_or_default().to_owned(),
                    });
                }
                // Empty pages happen while the service searches; a hundred in a row do not.
                pager.items(page.events().len()).map_err(&pages)?;
                if events.len() > MAX_WINDOW_EVENTS {
                    return Err(pages(PageError::TooManyItems {
                        max: MAX_WINDOW_EVENTS,
                    }));
                }
                token = pager
                    .next(page.next_token().is_some(), page.next_token())
                    .map_err(&pages)?;
                if token.is_none() {
                    return Ok(events);
                }
            }
        }
    }

    impl LogGroup for CloudWatchGroup {
        fn name(&self) -> &str {
            &self.group
        }

        fn streams(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
            self.runtime.block_on(async {
                let pages = self.pages(Operation::DescribeLogStreams);
                let mut pager = Pager::new(MAX_STREAMS);
                let mut names = Vec::new();
                let mut token = None;
                loop {
                    let page = self
                        .client
                        .describe_log_streams()
                        .log_group_name(&self.group)
                        .set_log_stream_name_prefix(prefix.map(str::to_owned))
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::new(
                                &e,
                                Operation::DescribeLogStreams,
                                self.group.clone(),
                                &self.options,
                            )
                        })?;
                    let page_names: Vec<&str> = page
                        .log_streams()
                        .iter()
                        .filter_map(|s| s.log_stream_name())
                        .collect();
                    // Streams come in name order: a page that goes back is a server going round.
                    pager.entries(page_names.iter().copied()).map_err(&pages)?;
                    names.extend(page_names.iter().map(|n| (*n).to_owned()));
                    if names.len() > MAX_STREAMS {
                        return Err(pages(PageError::TooManyItems { max: MAX_STREAMS }));
                    }
                    token = pager
                        .next(page.next_token().is_some(), page.next_token())
                        .map_err(&pages)?;
                    if token.is_none() {
                        return Ok(names);
                    }
                }
            })
        }

        fn read(
            &self,
            streams: &[String],
            windows: &[Window],
        ) -> Result<Vec<Vec<LogEvent>>, SourceError> {
            let requests: Vec<(usize, &[String], Window)> = windows
                .iter()
                .enumerate()
                .flat_map(|(i, w)| streams.chunks(STREAMS_PER_REQUEST).map(move |c| (i, c, *w)))
                .collect();
            let answers: Vec<(usize, Result<Vec<LogEvent>, SourceError>)> = self.runtime.block_on(
                stream::iter(requests)
                    .map(|(i, chunk, w)| async move { (i, self.filter(chunk, w).await) })
                    // In order, so that the error reported is the same every run.
                    .buffered(self.concurrency)
                    .collect(),
            );
            let mut out: Vec<Vec<LogEvent>> = windows.iter().map(|_| Vec::new()).collect();
            for (i, answer) in answers {
                if let Some(window) = out.get_mut(i) {
                    window.extend(answer?);
                }
            }
            Ok(out)
        }
    }
}
