//! The shared end-to-end cases: aws-sdk-s3 → proxy → a real upstream, run against
//! every upstream kind. Basic object operations live here; multipart and checksum
//! uploads in `transfer_cases`; scope and credential-lifecycle cases in `access_cases`.
//!
//! Every case checks what really landed upstream with the admin client, not only what
//! the proxy answered.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use stowage::credentials::model::Access;

use super::clients::{Expect as _, status_and_code};
use super::{Harness, pattern, scope};

/// GetObject through `client`, as bytes.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect_ok("GetObject");
    out.body.collect().await.expect("GetObject body").to_vec()
}

/// PutObject of an in-memory body through `client`.
pub async fn put_bytes(client: &Client, bucket: &str, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect_ok("PutObject");
}

pub async fn put_get_head_delete(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let body = pattern(70_000, 1);
    put_bytes(&c, &h.bucket, "dir/object.bin", &body).await;
    assert_eq!(
        h.read_upstream(&h.bucket, "dir/object.bin").await,
        body,
        "upstream holds the bytes"
    );
    assert_eq!(get_bytes(&c, &h.bucket, "dir/object.bin").await, body);

    let head = c
        .head_object()
        .bucket(&h.bucket)
        .key("dir/object.bin")
        .send()
        .await
        .expect_ok("HeadObject");
    assert_eq!(head.content_length(), Some(body.len() as i64));

    let ranged = c
        .get_object()
        .bucket(&h.bucket)
        .key("dir/object.bin")
        .range("bytes=10-19")
        .send()
        .await
        .expect_ok("ranged GetObject");
    assert_eq!(
        ranged.body.collect().await.expect("body").to_vec(),
        &body[10..20]
    );

    c.delete_object()
        .bucket(&h.bucket)
        .key("dir/object.bin")
        .send()
        .await
        .expect_ok("DeleteObject");
    assert!(
        !h.exists_upstream(&h.bucket, "dir/object.bin").await,
        "deleted upstream"
    );
    let err = c
        .get_object()
        .bucket(&h.bucket)
        .key("dir/object.bin")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(status_and_code(&err), (Some(404), Some("NoSuchKey".into())));
}

pub async fn list_objects_v2_with_prefix_and_pagination(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let mut expected = Vec::new();
    for i in 0..5 {
        let key = format!("list/item-{i}");
        put_bytes(&c, &h.bucket, &key, key.as_bytes()).await;
        expected.push(key);
    }
    put_bytes(&c, &h.bucket, "elsewhere/x", b"x").await;

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(&h.bucket)
            .prefix("list/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect_ok("ListObjectsV2");
        pages += 1;
        let keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert!(keys.len() <= 2, "max-keys honoured: {keys:?}");
        seen.extend(keys);
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(
            token.is_some(),
            "a truncated page carries a continuation token"
        );
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(seen, expected, "all keys under the prefix, in order, once");
    assert_eq!(pages, 3);
}

pub async fn copy_object_within_scope(h: &Harness) {
    h.create_bucket_upstream("copy-dst").await;
    let (ak, sk) = h.credential(vec![
        scope(&h.bucket, Access::ReadWrite),
        scope("copy-dst", Access::ReadWrite),
    ]);
    let c = h.client(&ak, &sk);
    let body = pattern(10_000, 6);
    put_bytes(&c, &h.bucket, "src/a.bin", &body).await;
    c.copy_object()
        .bucket(&h.bucket)
        .key("dst/same-bucket.bin")
        .copy_source(format!("{}/src/a.bin", h.bucket))
        .send()
        .await
        .expect_ok("CopyObject within the bucket");
    c.copy_object()
        .bucket("copy-dst")
        .key("other-bucket.bin")
        .copy_source(format!("{}/src/a.bin", h.bucket))
        .send()
        .await
        .expect_ok("CopyObject to a second in-scope bucket");
    assert_eq!(
        h.read_upstream(&h.bucket, "dst/same-bucket.bin").await,
        body
    );
    assert_eq!(h.read_upstream("copy-dst", "other-bucket.bin").await, body);
}

pub async fn delete_objects_removes_only_the_named_keys(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    for k in ["del/1", "del/2", "del/keep"] {
        put_bytes(&c, &h.bucket, k, k.as_bytes()).await;
    }
    let ids = ["del/1", "del/2"].map(|k| {
        ObjectIdentifier::builder()
            .key(k)
            .build()
            .expect("identifier")
    });
    let out = c
        .delete_objects()
        .bucket(&h.bucket)
        .delete(
            Delete::builder()
                .set_objects(Some(ids.to_vec()))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect_ok("DeleteObjects");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["del/1", "del/2"]);
    assert!(
        out.errors().is_empty(),
        "no per-key errors: {:?}",
        out.errors()
    );
    assert!(!h.exists_upstream(&h.bucket, "del/1").await);
    assert!(!h.exists_upstream(&h.bucket, "del/2").await);
    assert!(h.exists_upstream(&h.bucket, "del/keep").await);
}

pub async fn presigned_get_and_put_work_over_plain_http(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let http = reqwest::Client::new();
    let cfg = || PresigningConfig::expires_in(Duration::from_secs(300)).expect("presigning config");

    let body = pattern(3000, 7);
    let put = c
        .put_object()
        .bucket(&h.bucket)
        .key("presigned/put.bin")
        .presigned(cfg())
        .await
        .expect("presign PUT");
    let mut req = http.put(put.uri()).body(body.clone());
    for (n, v) in put.headers() {
        req = req.header(n, v);
    }
    let resp = req.send().await.expect("presigned PUT is sent");
    assert_eq!(
        resp.status(),
        200,
        "presigned PUT: {}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(h.read_upstream(&h.bucket, "presigned/put.bin").await, body);

    let get = c
        .get_object()
        .bucket(&h.bucket)
        .key("presigned/put.bin")
        .presigned(cfg())
        .await
        .expect("presign GET");
    assert!(
        get.uri().contains("X-Amz-Signature="),
        "query authentication"
    );
    let resp = http
        .get(get.uri())
        .send()
        .await
        .expect("presigned GET is sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("body").to_vec(), body);
}
