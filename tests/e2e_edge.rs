//! What SDKs never send, hand-signed and written as raw HTTP to the proxy in front of
//! s3s-fs: wrong secrets on every payload mode and auth location, forged chunks, bad
//! trailers, skewed and expired dates, unsigned headers and SigV4A here; scope
//! escapes, bucket administration, an upstream that is down and `Expect:
//! 100-continue` in `e2e_edge/scope.rs`. Every refusal is checked for its exact status
//! and S3 code, and that nothing landed.

mod common;

use common::edge::{
    assert_absent, assert_refused, get, harness, host, put, rw_signer, wrong_secret,
};
use common::raw::{self, RawResponse};
use common::signer::{Req, Signer, UNSIGNED};
use common::uploads::{Location, Mode, Tamper};
use common::{Harness, pattern};
use time::OffsetDateTime;

const KIB: usize = 1024;

/// What a request in `mode` at `loc` must get when signed correctly.
fn expected_success(loc: Location, mode: Mode) -> Option<(u16, &'static str)> {
    // aws-chunked needs header auth: the proxy refuses a presigned streaming upload as a
    // malformed request before looking at the key (src/auth/verify/payload.rs).
    (loc == Location::Query && mode.is_streaming()).then_some((400, "InvalidRequest"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_mode_round_trips_with_the_right_secret() {
    let h = harness().await;
    let s = rw_signer(&h);
    let data = pattern(150 * KIB + 7, 1);
    for loc in [Location::Header, Location::Query] {
        for mode in Mode::ALL {
            let key = format!("ok/{loc:?}-{mode:?}");
            let resp = put(
                &h,
                &s,
                loc,
                mode,
                (&h.bucket, &key),
                &data,
                &Tamper::default(),
            )
            .await;
            if let Some((status, code)) = expected_success(loc, mode) {
                assert_refused(&resp, status, code, &key);
                assert_absent(&h, &h.bucket, &key, &key).await;
                continue;
            }
            assert_eq!(resp.status, 200, "{key}: {}", resp.text());
            assert!(
                h.read_upstream(&h.bucket, &key).await == data,
                "{key}: decoded bytes upstream"
            );
        }
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_fails_on_every_payload_mode_and_auth_location() {
    let h = harness().await;
    let bad = wrong_secret(&rw_signer(&h));
    let data = pattern(100 * KIB, 2);
    for loc in [Location::Header, Location::Query] {
        for mode in Mode::ALL {
            let key = format!("bad/{loc:?}-{mode:?}");
            let resp = put(
                &h,
                &bad,
                loc,
                mode,
                (&h.bucket, &key),
                &data,
                &Tamper::default(),
            )
            .await;
            let (status, code) =
                expected_success(loc, mode).unwrap_or((403, "SignatureDoesNotMatch"));
            assert_refused(&resp, status, code, &key);
            assert_absent(&h, &h.bucket, &key, &key).await;
        }
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_is_invalid_access_key_id() {
    let h = harness().await;
    let s = Signer::new("AKIDNOTINTHESTORE000", "whatever-secret");
    let resp = get(&h, &s, &format!("/{}/x", h.bucket), &[]).await;
    assert_refused(&resp, 403, "InvalidAccessKeyId", "unknown key");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_date_is_request_time_too_skewed() {
    let h = harness().await;
    h.put_upstream(&h.bucket, "skew", b"s").await;
    let s = rw_signer(&h);
    let path = format!("/{}/skew", h.bucket);
    for offset in [time::Duration::minutes(-20), time::Duration::minutes(20)] {
        let skewed = s.clone().at(OffsetDateTime::now_utc() + offset);
        let resp = get(&h, &skewed, &path, &[]).await;
        assert_refused(
            &resp,
            403,
            "RequestTimeTooSkewed",
            &format!("offset {offset}"),
        );
    }
    let fine = s
        .clone()
        .at(OffsetDateTime::now_utc() - time::Duration::minutes(5));
    assert_eq!(
        get(&h, &fine, &path, &[]).await.status,
        200,
        "5 minutes is within the window"
    );
    h.shutdown().await;
}

async fn presigned_get(h: &Harness, s: &Signer, path: &str, expires: u64) -> RawResponse {
    let mut req = Req::new("GET", path, &host(h));
    s.presign(&mut req, expires, UNSIGNED);
    raw::send(h.s3_addr, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_expire_and_seven_days_is_honoured_to_the_end() {
    let h = harness().await;
    h.put_upstream(&h.bucket, "p.bin", b"presigned").await;
    let s = rw_signer(&h);
    let path = format!("/{}/p.bin", h.bucket);
    let now = OffsetDateTime::now_utc();

    let fresh = presigned_get(&h, &s, &path, 60).await;
    assert_eq!(
        (fresh.status, fresh.body.as_slice()),
        (200, &b"presigned"[..]),
        "control"
    );

    let expired = presigned_get(
        &h,
        &s.clone().at(now - time::Duration::minutes(10)),
        &path,
        60,
    )
    .await;
    assert_refused(&expired, 403, "AccessDenied", "expired presigned URL");

    let day_six = presigned_get(
        &h,
        &s.clone().at(now - time::Duration::days(6)),
        &path,
        7 * 24 * 3600,
    )
    .await;
    assert_eq!(
        (day_six.status, day_six.body.as_slice()),
        (200, &b"presigned"[..]),
        "a 7-day URL on day 6"
    );

    let day_eight = presigned_get(
        &h,
        &s.clone().at(now - time::Duration::days(8)),
        &path,
        7 * 24 * 3600,
    )
    .await;
    assert_refused(&day_eight, 403, "AccessDenied", "a 7-day URL on day 8");

    let too_long = presigned_get(&h, &s, &path, 7 * 24 * 3600 + 1).await;
    assert_refused(
        &too_long,
        400,
        "AuthorizationQueryParametersError",
        "X-Amz-Expires over 7 days",
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_chunk_is_refused_and_nothing_is_committed() {
    let h = harness().await;
    let s = rw_signer(&h);
    let data = pattern(200 * KIB, 3);
    for mode in [Mode::StreamingSigned, Mode::StreamingSignedTrailer] {
        let key = format!("forged/{mode:?}");
        let tamper = Tamper {
            forge_chunk: Some(1),
            ..Tamper::default()
        };
        let resp = put(
            &h,
            &s,
            Location::Header,
            mode,
            (&h.bucket, &key),
            &data,
            &tamper,
        )
        .await;
        assert_refused(&resp, 403, "SignatureDoesNotMatch", &key);
        assert_absent(&h, &h.bucket, &key, &key).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trailer_checksum_is_bad_digest_and_nothing_is_committed() {
    let h = harness().await;
    let s = rw_signer(&h);
    let data = pattern(130 * KIB, 4);
    for mode in [Mode::StreamingUnsignedTrailer, Mode::StreamingSignedTrailer] {
        let key = format!("trailer/{mode:?}");
        // A well-formed CRC32 (8 base64 chars) of other bytes.
        let tamper = Tamper {
            trailer_checksum: Some(common::uploads::crc32_b64(b"other")),
            ..Tamper::default()
        };
        let resp = put(
            &h,
            &s,
            Location::Header,
            mode,
            (&h.bucket, &key),
            &data,
            &tamper,
        )
        .await;
        assert_refused(&resp, 400, "BadDigest", &key);
        assert_absent(&h, &h.bucket, &key, &key).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_length_mismatch_is_refused_and_nothing_is_committed() {
    let h = harness().await;
    let s = rw_signer(&h);
    let data = pattern(100 * KIB, 5);
    let n = data.len() as u64;
    let cases = [
        (n + 10, 400, "IncompleteBody"),
        (n - 10, 400, "InvalidRequest"),
    ];
    for mode in [Mode::StreamingSigned, Mode::StreamingUnsignedTrailer] {
        for (declared, status, code) in cases {
            let key = format!("length/{mode:?}-{declared}");
            let tamper = Tamper {
                decoded_length: Some(declared),
                ..Tamper::default()
            };
            let resp = put(
                &h,
                &s,
                Location::Header,
                mode,
                (&h.bucket, &key),
                &data,
                &tamper,
            )
            .await;
            assert_refused(&resp, status, code, &key);
            assert_absent(&h, &h.bucket, &key, &key).await;
        }
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hex_payload_hash_mismatch_is_refused_and_nothing_is_committed() {
    let h = harness().await;
    let s = rw_signer(&h);
    let data = pattern(64 * KIB, 6);
    let mut req = common::uploads::upload(
        &s,
        Location::Header,
        Mode::Hex,
        (&host(&h), &format!("/{}/hex", h.bucket)),
        &data,
        0,
        &Tamper::default(),
    );
    req.body[1000] ^= 1;
    let resp = raw::send(h.s3_addr, &req).await;
    assert_refused(&resp, 400, "XAmzContentSHA256Mismatch", "altered body");
    assert_absent(&h, &h.bucket, "hex", "hex mismatch").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_amz_header_is_access_denied() {
    let h = harness().await;
    let s = rw_signer(&h);
    let mut req = Req::new("PUT", &format!("/{}/unsigned-meta", h.bucket), &host(&h))
        .header("x-amz-meta-note", "smuggled")
        .body(b"x".to_vec());
    s.sign_header(&mut req, UNSIGNED, &["x-amz-meta-note"]);
    let resp = raw::send(h.s3_addr, &req).await;
    assert_refused(&resp, 403, "AccessDenied", "unsigned x-amz-meta-note");
    assert_absent(&h, &h.bucket, "unsigned-meta", "unsigned header").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4a_is_not_implemented() {
    let h = harness().await;
    let s = rw_signer(&h);
    let date = s.date();
    let auth = format!(
        "AWS4-ECDSA-P256-SHA256 Credential={}/{}/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-region-set, Signature=3045022100{}",
        s.access_key,
        &date[..8],
        "ab".repeat(35)
    );
    let req = Req::new("GET", &format!("/{}/x", h.bucket), &host(&h))
        .header("x-amz-date", &date)
        .header("x-amz-region-set", "*")
        .header("x-amz-content-sha256", UNSIGNED)
        .header("authorization", &auth);
    assert_refused(
        &raw::send(h.s3_addr, &req).await,
        501,
        "NotImplemented",
        "SigV4A header",
    );

    let req = Req::new("GET", &format!("/{}/x", h.bucket), &host(&h))
        .query("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256")
        .query(
            "X-Amz-Credential",
            &format!("{}/{}/s3/aws4_request", s.access_key, &date[..8]),
        )
        .query("X-Amz-Date", &date)
        .query("X-Amz-Expires", "60")
        .query("X-Amz-Region-Set", "*")
        .query("X-Amz-SignedHeaders", "host")
        .query("X-Amz-Signature", "3045");
    assert_refused(
        &raw::send(h.s3_addr, &req).await,
        501,
        "NotImplemented",
        "SigV4A query",
    );
    h.shutdown().await;
}

#[path = "e2e_edge/scope.rs"]
mod scope;

/// An SDK upload refused on its head (a wrong secret, a key out of scope) gets the
/// refusal, not a broken pipe: the proxy reads and drops a body of up to 16 MiB before
/// answering, as it does for a quota refusal. Without that, the client is still writing
/// when the connection closes and never sees the 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sdk_upload_reads_its_403_instead_of_a_reset_connection() {
    let h = harness().await;
    let (ak, sk) = h.credential(vec![common::scope(
        &h.bucket,
        stowage::credentials::model::Access::ReadWrite,
    )]);
    let wrong = h.client(&ak, &format!("{sk}-wrong"));
    let scoped = h.client(&ak, &sk);
    let body = vec![b'x'; 8 * 1024 * 1024];
    for round in 0..4 {
        let key = format!("drained-{round}");
        let err = wrong
            .put_object()
            .bucket(&h.bucket)
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .expect_err("a wrong secret is refused");
        assert_eq!(
            common::clients::status_and_code(&err),
            (Some(403), Some("SignatureDoesNotMatch".to_owned())),
            "round {round}: {}",
            common::clients::describe(&err)
        );
        let err = scoped
            .put_object()
            .bucket("not-in-scope")
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .expect_err("another bucket is refused");
        assert_eq!(
            common::clients::status_and_code(&err),
            (Some(403), Some("AccessDenied".to_owned())),
            "round {round}: {}",
            common::clients::describe(&err)
        );
        assert_absent(&h, &h.bucket, &key, "refused upload").await;
    }
    h.shutdown().await;
}
