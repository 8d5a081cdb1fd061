//! `GET /api/v1/audit` over the real audit log: rows written by the proxy for traffic
//! from the real SDK, queried by access key, bucket and outcome.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use stowage::credentials::model::Access;

use crate::client::{start, within};
use crate::common::BUCKET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_api_returns_the_proxys_rows_filtered_by_key_bucket_and_outcome() {
    let a = start(|_| {}).await;
    let (ak, sk) = a.k.h.bucket_credential(Access::ReadWrite);
    let c = a.k.h.client(&ak, &sk);
    c.put_object()
        .bucket(BUCKET)
        .key("audited")
        .body(b"12345".to_vec().into())
        .send()
        .await
        .expect("put");
    let (ro_ak, ro_sk) = a.k.h.bucket_credential(Access::ReadOnly);
    let denied =
        a.k.h
            .client(&ro_ak, &ro_sk)
            .delete_object()
            .bucket(BUCKET)
            .key("audited")
            .send()
            .await;
    assert!(denied.is_err(), "read-only cannot delete");

    let path = format!("/api/v1/audit?access_key={ak}&bucket={BUCKET}&outcome=ok");
    let found = within(Duration::from_secs(5), || async {
        let r = a.call(Method::GET, &path, None).await;
        r.status == StatusCode::OK && r.json["entries"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert!(found, "the put's row is queryable within 5 s");
    let r = a.call(Method::GET, &path, None).await;
    let rows = r.json["entries"].as_array().expect("entries").clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["operation"], "PutObject", "{row}");
    assert_eq!(row["key"], "audited", "{row}");
    assert_eq!(row["bytes_in"], 5, "{row}");
    assert_eq!(row["status"], 200, "{row}");

    let denied_path = format!("/api/v1/audit?access_key={ro_ak}&outcome=denied");
    let r = a.call(Method::GET, &denied_path, None).await;
    let rows = r.json["entries"].as_array().expect("entries");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["operation"], "DeleteObject");
    assert_eq!(rows[0]["status"], 403);

    let r = a
        .call(Method::GET, "/api/v1/audit?outcome=maybe", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"]["field"], "outcome");
    a.k.shutdown().await;
}
