//! Paginated answers (ListObjectsV2, ListPublicKeys) checked as they come: a server that never
//! ends an answer must stop the run in seconds, with bounded pages and memory, never hang it
//! or grow it without end.
use std::collections::HashSet;

/// Pages in a row that may bring nothing new while saying there is more. S3 may answer an
/// empty page now and then; a hundred in a row is a server going round in circles.
const MAX_IDLE_PAGES: usize = 100;

/// How a paginated answer failed to end as a real one does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// A continuation token came back: asking with it again would go round in circles.
    #[error("the server gave the continuation token {token:?} a second time, at page {page}: the answer would never end")]
    RepeatedToken {
        /// The page that gave it again (1 for the first).
        page: usize,
        /// The token.
        token: String,
    },
    /// A listing page held an entry at or before one of an earlier page.
    #[error(
        "page {page} did not move past {last:?}: a listing gives each key once, in ascending order"
    )]
    NotAdvancing {
        /// The page.
        page: usize,
        /// The greatest entry before it.
        last: String,
    },
    /// A page said there is more but gave no token to ask for it.
    #[error("page {page} says the answer goes on but gives no token to ask for the rest")]
    TruncatedWithoutToken {
        /// The page.
        page: usize,
    },
    /// Page after page brought nothing while saying there is more.
    #[error("{pages} pages in a row brought nothing new")]
    Idle {
        /// How many in a row.
        pages: usize,
    },
    /// The answer held more items than it may.
    #[error("more than {max} items, more than any real answer has")]
    TooManyItems {
        /// The most it may hold.
        max: usize,
    },
    /// The answer took more pages than it may.
    #[error("more than {pages} pages, more than any real answer has; {}", unsearched(.last))]
    TooManyPages {
        /// The most it may take.
        pages: usize,
        /// The greatest entry read, after which nothing was.
        last: Option<String>,
    },
}

fn unsearched(last: &Option<String>) -> String {
    match last {
        Some(key) => format!("what comes after {key:?} was not read"),
        None => "nothing was read".to_owned(),
    }
}

/// The state of one paginated answer: the page count, every token given, and (for listings)
/// the greatest key or folder seen, which each page must go beyond.
#[derive(Debug)]
pub struct Pager {
    max_pages: usize,
    pages: usize,
    idle: usize,
    tokens: HashSet<String>,
    last: Option<String>,
}

impl Pager {
    /// An answer of at most `max_pages` pages; the tokens kept are bounded by it too.
    pub fn new(max_pages: usize) -> Self {
        Pager {
            max_pages,
            pages: 0,
            idle: 0,
            tokens: HashSet::new(),
            last: None,
        }
    }

    /// Pages asked for so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The greatest entry seen.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Checks a listing page's entries (keys and folders together): each page must bring only
    /// entries beyond every earlier one. Listings come in ascending order, so a server that
    /// hands out the same entries again under fresh tokens is caught at once.
    pub fn entries<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), PageError> {
        let (mut least, mut greatest): (Option<&str>, Option<&str>) = (None, None);
        for e in entries {
            least = Some(least.map_or(e, |l| l.min(e)));
            greatest = Some(greatest.map_or(e, |g| g.max(e)));
        }
        let (Some(least), Some(greatest)) = (least, greatest) else {
            return self.items(0);
        };
        if let Some(last) = &self.last {
            if least <= last.as_str() {
                return Err(PageError::NotAdvancing {
                    page: self.pages + 1,
                    last: last.clone(),
                });
            }
        }
        self.last = Some(greatest.to_owned());
        self.idle = 0;
        Ok(())
    }

    /// A listing started again after `key` (skipping what lies before it): what follows must
    /// lie beyond it. Counts as a page.
    pub fn restart_after(&mut self, key: &str) -> Result<(), PageError> {
        self.count()?;
        if self.last.as_deref().is_some_and(|l| key <= l) {
            return Err(PageError::NotAdvancing {
                page: self.pages,
                last: key.to_owned(),
            });
        }
        self.last = Some(key.to_owned());
        Ok(())
    }

    /// The token to ask for the next page with, or `None` when the answer is complete.
    /// `more` is what the page says (ListObjectsV2's `IsTruncated`; for answers without such a
    /// flag, whether a token was given).
    pub fn next(&mut self, more: bool, token: Option<&str>) -> Result<Option<String>, PageError> {
        self.count()?;
        if !more {
            return Ok(None);
        }
        let token = token.ok_or(PageError::TruncatedWithoutToken { page: self.pages })?;
        if !self.tokens.insert(token.to_owned()) {
            return Err(PageError::RepeatedToken {
                page: self.pages,
                token: token.to_owned(),
            });
        }
        Ok(Some(token.to_owned()))
    }

    /// For answers without an order to check: a page brought `n` items.
    pub fn items(&mut self, n: usize) -> Result<(), PageError> {
        if n > 0 {
            self.idle = 0;
            return Ok(());
        }
        self.idle += 1;
        if self.idle >= MAX_IDLE_PAGES {
            return Err(PageError::Idle { pages: self.idle });
        }
        Ok(())
    }

    fn count(&mut self) -> Result<(), PageError> {
        self.pages += 1;
        if self.pages > self.max_pages {
            return Err(PageError::TooManyPages {
                pages: self.max_pages,
                last: self.last.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_token_ends_the_answer() {
        let mut p = Pager::new(10);
        assert_eq!(p.next(true, Some("t")).unwrap().as_deref(), Some("t"));
        assert!(matches!(
            p.next(true, Some("t")),
            Err(PageError::RepeatedToken { page: 2, .. })
        ));
    }

    #[test]
    fn pages_that_do_not_advance_end_the_answer() {
        let mut p = Pager::new(10);
        p.entries(["b", "a"]).unwrap();
        assert!(matches!(
            p.entries(["b", "c"]),
            Err(PageError::NotAdvancing { .. })
        ));
        p.entries(["c"]).unwrap();
        p.restart_after("d").unwrap();
        assert!(p.entries(["d"]).is_err());
        assert!(p.restart_after("c").is_err());
    }

    #[test]
    fn a_truncated_page_without_a_token_is_an_error_not_the_end() {
        let mut p = Pager::new(10);
        assert!(matches!(
            p.next(true, None),
            Err(PageError::TruncatedWithoutToken { page: 1 })
        ));
        assert_eq!(Pager::new(10).next(false, Some("x")), Ok(None));
    }

    #[test]
    fn pages_and_idle_pages_are_bounded() {
        let mut p = Pager::new(3);
        for t in ["1", "2", "3"] {
            p.next(true, Some(t)).unwrap();
        }
        assert!(matches!(
            p.next(true, Some("4")),
            Err(PageError::TooManyPages { pages: 3, .. })
        ));
        let mut p = Pager::new(1000);
        for _ in 1..MAX_IDLE_PAGES {
            p.entries([]).unwrap();
        }
        assert!(p.items(0).is_err());
        let mut p = Pager::new(1000);
        for _ in 0..2 * MAX_IDLE_PAGES {
            p.items(0).and_then(|()| p.items(1)).unwrap();
        }
    }
}
