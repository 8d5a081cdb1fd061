//! The measured cases (Stowage's published table plus 256 MiB transfers) and the
//! request each one sends, per target.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use super::load::Prepared;
use super::null_upstream::{BUCKET, FORGED_SIGNATURE};
use super::sign::{self, EMPTY_SHA256, Keys, UNSIGNED};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Case {
    ListBuckets,
    HeadBucket,
    ListObjectsV2,
    HeadObject,
    Get1K,
    Get1M,
    PresignedGet,
    Put1K,
    Put1M,
    DeleteObject,
    BadSignature,
    ScopeReject,
    GetLarge,
    PutLarge,
}

pub const ALL: [Case; 14] = [
    Case::ListBuckets,
    Case::HeadBucket,
    Case::ListObjectsV2,
    Case::HeadObject,
    Case::Get1K,
    Case::Get1M,
    Case::PresignedGet,
    Case::Put1K,
    Case::Put1M,
    Case::DeleteObject,
    Case::BadSignature,
    Case::ScopeReject,
    Case::GetLarge,
    Case::PutLarge,
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Direct,
    Nginx,
    Stowage,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::Stowage => "stowage",
        }
    }
}

/// Where requests go and who signs them: the upstream's key for direct and nginx
/// (nginx forwards the Host it got, so the upstream checks the signature made for
/// nginx's address), a virtual credential for Stowage.
pub struct Target {
    pub via: Via,
    pub addr: std::net::SocketAddr,
    pub keys: Keys,
}

impl Target {
    fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Object bodies, all slices of one pattern buffer.
pub struct Payloads {
    pub pattern: Bytes,
    pub large: usize,
    pub put1k_sha: String,
}

pub const K1K: &str = "obj-1k";
pub const K1M: &str = "obj-1m";
pub const KLARGE: &str = "obj-large";

impl Case {
    pub fn name(self, large: usize) -> String {
        let big = format!("{} MiB", large >> 20);
        match self {
            Self::ListBuckets => "ListBuckets".into(),
            Self::HeadBucket => "HeadBucket".into(),
            Self::ListObjectsV2 => "ListObjectsV2".into(),
            Self::HeadObject => "HeadObject".into(),
            Self::Get1K => "GetObject 1 KiB".into(),
            Self::Get1M => "GetObject 1 MiB".into(),
            Self::PresignedGet => "presigned GetObject 1 KiB".into(),
            Self::Put1K => "PutObject 1 KiB".into(),
            Self::Put1M => "PutObject 1 MiB".into(),
            Self::DeleteObject => "DeleteObject".into(),
            Self::BadSignature => "bad-signature reject".into(),
            Self::ScopeReject => "scope-violation reject".into(),
            Self::GetLarge => format!("GetObject {big}"),
            Self::PutLarge => format!("PutObject {big}"),
        }
    }

    pub fn is_large(self) -> bool {
        matches!(self, Self::GetLarge | Self::PutLarge)
    }

    /// Worker `w`'s request to `t`, signed now.
    pub fn prepare(self, t: &Target, w: usize, p: &Payloads) -> Prepared {
        let host = t.host();
        let get = |path: &str, status: u16, len: Option<usize>| {
            signed(
                t,
                Method::GET,
                path,
                &[],
                EMPTY_SHA256,
                Bytes::new(),
                status,
                len,
            )
        };
        match self {
            Self::ListBuckets => get("/", 200, None),
            Self::HeadBucket => signed(
                t,
                Method::HEAD,
                &format!("/{BUCKET}"),
                &[],
                EMPTY_SHA256,
                Bytes::new(),
                200,
                Some(0),
            ),
            Self::ListObjectsV2 => signed(
                t,
                Method::GET,
                &format!("/{BUCKET}"),
                &[("list-type", "2"), ("max-keys", "100")],
                EMPTY_SHA256,
                Bytes::new(),
                200,
                None,
            ),
            Self::HeadObject => signed(
                t,
                Method::HEAD,
                &format!("/{BUCKET}/{K1K}"),
                &[],
                EMPTY_SHA256,
                Bytes::new(),
                200,
                Some(0),
            ),
            Self::Get1K => get(&format!("/{BUCKET}/{K1K}"), 200, Some(1024)),
            Self::Get1M => get(&format!("/{BUCKET}/{K1M}"), 200, Some(1 << 20)),
            Self::GetLarge => get(&format!("/{BUCKET}/{KLARGE}"), 200, Some(p.large)),
            Self::PresignedGet => {
                let target = sign::presigned_get(&t.keys, &format!("/{BUCKET}/{K1K}"), &host);
                Prepared {
                    method: Method::GET,
                    target,
                    headers: vec![(HeaderName::from_static("host"), value(&host))],
                    body: Bytes::new(),
                    expect_status: 200,
                    expect_len: Some(1024),
                }
            }
            Self::Put1K => {
                let body = p.pattern.slice(..1024);
                signed(
                    t,
                    Method::PUT,
                    &format!("/{BUCKET}/put1k-{w}"),
                    &[],
                    &p.put1k_sha,
                    body,
                    200,
                    None,
                )
            }
            Self::Put1M => {
                let body = p.pattern.slice(..1 << 20);
                signed(
                    t,
                    Method::PUT,
                    &format!("/{BUCKET}/put1m-{w}"),
                    &[],
                    UNSIGNED,
                    body,
                    200,
                    None,
                )
            }
            Self::PutLarge => {
                let body = p.pattern.slice(..p.large);
                signed(
                    t,
                    Method::PUT,
                    &format!("/{BUCKET}/putlarge-{w}"),
                    &[],
                    UNSIGNED,
                    body,
                    200,
                    None,
                )
            }
            Self::DeleteObject => signed(
                t,
                Method::DELETE,
                &format!("/{BUCKET}/del-{w}"),
                &[],
                EMPTY_SHA256,
                Bytes::new(),
                204,
                None,
            ),
            Self::BadSignature => {
                let mut r = get(&format!("/{BUCKET}/{K1K}"), 403, None);
                for (n, v) in &mut r.headers {
                    if n == "authorization" {
                        let s = v.to_str().expect("ascii");
                        let (head, _) = s.rsplit_once("Signature=").expect("signature");
                        *v = value(&format!("{head}Signature={FORGED_SIGNATURE}"));
                    }
                }
                r
            }
            // Stowage refuses the bucket outside the credential's scope itself; the
            // upstream (direct, via nginx) answers the same request NoSuchBucket.
            Self::ScopeReject => {
                let status = if t.via == Via::Stowage { 403 } else { 404 };
                get(&format!("/not-{BUCKET}/{K1K}"), status, None)
            }
        }
    }
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

/// A header-signed request to `t`.
#[allow(clippy::too_many_arguments)]
pub fn signed(
    t: &Target,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    payload_hash: &str,
    body: Bytes,
    status: u16,
    len: Option<usize>,
) -> Prepared {
    let q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (target, headers) =
        sign::header_signed(&t.keys, method.as_str(), path, &q, &t.host(), payload_hash);
    Prepared {
        method,
        target,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    value(v),
                )
            })
            .collect(),
        body,
        expect_status: status,
        expect_len: len,
    }
}
