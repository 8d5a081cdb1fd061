//! Per-bucket CORS, answered by the proxy: rules in the shape of S3's
//! `CORSConfiguration` (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>),
//! preflight `OPTIONS` matched before authentication, and the `Access-Control-*`
//! headers of actual responses. The upstream's own CORS headers are always removed, so
//! a browser never sees two answers.
//!
//! Matching is S3's: the first rule whose origin, method and (for preflights) every
//! requested header match wins. An origin pattern may hold one `*`
//! (`https://*.example.com`); a header pattern may end in `*`.

pub mod store;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// Most rules per bucket (S3's limit).
pub const MAX_RULES: usize = 100;

/// Headers a browser script may read from every response, beyond the rule's own:
/// what the SDKs and upload libraries need.
pub const DEFAULT_EXPOSE: &[&str] = &[
    "etag",
    "content-length",
    "content-type",
    "last-modified",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amz-version-id",
    "x-amz-delete-marker",
    "x-amz-expiration",
    "x-amz-server-side-encryption",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-stowage-quota-warning",
];

/// One rule, with S3's JSON field names (`aws s3api put-bucket-cors` input works).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CorsRule {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    // Empty lists are left out, as S3 leaves them out of `get-bucket-cors`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

/// `{"CORSRules": [...]}`, as S3 and the AWS CLI spell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfiguration {
    #[serde(rename = "CORSRules")]
    pub rules: Vec<CorsRule>,
}

/// Why a configuration was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CorsError {
    pub field: String,
    pub reason: &'static str,
}

impl CorsConfiguration {
    /// Parse and validate S3-style JSON.
    ///
    /// # Errors
    /// Bad JSON, or a rule that [`Self::validate`] refuses.
    pub fn from_json(text: &str) -> Result<Self, CorsError> {
        let c: Self = serde_json::from_str(text).map_err(|_| CorsError {
            field: "CORSRules".into(),
            reason: "is not a valid CORS configuration (S3 JSON shape)",
        })?;
        c.validate()?;
        Ok(c)
    }

    /// # Errors
    /// No rules or too many, an empty list, an unknown method, a bad pattern.
    pub fn validate(&self) -> Result<(), CorsError> {
        let err = |i: usize, f: &str, reason| CorsError {
            field: format!("CORSRules[{i}].{f}"),
            reason,
        };
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(CorsError {
                field: "CORSRules".into(),
                reason: "must hold 1 to 100 rules",
            });
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.allowed_origins.is_empty() {
                return Err(err(i, "AllowedOrigins", "must not be empty"));
            }
            if r.allowed_origins
                .iter()
                .any(|o| o.matches('*').count() > 1 || o.is_empty() || !o.is_ascii())
            {
                return Err(err(i, "AllowedOrigins", "each origin may hold one '*'"));
            }
            if r.allowed_methods.is_empty()
                || r.allowed_methods
                    .iter()
                    .any(|m| !matches!(m.as_str(), "GET" | "PUT" | "POST" | "DELETE" | "HEAD"))
            {
                return Err(err(
                    i,
                    "AllowedMethods",
                    "must be some of GET, PUT, POST, DELETE, HEAD",
                ));
            }
            let bad_header = |h: &String| {
                h.is_empty() || h.find('*').is_some_and(|p| p != h.len() - 1) || !is_token_ish(h)
            };
            if r.allowed_headers.iter().any(bad_header) {
                return Err(err(
                    i,
                    "AllowedHeaders",
                    "header names, '*' only at the end",
                ));
            }
            if r.expose_headers
                .iter()
                .any(|h| h.contains('*') || !is_token_ish(h))
            {
                return Err(err(i, "ExposeHeaders", "must be header names"));
            }
        }
        Ok(())
    }

    /// The first rule for `origin` and `method` whose allowed headers cover every
    /// one of `requested` (lower-case names).
    #[must_use]
    pub fn matching(&self, origin: &str, method: &str, requested: &[String]) -> Option<&CorsRule> {
        self.rules.iter().find(|r| {
            r.allowed_origins.iter().any(|o| wildcard(o, origin))
                && r.allowed_methods.iter().any(|m| m == method)
                && requested.iter().all(|h| {
                    r.allowed_headers
                        .iter()
                        .any(|a| header_match(&a.to_ascii_lowercase(), h))
                })
        })
    }
}

fn is_token_ish(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_*.".contains(&b))
}

fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((pre, post)) => {
            value.len() >= pre.len() + post.len() && value.starts_with(pre) && value.ends_with(post)
        }
    }
}

fn header_match(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The `Access-Control-*` headers for an answer under `rule`; `preflight` adds the
/// allowed method and headers and the max age.
pub fn apply(headers: &mut HeaderMap, rule: &CorsRule, origin: &str, preflight: Option<&[String]>) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(
        headers,
        "access-control-allow-origin",
        if any { "*" } else { origin },
    );
    if !any {
        set(headers, "access-control-allow-credentials", "true");
    }
    match preflight {
        Some(requested) => {
            set(
                headers,
                "access-control-allow-methods",
                &rule.allowed_methods.join(", "),
            );
            if !requested.is_empty() {
                set(
                    headers,
                    "access-control-allow-headers",
                    &requested.join(", "),
                );
            }
            if let Some(age) = rule.max_age_seconds {
                set(headers, "access-control-max-age", &age.to_string());
            }
        }
        None => {
            let mut expose: Vec<String> = DEFAULT_EXPOSE.iter().map(|s| (*s).to_owned()).collect();
            for h in &rule.expose_headers {
                let h = h.to_ascii_lowercase();
                if !expose.contains(&h) {
                    expose.push(h);
                }
            }
            set(headers, "access-control-expose-headers", &expose.join(", "));
        }
    }
    headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

/// Drop every CORS header an upstream sent: the proxy's rules are the only answer.
pub fn strip_upstream(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// The requested headers of a preflight, lower-cased and trimmed.
#[must_use]
pub fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests;
