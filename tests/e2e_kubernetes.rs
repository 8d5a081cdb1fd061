//! The Kubernetes credential source end to end: Secrets in the fake apiserver (real
//! list/watch protocol, driven by the real `kube` client inside the proxy), requests
//! from the real aws-sdk-s3 client, through the proxy, to the in-process s3s-fs
//! upstream that checks SigV4. Every wait polls with a deadline.

mod common;
#[path = "e2e_kubernetes/support.rs"]
mod support;

use std::time::Duration;

use common::{BACKEND, BUCKET, scope};
use stowage::credentials::model::Access;
use stowage::credentials::sqlite::NewCredential;
use stowage::quota::limits::LimitSource;
use stowage::quota::{BucketKey, Limits};
use stowage::secret::SecretKey;
use support::{Kube, eventually, expiring, keypair, logs, start, start_prepared, vc};
use time::OffsetDateTime;

const EVENTS: &str = "stowage_kubernetes_watch_events_total";
const RELISTS: &str = "stowage_kubernetes_relists_total";
const ERRORS: &str = "stowage_kubernetes_watch_errors_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_secret_works_through_the_proxy_and_shows_in_the_metrics() {
    let k = start().await;
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-added", &ak, &sk, &[]));
    k.works(&ak, &sk).await;
    k.h.client(&ak, &sk)
        .put_object()
        .bucket(BUCKET)
        .key("from-kubernetes")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .expect("a Kubernetes credential writes");
    assert_eq!(k.h.read_upstream(BUCKET, "from-kubernetes").await, b"hello");

    let cache_size = "stowage_s3_credential_cache_size";
    assert_eq!(k.metric(cache_size, &[("source", "kubernetes")]), 1.0);
    assert!(k.metric(EVENTS, &[("type", "added")]) >= 1.0);
    assert!(k.metric(RELISTS, &[]) >= 1.0);
    assert_eq!(k.metric("stowage_kubernetes_synced", &[]), 1.0);
    let last = k.metric("stowage_kubernetes_last_event_timestamp_seconds", &[]);
    assert!(last > 1.7e9, "last event timestamp {last}");
    let text = k.h.metrics_text();
    assert!(
        text.contains("stowage_kubernetes_watch_errors_total"),
        "{text}"
    );
    assert_eq!(k.informer_lines("informer started").len(), 1);

    // A BOOKMARK only moves the informer's resourceVersion on: no relist, and the next
    // Secret arrives over the same watch.
    let lists = k.fake.list_count();
    k.fake.bookmark();
    let (ak2, sk2) = keypair();
    k.fake.upsert(vc("vc-after-bookmark", &ak2, &sk2, &[]));
    k.works(&ak2, &sk2).await;
    assert_eq!(
        k.fake.list_count(),
        lists,
        "a bookmark never forces a relist"
    );
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_serves_both_keys_during_the_overlap_then_only_the_new_one() {
    let k = start().await;
    let (old_ak, old_sk) = keypair();
    let (new_ak, new_sk) = keypair();
    k.fake.upsert(vc("vc-old", &old_ak, &old_sk, &[]));
    k.works(&old_ak, &old_sk).await;
    k.fake.upsert(vc("vc-new", &new_ak, &new_sk, &[]));
    k.works(&new_ak, &new_sk).await;
    assert!(
        k.access(&old_ak, &old_sk).await.is_ok(),
        "overlap: the old key still works"
    );
    // The operator ends the overlap by stamping expires-at, then sweeps the Secret.
    let past = OffsetDateTime::now_utc() - Duration::from_secs(1);
    k.fake
        .upsert(expiring(vc("vc-old", &old_ak, &old_sk, &[]), past));
    k.refused(&old_ak, &old_sk).await;
    assert!(k.fake.delete("vc-old"));
    k.refused(&old_ak, &old_sk).await;
    assert!(k.access(&new_ak, &new_sk).await.is_ok());
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_is_refused() {
    let k = start().await;
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-deleted", &ak, &sk, &[]));
    k.works(&ak, &sk).await;
    assert!(k.fake.delete("vc-deleted"));
    k.refused(&ak, &sk).await;
    assert!(k.metric(EVENTS, &[("type", "deleted")]) >= 1.0);
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_wins_a_collision_with_sqlite_and_sqlite_shows_through_after_delete() {
    let k = start().await;
    let (ak, sql_sk) = keypair();
    let (_, kube_sk) = keypair();
    k.h.store()
        .insert_credential_with_secret(
            &ak,
            &SecretKey::new(sql_sk.clone()),
            NewCredential {
                backend: BACKEND.to_owned(),
                scopes: vec![scope(BUCKET, Access::ReadWrite)],
                expires_at: None,
                description: "collides with a Secret".to_owned(),
                enabled: true,
            },
        )
        .expect("insert SQLite credential");
    k.h.reload();
    k.works(&ak, &sql_sk).await;
    k.fake.upsert(vc("vc-collide", &ak, &kube_sk, &[]));
    k.works(&ak, &kube_sk).await;
    assert_eq!(
        k.access(&ak, &sql_sk).await,
        Err(Some(403)),
        "the SQLite secret is shadowed"
    );
    // Several lookups of the shadowed key, one log line (the key is this test's own).
    for _ in 0..3 {
        assert!(k.access(&ak, &kube_sk).await.is_ok());
    }
    let shadow_lines = logs()
        .lines()
        .filter(|l| l.contains("the Kubernetes entry shadows the SQLite one") && l.contains(&ak))
        .count();
    assert_eq!(shadow_lines, 1, "the shadowing is logged once per key");
    assert!(k.fake.delete("vc-collide"));
    k.works(&ak, &sql_sk).await;
    assert_eq!(k.access(&ak, &kube_sk).await, Err(Some(403)));
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_deleted_while_disconnected_is_gone_after_the_relist() {
    let k = start().await;
    let (gone_ak, gone_sk) = keypair();
    let (kept_ak, kept_sk) = keypair();
    k.fake.upsert(vc("vc-gone", &gone_ak, &gone_sk, &[]));
    k.fake.upsert(vc("vc-kept", &kept_ak, &kept_sk, &[]));
    k.works(&gone_ak, &gone_sk).await;
    k.works(&kept_ak, &kept_sk).await;
    let relists = k.metric(RELISTS, &[]);

    k.fake.set_down(true);
    assert!(k.fake.delete("vc-gone"));
    // Compact the history: the watch cannot resume, only a relist can show the delete.
    k.fake.expire_watches();
    assert!(
        k.access(&gone_ak, &gone_sk).await.is_ok(),
        "the last list is served while the apiserver is unreachable"
    );
    k.fake.set_down(false);

    k.refused(&gone_ak, &gone_sk).await;
    assert!(k.metric(RELISTS, &[]) > relists, "removed by a relist");
    assert!(k.access(&kept_ak, &kept_sk).await.is_ok());
    assert!(k.metric(ERRORS, &[]) >= 1.0);
    assert!(
        !k.informer_lines("informer disconnected, reconnecting")
            .is_empty()
    );
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_access_key_change_refuses_the_old_key() {
    let k = start().await;
    let (old_ak, sk) = keypair();
    let (new_ak, _) = keypair();
    k.fake.upsert(vc("vc-inplace", &old_ak, &sk, &[]));
    k.works(&old_ak, &sk).await;
    k.fake.upsert(vc("vc-inplace", &new_ak, &sk, &[]));
    k.works(&new_ak, &sk).await;
    assert_eq!(k.access(&old_ak, &sk).await, Err(Some(403)));
    assert!(k.metric(EVENTS, &[("type", "modified")]) >= 1.0);
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_makes_a_secret_invalid_refuses_it_and_logs_why() {
    let k = start().await;
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-invalid", &ak, &sk, &[]));
    k.works(&ak, &sk).await;
    k.fake
        .upsert(vc("vc-invalid", &ak, &sk, &[("quota_hard_bytes", "-5")]));
    k.refused(&ak, &sk).await;
    let line = logs()
        .lines()
        .find(|l| l.contains("stowage-system/vc-invalid") && l.contains("is invalid"))
        .map(str::to_owned)
        .expect("a warning names the Secret");
    assert!(
        line.contains("WARN") && line.contains("quota_hard_bytes"),
        "{line}"
    );
    assert!(!line.contains(&sk), "the secret never reaches a log");
    assert_eq!(k.metric("stowage_kubernetes_invalid_secrets", &[]), 1.0);
    // Fixed: served again.
    k.fake.upsert(vc("vc-invalid", &ak, &sk, &[]));
    k.works(&ak, &sk).await;
    assert_eq!(k.metric("stowage_kubernetes_invalid_secrets", &[]), 0.0);
    assert!(!logs().contains(&sk), "no Secret value in any log line");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_secret_is_refused() {
    let k = start().await;
    let (ak, sk) = keypair();
    let past = OffsetDateTime::now_utc() - Duration::from_secs(60);
    k.fake
        .upsert(expiring(vc("vc-expired", &ak, &sk, &[]), past));
    k.cached(&ak).await;
    assert_eq!(k.access(&ak, &sk).await, Err(Some(403)));
    // The same Secret with a future expiry works.
    let future = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    k.fake
        .upsert(expiring(vc("vc-expired", &ak, &sk, &[]), future));
    k.works(&ak, &sk).await;
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_stream_410_relists_and_the_watch_resumes() {
    let k = start().await;
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-before", &ak, &sk, &[]));
    k.works(&ak, &sk).await;
    let (relists, lists) = (k.metric(RELISTS, &[]), k.fake.list_count());
    k.fake.expire_watches();
    eventually("a relist after the 410", || async {
        k.metric(RELISTS, &[]) > relists
    })
    .await;
    assert!(k.fake.list_count() > lists);
    assert!(k.metric(ERRORS, &[("kind", "expired")]) >= 1.0);
    let (ak2, sk2) = keypair();
    k.fake.upsert(vc("vc-after", &ak2, &sk2, &[]));
    k.works(&ak2, &sk2).await;
    assert!(
        k.access(&ak, &sk).await.is_ok(),
        "the relist kept the existing key"
    );
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_first_list_while_sqlite_credentials_are_served() {
    let k = start_prepared(
        |f| f.set_down(true),
        |c| {
            c.s3_proxy.kubernetes.ready_timeout = Duration::from_secs(300);
        },
    )
    .await;
    let (sql_ak, sql_sk) = k.h.bucket_credential(Access::ReadWrite);
    k.works(&sql_ak, &sql_sk).await;
    assert_eq!(k.readyz().await, 503, "no full list yet");
    assert_eq!(k.metric("stowage_kubernetes_synced", &[]), 0.0);
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-late", &ak, &sk, &[]));
    k.fake.set_down(false);
    k.wait_ready().await;
    k.works(&ak, &sk).await;
    assert!(!k.informer_lines("informer reconnected").is_empty());
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_apiserver_turns_ready_after_the_timeout_and_keeps_retrying() {
    let k = start_prepared(
        |f| f.set_down(true),
        |c| {
            c.s3_proxy.kubernetes.ready_timeout = Duration::from_secs(5);
        },
    )
    .await;
    assert_eq!(k.readyz().await, 503);
    k.wait_ready().await;
    let (sql_ak, sql_sk) = k.h.bucket_credential(Access::ReadWrite);
    k.works(&sql_ak, &sql_sk).await;
    assert!(k.metric(ERRORS, &[]) >= 1.0);
    assert_eq!(
        k.metric(
            "stowage_s3_credential_cache_size",
            &[("source", "kubernetes")]
        ),
        0.0
    );
    assert_eq!(
        k.informer_lines("ready with SQLite credentials only").len(),
        1
    );
    // The apiserver comes back: the informer catches up without a restart.
    let (ak, sk) = keypair();
    k.fake.upsert(vc("vc-back", &ak, &sk, &[]));
    k.fake.set_down(false);
    k.works(&ak, &sk).await;
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_kubeconfig_fails_start_with_the_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = stowage::config::Config::default();
    config.s3_proxy.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    config.database.path = dir.path().join("db");
    config.database.secret_key_file = dir.path().join("key");
    config.s3_proxy.kubernetes.enabled = true;
    config.s3_proxy.kubernetes.kubeconfig = Some(dir.path().join("missing-kubeconfig"));
    let key = stowage::secret::RootKey::from_bytes([7; 32]);
    let err = match stowage::app::start(&config, key).await {
        Ok(_) => panic!("a missing kubeconfig must fail start-up"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("s3_proxy.kubernetes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_quota_shadows_sqlite_updates_live_and_survives_one_of_two_deletes() {
    let k = start().await;
    let key = BucketKey::new(BACKEND, BUCKET);
    let hard = |n: u64| Limits {
        hard_bytes: Some(n),
        ..Limits::default()
    };
    k.h.store().set_limits(&key, hard(5)).expect("SQLite limit");
    limit_becomes(&k, &key, (hard(5), LimitSource::Sqlite)).await;
    let (a_ak, a_sk) = keypair();
    let (b_ak, b_sk) = keypair();
    k.fake.upsert(vc(
        "vc-quota-a",
        &a_ak,
        &a_sk,
        &[("quota_hard_bytes", "1000")],
    ));
    k.fake.upsert(vc(
        "vc-quota-b",
        &b_ak,
        &b_sk,
        &[("quota_hard_bytes", "1000")],
    ));
    limit_becomes(&k, &key, (hard(1000), LimitSource::Kubernetes)).await;
    k.works(&a_ak, &a_sk).await;
    assert!(k.fake.delete("vc-quota-a"));
    k.refused(&a_ak, &a_sk).await;
    let limits = &k.h.running().quota_limits;
    assert_eq!(
        limits.effective(&key),
        Some((hard(1000), LimitSource::Kubernetes))
    );
    k.fake.upsert(vc(
        "vc-quota-b",
        &b_ak,
        &b_sk,
        &[("quota_hard_bytes", "2000")],
    ));
    limit_becomes(&k, &key, (hard(2000), LimitSource::Kubernetes)).await;
    assert!(k.fake.delete("vc-quota-b"));
    limit_becomes(&k, &key, (hard(5), LimitSource::Sqlite)).await;
    k.shutdown().await;
}

async fn limit_becomes(k: &Kube, key: &BucketKey, want: (Limits, LimitSource)) {
    let limits = &k.h.running().quota_limits;
    let what = format!("the effective limit is {want:?}");
    eventually(&what, || async { limits.effective(key) == Some(want) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_binding_secret_serves_unsigned_reads_through_the_proxy_until_deleted() {
    let k = start_prepared(|_| {}, |c| c.s3_proxy.anonymous_enabled = true).await;
    k.wait_ready().await;
    k.h.put_upstream(BUCKET, "public.txt", b"hello anyone")
        .await;
    let url = format!("http://{}/{BUCKET}/public.txt", k.h.s3_addr);
    let get = || async {
        reqwest::get(&url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(get().await, 403, "not bound yet");
    let binding = common::fake_apiserver::secret(
        "anon-team-public",
        "anonymous-binding",
        &[],
        &[
            ("bucket_name", BUCKET),
            ("backend", BACKEND),
            ("anonymous_mode", "ReadOnly"),
        ],
    );
    k.fake.upsert(binding);
    eventually("the unsigned GET is served", || async {
        get().await == 200
    })
    .await;
    let body = reqwest::get(&url)
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&body[..], b"hello anyone");
    assert!(k.fake.delete("anon-team-public"));
    eventually("the unsigned GET is refused again", || async {
        get().await == 403
    })
    .await;
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_quota_refuses_writes_through_the_proxy_and_a_raise_applies_live() {
    let k = start().await;
    let key = BucketKey::new(BACKEND, BUCKET);
    let hard = |n: u64| Limits {
        hard_bytes: Some(n),
        ..Limits::default()
    };
    // SQLite alone would admit the write; the Secret's tighter cap shadows it.
    k.h.store()
        .set_limits(&key, hard(1 << 20))
        .expect("SQLite limit");
    let (ak, sk) = keypair();
    k.fake
        .upsert(vc("vc-capped", &ak, &sk, &[("quota_hard_bytes", "100")]));
    limit_becomes(&k, &key, (hard(100), LimitSource::Kubernetes)).await;
    k.works(&ak, &sk).await;
    let put = |len: usize| {
        let client = k.h.client(&ak, &sk);
        async move {
            client
                .put_object()
                .bucket(BUCKET)
                .key("capped-by-kubernetes")
                .body(vec![7u8; len].into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| common::clients::status_and_code(&e))
        }
    };
    assert_eq!(
        put(500).await,
        Err((Some(507), Some("QuotaExceeded".to_owned()))),
        "over the Kubernetes cap"
    );
    assert!(
        !k.h.exists_upstream(BUCKET, "capped-by-kubernetes").await,
        "a refused write leaves no object"
    );
    // The operator raises the cap in the Secret: effective without a rotation.
    k.fake
        .upsert(vc("vc-capped", &ak, &sk, &[("quota_hard_bytes", "1000")]));
    limit_becomes(&k, &key, (hard(1000), LimitSource::Kubernetes)).await;
    put(500).await.expect("under the raised cap");
    assert_eq!(
        k.h.read_upstream(BUCKET, "capped-by-kubernetes").await,
        vec![7u8; 500]
    );
    k.shutdown().await;
}
