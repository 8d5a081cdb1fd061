//! Reading the merged credential view: `GET /api/v1/credentials` (filtered, paginated by
//! access key with an opaque cursor) and `GET /api/v1/credentials/{ak}`. Rows come from
//! the running proxy's cache (what it actually serves); a SQLite row the poller has not
//! picked up yet is read from the store.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Response, StatusCode};
use serde::Serialize;
use time::OffsetDateTime;

use super::AdminState;
use super::api::blocking;
use super::json::{ApiError, json, only_known, parse_limit, query_pairs};
use super::views::{CredentialView, RowParts};
use crate::credentials::cache::SourceKind;
use crate::credentials::model::{Credential, CredentialSource};
use crate::server::listener::ResponseBody;

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;
const CURSOR_TAG: &str = "ak:";

/// The filters and page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub source: Option<SourceKind>,
    pub backend: Option<String>,
    /// Credentials with a scope matching this bucket (exactly or by pattern).
    pub bucket: Option<String>,
    pub limit: usize,
    /// Rows with an access key greater than this.
    pub after: Option<String>,
}

/// Parse `source`, `backend`, `bucket`, `limit`, `cursor`.
///
/// # Errors
/// 400 naming the parameter.
pub fn parse_list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let pairs = query_pairs(query)?;
    only_known(&pairs, &["source", "backend", "bucket", "limit", "cursor"])?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let source = match get("source") {
        None => None,
        Some("sqlite") => Some(SourceKind::Sqlite),
        Some("kubernetes") => Some(SourceKind::Kubernetes),
        Some(_) => return Err(ApiError::invalid("source", "must be sqlite or kubernetes")),
    };
    let after = get("cursor").map(decode_cursor).transpose()?;
    Ok(ListQuery {
        source,
        backend: get("backend").map(str::to_owned),
        bucket: get("bucket").map(str::to_owned),
        limit: parse_limit(get("limit"), DEFAULT_PAGE, MAX_PAGE)?,
        after,
    })
}

/// The opaque cursor that continues after `ak`.
#[must_use]
pub fn encode_cursor(ak: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{ak}"))
}

fn decode_cursor(c: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("cursor", "not a cursor this API returned");
    if c.len() > 256 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_TAG)
        .filter(|ak| !ak.is_empty())
        .map(str::to_owned)
        .ok_or_else(bad)
}

fn kind_of(c: &Credential) -> SourceKind {
    match c.source {
        CredentialSource::Sqlite => SourceKind::Sqlite,
        CredentialSource::Kubernetes { .. } => SourceKind::Kubernetes,
    }
}

/// Filter, sort by access key, cut one page; the cursor is set when more rows follow.
#[must_use]
pub fn select(
    mut rows: Vec<Arc<Credential>>,
    q: &ListQuery,
) -> (Vec<Arc<Credential>>, Option<String>) {
    rows.retain(|c| {
        q.source.is_none_or(|s| kind_of(c) == s)
            && q.backend.as_ref().is_none_or(|b| c.backend == *b)
            && q.bucket
                .as_ref()
                .is_none_or(|b| c.scopes.iter().any(|s| s.matches_bucket(b)))
            && q.after
                .as_ref()
                .is_none_or(|a| c.access_key_id.as_str() > a.as_str())
    });
    rows.sort_unstable_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    let more = rows.len() > q.limit;
    rows.truncate(q.limit);
    let next = more
        .then(|| rows.last().map(|c| encode_cursor(&c.access_key_id)))
        .flatten();
    (rows, next)
}

#[derive(Serialize)]
struct Page {
    credentials: Vec<CredentialView>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/credentials`.
///
/// # Errors
/// 400 for an invalid query.
pub async fn list(
    state: &Arc<AdminState>,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let q = parse_list_query(query)?;
    let state = Arc::clone(state);
    // Sorting a large cache is CPU work: keep it off the async threads.
    blocking(move || {
        let (rows, next_cursor) = select(state.cache.snapshot(), &q);
        let configured = state.quota_limits.configured();
        let sources = state.quota_sources(&configured);
        let now = OffsetDateTime::now_utc();
        let credentials = rows
            .iter()
            .map(|c| row(&state, c).view(&sources, now))
            .collect();
        Ok(json(
            StatusCode::OK,
            &Page {
                credentials,
                next_cursor,
            },
        ))
    })
    .await
}

fn row<'a>(state: &AdminState, c: &'a Credential) -> RowParts<'a> {
    let shadows = kind_of(c) == SourceKind::Kubernetes
        && state
            .cache
            .get(SourceKind::Sqlite, &c.access_key_id)
            .is_some();
    RowParts::of(c, shadows)
}

/// The view of one credential: the effective cache entry, else the stored SQLite row.
///
/// # Errors
/// 404 when neither source has it.
pub fn view_of(state: &AdminState, ak: &str) -> Result<CredentialView, ApiError> {
    let configured = state.quota_limits.configured();
    let sources = state.quota_sources(&configured);
    let now = OffsetDateTime::now_utc();
    let cached = state
        .cache
        .get(SourceKind::Kubernetes, ak)
        .or_else(|| state.cache.get(SourceKind::Sqlite, ak));
    if let Some(c) = cached {
        return Ok(row(state, &c).view(&sources, now));
    }
    let rec = state
        .store
        .get_record(ak)
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| not_found(ak))?;
    let parts = RowParts {
        access_key_id: &rec.access_key_id,
        source: &CredentialSource::Sqlite,
        backend: &rec.backend,
        scopes: &rec.scopes,
        expires_at: rec.expires_at,
        enabled: rec.enabled,
        description: &rec.description,
        shadows_sqlite: false,
    };
    Ok(parts.view(&sources, now))
}

pub fn not_found(ak: &str) -> ApiError {
    ApiError::not_found(format!("no credential with access key id {ak}"))
}

/// `GET /api/v1/credentials/{ak}`.
///
/// # Errors
/// 404 for an unknown access key.
pub async fn get(state: &Arc<AdminState>, ak: String) -> Result<Response<ResponseBody>, ApiError> {
    let state = Arc::clone(state);
    blocking(move || view_of(&state, &ak).map(|v| json(StatusCode::OK, &v))).await
}

#[cfg(test)]
#[path = "credentials_api_tests.rs"]
mod tests;
