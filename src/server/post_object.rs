//! Browser form uploads (POST Object with a POST policy), the same pipeline steps as
//! a signed PUT, in order: read the form's head (bounded) → verify the policy's
//! signature → check every condition → authorize the final key → ACL → rate limit →
//! quota → re-sign as a PutObject → stream the file → answer as the form asked
//! (`success_action_redirect` / `success_action_status`).
//!
//! The bucket is the URL's, never the form's. The upstream receives a plain PutObject
//! with an exact Content-Length; the file's last byte is held back until the form's
//! closing boundary is verified, so a malformed or truncated form commits nothing.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::form::{FileBody, FormHead, FormLimits, boundary, closing, read_head};
use super::listener::ResponseBody;
use super::quota_step::{admit as admit_quota, drain_refused};
use super::response::{full, set_request_id};
use super::special::check_acl_headers;
use super::stack::Exchange;
use super::state::ProxyState;
use crate::auth::post_policy::{FormFields, PolicyError, VerifiedForm, verify_form};
use crate::error::S3Error;
use crate::policy::operation::S3Operation;
use crate::policy::route::{Route, encode_path};
use crate::policy::scope::authorize;

/// Longest wait for a form's fields (the file itself streams under the usual limits).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Form fields that become headers of the upstream PutObject, as S3 maps them.
const HEADER_FIELDS: &[&str] = &[
    "cache-control",
    "content-type",
    "content-disposition",
    "content-encoding",
    "expires",
    "x-amz-acl",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];
/// Form fields the proxy itself consumes.
const CONTROL_FIELDS: &[&str] = &[
    "key",
    "policy",
    "bucket",
    "acl",
    "success_action_status",
    "success_action_redirect",
    "redirect",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
    "x-amz-security-token",
];

/// What the checks produced: where the file goes and how to answer.
pub(super) struct FormUpload {
    pub(super) verified: crate::auth::VerifiedRequest,
    pub(super) route: Route,
    pub(super) file_len: u64,
    headers: HeaderMap,
    answer: Answer,
}

enum Answer {
    Redirect(String),
    Status(StatusCode),
}

/// Steps 1–4 for a form: read, verify, check, authorize. `parts` is the POST's head.
pub(super) async fn check_form(
    state: &ProxyState,
    ex: &Exchange,
    parts: &Parts,
    body: &mut Incoming,
    bucket: &str,
) -> Result<(FormUpload, FormHead), S3Error> {
    crate::auth::post_policy::check_form_is_only_mechanism(&parts.headers, parts.uri.query())?;
    let total = content_length(parts)?;
    let content_type = header(&parts.headers, http::header::CONTENT_TYPE.as_str());
    let boundary = boundary(content_type.unwrap_or_default())?;
    // Until its policy is verified a form is unauthenticated traffic: its address pays
    // first, and only so many form heads are read at once (a slow head holds a
    // connection and up to `max_head_bytes`).
    state
        .rate_limits
        .check(crate::ratelimit::Subject::SourceIp(ex.client_ip))?;
    let _reading = state
        .form_heads
        .try_acquire()
        .map_err(|_| S3Error::SlowDown)?;
    let head = tokio::time::timeout(
        HEAD_TIMEOUT,
        read_head(body, &boundary, &FormLimits::default()),
    )
    .await
    .map_err(|_| S3Error::RequestTimeout)??;
    let closing_len = closing(&boundary).len() as u64;
    let file_len = total
        .checked_sub(head.consumed + closing_len)
        .ok_or_else(|| {
            S3Error::MalformedPostRequest("The form is shorter than declared.".into())
        })?;

    // Authenticate: the policy's signature (a failure is charged to the source address).
    // Already charged to its address above; a failure is not charged twice.
    let ip_charge = crate::ratelimit::IpCharge::Charged;
    let now = time::OffsetDateTime::now_utc();
    let VerifiedForm { request, policy } = verify_form(
        &head.fields,
        state.cache.as_ref(),
        &state.keys,
        &state.auth,
        now,
    )
    .map_err(|e| super::stack::auth_refusal(state, ex.client_ip, ip_charge, e))?;
    policy
        .check(&head.fields, bucket, file_len, now)
        .map_err(policy_error)?;

    // Authorize the key the object will really have, as a PutObject.
    let key = final_key(&head.fields, &head.filename)?;
    let route = Route {
        bucket: Some(bucket.to_owned()),
        key: Some(key),
        style: crate::policy::route::AddressingStyle::Path,
    };
    authorize(
        &request.credential,
        S3Operation::PutObject,
        &route,
        None,
        None,
    )?;
    let headers = upstream_headers(&head.fields)?;
    check_acl_headers(&request, &route, &headers)?;
    let answer = answer(&head.fields)?;
    Ok((
        FormUpload {
            verified: request,
            route,
            file_len,
            headers,
            answer,
        },
        head,
    ))
}

/// Steps 5–8: rate limit, quota, re-sign and send; then the answer the form asked for.
pub(super) async fn forward_form(
    state: &ProxyState,
    ex: &mut Exchange,
    parts: &Parts,
    mut body: Incoming,
    bucket: &str,
) -> Result<Response<ResponseBody>, S3Error> {
    let (upload, head) = check_form(state, ex, parts, &mut body, bucket).await?;
    let cred = &upload.verified.credential;
    ex.access_key = Some(cred.access_key_id.clone());
    ex.source = crate::audit::AuditSource::of(&cred.source);
    ex.backend = Some(cred.backend.clone());
    ex.key.clone_from(&upload.route.key);
    state
        .rate_limits
        .admit(&upload.verified.credential.access_key_id)?;
    ex.operation = S3Operation::PostObject;
    let put_parts = put_head(&upload)?;
    let mut quota = match admit_quota(
        state,
        S3Operation::PutObject,
        &upload.route,
        &put_parts,
        &upload.verified,
        None,
    )
    .await
    {
        Ok(q) => q,
        Err(e) => return Err(drain_refused(e, parts, body).await),
    };
    let backend = state
        .backends
        .get(&upload.verified.credential.backend)
        .ok_or(S3Error::ServiceUnavailable)?;
    let closing = closing(&boundary(
        header(&parts.headers, "content-type").unwrap_or_default(),
    )?);
    let file = FileBody::new(head.leftover, body, upload.file_len, closing);
    let handle = file.handle();
    let out_body = if upload.file_len == 0 {
        // Nothing to hold back: verify the ending before anything is sent.
        let bytes = file.collect().await?.to_bytes();
        http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        file.map_err(|e| Box::new(e) as crate::upstream::client::BoxError)
            .boxed_unsync()
    };
    let path = encode_path(upload.route.bucket.as_deref(), upload.route.key.as_deref());
    let uri = backend.uri(&path, "").map_err(|_| S3Error::InternalError)?;
    let mut req = Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .body(out_body)
        .map_err(|_| S3Error::InternalError)?;
    *req.headers_mut() = upload.headers.clone();
    req.headers_mut()
        .insert(http::header::CONTENT_LENGTH, upload.file_len.into());
    backend
        .sign(&mut req, None, SystemTime::now())
        .map_err(|_| S3Error::InvalidArgument("A form field cannot be forwarded.".into()))?;
    if let Some(q) = quota.as_mut() {
        q.forwarding(Some(&handle));
    }
    let sent = state.client.send(req).await;
    if let Some(err) = handle.failure() {
        return Err(err);
    }
    let upstream = sent.map_err(|e| e.s3_error())?;
    let resp = super::stack::stream_back(state, ex, backend, upstream).await;
    let resp = super::quota_step::settle(state, ex, quota, resp).await;
    Ok(respond(&upload, resp, &ex.request_id))
}

fn content_length(parts: &Parts) -> Result<u64, S3Error> {
    header(&parts.headers, "content-length")
        .ok_or(S3Error::MissingContentLength)?
        .parse()
        .map_err(|_| S3Error::InvalidArgument("Content-Length is not a number.".into()))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn policy_error(e: PolicyError) -> S3Error {
    match e {
        PolicyError::LengthOutOfRange { too_large: true } => {
            S3Error::EntityTooLarge("Your proposed upload exceeds the maximum allowed size.".into())
        }
        PolicyError::LengthOutOfRange { too_large: false } => S3Error::EntityTooSmall,
        PolicyError::Malformed(m) => S3Error::MalformedPostRequest(m.into()),
        other => S3Error::AccessDenied(other.to_string().into()),
    }
}

/// The form's `key` with `${filename}` replaced by the file's base name.
fn final_key(fields: &FormFields, filename: &str) -> Result<String, S3Error> {
    let key = fields
        .get("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| S3Error::InvalidArgument("The form needs a key field.".into()))?;
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    // The final length, computed before any substitution allocates.
    let uses = key.matches("${filename}").count();
    let len =
        (key.len() - uses * "${filename}".len()).saturating_add(uses.saturating_mul(base.len()));
    if len > 1024 {
        return Err(S3Error::InvalidArgument("The key is too long.".into()));
    }
    Ok(key.replace("${filename}", base))
}

/// Headers for the upstream PutObject; a field the proxy cannot map is refused, never
/// dropped.
fn upstream_headers(fields: &FormFields) -> Result<HeaderMap, S3Error> {
    let mut out = HeaderMap::new();
    for (name, value) in fields.iter() {
        let target = if name == "acl" { "x-amz-acl" } else { name };
        let mapped = HEADER_FIELDS.contains(&target) || target.starts_with("x-amz-meta-");
        if mapped {
            let n = HeaderName::from_bytes(target.as_bytes())
                .map_err(|_| S3Error::InvalidArgument("A form field name is invalid.".into()))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                S3Error::InvalidArgument("A form field value cannot be a header.".into())
            })?;
            out.insert(n, v);
        } else if !CONTROL_FIELDS.contains(&name) && !name.starts_with("x-ignore-") {
            return Err(S3Error::NotImplemented(
                format!("The form field {name} is not supported.").into(),
            ));
        }
    }
    Ok(out)
}

fn answer(fields: &FormFields) -> Result<Answer, S3Error> {
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"));
    if let Some(url) = redirect.filter(|u| !u.is_empty()) {
        let ok = url
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if ok {
            return Ok(Answer::Redirect(url.to_owned()));
        }
        return Err(S3Error::InvalidArgument(
            "success_action_redirect must be an http or https URL.".into(),
        ));
    }
    Ok(Answer::Status(match fields.get("success_action_status") {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    }))
}

/// A synthetic PutObject head: what quota admission plans against.
fn put_head(u: &FormUpload) -> Result<Parts, S3Error> {
    let path = encode_path(u.route.bucket.as_deref(), u.route.key.as_deref());
    let mut req = Request::builder()
        .method(Method::PUT)
        .uri(path)
        .body(())
        .map_err(|_| S3Error::InternalError)?;
    *req.headers_mut() = u.headers.clone();
    req.headers_mut()
        .insert(http::header::CONTENT_LENGTH, u.file_len.into());
    Ok(req.into_parts().0)
}

/// The form's answer for a stored object; any other upstream answer is passed on.
fn respond(
    u: &FormUpload,
    upstream: Response<ResponseBody>,
    request_id: &str,
) -> Response<ResponseBody> {
    if !upstream.status().is_success() {
        return upstream;
    }
    let etag = upstream.headers().get(http::header::ETAG).cloned();
    let etag_text = etag
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bucket = u.route.bucket.as_deref().unwrap_or_default();
    let key = u.route.key.as_deref().unwrap_or_default();
    let mut resp = match &u.answer {
        Answer::Redirect(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let q = |s: &str| crate::auth::sigv4::uri_encode(s, true);
            let target = format!(
                "{url}{sep}bucket={}&key={}&etag={}",
                q(bucket),
                q(key),
                q(&etag_text)
            );
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        Answer::Status(StatusCode::CREATED) => {
            let x = crate::error::xml_escape;
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>/{}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                x(bucket),
                x(key),
                x(bucket),
                x(key),
                x(&etag_text)
            );
            let mut r = Response::new(full(Bytes::from(body)));
            *r.status_mut() = StatusCode::CREATED;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            r
        }
        Answer::Status(status) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = *status;
            r
        }
    };
    if let Some(e) = etag {
        resp.headers_mut().insert(http::header::ETAG, e);
    }
    set_request_id(&mut resp, request_id);
    resp
}
