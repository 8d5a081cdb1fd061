//! Scope rows: copy-source escapes (another bucket, another prefix, encoded, with
//! `?versionId`), bucket-admin escalation with a read-write key, every write verb with
//! a read-only key, prefix escapes through dot-segments, encoded slashes, double
//! encoding, double slashes and backslashes, DeleteObjects keys in every XML spelling
//! and climbing out of the bucket, listing prefixes, anonymous bindings, and methods
//! or method overrides that would change the operation.

use stowage::credentials::model::Access;

use crate::common::edge::host;
use crate::common::forms::Form;
use crate::common::signer::{Req, Signer, UNSIGNED, sha256_hex};
use crate::common::uploads::{self, Location, Mode, Tamper};
use crate::common::upstream_tap::tapped_harness;
use crate::common::{Harness, prefix_scope, scope};
use crate::{Matrix, Want, refused, served};

const SECRET: &[u8] = b"private bytes";
const TEAM: &[u8] = b"team bytes";

/// Buckets and objects every scope test starts from: `private/secret.txt` (out of
/// every scope), `test/team/a.txt` and `test/other/secret.txt`.
async fn seed(h: &Harness) {
    h.create_bucket_upstream("private").await;
    h.put_upstream("private", "secret.txt", SECRET).await;
    h.put_upstream(&h.bucket, "team/a.txt", TEAM).await;
    h.put_upstream(&h.bucket, "other/secret.txt", SECRET).await;
}

/// A credential with `scopes`, registered with the matrix as a tenant key.
fn tenant(m: &mut Matrix<'_>, scopes: Vec<stowage::credentials::model::Scope>) -> Signer {
    let (ak, sk) = m.h.credential(scopes);
    m.tenant(&ak);
    Signer::new(&ak, &sk)
}

/// S3's canonical URI: each segment percent-decoded and encoded once again, so an
/// attacker's `%2e%2e` is signed the way a verifier reads it (the row then tests the
/// scope check, not the signature).
fn canonical_path(raw: &str) -> String {
    raw.split('/')
        .map(|seg| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
            percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%2D", "-")
                .replace("%2E", ".")
                .replace("%5F", "_")
                .replace("%7E", "~")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Header-signed over the canonical path with `hash` as the payload hash.
fn sign_as(s: &Signer, mut req: Req, hash: &str) -> Req {
    let raw = std::mem::take(&mut req.path);
    req.path = canonical_path(&raw);
    s.sign_header(&mut req, hash, &[]);
    req.path = raw;
    req
}

/// Header-signed with UNSIGNED-PAYLOAD.
fn signed(s: &Signer, req: Req) -> Req {
    sign_as(s, req, UNSIGNED)
}

/// Header-signed with the body's hex SHA-256.
fn signed_body(s: &Signer, req: Req) -> Req {
    let hash = sha256_hex(&req.body);
    sign_as(s, req, &hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_sources_outside_the_scope_are_refused_before_the_upstream() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(
        &mut m,
        vec![prefix_scope(&h.bucket, Access::ReadWrite, "team/")],
    );
    let upload_id = h
        .admin_client()
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("team/mp")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_owned();
    let hs = host(&h);
    let denied = refused(403, "AccessDenied");
    let invalid = refused(400, "InvalidArgument");
    let rows: &[(&str, &str, Want)] = &[
        ("other bucket", "/private/secret.txt", denied),
        ("other bucket, no slash", "private/secret.txt", denied),
        (
            "other bucket with versionId",
            "/private/secret.txt?versionId=3",
            denied,
        ),
        ("other bucket, encoded key", "/private/secret%2Etxt", denied),
        (
            "other bucket, encoded bucket",
            "/%70rivate/secret.txt",
            invalid,
        ),
        ("whole value encoded", "%2Fprivate%2Fsecret.txt", invalid),
        ("other prefix", "/test/other/secret.txt", denied),
        (
            "other prefix with versionId",
            "/test/other/secret.txt?versionId=null",
            denied,
        ),
        ("dot-dot", "/test/team/../other/secret.txt", denied),
        (
            "encoded dot-dot",
            "/test/team/%2e%2e/other/secret.txt",
            denied,
        ),
        (
            "encoded slashes",
            "/test/team%2F..%2Fother%2Fsecret.txt",
            denied,
        ),
        (
            "double-encoded slashes",
            "/test/team/..%252Fother%252Fsecret.txt",
            denied,
        ),
        (
            "encoded backslashes",
            "/test/team/..%5Cother%5Csecret.txt",
            denied,
        ),
        ("double slash", "/test//other/secret.txt", denied),
        (
            "climbing out of the bucket",
            "/test/team/../../private/secret.txt",
            denied,
        ),
        (
            "versionId plus another parameter",
            "/test/team/a.txt?versionId=1&x=2",
            invalid,
        ),
    ];
    for (i, (what, source, want)) in rows.iter().enumerate() {
        let dest = format!("team/copy-{i}");
        let req = Req::new("PUT", &format!("/{}/{dest}", h.bucket), &hs)
            .header("x-amz-copy-source", source);
        let label = format!("CopyObject {what}: {source}");
        m.row(&label, &signed(&s, req), *want).await;
        m.absent(&label, &h.bucket, &dest).await;
        let part = Req::new("PUT", &format!("/{}/team/mp", h.bucket), &hs)
            .query("partNumber", &(i + 1).to_string())
            .query("uploadId", &upload_id)
            .header("x-amz-copy-source", source);
        m.row(
            &format!("UploadPartCopy {what}: {source}"),
            &signed(&s, part),
            *want,
        )
        .await;
    }
    // The destination is checked too: an in-scope source copied out of the prefix.
    let req = Req::new("PUT", &format!("/{}/other/stolen", h.bucket), &hs)
        .header("x-amz-copy-source", "/test/team/a.txt");
    m.row(
        "CopyObject to a destination outside the prefix",
        &signed(&s, req),
        denied,
    )
    .await;
    m.absent(
        "CopyObject to a destination outside the prefix",
        &h.bucket,
        "other/stolen",
    )
    .await;

    let parts = h
        .admin_client()
        .list_parts()
        .bucket(&h.bucket)
        .key("team/mp")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("list parts");
    if !parts.parts().is_empty() {
        m.fail(
            "UploadPartCopy",
            format!("{} parts were copied", parts.parts().len()),
        );
    }
    // Control: an in-scope copy source is served.
    let req = Req::new("PUT", &format!("/{}/team/copied", h.bucket), &hs)
        .header("x-amz-copy-source", "/test/team/a.txt");
    m.row("CopyObject control", &signed(&s, req), served(200))
        .await;
    m.holds("CopyObject control", &h.bucket, "team/copied", TEAM)
        .await;
    m.finish("copy-source escapes");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_admin_operations_with_a_read_write_key_are_refused_before_the_upstream() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(
        &mut m,
        vec![
            scope(&h.bucket, Access::ReadWrite),
            scope("new-*", Access::ReadWrite),
        ],
    );
    let hs = host(&h);
    let xml = b"<X/>".to_vec();
    let bucket_ops: &[(&str, &str, &str)] = &[
        ("GetBucketPolicy", "GET", "policy"),
        ("GetBucketAcl", "GET", "acl"),
        ("PutBucketPolicy", "PUT", "policy"),
        ("DeleteBucketPolicy", "DELETE", "policy"),
        ("PutBucketAcl", "PUT", "acl"),
        ("PutBucketCors", "PUT", "cors"),
        ("DeleteBucketCors", "DELETE", "cors"),
        ("PutBucketVersioning", "PUT", "versioning"),
        ("PutBucketLifecycleConfiguration", "PUT", "lifecycle"),
        ("DeleteBucketLifecycle", "DELETE", "lifecycle"),
        ("PutBucketEncryption", "PUT", "encryption"),
        ("PutBucketTagging", "PUT", "tagging"),
        ("PutBucketWebsite", "PUT", "website"),
        ("PutBucketLogging", "PUT", "logging"),
        ("PutBucketNotificationConfiguration", "PUT", "notification"),
        ("PutBucketReplication", "PUT", "replication"),
        ("PutObjectLockConfiguration", "PUT", "object-lock"),
        ("PutPublicAccessBlock", "PUT", "publicAccessBlock"),
        ("DeletePublicAccessBlock", "DELETE", "publicAccessBlock"),
        ("PutBucketOwnershipControls", "PUT", "ownershipControls"),
        ("PutBucketAccelerateConfiguration", "PUT", "accelerate"),
        ("PutBucketRequestPayment", "PUT", "requestPayment"),
        ("unknown sub-resource (MinIO ?events)", "PUT", "events"),
    ];
    let denied = refused(403, "AccessDenied");
    for (name, method, sub) in bucket_ops {
        let mut req = Req::new(method, &format!("/{}", h.bucket), &hs).query(sub, "");
        if *method == "PUT" {
            req = req.body(xml.clone());
        }
        m.row(name, &signed_body(&s, req), denied).await;
    }
    let rows: Vec<(&str, Req)> = vec![
        ("CreateBucket", Req::new("PUT", "/new-bucket-1", &hs)),
        (
            "CreateBucket public-read",
            Req::new("PUT", "/new-bucket-2", &hs).header("x-amz-acl", "public-read"),
        ),
        (
            "DeleteBucket",
            Req::new("DELETE", &format!("/{}", h.bucket), &hs),
        ),
        (
            "PutBucketAcl by header",
            Req::new("PUT", &format!("/{}", h.bucket), &hs)
                .query("acl", "")
                .header("x-amz-acl", "public-read"),
        ),
        (
            "PutObjectAcl",
            Req::new("PUT", &format!("/{}/team/a.txt", h.bucket), &hs)
                .query("acl", "")
                .header("x-amz-acl", "public-read"),
        ),
        (
            "PutObject public-read",
            Req::new("PUT", &format!("/{}/public.txt", h.bucket), &hs)
                .header("x-amz-acl", "public-read")
                .body(b"p".to_vec()),
        ),
        (
            "PutObject granting AllUsers",
            Req::new("PUT", &format!("/{}/granted.txt", h.bucket), &hs)
                .header(
                    "x-amz-grant-read",
                    "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
                )
                .body(b"g".to_vec()),
        ),
    ];
    for (name, req) in rows {
        m.row(name, &signed_body(&s, req), denied).await;
    }
    for b in ["new-bucket-1", "new-bucket-2"] {
        if h.admin_client()
            .head_bucket()
            .bucket(b)
            .send()
            .await
            .is_ok()
        {
            m.fail("CreateBucket", format!("bucket {b} exists upstream"));
        }
    }
    m.absent("PutObject public-read", &h.bucket, "public.txt")
        .await;
    m.absent("PutObject granting AllUsers", &h.bucket, "granted.txt")
        .await;
    // Control: the same key may write a private object.
    let req = Req::new("PUT", &format!("/{}/private.txt", h.bucket), &hs).body(b"ok".to_vec());
    m.row("PutObject control", &signed_body(&s, req), served(200))
        .await;
    m.finish("bucket-admin escalation");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_verb_with_a_read_only_key_is_refused_before_the_upstream() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(&mut m, vec![scope(&h.bucket, Access::ReadOnly)]);
    let upload_id = h
        .admin_client()
        .create_multipart_upload()
        .bucket(&h.bucket)
        .key("ro/mp")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_owned();
    let hs = host(&h);
    let b = h.bucket.clone();
    let denied = refused(403, "AccessDenied");
    let data = crate::common::pattern(100 * 1024, 3);
    for mode in Mode::ALL {
        let key = format!("ro/put-{mode:?}");
        let req = uploads::upload(
            &s,
            Location::Header,
            mode,
            (&hs, &format!("/{b}/{key}")),
            &data,
            64 * 1024,
            &Tamper::default(),
        );
        let label = format!("PutObject {mode:?}");
        m.row(&label, &req, denied).await;
        m.absent(&label, &b, &key).await;
    }
    let obj = format!("/{b}/team/a.txt");
    let mp = format!("/{b}/ro/mp");
    let delete_xml = b"<Delete><Object><Key>team/a.txt</Key></Object></Delete>".to_vec();
    let complete_xml = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>".to_vec();
    let rows: Vec<(&str, Req)> = vec![
        (
            "CopyObject",
            Req::new("PUT", &format!("/{b}/ro/copy"), &hs)
                .header("x-amz-copy-source", "/test/team/a.txt"),
        ),
        ("DeleteObject", Req::new("DELETE", &obj, &hs)),
        (
            "DeleteObjects",
            Req::new("POST", &format!("/{b}"), &hs)
                .query("delete", "")
                .body(delete_xml),
        ),
        (
            "CreateMultipartUpload",
            Req::new("POST", &format!("/{b}/ro/new-mp"), &hs).query("uploads", ""),
        ),
        (
            "UploadPart",
            Req::new("PUT", &mp, &hs)
                .query("partNumber", "1")
                .query("uploadId", &upload_id)
                .body(data[..5000].to_vec()),
        ),
        (
            "UploadPartCopy",
            Req::new("PUT", &mp, &hs)
                .query("partNumber", "2")
                .query("uploadId", &upload_id)
                .header("x-amz-copy-source", "/test/team/a.txt"),
        ),
        (
            "CompleteMultipartUpload",
            Req::new("POST", &mp, &hs)
                .query("uploadId", &upload_id)
                .body(complete_xml),
        ),
        (
            "AbortMultipartUpload",
            Req::new("DELETE", &mp, &hs).query("uploadId", &upload_id),
        ),
        (
            "PutObjectTagging",
            Req::new("PUT", &obj, &hs)
                .query("tagging", "")
                .body(b"<Tagging><TagSet/></Tagging>".to_vec()),
        ),
        (
            "DeleteObjectTagging",
            Req::new("DELETE", &obj, &hs).query("tagging", ""),
        ),
        (
            "PutObjectRetention",
            Req::new("PUT", &obj, &hs)
                .query("retention", "")
                .body(b"<Retention/>".to_vec()),
        ),
        (
            "PutObjectLegalHold",
            Req::new("PUT", &obj, &hs)
                .query("legal-hold", "")
                .body(b"<LegalHold/>".to_vec()),
        ),
        (
            "RestoreObject",
            Req::new("POST", &obj, &hs)
                .query("restore", "")
                .body(b"<RestoreRequest/>".to_vec()),
        ),
        (
            "PutObjectAcl",
            Req::new("PUT", &obj, &hs)
                .query("acl", "")
                .header("x-amz-acl", "private"),
        ),
    ];
    for (name, req) in rows {
        m.row(name, &signed_body(&s, req), denied).await;
    }
    let form = Form::new(&b, "ro/form", b"form bytes").build(&s, &hs);
    m.row("PostObject (form)", &form, denied).await;
    m.absent("PostObject (form)", &b, "ro/form").await;
    m.absent("CopyObject", &b, "ro/copy").await;
    if !h.exists_upstream(&b, "team/a.txt").await {
        m.fail(
            "DeleteObject/DeleteObjects",
            "team/a.txt was deleted".into(),
        );
    }
    let parts = h
        .admin_client()
        .list_parts()
        .bucket(&b)
        .key("ro/mp")
        .upload_id(&upload_id)
        .send()
        .await;
    match parts {
        Ok(p) if p.parts().is_empty() => {}
        Ok(p) => m.fail("UploadPart", format!("{} parts landed", p.parts().len())),
        Err(_) => m.fail("AbortMultipartUpload", "the upload is gone".into()),
    }
    // Control: the key reads.
    let req = Req::new("GET", &obj, &hs);
    m.row("GetObject control", &signed(&s, req), served(200))
        .await;
    m.finish("read-only writes");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_escapes_through_dots_encodings_and_slashes_are_refused_before_the_upstream() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(
        &mut m,
        vec![prefix_scope(&h.bucket, Access::ReadWrite, "team/")],
    );
    let hs = host(&h);
    let paths = [
        "/test/team/../other/x",
        "/test/team/%2e%2e/other/x",
        "/test/team/%2E%2E/other/x",
        "/test/team/.%2e/other/x",
        "/test/team%2F..%2Fother%2Fx",
        "/test/team/..%2Fother%2Fx",
        "/test/team/%252e%252e/other/x",
        "/test/team/..%252Fother%252Fx",
        "/test/team%252F..%252Fother%252Fx",
        "/test//team/x",
        "/test/team//../other/x",
        "/test/team/..%5Cother%5Cx",
        "/test/team/..%5C..%5Cprivate%5Cx",
        "/test/team/%5C..%5C..%5Cother%5Cx",
        "/test/team/%255C..%255Cother%255Cx",
        "/test/team/x/../../../private/x",
        "/test/team/../../private/x",
        "/test/./team/x",
        "/test/team/..",
    ];
    let denied = refused(403, "AccessDenied");
    for path in paths {
        let put = Req::new("PUT", path, &hs).body(b"escaped".to_vec());
        m.row(&format!("PUT {path}"), &signed_body(&s, put), denied)
            .await;
        let get = Req::new("GET", path, &hs);
        m.row(&format!("GET {path}"), &signed(&s, get), denied)
            .await;
    }
    // A raw backslash (not a valid request-target character, but accepted by the
    // listener) is read as a separator too.
    let put = Req::new("PUT", "/test/team/..\\other\\x", &hs).body(b"escaped".to_vec());
    m.row("PUT raw backslashes", &signed_body(&s, put), denied)
        .await;
    for (b, k) in [("test", "other/x"), ("private", "x"), ("test", "x")] {
        m.absent("prefix escape", b, k).await;
    }
    // Controls: inside the prefix, including keys that merely look odd.
    for (key, data) in [
        ("team/ok", &b"ok"[..]),
        ("team/a%5Cb", b"backslash"),
        ("team/..a/b..", b"dots"),
    ] {
        let req = Req::new("PUT", &format!("/test/{key}"), &hs).body(data.to_vec());
        m.row(
            &format!("PUT control {key}"),
            &signed_body(&s, req),
            served(200),
        )
        .await;
    }
    m.holds("control", "test", "team/a\\b", b"backslash").await;
    m.finish("prefix escapes");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_keys_in_every_xml_spelling_are_checked_against_the_prefix() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(
        &mut m,
        vec![prefix_scope(&h.bucket, Access::ReadWrite, "team/")],
    );
    let hs = host(&h);
    let denied = refused(403, "AccessDenied");
    let wrap = |objects: &str| format!("<Delete>{objects}</Delete>");
    let obj = |key: &str| format!("<Object><Key>{key}</Key></Object>");
    let rows: Vec<(&str, String, Want)> = vec![
        ("plain key outside", wrap(&obj("other/secret.txt")), denied),
        ("CDATA key", wrap(&obj("<![CDATA[other/secret.txt]]>")), denied),
        (
            "text then CDATA",
            wrap(&obj("team/<![CDATA[../other/secret.txt]]>")),
            denied,
        ),
        ("character reference", wrap(&obj("&#111;ther/secret.txt")), denied),
        (
            "character-reference dots",
            wrap(&obj("team/&#46;&#46;/other/secret.txt")),
            denied,
        ),
        (
            "comment inside the key",
            wrap(&obj("team/<!-- -->../other/secret.txt")),
            denied,
        ),
        (
            "namespace prefix",
            "<s3:Delete xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s3:Object><s3:Key>other/secret.txt</s3:Key></s3:Object></s3:Delete>".to_owned(),
            denied,
        ),
        (
            "an element inside the key",
            wrap(&obj("team/<b/>../other/secret.txt")),
            refused(400, "InvalidRequest"),
        ),
        ("no key at all", wrap(""), refused(400, "InvalidRequest")),
        (
            "one key inside, one outside",
            wrap(&format!("{}{}", obj("team/a.txt"), obj("other/secret.txt"))),
            denied,
        ),
    ];
    for (label, xml, want) in rows {
        let req = Req::new("POST", &format!("/{}", h.bucket), &hs)
            .query("delete", "")
            .header("content-md5", &content_md5(xml.as_bytes()))
            .body(xml.into_bytes());
        m.row(label, &signed_body(&s, req), want).await;
        for key in ["other/secret.txt", "team/a.txt"] {
            if !h.exists_upstream(&h.bucket, key).await {
                m.fail(label, format!("{key} was deleted"));
                h.put_upstream(&h.bucket, key, SECRET).await;
            }
        }
    }
    // Control: a key inside the prefix is deleted.
    let xml = wrap(&obj("team/a.txt"));
    let req = Req::new("POST", &format!("/{}", h.bucket), &hs)
        .query("delete", "")
        .header("content-md5", &content_md5(xml.as_bytes()))
        .body(xml.into_bytes());
    m.row("control", &signed_body(&s, req), served(200)).await;
    m.absent("control", &h.bucket, "team/a.txt").await;
    m.finish("DeleteObjects keys");
    h.shutdown().await;
}

fn content_md5(body: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_outside_the_prefix_are_refused_in_every_query_spelling() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(
        &mut m,
        vec![prefix_scope(&h.bucket, Access::ReadOnly, "team/")],
    );
    let hs = host(&h);
    let denied = refused(403, "AccessDenied");
    let rows: &[(&str, Want)] = &[
        ("list-type=2&prefix=other/", denied),
        ("list-type=2", denied),
        ("list-type=2&prefix=", denied),
        ("list-type=2&prefix=tea", denied),
        ("list-type=2&prefix=team/&prefix=other/", denied),
        ("list-type=2&prefix=other/&prefix=team/", denied),
        ("list-type=2&prefix=team/&%70refix=other/", denied),
        ("list-type=2&prefix=+team/", denied),
        ("prefix=other/", denied),
        ("versions&prefix=other/", denied),
        ("uploads&prefix=other/", denied),
        ("list-type=2&prefix=team/", served(200)),
        ("list-type=2&prefix=team%2F", served(200)),
        ("list-type=2&prefix=team/&start-after=other/", served(200)),
        ("prefix=team/&marker=other/", served(200)),
        ("list-type=2&prefix=team/../other/", served(200)),
    ];
    for (query, want) in rows {
        let label = format!("GET /test?{query}");
        let req = signed_raw_query(&s, Req::new("GET", &format!("/{}", h.bucket), &hs), query);
        let resp = m.row(&label, &req, *want).await;
        let Some(text) = resp.filter(|r| r.status == 200).map(|r| r.text()) else {
            continue;
        };
        if text.contains("other/secret.txt") {
            m.fail(&label, "the listing shows a key outside the prefix".into());
        }
        if *query == "list-type=2&prefix=team/" && !text.contains("<Key>team/a.txt</Key>") {
            m.fail(&label, format!("the control lists nothing: {text}"));
        }
    }
    m.finish("listing prefixes");
    h.shutdown().await;
}

/// Sign with the query's pairs as a verifier decodes them (`+` as a space), then send
/// `raw_query` exactly as written.
fn signed_raw_query(s: &Signer, mut req: Req, raw_query: &str) -> Req {
    let decode = |t: &str| {
        percent_encoding::percent_decode_str(&t.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    req.query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let mut req = signed(s, req);
    req.query.clear();
    req.path = format!("{}?{raw_query}", req.path);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_cannot_leave_the_bound_bucket_or_write() {
    let (h, tap) = tapped_harness(|c| {
        c.s3_proxy.anonymous_enabled = true;
        c.s3_proxy.unauthenticated_per_ip_rps = 0;
    })
    .await;
    seed(&h).await;
    h.store()
        .set_anonymous(
            &stowage::quota::BucketKey::new(crate::common::BACKEND, &h.bucket),
            stowage::credentials::anonymous::AnonymousMode::ReadOnly,
            None,
        )
        .expect("bind");
    let r = h.running();
    stowage::cors::store::reload(h.store(), &r.cors, &r.bindings).expect("reload");
    let mut m = Matrix::new(&h, &tap);
    let hs = host(&h);
    let vh = format!("test.localhost:{}", h.s3_addr.port());
    let denied = refused(403, "AccessDenied");
    let anonymous = refused(403, "MissingAuthenticationToken");
    // Outside the allowlist on a bound bucket: AccessDenied; an unbound bucket: the
    // request simply lacks authentication.
    let rows: Vec<(&str, &str, &str, Want)> = vec![
        ("GET", "/test/team/a.txt", &hs, served(200)),
        ("GET", "/test/../private/secret.txt", &hs, denied),
        ("GET", "/test/%2e%2e/private/secret.txt", &hs, denied),
        ("GET", "/test/..%2Fprivate%2Fsecret.txt", &hs, denied),
        ("GET", "/test/..%252Fprivate%252Fsecret.txt", &hs, denied),
        ("GET", "/test/..%5Cprivate%5Csecret.txt", &hs, denied),
        ("GET", "/../private/secret.txt", &vh, denied),
        ("GET", "/private/secret.txt", &hs, anonymous),
        ("PUT", "/test/anon-put", &hs, denied),
        ("DELETE", "/test/team/a.txt", &hs, denied),
        ("GET", "/test?acl", &hs, denied),
        ("GET", "/test/team/a.txt?versionId=1", &hs, denied),
    ];
    for (method, target, host, want) in rows {
        let mut req = Req::new(method, target, host);
        if method == "PUT" {
            req = req.body(b"anon".to_vec());
        }
        m.row(
            &format!("anonymous {method} {target} (Host {host})"),
            &req,
            want,
        )
        .await;
    }
    m.absent("anonymous PUT", &h.bucket, "anon-put").await;
    if !h.exists_upstream(&h.bucket, "team/a.txt").await {
        m.fail("anonymous DELETE", "team/a.txt was deleted".into());
    }
    m.finish("anonymous escapes");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_methods_and_method_overrides_do_not_change_the_operation() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let ro = tenant(&mut m, vec![scope(&h.bucket, Access::ReadOnly)]);
    let hs = host(&h);
    let obj = format!("/{}/team/a.txt", h.bucket);
    for method in ["PATCH", "PROPFIND", "TRACE", "MKCOL", "COPY", "MOVE"] {
        let req = Req::new(method, &obj, &hs).header("destination", "/test/other/moved");
        m.row(
            &format!("{method} with a read-only key"),
            &signed(&ro, req),
            refused(403, "AccessDenied"),
        )
        .await;
    }
    for header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let req = Req::new("GET", &obj, &hs).header(header, "DELETE");
        let label = format!("GET with {header}: DELETE");
        m.row(&label, &signed(&ro, req), served(200)).await;
        let seen = tap.since(tap.count().saturating_sub(1));
        if seen.iter().any(|s| s.header(header).is_some()) {
            m.fail(&label, format!("{header} reached the upstream"));
        }
    }
    if !h.exists_upstream(&h.bucket, "team/a.txt").await {
        m.fail("method override", "team/a.txt was deleted".into());
    }
    m.finish("methods");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_keys_cannot_climb_out_of_the_bucket_whatever_the_scope() {
    let (h, tap) = tapped_harness(|_| {}).await;
    seed(&h).await;
    let mut m = Matrix::new(&h, &tap);
    let s = tenant(&mut m, vec![scope(&h.bucket, Access::ReadWrite)]);
    let hs = host(&h);
    let obj = |key: &str| format!("<Delete><Object><Key>{key}</Key></Object></Delete>");
    let denied = refused(403, "AccessDenied");
    let rows: Vec<(&str, String, Want)> = vec![
        (
            "dot-dot out of the bucket",
            obj("../private/secret.txt"),
            denied,
        ),
        ("nested dot-dot", obj("a/../../private/secret.txt"), denied),
        ("backslashes", obj("..\\private\\secret.txt"), denied),
        ("the bucket itself", obj("."), denied),
        ("control", obj("other/secret.txt"), served(200)),
    ];
    for (label, xml, want) in rows {
        let req = Req::new("POST", &format!("/{}", h.bucket), &hs)
            .query("delete", "")
            .header("content-md5", &content_md5(xml.as_bytes()))
            .body(xml.into_bytes());
        m.row(label, &signed_body(&s, req), want).await;
        if !h.exists_upstream("private", "secret.txt").await {
            m.fail(label, "private/secret.txt was deleted".into());
            h.put_upstream("private", "secret.txt", SECRET).await;
        }
    }
    m.absent("control", &h.bucket, "other/secret.txt").await;
    // A copy source on any request must be readable, DeleteObjects included.
    let xml = obj("team/a.txt");
    let req = Req::new("POST", &format!("/{}", h.bucket), &hs)
        .query("delete", "")
        .header("content-md5", &content_md5(xml.as_bytes()))
        .header("x-amz-copy-source", "/private/secret.txt")
        .body(xml.into_bytes());
    m.row(
        "DeleteObjects carrying an out-of-scope copy source",
        &signed_body(&s, req),
        denied,
    )
    .await;
    // A form's key is checked the same way.
    for key in ["../private/secret.txt", "a/../../private/secret.txt"] {
        let label = format!("POST form with key {key}");
        let form = Form::new(&h.bucket, key, b"overwritten").build(&s, &hs);
        m.row(&label, &form, denied).await;
        if h.read_upstream("private", "secret.txt").await != SECRET {
            m.fail(&label, "private/secret.txt was overwritten".into());
        }
    }
    m.finish("DeleteObjects climbing out");
    h.shutdown().await;
}
