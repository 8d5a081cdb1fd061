//! Operation-specific steps of the pipeline: ListBuckets synthesis, the DeleteObjects
//! key check for prefix-scoped credentials, the ACL-grant gate, and the
//! CompleteMultipartUpload `<Location>` rewrite.

use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;

use super::listener::ResponseBody;
use super::response::{error_response, read_bounded, set_request_id};
use super::stack::{Exchange, empty_out};
use super::state::ProxyState;
use crate::auth::VerifiedRequest;
use crate::error::S3Error;
use crate::policy::list_buckets;
use crate::policy::operation::S3Operation;
use crate::policy::route::Route;
use crate::policy::scope::authorize_keys;
use crate::upstream::UpstreamBackend;
use crate::upstream::client::OutBody;

/// Canned ACLs that grant nothing beyond the bucket owner; tools send them by default.
const HARMLESS_ACLS: &[&str] = &["private", "bucket-owner-full-control"];

pub(super) fn check_acl_headers(
    verified: &VerifiedRequest,
    route: &Route,
    headers: &http::HeaderMap,
) -> Result<(), S3Error> {
    let grants = headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-grant-"));
    let public_acl = headers
        .get("x-amz-acl")
        .is_some_and(|v| !HARMLESS_ACLS.contains(&v.to_str().unwrap_or_default()));
    if !grants && !public_acl {
        return Ok(());
    }
    let admin = route.bucket.as_deref().is_some_and(|b| {
        verified.credential.scopes.iter().any(|s| {
            s.matches_bucket(b)
                && s.access == crate::credentials::Access::Admin
                && s.prefix.is_none()
        })
    });
    if admin {
        Ok(())
    } else {
        Err(S3Error::AccessDenied(
            "Granting access through ACLs requires an admin scope on the bucket.".into(),
        ))
    }
}

/// Largest DeleteObjects body read for a key check: 1000 keys of 1 KiB plus XML.
const MAX_DELETE_BODY: usize = 2 * 1024 * 1024;

/// Read the verified DeleteObjects body, check every key against the credential's
/// prefixes, and put the bytes back as the outbound body.
pub(super) async fn check_delete_keys(
    req: Request<OutBody>,
    verified: &VerifiedRequest,
    route: &Route,
    op: S3Operation,
) -> Result<Request<OutBody>, S3Error> {
    let (req, bytes) = buffer_delete_body(req).await?;
    let keys = delete_object_keys(&bytes)?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let bucket = route.bucket.as_deref().unwrap_or_default();
    authorize_keys(&verified.credential, bucket, op, &refs)?;
    Ok(req)
}

/// Read the whole verified DeleteObjects body (bounded) and put the bytes back as the
/// outbound body; also used by quota accounting, which needs the keys.
pub(super) async fn buffer_delete_body(
    req: Request<OutBody>,
) -> Result<(Request<OutBody>, Bytes), S3Error> {
    let (parts, mut body) = req.into_parts();
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast_ref::<crate::auth::body::BodyError>() {
            Some(b) => b.s3_error(),
            None => S3Error::IncompleteBody,
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_DELETE_BODY {
                return Err(S3Error::EntityTooLarge(
                    "The DeleteObjects request body is too large.".into(),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    let bytes = buf.freeze();
    let body = http_body_util::Full::new(bytes.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((Request::from_parts(parts, body), bytes))
}

/// The `<Key>` values of a DeleteObjects request.
fn delete_object_keys(xml: &[u8]) -> Result<Vec<String>, S3Error> {
    let malformed = || S3Error::InvalidRequest("The XML you provided was not well-formed.".into());
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut keys = Vec::new();
    let mut in_key = false;
    loop {
        match reader.read_event().map_err(|_| malformed())? {
            quick_xml::events::Event::Start(e) if e.local_name().as_ref() == b"Key" => {
                in_key = true
            }
            quick_xml::events::Event::End(e) if e.local_name().as_ref() == b"Key" => in_key = false,
            quick_xml::events::Event::Text(t) if in_key => {
                keys.push(t.unescape().map_err(|_| malformed())?.into_owned());
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    Ok(keys)
}

/// Largest CompleteMultipartUpload result read for the rewrite (it is a few hundred
/// bytes, plus any whitespace keep-alives the upstream sends while it assembles).
const MAX_COMPLETE_RESULT: usize = 1024 * 1024;

/// The CompleteMultipartUpload result names the object by an upstream URL in
/// `<Location>`; tenants get the URL they addressed instead.
pub(super) async fn complete_multipart_response<B>(
    ex: &Exchange,
    mut parts: http::response::Parts,
    body: B,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let Some(bytes) = read_bounded(body, MAX_COMPLETE_RESULT).await else {
        return error_response(
            &S3Error::ServiceUnavailable,
            &ex.resource,
            &ex.request_id,
            false,
        );
    };
    let text = String::from_utf8_lossy(&bytes);
    let rewritten = match (text.find("<Location>"), text.find("</Location>")) {
        (Some(a), Some(b)) if a < b => format!(
            "{}<Location>{}</Location>{}",
            &text[..a],
            crate::error::xml_escape(&ex.public_url),
            &text[b + "</Location>".len()..]
        ),
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let mut resp = Response::from_parts(parts, super::response::full(Bytes::from(rewritten)));
    set_request_id(&mut resp, &ex.request_id);
    resp
}

/// ListBuckets from the credential's scopes; the upstream list is fetched (with the
/// admin key) only when a pattern scope needs it.
pub(super) async fn synthesize_list_buckets(
    state: &ProxyState,
    verified: &VerifiedRequest,
    parts: &Parts,
) -> Result<Response<ResponseBody>, S3Error> {
    let cred = &verified.credential;
    let upstream = if list_buckets::needs_upstream_list(cred) {
        let backend = state
            .backends
            .get(&cred.backend)
            .ok_or(S3Error::ServiceUnavailable)?;
        Some(fetch_upstream_buckets(state, backend).await?)
    } else {
        None
    };
    let query = list_buckets::ListBucketsQuery::parse(parts.uri.query())?;
    let xml =
        list_buckets::list_buckets_xml(cred, upstream.as_deref(), &query, &cred.access_key_id)?;
    let mut resp = Response::new(super::response::full(Bytes::from(xml)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    Ok(resp)
}

async fn fetch_upstream_buckets(
    state: &ProxyState,
    backend: &UpstreamBackend,
) -> Result<Vec<list_buckets::UpstreamBucket>, S3Error> {
    let uri = backend.uri("/", "").map_err(|_| S3Error::InternalError)?;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(empty_out())
        .map_err(|_| S3Error::InternalError)?;
    backend
        .sign(&mut req, None, SystemTime::now())
        .map_err(|_| S3Error::InternalError)?;
    let resp = state.client.send(req).await.map_err(|e| e.s3_error())?;
    if !resp.status().is_success() {
        return Err(S3Error::ServiceUnavailable);
    }
    let bytes = read_bounded(resp.into_body(), list_buckets::MAX_UPSTREAM_XML_BYTES)
        .await
        .ok_or(S3Error::ServiceUnavailable)?;
    list_buckets::parse_upstream_list_buckets(&bytes).map_err(|_| S3Error::ServiceUnavailable)
}
