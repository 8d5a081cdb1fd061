//! Browser-facing bucket settings through the API: per-bucket CORS rules (S3's JSON
//! shape, so `aws s3api get-bucket-cors` output is a valid PUT body) and anonymous
//! bindings. CORS writes go to SQLite; running proxies reload them within
//! `s3_proxy.credential_poll_interval`. Binding writes also reach this proxy's
//! [`BindingCache`](crate::credentials::anonymous::BindingCache) at once. A binding
//! that a Kubernetes Secret contributes is shown, never edited here (409).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::api::blocking;
use super::json::{ApiError, json, only_known, query_pairs, read_json};
use super::quotas_api::key_of;
use crate::cors::CorsConfiguration;
use crate::cors::store::{SettingsError, sqlite_owner};
use crate::credentials::anonymous::{AnonymousBinding, AnonymousMode};
use crate::credentials::cache::SourceKind;
use crate::credentials::model::CredentialSource;
use crate::quota::BucketKey;
use crate::server::listener::{BoxError, ResponseBody};
use crate::server::response::full;

/// One bucket's rules in a listing.
#[derive(Serialize)]
struct CorsRow {
    backend: String,
    bucket: String,
    #[serde(flatten)]
    rules: CorsConfiguration,
}

/// The owning Secret of a Kubernetes binding.
#[derive(Debug, Serialize)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// A binding as the API shows it.
#[derive(Debug, Serialize)]
pub struct BindingView {
    pub backend: String,
    pub bucket: String,
    pub mode: &'static str,
    pub per_source_ip_rps: Option<f64>,
    /// `sqlite` | `kubernetes`.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<SecretRef>,
    pub editable: bool,
    /// A Kubernetes binding that hides a SQLite row of the same bucket.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadows_sqlite: bool,
}

/// `PUT /api/v1/anonymous/{backend}/{bucket}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    pub mode: String,
    #[serde(default)]
    pub per_source_ip_rps: Option<f64>,
}

fn settings_error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Invalid { field, reason } => ApiError::invalid(field, reason),
        other @ SettingsError::Sqlite(_) => ApiError::internal(&other),
    }
}

fn no_content() -> Response<ResponseBody> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `?backend=&bucket=` of a listing.
fn filter(query: Option<&str>) -> Result<impl Fn(&str, &str) -> bool, ApiError> {
    let pairs = query_pairs(query)?;
    only_known(&pairs, &["backend", "bucket"])?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (backend, bucket) = (get("backend"), get("bucket"));
    Ok(move |be: &str, bu: &str| {
        backend.as_deref().is_none_or(|b| b == be) && bucket.as_deref().is_none_or(|b| b == bu)
    })
}

/// `GET /api/v1/cors?backend=&bucket=` → `{"cors": [{backend, bucket, CORSRules}]}`.
///
/// # Errors
/// 400 for an invalid query.
pub async fn list_cors(
    state: &Arc<AdminState>,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let keep = filter(query)?;
    let state = Arc::clone(state);
    let all = blocking(move || state.store.list_cors().map_err(settings_error)).await?;
    let cors: Vec<CorsRow> = all
        .into_iter()
        .filter(|(k, _)| keep(&k.backend, &k.bucket))
        .map(|(k, rules)| CorsRow {
            backend: k.backend,
            bucket: k.bucket,
            rules,
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "cors": cors })))
}

async fn stored_cors(
    state: &Arc<AdminState>,
    key: BucketKey,
) -> Result<Option<CorsConfiguration>, ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let all = state.store.list_cors().map_err(settings_error)?;
        Ok(all.into_iter().find(|(k, _)| *k == key).map(|(_, c)| c))
    })
    .await
}

/// `GET /api/v1/cors/{backend}/{bucket}` → S3's `{"CORSRules": [...]}`.
///
/// # Errors
/// 404 for an unknown backend or a bucket without rules.
pub async fn get_cors(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, backend, bucket)?;
    match stored_cors(state, key).await? {
        Some(c) => Ok(json(StatusCode::OK, &c)),
        None => Err(ApiError::not_found(format!(
            "{backend}/{bucket} has no CORS rules"
        ))),
    }
}

/// `PUT /api/v1/cors/{backend}/{bucket}` with S3's JSON shape → 200 with the rules.
///
/// # Errors
/// 404 (backend), 400 naming the field (`CORSRules[0].AllowedMethods`).
pub async fn put_cors<B>(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let key = key_of(state, backend, bucket)?;
    let cors: CorsConfiguration = read_json(headers, body).await?;
    cors.validate()
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let state = Arc::clone(state);
    blocking(move || {
        state.store.set_cors(&key, &cors).map_err(settings_error)?;
        tracing::info!(backend = %key.backend, bucket = %key.bucket, rules = cors.rules.len(), "CORS rules set through the admin API");
        Ok(json(StatusCode::OK, &cors))
    })
    .await
}

/// `DELETE /api/v1/cors/{backend}/{bucket}` → 204.
///
/// # Errors
/// 404 (backend, or no rules).
pub async fn delete_cors(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, backend, bucket)?;
    let state = Arc::clone(state);
    blocking(move || {
        if !state.store.clear_cors(&key).map_err(settings_error)? {
            return Err(ApiError::not_found(format!(
                "{}/{} has no CORS rules",
                key.backend, key.bucket
            )));
        }
        tracing::info!(backend = %key.backend, bucket = %key.bucket, "CORS rules cleared through the admin API");
        Ok(no_content())
    })
    .await
}

/// The API view of an effective binding.
#[must_use]
pub fn binding_view(b: &AnonymousBinding, sqlite_rows: &[BucketKey]) -> BindingView {
    let kubernetes = match &b.source {
        CredentialSource::Kubernetes {
            namespace, name, ..
        } => Some(SecretRef {
            namespace: namespace.clone(),
            name: name.clone(),
        }),
        CredentialSource::Sqlite => None,
    };
    let is_kube = kubernetes.is_some();
    BindingView {
        backend: b.backend.clone(),
        bucket: b.bucket.clone(),
        mode: b.mode.as_str(),
        per_source_ip_rps: b.per_source_ip_rps,
        source: b.source.label(),
        kubernetes,
        editable: !is_kube,
        shadows_sqlite: is_kube && sqlite_rows.contains(&b.key()),
    }
}

async fn sqlite_keys(state: &Arc<AdminState>) -> Result<Vec<BucketKey>, ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let rows = state.store.list_anonymous().map_err(settings_error)?;
        Ok(rows.iter().map(AnonymousBinding::key).collect())
    })
    .await
}

/// `GET /api/v1/anonymous?backend=&bucket=` → `{"anonymous": [...]}`: the running
/// proxy's merged bindings, Kubernetes and SQLite.
///
/// # Errors
/// 400 for an invalid query.
pub async fn list_anonymous(
    state: &Arc<AdminState>,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let keep = filter(query)?;
    let rows = sqlite_keys(state).await?;
    let anonymous: Vec<BindingView> = state
        .bindings
        .all()
        .iter()
        .filter(|b| keep(&b.backend, &b.bucket))
        .map(|b| binding_view(b, &rows))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "anonymous": anonymous }),
    ))
}

/// `GET /api/v1/anonymous/{backend}/{bucket}`.
///
/// # Errors
/// 404 for an unknown backend or an unbound bucket.
pub async fn get_anonymous(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, backend, bucket)?;
    let Some(b) = state.bindings.get(&key) else {
        return Err(ApiError::not_found(format!(
            "{backend}/{bucket} has no anonymous binding"
        )));
    };
    let rows = sqlite_keys(state).await?;
    Ok(json(StatusCode::OK, &binding_view(&b, &rows)))
}

/// 409 when a Kubernetes Secret contributes the bucket's binding: the Secret owns it.
fn refuse_kubernetes(state: &AdminState, key: &BucketKey) -> Result<(), ApiError> {
    let Some(b) = state.bindings.get(key) else {
        return Ok(());
    };
    let CredentialSource::Kubernetes {
        namespace, name, ..
    } = &b.source
    else {
        return Ok(());
    };
    Err(ApiError::conflict(format!(
        "the anonymous binding of {}/{} is managed by Kubernetes: the Secret {namespace}/{name} \
         owns it; change the Secret instead",
        key.backend, key.bucket
    )))
}

/// `PUT /api/v1/anonymous/{backend}/{bucket}` with `{"mode", "per_source_ip_rps"}` →
/// 200 with the binding.
///
/// # Errors
/// 404 (backend), 400 naming the field, 409 (Kubernetes).
pub async fn put_anonymous<B>(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let key = key_of(state, backend, bucket)?;
    refuse_kubernetes(state, &key)?;
    let body: BindingBody = read_json(headers, body).await?;
    let mode = AnonymousMode::parse(&body.mode)
        .ok_or_else(|| ApiError::invalid("mode", "must be ReadOnly or None"))?;
    let rps = body.per_source_ip_rps;
    let state = Arc::clone(state);
    blocking(move || {
        state
            .store
            .set_anonymous(&key, mode, rps)
            .map_err(settings_error)?;
        let binding = AnonymousBinding {
            backend: key.backend.clone(),
            bucket: key.bucket.clone(),
            mode,
            per_source_ip_rps: rps,
            source: CredentialSource::Sqlite,
        };
        let view = binding_view(&binding, &[]);
        state
            .bindings
            .set(SourceKind::Sqlite, &sqlite_owner(&key), Some(binding));
        tracing::info!(backend = %key.backend, bucket = %key.bucket, mode = mode.as_str(), "anonymous binding set through the admin API");
        Ok(json(StatusCode::OK, &view))
    })
    .await
}

/// `DELETE /api/v1/anonymous/{backend}/{bucket}` → 204.
///
/// # Errors
/// 404 (backend, or no SQLite binding), 409 (Kubernetes).
pub async fn delete_anonymous(
    state: &Arc<AdminState>,
    backend: &str,
    bucket: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, backend, bucket)?;
    refuse_kubernetes(state, &key)?;
    let state = Arc::clone(state);
    blocking(move || {
        if !state.store.clear_anonymous(&key).map_err(settings_error)? {
            return Err(ApiError::not_found(format!(
                "{}/{} has no anonymous binding",
                key.backend, key.bucket
            )));
        }
        state
            .bindings
            .set(SourceKind::Sqlite, &sqlite_owner(&key), None);
        tracing::info!(backend = %key.backend, bucket = %key.bucket, "anonymous binding removed through the admin API");
        Ok(no_content())
    })
    .await
}

#[cfg(test)]
#[path = "browser_api_tests.rs"]
mod tests;
