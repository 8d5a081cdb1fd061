//! `VerifiedBody` tests over in-memory inner bodies: what is released, when, and
//! which S3 error a failure carries.

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody};
use sha2::{Digest, Sha256};

use super::*;
use crate::auth::ChecksumAlgorithm;
use crate::auth::chunked::testutil::{DOC_SEED, Framer, checksum_b64, doc_ctx, encode};

type Frames = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

/// An inner body that yields `pieces` as separate data frames.
fn frames(pieces: &[&[u8]]) -> Frames {
    let items: Vec<Result<Frame<Bytes>, BoxError>> = pieces
        .iter()
        .map(|p| Ok(Frame::data(Bytes::copy_from_slice(p))))
        .collect();
    StreamBody::new(stream::iter(items))
}

/// Poll to the end: the data released (frame by frame) and the error, if any.
async fn drain<B>(mut body: VerifiedBody<B>) -> (Vec<Bytes>, Option<BodyError>)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.push(f.into_data().expect("only data frames")),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

fn concat(frames: &[Bytes]) -> Vec<u8> {
    frames.iter().flat_map(|b| b.to_vec()).collect()
}

#[tokio::test]
async fn unsigned_payload_passes_through_and_is_counted() {
    let body = verify_body(
        frames(&[b"ab", b"", b"cd"]),
        &PayloadMode::Unsigned,
        None,
        &BodyLimits::default(),
    );
    let handle = body.handle();
    let (got, err) = drain(body).await;
    assert!(err.is_none());
    assert_eq!(concat(&got), b"abcd");
    assert_eq!(handle.bytes_released(), 4);
    assert!(handle.failure().is_none());
}

#[tokio::test]
async fn matching_sha256_releases_everything_at_the_end() {
    let expected: [u8; 32] = Sha256::digest(b"hello world").into();
    let mode = PayloadMode::Sha256(expected);
    let body = verify_body(
        frames(&[b"hello", b" ", b"world"]),
        &mode,
        None,
        &BodyLimits::default(),
    );
    let (got, err) = drain(body).await;
    assert!(err.is_none());
    assert_eq!(concat(&got), b"hello world");
}

#[tokio::test]
async fn sha256_mismatch_holds_back_the_last_frame_and_fails() {
    let expected: [u8; 32] = Sha256::digest(b"hello world").into();
    let mode = PayloadMode::Sha256(expected);
    let body = verify_body(
        frames(&[b"hello", b" ", b"WORLD"]),
        &mode,
        None,
        &BodyLimits::default(),
    );
    let handle = body.handle();
    let (got, err) = drain(body).await;
    assert_eq!(concat(&got), b"hello ", "the last frame never leaves");
    let err = err.expect("mismatch");
    assert_eq!(err.s3_error(), S3Error::XAmzContentSha256Mismatch);
    assert_eq!(err.reason(), "sha256_mismatch");
    assert_eq!(handle.failure(), Some(S3Error::XAmzContentSha256Mismatch));
    assert_eq!(handle.bytes_released(), 6);
}

#[tokio::test]
async fn sha256_single_frame_body_is_not_released_before_verification() {
    let mode = PayloadMode::Sha256([0; 32]);
    let body = verify_body(
        Full::new(Bytes::from_static(b"x")),
        &mode,
        None,
        &BodyLimits::default(),
    );
    let (got, err) = drain(body).await;
    assert!(got.is_empty());
    assert_eq!(
        err.map(|e| e.s3_error()),
        Some(S3Error::XAmzContentSha256Mismatch)
    );
}

#[tokio::test]
async fn signed_streaming_body_decodes_with_exact_size_hints() {
    let data = vec![b'a'; 66560];
    let ctx = doc_ctx(DOC_SEED);
    let (framed, mode) = encode(&data, 65536, Some(&ctx), None);
    let pieces: Vec<&[u8]> = framed.chunks(1000).collect();
    let body = verify_body(frames(&pieces), &mode, Some(&ctx), &BodyLimits::default());
    assert_eq!(body.size_hint().exact(), Some(66560));
    let handle = body.handle();
    let (got, err) = drain(body).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(concat(&got), data);
    assert_eq!(handle.bytes_released(), 66560);
}

#[tokio::test]
async fn size_hint_counts_down_as_bytes_are_released() {
    let ctx = doc_ctx(DOC_SEED);
    let (framed, mode) = encode(&[7u8; 30], 10, None, Some(ChecksumAlgorithm::Crc32));
    let mut body = verify_body(
        frames(&[&framed]),
        &mode,
        Some(&ctx),
        &BodyLimits::default(),
    );
    let first = body
        .frame()
        .await
        .expect("frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(first.len(), 10);
    assert_eq!(body.size_hint().exact(), Some(20));
    assert!(!body.is_end_stream());
    let (rest, err) = drain(body).await;
    assert!(err.is_none());
    assert_eq!(concat(&rest).len(), 20);
}

#[tokio::test]
async fn forged_chunk_releases_only_the_verified_chunks_before_it() {
    let ctx = doc_ctx(DOC_SEED);
    let mut f = Framer::new(Some(&ctx));
    f.chunk(&[1; 64]).chunk(&[2; 64]);
    let sig = f.sign_chunk(&[3; 64]);
    f.chunk_with_signature(&[9; 64], &sig).final_chunk().end();
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 192,
    };
    let body = verify_body(
        frames(&[&f.bytes()]),
        &mode,
        Some(&ctx),
        &BodyLimits::default(),
    );
    let handle = body.handle();
    let (got, err) = drain(body).await;
    let mut expected = vec![1; 64];
    expected.extend([2; 64]);
    assert_eq!(concat(&got), expected);
    assert_eq!(
        err.map(|e| e.s3_error()),
        Some(S3Error::SignatureDoesNotMatch)
    );
    assert_eq!(handle.failure_reason(), Some("chunk_signature"));
    assert_eq!(handle.bytes_released(), 128);
}

#[tokio::test]
async fn bad_trailer_checksum_fails_before_the_last_byte() {
    for a in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
    ] {
        let data = b"0123456789".to_vec();
        let mut f = Framer::new(None);
        f.chunk(&data)
            .final_chunk()
            .trailer(a.header_name(), &checksum_b64(a, b"other"))
            .end();
        let mode = PayloadMode::Streaming {
            signed: false,
            trailer: Some(a),
            decoded_length: 10,
        };
        let framed = f.bytes();
        let pieces: Vec<&[u8]> = framed.chunks(3).collect();
        let body = verify_body(frames(&pieces), &mode, None, &BodyLimits::default());
        let (got, err) = drain(body).await;
        assert_eq!(concat(&got), b"012345678");
        let err = err.expect("mismatch");
        assert_eq!(err.s3_error().code(), "BadDigest");
        assert_eq!(err.reason(), "checksum_mismatch");
    }
}

#[tokio::test]
async fn truncated_streaming_body_is_an_incomplete_body() {
    let (framed, mode) = encode(&[5u8; 40], 16, None, Some(ChecksumAlgorithm::Crc32c));
    let body = verify_body(
        frames(&[&framed[..framed.len() / 2]]),
        &mode,
        None,
        &BodyLimits::default(),
    );
    let (got, err) = drain(body).await;
    assert!(concat(&got).len() < 40);
    assert_eq!(err.map(|e| e.s3_error()), Some(S3Error::IncompleteBody));
}

#[tokio::test]
async fn inner_body_error_stops_the_body_with_incomplete_body() {
    let items: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"abc"))),
        Err("connection reset".into()),
    ];
    let expected: [u8; 32] = Sha256::digest(b"abcdef").into();
    let body = verify_body(
        StreamBody::new(stream::iter(items)),
        &PayloadMode::Sha256(expected),
        None,
        &BodyLimits::default(),
    );
    let (got, err) = drain(body).await;
    assert!(got.is_empty(), "the held frame is never released");
    let err = err.expect("error");
    assert_eq!(err.s3_error(), S3Error::IncompleteBody);
    assert_eq!(err.reason(), "client_body");
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        !err.to_string().contains("reset"),
        "inner text stays out of Display"
    );
}

#[tokio::test]
async fn signed_streaming_without_context_fails_on_first_poll() {
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 1,
    };
    let body = verify_body(
        Full::new(Bytes::from_static(b"whatever")),
        &mode,
        None,
        &BodyLimits::default(),
    );
    let (got, err) = drain(body).await;
    assert!(got.is_empty());
    assert_eq!(err.map(|e| e.s3_error()), Some(S3Error::InternalError));
}

#[tokio::test]
async fn passthrough_size_hint_follows_the_inner_body() {
    let body = verify_body(
        Full::new(Bytes::from_static(b"12345")),
        &PayloadMode::Unsigned,
        None,
        &BodyLimits::default(),
    );
    assert_eq!(body.size_hint().exact(), Some(5));
    let full = Full::new(Bytes::from_static(b"12345"));
    let mode = PayloadMode::Sha256(Sha256::digest(b"12345").into());
    let mut body = verify_body(full, &mode, None, &BodyLimits::default());
    assert_eq!(body.size_hint().exact(), Some(5));
    let frame = body.frame().await.expect("frame").expect("ok");
    assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"12345")));
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
}

#[test]
fn verified_body_can_be_handed_to_a_pooled_client() {
    // hyper-util's client wants `Send + 'static + Unpin` bodies.
    fn assert_client_body<T: Body + Send + Sync + Unpin + 'static>(_: &T) {}
    let body = verify_body(
        Full::new(Bytes::new()),
        &PayloadMode::Unsigned,
        None,
        &BodyLimits::default(),
    );
    assert_client_body(&body);
}

#[test]
fn body_error_is_send_sync_and_displays_only_its_reason() {
    fn assert_send_sync<T: Send + Sync + std::error::Error>() {}
    assert_send_sync::<BodyError>();
    let e = BodyError::from(ChunkedError::ChunkSignature);
    assert_eq!(e.to_string(), "request body rejected: chunk_signature");
}

#[test]
fn strip_aws_chunked_removes_only_that_token() {
    assert_eq!(strip_aws_chunked("aws-chunked"), None);
    assert_eq!(strip_aws_chunked("aws-chunked,gzip"), Some("gzip".into()));
    assert_eq!(strip_aws_chunked("gzip, aws-chunked"), Some("gzip".into()));
    assert_eq!(
        strip_aws_chunked("AWS-Chunked , gzip,br"),
        Some("gzip,br".into())
    );
    assert_eq!(strip_aws_chunked("gzip"), Some("gzip".into()));
    assert_eq!(strip_aws_chunked(""), None);
    assert_eq!(strip_aws_chunked(" , "), None);
}

#[test]
fn default_limits_are_documented_values() {
    let l = BodyLimits::default();
    assert_eq!(
        (l.max_signed_chunk, l.max_chunk_line, l.max_trailer_section),
        (16 << 20, 4096, 16384)
    );
}
