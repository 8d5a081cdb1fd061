//! `[s3_proxy]` and `[s3_proxy.kubernetes]`: the S3 listener, its request limits and
//! the credential sources. Every field's default is in its doc comment and in
//! `config.example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_fmt::{duration, socket_addr};

/// `[s3_proxy]`: the tenant-facing S3 endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the S3 listener binds. Default `"0.0.0.0:8090"`.
    #[serde(with = "socket_addr")]
    pub listen: SocketAddr,
    /// Host suffixes that turn on virtual-host addressing: a request to
    /// `<bucket>.<suffix>` addresses `<bucket>`. Lowercase DNS names, no leading dot.
    /// Default `[]` (path-style only).
    pub host_suffixes: Vec<String>,
    /// Largest accepted difference between `X-Amz-Date` and our clock for header
    /// authentication. Default `"15m"`.
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
    /// Longest presigned-URL validity accepted (`X-Amz-Expires`); at most `"7d"`, as in
    /// S3. Default `"7d"`.
    #[serde(with = "duration")]
    pub max_presign_expiry: Duration,
    /// Requests per second across all tenants; `0` turns the limit off. Default `0`.
    pub global_rps: u32,
    /// Requests per second per access key; `0` turns the limit off. Default `0`.
    pub per_key_rps: u32,
    /// Requests per second per source address (IPv4, or IPv6 /64) for traffic that does
    /// not authenticate: anonymous requests, unknown keys, bad signatures. `0` turns
    /// the limit off. Default `20`.
    pub unauthenticated_per_ip_rps: u32,
    /// Seconds of traffic a rate-limit bucket holds: an idle client may send
    /// `rps × rate_burst_seconds` requests at once. 1 to 3600. Default `1`.
    pub rate_burst_seconds: u32,
    /// Serve buckets that have an anonymous binding without a signature. Default `false`.
    pub anonymous_enabled: bool,
    /// Largest request head (request line plus headers) in bytes, 1 KiB to 1 MiB.
    /// S3 caps a PUT's headers at 8 KiB; this leaves room. Default `16384`.
    pub max_header_bytes: usize,
    /// Most request headers accepted, 1 to 10000. Default `100`.
    pub max_headers: usize,
    /// Longest request target (path plus query) in bytes, 256 B to 1 MiB. Default `8192`.
    pub max_url_bytes: usize,
    /// Most concurrent client connections; more wait to be accepted. Default `1024`.
    pub max_connections: usize,
    /// Largest aws-chunked chunk that is buffered until its signature is checked,
    /// 8 KiB to 1 GiB. Default `16777216` (16 MiB).
    pub max_signed_chunk_bytes: usize,
    /// Time allowed for a client to send a complete request head. Default `"10s"`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection idle this long is closed. Default `"120s"`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// How often the SQLite credential store is polled for changes. Default `"1s"`.
    #[serde(with = "duration")]
    pub credential_poll_interval: Duration,
    /// `[s3_proxy.kubernetes]`: credentials from Kubernetes Secrets.
    pub kubernetes: KubernetesConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8090)),
            host_suffixes: Vec::new(),
            max_clock_skew: Duration::from_secs(15 * 60),
            max_presign_expiry: MAX_PRESIGN_EXPIRY,
            global_rps: 0,
            per_key_rps: 0,
            unauthenticated_per_ip_rps: 20,
            rate_burst_seconds: 1,
            anonymous_enabled: false,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_url_bytes: 8 * 1024,
            max_connections: 1024,
            max_signed_chunk_bytes: 16 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            credential_poll_interval: Duration::from_secs(1),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

/// S3's own ceiling on presigned-URL validity (7 days).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// `[s3_proxy.kubernetes]`: watch Secrets written by the Stowage operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Watch Kubernetes Secrets for credentials. Default `false`.
    pub enabled: bool,
    /// Namespace whose Secrets are watched. Default `"stowage-system"`.
    pub namespace: String,
    /// Kubeconfig file; unset means in-cluster configuration (or `KUBECONFIG`).
    /// A relative path resolves against the config file's directory. Default unset.
    pub kubeconfig: Option<PathBuf>,
    /// Longest wait for the informer's first full list before `/readyz` turns ready
    /// anyway, serving SQLite credentials while the informer keeps retrying. Default
    /// `"30s"`.
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            namespace: "stowage-system".to_owned(),
            kubeconfig: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}
