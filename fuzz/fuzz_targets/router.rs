//! The request router and operation classifier, and the scope check that uses them, on
//! arbitrary method, `Host`, path, query and `x-amz-copy-source`.
//!
//! Input: up to five `\n`-separated fields: method, host, path, query, copy source.
//! Invariants:
//! - a routed bucket is a valid bucket name (and lower-case when it came from `Host`),
//!   a routed key is 1..=1024 bytes without NUL, and re-encoding the route for the
//!   upstream routes back to the same bucket and key;
//! - a credential scoped to `photos` under `app1/` is only ever allowed object
//!   operations on `photos` keys that stay under `app1/` however a normalising hop
//!   resolves `.`/`..` segments and repeated slashes (checked here with an independent
//!   RFC 3986 resolver), and listings whose every `prefix` stays under `app1/`;
//! - a read-only credential is never allowed a write or bucket administration;
//! - an allowed copy reads a source the credential may read.

#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use stowage::credentials::{Access, Credential, CredentialSource, Scope};
use stowage::policy::operation::{AccessClass, S3Operation, Target, classify};
use stowage::policy::route::{AddressingStyle, MAX_KEY_BYTES, encode_path, route, validate_bucket};
use stowage::policy::scope::{authorize, copy_source_from_headers};
use stowage::secret::SecretKey;

const PREFIX: &str = "app1/";

fn credential(access: Access, prefix: Option<&str>) -> Credential {
    Credential {
        access_key_id: "AKFUZZ".into(),
        secret: SecretKey::new("fuzz-secret"),
        backend: "b".into(),
        scopes: vec![Scope {
            bucket: "photos".into(),
            access,
            prefix: prefix.map(str::to_owned),
        }],
        expires_at: None,
        enabled: true,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }
}

/// RFC 3986 §5.2.4 remove_dot_segments on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut out = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input = input[2..].to_owned();
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." {
                "/".into()
            } else {
                input[3..].to_owned()
            };
            match out.rfind('/') {
                Some(i) => out.truncate(i),
                None => out.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = input[end..].to_owned();
        }
    }
    out
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// The key stays under `photos/app1/` however the upstream path is read.
fn key_stays_under_prefix(key: &str) {
    let path = format!("/photos/{key}");
    assert!(key.starts_with(PREFIX), "key {key:?} outside the prefix");
    for reading in [
        remove_dot_segments(&path),
        remove_dot_segments(&merge_slashes(&path)),
    ] {
        assert!(
            reading.starts_with("/photos/app1/"),
            "key {key:?} escapes as {reading:?}"
        );
    }
}

fn pct_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Every `prefix` parameter of an allowed listing stays under the scope prefix.
fn listing_stays_under_prefix(query: Option<&str>) {
    let mut seen = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if pct_decode(name, false).as_deref() != Some("prefix") {
            continue;
        }
        seen = true;
        for plus in [false, true] {
            if let Some(v) = pct_decode(value, plus) {
                assert!(v.starts_with(PREFIX), "listing prefix {v:?} allowed");
            }
        }
    }
    assert!(seen, "a whole-bucket listing was allowed to a prefix scope");
}

fn check_route(
    host: Option<&str>,
    path: &str,
    suffixes: &[String],
) -> Option<stowage::policy::route::Route> {
    let r = route(host, path, suffixes).ok()?;
    if let Some(b) = &r.bucket {
        assert!(validate_bucket(b).is_ok(), "{b:?}");
        assert!((3..=63).contains(&b.len()) && !b.contains("..") && !b.contains('/'));
        if r.style == AddressingStyle::VirtualHost {
            assert_eq!(*b, b.to_ascii_lowercase());
        }
    } else {
        assert!(r.key.is_none());
    }
    if let Some(k) = &r.key {
        assert!(!k.is_empty() && k.len() <= MAX_KEY_BYTES && !k.contains('\0'));
        assert!(r.bucket.is_some());
    }
    let encoded = encode_path(r.bucket.as_deref(), r.key.as_deref());
    let again = route(None, &encoded, &[]).expect("an encoded route routes");
    assert_eq!(
        (&again.bucket, &again.key),
        (&r.bucket, &r.key),
        "{encoded}"
    );
    Some(r)
}

fn check_authorize(
    method: &Method,
    r: &stowage::policy::route::Route,
    query: Option<&str>,
    headers: &HeaderMap,
) {
    let op = classify(method, r, query, headers);
    let class = op.access_class();
    let copy = copy_source_from_headers(headers).ok().flatten();
    let scoped = credential(Access::ReadWrite, Some(PREFIX));
    if authorize(&scoped, op, r, query, copy.as_ref()).is_ok() {
        assert_ne!(class, AccessClass::Unknown);
        assert_ne!(class, AccessClass::BucketAdmin);
        assert_ne!(class, AccessClass::BucketConfigRead);
        if r.bucket.is_some() {
            assert_eq!(r.bucket.as_deref(), Some("photos"));
        }
        match op.target() {
            Target::Object => key_stays_under_prefix(r.key.as_deref().expect("an object key")),
            Target::Listing => listing_stays_under_prefix(query),
            Target::BodyKeys => panic!("{} allowed without checking its keys", op.name()),
            Target::Bucket | Target::Service => {}
        }
        if let Some(src) = &copy {
            assert_eq!(src.bucket, "photos");
            key_stays_under_prefix(&src.key);
        }
        if op.reads_copy_source() {
            assert!(copy.is_some());
        }
    }
    let read_only = credential(Access::ReadOnly, None);
    if authorize(&read_only, op, r, query, copy.as_ref()).is_ok() {
        assert!(
            matches!(
                class,
                AccessClass::Read
                    | AccessClass::List
                    | AccessClass::BucketRead
                    | AccessClass::Service
            ),
            "read-only allowed {}",
            op.name()
        );
        if let Some(src) = &copy {
            assert_eq!(src.bucket, "photos");
        }
    }
    assert!(op != S3Operation::Unknown || class == AccessClass::Unknown);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(5, '\n');
    let method = fields.next().unwrap_or_default();
    let host = fields.next().filter(|h| !h.is_empty());
    let path = fields.next().unwrap_or("/");
    let query = fields.next().filter(|q| !q.is_empty());
    let copy_source = fields.next().filter(|c| !c.is_empty());
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let suffixes = vec!["s3.example.com".to_owned(), "example.com".to_owned()];
    let Some(r) = check_route(host, path, &suffixes) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = copy_source.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("x-amz-copy-source", v);
    }
    check_authorize(&method, &r, query, &headers);
});
