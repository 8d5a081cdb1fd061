//! Changing SQLite credentials through the API: create (the secret is in that response
//! only), patch, rotate-secret, delete. A Kubernetes-managed access key is refused with
//! 409 naming the claim. Each write is applied to the running proxy's cache at once
//! (the change-feed poller would also pick it up within a poll interval).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Body;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AdminState;
use super::api::blocking;
use super::credentials_api::{not_found, view_of};
use super::json::{ApiError, json, read_json};
use super::views::CredentialView;
use crate::credentials::cache::SourceKind;
use crate::credentials::model::{Access, CredentialSource, Scope};
use crate::credentials::sqlite::{NewCredential, StoreError, validate_scopes};
use crate::credentials::sqlite_patch::CredentialPatch;
use crate::server::listener::{BoxError, ResponseBody};
use crate::server::response::full;

/// One scope as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    pub bucket: String,
    pub access: Access,
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `POST /api/v1/credentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub backend: String,
    pub scopes: Vec<ScopeBody>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `PATCH /api/v1/credentials/{ak}`: absent fields are kept; `expires_at: null` removes
/// the expiry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    pub scopes: Option<Vec<ScopeBody>>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<String>>,
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Scopes, validated one by one so the error names the scope and its field.
///
/// # Errors
/// 400 naming `scopes`, `scopes[i].bucket` or `scopes[i].prefix`.
pub fn scopes_of(body: Vec<ScopeBody>) -> Result<Vec<Scope>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid("scopes", "give at least one scope"));
    }
    let scopes: Vec<Scope> = body
        .into_iter()
        .map(|s| Scope {
            bucket: s.bucket,
            access: s.access,
            prefix: s.prefix,
        })
        .collect();
    for (i, s) in scopes.iter().enumerate() {
        if let Err(StoreError::Invalid(msg)) = validate_scopes(std::slice::from_ref(s)) {
            let part = if msg.contains("prefix") {
                "prefix"
            } else {
                "bucket"
            };
            return Err(ApiError::invalid(format!("scopes[{i}].{part}"), msg));
        }
    }
    validate_scopes(&scopes).map_err(|e| ApiError::invalid("scopes", e.to_string()))?;
    Ok(scopes)
}

/// `expires_at` (RFC 3339) or `expires_in` (`30d`, `12h`), at most one, in the future.
///
/// # Errors
/// 400 naming the field.
pub fn expiry_of(
    at: Option<&str>,
    within: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let t = match (at, within) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in",
                "give expires_at or expires_in, not both",
            ));
        }
        (Some(a), None) => OffsetDateTime::parse(a, &Rfc3339).map_err(|_| {
            ApiError::invalid(
                "expires_at",
                "must be an RFC 3339 time such as 2030-01-31T12:00:00Z",
            )
        })?,
        (None, Some(d)) => humantime::parse_duration(d)
            .ok()
            .and_then(|d| time::Duration::try_from(d).ok())
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| {
                ApiError::invalid("expires_in", "must be a duration such as 30d or 12h")
            })?,
        (None, None) => return Ok(None),
    };
    if t <= now {
        let field = if at.is_some() {
            "expires_at"
        } else {
            "expires_in"
        };
        return Err(ApiError::invalid(field, "must be in the future"));
    }
    Ok(Some(t))
}

fn check_backend(state: &AdminState, backend: &str) -> Result<(), ApiError> {
    if state.backends.iter().any(|b| b == backend) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "backend",
        format!(
            "unknown backend `{}`; configured: {}",
            backend.escape_debug(),
            state.backends.join(", ")
        ),
    ))
}

/// 409 when Kubernetes serves this access key: the claim owns it.
fn refuse_kubernetes(state: &AdminState, ak: &str) -> Result<(), ApiError> {
    let Some(c) = state.cache.get(SourceKind::Kubernetes, ak) else {
        return Ok(());
    };
    let CredentialSource::Kubernetes {
        namespace, name, ..
    } = &c.source
    else {
        return Ok(());
    };
    Err(ApiError::conflict(format!(
        "credential {ak} is managed by Kubernetes: the BucketClaim/Secret {namespace}/{name} \
         owns it; change the claim instead"
    )))
}

/// Make the proxy's cache match the store for `ak` now.
fn sync_cache(state: &AdminState, ak: &str) {
    match state.store.get_credential(ak) {
        Ok(Some(c)) => state.cache.upsert(SourceKind::Sqlite, c),
        Ok(None) => {
            state.cache.remove(SourceKind::Sqlite, ak);
        }
        Err(e) => tracing::warn!(access_key_id = ak, error = %e,
            "cannot refresh the cache after an admin write; the poller will"),
    }
}

fn store_error(ak: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => not_found(ak),
        StoreError::Invalid(msg) => {
            let field = if msg.contains("description") {
                "description"
            } else {
                "scopes"
            };
            ApiError::invalid(field, msg)
        }
        other => ApiError::storage(&other),
    }
}

/// A response carrying a secret: shown once, never cached.
#[derive(Serialize)]
struct WithSecret {
    access_key_id: String,
    secret_access_key: String,
    credential: CredentialView,
}

/// `POST /api/v1/credentials` → 201 with the secret.
///
/// # Errors
/// 400 naming the field.
pub async fn create<B>(
    state: &Arc<AdminState>,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let body: CreateBody = read_json(headers, body).await?;
    check_backend(state, &body.backend)?;
    let req = NewCredential {
        scopes: scopes_of(body.scopes)?,
        expires_at: expiry_of(
            body.expires_at.as_deref(),
            body.expires_in.as_deref(),
            OffsetDateTime::now_utc(),
        )?,
        backend: body.backend,
        description: body.description,
        enabled: body.enabled,
    };
    let state = Arc::clone(state);
    blocking(move || {
        let (ak, secret) = state
            .store
            .create_credential(req)
            .map_err(|e| store_error("", e))?;
        sync_cache(&state, &ak);
        let credential = view_of(&state, &ak)?;
        tracing::info!(access_key_id = %ak, "credential created through the admin API");
        let mut r = json(
            StatusCode::CREATED,
            &WithSecret {
                access_key_id: ak.clone(),
                secret_access_key: secret.expose().to_owned(),
                credential,
            },
        );
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/credentials/{ak}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    })
    .await
}

/// `PATCH /api/v1/credentials/{ak}` → 200 with the row.
///
/// # Errors
/// 409 (Kubernetes), 404, 400 naming the field.
pub async fn patch<B>(
    state: &Arc<AdminState>,
    ak: String,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    refuse_kubernetes(state, &ak)?;
    let body: PatchBody = read_json(headers, body).await?;
    let now = OffsetDateTime::now_utc();
    let expires_at = match (&body.expires_at, &body.expires_in) {
        (Some(None), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in",
                "give expires_at or expires_in, not both",
            ));
        }
        (Some(None), None) => Some(None),
        (at, within) => {
            expiry_of(at.clone().flatten().as_deref(), within.as_deref(), now)?.map(Some)
        }
    };
    let patch = CredentialPatch {
        scopes: body.scopes.map(scopes_of).transpose()?,
        expires_at,
        enabled: body.enabled,
        description: body.description,
    };
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "give at least one of scopes, expires_at, expires_in, enabled, description",
        ));
    }
    let state = Arc::clone(state);
    blocking(move || {
        state
            .store
            .patch_credential(&ak, &patch)
            .map_err(|e| store_error(&ak, e))?;
        sync_cache(&state, &ak);
        tracing::info!(access_key_id = %ak, "credential changed through the admin API");
        view_of(&state, &ak).map(|v| json(StatusCode::OK, &v))
    })
    .await
}

/// `POST /api/v1/credentials/{ak}/rotate-secret` → 200 with the new secret.
///
/// # Errors
/// 409 (Kubernetes), 404.
pub async fn rotate(
    state: &Arc<AdminState>,
    ak: String,
) -> Result<Response<ResponseBody>, ApiError> {
    refuse_kubernetes(state, &ak)?;
    let state = Arc::clone(state);
    blocking(move || {
        let secret = state
            .store
            .rotate_secret(&ak)
            .map_err(|e| store_error(&ak, e))?;
        sync_cache(&state, &ak);
        tracing::info!(access_key_id = %ak, "credential secret rotated through the admin API");
        let credential = view_of(&state, &ak)?;
        Ok(json(
            StatusCode::OK,
            &WithSecret {
                access_key_id: ak,
                secret_access_key: secret.expose().to_owned(),
                credential,
            },
        ))
    })
    .await
}

/// `DELETE /api/v1/credentials/{ak}` → 204.
///
/// # Errors
/// 409 (Kubernetes), 404.
pub async fn delete(
    state: &Arc<AdminState>,
    ak: String,
) -> Result<Response<ResponseBody>, ApiError> {
    refuse_kubernetes(state, &ak)?;
    let state = Arc::clone(state);
    blocking(move || {
        state
            .store
            .delete_credential(&ak)
            .map_err(|e| store_error(&ak, e))?;
        state.cache.remove(SourceKind::Sqlite, &ak);
        tracing::info!(access_key_id = %ak, "credential deleted through the admin API");
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    })
    .await
}

#[cfg(test)]
#[path = "credentials_write_tests.rs"]
mod tests;
