//! What the pipeline reads on every request, built once at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::auth::{AuthOptions, SigningKeyCache};
use crate::credentials::CredentialCache;
use crate::metrics::Metrics;
use crate::quota::LimitCache;
use crate::ratelimit::RateLimits;
use crate::upstream::{UpstreamBackend, UpstreamClient};

/// Request-level limits checked by the pipeline (connection-level ones live in the
/// listener).
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_url_bytes: usize,
    pub max_signed_chunk_bytes: usize,
    /// XML body caps and the body stall timeout (`body_guard`).
    pub body: super::body_guard::BodyGuardLimits,
}

/// Shared, read-mostly state of the S3 proxy.
pub struct ProxyState {
    pub cache: Arc<CredentialCache>,
    pub keys: SigningKeyCache,
    pub auth: AuthOptions,
    pub backends: HashMap<String, UpstreamBackend>,
    pub client: UpstreamClient,
    pub metrics: Arc<Metrics>,
    pub host_suffixes: Vec<String>,
    pub limits: RequestLimits,
    /// Per-bucket quota limits, merged from SQLite and Kubernetes.
    pub quota_limits: Arc<LimitCache>,
    /// Per-bucket usage and reservations; admission reserves here before forwarding.
    pub ledger: Arc<dyn crate::quota::ledger::UsageLedger>,
    /// Quota admission and accounting (`quota_step`): scans on demand, key claims.
    pub quota: Arc<super::quota_step::QuotaGate>,
    /// Global, per-key and per-source-IP rate limits (`crate::ratelimit`).
    pub rate_limits: Arc<RateLimits>,
    /// `server.trusted_proxies`: peers whose X-Forwarded-For/-Proto are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Per-bucket CORS rules (`crate::cors`).
    pub cors: Arc<crate::cors::store::CorsCache>,
    /// Anonymous bindings from SQLite and Kubernetes.
    pub bindings: Arc<crate::credentials::anonymous::BindingCache>,
    /// `s3_proxy.anonymous_enabled`: the cluster-wide switch for anonymous access.
    pub anonymous_enabled: bool,
    /// Browser form heads being read before their policy is verified.
    pub form_heads: tokio::sync::Semaphore,
    /// The audit queue (`None` when `audit.enabled = false`).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}
