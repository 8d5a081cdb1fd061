//! A small, independent SigV4 signer for requests SDKs never send: wrong secrets on
//! every payload mode, forged chunks, bad trailers, skewed dates, unsigned headers.
//! Written from the AWS documentation, sharing no code with the proxy's verifier, so
//! a bug in one is not mirrored in the other.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::REGION;

/// RFC 3986 unreserved characters stay; everything else is %XX (SigV4 `UriEncode`).
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// A request as it will be written on the wire.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Already URI-encoded path, e.g. `/test/a%20b`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, path: &str, host: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: Vec::new(),
            headers: vec![("host".to_owned(), host.to_owned())],
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.set_header(name, value);
        self
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The request target: path plus encoded query.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        format!("{}?{}", self.path, q.join("&"))
    }
}

/// SigV4 `UriEncode` with `/` encoded too.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn amz_date(t: OffsetDateTime) -> String {
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

/// Who signs, and when.
#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub now: OffsetDateTime,
}

impl Signer {
    pub fn new(ak: &str, sk: &str) -> Self {
        Self {
            access_key: ak.to_owned(),
            secret_key: sk.to_owned(),
            region: REGION.to_owned(),
            now: OffsetDateTime::now_utc(),
        }
    }

    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = now;
        self
    }

    pub fn date(&self) -> String {
        amz_date(self.now)
    }

    pub fn scope(&self) -> String {
        format!("{}/{}/s3/aws4_request", &self.date()[..8], self.region)
    }

    fn signing_key(&self) -> Vec<u8> {
        let k = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            &self.date().as_bytes()[..8],
        );
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, b"s3");
        hmac(&k, b"aws4_request")
    }

    /// A browser form's signature: the SigV4 key over the base64 policy text.
    pub fn sign_policy(&self, policy_b64: &str) -> String {
        self.sign_string(policy_b64)
    }

    fn sign_string(&self, string_to_sign: &str) -> String {
        hex::encode(hmac(&self.signing_key(), string_to_sign.as_bytes()))
    }

    /// Header authentication. Every header present is signed except those named in
    /// `unsigned`; returns the seed signature.
    pub fn sign_header(&self, req: &mut Req, payload_hash: &str, unsigned: &[&str]) -> String {
        req.set_header("x-amz-date", &self.date());
        req.set_header("x-amz-content-sha256", payload_hash);
        let signed = signed_names(req, unsigned);
        let creq = canonical_request(req, &req.query, &signed, payload_hash);
        let sig = self.sign_string(&self.string_to_sign("AWS4-HMAC-SHA256", &creq));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={sig}",
            self.access_key,
            self.scope(),
            signed.join(";")
        );
        req.set_header("authorization", &auth);
        sig
    }

    /// Query (presigned) authentication; every header present is signed. Returns the
    /// signature.
    pub fn presign(&self, req: &mut Req, expires_secs: u64, payload_hash: &str) -> String {
        let signed = signed_names(req, &[]);
        let mut query = req.query.clone();
        query.extend([
            ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            (
                "X-Amz-Credential".to_owned(),
                format!("{}/{}", self.access_key, self.scope()),
            ),
            ("X-Amz-Date".to_owned(), self.date()),
            ("X-Amz-Expires".to_owned(), expires_secs.to_string()),
            ("X-Amz-SignedHeaders".to_owned(), signed.join(";")),
        ]);
        let creq = canonical_request(req, &query, &signed, payload_hash);
        let sig = self.sign_string(&self.string_to_sign("AWS4-HMAC-SHA256", &creq));
        query.push(("X-Amz-Signature".to_owned(), sig.clone()));
        req.query = query;
        sig
    }

    fn string_to_sign(&self, algorithm: &str, creq: &str) -> String {
        format!(
            "{algorithm}\n{}\n{}\n{}",
            self.date(),
            self.scope(),
            sha256_hex(creq.as_bytes())
        )
    }

    /// The signature of one aws-chunked chunk, chained from `prev`.
    pub fn chunk_signature(&self, prev: &str, chunk: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{EMPTY_SHA256}\n{}",
            self.date(),
            self.scope(),
            sha256_hex(chunk)
        );
        self.sign_string(&sts)
    }

    /// The trailer signature over the canonical trailer (`name:value\n` lines).
    pub fn trailer_signature(&self, prev: &str, canonical_trailer: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{prev}\n{}",
            self.date(),
            self.scope(),
            sha256_hex(canonical_trailer.as_bytes())
        );
        self.sign_string(&sts)
    }
}

fn signed_names(req: &Req, unsigned: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n != "authorization" && !unsigned.iter().any(|u| u.eq_ignore_ascii_case(n)))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn canonical_request(
    req: &Req,
    query: &[(String, String)],
    signed: &[String],
    payload_hash: &str,
) -> String {
    let mut q: Vec<(String, String)> = query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    q.sort();
    let cq: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ch: String = signed
        .iter()
        .map(|n| {
            let v = req.get_header(n).unwrap_or_default();
            format!(
                "{n}:{}\n",
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{ch}\n{}\n{payload_hash}",
        req.method,
        req.path,
        cq.join("&"),
        signed.join(";")
    )
}
