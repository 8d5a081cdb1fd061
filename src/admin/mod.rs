//! The admin listener: `/metrics`, `/healthz`, `/readyz`, the JSON API under `/api/v1`
//! and the `/admin/s3-proxy` page. Everything under `/admin` and `/api` needs the admin
//! token (or a session started with it); `/metrics` and the probes do when configured.
//! Every `/admin` and `/api` response carries a strict CSP, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`.

pub mod api;
pub mod audit_seam;
pub mod auth;
pub mod browser_api;
pub mod credentials_api;
pub mod credentials_write;
mod failures;
pub mod json;
pub mod page;
pub mod quotas_api;
pub mod views;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;

use self::audit_seam::AuditQuery;
use self::auth::AdminAuth;
use crate::credentials::CredentialCache;
use crate::credentials::anonymous::BindingCache;
use crate::credentials::sqlite::SqliteStore;
use crate::metrics::Metrics;
use crate::quota::ledger::UsageLedger;
use crate::quota::limits::LimitSource;
use crate::quota::{BucketKey, LimitCache, Limits};
use crate::secret::SecretKey;
use crate::server::listener::{BoxError, ResponseBody};
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

/// What the admin state is built from.
pub struct AdminParts {
    pub metrics: Arc<Metrics>,
    pub cache: Arc<CredentialCache>,
    pub readiness: Arc<Readiness>,
    pub store: Arc<SqliteStore>,
    pub quota_limits: Arc<LimitCache>,
    pub ledger: Arc<dyn UsageLedger>,
    /// The running proxy's merged anonymous bindings (SQLite and Kubernetes).
    pub bindings: Arc<BindingCache>,
    /// The configured `[[backends]] id`s.
    pub backends: Vec<String>,
    pub token: Option<SecretKey>,
    pub protect_metrics: bool,
    pub protect_probes: bool,
    pub upstreams: Arc<crate::upstream::probe::UpstreamHealth>,
}

/// What the admin handlers read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub cache: Arc<CredentialCache>,
    pub readiness: Arc<Readiness>,
    pub store: Arc<SqliteStore>,
    pub quota_limits: Arc<LimitCache>,
    pub ledger: Arc<dyn UsageLedger>,
    pub bindings: Arc<BindingCache>,
    pub backends: Vec<String>,
    pub auth: AdminAuth,
    pub protect_metrics: bool,
    pub protect_probes: bool,
    /// The audit log's query side, once the audit module installs one.
    audit: RwLock<Option<Arc<dyn AuditQuery>>>,
    /// Backend reachability, shown in the `/readyz` body (it does not decide readiness).
    pub upstreams: Arc<crate::upstream::probe::UpstreamHealth>,
}

impl AdminState {
    /// The state; logs at start when the admin surface is closed (no token).
    #[must_use]
    pub fn new(p: AdminParts) -> Self {
        match &p.token {
            None => tracing::warn!(
                "no admin token configured (admin.token_env / admin.token_file): /admin and \
                 /api refuse every request"
            ),
            Some(t) if t.len() < 16 => {
                tracing::warn!(
                    "the admin token is shorter than 16 characters; use a long random one"
                );
            }
            Some(_) => {}
        }
        Self {
            auth: AdminAuth::new(p.token.as_ref()),
            metrics: p.metrics,
            cache: p.cache,
            readiness: p.readiness,
            store: p.store,
            quota_limits: p.quota_limits,
            ledger: p.ledger,
            bindings: p.bindings,
            backends: p.backends,
            protect_metrics: p.protect_metrics,
            protect_probes: p.protect_probes,
            audit: RwLock::new(None),
            upstreams: p.upstreams,
        }
    }

    /// Serve `GET /api/v1/audit` from `query` from now on.
    pub fn install_audit(&self, query: Arc<dyn AuditQuery>) {
        *self.audit.write().unwrap_or_else(PoisonError::into_inner) = Some(query);
    }

    /// The installed audit query, if any.
    #[must_use]
    pub fn audit(&self) -> Option<Arc<dyn AuditQuery>> {
        self.audit
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Quota and usage lookups for building credential rows.
    #[must_use]
    pub fn quota_sources<'a>(
        &'a self,
        configured: &'a [(BucketKey, Limits, LimitSource)],
    ) -> views::QuotaSources<'a> {
        views::QuotaSources {
            limits: &self.quota_limits,
            ledger: self.ledger.as_ref(),
            configured,
        }
    }
}

/// `path` is `prefix` or below it (`/admin`, `/admin/…`, not `/administrator`).
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The headers every `/admin` and `/api` response carries.
fn harden(headers: &mut HeaderMap) {
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Serve one admin request.
pub async fn handle<B>(
    state: Arc<AdminState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let path = req.uri().path();
    let mut r = if is_under(path, "/api") {
        api::handle(&state, req, peer).await
    } else if is_under(path, "/admin") {
        page::handle(&state, req, peer).await
    } else {
        return plain(&state, req.method(), req.headers(), path, peer);
    };
    harden(r.headers_mut());
    r
}

/// `/metrics`, `/healthz`, `/readyz`: open unless configured behind the token.
fn plain(
    state: &AdminState,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let protected = match path {
        "/metrics" => state.protect_metrics,
        "/healthz" | "/readyz" => state.protect_probes,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if protected && let Err(e) = state.auth.authenticate_from(peer.ip(), headers) {
        tracing::debug!(%peer, path, reason = %e, "admin request refused");
        let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stowage-admin\""),
        );
        return r;
    }
    match path {
        "/metrics" => {
            let mut r = text(StatusCode::OK, &state.metrics.render(&state.cache));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/readyz" => readyz(state),
        _ => text(StatusCode::OK, "ok\n"),
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
#[path = "tests.rs"]
mod handler_tests;

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
