//! A strict DER reader and a minimal DER writer: just what RFC 3161 timestamps need
//! ([`super::timestamp`]).
//!
//! Why written here rather than taken from a crate: the token's structure (CMS SignedData over
//! a TSTInfo) has to be walked field by field either way, and every check on it is ours. The
//! RustCrypto `der` + `cms` + `x509-cert` stack would add a second X.509 parser next to
//! x509-parser (which keeps parsing the certificates here); der-parser, already in the tree
//! through x509-parser, builds generic BER object trees that would still be walked by hand.
//! A reader of tag-length-value triples that refuses every non-DER form (indefinite or
//! non-minimal lengths, multi-byte tags, non-minimal integers, trailing bytes) is about a
//! hundred lines and leaves no byte of a token to an interpretation we did not choose.
// Tokens come from the network and from envelopes: hostile bytes, no panics.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use jiff::civil::DateTime;
use jiff::Timestamp;

/// Universal tags used by RFC 3161 structures.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
    /// `[n]` context-specific, constructed.
    pub const fn context(n: u8) -> u8 {
        0xa0 | n
    }
    /// `[n]` context-specific, primitive.
    pub const fn context_primitive(n: u8) -> u8 {
        0x80 | n
    }
}

/// Where in a structure the DER is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {problem}")]
pub struct DerError {
    /// The structure being read (`TimeStampResp`, `TSTInfo`, ...).
    pub context: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The one-byte tag.
    pub tag: u8,
    /// The contents.
    pub value: &'a [u8],
    /// The whole element, tag and length included.
    pub raw: &'a [u8],
}

/// Reads the elements of one constructed value (or of a whole buffer) in order.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    context: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`; errors name `context`.
    pub fn new(bytes: &'a [u8], context: &'static str) -> Self {
        Reader {
            rest: bytes,
            context,
        }
    }

    /// An error in this reader's context.
    pub fn error(&self, problem: &'static str) -> DerError {
        DerError {
            context: self.context,
            problem,
        }
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(self.error("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(self.error("multi-byte tag"));
        }
        let (&first, after_len) = after_tag.split_first().ok_or(self.error("truncated"))?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 {
                return Err(self.error("indefinite length (BER, not DER)"));
            }
            if count > 4 {
                return Err(self.error("length too large"));
            }
            let digits = after_len.get(..count).ok_or(self.error("truncated"))?;
            if digits.first() == Some(&0) {
                return Err(self.error("non-minimal length"));
            }
            let len = digits
                .iter()
                .fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
            if len < 0x80 {
                return Err(self.error("non-minimal length"));
            }
            (len, after_len.get(count..).unwrap_or_default())
        };
        let value = after_len.get(..len).ok_or(self.error("truncated"))?;
        let header = input.len() - after_len.len();
        let raw = input.get(..header + len).ok_or(self.error("truncated"))?;
        self.rest = after_len.get(len..).unwrap_or_default();
        Ok(Tlv { tag, value, raw })
    }

    /// The next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8, problem: &'static str) -> Result<Tlv<'a>, DerError> {
        match self.peek_tag() {
            Some(t) if t == tag => self.any(),
            _ => Err(self.error(problem)),
        }
    }

    /// The next element if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Nothing may be left.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error("unexpected data after the last field"))
        }
    }

    /// Reads a whole buffer that must be exactly one element with `tag`: its contents.
    pub fn single(bytes: &'a [u8], tag: u8, context: &'static str) -> Result<Tlv<'a>, DerError> {
        let mut r = Reader::new(bytes, context);
        let tlv = r.expect(tag, "not the expected structure")?;
        r.finish()?;
        Ok(tlv)
    }
}

/// The contents of a DER INTEGER, checked to be minimally encoded (two's complement, big
/// endian).
pub(crate) fn integer<'a>(tlv: &Tlv<'a>, context: &'static str) -> Result<&'a [u8], DerError> {
    let bad = DerError {
        context,
        problem: "malformed INTEGER",
    };
    match tlv.value {
        [] => Err(bad),
        [0x00, next, ..] if next & 0x80 == 0 => Err(bad),
        [0xff, next, ..] if next & 0x80 != 0 => Err(bad),
        v => Ok(v),
    }
}

/// A small non-negative INTEGER (versions, statuses).
pub(crate) fn small_uint(tlv: &Tlv<'_>, context: &'static str) -> Result<u64, DerError> {
    let v = integer(tlv, context)?;
    let bad = DerError {
        context,
        problem: "INTEGER out of range",
    };
    if v.len() > 8 || v.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad);
    }
    Ok(v.iter().fold(0u64, |acc, &d| (acc << 8) | u64::from(d)))
}

/// A DER BOOLEAN.
pub(crate) fn boolean(tlv: &Tlv<'_>, context: &'static str) -> Result<bool, DerError> {
    match tlv.value {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err(DerError {
            context,
            problem: "malformed BOOLEAN",
        }),
    }
}

/// A DER GeneralizedTime: `YYYYMMDDHHMMSS[.f+]Z`, no trailing zeros in the fraction.
pub(crate) fn generalized_time(
    tlv: &Tlv<'_>,
    context: &'static str,
) -> Result<Timestamp, DerError> {
    let bad = DerError {
        context,
        problem: "malformed GeneralizedTime",
    };
    let text = std::str::from_utf8(tlv.value).map_err(|_| bad.clone())?;
    let body = text.strip_suffix('Z').ok_or(bad.clone())?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() != 14 || !digits(whole) {
        return Err(bad);
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if digits(f) && !f.ends_with('0') && f.len() <= 9 => {
            format!("{f:0<9}").parse::<i32>().map_err(|_| bad.clone())?
        }
        Some(_) => return Err(bad),
    };
    let num = |range: std::ops::Range<usize>| -> Result<i16, DerError> {
        whole
            .get(range)
            .and_then(|s| s.parse::<i16>().ok())
            .ok_or(bad.clone())
    };
    let as_i8 = |v: i16| i8::try_from(v).map_err(|_| bad.clone());
    let dt = DateTime::new(
        num(0..4)?,
        as_i8(num(4..6)?)?,
        as_i8(num(6..8)?)?,
        as_i8(num(8..10)?)?,
        as_i8(num(10..12)?)?,
        as_i8(num(12..14)?)?,
        nanos,
    )
    .map_err(|_| bad.clone())?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| bad)
}

/// Encodes one element.
pub(crate) fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}

/// Encodes a constructed element from already encoded parts.
pub(crate) fn encode_all(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    encode(tag, &parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(bytes: &[u8]) -> Result<Tlv<'_>, DerError> {
        let mut r = Reader::new(bytes, "test");
        let t = r.any()?;
        r.finish()?;
        Ok(t)
    }

    #[test]
    fn lengths_round_trip_and_only_minimal_forms_are_read() {
        for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0x1_0000] {
            let encoded = encode(tag::OCTET_STRING, &vec![7; len]);
            let t = read_one(&encoded).unwrap();
            assert_eq!(t.value.len(), len);
            assert_eq!(t.raw, &encoded[..]);
        }
        // 5 bytes written with a long-form length, with a leading zero, indefinite, cut short.
        for bad in [
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5][..],
            &[0x04, 0x82, 0x00, 0x80],
            &[0x30, 0x80, 0, 0],
            &[0x04, 0x05, 1, 2],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(read_one(bad).is_err(), "{bad:02x?}");
        }
        // Trailing bytes after the one element.
        assert!(read_one(&[0x05, 0x00, 0x00]).is_err());
    }

    #[test]
    fn integers_booleans_and_times_in_der_form_only() {
        let int = |v: &[u8]| {
            integer(
                &Tlv {
                    tag: tag::INTEGER,
                    value: v,
                    raw: v,
                },
                "t",
            )
            .map(<[u8]>::to_vec)
        };
        assert!(int(&[0x00, 0x80]).is_ok());
        assert!(int(&[0x00, 0x7f]).is_err());
        assert!(int(&[0xff, 0x80]).is_err());
        assert!(int(&[]).is_err());
        let tlv = |tag, v: &'static [u8]| Tlv {
            tag,
            value: v,
            raw: v,
        };
        assert!(boolean(&tlv(tag::BOOLEAN, &[0xff]), "t").unwrap());
        assert!(boolean(&tlv(tag::BOOLEAN, &[0x01]), "t").is_err());
        let t = |s: &'static str| generalized_time(&tlv(tag::GENERALIZED_TIME, s.as_bytes()), "t");
        assert_eq!(
            t("20261201054058Z").unwrap(),
            "2026-12-01T05:40:58Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            t("20261201054058.25Z").unwrap(),
            "2026-12-01T05:40:58.25Z".parse::<Timestamp>().unwrap()
        );
        for bad in [
            "20261201054058",
            "20261201054058.50Z",
            "20261301054058Z",
            "2026120105405Z",
            "20261201054058+0100",
            "20261201054058.Z",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
