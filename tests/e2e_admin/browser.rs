//! Browser-facing bucket settings through the admin API, seen by the running proxy:
//! CORS rules answer preflights after the reload poll and stop when cleared; an
//! anonymous binding serves unsigned reads and stops when removed; a binding from a
//! Kubernetes Secret is listed with its Secret and cannot be changed here.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::client::{Admin, start, within};
use crate::common::{BACKEND, BUCKET};

/// The proxy reloads CORS rules on its poll; it must see them within this long.
const RELOAD: Duration = Duration::from_secs(3);
const ORIGIN: &str = "https://app.example.com";

async fn preflight(a: &Admin) -> reqwest::Response {
    let url = format!("http://{}/{BUCKET}/key", a.k.h.s3_addr);
    a.http
        .request(Method::OPTIONS, url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .expect("preflight")
}

async fn unsigned_get(a: &Admin, key: &str) -> (StatusCode, String) {
    let url = format!("http://{}/{BUCKET}/{key}", a.k.h.s3_addr);
    let r = a.http.get(url).send().await.expect("unsigned GET");
    (r.status(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_set_through_the_api_answers_preflights_and_clearing_refuses_them() {
    let a = start(|_| {}).await;
    let path = format!("/api/v1/cors/{BACKEND}/{BUCKET}");
    assert_eq!(preflight(&a).await.status(), StatusCode::FORBIDDEN);
    let rules = json!({"CORSRules": [{
        "AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"], "MaxAgeSeconds": 60
    }]});
    let put = a.call(Method::PUT, &path, Some(&rules)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let allowed = within(RELOAD, || async {
        let r = preflight(&a).await;
        r.status() == StatusCode::OK
            && r.headers()
                .get("access-control-allow-origin")
                .is_some_and(|v| v == ORIGIN)
    })
    .await;
    assert!(allowed, "the preflight is answered within {RELOAD:?}");
    assert_eq!(a.get(&path).await.json, rules);
    let listed = a.get("/api/v1/cors").await;
    assert_eq!(listed.json["cors"][0]["bucket"], BUCKET, "{}", listed.text);

    let bad = json!({"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["TRACE"]}]});
    let r = a.call(Method::PUT, &path, Some(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"]["field"], "CORSRules[0].AllowedMethods");

    let del = a.call(Method::DELETE, &path, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    let refused = within(RELOAD, || async {
        preflight(&a).await.status() == StatusCode::FORBIDDEN
    })
    .await;
    assert!(refused, "the preflight is refused again within {RELOAD:?}");
    assert_eq!(a.get(&path).await.status, StatusCode::NOT_FOUND);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_binding_set_through_the_api_serves_unsigned_reads_until_removed() {
    let a = start(|c| c.s3_proxy.anonymous_enabled = true).await;
    a.k.h
        .put_upstream(BUCKET, "public/logo.txt", b"hello, browser")
        .await;
    assert_eq!(
        unsigned_get(&a, "public/logo.txt").await.0,
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/v1/anonymous/{BACKEND}/{BUCKET}");
    let body = json!({"mode": "ReadOnly", "per_source_ip_rps": 50});
    let put = a.call(Method::PUT, &path, Some(&body)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.json["source"], "sqlite");
    let served = within(RELOAD, || async {
        unsigned_get(&a, "public/logo.txt").await == (StatusCode::OK, "hello, browser".into())
    })
    .await;
    assert!(served, "the unsigned GET is served");
    let listed = a.get("/api/v1/anonymous").await;
    assert_eq!(
        listed.json["anonymous"][0]["mode"], "ReadOnly",
        "{}",
        listed.text
    );

    let del = a.call(Method::DELETE, &path, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    let refused = within(RELOAD, || async {
        unsigned_get(&a, "public/logo.txt").await.0 == StatusCode::FORBIDDEN
    })
    .await;
    assert!(refused, "the unsigned GET is refused again");
    assert_eq!(a.get(&path).await.status, StatusCode::NOT_FOUND);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_from_a_secret_is_listed_with_it_and_changes_get_409() {
    let a = start(|c| c.s3_proxy.anonymous_enabled = true).await;
    a.k.fake.upsert(crate::common::fake_apiserver::secret(
        "anon-public",
        "anonymous-binding",
        &[],
        &[
            ("bucket_name", BUCKET),
            ("backend", BACKEND),
            ("anonymous_mode", "ReadOnly"),
        ],
    ));
    let listed = within(Duration::from_secs(10), || async {
        a.get("/api/v1/anonymous").await.json["anonymous"][0]["source"] == "kubernetes"
    })
    .await;
    assert!(listed, "the Secret's binding is listed");
    let row = a
        .get(&format!("/api/v1/anonymous/{BACKEND}/{BUCKET}"))
        .await
        .json;
    assert_eq!(row["kubernetes"]["name"], "anon-public", "{row}");
    assert_eq!(row["editable"], false);
    let path = format!("/api/v1/anonymous/{BACKEND}/{BUCKET}");
    for (m, body) in [
        (Method::PUT, Some(json!({"mode": "None"}))),
        (Method::DELETE, None),
    ] {
        let r = a.call(m.clone(), &path, body.as_ref()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{m}: {}", r.text);
        assert!(r.text.contains("anon-public"), "{m}: {}", r.text);
    }
    assert!(a.k.h.store().list_anonymous().expect("list").is_empty());
    a.shutdown().await;
}
