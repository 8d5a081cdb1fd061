//! Usage survives a restart: the proxy persists it, and a restarted proxy enforces
//! the cap from the persisted value even when its first scan cannot reach the
//! upstream (a failed scan never opens the gate, and "unknown" is never assumed to
//! be zero). Built without the shared harness, because the proxy must stop and
//! start again over the same database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stowage::app::Running;
use stowage::config::{Backend, Config};
use stowage::credentials::model::Access;
use stowage::credentials::sqlite::NewCredential;
use stowage::quickstart::upstream::spawn_fs_upstream;
use stowage::quota::ledger::UsageLedger;
use stowage::secret::{RootKey, SecretKey};

use super::usage;
use crate::common::clients::{Expect as _, Recorder, sdk_client, status_and_code};
use crate::common::quota::{KIB, hard, key, wait_until};
use crate::common::{BACKEND, BUCKET, REGION, metric_value, pattern, scope};

fn config(dir: &Path, endpoint: &str, ak: &str, sk: &str) -> Config {
    let mut config = Config::default();
    config.s3_proxy.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    config.server.shutdown_timeout = Duration::from_secs(2);
    config.database.path = dir.join("stowage.db");
    config.database.secret_key_file = dir.join("stowage.key");
    config.backends = vec![Backend {
        id: BACKEND.to_owned(),
        endpoint: endpoint.parse().expect("endpoint"),
        region: REGION.to_owned(),
        access_key_id: ak.to_owned(),
        secret_access_key: SecretKey::new(sk),
    }];
    config
}

fn ledger_used(r: &Running) -> Option<stowage::quota::ledger::Usage> {
    let ledger: &Arc<dyn UsageLedger> = &r.ledger;
    ledger
        .view(&key(BUCKET))
        .filter(|v| v.known)
        .map(|v| v.used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_a_restart_even_when_the_first_scan_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ak, sk) = ("ADMINRESTART", "restart-secret");
    let upstream = spawn_fs_upstream(
        &dir.path().join("up"),
        "127.0.0.1:0".parse().expect("addr"),
        ak,
        sk,
    )
    .await
    .expect("upstream");
    let endpoint = upstream.endpoint();
    sdk_client(&endpoint, ak, sk, true, &Recorder::default())
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect_ok("create bucket");
    let root: [u8; 32] = rand::random();
    let config = config(dir.path(), &endpoint, ak, sk);

    let first = stowage::app::start(&config, RootKey::from_bytes(root))
        .await
        .expect("first start");
    first
        .store
        .set_limits(&key(BUCKET), hard(100 * KIB))
        .expect("set limits");
    first.quota_limits.set_sqlite(key(BUCKET), hard(100 * KIB));
    let (tak, tsk) = first
        .store
        .create_credential(NewCredential {
            backend: BACKEND.to_owned(),
            scopes: vec![scope(BUCKET, Access::ReadWrite)],
            expires_at: None,
            description: "restart test".to_owned(),
            enabled: true,
        })
        .expect("credential");
    first.store.reload_into(&first.cache).expect("reload");
    assert!(
        wait_until(Duration::from_secs(5), || async {
            ledger_used(&first).is_some()
        })
        .await,
        "first scan"
    );
    let tenant = |r: &Running| {
        sdk_client(
            &format!("http://{}", r.s3_addr),
            &tak,
            tsk.expose(),
            true,
            &Recorder::default(),
        )
    };
    tenant(&first)
        .put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(pattern(40 * 1024, 1).into())
        .send()
        .await
        .expect_ok("PutObject");
    assert_eq!(ledger_used(&first), Some(usage(40 * KIB, 1)));
    first.shutdown().await;

    // The upstream goes away: the restarted proxy cannot scan.
    drop(upstream);
    let second = stowage::app::start(&config, RootKey::from_bytes(root))
        .await
        .expect("second start");
    assert_eq!(
        ledger_used(&second),
        Some(usage(40 * KIB, 1)),
        "restored from the database, before any scan"
    );
    let failed = wait_until(Duration::from_secs(5), || async {
        metric_value(
            &second.metrics.render(&second.cache),
            "stowage_quota_scan_errors_total",
            &[],
        ) >= 1.0
    })
    .await;
    assert!(failed, "the boot scan failed");
    assert_eq!(ledger_used(&second), Some(usage(40 * KIB, 1)), "kept");
    let err = tenant(&second)
        .put_object()
        .bucket(BUCKET)
        .key("too-much")
        .body(pattern(70 * 1024, 2).into())
        .send()
        .await
        .expect_err("40 + 70 KiB is over the cap");
    assert_eq!(
        status_and_code(&err),
        (Some(507), Some("QuotaExceeded".to_owned())),
        "refused from the persisted usage, not admitted or left unknown"
    );
    second.shutdown().await;
}
