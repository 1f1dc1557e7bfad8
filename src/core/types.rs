//! Newtypes for the values that cross trust boundaries.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest; shown as lowercase hex, the form CloudTrail writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Hashes `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Sha256(sha2::Sha256::digest(data).into())
    }

    /// Parses the lowercase hex form; CloudTrail never writes upper case, so neither do we accept it.
    pub fn from_lower_hex(text: &str) -> Option<Self> {
        let bytes = decode_lower_hex(text)?;
        Some(Sha256(bytes.try_into().ok()?))
    }

    /// The 64 lowercase hex digits CloudTrail writes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Read back from a report (a shard's, for `merge`): lowercase hex only.
impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Sha256::from_lower_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("not 64 lowercase hex digits"))
    }
}

/// Read back from a report (a shard's, for `merge`): 32 lowercase hex digits only.
impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Fingerprint::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("not 32 lowercase hex digits"))
    }
}

/// A public-key fingerprint: lowercase hex MD5 of the key's DER bytes as delivered.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Accepts exactly 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && decode_lower_hex(text).is_some()).then(|| Fingerprint(text.to_owned()))
    }

    /// The fingerprint CloudTrail gives a key: MD5 over the DER bytes exactly as delivered.
    pub fn of_der(der: &[u8]) -> Self {
        use md5::Digest as _;
        Fingerprint(hex::encode(md5::Md5::digest(der)))
    }

    /// The 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// Where an object lives in S3.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct S3Location {
    /// The bucket name.
    pub bucket: String,
    /// The object key, exactly as in S3 (no leading `/`, not URL-encoded).
    pub key: String,
}

impl S3Location {
    /// The object `key` in `bucket`; nothing is checked.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3Location {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// The `s3://bucket/key` form used in every report line.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Whether `text` is exactly [`S3Location::uri`], without making it.
    pub fn is_uri(&self, text: &str) -> bool {
        text.strip_prefix("s3://")
            .and_then(|t| t.strip_prefix(self.bucket.as_str()))
            .and_then(|t| t.strip_prefix('/'))
            == Some(self.key.as_str())
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Decodes a form-encoded key (`%XX` escapes, `+` for a space), as S3 writes keys in event
/// notifications and in listings asked for `encoding-type=url`; `None` unless it is UTF-8.
pub fn form_decode(key: &str) -> Option<String> {
    let mut out = Vec::with_capacity(key.len());
    let mut bytes = key.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes lowercase hex only; upper case, odd length or other characters give `None`.
pub fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_uri_is_exactly_the_uri() {
        let l = S3Location::new("b", "k/x");
        assert!(l.is_uri(&l.uri()));
        // A bucket/key split elsewhere prints another text for the same object: not equal.
        for other in [
            "s3://b/k/",
            "s3://bk/x",
            "s3://b/k/xy",
            "b/k/x",
            "s3://b//k/x",
            "S3://b/k/x",
        ] {
            assert!(!l.is_uri(other), "{other}");
        }
        assert!(S3Location::new("b", "k").is_uri("s3://b/k"));
    }

    #[test]
    fn sha256_hex_round_trip_and_rejects_upper_case() {
        let h = Sha256::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256::from_lower_hex(&h.to_hex()), Some(h));
        assert_eq!(Sha256::from_lower_hex(&h.to_hex().to_uppercase()), None);
        assert_eq!(Sha256::from_lower_hex("abcd"), None);
        assert_eq!(Sha256::from_lower_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn fingerprint_is_md5_of_der() {
        let fp = Fingerprint::of_der(b"");
        assert_eq!(fp.as_str(), "d41d8cd98f00b204e9800998ecf8427e");
        assert!(Fingerprint::parse("d41d8cd98f00b204e9800998ecf8427e").is_some());
        assert!(Fingerprint::parse("D41D8CD98F00B204E9800998ECF8427E").is_none());
        assert!(Fingerprint::parse("d41d8cd9").is_none());
    }
}
