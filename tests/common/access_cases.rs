//! Shared cases about who may do what: ListBuckets synthesised from scopes,
//! virtual-host addressing, out-of-scope buckets, read-only credentials, and the
//! credential lifecycle (disable, rotate) seen through the running proxy.

use std::time::{Duration, Instant};

use stowage::credentials::model::Access;

use super::cases::{get_bytes, put_bytes};
use super::clients::{Expect as _, status_and_code};
use super::{Harness, pattern, scope};

pub async fn list_buckets_is_synthesised_from_scopes(h: &Harness) {
    for b in ["pat-a", "pat-b", "zz-other"] {
        h.create_bucket_upstream(b).await;
    }
    let (ak, sk) = h.credential(vec![
        scope(&h.bucket, Access::ReadWrite),
        scope("pat-*", Access::ReadOnly),
    ]);
    let out = h
        .client(&ak, &sk)
        .list_buckets()
        .send()
        .await
        .expect_ok("ListBuckets");
    let mut names: Vec<&str> = out.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["pat-a", "pat-b", h.bucket.as_str()],
        "exact scope plus pattern matches only"
    );

    let (ak, sk) = h.bucket_credential(Access::ReadOnly);
    let out = h
        .client(&ak, &sk)
        .list_buckets()
        .send()
        .await
        .expect_ok("ListBuckets");
    let names: Vec<&str> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(
        names,
        [h.bucket.as_str()],
        "an exact scope lists only its bucket"
    );
}

pub async fn virtual_host_addressing_reaches_the_bucket(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.vhost_client(&ak, &sk);
    let body = pattern(5000, 10);
    put_bytes(&c, &h.bucket, "vhost/a.bin", &body).await;
    let sent = h.sent.last("PUT", "vhost/a.bin").expect("recorded");
    let host_prefix = format!("http://{}.localhost:", h.bucket);
    assert!(
        sent.uri.starts_with(&host_prefix),
        "virtual-host URL was used: {}",
        sent.uri
    );
    assert_eq!(h.read_upstream(&h.bucket, "vhost/a.bin").await, body);
    assert_eq!(get_bytes(&c, &h.bucket, "vhost/a.bin").await, body);
    let listed = c
        .list_objects_v2()
        .bucket(&h.bucket)
        .prefix("vhost/")
        .send()
        .await
        .expect_ok("vhost list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["vhost/a.bin"]);
}

pub async fn out_of_scope_bucket_is_access_denied(h: &Harness) {
    h.create_bucket_upstream("not-yours").await;
    let (ak, sk) = h.bucket_credential(Access::Admin);
    let c = h.client(&ak, &sk);
    let err = c
        .put_object()
        .bucket("not-yours")
        .key("intruder.txt")
        .body(b"nope".to_vec().into())
        .send()
        .await
        .expect_err("out of scope");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("AccessDenied".into()))
    );
    assert!(
        !h.exists_upstream("not-yours", "intruder.txt").await,
        "nothing reached the upstream"
    );

    h.put_upstream("not-yours", "secret.txt", b"theirs").await;
    let err = c
        .get_object()
        .bucket("not-yours")
        .key("secret.txt")
        .send()
        .await
        .expect_err("out of scope read");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("AccessDenied".into()))
    );
    let err = c
        .list_objects_v2()
        .bucket("not-yours")
        .send()
        .await
        .expect_err("out of scope list");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("AccessDenied".into()))
    );
}

pub async fn read_only_credential_cannot_write(h: &Harness) {
    h.put_upstream(&h.bucket, "ro/existing.txt", b"old").await;
    let (ak, sk) = h.bucket_credential(Access::ReadOnly);
    let c = h.client(&ak, &sk);
    assert_eq!(
        get_bytes(&c, &h.bucket, "ro/existing.txt").await,
        b"old",
        "reads are allowed"
    );
    let err = c
        .put_object()
        .bucket(&h.bucket)
        .key("ro/new.txt")
        .body(b"new".to_vec().into())
        .send()
        .await
        .expect_err("read-only PUT");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("AccessDenied".into()))
    );
    assert!(!h.exists_upstream(&h.bucket, "ro/new.txt").await);
    let err = c
        .delete_object()
        .bucket(&h.bucket)
        .key("ro/existing.txt")
        .send()
        .await
        .expect_err("read-only DELETE");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("AccessDenied".into()))
    );
    assert!(h.exists_upstream(&h.bucket, "ro/existing.txt").await);
}

/// A credential disabled through a second handle on the database (as the admin CLI
/// does) is refused within 2 s, without an explicit reload of the proxy's cache.
pub async fn disabled_credential_is_refused_within_two_seconds(h: &Harness) {
    h.put_upstream(&h.bucket, "lifecycle/x", b"x").await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    assert_eq!(get_bytes(&c, &h.bucket, "lifecycle/x").await, b"x");

    let other = h.second_store();
    other
        .set_enabled(&ak, false)
        .expect("disable through the second handle");
    let started = Instant::now();
    let last = loop {
        match c
            .get_object()
            .bucket(&h.bucket)
            .key("lifecycle/x")
            .send()
            .await
        {
            Ok(_) if started.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => panic!("a disabled credential still works after 2 s"),
            Err(e) => break status_and_code(&e),
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused after {:?}",
        started.elapsed()
    );
    assert_eq!(last, (Some(403), Some("InvalidAccessKeyId".into())));
}

pub async fn rotated_secret_replaces_the_old_one(h: &Harness) {
    h.put_upstream(&h.bucket, "lifecycle/r", b"r").await;
    let (ak, old) = h.bucket_credential(Access::ReadWrite);
    assert_eq!(
        get_bytes(&h.client(&ak, &old), &h.bucket, "lifecycle/r").await,
        b"r"
    );
    let new = h.store().rotate_secret(&ak).expect("rotate");
    h.reload();
    let new = new.expose().to_owned();
    assert_ne!(new, old);
    let err = h
        .client(&ak, &old)
        .get_object()
        .bucket(&h.bucket)
        .key("lifecycle/r")
        .send()
        .await
        .expect_err("old secret");
    assert_eq!(
        status_and_code(&err),
        (Some(403), Some("SignatureDoesNotMatch".into()))
    );
    assert_eq!(
        get_bytes(&h.client(&ak, &new), &h.bucket, "lifecycle/r").await,
        b"r"
    );
}
