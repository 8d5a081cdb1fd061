//! The CORS and anonymous-binding routes against a real (temporary) SQLite store and
//! the in-process binding cache.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin::handler_tests::{Fixture, TOKEN, bearer, empty, fixture, json_body, send};
use crate::credentials::anonymous::{AnonymousBinding, AnonymousMode};
use crate::credentials::cache::SourceKind;
use crate::credentials::model::CredentialSource;
use crate::quota::BucketKey;

fn rules() -> Value {
    json!({"CORSRules": [{
        "AllowedOrigins": ["https://app.example.com"],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 600
    }]})
}

async fn call(f: &Fixture, m: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let req = match body {
        Some(b) => json_body(bearer(m, path), b),
        None => empty(bearer(m, path)),
    };
    let (status, _, text) = send(f, req).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn f() -> Fixture {
    fixture(Some(TOKEN), false)
}

#[tokio::test]
async fn cors_put_get_list_delete_round_trip_in_the_s3_shape() {
    let f = f();
    let path = "/api/v1/cors/primary/photos";
    assert_eq!(
        call(&f, Method::GET, path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = call(&f, Method::PUT, path, Some(&rules())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, rules());
    assert_eq!(
        call(&f, Method::GET, path, None).await,
        (StatusCode::OK, rules())
    );
    let (_, list) = call(&f, Method::GET, "/api/v1/cors", None).await;
    assert_eq!(list["cors"][0]["backend"], "primary");
    assert_eq!(list["cors"][0]["bucket"], "photos");
    assert_eq!(list["cors"][0]["CORSRules"], rules()["CORSRules"]);
    let (_, none) = call(&f, Method::GET, "/api/v1/cors?bucket=other", None).await;
    assert_eq!(none["cors"], json!([]));
    assert_eq!(
        call(&f, Method::DELETE, path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&f, Method::DELETE, path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(f.state.store.list_cors().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_cors_rules_get_400_naming_the_field_and_store_nothing() {
    let f = f();
    let path = "/api/v1/cors/primary/photos";
    let cases = [
        (json!({"CORSRules": []}), "CORSRules"),
        (
            json!({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}),
            "CORSRules[0].AllowedMethods",
        ),
        (
            json!({"CORSRules": [{"AllowedOrigins": ["*"]}]}),
            "CORSRules[0].AllowedMethods",
        ),
        (
            json!({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "Nope": 1}]}),
            "CORSRules[0].Nope",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = call(&f, Method::PUT, path, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    assert!(f.state.store.list_cors().unwrap().is_empty());
    let (status, err) = call(&f, Method::PUT, "/api/v1/cors/nope/photos", Some(&rules())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("primary")
    );
}

#[tokio::test]
async fn anonymous_put_reaches_the_cache_at_once_and_delete_withdraws_it() {
    let f = f();
    let path = "/api/v1/anonymous/primary/public";
    let body = json!({"mode": "ReadOnly", "per_source_ip_rps": 5});
    let (status, view) = call(&f, Method::PUT, path, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["mode"], &view["source"], &view["editable"]),
        (&json!("ReadOnly"), &json!("sqlite"), &json!(true))
    );
    let b = f
        .state
        .bindings
        .for_bucket("public")
        .expect("bound at once");
    assert_eq!(
        (b.mode, b.per_source_ip_rps),
        (AnonymousMode::ReadOnly, Some(5.0))
    );
    let (_, got) = call(&f, Method::GET, path, None).await;
    assert_eq!(got["per_source_ip_rps"], 5.0);
    let (_, list) = call(&f, Method::GET, "/api/v1/anonymous", None).await;
    assert_eq!(list["anonymous"][0]["bucket"], "public");
    assert_eq!(
        call(&f, Method::DELETE, path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(f.state.bindings.is_empty());
    assert_eq!(
        call(&f, Method::GET, path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&f, Method::DELETE, path, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_bindings_get_400_naming_the_field() {
    let f = f();
    let path = "/api/v1/anonymous/primary/public";
    for (body, field) in [
        (json!({"mode": "Write"}), "mode"),
        (
            json!({"mode": "ReadOnly", "per_source_ip_rps": -1}),
            "per_source_ip_rps",
        ),
        (json!({"per_source_ip_rps": 1}), "mode"),
        (json!({"mode": "None", "extra": 1}), "extra"),
    ] {
        let (status, err) = call(&f, Method::PUT, path, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (status, _) = call(
        &f,
        Method::PUT,
        "/api/v1/anonymous/primary/Bad_Name",
        Some(&json!({"mode": "None"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(f.state.store.list_anonymous().unwrap().is_empty());
}

#[tokio::test]
async fn a_kubernetes_binding_is_listed_with_its_secret_and_every_change_gets_409() {
    let f = f();
    f.state
        .store
        .set_anonymous(
            &BucketKey::new("primary", "public"),
            AnonymousMode::ReadOnly,
            None,
        )
        .unwrap();
    f.state.bindings.set(
        SourceKind::Kubernetes,
        "web/public-assets",
        Some(AnonymousBinding {
            backend: "primary".into(),
            bucket: "public".into(),
            mode: AnonymousMode::None,
            per_source_ip_rps: None,
            source: CredentialSource::Kubernetes {
                namespace: "web".into(),
                name: "public-assets".into(),
                uid: "u1".into(),
            },
        }),
    );
    let (_, list) = call(&f, Method::GET, "/api/v1/anonymous", None).await;
    let row = &list["anonymous"][0];
    assert_eq!(row["source"], "kubernetes", "{list}");
    assert_eq!(
        row["kubernetes"],
        json!({"namespace": "web", "name": "public-assets"})
    );
    assert_eq!(
        (&row["editable"], &row["shadows_sqlite"]),
        (&json!(false), &json!(true))
    );
    let path = "/api/v1/anonymous/primary/public";
    for (m, body) in [
        (Method::PUT, Some(json!({"mode": "ReadOnly"}))),
        (Method::DELETE, None),
    ] {
        let (status, err) = call(&f, m.clone(), path, body.as_ref()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{m}: {err}");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(msg.contains("Secret web/public-assets owns it"), "{msg}");
    }
    assert_eq!(
        f.state.store.list_anonymous().unwrap().len(),
        1,
        "SQLite row kept"
    );
}
