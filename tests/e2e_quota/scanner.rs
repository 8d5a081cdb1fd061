//! The usage scanner through the real proxy: a bucket is measured as soon as its limit
//! appears, periodic scans correct drift from writes made directly upstream, a
//! recount requested through the store (as `stowage quota recount` does) is picked
//! up, and a failing scan keeps the last known usage.

use std::time::Duration;

use stowage::credentials::model::Access;

use super::{harness, usage};
use crate::common::clients::Expect as _;
use crate::common::quota::{
    KIB, hard, key, listed, set_limits, used, wait_known, wait_until, wait_used,
};
use crate::common::{Harness, UpstreamKind, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_limit_is_scanned_at_once_and_periodic_scans_correct_drift() {
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.quotas.scan_interval = Duration::from_secs(1);
    })
    .await
    .expect("harness");
    for (k, n) in [("x", 3), ("y", 5)] {
        h.put_upstream(&h.bucket, k, &pattern(n * 1024, 1)).await;
    }
    set_limits(&h, &h.bucket, hard(1024 * KIB));
    wait_known(&h, &h.bucket).await;
    assert_eq!(used(&h, &h.bucket), usage(8 * KIB, 2), "measured, not zero");

    // Out of band: written straight to the upstream, never seen by the proxy.
    h.put_upstream(&h.bucket, "z", &pattern(13 * 1024, 2)).await;
    let truth = listed(&h, &h.bucket).await;
    assert_eq!(truth, usage(21 * KIB, 3));
    assert_eq!(
        wait_used(&h, &h.bucket, truth).await,
        truth,
        "drift corrected"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recount_requested_through_the_store_is_picked_up() {
    let h = harness().await;
    set_limits(&h, &h.bucket, hard(1024 * KIB));
    wait_known(&h, &h.bucket).await;
    h.put_upstream(&h.bucket, "drift", &pattern(7 * 1024, 3))
        .await;
    // The periodic scan is minutes away: nothing corrects the drift by itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(used(&h, &h.bucket), usage(0, 0), "not rescanned on its own");

    // What `stowage quota recount` does, from a second connection to the database.
    let cli = h.second_store();
    let asked = cli
        .request_recount(&key(&h.bucket))
        .expect("request a recount");
    let answered = wait_until(Duration::from_secs(5), || async {
        cli.pending_recounts().expect("pending").is_empty()
    })
    .await;
    assert!(answered, "the proxy answered the recount within 5 s");
    let row = cli
        .usage_of(&key(&h.bucket))
        .expect("usage row")
        .expect("a row");
    assert!(row.scanned_at.is_some_and(|t| t >= asked), "a fresh scan");
    assert_eq!(row.usage, usage(7 * KIB, 1), "the answer is persisted");
    assert_eq!(used(&h, &h.bucket), usage(7 * KIB, 1));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scan_keeps_the_last_known_usage() {
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.quotas.scan_interval = Duration::from_secs(1);
        c.upstream.pool_max_idle_per_host = 0;
    })
    .await
    .expect("harness");
    set_limits(&h, &h.bucket, hard(100 * KIB));
    wait_known(&h, &h.bucket).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    h.client(&ak, &sk)
        .put_object()
        .bucket(&h.bucket)
        .key("kept")
        .body(pattern(40 * 1024, 4).into())
        .send()
        .await
        .expect_ok("PutObject");
    let before = used(&h, &h.bucket);
    assert_eq!(before, usage(40 * KIB, 1));
    let errors = |h: &Harness| h.metric("stowage_quota_scan_errors_total", &[]);
    assert_eq!(errors(&h), 0.0);

    h.stop_upstream();
    let failed = wait_until(Duration::from_secs(5), || async { errors(&h) >= 1.0 }).await;
    assert!(failed, "a scan ran against the stopped upstream and failed");
    let v = super::view(&h, &h.bucket).expect("view");
    assert!(v.known, "still known");
    assert_eq!(v.used, before, "a failed scan changes nothing");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_never_measured_bucket_waits_for_its_scan_and_never_fails_open() {
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.upstream.pool_max_idle_per_host = 0;
    })
    .await
    .expect("harness");
    h.put_upstream(&h.bucket, "old", &pattern(6 * 1024, 5))
        .await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    // No waiting for the scanner: the write itself needs the usage and gets it.
    set_limits(&h, &h.bucket, hard(10 * KIB));
    c.put_object()
        .bucket(&h.bucket)
        .key("new")
        .body(pattern(3 * 1024, 6).into())
        .send()
        .await
        .expect_ok("admitted against the measured usage");
    assert_eq!(used(&h, &h.bucket), usage(9 * KIB, 2));

    // A bucket whose usage cannot be measured is refused with a retryable 503.
    h.create_bucket_upstream("unmeasured").await;
    let (ak, sk) = h.credential(vec![crate::common::scope("unmeasured", Access::ReadWrite)]);
    let c = h.client(&ak, &sk);
    h.stop_upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    set_limits(&h, "unmeasured", hard(10 * KIB));
    let err = c
        .put_object()
        .bucket("unmeasured")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("usage unknown");
    assert_eq!(
        crate::common::clients::status_and_code(&err),
        (Some(503), Some("ServiceUnavailable".to_owned()))
    );
    assert_eq!(
        h.metric(
            "stowage_quota_rejections_total",
            &[("reason", "usage_unknown")]
        ),
        1.0
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recount_cli_is_answered_by_the_running_proxy_with_a_fresh_scan() {
    let h = harness().await;
    set_limits(&h, &h.bucket, hard(1024 * KIB));
    wait_known(&h, &h.bucket).await;
    // Out of band: only a scan can see it, and the periodic one is minutes away.
    h.put_upstream(&h.bucket, "drift", &pattern(9 * 1024, 3))
        .await;
    let dir = h.temp_dir().to_path_buf();
    let config = dir.join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\npath = \"{}\"\nsecret_key_file = \"{}\"\n\n[[backends]]\nid = \"{}\"\n\
             endpoint = \"{}\"\naccess_key_id = \"cli\"\nsecret_access_key_env = \"CLI_BACKEND_SECRET\"\n",
            dir.join("stowage.db").display(),
            dir.join("cli-unused.key").display(),
            crate::common::BACKEND,
            h.upstream_endpoint,
        ),
    )
    .expect("write the CLI config");
    let (root, bucket) = (h.root_key_hex(), h.bucket.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["quota", "recount", &bucket, "--timeout", "20s", "--config"])
            .arg(&config)
            .env("STOWAGE_SECRET_KEY", root)
            .env("CLI_BACKEND_SECRET", "unused")
            .env_remove("STOWAGE_CONFIG")
            .output()
            .expect("run stowage quota recount")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "recount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains(&h.bucket) && l.contains("9 KiB"))
        .unwrap_or_else(|| panic!("the CLI prints the recounted usage:\n{stdout}"));
    assert!(line.contains(" 1 "), "one object: {line}");
    assert_eq!(
        used(&h, &h.bucket),
        usage(9 * KIB, 1),
        "the proxy's ledger too"
    );
    h.shutdown().await;
}
