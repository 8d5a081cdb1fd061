//! Anonymous read bindings through the proxy: the cluster switch, the operation
//! allowlist (every sub-resource refused), credentials never falling through, and the
//! binding's own per-address rate.

use stowage::credentials::anonymous::AnonymousMode;
use stowage::quota::BucketKey;

use crate::common::edge::{assert_refused, host, rw_signer, send_signed, wrong_secret};
use crate::common::raw::{self, RawResponse};
use crate::common::signer::Req;
use crate::common::{BACKEND, Harness, UpstreamKind};

async fn harness(enabled: bool) -> Harness {
    Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.s3_proxy.anonymous_enabled = enabled;
        c.s3_proxy.unauthenticated_per_ip_rps = 0;
    })
    .await
    .expect("harness")
}

/// Bind the harness bucket as the CLI does and make it live now.
fn bind(h: &Harness, mode: AnonymousMode, rps: Option<f64>) {
    h.store()
        .set_anonymous(&BucketKey::new(BACKEND, &h.bucket), mode, rps)
        .expect("bind");
    let r = h.running();
    stowage::cors::store::reload(h.store(), &r.cors, &r.bindings).expect("reload");
}

async fn unsigned(h: &Harness, method: &str, target: &str) -> RawResponse {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Req::new(method, path, &host(h));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        req = req.query(k, v);
    }
    raw::send(h.s3_addr, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_switch_is_off_by_default_and_a_binding_alone_serves_nothing() {
    let h = harness(false).await;
    h.put_upstream(&h.bucket, "logo.png", b"png").await;
    bind(&h, AnonymousMode::ReadOnly, None);
    let r = unsigned(&h, "GET", &format!("/{}/logo.png", h.bucket)).await;
    assert_refused(&r, 403, "MissingAuthenticationToken", "switch off");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_object_reads_and_plain_listing_are_served_anonymously() {
    let h = harness(true).await;
    h.put_upstream(&h.bucket, "logo.png", b"png").await;
    let b = h.bucket.clone();
    let r = unsigned(&h, "GET", &format!("/{b}/logo.png")).await;
    assert_refused(&r, 403, "MissingAuthenticationToken", "no binding yet");
    bind(&h, AnonymousMode::ReadOnly, None);

    let r = unsigned(&h, "GET", &format!("/{b}/logo.png")).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"png".as_slice()));
    let head = reqwest::Client::new()
        .head(format!("http://{}/{b}/logo.png", h.s3_addr))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    let r = unsigned(&h, "GET", &format!("/{b}?list-type=2&prefix=lo")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>logo.png</Key>"));
    assert_eq!(unsigned(&h, "GET", &format!("/{b}")).await.status, 200);

    for target in [
        format!("/{b}?versions"),
        format!("/{b}?acl"),
        format!("/{b}?policy"),
        format!("/{b}?uploads"),
        format!("/{b}?cors"),
        format!("/{b}?location"),
        format!("/{b}?list-type=2&fetch-owner=true"),
        format!("/{b}/logo.png?acl"),
        format!("/{b}/logo.png?tagging"),
        format!("/{b}/logo.png?versionId=1"),
        format!("/{b}/logo.png?response-content-type=text/html"),
    ] {
        let r = unsigned(&h, "GET", &target).await;
        assert_refused(&r, 403, "AccessDenied", &target);
    }
    for (method, target) in [
        ("PUT", format!("/{b}/new.png")),
        ("DELETE", format!("/{b}/logo.png")),
        ("POST", format!("/{b}?delete")),
        ("GET", "/".to_owned()),
    ] {
        let r = unsigned(&h, method, &target).await;
        assert!(
            matches!(r.status, 403 | 405),
            "{method} {target}: {}",
            r.status
        );
    }
    assert!(!h.exists_upstream(&b, "new.png").await);
    assert_eq!(
        h.read_upstream(&b, "logo.png").await,
        b"png",
        "nothing deleted"
    );

    // Mode None binds the bucket to deny.
    bind(&h, AnonymousMode::None, None);
    let r = unsigned(&h, "GET", &format!("/{b}/logo.png")).await;
    assert_refused(&r, 403, "AccessDenied", "mode None");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_carrying_any_credential_never_falls_through_to_anonymous() {
    let h = harness(true).await;
    h.put_upstream(&h.bucket, "logo.png", b"png").await;
    bind(&h, AnonymousMode::ReadOnly, None);
    let path = format!("/{}/logo.png", h.bucket);
    let bad = wrong_secret(&rw_signer(&h));
    let r = send_signed(&h, &bad, Req::new("GET", &path, &host(&h))).await;
    assert_refused(&r, 403, "SignatureDoesNotMatch", "a wrong header signature");
    let mut pre = Req::new("GET", &path, &host(&h));
    bad.presign(&mut pre, 60, "UNSIGNED-PAYLOAD");
    let r = raw::send(h.s3_addr, &pre).await;
    assert_refused(
        &r,
        403,
        "SignatureDoesNotMatch",
        "a wrong presigned signature",
    );
    let r = raw::send(
        h.s3_addr,
        &Req::new("GET", &path, &host(&h)).header("authorization", "garbage"),
    )
    .await;
    assert_ne!(r.status, 200, "a malformed Authorization header");
    let r = unsigned(&h, "GET", &format!("{path}?X-Amz-Credential=x")).await;
    assert_ne!(r.status, 200, "a stray presign parameter");
    let r = unsigned(&h, "GET", &format!("{path}?AWSAccessKeyId=x&Signature=y")).await;
    assert_ne!(r.status, 200, "SigV2 query parameters");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bindings_own_rate_limits_each_source_address() {
    let h = harness(true).await;
    h.put_upstream(&h.bucket, "logo.png", b"png").await;
    bind(&h, AnonymousMode::ReadOnly, Some(1.0));
    let path = format!("/{}/logo.png", h.bucket);
    assert_eq!(unsigned(&h, "GET", &path).await.status, 200);
    let r = unsigned(&h, "GET", &path).await;
    assert_refused(&r, 503, "SlowDown", "second request within the second");
    assert!(r.header("retry-after").is_some());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bindings_own_rate_replaces_the_shared_unauthenticated_limit() {
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.s3_proxy.anonymous_enabled = true;
        c.s3_proxy.unauthenticated_per_ip_rps = 1;
    })
    .await
    .expect("harness");
    h.put_upstream(&h.bucket, "logo.png", b"png").await;
    let path = format!("/{}/logo.png", h.bucket);
    bind(&h, AnonymousMode::ReadOnly, None);
    assert_eq!(unsigned(&h, "GET", &path).await.status, 200);
    let r = unsigned(&h, "GET", &path).await;
    assert_refused(&r, 503, "SlowDown", "the shared 1 rps limit");
    // A public-asset binding with its own, higher rate.
    bind(&h, AnonymousMode::ReadOnly, Some(100.0));
    for i in 0..5 {
        assert_eq!(unsigned(&h, "GET", &path).await.status, 200, "request {i}");
    }
    h.shutdown().await;
}
