//! What the API shows: a credential row of the merged view (never its secret), with the
//! effective quota and ledger usage of each scoped bucket, and a bucket's quota row.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::credentials::model::{Credential, CredentialSource, Scope};
use crate::quota::ledger::UsageLedger;
use crate::quota::limits::LimitSource;
use crate::quota::{BucketKey, LimitCache, Limits};

/// RFC 3339, or the Unix seconds if a time cannot be formatted.
#[must_use]
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The claim (or hand-written Secret) a Kubernetes credential belongs to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClaimRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One row of the merged credential view.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialView {
    pub access_key_id: String,
    /// `sqlite` | `kubernetes`.
    pub source: &'static str,
    /// Set for `kubernetes` rows: the claim that owns the credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<ClaimRef>,
    /// A Kubernetes row whose access key also exists in SQLite (that row is shadowed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadows_sqlite: bool,
    pub backend: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub enabled: bool,
    pub description: String,
    /// Only SQLite rows can be changed through the API.
    pub editable: bool,
    pub buckets: Vec<BucketView>,
}

/// A scoped bucket with its effective quota and current usage.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BucketView {
    pub bucket: String,
    /// A `stem*` scope: quotas are per exact bucket, so a pattern has none itself; the
    /// quota-configured buckets it matches follow as their own entries.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pattern: bool,
    pub quota: Option<QuotaLimitsView>,
    pub usage: Option<UsageView>,
}

/// Effective limits and which source set them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct QuotaLimitsView {
    pub hard_bytes: Option<u64>,
    pub soft_bytes: Option<u64>,
    pub max_objects: Option<u64>,
    /// `sqlite` | `kubernetes`.
    pub source: &'static str,
}

impl QuotaLimitsView {
    fn new(l: Limits, source: LimitSource) -> Self {
        Self {
            hard_bytes: l.hard_bytes,
            soft_bytes: l.soft_bytes,
            max_objects: l.max_objects,
            source: source.label(),
        }
    }
}

/// The ledger's view of a bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageView {
    pub bytes: u64,
    pub objects: u64,
    /// Held by writes in flight.
    pub reserved_bytes: u64,
    pub reserved_objects: u64,
    /// `false` until a scan measured the bucket (or usage was restored from disk).
    pub known: bool,
    pub scanned_at: Option<String>,
    pub soft_exceeded: bool,
}

/// The usage of a bucket, if the ledger tracks it.
#[must_use]
pub fn usage_of(ledger: &dyn UsageLedger, key: &BucketKey) -> Option<UsageView> {
    ledger.view(key).map(|v| UsageView {
        bytes: v.used.bytes,
        objects: v.used.objects,
        reserved_bytes: v.reserved.bytes,
        reserved_objects: v.reserved.objects,
        known: v.known,
        scanned_at: v.scanned_at.map(rfc3339),
        soft_exceeded: v.soft_exceeded,
    })
}

/// Where the quota and usage of the rows come from.
pub struct QuotaSources<'a> {
    pub limits: &'a LimitCache,
    pub ledger: &'a dyn UsageLedger,
    /// `limits.configured()`, taken once per listing (pattern scopes match against it).
    pub configured: &'a [(BucketKey, Limits, LimitSource)],
}

impl QuotaSources<'_> {
    fn bucket(&self, backend: &str, bucket: &str) -> BucketView {
        let key = BucketKey::new(backend, bucket);
        BucketView {
            bucket: bucket.to_owned(),
            pattern: false,
            quota: self
                .limits
                .effective(&key)
                .map(|(l, s)| QuotaLimitsView::new(l, s)),
            usage: usage_of(self.ledger, &key),
        }
    }

    /// One entry per distinct scoped bucket; a pattern adds the configured buckets it
    /// matches.
    fn buckets(&self, backend: &str, scopes: &[Scope]) -> Vec<BucketView> {
        let mut out: Vec<BucketView> = Vec::new();
        let mut push = |v: BucketView| {
            if !out.iter().any(|o| o.bucket == v.bucket) {
                out.push(v);
            }
        };
        for s in scopes {
            if !s.is_pattern() {
                push(self.bucket(backend, &s.bucket));
                continue;
            }
            push(BucketView {
                bucket: s.bucket.clone(),
                pattern: true,
                quota: None,
                usage: None,
            });
            for (k, _, _) in self.configured {
                if k.backend == backend && s.matches_bucket(&k.bucket) {
                    push(self.bucket(backend, &k.bucket));
                }
            }
        }
        out
    }
}

/// The fields a row is built from (a cached credential, or a stored record).
pub struct RowParts<'a> {
    pub access_key_id: &'a str,
    pub source: &'a CredentialSource,
    pub backend: &'a str,
    pub scopes: &'a [Scope],
    pub expires_at: Option<OffsetDateTime>,
    pub enabled: bool,
    pub description: &'a str,
    pub shadows_sqlite: bool,
}

impl<'a> RowParts<'a> {
    #[must_use]
    pub fn of(c: &'a Credential, shadows_sqlite: bool) -> Self {
        Self {
            access_key_id: &c.access_key_id,
            source: &c.source,
            backend: &c.backend,
            scopes: &c.scopes,
            expires_at: c.expires_at,
            enabled: c.enabled,
            description: &c.description,
            shadows_sqlite,
        }
    }

    /// The row, with quotas and usage.
    #[must_use]
    pub fn view(&self, q: &QuotaSources<'_>, now: OffsetDateTime) -> CredentialView {
        let kubernetes = match self.source {
            CredentialSource::Sqlite => None,
            CredentialSource::Kubernetes {
                namespace,
                name,
                uid,
            } => Some(ClaimRef {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: uid.clone(),
            }),
        };
        CredentialView {
            access_key_id: self.access_key_id.to_owned(),
            source: self.source.label(),
            editable: kubernetes.is_none(),
            kubernetes,
            shadows_sqlite: self.shadows_sqlite,
            backend: self.backend.to_owned(),
            scopes: self.scopes.to_vec(),
            expires_at: self.expires_at.map(rfc3339),
            expired: self.expires_at.is_some_and(|t| t <= now),
            enabled: self.enabled,
            description: self.description.to_owned(),
            buckets: q.buckets(self.backend, self.scopes),
        }
    }
}

/// One bucket's quota row (`/api/v1/quotas`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotaView {
    pub backend: String,
    pub bucket: String,
    /// The effective limits and their source; `null` when none is set.
    pub limits: Option<QuotaLimitsView>,
    /// The SQLite row while a Kubernetes limit shadows it (it applies again once the
    /// Kubernetes limit is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadowed_sqlite_limits: Option<QuotaLimitsView>,
    /// Kubernetes-set limits are changed through the claim, not here.
    pub editable: bool,
    pub usage: Option<UsageView>,
}

/// The quota row of one bucket.
#[must_use]
pub fn quota_view(limits: &LimitCache, ledger: &dyn UsageLedger, key: &BucketKey) -> QuotaView {
    let effective = limits.effective(key);
    let from_kubernetes = matches!(effective, Some((_, LimitSource::Kubernetes)));
    QuotaView {
        backend: key.backend.clone(),
        bucket: key.bucket.clone(),
        limits: effective.map(|(l, s)| QuotaLimitsView::new(l, s)),
        shadowed_sqlite_limits: limits
            .sqlite_limits(key)
            .filter(|_| from_kubernetes)
            .map(|l| QuotaLimitsView::new(l, LimitSource::Sqlite)),
        editable: !from_kubernetes,
        usage: usage_of(ledger, key),
    }
}
