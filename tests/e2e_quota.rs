//! Quotas end to end: aws-sdk-s3 (and hand-signed raw HTTP where an SDK cannot show
//! it) → the proxy → s3s-fs. This file: admission — concurrent writers racing to the
//! hard cap, the 507 and that SDKs do not retry it, `Expect: 100-continue`, the
//! object cap, the soft cap, aws-chunked bodies charged by their decoded length,
//! failed bodies releasing their reservation. Accounting per operation is in
//! `e2e_quota/accounting.rs`, the scanner in `e2e_quota/scanner.rs`, persistence
//! across a restart in `e2e_quota/restart.rs`, and the upstream admin calls in
//! `e2e_quota/admin_ops.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use common::clients::{Expect as _, Recorder, status_and_code};
use common::edge::{assert_absent, assert_refused, host, put, signer};
use common::quota::{KIB, hard, listed, retrying_client, set_limits, used, view, wait_known};
use common::raw;
use common::signer::{Req, UNSIGNED};
use common::uploads::{Location, Mode, Tamper};
use common::{Harness, UpstreamKind, pattern, scope};
use stowage::credentials::model::Access;
use stowage::quota::Limits;
use stowage::quota::ledger::Usage;
use tokio::io::AsyncWriteExt;

async fn harness() -> Harness {
    Harness::start(UpstreamKind::S3sFs)
        .await
        .expect("s3s-fs harness")
}

/// A harness whose bucket has `limits`, already measured by the scanner.
async fn limited(limits: Limits) -> Harness {
    let h = harness().await;
    set_limits(&h, &h.bucket, limits);
    wait_known(&h, &h.bucket).await;
    h
}

fn usage(bytes: u64, objects: u64) -> Usage {
    Usage { bytes, objects }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_racing_to_the_cap_never_overshoot_it() {
    const WRITERS: usize = 64;
    const OBJECT: u64 = 3 * KIB;
    const CAP: u64 = 100 * KIB;
    let h = limited(hard(CAP)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let client = h.client(&ak, &sk);
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, barrier, bucket) = (client.clone(), Arc::clone(&barrier), h.bucket.clone());
        writers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            barrier.wait().await;
            for round in 0..2 {
                let r = client
                    .put_object()
                    .bucket(&bucket)
                    .key(format!("race/{w}-{round}"))
                    .body(pattern(OBJECT as usize, w as u8).into())
                    .send()
                    .await;
                outcomes.push(r.map(|_| ()).map_err(|e| status_and_code(&e)));
            }
            outcomes
        }));
    }
    let (mut ok, mut refused) = (0u64, 0u64);
    for w in writers {
        for outcome in w.await.expect("writer task") {
            match outcome {
                Ok(()) => ok += 1,
                Err(e) => {
                    assert_eq!(e, (Some(507), Some("QuotaExceeded".to_owned())));
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "some writes must have been refused");
    assert_eq!(
        ok,
        CAP / OBJECT,
        "exactly as many writes as fit were admitted"
    );
    let landed = listed(&h, &h.bucket).await;
    assert!(landed.bytes <= CAP, "upstream holds {} > cap", landed.bytes);
    assert_eq!(landed, usage(ok * OBJECT, ok), "what landed upstream");
    assert_eq!(
        used(&h, &h.bucket),
        landed,
        "the ledger agrees with the upstream"
    );
    assert_eq!(
        view(&h, &h.bucket).expect("view").reserved,
        Usage::default()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_is_507_quota_exceeded_and_the_sdk_does_not_retry_it() {
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.upstream.pool_max_idle_per_host = 0;
    })
    .await
    .expect("harness");
    set_limits(&h, &h.bucket, hard(10 * KIB));
    wait_known(&h, &h.bucket).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let recorder = Recorder::default();
    let client = retrying_client(&h, &ak, &sk, &recorder);
    let err = client
        .put_object()
        .bucket(&h.bucket)
        .key("too-big")
        .body(pattern(20 * KIB as usize, 1).into())
        .send()
        .await
        .expect_err("over the hard cap");
    assert_eq!(
        status_and_code(&err),
        (Some(507), Some("QuotaExceeded".to_owned()))
    );
    let message = err.message().unwrap_or_default().to_owned();
    assert_eq!(message, "The bucket's storage quota is exceeded.");
    assert_eq!(
        recorder.all().iter().filter(|r| r.method == "PUT").count(),
        1,
        "a 507 is not retried"
    );
    assert_eq!(
        h.metric(
            "stowage_quota_rejections_total",
            &[("reason", "hard_bytes")]
        ),
        1.0
    );
    assert_absent(&h, &h.bucket, "too-big", "refused").await;

    // Control: the same client does retry a retryable answer (503, upstream down).
    h.stop_upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = recorder.all().len();
    let err = client
        .head_object()
        .bucket(&h.bucket)
        .key("x")
        .send()
        .await
        .expect_err("upstream down");
    assert_eq!(status_and_code(&err).0, Some(503));
    assert_eq!(recorder.all().len() - before, 3, "503 is retried");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_over_quota_gets_507_before_the_body() {
    let h = limited(hard(64 * KIB)).await;
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadWrite)]);
    let body = pattern(256 * KIB as usize, 3);
    let head_only = |key: &str, len: usize| {
        let mut req = Req::new("PUT", &format!("/{}/{key}", h.bucket), &host(&h))
            .header("expect", "100-continue")
            .header("content-length", &len.to_string());
        s.sign_header(&mut req, UNSIGNED, &[]);
        req
    };
    // Only the head is written; the answer must come without a single body byte.
    let (_stream, resp) = send_head(&h, &head_only("big", body.len())).await;
    assert_refused(
        &resp,
        507,
        "QuotaExceeded",
        "Expect: 100-continue over quota",
    );
    assert_absent(&h, &h.bucket, "big", "refused before the body").await;

    // Control: within the quota the proxy asks for the body, and charges it.
    let small = &body[..32 * KIB as usize];
    let (mut stream, interim) = send_head(&h, &head_only("small", small.len())).await;
    assert_eq!(interim.status, 100, "within quota: 100 Continue first");
    stream.write_all(small).await.expect("send body");
    let done = tokio::time::timeout(Duration::from_secs(10), raw::read_response(&mut stream))
        .await
        .expect("final response")
        .expect("parseable");
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(used(&h, &h.bucket), usage(32 * KIB, 1));
    h.shutdown().await;
}

/// Write only the head of `req` and read the first answer (5 s at most).
async fn send_head(h: &Harness, req: &Req) -> (tokio::net::TcpStream, raw::RawResponse) {
    let mut stream = tokio::net::TcpStream::connect(h.s3_addr)
        .await
        .expect("connect");
    stream
        .write_all(&raw::head_bytes(req))
        .await
        .expect("write head");
    let resp = tokio::time::timeout(Duration::from_secs(5), raw::read_response(&mut stream))
        .await
        .expect("an answer before any body byte is sent")
        .expect("a parseable response");
    (stream, resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_put_without_a_length_is_411_on_a_quota_bucket() {
    let h = limited(hard(64 * KIB)).await;
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadWrite)]);
    let mut req = Req::new("PUT", &format!("/{}/nolen", h.bucket), &host(&h))
        .header("transfer-encoding", "chunked");
    s.sign_header(&mut req, UNSIGNED, &[]);
    let (_stream, resp) = send_head(&h, &req).await;
    assert_refused(&resp, 411, "MissingContentLength", "no length");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_cap_refuses_new_objects_but_allows_overwrites() {
    let h = limited(Limits {
        max_objects: Some(3),
        ..Limits::default()
    })
    .await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    for i in 0..3 {
        c.put_object()
            .bucket(&h.bucket)
            .key(format!("o{i}"))
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_ok("within the object cap");
    }
    let err = c
        .put_object()
        .bucket(&h.bucket)
        .key("o3")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("a fourth object");
    assert_eq!(
        status_and_code(&err),
        (Some(507), Some("QuotaExceeded".to_owned()))
    );
    c.put_object()
        .bucket(&h.bucket)
        .key("o1")
        .body(b"longer".to_vec().into())
        .send()
        .await
        .expect_ok("an overwrite adds no object");
    assert_eq!(used(&h, &h.bucket), usage(8, 3));
    assert_eq!(
        h.metric(
            "stowage_quota_rejections_total",
            &[("reason", "max_objects")]
        ),
        1.0
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_cap_warns_with_a_header_a_metric_and_one_log_per_crossing() {
    let h = limited(Limits {
        soft_bytes: Some(10 * KIB),
        ..Limits::default()
    })
    .await;
    common::logs::capture();
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadWrite)]);
    let logged = || common::logs::lines_with(&["crossed its soft quota", &s.access_key]).len();
    let b = h.bucket.clone();
    let upload = |key: &'static str, n: u64| {
        let (h, s, b) = (&h, &s, b.clone());
        async move {
            let data = pattern(n as usize, 5);
            let r = put(
                h,
                s,
                Location::Header,
                Mode::Hex,
                (&b, key),
                &data,
                &Tamper::default(),
            )
            .await;
            assert_eq!(r.status, 200, "{key}: {}", r.text());
            r.header("x-stowage-quota-warning").map(str::to_owned)
        }
    };
    let crossings = || {
        h.metric(
            "stowage_quota_soft_exceeded_total",
            &[("bucket", h.bucket.as_str())],
        )
    };
    assert_eq!(upload("a", 8 * KIB).await, None, "under the soft cap");
    let warned = Some("soft-limit-exceeded".to_owned());
    assert_eq!(upload("b", 4 * KIB).await, warned, "crossing");
    assert_eq!(crossings(), 1.0);
    assert_eq!(upload("c", KIB).await, warned, "still over");
    assert_eq!(crossings(), 1.0, "counted once per crossing");
    assert_eq!(logged(), 1, "logged once per crossing");
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    h.client(&ak, &sk)
        .delete_object()
        .bucket(&h.bucket)
        .key("a")
        .send()
        .await
        .expect_ok("back under the soft cap");
    assert_eq!(upload("d", 6 * KIB).await, warned, "crossing again");
    assert_eq!(crossings(), 2.0);
    assert_eq!(logged(), 2, "a second crossing, a second line");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_aws_chunked_upload_is_charged_its_decoded_length() {
    let h = limited(hard(1024 * KIB)).await;
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    let c = h.client(&ak, &sk);
    let body = pattern(300 * KIB as usize, 8);
    let file = h.temp_dir().join("streaming.bin");
    std::fs::write(&file, &body).expect("write body file");
    c.put_object()
        .bucket(&h.bucket)
        .key("streamed")
        .body(ByteStream::from_path(&file).await.expect("file body"))
        .send()
        .await
        .expect_ok("streaming PutObject");
    let sent = h.sent.last("PUT", "streamed").expect("recorded");
    assert!(
        sent.header("x-amz-content-sha256")
            .is_some_and(|v| v.starts_with("STREAMING-")),
        "the SDK sent aws-chunked"
    );
    let encoded: u64 = sent
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert!(encoded > 300 * KIB, "the wire length includes framing");
    assert_eq!(used(&h, &h.bucket), usage(300 * KIB, 1), "decoded length");

    std::fs::write(&file, pattern(800 * KIB as usize, 9)).expect("write body file");
    let err = c
        .put_object()
        .bucket(&h.bucket)
        .key("streamed-too-big")
        .body(ByteStream::from_path(&file).await.expect("file body"))
        .send()
        .await
        .expect_err("300 + 800 KiB is over the cap");
    assert_eq!(status_and_code(&err).0, Some(507));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_fails_verification_releases_its_reservation() {
    let h = limited(hard(100 * KIB)).await;
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadWrite)]);
    let data = pattern(90 * KIB as usize, 4);
    let forged = Tamper {
        forge_chunk: Some(1),
        ..Tamper::default()
    };
    let obj = (h.bucket.as_str(), "forged");
    let r = put(
        &h,
        &s,
        Location::Header,
        Mode::StreamingSigned,
        obj,
        &data,
        &forged,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let v = view(&h, &h.bucket).expect("view");
    assert_eq!((v.used, v.reserved), (Usage::default(), Usage::default()));
    // The released 90 KiB are available again.
    let ok = Tamper::default();
    let r = put(
        &h,
        &s,
        Location::Header,
        Mode::StreamingSigned,
        obj,
        &data,
        &ok,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(used(&h, &h.bucket), usage(90 * KIB, 1));
    h.shutdown().await;
}

#[path = "e2e_quota/accounting.rs"]
mod accounting;
#[path = "e2e_quota/admin_ops.rs"]
mod admin_ops;
#[path = "e2e_quota/restart.rs"]
mod restart;
#[path = "e2e_quota/scanner.rs"]
mod scanner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_form_upload_is_admitted_by_its_file_size_and_refused_over_the_cap() {
    let h = limited(hard(64 * KIB)).await;
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadWrite)]);
    let send = |key: &str, n: usize| {
        let req = common::forms::Form::new(&h.bucket, key, &pattern(n, 5)).build(&s, &host(&h));
        async move { raw::send(h.s3_addr, &req).await }
    };
    let r = send("over", 100 * KIB as usize).await;
    assert_refused(&r, 507, "QuotaExceeded", "a form over the cap");
    assert_absent(&h, &h.bucket, "over", "refused form").await;
    assert_eq!(
        used(&h, &h.bucket),
        usage(0, 0),
        "the refusal released its charge"
    );
    assert_eq!(
        view(&h, &h.bucket).expect("ledger entry").reserved,
        usage(0, 0),
        "nothing left reserved"
    );
    // Within the cap: charged the file's size, not the form's.
    let r = send("fits", 40 * KIB as usize).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(used(&h, &h.bucket), usage(40 * KIB, 1));
    assert_eq!(listed(&h, &h.bucket).await, usage(40 * KIB, 1));
    h.shutdown().await;
}
