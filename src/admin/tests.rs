//! The admin listener's handler, in process: authentication on every area, the login
//! flow, CSRF, protected metrics and probes, response hardening, and the API against a
//! real (temporary) SQLite store.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::audit_seam::{AuditFilter, AuditQuery};
use super::auth::{CSRF_HEADER, SESSION_COOKIE};
use super::{AdminParts, AdminState, Readiness, handle};
use crate::credentials::CredentialCache;
use crate::credentials::cache::SourceKind;
use crate::credentials::model::{Access, Credential, CredentialSource, Scope};
use crate::credentials::sqlite::SqliteStore;
use crate::metrics::Metrics;
use crate::quota::LimitCache;
use crate::quota::ledger::InMemoryLedger;
use crate::secret::{RootKey, SecretKey};
use crate::server::listener::ResponseBody;

pub(super) const TOKEN: &str = "unit-test-admin-token-0123456789";

pub(super) struct Fixture {
    pub(super) state: Arc<AdminState>,
    _dir: tempfile::TempDir,
}

pub(super) fn fixture(token: Option<&str>, protect: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), RootKey::from_bytes([9; 32])).unwrap();
    let metrics = Arc::new(Metrics::new());
    let upstreams = Arc::new(
        crate::upstream::probe::UpstreamHealth::register(["primary"], &metrics.registry).unwrap(),
    );
    let state = AdminState::new(AdminParts {
        metrics,
        cache: Arc::new(CredentialCache::new()),
        readiness: Arc::new(Readiness::default()),
        store: Arc::new(store),
        quota_limits: Arc::new(LimitCache::new()),
        ledger: Arc::new(InMemoryLedger::new()),
        bindings: Arc::new(crate::credentials::anonymous::BindingCache::new()),
        backends: vec!["primary".into()],
        token: token.map(SecretKey::new),
        protect_metrics: protect,
        protect_probes: protect,
        upstreams,
    });
    Fixture {
        state: Arc::new(state),
        _dir: dir,
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

pub(super) async fn send(
    f: &Fixture,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let r: Response<ResponseBody> = handle(Arc::clone(&f.state), req, peer()).await;
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn req(method: Method, path: &str) -> http::request::Builder {
    Request::builder().method(method).uri(path)
}

pub(super) fn bearer(method: Method, path: &str) -> http::request::Builder {
    req(method, path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

pub(super) fn empty(b: http::request::Builder) -> Request<Full<Bytes>> {
    b.body(Full::new(Bytes::new())).unwrap()
}

pub(super) fn json_body(b: http::request::Builder, v: &serde_json::Value) -> Request<Full<Bytes>> {
    b.header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

const GUARDED: [(&str, &str); 16] = [
    ("GET", "/admin/s3-proxy"),
    ("GET", "/admin"),
    ("GET", "/admin/assets/app.js"),
    ("POST", "/admin/logout"),
    ("GET", "/api/v1/credentials"),
    ("POST", "/api/v1/credentials"),
    ("GET", "/api/v1/credentials/SWX"),
    ("PATCH", "/api/v1/credentials/SWX"),
    ("DELETE", "/api/v1/credentials/SWX"),
    ("GET", "/api/v1/quotas"),
    ("PUT", "/api/v1/quotas/primary/photos"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/cors"),
    ("PUT", "/api/v1/cors/primary/photos"),
    ("GET", "/api/v1/anonymous"),
    ("DELETE", "/api/v1/anonymous/primary/photos"),
];

#[tokio::test]
async fn every_admin_and_api_route_answers_401_without_the_token_and_shows_no_data() {
    let f = fixture(Some(TOKEN), false);
    for (m, p) in GUARDED {
        let m: Method = m.parse().unwrap();
        let (status, headers, body) = send(&f, empty(req(m.clone(), p))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {p}");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE), "{m} {p}");
        assert!(!body.contains("SW"), "{m} {p}: {body}");
        let wrong = req(m.clone(), p).header(header::AUTHORIZATION, "Bearer nope");
        assert_eq!(
            send(&f, empty(wrong)).await.0,
            StatusCode::UNAUTHORIZED,
            "{m} {p}"
        );
    }
}

#[tokio::test]
async fn without_a_configured_token_the_admin_surface_fails_closed() {
    let f = fixture(None, false);
    for (m, p) in GUARDED {
        let m: Method = m.parse().unwrap();
        let (status, _, _) = send(&f, empty(req(m.clone(), p))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{m} {p}");
    }
    assert_eq!(
        send(&f, empty(req(Method::GET, "/healthz"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_page_without_auth_is_a_login_form() {
    let f = fixture(Some(TOKEN), false);
    let (status, headers, body) = send(&f, empty(req(Method::GET, "/admin/s3-proxy"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("action=\"/admin/login\""), "{body}");
    assert!(!body.contains("stowage-csrf"));
    assert_eq!(headers["x-frame-options"], "DENY");
}

async fn login(f: &Fixture, token: &str) -> (StatusCode, http::HeaderMap) {
    let form = format!("token={token}");
    let r = req(Method::POST, "/admin/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let (s, h, _) = send(f, r).await;
    (s, h)
}

/// Log in; returns (Cookie header value, CSRF value from the page).
async fn session(f: &Fixture) -> (String, String) {
    let (status, headers) = login(f, TOKEN).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/admin/s3-proxy");
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains(TOKEN), "the cookie never carries the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = req(Method::GET, "/admin/s3-proxy").header(header::COOKIE, &cookie);
    let (status, _, body) = send(f, empty(page)).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = body
        .split("name=\"stowage-csrf\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert!(!csrf.is_empty());
    (cookie, csrf)
}

#[tokio::test]
async fn a_wrong_login_token_gets_401_and_no_cookie() {
    let f = fixture(Some(TOKEN), false);
    let (status, headers) = login(&f, "guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn a_cookie_without_the_csrf_header_cannot_change_anything() {
    let f = fixture(Some(TOKEN), false);
    let (cookie, csrf) = session(&f).await;
    let body = serde_json::json!({"backend": "primary", "scopes": [{"bucket": "photos", "access": "read-only"}]});
    let no_csrf = req(Method::POST, "/api/v1/credentials").header(header::COOKIE, &cookie);
    let (status, _, text) = send(&f, json_body(no_csrf, &body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"csrf\""), "{text}");
    assert!(
        f.state.store.list_credentials().unwrap().is_empty(),
        "nothing was created"
    );
    let list = req(Method::GET, "/api/v1/credentials").header(header::COOKIE, &cookie);
    assert_eq!(
        send(&f, empty(list)).await.0,
        StatusCode::OK,
        "reads need no CSRF header"
    );
    let with = req(Method::POST, "/api/v1/credentials")
        .header(header::COOKIE, &cookie)
        .header(CSRF_HEADER, &csrf);
    assert_eq!(
        send(&f, json_body(with, &body)).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let f = fixture(Some(TOKEN), false);
    let (cookie, csrf) = session(&f).await;
    let out = req(Method::POST, "/admin/logout")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("csrf={csrf}"))))
        .unwrap();
    let (status, headers, _) = send(&f, out).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let page = req(Method::GET, "/admin/s3-proxy").header(header::COOKIE, &cookie);
    assert_eq!(send(&f, empty(page)).await.0, StatusCode::UNAUTHORIZED);
    assert!(cookie.starts_with(SESSION_COOKIE));
}

#[tokio::test]
async fn admin_responses_carry_a_strict_csp_and_no_store() {
    let f = fixture(Some(TOKEN), false);
    for p in [
        "/admin/s3-proxy",
        "/api/v1/credentials",
        "/admin/assets/app.js",
    ] {
        let (status, h, _) = send(&f, empty(bearer(Method::GET, p))).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{p}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn metrics_and_probes_are_open_unless_protected() {
    let open = fixture(Some(TOKEN), false);
    for p in ["/metrics", "/healthz"] {
        assert_eq!(
            send(&open, empty(req(Method::GET, p))).await.0,
            StatusCode::OK,
            "{p}"
        );
    }
    let closed = fixture(Some(TOKEN), true);
    for p in ["/metrics", "/healthz", "/readyz"] {
        let (status, _, body) = send(&closed, empty(req(Method::GET, p))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
        assert!(!body.contains("stowage_"), "no data: {body}");
    }
    let (status, _, body) = send(&closed, empty(bearer(Method::GET, "/metrics"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("stowage_"), "{body}");
    let (status, _, _) = send(&closed, empty(bearer(Method::GET, "/readyz"))).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "authenticated, not ready yet"
    );
}

#[tokio::test]
async fn a_kubernetes_credential_cannot_be_changed_and_the_message_names_its_claim() {
    let f = fixture(Some(TOKEN), false);
    f.state.cache.upsert(
        SourceKind::Kubernetes,
        Credential {
            access_key_id: "AKIAKUBE".into(),
            secret: SecretKey::new("k".repeat(40)),
            backend: "primary".into(),
            scopes: vec![Scope {
                bucket: "photos".into(),
                access: Access::ReadWrite,
                prefix: None,
            }],
            expires_at: None,
            enabled: true,
            source: CredentialSource::Kubernetes {
                namespace: "team-a".into(),
                name: "photos-claim".into(),
                uid: "uid-1".into(),
            },
            description: String::new(),
        },
    );
    let patch = bearer(Method::PATCH, "/api/v1/credentials/AKIAKUBE");
    let (status, _, body) =
        send(&f, json_body(patch, &serde_json::json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("team-a/photos-claim"), "{body}");
    for (m, p) in [
        (Method::DELETE, "/api/v1/credentials/AKIAKUBE"),
        (Method::POST, "/api/v1/credentials/AKIAKUBE/rotate-secret"),
    ] {
        assert_eq!(
            send(&f, empty(bearer(m.clone(), p))).await.0,
            StatusCode::CONFLICT,
            "{m}"
        );
    }
    let (status, _, body) = send(
        &f,
        empty(bearer(Method::GET, "/api/v1/credentials/AKIAKUBE")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["source"], "kubernetes");
    assert_eq!(v["editable"], false);
    assert!(!body.contains(&"k".repeat(40)), "never a secret");
}

#[tokio::test]
async fn unknown_access_keys_and_backends_are_404_and_400() {
    let f = fixture(Some(TOKEN), false);
    let (status, _, _) = send(&f, empty(bearer(Method::GET, "/api/v1/credentials/SWNOPE"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = serde_json::json!({"backend": "nope", "scopes": [{"bucket": "photos", "access": "read-only"}]});
    let (status, _, text) = send(
        &f,
        json_body(bearer(Method::POST, "/api/v1/credentials"), &body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["field"], "backend");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("primary"),
        "{text}"
    );
}

struct FixedAudit;

impl AuditQuery for FixedAudit {
    fn query(&self, filter: &AuditFilter) -> Result<Vec<serde_json::Value>, String> {
        Ok(vec![
            serde_json::json!({"limit": filter.limit, "bucket": filter.bucket}),
        ])
    }
}

#[tokio::test]
async fn audit_is_501_until_an_implementation_is_installed() {
    let f = fixture(Some(TOKEN), false);
    let (status, _, body) = send(&f, empty(bearer(Method::GET, "/api/v1/audit"))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    f.state.install_audit(Arc::new(FixedAudit));
    let (status, _, body) = send(
        &f,
        empty(bearer(Method::GET, "/api/v1/audit?bucket=photos&limit=7")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["entries"][0]["limit"], 7);
    assert_eq!(v["entries"][0]["bucket"], "photos");
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let f = fixture(Some(TOKEN), false);
    let (status, h, _) = send(&f, empty(bearer(Method::PUT, "/api/v1/credentials"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, POST");
}

#[tokio::test]
async fn token_guessing_is_refused_unchecked_after_the_failure_budget() {
    let f = fixture(Some(TOKEN), false);
    for _ in 0..super::failures::MAX_FAILURES {
        let wrong =
            req(Method::GET, "/api/v1/credentials").header(header::AUTHORIZATION, "Bearer guess");
        assert_eq!(send(&f, empty(wrong)).await.0, StatusCode::UNAUTHORIZED);
    }
    // Even the right token is not checked from this address for a while.
    let (status, _, body) = send(&f, empty(bearer(Method::GET, "/api/v1/credentials"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(!body.contains("SW"), "no data: {body}");
}
