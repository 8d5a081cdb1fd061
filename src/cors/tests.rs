use super::*;

fn config(json: &str) -> CorsConfiguration {
    CorsConfiguration::from_json(json).expect("valid")
}

const APP: &str = r#"{"CORSRules":[
  {"AllowedOrigins":["https://app.example.com"],"AllowedMethods":["GET","PUT","POST"],
   "AllowedHeaders":["content-type","x-amz-*"],"ExposeHeaders":["x-amz-meta-owner"],"MaxAgeSeconds":600},
  {"AllowedOrigins":["https://*.cdn.example.com"],"AllowedMethods":["GET"]}
]}"#;

#[test]
fn the_first_rule_matching_origin_method_and_every_header_wins() {
    let c = config(APP);
    let hdrs = vec!["content-type".to_owned(), "x-amz-date".to_owned()];
    assert!(
        c.matching("https://app.example.com", "PUT", &hdrs)
            .is_some()
    );
    assert!(
        c.matching("https://app.example.com", "DELETE", &[])
            .is_none()
    );
    assert!(c.matching("https://evil.example.com", "GET", &[]).is_none());
    assert!(
        c.matching(
            "https://app.example.com",
            "PUT",
            &["authorization".to_owned()]
        )
        .is_none(),
        "a header no rule allows"
    );
    let cdn = c
        .matching("https://img.cdn.example.com", "GET", &[])
        .expect("wildcard");
    assert_eq!(cdn.allowed_methods, vec!["GET"]);
    assert!(
        c.matching("https://cdn.example.com.evil.org", "GET", &[])
            .is_none()
    );
}

#[test]
fn actual_responses_expose_what_sdks_need_and_vary_on_origin() {
    let c = config(APP);
    let rule = c.matching("https://app.example.com", "GET", &[]).unwrap();
    let mut h = HeaderMap::new();
    apply(&mut h, rule, "https://app.example.com", None);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let expose = h["access-control-expose-headers"].to_str().unwrap();
    assert!(
        expose.contains("etag") && expose.contains("x-amz-meta-owner"),
        "{expose}"
    );
    assert_eq!(h["vary"], "Origin");
    assert!(h.get("access-control-max-age").is_none());
}

#[test]
fn preflights_answer_methods_headers_and_max_age() {
    let c = config(APP);
    let req = vec!["content-type".to_owned()];
    let rule = c.matching("https://app.example.com", "PUT", &req).unwrap();
    let mut h = HeaderMap::new();
    apply(&mut h, rule, "https://app.example.com", Some(&req));
    assert_eq!(h["access-control-allow-methods"], "GET, PUT, POST");
    assert_eq!(h["access-control-allow-headers"], "content-type");
    assert_eq!(h["access-control-max-age"], "600");
}

#[test]
fn an_any_origin_rule_answers_star_without_credentials() {
    let c = config(r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"]}]}"#);
    let mut h = HeaderMap::new();
    apply(&mut h, &c.rules[0], "https://x.org", None);
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h.get("access-control-allow-credentials").is_none());
}

#[test]
fn invalid_configurations_name_the_field() {
    for (json, field) in [
        (r#"{"CORSRules":[]}"#, "CORSRules"),
        (
            r#"{"CORSRules":[{"AllowedOrigins":[],"AllowedMethods":["GET"]}]}"#,
            "CORSRules[0].AllowedOrigins",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["PATCH"]}]}"#,
            "CORSRules[0].AllowedMethods",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["https://*.*.x"],"AllowedMethods":["GET"]}]}"#,
            "CORSRules[0].AllowedOrigins",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"],"AllowedHeaders":["a*b"]}]}"#,
            "CORSRules[0].AllowedHeaders",
        ),
        (
            r#"{"CORSRules":[{"AllowedOrigins":["*"],"AllowedMethods":["GET"],"Bogus":1}]}"#,
            "CORSRules",
        ),
    ] {
        assert_eq!(
            CorsConfiguration::from_json(json).unwrap_err().field,
            field,
            "{json}"
        );
    }
}

#[test]
fn upstream_cors_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("etag", HeaderValue::from_static("\"x\""));
    strip_upstream(&mut h);
    assert!(h.get("access-control-allow-origin").is_none());
    assert!(h.get("etag").is_some());
}
