//! `/api/v1`: authentication (bearer or session + CSRF), the route table, and the
//! dispatch to the credential, quota, CORS, anonymous-binding and audit handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use time::OffsetDateTime;

use super::auth::AuthError;
use super::json::{ApiError, json};
use super::{AdminState, audit_seam, browser_api, credentials_api, credentials_write, quotas_api};
use crate::server::listener::{BoxError, ResponseBody};

/// Every API route; path segments are owned so the table is testable on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ListCredentials,
    CreateCredential,
    GetCredential(String),
    PatchCredential(String),
    DeleteCredential(String),
    RotateSecret(String),
    ListQuotas,
    GetQuota(String, String),
    PutQuota(String, String),
    DeleteQuota(String, String),
    ListCors,
    GetCors(String, String),
    PutCors(String, String),
    DeleteCors(String, String),
    ListAnonymous,
    GetAnonymous(String, String),
    PutAnonymous(String, String),
    DeleteAnonymous(String, String),
    ListBackends,
    Audit,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    NotFound,
    /// The path exists; these methods are allowed on it.
    Method(&'static str),
}

/// The route for a method and path.
///
/// # Errors
/// [`NoRoute`]: unknown path, or a known path with the wrong method.
pub fn route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let rest = path.strip_prefix("/api/v1/").ok_or(NoRoute::NotFound)?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(NoRoute::NotFound);
    }
    let m = method.clone();
    let own = |s: &str| s.to_owned();
    match segs.as_slice() {
        ["credentials"] => match m {
            Method::GET => Ok(Route::ListCredentials),
            Method::POST => Ok(Route::CreateCredential),
            _ => Err(NoRoute::Method("GET, POST")),
        },
        ["credentials", ak] => match m {
            Method::GET => Ok(Route::GetCredential(own(ak))),
            Method::PATCH => Ok(Route::PatchCredential(own(ak))),
            Method::DELETE => Ok(Route::DeleteCredential(own(ak))),
            _ => Err(NoRoute::Method("GET, PATCH, DELETE")),
        },
        ["credentials", ak, "rotate-secret"] => match m {
            Method::POST => Ok(Route::RotateSecret(own(ak))),
            _ => Err(NoRoute::Method("POST")),
        },
        ["quotas"] => match m {
            Method::GET => Ok(Route::ListQuotas),
            _ => Err(NoRoute::Method("GET")),
        },
        ["quotas", backend, bucket] => {
            let (b, k) = (own(backend), own(bucket));
            match m {
                Method::GET => Ok(Route::GetQuota(b, k)),
                Method::PUT => Ok(Route::PutQuota(b, k)),
                Method::DELETE => Ok(Route::DeleteQuota(b, k)),
                _ => Err(NoRoute::Method("GET, PUT, DELETE")),
            }
        }
        ["cors"] => match m {
            Method::GET => Ok(Route::ListCors),
            _ => Err(NoRoute::Method("GET")),
        },
        ["cors", backend, bucket] => {
            let (b, k) = (own(backend), own(bucket));
            match m {
                Method::GET => Ok(Route::GetCors(b, k)),
                Method::PUT => Ok(Route::PutCors(b, k)),
                Method::DELETE => Ok(Route::DeleteCors(b, k)),
                _ => Err(NoRoute::Method("GET, PUT, DELETE")),
            }
        }
        ["anonymous"] => match m {
            Method::GET => Ok(Route::ListAnonymous),
            _ => Err(NoRoute::Method("GET")),
        },
        ["anonymous", backend, bucket] => {
            let (b, k) = (own(backend), own(bucket));
            match m {
                Method::GET => Ok(Route::GetAnonymous(b, k)),
                Method::PUT => Ok(Route::PutAnonymous(b, k)),
                Method::DELETE => Ok(Route::DeleteAnonymous(b, k)),
                _ => Err(NoRoute::Method("GET, PUT, DELETE")),
            }
        }
        ["backends"] => match m {
            Method::GET => Ok(Route::ListBackends),
            _ => Err(NoRoute::Method("GET")),
        },
        ["audit"] => match m {
            Method::GET => Ok(Route::Audit),
            _ => Err(NoRoute::Method("GET")),
        },
        _ => Err(NoRoute::NotFound),
    }
}

/// The API's answer to a refused authentication.
#[must_use]
pub fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Disabled => ApiError::forbidden(
            "admin_disabled",
            "the admin API is disabled: no admin token is configured \
             (set admin.token_env or admin.token_file)",
        ),
        AuthError::Missing | AuthError::Invalid => ApiError::unauthorized(e.to_string()),
        AuthError::Csrf => ApiError::forbidden("csrf", e.to_string()),
        AuthError::Throttled => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            e.to_string(),
        ),
    }
}

/// Serve one `/api…` request.
pub async fn handle<B>(
    state: &Arc<AdminState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if let Err(e) = state
        .auth
        .authorize_from(peer.ip(), req.method(), req.headers())
    {
        tracing::info!(%peer, path = req.uri().path(), reason = %e, "admin API request refused");
        return auth_error(e).into_response();
    }
    let route = match route(req.method(), req.uri().path()) {
        Ok(r) => r,
        Err(NoRoute::NotFound) => return ApiError::not_found("no such API route").into_response(),
        Err(NoRoute::Method(allow)) => {
            let mut r = ApiError::method_not_allowed().into_response();
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return r;
        }
    };
    match dispatch(state, route, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch<B>(
    state: &Arc<AdminState>,
    route: Route,
    req: Request<B>,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    match route {
        Route::ListCredentials => credentials_api::list(state, query.as_deref()).await,
        Route::GetCredential(ak) => credentials_api::get(state, ak).await,
        Route::CreateCredential => credentials_write::create(state, headers, body).await,
        Route::PatchCredential(ak) => credentials_write::patch(state, ak, headers, body).await,
        Route::RotateSecret(ak) => credentials_write::rotate(state, ak).await,
        Route::DeleteCredential(ak) => credentials_write::delete(state, ak).await,
        Route::ListQuotas => quotas_api::list(state, query.as_deref()),
        Route::GetQuota(b, k) => quotas_api::get(state, &b, &k),
        Route::PutQuota(b, k) => quotas_api::put(state, b, k, headers, body).await,
        Route::DeleteQuota(b, k) => quotas_api::delete(state, b, k).await,
        Route::ListCors => browser_api::list_cors(state, query.as_deref()).await,
        Route::GetCors(b, k) => browser_api::get_cors(state, &b, &k).await,
        Route::PutCors(b, k) => browser_api::put_cors(state, &b, &k, headers, body).await,
        Route::DeleteCors(b, k) => browser_api::delete_cors(state, &b, &k).await,
        Route::ListAnonymous => browser_api::list_anonymous(state, query.as_deref()).await,
        Route::GetAnonymous(b, k) => browser_api::get_anonymous(state, &b, &k).await,
        Route::PutAnonymous(b, k) => browser_api::put_anonymous(state, &b, &k, headers, body).await,
        Route::DeleteAnonymous(b, k) => browser_api::delete_anonymous(state, &b, &k).await,
        Route::ListBackends => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "backends": state.backends }),
        )),
        Route::Audit => audit(state, query.as_deref()).await,
    }
}

async fn audit(
    state: &Arc<AdminState>,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let filter = audit_seam::parse_filter(query, OffsetDateTime::now_utc())?;
    let Some(q) = state.audit() else {
        return Err(audit_seam::not_installed());
    };
    let rows = blocking(move || q.query(&filter).map_err(|e| ApiError::internal(&e))).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": rows }),
    ))
}

/// Run store work off the async threads.
///
/// # Errors
/// What `f` returns, or 500 if it panicked.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(m: Method, p: &str) -> Route {
        route(&m, p).unwrap_or_else(|e| panic!("{m} {p}: {e:?}"))
    }

    #[test]
    fn every_documented_route_resolves() {
        let ak = || "SWAAAA".to_owned();
        let q = || ("primary".to_owned(), "photos".to_owned());
        assert_eq!(
            ok(Method::GET, "/api/v1/credentials"),
            Route::ListCredentials
        );
        assert_eq!(
            ok(Method::POST, "/api/v1/credentials"),
            Route::CreateCredential
        );
        assert_eq!(
            ok(Method::GET, "/api/v1/credentials/SWAAAA"),
            Route::GetCredential(ak())
        );
        assert_eq!(
            ok(Method::PATCH, "/api/v1/credentials/SWAAAA"),
            Route::PatchCredential(ak())
        );
        assert_eq!(
            ok(Method::DELETE, "/api/v1/credentials/SWAAAA"),
            Route::DeleteCredential(ak())
        );
        assert_eq!(
            ok(Method::POST, "/api/v1/credentials/SWAAAA/rotate-secret"),
            Route::RotateSecret(ak())
        );
        assert_eq!(ok(Method::GET, "/api/v1/quotas"), Route::ListQuotas);
        let (b, k) = q();
        assert_eq!(
            ok(Method::GET, "/api/v1/quotas/primary/photos"),
            Route::GetQuota(b, k)
        );
        let (b, k) = q();
        assert_eq!(
            ok(Method::PUT, "/api/v1/quotas/primary/photos"),
            Route::PutQuota(b, k)
        );
        let (b, k) = q();
        assert_eq!(
            ok(Method::DELETE, "/api/v1/quotas/primary/photos"),
            Route::DeleteQuota(b, k)
        );
        assert_eq!(ok(Method::GET, "/api/v1/cors"), Route::ListCors);
        assert_eq!(ok(Method::GET, "/api/v1/anonymous"), Route::ListAnonymous);
        let p = |k: &str| format!("/api/v1/{k}/primary/photos");
        type Make = fn(String, String) -> Route;
        let table: [(Method, &str, Make); 6] = [
            (Method::GET, "cors", Route::GetCors),
            (Method::PUT, "cors", Route::PutCors),
            (Method::DELETE, "cors", Route::DeleteCors),
            (Method::GET, "anonymous", Route::GetAnonymous),
            (Method::PUT, "anonymous", Route::PutAnonymous),
            (Method::DELETE, "anonymous", Route::DeleteAnonymous),
        ];
        for (m, kind, make) in table {
            let (b, k) = q();
            assert_eq!(ok(m, &p(kind)), make(b, k), "{kind}");
        }
        assert_eq!(ok(Method::GET, "/api/v1/backends"), Route::ListBackends);
        assert_eq!(ok(Method::GET, "/api/v1/audit"), Route::Audit);
    }

    #[test]
    fn a_known_path_with_the_wrong_method_names_the_allowed_ones() {
        assert_eq!(
            route(&Method::PUT, "/api/v1/credentials"),
            Err(NoRoute::Method("GET, POST"))
        );
        assert_eq!(
            route(&Method::GET, "/api/v1/credentials/SW/rotate-secret"),
            Err(NoRoute::Method("POST"))
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/audit"),
            Err(NoRoute::Method("GET"))
        );
        assert_eq!(
            route(&Method::PUT, "/api/v1/cors"),
            Err(NoRoute::Method("GET"))
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/anonymous/primary/photos"),
            Err(NoRoute::Method("GET, PUT, DELETE"))
        );
    }

    #[test]
    fn unknown_and_malformed_paths_are_not_found() {
        for p in [
            "/api",
            "/api/v1",
            "/api/v1/",
            "/api/v2/credentials",
            "/api/v1/credentials/",
            "/api/v1/credentials//rotate-secret",
            "/api/v1/quotas/primary",
            "/api/v1/quotas/primary/photos/extra",
            "/api/v1/secrets",
            "/api/v1/cors/primary",
            "/api/v1/anonymous/primary/photos/extra",
        ] {
            assert_eq!(route(&Method::GET, p), Err(NoRoute::NotFound), "{p}");
        }
    }

    #[test]
    fn refused_authentication_maps_to_401_or_403_without_echoing_input() {
        assert_eq!(
            auth_error(AuthError::Missing).status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            auth_error(AuthError::Invalid).status,
            StatusCode::UNAUTHORIZED
        );
        let csrf = auth_error(AuthError::Csrf);
        assert_eq!((csrf.status, csrf.code), (StatusCode::FORBIDDEN, "csrf"));
        let off = auth_error(AuthError::Disabled);
        assert_eq!(
            (off.status, off.code),
            (StatusCode::FORBIDDEN, "admin_disabled")
        );
        assert!(off.message.contains("admin.token_env"));
    }
}
