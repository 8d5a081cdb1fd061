//! The admin API end to end, continued: listings across both sources, quotas with
//! usage, protected metrics and probes, and the browser session's CSRF rule.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use stowage::credentials::cache::SourceKind;

use crate::PROMPTLY;
use crate::client::{TOKEN, keys, start, within};
use crate::common::{BACKEND, BUCKET};
use crate::support::{keypair, vc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_both_sources_in_access_key_order_and_filter() {
    let a = start(|_| {}).await;
    let mut all = Vec::new();
    for i in 0..5 {
        let bucket = if i % 2 == 0 { BUCKET } else { "other-bucket" };
        all.push(
            a.create(json!([{"bucket": bucket, "access": "read-only"}]))
                .await
                .0,
        );
    }
    let (kak, ksk) = keypair();
    a.k.fake.upsert(vc("vc-list", &kak, &ksk, &[]));
    a.k.cached(&kak).await;
    all.push(kak.clone());
    all.sort();

    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let page = a.get(&format!("/api/v1/credentials?limit=2{q}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let ks = keys(&page.json);
        assert!(ks.len() <= 2);
        seen.extend(ks);
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all, "every row once, sorted by access key");
    assert_eq!(
        keys(&a.get("/api/v1/credentials?source=kubernetes").await.json),
        std::slice::from_ref(&kak)
    );
    assert_eq!(
        keys(&a.get("/api/v1/credentials?source=sqlite").await.json).len(),
        5
    );
    assert_eq!(
        keys(&a.get("/api/v1/credentials?bucket=other-bucket").await.json).len(),
        2
    );
    assert_eq!(
        keys(
            &a.get(&format!(
                "/api/v1/credentials?backend={BACKEND}&bucket={BUCKET}"
            ))
            .await
            .json
        )
        .len(),
        4
    );
    assert!(keys(&a.get("/api/v1/credentials?backend=elsewhere").await.json).is_empty());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_set_read_with_usage_and_cleared() {
    let a = start(|_| {}).await;
    let q = format!("/api/v1/quotas/{BACKEND}/{BUCKET}");
    assert_eq!(a.get(&q).await.status, StatusCode::NOT_FOUND);
    let set = a
        .call(
            Method::PUT,
            &q,
            Some(&json!({"hard_bytes": 1_000_000, "max_objects": 100})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.json["limits"]["source"], "sqlite");
    let key = stowage::quota::BucketKey::new(BACKEND, BUCKET);
    assert!(
        a.k.h.running().quota_limits.effective(&key).is_some(),
        "live at once"
    );
    let known = within(Duration::from_secs(10), || async {
        a.get(&q).await.json["usage"]["known"] == json!(true)
    })
    .await;
    assert!(known, "the new limit triggers a scan");

    let (ak, sk, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-write"}]))
        .await;
    a.k.h
        .client(&ak, &sk)
        .put_object()
        .bucket(BUCKET)
        .key("counted")
        .body(vec![7u8; 1234].into())
        .send()
        .await
        .expect("write under the quota");
    let counted = within(PROMPTLY, || async {
        a.get(&q).await.json["usage"]["bytes"] == json!(1234)
    })
    .await;
    assert!(counted, "usage shows the write: {}", a.get(&q).await.text);
    let row = a.get(&format!("/api/v1/credentials/{ak}")).await;
    assert_eq!(row.json["buckets"][0]["quota"]["hard_bytes"], 1_000_000);
    assert_eq!(row.json["buckets"][0]["usage"]["objects"], 1);
    let list = a.get("/api/v1/quotas").await;
    assert_eq!(list.json["quotas"][0]["bucket"], BUCKET);

    assert_eq!(
        a.call(Method::DELETE, &q, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(a.k.h.running().quota_limits.effective(&key).is_none());
    assert!(a.k.h.store().list_limits().expect("limits").is_empty());
    assert!(a.get(&q).await.json["limits"].is_null());
    assert_eq!(
        a.call(Method::DELETE, &q, None).await.status,
        StatusCode::NOT_FOUND
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_metrics_and_probes_put_them_behind_the_token() {
    let a = start(|c| {
        c.admin.protect_metrics = true;
        c.admin.protect_probes = true;
    })
    .await;
    for p in ["/metrics", "/healthz", "/readyz"] {
        let r = a.raw(Method::GET, p, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p}");
        assert!(!r.text.contains("stowage_"), "{p}: no data");
        assert_eq!(a.get(p).await.status, StatusCode::OK, "{p} with the token");
    }
    assert!(
        a.get("/metrics")
            .await
            .text
            .contains("stowage_s3_credential_cache_size")
    );
    a.shutdown().await;
    let open = start(|c| c.admin.protect_metrics = false).await;
    let r = open.raw(Method::GET, "/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("stowage_s3_credential_cache_size"));
    open.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_needs_the_csrf_header_to_change_anything() {
    let a = start(|_| {}).await;
    let login = a
        .http
        .post(a.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let set = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains(TOKEN));
    let cookie = set.split(';').next().expect("pair").to_owned();
    let page = a
        .raw(Method::GET, "/admin/s3-proxy", &[("cookie", &cookie)])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .starts_with("default-src 'self'")
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let csrf = page
        .text
        .split("name=\"stowage-csrf\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf meta")
        .to_owned();

    let body = json!({"backend": BACKEND, "scopes": [{"bucket": BUCKET, "access": "read-only"}]})
        .to_string();
    let post = |extra: Option<&str>| {
        let mut rb = a
            .http
            .post(a.url("/api/v1/credentials"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(v) = extra {
            rb = rb.header("x-stowage-csrf", v);
        }
        rb.send()
    };
    assert_eq!(
        post(None).await.expect("send").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some("forged")).await.expect("send").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some(&csrf)).await.expect("send").status(),
        StatusCode::CREATED
    );
    assert_eq!(a.k.h.running().cache.len(SourceKind::Sqlite), 1);
    a.shutdown().await;
}
