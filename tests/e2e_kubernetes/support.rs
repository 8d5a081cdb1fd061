//! The Kubernetes e2e harness: the fake apiserver, the proxy configured to watch it
//! (through a kubeconfig, as an operator deploys it), the real upstream, and helpers
//! that poll with a deadline instead of sleeping.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use stowage::config::Config;
use stowage::credentials::cache::SourceKind;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::fake_apiserver::{FakeApiServer, secret};
use crate::common::{BACKEND, BUCKET, Harness, UpstreamKind, clients};

pub const NS: &str = "stowage-system";
/// Generous: after an outage kube-runtime's backoff can wait up to 30 s per retry.
pub const WAIT: Duration = Duration::from_secs(45);
pub const ROLE: &str = "virtual-credential";

/// The fake apiserver plus a proxy watching it.
pub struct Kube {
    pub h: Harness,
    pub fake: FakeApiServer,
    _dir: TempDir,
}

/// Start the fake (empty), then the proxy, and wait until it is ready.
pub async fn start() -> Kube {
    let k = start_prepared(|_| {}, |_| {}).await;
    k.wait_ready().await;
    k
}

/// Start the proxy against a fake prepared by `prepare` and configured by `adjust`,
/// without waiting for readiness.
pub async fn start_prepared(
    prepare: impl FnOnce(&FakeApiServer),
    adjust: impl FnOnce(&mut Config),
) -> Kube {
    crate::common::logs::capture();
    let fake = FakeApiServer::start(NS).await;
    prepare(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.s3_proxy.kubernetes.enabled = true;
        c.s3_proxy.kubernetes.namespace = NS.to_owned();
        c.s3_proxy.kubernetes.kubeconfig = Some(kubeconfig);
        // Refused probes must not trip the per-IP limit on unauthenticated traffic.
        c.s3_proxy.unauthenticated_per_ip_rps = 0;
        adjust(c);
    })
    .await
    .expect("the s3s-fs harness always starts");
    Kube { h, fake, _dir: dir }
}

impl Kube {
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.h.admin_addr);
        eventually("/readyz is 200", || async { readyz(&url).await == 200 }).await;
    }

    pub async fn readyz(&self) -> u16 {
        readyz(&format!("http://{}/readyz", self.h.admin_addr)).await
    }

    /// ListObjectsV2 on the harness bucket through the proxy: `Ok` or the HTTP status.
    pub async fn access(&self, ak: &str, sk: &str) -> Result<(), Option<u16>> {
        self.h
            .client(ak, sk)
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| clients::status(&e))
    }

    pub async fn works(&self, ak: &str, sk: &str) {
        let what = format!("{ak} works through the proxy");
        eventually(&what, || async { self.access(ak, sk).await.is_ok() }).await;
    }

    pub async fn refused(&self, ak: &str, sk: &str) {
        let what = format!("{ak} is refused with 403");
        eventually(&what, || async {
            self.access(ak, sk).await == Err(Some(403))
        })
        .await;
    }

    /// Wait until the informer has applied a Secret carrying `ak`.
    pub async fn cached(&self, ak: &str) {
        let cache = &self.h.running().cache;
        eventually(&format!("{ak} is cached"), || async {
            cache.get(SourceKind::Kubernetes, ak).is_some()
        })
        .await;
    }

    /// The log lines of this test's informer that contain `text`: every informer line
    /// carries its apiserver's address (a span field), and each test has its own fake,
    /// so lines from tests running in parallel never count.
    pub fn informer_lines(&self, text: &str) -> Vec<String> {
        let url = self.fake.url();
        logs()
            .lines()
            .filter(|l| l.contains(&url) && l.contains(text))
            .map(str::to_owned)
            .collect()
    }

    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.h.metric(name, labels)
    }

    pub async fn shutdown(self) {
        self.h.shutdown().await;
    }
}

async fn readyz(url: &str) -> u16 {
    match reqwest::get(url).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Poll `check` every 50 ms until it holds; panic after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh key pair: an operator-style access key id and a 40-character secret.
pub fn keypair() -> (String, String) {
    let ak = format!("AKIA{}", hex::encode_upper(rand::random::<[u8; 8]>()));
    let sk = hex::encode(rand::random::<[u8; 20]>());
    (ak, sk)
}

/// A `virtual-credential` Secret for the harness bucket; `extra` adds or replaces data
/// fields (an empty value removes the field).
pub fn vc(name: &str, ak: &str, sk: &str, extra: &[(&str, &str)]) -> Secret {
    let mut data = vec![
        ("access_key_id", ak),
        ("secret_access_key", sk),
        ("backend", BACKEND),
        ("bucket_name", BUCKET),
    ];
    for (k, v) in extra {
        data.retain(|(dk, _)| dk != k);
        if !v.is_empty() {
            data.push((k, v));
        }
    }
    secret(name, ROLE, &[], &data)
}

/// `s` with `broker.stowage.io/expires-at` set to `at`.
pub fn expiring(mut s: Secret, at: OffsetDateTime) -> Secret {
    let at = at.format(&Rfc3339).expect("format RFC 3339");
    s.metadata.annotations = Some(BTreeMap::from([(
        "broker.stowage.io/expires-at".to_owned(),
        at,
    )]));
    s
}

pub use crate::common::logs::logs;
