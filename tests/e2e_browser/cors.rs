//! Per-bucket CORS through the proxy: preflights answered before authentication from
//! the bucket's rules, actual answers (errors included) decorated, and an upstream's
//! own CORS headers never reaching the browser (Garage sends them; s3s-fs does not).

use stowage::cors::CorsConfiguration;
use stowage::quota::BucketKey;

use crate::common::edge::{assert_refused, host, send_signed};
use crate::common::raw::{self, RawResponse};
use crate::common::signer::{Req, UNSIGNED};
use crate::common::{BACKEND, Harness, UpstreamKind};

const APP: &str = "https://app.example.com";
const RULES: &str = r#"{"CORSRules":[{"AllowedOrigins":["https://app.example.com"],
  "AllowedMethods":["GET","PUT","POST"],"AllowedHeaders":["content-type","x-amz-*"],
  "ExposeHeaders":["x-amz-meta-owner"],"MaxAgeSeconds":600}]}"#;

/// Store rules as the CLI does and make them live now (the poller would in ~1 s).
pub fn set_cors(h: &Harness, bucket: &str, json: &str) {
    let cfg = CorsConfiguration::from_json(json).expect("valid rules");
    h.store()
        .set_cors(&BucketKey::new(BACKEND, bucket), &cfg)
        .expect("store rules");
    let r = h.running();
    stowage::cors::store::reload(h.store(), &r.cors, &r.bindings).expect("reload");
}

async fn preflight(h: &Harness, origin: Option<&str>, method: &str, headers: &str) -> RawResponse {
    let mut req = Req::new("OPTIONS", &format!("/{}/photo.jpg", h.bucket), &host(h))
        .header("access-control-request-method", method);
    if let Some(o) = origin {
        req.set_header("origin", o);
    }
    if !headers.is_empty() {
        req.set_header("access-control-request-headers", headers);
    }
    raw::send(h.s3_addr, &req).await
}

fn count(r: &RawResponse, name: &str) -> usize {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_is_answered_from_the_buckets_rules_before_authentication() {
    let h = crate::common::edge::harness().await;
    let r = preflight(&h, Some(APP), "PUT", "content-type").await;
    assert_refused(&r, 403, "AccessForbidden", "no rules yet");
    set_cors(&h, &h.bucket, RULES);

    let r = preflight(&h, Some(APP), "PUT", "Content-Type, X-Amz-Date").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, PUT, POST")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-amz-date")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("Origin"));

    for (origin, method, headers, what) in [
        ("https://evil.example.com", "GET", "", "another origin"),
        (APP, "DELETE", "", "a method the rule does not allow"),
        (
            APP,
            "PUT",
            "authorization",
            "a header the rule does not allow",
        ),
    ] {
        let r = preflight(&h, Some(origin), method, headers).await;
        assert_refused(&r, 403, "AccessForbidden", what);
        assert!(r.header("access-control-allow-origin").is_none(), "{what}");
    }
    let r = preflight(&h, None, "GET", "").await;
    assert_refused(&r, 400, "InvalidRequest", "no Origin");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_answers_and_errors_carry_the_rules_headers_for_a_matching_origin_only() {
    let h = crate::common::edge::harness().await;
    set_cors(&h, &h.bucket, RULES);
    h.put_upstream(&h.bucket, "photo.jpg", b"jpeg").await;
    let s = crate::common::edge::rw_signer(&h);
    let get = |origin: &str, key: &str| {
        Req::new("GET", &format!("/{}/{key}", h.bucket), &host(&h)).header("origin", origin)
    };
    let r = send_signed(&h, &s, get(APP, "photo.jpg")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let expose = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        expose.contains("etag") && expose.contains("x-amz-meta-owner"),
        "{expose}"
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    // Errors too, so a script can read why it failed.
    let r = send_signed(&h, &s, get(APP, "missing.jpg")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    // Another origin gets the object (CORS is the browser's rule) but no CORS headers.
    let r = send_signed(&h, &s, get("https://evil.example.com", "photo.jpg")).await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&r, "access-control-allow-origin"), 0);
    // A method the rule does not name: no headers either.
    let mut del =
        Req::new("DELETE", &format!("/{}/photo.jpg", h.bucket), &host(&h)).header("origin", APP);
    s.sign_header(&mut del, UNSIGNED, &[]);
    let r = raw::send(h.s3_addr, &del).await;
    assert_eq!(r.status, 204);
    assert_eq!(count(&r, "access-control-allow-origin"), 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_cors_headers_never_reach_the_browser_only_the_proxys_rules_do() {
    let Some(h) = Harness::start(UpstreamKind::Garage).await else {
        eprintln!("GARAGE TIER DID NOT RUN: no garage binary on PATH");
        return;
    };
    // The upstream's own rules would allow every origin.
    use aws_sdk_s3::types::{CorsConfiguration as S3Cors, CorsRule};
    h.admin_client()
        .put_bucket_cors()
        .bucket(&h.bucket)
        .cors_configuration(
            S3Cors::builder()
                .cors_rules(
                    CorsRule::builder()
                        .allowed_origins("*")
                        .allowed_methods("GET")
                        .expose_headers("x-upstream-secret")
                        .build()
                        .expect("rule"),
                )
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("Garage takes bucket CORS");
    h.put_upstream(&h.bucket, "photo.jpg", b"jpeg").await;
    let s = crate::common::edge::rw_signer(&h);
    let get = |origin: &str| {
        Req::new("GET", &format!("/{}/photo.jpg", h.bucket), &host(&h)).header("origin", origin)
    };
    // Proof that Garage answers with its own CORS headers to this origin…
    let upstream: std::net::SocketAddr = h
        .upstream_endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("upstream address");
    let admin = crate::common::signer::Signer::new(h.admin_access_key(), h.admin_secret());
    let mut direct = Req::new(
        "GET",
        &format!("/{}/photo.jpg", h.bucket),
        &upstream.to_string(),
    )
    .header("origin", "https://evil.example.com");
    admin.sign_header(&mut direct, UNSIGNED, &[]);
    let d = raw::send(upstream, &direct).await;
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(
        d.header("access-control-allow-origin"),
        Some("*"),
        "Garage's own CORS"
    );
    // …and that through the proxy, without proxy rules, none arrive.
    let r = send_signed(&h, &s, get("https://evil.example.com")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        count(&r, "access-control-allow-origin"),
        0,
        "upstream CORS stripped"
    );
    assert_eq!(count(&r, "access-control-expose-headers"), 0);
    // With proxy rules for the app origin: exactly one answer, the proxy's.
    set_cors(&h, &h.bucket, RULES);
    let r = send_signed(&h, &s, get(APP)).await;
    assert_eq!(count(&r, "access-control-allow-origin"), 1);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let expose = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(!expose.contains("x-upstream-secret"), "{expose}");
    h.shutdown().await;
}
