//! The S3 key grammar of CloudTrail objects: log, digest and backfill-digest keys.
//!
//! ```text
//! log:    [prefix/]AWSLogs/[o-ORG/]ACCT/CloudTrail/REGION/YYYY/MM/DD/ACCT_CloudTrail_REGION_YYYYMMDDTHHmmZ_UNIQUE.json.gz
//! digest: [prefix/]AWSLogs/[o-ORG/]ACCT/CloudTrail-Digest/SRC/YYYY/MM/DD/ACCT_CloudTrail-Digest_SRC_TRAIL_HOME_YYYYMMDDTHHMMSSZ[_backfill].json.gz
//! ```
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use super::time::{format_compact, parse_compact};

/// Why a key is not a CloudTrail key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// No `AWSLogs/` path segment (after a non-empty prefix, or at the start).
    #[error("no AWSLogs/ segment")]
    NoAwsLogs,
    /// The account folder is not 12 digits.
    #[error("bad account id {0:?}")]
    Account(String),
    /// A folder starting `o-` is not an AWS Organizations id.
    #[error("bad organization id {0:?}")]
    Organization(String),
    /// The folder after the account is not `CloudTrail`, `CloudTrail-Digest` or
    /// `CloudTrail-Insight`.
    #[error("unknown object type folder {0:?}")]
    Type(String),
    /// The Region folder is not a Region name.
    #[error("bad Region {0:?}")]
    Region(String),
    /// The date folders are not `YYYY/MM/DD`, or not the UTC day of the name's timestamp.
    #[error("bad date folders")]
    DateFolders,
    /// The file name does not follow its type's grammar, or names another account or Region
    /// than its folders; also a key with too many or too few folders.
    #[error("file name {name:?} does not match its folders")]
    FileName {
        /// The file name, or everything below `AWSLogs/` when the folders do not fit.
        name: String,
    },
}

/// The folder that tells what an object under `AWSLogs/ACCT/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ObjectType {
    /// `CloudTrail/`: log files.
    #[serde(rename = "CloudTrail")]
    Log,
    /// `CloudTrail-Digest/`: digest and backfill digest files.
    #[serde(rename = "CloudTrail-Digest")]
    Digest,
    /// `CloudTrail-Insight/`: Insights event files, which no digest covers.
    #[serde(rename = "CloudTrail-Insight")]
    Insight,
}

impl ObjectType {
    /// The folder name as it appears in keys.
    pub fn folder(self) -> &'static str {
        match self {
            ObjectType::Log => "CloudTrail",
            ObjectType::Digest => "CloudTrail-Digest",
            ObjectType::Insight => "CloudTrail-Insight",
        }
    }
}

/// The part of a key every CloudTrail object shares: where in the bucket, whose, which Region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// Without leading or trailing slash; empty when the trail has no prefix.
    pub prefix: String,
    /// The `o-...` folder of an organization trail, `None` otherwise.
    pub organization: Option<String>,
    /// The 12-digit account whose events these are (the member account for an organization
    /// trail).
    pub account: String,
    /// The Region folder: where the events happened (for digests, the chain's source Region).
    pub region: String,
}

impl Scope {
    /// `[prefix/]AWSLogs/[o-ORG/]ACCT/TYPE/REGION/`, the listing prefix of one account and Region.
    pub fn folder(&self, ty: ObjectType) -> String {
        let mut s = String::new();
        if !self.prefix.is_empty() {
            s.push_str(&self.prefix);
            s.push('/');
        }
        s.push_str("AWSLogs/");
        if let Some(org) = &self.organization {
            s.push_str(org);
            s.push('/');
        }
        s.push_str(&self.account);
        s.push('/');
        s.push_str(ty.folder());
        s.push('/');
        s.push_str(&self.region);
        s.push('/');
        s
    }
}

/// A parsed log (or insights) file key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// Where, whose, which Region.
    pub scope: Scope,
    /// [`ObjectType::Log`] or [`ObjectType::Insight`].
    pub ty: ObjectType,
    /// Delivery time, to the minute.
    pub time: Timestamp,
    /// The 16 letters and digits CloudTrail ends the name with to keep it unique.
    pub unique: String,
}

/// A parsed digest key. `scope.region` is the source Region of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DigestKey {
    /// Where, whose, and the source Region.
    pub scope: Scope,
    /// The trail name (letters, digits, `.`, `_`, `-`).
    pub trail: String,
    /// The Region the trail was created in.
    pub home_region: String,
    /// Equals the digest's `digestEndTime`.
    pub end_time: Timestamp,
    /// Whether the name ends `_backfill`: a backfill digest, in its own sequence.
    pub backfill: bool,
}

impl DigestKey {
    /// The chain this digest belongs to.
    pub fn chain(&self) -> ChainId {
        ChainId {
            scope: self.scope.clone(),
            trail: self.trail.clone(),
            home_region: self.home_region.clone(),
            backfill: self.backfill,
        }
    }

    /// Formats the key back; `parse(k.format()) == k` for every parsed key.
    pub fn format(&self) -> String {
        let date = self.end_time.strftime("%Y/%m/%d");
        format!(
            "{folder}{date}/{acct}_CloudTrail-Digest_{src}_{trail}_{home}_{ts}{bf}.json.gz",
            folder = self.scope.folder(ObjectType::Digest),
            acct = self.scope.account,
            src = self.scope.region,
            trail = self.trail,
            home = self.home_region,
            ts = format_compact(self.end_time),
            bf = if self.backfill { "_backfill" } else { "" },
        )
    }
}

/// One digest chain: (prefix, organization, account, source Region, trail), backfill apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId {
    /// As [`DigestKey::scope`].
    pub scope: Scope,
    /// As [`DigestKey::trail`].
    pub trail: String,
    /// As [`DigestKey::home_region`].
    pub home_region: String,
    /// The backfill sequence of the trail rather than its standard chain.
    pub backfill: bool,
}

impl ChainId {
    /// The ARN of the trail as the AWS CLI takes it. For an organization trail the account in
    /// the ARN is the member account whose chain this is, since the management account cannot
    /// be read from the layout.
    pub fn trail_arn(&self) -> String {
        format!(
            "arn:aws:cloudtrail:{}:{}:trail/{}",
            self.home_region, self.scope.account, self.trail
        )
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} account {} Region {}{}",
            self.trail_arn(),
            self.scope
                .organization
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default(),
            self.scope.account,
            self.scope.region,
            if self.backfill { " (backfill)" } else { "" }
        )
    }
}

/// Any key CloudTrail writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudTrailKey {
    /// A log or Insights file.
    Log(LogKey),
    /// A digest or backfill digest file.
    Digest(DigestKey),
}

/// Parses a key. A prefix may itself contain `AWSLogs/`, so every occurrence is tried in order.
pub fn parse_key(key: &str) -> Result<CloudTrailKey, LayoutError> {
    let mut first_error = LayoutError::NoAwsLogs;
    let mut search_from = 0;
    while let Some(pos) = key
        .get(search_from..)
        .and_then(|rest| rest.find("AWSLogs/"))
    {
        let at = search_from + pos;
        search_from = at + 1;
        // `AWSLogs` must be a whole path segment, after a prefix that is not empty: a key
        // starting `/AWSLogs/` is another object than the `AWSLogs/` key it would format to.
        if at == 1 || (at > 1 && key.as_bytes().get(at - 1) != Some(&b'/')) {
            continue;
        }
        let prefix = key.get(..at.saturating_sub(1)).unwrap_or_default();
        match parse_below_awslogs(prefix, key.get(at + "AWSLogs/".len()..).unwrap_or_default()) {
            Ok(parsed) => return Ok(parsed),
            Err(e) if first_error == LayoutError::NoAwsLogs => first_error = e,
            Err(_) => {}
        }
    }
    Err(first_error)
}

/// Parses what follows `AWSLogs/`: the folders, then the file name by the grammar of the
/// object type its folder names. Errors come in that order (organization, shape, account,
/// type, Region, date folders, name), the first that applies.
fn parse_below_awslogs(prefix: &str, rest: &str) -> Result<CloudTrailKey, LayoutError> {
    let (scope, ty, date, name) = parse_folders(prefix, rest)?;
    match ty {
        ObjectType::Log | ObjectType::Insight => {
            parse_log_name(scope, ty, &date, name).map(CloudTrailKey::Log)
        }
        ObjectType::Digest => parse_digest_name(scope, &date, name).map(CloudTrailKey::Digest),
    }
}

/// The folders of a key below `AWSLogs/`, checked: the scope, the object type, the date
/// folders as written (`YYYYMMDD`) and the file name, still unchecked.
fn parse_folders<'a>(
    prefix: &str,
    rest: &'a str,
) -> Result<(Scope, ObjectType, String, &'a str), LayoutError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (organization, parts) = match parts.split_first() {
        Some((first, tail)) if first.starts_with("o-") => {
            if !is_org_id(first) {
                return Err(LayoutError::Organization((*first).to_owned()));
            }
            (Some((*first).to_owned()), tail)
        }
        _ => (None, parts.as_slice()),
    };
    let [account, ty, region, y, m, d, name] = parts else {
        return Err(LayoutError::FileName {
            name: rest.to_owned(),
        });
    };
    if !is_account(account) {
        return Err(LayoutError::Account((*account).to_owned()));
    }
    let ty = match *ty {
        "CloudTrail" => ObjectType::Log,
        "CloudTrail-Digest" => ObjectType::Digest,
        "CloudTrail-Insight" => ObjectType::Insight,
        other => return Err(LayoutError::Type(other.to_owned())),
    };
    if !is_region(region) {
        return Err(LayoutError::Region((*region).to_owned()));
    }
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y, 4) && all_digits(m, 2) && all_digits(d, 2)) {
        return Err(LayoutError::DateFolders);
    }
    let scope = Scope {
        prefix: prefix.to_owned(),
        organization,
        account: (*account).to_owned(),
        region: (*region).to_owned(),
    };
    Ok((scope, ty, format!("{y}{m}{d}"), name))
}

/// Whether `t` falls on the day the date folders name (`YYYYMMDD`): CloudTrail files an object
/// under the UTC day of its name's timestamp.
fn on_day(t: Timestamp, date: &str) -> bool {
    t.strftime("%Y%m%d").to_string() == date
}

/// A log or Insights file name, `ACCT_TYPE_REGION_YYYYMMDDTHHmmZ_UNIQUE16.json.gz`, that must
/// match the folders it is in.
fn parse_log_name(
    scope: Scope,
    ty: ObjectType,
    date: &str,
    name: &str,
) -> Result<LogKey, LayoutError> {
    let bad_name = || LayoutError::FileName {
        name: name.to_owned(),
    };
    let stem = name.strip_suffix(".json.gz").ok_or_else(bad_name)?;
    let lead = format!("{}_{}_{}_", scope.account, ty.folder(), scope.region);
    let tail = stem.strip_prefix(&lead).ok_or_else(bad_name)?;
    let (ts, unique) = tail.split_once('_').ok_or_else(bad_name)?;
    let time = parse_compact(ts)
        .filter(|_| ts.len() == 14)
        .ok_or_else(bad_name)?;
    if unique.len() != 16 || !unique.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad_name());
    }
    if !on_day(time, date) {
        return Err(LayoutError::DateFolders);
    }
    Ok(LogKey {
        scope,
        ty,
        time,
        unique: unique.to_owned(),
    })
}

/// A digest file name, `ACCT_CloudTrail-Digest_SRC_TRAIL_HOME_YYYYMMDDTHHMMSSZ[_backfill].json.gz`,
/// that must match the folders it is in.
fn parse_digest_name(scope: Scope, date: &str, name: &str) -> Result<DigestKey, LayoutError> {
    let bad_name = || LayoutError::FileName {
        name: name.to_owned(),
    };
    let stem = name.strip_suffix(".json.gz").ok_or_else(bad_name)?;
    let (stem, backfill) = match stem.strip_suffix("_backfill") {
        Some(s) => (s, true),
        None => (stem, false),
    };
    let lead = format!("{}_CloudTrail-Digest_{}_", scope.account, scope.region);
    let tail = stem.strip_prefix(&lead).ok_or_else(bad_name)?;
    let (rest, ts) = tail.rsplit_once('_').ok_or_else(bad_name)?;
    let end_time = parse_compact(ts)
        .filter(|_| ts.len() == 16)
        .ok_or_else(bad_name)?;
    // Trail names may contain underscores, Region names never do.
    let (trail, home_region) = rest.rsplit_once('_').ok_or_else(bad_name)?;
    if !is_region(home_region) || !is_trail_name(trail) {
        return Err(bad_name());
    }
    if !on_day(end_time, date) {
        return Err(LayoutError::DateFolders);
    }
    Ok(DigestKey {
        scope,
        trail: trail.to_owned(),
        home_region: home_region.to_owned(),
        end_time,
        backfill,
    })
}

/// Where a key that is not a CloudTrail key sits among the CloudTrail folders, as far as its
/// folders tell (each field only when its folder is there and well formed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folders<'a> {
    /// The 12-digit account folder.
    pub account: Option<&'a str>,
    /// The object type folder after it.
    pub ty: Option<ObjectType>,
    /// The Region folder after that.
    pub region: Option<&'a str>,
    /// The dated folders after that, as deep as they name a real year, month and day.
    pub dated: Option<Dated>,
}

/// The dated folders below a Region's folder (`YYYY/MM/DD`), as deep as they are proper: a
/// key in `2026/13/` sits in the year 2026, one in `2026/02/30/` in February 2026.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dated {
    /// `YYYY`.
    Year(jiff::civil::Date),
    /// `YYYY/MM`, a month from `01` to `12`.
    Month(jiff::civil::Date),
    /// `YYYY/MM/DD`, a real date.
    Day(jiff::civil::Date),
}

impl Dated {
    /// The days the folder spans: its first, and the first after it (`None` when that is past
    /// the last day a date can hold).
    pub fn span(self) -> (jiff::civil::Date, Option<jiff::civil::Date>) {
        match self {
            Dated::Year(first) => (first, first.last_of_year().tomorrow().ok()),
            Dated::Month(first) => (first, first.last_of_month().tomorrow().ok()),
            Dated::Day(day) => (day, day.tomorrow().ok()),
        }
    }
}

/// The folders of `key` below its first `AWSLogs/` segment, `None` without one. Only folders
/// count: the last segment is the file's name (a key ending in `/` names a folder).
pub fn folders(key: &str) -> Option<Folders<'_>> {
    let below = if let Some(rest) = key.strip_prefix("AWSLogs/") {
        rest
    } else {
        let at = key.find("/AWSLogs/")?;
        key.get(at + "/AWSLogs/".len()..)?
    };
    let mut segments: Vec<&str> = below.split('/').collect();
    segments.pop();
    let mut segments = segments.into_iter().peekable();
    segments.next_if(|s| is_org_id(s));
    let mut found = Folders::default();
    let Some(account) = segments.next().filter(|a| is_account(a)) else {
        return Some(found);
    };
    found.account = Some(account);
    found.ty = match segments.next() {
        Some("CloudTrail") => Some(ObjectType::Log),
        Some("CloudTrail-Digest") => Some(ObjectType::Digest),
        Some("CloudTrail-Insight") => Some(ObjectType::Insight),
        _ => return Some(found),
    };
    let Some(region) = segments.next().filter(|r| is_region(r)) else {
        return Some(found);
    };
    found.region = Some(region);
    let number = |s: Option<&str>, n: usize| {
        s.filter(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i16>().ok())
    };
    let date = |y, m: i16, d: i16| {
        jiff::civil::Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()
    };
    let Some(year) = number(segments.next(), 4).and_then(|y| date(y, 1, 1)) else {
        return Some(found);
    };
    found.dated = Some(Dated::Year(year));
    let Some(month) = number(segments.next(), 2).and_then(|m| date(year.year(), m, 1)) else {
        return Some(found);
    };
    found.dated = Some(Dated::Month(month));
    if let Some(day) =
        number(segments.next(), 2).and_then(|d| date(year.year(), month.month().into(), d))
    {
        found.dated = Some(Dated::Day(day));
    }
    Some(found)
}

/// A 12-digit AWS account id, as an `AWSLogs/` folder names it.
pub(crate) fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An AWS Organizations id (`o-` and 10 to 32 lower-case letters or digits).
pub(crate) fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|id| {
        (10..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.contains('-')
}

/// CloudTrail trail names: letters, digits, `.`, `_` and `-`, 3 to 128 characters.
fn is_trail_name(s: &str) -> bool {
    (3..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folders_of_keys_that_are_not_cloudtrail_keys() {
        let f =
            folders("p/AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2026/01/02/x.txt")
                .unwrap();
        assert_eq!(f.account, Some("111122223333"));
        assert_eq!(f.ty, Some(ObjectType::Log));
        assert_eq!(f.region, Some("us-east-1"));
        let date = |y, m, d| jiff::civil::Date::new(y, m, d).unwrap();
        assert_eq!(f.dated, Some(Dated::Day(date(2026, 1, 2))));
        let f = folders("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/13/").unwrap();
        assert_eq!(
            (f.ty, f.region, f.dated),
            (
                Some(ObjectType::Digest),
                Some("us-east-1"),
                Some(Dated::Year(date(2026, 1, 1)))
            )
        );
        let dated = |key: &str| {
            folders(&format!("AWSLogs/111122223333/CloudTrail/us-east-1/{key}"))
                .unwrap()
                .dated
        };
        assert_eq!(dated("x"), None);
        assert_eq!(dated("26/x"), None);
        assert_eq!(dated("2099/x"), Some(Dated::Year(date(2099, 1, 1))));
        assert_eq!(dated("2026/1/x"), Some(Dated::Year(date(2026, 1, 1))));
        assert_eq!(dated("2026/02/x"), Some(Dated::Month(date(2026, 2, 1))));
        assert_eq!(dated("2026/00/01/x"), Some(Dated::Year(date(2026, 1, 1))));
        assert_eq!(dated("2026/02/30/x"), Some(Dated::Month(date(2026, 2, 1))));
        assert_eq!(dated("2026/02/28/y/x"), Some(Dated::Day(date(2026, 2, 28))));
        let spans = [
            (Dated::Year(date(2024, 1, 1)), date(2025, 1, 1)),
            (Dated::Month(date(2024, 2, 1)), date(2024, 3, 1)),
            (Dated::Month(date(2024, 12, 1)), date(2025, 1, 1)),
            (Dated::Day(date(2024, 2, 29)), date(2024, 3, 1)),
        ];
        for (folder, after) in spans {
            assert_eq!(folder.span().1, Some(after), "{folder:?}");
        }
        assert_eq!(Dated::Year(date(9999, 1, 1)).span().1, None);
        let f = folders("AWSLogs/111122223333/CloudTrail").unwrap();
        assert_eq!(
            (f.account, f.ty),
            (Some("111122223333"), None),
            "a file, not a folder"
        );
        assert_eq!(folders("AWSLogs/x/CloudTrail/"), Some(Folders::default()));
        assert_eq!(folders("CloudTrail/us-east-1/x"), None);
        assert_eq!(folders("xAWSLogs/111122223333/CloudTrail/a/b"), None);
    }

    const REAL_DIGEST: &str = "AWSLogs/327878933619/CloudTrail-Digest/ap-northeast-1/2023/10/15/327878933619_CloudTrail-Digest_ap-northeast-1_llm-guard-trail_us-west-2_20231015T230404Z.json.gz";

    #[test]
    fn parses_real_digest_key_and_formats_it_back() {
        let CloudTrailKey::Digest(k) = parse_key(REAL_DIGEST).unwrap() else {
            panic!()
        };
        assert_eq!(k.scope.account, "327878933619");
        assert_eq!(k.scope.region, "ap-northeast-1");
        assert_eq!(k.trail, "llm-guard-trail");
        assert_eq!(k.home_region, "us-west-2");
        assert!(!k.backfill);
        assert_eq!(k.format(), REAL_DIGEST);
    }

    #[test]
    fn parses_org_prefix_backfill_and_underscored_trail() {
        let key = "logs/a/AWSLogs/o-abcdef1234/111122223333/CloudTrail-Digest/eu-west-1/2026/01/02/111122223333_CloudTrail-Digest_eu-west-1_my_trail_us-east-1_20260102T030405Z_backfill.json.gz";
        let CloudTrailKey::Digest(k) = parse_key(key).unwrap() else {
            panic!()
        };
        assert_eq!(k.scope.prefix, "logs/a");
        assert_eq!(k.scope.organization.as_deref(), Some("o-abcdef1234"));
        assert_eq!(k.trail, "my_trail");
        assert!(k.backfill);
        assert_eq!(k.format(), key);
    }

    #[test]
    fn parses_log_key() {
        let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz";
        let CloudTrailKey::Log(k) = parse_key(key).unwrap() else {
            panic!()
        };
        assert_eq!(k.ty, ObjectType::Log);
        assert_eq!(
            crate::core::time::format_iso(k.time),
            "2026-01-02T03:05:00Z"
        );
        assert_eq!(
            k.scope.folder(ObjectType::Log),
            "AWSLogs/111122223333/CloudTrail/us-east-1/"
        );
    }

    #[test]
    fn a_prefix_containing_awslogs_is_still_a_prefix() {
        let key = "AWSLogs/x/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz";
        let CloudTrailKey::Log(k) = parse_key(key).unwrap() else {
            panic!()
        };
        assert_eq!(k.scope.prefix, "AWSLogs/x");
    }

    /// Found by fuzz/layout: `/AWSLogs/...` parsed with an empty prefix, so it formatted back
    /// to `AWSLogs/...`, another object, and was taken for that object's digest.
    #[test]
    fn a_leading_slash_is_not_an_empty_prefix() {
        assert!(parse_key(&format!("/{REAL_DIGEST}")).is_err());
        let nested = format!("/AWSLogs/x/{REAL_DIGEST}");
        let CloudTrailKey::Digest(k) = parse_key(&nested).unwrap() else {
            panic!()
        };
        assert_eq!(k.scope.prefix, "/AWSLogs/x");
        assert_eq!(k.format(), nested);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "random/file.txt",
            "AWSLogs/12345/CloudTrail/us-east-1/2026/01/02/x.json.gz",
            "AWSLogs/111122223333/Other/us-east-1/2026/01/02/x.json.gz",
            "AWSLogs/111122223333/CloudTrail/US-EAST-1/2026/01/02/x.json.gz",
            // date folder disagrees with the file name
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/03/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz",
            // another account in the file name
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/999922223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz",
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/02/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20260102T030405Z.json.gz",
            "AWSLogs/../111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz",
            "AWSLogs/o-x/111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0305Z_AbCdEfGh12345678.json.gz",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }
}
