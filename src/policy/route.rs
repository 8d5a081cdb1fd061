//! Routing: which bucket and key a request addresses, from the `Host` header
//! (virtual-host style, for configured `host_suffixes`) or the path (path style), and
//! the outbound path-style path the re-signed upstream request uses.
//!
//! Decisions:
//! - The key is percent-decoded strictly (malformed escapes and invalid UTF-8 are
//!   refused); a decoded `%2F` is an ordinary `/` in the key. Dot-segments are kept as
//!   literal key bytes, as S3 does; the scope check ([`super::scope`]) also checks how
//!   a normalising backend would read them.
//! - Bucket names: 3–63 bytes of ASCII letters, digits, `.`, `-` and `_`, starting and
//!   ending with a letter or digit, without `..`. Uppercase and `_` are accepted for
//!   legacy (pre-2018 us-east-1, relaxed Ceph/MinIO) buckets; names are compared with
//!   scopes case-sensitively, as S3 compares them. A host-derived bucket is lower-case
//!   because host names are case-insensitive.
//! - A host that matches no suffix (an IP, `localhost`, or any other name) means
//!   path style; the longest matching suffix wins when suffixes nest.

use std::borrow::Cow;

use crate::error::S3Error;

use super::encoding::{DecodeError, percent_decode_strict, s3_encode_into};

/// S3's object key limit, in bytes of the decoded UTF-8 key.
pub const MAX_KEY_BYTES: usize = 1024;

/// How the tenant addressed the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingStyle {
    /// `/bucket/key`.
    Path,
    /// `bucket.<suffix>` in `Host`, `/key` in the path.
    VirtualHost,
}

/// The addressed resource. `bucket == None` is a service-level request;
/// `key == None` a bucket-level one (an empty key counts as none, as in S3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub style: AddressingStyle,
}

/// Route a request from its `Host` (or `:authority`) and raw (still encoded) path.
/// A query string left on `raw_path` is ignored.
pub fn route(
    host: Option<&str>,
    raw_path: &str,
    host_suffixes: &[String],
) -> Result<Route, S3Error> {
    let path = raw_path.split_once('?').map_or(raw_path, |(p, _)| p);
    let Some(path) = path.strip_prefix('/') else {
        return Err(S3Error::InvalidRequest(Cow::Borrowed(
            "The request path must start with '/'.",
        )));
    };
    if let Some(bucket) = host.and_then(|h| bucket_from_host(h, host_suffixes)) {
        validate_bucket(&bucket)?;
        return Ok(Route {
            bucket: Some(bucket),
            key: decode_key(path)?,
            style: AddressingStyle::VirtualHost,
        });
    }
    let (bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        // `/` is the service; `//key` names no bucket and is refused.
        if raw_key.is_empty() {
            return Ok(Route {
                bucket: None,
                key: None,
                style: AddressingStyle::Path,
            });
        }
        return Err(S3Error::InvalidBucketName);
    }
    validate_bucket(bucket)?;
    Ok(Route {
        bucket: Some(bucket.to_owned()),
        key: decode_key(raw_key)?,
        style: AddressingStyle::Path,
    })
}

/// The authority a request addresses, the one routing and the signature both read:
/// the `Host` header, or without one the request target's authority (an HTTP/1.0
/// absolute-form target, HTTP/2's `:authority`). Two `Host` headers, or an HTTP/1.1
/// request without one, are refused (RFC 9112 §3.2: a server must answer 400), so the
/// bucket a scope is checked against and the Host the tenant signed can never differ.
/// A Host that is not visible ASCII routes as no Host (path style).
pub fn request_host<'a>(
    version: http::Version,
    headers: &'a http::HeaderMap,
    uri: &'a http::Uri,
) -> Result<Option<&'a str>, S3Error> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(S3Error::InvalidRequest(Cow::Borrowed(
            "The request has more than one Host header.",
        )));
    }
    match first {
        Some(h) => Ok(h.to_str().ok()),
        None if version == http::Version::HTTP_11 => Err(S3Error::InvalidRequest(Cow::Borrowed(
            "The request has no Host header.",
        ))),
        None => Ok(uri.authority().map(http::uri::Authority::as_str)),
    }
}

/// The bucket named by `host` when it is `<bucket>.<suffix>` for a configured suffix.
/// A host equal to a suffix is the service endpoint itself (path style), even when
/// another, shorter suffix would read it as a bucket.
fn bucket_from_host(host: &str, host_suffixes: &[String]) -> Option<String> {
    let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    let suffixes = host_suffixes
        .iter()
        .map(|s| s.trim_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    let mut best: Option<(usize, &str)> = None;
    for suffix in suffixes {
        if suffix == host {
            return None;
        }
        let stem = host
            .strip_suffix(suffix.as_str())
            .and_then(|s| s.strip_suffix('.'));
        if let Some(stem) = stem.filter(|_| best.is_none_or(|(len, _)| suffix.len() > len)) {
            best = Some((suffix.len(), stem));
        }
    }
    best.map(|(_, bucket)| bucket.to_owned())
}

/// `example.com:8090` → `example.com`; `[::1]:8090` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Refuse names that are not S3 bucket names (see the module doc for the rules).
pub fn validate_bucket(name: &str) -> Result<(), S3Error> {
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(S3Error::InvalidBucketName)
    }
}

/// Decode a raw key; an empty key is none. Shared with copy-source parsing.
pub(crate) fn decode_key(raw: &str) -> Result<Option<String>, S3Error> {
    if raw.is_empty() {
        return Ok(None);
    }
    // Every decoded byte needs at most three raw ones: refuse before allocating.
    if raw.len() > 3 * MAX_KEY_BYTES {
        return Err(key_too_long());
    }
    let key = percent_decode_strict(raw).map_err(|e| match e {
        DecodeError::MalformedEscape => S3Error::InvalidArgument(Cow::Borrowed(
            "The object key has a malformed percent-encoding.",
        )),
        DecodeError::InvalidUtf8 => {
            S3Error::InvalidArgument(Cow::Borrowed("The object key is not valid UTF-8."))
        }
    })?;
    if key.len() > MAX_KEY_BYTES {
        return Err(key_too_long());
    }
    if key.contains('\0') {
        return Err(S3Error::InvalidArgument(Cow::Borrowed(
            "The object key must not contain a NUL character.",
        )));
    }
    Ok(Some(key.into_owned()))
}

fn key_too_long() -> S3Error {
    S3Error::InvalidArgument(Cow::Borrowed(
        "Your key is too long (the limit is 1024 bytes).",
    ))
}

/// The outbound path-style path: `/`, `/bucket` or `/bucket/<key>`, each part with S3
/// canonical encoding (`/` inside the key kept literal). Without a bucket the key is
/// meaningless and ignored.
#[must_use]
pub fn encode_path(bucket: Option<&str>, key: Option<&str>) -> String {
    let mut out = String::from("/");
    let Some(bucket) = bucket else {
        return out;
    };
    s3_encode_into(&mut out, bucket, false);
    if let Some(key) = key {
        out.push('/');
        s3_encode_into(&mut out, key, true);
    }
    out
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
