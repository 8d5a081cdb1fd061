//! A browser form upload and a CORS read in real headless Debian Chromium, driven
//! through chromedriver's W3C WebDriver API: a page served from one origin
//! (`http://127.0.0.1:A`) posts a file to the proxy (`http://127.0.0.1:P`) with a POST
//! policy form the test signed, follows `success_action_redirect` back to itself, then
//! reads the object with `fetch()` and a presigned URL through the bucket's CORS rules
//! (body, and the `ETag` header the rules expose). A page on another origin
//! (`http://127.0.0.1:B`, not in the rules) sees the same fetch rejected by the browser.
//!
//! Needs `/usr/bin/chromedriver` and `/usr/bin/chromium`; without them the test FAILS
//! with an install hint, it never skips.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::edge::{harness, host, signer};
use common::forms::Form;
use common::signer::{Req, UNSIGNED};
use common::webdriver::Driver;
use common::{BACKEND, BUCKET, Harness, scope};
use serde_json::{Value, json};
use stowage::cors::{CorsConfiguration, CorsRule};
use stowage::credentials::model::Access;
use stowage::quota::BucketKey;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 page server: one origin, fixed pages by path, one request per
/// connection.
struct PageServer {
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    async fn bind() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind pages");
        let origin = format!("http://{}", l.local_addr().expect("addr"));
        (l, origin)
    }

    fn serve(listener: TcpListener, pages: HashMap<String, String>) -> Self {
        let pages = Arc::new(pages);
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let pages = Arc::clone(&pages);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split(' ').nth(1).unwrap_or("/");
                    let path = target.split('?').next().unwrap_or("/");
                    let (status, body) = match pages.get(path) {
                        Some(b) => ("200 OK", b.clone()),
                        None => ("404 Not Found", "not found".to_owned()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { task }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The upload page: a plain HTML form (file last) posting to the proxy's bucket URL.
fn upload_page(action: &str, fields: &[(String, String)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(n, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                attr(n),
                attr(v)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><title>upload</title></head><body>\n\
         <form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\" action=\"{}\">\n\
         {inputs}<input type=\"file\" name=\"file\" id=\"file\">\n\
         <button type=\"submit\" id=\"submit\">Upload</button>\n</form></body></html>",
        attr(action)
    )
}

fn page(id: &str, text: &str) -> String {
    format!("<!doctype html><html><body><p id=\"{id}\">{text}</p></body></html>")
}

/// `fetch(url)` in the page, with an optional header that forces a preflight; the
/// outcome as JSON: `{ok, status, text, etag}` or `{ok: false, error}`.
const FETCH: &str = r#"
const [url, header, done] = arguments;
const init = {cache: "no-store"};
if (header) { init.headers = {"x-stowage-test": "preflighted"}; }
fetch(url, init)
  .then(async (r) => done({ok: true, status: r.status, text: await r.text(),
                           etag: r.headers.get("etag")}))
  .catch((e) => done({ok: false, error: String(e)}));
"#;

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn set_cors(h: &Harness, origin: &str) {
    let rules = CorsConfiguration {
        rules: vec![CorsRule {
            id: Some("page".into()),
            allowed_origins: vec![origin.to_owned()],
            allowed_methods: vec!["GET".into(), "POST".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: Vec::new(),
            max_age_seconds: Some(60),
        }],
    };
    h.store()
        .set_cors(&BucketKey::new(BACKEND, BUCKET), &rules)
        .expect("set CORS rules");
    let r = h.running();
    stowage::cors::store::reload(h.store(), &r.cors, &r.bindings).expect("reload CORS rules");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_uploads_with_a_post_policy_form_and_reads_it_back_with_cors_fetch() {
    let h = harness().await;
    let s = signer(&h, vec![scope(BUCKET, Access::ReadWrite)]);
    let (page_l, page_origin) = PageServer::bind().await;
    let (other_l, other_origin) = PageServer::bind().await;
    assert_ne!(page_origin, other_origin);
    set_cors(&h, &page_origin);

    // The form, signed here: key prefix, size range and the redirect are all covered.
    let done_url = format!("{page_origin}/done");
    let mut form = Form::new(BUCKET, "browser/${filename}", b"");
    form.conditions = vec![
        r#"["starts-with","$key","browser/"]"#.to_owned(),
        r#"["content-length-range",1,1048576]"#.to_owned(),
    ];
    let form = form.field("success_action_redirect", &done_url);
    let action = format!("{}/{BUCKET}", h.proxy_url());
    let pages = HashMap::from([
        (
            "/".to_owned(),
            upload_page(&action, &form.signed_fields(&s)),
        ),
        ("/done".to_owned(), page("done", "uploaded")),
    ]);
    let _pages = PageServer::serve(page_l, pages);
    let _other = PageServer::serve(
        other_l,
        HashMap::from([("/".to_owned(), page("other", "another origin"))]),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let content = format!(
        "hello from chromium {}\n",
        hex::encode(rand::random::<[u8; 8]>())
    );
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, &content).expect("write the file to upload");

    let d = Driver::start().await;
    d.goto(&format!("{page_origin}/")).await;
    let input = d.find("input#file").await;
    d.type_into(&input, &file.display().to_string()).await;
    d.click(&d.find("#submit").await).await;

    // The proxy answered 303 to the page's own origin, naming bucket, key and ETag.
    let landed = d.wait_url(&done_url).await;
    assert_eq!(d.wait_text("#done").await, "uploaded");
    let key = "browser/hello.txt";
    assert_eq!(
        query_param(&landed, "bucket").as_deref(),
        Some(BUCKET),
        "{landed}"
    );
    assert_eq!(
        query_param(&landed, "key").as_deref(),
        Some(key),
        "{landed}"
    );
    assert_eq!(
        h.read_upstream(BUCKET, key).await,
        content.as_bytes(),
        "the file landed upstream byte for byte"
    );
    let head = h
        .admin_client()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("head upstream");
    let etag = head.e_tag().expect("upstream ETag").to_owned();
    assert_eq!(
        query_param(&landed, "etag").as_deref(),
        Some(etag.as_str()),
        "{landed}"
    );

    // Read it back from the page's origin with a presigned URL.
    let mut get = Req::new("GET", &format!("/{BUCKET}/{key}"), &host(&h));
    s.presign(&mut get, 300, UNSIGNED);
    let url = format!("{}{}", h.proxy_url(), get.target());
    // The preflight Chromium will send, answered with the rule's headers.
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", &page_origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-stowage-test")
        .send()
        .await
        .expect("direct OPTIONS");
    assert_eq!(pre.status(), 200);
    let got = |n: &str| pre.headers().get(n).and_then(|v| v.to_str().ok());
    assert_eq!(
        got("access-control-allow-origin"),
        Some(page_origin.as_str()),
        "{:?}",
        pre.headers()
    );
    assert_eq!(got("access-control-allow-headers"), Some("x-stowage-test"));
    for preflighted in [false, true] {
        let r = d
            .execute_async(FETCH, vec![json!(url), json!(preflighted)])
            .await;
        assert_eq!(r["ok"], json!(true), "preflighted={preflighted}: {r}");
        assert_eq!(r["status"], json!(200), "preflighted={preflighted}: {r}");
        assert_eq!(r["text"], json!(content), "preflighted={preflighted}: {r}");
        assert_eq!(
            r["etag"],
            json!(etag),
            "preflighted={preflighted}: ETag must be exposed: {r}"
        );
    }

    // The same fetch from an origin the rules do not name: the browser rejects it.
    d.goto(&format!("{other_origin}/")).await;
    assert_eq!(d.wait_text("#other").await, "another origin");
    for preflighted in [false, true] {
        let r: Value = d
            .execute_async(FETCH, vec![json!(url), json!(preflighted)])
            .await;
        assert_eq!(r["ok"], json!(false), "preflighted={preflighted}: {r}");
        let err = r["error"].as_str().unwrap_or_default();
        assert!(err.contains("TypeError"), "a CORS failure: {r}");
    }
    // ...because of CORS, not a broken URL: the proxy serves it, with no allow-origin.
    let resp = reqwest::Client::new()
        .get(&url)
        .header("origin", &other_origin)
        .send()
        .await
        .expect("direct GET");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        resp.headers()
    );
    assert_eq!(resp.text().await.expect("body"), content);

    d.quit().await;
    h.shutdown().await;
}
