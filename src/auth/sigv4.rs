//! The SigV4 signing steps as pure functions, named after the AWS specification:
//! canonical request → string to sign → signing key → signature, plus the
//! aws-chunked chunk and trailer strings to sign. No IO, no clock reads: every time
//! value is passed in.
//!
//! Spec (S3 flavour: the path is encoded once and never normalised):
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>,
//! streaming: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>.

use std::borrow::Cow;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::{SecretKey, SigningKey};

/// The only algorithm we verify.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The hex SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

/// Why canonical headers could not be built from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// A header named in SignedHeaders is not in the request.
    Absent,
    /// A signed header's value is not UTF-8 text, so it has no canonical form.
    NotText,
}

/// S3 `UriEncode`: unreserved characters (`A-Za-z0-9-_.~`) are kept, every other byte
/// becomes `%XX` with uppercase hex; `/` is kept unless `encode_slash`.
#[must_use]
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    uri_encode_into(s.as_bytes(), encode_slash, &mut out);
    out
}

fn uri_encode_into(bytes: &[u8], encode_slash: bool, out: &mut String) {
    for &b in bytes {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash);
        if keep {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits stays literal (and is
/// re-encoded as `%25`), as the SDKs would have produced it from such a key.
fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    percent_encoding::percent_decode_str(s).into()
}

/// The canonical URI of an S3 request: the path as received, each segment decoded
/// and re-encoded once with [`uri_encode`]. No dot-segment or slash normalisation
/// (S3 keys may contain `..` and `//`), no double encoding. Decoding first makes
/// `+`, `%2b` and `%2B` all canonicalise to `%2B`, which is what AWS SDKs send and
/// sign for a `+` in a key; an encoded slash (`%2F`) inside a segment stays `%2F`.
#[must_use]
pub fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::with_capacity(raw_path.len() + 8);
    canonical_uri_into(raw_path, &mut out);
    out
}

/// [`canonical_uri`], appended to `out`.
pub fn canonical_uri_into(raw_path: &str, out: &mut String) {
    if raw_path.is_empty() {
        out.push('/');
        return;
    }
    for (i, segment) in raw_path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode_into(&percent_decode(segment), true, out);
    }
}

/// The canonical query string: every `name[=value]` pair decoded (`+` as a space, as
/// form decoding and the aws-sigv4 signer do) and re-encoded with [`uri_encode`],
/// sorted by encoded name then value, joined with `&`. A value-less `?uploads` becomes
/// `uploads=`. `exclude_signature` drops `X-Amz-Signature` (presigned requests).
/// Decoding works on bytes, so text that is not UTF-8 keeps its exact bytes instead of
/// being replaced (two different queries never share one canonical form).
#[must_use]
pub fn canonical_query(raw_query: &str, exclude_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .filter(|(name, _)| !(exclude_signature && *name == "X-Amz-Signature"))
        .map(|(name, value)| (encode_query_part(name), encode_query_part(value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The raw `(name, value)` pairs of a query string; empty pieces (`a&&b`) are skipped
/// and a missing `=` gives an empty value.
pub fn query_pairs(raw_query: &str) -> impl Iterator<Item = (&str, &str)> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Decode one query name or value: `+` is a space, `%XX` a byte.
#[must_use]
pub fn query_decode(raw: &str) -> Cow<'_, [u8]> {
    if raw.contains('+') {
        let spaced = raw.replace('+', " ");
        Cow::Owned(percent_encoding::percent_decode_str(&spaced).collect())
    } else {
        percent_decode(raw)
    }
}

fn encode_query_part(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    uri_encode_into(&query_decode(raw), true, &mut out);
    out
}

/// A header value in canonical form: leading and trailing spaces removed and runs of
/// spaces collapsed to one. Only the space character counts, as in S3.
#[must_use]
pub fn canonical_header_value(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_matches(' ');
    if !trimmed.contains("  ") {
        return Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut prev_space = false;
    for c in trimmed.chars() {
        if !(c == ' ' && prev_space) {
            out.push(c);
        }
        prev_space = c == ' ';
    }
    Cow::Owned(out)
}

/// The canonical headers block: one `name:value\n` line per signed header, in the
/// order of `signed_headers` (lowercase names, as SignedHeaders carries them). Repeated
/// headers are joined with `,` in the order received. `authority` stands in for a
/// missing `host` header (HTTP/2 carries it as `:authority`).
pub fn canonical_headers(
    headers: &HeaderMap,
    signed_headers: &[String],
    authority: Option<&str>,
) -> Result<String, HeaderProblem> {
    let mut out = String::with_capacity(signed_headers.len() * 32);
    canonical_headers_into(headers, signed_headers, authority, &mut out)?;
    Ok(out)
}

/// [`canonical_headers`], appended to `out`.
pub fn canonical_headers_into(
    headers: &HeaderMap,
    signed_headers: &[String],
    authority: Option<&str>,
    out: &mut String,
) -> Result<(), HeaderProblem> {
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            match authority {
                Some(host) if name == "host" => out.push_str(&canonical_header_value(host)),
                _ => return Err(HeaderProblem::Absent),
            }
        }
        for (i, value) in values.enumerate() {
            let text = std::str::from_utf8(value.as_bytes()).map_err(|_| HeaderProblem::NotText)?;
            if i > 0 {
                out.push(',');
            }
            out.push_str(&canonical_header_value(text));
        }
        out.push('\n');
    }
    Ok(())
}

/// The canonical request: method, canonical URI, canonical query, canonical headers
/// (each line already `\n`-terminated), signed header names joined with `;`, payload
/// hash.
#[must_use]
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let parts = [
        method,
        canonical_uri,
        canonical_query,
        canonical_headers,
        signed_headers,
        payload_hash,
    ];
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(part);
    }
    out
}

/// A per-thread scratch buffer for building canonical requests: the text is hashed and
/// dropped right away, so each request reuses the buffer instead of allocating one.
/// `f` must not re-enter (it never does: it only appends text).
pub fn with_scratch<R>(f: impl FnOnce(&mut String) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(1024));
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            // A rare huge request must not pin its buffer for the thread's lifetime.
            if buf.capacity() > 64 * 1024 {
                *buf = String::with_capacity(1024);
            }
            r
        }
        Err(_) => f(&mut String::new()),
    })
}

/// The credential scope `date/region/service/aws4_request`.
#[must_use]
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: algorithm, `x-amz-date`, scope, hex SHA-256 of the canonical
/// request.
#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let digest = sha256_hex(canonical_request.as_bytes());
    let mut out = String::with_capacity(ALGORITHM.len() + amz_date.len() + scope.len() + 68);
    for part in [ALGORITHM, "\n", amz_date, "\n", scope, "\n", &digest] {
        out.push_str(part);
    }
    out
}

/// The string to sign for one aws-chunked chunk: it chains the previous signature and
/// carries the hash of the empty string where a header hash would go.
#[must_use]
pub fn chunk_string_to_sign(
    amz_date: &str,
    scope: &str,
    prev_signature: &str,
    chunk_hash_hex: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev_signature}\n{EMPTY_SHA256}\n{chunk_hash_hex}"
    )
}

/// The string to sign for the trailing headers of a signed aws-chunked body. Unlike
/// a chunk, it has no empty-string hash line (AWS `sigv4-streaming-trailers`).
#[must_use]
pub fn trailer_string_to_sign(
    amz_date: &str,
    scope: &str,
    prev_signature: &str,
    trailer_hash_hex: &str,
) -> String {
    format!("AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{prev_signature}\n{trailer_hash_hex}")
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request")`. Intermediate keys are wiped when dropped.
#[must_use]
pub fn derive_signing_key(
    secret: &SecretKey,
    date: &str,
    region: &str,
    service: &str,
) -> SigningKey {
    let mut seed = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.expose().as_bytes());
    let k_date = hmac(&seed, date.as_bytes());
    let k_region = hmac(&*k_date, region.as_bytes());
    let k_service = hmac(&*k_region, service.as_bytes());
    let k_signing = hmac(&*k_service, b"aws4_request");
    SigningKey::from_bytes(*k_signing)
}

/// The hex signature of a string to sign.
#[must_use]
pub fn signature(key: &SigningKey, string_to_sign: &str) -> String {
    hex32(&hmac(key.expose(), string_to_sign.as_bytes()))
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex32(&Sha256::digest(data).into())
}

/// Lowercase hex of a 32-byte digest, by table (every request signs and hashes a few
/// times; the `hex` crate's iterator was 1.3 % of a small request's CPU).
#[must_use]
pub fn hex32(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests;
