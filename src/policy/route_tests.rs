use super::*;

fn suffixes() -> Vec<String> {
    vec!["s3.example.com".into(), "example.com".into()]
}

/// (host, path, expected bucket, expected key)
type Case = (
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

fn ok(host: Option<&str>, path: &str) -> Route {
    route(host, path, &suffixes()).unwrap()
}

fn parts(r: &Route) -> (Option<&str>, Option<&str>, AddressingStyle) {
    (r.bucket.as_deref(), r.key.as_deref(), r.style)
}

#[test]
fn path_style_splits_first_segment_as_bucket_and_rest_as_key() {
    use AddressingStyle::Path;
    let cases: &[Case] = &[
        (Some("127.0.0.1:8090"), "/", None, None),
        (None, "/photos", Some("photos"), None),
        (Some("localhost"), "/photos/", Some("photos"), None),
        (
            Some("proxy.internal"),
            "/photos/a/b.jpg",
            Some("photos"),
            Some("a/b.jpg"),
        ),
        (
            Some("[::1]:8090"),
            "/photos//lead",
            Some("photos"),
            Some("/lead"),
        ),
        (
            Some("s3.example.com"),
            "/photos/k",
            Some("photos"),
            Some("k"),
        ),
        (None, "/photos/k?acl", Some("photos"), Some("k")),
    ];
    for (host, path, bucket, key) in cases {
        let r = ok(*host, path);
        assert_eq!(parts(&r), (*bucket, *key, Path), "{host:?} {path}");
    }
}

#[test]
fn virtual_host_takes_bucket_from_host_and_whole_path_as_key() {
    use AddressingStyle::VirtualHost;
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        ("photos.s3.example.com", "/", Some("photos"), None),
        (
            "Photos.S3.Example.com:8090",
            "/a/b",
            Some("photos"),
            Some("a/b"),
        ),
        ("my.logs.s3.example.com.", "/k", Some("my.logs"), Some("k")),
        // The longest suffix wins: not bucket `photos.s3`.
        (
            "photos.s3.example.com",
            "/other/k",
            Some("photos"),
            Some("other/k"),
        ),
        ("direct.example.com", "/k", Some("direct"), Some("k")),
    ];
    for (host, path, bucket, key) in cases {
        let r = ok(Some(host), path);
        assert_eq!(parts(&r), (*bucket, *key, VirtualHost), "{host} {path}");
    }
}

#[test]
fn virtual_host_bucket_is_never_confused_with_a_bucket_in_the_path() {
    let r = ok(Some("alpha.s3.example.com"), "/beta/secret.txt");
    assert_eq!(r.bucket.as_deref(), Some("alpha"));
    assert_eq!(r.key.as_deref(), Some("beta/secret.txt"));
}

#[test]
fn keys_are_percent_decoded_with_dot_segments_and_slashes_kept_literal() {
    let r = ok(None, "/bkt/a%2F..%2Fc%20d+e%3F");
    assert_eq!(r.key.as_deref(), Some("a/../c d+e?"));
    assert_eq!(ok(None, "/bkt/../x").key.as_deref(), Some("../x"));
    assert_eq!(ok(None, "/bkt/%E2%82%AC").key.as_deref(), Some("\u{20ac}"));
}

#[test]
fn bad_keys_are_refused() {
    let long = format!("/bkt/{}", "k".repeat(MAX_KEY_BYTES + 1));
    let long_encoded = format!("/bkt/{}", "%41".repeat(MAX_KEY_BYTES + 1));
    let max = format!("/bkt/{}", "k".repeat(MAX_KEY_BYTES));
    for path in [
        "/bkt/a%00b",
        "/bkt/%FF",
        "/bkt/%G0",
        long.as_str(),
        long_encoded.as_str(),
    ] {
        let err = route(None, path, &[]).unwrap_err();
        assert_eq!(err.code(), "InvalidArgument", "{path}");
    }
    assert!(route(None, &max, &[]).is_ok());
}

#[test]
fn bucket_names_follow_s3_rules_with_legacy_uppercase_and_underscore() {
    for good in ["abc", "my-bucket.logs", "Legacy_Bucket", &"a".repeat(63)] {
        assert!(validate_bucket(good).is_ok(), "{good}");
    }
    let long = "a".repeat(64);
    for bad in [
        "ab",
        "-abc",
        "abc-",
        "a..b",
        "a%62c",
        "a b",
        "...",
        ".abc",
        long.as_str(),
    ] {
        assert_eq!(
            validate_bucket(bad),
            Err(S3Error::InvalidBucketName),
            "{bad}"
        );
    }
    for path in ["/./k", "/../k", "/a%62c/k", "//k"] {
        assert_eq!(
            route(None, path, &[]),
            Err(S3Error::InvalidBucketName),
            "{path}"
        );
    }
    assert_eq!(
        route(Some("x_y.s3.example.com"), "/", &suffixes()).map(|r| r.bucket),
        Ok(Some("x_y".to_owned()))
    );
    assert_eq!(
        route(Some(".s3.example.com"), "/", &suffixes()),
        Err(S3Error::InvalidBucketName)
    );
}

#[test]
fn a_path_without_leading_slash_is_refused() {
    assert_eq!(route(None, "*", &[]).unwrap_err().code(), "InvalidRequest");
}

#[test]
fn outbound_path_uses_s3_canonical_encoding() {
    assert_eq!(encode_path(None, None), "/");
    assert_eq!(encode_path(None, Some("k")), "/");
    assert_eq!(encode_path(Some("bkt"), None), "/bkt");
    assert_eq!(encode_path(Some("bkt"), Some("")), "/bkt/");
    assert_eq!(
        encode_path(Some("bkt"), Some("a/b c+d=e&f")),
        "/bkt/a/b%20c%2Bd%3De%26f"
    );
    assert_eq!(
        encode_path(Some("bkt"), Some("../x/~._-")),
        "/bkt/../x/~._-"
    );
    assert_eq!(encode_path(Some("bkt"), Some("\u{e9}")), "/bkt/%C3%A9");
}

#[test]
fn decoding_then_encoding_round_trips_through_route() {
    for key in ["a b", "a+b", "dir/file?.txt", "\u{1f600}", "%41", "x//y"] {
        let path = encode_path(Some("bkt"), Some(key));
        let r = route(None, &path, &[]).unwrap();
        assert_eq!(r.key.as_deref(), Some(key), "{path}");
    }
}

#[test]
fn the_host_is_the_one_host_header_or_else_the_target_authority() {
    use http::Version;
    let plain: http::Uri = "/b/k".parse().unwrap();
    let absolute: http::Uri = "http://b.s3.example.com/k".parse().unwrap();
    let mut headers = http::HeaderMap::new();
    let refused = |r: Result<Option<&str>, S3Error>| {
        let e = r.unwrap_err();
        (e.status().as_u16(), e.code())
    };
    assert_eq!(
        refused(request_host(Version::HTTP_11, &headers, &absolute)),
        (400, "InvalidRequest"),
        "HTTP/1.1 needs a Host"
    );
    assert_eq!(request_host(Version::HTTP_10, &headers, &plain), Ok(None));
    assert_eq!(
        request_host(Version::HTTP_10, &headers, &absolute),
        Ok(Some("b.s3.example.com"))
    );
    assert_eq!(
        request_host(Version::HTTP_2, &headers, &absolute),
        Ok(Some("b.s3.example.com"))
    );
    headers.append(http::header::HOST, "a.s3.example.com".parse().unwrap());
    assert_eq!(
        request_host(Version::HTTP_11, &headers, &plain),
        Ok(Some("a.s3.example.com"))
    );
    headers.append(http::header::HOST, "b.s3.example.com".parse().unwrap());
    assert_eq!(
        refused(request_host(Version::HTTP_11, &headers, &plain)),
        (400, "InvalidRequest"),
        "two Host headers"
    );
}
