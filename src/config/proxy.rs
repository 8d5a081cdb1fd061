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
    /// S3 caps a PUT's headers at 8 KiB; this leaves room. A larger head gets `431`
    /// `RequestHeaderSectionTooLarge` and the connection closes. Default `16384`.
    pub max_header_bytes: usize,
    /// Most request headers accepted, 1 to 10000; more get `431` as above. Default `100`.
    pub max_headers: usize,
    /// Longest request target (path plus query) in bytes, 256 B to 65534 B (the HTTP
    /// parser's own ceiling). Longer ones get `414` `InvalidURI`. Default `8192`.
    pub max_url_bytes: usize,
    /// Most concurrent client connections, 1 to 1000000. A connection over the limit is
    /// not queued: it is answered `503 SlowDown` with `Retry-After: 1` and closed (load
    /// shedding; counted in `stowage_s3_shed_connections_total`). Default `1024`.
    pub max_connections: usize,
    /// Largest aws-chunked chunk that is buffered until its signature is checked,
    /// 8 KiB to 1 GiB. Default `16777216` (16 MiB).
    pub max_signed_chunk_bytes: usize,
    /// Time allowed for a client to send a complete request head, counted from its
    /// first byte (slowloris); the connection is then closed without an answer.
    /// Default `"10s"`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight for this long is closed
    /// (also a new connection that sends nothing). A request in flight, however long
    /// its body or response streams, is never cut by it. Default `"120s"`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Longest wait for the next bytes of a request body the proxy is reading; a
    /// client that stalls (or trickles nothing) this long gets `400 RequestTimeout`
    /// and the upstream gets an incomplete body, so nothing is committed. Time spent
    /// waiting on the upstream does not count. Default `"30s"`.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// Largest DeleteObjects (`POST ?delete`) body, 1 KiB to 2 MiB (S3 allows 1000
    /// keys of up to 1 KiB). A larger declared length is refused before the upstream is
    /// contacted; a body that grows past it is cut. `400 MaxMessageLengthExceeded`.
    /// Default `2097152` (2 MiB).
    pub max_delete_objects_body_bytes: usize,
    /// Largest CompleteMultipartUpload (`POST ?uploadId=`) body, 1 KiB to 64 MiB
    /// (10000 parts with checksums are under 2 MiB). Enforced like
    /// `max_delete_objects_body_bytes`. Default `4194304` (4 MiB).
    pub max_complete_multipart_body_bytes: usize,
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
            body_read_timeout: Duration::from_secs(30),
            max_delete_objects_body_bytes: 2 * 1024 * 1024,
            max_complete_multipart_body_bytes: 4 * 1024 * 1024,
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
