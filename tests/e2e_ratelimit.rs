//! Rate limits through the real proxy (s3s-fs upstream, raw signed requests so that no
//! SDK retry hides a SlowDown): per key, global, the per-source-IP limit on failed
//! authentication, X-Forwarded-For from trusted and untrusted peers, and the
//! X-Forwarded-Proto scheme of the CompleteMultipartUpload Location (Garage).
//!
//! Limits use 1 request/s with a small burst that the test exhausts at once; assertions
//! count outcomes and allow for a refill of one token per elapsed second, never time.

mod common;

use common::edge::{host, rw_signer, wrong_secret};
use common::raw::{self, RawResponse};
use common::signer::{Req, Signer, UNSIGNED};
use common::{Harness, UpstreamKind};
use stowage::config::Config;

const UNKNOWN_KEY: &str = "AKIAUNKNOWNKEY000000";

async fn harness(adjust: impl FnOnce(&mut Config)) -> Harness {
    Harness::start_with(UpstreamKind::S3sFs, adjust)
        .await
        .expect("s3s-fs harness")
}

/// ListObjectsV2 on the harness bucket, optionally with an X-Forwarded-For line
/// (added after signing: it is not an x-amz header, so it need not be signed).
async fn list(h: &Harness, s: &Signer, xff: Option<&str>) -> RawResponse {
    let mut req = Req::new("GET", &format!("/{}", h.bucket), &host(h)).query("list-type", "2");
    s.sign_header(&mut req, UNSIGNED, &[]);
    if let Some(v) = xff {
        req.set_header("x-forwarded-for", v);
    }
    raw::send(h.s3_addr, &req).await
}

fn is_slow_down(r: &RawResponse) -> bool {
    r.status_code() == (503, Some("SlowDown".to_owned()))
}

#[track_caller]
fn assert_slow_down(r: &RawResponse, what: &str) {
    assert!(is_slow_down(r), "{what}: {} {}", r.status, r.text());
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After in whole seconds"));
    assert!(secs >= 1, "{what}: Retry-After {secs}");
}

/// Send `list` until the first SlowDown (at most `max` tries): the number admitted
/// before it, and the refusal.
async fn until_refused(
    h: &Harness,
    s: &Signer,
    xff: Option<&str>,
    max: usize,
) -> (usize, Option<RawResponse>) {
    for sent in 0..max {
        let r = list(h, s, xff).await;
        if is_slow_down(&r) {
            return (sent, Some(r));
        }
    }
    (max, None)
}

fn refused(h: &Harness, scope: &str) -> f64 {
    h.metric("stowage_rate_limited_total", &[("scope", scope)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_limit_slows_one_key_with_retry_after_while_another_proceeds() {
    let h = harness(|c| {
        c.s3_proxy.per_key_rps = 1;
        c.s3_proxy.rate_burst_seconds = 3;
    })
    .await;
    let (noisy, quiet) = (rw_signer(&h), rw_signer(&h));
    let (admitted, refusal) = until_refused(&h, &noisy, None, 50).await;
    assert!(admitted >= 3, "the burst of 3 is admitted, got {admitted}");
    assert_slow_down(&refusal.expect("refused within 50 requests"), "noisy key");
    for _ in 0..3 {
        let r = list(&h, &quiet, None).await;
        assert_eq!(r.status, 200, "the other key proceeds: {}", r.text());
    }
    assert!(refused(&h, "key") >= 1.0);
    assert_eq!(refused(&h, "global"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limit_is_shared_by_every_key_and_not_spent_by_failed_auth() {
    let h = harness(|c| {
        c.s3_proxy.global_rps = 1;
        c.s3_proxy.rate_burst_seconds = 3;
        c.s3_proxy.unauthenticated_per_ip_rps = 0;
    })
    .await;
    let (a, b) = (rw_signer(&h), rw_signer(&h));
    // Refused before step 5, a bad-signature flood never reaches the global bucket.
    let forged = wrong_secret(&a);
    for _ in 0..10 {
        let r = list(&h, &forged, None).await;
        assert_eq!(
            r.status_code(),
            (403, Some("SignatureDoesNotMatch".to_owned()))
        );
    }
    let (admitted, refusal) = until_refused(&h, &a, None, 50).await;
    assert!(admitted >= 3, "the burst of 3 is admitted, got {admitted}");
    assert_slow_down(&refusal.expect("refused within 50 requests"), "key a");
    // The bucket is shared: the other key is refused too (at most one token per
    // elapsed second refills in between).
    let (admitted_b, refusal_b) = until_refused(&h, &b, None, 10).await;
    assert!(refusal_b.is_some(), "key b admitted {admitted_b} of 10");
    assert!(refused(&h, "global") >= 2.0);
    assert_eq!(refused(&h, "key"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_flood_gets_slow_down_while_a_good_client_still_works() {
    let h = harness(|c| {
        c.s3_proxy.unauthenticated_per_ip_rps = 1;
        c.s3_proxy.rate_burst_seconds = 5;
    })
    .await;
    let good = rw_signer(&h);
    let forged = wrong_secret(&good);
    let (mut denied, mut slowed) = (0, 0);
    for _ in 0..30 {
        let r = list(&h, &forged, None).await;
        if is_slow_down(&r) {
            assert_slow_down(&r, "forged");
            slowed += 1;
        } else {
            assert_eq!(
                r.status_code(),
                (403, Some("SignatureDoesNotMatch".to_owned()))
            );
            denied += 1;
        }
    }
    assert!(denied >= 5, "the burst of 5 is answered 403, got {denied}");
    assert!(
        slowed >= 20,
        "the rest of the flood is slowed down, got {slowed}"
    );
    // The correctly signed client shares the address but is never charged to it.
    for _ in 0..5 {
        let r = list(&h, &good, None).await;
        assert_eq!(r.status, 200, "the good client proceeds: {}", r.text());
    }
    assert!(refused(&h, "ip") >= 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_over_the_limit_are_refused_before_signature_work() {
    let h = harness(|c| {
        c.s3_proxy.unauthenticated_per_ip_rps = 1;
        c.s3_proxy.rate_burst_seconds = 2;
    })
    .await;
    let stranger = Signer::new(UNKNOWN_KEY, "not-a-secret");
    let before = h.metric("stowage_s3_auth_failures_total", &[]);
    let mut slowed = 0;
    for _ in 0..20 {
        let r = list(&h, &stranger, None).await;
        if is_slow_down(&r) {
            slowed += 1;
        } else {
            assert_eq!(
                r.status_code(),
                (403, Some("InvalidAccessKeyId".to_owned()))
            );
        }
    }
    assert!(slowed >= 15, "slowed down {slowed} of 20");
    // Only the admitted requests reached the verifier.
    let verified = h.metric("stowage_s3_auth_failures_total", &[]) - before;
    assert_eq!(verified, f64::from(20 - slowed));
    // Requests with no credentials at all count against the same bucket: at most one
    // token per elapsed second comes back.
    let anonymous = Req::new("GET", &format!("/{}", h.bucket), &host(&h));
    let mut admitted = 0;
    loop {
        let r = raw::send(h.s3_addr, &anonymous).await;
        if is_slow_down(&r) {
            break;
        }
        assert_eq!(r.status, 403, "anonymous: {}", r.text());
        admitted += 1;
        assert!(admitted <= 2, "anonymous requests are not limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_makes_the_forwarded_address_the_limited_one() {
    let h = harness(|c| {
        c.s3_proxy.unauthenticated_per_ip_rps = 1;
        c.s3_proxy.rate_burst_seconds = 3;
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await;
    let stranger = Signer::new(UNKNOWN_KEY, "not-a-secret");
    let (admitted, refusal) = until_refused(&h, &stranger, Some("203.0.113.1"), 50).await;
    assert!(admitted >= 3, "the burst of 3 is admitted, got {admitted}");
    assert_slow_down(&refusal.expect("refused"), "203.0.113.1");
    // A client-written left-most entry does not move the request to another bucket
    // (which would admit a fresh burst of 3).
    let spoofed = Some("198.51.100.9, 203.0.113.1");
    let (admitted, refusal) = until_refused(&h, &stranger, spoofed, 5).await;
    assert!(
        admitted <= 1,
        "spoofed entry got a fresh bucket: {admitted}"
    );
    assert_slow_down(&refusal.expect("refused"), "spoofed left-most entry");
    // Another forwarded address has its own bucket.
    let other = list(&h, &stranger, Some("203.0.113.2")).await;
    assert_eq!(
        other.status_code(),
        (403, Some("InvalidAccessKeyId".to_owned()))
    );
    // A correctly signed client behind the throttled address is not charged to it.
    let good = rw_signer(&h);
    assert_eq!(list(&h, &good, Some("203.0.113.1")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let h = harness(|c| {
        c.s3_proxy.unauthenticated_per_ip_rps = 1;
        c.s3_proxy.rate_burst_seconds = 3;
    })
    .await;
    let stranger = Signer::new(UNKNOWN_KEY, "not-a-secret");
    let (admitted, refusal) = until_refused(&h, &stranger, Some("203.0.113.1"), 50).await;
    assert!(admitted >= 3, "the burst of 3 is admitted, got {admitted}");
    assert_slow_down(&refusal.expect("refused"), "first forwarded address");
    // The header is the client's own claim: the peer (127.0.0.1) is still throttled,
    // where a fresh bucket would admit a burst of 3.
    let (admitted, refusal) = until_refused(&h, &stranger, Some("203.0.113.2"), 5).await;
    assert!(
        admitted <= 1,
        "the claimed address got a fresh bucket: {admitted}"
    );
    assert_slow_down(&refusal.expect("refused"), "a different claimed address");
}

/// Sign `req` (UNSIGNED-PAYLOAD), add an unsigned `extra` header, send it.
async fn signed(h: &Harness, s: &Signer, mut req: Req, extra: Option<(&str, &str)>) -> RawResponse {
    s.sign_header(&mut req, UNSIGNED, &[]);
    if let Some((name, value)) = extra {
        req.set_header(name, value);
    }
    raw::send(h.s3_addr, &req).await
}

/// Create, upload one part, complete (with `X-Forwarded-Proto: proto`); returns the
/// completion response.
async fn multipart_via_proxy(h: &Harness, s: &Signer, proto: &str) -> RawResponse {
    let path = format!("/{}/mp-location", h.bucket);
    let create = Req::new("POST", &path, &host(h)).query("uploads", "");
    let created = signed(h, s, create, None).await;
    assert_eq!(created.status, 200, "create: {}", created.text());
    let upload_id = raw::xml_tag(&created.text(), "UploadId").expect("UploadId");
    let part = Req::new("PUT", &path, &host(h))
        .query("partNumber", "1")
        .query("uploadId", &upload_id)
        .body(b"one small last part".to_vec());
    let uploaded = signed(h, s, part, None).await;
    assert_eq!(uploaded.status, 200, "part: {}", uploaded.text());
    let etag = uploaded.header("etag").expect("ETag").to_owned();
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let complete = Req::new("POST", &path, &host(h))
        .query("uploadId", &upload_id)
        .body(xml.into_bytes());
    signed(h, s, complete, Some(("x-forwarded-proto", proto))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_multipart_location_is_https_only_behind_a_trusted_tls_proxy() {
    for (trusted, expected) in [(true, "https"), (false, "http")] {
        let Some(h) = Harness::start_with(UpstreamKind::Garage, |c| {
            if trusted {
                c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
            }
        })
        .await
        else {
            eprintln!("GARAGE TIER DID NOT RUN: no garage binary on PATH");
            return;
        };
        let s = rw_signer(&h);
        let r = multipart_via_proxy(&h, &s, "https").await;
        assert_eq!(r.status, 200, "complete: {}", r.text());
        let location = raw::xml_tag(&r.text(), "Location").expect("Location");
        let want = format!("{expected}://{}/{}/mp-location", h.s3_addr, h.bucket);
        assert_eq!(location, want, "trusted peer: {trusted}");
    }
}
