//! `/admin`: the `/admin/s3-proxy` page and its assets (embedded in the binary), the
//! login form, login and logout. Without a valid session or token every `/admin` route
//! answers 401 (GETs with the login form, which carries no data).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;

use super::AdminState;
use super::auth::{AuthError, Principal, session_clear_cookie, session_set_cookie};
use super::json::read_bounded;
use crate::server::listener::{BoxError, ResponseBody};
use crate::server::response::full;

/// The page's address.
pub const PAGE_PATH: &str = "/admin/s3-proxy";
/// A login form body is one short field; anything larger is refused unread.
const MAX_FORM_BODY: usize = 4 * 1024;

const PAGE_HTML: &str = include_str!("assets/s3-proxy.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const LOGIN_HTML: &str = include_str!("assets/login.html");

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(status: StatusCode, body: String) -> Response<ResponseBody> {
    respond(status, "text/html; charset=utf-8", body)
}

fn see_other(location: &'static str) -> Response<ResponseBody> {
    let mut r = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    r
}

/// The login form, optionally with a message (fixed strings only, never input).
#[must_use]
pub fn login_form(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut r = html(status, LOGIN_HTML.replace("{{message}}", message));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stowage-admin\""),
        );
    }
    r
}

fn disabled() -> Response<ResponseBody> {
    html(
        StatusCode::FORBIDDEN,
        "<!doctype html><title>Stowage admin</title><p>The admin page is disabled: no admin \
         token is configured (admin.token_env or admin.token_file).</p>"
            .to_owned(),
    )
}

/// Serve one `/admin…` request.
pub async fn handle<B>(
    state: &Arc<AdminState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if !state.auth.enabled() {
        return disabled();
    }
    if req.uri().path() == "/admin/login" && req.method() == Method::POST {
        return login(state, req, peer).await;
    }
    let principal = match state.auth.authenticate_from(peer.ip(), req.headers()) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(%peer, path = req.uri().path(), reason = %e, "admin page request refused");
            return login_form(StatusCode::UNAUTHORIZED, "");
        }
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET | Method::HEAD, PAGE_PATH) => page(&principal),
        (Method::GET | Method::HEAD, "/admin" | "/admin/" | "/admin/login") => see_other(PAGE_PATH),
        (Method::GET | Method::HEAD, "/admin/assets/app.js") => respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            APP_JS.to_owned(),
        ),
        (Method::GET | Method::HEAD, "/admin/assets/app.css") => respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            APP_CSS.to_owned(),
        ),
        (Method::POST, "/admin/logout") => logout(state, &principal, req).await,
        (_, PAGE_PATH | "/admin/assets/app.js" | "/admin/assets/app.css" | "/admin/logout") => {
            respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n".to_owned(),
            )
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
    }
}

/// The page, with the session's CSRF value for its scripts (empty under bearer auth:
/// a page opened with a token header can read but its buttons cannot write).
fn page(principal: &Principal) -> Response<ResponseBody> {
    let csrf = match principal {
        Principal::Session { csrf } => csrf.as_str(),
        Principal::Bearer => "",
    };
    // The CSRF value is URL-safe base64: nothing in it needs HTML escaping.
    html(StatusCode::OK, PAGE_HTML.replace("{{csrf}}", csrf))
}

/// The `token` field of a form body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Behind a TLS-terminating proxy the cookie gets `Secure`.
fn came_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

async fn login<B>(state: &AdminState, req: Request<B>, peer: SocketAddr) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let Ok(bytes) = read_bounded(&parts.headers, body, MAX_FORM_BODY).await else {
        return login_form(StatusCode::UNAUTHORIZED, "The form could not be read.");
    };
    let token = zeroize::Zeroizing::new(form_field(&bytes, "token").unwrap_or_default());
    match state.auth.login_attempt(peer.ip(), token.trim()) {
        Ok(()) => {}
        Err(AuthError::Throttled) => {
            tracing::warn!(%peer, "admin login refused: too many failed attempts");
            return login_form(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts from this address; wait a minute.",
            );
        }
        Err(_) => {
            tracing::info!(%peer, "admin login failed");
            return login_form(StatusCode::UNAUTHORIZED, "That token is not valid.");
        }
    }
    let (id, _) = state.auth.login();
    tracing::info!(%peer, "admin login");
    let mut r = see_other(PAGE_PATH);
    if let Ok(v) = HeaderValue::from_str(&session_set_cookie(&id, came_over_https(&parts.headers)))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Logout is a form POST, so its CSRF value travels as the `csrf` form field.
async fn logout<B>(
    state: &AdminState,
    principal: &Principal,
    req: Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    if let Principal::Session { csrf } = principal {
        let bytes = read_bounded(&parts.headers, body, MAX_FORM_BODY)
            .await
            .unwrap_or_default();
        let sent = form_field(&bytes, "csrf").unwrap_or_default();
        if !super::auth::csrf_matches(csrf, &sent) {
            return respond(
                StatusCode::FORBIDDEN,
                "text/plain; charset=utf-8",
                format!("{}\n", AuthError::Csrf),
            );
        }
    }
    state.auth.logout(&parts.headers);
    let mut r = see_other(PAGE_PATH);
    if let Ok(v) = HeaderValue::from_str(&session_clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_percent_decoded_and_found_by_exact_name() {
        assert_eq!(
            form_field(b"token=a%2Bb+c", "token").as_deref(),
            Some("a+b c")
        );
        assert_eq!(
            form_field(b"xtoken=1&token=2", "token").as_deref(),
            Some("2")
        );
        assert_eq!(form_field(b"other=1", "token"), None);
        assert_eq!(form_field(&[0xff, 0xfe], "token"), None);
    }

    #[test]
    fn the_login_form_posts_to_login_and_shows_no_data() {
        let page = LOGIN_HTML.replace("{{message}}", "");
        assert!(page.contains("action=\"/admin/login\""), "{page}");
        assert!(page.contains("name=\"token\""));
        assert!(!page.contains("<script"), "the login form has no script");
    }

    #[test]
    fn the_page_carries_the_session_csrf_value_and_loads_only_local_assets() {
        let r = page(&Principal::Session {
            csrf: "CSRFVALUE".into(),
        });
        assert_eq!(r.status(), StatusCode::OK);
        assert!(PAGE_HTML.contains("{{csrf}}"));
        assert!(PAGE_HTML.contains("src=\"/admin/assets/app.js\""));
        assert!(!PAGE_HTML.contains("http://") && !PAGE_HTML.contains("https://"));
        assert!(
            !APP_JS.contains("innerHTML"),
            "rows are built with textContent only"
        );
    }

    #[test]
    fn the_secure_flag_follows_a_tls_terminating_proxy() {
        let mut h = HeaderMap::new();
        assert!(!came_over_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(came_over_https(&h));
        assert!(session_set_cookie("id", true).ends_with("; Secure"));
        let plain = session_set_cookie("id", false);
        assert!(
            plain.contains("HttpOnly")
                && plain.contains("SameSite=Strict")
                && plain.contains("Path=/")
        );
    }
}
