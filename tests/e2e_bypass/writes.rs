//! Every write verb with a read-only key, and prefix escapes through dot-segments,
//! encoded slashes, double encoding, double slashes and backslashes.

use stowage::credentials::model::Access;

use super::scope::{seed, signed, signed_body, tenant};
use crate::common::edge::host;
use crate::common::forms::Form;
use crate::common::signer::Req;
use crate::common::uploads::{self, Location, Mode, Tamper};
use crate::common::upstream_tap::tapped_harness;
use crate::common::{prefix_scope, scope};
use crate::{Matrix, refused, served};

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
