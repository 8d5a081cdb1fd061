//! SigV4 for the load generator, written from the AWS documentation and independent of
//! the proxy's verifier. Requests are signed once per time slice and then replayed
//! unchanged (S3 accepts a header-signed request again within the clock-skew window),
//! so signing never sits in the measured loop.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub const REGION: &str = "us-east-1";
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key pair; the secret is bench-local test material, never a real key.
#[derive(Clone)]
pub struct Keys {
    pub access: String,
    pub secret: String,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn amz_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Query strings as sent: the bench's keys and values are unreserved ASCII except the
/// few characters escaped here, so this is also the canonical encoding.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(q: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = q.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn signature(keys: &Keys, date: &str, canonical_request: &str) -> String {
    let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k = hmac(
        format!("AWS4{}", keys.secret).as_bytes(),
        &date.as_bytes()[..8],
    );
    let k = hmac(&k, REGION.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    hex::encode(hmac(&k, sts.as_bytes()))
}

/// A header-signed request: returns the request target and the headers to send
/// (host, x-amz-date, x-amz-content-sha256, authorization).
pub fn header_signed(
    keys: &Keys,
    method: &str,
    path: &str,
    query: &[(String, String)],
    host: &str,
    payload_hash: &str,
) -> (String, Vec<(String, String)>) {
    let date = amz_date(OffsetDateTime::now_utc());
    let cq = canonical_query(query);
    let creq = format!(
        "{method}\n{path}\n{cq}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{date}\n\n\
         host;x-amz-content-sha256;x-amz-date\n{payload_hash}"
    );
    let sig = signature(keys, &date, &creq);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{REGION}/s3/aws4_request, \
         SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}",
        keys.access,
        &date[..8]
    );
    let target = if cq.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{cq}")
    };
    let headers = vec![
        ("host".to_owned(), host.to_owned()),
        ("x-amz-date".to_owned(), date),
        ("x-amz-content-sha256".to_owned(), payload_hash.to_owned()),
        ("authorization".to_owned(), auth),
    ];
    (target, headers)
}

/// A presigned GET URL target (path and query), valid for an hour.
pub fn presigned_get(keys: &Keys, path: &str, host: &str) -> String {
    let date = amz_date(OffsetDateTime::now_utc());
    let mut q = vec![
        ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        (
            "X-Amz-Credential".to_owned(),
            format!("{}/{}/{REGION}/s3/aws4_request", keys.access, &date[..8]),
        ),
        ("X-Amz-Date".to_owned(), date.clone()),
        ("X-Amz-Expires".to_owned(), "3600".to_owned()),
        ("X-Amz-SignedHeaders".to_owned(), "host".to_owned()),
    ];
    let cq = canonical_query(&q);
    let creq = format!("GET\n{path}\n{cq}\nhost:{host}\n\nhost\n{UNSIGNED}");
    q.push(("X-Amz-Signature".to_owned(), signature(keys, &date, &creq)));
    format!("{path}?{}", canonical_query(&q))
}
