//! Scale: 100k credential Secrets load through the informer (paginated list from the
//! fake apiserver, decoded and swapped in at once) and serve. The credential listed
//! last works through the proxy with aws-sdk-s3. Prints the load time; speed targets
//! live in `benches/kube_informer.rs`, not here.
//!
//! About 20 s in a debug build. `cargo test --test kube_scale -- --nocapture` prints
//! the times; `STOWAGE_SCALE_SECRETS` overrides the count.

mod common;

use std::time::{Duration, Instant};

use common::fake_apiserver::{FakeApiServer, secret};
use common::{BACKEND, BUCKET, Harness, UpstreamKind};
use stowage::credentials::cache::SourceKind;

const NS: &str = "stowage-system";

fn count() -> usize {
    std::env::var("STOWAGE_SCALE_SECRETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Deterministic, valid, distinct key pairs (names sort in insertion order).
fn pair(i: usize) -> (String, String) {
    (format!("AKIA{i:016}"), format!("scale-secret-{i:027}"))
}

fn fill(fake: &FakeApiServer, n: usize) {
    for i in 0..n {
        let (ak, sk) = pair(i);
        fake.upsert(secret(
            &format!("vc-{i:08}"),
            "virtual-credential",
            &[],
            &[
                ("access_key_id", &ak),
                ("secret_access_key", &sk),
                ("backend", BACKEND),
                ("bucket_name", BUCKET),
            ],
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_secrets_load_and_the_last_one_serves() {
    let n = count();
    let fake = FakeApiServer::start(NS).await;
    let t = Instant::now();
    fill(&fake, n);
    println!(
        "fake apiserver filled with {n} Secrets in {:?}",
        t.elapsed()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());

    let started = Instant::now();
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.s3_proxy.kubernetes.enabled = true;
        c.s3_proxy.kubernetes.namespace = NS.to_owned();
        c.s3_proxy.kubernetes.kubeconfig = Some(kubeconfig);
        c.s3_proxy.kubernetes.ready_timeout = Duration::from_secs(3600);
    })
    .await
    .expect("harness");
    let readiness = &h.running().readiness;
    while !readiness.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "not ready after 30 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = started.elapsed();
    let cached = h.running().cache.len(SourceKind::Kubernetes);
    println!(
        "{n} Secrets listed ({} pages) and ready in {load:?} ({:.0} Secrets/s)",
        fake.list_count(),
        n as f64 / load.as_secs_f64()
    );
    assert_eq!(cached, n, "every Secret became a credential");

    let (ak, sk) = pair(n - 1);
    let out = h
        .client(&ak, &sk)
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("the credential listed last works through the proxy");
    assert_eq!(out.key_count(), Some(0));
    let (ak0, _) = pair(0);
    let wrong = h
        .client(&ak0, "not-the-secret-of-this-key")
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await;
    assert!(wrong.is_err(), "a wrong secret is still refused at scale");
    h.shutdown().await;
}
