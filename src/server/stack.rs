//! The request pipeline, top to bottom, one step per comment:
//! limits → route → authenticate → authorize → (rate limit, quota: later) → re-sign →
//! forward → stream back → account. Every failure becomes an `S3Error` and is rendered
//! in exactly one place (`handle`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::account::finish;
use super::body_guard::{GuardedBody, check_declared};
use super::client_ip::{client_ip, forwarded_proto};
use super::listener::ResponseBody;
use super::quota_step::{admit as admit_quota, drain_refused, settle as settle_quota};
use super::response::{
    error_response, read_bounded, set_request_id, upstream_error_response, view_upstream_error,
};
use super::special::{
    check_acl_headers, check_delete_keys, complete_multipart_response, synthesize_list_buckets,
};
use super::state::ProxyState;
use crate::audit::{AuditSource, unix_ms};
use crate::auth::body::{BodyHandle, BodyLimits, verify_body};
use crate::auth::{PayloadMode, VerifiedRequest, authenticate};
use crate::error::S3Error;
use crate::policy::operation::{S3Operation, classify};
use crate::policy::route::{Route, encode_path, request_host, route};
use crate::policy::scope::{
    CopySource, authorize, authorize_copy_source, copy_source_from_headers, needs_key_check,
};
use crate::ratelimit::known_claimed_key;
use crate::upstream::UpstreamBackend;
use crate::upstream::client::OutBody;
use crate::upstream::headers::{outbound_headers, sanitize_inbound, strip_presign_query};
use crate::upstream::idle::IdleTimeoutBody;

/// The client's body as the forwarding steps read it.
type ClientBody = GuardedBody<Incoming>;

/// Per-request facts the edge needs whatever happened.
pub(super) struct Exchange {
    pub(super) request_id: String,
    pub(super) operation: S3Operation,
    pub(super) resource: String,
    /// `{scheme}://{Host}{path}` as the tenant addressed it; the scheme is `https` only
    /// when a trusted proxy says so in X-Forwarded-Proto.
    pub(super) public_url: String,
    pub(super) is_head: bool,
    /// The peer, or the right-most untrusted X-Forwarded-For hop behind a trusted proxy.
    pub(super) client_ip: IpAddr,
    // For the audit row: filled in as the pipeline learns them.
    /// Unix milliseconds when the request head arrived.
    pub(super) started_ms: i64,
    /// Verified, or claimed by a failed authentication when it names a known key.
    pub(super) access_key: Option<String>,
    pub(super) source: AuditSource,
    pub(super) bucket: Option<String>,
    pub(super) key: Option<String>,
    /// Request body bytes released to the upstream.
    pub(super) bytes_in: u64,
    /// The credential's (or anonymous binding's) backend, once known: whose CORS
    /// rules apply to the answer.
    pub(super) backend: Option<String>,
    pub(super) method: Method,
}

/// Serve one S3 request. Never fails: errors are rendered as S3 XML here.
pub async fn handle(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let mut ex = Exchange {
        request_id: new_request_id(),
        operation: S3Operation::Unknown,
        resource: req.uri().path().to_owned(),
        // Only CompleteMultipartUpload (a POST) needs it; skip the allocation otherwise.
        public_url: if req.method() == Method::POST {
            format!(
                "{}://{}{}",
                // https when a trusted TLS-terminating proxy says so.
                forwarded_proto(peer.ip(), req.headers(), &state.trusted_proxies).unwrap_or("http"),
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default(),
                req.uri().path()
            )
        } else {
            String::new()
        },
        is_head: req.method() == Method::HEAD,
        client_ip: client_ip(peer.ip(), req.headers(), &state.trusted_proxies),
        started_ms: unix_ms(time::OffsetDateTime::now_utc()),
        access_key: None,
        source: AuditSource::None,
        bucket: None,
        key: None,
        bytes_in: 0,
        backend: None,
        method: req.method().clone(),
    };
    let origin = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.metrics.inflight.inc();
    let mut resp = match pipeline(&state, &mut ex, req).await {
        Ok(resp) => resp,
        Err(err) => {
            // Rate-limit refusals come in floods; the counter records them, not the log.
            if err.status().is_server_error() && !matches!(err, S3Error::RateLimited { .. }) {
                tracing::warn!(request_id = %ex.request_id, operation = ex.operation.name(), code = err.code(), "request failed");
            } else {
                tracing::debug!(request_id = %ex.request_id, operation = ex.operation.name(), code = err.code(), "request refused");
            }
            error_response(&err, &ex.resource, &ex.request_id, ex.is_head)
        }
    };
    // CORS: the upstream's headers out, the bucket's rules in (errors included).
    super::browser::decorate(&state, &ex, origin.as_deref(), resp.headers_mut());
    finish(&state, ex, resp, started)
}

/// The pipeline proper. Returns the response to stream, or the error to render.
async fn pipeline(
    state: &ProxyState,
    ex: &mut Exchange,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, S3Error> {
    let (parts, body) = req.into_parts();

    // 1. Limits the listener cannot enforce: URL length, and one authority only
    //    (an absolute-form URI must agree with Host; the upstream never comes from either).
    check_request_shape(state, &parts)?;

    // 2. Route: bucket and key from the path or a configured host suffix, then the
    //    named S3 operation and its access class.
    let host = request_host(parts.version, &parts.headers, &parts.uri)?;
    let route = route(host, parts.uri.path(), &state.host_suffixes)?;
    ex.operation = classify(&parts.method, &route, parts.uri.query(), &parts.headers);
    ex.bucket.clone_from(&route.bucket);
    ex.key.clone_from(&route.key);

    //    A CORS preflight is answered from the bucket's rules, before authentication
    //    (browsers send no credentials on it).
    if parts.method == Method::OPTIONS {
        return super::browser::preflight(state, ex, &parts, &route);
    }

    //    A browser form upload authenticates with its POST policy, inside the body:
    //    the same steps in the same order, in `post_object`.
    if ex.operation == S3Operation::PostObject
        && let Some(bucket) = route.bucket.as_deref()
    {
        return super::post_object::forward_form(state, ex, &parts, body, bucket).await;
    }

    // 3–5. Authenticate, authorize, check the declared XML length, rate-limit
    //    (`admit_request`). A refusal first swallows a small body the client may
    //    still be sending, so it reads the refusal instead of a reset connection.
    let Admitted {
        verified,
        copy_source,
        check_body_keys,
    } = match admit_request(state, ex, &parts, &route) {
        Ok(a) => a,
        Err(e @ S3Error::RateLimited { .. }) => return Err(e),
        Err(e) => return Err(drain_refused(e, &parts, body).await),
    };

    // 6. Quota admission (buckets with a limit only): what the write may add or free
    //    is planned and reserved before any body byte is read. The listener answers
    //    `Expect: 100-continue` only when the body is first polled, so an over-quota
    //    upload gets its 507 instead of `100 Continue`.
    //    A refusal first swallows a small body the client may still be sending.
    let mut quota = match admit_quota(
        state,
        ex.operation,
        &route,
        &parts,
        &verified,
        copy_source.as_ref(),
    )
    .await
    {
        Ok(quota) => quota,
        Err(e) => return Err(drain_refused(e, &parts, body).await),
    };

    // Service level: ListBuckets is synthesised from the credential's scopes.
    if ex.operation == S3Operation::ListBuckets {
        return synthesize_list_buckets(state, &verified, &parts).await;
    }

    // 7. Re-sign for the credential's backend (endpoint from configuration only).
    //    The body is guarded on its way: a stall past `body_read_timeout`, or an XML
    //    body growing past its cap, fails it (the upstream then commits nothing).
    let body = GuardedBody::new(
        body,
        state.limits.body.cap(ex.operation),
        state.limits.body.read_timeout,
    );
    let backend = state
        .backends
        .get(&verified.credential.backend)
        .ok_or(S3Error::ServiceUnavailable)?;
    let (mut outbound, body_handle) = build_outbound(
        state,
        &parts,
        body,
        &route,
        &verified,
        backend,
        copy_source.as_ref(),
    )?;
    if check_body_keys {
        outbound = check_delete_keys(outbound, &verified, &route, ex.operation).await?;
    }
    if let Some(q) = quota.as_mut() {
        outbound = q.prepare(state, outbound).await?;
        q.forwarding(body_handle.as_ref());
    }

    // 8. Forward over the pooled client. A body that failed verification is reported
    //    as the tenant's error; the upstream saw a short body and committed nothing.
    let sent = state.client.send(outbound).await;
    let in_counter = state
        .metrics
        .bytes_in
        .with_label_values(&[ex.operation.name()]);
    if let Some(h) = &body_handle {
        ex.bytes_in = h.bytes_released();
        in_counter.inc_by(ex.bytes_in);
        if let Some(err) = h.failure() {
            state
                .metrics
                .auth_failures
                .with_label_values(&[h.failure_reason().unwrap_or("body")])
                .inc();
            return Err(err);
        }
    }
    let upstream = sent.map_err(|e| {
        state
            .metrics
            .upstream_errors
            .with_label_values(&[e.kind()])
            .inc();
        e.s3_error()
    })?;

    // 9. Stream the response back (errors rebuilt without upstream text), then turn
    //    the quota reservation into usage (a 2xx) or release it (anything else).
    let resp = stream_back(state, ex, backend, upstream).await;
    Ok(settle_quota(state, ex, quota, resp).await)
}

/// What steps 3–5 of the pipeline established about a request.
struct Admitted {
    verified: VerifiedRequest,
    copy_source: Option<CopySource>,
    /// DeleteObjects' body keys are checked one by one once the body is read.
    check_body_keys: bool,
}

/// Steps 3–5 of the pipeline, which read no body byte: authenticate, authorize,
/// check the declared XML length, rate-limit.
fn admit_request(
    state: &ProxyState,
    ex: &mut Exchange,
    parts: &Parts,
    route: &Route,
) -> Result<Admitted, S3Error> {
    // 3. Authenticate exactly once; everything after takes the VerifiedRequest.
    //    An unsigned read of a bucket with an anonymous binding (when
    //    `s3_proxy.anonymous_enabled`) gets a read-only identity instead, after the
    //    anonymous allowlist and its source-address limits; a request that carries any
    //    credential never takes that path.
    let verified = match super::browser::anonymous(state, ex, parts, route)? {
        Some(v) => {
            ex.source = AuditSource::Anonymous;
            v
        }
        None => authenticate_signed(state, ex, parts)?,
    };
    ex.backend = Some(verified.credential.backend.clone());

    // 4. Authorize: URL bucket, key prefix, access class; the copy source too.
    let copy_source = copy_source_from_headers(&parts.headers)?;
    //    DeleteObjects carries its keys in the body: they are checked key by key
    //    (prefix, and never out of the bucket) once the (bounded, verified) body has
    //    been read.
    let check_body_keys = route
        .bucket
        .as_deref()
        .is_some_and(|b| needs_key_check(&verified.credential, b, ex.operation));
    if !check_body_keys {
        authorize(
            &verified.credential,
            ex.operation,
            route,
            parts.uri.query(),
            copy_source.as_ref(),
        )?;
    } else if let Some(src) = copy_source.as_ref() {
        authorize_copy_source(&verified.credential, src)?;
    }

    //    Object ACLs reach past the proxy (a public-read object is served by the
    //    upstream to anyone), so anything beyond `private` needs an admin scope.
    check_acl_headers(&verified, route, &parts.headers)?;

    //    DeleteObjects and CompleteMultipartUpload carry XML documents: a declared
    //    length over the configured cap is refused here, before any byte is read or
    //    the upstream contacted (`body_guard`; the bytes as received are capped too).
    check_declared(&state.limits.body, ex.operation, parts, &verified.payload)?;

    // 5. Rate limits: the access key's bucket, then the global one (crate::ratelimit).
    //    Anonymous requests were admitted by their address in step 3.
    if verified.location != crate::auth::AuthLocation::Anonymous {
        state
            .rate_limits
            .admit(&verified.credential.access_key_id)?;
    }

    Ok(Admitted {
        verified,
        copy_source,
        check_body_keys,
    })
}

/// Step 3 for signed requests (header or presigned query).
fn authenticate_signed(
    state: &ProxyState,
    ex: &mut Exchange,
    parts: &Parts,
) -> Result<VerifiedRequest, S3Error> {
    //    A request naming no known key is charged to its source address first and
    //    refused before any signature work when that address is over its limit; one
    //    naming a known key pays only if verification fails (crate::ratelimit).
    let known_key = known_claimed_key(&parts.headers, parts.uri.query(), state.cache.as_ref());
    let ip_charge = state
        .rate_limits
        .before_auth(ex.client_ip, known_key.is_some())?;
    ex.access_key = known_key;
    let verified = authenticate(
        parts,
        state.cache.as_ref(),
        &state.keys,
        &state.auth,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| auth_refusal(state, ex.client_ip, ip_charge, e))?;
    ex.access_key = Some(verified.credential.access_key_id.clone());
    ex.source = AuditSource::of(&verified.credential.source);
    Ok(verified)
}

/// A failed authentication: counted by reason, and answered `SlowDown` instead when
/// the source address is over its limit for failures.
pub(super) fn auth_refusal(
    state: &ProxyState,
    ip: IpAddr,
    charge: crate::ratelimit::IpCharge,
    e: crate::auth::parse::AuthError,
) -> S3Error {
    state
        .metrics
        .auth_failures
        .with_label_values(&[e.reason()])
        .inc();
    match state.rate_limits.after_auth_failure(ip, charge) {
        Some(throttled) => S3Error::from(throttled),
        None => S3Error::from(e),
    }
}

fn check_request_shape(state: &ProxyState, parts: &Parts) -> Result<(), S3Error> {
    let url_len = parts.uri.path().len() + parts.uri.query().map_or(0, str::len);
    if url_len > state.limits.max_url_bytes {
        return Err(S3Error::UriTooLong);
    }
    if let (Some(auth), Some(host)) = (parts.uri.authority(), parts.headers.get(http::header::HOST))
        && !auth
            .as_str()
            .eq_ignore_ascii_case(host.to_str().unwrap_or_default())
    {
        return Err(S3Error::InvalidRequest(
            "The request target and the Host header disagree.".into(),
        ));
    }
    Ok(())
}

/// Build the upstream request: path-style URL from config, sanitised headers, the
/// verified (decoded) body with an exact Content-Length, and the admin signature.
fn build_outbound(
    state: &ProxyState,
    parts: &Parts,
    body: ClientBody,
    route: &Route,
    verified: &VerifiedRequest,
    backend: &UpstreamBackend,
    copy_source: Option<&CopySource>,
) -> Result<(Request<OutBody>, Option<BodyHandle>), S3Error> {
    let path = encode_path(route.bucket.as_deref(), route.key.as_deref());
    let query = parts
        .uri
        .query()
        .map(strip_presign_query)
        .unwrap_or_default();
    let uri = backend
        .uri(&path, &query)
        .map_err(|_| S3Error::InternalError)?;

    let content_length = outbound_length(parts, &verified.payload)?;
    let mut headers = outbound_headers(&parts.headers);
    // The upstream copies exactly the source that was authorised, canonically encoded.
    if let Some(src) = copy_source {
        let value = http::HeaderValue::from_str(&src.to_header_value())
            .map_err(|_| S3Error::InvalidArgument("x-amz-copy-source is invalid.".into()))?;
        headers.insert("x-amz-copy-source", value);
    }
    let (out_body, handle): (OutBody, _) = match content_length {
        None => (empty_out(), None),
        // An empty body has no last byte to hold back: verify it whole first.
        Some(0) if verified.payload != PayloadMode::Unsigned => {
            (verified_empty(body, verified), None)
        }
        Some(0) => (empty_out(), None),
        Some(_) => {
            let limits = BodyLimits {
                max_signed_chunk: state.limits.max_signed_chunk_bytes,
                ..BodyLimits::default()
            };
            let verified_body = verify_body(
                body,
                &verified.payload,
                verified.chunk_context.as_ref(),
                &limits,
            );
            let handle = verified_body.handle();
            let boxed = verified_body
                .map_err(|e| Box::new(e) as crate::upstream::client::BoxError)
                .boxed_unsync();
            (boxed, Some(handle))
        }
    };
    if let Some(len) = content_length {
        headers.insert(http::header::CONTENT_LENGTH, len.into());
    }
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(out_body)
        .map_err(|_| S3Error::InternalError)?;
    *req.headers_mut() = headers;
    let payload_hash = match &verified.payload {
        PayloadMode::Sha256(h) => Some(crate::auth::sigv4::hex32(h)),
        _ => None,
    };
    backend
        .sign(&mut req, payload_hash.as_deref(), SystemTime::now())
        .map_err(|_| {
            S3Error::InvalidArgument(
                "A header value cannot be forwarded to the storage service.".into(),
            )
        })?;
    Ok((req, handle))
}

/// A body that must decode to nothing: it is read and verified before anything is sent
/// (its framing and signatures are small and bounded by the decoder's limits).
fn verified_empty(body: ClientBody, verified: &VerifiedRequest) -> OutBody {
    let checked = verify_body(
        body,
        &verified.payload,
        verified.chunk_context.as_ref(),
        &BodyLimits::default(),
    );
    let fut = async move {
        let bytes = checked
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes);
        match bytes {
            Ok(b) => Ok(http_body::Frame::data(b)),
            Err(e) => Err(Box::new(e) as crate::upstream::client::BoxError),
        }
    };
    http_body_util::StreamBody::new(futures_util::stream::once(fut)).boxed_unsync()
}

pub(super) fn empty_out() -> OutBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The exact number of body bytes the upstream will receive.
fn outbound_length(parts: &Parts, payload: &PayloadMode) -> Result<Option<u64>, S3Error> {
    if let Some(n) = payload.decoded_length() {
        return Ok(Some(n));
    }
    match parts.headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| S3Error::InvalidArgument("Content-Length is not a number.".into())),
        None if parts.headers.contains_key(http::header::TRANSFER_ENCODING) => {
            Err(S3Error::MissingContentLength)
        }
        None => Ok(None),
    }
}

pub(super) async fn stream_back(
    state: &ProxyState,
    ex: &Exchange,
    backend: &UpstreamBackend,
    upstream: Response<Incoming>,
) -> Response<ResponseBody> {
    let (mut parts, body) = upstream.into_parts();
    // Every read of the upstream body below, error documents included, gives up after
    // `upstream.read_timeout` of silence.
    let body = IdleTimeoutBody::new(body, state.client.read_timeout())
        .counting(state.metrics.upstream_errors.clone());
    if parts.status.is_client_error() || parts.status.is_server_error() {
        if parts.status.is_server_error() {
            state
                .metrics
                .upstream_errors
                .with_label_values(&["status_5xx"])
                .inc();
        }
        let bytes = if ex.is_head {
            Bytes::new()
        } else {
            read_bounded(body, 64 * 1024).await.unwrap_or_default()
        };
        let view = view_upstream_error(parts.status, &bytes, backend.authority.host());
        if view.code == "InternalError" && parts.status.is_client_error() {
            tracing::error!(backend = %backend.id, request_id = %ex.request_id, "the upstream rejected the backend admin credentials; check the backend's keys and region");
        }
        return upstream_error_response(&view, &ex.resource, &ex.request_id, ex.is_head);
    }
    sanitize_inbound(&mut parts.headers);
    if ex.operation == S3Operation::CompleteMultipartUpload {
        return complete_multipart_response(ex, parts, body).await;
    }
    let body: ResponseBody = body.boxed_unsync();
    let mut resp = Response::from_parts(parts, body);
    set_request_id(&mut resp, &ex.request_id);
    resp
}

fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}
