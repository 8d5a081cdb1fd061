//! The seam between `GET /api/v1/audit` and the audit log (`src/audit/`, built
//! separately): the route parses and validates the filter, then calls whatever
//! [`AuditQuery`] is installed in [`super::AdminState`]. With none installed the route
//! answers 501.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::json::{ApiError, only_known, parse_limit, query_pairs};

/// Default and largest number of audit rows one query returns.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;
pub const MAX_AUDIT_LIMIT: usize = 1000;
/// The outcomes an audit row can have.
pub const OUTCOMES: [&str; 4] = ["ok", "denied", "client_error", "server_error"];

/// What an audit query selects. Every field is optional except `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Rows at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Rows before this time.
    pub until: Option<OffsetDateTime>,
    pub access_key: Option<String>,
    pub bucket: Option<String>,
    /// One of [`OUTCOMES`].
    pub outcome: Option<String>,
    /// 1..=[`MAX_AUDIT_LIMIT`].
    pub limit: usize,
}

/// The audit log's query side. Implementations return rows newest first, as JSON
/// objects (the audit module owns their shape); an `Err` is logged and answered 500.
pub trait AuditQuery: Send + Sync {
    /// Rows matching `filter`, at most `filter.limit`.
    ///
    /// # Errors
    /// A message for the log (never shown to the client).
    fn query(&self, filter: &AuditFilter) -> Result<Vec<serde_json::Value>, String>;
}

const KNOWN: [&str; 6] = ["since", "until", "access_key", "bucket", "outcome", "limit"];

/// Parse `since`, `until` (RFC 3339, or a duration meaning "that long ago": `15m`,
/// `24h`), `access_key`, `bucket`, `outcome` and `limit` from a query string.
///
/// # Errors
/// 400 naming the parameter.
pub fn parse_filter(query: Option<&str>, now: OffsetDateTime) -> Result<AuditFilter, ApiError> {
    let pairs = query_pairs(query)?;
    only_known(&pairs, &KNOWN)?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let since = get("since")
        .map(|v| time_param("since", v, now))
        .transpose()?;
    let until = get("until")
        .map(|v| time_param("until", v, now))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(ApiError::invalid("until", "must be later than since"));
    }
    let text = |k: &'static str, max: usize| -> Result<Option<String>, ApiError> {
        match get(k) {
            None => Ok(None),
            Some(v) if v.is_empty() || v.len() > max || v.chars().any(char::is_control) => Err(
                ApiError::invalid(k, format!("must be 1-{max} printable characters")),
            ),
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let outcome = get("outcome").map(str::to_owned);
    if let Some(o) = &outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        return Err(ApiError::invalid(
            "outcome",
            format!("must be one of {}", OUTCOMES.join(", ")),
        ));
    }
    Ok(AuditFilter {
        since,
        until,
        access_key: text("access_key", 128)?,
        bucket: text("bucket", 63)?,
        outcome,
        limit: parse_limit(get("limit"), DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT)?,
    })
}

fn time_param(name: &str, v: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    humantime::parse_duration(v)
        .ok()
        .and_then(|d| time::Duration::try_from(d).ok())
        .and_then(|d| now.checked_sub(d))
        .ok_or_else(|| {
            ApiError::invalid(
                name,
                "use an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (15m, 24h)",
            )
        })
}

/// What `GET /api/v1/audit` answers without an implementation.
#[must_use]
pub fn not_installed() -> ApiError {
    ApiError::not_implemented(
        "the audit log is not available in this build (no audit query is installed)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);

    #[test]
    fn an_empty_query_selects_everything_up_to_the_default_limit() {
        let f = parse_filter(None, NOW).unwrap();
        assert_eq!(f.limit, DEFAULT_AUDIT_LIMIT);
        assert!(f.since.is_none() && f.until.is_none() && f.outcome.is_none());
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let f = parse_filter(
            Some("since=24h&until=2025-06-01T11:00:00Z&access_key=SWX&bucket=photos&outcome=denied&limit=5"),
            NOW,
        )
        .unwrap();
        assert_eq!(f.since, Some(datetime!(2025-05-31 12:00 UTC)));
        assert_eq!(f.until, Some(datetime!(2025-06-01 11:00 UTC)));
        assert_eq!(f.access_key.as_deref(), Some("SWX"));
        assert_eq!(f.bucket.as_deref(), Some("photos"));
        assert_eq!(f.outcome.as_deref(), Some("denied"));
        assert_eq!(f.limit, 5);
    }

    #[test]
    fn invalid_parameters_are_refused_naming_them() {
        for (q, field) in [
            ("since=yesterday", "since"),
            ("outcome=maybe", "outcome"),
            ("limit=0", "limit"),
            ("limit=5000", "limit"),
            ("bucket=", "bucket"),
            ("colour=red", "colour"),
            ("since=1h&until=2h", "until"),
        ] {
            let e = parse_filter(Some(q), NOW).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{q}: {e:?}");
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        }
    }
}
