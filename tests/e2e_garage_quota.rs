//! Quota accounting against Garage, a production upstream that lists multipart
//! uploads (s3s-fs cannot): the scanner counts in-progress parts, and Abort and
//! Complete subtract exactly what ListParts lists instead of falling back to a rescan.
//! Without a `garage` binary the test prints "GARAGE TIER DID NOT RUN" and returns;
//! `.ci/run` sets `STOWAGE_REQUIRE_GARAGE=1`, which turns that into a failure.

mod common;

use std::time::Duration;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::clients::Expect as _;
use common::quota::{KIB, hard, key, listed, set_limits, used, wait_known, wait_until, wait_used};
use common::{Harness, UpstreamKind, pattern};
use stowage::credentials::model::Access;
use stowage::quota::ledger::Usage;

const MIB: u64 = 1024 * KIB;

fn usage(bytes: u64, objects: u64) -> Usage {
    Usage { bytes, objects }
}

async fn create(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect_ok("CreateMultipartUpload")
        .upload_id()
        .expect("upload id")
        .to_owned()
}

async fn part(c: &aws_sdk_s3::Client, bucket: &str, key: &str, id: &str, n: i32) -> CompletedPart {
    let out = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(pattern(5 * MIB as usize, n as u8).into())
        .send()
        .await
        .expect_ok("UploadPart");
    CompletedPart::builder()
        .part_number(n)
        .set_e_tag(out.e_tag().map(str::to_owned))
        .build()
}

/// Ask for a recount as `stowage quota recount` does and wait until it is answered.
async fn recount(h: &Harness) {
    let cli = h.second_store();
    cli.request_recount(&key(&h.bucket))
        .expect("request a recount");
    let answered = wait_until(Duration::from_secs(10), || async {
        cli.pending_recounts().expect("pending").is_empty()
    })
    .await;
    assert!(answered, "the proxy answered the recount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_in_progress_parts_are_scanned_and_abort_and_complete_subtract_listed_parts() {
    let Some(h) = Harness::start(UpstreamKind::Garage).await else {
        eprintln!("GARAGE TIER DID NOT RUN: no garage binary on PATH");
        return;
    };
    set_limits(&h, &h.bucket, hard(64 * MIB));
    wait_known(&h, &h.bucket).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);

    // An upload left in progress is usage: the scan lists it (ListMultipartUploads +
    // ListParts), so a recount does not forget the parts the proxy counted.
    let pending = create(&c, &h.bucket, "pending").await;
    part(&c, &h.bucket, "pending", &pending, 1).await;
    assert_eq!(used(&h, &h.bucket), usage(5 * MIB, 0), "the part counts");
    recount(&h).await;
    assert_eq!(
        used(&h, &h.bucket),
        usage(5 * MIB, 0),
        "the scan counts in-progress parts"
    );

    // Drift the proxy has not seen: a rescan would count it, a ListParts subtraction
    // does not. So the ledger after Abort tells which path ran.
    h.put_upstream(&h.bucket, "out-of-band", &pattern(3 * KIB as usize, 9))
        .await;
    c.abort_multipart_upload()
        .bucket(&h.bucket)
        .key("pending")
        .upload_id(&pending)
        .send()
        .await
        .expect_ok("AbortMultipartUpload");
    assert_eq!(
        used(&h, &h.bucket),
        usage(0, 0),
        "Abort subtracted the listed part, without a rescan"
    );

    // Complete: the parts become one object, counted once.
    let id = create(&c, &h.bucket, "done").await;
    let parts = vec![
        part(&c, &h.bucket, "done", &id, 1).await,
        part(&c, &h.bucket, "done", &id, 2).await,
    ];
    assert_eq!(used(&h, &h.bucket), usage(10 * MIB, 0));
    c.complete_multipart_upload()
        .bucket(&h.bucket)
        .key("done")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect_ok("CompleteMultipartUpload");
    assert_eq!(
        used(&h, &h.bucket),
        usage(10 * MIB, 1),
        "Complete turned the parts into one object, without a rescan"
    );

    // A recount now agrees with the upstream, drift included.
    recount(&h).await;
    let truth = listed(&h, &h.bucket).await;
    assert_eq!(truth, usage(10 * MIB + 3 * KIB, 2));
    assert_eq!(wait_used(&h, &h.bucket, truth).await, truth);
    h.shutdown().await;
}
