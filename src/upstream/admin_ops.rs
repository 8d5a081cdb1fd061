//! Calls the proxy makes to a backend on its own behalf, signed with the backend's admin
//! key: the size of one object (HeadObject), the bytes of one multipart upload's parts
//! (ListParts), a bucket's stored bytes and objects (ListObjectsV2) and the bytes of
//! its in-progress multipart uploads (ListMultipartUploads + ListParts).
//!
//! Quota admission and the usage scanner are the callers. Every answer body is read
//! with a size bound and a deadline, parsed with quick-xml, and never echoed: errors
//! carry a status or a kind, no upstream text.

pub(crate) mod xml;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::client::{OutBody, UpstreamError};
use super::{UpstreamBackend, UpstreamClient};
use crate::policy::route::encode_path;
use crate::quota::ledger::Usage;
use crate::server::response::read_bounded;

/// The largest listing page read: 1000 entries with 1 KiB keys fit several times.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Deadline for reading one answer body (the head has the client's own timeout).
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pages one listing may take before it is abandoned: 10 million objects at 1000 a
/// page. A backend that keeps answering "truncated" beyond this is misbehaving.
const MAX_PAGES: usize = 10_000;

/// Query values keep only RFC 3986 unreserved characters, as SigV4 canonicalises them.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why an admin call failed. No variant carries upstream text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminOpError {
    #[error("the upstream is unavailable")]
    Unavailable,
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream answered HTTP {0}")]
    Status(u16),
    #[error("the upstream answer is not a well-formed listing")]
    Malformed,
    #[error("the upstream answer is larger than allowed")]
    TooLarge,
    #[error("the upstream listing does not advance")]
    Stuck,
    #[error("the admin request could not be built or signed")]
    Request,
}

impl AdminOpError {
    /// A bounded label for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Status(_) => "status",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Stuck => "stuck",
            Self::Request => "request",
        }
    }
}

impl From<UpstreamError> for AdminOpError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Unavailable => Self::Unavailable,
            UpstreamError::Timeout => Self::Timeout,
            UpstreamError::Malformed => Self::Malformed,
        }
    }
}

/// The size of `bucket/key` (optionally one version), `None` when it does not exist.
///
/// # Errors
/// Transport failures and any answer other than 2xx or 404.
pub async fn object_size(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<u64>, AdminOpError> {
    object_size_with(client, backend, bucket, key, version_id, &HeaderMap::new()).await
}

/// [`object_size`] with extra request headers: an SSE-C object answers HEAD only
/// with its customer key headers.
///
/// # Errors
/// As [`object_size`].
pub async fn object_size_with(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<u64>, AdminOpError> {
    let query = build_query(&[("versionId", version_id)]);
    let path = encode_path(Some(bucket), Some(key));
    let resp = send_with(client, backend, Method::HEAD, &path, &query, headers).await?;
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => content_length(&resp).map(Some),
        s => Err(AdminOpError::Status(s.as_u16())),
    }
}

/// Total bytes of the parts uploaded so far to one multipart upload.
///
/// # Errors
/// Transport failures, non-2xx answers, malformed or oversized pages.
pub async fn list_parts_bytes(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<u64, AdminOpError> {
    let path = encode_path(Some(bucket), Some(key));
    let mut marker: Option<String> = None;
    let mut total = 0u64;
    for _ in 0..MAX_PAGES {
        let query = build_query(&[
            ("part-number-marker", marker.as_deref()),
            ("uploadId", Some(upload_id)),
        ]);
        let page = xml::parse_parts(&get_xml(client, backend, &path, &query).await?)?;
        total = total.saturating_add(page.bytes);
        match advance(marker.as_deref(), page.next)? {
            Some(next) => marker = Some(next),
            None => return Ok(total),
        }
    }
    Err(AdminOpError::Stuck)
}

/// The bytes and object count of a bucket's current objects (ListObjectsV2).
///
/// # Errors
/// Transport failures, non-2xx answers, malformed or oversized pages.
pub async fn bucket_usage(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
) -> Result<Usage, AdminOpError> {
    let path = encode_path(Some(bucket), None);
    let mut token: Option<String> = None;
    let mut usage = Usage::default();
    for _ in 0..MAX_PAGES {
        let query = build_query(&[
            ("continuation-token", token.as_deref()),
            ("list-type", Some("2")),
        ]);
        let page = xml::parse_objects(&get_xml(client, backend, &path, &query).await?)?;
        usage.bytes = usage.bytes.saturating_add(page.bytes);
        usage.objects = usage.objects.saturating_add(page.objects);
        match advance(token.as_deref(), page.next)? {
            Some(next) => token = Some(next),
            None => return Ok(usage),
        }
    }
    Err(AdminOpError::Stuck)
}

/// The bytes held by a bucket's in-progress multipart uploads. An upstream that does
/// not implement ListMultipartUploads contributes 0 (its parts stay invisible).
///
/// # Errors
/// Transport failures, other non-2xx answers, malformed or oversized pages.
pub async fn multipart_bytes(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
) -> Result<u64, AdminOpError> {
    Ok(listed_multipart_bytes(client, backend, bucket)
        .await?
        .unwrap_or(0))
}

/// [`multipart_bytes`], telling an upstream without ListMultipartUploads (`None`)
/// apart from one with no uploads (`Some(0)`).
///
/// # Errors
/// As [`multipart_bytes`].
pub async fn listed_multipart_bytes(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    bucket: &str,
) -> Result<Option<u64>, AdminOpError> {
    let path = encode_path(Some(bucket), None);
    let mut markers: Option<(String, String)> = None;
    let mut total = 0u64;
    for _ in 0..MAX_PAGES {
        let (key_marker, id_marker) = markers
            .as_ref()
            .map_or((None, None), |(k, u)| (Some(k.as_str()), Some(u.as_str())));
        let query = build_query(&[
            ("key-marker", key_marker),
            ("upload-id-marker", id_marker),
            ("uploads", Some("")),
        ]);
        let body = match get_xml(client, backend, &path, &query).await {
            Err(AdminOpError::Status(501)) => {
                tracing::debug!(backend = %backend.id, "the upstream does not list multipart uploads; their parts are not scanned");
                return Ok(None);
            }
            other => other?,
        };
        let page = xml::parse_uploads(&body)?;
        for upload in &page.uploads {
            let bytes = list_parts_bytes(client, backend, bucket, &upload.key, &upload.id).await;
            total = total.saturating_add(uploaded_or_gone(bytes)?);
        }
        match advance_pair(markers.as_ref(), page.next)? {
            Some(next) => markers = Some(next),
            None => return Ok(Some(total)),
        }
    }
    Err(AdminOpError::Stuck)
}

/// An upload that finished or was aborted between the two listings holds nothing.
fn uploaded_or_gone(bytes: Result<u64, AdminOpError>) -> Result<u64, AdminOpError> {
    match bytes {
        Err(AdminOpError::Status(404)) => Ok(0),
        other => other,
    }
}

/// The next marker of a truncated listing; a marker that does not move is a loop.
fn advance(current: Option<&str>, next: Option<String>) -> Result<Option<String>, AdminOpError> {
    match next {
        Some(n) if Some(n.as_str()) == current => Err(AdminOpError::Stuck),
        other => Ok(other),
    }
}

fn advance_pair(
    current: Option<&(String, String)>,
    next: Option<(String, String)>,
) -> Result<Option<(String, String)>, AdminOpError> {
    match next {
        Some(n) if Some(&n) == current => Err(AdminOpError::Stuck),
        other => Ok(other),
    }
}

/// `name=value` pairs (already sorted by name, as SigV4 wants them) with values
/// encoded; `None` values are left out, `Some("")` gives a bare `name`.
fn build_query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(name, value)| {
            value.map(|v| {
                if v.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{name}={}", utf8_percent_encode(v, QUERY_VALUE))
                }
            })
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn content_length(resp: &Response<Incoming>) -> Result<u64, AdminOpError> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(AdminOpError::Malformed)
}

/// GET `path?query` and return the bounded body of a 2xx answer.
async fn get_xml(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    path: &str,
    query: &str,
) -> Result<Bytes, AdminOpError> {
    let resp = send(client, backend, Method::GET, path, query).await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(AdminOpError::Status(status.as_u16()));
    }
    match tokio::time::timeout(BODY_TIMEOUT, read_bounded(resp.into_body(), MAX_PAGE_BYTES)).await {
        Err(_) => Err(AdminOpError::Timeout),
        Ok(None) => Err(AdminOpError::TooLarge),
        Ok(Some(bytes)) => Ok(bytes),
    }
}

async fn send(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    method: Method,
    path: &str,
    query: &str,
) -> Result<Response<Incoming>, AdminOpError> {
    send_with(client, backend, method, path, query, &HeaderMap::new()).await
}

/// Build, sign (UNSIGNED-PAYLOAD, empty body) and send one admin request.
async fn send_with(
    client: &UpstreamClient,
    backend: &UpstreamBackend,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response<Incoming>, AdminOpError> {
    let uri = backend
        .uri(path, query)
        .map_err(|_| AdminOpError::Request)?;
    let body: OutBody = http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .map_err(|_| AdminOpError::Request)?;
    req.headers_mut().extend(headers.clone());
    backend
        .sign(&mut req, None, SystemTime::now())
        .map_err(|_| AdminOpError::Request)?;
    Ok(client.send(req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_and_empty_values_are_bare_names() {
        let q = build_query(&[
            ("continuation-token", Some("a b/c+d=")),
            ("list-type", Some("2")),
            ("missing", None),
            ("uploads", Some("")),
        ]);
        assert_eq!(q, "continuation-token=a%20b%2Fc%2Bd%3D&list-type=2&uploads");
    }

    #[test]
    fn a_marker_that_does_not_move_is_refused() {
        assert_eq!(
            advance(Some("a"), Some("a".into())),
            Err(AdminOpError::Stuck)
        );
        assert_eq!(advance(Some("a"), Some("b".into())), Ok(Some("b".into())));
        assert_eq!(advance(None, None), Ok(None));
        let pair = ("k".to_owned(), "u".to_owned());
        assert_eq!(
            advance_pair(Some(&pair), Some(pair.clone())),
            Err(AdminOpError::Stuck)
        );
    }

    #[test]
    fn vanished_uploads_count_zero_but_other_errors_propagate() {
        assert_eq!(uploaded_or_gone(Err(AdminOpError::Status(404))), Ok(0));
        assert_eq!(
            uploaded_or_gone(Err(AdminOpError::Timeout)),
            Err(AdminOpError::Timeout)
        );
    }
}
