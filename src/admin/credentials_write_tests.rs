use time::macros::datetime;

use super::*;
use crate::admin::json::decode;

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);

fn scope(bucket: &str, prefix: Option<&str>) -> ScopeBody {
    ScopeBody {
        bucket: bucket.into(),
        access: Access::ReadWrite,
        prefix: prefix.map(Into::into),
    }
}

#[test]
fn scopes_are_validated_one_by_one_naming_index_and_field() {
    let ok = scopes_of(vec![scope("photos", None), scope("team-*", Some("a/"))]).unwrap();
    assert_eq!(ok.len(), 2);
    let e = scopes_of(vec![scope("photos", None), scope("Bad_Bucket", None)]).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("scopes[1].bucket"));
    assert!(e.message.contains("Bad_Bucket"), "{}", e.message);
    let e = scopes_of(vec![scope("photos", Some("/abs"))]).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("scopes[0].prefix"));
    let e = scopes_of(vec![]).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("scopes"));
    let e = scopes_of(vec![scope("*", None)]).unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("scopes[0].bucket"),
        "a bare * is refused"
    );
}

#[test]
fn an_unknown_access_class_names_the_field() {
    let e = decode::<CreateBody>(
        br#"{"backend":"primary","scopes":[{"bucket":"photos","access":"write"}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("scopes[0].access"));
    assert!(e.message.contains("read-only"), "{}", e.message);
}

#[test]
fn expiry_is_a_future_rfc3339_time_or_a_duration() {
    assert_eq!(expiry_of(None, None, NOW).unwrap(), None);
    assert_eq!(
        expiry_of(Some("2025-07-01T00:00:00Z"), None, NOW).unwrap(),
        Some(datetime!(2025-07-01 0:00 UTC))
    );
    assert_eq!(
        expiry_of(None, Some("30d"), NOW).unwrap(),
        Some(datetime!(2025-07-01 12:00 UTC))
    );
    for (at, within, field) in [
        (Some("tomorrow"), None, "expires_at"),
        (Some("2020-01-01T00:00:00Z"), None, "expires_at"),
        (None, Some("soon"), "expires_in"),
        (None, Some("0s"), "expires_in"),
        (Some("2030-01-01T00:00:00Z"), Some("1d"), "expires_in"),
    ] {
        let e = expiry_of(at, within, NOW).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{at:?} {within:?}");
    }
}

#[test]
fn a_patch_tells_a_null_expiry_from_an_absent_one() {
    let p: PatchBody = decode(br#"{"expires_at": null}"#).unwrap();
    assert_eq!(p.expires_at, Some(None));
    let p: PatchBody = decode(br#"{"enabled": false}"#).unwrap();
    assert_eq!(p.expires_at, None);
    assert_eq!(p.enabled, Some(false));
    let e = decode::<PatchBody>(br#"{"secret_access_key": "x"}"#).unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("secret_access_key"),
        "unknown fields are refused"
    );
}

#[test]
fn create_defaults_to_enabled_without_expiry() {
    let b: CreateBody =
        decode(br#"{"backend":"primary","scopes":[{"bucket":"photos","access":"read-only"}]}"#)
            .unwrap();
    assert!(b.enabled);
    assert!(b.expires_at.is_none() && b.expires_in.is_none());
    assert_eq!(b.description, "");
}
