//! What the audit log stores and how it is asked for rows.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::credentials::CredentialSource;

/// The most rows one [`AuditFilter`] query returns.
pub const MAX_QUERY_LIMIT: usize = 10_000;
/// Rows returned when a filter sets no limit.
pub const DEFAULT_QUERY_LIMIT: usize = 1_000;

/// How an exchange ended, from the status sent to the client (the same classes as the
/// `outcome` label of `stowage_s3_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    ClientError,
    ServerError,
}

impl Outcome {
    pub const ALL: [Self; 4] = [Self::Ok, Self::Denied, Self::ClientError, Self::ServerError];

    #[must_use]
    pub fn from_status(status: u16) -> Self {
        match status {
            0..=399 => Self::Ok,
            401 | 403 => Self::Denied,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Who the request was verified as coming from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    Sqlite,
    Kubernetes,
    /// An unsigned request admitted by an anonymous binding.
    Anonymous,
    /// Nothing was verified (no or failed authentication, or refused before it).
    None,
}

impl AuditSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Kubernetes => "kubernetes",
            Self::Anonymous => "anonymous",
            Self::None => "none",
        }
    }

    #[must_use]
    pub fn of(source: &CredentialSource) -> Self {
        match source {
            CredentialSource::Sqlite => Self::Sqlite,
            CredentialSource::Kubernetes { .. } => Self::Kubernetes,
        }
    }
}

/// One finished exchange, as the proxy hands it to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix milliseconds when the request head arrived.
    pub time_ms: i64,
    pub request_id: String,
    pub access_key: Option<String>,
    pub source: AuditSource,
    pub operation: &'static str,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_ip: IpAddr,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

/// One stored row, as queries and exports return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 with milliseconds, UTC.
    pub time: String,
    pub time_ms: i64,
    pub request_id: String,
    pub access_key: Option<String>,
    pub source: String,
    pub operation: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_ip: String,
    pub outcome: String,
    pub duration_ms: u64,
}

/// Which rows a query wants. Every field is optional; `limit` defaults to
/// [`DEFAULT_QUERY_LIMIT`] and may not exceed [`MAX_QUERY_LIMIT`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Rows at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Rows strictly before this time.
    pub until: Option<OffsetDateTime>,
    pub access_key: Option<String>,
    pub bucket: Option<String>,
    pub outcome: Option<Outcome>,
    pub limit: Option<usize>,
}

/// Unix milliseconds of `t` (saturating; the column is a signed 64-bit integer).
#[must_use]
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 with milliseconds, UTC (`2026-01-02T03:04:05.678Z`).
#[must_use]
pub fn format_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_else(|_| ms.to_string())
}
