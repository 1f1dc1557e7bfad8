//! The HTTP transport of RFC 3161 timestamp requests (RFC 3161 section 3.4): one blocking POST
//! of `application/timestamp-query` over plain `http://`, on std's `TcpStream`.
//!
//! Plain HTTP only, on purpose: the token is signed by the TSA and checked to answer this very
//! request (imprint and nonce, `crate::report::timestamp`), so TLS would add nothing to what it
//! proves, and the public TSAs serve `http://`. An `https://` URL is refused by name rather
//! than sent in clear. The request is HTTP/1.0, so the answer comes whole, without chunking,
//! and ends when the server closes the connection.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::report::timestamp::{QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE};

/// How long to wait for the TSA to accept the connection, and for each read or write.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read: a token is a few kilobytes, with a certificate chain a few more.
pub const MAX_RESPONSE: u64 = 1 << 20;

/// A TSA's `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsaUrl {
    host: String,
    port: u16,
    path: String,
    text: String,
}

impl std::fmt::Display for TsaUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a TSA could not be asked, or its answer not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsaHttpError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("{url:?} is not a TSA URL: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection, the request or the answer failed.
    #[error("{url}: {source}")]
    Io {
        /// The TSA.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// The TSA answered with an HTTP status other than 200.
    #[error("{url} answered {status_line:?}")]
    Status {
        /// The TSA.
        url: String,
        /// Its status line.
        status_line: String,
    },
    /// The answer is not an HTTP response carrying a timestamp reply.
    #[error("{url}: {reason}")]
    Response {
        /// The TSA.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl TsaUrl {
    /// Parses `http://host[:port][/path]` (`host` may be `[IPv6]`).
    pub fn parse(url: &str) -> Result<Self, TsaHttpError> {
        let bad = |reason| TsaHttpError::Url {
            url: url.to_owned(),
            reason,
        };
        if url.starts_with("https://") {
            return Err(bad("https:// is not supported: use the TSA's http:// URL (the token is signed and checked, so TLS adds nothing to what it proves)"));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or(bad("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if authority.contains('@') {
            return Err(bad("user names and passwords in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(bad("unclosed [IPv6] host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("the path has spaces or control characters"));
        }
        Ok(TsaUrl {
            host: host.to_owned(),
            port,
            path,
            text: url.to_owned(),
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// POSTs a DER TimeStampReq to the TSA and returns the body of its answer (a TimeStampResp, to
/// be checked by `crate::report::timestamp::Request::accept`).
pub fn post(url: &TsaUrl, request: &[u8]) -> Result<Vec<u8>, TsaHttpError> {
    let io = |source| TsaHttpError::Io {
        url: url.text.clone(),
        source,
    };
    let mut stream = connect(url).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let head = format!(
        "POST {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: trailproof/{}\r\nContent-Type: {QUERY_MEDIA_TYPE}\r\nAccept: {REPLY_MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        request.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(request).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut answer)
        .map_err(io)?;
    if answer.len() as u64 > MAX_RESPONSE {
        return Err(TsaHttpError::Response {
            url: url.text.clone(),
            reason: format!("the answer is larger than {MAX_RESPONSE} bytes"),
        });
    }
    body(url, &answer)
}

fn connect(url: &TsaUrl) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The body of an HTTP/1.x answer: status 200, not chunked, `Content-Length` (if any) met, and
/// a timestamp-reply content type (if any).
fn body(url: &TsaUrl, answer: &[u8]) -> Result<Vec<u8>, TsaHttpError> {
    let bad = |reason: String| TsaHttpError::Response {
        url: url.text.clone(),
        reason,
    };
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("not an HTTP response (no end of headers)".into()))?;
    let (head, rest) = answer.split_at(split);
    let body = rest.get(4..).unwrap_or_default();
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad(format!("not an HTTP response: {status_line:?}")));
    }
    if code != Some("200") {
        return Err(TsaHttpError::Status {
            url: url.text.clone(),
            status_line: status_line.to_owned(),
        });
    }
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("malformed header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad(format!("Content-Length {value:?}")))?,
                )
            }
            "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
                return Err(bad(format!(
                    "Transfer-Encoding {value:?} in an answer to HTTP/1.0"
                )))
            }
            "content-type" => {
                let media = value.split(';').next().unwrap_or_default().trim();
                // Some TSAs label the reply `application/timestamp-response`.
                if !media.eq_ignore_ascii_case(REPLY_MEDIA_TYPE)
                    && !media.eq_ignore_ascii_case("application/timestamp-response")
                {
                    return Err(bad(format!(
                        "the answer is {media:?}, not {REPLY_MEDIA_TYPE} (is the URL a TSA?)"
                    )));
                }
            }
            _ => {}
        }
    }
    match length {
        Some(n) if n != body.len() => Err(bad(format!(
            "the body is {} bytes, Content-Length says {n}",
            body.len()
        ))),
        _ => Ok(body.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_a_host() {
        let u = TsaUrl::parse("http://127.0.0.1:8080/tsa?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/tsa?x=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = TsaUrl::parse("http://timestamp.example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(u.host_header(), "timestamp.example");
        let u = TsaUrl::parse("http://[::1]:3180").unwrap();
        assert_eq!(
            (u.host.as_str(), u.host_header()),
            ("::1", "[::1]:3180".into())
        );
        for bad in [
            "https://tsa.example/",
            "ftp://tsa.example/",
            "http://:80/",
            "http://tsa.example:http/",
            "http://user:pw@tsa.example/",
            "http://tsa.example/a b",
        ] {
            assert!(TsaUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_complete_200_timestamp_reply_is_a_body() {
        let url = TsaUrl::parse("http://tsa.example/").unwrap();
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(body(&url, ok).unwrap(), b"abc");
        assert!(body(&url, b"HTTP/1.1 200 OK\r\n\r\nabc").is_ok());
        for bad in [
            &b"HTTP/1.0 500 Internal Server Error\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nabc",
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n",
        ] {
            assert!(body(&url, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
