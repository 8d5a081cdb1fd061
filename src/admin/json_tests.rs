use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    access: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Outer {
    backend: String,
    #[serde(default)]
    scopes: Vec<Inner>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn field_of_error(body: &str) -> (String, String) {
    let e = decode::<Outer>(body.as_bytes()).expect_err("refused");
    assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
    (e.field.unwrap_or_default(), e.message)
}

#[test]
fn an_unknown_field_is_named() {
    let (field, message) = field_of_error(r#"{"backend":"b","colour":"red"}"#);
    assert_eq!(field, "colour");
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn an_unknown_field_inside_a_list_names_its_path() {
    let (field, _) = field_of_error(r#"{"backend":"b","scopes":[{"access":"x","oops":1}]}"#);
    assert_eq!(field, "scopes[0].oops");
}

#[test]
fn a_missing_field_is_named() {
    let (field, message) = field_of_error(r#"{"scopes":[]}"#);
    assert_eq!(field, "backend");
    assert!(message.contains("missing field `backend`"), "{message}");
    let (field, _) = field_of_error(r#"{"backend":"b","scopes":[{}]}"#);
    assert_eq!(field, "scopes[0].access");
}

#[test]
fn a_wrong_type_names_the_field_without_a_position() {
    let (field, message) = field_of_error(r#"{"backend":"b","enabled":"yes"}"#);
    assert_eq!(field, "enabled");
    assert!(!message.contains("line"), "{message}");
}

#[test]
fn malformed_json_is_a_body_error() {
    let e = decode::<Outer>(b"{\"backend\": ").expect_err("refused");
    assert_eq!(e.code, "invalid_json");
    assert_eq!(e.field.as_deref(), Some("body"));
    let e = decode::<Outer>(b"not json").expect_err("refused");
    assert_eq!(e.field.as_deref(), Some("body"));
}

fn json_headers(len: Option<usize>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    h
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_reading() {
    let h = json_headers(Some(MAX_JSON_BODY + 1));
    let e = read_json::<Outer, _>(&h, Full::new(Bytes::from_static(b"{}")))
        .await
        .expect_err("refused");
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn an_undeclared_oversized_body_is_cut_at_the_limit() {
    let big = Bytes::from(vec![b' '; MAX_JSON_BODY + 10]);
    let e = read_json::<Outer, _>(&json_headers(None), Full::new(big))
        .await
        .expect_err("refused");
    assert_eq!(
        (e.status, e.field.as_deref()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body"))
    );
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_refused() {
    let e = read_json::<Outer, _>(&HeaderMap::new(), Full::new(Bytes::from_static(b"{}")))
        .await
        .expect_err("refused");
    assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(e.field.as_deref(), Some("Content-Type"));
}

#[test]
fn query_pairs_decode_and_refuse_repeats_and_floods() {
    let p = query_pairs(Some("bucket=a+b&backend=pri%6Dary&x")).unwrap();
    assert_eq!(p[0], ("bucket".into(), "a b".into()));
    assert_eq!(p[1], ("backend".into(), "primary".into()));
    assert_eq!(p[2], ("x".into(), String::new()));
    let e = query_pairs(Some("a=1&a=2")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("a"));
    let flood: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
    assert!(query_pairs(Some(&flood.join("&"))).is_err());
}

#[test]
fn limits_are_range_checked() {
    assert_eq!(parse_limit(None, 100, 1000).unwrap(), 100);
    assert_eq!(parse_limit(Some("1000"), 100, 1000).unwrap(), 1000);
    for bad in ["0", "1001", "-1", "ten"] {
        let e = parse_limit(Some(bad), 100, 1000).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"), "{bad}");
    }
}

#[tokio::test]
async fn errors_render_the_documented_shape() {
    let r = ApiError::invalid("scopes[0].bucket", "bad bucket").into_response();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_input");
    assert_eq!(v["error"]["message"], "bad bucket");
    assert_eq!(v["error"]["field"], "scopes[0].bucket");
    let r = ApiError::unauthorized("no").into_response();
    assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
}
