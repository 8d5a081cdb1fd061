//! The raw request-head check (request smuggling and head limits), run on the bytes as
//! they arrive, before hyper parses them.
//!
//! hyper resolves a Content-Length that comes with a Transfer-Encoding by dropping the
//! Content-Length (RFC 9112 §6.1 allows it) before a handler could see either; we refuse
//! such a request instead. The checker follows the connection's message framing so it
//! knows where each head starts: after a head with `Content-Length: n` it skips `n`
//! body bytes; after a chunked head it stops ([`Framing::Lost`]) and the connection is
//! closed after that response, so no later head goes unchecked. Pure: no IO, no clock.

use crate::error::S3Error;

/// What the checker learned from one complete, accepted head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadFacts {
    pub method: String,
    pub target: String,
    /// The head carried `Transfer-Encoding: chunked`: framing is lost after it.
    pub chunked: bool,
}

/// Accepted heads waiting for hyper to dispatch them (pipelining depth).
const MAX_PIPELINED: usize = 16;

/// Where the checker is in the byte stream.
#[derive(Debug)]
enum Framing {
    /// Collecting a head that starts at a known message boundary.
    Head(Vec<u8>),
    /// Skipping this many body bytes of a `Content-Length` message.
    Body(u64),
    /// A chunked body: boundaries are no longer tracked on this connection.
    Lost,
}

/// The limits a head is checked against.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Per-connection head checker.
#[derive(Debug)]
pub struct HeadChecker {
    framing: Framing,
    limits: HeadLimits,
    /// Heads accepted and not yet claimed by their request.
    accepted: Vec<HeadFacts>,
}

impl HeadChecker {
    #[must_use]
    pub fn new(limits: HeadLimits) -> Self {
        Self {
            framing: Framing::Head(Vec::new()),
            limits,
            accepted: Vec::new(),
        }
    }

    /// Feed the next bytes read from the client. An error means: refuse and close
    /// before hyper sees these bytes.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), S3Error> {
        while !data.is_empty() {
            match &mut self.framing {
                Framing::Lost => return Ok(()),
                Framing::Body(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    *remaining -= take as u64;
                    data = &data[take..];
                    if *remaining == 0 {
                        self.framing = Framing::Head(Vec::new());
                    }
                }
                Framing::Head(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    let Some((head_len, facts, body)) = self.parse_head(before)? else {
                        return Ok(());
                    };
                    // Bytes of this read past the head belong to the body (or later heads).
                    data = &data[head_len.saturating_sub(before)..];
                    self.framing = if facts.chunked {
                        Framing::Lost
                    } else if body > 0 {
                        Framing::Body(body)
                    } else {
                        Framing::Head(Vec::new())
                    };
                    if self.accepted.len() >= MAX_PIPELINED {
                        return Err(malformed("Too many pipelined requests."));
                    }
                    self.accepted.push(facts);
                }
            }
        }
        Ok(())
    }

    /// The checked head of the request hyper just dispatched, when the checker vouches
    /// for it (same method and target). `None` means the head was not seen at a known
    /// boundary (pipelined after a chunked message).
    pub fn claim(&mut self, method: &str, target: &str) -> Option<HeadFacts> {
        if self.accepted.is_empty() {
            return None;
        }
        let facts = self.accepted.remove(0);
        (facts.method == method && facts.target == target).then_some(facts)
    }

    /// Parse the buffered head once it may be complete: `(head length, facts, body
    /// length)`, or `None` while more bytes are needed.
    /// `before` is how much of the buffer was already searched.
    fn parse_head(&mut self, before: usize) -> Result<Option<(usize, HeadFacts, u64)>, S3Error> {
        let Framing::Head(buf) = &self.framing else {
            return Ok(None);
        };
        // Only a blank line can end a head: skip the parse until the new bytes may
        // hold one (a head trickled byte by byte costs linear work, not quadratic).
        let fresh = &buf[before.saturating_sub(2)..];
        if !(contains(fresh, b"\n\r\n") || contains(fresh, b"\n\n")) {
            return if buf.len() > self.limits.max_header_bytes {
                Err(S3Error::RequestHeaderSectionTooLarge)
            } else {
                Ok(None)
            };
        }
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > self.limits.max_header_bytes => {
                return Err(S3Error::RequestHeaderSectionTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(S3Error::RequestHeaderSectionTooLarge);
            }
            Err(_) => return Err(malformed("The request head is malformed.")),
        };
        if head_len > self.limits.max_header_bytes {
            return Err(S3Error::RequestHeaderSectionTooLarge);
        }
        let method = req.method.unwrap_or_default().to_owned();
        let target = req.path.unwrap_or_default().to_owned();
        let (body, chunked) = framing_of(&method, req.headers)?;
        let facts = HeadFacts {
            method,
            target,
            chunked,
        };
        Ok(Some((head_len, facts, body)))
    }
}

/// The body framing of an accepted head: `(Content-Length, chunked)`. Refuses every
/// head two parsers could frame differently.
fn framing_of(method: &str, headers: &[httparse::Header<'_>]) -> Result<(u64, bool), S3Error> {
    let mut lengths = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let mut encodings = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let length = lengths.next();
    let encoding = encodings.next();
    if lengths.next().is_some() {
        return Err(malformed("More than one Content-Length header."));
    }
    if encodings.next().is_some() {
        return Err(malformed("More than one Transfer-Encoding header."));
    }
    match (length, encoding) {
        (Some(_), Some(_)) => Err(malformed(
            "Content-Length and Transfer-Encoding must not both be present.",
        )),
        (None, Some(te)) => {
            if !trimmed(te.value).eq_ignore_ascii_case(b"chunked") {
                return Err(malformed("Only Transfer-Encoding: chunked is supported."));
            }
            if matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
                return Err(malformed("This method does not take a request body."));
            }
            Ok((0, true))
        }
        (Some(cl), None) => {
            let digits = trimmed(cl.value);
            let n = std::str::from_utf8(digits)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| malformed("Content-Length is not a number."))?;
            Ok((n, false))
        }
        (None, None) => Ok((0, false)),
    }
}

fn malformed(why: &'static str) -> S3Error {
    S3Error::InvalidRequest(why.into())
}

fn trimmed(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
#[path = "head_check_tests.rs"]
mod tests;
