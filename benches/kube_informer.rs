//! Kubernetes informer latency: from a Secret written to the fake apiserver to the
//! credential being effective in the cache (what a tenant waits for after the
//! operator mints a key), through the real kube client, watch stream, decode and
//! cache update. Measured with an empty namespace and with a large one already
//! listed, to show that an event costs the same however many Secrets exist.
//!
//! Run: `cargo bench --bench kube_informer`. `STOWAGE_BENCH_EVENTS` (default 300) and
//! `STOWAGE_BENCH_BASE` (default 20000) change the sizes; `cargo test --benches` runs a
//! small smoke version.

#[path = "../tests/common/fake_apiserver/mod.rs"]
#[allow(dead_code)]
mod fake_apiserver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, secret};
use k8s_openapi::api::core::v1::Secret;
use stowage::config::KubernetesConfig;
use stowage::credentials::anonymous::BindingCache;
use stowage::credentials::cache::{CredentialCache, CredentialLookup};
use stowage::kubernetes::{InformerMetrics, Sinks};
use stowage::quota::LimitCache;
use tokio::sync::watch;

const NS: &str = "stowage-system";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A credential Secret; with `quota`, it carries a hard limit on its own bucket.
fn vc(i: usize, tag: &str, quota: bool) -> (String, Secret) {
    let ak = format!("AKIA{tag}{i:012}");
    let sk = format!("bench-secret-{i:027}");
    let bucket = format!("bench-{}-{i}", tag.to_lowercase());
    let mut data = vec![
        ("access_key_id", ak.as_str()),
        ("secret_access_key", sk.as_str()),
        ("backend", "primary"),
        ("bucket_name", bucket.as_str()),
    ];
    if quota {
        data.push(("quota_hard_bytes", "1073741824"));
    }
    let name = format!("vc-{tag}-{i:08}").to_lowercase();
    let s = secret(&name, "virtual-credential", &[], &data);
    (ak, s)
}

/// The informer against a fake holding `base` Secrets, synced.
async fn informer(
    base: usize,
    quota: bool,
) -> (
    FakeApiServer,
    Arc<CredentialCache>,
    watch::Sender<bool>,
    tempfile::TempDir,
) {
    let fake = FakeApiServer::start(NS).await;
    for i in 0..base {
        fake.upsert(vc(i, "BASE", quota).1);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = KubernetesConfig {
        enabled: true,
        namespace: NS.to_owned(),
        kubeconfig: Some(fake.write_kubeconfig(dir.path())),
        ..KubernetesConfig::default()
    };
    let client = stowage::kubernetes::client(&cfg).await.expect("client");
    let cache = Arc::new(CredentialCache::new());
    let sinks = Sinks {
        credentials: Arc::clone(&cache),
        limits: Arc::new(LimitCache::new()),
        bindings: Arc::new(BindingCache::new()),
    };
    let (stop, rx) = watch::channel(false);
    let metrics = InformerMetrics::unregistered().expect("metrics");
    let mut handle = stowage::kubernetes::spawn(client, NS, sinks, metrics, rx);
    let t = Instant::now();
    handle.synced.wait_for(|s| *s).await.expect("synced");
    println!("  listed {base} Secrets in {:?}", t.elapsed());
    (fake, cache, stop, dir)
}

/// Upsert → effective latency of `events` new Secrets, one at a time.
async fn measure(
    fake: &FakeApiServer,
    cache: &CredentialCache,
    events: usize,
    quota: bool,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(events);
    for i in 0..events {
        let (ak, s) = vc(i, "EVT", quota);
        let t = Instant::now();
        fake.upsert(s);
        while cache.lookup(&ak).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "event {i} never applied"
            );
            tokio::task::yield_now().await;
        }
        out.push(t.elapsed());
    }
    out
}

fn report(label: &str, mut d: Vec<Duration>) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    println!(
        "{label}: {} events, p50 {:?}, p99 {:?}, max {:?}",
        d.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` (CI's smoke run) does not.
    let full = std::env::args().any(|a| a == "--bench");
    let events = env("STOWAGE_BENCH_EVENTS", if full { 300 } else { 20 });
    let base = env("STOWAGE_BENCH_BASE", if full { 20_000 } else { 200 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for (base, quota) in [(0, false), (base, false), (0, true), (base, true)] {
            let q = if quota { "with" } else { "without" };
            println!(
                "kube_informer: watch event → effective credential, {base} Secrets already \
                 listed, {q} quota fields"
            );
            let (fake, cache, stop, _dir) = informer(base, quota).await;
            let d = measure(&fake, &cache, events, quota).await;
            report(&format!("  base {base}, {q} quota"), d);
            let _ = stop.send(true);
        }
    });
}
