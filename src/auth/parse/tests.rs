use time::macros::datetime;

use super::*;
use crate::error::S3Error;

const SIG: &str = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";

fn header(rest: &str) -> String {
    format!("AWS4-HMAC-SHA256 {rest}")
}

#[test]
fn authorization_header_parses_the_standard_form() {
    let h = parse_authorization(&header(&format!(
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIG}"
    )))
    .unwrap();
    assert_eq!(h.credential.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(h.credential.date, "20130524");
    assert_eq!(h.credential.region, "us-east-1");
    assert_eq!(h.credential.service, "s3");
    assert_eq!(h.credential.scope(), "20130524/us-east-1/s3/aws4_request");
    assert_eq!(h.signed_headers, ["host", "x-amz-date"]);
    assert_eq!(h.signature, SIG);
}

#[test]
fn authorization_header_tolerates_extra_spaces_and_commas() {
    let v = header(&format!(
        "  Credential=AK/20130524/auto/s3/aws4_request,,SignedHeaders=host ,  Signature={SIG}  "
    ));
    assert_eq!(parse_authorization(&v).unwrap().credential.region, "auto");
    let no_commas = header(&format!(
        "Credential=AK/20130524/auto/s3/aws4_request SignedHeaders=host Signature={SIG}"
    ));
    assert!(parse_authorization(&no_commas).is_ok());
    let comma_first = format!(
        "AWS4-HMAC-SHA256,Credential=AK/20130524/auto/s3/aws4_request,SignedHeaders=host,Signature={SIG}"
    );
    assert!(parse_authorization(&comma_first).is_ok());
}

#[test]
fn authorization_header_rejects_repeated_or_unknown_components() {
    let twice = header(&format!(
        "Credential=AK/20130524/r/s3/aws4_request, Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host, Signature={SIG}"
    ));
    assert!(matches!(
        parse_authorization(&twice),
        Err(AuthError::MalformedHeader(_))
    ));
    let unknown = header(&format!(
        "Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host, Signature={SIG}, Extra=1"
    ));
    assert!(matches!(
        parse_authorization(&unknown),
        Err(AuthError::MalformedHeader(_))
    ));
}

#[test]
fn authorization_header_requires_every_component() {
    let v = header("Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host");
    assert!(matches!(
        parse_authorization(&v),
        Err(AuthError::MalformedHeader(_))
    ));
    assert!(matches!(
        parse_authorization("AWS4-HMAC-SHA256"),
        Err(AuthError::MalformedHeader(_))
    ));
}

#[test]
fn authorization_header_checks_the_signature_shape() {
    let v = header("Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host, Signature=ABC");
    assert!(matches!(
        parse_authorization(&v),
        Err(AuthError::MalformedHeader(_))
    ));
}

#[test]
fn authorization_header_recognises_sigv2_and_sigv4a() {
    assert_eq!(
        parse_authorization("AWS AKIDEXAMPLE:c2lnbmF0dXJl"),
        Err(AuthError::SigV2)
    );
    let v4a = "AWS4-ECDSA-P256-SHA256 Credential=AK/20130524/s3/aws4_request, SignedHeaders=host;x-amz-region-set, Signature=3045";
    assert_eq!(parse_authorization(v4a), Err(AuthError::SigV4A));
    assert_eq!(
        parse_authorization("Bearer x"),
        Err(AuthError::InvalidArgument("Unsupported Authorization Type"))
    );
}

#[test]
fn authorization_header_length_is_bounded() {
    let long = header(&"x".repeat(MAX_AUTHORIZATION_LEN));
    assert!(matches!(
        parse_authorization(&long),
        Err(AuthError::MalformedHeader(_))
    ));
}

#[test]
fn credential_scope_needs_five_valid_parts() {
    let q = AuthLocation::Query;
    assert!(parse_credential_scope("AK/20130524/us-east-1/s3/aws4_request", q).is_ok());
    for bad in [
        "AK/20130524/us-east-1/s3",
        "AK/20130524/us-east-1/s3/aws4_request/x",
        "AK/2013052/us-east-1/s3/aws4_request",
        "AK/2013052x/us-east-1/s3/aws4_request",
        "AK/20130524/us east/s3/aws4_request",
        "AK/20130524/us-east-1/s3/aws5_request",
        "/20130524/us-east-1/s3/aws4_request",
        "AK/20130524//s3/aws4_request",
    ] {
        assert!(
            matches!(
                parse_credential_scope(bad, q),
                Err(AuthError::MalformedQuery(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn signed_headers_must_be_lowercase_unique_and_bounded() {
    let h = AuthLocation::Header;
    assert_eq!(
        parse_signed_headers("host;x-amz-date", h).unwrap(),
        ["host", "x-amz-date"]
    );
    for bad in ["Host", "host;;x", "host;host", "", "ho st"] {
        assert!(parse_signed_headers(bad, h).is_err(), "{bad}");
    }
    let many = (0..=MAX_SIGNED_HEADERS)
        .map(|i| format!("h{i}"))
        .collect::<Vec<_>>()
        .join(";");
    assert!(parse_signed_headers(&many, h).is_err());
}

#[test]
fn amz_date_and_http_date_parse_to_utc() {
    assert_eq!(
        parse_amz_date("20130524T000000Z").unwrap(),
        datetime!(2013-05-24 0:00 UTC)
    );
    assert_eq!(
        parse_http_date("Fri, 24 May 2013 00:00:00 GMT").unwrap(),
        datetime!(2013-05-24 0:00 UTC)
    );
    for bad in [
        "20130524T000000",
        "20131324T000000Z",
        "2013-05-24T00:00:00Z",
        "",
    ] {
        assert_eq!(parse_amz_date(bad), Err(AuthError::MissingDate), "{bad}");
    }
    assert_eq!(
        format_amz_date(datetime!(2013-05-24 1:02:03 UTC)),
        "20130524T010203Z"
    );
}

const PRESIGN: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn presigned_query_parses_the_documented_example() {
    let p = parse_presigned(PRESIGN).unwrap().unwrap();
    assert_eq!(p.credential.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(p.amz_date, "20130524T000000Z");
    assert_eq!(p.expires_secs, 86400);
    assert_eq!(p.signed_headers, ["host"]);
    assert_eq!(p.security_token, None);
}

#[test]
fn presigned_query_absent_is_none() {
    assert_eq!(parse_presigned("").unwrap(), None);
    assert_eq!(parse_presigned("uploads&prefix=a").unwrap(), None);
}

#[test]
fn presigned_query_requires_every_parameter() {
    let without_expires = PRESIGN.replace("&X-Amz-Expires=86400", "");
    assert!(matches!(
        parse_presigned(&without_expires),
        Err(AuthError::MalformedQuery(_))
    ));
    let bad_expires = PRESIGN.replace("86400", "-1");
    assert!(matches!(
        parse_presigned(&bad_expires),
        Err(AuthError::MalformedQuery(_))
    ));
    let repeated = format!("{PRESIGN}&X-Amz-Date=20130524T000000Z");
    assert!(matches!(
        parse_presigned(&repeated),
        Err(AuthError::MalformedQuery(_))
    ));
}

#[test]
fn presigned_query_recognises_sigv2_and_sigv4a() {
    assert_eq!(
        parse_presigned("AWSAccessKeyId=AK&Expires=1&Signature=abc"),
        Err(AuthError::SigV2)
    );
    let v4a = PRESIGN.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
    assert_eq!(parse_presigned(&v4a), Err(AuthError::SigV4A));
}

#[test]
fn debug_output_hides_signatures_and_tokens() {
    let p = parse_presigned(&format!("{PRESIGN}&X-Amz-Security-Token=tok3n"))
        .unwrap()
        .unwrap();
    let text = format!("{p:?}");
    assert!(!text.contains("aeeed9bb"), "{text}");
    assert!(!text.contains("tok3n"), "{text}");
    let h = parse_authorization(&header(&format!(
        "Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host, Signature={SIG}"
    )))
    .unwrap();
    assert!(!format!("{h:?}").contains(SIG));
}

#[test]
fn every_error_maps_to_an_s3_error_with_a_bounded_reason() {
    let cases = [
        (AuthError::Missing, "MissingAuthenticationToken", "missing"),
        (AuthError::Ambiguous, "InvalidArgument", "malformed"),
        (
            AuthError::ScopeDate(AuthLocation::Header),
            "AuthorizationHeaderMalformed",
            "scope_date",
        ),
        (
            AuthError::ScopeDate(AuthLocation::Query),
            "AuthorizationQueryParametersError",
            "scope_date",
        ),
        (
            AuthError::ExpiresOutOfRange { max_secs: 604_800 },
            "AuthorizationQueryParametersError",
            "malformed",
        ),
        (AuthError::Skewed, "RequestTimeTooSkewed", "skewed"),
        (AuthError::Expired, "AccessDenied", "expired"),
        (AuthError::UnknownKey, "InvalidAccessKeyId", "unknown_key"),
        (AuthError::Disabled, "InvalidAccessKeyId", "disabled"),
        (
            AuthError::CredentialExpired,
            "InvalidAccessKeyId",
            "credential_expired",
        ),
        (
            AuthError::BadSignature,
            "SignatureDoesNotMatch",
            "bad_signature",
        ),
        (AuthError::UnsignedHeader, "AccessDenied", "unsigned_header"),
        (AuthError::SigV4A, "NotImplemented", "unsupported"),
        (AuthError::SigV2, "AccessDenied", "unsupported"),
        (AuthError::MissingDate, "AccessDenied", "malformed"),
    ];
    for (err, code, reason) in cases {
        assert_eq!(err.reason(), reason, "{err:?}");
        assert_eq!(S3Error::from(err.clone()).code(), code, "{err:?}");
    }
    let msg = S3Error::from(AuthError::SigV4A).message();
    assert!(msg.contains("SigV4A") && msg.contains("sign with SigV4"));
    let msg = S3Error::from(AuthError::SigV2).message();
    assert_eq!(msg, "Signature Version 2 is not supported; sign with SigV4");
    let msg = S3Error::from(AuthError::ExpiresOutOfRange { max_secs: 604_800 }).message();
    assert!(msg.contains("604800"));
}

proptest::proptest! {
    #[test]
    fn format_amz_date_writes_what_the_format_macro_would(secs in 0i64..253_402_300_799) {
        let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let want = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        proptest::prop_assert_eq!(format_amz_date(t), want);
    }
}
