//! One test per security invariant of `authenticate`.

use std::time::Duration;

use super::*;

#[test]
fn doc_get_object_example_authenticates_with_its_published_signature() {
    let mut parts = Spec::header().with("range", "bytes=0-9").parts();
    let value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    parts
        .headers
        .insert(http::header::AUTHORIZATION, value.parse().unwrap());
    let v = auth(&parts, NOW).unwrap();
    assert_eq!(v.location, AuthLocation::Header);
    assert_eq!(v.region, "us-east-1");
    assert_eq!(
        v.payload,
        PayloadMode::Sha256(hex_bytes(sigv4::EMPTY_SHA256))
    );
    assert!(v.chunk_context.is_none());
}

#[test]
fn doc_presigned_example_is_valid_for_its_24_hours_only() {
    let parts = Spec {
        uri: "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404".into(),
        ..Spec::get()
    }
    .parts();
    let v = auth(&parts, NOW + time::Duration::hours(23)).unwrap();
    assert_eq!(v.location, AuthLocation::Query);
    assert_eq!(v.payload, PayloadMode::Unsigned);
    assert_eq!(
        auth(&parts, NOW + time::Duration::seconds(86_401)).unwrap_err(),
        AuthError::Expired
    );
}

#[test]
fn header_auth_allows_skew_inside_the_window_and_rejects_beyond_it() {
    let parts = Spec::header().sign();
    assert!(auth(&parts, NOW + minutes(14)).is_ok());
    assert!(auth(&parts, NOW - minutes(14)).is_ok());
    assert_eq!(
        auth(&parts, NOW + minutes(16)).unwrap_err(),
        AuthError::Skewed
    );
    assert_eq!(
        auth(&parts, NOW - minutes(16)).unwrap_err(),
        AuthError::Skewed
    );
}

#[test]
fn header_auth_falls_back_to_the_date_header() {
    let parts = Spec::get()
        .with("x-amz-content-sha256", sigv4::EMPTY_SHA256)
        .with("date", "Fri, 24 May 2013 00:00:00 GMT")
        .sign();
    assert!(auth(&parts, NOW).is_ok());
    let undated = Spec::get()
        .with("x-amz-content-sha256", sigv4::EMPTY_SHA256)
        .sign();
    assert_eq!(auth(&undated, NOW).unwrap_err(), AuthError::MissingDate);
}

#[test]
fn a_seven_day_presigned_url_works_on_day_six_and_not_on_day_eight() {
    let parts = Spec::get().presign(7 * 24 * 3600);
    assert!(auth(&parts, NOW + time::Duration::days(6)).is_ok());
    assert!(auth(&parts, NOW + time::Duration::days(7)).is_ok());
    assert_eq!(
        auth(&parts, NOW + time::Duration::days(8)).unwrap_err(),
        AuthError::Expired
    );
}

#[test]
fn presigned_expiry_must_be_between_one_second_and_seven_days() {
    let max_secs = 604_800;
    for expires in [0, max_secs + 1] {
        let parts = Spec::get().presign(expires);
        assert_eq!(
            auth(&parts, NOW).unwrap_err(),
            AuthError::ExpiresOutOfRange { max_secs }
        );
    }
}

#[test]
fn presigned_url_dated_in_the_future_beyond_the_skew_is_rejected() {
    let parts = Spec::get().presign(3600);
    assert!(auth(&parts, NOW - minutes(14)).is_ok());
    assert_eq!(
        auth(&parts, NOW - minutes(16)).unwrap_err(),
        AuthError::Skewed
    );
}

#[test]
fn an_unsigned_x_amz_header_is_rejected_in_both_locations() {
    let mut header = Spec::header().sign();
    header
        .headers
        .insert("x-amz-acl", "public-read".parse().unwrap());
    assert_eq!(auth(&header, NOW).unwrap_err(), AuthError::UnsignedHeader);
    let mut query = Spec::get().presign(60);
    query
        .headers
        .insert("x-amz-copy-source", "other/key".parse().unwrap());
    assert_eq!(auth(&query, NOW).unwrap_err(), AuthError::UnsignedHeader);
}

#[test]
fn host_must_be_signed() {
    let spec = Spec {
        signed: Some(vec!["x-amz-content-sha256", "x-amz-date"]),
        ..Spec::header()
    };
    assert_eq!(
        auth(&spec.sign(), NOW).unwrap_err(),
        AuthError::UnsignedHeader
    );
    let spec = Spec {
        signed: Some(vec!["x-amz-date"]),
        ..Spec::get().with("x-amz-date", AMZ_DATE)
    };
    assert_eq!(
        auth(&spec.presign(60), NOW).unwrap_err(),
        AuthError::UnsignedHeader
    );
}

#[test]
fn a_signed_header_that_is_absent_fails_the_signature() {
    let spec = Spec {
        signed: Some(vec!["host", "range", "x-amz-content-sha256", "x-amz-date"]),
        ..Spec::header().with("range", "bytes=0-9")
    };
    let mut parts = spec.sign();
    parts.headers.remove("range");
    assert_eq!(auth(&parts, NOW).unwrap_err(), AuthError::BadSignature);
}

#[test]
fn the_scope_date_must_be_the_request_day() {
    let header = Spec {
        scope_date: "20130523",
        ..Spec::header()
    }
    .sign();
    assert_eq!(
        auth(&header, NOW).unwrap_err(),
        AuthError::ScopeDate(AuthLocation::Header)
    );
    let query = Spec {
        scope_date: "20130523",
        ..Spec::get()
    }
    .presign(60);
    assert_eq!(
        auth(&query, NOW).unwrap_err(),
        AuthError::ScopeDate(AuthLocation::Query)
    );
}

#[test]
fn the_service_must_be_s3_but_any_region_is_accepted() {
    let parts = Spec {
        service: "iam",
        ..Spec::header()
    }
    .sign();
    assert!(matches!(
        auth(&parts, NOW),
        Err(AuthError::MalformedHeader(_))
    ));
    let parts = Spec {
        region: "auto",
        ..Spec::header()
    }
    .sign();
    assert_eq!(auth(&parts, NOW).unwrap().region, "auto");
    let parts = Spec {
        region: "garage",
        ..Spec::get()
    }
    .presign(60);
    assert_eq!(auth(&parts, NOW).unwrap().region, "garage");
}

#[test]
fn sigv4a_is_not_implemented_in_either_location() {
    let mut parts = Spec::header().parts();
    let v4a = "AWS4-ECDSA-P256-SHA256 Credential=AK/20130524/s3/aws4_request, SignedHeaders=host, Signature=30";
    parts
        .headers
        .insert(http::header::AUTHORIZATION, v4a.parse().unwrap());
    assert_eq!(auth(&parts, NOW).unwrap_err(), AuthError::SigV4A);
    let query = Spec {
        uri: "/k?X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&X-Amz-Credential=AK%2F20130524%2Fs3%2Faws4_request".into(),
        ..Spec::get()
    };
    assert_eq!(auth(&query.parts(), NOW).unwrap_err(), AuthError::SigV4A);
    let streaming = streaming("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
        .with("x-amz-decoded-content-length", "5");
    assert!(matches!(
        auth(&streaming.sign(), NOW),
        Err(AuthError::Unsupported(_))
    ));
}

#[test]
fn sigv2_is_refused_in_either_location() {
    let mut parts = Spec::get().parts();
    parts.headers.insert(
        http::header::AUTHORIZATION,
        "AWS AKID:c2ln".parse().unwrap(),
    );
    assert_eq!(auth(&parts, NOW).unwrap_err(), AuthError::SigV2);
    let query = Spec {
        uri: "/k?AWSAccessKeyId=AKID&Expires=1369353600&Signature=c2ln".into(),
        ..Spec::get()
    };
    assert_eq!(auth(&query.parts(), NOW).unwrap_err(), AuthError::SigV2);
}

#[test]
fn header_and_query_credentials_together_are_ambiguous() {
    let presigned = Spec::get().presign(60);
    let mut both = presigned.clone();
    let header = Spec::header().sign();
    both.headers.insert(
        http::header::AUTHORIZATION,
        header.headers[http::header::AUTHORIZATION].clone(),
    );
    assert_eq!(auth(&both, NOW).unwrap_err(), AuthError::Ambiguous);
}

#[test]
fn no_credentials_at_all_is_missing_authentication() {
    assert_eq!(
        auth(&Spec::header().parts(), NOW).unwrap_err(),
        AuthError::Missing
    );
}

#[test]
fn an_unknown_access_key_is_rejected() {
    let empty = Creds(HashMap::new());
    assert_eq!(
        auth_with(&Spec::header().sign(), &empty, NOW).unwrap_err(),
        AuthError::UnknownKey
    );
    assert_eq!(
        auth_with(&Spec::get().presign(60), &empty, NOW).unwrap_err(),
        AuthError::UnknownKey
    );
}

#[test]
fn disabled_and_expired_credentials_are_rejected() {
    let parts = Spec::header().sign();
    let disabled = creds_with(credential(false, None));
    assert_eq!(
        auth_with(&parts, &disabled, NOW).unwrap_err(),
        AuthError::Disabled
    );
    let expired = creds_with(credential(true, Some(NOW - minutes(1))));
    assert_eq!(
        auth_with(&parts, &expired, NOW).unwrap_err(),
        AuthError::CredentialExpired
    );
    let later = creds_with(credential(true, Some(NOW + minutes(1))));
    assert!(auth_with(&parts, &later, NOW).is_ok());
}

#[test]
fn a_wrong_secret_fails_in_both_locations() {
    let header = Spec {
        secret: "not-the-secret",
        ..Spec::header()
    }
    .sign();
    assert_eq!(auth(&header, NOW).unwrap_err(), AuthError::BadSignature);
    let query = Spec {
        secret: "not-the-secret",
        ..Spec::get()
    }
    .presign(60);
    assert_eq!(auth(&query, NOW).unwrap_err(), AuthError::BadSignature);
}

#[test]
fn only_verified_keys_enter_the_cache() {
    let keys = SigningKeyCache::new();
    let opts = AuthOptions::default();
    let bad = Spec {
        secret: "wrong",
        ..Spec::header()
    }
    .sign();
    assert!(authenticate(&bad, &creds(), &keys, &opts, NOW).is_err());
    assert!(keys.is_empty());
    let good = Spec::header().sign();
    assert!(authenticate(&good, &creds(), &keys, &opts, NOW).is_ok());
    assert_eq!(keys.len(), 1);
    assert!(authenticate(&good, &creds(), &keys, &opts, NOW).is_ok());
}

#[test]
fn host_comes_from_the_authority_when_the_header_is_absent() {
    let spec = Spec {
        uri: format!("http://{HOST}/test.txt"),
        ..Spec::header()
    };
    let signed = spec.sign();
    let mut h2 = signed.clone();
    h2.headers.remove(http::header::HOST);
    assert!(auth(&h2, NOW).is_ok());
}

#[test]
fn a_custom_skew_window_is_honoured() {
    let opts = AuthOptions {
        max_skew: Duration::from_secs(60),
        ..AuthOptions::default()
    };
    let parts = Spec::header().sign();
    let run = |now| authenticate(&parts, &creds(), &SigningKeyCache::new(), &opts, now);
    assert!(run(NOW + minutes(1)).is_ok());
    assert_eq!(run(NOW + minutes(2)).unwrap_err(), AuthError::Skewed);
}

#[test]
fn changing_any_signed_component_fails_the_signature() {
    let spec = || Spec {
        uri: "/test.txt?prefix=a".into(),
        ..Spec::header().with("x-amz-meta-k", "v")
    };
    let good = spec().sign();
    assert!(auth(&good, NOW).is_ok());
    let mut method = good.clone();
    method.method = http::Method::PUT;
    let mut path = good.clone();
    path.uri = "/test.txx?prefix=a".parse().unwrap();
    let mut query = good.clone();
    query.uri = "/test.txt?prefix=b".parse().unwrap();
    let mut header = good.clone();
    header.headers.insert("x-amz-meta-k", "w".parse().unwrap());
    for tampered in [method, path, query, header] {
        assert_eq!(auth(&tampered, NOW).unwrap_err(), AuthError::BadSignature);
    }
}
