//! AWS's SigV4 signing test suite (awslabs/aws-c-auth, Apache-2.0), read in place from
//! `../shared/testdata/aws-signing-test-suite/v4` beside the crate root and never
//! copied into this repository. One `#[test]` per vector, checking the canonical
//! request, string to sign and signature of both the header-signed and the
//! query-signed form, computed from the signed request text with our parsers and
//! spec functions.
//!
//! The suite targets AWS services in general; S3 encodes the path once and never
//! normalises it. Every case in the directory is either run here or listed in
//! [`EXCLUDED`] with the reason, and a test keeps that list honest.

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use stowage::auth::parse::{parse_authorization, parse_presigned};
use stowage::auth::sigv4::{
    canonical_headers, canonical_query, canonical_request, canonical_uri, derive_signing_key,
    sha256_hex, signature, string_to_sign,
};
use stowage::secret::SecretKey;

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/aws-signing-test-suite/v4"
);

/// Cases whose expected canonical request differs from S3's rules, or that an HTTP/1.1
/// server could never receive.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "get-header-value-multiline",
        "obs-fold header continuation lines: hyper rejects them and http::HeaderValue cannot hold a line break",
    ),
    (
        "get-relative-normalized",
        "expects RFC 3986 dot-segment removal; S3 never normalises paths",
    ),
    (
        "get-relative-relative-normalized",
        "expects dot-segment removal; S3 never normalises paths",
    ),
    (
        "get-slash-dot-slash-normalized",
        "expects `/./` removal; S3 never normalises paths",
    ),
    (
        "get-slash-normalized",
        "expects `//` merging; S3 keys may contain empty segments",
    ),
    (
        "get-slash-pointless-dot-normalized",
        "expects `/./` removal; S3 never normalises paths",
    ),
    (
        "get-slashes-normalized",
        "expects `//` merging; S3 keys may contain empty segments",
    ),
];

/// Cases run for the header form only.
const QUERY_FORM_EXCLUDED: &[(&str, &str)] = &[(
    "post-sts-header-after",
    "adds X-Amz-Security-Token to the query after signing; S3 presigned URLs sign it",
)];

macro_rules! vectors {
    ($($test:ident => $case:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_case($case);
            }
        )*
        const COVERED: &[&str] = &[$($case),*];
    };
}

vectors! {
    get_header_key_duplicate => "get-header-key-duplicate",
    get_header_value_order => "get-header-value-order",
    get_header_value_trim => "get-header-value-trim",
    get_relative_relative_unnormalized => "get-relative-relative-unnormalized",
    get_relative_unnormalized => "get-relative-unnormalized",
    get_slash_dot_slash_unnormalized => "get-slash-dot-slash-unnormalized",
    get_slash_pointless_dot_unnormalized => "get-slash-pointless-dot-unnormalized",
    get_slash_unnormalized => "get-slash-unnormalized",
    get_slashes_unnormalized => "get-slashes-unnormalized",
    get_space_normalized => "get-space-normalized",
    get_space_unnormalized => "get-space-unnormalized",
    get_unreserved => "get-unreserved",
    get_utf8 => "get-utf8",
    get_vanilla => "get-vanilla",
    get_vanilla_empty_query_key => "get-vanilla-empty-query-key",
    get_vanilla_query => "get-vanilla-query",
    get_vanilla_query_order_encoded => "get-vanilla-query-order-encoded",
    get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
    get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
    get_vanilla_utf8_query => "get-vanilla-utf8-query",
    get_vanilla_with_session_token => "get-vanilla-with-session-token",
    post_header_key_case => "post-header-key-case",
    post_header_key_sort => "post-header-key-sort",
    post_header_value_case => "post-header-value-case",
    post_sts_header_after => "post-sts-header-after",
    post_sts_header_before => "post-sts-header-before",
    post_vanilla => "post-vanilla",
    post_vanilla_empty_query_value => "post-vanilla-empty-query-value",
    post_vanilla_query => "post-vanilla-query",
    post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
    post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
}

fn suite_dir() -> PathBuf {
    let dir = PathBuf::from(SUITE);
    assert!(
        dir.is_dir(),
        "the AWS SigV4 test suite is missing: expected it at {SUITE} \
         (awslabs/aws-c-auth tests/aws-signing-test-suite/v4, checked out beside this crate)"
    );
    dir
}

fn read(case: &Path, file: &str) -> String {
    let path = case.join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A raw HTTP/1.1 request as the suite writes it (the target may hold spaces and
/// raw UTF-8, as S3 clients would have encoded them).
struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn parse_request(text: &str) -> RawRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("a request line");
    let (method, rest) = request_line.split_once(' ').expect("method and target");
    let target = rest
        .strip_suffix(" HTTP/1.1")
        .expect("an HTTP/1.1 request line");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        assert!(!line.starts_with([' ', '\t']), "obs-fold line in {line:?}");
        let (name, value) = line.split_once(':').expect("Name:value header");
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    RawRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// The payload hash the suite signs: the `x-amz-content-sha256` header when the case
/// signs the body, else the hash of the (usually empty) body.
fn payload_hash(req: &RawRequest) -> String {
    match req.headers.get("x-amz-content-sha256") {
        Some(v) => v.to_str().unwrap().to_owned(),
        None => sha256_hex(&req.body),
    }
}

struct Context {
    secret: SecretKey,
    access_key_id: String,
}

fn context(case: &Path) -> Context {
    let json: serde_json::Value = serde_json::from_str(&read(case, "context.json")).unwrap();
    let creds = &json["credentials"];
    Context {
        secret: SecretKey::new(creds["secret_access_key"].as_str().unwrap()),
        access_key_id: creds["access_key_id"].as_str().unwrap().to_owned(),
    }
}

fn check_case(name: &str) {
    let case = suite_dir().join(name);
    assert!(case.is_dir(), "suite case {name} is missing");
    let ctx = context(&case);
    check_header_form(&case, &ctx);
    if !QUERY_FORM_EXCLUDED.iter().any(|(n, _)| *n == name) {
        check_query_form(&case, &ctx);
    }
}

fn check_header_form(case: &Path, ctx: &Context) {
    let mut req = parse_request(&read(case, "header-signed-request.txt"));
    let value = req
        .headers
        .remove(http::header::AUTHORIZATION)
        .expect("Authorization");
    let auth = parse_authorization(value.to_str().unwrap()).expect("parsable Authorization");
    assert_eq!(auth.credential.access_key_id, ctx.access_key_id);
    let block = canonical_headers(&req.headers, &auth.signed_headers, None).expect("headers");
    let creq = canonical_request(
        &req.method,
        &canonical_uri(&req.path),
        &canonical_query(&req.query, false),
        &block,
        &auth.signed_headers.join(";"),
        &payload_hash(&req),
    );
    assert_eq!(
        creq,
        read(case, "header-canonical-request.txt"),
        "header canonical request"
    );
    let amz_date = req.headers["x-amz-date"].to_str().unwrap();
    let c = &auth.credential;
    let sts = string_to_sign(amz_date, &c.scope(), &creq);
    assert_eq!(
        sts,
        read(case, "header-string-to-sign.txt"),
        "header string to sign"
    );
    let key = derive_signing_key(&ctx.secret, &c.date, &c.region, &c.service);
    let sig = signature(&key, &sts);
    assert_eq!(
        sig,
        read(case, "header-signature.txt").trim(),
        "header signature"
    );
    assert_eq!(sig, auth.signature);
}

fn check_query_form(case: &Path, ctx: &Context) {
    let req = parse_request(&read(case, "query-signed-request.txt"));
    let params = parse_presigned(&req.query)
        .expect("presign params")
        .expect("query auth");
    assert_eq!(params.credential.access_key_id, ctx.access_key_id);
    let block = canonical_headers(&req.headers, &params.signed_headers, None).expect("headers");
    let creq = canonical_request(
        &req.method,
        &canonical_uri(&req.path),
        &canonical_query(&req.query, true),
        &block,
        &params.signed_headers.join(";"),
        &payload_hash(&req),
    );
    assert_eq!(
        creq,
        read(case, "query-canonical-request.txt"),
        "query canonical request"
    );
    let c = &params.credential;
    let sts = string_to_sign(&params.amz_date, &c.scope(), &creq);
    assert_eq!(
        sts,
        read(case, "query-string-to-sign.txt"),
        "query string to sign"
    );
    let key = derive_signing_key(&ctx.secret, &c.date, &c.region, &c.service);
    let sig = signature(&key, &sts);
    assert_eq!(
        sig,
        read(case, "query-signature.txt").trim(),
        "query signature"
    );
    assert_eq!(sig, params.signature);
}

#[test]
fn every_suite_case_is_run_or_excluded_with_a_reason() {
    let mut on_disk: Vec<String> = std::fs::read_dir(suite_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    for name in &on_disk {
        let covered = COVERED.contains(&name.as_str());
        let excluded = EXCLUDED.iter().any(|(n, _)| n == name);
        assert!(
            covered ^ excluded,
            "{name}: must be either run or excluded, exactly once"
        );
    }
    let listed = COVERED
        .iter()
        .copied()
        .chain(EXCLUDED.iter().map(|(n, _)| *n));
    let listed = listed.chain(QUERY_FORM_EXCLUDED.iter().map(|(n, _)| *n));
    for name in listed {
        assert!(
            on_disk.iter().any(|n| n == name),
            "{name} is listed but not in the suite"
        );
    }
}
