//! The request pipeline, top to bottom, one step per comment:
//! limits → route → authenticate → authorize → (rate limit, quota: later) → re-sign →
//! forward → stream back → account. Every failure becomes an `S3Error` and is rendered
//! in exactly one place (`handle`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::listener::ResponseBody;
use super::response::{
    CountingBody, error_response, read_bounded, set_request_id, upstream_error_response,
    view_upstream_error,
};
use super::state::ProxyState;
use crate::auth::body::{BodyLimits, verify_body};
use crate::auth::{PayloadMode, VerifiedRequest, authenticate};
use crate::error::S3Error;
use crate::policy::list_buckets;
use crate::policy::operation::{S3Operation, classify};
use crate::policy::route::{Route, encode_path, route};
use crate::policy::scope::{authorize, parse_copy_source};
use crate::upstream::client::OutBody;
use crate::upstream::headers::{sanitize_inbound, sanitize_outbound, strip_presign_query};
use crate::upstream::UpstreamBackend;

/// Per-request facts the edge needs whatever happened.
struct Exchange {
    request_id: String,
    operation: S3Operation,
    resource: String,
    is_head: bool,
}

/// Serve one S3 request. Never fails: errors are rendered as S3 XML here.
pub async fn handle(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let mut ex = Exchange {
        request_id: new_request_id(),
        operation: S3Operation::Unknown,
        resource: req.uri().path().to_owned(),
        is_head: req.method() == Method::HEAD,
    };
    state.metrics.inflight.inc();
    let (resp, outcome) = match pipeline(&state, &mut ex, req).await {
        Ok(resp) => {
            let outcome = outcome_label(resp.status());
            (resp, outcome)
        }
        Err(err) => {
            if err.status().is_server_error() {
                tracing::warn!(request_id = %ex.request_id, operation = ex.operation.name(), code = err.code(), "request failed");
            } else {
                tracing::debug!(request_id = %ex.request_id, operation = ex.operation.name(), code = err.code(), "request refused");
            }
            let resp = error_response(&err, &ex.resource, &ex.request_id, ex.is_head);
            let outcome = outcome_label(resp.status());
            (resp, outcome)
        }
    };
    finish(&state, &ex, resp, outcome, started)
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
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
    let route = route(host, parts.uri.path(), &state.host_suffixes)?;
    ex.operation = classify(&parts.method, &route, parts.uri.query(), &parts.headers);

    // 3. Authenticate exactly once; everything after takes the VerifiedRequest.
    let verified = authenticate(
        &parts,
        state.cache.as_ref(),
        &state.keys,
        &state.auth,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| {
        state.metrics.auth_failures.with_label_values(&[e.reason()]).inc();
        S3Error::from(e)
    })?;

    // 4. Authorize: URL bucket, key prefix, access class; the copy source too.
    let copy_source = match parts.headers.get("x-amz-copy-source") {
        Some(v) => Some(parse_copy_source(v.to_str().map_err(|_| {
            S3Error::InvalidArgument("x-amz-copy-source is not valid text".into())
        })?)?),
        None => None,
    };
    authorize(
        &verified.credential,
        ex.operation,
        &route,
        parts.uri.query(),
        copy_source.as_ref(),
    )?;

    // 5–6. Rate limits and quota admission plug in here (own issues). Nothing below
    //      reads the body before these steps pass, so `Expect: 100-continue` is only
    //      answered once the request is admitted.

    // Service level: ListBuckets is synthesised from the credential's scopes.
    if ex.operation == S3Operation::ListBuckets {
        return synthesize_list_buckets(state, &verified, &parts).await;
    }

    // 7. Re-sign for the credential's backend (endpoint from configuration only).
    let backend = state
        .backends
        .get(&verified.credential.backend)
        .ok_or(S3Error::ServiceUnavailable)?;
    let outbound = build_outbound(state, &parts, body, &route, &verified, backend)?;

    // 8. Forward over the pooled client.
    let upstream = state.client.send(outbound).await.map_err(|e| {
        state.metrics.upstream_errors.with_label_values(&[e.kind()]).inc();
        e.s3_error()
    })?;

    // 9. Stream the response back (errors rebuilt without upstream text).
    Ok(stream_back(state, ex, backend, upstream).await)
}

fn check_request_shape(state: &ProxyState, parts: &Parts) -> Result<(), S3Error> {
    let url_len = parts.uri.path().len() + parts.uri.query().map_or(0, str::len);
    if url_len > state.limits.max_url_bytes {
        return Err(S3Error::InvalidRequest("The request URI is too long.".into()));
    }
    if let (Some(auth), Some(host)) = (parts.uri.authority(), parts.headers.get(http::header::HOST))
    {
        if !auth.as_str().eq_ignore_ascii_case(host.to_str().unwrap_or_default()) {
            return Err(S3Error::InvalidRequest(
                "The request target and the Host header disagree.".into(),
            ));
        }
    }
    Ok(())
}

/// Build the upstream request: path-style URL from config, sanitised headers, the
/// verified (decoded) body with an exact Content-Length, and the admin signature.
fn build_outbound(
    state: &ProxyState,
    parts: &Parts,
    body: Incoming,
    route: &Route,
    verified: &VerifiedRequest,
    backend: &UpstreamBackend,
) -> Result<Request<OutBody>, S3Error> {
    let path = encode_path(route.bucket.as_deref(), route.key.as_deref());
    let query = parts.uri.query().map(strip_presign_query).unwrap_or_default();
    let uri = backend.uri(&path, &query).map_err(|_| S3Error::InternalError)?;

    let content_length = outbound_length(parts, &verified.payload)?;
    let mut headers = parts.headers.clone();
    sanitize_outbound(&mut headers);
    let out_body: OutBody = match content_length {
        None | Some(0) => empty_out(),
        Some(_) => {
            let limits = BodyLimits {
                max_signed_chunk_bytes: state.limits.max_signed_chunk_bytes,
            };
            verify_body(body, &verified.payload, verified.chunk_context.as_ref(), &limits)
                .map_err(|e| Box::new(e) as crate::upstream::client::BoxError)
                .boxed_unsync()
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
        PayloadMode::Sha256(h) => Some(hex::encode(h)),
        _ => None,
    };
    backend
        .sign(&mut req, payload_hash.as_deref(), SystemTime::now())
        .map_err(|_| {
            S3Error::InvalidArgument("A header value cannot be forwarded to the storage service.".into())
        })?;
    Ok(req)
}

fn empty_out() -> OutBody {
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

async fn stream_back(
    state: &ProxyState,
    ex: &Exchange,
    backend: &UpstreamBackend,
    upstream: Response<Incoming>,
) -> Response<ResponseBody> {
    let (mut parts, body) = upstream.into_parts();
    if parts.status.is_client_error() || parts.status.is_server_error() {
        if parts.status.is_server_error() {
            state
                .metrics
                .upstream_errors
                .with_label_values(&["status_5xx"])
                .inc();
        }
        let bytes = if ex.is_head { Bytes::new() } else { read_bounded(body, 64 * 1024).await };
        let view = view_upstream_error(parts.status, &bytes, backend.authority.host());
        if view.code == "InternalError" && parts.status.is_client_error() {
            tracing::error!(backend = %backend.id, request_id = %ex.request_id, "the upstream rejected the backend admin credentials; check the backend's keys and region");
        }
        return upstream_error_response(&view, &ex.resource, &ex.request_id, ex.is_head);
    }
    sanitize_inbound(&mut parts.headers);
    let body: ResponseBody = body
        .map_err(|e| Box::new(e) as crate::server::listener::BoxError)
        .boxed_unsync();
    let mut resp = Response::from_parts(parts, body);
    set_request_id(&mut resp, &ex.request_id);
    resp
}

/// ListBuckets from the credential's scopes; the upstream list is fetched (with the
/// admin key) only when a pattern scope needs it.
async fn synthesize_list_buckets(
    state: &ProxyState,
    verified: &VerifiedRequest,
    parts: &Parts,
) -> Result<Response<ResponseBody>, S3Error> {
    let cred = &verified.credential;
    let upstream = if list_buckets::needs_upstream_list(cred) {
        let backend = state.backends.get(&cred.backend).ok_or(S3Error::ServiceUnavailable)?;
        Some(fetch_upstream_buckets(state, backend).await?)
    } else {
        None
    };
    let query = list_buckets::ListBucketsQuery::parse(parts.uri.query())?;
    let xml = list_buckets::list_buckets_xml(cred, upstream.as_deref(), &query, &cred.access_key_id)?;
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
    let bytes = read_bounded(resp.into_body(), 8 * 1024 * 1024).await;
    list_buckets::parse_upstream_list_buckets(&bytes).map_err(|_| S3Error::ServiceUnavailable)
}

fn finish(
    state: &ProxyState,
    ex: &Exchange,
    resp: Response<ResponseBody>,
    outcome: &'static str,
    started: Instant,
) -> Response<ResponseBody> {
    let op = ex.operation.name();
    state.metrics.requests.with_label_values(&[op, outcome]).inc();
    let metrics_duration = state.metrics.duration.with_label_values(&[op]);
    let inflight = state.metrics.inflight.clone();
    let counter = state.metrics.bytes_out.with_label_values(&[op]);
    let (parts, body) = resp.into_parts();
    let done = Box::new(move || {
        metrics_duration.observe(started.elapsed().as_secs_f64());
        inflight.dec();
    });
    Response::from_parts(parts, CountingBody::new(body, counter, done).boxed_unsync())
}

fn outcome_label(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        0..=399 => "ok",
        401 | 403 => "denied",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}
