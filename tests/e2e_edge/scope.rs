//! Scope, access class and transport edges: out-of-scope buckets, prefixes and copy
//! sources, read-only writes, bucket administration, an upstream that is down, and
//! `Expect: 100-continue` refused before the body is sent.

use std::time::Duration;

use stowage::credentials::model::Access;
use tokio::io::AsyncWriteExt;

use crate::common::clients::status;
use crate::common::edge::{
    assert_absent, assert_refused, get, harness, host, put, rw_signer, send_signed, signer,
};
use crate::common::raw::{self, RawResponse};
use crate::common::signer::{Req, UNSIGNED};
use crate::common::uploads::{Location, Mode, Tamper};
use crate::common::{Harness, UpstreamKind, pattern, prefix_scope, scope};

const KIB: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_bucket_is_access_denied() {
    let h = harness().await;
    h.create_bucket_upstream("not-yours").await;
    h.put_upstream("not-yours", "x", b"theirs").await;
    let s = signer(&h, vec![scope(&h.bucket, Access::Admin)]);
    assert_refused(
        &get(&h, &s, "/not-yours/x", &[]).await,
        403,
        "AccessDenied",
        "GET",
    );
    assert_refused(
        &get(&h, &s, "/not-yours", &[("list-type", "2")]).await,
        403,
        "AccessDenied",
        "list",
    );
    let resp = put(
        &h,
        &s,
        Location::Header,
        Mode::Hex,
        ("not-yours", "new"),
        b"n",
        &Tamper::default(),
    )
    .await;
    assert_refused(&resp, 403, "AccessDenied", "PUT");
    assert_absent(&h, "not-yours", "new", "out of scope PUT").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_prefix_is_access_denied() {
    let h = harness().await;
    h.put_upstream(&h.bucket, "other/x", b"x").await;
    let s = signer(
        &h,
        vec![prefix_scope(&h.bucket, Access::ReadWrite, "team/")],
    );
    let b = h.bucket.clone();
    let ok = put(
        &h,
        &s,
        Location::Header,
        Mode::Hex,
        (&b, "team/a"),
        b"a",
        &Tamper::default(),
    )
    .await;
    assert_eq!(ok.status, 200, "inside the prefix: {}", ok.text());
    let resp = put(
        &h,
        &s,
        Location::Header,
        Mode::Hex,
        (&b, "other/a"),
        b"a",
        &Tamper::default(),
    )
    .await;
    assert_refused(&resp, 403, "AccessDenied", "PUT outside the prefix");
    assert_absent(&h, &b, "other/a", "outside the prefix").await;
    assert_refused(
        &get(&h, &s, &format!("/{b}/other/x"), &[]).await,
        403,
        "AccessDenied",
        "GET outside",
    );
    let list = |p: &'static str| [("list-type", "2"), ("prefix", p)];
    assert_eq!(
        get(&h, &s, &format!("/{b}"), &list("team/")).await.status,
        200,
        "list inside the prefix"
    );
    assert_refused(
        &get(&h, &s, &format!("/{b}"), &[("list-type", "2")]).await,
        403,
        "AccessDenied",
        "list all",
    );
    assert_refused(
        &get(&h, &s, &format!("/{b}"), &list("te")).await,
        403,
        "AccessDenied",
        "list wider prefix",
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_copy_source_is_access_denied_and_nothing_is_copied() {
    let h = harness().await;
    for b in ["private", "shared"] {
        h.create_bucket_upstream(b).await;
        h.put_upstream(b, "secret.txt", b.as_bytes()).await;
    }
    let s = signer(
        &h,
        vec![
            scope(&h.bucket, Access::ReadWrite),
            scope("shared", Access::ReadOnly),
        ],
    );
    let copy = |src: &str, dst: &str| {
        Req::new("PUT", &format!("/{}/{dst}", h.bucket), &host(&h)).header("x-amz-copy-source", src)
    };
    let resp = send_signed(&h, &s, copy("/private/secret.txt", "stolen")).await;
    assert_refused(
        &resp,
        403,
        "AccessDenied",
        "copy from an out-of-scope bucket",
    );
    assert_absent(&h, &h.bucket, "stolen", "copy source out of scope").await;

    let resp = send_signed(&h, &s, copy("shared/secret.txt", "copied")).await;
    assert_eq!(
        resp.status,
        200,
        "copy from a read-only scope: {}",
        resp.text()
    );
    assert_eq!(h.read_upstream(&h.bucket, "copied").await, b"shared");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_credential_write_is_access_denied() {
    let h = harness().await;
    let s = signer(&h, vec![scope(&h.bucket, Access::ReadOnly)]);
    let b = h.bucket.clone();
    for mode in [Mode::Hex, Mode::Unsigned, Mode::StreamingSigned] {
        let key = format!("ro/{mode:?}");
        let resp = put(
            &h,
            &s,
            Location::Header,
            mode,
            (&b, &key),
            b"data",
            &Tamper::default(),
        )
        .await;
        assert_refused(&resp, 403, "AccessDenied", &key);
        assert_absent(&h, &b, &key, "read-only").await;
    }
    h.put_upstream(&b, "ro/keep", b"k").await;
    let del = send_signed(
        &h,
        &s,
        Req::new("DELETE", &format!("/{b}/ro/keep"), &host(&h)),
    )
    .await;
    assert_refused(&del, 403, "AccessDenied", "read-only DELETE");
    assert!(h.exists_upstream(&b, "ro/keep").await);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_admin_needs_the_admin_access_class() {
    let h = harness().await;
    let s = signer(
        &h,
        vec![
            scope(&h.bucket, Access::ReadWrite),
            scope("new-*", Access::ReadWrite),
        ],
    );
    let hs = host(&h);
    let resp = send_signed(&h, &s, Req::new("PUT", "/new-bucket-1", &hs)).await;
    assert_refused(&resp, 403, "AccessDenied", "CreateBucket with read-write");
    let missing = h
        .admin_client()
        .head_bucket()
        .bucket("new-bucket-1")
        .send()
        .await;
    let missing = missing.expect_err("no bucket upstream");
    assert_eq!(status(&missing), Some(404), "no bucket upstream");

    let policy = br#"{"Version":"2012-10-17","Statement":[]}"#.to_vec();
    let req = Req::new("PUT", &format!("/{}", h.bucket), &hs)
        .query("policy", "")
        .body(policy);
    assert_refused(
        &send_signed(&h, &s, req).await,
        403,
        "AccessDenied",
        "PutBucketPolicy with read-write",
    );
    let req = Req::new("DELETE", &format!("/{}", h.bucket), &hs);
    assert_refused(
        &send_signed(&h, &s, req).await,
        403,
        "AccessDenied",
        "DeleteBucket with read-write",
    );

    let admin = signer(&h, vec![scope("adm-*", Access::Admin)]);
    let resp = send_signed(&h, &admin, Req::new("PUT", "/adm-1", &hs)).await;
    assert_eq!(resp.status, 200, "CreateBucket with admin: {}", resp.text());
    assert!(
        h.admin_client()
            .head_bucket()
            .bucket("adm-1")
            .send()
            .await
            .is_ok(),
        "bucket created upstream"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_503_without_internal_text() {
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.upstream.pool_max_idle_per_host = 0
    })
    .await
    .expect("harness");
    h.put_upstream(&h.bucket, "x", b"x").await;
    let s = rw_signer(&h);
    let path = format!("/{}/x", h.bucket);
    assert_eq!(get(&h, &s, &path, &[]).await.status, 200, "control");
    h.stop_upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = get(&h, &s, &path, &[]).await;
    assert_refused(&resp, 503, "ServiceUnavailable", "upstream down");
    let text = resp.text().to_ascii_lowercase();
    let upstream = h.upstream_endpoint.trim_start_matches("http://").to_owned();
    for leak in [
        upstream.as_str(),
        "refused",
        "os error",
        "hyper",
        "tcp",
        "connect",
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(leak),
            "the error body leaks {leak:?}: {text}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_never_answers_is_504_without_internal_text() {
    // An upstream that accepts connections and never sends a response head.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stall_addr = stall.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in stall.incoming().take(16) {
            held.push(conn);
        }
    });
    let h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.upstream.response_header_timeout = Duration::from_secs(1);
        c.backends[0].endpoint = format!("http://{stall_addr}").parse().expect("uri");
    })
    .await
    .expect("harness");
    let s = rw_signer(&h);
    let started = std::time::Instant::now();
    let resp = get(&h, &s, &format!("/{}/x", h.bucket), &[]).await;
    assert_refused(&resp, 504, "GatewayTimeout", "stalled upstream");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout applies"
    );
    let text = resp.text().to_ascii_lowercase();
    for leak in [
        stall_addr.to_string().as_str(),
        "timed out",
        "hyper",
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(leak),
            "the error body leaks {leak:?}: {text}"
        );
    }
    h.shutdown().await;
}

/// Write only the head of `req` (with `Expect: 100-continue`) and read the first answer.
async fn expect_continue(h: &Harness, req: &Req) -> (tokio::net::TcpStream, RawResponse) {
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
async fn expect_continue_out_of_scope_is_refused_before_the_body() {
    let h = harness().await;
    h.create_bucket_upstream("not-yours").await;
    let s = rw_signer(&h);
    let body = pattern(256 * KIB, 7);
    let mut req = Req::new("PUT", "/not-yours/big", &host(&h))
        .header("expect", "100-continue")
        .header("content-length", &body.len().to_string());
    s.sign_header(&mut req, UNSIGNED, &[]);
    let (_stream, resp) = expect_continue(&h, &req).await;
    assert_refused(
        &resp,
        403,
        "AccessDenied",
        "Expect: 100-continue out of scope",
    );
    assert_absent(&h, "not-yours", "big", "refused before the body").await;

    let mut req = Req::new("PUT", &format!("/{}/big", h.bucket), &host(&h))
        .header("expect", "100-continue")
        .header("content-length", &body.len().to_string());
    s.sign_header(&mut req, UNSIGNED, &[]);
    let (mut stream, interim) = expect_continue(&h, &req).await;
    assert_eq!(interim.status, 100, "in scope: 100 Continue first");
    stream.write_all(&body).await.expect("send body");
    let done = tokio::time::timeout(Duration::from_secs(10), raw::read_response(&mut stream))
        .await
        .expect("final response")
        .expect("parseable");
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(h.read_upstream(&h.bucket, "big").await == body);
    h.shutdown().await;
}
