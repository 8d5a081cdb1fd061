use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt as _, StreamBody};
use proptest::prelude::*;

use super::*;

const B: &str = "XyZ";

type Chunks = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
>;

/// `data` delivered in frames of `step` bytes.
fn body(data: &[u8], step: usize) -> Chunks {
    let frames: Vec<_> = data
        .chunks(step.max(1))
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(stream::iter(frames))
}

fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(&closing(B));
    out
}

async fn roundtrip(data: &[u8], step: usize) -> Result<(FormHead, Vec<u8>), S3Error> {
    let mut b = body(data, step);
    let head = read_head(&mut b, B, &FormLimits::default()).await?;
    let len = data.len() as u64 - head.consumed - closing(B).len() as u64;
    let file = FileBody::new(head.leftover.clone(), b, len, closing(B));
    let bytes = file.collect().await?.to_bytes().to_vec();
    Ok((head, bytes))
}

#[tokio::test]
async fn fields_and_the_file_come_out_whatever_the_framing() {
    let file: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let data = form(&[("key", "user/${filename}"), ("Policy", "abc")], &file);
    for step in [1, 2, 3, 7, 64, 4096, data.len()] {
        let (head, got) = roundtrip(&data, step).await.expect("parses");
        assert_eq!(head.fields.get("key"), Some("user/${filename}"));
        assert_eq!(head.fields.get("policy"), Some("abc"));
        assert_eq!(head.filename, "cat.png");
        assert_eq!(got, file, "step {step}");
    }
}

#[tokio::test]
async fn a_wrong_ending_fails_and_never_releases_the_last_byte() {
    let file = vec![9u8; 300];
    let mut data = form(&[("key", "k")], &file);
    let n = data.len();
    data[n - 4] = b'X'; // corrupt the closing delimiter
    let mut b = body(&data, 50);
    let head = read_head(&mut b, B, &FormLimits::default()).await.unwrap();
    let len = data.len() as u64 - head.consumed - closing(B).len() as u64;
    let mut fb = FileBody::new(head.leftover.clone(), b, len, closing(B));
    let handle = fb.handle();
    let mut released = 0usize;
    let mut failed = false;
    while let Some(f) = fb.frame().await {
        match f {
            Ok(f) => released += f.into_data().unwrap().len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    assert_eq!(released, 299, "the last byte is held back");
    assert_eq!(handle.bytes_released(), 299);
    assert!(handle.failure().is_some());
}

#[tokio::test]
async fn a_field_after_the_file_is_refused() {
    let mut data = form(&[("key", "k")], b"hello");
    let cut = data.len() - closing(B).len();
    data.truncate(cut);
    data.extend_from_slice(
        format!("\r\n--{B}\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nx").as_bytes(),
    );
    data.extend_from_slice(&closing(B));
    // Whatever the framing, including a delimiter split across frames.
    for step in 1..=20 {
        let mut b = body(&data, step);
        let head = read_head(&mut b, B, &FormLimits::default()).await.unwrap();
        // The length arithmetic alone would take the late field as file content.
        let len = data.len() as u64 - head.consumed - closing(B).len() as u64;
        let fb = FileBody::new(head.leftover.clone(), b, len, closing(B));
        assert!(fb.collect().await.is_err(), "step {step}");
    }
}

#[tokio::test]
async fn limits_bound_the_head() {
    let big = "v".repeat(70 * 1024);
    let data = form(&[("key", &big)], b"x");
    let err = roundtrip(&data, 4096).await.unwrap_err();
    assert_eq!(err.code(), "MalformedPOSTRequest");
    let many: Vec<(String, String)> = (0..70).map(|i| (format!("f{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let err = roundtrip(&form(&refs, b"x"), 4096).await.unwrap_err();
    assert_eq!(err.code(), "MalformedPOSTRequest");
    let no_file =
        format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n");
    let err = roundtrip(no_file.as_bytes(), 8).await.unwrap_err();
    assert_eq!(err.message(), "The form has no file field.");
    let dup = form(&[("key", "a"), ("KEY", "b")], b"x");
    assert!(roundtrip(&dup, 64).await.is_err());
}

#[test]
fn boundary_comes_from_the_content_type() {
    assert_eq!(
        boundary("multipart/form-data; boundary=----WebKitFormBoundaryA1").unwrap(),
        "----WebKitFormBoundaryA1"
    );
    assert_eq!(
        boundary("multipart/form-data; boundary=\"q\"").unwrap(),
        "q"
    );
    assert!(boundary("text/plain; boundary=x").is_err());
    assert!(boundary("multipart/form-data").is_err());
    assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))).is_err());
}

proptest! {
    #[test]
    fn any_body_never_panics_the_form_reader(data in proptest::collection::vec(any::<u8>(), 0..2048), step in 1usize..64) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut b = body(&data, step);
            if let Ok(head) = read_head(&mut b, B, &FormLimits::default()).await {
                let len = (data.len() as u64).saturating_sub(head.consumed + closing(B).len() as u64);
                if len > 0 {
                    let _ = FileBody::new(head.leftover, b, len, closing(B)).collect().await;
                }
            }
        });
    }
}
