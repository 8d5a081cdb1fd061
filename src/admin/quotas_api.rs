//! Per-bucket quotas through the API: list, get, set (PUT replaces the SQLite row,
//! validated like `stowage quota set`) and clear. Limits set by Kubernetes shadow the
//! SQLite row and are shown, never edited here (409). Writes reach the running proxy's
//! limit cache at once.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::api::blocking;
use super::json::{ApiError, json, only_known, query_pairs, read_json};
use super::views::{QuotaView, quota_view};
use crate::credentials::model::{Access, Scope};
use crate::credentials::sqlite::validate_scopes;
use crate::quota::limits::LimitSource;
use crate::quota::store::QuotaStoreError;
use crate::quota::{BucketKey, Limits};
use crate::server::listener::{BoxError, ResponseBody};
use crate::server::response::full;

/// `PUT /api/v1/quotas/{backend}/{bucket}`: the whole row; an absent cap is no cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub hard_bytes: Option<u64>,
    #[serde(default)]
    pub soft_bytes: Option<u64>,
    #[serde(default)]
    pub max_objects: Option<u64>,
}

#[derive(Serialize)]
struct List {
    quotas: Vec<QuotaView>,
}

/// `GET /api/v1/quotas?backend=&bucket=`: every bucket with an effective limit, plus
/// SQLite rows shadowed by Kubernetes.
///
/// # Errors
/// 400 for an invalid query.
pub fn list(state: &AdminState, query: Option<&str>) -> Result<Response<ResponseBody>, ApiError> {
    let pairs = query_pairs(query)?;
    only_known(&pairs, &["backend", "bucket"])?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (backend, bucket) = (get("backend"), get("bucket"));
    let quotas = state
        .quota_limits
        .configured()
        .into_iter()
        .map(|(k, _, _)| k)
        .filter(|k| backend.is_none_or(|b| k.backend == b) && bucket.is_none_or(|b| k.bucket == b))
        .map(|k| quota_view(&state.quota_limits, state.ledger.as_ref(), &k))
        .collect();
    Ok(json(StatusCode::OK, &List { quotas }))
}

/// The key of a path, refusing unknown backends (404) and invalid bucket names (400).
pub(super) fn key_of(
    state: &AdminState,
    backend: &str,
    bucket: &str,
) -> Result<BucketKey, ApiError> {
    if !state.backends.iter().any(|b| b == backend) {
        return Err(ApiError::not_found(format!(
            "unknown backend `{}`; configured: {}",
            backend.escape_debug(),
            state.backends.join(", ")
        )));
    }
    let scope = Scope {
        bucket: bucket.to_owned(),
        access: Access::ReadOnly,
        prefix: None,
    };
    if bucket.contains('*') || validate_scopes(&[scope]).is_err() {
        return Err(ApiError::invalid(
            "bucket",
            "must be a bucket name (3-63 of a-z 0-9 . -)",
        ));
    }
    Ok(BucketKey::new(backend, bucket))
}

/// `GET /api/v1/quotas/{backend}/{bucket}`.
///
/// # Errors
/// 404 when the bucket has neither limits nor tracked usage.
pub fn get(
    state: &AdminState,
    backend: &str,
    bucket: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, backend, bucket)?;
    let view = quota_view(&state.quota_limits, state.ledger.as_ref(), &key);
    if view.limits.is_none() && view.usage.is_none() {
        return Err(ApiError::not_found(format!(
            "no quota or usage recorded for {backend}/{bucket}"
        )));
    }
    Ok(json(StatusCode::OK, &view))
}

fn refuse_kubernetes(state: &AdminState, key: &BucketKey) -> Result<(), ApiError> {
    if let Some((_, LimitSource::Kubernetes)) = state.quota_limits.effective(key) {
        return Err(ApiError::conflict(format!(
            "the quota of {}/{} is set by Kubernetes (a BucketClaim's Secret) and shadows \
             any SQLite row; change the claim instead",
            key.backend, key.bucket
        )));
    }
    Ok(())
}

fn quota_error(e: QuotaStoreError) -> ApiError {
    match e {
        QuotaStoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
        other => ApiError::storage(&other),
    }
}

/// `PUT /api/v1/quotas/{backend}/{bucket}` → 200 with the row.
///
/// # Errors
/// 404 (backend), 400 naming the field, 409 (Kubernetes).
pub async fn put<B>(
    state: &Arc<AdminState>,
    backend: String,
    bucket: String,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let key = key_of(state, &backend, &bucket)?;
    refuse_kubernetes(state, &key)?;
    let body: LimitsBody = read_json(headers, body).await?;
    let limits = Limits {
        hard_bytes: body.hard_bytes,
        soft_bytes: body.soft_bytes,
        max_objects: body.max_objects,
    };
    let state = Arc::clone(state);
    blocking(move || {
        state.store.set_limits(&key, limits).map_err(quota_error)?;
        state.quota_limits.set_sqlite(key.clone(), limits);
        tracing::info!(backend = %key.backend, bucket = %key.bucket, "quota set through the admin API");
        let view = quota_view(&state.quota_limits, state.ledger.as_ref(), &key);
        Ok(json(StatusCode::OK, &view))
    })
    .await
}

/// `DELETE /api/v1/quotas/{backend}/{bucket}` → 204.
///
/// # Errors
/// 404 (backend, or no SQLite quota), 409 (Kubernetes).
pub async fn delete(
    state: &Arc<AdminState>,
    backend: String,
    bucket: String,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = key_of(state, &backend, &bucket)?;
    refuse_kubernetes(state, &key)?;
    let state = Arc::clone(state);
    blocking(move || {
        if !state.store.clear_limits(&key).map_err(quota_error)? {
            return Err(ApiError::not_found(format!(
                "{}/{} has no quota set",
                key.backend, key.bucket
            )));
        }
        state.quota_limits.set_sqlite(key.clone(), Limits::default());
        tracing::info!(backend = %key.backend, bucket = %key.bucket, "quota cleared through the admin API");
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    })
    .await
}
