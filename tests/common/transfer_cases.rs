//! Shared cases for larger and encoded uploads: multipart (complete and abort) and the
//! SDK's default checksum behaviour (hex SHA-256 + CRC32 header for in-memory bodies,
//! aws-chunked with a CRC32 trailer for streaming bodies, over http and https).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use stowage::credentials::model::Access;

use super::cases::{get_bytes, put_bytes};
use super::clients::{Expect as _, status_and_code};
use super::signer::{STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER};
use super::{Harness, pattern};

const MIB: usize = 1024 * 1024;

pub async fn multipart_upload_round_trips(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let key = "multi/big.bin";
    let parts = [pattern(5 * MIB, 3), pattern(5 * MIB + 17, 4)];
    let create = c
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key(key)
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let upload_id = create.upload_id().expect("upload id").to_owned();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).expect("part number");
        let out = c
            .upload_part()
            .bucket(&h.bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect_ok("UploadPart");
        completed.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
    }
    let listed = c
        .list_parts()
        .bucket(&h.bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect_ok("ListParts");
    // Sorted here: s3s-fs lists parts in directory order (S3 sorts by part number).
    let mut sizes: Vec<(Option<i32>, Option<i64>)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    sizes.sort_unstable();
    let expected = vec![
        (Some(1), Some(5 * MIB as i64)),
        (Some(2), Some(5 * MIB as i64 + 17)),
    ];
    assert_eq!(
        sizes, expected,
        "ListParts shows both parts with their sizes"
    );

    c.complete_multipart_upload()
        .bucket(&h.bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect_ok("CompleteMultipartUpload");
    let whole: Vec<u8> = parts.concat();
    assert!(
        get_bytes(&c, &h.bucket, key).await == whole,
        "the object is the two parts, byte for byte"
    );
    assert!(
        h.read_upstream(&h.bucket, key).await == whole,
        "upstream holds the assembled object"
    );
}

pub async fn multipart_upload_abort_leaves_nothing(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let key = "multi/aborted.bin";
    let create = c
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key(key)
        .send()
        .await
        .expect_ok("CreateMultipartUpload");
    let upload_id = create.upload_id().expect("upload id").to_owned();
    let part = c
        .upload_part()
        .bucket(&h.bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(pattern(4096, 5)))
        .send()
        .await
        .expect_ok("UploadPart");
    let listed = c
        .list_parts()
        .bucket(&h.bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect_ok("ListParts before abort");
    assert_eq!(
        listed.parts().len(),
        1,
        "the part is there before the abort"
    );
    c.abort_multipart_upload()
        .bucket(&h.bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect_ok("AbortMultipartUpload");

    // Completing the aborted upload fails exactly as it does directly upstream (the
    // code differs between servers; the proxy must pass it through unchanged).
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        )
        .build();
    let complete = |client: &Client| {
        client
            .complete_multipart_upload()
            .bucket(&h.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(done.clone())
            .send()
    };
    let via_proxy = status_and_code(
        &complete(&c)
            .await
            .expect_err("aborted upload cannot complete"),
    );
    let direct = status_and_code(
        &complete(&h.admin_client())
            .await
            .expect_err("not upstream either"),
    );
    assert_eq!(
        via_proxy, direct,
        "the proxy reports the upstream's refusal"
    );
    assert!(
        via_proxy.0.is_some_and(|s| (400..500).contains(&s)),
        "a client error: {via_proxy:?}"
    );
    assert!(
        !h.exists_upstream(&h.bucket, key).await,
        "no object after the abort"
    );
}

/// In-memory body: the SDK signs the hex SHA-256 and adds a signed CRC32 header.
pub async fn sdk_default_checksum_in_memory_body(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let body = pattern(200_000, 8);
    put_bytes(&c, &h.bucket, "checksum/in-memory.bin", &body).await;
    let sent = h
        .sent
        .last("PUT", "checksum/in-memory.bin")
        .expect("the PUT was recorded");
    let sha = sent
        .header("x-amz-content-sha256")
        .expect("x-amz-content-sha256");
    assert_eq!(
        sha,
        super::signer::sha256_hex(&body),
        "hex payload hash mode"
    );
    assert_eq!(
        sent.header("x-amz-checksum-crc32"),
        Some(super::uploads::crc32_b64(&body).as_str())
    );
    assert!(
        sent.header("authorization")
            .is_some_and(|a| a.contains("x-amz-checksum-crc32")),
        "the checksum header is signed"
    );
    assert_eq!(
        h.read_upstream(&h.bucket, "checksum/in-memory.bin").await,
        body
    );
}

/// Streaming body (file-backed, so `bytes()` is unavailable to the SDK): the SDK
/// switches to aws-chunked with a CRC32 trailer. Over plain http it signs every chunk
/// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`); the unsigned-trailer variant is what
/// it sends over https (see [`sdk_streaming_body_over_https_uses_unsigned_trailer`]).
/// A body of truly unknown length is refused by the SDK itself (`UnsizedRequestBody`):
/// aws-chunked needs `x-amz-decoded-content-length` up front.
pub async fn sdk_default_checksum_streaming_body(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let body = pattern(3 * MIB / 2, 9);
    let file = h.temp_dir().join("streaming-body.bin");
    std::fs::write(&file, &body).expect("write body file");
    let before = h.metric(
        "stowage_s3_requests_total",
        &[("operation", "PutObject"), ("outcome", "ok")],
    );
    c.put_object()
        .bucket(&h.bucket)
        .key("checksum/streaming.bin")
        .body(ByteStream::from_path(&file).await.expect("file body"))
        .send()
        .await
        .expect_ok("streaming PutObject");
    let sent = h
        .sent
        .last("PUT", "checksum/streaming.bin")
        .expect("the PUT was recorded");
    assert_eq!(
        sent.header("x-amz-content-sha256"),
        Some(STREAMING_SIGNED_TRAILER),
        "aws-chunked mode"
    );
    assert!(
        sent.header("content-encoding")
            .is_some_and(|v| v.contains("aws-chunked"))
    );
    assert_eq!(sent.header("x-amz-trailer"), Some("x-amz-checksum-crc32"));
    assert_eq!(
        sent.header("x-amz-decoded-content-length"),
        Some(body.len().to_string().as_str())
    );
    let after = h.metric(
        "stowage_s3_requests_total",
        &[("operation", "PutObject"), ("outcome", "ok")],
    );
    assert_eq!(
        after - before,
        1.0,
        "the proxy counted one successful PutObject"
    );
    assert!(
        h.read_upstream(&h.bucket, "checksum/streaming.bin").await == body,
        "decoded body upstream"
    );
}

/// Streaming body over https (through a TLS front): the SDK sends aws-chunked with an
/// unsigned CRC32 trailer, `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
pub async fn sdk_streaming_body_over_https_uses_unsigned_trailer(h: &Harness) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let front = super::tls::TlsFront::start(h.s3_addr).await;
    let c = front.client(&ak, &sk, &h.sent);
    let body = pattern(MIB + 333, 11);
    let file = h.temp_dir().join("https-streaming-body.bin");
    std::fs::write(&file, &body).expect("write body file");
    c.put_object()
        .bucket(&h.bucket)
        .key("checksum/https-streaming.bin")
        .body(ByteStream::from_path(&file).await.expect("file body"))
        .send()
        .await
        .expect_ok("streaming PutObject over https");
    let sent = h
        .sent
        .last("PUT", "checksum/https-streaming.bin")
        .expect("the PUT was recorded");
    assert!(
        sent.uri.starts_with("https://"),
        "went through TLS: {}",
        sent.uri
    );
    assert_eq!(
        sent.header("x-amz-content-sha256"),
        Some(STREAMING_UNSIGNED_TRAILER),
        "aws-chunked unsigned-trailer mode"
    );
    assert!(
        sent.header("content-encoding")
            .is_some_and(|v| v.contains("aws-chunked"))
    );
    assert_eq!(sent.header("x-amz-trailer"), Some("x-amz-checksum-crc32"));
    assert!(
        h.read_upstream(&h.bucket, "checksum/https-streaming.bin")
            .await
            == body,
        "decoded body upstream"
    );
    assert_eq!(
        get_bytes(&c, &h.bucket, "checksum/https-streaming.bin").await,
        body,
        "and back over https"
    );
}
