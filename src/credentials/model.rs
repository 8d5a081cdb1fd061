//! The credential model shared by every source (SQLite, Kubernetes) and the cache.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secret::SecretKey;

/// What a scope lets a credential do on matching buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Object reads and listing.
    ReadOnly,
    /// Reads plus object writes and deletes.
    ReadWrite,
    /// Read-write plus CreateBucket/DeleteBucket and bucket configuration.
    Admin,
}

impl Access {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
            Self::Admin => "admin",
        }
    }

    /// Parse `read-only` | `read-write` | `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read-only" => Some(Self::ReadOnly),
            "read-write" => Some(Self::ReadWrite),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One grant: a bucket (exact name, or a pattern ending in `*`), an access class and
/// an optional key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Exact bucket name, or a prefix pattern such as `team-a-*`.
    pub bucket: String,
    pub access: Access,
    /// When set, object keys (and list prefixes) must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl Scope {
    /// Whether this scope's bucket (exact or `*`-pattern) matches `bucket`.
    #[must_use]
    pub fn matches_bucket(&self, bucket: &str) -> bool {
        match self.bucket.strip_suffix('*') {
            Some(stem) => bucket.starts_with(stem),
            None => self.bucket == bucket,
        }
    }

    #[must_use]
    pub fn is_pattern(&self) -> bool {
        self.bucket.ends_with('*')
    }
}

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CredentialSource {
    Sqlite,
    Kubernetes {
        namespace: String,
        name: String,
        uid: String,
    },
}

impl CredentialSource {
    /// The bounded metric/audit label: `sqlite` | `kubernetes`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// A virtual credential: what a tenant signs with, and what it may touch.
#[derive(Debug, Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret: SecretKey,
    /// The backend id (`[[backends]] id`) requests are forwarded to.
    pub backend: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<OffsetDateTime>,
    pub enabled: bool,
    pub source: CredentialSource,
    pub description: String,
}

impl Credential {
    /// Usable at `now`: enabled and not expired.
    #[must_use]
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.enabled && self.expires_at.is_none_or(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_patterns_match_by_stem_and_exact_names_match_exactly() {
        let pat = Scope {
            bucket: "team-a-*".into(),
            access: Access::ReadOnly,
            prefix: None,
        };
        assert!(pat.matches_bucket("team-a-logs"));
        assert!(pat.matches_bucket("team-a-"));
        assert!(!pat.matches_bucket("team-b-logs"));
        let exact = Scope {
            bucket: "photos".into(),
            access: Access::ReadWrite,
            prefix: None,
        };
        assert!(exact.matches_bucket("photos"));
        assert!(!exact.matches_bucket("photos2"));
    }

    #[test]
    fn access_round_trips_through_its_text_form() {
        for a in [Access::ReadOnly, Access::ReadWrite, Access::Admin] {
            assert_eq!(Access::parse(a.as_str()), Some(a));
        }
        assert_eq!(Access::parse("write"), None);
    }
}
