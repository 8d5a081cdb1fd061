//! Browser-facing S3 end to end against the real s3s-fs upstream: POST policy form
//! uploads (hand-built forms signed by the test's own signer; no SDK builds them).
//! Every refusal asserts the exact status and code and that nothing landed upstream.

mod common;

use common::edge::{assert_absent, assert_refused, harness, host, signer};
use common::forms::Form;
use common::raw;
use common::{Harness, pattern, prefix_scope, scope};
use stowage::credentials::model::Access;

fn rw(h: &Harness) -> common::signer::Signer {
    signer(h, vec![scope(&h.bucket, Access::ReadWrite)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_form_uploads_the_file_with_filename_substituted_and_201_answers_xml() {
    let h = harness().await;
    let s = rw(&h);
    let file = pattern(300 * 1024, 4);
    let form = Form::new(&h.bucket, "uploads/${filename}", &file)
        .condition(r#"["content-length-range",1,1048576]"#)
        .field("success_action_status", "201")
        .field("Content-Type", "image/jpeg")
        .field("x-amz-meta-origin", "browser");
    let resp = raw::send(h.s3_addr, &form.build(&s, &host(&h))).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains("<Key>uploads/photo.jpg</Key>"), "{text}");
    assert!(
        text.contains(&format!("<Bucket>{}</Bucket>", h.bucket)),
        "{text}"
    );
    assert!(resp.header("etag").is_some());
    assert_eq!(h.read_upstream(&h.bucket, "uploads/photo.jpg").await, file);
    let head = h
        .admin_client()
        .head_object()
        .bucket(&h.bucket)
        .key("uploads/photo.jpg")
        .send()
        .await
        .expect("head upstream");
    assert_eq!(head.content_type(), Some("image/jpeg"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("browser")
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_answer_is_204_and_a_redirect_gets_303_with_bucket_key_and_etag() {
    let h = harness().await;
    let s = rw(&h);
    let resp = raw::send(
        h.s3_addr,
        &Form::new(&h.bucket, "a.txt", b"hi").build(&s, &host(&h)),
    )
    .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let form = Form::new(&h.bucket, "b.txt", b"hello").field(
        "success_action_redirect",
        "https://app.example.com/done?x=1",
    );
    let resp = raw::send(h.s3_addr, &form.build(&s, &host(&h))).await;
    assert_eq!(resp.status, 303, "{}", resp.text());
    let location = resp.header("location").expect("Location");
    assert!(
        location.starts_with("https://app.example.com/done?x=1&bucket=test&key=b.txt&etag="),
        "{location}"
    );
    assert_eq!(h.read_upstream(&h.bucket, "b.txt").await, b"hello");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_unknown_forms_are_refused_and_store_nothing() {
    let h = harness().await;
    let s = rw(&h);
    let mut wrong = Form::new(&h.bucket, "forged", b"x");
    wrong.secret_override = Some("not-the-secret".into());
    let resp = raw::send(h.s3_addr, &wrong.build(&s, &host(&h))).await;
    assert_refused(&resp, 403, "SignatureDoesNotMatch", "wrong secret");
    assert_absent(&h, &h.bucket, "forged", "wrong secret").await;

    let mut expired = Form::new(&h.bucket, "expired", b"x");
    expired.expires_in = time::Duration::seconds(-5);
    let resp = raw::send(h.s3_addr, &expired.build(&s, &host(&h))).await;
    assert_refused(&resp, 403, "AccessDenied", "expired policy");
    assert!(resp.text().contains("Policy expired"), "{}", resp.text());
    assert_absent(&h, &h.bucket, "expired", "expired policy").await;

    let stranger = common::signer::Signer::new("SWUNKNOWNKEY000000000", "x".repeat(40).as_str());
    let resp = raw::send(
        h.s3_addr,
        &Form::new(&h.bucket, "u", b"x").build(&stranger, &host(&h)),
    )
    .await;
    assert_refused(&resp, 403, "InvalidAccessKeyId", "unknown key");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_is_enforced_and_uncovered_fields_are_refused() {
    let h = harness().await;
    let s = rw(&h);
    let host = host(&h);
    let send = |f: Form| {
        let req = f.build(&s, &host);
        async move { raw::send(h.s3_addr, &req).await }
    };
    let big = pattern(2048, 1);
    let r = send(Form::new(&h.bucket, "big", &big).condition(r#"["content-length-range",1,1024]"#))
        .await;
    assert_refused(&r, 400, "EntityTooLarge", "over the range");
    assert_absent(&h, &h.bucket, "big", "over the range").await;
    let r =
        send(Form::new(&h.bucket, "empty", b"").condition(r#"["content-length-range",1,1024]"#))
            .await;
    assert_refused(&r, 400, "EntityTooSmall", "under the range");
    assert_absent(&h, &h.bucket, "empty", "under the range").await;

    let mut f = Form::new(&h.bucket, "elsewhere/k", b"x");
    f.conditions = vec![r#"["starts-with","$key","user/"]"#.into()];
    assert_refused(&send(f).await, 403, "AccessDenied", "starts-with");
    assert_absent(&h, &h.bucket, "elsewhere/k", "starts-with").await;

    let f = Form::new(&h.bucket, "ct", b"x")
        .condition(r#"["eq","$Content-Type","image/png"]"#)
        .uncovered("Content-Type", "text/html");
    assert_refused(&send(f).await, 403, "AccessDenied", "eq");

    let f = Form::new(&h.bucket, "acl", b"x").uncovered("acl", "public-read");
    let r = send(f).await;
    assert_refused(&r, 403, "AccessDenied", "uncovered field");
    assert!(r.text().contains("Extra input fields: acl"), "{}", r.text());
    assert_absent(&h, &h.bucket, "acl", "uncovered field").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_comes_from_the_url_and_scope_applies_to_the_final_key() {
    let h = harness().await;
    h.create_bucket_upstream("other-bucket").await;
    let s = rw(&h);
    // A policy for this bucket posted to another bucket's URL.
    let mut req = Form::new(&h.bucket, "x", b"x").build(&s, &host(&h));
    req.path = "/other-bucket".into();
    let r = raw::send(h.s3_addr, &req).await;
    assert_refused(&r, 403, "AccessDenied", "bucket condition vs URL");
    assert_absent(&h, "other-bucket", "x", "bucket from the URL").await;
    // A form for a bucket the credential has no scope on.
    let r = raw::send(
        h.s3_addr,
        &Form::new("other-bucket", "x", b"x").build(&s, &host(&h)),
    )
    .await;
    assert_refused(&r, 403, "AccessDenied", "out of scope");
    assert_absent(&h, "other-bucket", "x", "out of scope").await;
    // A prefix-scoped credential cannot climb out through ${filename}.
    let p = signer(
        &h,
        vec![prefix_scope(&h.bucket, Access::ReadWrite, "users/7/")],
    );
    let mut f = Form::new(&h.bucket, "users/7/${filename}", b"x");
    f.filename = "../../admin/evil".into();
    let r = raw::send(h.s3_addr, &f.build(&p, &host(&h))).await;
    assert_eq!(
        r.status,
        204,
        "the base name stays inside the prefix: {}",
        r.text()
    );
    assert_eq!(h.read_upstream(&h.bucket, "users/7/evil").await, b"x");
    let r = raw::send(
        h.s3_addr,
        &Form::new(&h.bucket, "users/8/x", b"x").build(&p, &host(&h)),
    )
    .await;
    assert_refused(&r, 403, "AccessDenied", "outside the prefix");
    // Read-only credentials cannot upload.
    let ro = signer(&h, vec![scope(&h.bucket, Access::ReadOnly)]);
    let r = raw::send(
        h.s3_addr,
        &Form::new(&h.bucket, "ro", b"x").build(&ro, &host(&h)),
    )
    .await;
    assert_refused(&r, 403, "AccessDenied", "read-only");
    assert_absent(&h, &h.bucket, "ro", "read-only").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_truncated_form_leaves_no_object() {
    let h = harness().await;
    let s = rw(&h);
    let file = pattern(200 * 1024, 2);
    // A field smuggled after the file.
    let mut req = Form::new(&h.bucket, "smuggled", &file).build(&s, &host(&h));
    let end = format!("\r\n--{}--\r\n", common::forms::BOUNDARY);
    let cut = req.body.len() - end.len();
    req.body.truncate(cut);
    req.body.extend_from_slice(
        format!(
            "\r\n--{}\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nx{end}",
            common::forms::BOUNDARY
        )
        .as_bytes(),
    );
    let r = raw::send(h.s3_addr, &req).await;
    assert_refused(&r, 400, "MalformedPOSTRequest", "field after the file");
    assert_absent(&h, &h.bucket, "smuggled", "field after the file").await;

    // The client stops sending before the end: the upstream never gets the last byte.
    let mut req = Form::new(&h.bucket, "truncated", &file).build(&s, &host(&h));
    let full_len = req.body.len();
    req.set_header("content-length", &full_len.to_string());
    req.body.truncate(full_len - 1000);
    req.set_header("connection", "close");
    let stream = tokio::net::TcpStream::connect(h.s3_addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    use tokio::io::AsyncWriteExt as _;
    wr.write_all(&raw::head_bytes(&req)).await.expect("head");
    wr.write_all(&req.body).await.expect("body");
    wr.shutdown().await.expect("half-close");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        raw::read_response(&mut rd),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_absent(&h, &h.bucket, "truncated", "truncated form").await;

    // Not a form at all.
    let mut req = Form::new(&h.bucket, "nf", b"x").build(&s, &host(&h));
    req.body = b"--nope\r\n".to_vec();
    assert_refused(
        &raw::send(h.s3_addr, &req).await,
        400,
        "MalformedPOSTRequest",
        "garbage",
    );
    h.shutdown().await;
}

#[path = "e2e_browser/anonymous.rs"]
mod anonymous;
#[path = "e2e_browser/cors.rs"]
mod cors;
