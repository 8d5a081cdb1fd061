//! Accounting per operation, checked against the ledger AND against a real listing
//! of the upstream: overwrites, DeleteObject and DeleteObjects (loud and quiet),
//! CopyObject and UploadPartCopy charged by the source, multipart parts counted,
//! Abort releasing and Complete settling, unlimited buckets costing nothing.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use stowage::credentials::model::Access;
use stowage::quota::ledger::Usage;

use super::{harness, limited, usage};
use crate::common::clients::{Expect as _, status_and_code};
use crate::common::quota::{KIB, hard, key, listed, used, view, wait_used};
use crate::common::{Harness, pattern, scope};

const MIB: u64 = 1024 * KIB;

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, n: u64) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(pattern(n as usize, 2).into())
        .send()
        .await
        .expect_ok("PutObject");
}

/// The ledger agrees with what really landed upstream, and equals `want`.
async fn assert_accounted(h: &Harness, want: Usage) {
    assert_eq!(listed(h, &h.bucket).await, want, "upstream listing");
    assert_eq!(wait_used(h, &h.bucket, want).await, want, "ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_count_once_once_settled() {
    let h = limited(hard(MIB)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    put(&c, &h.bucket, "k", 10 * KIB).await;
    assert_eq!(used(&h, &h.bucket), usage(10 * KIB, 1));
    put(&c, &h.bucket, "k", 4 * KIB).await;
    assert_eq!(
        used(&h, &h.bucket),
        usage(4 * KIB, 1),
        "shrinking overwrite"
    );
    put(&c, &h.bucket, "k", 20 * KIB).await;
    assert_eq!(used(&h, &h.bucket), usage(20 * KIB, 1), "growing overwrite");
    assert_accounted(&h, usage(20 * KIB, 1)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_and_delete_objects_decrement_usage() {
    let h = limited(hard(MIB)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    for (k, n) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        put(&c, &h.bucket, k, n * KIB).await;
    }
    assert_eq!(used(&h, &h.bucket), usage(10 * KIB, 4));
    c.delete_object()
        .bucket(&h.bucket)
        .key("a")
        .send()
        .await
        .expect_ok("DeleteObject");
    assert_eq!(used(&h, &h.bucket), usage(9 * KIB, 3));
    c.delete_object()
        .bucket(&h.bucket)
        .key("never-existed")
        .send()
        .await
        .expect_ok("DeleteObject of a missing key");
    assert_eq!(used(&h, &h.bucket), usage(9 * KIB, 3), "nothing to free");

    let ids = |keys: &[&str]| {
        keys.iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
            .collect::<Vec<_>>()
    };
    let delete = Delete::builder()
        .set_objects(Some(ids(&["b", "c", "missing"])))
        .build()
        .expect("delete");
    c.delete_objects()
        .bucket(&h.bucket)
        .delete(delete)
        .send()
        .await
        .expect_ok("DeleteObjects");
    assert_eq!(used(&h, &h.bucket), usage(4 * KIB, 1));
    let quiet = Delete::builder()
        .set_objects(Some(ids(&["d"])))
        .quiet(true)
        .build()
        .expect("delete");
    c.delete_objects()
        .bucket(&h.bucket)
        .delete(quiet)
        .send()
        .await
        .expect_ok("quiet DeleteObjects");
    assert_accounted(&h, Usage::default()).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_and_upload_part_copy_are_charged_by_source_size() {
    let h = limited(hard(150 * KIB)).await;
    h.create_bucket_upstream("source").await;
    h.put_upstream("source", "big", &pattern(100 * KIB as usize, 6))
        .await;
    let (ak, sk) = h.credential(vec![
        scope(&h.bucket, Access::ReadWrite),
        scope("source", Access::ReadOnly),
    ]);
    let c = h.client(&ak, &sk);
    c.copy_object()
        .bucket(&h.bucket)
        .key("copy-1")
        .copy_source("source/big")
        .send()
        .await
        .expect_ok("CopyObject within the cap");
    assert_eq!(used(&h, &h.bucket), usage(100 * KIB, 1));
    let err = c
        .copy_object()
        .bucket(&h.bucket)
        .key("copy-2")
        .copy_source("source/big")
        .send()
        .await
        .expect_err("a second copy passes the cap");
    assert_eq!(
        status_and_code(&err),
        (Some(507), Some("QuotaExceeded".to_owned()))
    );

    let upload = c
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("assembled")
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id");
    c.upload_part_copy()
        .bucket(&h.bucket)
        .key("assembled")
        .upload_id(id)
        .part_number(1)
        .copy_source("source/big")
        .copy_source_range("bytes=0-40959")
        .send()
        .await
        .expect_ok("UploadPartCopy of a 40 KiB range");
    assert_eq!(
        used(&h, &h.bucket),
        usage(140 * KIB, 1),
        "the range is charged"
    );
    let err = c
        .upload_part_copy()
        .bucket(&h.bucket)
        .key("assembled")
        .upload_id(id)
        .part_number(2)
        .copy_source("source/big")
        .send()
        .await
        .expect_err("a whole-source part copy passes the cap");
    assert_eq!(status_and_code(&err).0, Some(507));
    c.abort_multipart_upload()
        .bucket(&h.bucket)
        .key("assembled")
        .upload_id(id)
        .send()
        .await
        .expect_ok("AbortMultipartUpload");
    assert_accounted(&h, usage(100 * KIB, 1)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_parts_count_abort_releases_and_complete_settles() {
    let h = limited(hard(12 * MIB)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let part = pattern(5 * MIB as usize, 7);
    let upload = c
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("mp")
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id").to_owned();
    let mut done = Vec::new();
    for n in 1..=2 {
        let out = c
            .upload_part()
            .bucket(&h.bucket)
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .body(part.clone().into())
            .send()
            .await
            .expect_ok("UploadPart");
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        assert_eq!(
            used(&h, &h.bucket),
            usage(5 * MIB * n as u64, 0),
            "parts count"
        );
    }
    let err = c
        .upload_part()
        .bucket(&h.bucket)
        .key("mp")
        .upload_id(&id)
        .part_number(3)
        .body(part.clone().into())
        .send()
        .await
        .expect_err("a third part passes the cap");
    assert_eq!(status_and_code(&err).0, Some(507));
    c.complete_multipart_upload()
        .bucket(&h.bucket)
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect_ok("CompleteMultipartUpload");
    assert_accounted(&h, usage(10 * MIB, 1)).await;

    // An aborted upload gives its parts back.
    let upload = c
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("dropped")
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id").to_owned();
    c.upload_part()
        .bucket(&h.bucket)
        .key("dropped")
        .upload_id(&id)
        .part_number(1)
        .body(pattern(MIB as usize, 1).into())
        .send()
        .await
        .expect_ok("UploadPart");
    assert_eq!(used(&h, &h.bucket), usage(11 * MIB, 1));
    c.abort_multipart_upload()
        .bucket(&h.bucket)
        .key("dropped")
        .upload_id(&id)
        .send()
        .await
        .expect_ok("AbortMultipartUpload");
    assert_accounted(&h, usage(10 * MIB, 1)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_without_a_limit_are_not_accounted() {
    let h = harness().await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    put(&c, &h.bucket, "free", 4 * KIB).await;
    c.delete_object()
        .bucket(&h.bucket)
        .key("free")
        .send()
        .await
        .expect_ok("DeleteObject");
    assert!(view(&h, &h.bucket).is_none(), "no ledger entry at all");
    assert!(h.running().ledger.view(&key("other")).is_none());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_overwrites_and_deletes_of_one_key_never_undercount() {
    let h = limited(hard(100 * MIB)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    put(&c, &h.bucket, "hot", 64 * KIB).await;
    for round in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let (c, bucket) = (c.clone(), h.bucket.clone());
            // Outcomes vary (s3s-fs even answers 500 to racing deletes of one file);
            // whatever happened, the ledger must not count less than is stored.
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let body = pattern(((i + 1) * 8 * KIB) as usize, 1);
                    let r = c.put_object().bucket(&bucket).key("hot").body(body.into());
                    let _ = r.send().await;
                } else {
                    let _ = c.delete_object().bucket(&bucket).key("hot").send().await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let (truth, counted) = (listed(&h, &h.bucket).await, used(&h, &h.bucket));
        assert!(
            counted.bytes >= truth.bytes && counted.objects >= truth.objects,
            "round {round}: counted {counted:?} < stored {truth:?}"
        );
    }
    h.shutdown().await;
}
