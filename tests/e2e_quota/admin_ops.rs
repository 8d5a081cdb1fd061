//! The proxy's own admin-signed calls against the real in-process upstream: object
//! sizes (HEAD), a bucket's usage over several ListObjectsV2 pages, an upload's parts
//! (ListParts), and ListMultipartUploads, which s3s-fs does not implement.

use std::time::Duration;

use futures_util::StreamExt as _;
use stowage::quota::ledger::Usage;
use stowage::secret::SecretKey;
use stowage::upstream::admin_ops::{self, AdminOpError};
use stowage::upstream::client::ClientOptions;
use stowage::upstream::{UpstreamBackend, UpstreamClient};

use super::harness;
use crate::common::clients::Expect as _;
use crate::common::{BACKEND, Harness, REGION, pattern};

fn admin(h: &Harness) -> (UpstreamClient, UpstreamBackend) {
    let client = UpstreamClient::new(&ClientOptions {
        connect_timeout: Duration::from_secs(2),
        response_header_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        pool_idle_timeout: Duration::from_secs(10),
        pool_max_idle_per_host: 0,
    });
    let backend = UpstreamBackend::new(
        BACKEND,
        &h.upstream_endpoint.parse().expect("endpoint"),
        REGION,
        h.admin_access_key(),
        &SecretKey::new(h.admin_secret()),
    )
    .expect("backend");
    (client, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_size_reads_present_objects_and_reports_missing_ones() {
    let h = harness().await;
    let (c, b) = admin(&h);
    let odd = "dir/ä b+c%&=?.txt";
    h.put_upstream(&h.bucket, odd, &pattern(1234, 1)).await;
    let size = admin_ops::object_size(&c, &b, &h.bucket, odd, None).await;
    assert_eq!(size, Ok(Some(1234)));
    let missing = admin_ops::object_size(&c, &b, &h.bucket, "nope", None).await;
    assert_eq!(missing, Ok(None));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_usage_sums_every_page_of_the_listing() {
    let h = harness().await;
    let (c, b) = admin(&h);
    const N: usize = 1003; // more than one 1000-key page
    let client = h.admin_client();
    futures_util::stream::iter(1..=N)
        .for_each_concurrent(32, |i| {
            let (client, bucket) = (client.clone(), h.bucket.clone());
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("k/{i:05}"))
                    .body(vec![b'x'; i].into())
                    .send()
                    .await
                    .expect_ok("seed object");
            }
        })
        .await;
    let usage = admin_ops::bucket_usage(&c, &b, &h.bucket).await;
    let bytes = (N * (N + 1) / 2) as u64;
    assert_eq!(
        usage,
        Ok(Usage {
            bytes,
            objects: N as u64
        })
    );
    let missing = admin_ops::bucket_usage(&c, &b, "no-such-bucket").await;
    assert_eq!(missing, Err(AdminOpError::Status(404)));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parts_bytes_sums_an_uploads_parts() {
    let h = harness().await;
    let (c, b) = admin(&h);
    let client = h.admin_client();
    let upload = client
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("mp key")
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id");
    for (n, len) in [(1, 100), (2, 200)] {
        client
            .upload_part()
            .bucket(&h.bucket)
            .key("mp key")
            .upload_id(id)
            .part_number(n)
            .body(pattern(len, 1).into())
            .send()
            .await
            .expect_ok("UploadPart");
    }
    let bytes = admin_ops::list_parts_bytes(&c, &b, &h.bucket, "mp key", id).await;
    assert_eq!(bytes, Ok(300));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_without_list_multipart_uploads_contributes_nothing() {
    let mut h = harness().await;
    let (c, b) = admin(&h);
    let listed = admin_ops::listed_multipart_bytes(&c, &b, &h.bucket).await;
    assert_eq!(listed, Ok(None), "s3s-fs answers 501");
    assert_eq!(admin_ops::multipart_bytes(&c, &b, &h.bucket).await, Ok(0));
    h.stop_upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let down = admin_ops::bucket_usage(&c, &b, &h.bucket).await;
    assert_eq!(down, Err(AdminOpError::Unavailable));
    h.shutdown().await;
}
