//! "Never panics" properties for the six parsers that the cargo-fuzz targets in
//! `fuzz/` cover, run in plain `cargo test`: the Authorization header, the presigned
//! query, the aws-chunked decoder, the POST form and policy, the router/classifier,
//! and the config parser. Inputs are arbitrary bytes (read as lossy UTF-8 where the
//! parser takes text) plus arbitrary mutations of realistic inputs, so both the early
//! rejections and the deep paths run. Each property also checks an invariant of what
//! the parser accepts, so a parser that returned garbage would fail here too.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use stowage::auth::body::BodyLimits;
use stowage::auth::chunked::ChunkedDecoder;
use stowage::auth::parse::{parse_authorization, parse_presigned};
use stowage::auth::post_policy::{FormFields, Policy};
use stowage::auth::sigv4::derive_signing_key;
use stowage::auth::{ChecksumAlgorithm, ChunkSigningContext, PayloadMode};
use stowage::config::from_toml_str;
use stowage::policy::operation::classify;
use stowage::policy::route::{encode_path, route, validate_bucket};
use stowage::secret::SecretKey;
use stowage::server::form::{FileBody, FormLimits, boundary, closing, read_head};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
const PRESIGN: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
const CONFIG: &str = include_str!("../config.example.toml");

/// `base` with one byte range replaced by `insert`: near-valid input.
fn mutate(base: &str, at: usize, cut: usize, insert: &[u8]) -> String {
    let b = base.as_bytes();
    let at = at % (b.len() + 1);
    let end = (at + cut % 16).min(b.len());
    let mut out = b[..at].to_vec();
    out.extend_from_slice(insert);
    out.extend_from_slice(&b[end..]);
    String::from_utf8_lossy(&out).into_owned()
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

/// An always-ready body made of `data` split every `step` bytes.
struct Frames(Vec<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready((!self.0.is_empty()).then(|| Ok(Frame::data(self.0.remove(0)))))
    }
}

fn frames(data: &[u8], step: usize) -> Frames {
    Frames(
        data.chunks(step.max(1))
            .map(Bytes::copy_from_slice)
            .collect(),
    )
}

fn chunk_context() -> ChunkSigningContext {
    ChunkSigningContext {
        signing_key: derive_signing_key(
            &SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "20130524",
            "us-east-1",
            "s3",
        ),
        amz_date: "20130524T000000Z".into(),
        scope: "20130524/us-east-1/s3/aws4_request".into(),
        seed_signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
    }
}

proptest! {
    #[test]
    fn authorization_header_parser_never_panics_on_arbitrary_or_mutated_text(
        raw in bytes(), at in any::<usize>(), cut in any::<usize>(), insert in bytes(),
    ) {
        for text in [String::from_utf8_lossy(&raw).into_owned(), mutate(AUTH, at, cut, &insert)] {
            if let Ok(h) = parse_authorization(&text) {
                prop_assert_eq!(h.signature.len(), 64);
                prop_assert!(!h.signed_headers.is_empty());
            }
        }
    }

    #[test]
    fn presigned_query_parser_never_panics_on_arbitrary_or_mutated_text(
        raw in bytes(), at in any::<usize>(), cut in any::<usize>(), insert in bytes(),
    ) {
        for text in [String::from_utf8_lossy(&raw).into_owned(), mutate(PRESIGN, at, cut, &insert)] {
            if let Ok(Some(p)) = parse_presigned(&text) {
                prop_assert_eq!(p.signature.len(), 64);
                prop_assert!(p.credential.date.len() == 8);
            }
        }
    }

    #[test]
    fn aws_chunked_decoder_never_panics_and_never_overreleases(
        body in bytes(), step in 1usize..64, mode in 0u8..6, declared in 0u64..600,
    ) {
        let ctx = chunk_context();
        let (signed, trailer) = match mode {
            0 => (true, None),
            1 => (true, Some(ChecksumAlgorithm::Crc32c)),
            2 => (false, Some(ChecksumAlgorithm::Crc64Nvme)),
            3 => (false, Some(ChecksumAlgorithm::Sha1)),
            4 => (true, Some(ChecksumAlgorithm::Sha256)),
            _ => (false, None),
        };
        let payload = PayloadMode::Streaming { signed, trailer, decoded_length: declared };
        let mut d = ChunkedDecoder::new(&payload, Some(&ctx), &BodyLimits::default()).unwrap();
        let mut out = Vec::new();
        let mut ok = true;
        for piece in body.chunks(step) {
            if d.push(Bytes::copy_from_slice(piece), &mut out).is_err() {
                ok = false;
                break;
            }
        }
        let mut released: u64 = out.iter().map(|b| b.len() as u64).sum();
        if ok {
            match d.finish() {
                Ok(last) => released += last.map_or(0, |b| b.len() as u64),
                Err(_) => ok = false,
            }
        }
        prop_assert!(released <= declared);
        if ok {
            prop_assert_eq!(released, declared);
        } else if declared > 0 {
            prop_assert!(released < declared, "a failed body released its last byte");
        }
    }

    #[test]
    fn post_form_reader_and_policy_never_panic_on_arbitrary_input(
        content_type in "\\PC{0,80}", body in bytes(), step in 1usize..64, policy in bytes(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for ct in [content_type.clone(), format!("multipart/form-data; boundary={content_type}")] {
            let Ok(b) = boundary(&ct) else { continue };
            let mut framed = format!("--{b}\r\n").into_bytes();
            framed.extend_from_slice(&body);
            for data in [body.clone(), framed] {
                rt.block_on(async {
                    let mut f = frames(&data, step);
                    let Ok(head) = read_head(&mut f, &b, &FormLimits::default()).await else { return };
                    let Some(len) = (data.len() as u64).checked_sub(head.consumed + closing(&b).len() as u64) else { return };
                    if let Ok(all) = FileBody::new(head.leftover, f, len, closing(&b)).collect().await {
                        assert_eq!(all.to_bytes().len() as u64, len);
                    }
                });
            }
        }
        let text = String::from_utf8_lossy(&policy);
        let now = time::OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        for candidate in [text.to_string(), base64_of(&text)] {
            if let Ok(p) = Policy::decode(&candidate)
                && p.check(&FormFields::default(), "photos", 1, now).is_ok()
            {
                prop_assert!(now < p.expiration);
            }
        }
    }

    #[test]
    fn router_and_classifier_never_panic_on_arbitrary_text(
        method in "[A-Z]{1,8}", host in bytes(), path in bytes(), query in bytes(), copy in bytes(),
    ) {
        let (host, path, query) = (
            String::from_utf8_lossy(&host), String::from_utf8_lossy(&path), String::from_utf8_lossy(&query),
        );
        let suffixes = vec!["s3.example.com".to_owned()];
        for p in [path.to_string(), format!("/{path}")] {
            let Ok(r) = route(Some(&host), &p, &suffixes) else { continue };
            if let Some(b) = &r.bucket {
                prop_assert!(validate_bucket(b).is_ok());
            }
            let again = route(None, &encode_path(r.bucket.as_deref(), r.key.as_deref()), &[]).unwrap();
            prop_assert_eq!((again.bucket, again.key), (r.bucket.clone(), r.key.clone()));
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&copy) {
                headers.insert("x-amz-copy-source", v);
            }
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let _ = classify(&m, &r, Some(&query), &headers);
            let _ = stowage::policy::scope::copy_source_from_headers(&headers);
        }
    }

    #[test]
    fn config_parser_never_panics_on_arbitrary_or_mutated_toml(
        raw in bytes(), at in any::<usize>(), cut in any::<usize>(), insert in bytes(),
    ) {
        let env = |name: &str| (!name.starts_with("STOWAGE_")).then(|| "env-secret-value-xyz".to_owned());
        for text in [String::from_utf8_lossy(&raw).into_owned(), mutate(CONFIG, at, cut, &insert)] {
            if let Err(e) = from_toml_str(&text, &env) {
                let shown = e.to_string();
                prop_assert!(!shown.is_empty());
                prop_assert!(!shown.contains("env-secret-value-xyz"), "{}", shown);
            }
        }
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
