//! Helpers for the hand-signed edge cases: a harness on s3s-fs, raw signed uploads
//! and GETs, and the assertion that nothing reached the upstream.

use stowage::credentials::model::{Access, Scope};

use super::raw::{self, RawResponse};
use super::signer::{Req, Signer, UNSIGNED};
use super::uploads::{Location, Mode, Tamper};
use super::{Harness, UpstreamKind};

/// A fresh proxy in front of s3s-fs.
pub async fn harness() -> Harness {
    Harness::start(UpstreamKind::S3sFs)
        .await
        .expect("s3s-fs harness")
}

/// A credential on the harness bucket and a signer for it.
pub fn signer(h: &Harness, scopes: Vec<Scope>) -> Signer {
    let (ak, sk) = h.credential(scopes);
    Signer::new(&ak, &sk)
}

pub fn rw_signer(h: &Harness) -> Signer {
    signer(h, vec![super::scope(&h.bucket, Access::ReadWrite)])
}

/// The same access key with a wrong secret.
pub fn wrong_secret(s: &Signer) -> Signer {
    let mut w = s.clone();
    w.secret_key = format!("{}-wrong", s.secret_key);
    w
}

pub fn host(h: &Harness) -> String {
    h.s3_addr.to_string()
}

/// PUT `data` to `/bucket/key` (`obj` = (bucket, key)) in `mode`, 64 KiB chunks when
/// streaming.
pub async fn put(
    h: &Harness,
    s: &Signer,
    loc: Location,
    mode: Mode,
    obj: (&str, &str),
    data: &[u8],
    tamper: &Tamper,
) -> RawResponse {
    let path = format!("/{}/{}", obj.0, obj.1);
    let req = super::uploads::upload(s, loc, mode, (&host(h), &path), data, 64 * 1024, tamper);
    raw::send(h.s3_addr, &req).await
}

/// A header-signed request with no body (UNSIGNED-PAYLOAD).
pub async fn send_signed(h: &Harness, s: &Signer, mut req: Req) -> RawResponse {
    s.sign_header(&mut req, UNSIGNED, &[]);
    raw::send(h.s3_addr, &req).await
}

/// A header-signed GET of `path` (with optional query).
pub async fn get(h: &Harness, s: &Signer, path: &str, query: &[(&str, &str)]) -> RawResponse {
    let mut req = Req::new("GET", path, &host(h));
    for (k, v) in query {
        req = req.query(k, v);
    }
    send_signed(h, s, req).await
}

/// Assert the exact status and S3 error code of a refusal.
#[track_caller]
pub fn assert_refused(resp: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(
        resp.status_code(),
        (status, Some(code.to_owned())),
        "{what}: body {}",
        resp.text()
    );
}

/// Assert that `bucket/key` is not in the upstream.
pub async fn assert_absent(h: &Harness, bucket: &str, key: &str, what: &str) {
    assert!(
        !h.exists_upstream(bucket, key).await,
        "{what}: {bucket}/{key} must not exist upstream"
    );
}
