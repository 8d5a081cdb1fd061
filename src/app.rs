//! Wiring: config → root key → SQLite source → merged cache → servers → readiness →
//! shutdown. `start` binds both listeners and returns their addresses, so the binary,
//! the quickstart and the tests all run the same code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod shutdown;

pub use shutdown::wait_for_signal;

use crate::admin::{AdminParts, AdminState, Readiness};
use crate::audit::AuditLog;
use crate::auth::{AuthOptions, SigningKeyCache};
use crate::config::Config;
use crate::credentials::CredentialCache;
use crate::credentials::anonymous::BindingCache;
use crate::credentials::sqlite::{SqliteStore, spawn_poller};
use crate::kubernetes::{InformerMetrics, Sinks};
use crate::metrics::Metrics;
use crate::quota::LimitCache;
use crate::quota::ledger::{InMemoryLedger, UsageLedger};
use crate::quota::persist;
use crate::quota::scan_runner::spawn_scan_runner;
use crate::quota::scanner::{Scanner, scan_errors_counter};
use crate::ratelimit::task::spawn_housekeeping;
use crate::ratelimit::{HOUSEKEEPING_INTERVAL, LocalLimits, RateLimitConfig, RateLimits};
use crate::secret::RootKey;
use crate::server::listener::{ListenerLimits, serve};
use crate::server::quota_step::QuotaGate;
use crate::server::state::RequestLimits;
use crate::server::{ProxyState, handle};
use crate::upstream::client::ClientOptions;
use crate::upstream::probe::{ProbeTarget, UpstreamHealth, spawn_probes};
use crate::upstream::{UpstreamBackend, UpstreamClient};

/// A running proxy: its bound addresses and the handles to stop it.
pub struct Running {
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub cache: Arc<CredentialCache>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub store: Arc<SqliteStore>,
    /// Per-bucket quota limits (SQLite and Kubernetes).
    pub quota_limits: Arc<LimitCache>,
    /// Per-bucket usage and in-flight reservations (quota admission).
    pub ledger: Arc<dyn UsageLedger>,
    /// The usage scanner the proxy's periodic and on-demand scans run on.
    pub scanner: Arc<Scanner>,
    /// Anonymous bindings (SQLite and Kubernetes Secrets).
    pub bindings: Arc<BindingCache>,
    /// Per-bucket CORS rules, as served (reload with `cors::store::reload`).
    pub cors: Arc<crate::cors::store::CorsCache>,
    /// The admin listener's state (install the audit query here).
    pub admin: Arc<AdminState>,
    /// The audit log (`None` when `audit.enabled = false`): queue, queries.
    pub audit: Option<Arc<AuditLog>>,
    /// Backend reachability from the background probes.
    pub upstream_health: Arc<UpstreamHealth>,
    drain_delay: Duration,
    shutdown_timeout: Duration,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The Kubernetes informer and its readiness gate, when enabled.
    kubernetes_tasks: Vec<JoinHandle<()>>,
}

/// Resolve the configured backends into signing-ready upstreams.
///
/// # Errors
/// When an endpoint lacks a scheme or host.
pub fn build_backends(config: &Config) -> anyhow::Result<HashMap<String, UpstreamBackend>> {
    config
        .backends
        .iter()
        .map(|b| {
            let up = UpstreamBackend::new(
                &b.id,
                &b.endpoint,
                &b.region,
                &b.access_key_id,
                &b.secret_access_key,
            )
            .with_context(|| format!("backends: `{}` has an unusable endpoint", b.id))?;
            Ok((b.id.clone(), up))
        })
        .collect()
}

/// Open the store, load credentials, bind both listeners and start serving.
///
/// # Errors
/// When the database cannot be opened with this root key, or a listener cannot bind.
pub async fn start(config: &Config, root_key: RootKey) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let cache = Arc::new(CredentialCache::new());
    let readiness = Arc::new(Readiness::default());
    let quota_limits = Arc::new(LimitCache::new());
    let bindings = Arc::new(BindingCache::new());
    // Before anything is spawned: a bad kubeconfig fails start-up, while an unreachable
    // apiserver does not (the informer retries in the background).
    let kubernetes = kubernetes_client(config, &metrics).await?;

    let store = Arc::new(
        SqliteStore::open(&config.database.path, root_key)
            .with_context(|| format!("database: cannot open {}", config.database.path.display()))?,
    );
    store
        .reload_into(&cache)
        .context("database: cannot load credentials")?;
    let poller = spawn_poller(
        Arc::clone(&store),
        Arc::clone(&cache),
        config.s3_proxy.credential_poll_interval,
    );
    let audit = AuditLog::from_config(config, &metrics.registry)?.map(Arc::new);
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    load_quota_state(&store, &quota_limits, ledger.as_ref())?;
    let cors = Arc::new(crate::cors::store::CorsCache::new());
    crate::cors::store::reload(&store, &cors, &bindings)
        .context("database: cannot load CORS rules and anonymous bindings")?;
    metrics
        .quota
        .attach(Arc::clone(&quota_limits), Arc::clone(&ledger));

    let rate_limits = Arc::new(RateLimits::new(
        Arc::new(LocalLimits::new(&RateLimitConfig::from_proxy(
            &config.s3_proxy,
        ))),
        metrics.rate_limited.clone(),
    ));
    let scanner = build_scanner(config, &store, &ledger, &metrics)?;
    let quota = Arc::new(QuotaGate::new(
        Arc::clone(&ledger),
        Arc::clone(&scanner),
        Arc::clone(&metrics),
    ));
    let backends = build_backends(config)?;
    let upstream_health = Arc::new(
        UpstreamHealth::register(backends.keys().map(String::as_str), &metrics.registry)
            .context("metrics: cannot register the upstream reachability gauge")?,
    );
    let state = Arc::new(ProxyState {
        cache: Arc::clone(&cache),
        keys: SigningKeyCache::default(),
        auth: AuthOptions {
            max_skew: config.s3_proxy.max_clock_skew,
            max_presign_expiry: config.s3_proxy.max_presign_expiry,
        },
        backends: backends.clone(),
        client: UpstreamClient::new(&ClientOptions {
            connect_timeout: config.upstream.connect_timeout,
            response_header_timeout: config.upstream.response_header_timeout,
            read_timeout: config.upstream.read_timeout,
            pool_idle_timeout: config.upstream.pool_idle_timeout,
            pool_max_idle_per_host: config.upstream.pool_max_idle_per_host,
        }),
        metrics: Arc::clone(&metrics),
        host_suffixes: config.s3_proxy.host_suffixes.clone(),
        limits: RequestLimits {
            max_url_bytes: config.s3_proxy.max_url_bytes,
            max_signed_chunk_bytes: config.s3_proxy.max_signed_chunk_bytes,
            body: crate::server::body_guard::BodyGuardLimits::from_config(&config.s3_proxy),
        },
        quota_limits: Arc::clone(&quota_limits),
        ledger: Arc::clone(&ledger),
        quota,
        rate_limits: Arc::clone(&rate_limits),
        trusted_proxies: config.server.trusted_proxies.clone(),
        audit: audit.clone(),
        cors: Arc::clone(&cors),
        bindings: Arc::clone(&bindings),
        anonymous_enabled: config.s3_proxy.anonymous_enabled,
        form_heads: tokio::sync::Semaphore::new(crate::server::form::MAX_CONCURRENT_HEADS),
    });

    let s3_listener = TcpListener::bind(config.s3_proxy.listen)
        .await
        .with_context(|| format!("s3_proxy.listen: cannot bind {}", config.s3_proxy.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen: cannot bind {}", config.admin.listen))?;
    let s3_addr = s3_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (shutdown, rx) = watch::channel(false);
    let limits = ListenerLimits {
        max_connections: config.s3_proxy.max_connections,
        max_header_bytes: config.s3_proxy.max_header_bytes,
        max_headers: config.s3_proxy.max_headers,
        header_read_timeout: config.s3_proxy.header_read_timeout,
        idle_timeout: config.s3_proxy.idle_timeout,
    };
    let drain = config.server.shutdown_timeout;
    let shed_counter = metrics.shed_connections.clone();
    let s3_task = tokio::spawn(serve(
        s3_listener,
        limits.clone(),
        move |req, peer| handle(Arc::clone(&state), req, peer),
        rx.clone(),
        drain,
        move || shed_counter.inc(),
    ));
    let admin_state = Arc::new(AdminState::new(AdminParts {
        metrics: Arc::clone(&metrics),
        cache: Arc::clone(&cache),
        readiness: Arc::clone(&readiness),
        store: Arc::clone(&store),
        quota_limits: Arc::clone(&quota_limits),
        ledger: Arc::clone(&ledger),
        bindings: Arc::clone(&bindings),
        backends: config.backends.iter().map(|b| b.id.clone()).collect(),
        token: config.admin.token.clone(),
        protect_metrics: config.admin.protect_metrics,
        protect_probes: config.admin.protect_probes,
        upstreams: Arc::clone(&upstream_health),
    }));
    if let Some(a) = &audit {
        admin_state.install_audit(Arc::clone(a) as Arc<dyn crate::admin::audit_seam::AuditQuery>);
    }
    let admin = Arc::clone(&admin_state);
    let admin_task = tokio::spawn(serve(
        admin_listener,
        ListenerLimits {
            max_connections: config.admin.max_connections,
            max_header_bytes: config.admin.max_header_bytes,
            max_headers: config.admin.max_headers,
            header_read_timeout: config.admin.header_read_timeout,
            idle_timeout: config.admin.idle_timeout,
        },
        move |req, peer| crate::admin::handle(Arc::clone(&admin_state), req, peer),
        rx.clone(),
        Duration::from_secs(1),
        || {},
    ));
    let housekeeping = spawn_housekeeping(rate_limits, HOUSEKEEPING_INTERVAL, rx.clone());
    let limit_poller = persist::spawn_limit_poller(
        Arc::clone(&store),
        Arc::clone(&quota_limits),
        config.s3_proxy.credential_poll_interval,
        rx.clone(),
    );
    let browser_poller = crate::cors::store::spawn_poller(
        Arc::clone(&store),
        Arc::clone(&cors),
        Arc::clone(&bindings),
        config.s3_proxy.credential_poll_interval,
        rx.clone(),
    );
    let usage_flusher = persist::spawn_usage_flusher(
        Arc::clone(&store),
        Arc::clone(&ledger),
        persist::USAGE_FLUSH_INTERVAL,
        rx.clone(),
    );
    // Boot scan, periodic scans, new limits, `stowage quota recount` requests.
    let scan_runner = spawn_scan_runner(
        Arc::clone(&scanner),
        Arc::clone(&quota_limits),
        config.quotas.scan_interval,
        rx.clone(),
    );
    // Start-up never waits on a backend: reachability is probed in the background.
    let probes = spawn_probes(
        backends.values().map(ProbeTarget::from).collect(),
        Arc::clone(&upstream_health),
        config.upstream.connect_timeout,
        config.upstream.probe_interval,
        rx.clone(),
    );
    let mut stop_poller = rx;
    let poller_task = tokio::spawn(async move {
        let _ = stop_poller.changed().await;
        poller.abort();
    });

    let kubernetes_tasks = match kubernetes {
        Some((client, apiserver, informer_metrics)) => {
            let sinks = Sinks {
                credentials: Arc::clone(&cache),
                limits: Arc::clone(&quota_limits),
                bindings: Arc::clone(&bindings),
            };
            spawn_kubernetes(
                config,
                client,
                &apiserver,
                sinks,
                informer_metrics,
                &readiness,
                &shutdown,
            )
        }
        None => {
            readiness.set_ready(true);
            Vec::new()
        }
    };
    tracing::info!(%s3_addr, %admin_addr, credentials = cache.len(crate::credentials::cache::SourceKind::Sqlite), "stowage is serving");
    Ok(Running {
        s3_addr,
        admin_addr,
        cache,
        metrics,
        readiness,
        store,
        quota_limits,
        ledger,
        scanner,
        bindings,
        cors,
        admin,
        audit,
        upstream_health,
        drain_delay: config.server.drain_delay,
        shutdown_timeout: config.server.shutdown_timeout,
        kubernetes_tasks,
        shutdown,
        tasks: [
            s3_task,
            admin_task,
            poller_task,
            housekeeping,
            limit_poller,
            browser_poller,
            usage_flusher,
            scan_runner,
        ]
        .into_iter()
        .chain(probes)
        .collect(),
    })
}

/// The usage scanner, with its own pooled client (admin listings never queue behind
/// tenant transfers) and its error counter registered.
fn build_scanner(
    config: &Config,
    store: &Arc<SqliteStore>,
    ledger: &Arc<dyn UsageLedger>,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Scanner>> {
    let errors = scan_errors_counter();
    metrics
        .registry
        .register(Box::new(errors.clone()))
        .context("metrics: cannot register the scan error counter")?;
    let client = UpstreamClient::new(&ClientOptions {
        connect_timeout: config.upstream.connect_timeout,
        response_header_timeout: config.upstream.response_header_timeout,
        read_timeout: config.upstream.read_timeout,
        pool_idle_timeout: config.upstream.pool_idle_timeout,
        pool_max_idle_per_host: config.upstream.pool_max_idle_per_host,
    });
    Ok(Scanner::new(
        client,
        build_backends(config)?,
        Arc::clone(ledger),
        Arc::clone(store) as Arc<dyn crate::quota::scanner::ScanSink>,
        errors,
    ))
}

/// Limits from `bucket_quotas` into the cache, persisted usage into the ledger: before
/// the first request, so a restart neither forgets a cap nor resets usage to zero.
fn load_quota_state(
    store: &SqliteStore,
    limits: &LimitCache,
    ledger: &dyn UsageLedger,
) -> anyhow::Result<()> {
    let n =
        persist::load_limits_into(store, limits).context("database: cannot load quota limits")?;
    let restored =
        persist::restore_usage(store, ledger).context("database: cannot load quota usage")?;
    tracing::debug!(limits = n, usage = restored, "quota state loaded");
    Ok(())
}

/// The Kubernetes client, the apiserver it talks to, and the informer's metrics, when
/// the source is enabled.
async fn kubernetes_client(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Option<(kube::Client, String, InformerMetrics)>> {
    let k = &config.s3_proxy.kubernetes;
    if !k.enabled {
        return Ok(None);
    }
    let context = "s3_proxy.kubernetes: cannot configure the Kubernetes client";
    let client_config = crate::kubernetes::client_config(k).await.context(context)?;
    let apiserver = client_config.cluster_url.to_string();
    let client = kube::Client::try_from(client_config).context(context)?;
    let m = InformerMetrics::register(&metrics.registry)
        .context("metrics: cannot register the Kubernetes informer metrics")?;
    Ok(Some((client, apiserver, m)))
}

/// Start the informer, and a gate that turns the proxy ready after its first full
/// list or `ready_timeout`, whichever comes first. Both log inside a span naming the
/// apiserver, so an operator (or a test) can tell which cluster a line is about.
fn spawn_kubernetes(
    config: &Config,
    client: kube::Client,
    apiserver: &str,
    sinks: Sinks,
    metrics: InformerMetrics,
    readiness: &Arc<Readiness>,
    shutdown: &watch::Sender<bool>,
) -> Vec<JoinHandle<()>> {
    use tracing::Instrument as _;
    let k = &config.s3_proxy.kubernetes;
    let span = tracing::info_span!("kubernetes", apiserver);
    let informer = span.in_scope(|| {
        crate::kubernetes::spawn(client, &k.namespace, sinks, metrics, shutdown.subscribe())
    });
    let gate = tokio::spawn(
        crate::kubernetes::ready_gate(
            informer.synced,
            k.ready_timeout,
            Arc::clone(readiness),
            shutdown.subscribe(),
        )
        .instrument(span),
    );
    vec![informer.task, gate]
}

/// kube-client logs the whole body of a response it cannot decode at `warn`; for a
/// Secret list that body is credentials. Its errors reach us typed instead.
const KUBE_LOGS: &str = "kube_client=error,kube_runtime=warn";

/// Install the tracing subscriber. Signing internals and the embedded upstream's
/// request dumps are always silenced: they would carry signatures.
pub fn init_logging(level: &str, json: bool) {
    let directives = format!(
        "{level},aws_sigv4=off,s3s=warn,s3s_fs=warn,hyper=warn,hyper_util=warn,{KUBE_LOGS}"
    );
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
