//! The two timestamp spellings CloudTrail uses, parsed strictly.
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (digest fields).
pub fn parse_iso(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'Z')
    {
        return None;
    }
    civil(
        text.get(0..4)?,
        text.get(5..7)?,
        text.get(8..10)?,
        text.get(11..13)?,
        text.get(14..16)?,
        text.get(17..19)?,
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` (digest keys) or `YYYYMMDDTHHMMZ` (log keys).
pub(crate) fn parse_compact(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    match b.len() {
        16 if b.get(8) == Some(&b'T') && b.get(15) == Some(&b'Z') => civil(
            text.get(0..4)?,
            text.get(4..6)?,
            text.get(6..8)?,
            text.get(9..11)?,
            text.get(11..13)?,
            text.get(13..15)?,
        ),
        14 if b.get(8) == Some(&b'T') && b.get(13) == Some(&b'Z') => civil(
            text.get(0..4)?,
            text.get(4..6)?,
            text.get(6..8)?,
            text.get(9..11)?,
            text.get(11..13)?,
            "00",
        ),
        _ => None,
    }
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, the form the AWS CLI prints.
pub fn format_iso(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats as `YYYYMMDDTHHMMSSZ`, the form in digest keys.
pub(crate) fn format_compact(ts: Timestamp) -> String {
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// `t + d`, saturating at the ends of what jiff represents (-009999-01-02T01:59:59Z to
/// 9999-12-30T22:00:00.999999999Z), where its `+` panics. Evidence and flags may carry any
/// time in that span; nothing lies beyond it, so a comparison with a saturated sum comes out as
/// it would with the exact one.
pub fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `t - d`, saturating like [`later`].
pub fn earlier(t: Timestamp, d: SignedDuration) -> Timestamp {
    later(t, d.checked_neg().unwrap_or(SignedDuration::MAX))
}

fn civil(y: &str, mo: &str, d: &str, h: &str, mi: &str, s: &str) -> Option<Timestamp> {
    let num = |t: &str| -> Option<i32> {
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let dt = DateTime::new(
        i16::try_from(num(y)?).ok()?,
        i8::try_from(num(mo)?).ok()?,
        i8::try_from(num(d)?).ok()?,
        i8::try_from(num(h)?).ok()?,
        i8::try_from(num(mi)?).ok()?,
        i8::try_from(num(s)?).ok()?,
        0,
    )
    .ok()?;
    Some(dt.to_zoned(TimeZone::UTC).ok()?.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_compact_agree() {
        let a = parse_iso("2023-10-15T23:04:04Z").unwrap();
        let b = parse_compact("20231015T230404Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_iso(a), "2023-10-15T23:04:04Z");
        assert_eq!(format_compact(a), "20231015T230404Z");
        assert_eq!(
            parse_compact("20231015T2304Z").unwrap().as_second(),
            a.as_second() - 4
        );
    }

    #[test]
    fn arithmetic_near_the_ends_of_time_saturates() {
        let hour = SignedDuration::from_hours(1);
        let last = "9999-12-30T21:59:59Z".parse::<Timestamp>().unwrap();
        assert_eq!(later(last, 2 * hour), Timestamp::MAX);
        assert_eq!(
            later(last, SignedDuration::from_secs(1)).to_string(),
            "9999-12-30T22:00:00Z"
        );
        let first = "-009999-01-02T01:59:59Z".parse::<Timestamp>().unwrap();
        assert_eq!(earlier(first, hour), Timestamp::MIN);
        assert_eq!(later(first, -hour), Timestamp::MIN);
        assert_eq!(earlier(last, -hour), later(last, hour));
        assert_eq!(earlier(Timestamp::MAX, SignedDuration::MIN), Timestamp::MAX);
        assert_eq!(later(first, hour), first.checked_add(hour).unwrap());
    }

    #[test]
    fn rejects_loose_spellings() {
        for bad in [
            "2023-10-15T23:04:04",
            "2023-10-15 23:04:04Z",
            "2023-10-15T23:04:04.000Z",
            "2023-13-15T23:04:04Z",
            "2023-02-30T23:04:04Z",
            "+023-10-15T23:04:04Z",
            "",
        ] {
            assert!(parse_iso(bad).is_none(), "{bad}");
        }
        assert!(parse_compact("20231015T230404").is_none());
        assert!(parse_compact("2023101xT230404Z").is_none());
    }
}
