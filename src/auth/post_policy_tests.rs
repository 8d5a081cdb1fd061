use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::credentials::{Access, Credential, CredentialSource, Scope};
use crate::secret::SecretKey;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);
const DATE: &str = "20261201T115500Z";
const CRED: &str = "AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request";

struct Creds(HashMap<String, Arc<Credential>>);

impl CredentialLookup for Creds {
    fn lookup(&self, ak: &str) -> Option<Arc<Credential>> {
        self.0.get(ak).cloned()
    }
}

fn creds(enabled: bool) -> Creds {
    let c = Credential {
        access_key_id: AK.into(),
        secret: SecretKey::new(SECRET),
        backend: "b".into(),
        scopes: vec![Scope {
            bucket: "photos".into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at: None,
        enabled,
        source: CredentialSource::Sqlite,
        description: String::new(),
    };
    Creds(HashMap::from([(AK.to_owned(), Arc::new(c))]))
}

fn b64(json: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn policy_json(extra: &str) -> String {
    format!(
        r#"{{"expiration":"2026-12-01T13:00:00.000Z","conditions":[{{"bucket":"photos"}},["starts-with","$key","user/"],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{CRED}"}},{{"x-amz-date":"{DATE}"}},["content-length-range",1,1024]{extra}]}}"#
    )
}

fn sign(policy_b64: &str, secret: &str) -> String {
    let key = sigv4::derive_signing_key(&SecretKey::new(secret), "20261201", "us-east-1", "s3");
    sigv4::signature(&key, policy_b64)
}

/// A complete, valid form for `policy` signed with `secret`.
fn form(policy: &str, secret: &str) -> FormFields {
    let p = b64(policy);
    let mut f = FormFields::default();
    f.push("key", "user/${filename}".into()).unwrap();
    f.push("X-Amz-Algorithm", "AWS4-HMAC-SHA256".into())
        .unwrap();
    f.push("X-Amz-Credential", CRED.into()).unwrap();
    f.push("X-Amz-Date", DATE.into()).unwrap();
    f.push("X-Amz-Signature", sign(&p, secret)).unwrap();
    f.push("Policy", p).unwrap();
    f
}

fn verify(f: &FormFields, c: &Creds) -> Result<VerifiedForm, AuthError> {
    verify_form(
        f,
        c,
        &SigningKeyCache::default(),
        &AuthOptions::default(),
        NOW,
    )
}

#[test]
fn a_signed_form_verifies_and_its_policy_admits_the_upload() {
    let f = form(&policy_json(""), SECRET);
    let v = verify(&f, &creds(true)).expect("verifies");
    assert_eq!(v.request.location, AuthLocation::Form);
    assert_eq!(v.request.credential.access_key_id, AK);
    assert_eq!(v.request.region, "us-east-1");
    v.policy.check(&f, "photos", 10, NOW).expect("admitted");
}

#[test]
fn a_wrong_secret_unknown_or_disabled_key_is_refused() {
    let f = form(&policy_json(""), "not-the-secret");
    assert_eq!(
        verify(&f, &creds(true)).unwrap_err(),
        AuthError::BadSignature
    );
    let f = form(&policy_json(""), SECRET);
    assert_eq!(verify(&f, &creds(false)).unwrap_err(), AuthError::Disabled);
    assert_eq!(
        verify(&f, &Creds(HashMap::new())).unwrap_err(),
        AuthError::UnknownKey
    );
}

#[test]
fn a_policy_edited_after_signing_fails_the_signature() {
    let mut f = form(&policy_json(""), SECRET);
    let signature = f.get("x-amz-signature").unwrap().to_owned();
    let mut g = FormFields::default();
    for (n, v) in f.iter() {
        match n {
            "policy" => g
                .push(n, b64(&policy_json(r#",["starts-with","$acl",""]"#)))
                .unwrap(),
            "x-amz-signature" => g.push(n, signature.clone()).unwrap(),
            _ => g.push(n, v.to_owned()).unwrap(),
        }
    }
    f = g;
    assert_eq!(
        verify(&f, &creds(true)).unwrap_err(),
        AuthError::BadSignature
    );
}

#[test]
fn sigv2_and_sigv4a_forms_are_refused_clearly() {
    let mut f = FormFields::default();
    f.push("AWSAccessKeyId", AK.into()).unwrap();
    f.push("signature", "x".into()).unwrap();
    assert_eq!(verify(&f, &creds(true)).unwrap_err(), AuthError::SigV2);
    let mut f = FormFields::default();
    f.push("x-amz-algorithm", "AWS4-ECDSA-P256-SHA256".into())
        .unwrap();
    assert_eq!(verify(&f, &creds(true)).unwrap_err(), AuthError::SigV4A);
    assert_eq!(
        verify(&FormFields::default(), &creds(true)).unwrap_err(),
        AuthError::Missing
    );
}

#[test]
fn dates_outside_the_window_are_refused() {
    let f = form(&policy_json(""), SECRET);
    let far_future = NOW - time::Duration::hours(1);
    assert_eq!(
        verify_form(
            &f,
            &creds(true),
            &SigningKeyCache::default(),
            &AuthOptions::default(),
            far_future
        )
        .unwrap_err(),
        AuthError::Skewed
    );
}

#[test]
fn an_expired_policy_is_refused() {
    let f = form(&policy_json(""), SECRET);
    let v = verify(&f, &creds(true)).unwrap();
    let later = datetime!(2026-12-01 13:00 UTC);
    assert_eq!(
        v.policy.check(&f, "photos", 10, later),
        Err(PolicyError::Expired)
    );
}

#[test]
fn every_condition_kind_is_enforced() {
    let f = form(&policy_json(""), SECRET);
    let p = verify(&f, &creds(true)).unwrap().policy;
    // The URL's bucket is what the bucket condition sees.
    assert_eq!(
        p.check(&f, "other", 10, NOW),
        Err(PolicyError::ConditionFailed("bucket".into()))
    );
    assert_eq!(
        p.check(&f, "photos", 2048, NOW),
        Err(PolicyError::LengthOutOfRange { too_large: true })
    );
    assert_eq!(
        p.check(&f, "photos", 0, NOW),
        Err(PolicyError::LengthOutOfRange { too_large: false })
    );
    let mut wrong_key = FormFields::default();
    for (n, v) in f.iter() {
        let v = if n == "key" { "admin/x" } else { v };
        wrong_key.push(n, v.to_owned()).unwrap();
    }
    assert_eq!(
        p.check(&wrong_key, "photos", 10, NOW),
        Err(PolicyError::ConditionFailed("key".into()))
    );
}

#[test]
fn eq_conditions_compare_exactly() {
    let f = form(
        &policy_json(r#",["eq","$Content-Type","image/png"]"#),
        SECRET,
    );
    let p = verify(&f, &creds(true)).unwrap().policy;
    let mut with = f.clone();
    with.push("content-type", "image/png".into()).unwrap();
    p.check(&with, "photos", 10, NOW).expect("equal");
    let mut other = f.clone();
    other.push("content-type", "image/png2".into()).unwrap();
    assert_eq!(
        p.check(&other, "photos", 10, NOW),
        Err(PolicyError::ConditionFailed("content-type".into()))
    );
    // An absent field is the empty string: it does not equal image/png.
    assert!(p.check(&f, "photos", 10, NOW).is_err());
}

#[test]
fn a_content_type_list_must_satisfy_starts_with_in_every_member() {
    let f = form(
        &policy_json(r#",["starts-with","$Content-Type","image/"]"#),
        SECRET,
    );
    let p = verify(&f, &creds(true)).unwrap().policy;
    let mut ok = f.clone();
    ok.push("content-type", "image/png".into()).unwrap();
    p.check(&ok, "photos", 10, NOW).expect("one image type");
    let mut smuggled = f.clone();
    smuggled
        .push("content-type", "image/png,text/html".into())
        .unwrap();
    assert_eq!(
        p.check(&smuggled, "photos", 10, NOW),
        Err(PolicyError::ConditionFailed("content-type".into())),
        "a second type the browser would honour"
    );
}

#[test]
fn a_field_no_condition_covers_is_refused() {
    let f = form(&policy_json(""), SECRET);
    let p = verify(&f, &creds(true)).unwrap().policy;
    let mut extra = f.clone();
    extra.push("acl", "public-read".into()).unwrap();
    assert_eq!(
        p.check(&extra, "photos", 10, NOW),
        Err(PolicyError::Uncovered("acl".into()))
    );
    let mut ignored = f.clone();
    ignored.push("x-ignore-tracking", "1".into()).unwrap();
    p.check(&ignored, "photos", 10, NOW)
        .expect("x-ignore-* needs no condition");
}

#[test]
fn a_bucket_field_naming_another_bucket_is_refused() {
    let mut f = form(&policy_json(""), SECRET);
    f.push("bucket", "someone-elses".into()).unwrap();
    let p = verify(&f, &creds(true)).unwrap().policy;
    assert_eq!(
        p.check(&f, "photos", 10, NOW),
        Err(PolicyError::ConditionFailed("bucket".into()))
    );
}

#[test]
fn repeated_fields_and_bad_policies_are_refused() {
    let mut f = FormFields::default();
    f.push("key", "a".into()).unwrap();
    assert!(f.push("KEY", "b".into()).is_err());
    for bad in [
        "not base64!",
        &b64("[]"),
        &b64(r#"{"conditions":[]}"#),
        &b64(r#"{"expiration":"2026-12-01T13:00:00Z","conditions":[["nope","$key","x"]]}"#),
        &b64(
            r#"{"expiration":"2026-12-01T13:00:00Z","conditions":[["content-length-range",9,1]]}"#,
        ),
        &b64(r#"{"expiration":"2026-12-01T13:00:00Z","conditions":[{"a":"1","b":"2"}]}"#),
        &b64(r#"{"expiration":"2026-12-01T13:00:00Z","conditions":[["eq","$bad name","x"]]}"#),
    ] {
        assert!(Policy::decode(bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn decoding_any_policy_text_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Policy::decode(&String::from_utf8_lossy(&raw));
        let _ = Policy::decode(&b64(&String::from_utf8_lossy(&raw)));
    }

    #[test]
    fn decoding_json_shaped_policies_never_panics(
        conds in proptest::collection::vec("[\\[\\]{}\",:$a-z0-9 -]{0,40}", 0..8)
    ) {
        let doc = format!(r#"{{"expiration":"2026-12-01T13:00:00Z","conditions":[{}]}}"#, conds.join(","));
        if let Ok(p) = Policy::decode(&b64(&doc)) {
            let _ = p.check(&FormFields::default(), "b", 1, NOW);
        }
    }
}

#[test]
fn debug_output_names_the_fields_but_never_their_values() {
    let f = form(&policy_json(""), SECRET);
    let sig = f.get("x-amz-signature").unwrap().to_owned();
    let text = format!("{f:?}");
    assert!(text.contains("x-amz-signature"), "{text}");
    assert!(!text.contains(&sig), "{text}");
    assert!(!text.contains(f.get("policy").unwrap()), "{text}");
}

#[test]
fn a_form_beside_an_authorization_header_or_presign_query_is_ambiguous() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(check_form_is_only_mechanism(&headers, None), Ok(()));
    assert_eq!(
        check_form_is_only_mechanism(&headers, Some("uploads&x-id=PostObject")),
        Ok(())
    );
    for query in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Signature=00",
        "X-Amz-Credential=AK%2F20261201%2Fus-east-1%2Fs3%2Faws4_request",
    ] {
        assert_eq!(
            check_form_is_only_mechanism(&headers, Some(query)),
            Err(AuthError::Ambiguous),
            "{query}"
        );
    }
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
    );
    assert_eq!(
        check_form_is_only_mechanism(&headers, None),
        Err(AuthError::Ambiguous)
    );
}
