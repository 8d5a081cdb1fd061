//! A presigned URL used for anything but the request it was signed for: another
//! method, key, sub-resource, expiry, access key or signed-header list.

use stowage::credentials::model::Access;

use super::auth::Signers;
use crate::common::edge::host;
use crate::common::scope;
use crate::common::signer::{Req, Signer, UNSIGNED};
use crate::common::upstream_tap::tapped_harness;
use crate::{Matrix, Want, refused, served};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_url_cannot_be_reused_for_another_request() {
    let (h, tap) = tapped_harness(|_| {}).await;
    let signers = Signers::new(&h);
    let (ro_ak, ro_sk) = h.credential(vec![scope(&h.bucket, Access::ReadOnly)]);
    let ro = Signer::new(&ro_ak, &ro_sk);
    let mut m = Matrix::new(&h, &tap);
    m.tenant(&signers.good.access_key);
    m.tenant(&ro_ak);
    h.put_upstream(&h.bucket, "p/a", b"a").await;
    h.put_upstream(&h.bucket, "p/b", b"b").await;
    let hs = host(&h);
    let mut url = Req::new("GET", "/test/p/a", &hs);
    ro.presign(&mut url, 300, UNSIGNED);
    let edit = |f: &dyn Fn(&mut Req)| {
        let mut r = url.clone();
        f(&mut r);
        r
    };
    let set = |r: &mut Req, name: &str, value: String| {
        for (k, v) in &mut r.query {
            if k == name {
                *v = value.clone();
            }
        }
    };
    let mismatch = refused(403, "SignatureDoesNotMatch");
    let rows: Vec<(&str, Req, Want)> = vec![
        ("control", url.clone(), served(200)),
        (
            "sent as DELETE",
            edit(&|r| r.method = "DELETE".into()),
            mismatch,
        ),
        (
            "sent as PUT",
            edit(&|r| {
                r.method = "PUT".into();
                r.body = b"overwrite".to_vec();
            }),
            mismatch,
        ),
        (
            "another key",
            edit(&|r| r.path = "/test/p/b".into()),
            mismatch,
        ),
        (
            "a sub-resource added",
            edit(&|r| r.query.push(("acl".into(), String::new()))),
            mismatch,
        ),
        (
            "X-Amz-Expires lengthened",
            edit(&|r| set(r, "X-Amz-Expires", "604800".into())),
            mismatch,
        ),
        (
            "another tenant's access key",
            edit(&|r| {
                let cred = format!("{}/{}", signers.good.access_key, ro.scope());
                set(r, "X-Amz-Credential", cred);
            }),
            mismatch,
        ),
        (
            "host dropped from X-Amz-SignedHeaders",
            edit(&|r| set(r, "X-Amz-SignedHeaders", "x-amz-content-sha256".into())),
            refused(403, "AccessDenied"),
        ),
    ];
    for (label, req, want) in rows {
        m.row(&format!("presigned GET {label}"), &req, want).await;
    }
    if h.read_upstream(&h.bucket, "p/a").await != b"a" {
        m.fail("presigned reuse", "p/a changed".into());
    }
    m.finish("presigned reuse");
    h.shutdown().await;
}
