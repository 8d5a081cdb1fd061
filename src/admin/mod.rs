//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Later issues add the JSON API
//! and the `/admin/s3-proxy` page here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::credentials::CredentialCache;
use crate::metrics::Metrics;
use crate::server::listener::ResponseBody;
use crate::server::response::full;

/// Readiness: a latch released once every source has loaded; turned off again at
/// shutdown so load balancers stop sending traffic before connections drain.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    /// Set at shutdown: a late gate (the Kubernetes informer's first list) must not
    /// turn a draining proxy ready again.
    closed: AtomicBool,
}

impl Readiness {
    /// Turn ready or not; turning ready has no effect once [`Self::close`] was called.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        // Checked after the store: whichever of `close` and this runs last, a closed
        // latch ends unready.
        if ready && self.closed.load(Ordering::SeqCst) {
            self.ready.store(false, Ordering::SeqCst);
        }
    }

    /// Turn unready for good (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.store(false, Ordering::SeqCst);
    }

    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// What the admin handlers read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub cache: Arc<CredentialCache>,
    pub readiness: Arc<Readiness>,
    /// Backend reachability, shown in the `/readyz` body (it does not decide readiness).
    pub upstreams: Arc<crate::upstream::probe::UpstreamHealth>,
}

/// Serve one admin request.
pub async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = text(StatusCode::OK, &state.metrics.render(&state.cache));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(&state),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `ready` or `not ready` (the status decides), then one line per backend.
fn readyz(state: &AdminState) -> Response<ResponseBody> {
    let (status, verdict) = if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    text(
        status,
        &format!("{verdict}\n{}", state.upstreams.describe()),
    )
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut r = Response::new(full(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod readiness_tests {
    use super::Readiness;

    #[test]
    fn a_closed_latch_never_turns_ready_again() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        r.set_ready(true);
        assert!(r.is_ready());
        r.close();
        assert!(!r.is_ready());
        // A gate released late (the informer's first list) must not undo shutdown.
        r.set_ready(true);
        assert!(!r.is_ready());
    }
}
