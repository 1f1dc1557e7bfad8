//! Which records to write: the glob matcher for ARNs and the [`EventFilter`] conditions.

use jiff::Timestamp;

use super::Record;

/// A glob on a whole string: `*` matches any run of characters (`/` and `:` included), `?`
/// exactly one character, anything else itself. There is no escape: CloudTrail ARNs hold
/// neither `*` nor `?` in practice, and a pattern character `*` or `?` cannot be matched
/// literally.
///
/// Matching simulates the pattern's automaton over the text (the set of pattern positions
/// reachable so far) rather than backtracking: at most `pattern length × text length` steps
/// whatever the pattern, so `*a*a*a*a*b` on a long text costs no more than a plain pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    One,
    Char(char),
}

impl Glob {
    /// Compiles `pattern`; every string is a valid pattern. Runs of `*` count as one.
    pub fn new(pattern: &str) -> Self {
        let mut tokens: Vec<Token> = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let t = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Char(c),
            };
            if !(t == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(t);
            }
        }
        Glob {
            pattern: pattern.to_owned(),
            tokens,
        }
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches the whole of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        // `live[i]`: the first `i` tokens match the text read so far. A star at `i` also lets
        // `i + 1` live without reading anything (runs of stars are one token, so one step
        // forward closes the set).
        let n = self.tokens.len();
        let mut live = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        if let Some(first) = live.first_mut() {
            *first = true;
        }
        close(&self.tokens, &mut live);
        for c in text.chars() {
            next.iter_mut().for_each(|b| *b = false);
            let mut any = false;
            for (i, (t, &on)) in self.tokens.iter().zip(&live).enumerate() {
                if !on {
                    continue;
                }
                let to = match *t {
                    Token::Star => i,
                    Token::One => i + 1,
                    Token::Char(p) if p == c => i + 1,
                    Token::Char(_) => continue,
                };
                if let Some(b) = next.get_mut(to) {
                    *b = true;
                    any = true;
                }
            }
            if !any {
                return false;
            }
            close(&self.tokens, &mut next);
            std::mem::swap(&mut live, &mut next);
        }
        live.last() == Some(&true)
    }
}

/// Adds the positions reachable past a star without reading a character.
fn close(tokens: &[Token], live: &mut [bool]) {
    for (i, t) in tokens.iter().enumerate() {
        if *t == Token::Star && live.get(i) == Some(&true) {
            if let Some(b) = live.get_mut(i + 1) {
                *b = true;
            }
        }
    }
}

/// Which records to write. Every condition set must hold; an empty list or `None` sets none.
/// A record that lacks the field a condition looks at (see the module documentation) does not
/// match that condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `eventTime` at or after this.
    pub from: Option<Timestamp>,
    /// `eventTime` at or before this.
    pub to: Option<Timestamp>,
    /// `eventName` is one of these (exact, case-sensitive as CloudTrail writes it).
    pub names: Vec<String>,
    /// `eventSource` is one of these (exact, as `s3.amazonaws.com`).
    pub sources: Vec<String>,
    /// `userIdentity.arn` matches one of these globs.
    pub user_arns: Vec<Glob>,
    /// Only records with an `errorCode`.
    pub errors_only: bool,
    /// Only records whose `readOnly` is this.
    pub read_only: Option<bool>,
}

impl EventFilter {
    /// Whether every condition that is set holds for `record`.
    pub fn matches(&self, record: &Record<'_>) -> bool {
        let time_ok = match (self.from, self.to) {
            (None, None) => true,
            (from, to) => record
                .event_time
                .is_some_and(|t| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e)),
        };
        time_ok
            && one_of(&self.names, record.event_name.as_deref())
            && one_of(&self.sources, record.event_source.as_deref())
            && (self.user_arns.is_empty()
                || record
                    .user_arn
                    .as_deref()
                    .is_some_and(|arn| self.user_arns.iter().any(|g| g.is_match(arn))))
            && (!self.errors_only || record.has_error)
            && self
                .read_only
                .is_none_or(|want| record.read_only == Some(want))
    }
}

fn one_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::testutil::parse;

    #[test]
    fn glob_matches_whole_strings() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("?", "", false),
            ("?", "é", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            (
                "arn:aws:iam::*:user/alice",
                "arn:aws:iam::123456789012:user/alice",
                true,
            ),
            (
                "arn:aws:iam::*:user/alice",
                "arn:aws:iam::123456789012:user/alice2",
                false,
            ),
            (
                "arn:aws:sts::*:assumed-role/Admin*/*",
                "arn:aws:sts::1:assumed-role/AdminRole/bob",
                true,
            ),
            (
                "arn:aws:sts::*:assumed-role/Admin*/*",
                "arn:aws:sts::1:assumed-role/ReadOnly/bob",
                false,
            ),
            ("*alice", "arn:aws:iam::1:user/alice", true),
            ("alice*", "arn:aws:iam::1:user/alice", false),
            ("a**b", "ab", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("*?", "", false),
            ("*?", "x", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Glob::new(pattern).is_match(text),
                want,
                "{pattern} on {text}"
            );
        }
        assert_eq!(Glob::new("a*").pattern(), "a*");
    }

    #[test]
    fn glob_has_no_backtracking_blow_up() {
        // A backtracking matcher takes about n^5 steps here; the automaton n × 10.
        let text = "a".repeat(200_000);
        let start = std::time::Instant::now();
        assert!(!Glob::new("*a*a*a*a*b").is_match(&text));
        assert!(Glob::new("*a*a*a*a*").is_match(&text));
        assert!(!Glob::new("*a*a*a*a*a?b").is_match(&text));
        let long = format!("{}b", "*a".repeat(200));
        assert!(!Glob::new(&long).is_match(&text[..20_000]));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn filter_conditions() {
        let text = r#"{"Records":[
            {"eventTime":"2024-01-01T10:00:00Z","eventID":"1","eventName":"GetObject","eventSource":"s3.amazonaws.com","readOnly":true,"userIdentity":{"arn":"arn:aws:iam::1:user/alice"}},
            {"eventTime":"2024-01-01T11:00:00Z","eventID":"2","eventName":"PutObject","eventSource":"s3.amazonaws.com","readOnly":false,"errorCode":"AccessDenied","userIdentity":{"arn":"arn:aws:sts::1:assumed-role/AdminRole/bob"}},
            {"eventID":"3","eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com"}
        ]}"#;
        let r = parse(text).unwrap();
        let ids = |f: &EventFilter| -> Vec<&str> {
            r.iter()
                .filter(|x| f.matches(x))
                .map(|x| x.event_id.as_deref().unwrap())
                .collect()
        };
        let t = |s: &str| -> Option<Timestamp> { Some(s.parse().unwrap()) };
        assert_eq!(ids(&EventFilter::default()), ["1", "2", "3"]);
        let from = EventFilter {
            from: t("2024-01-01T10:00:00Z"),
            ..Default::default()
        };
        assert_eq!(ids(&from), ["1", "2"]);
        let to = EventFilter {
            to: t("2024-01-01T10:00:00Z"),
            ..Default::default()
        };
        assert_eq!(ids(&to), ["1"]);
        let window = EventFilter {
            from: t("2024-01-01T10:00:01Z"),
            to: t("2024-01-01T12:00:00Z"),
            ..Default::default()
        };
        assert_eq!(ids(&window), ["2"]);
        let names = EventFilter {
            names: vec!["ConsoleLogin".into(), "GetObject".into()],
            ..Default::default()
        };
        assert_eq!(ids(&names), ["1", "3"]);
        let case = EventFilter {
            names: vec!["getobject".into()],
            ..Default::default()
        };
        assert!(ids(&case).is_empty());
        let sources = EventFilter {
            sources: vec!["s3.amazonaws.com".into()],
            ..Default::default()
        };
        assert_eq!(ids(&sources), ["1", "2"]);
        let arns = EventFilter {
            user_arns: vec![Glob::new("*:assumed-role/Admin*"), Glob::new("*/alice")],
            ..Default::default()
        };
        assert_eq!(ids(&arns), ["1", "2"]);
        let errors = EventFilter {
            errors_only: true,
            ..Default::default()
        };
        assert_eq!(ids(&errors), ["2"]);
        let ro = EventFilter {
            read_only: Some(true),
            ..Default::default()
        };
        assert_eq!(ids(&ro), ["1"]);
        let rw = EventFilter {
            read_only: Some(false),
            ..Default::default()
        };
        assert_eq!(ids(&rw), ["2"]);
        let all = EventFilter {
            sources: vec!["s3.amazonaws.com".into()],
            read_only: Some(false),
            errors_only: true,
            user_arns: vec![Glob::new("arn:aws:sts::*")],
            ..Default::default()
        };
        assert_eq!(ids(&all), ["2"]);
    }
}
