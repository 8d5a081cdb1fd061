//! Keys the proxy reads out of bodies and queries: DeleteObjects keys in every XML
//! spelling and climbing out of the bucket, a form's key, listing prefixes; and the
//! other ways around a scope: anonymous bindings, methods and method overrides.

use stowage::credentials::model::Access;

use super::scope::{SECRET, seed, signed, signed_body, tenant};
use crate::common::edge::host;
use crate::common::forms::Form;
use crate::common::signer::{Req, Signer};
use crate::common::upstream_tap::tapped_harness;
use crate::common::{prefix_scope, scope};
use crate::{Matrix, Want, refused, served};

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
