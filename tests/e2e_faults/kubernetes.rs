//! The Kubernetes API goes away, or comes back with its watch history gone (a restarted
//! apiserver answers the informer's old resourceVersion with an in-stream 410 Expired).
//! The documented policy (docs/kubernetes.md): the last list keeps being served while
//! the API is unreachable, readiness is a latch that stays released, and on return the
//! informer resumes (or relists after the 410) so that changes made meanwhile apply.

use std::time::{Duration, Instant};

use crate::kube_support::{keypair, start, vc};

const RELISTS: &str = "stowage_kubernetes_relists_total";
const ERRORS: &str = "stowage_kubernetes_watch_errors_total";
const CACHE: &str = "stowage_s3_credential_cache_size";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_api_gone_keeps_cached_credentials_serving_and_changes_made_meanwhile_apply_on_return()
 {
    let k = start().await;
    let (ak, old_sk) = keypair();
    let new_sk = keypair().1;
    let (later_ak, later_sk) = keypair();
    k.fake.upsert(vc("vc-steady", &ak, &old_sk, &[]));
    k.works(&ak, &old_sk).await;
    let errors = k.metric(ERRORS, &[]);

    k.fake.set_down(true);
    // While it is gone: the last list is served, promptly, and the pod stays ready.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let t = Instant::now();
        assert_eq!(
            k.access(&ak, &old_sk).await,
            Ok(()),
            "cached credential while the API is gone"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        k.readyz().await,
        200,
        "readiness does not follow the apiserver"
    );
    assert_eq!(k.metric(CACHE, &[("source", "kubernetes")]), 1.0);
    assert_eq!(k.metric("stowage_kubernetes_synced", &[]), 1.0);
    // Changes the informer cannot see yet: the secret rotated in place, a new Secret.
    k.fake.upsert(vc("vc-steady", &ak, &new_sk, &[]));
    k.fake.upsert(vc("vc-later", &later_ak, &later_sk, &[]));
    assert_eq!(
        k.access(&ak, &old_sk).await,
        Ok(()),
        "the old secret until the informer is back"
    );
    assert_eq!(k.access(&later_ak, &later_sk).await, Err(Some(403)));

    k.fake.set_down(false);
    k.works(&ak, &new_sk).await;
    k.works(&later_ak, &later_sk).await;
    assert_eq!(
        k.access(&ak, &old_sk).await,
        Err(Some(403)),
        "the rotated-away secret is refused"
    );
    assert!(k.metric(ERRORS, &[]) > errors, "the outage is counted");
    assert!(
        !k.informer_lines("informer disconnected, reconnecting")
            .is_empty()
    );
    assert_eq!(k.metric(CACHE, &[("source", "kubernetes")]), 2.0);
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_api_restarted_with_its_history_gone_answers_410_and_the_relist_applies_the_changes()
 {
    let k = start().await;
    let (ak, old_sk) = keypair();
    let new_sk = keypair().1;
    let (gone_ak, gone_sk) = keypair();
    k.fake.upsert(vc("vc-rotated", &ak, &old_sk, &[]));
    k.fake.upsert(vc("vc-deleted", &gone_ak, &gone_sk, &[]));
    k.works(&ak, &old_sk).await;
    k.works(&gone_ak, &gone_sk).await;
    let relists = k.metric(RELISTS, &[]);
    let expired = k.metric(ERRORS, &[("kind", "expired")]);

    // The apiserver goes down; while it is away a Secret rotates and another is
    // deleted; it comes back without the history the informer would resume from.
    k.fake.set_down(true);
    k.fake.upsert(vc("vc-rotated", &ak, &new_sk, &[]));
    assert!(k.fake.delete("vc-deleted"));
    k.fake.expire_watches();
    assert_eq!(
        k.access(&gone_ak, &gone_sk).await,
        Ok(()),
        "served from the last list meanwhile"
    );
    k.fake.set_down(false);

    k.works(&ak, &new_sk).await;
    k.refused(&gone_ak, &gone_sk).await;
    assert_eq!(k.access(&ak, &old_sk).await, Err(Some(403)));
    assert!(k.metric(RELISTS, &[]) > relists, "the 410 forced a relist");
    assert!(
        k.metric(ERRORS, &[("kind", "expired")]) > expired,
        "the 410 is counted"
    );
    assert_eq!(k.metric(CACHE, &[("source", "kubernetes")]), 1.0);
    assert_eq!(k.readyz().await, 200);
    k.shutdown().await;
}
