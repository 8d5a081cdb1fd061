//! Host rows: path-style/virtual-host confusion (`Host: a.<suffix>` with path
//! `/b/key`, where the credential may use only one of them), and SSRF shapes: a Host
//! naming another host:port, `X-Forwarded-Host` / `Forwarded`, and absolute-form
//! request targets. A canary listener stands in for the other host and must never see
//! a connection; the upstream only ever gets requests addressed to its configured
//! endpoint (the tap checks Host, signature and forwarding headers on every one).

use stowage::credentials::model::Access;

use crate::common::edge::host;
use crate::common::forms::Form;
use crate::common::signer::{EMPTY_SHA256, Req, Signer, sha256_hex};
use crate::common::upstream_tap::{Canary, tapped_harness};
use crate::common::{Harness, scope};
use crate::{Matrix, Want, refused, served};

const OTHER: &str = "vb-other";

async fn seed(h: &Harness) {
    h.create_bucket_upstream(OTHER).await;
    h.put_upstream(&h.bucket, "x", b"test x").await;
    h.put_upstream(OTHER, "x", b"other x").await;
}

fn tenant(m: &mut Matrix<'_>, bucket: &str) -> Signer {
    let (ak, sk) = m.h.credential(vec![scope(bucket, Access::ReadWrite)]);
    m.tenant(&ak);
    Signer::new(&ak, &sk)
}

/// Header-sign `req` over `path` (the request target may then be rewritten).
fn sign(s: &Signer, mut req: Req) -> Req {
    let hash = if req.body.is_empty() && req.method == "GET" {
        EMPTY_SHA256.to_owned()
    } else {
        sha256_hex(&req.body)
    };
    s.sign_header(&mut req, &hash, &[]);
    req
}

/// Sign over `/path`, then send the absolute-form target `absolute`.
fn absolute(s: Option<&Signer>, req: Req, absolute: &str) -> Req {
    let mut req = match s {
        Some(s) => sign(s, req),
        None => req,
    };
    req.path = absolute.to_owned();
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_and_path_naming_different_buckets_route_by_the_host_only() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let only_test = tenant(&mut m, &h.bucket);
    let only_other = tenant(&mut m, OTHER);
    let port = h.s3_addr.port();
    let vh = |b: &str| format!("{b}.localhost:{port}");
    let denied = refused(403, "AccessDenied");
    let rows: Vec<(&str, Req, Want)> = vec![
        (
            "Host names a bucket the key lacks, path names its own",
            sign(&only_test, Req::new("GET", "/test/x", &vh(OTHER))),
            denied,
        ),
        (
            "PUT: Host names a bucket the key lacks, path names its own",
            sign(
                &only_test,
                Req::new("PUT", "/test/y", &vh(OTHER)).body(b"y".to_vec()),
            ),
            denied,
        ),
        (
            "the other way round",
            sign(
                &only_other,
                Req::new("GET", &format!("/{OTHER}/x"), &vh("test")),
            ),
            denied,
        ),
        (
            "upper-case Host",
            sign(
                &only_other,
                Req::new(
                    "GET",
                    &format!("/{OTHER}/x"),
                    &format!("TEST.LOCALHOST:{port}"),
                ),
            ),
            denied,
        ),
        (
            "Host with a trailing dot",
            sign(
                &only_other,
                Req::new(
                    "GET",
                    &format!("/{OTHER}/x"),
                    &format!("test.localhost.:{port}"),
                ),
            ),
            denied,
        ),
        (
            "absolute-form target agreeing with a virtual Host",
            absolute(
                Some(&only_test),
                Req::new("GET", "/test/x", &vh(OTHER)),
                &format!("http://{}/test/x", vh(OTHER)),
            ),
            denied,
        ),
        (
            "absolute-form target naming another virtual host than Host",
            absolute(
                Some(&only_test),
                Req::new("GET", "/x", &vh("test")),
                &format!("http://{}/x", vh(OTHER)),
            ),
            refused(400, "InvalidRequest"),
        ),
        (
            "two Host headers",
            two_hosts(&only_other, &vh(OTHER), &vh("test")),
            refused(400, "InvalidRequest"),
        ),
    ];
    for (label, req, want) in rows {
        m.row(label, &req, want).await;
    }
    // HTTP/1.0 without Host: the target's authority routes, as it was signed.
    let signed = sign(&only_test, Req::new("GET", "/test/x", &vh(OTHER)));
    let mut head = format!("GET http://{}/test/x HTTP/1.0\r\n", vh(OTHER));
    for (n, v) in signed.headers.iter().filter(|(n, _)| n != "host") {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    m.row_bytes(
        "HTTP/1.0 absolute-form virtual host without Host",
        head.into_bytes(),
        denied,
    )
    .await;
    m.absent("PUT confusion", &h.bucket, "y").await;
    m.absent("PUT confusion", OTHER, "test/y").await;

    // Forms: the bucket is the Host's; a policy for the other bucket does not apply.
    let mut form = Form::new(OTHER, "f1", b"form").build(&only_other, &vh("test"));
    form.path = "/".to_owned();
    m.row(
        "form for its own bucket posted to another virtual host",
        &form,
        denied,
    )
    .await;
    let mut form = Form::new("test", "f2", b"form").build(&only_test, &vh(OTHER));
    form.path = "/".to_owned();
    m.row("form posted to a virtual host the key lacks", &form, denied)
        .await;
    m.absent("forms", &h.bucket, "f1").await;
    m.absent("forms", OTHER, "f2").await;

    // Control: the Host's bucket wins, and `/test/y` is a key inside it.
    let req = sign(
        &only_other,
        Req::new("PUT", "/test/y", &vh(OTHER)).body(b"in other".to_vec()),
    );
    m.row(
        "control: virtual host with a bucket-like key",
        &req,
        served(200),
    )
    .await;
    m.holds("control", OTHER, "test/y", b"in other").await;
    m.absent("control", &h.bucket, "y").await;
    m.finish("virtual-host confusion");
    h.shutdown().await;
}

/// A GET signed with the first Host, carrying a second Host header.
fn two_hosts(s: &Signer, first: &str, second: &str) -> Req {
    let mut req = sign(s, Req::new("GET", "/x", first));
    req.headers.push(("host".to_owned(), second.to_owned()));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_through_host_forwarded_headers_and_absolute_targets_never_leaves_the_configured_upstream()
 {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let canary = Canary::start().await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(&mut m, &h.bucket);
    let only_other = tenant(&mut m, OTHER);
    let port = h.s3_addr.port();
    let c = canary.addr.to_string();
    let up = tap.upstream.to_string();
    let me = host(&h);
    let imds = "169.254.169.254";
    let get = |host: &str| Req::new("GET", "/test/x", host);
    let anonymous = refused(403, "MissingAuthenticationToken");
    let shape = refused(400, "InvalidRequest");
    let rows: Vec<(&str, Req, Want)> = vec![
        ("Host: canary, signed", sign(&s, get(&c)), served(200)),
        (
            "Host: metadata address, signed",
            sign(&s, get(imds)),
            served(200),
        ),
        ("Host: metadata address, unsigned", get(imds), anonymous),
        (
            "Host: the upstream itself, signed",
            sign(&s, get(&up)),
            served(200),
        ),
        ("Host: the upstream itself, unsigned", get(&up), anonymous),
        (
            "X-Forwarded-Host: canary, signed",
            sign(&s, get(&me).header("x-forwarded-host", &c)),
            served(200),
        ),
        (
            "X-Forwarded-Host: canary, unsigned header",
            {
                let mut r = get(&me);
                s.sign_header(&mut r, EMPTY_SHA256, &[]);
                r.set_header("x-forwarded-host", &c);
                r
            },
            served(200),
        ),
        (
            "X-Forwarded-Host: canary, no credentials",
            get(&me).header("x-forwarded-host", &c),
            anonymous,
        ),
        (
            "X-Forwarded-Host naming a virtual host the key may use",
            sign(
                &only_other,
                get(&me).header("x-forwarded-host", &format!("{OTHER}.localhost:{port}")),
            ),
            refused(403, "AccessDenied"),
        ),
        (
            "Forwarded: host=canary",
            sign(
                &s,
                get(&me).header("forwarded", &format!("host={c};proto=http")),
            ),
            served(200),
        ),
        (
            "absolute-form to the canary, Host: proxy",
            absolute(Some(&s), get(&me), &format!("http://{c}/test/x")),
            shape,
        ),
        (
            "absolute-form to evil.example, unsigned",
            absolute(None, get(&me), "http://evil.example/test/x"),
            shape,
        ),
        (
            "absolute-form to the metadata service, unsigned",
            absolute(
                None,
                Req::new("GET", "/latest/meta-data/", imds),
                &format!("http://{imds}/latest/meta-data/"),
            ),
            anonymous,
        ),
        (
            "absolute-form and Host both the canary, signed",
            absolute(Some(&s), get(&c), &format!("http://{c}/test/x")),
            served(200),
        ),
        (
            "absolute-form https to the canary, signed",
            absolute(Some(&s), get(&c), &format!("https://{c}/test/x")),
            served(200),
        ),
        (
            "absolute-form whose userinfo names the canary",
            absolute(Some(&s), get(&me), &format!("http://{c}@{me}/test/x")),
            shape,
        ),
        (
            "absolute-form to the upstream, signed",
            absolute(Some(&s), get(&up), &format!("http://{up}/test/x")),
            served(200),
        ),
    ];
    for (label, req, want) in rows {
        let before = canary.connections();
        let resp = m.row(label, &req, want).await;
        if want.status == 200 && resp.is_some_and(|r| r.body != b"test x") {
            m.fail(label, "not the configured upstream's object".into());
        }
        if canary.connections() != before {
            m.fail(label, "the canary received a connection".into());
        }
    }
    let raw_rows: Vec<(&str, String, Want)> = vec![
        (
            "asterisk-form OPTIONS",
            format!("OPTIONS * HTTP/1.1\r\nhost: {me}\r\nconnection: close\r\n\r\n"),
            shape,
        ),
        (
            "CONNECT to the canary",
            format!("CONNECT {c} HTTP/1.1\r\nhost: {c}\r\nconnection: close\r\n\r\n"),
            shape,
        ),
        (
            "CONNECT to the metadata service",
            format!("CONNECT {imds}:80 HTTP/1.1\r\nhost: {imds}:80\r\nconnection: close\r\n\r\n"),
            shape,
        ),
    ];
    // Absolute-form with no Host header at all, signed as if the authority were the
    // Host: HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 does not, and its
    // authority then stands for the Host (and is still not where the request goes).
    for (version, want) in [("HTTP/1.1", shape), ("HTTP/1.0", served(200))] {
        let signed = sign(&s, get(&c));
        let mut head = format!("GET http://{c}/test/x {version}\r\n");
        for (n, v) in signed.headers.iter().filter(|(n, _)| n != "host") {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        let label = format!("absolute-form to the canary without Host, {version}");
        let before = canary.connections();
        let resp = m.row_bytes(&label, head.into_bytes(), want).await;
        if want.status == 200 && resp.is_some_and(|r| r.body != b"test x") {
            m.fail(&label, "not the configured upstream's object".into());
        }
        if canary.connections() != before {
            m.fail(&label, "the canary received a connection".into());
        }
    }
    for (label, bytes, want) in raw_rows {
        let before = canary.connections();
        m.row_bytes(label, bytes.into_bytes(), want).await;
        if canary.connections() != before {
            m.fail(label, "the canary received a connection".into());
        }
    }
    m.finish("SSRF shapes");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_host_suffixes_pick_the_longest_and_match_whole_labels() {
    let (h, tap) = tapped_harness(|c| {
        c.s3_proxy.host_suffixes = vec!["example.test".to_owned(), "s3.example.test".to_owned()];
    })
    .await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let only_test = tenant(&mut m, &h.bucket);
    let only_other = tenant(&mut m, OTHER);
    let dotted = tenant(&mut m, "test.s3");
    let denied = refused(403, "AccessDenied");
    let rows: Vec<(&str, Req, Want)> = vec![
        (
            "longest suffix wins: test.s3.example.test is bucket test, not test.s3",
            sign(&dotted, Req::new("GET", "/x", "test.s3.example.test")),
            denied,
        ),
        (
            "a Host equal to a suffix is path style",
            sign(&only_other, Req::new("GET", "/test/x", "s3.example.test")),
            denied,
        ),
        (
            "a suffix matches whole labels only",
            sign(
                &only_test,
                Req::new("GET", &format!("/{OTHER}/x"), "testexample.test"),
            ),
            denied,
        ),
        (
            "a suffix in the middle of the Host does not count",
            sign(
                &only_test,
                Req::new(
                    "GET",
                    &format!("/{OTHER}/x"),
                    "test.s3.example.test.evil.example",
                ),
            ),
            denied,
        ),
        (
            "control: virtual host under the longer suffix",
            sign(&only_test, Req::new("GET", "/x", "test.s3.example.test")),
            served(200),
        ),
        (
            "control: virtual host under the shorter suffix",
            sign(&only_test, Req::new("GET", "/x", "test.example.test")),
            served(200),
        ),
        (
            "control: path style on the suffix itself",
            sign(&only_test, Req::new("GET", "/test/x", "s3.example.test")),
            served(200),
        ),
    ];
    for (label, req, want) in rows {
        let resp = m.row(label, &req, want).await;
        if want.status == 200 && resp.is_some_and(|r| r.body != b"test x") {
            m.fail(label, "not test/x".into());
        }
    }
    m.finish("nested host suffixes");
    h.shutdown().await;
}
