//! The synthesized ListBuckets answer: the buckets a credential's scopes name, never
//! the upstream's full list. Exact scopes list their bucket; pattern scopes (`stem*`)
//! list the upstream buckets they match, from a list the caller fetches with the
//! admin key only when [`needs_upstream_list`] says so.
//!
//! Decisions:
//! - Exact-scope buckets are always listed, whether or not the upstream list was
//!   fetched, so the answer does not depend on unrelated pattern scopes. Their
//!   creation date comes from the upstream list when it has them, otherwise
//!   [`FALLBACK_CREATION_DATE`] (a fixed, plausible date: clients parse it).
//! - Without an upstream list, pattern scopes contribute nothing (never more than the
//!   scopes allow).
//! - Pagination: `max-buckets` 1..=10000 (default 10000, as S3), names sorted and
//!   deduplicated, `continuation-token` is the unpadded URL-safe base64 of the last
//!   name returned (opaque to clients, stateless for us). `bucket-region` is ignored:
//!   every bucket of a credential lives on its one backend.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::macros::{datetime, format_description};

use crate::credentials::model::Credential;
use crate::error::{S3Error, xml_escape};

use super::query::Query;

pub use super::list_buckets_parse::{
    ListBucketsParseError, MAX_UPSTREAM_BUCKETS, MAX_UPSTREAM_XML_BYTES, UpstreamBucket,
    parse_upstream_list_buckets,
};

/// The creation date shown when the upstream's is unknown (S3's launch day).
pub const FALLBACK_CREATION_DATE: OffsetDateTime = datetime!(2006-03-01 0:00 UTC);

/// S3's cap (and default) for `max-buckets`.
pub const MAX_BUCKETS_PER_PAGE: u32 = 10_000;

/// A continuation token is at most the base64 of a 63-byte name; allow slack.
const MAX_TOKEN_CHARS: usize = 128;

/// The ListBuckets query parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListBucketsQuery {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Page size, 1..=10000.
    pub max_buckets: u32,
    /// Names strictly after this (decoded from `continuation-token`).
    pub start_after: Option<String>,
}

impl ListBucketsQuery {
    /// Parse `prefix`, `max-buckets` and `continuation-token`; other parameters are
    /// ignored. Bad values are `InvalidArgument`.
    pub fn parse(raw_query: Option<&str>) -> Result<Self, S3Error> {
        let query =
            Query::parse(raw_query).map_err(|_| invalid("The query string is not valid."))?;
        let single = |key: &'static str| {
            query
                .single(key)
                .map_err(|_| invalid("A ListBuckets parameter is repeated or badly encoded."))
        };
        let max_buckets = match single("max-buckets")? {
            None => MAX_BUCKETS_PER_PAGE,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_BUCKETS_PER_PAGE).contains(n))
                .ok_or_else(|| invalid("max-buckets must be an integer from 1 to 10000."))?,
        };
        let start_after = single("continuation-token")?
            .map(|t| decode_token(&t))
            .transpose()?;
        Ok(Self {
            prefix: single("prefix")?
                .map(Cow::into_owned)
                .filter(|p| !p.is_empty()),
            max_buckets,
            start_after,
        })
    }
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    let bad = || invalid("The continuation token provided is incorrect.");
    if token.len() > MAX_TOKEN_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn invalid(msg: &'static str) -> S3Error {
    S3Error::InvalidArgument(Cow::Borrowed(msg))
}

/// Whether listing needs the upstream's bucket list (the credential has a pattern scope).
#[must_use]
pub fn needs_upstream_list(cred: &Credential) -> bool {
    cred.scopes.iter().any(|s| s.is_pattern())
}

/// Render `ListAllMyBucketsResult` for `cred`.
pub fn list_buckets_xml(
    cred: &Credential,
    upstream_buckets: Option<&[UpstreamBucket]>,
    query: &ListBucketsQuery,
    owner_id: &str,
) -> Result<String, S3Error> {
    let visible = visible_buckets(cred, upstream_buckets.unwrap_or(&[]));
    let prefix = query.prefix.as_deref().unwrap_or("");
    let mut page = visible
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter(|(name, _)| {
            query
                .start_after
                .as_deref()
                .is_none_or(|after| **name > after)
        });
    let limit = usize::try_from(query.max_buckets).unwrap_or(usize::MAX);
    let shown: Vec<_> = page.by_ref().take(limit).collect();
    let token = match (page.next(), shown.last()) {
        (Some(_), Some((last, _))) => Some(URL_SAFE_NO_PAD.encode(last.as_bytes())),
        _ => None,
    };
    Ok(render(
        owner_id,
        &shown,
        token.as_deref(),
        query.prefix.as_deref(),
    ))
}

/// Every bucket the scopes name, sorted and deduplicated, with its creation date.
fn visible_buckets<'a>(
    cred: &'a Credential,
    upstream: &'a [UpstreamBucket],
) -> BTreeMap<&'a str, OffsetDateTime> {
    let dates: HashMap<&str, OffsetDateTime> = upstream
        .iter()
        .filter_map(|b| Some((b.name.as_str(), b.creation_date?)))
        .collect();
    let date_of = |name: &str| dates.get(name).copied().unwrap_or(FALLBACK_CREATION_DATE);
    let mut out = BTreeMap::new();
    for scope in &cred.scopes {
        if scope.is_pattern() {
            for b in upstream.iter().filter(|b| scope.matches_bucket(&b.name)) {
                out.insert(b.name.as_str(), date_of(&b.name));
            }
        } else {
            out.insert(scope.bucket.as_str(), date_of(&scope.bucket));
        }
    }
    out
}

fn render(
    owner_id: &str,
    buckets: &[(&&str, &OffsetDateTime)],
    token: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let owner = xml_escape(owner_id);
    let mut xml = String::with_capacity(256 + buckets.len() * 96);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str("<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    xml.push_str(&format!(
        "<Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner>"
    ));
    xml.push_str("<Buckets>");
    for (name, date) in buckets {
        xml.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            xml_escape(name),
            format_date(**date)
        ));
    }
    xml.push_str("</Buckets>");
    if let Some(token) = token {
        xml.push_str(&format!(
            "<ContinuationToken>{}</ContinuationToken>",
            xml_escape(token)
        ));
    }
    if let Some(prefix) = prefix {
        xml.push_str(&format!("<Prefix>{}</Prefix>", xml_escape(prefix)));
    }
    xml.push_str("</ListAllMyBucketsResult>");
    xml
}

/// `2006-03-01T00:00:00.000Z`, the form S3 uses.
fn format_date(date: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    date.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "2006-03-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
#[path = "list_buckets_tests.rs"]
mod tests;
