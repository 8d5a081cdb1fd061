//! Decoding rules of DESIGN §6, one behaviour per test.

use super::*;
use crate::kubernetes::resource::{EncodedValue, fixture};
use crate::kubernetes::{ANNOTATION_EXPIRES_AT, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE};

const SECRET: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";

fn vc(extra: &[(&str, &str)]) -> WatchedSecret {
    let mut data = vec![
        ("access_key_id", "AKIAEXAMPLE000000001"),
        ("secret_access_key", SECRET),
        ("backend", "primary"),
        ("bucket_name", "photos"),
    ];
    for (k, v) in extra {
        data.retain(|(dk, _)| dk != k);
        data.push((k, v));
    }
    data.retain(|(_, v)| !v.is_empty());
    fixture("vc-akiaexample000000001", ROLE_CREDENTIAL, &data)
}

fn cred(s: &WatchedSecret) -> CredentialEntry {
    match decode(s) {
        Ok(Decoded::Credential(e)) => *e,
        other => panic!("expected a credential, got {other:?}"),
    }
}

fn err(s: &WatchedSecret) -> DecodeError {
    decode(s).expect_err("the Secret is invalid")
}

#[test]
fn a_legacy_secret_yields_one_read_write_scope_on_its_bucket() {
    let e = cred(&vc(&[]));
    let c = &e.credential;
    assert_eq!(c.access_key_id, "AKIAEXAMPLE000000001");
    assert_eq!(c.secret.expose(), SECRET);
    assert_eq!(c.backend, "primary");
    assert_eq!(c.scopes.len(), 1);
    assert_eq!(c.scopes[0].bucket, "photos");
    assert_eq!(c.scopes[0].access, Access::ReadWrite);
    assert!(c.enabled && c.expires_at.is_none());
    assert!(e.limits.is_empty());
}

#[test]
fn bucket_scopes_is_preferred_and_carries_access_and_prefix() {
    let json = r#"[{"bucket":"abc","backend":"primary"},
                   {"bucket":"logs","access":"read-only","prefix":"team/"}]"#;
    let c = cred(&vc(&[("bucket_scopes", json)])).credential;
    assert_eq!(c.scopes.len(), 2);
    assert_eq!(c.scopes[0].bucket, "abc");
    assert_eq!(c.scopes[0].access, Access::ReadWrite);
    assert_eq!(c.scopes[1].access, Access::ReadOnly);
    assert_eq!(c.scopes[1].prefix.as_deref(), Some("team/"));
}

#[test]
fn unparseable_or_empty_bucket_scopes_falls_back_to_bucket_name() {
    for json in ["not json", "[]", "{\"bucket\":\"x\"}", "[{\"nobucket\":1}]"] {
        let c = cred(&vc(&[("bucket_scopes", json)])).credential;
        assert_eq!(c.scopes[0].bucket, "photos", "for {json}");
    }
}

#[test]
fn unparseable_bucket_scopes_without_bucket_name_is_invalid() {
    let s = vc(&[("bucket_scopes", "nope"), ("bucket_name", "")]);
    assert_eq!(err(&s), DecodeError::Missing("bucket_name"));
}

#[test]
fn a_scope_on_another_backend_is_invalid() {
    let s = vc(&[("bucket_scopes", r#"[{"bucket":"a1b","backend":"other"}]"#)]);
    assert!(matches!(err(&s), DecodeError::BackendMismatch { .. }));
}

#[test]
fn an_unknown_access_class_is_invalid_instead_of_falling_back_to_read_write() {
    for access in ["admin", "write", "ReadOnly"] {
        let json = format!(r#"[{{"bucket":"abc","access":"{access}"}}]"#);
        let s = vc(&[("bucket_scopes", &json)]);
        assert!(
            matches!(
                err(&s),
                DecodeError::Invalid {
                    field: "bucket_scopes",
                    ..
                }
            ),
            "{access}"
        );
    }
}

#[test]
fn bad_bucket_names_and_prefixes_are_invalid() {
    assert!(matches!(
        err(&vc(&[("bucket_name", "UPPER")])),
        DecodeError::Invalid { .. }
    ));
    let json = r#"[{"bucket":"abc","prefix":"/abs"}]"#;
    assert!(matches!(
        err(&vc(&[("bucket_scopes", json)])),
        DecodeError::Invalid { .. }
    ));
}

#[test]
fn each_required_field_is_named_when_missing() {
    for field in ["access_key_id", "secret_access_key", "backend"] {
        assert_eq!(err(&vc(&[(field, "")])), DecodeError::Missing(field));
    }
}

#[test]
fn values_that_are_not_base64_or_not_text_are_invalid() {
    let mut s = vc(&[]);
    s.data.insert("backend".into(), EncodedValue::new("%%%"));
    assert_eq!(err(&s), DecodeError::NotBase64("backend"));
    s.data.insert("backend".into(), EncodedValue::new("//79")); // 0xff 0xfe 0xfd
    assert_eq!(err(&s), DecodeError::NotText("backend"));
}

#[test]
fn oversized_values_are_refused_before_decoding() {
    let long = "a".repeat(MAX_FIELD_BYTES + 1);
    assert!(matches!(
        err(&vc(&[("backend", &long)])),
        DecodeError::TooLong {
            field: "backend",
            ..
        }
    ));
}

#[test]
fn quota_fields_become_limits_on_each_exact_scope_bucket() {
    let json =
        r#"[{"bucket":"abc"},{"bucket":"def"},{"bucket":"abc","prefix":"x/"},{"bucket":"team-*"}]"#;
    let e = cred(&vc(&[
        ("bucket_scopes", json),
        ("quota_hard_bytes", "1000"),
        ("quota_soft_bytes", "800\n"),
        ("quota_max_objects", "0"),
    ]));
    let want = Limits {
        hard_bytes: Some(1000),
        soft_bytes: Some(800),
        max_objects: None,
    };
    assert_eq!(
        e.limits,
        vec![
            (BucketKey::new("primary", "abc"), want),
            (BucketKey::new("primary", "def"), want)
        ]
    );
}

#[test]
fn zero_or_absent_quotas_mean_no_limit() {
    let e = cred(&vc(&[("quota_hard_bytes", "0"), ("quota_soft_bytes", "0")]));
    assert!(e.limits.is_empty());
}

#[test]
fn garbage_or_negative_quotas_make_the_secret_invalid() {
    for v in ["-1", "abc", "1.5", "+5", "1e9", "99999999999999999999999"] {
        let e = err(&vc(&[("quota_hard_bytes", v)]));
        assert!(
            matches!(
                e,
                DecodeError::Invalid {
                    field: "quota_hard_bytes",
                    ..
                }
            ),
            "{v}: {e}"
        );
    }
    let e = err(&vc(&[("quota_max_objects", "lots")]));
    assert!(matches!(
        e,
        DecodeError::Invalid {
            field: "quota_max_objects",
            ..
        }
    ));
}

#[test]
fn expires_at_is_read_from_the_annotation_and_a_bad_one_is_invalid() {
    let mut s = vc(&[]);
    s.metadata.annotations = Some(
        [(
            ANNOTATION_EXPIRES_AT.to_owned(),
            "2030-01-02T03:04:05Z".to_owned(),
        )]
        .into(),
    );
    let at = cred(&s).credential.expires_at.expect("expiry");
    assert_eq!(at.unix_timestamp(), 1_893_553_445);
    s.metadata.annotations =
        Some([(ANNOTATION_EXPIRES_AT.to_owned(), "tomorrow".to_owned())].into());
    assert_eq!(err(&s), DecodeError::BadExpiry);
}

#[test]
fn the_source_names_the_claim_from_labels_or_else_the_secret() {
    let s = vc(&[]);
    let CredentialSource::Kubernetes {
        namespace,
        name,
        uid,
    } = cred(&s).credential.source
    else {
        panic!("kubernetes source");
    };
    assert_eq!(
        (namespace.as_str(), name.as_str()),
        ("stowage-system", "vc-akiaexample000000001")
    );
    assert_eq!(uid, "uid-vc-akiaexample000000001");
    let mut s = vc(&[("claim_uid", "claim-123")]);
    let labels = s.metadata.labels.get_or_insert_default();
    labels.insert(LABEL_CLAIM_NAMESPACE.to_owned(), "team-a".to_owned());
    labels.insert(LABEL_CLAIM_NAME.to_owned(), "photos".to_owned());
    let CredentialSource::Kubernetes {
        namespace,
        name,
        uid,
    } = cred(&s).credential.source
    else {
        panic!("kubernetes source");
    };
    assert_eq!(
        (namespace.as_str(), name.as_str(), uid.as_str()),
        ("team-a", "photos", "claim-123")
    );
}

#[test]
fn a_weak_or_spaced_secret_is_invalid_and_the_error_never_quotes_it() {
    let e = err(&vc(&[("secret_access_key", "short")]));
    assert!(matches!(
        e,
        DecodeError::Invalid {
            field: "secret_access_key",
            ..
        }
    ));
    let e = err(&vc(&[(
        "secret_access_key",
        "has a space in the middle of it",
    )]));
    assert!(!e.to_string().contains("space in the middle"), "{e}");
}

#[test]
fn error_texts_never_contain_data_values() {
    let bad = "SENSITIVEVALUE";
    // Bucket and backend names are not secret and may be quoted; these fields are not.
    for field in [
        "quota_hard_bytes",
        "quota_soft_bytes",
        "access_key_id",
        "secret_access_key",
    ] {
        let text = err(&vc(&[(field, &format!("{bad} !/"))])).to_string();
        assert!(!text.contains(bad), "{field}: {text}");
    }
}

#[test]
fn anonymous_bindings_decode_with_mode_and_rate() {
    let s = fixture(
        "anon-team-pub",
        ROLE_BINDING,
        &[
            ("bucket_name", "public"),
            ("backend", "primary"),
            ("anonymous_mode", "ReadOnly"),
            ("anonymous_per_source_ip_rps", "2.5"),
        ],
    );
    let Ok(Decoded::Binding(b)) = decode(&s) else {
        panic!("a binding");
    };
    assert_eq!(
        (b.bucket.as_str(), b.backend.as_str()),
        ("public", "primary")
    );
    assert_eq!(b.mode, AnonymousMode::ReadOnly);
    assert_eq!(b.per_source_ip_rps, Some(2.5));
}

#[test]
fn bindings_with_a_bad_mode_rate_or_pattern_are_invalid() {
    let base = [
        ("bucket_name", "public"),
        ("backend", "primary"),
        ("anonymous_mode", "ReadOnly"),
    ];
    let with = |k: &'static str, v: &'static str| {
        let mut d: Vec<(&str, &str)> = base.iter().copied().filter(|(bk, _)| *bk != k).collect();
        d.push((k, v));
        fixture("anon", ROLE_BINDING, &d)
    };
    assert!(matches!(
        decode(&with("anonymous_mode", "ReadWrite")),
        Err(DecodeError::Invalid { .. })
    ));
    for rps in ["fast", "-1", "inf", "NaN"] {
        let e = decode(&with("anonymous_per_source_ip_rps", rps));
        assert!(matches!(e, Err(DecodeError::Invalid { .. })), "{rps}");
    }
    assert!(matches!(
        decode(&with("bucket_name", "pub*")),
        Err(DecodeError::Invalid { .. })
    ));
    let Ok(Decoded::Binding(b)) = decode(&with("anonymous_per_source_ip_rps", "0")) else {
        panic!("0 means the default");
    };
    assert_eq!(b.per_source_ip_rps, None);
}

#[test]
fn an_unknown_role_is_refused() {
    let s = fixture("x", "consumer-secret", &[]);
    assert_eq!(err(&s), DecodeError::UnknownRole);
}
