//! Payload modes: `x-amz-content-sha256`, aws-chunked, decoded length, trailers.

use super::*;

#[test]
fn signed_streaming_yields_the_decoded_length_and_a_chunk_context() {
    let parts = streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .with("x-amz-decoded-content-length", "66560")
        .sign();
    let v = auth(&parts, NOW).unwrap();
    assert_eq!(
        v.payload,
        PayloadMode::Streaming {
            signed: true,
            trailer: None,
            decoded_length: 66560
        }
    );
    let ctx = v.chunk_context.unwrap();
    let header = parts.headers[http::header::AUTHORIZATION].to_str().unwrap();
    assert!(header.ends_with(&format!("Signature={}", ctx.seed_signature)));
    assert_eq!(ctx.amz_date, AMZ_DATE);
    assert_eq!(ctx.scope, "20130524/us-east-1/s3/aws4_request");
}

#[test]
fn trailer_modes_need_one_checksum_trailer() {
    let ok = streaming("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        .with("x-amz-decoded-content-length", "3")
        .with("x-amz-trailer", "x-amz-checksum-crc32c");
    let v = auth(&ok.sign(), NOW).unwrap();
    let crc = Some(crate::auth::ChecksumAlgorithm::Crc32c);
    assert_eq!(
        v.payload,
        PayloadMode::Streaming {
            signed: false,
            trailer: crc,
            decoded_length: 3
        }
    );
    assert!(v.chunk_context.is_none());
    let missing = streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        .with("x-amz-decoded-content-length", "3");
    assert!(matches!(
        auth(&missing.sign(), NOW),
        Err(AuthError::InvalidRequest(_))
    ));
    let two = streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        .with("x-amz-decoded-content-length", "3")
        .with("x-amz-trailer", "x-amz-checksum-crc32,x-amz-checksum-sha1");
    assert!(matches!(
        auth(&two.sign(), NOW),
        Err(AuthError::InvalidArgument(_))
    ));
}

#[test]
fn streaming_needs_a_bounded_decoded_length() {
    let missing = streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    assert!(matches!(
        auth(&missing.sign(), NOW),
        Err(AuthError::InvalidRequest(_))
    ));
    for bad in ["-1", "1e3", "18446744073709551616", "123456789012345678901"] {
        let spec = streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
            .with("x-amz-decoded-content-length", bad);
        assert!(
            matches!(auth(&spec.sign(), NOW), Err(AuthError::InvalidRequest(_))),
            "{bad}"
        );
    }
}

#[test]
fn payload_hash_header_is_required_and_checked_for_header_auth() {
    let none = Spec::get().with("x-amz-date", AMZ_DATE).sign();
    assert!(matches!(
        auth(&none, NOW),
        Err(AuthError::InvalidRequest(_))
    ));
    let mut bad = Spec::header();
    bad.headers[0].1 = "not-a-hash".into();
    assert!(matches!(
        auth(&bad.sign(), NOW),
        Err(AuthError::InvalidArgument(_))
    ));
}

#[test]
fn aws_chunked_encoding_needs_a_streaming_hash() {
    let parts = Spec::header()
        .with("content-encoding", "aws-chunked")
        .sign();
    assert!(matches!(
        auth(&parts, NOW),
        Err(AuthError::InvalidRequest(_))
    ));
}

#[test]
fn presigned_payload_is_unsigned_unless_a_hash_header_is_signed() {
    let hash = sigv4::sha256_hex(b"hello");
    let pinned = Spec {
        method: "PUT",
        ..Spec::get().with("x-amz-content-sha256", &hash)
    }
    .presign(60);
    assert_eq!(
        auth(&pinned, NOW).unwrap().payload,
        PayloadMode::Sha256(hex_bytes(&hash))
    );
    let streaming = Spec::get()
        .with("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        .with("x-amz-decoded-content-length", "1");
    assert!(matches!(
        auth(&streaming.presign(60), NOW),
        Err(AuthError::InvalidRequest(_))
    ));
}
