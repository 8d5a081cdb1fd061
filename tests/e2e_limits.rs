//! Resource limits, end to end against the running proxy in front of s3s-fs, over raw
//! TCP where a client library would not misbehave: head size and count, URL length,
//! idle and slowloris timeouts on both listeners, body stalls, connection shedding,
//! XML body caps, and request smuggling. Each limit is tested just under and just over;
//! every refusal is checked for its status, S3 code, a closed connection where the
//! connection must close, and that nothing changed upstream.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw::{self, RawResponse};
use common::signer::{Req, STREAMING_UNSIGNED_TRAILER, Signer, UNSIGNED, sha256_hex};
use common::uploads::{Mode, Tamper, encode_body};
use common::{Harness, UpstreamKind, pattern};
use stowage::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn harness(adjust: impl FnOnce(&mut Config)) -> Harness {
    Harness::start_with(UpstreamKind::S3sFs, adjust)
        .await
        .expect("s3s-fs harness")
}

fn rw_signer(h: &Harness) -> Signer {
    common::edge::rw_signer(h)
}

fn host(h: &Harness) -> String {
    h.s3_addr.to_string()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Write `bytes` and read one response (within 10 s).
async fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> RawResponse {
    stream.write_all(bytes).await.expect("write request");
    read_one(stream).await
}

async fn read_one(stream: &mut TcpStream) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(10), raw::read_response(stream))
        .await
        .expect("a response within 10 s")
        .expect("a parseable response")
}

/// Whether the peer closes the connection within `within` (EOF or reset), with no
/// further response bytes.
async fn closes_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(n)) => panic!(
            "unexpected bytes after the response: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => false,
    }
}

#[track_caller]
fn assert_error(resp: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(
        resp.status_code(),
        (status, Some(code.to_owned())),
        "{what}: body {}",
        resp.text()
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/xml"),
        "{what}"
    );
}

/// A signed GET of `path`, keep-alive, as raw head bytes.
fn signed_get(h: &Harness, s: &Signer, path: &str, extra: &[(&str, String)]) -> Req {
    let mut req = Req::new("GET", path, &host(h)).header("connection", "keep-alive");
    for (n, v) in extra {
        req = req.header(n, v);
    }
    let unsigned: Vec<&str> = extra.iter().map(|(n, _)| *n).collect();
    s.sign_header(&mut req, UNSIGNED, &unsigned);
    req
}

// ---------------------------------------------------------------------------------
// Request head size and header count
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_of_exactly_max_header_bytes_is_served_and_one_byte_more_is_431_and_closed() {
    const LIMIT: usize = 4096;
    let h = harness(|c| c.s3_proxy.max_header_bytes = LIMIT).await;
    h.put_upstream(&h.bucket, "hdr", b"hello").await;
    let s = rw_signer(&h);
    let base = raw::head_bytes(&signed_get(
        &h,
        &s,
        "/test/hdr",
        &[("x-pad", String::new())],
    ))
    .len();
    for (pad, ok) in [(LIMIT - base, true), (LIMIT - base + 1, false)] {
        let req = signed_get(&h, &s, "/test/hdr", &[("x-pad", "p".repeat(pad))]);
        let head = raw::head_bytes(&req);
        assert_eq!(head.len(), LIMIT + usize::from(!ok), "head size under test");
        let mut conn = connect(h.s3_addr).await;
        let resp = exchange(&mut conn, &head).await;
        if ok {
            assert_eq!(resp.status, 200, "at the limit: {}", resp.text());
            assert_eq!(resp.body, b"hello");
        } else {
            assert_error(&resp, 431, "RequestHeaderSectionTooLarge", "one byte over");
            assert_eq!(resp.header("connection"), Some("close"));
            assert!(
                closes_within(&mut conn, Duration::from_secs(2)).await,
                "closed after 431"
            );
        }
    }
    // A head that never ends is refused once it passes the limit, not buffered on.
    let mut conn = connect(h.s3_addr).await;
    let endless = format!("GET /test/hdr HTTP/1.1\r\nx-pad: {}", "p".repeat(LIMIT));
    let resp = exchange(&mut conn, endless.as_bytes()).await;
    assert_error(
        &resp,
        431,
        "RequestHeaderSectionTooLarge",
        "unterminated head",
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_with_max_headers_is_served_and_one_header_more_is_431_and_closed() {
    const LIMIT: usize = 20;
    let h = harness(|c| c.s3_proxy.max_headers = LIMIT).await;
    h.put_upstream(&h.bucket, "count", b"n").await;
    let s = rw_signer(&h);
    let signed_count = signed_get(&h, &s, "/test/count", &[]).headers.len();
    for (extra, ok) in [
        (LIMIT - signed_count, true),
        (LIMIT - signed_count + 1, false),
    ] {
        let pads: Vec<(String, String)> = (0..extra)
            .map(|i| (format!("x-n{i}"), "1".into()))
            .collect();
        let refs: Vec<(&str, String)> = pads.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        let req = signed_get(&h, &s, "/test/count", &refs);
        assert_eq!(req.headers.len(), LIMIT + usize::from(!ok));
        let mut conn = connect(h.s3_addr).await;
        let resp = exchange(&mut conn, &raw::head_bytes(&req)).await;
        if ok {
            assert_eq!(resp.status, 200, "at the limit: {}", resp.text());
        } else {
            assert_error(
                &resp,
                431,
                "RequestHeaderSectionTooLarge",
                "one header over",
            );
            assert!(closes_within(&mut conn, Duration::from_secs(2)).await);
        }
    }
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// URL length
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_of_exactly_max_url_bytes_is_served_and_one_byte_longer_is_414_invalid_uri() {
    const LIMIT: usize = 512;
    let h = harness(|c| c.s3_proxy.max_url_bytes = LIMIT).await;
    let s = rw_signer(&h);
    // s3s-fs cannot store a key this long; the upstream's NoSuchKey shows that the
    // request passed the proxy's limit and was forwarded.
    let key_len = LIMIT - "/test/".len();
    let key: String = (0..key_len)
        .map(|i| if i % 100 == 99 { '/' } else { 'k' })
        .collect();
    let path = format!("/test/{key}");
    assert_eq!(path.len(), LIMIT);
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(&mut conn, &raw::head_bytes(&signed_get(&h, &s, &path, &[]))).await;
    assert_eq!(
        resp.status_code(),
        (404, Some("NoSuchKey".to_owned())),
        "at the limit: {}",
        resp.text()
    );

    let longer = format!("{path}x");
    let resp = raw::send(h.s3_addr, &signed_get(&h, &s, &longer, &[])).await;
    assert_error(&resp, 414, "InvalidURI", "one byte over");
    // The query counts too.
    let req = {
        let mut r = Req::new("GET", "/test/k", &host(&h)).query("q", &"v".repeat(LIMIT));
        s.sign_header(&mut r, UNSIGNED, &[]);
        r
    };
    assert_error(
        &raw::send(h.s3_addr, &req).await,
        414,
        "InvalidURI",
        "long query",
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// Idle and header-read (slowloris) timeouts, both listeners
// ---------------------------------------------------------------------------------

const SHORT: Duration = Duration::from_millis(300);

fn short_timeouts(c: &mut Config) {
    c.s3_proxy.idle_timeout = SHORT;
    c.s3_proxy.header_read_timeout = SHORT;
    c.admin.idle_timeout = SHORT;
    c.admin.header_read_timeout = SHORT;
}

/// The connection closes no earlier than `SHORT` after `since` and well before 5 s.
async fn assert_closed_after_short(conn: &mut TcpStream, since: Instant, what: &str) {
    assert!(
        closes_within(conn, Duration::from_secs(5)).await,
        "{what}: the connection must be closed"
    );
    let took = since.elapsed();
    assert!(
        took >= SHORT - Duration::from_millis(20),
        "{what}: closed too early ({took:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_on_both_listeners() {
    let h = harness(short_timeouts).await;
    h.put_upstream(&h.bucket, "idle", b"i").await;
    let s = rw_signer(&h);
    // S3: one request on a keep-alive connection, then silence.
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(
        &mut conn,
        &raw::head_bytes(&signed_get(&h, &s, "/test/idle", &[])),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_closed_after_short(&mut conn, Instant::now(), "s3 after a request").await;
    // S3: a connection that never sends anything.
    let mut conn = connect(h.s3_addr).await;
    assert_closed_after_short(&mut conn, Instant::now(), "s3 silent").await;
    // Admin: the same.
    let mut conn = connect(h.admin_addr).await;
    let probe = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", h.admin_addr);
    let resp = exchange(&mut conn, probe.as_bytes()).await;
    assert_eq!(resp.status, 200, "healthz: {}", resp.text());
    assert_closed_after_short(&mut conn, Instant::now(), "admin after a request").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_longer_than_idle_timeout_is_not_cut() {
    let h = harness(|c| {
        short_timeouts(c);
        c.s3_proxy.body_read_timeout = Duration::from_secs(5);
    })
    .await;
    let s = rw_signer(&h);
    let data = pattern(4000, 3);
    let mut req = Req::new("PUT", "/test/slow-ok", &host(&h))
        .header("connection", "keep-alive")
        .header("content-length", &data.len().to_string());
    s.sign_header(&mut req, &sha256_hex(&data), &[]);
    let mut conn = connect(h.s3_addr).await;
    conn.write_all(&raw::head_bytes(&req)).await.expect("head");
    // Three pauses, each longer than the idle and header timeouts.
    for part in data.chunks(1000) {
        tokio::time::sleep(SHORT * 2).await;
        conn.write_all(part).await.expect("body part");
    }
    let resp = read_one(&mut conn).await;
    assert_eq!(resp.status, 200, "slow but steady upload: {}", resp.text());
    assert_eq!(h.read_upstream(&h.bucket, "slow-ok").await, data);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_head_is_cut_after_header_read_timeout_on_both_listeners() {
    let h = harness(|c| {
        short_timeouts(c);
        // Idle is long here: the cut must come from the header timer.
        c.s3_proxy.idle_timeout = Duration::from_secs(30);
        c.admin.idle_timeout = Duration::from_secs(30);
    })
    .await;
    for addr in [h.s3_addr, h.admin_addr] {
        let mut conn = connect(addr).await;
        let started = Instant::now();
        let head =
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut cut = false;
        for b in head {
            if conn.write_all(&[*b]).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let closed = cut || closes_within(&mut conn, Duration::from_secs(5)).await;
        assert!(closed, "{addr}: a trickled head must be cut");
        let took = started.elapsed();
        assert!(
            took >= SHORT - Duration::from_millis(20) && took < Duration::from_secs(3),
            "{addr}: cut after {took:?}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_outlives_header_read_timeout_until_idle_timeout() {
    let h = harness(|c| {
        c.s3_proxy.header_read_timeout = SHORT;
        c.s3_proxy.idle_timeout = Duration::from_secs(30);
    })
    .await;
    h.put_upstream(&h.bucket, "late", b"l").await;
    let s = rw_signer(&h);
    let mut conn = connect(h.s3_addr).await;
    tokio::time::sleep(SHORT * 3).await;
    let resp = exchange(
        &mut conn,
        &raw::head_bytes(&signed_get(&h, &s, "/test/late", &[])),
    )
    .await;
    assert_eq!(
        resp.status, 200,
        "the header timer starts at the first byte"
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// Slow body (slowloris on the body)
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_request_timeout_and_nothing_is_committed() {
    let h = harness(|c| c.s3_proxy.body_read_timeout = SHORT).await;
    let s = rw_signer(&h);
    for (key, payload) in [
        ("stall-unsigned", UNSIGNED.to_owned()),
        ("stall-hex", sha256_hex(&[7u8; 1000])),
    ] {
        let mut req =
            Req::new("PUT", &format!("/test/{key}"), &host(&h)).header("content-length", "1000");
        s.sign_header(&mut req, &payload, &[]);
        let mut conn = connect(h.s3_addr).await;
        conn.write_all(&raw::head_bytes(&req)).await.expect("head");
        conn.write_all(&[7u8; 10]).await.expect("first bytes");
        let started = Instant::now();
        let resp = read_one(&mut conn).await;
        assert_error(&resp, 400, "RequestTimeout", key);
        assert!(started.elapsed() >= SHORT - Duration::from_millis(20));
        common::edge::assert_absent(&h, &h.bucket, key, "stalled body").await;
    }
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// Concurrent connections and load shedding
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_over_max_connections_is_shed_with_503_slow_down_and_counted_then_served_again()
{
    let h = harness(|c| c.s3_proxy.max_connections = 2).await;
    h.put_upstream(&h.bucket, "shed", b"s").await;
    let s = rw_signer(&h);
    let get = raw::head_bytes(&signed_get(&h, &s, "/test/shed", &[]));
    let mut first = connect(h.s3_addr).await;
    let mut second = connect(h.s3_addr).await;
    for c in [&mut first, &mut second] {
        assert_eq!(exchange(c, &get).await.status, 200, "within the limit");
    }
    let before = h.metric("stowage_s3_shed_connections_total", &[]);
    let mut third = connect(h.s3_addr).await;
    let resp = read_one(&mut third).await;
    assert_error(&resp, 503, "SlowDown", "connection over the limit");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(
        closes_within(&mut third, Duration::from_secs(2)).await,
        "shed connection closed"
    );
    assert_eq!(
        h.metric("stowage_s3_shed_connections_total", &[]),
        before + 1.0
    );
    // The two held connections still work.
    assert_eq!(exchange(&mut first, &get).await.status, 200);
    drop(second);
    // Once one closes, a new connection is served.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connect(h.s3_addr).await;
        c.write_all(&get).await.expect("write");
        let resp = read_one(&mut c).await;
        if resp.status == 200 {
            break;
        }
        assert_error(&resp, 503, "SlowDown", "while the closed slot is released");
        assert!(
            Instant::now() < deadline,
            "a slot must free up after a close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// XML body caps: DeleteObjects and CompleteMultipartUpload
// ---------------------------------------------------------------------------------

const XML_CAP: usize = 1024;

fn xml_caps(c: &mut Config) {
    c.s3_proxy.max_delete_objects_body_bytes = XML_CAP;
    c.s3_proxy.max_complete_multipart_body_bytes = XML_CAP;
}

/// A DeleteObjects document naming `key`, padded with whitespace to `len` bytes.
fn delete_doc(key: &str, len: usize) -> Vec<u8> {
    let doc = format!("<Delete><Object><Key>{key}</Key></Object><Quiet>true</Quiet></Delete>");
    let mut out = doc.into_bytes();
    assert!(out.len() <= len);
    out.resize(len, b' ');
    out
}

fn delete_request(h: &Harness, s: &Signer, body: Vec<u8>) -> Req {
    let mut req = Req::new("POST", "/test", &host(h))
        .query("delete", "")
        .header("content-md5", &content_md5(&body))
        .body(body.clone());
    req.set_header("content-length", &body.len().to_string());
    s.sign_header(&mut req, &sha256_hex(&body), &[]);
    req
}

fn content_md5(body: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_body_at_the_cap_is_served_and_one_byte_over_is_max_message_length_exceeded()
{
    let h = harness(xml_caps).await;
    let s = rw_signer(&h);
    h.put_upstream(&h.bucket, "keep", b"k").await;
    let over = raw::send(
        h.s3_addr,
        &delete_request(&h, &s, delete_doc("keep", XML_CAP + 1)),
    )
    .await;
    assert_error(
        &over,
        400,
        "MaxMessageLengthExceeded",
        "declared length over the cap",
    );
    assert!(
        h.exists_upstream(&h.bucket, "keep").await,
        "nothing deleted"
    );

    let at = raw::send(
        h.s3_addr,
        &delete_request(&h, &s, delete_doc("keep", XML_CAP)),
    )
    .await;
    assert_eq!(at.status, 200, "at the cap: {}", at.text());
    assert!(
        !h.exists_upstream(&h.bucket, "keep").await,
        "deleted at the cap"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_delete_objects_body_growing_past_the_cap_is_cut_and_nothing_is_deleted() {
    let h = harness(xml_caps).await;
    let s = rw_signer(&h);
    h.put_upstream(&h.bucket, "stays", b"k").await;
    // Decoded: under the cap. As sent: aws-chunked in 16-byte chunks inside HTTP
    // chunked framing (no Content-Length), so only the bytes received tell the size.
    let doc = delete_doc("stays", 900);
    let send = |doc: Vec<u8>| {
        let mut req = Req::new("POST", "/test", &host(&h))
            .query("delete", "")
            .header("content-encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", &doc.len().to_string())
            .header("x-amz-trailer", "x-amz-checksum-crc32");
        s.sign_header(&mut req, STREAMING_UNSIGNED_TRAILER, &[]);
        let aws_chunked = encode_body(
            &s,
            Mode::StreamingUnsignedTrailer,
            "",
            &doc,
            16,
            &Tamper::default(),
        );
        let mut bytes = raw::head_bytes(&req);
        let head = String::from_utf8(bytes.clone()).expect("ascii head");
        bytes = head
            .replace("\r\n\r\n", "\r\ntransfer-encoding: chunked\r\n\r\n")
            .into_bytes();
        bytes.extend(format!("{:x}\r\n", aws_chunked.len()).as_bytes());
        bytes.extend(&aws_chunked);
        bytes.extend(b"\r\n0\r\n\r\n");
        (bytes, aws_chunked.len())
    };
    let (bytes, wire) = send(doc.clone());
    assert!(wire > XML_CAP && doc.len() < XML_CAP, "the case under test");
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(&mut conn, &bytes).await;
    assert_error(
        &resp,
        400,
        "MaxMessageLengthExceeded",
        "received bytes over the cap",
    );
    assert!(
        h.exists_upstream(&h.bucket, "stays").await,
        "nothing deleted"
    );
    // The same framing under the cap is served (and then the connection closes: no
    // head after a chunked body is trusted).
    let (bytes, wire) = send(delete_doc("stays", 400));
    assert!(wire <= XML_CAP);
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(&mut conn, &bytes).await;
    assert_eq!(resp.status, 200, "under the cap: {}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(!h.exists_upstream(&h.bucket, "stays").await);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_multipart_body_over_the_cap_is_max_message_length_exceeded_and_nothing_is_committed()
 {
    let h = harness(xml_caps).await;
    let (ak, sk) = h.bucket_credential(stowage::credentials::model::Access::ReadWrite);
    let client = h.client(&ak, &sk);
    let upload = client
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("mpu")
        .send()
        .await
        .expect("create multipart upload");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let part = client
        .upload_part()
        .bucket(&h.bucket)
        .key("mpu")
        .upload_id(&upload_id)
        .part_number(1)
        .body(pattern(1000, 9).into())
        .send()
        .await
        .expect("upload part");
    let etag = part.e_tag().expect("etag").to_owned();
    let doc = |len: usize| {
        let xml = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        );
        let mut out = xml.into_bytes();
        out.resize(len, b' ');
        out
    };
    let s = Signer::new(&ak, &sk);
    let complete = |body: Vec<u8>| {
        let mut req = Req::new("POST", "/test/mpu", &host(&h))
            .query("uploadId", &upload_id)
            .body(body.clone());
        req.set_header("content-length", &body.len().to_string());
        s.sign_header(&mut req, &sha256_hex(&body), &[]);
        req
    };
    let over = raw::send(h.s3_addr, &complete(doc(XML_CAP + 1))).await;
    assert_error(
        &over,
        400,
        "MaxMessageLengthExceeded",
        "declared length over the cap",
    );
    assert!(!h.exists_upstream(&h.bucket, "mpu").await, "not completed");
    let at = raw::send(h.s3_addr, &complete(doc(XML_CAP))).await;
    assert_eq!(at.status, 200, "at the cap: {}", at.text());
    assert_eq!(h.read_upstream(&h.bucket, "mpu").await, pattern(1000, 9));
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------
// Request smuggling
// ---------------------------------------------------------------------------------

/// A correctly signed PUT of `body` whose head gets `extra` raw header lines; the
/// body follows as written.
fn smuggle(h: &Harness, s: &Signer, key: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut req = Req::new("PUT", &format!("/test/{key}"), &host(h));
    s.sign_header(&mut req, UNSIGNED, &[]);
    let head = String::from_utf8(raw::head_bytes(&req)).expect("ascii head");
    let mut bytes = head
        .replace("\r\n\r\n", &format!("\r\n{extra}\r\n"))
        .into_bytes();
    bytes.extend(body);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_length_and_transfer_encoding_are_refused_and_the_upstream_sees_nothing()
 {
    let h = harness(|_| {}).await;
    let s = rw_signer(&h);
    // The smuggled request hides in what one parser calls the body.
    let smuggled = "0\r\n\r\nPUT /test/smuggled HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx";
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "cl-then-te",
            format!(
                "content-length: {}\r\ntransfer-encoding: chunked\r\n",
                smuggled.len()
            ),
            smuggled.as_bytes().to_vec(),
        ),
        (
            "te-then-cl",
            format!(
                "transfer-encoding: chunked\r\ncontent-length: {}\r\n",
                smuggled.len()
            ),
            smuggled.as_bytes().to_vec(),
        ),
        (
            "odd-case",
            format!(
                "TrAnSfEr-EnCoDiNg: ChUnKeD\r\nCONTENT-LENGTH: {}\r\n",
                smuggled.len()
            ),
            smuggled.as_bytes().to_vec(),
        ),
        (
            "two-lengths",
            "content-length: 1\r\ncontent-length: 5\r\n".to_owned(),
            b"hello".to_vec(),
        ),
        (
            "two-equal-lengths",
            "content-length: 5\r\ncontent-length: 5\r\n".to_owned(),
            b"hello".to_vec(),
        ),
        (
            "chunked-identity",
            "transfer-encoding: chunked, identity\r\n".to_owned(),
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "two-te-lines",
            "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n".to_owned(),
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "obs-fold",
            "transfer-encoding:\r\n chunked\r\ncontent-length: 5\r\n".to_owned(),
            b"hello".to_vec(),
        ),
    ];
    for (key, extra, body) in &cases {
        let mut conn = connect(h.s3_addr).await;
        let resp = exchange(&mut conn, &smuggle(&h, &s, key, extra, body)).await;
        assert_error(&resp, 400, "InvalidRequest", key);
        assert!(
            closes_within(&mut conn, Duration::from_secs(2)).await,
            "{key}: closed"
        );
        common::edge::assert_absent(&h, &h.bucket, key, key).await;
        common::edge::assert_absent(&h, &h.bucket, "smuggled", key).await;
    }
    // Control: the same signed request with one honest Content-Length is stored.
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(
        &mut conn,
        &smuggle(&h, &s, "control", "content-length: 5\r\n", b"hello"),
    )
    .await;
    assert_eq!(resp.status, 200, "control: {}", resp.text());
    assert_eq!(h.read_upstream(&h.bucket, "control").await, b"hello");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_encoding_on_a_get_is_refused_and_a_plain_chunked_put_is_served() {
    let h = harness(|_| {}).await;
    let s = rw_signer(&h);
    h.put_upstream(&h.bucket, "g", b"g").await;
    let mut req = Req::new("GET", "/test/g", &host(&h));
    s.sign_header(&mut req, UNSIGNED, &[]);
    let head = String::from_utf8(raw::head_bytes(&req)).expect("ascii");
    let bytes = head.replace(
        "\r\n\r\n",
        "\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(&mut conn, bytes.as_bytes()).await;
    assert_error(&resp, 400, "InvalidRequest", "TE on a GET");
    assert!(closes_within(&mut conn, Duration::from_secs(2)).await);

    // A streaming upload over HTTP chunked framing (what SDKs send for unknown
    // lengths) is not a conflict: it is served, and its connection then closes.
    let data = pattern(3000, 5);
    let mut req = Req::new("PUT", "/test/te-ok", &host(&h))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .header("connection", "keep-alive");
    s.sign_header(&mut req, STREAMING_UNSIGNED_TRAILER, &[]);
    let aws_chunked = encode_body(
        &s,
        Mode::StreamingUnsignedTrailer,
        "",
        &data,
        1024,
        &Tamper::default(),
    );
    let head = String::from_utf8(raw::head_bytes(&req)).expect("ascii");
    let mut bytes = head
        .replace("\r\n\r\n", "\r\ntransfer-encoding: chunked\r\n\r\n")
        .into_bytes();
    bytes.extend(format!("{:x}\r\n", aws_chunked.len()).as_bytes());
    bytes.extend(&aws_chunked);
    bytes.extend(b"\r\n0\r\n\r\n");
    let mut conn = connect(h.s3_addr).await;
    let resp = exchange(&mut conn, &bytes).await;
    assert_eq!(resp.status, 200, "chunked streaming PUT: {}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(h.read_upstream(&h.bucket, "te-ok").await, data);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_with_bodies_are_all_served_through_the_head_check() {
    let h = harness(|_| {}).await;
    let s = rw_signer(&h);
    let body = b"pipelined body".to_vec();
    let mut put = Req::new("PUT", "/test/pipe", &host(&h))
        .header("connection", "keep-alive")
        .body(body.clone());
    put.set_header("content-length", &body.len().to_string());
    s.sign_header(&mut put, &sha256_hex(&body), &[]);
    let mut bytes = raw::head_bytes(&put);
    bytes.extend(&body);
    bytes.extend(raw::head_bytes(&signed_get(&h, &s, "/test/pipe", &[])));
    let mut last = Req::new("GET", "/test/pipe", &host(&h)).header("connection", "close");
    s.sign_header(&mut last, UNSIGNED, &[]);
    bytes.extend(raw::head_bytes(&last));
    let mut conn = connect(h.s3_addr).await;
    conn.write_all(&bytes).await.expect("write pipeline");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all))
        .await
        .expect("all answers within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert_eq!(text.matches("pipelined body").count(), 2, "{text}");
    h.shutdown().await;
}
