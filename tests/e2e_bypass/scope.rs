//! Scope rows: copy-source escapes (another bucket, another prefix, encoded, with
//! `?versionId`) and bucket-admin escalation with a read-write key; the helpers the
//! other scope files (`writes.rs`, `keys.rs`) share.

use stowage::credentials::model::Access;

use crate::common::edge::host;
use crate::common::signer::{Req, Signer, UNSIGNED, sha256_hex};
use crate::common::upstream_tap::tapped_harness;
use crate::common::{Harness, prefix_scope, scope};
use crate::{Matrix, Want, refused, served};

pub(crate) const SECRET: &[u8] = b"private bytes";
pub(crate) const TEAM: &[u8] = b"team bytes";

/// Buckets and objects every scope test starts from: `private/secret.txt` (out of
/// every scope), `test/team/a.txt` and `test/other/secret.txt`.
pub(crate) async fn seed(h: &Harness) {
    h.create_bucket_upstream("private").await;
    h.put_upstream("private", "secret.txt", SECRET).await;
    h.put_upstream(&h.bucket, "team/a.txt", TEAM).await;
    h.put_upstream(&h.bucket, "other/secret.txt", SECRET).await;
}

/// A credential with `scopes`, registered with the matrix as a tenant key.
pub(crate) fn tenant(
    m: &mut Matrix<'_>,
    scopes: Vec<stowage::credentials::model::Scope>,
) -> Signer {
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
pub(crate) fn signed(s: &Signer, req: Req) -> Req {
    sign_as(s, req, UNSIGNED)
}

/// Header-signed with the body's hex SHA-256.
pub(crate) fn signed_body(s: &Signer, req: Req) -> Req {
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
