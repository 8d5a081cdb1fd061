//! The admin API end to end: the real app in process (SQLite and the fake Kubernetes API
//! server feeding the cache, s3s-fs upstream checking signatures), driven over HTTP with
//! reqwest, and credentials it mints used by the real aws-sdk-s3 client.

#[path = "e2e_admin/audit.rs"]
mod audit;
#[path = "e2e_admin/browser.rs"]
mod browser;
#[path = "e2e_admin/client.rs"]
mod client;
mod common;
#[allow(dead_code)]
#[path = "e2e_kubernetes/support.rs"]
mod support;
#[path = "e2e_admin/surface.rs"]
mod surface;

use std::time::Duration;

use client::{TOKEN, start, start_with_token, within};
use common::{BACKEND, BUCKET};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{keypair, vc};

/// Disable, rotate and delete must reach the proxy within this long.
const PROMPTLY: Duration = Duration::from_secs(5);

const ROUTES: [(&str, &str); 14] = [
    ("GET", "/admin/s3-proxy"),
    ("GET", "/admin"),
    ("GET", "/admin/assets/app.js"),
    ("POST", "/admin/logout"),
    ("GET", "/api/v1/credentials"),
    ("POST", "/api/v1/credentials"),
    ("GET", "/api/v1/credentials/SWX"),
    ("PATCH", "/api/v1/credentials/SWX"),
    ("POST", "/api/v1/credentials/SWX/rotate-secret"),
    ("DELETE", "/api/v1/credentials/SWX"),
    ("GET", "/api/v1/quotas"),
    ("PUT", "/api/v1/quotas/primary/test"),
    ("DELETE", "/api/v1/quotas/primary/test"),
    ("GET", "/api/v1/audit"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_and_api_route_answers_401_without_the_token() {
    let a = start(|_| {}).await;
    let (ak, _, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-only"}]))
        .await;
    for (m, p) in ROUTES {
        let m: Method = m.parse().expect("method");
        let none = a.raw(m.clone(), p, &[]).await;
        assert_eq!(
            none.status,
            StatusCode::UNAUTHORIZED,
            "{m} {p}: {}",
            none.text
        );
        assert!(!none.text.contains(&ak), "{m} {p}: no data");
        let wrong = a
            .raw(m.clone(), p, &[("authorization", "Bearer wrong")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{m} {p}");
    }
    assert_eq!(
        a.raw(Method::GET, "/metrics", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        a.raw(Method::GET, "/healthz", &[]).await.status,
        StatusCode::OK
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_admin_surface_refuses_everything() {
    let a = start_with_token(None, |_| {}).await;
    for (m, p) in ROUTES {
        let m: Method = m.parse().expect("method");
        let r = a
            .raw(m.clone(), p, &[("authorization", "Bearer anything")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
    }
    assert!(support::logs().contains("no admin token configured"));
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_credential_works_with_the_sdk_and_disabling_it_refuses_the_sdk() {
    let a = start(|_| {}).await;
    let (ak, sk, created) = a
        .create(json!([{"bucket": BUCKET, "access": "read-write"}]))
        .await;
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/credentials/{ak}")
    );
    assert_eq!(created.headers["cache-control"], "no-store");
    assert_eq!(created.json["credential"]["source"], "sqlite");
    let shown = a.get(&format!("/api/v1/credentials/{ak}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        !shown.text.contains(&sk),
        "the secret is shown once, at create"
    );
    assert!(!a.get("/api/v1/credentials").await.text.contains(&sk));

    let s3 = a.k.h.client(&ak, &sk);
    s3.put_object()
        .bucket(BUCKET)
        .key("via-admin-api")
        .body(b"minted by the API".to_vec().into())
        .send()
        .await
        .expect("the new credential writes through the proxy");
    assert_eq!(
        a.k.h.read_upstream(BUCKET, "via-admin-api").await,
        b"minted by the API"
    );

    let path = format!("/api/v1/credentials/{ak}");
    let off = a
        .call(Method::PATCH, &path, Some(&json!({"enabled": false})))
        .await;
    assert_eq!(
        (off.status, &off.json["enabled"]),
        (StatusCode::OK, &json!(false)),
        "{}",
        off.text
    );
    let refused = within(PROMPTLY, || async {
        a.k.access(&ak, &sk).await == Err(Some(403))
    })
    .await;
    assert!(
        refused,
        "a disabled credential is refused within {PROMPTLY:?}"
    );
    let on = a
        .call(Method::PATCH, &path, Some(&json!({"enabled": true})))
        .await;
    assert_eq!(on.status, StatusCode::OK);
    assert!(within(PROMPTLY, || async { a.k.access(&ak, &sk).await.is_ok() }).await);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_scopes_and_expiry_changes_what_the_sdk_may_do() {
    let a = start(|_| {}).await;
    let (ak, sk, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-write"}]))
        .await;
    let path = format!("/api/v1/credentials/{ak}");
    let body = json!({"scopes": [{"bucket": BUCKET, "access": "read-only"}], "expires_in": "30d",
                      "description": "now read-only"});
    let r = a.call(Method::PATCH, &path, Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["scopes"][0]["access"], "read-only");
    assert_eq!(r.json["description"], "now read-only");
    assert!(r.json["expires_at"].is_string());
    let put =
        a.k.h
            .client(&ak, &sk)
            .put_object()
            .bucket(BUCKET)
            .key("nope")
            .body(b"x".to_vec().into())
            .send()
            .await;
    assert_eq!(
        put.map(|_| ()).map_err(|e| common::clients::status(&e)),
        Err(Some(403))
    );
    assert!(a.k.access(&ak, &sk).await.is_ok(), "reads still work");
    let cleared = a
        .call(Method::PATCH, &path, Some(&json!({"expires_at": null})))
        .await;
    assert!(cleared.json["expires_at"].is_null(), "{}", cleared.text);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_replaces_the_secret_and_delete_removes_the_credential() {
    let a = start(|_| {}).await;
    let (ak, old, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-only"}]))
        .await;
    let path = format!("/api/v1/credentials/{ak}");
    let r = a
        .call(Method::POST, &format!("{path}/rotate-secret"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.json["secret_access_key"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new, old);
    assert!(
        within(PROMPTLY, || async {
            a.k.access(&ak, &old).await == Err(Some(403))
        })
        .await
    );
    assert!(a.k.access(&ak, &new).await.is_ok(), "the new secret works");

    let del = a.call(Method::DELETE, &path, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(
        within(PROMPTLY, || async {
            a.k.access(&ak, &new).await == Err(Some(403))
        })
        .await
    );
    assert_eq!(a.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.call(Method::DELETE, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = a
        .call(
            Method::POST,
            "/api/v1/credentials/SWUNKNOWN/rotate-secret",
            None,
        )
        .await;
    assert_eq!(r.json["error"]["code"], "not_found");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_rows_are_listed_read_only_and_every_change_gets_409() {
    let a = start(|_| {}).await;
    let (kak, ksk) = keypair();
    a.k.fake.upsert(vc(
        "vc-claimed",
        &kak,
        &ksk,
        &[("quota_hard_bytes", "1000000")],
    ));
    a.k.cached(&kak).await;
    let (sak, _, _) = a
        .create(json!([{"bucket": BUCKET, "access": "read-only"}]))
        .await;

    let page = a.get("/api/v1/credentials").await;
    let rows = page.json["credentials"].as_array().expect("rows").clone();
    let row = |ak: &str| {
        rows.iter()
            .find(|r| r["access_key_id"] == ak)
            .cloned()
            .expect("row")
    };
    let k = row(&kak);
    assert_eq!(k["source"], "kubernetes");
    assert_eq!(k["kubernetes"]["namespace"], support::NS);
    assert_eq!(k["kubernetes"]["name"], "vc-claimed");
    assert_eq!(k["editable"], false);
    assert_eq!(k["buckets"][0]["quota"]["source"], "kubernetes");
    assert_eq!(k["buckets"][0]["quota"]["hard_bytes"], 1_000_000);
    assert_eq!(row(&sak)["source"], "sqlite");
    assert!(!page.text.contains(&ksk), "never a secret");

    let path = format!("/api/v1/credentials/{kak}");
    for (m, p, body) in [
        (Method::PATCH, path.clone(), Some(json!({"enabled": false}))),
        (Method::POST, format!("{path}/rotate-secret"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let r = a.call(m.clone(), &p, body.as_ref()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{m} {p}");
        let msg = r.json["error"]["message"].as_str().expect("message");
        assert!(
            msg.contains(&format!("{}/vc-claimed", support::NS)),
            "{msg}"
        );
    }
    assert!(
        a.k.access(&kak, &ksk).await.is_ok(),
        "the claim's credential still works"
    );
    let q = format!("/api/v1/quotas/{BACKEND}/{BUCKET}");
    let r = a
        .call(Method::PUT, &q, Some(&json!({"hard_bytes": 5})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        a.call(Method::DELETE, &q, None).await.status,
        StatusCode::CONFLICT
    );
    let shown = a.get(&q).await;
    assert_eq!(
        (
            shown.json["limits"]["source"].as_str(),
            &shown.json["editable"]
        ),
        (Some("kubernetes"), &json!(false))
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_gets_400_naming_the_field() {
    let a = start(|_| {}).await;
    let scope = json!([{"bucket": BUCKET, "access": "read-only"}]);
    for (body, field) in [
        (json!({"backend": "nope", "scopes": scope}), "backend"),
        (
            json!({"backend": BACKEND, "scopes": [{"bucket": "Bad_Name", "access": "read-only"}]}),
            "scopes[0].bucket",
        ),
        (
            json!({"backend": BACKEND, "scopes": [{"bucket": BUCKET, "access": "everything"}]}),
            "scopes[0].access",
        ),
        (json!({"backend": BACKEND, "scopes": []}), "scopes"),
        (
            json!({"backend": BACKEND, "scopes": scope, "colour": "red"}),
            "colour",
        ),
        (json!({"scopes": scope}), "backend"),
        (
            json!({"backend": BACKEND, "scopes": scope, "expires_in": "later"}),
            "expires_in",
        ),
    ] {
        let r = a
            .call(Method::POST, "/api/v1/credentials", Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["field"], field, "{body}: {}", r.text);
    }
    let bad_json = a
        .http
        .post(a.url("/api/v1/credentials"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"backend\":")
        .send()
        .await
        .expect("send");
    let r = client::reply(bad_json).await;
    assert_eq!(
        (r.status, &r.json["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("body"))
    );
    let huge = a
        .http
        .post(a.url("/api/v1/credentials"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        huge.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "an unread body ends the connection, and the answer says so"
    );
    let q = a.get("/api/v1/credentials?source=etcd").await;
    assert_eq!(q.json["error"]["field"], "source");
    let r = a
        .call(
            Method::PUT,
            &format!("/api/v1/quotas/{BACKEND}/{BUCKET}"),
            Some(&json!({"hard_bytes": 10, "soft_bytes": 20})),
        )
        .await;
    assert_eq!(
        (r.status, &r.json["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("soft_bytes"))
    );
    assert!(
        a.k.h.store().list_credentials().expect("list").is_empty(),
        "nothing was created"
    );
    a.shutdown().await;
}
