//! The JSON edge of the admin API: one error type rendered as
//! `{"error": {"code", "message", "field"}}`, bounded body reads, typed decoding whose
//! errors name the offending field, and query-string parsing.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::server::listener::{BoxError, ResponseBody};
use crate::server::response::full;

/// The largest JSON request body accepted, checked before anything is buffered.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// At most this many query parameters are looked at.
const MAX_QUERY_PARAMS: usize = 32;

/// An API failure: status, a stable machine-readable code, a human message and, for
/// invalid input, the field at fault. Messages never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the resource is owned by something else (a Kubernetes claim).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "managed_elsewhere", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        )
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 500 with a generic message; the cause goes to the log, not to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "admin API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// A database failure: 503 `database_unavailable` (with `Retry-After`) when SQLite
    /// is busy, locked, read-only, full or failing I/O, which passes; anything else is
    /// [`ApiError::internal`]. The cause goes to the log either way.
    pub fn storage(cause: &(dyn std::error::Error + 'static)) -> Self {
        if !is_transient_storage(cause) {
            return Self::internal(&cause);
        }
        tracing::warn!(error = %cause, "admin API: the database cannot be written right now");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is busy or cannot be written right now; retry shortly",
        )
    }

    fn too_large() -> Self {
        Self {
            field: Some("body".to_owned()),
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body is larger than {MAX_JSON_BODY} bytes"),
            )
        }
    }

    /// The response for this error.
    #[must_use]
    pub fn into_response(self) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let body = Outer {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut r = json(self.status, &body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot carry
            // another request: say so, or a client's pool reuses it and its next
            // request meets a closed socket.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stowage-admin\""),
            );
        }
        r
    }
}

/// Whether `e` (or an error it wraps) is SQLite saying "not now": busy, locked,
/// read-only, full, or an I/O failure.
fn is_transient_storage(e: &(dyn std::error::Error + 'static)) -> bool {
    use rusqlite::ErrorCode as C;
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(code) = err
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
        {
            return matches!(
                code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::ReadOnly
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::CannotOpen
            );
        }
        next = err.source();
    }
    false
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Read at most `max` bytes of body; a declared or actual larger body is refused
/// before (or while) buffering, never after.
///
/// # Errors
/// 413 when the body is too large, 400 when it cannot be read.
pub async fn read_bounded<B>(headers: &HeaderMap, body: B, max: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(_) => Err(ApiError::invalid(
            "body",
            "the request body could not be read",
        )),
    }
}

/// Decode a JSON request body into `T` (whose fields deny unknown keys).
///
/// # Errors
/// 415 without a JSON content type; 400 naming the field for anything invalid.
pub async fn read_json<T, B>(headers: &HeaderMap, body: B) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError {
            field: Some("Content-Type".to_owned()),
            ..ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            )
        });
    }
    let bytes = read_bounded(headers, body, MAX_JSON_BODY).await?;
    decode(&bytes)
}

/// Typed decoding; the error names the field (`scopes[0].access`, `backend`).
///
/// # Errors
/// 400 naming the field, or `body` for malformed JSON.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize(de) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return Err(ApiError {
            code: "invalid_json",
            ..ApiError::invalid("body", format!("malformed JSON: {inner}"))
        });
    }
    let message = strip_position(&inner.to_string());
    Err(ApiError::invalid(field_of(&path, &message), message))
}

/// serde_json appends " at line 1 column 17"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The field an error is about: the path, extended by the name of a missing field.
fn field_of(path: &str, message: &str) -> String {
    let base = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, base) {
        (Some(name), "") => name.to_owned(),
        (Some(name), base) => format!("{base}.{name}"),
        (None, "") => "body".to_owned(),
        (None, base) => base.to_owned(),
    }
}

/// Query parameters, percent-decoded (`+` is a space), refusing malformed encoding,
/// repeated names and more than a few dozen parameters.
///
/// # Errors
/// 400 naming the parameter.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_QUERY_PARAMS {
            return Err(ApiError::invalid("query", "too many query parameters"));
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
        };
        let key = dec(k).map_err(|_| ApiError::invalid("query", "not UTF-8 after decoding"))?;
        let value =
            dec(v).map_err(|_| ApiError::invalid(key.clone(), "not UTF-8 after decoding"))?;
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(ApiError::invalid(key, "given more than once"));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Refuse parameters a route does not know, naming the first one.
///
/// # Errors
/// 400 naming the unknown parameter.
pub fn only_known(pairs: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::invalid(
            k.clone(),
            format!("unknown query parameter; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `limit`: 1..=max, `default` when absent.
///
/// # Errors
/// 400 naming `limit`.
pub fn parse_limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(v) = value else { return Ok(default) };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "limit",
            format!("must be a whole number from 1 to {max}"),
        )),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
