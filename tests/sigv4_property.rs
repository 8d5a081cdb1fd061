//! Property tests for inbound SigV4 verification against an independent signer: random
//! S3 requests are signed with the `aws-sigv4` crate under S3 settings (single percent
//! encoding, no path normalisation, `x-amz-content-sha256` header), in both the
//! header and the presigned form, and [`authenticate`] must accept them; changing
//! exactly one signed component (method, path, a query value, a header value) must
//! make it fail with `SignatureDoesNotMatch`. Plus "never panics" properties for the
//! parsers and the classifier on arbitrary input.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use stowage::auth::parse::{AuthError, parse_authorization, parse_presigned};
use stowage::auth::sigv4::{canonical_query, canonical_uri};
use stowage::auth::{AuthLocation, AuthOptions, SigningKeyCache, authenticate};
use stowage::credentials::{Credential, CredentialLookup, CredentialSource};
use stowage::secret::SecretKey;
use time::OffsetDateTime;

const AK: &str = "AKIDPROPERTYTEST";
const SECRET: &str = "pr0perty/Secret+Key=EXAMPLE";
const HOST: &str = "s3.example.test:9000";

/// What AWS SDKs percent-encode in a key or query value: everything but unreserved
/// characters (and `/` in paths).
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

struct OneKey(Arc<Credential>);

impl CredentialLookup for OneKey {
    fn lookup(&self, ak: &str) -> Option<Arc<Credential>> {
        (ak == self.0.access_key_id).then(|| self.0.clone())
    }
}

fn creds() -> OneKey {
    OneKey(Arc::new(Credential {
        access_key_id: AK.into(),
        secret: SecretKey::new(SECRET),
        backend: "b".into(),
        scopes: vec![],
        expires_at: None,
        enabled: true,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }))
}

/// A random S3 request before signing.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    bucket: String,
    key: String,
    query: Vec<(String, Option<String>)>,
    meta: Vec<(String, String)>,
    region: &'static str,
    payload: Payload,
}

#[derive(Debug, Clone, Copy)]
enum Payload {
    Hash,
    Unsigned,
    StreamingTrailer,
}

/// A signed request as it arrives: everything `authenticate` sees.
#[derive(Debug, Clone)]
struct Wire {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Wire {
    fn parts(&self) -> http::request::Parts {
        let target = if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        };
        let mut b = http::Request::builder()
            .method(self.method.as_str())
            .uri(target);
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(()).expect("a valid request").into_parts().0
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        "[a-zA-Z0-9]",
        Just(" ".to_owned()),
        Just("+".to_owned()),
        Just("/".to_owned()),
        Just("%".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just("~".to_owned()),
        Just("é".to_owned()),
        Just("日本".to_owned()),
        Just("🙂".to_owned()),
        Just("!$'()*,;:@".to_owned()),
    ];
    proptest::collection::vec(chars, 1..12).prop_map(|parts| parts.concat())
}

fn query_strategy() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    let value = prop_oneof!["[a-zA-Z0-9 +/=&%~é-]{0,10}".prop_map(Some), Just(None)];
    proptest::collection::vec(("[a-z][a-z-]{0,7}", value), 0..4)
}

fn meta_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    // Visible ASCII words and runs of spaces, so values often have leading, trailing
    // and repeated spaces (which canonicalisation trims and collapses).
    let piece = prop_oneof!["[!-~]{1,4}", Just(" ".to_owned()), Just("   ".to_owned())];
    let value = proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat());
    proptest::collection::btree_map("[a-z0-9]{1,8}", value, 0..4).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v))
            .collect()
    })
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec!["GET", "PUT", "HEAD", "DELETE", "POST"]),
        "[a-z0-9][a-z0-9.-]{2,10}",
        key_strategy(),
        query_strategy(),
        meta_strategy(),
        prop::sample::select(vec!["us-east-1", "auto", "eu-west-3", "garage"]),
        prop::sample::select(vec![
            Payload::Hash,
            Payload::Unsigned,
            Payload::StreamingTrailer,
        ]),
    )
        .prop_map(|(method, bucket, key, query, meta, region, payload)| Req {
            method,
            bucket,
            key,
            query,
            meta,
            region,
            payload,
        })
}

impl Req {
    fn path(&self) -> String {
        format!(
            "/{}/{}",
            self.bucket,
            utf8_percent_encode(&self.key, PATH_SET)
        )
    }

    fn query_string(&self) -> String {
        let parts: Vec<String> = self
            .query
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}={}", utf8_percent_encode(v, QUERY_SET)),
                None => n.clone(),
            })
            .collect();
        parts.join("&")
    }

    fn headers(&self, presigned: bool) -> Vec<(String, String)> {
        let mut h = vec![("host".to_owned(), HOST.to_owned())];
        h.extend(self.meta.iter().cloned());
        if !presigned && matches!(self.payload, Payload::StreamingTrailer) {
            h.push(("content-encoding".into(), "aws-chunked".into()));
            h.push(("x-amz-decoded-content-length".into(), "11".into()));
            h.push(("x-amz-trailer".into(), "x-amz-checksum-crc32".into()));
        }
        h
    }

    fn body(&self, presigned: bool) -> SignableBody<'static> {
        match (presigned, self.payload) {
            (true, _) | (false, Payload::Unsigned) => SignableBody::UnsignedPayload,
            (false, Payload::Hash) => SignableBody::Bytes(b"hello world"),
            (false, Payload::StreamingTrailer) => SignableBody::StreamingUnsignedPayloadTrailer,
        }
    }

    /// Sign with aws-sigv4 and apply its output the way an SDK would.
    fn sign(&self, at: SystemTime, presign_for: Option<Duration>) -> Wire {
        let identity: Identity = Credentials::new(AK, SECRET, None, None, "proptest").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        if let Some(expires) = presign_for {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
        } else {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("s3")
            .time(at)
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let (path, query) = (self.path(), self.query_string());
        let url = if query.is_empty() {
            format!("http://{HOST}{path}")
        } else {
            format!("http://{HOST}{path}?{query}")
        };
        let mut headers = self.headers(presign_for.is_some());
        let presigned = presign_for.is_some();
        let signable = SignableRequest::new(
            self.method,
            url,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            self.body(presigned),
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        let (new_headers, new_params) = instructions.into_parts();
        headers.extend(
            new_headers
                .iter()
                .map(|h| (h.name().to_owned(), h.value().to_owned())),
        );
        let mut query_parts: Vec<String> = if query.is_empty() {
            vec![]
        } else {
            vec![query]
        };
        query_parts.extend(
            new_params
                .iter()
                .map(|(n, v)| format!("{n}={}", utf8_percent_encode(v, QUERY_SET))),
        );
        Wire {
            method: self.method.to_owned(),
            path,
            query: query_parts.join("&"),
            headers,
        }
    }
}

fn verify(wire: &Wire, now: SystemTime) -> Result<stowage::auth::VerifiedRequest, AuthError> {
    authenticate(
        &wire.parts(),
        &creds(),
        &SigningKeyCache::new(),
        &AuthOptions::default(),
        OffsetDateTime::from(now),
    )
}

/// One signed component to change.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Method,
    Path,
    Query,
    Header,
}

fn tamper(mut wire: Wire, how: Tamper) -> Wire {
    match how {
        Tamper::Method => {
            wire.method = if wire.method == "GET" { "PUT" } else { "GET" }.to_owned();
        }
        Tamper::Path => wire.path.push('x'),
        Tamper::Query => {
            // Change the first value the client chose, else add a parameter.
            let mut pairs: Vec<String> = wire.query.split('&').map(str::to_owned).collect();
            match pairs
                .iter_mut()
                .find(|p| !p.starts_with("X-Amz-") && !p.is_empty())
            {
                Some(p) => p.push_str(if p.contains('=') { "x" } else { "=x" }),
                None => pairs.insert(0, "x-id=evil".to_owned()),
            }
            wire.query = pairs
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("&");
        }
        Tamper::Header => {
            let idx = wire
                .headers
                .iter()
                .position(|(n, _)| n.starts_with("x-amz-meta-"));
            match idx {
                Some(i) => wire.headers[i].1.push('x'),
                None => wire.headers[0].1 = "evil.example.test:9000".into(),
            }
        }
    }
    wire
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop::sample::select(vec![
        Tamper::Method,
        Tamper::Path,
        Tamper::Query,
        Tamper::Header,
    ])
}

fn signing_time(offset_secs: u64) -> SystemTime {
    // 2024-03-01T00:00:00Z plus a random offset.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_200 + offset_secs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn header_signed_requests_verify_and_any_tampering_fails(
        req in req_strategy(),
        at in 0u64..10_000_000,
        skew in 0u64..600,
        how in tamper_strategy(),
    ) {
        let signed_at = signing_time(at);
        let wire = req.sign(signed_at, None);
        let now = signed_at + Duration::from_secs(skew);
        let verified = verify(&wire, now);
        prop_assert!(verified.is_ok(), "{:?}: {:?}", verified.err(), wire);
        let verified = verified.unwrap();
        prop_assert_eq!(verified.location, AuthLocation::Header);
        prop_assert_eq!(verified.region.as_str(), req.region);
        let tampered = tamper(wire, how);
        prop_assert_eq!(verify(&tampered, now).err(), Some(AuthError::BadSignature), "{:?}", tampered);
    }

    #[test]
    fn presigned_requests_verify_for_their_lifetime_and_any_tampering_fails(
        req in req_strategy(),
        at in 0u64..10_000_000,
        expires in 1u64..=604_800,
        used_after in 0u64..=604_800,
        how in tamper_strategy(),
    ) {
        let signed_at = signing_time(at);
        let wire = req.sign(signed_at, Some(Duration::from_secs(expires)));
        let now = signed_at + Duration::from_secs(used_after.min(expires));
        let verified = verify(&wire, now);
        prop_assert!(verified.is_ok(), "{:?}: {:?}", verified.err(), wire);
        prop_assert_eq!(verified.unwrap().location, AuthLocation::Query);
        let late = signed_at + Duration::from_secs(expires + 1);
        prop_assert_eq!(verify(&wire, late).err(), Some(AuthError::Expired));
        let tampered = tamper(wire, how);
        prop_assert_eq!(verify(&tampered, now).err(), Some(AuthError::BadSignature), "{:?}", tampered);
    }

    #[test]
    fn parse_authorization_never_panics(s in "\\PC{0,300}") {
        let _ = parse_authorization(&s);
        let _ = parse_authorization(&format!("AWS4-HMAC-SHA256 {s}"));
    }

    #[test]
    fn parse_authorization_never_panics_on_near_valid_input(
        cred in "[A-Za-z0-9/_=,; -]{0,80}",
        signed in "[a-z;, =-]{0,40}",
        sig in "[0-9a-fA-F, =]{0,70}",
    ) {
        let v = format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={sig}");
        let _ = parse_authorization(&v);
    }

    #[test]
    fn parse_presigned_never_panics(s in "\\PC{0,300}") {
        let _ = parse_presigned(&s);
        let _ = parse_presigned(&format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&{s}"));
    }

    #[test]
    fn canonical_forms_never_panic(s in "\\PC{0,200}") {
        let _ = canonical_uri(&s);
        let _ = canonical_query(&s, true);
    }

    #[test]
    fn authenticate_never_panics_on_arbitrary_auth_input(
        header in proptest::option::of("[ -~]{0,200}"),
        query in "[ -~]{0,200}",
    ) {
        let query: String = query.chars().filter(|c| !matches!(c, ' ' | '#' | '"' | '<' | '>' | '`' | '{' | '}' | '|' | '\\' | '^')).collect();
        let mut b = http::Request::builder().uri(format!("/b/k?{query}")).header("host", HOST);
        if let Some(h) = &header {
            b = b.header("authorization", h.as_str());
        }
        if let Ok(req) = b.body(()) {
            let parts = req.into_parts().0;
            let now = OffsetDateTime::from(signing_time(0));
            let _ = authenticate(&parts, &creds(), &SigningKeyCache::new(), &AuthOptions::default(), now);
        }
    }
}

#[test]
fn the_signer_settings_produce_single_encoded_unnormalised_paths() {
    // Pins the premise of the properties above: aws-sigv4 under S3 settings signs the
    // path exactly as sent, so `a+b` (sent as `a%2Bb`) and `..` survive verification.
    let req = Req {
        method: "GET",
        bucket: "bucket".into(),
        key: "dir/../a+b c".into(),
        query: vec![("uploads".into(), None)],
        meta: vec![],
        region: "us-east-1",
        payload: Payload::Unsigned,
    };
    let wire = req.sign(signing_time(0), None);
    assert_eq!(wire.path, "/bucket/dir/../a%2Bb%20c");
    assert!(verify(&wire, signing_time(0)).is_ok());
}
