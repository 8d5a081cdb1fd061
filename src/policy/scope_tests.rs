use http::{HeaderMap, Method};

use super::*;
use crate::credentials::model::CredentialSource;
use crate::policy::operation::classify;
use crate::policy::route::route;
use crate::secret::SecretKey;

fn scope(bucket: &str, access: Access, prefix: Option<&str>) -> Scope {
    Scope {
        bucket: bucket.into(),
        access,
        prefix: prefix.map(Into::into),
    }
}

fn cred(scopes: Vec<Scope>) -> Credential {
    Credential {
        access_key_id: "AKIATEST".into(),
        secret: SecretKey::new("secret"),
        backend: "main".into(),
        scopes,
        expires_at: None,
        enabled: true,
        source: CredentialSource::Sqlite,
        description: String::new(),
    }
}

/// Classify and authorize a request the way the pipeline does.
fn check(
    c: &Credential,
    method: &str,
    path: &str,
    query: &str,
    copy: Option<&str>,
) -> Result<(), S3Error> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let r = route(None, path, &[]).unwrap();
    let mut headers = HeaderMap::new();
    if let Some(v) = copy {
        headers.insert("x-amz-copy-source", v.parse().unwrap());
    }
    let query = (!query.is_empty()).then_some(query);
    let op = classify(&method, &r, query, &headers);
    let src = copy_source_from_headers(&headers)?;
    authorize(c, op, &r, query, src.as_ref())
}

use Access::{Admin, ReadOnly, ReadWrite};

/// (name, scopes, method, path, query, copy source, allowed?)
type Case = (
    &'static str,
    Vec<Scope>,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
);

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let ro = || vec![scope("photos", ReadOnly, None)];
    let rw = || vec![scope("photos", ReadWrite, None)];
    let admin = || vec![scope("photos", Admin, None)];
    let pat = || vec![scope("team-a-*", ReadWrite, None)];
    let pfx = || vec![scope("photos", ReadWrite, Some("user1/"))];
    vec![
        ("read-only may read", ro(), "GET", "/photos/k", "", None, true),
        ("read-only may head", ro(), "HEAD", "/photos/k", "", None, true),
        ("read-only may list", ro(), "GET", "/photos", "list-type=2", None, true),
        ("read-only may head bucket", ro(), "HEAD", "/photos", "", None, true),
        ("read-only may get location", ro(), "GET", "/photos", "location", None, true),
        ("read-only may get versioning", ro(), "GET", "/photos", "versioning", None, true),
        ("read-only may not put", ro(), "PUT", "/photos/k", "", None, false),
        ("read-only may not delete", ro(), "DELETE", "/photos/k", "", None, false),
        ("read-only may not start uploads", ro(), "POST", "/photos/k", "uploads", None, false),
        ("read-only may not delete objects", ro(), "POST", "/photos", "delete", None, false),
        ("read-only may not read policy", ro(), "GET", "/photos", "policy", None, false),
        ("read-write may put", rw(), "PUT", "/photos/k", "", None, true),
        ("read-write may delete objects", rw(), "POST", "/photos", "delete", None, true),
        ("read-write may not create bucket", rw(), "PUT", "/photos", "", None, false),
        ("read-write may not delete bucket", rw(), "DELETE", "/photos", "", None, false),
        ("read-write may not put policy", rw(), "PUT", "/photos", "policy", None, false),
        ("read-write may not put object acl", rw(), "PUT", "/photos/k", "acl", None, false),
        ("read-write may not read cors", rw(), "GET", "/photos", "cors", None, false),
        ("admin may create its bucket", admin(), "PUT", "/photos", "", None, true),
        ("admin may put lifecycle", admin(), "PUT", "/photos", "lifecycle", None, true),
        ("admin may read policy", admin(), "GET", "/photos", "policy", None, true),
        ("admin may not create another bucket", admin(), "PUT", "/photos2", "", None, false),
        ("other bucket denied", rw(), "GET", "/other/k", "", None, false),
        ("bucket names are case-sensitive", rw(), "GET", "/Photos/k", "", None, false),
        ("pattern matches by stem", pat(), "PUT", "/team-a-logs/k", "", None, true),
        ("pattern does not match others", pat(), "GET", "/team-b-logs/k", "", None, false),
        ("pattern read-write may not create", pat(), "PUT", "/team-a-new", "", None, false),
        ("unknown is denied even for admin", admin(), "GET", "/photos", "events", None, false),
        ("unknown method is denied", admin(), "PATCH", "/photos/k", "", None, false),
        ("service ListBuckets is allowed", ro(), "GET", "/", "", None, true),
        ("service PUT is denied", admin(), "PUT", "/", "", None, false),
        // Prefix scopes.
        ("prefix key inside", pfx(), "PUT", "/photos/user1/a.jpg", "", None, true),
        ("prefix key outside", pfx(), "GET", "/photos/user2/a.jpg", "", None, false),
        ("prefix bare prefix is not the dir", pfx(), "GET", "/photos/user1", "", None, false),
        ("prefix encoded slash is a slash", pfx(), "GET", "/photos/user1%2Fa.jpg", "", None, true),
        ("prefix encoded slash outside", pfx(), "GET", "/photos/user2%2Fa.jpg", "", None, false),
        ("prefix dot-dot escape", pfx(), "GET", "/photos/user1/../user2/a.jpg", "", None, false),
        ("prefix encoded dot-dot escape", pfx(), "GET", "/photos/user1%2F..%2Fuser2%2Fa", "", None, false),
        ("prefix dot-dot within", pfx(), "GET", "/photos/user1/x/../a.jpg", "", None, true),
        ("prefix slash-merge escape", pfx(), "GET", "/photos/user1//../user2/a", "", None, false),
        ("prefix backslash escape", pfx(), "GET", "/photos/user1/..%5Cuser2%5Ca", "", None, false),
        ("prefix double-encoded escape", pfx(), "GET", "/photos/user1/..%252Fuser2%252Fa", "", None, false),
        ("prefix double-encoded dots", pfx(), "GET", "/photos/user1/%252e%252e/user2/a", "", None, false),
        ("prefix backslash within", pfx(), "GET", "/photos/user1/a%5Cb", "", None, true),
        ("prefix double-encoded within", pfx(), "GET", "/photos/user1/a%252Fb", "", None, true),
        ("bucket escape via backslashes", rw(), "GET", "/photos/a%5C..%5C..%5Cother%5Ck", "", None, false),
        ("bucket escape via dot-dot", rw(), "GET", "/photos/../other/k", "", None, false),
        ("dot-dot inside the bucket", rw(), "GET", "/photos/a/../b", "", None, true),
        ("key collapsing to the bucket", rw(), "DELETE", "/photos/a/..", "", None, false),
        ("key of only slashes", rw(), "DELETE", "/photos//", "", None, false),
        ("prefix list inside", pfx(), "GET", "/photos", "list-type=2&prefix=user1/", None, true),
        ("prefix list encoded", pfx(), "GET", "/photos", "prefix=user1%2Fsub", None, true),
        ("prefix list outside", pfx(), "GET", "/photos", "list-type=2&prefix=user2/", None, false),
        ("prefix list without prefix", pfx(), "GET", "/photos", "list-type=2", None, false),
        ("prefix list repeated", pfx(), "GET", "/photos", "prefix=user1/&prefix=x", None, false),
        ("prefix versions outside", pfx(), "GET", "/photos", "versions&prefix=u", None, false),
        ("prefix uploads inside", pfx(), "GET", "/photos", "uploads&prefix=user1/a", None, true),
        ("prefix uploads without prefix", pfx(), "GET", "/photos", "uploads", None, false),
        ("prefix head bucket", pfx(), "HEAD", "/photos", "", None, true),
        ("prefix delete objects", pfx(), "POST", "/photos", "delete", None, false),
        ("prefix list parts outside", pfx(), "GET", "/photos/user2/k", "uploadId=u", None, false),
        // Copy sources.
        ("copy within scope", rw(), "PUT", "/photos/k", "", Some("/photos/src"), true),
        ("copy from foreign bucket", rw(), "PUT", "/photos/k", "", Some("/secrets/k"), false),
        ("part copy from foreign bucket", rw(), "PUT", "/photos/k", "partNumber=1&uploadId=u", Some("secrets/k"), false),
        ("copy source dot-dot escape", rw(), "PUT", "/photos/k", "", Some("/photos/../secrets/k"), false),
        ("copy source backslash escape", rw(), "PUT", "/photos/k", "", Some("/photos/..%5Csecrets%5Ck"), false),
        ("copy source double-encoded escape", rw(), "PUT", "/photos/k", "", Some("/photos/..%252Fsecrets%252Fk"), false),
        ("copy source outside prefix", pfx(), "PUT", "/photos/user1/k", "", Some("/photos/user2/k"), false),
        ("copy source inside prefix", pfx(), "PUT", "/photos/user1/k", "", Some("/photos/user1/j?versionId=3"), true),
    ]
}

#[test]
fn scope_decisions_follow_the_table() {
    for (name, scopes, method, path, query, copy, allowed) in cases() {
        let got = check(&cred(scopes), method, path, query, copy);
        assert_eq!(got.is_ok(), allowed, "{name}: {got:?}");
        if let Err(e) = got {
            assert_eq!(e.code(), "AccessDenied", "{name}");
        }
    }
}

#[test]
fn any_matching_scope_that_allows_the_request_suffices() {
    let c = cred(vec![
        scope("photos", ReadOnly, None),
        scope("photo*", ReadWrite, Some("up/")),
        scope("photos", Admin, Some("adm/")),
    ]);
    assert!(check(&c, "GET", "/photos/any", "", None).is_ok());
    assert!(check(&c, "PUT", "/photos/up/k", "", None).is_ok());
    assert!(check(&c, "PUT", "/photos/adm/k", "", None).is_ok());
    assert!(check(&c, "PUT", "/photos/other", "", None).is_err());
    // Admin with a prefix does not reach bucket-wide operations.
    assert!(check(&c, "DELETE", "/photos", "", None).is_err());
}

#[test]
fn list_prefix_is_checked_under_both_readings_of_plus() {
    let c = cred(vec![scope("photos", ReadOnly, Some("a+b/"))]);
    assert!(check(&c, "GET", "/photos", "prefix=a%2Bb/", None).is_ok());
    assert!(check(&c, "GET", "/photos", "prefix=a+b/", None).is_err());
    let c = cred(vec![scope("photos", ReadOnly, Some("a b/"))]);
    assert!(check(&c, "GET", "/photos", "prefix=a%20b/", None).is_ok());
    assert!(check(&c, "GET", "/photos", "prefix=a+b/", None).is_err());
}

#[test]
fn copy_operations_without_a_copy_source_are_denied() {
    let c = cred(vec![scope("photos", ReadWrite, None)]);
    let r = route(None, "/photos/k", &[]).unwrap();
    assert!(authorize(&c, S3Operation::CopyObject, &r, None, None).is_err());
    assert!(authorize(&c, S3Operation::UploadPartCopy, &r, None, None).is_err());
    let src = parse_copy_source("/photos/j").unwrap();
    assert!(authorize(&c, S3Operation::CopyObject, &r, None, Some(&src)).is_ok());
    // A copy source on any other operation is checked too.
    let foreign = parse_copy_source("/secrets/j").unwrap();
    assert!(authorize(&c, S3Operation::PutObject, &r, None, Some(&foreign)).is_err());
}

#[test]
fn body_keys_are_checked_against_prefix_scopes() {
    let c = cred(vec![scope("photos", ReadWrite, Some("user1/"))]);
    let op = S3Operation::DeleteObjects;
    assert!(needs_key_check(&c, "photos", op));
    assert!(authorize_keys(&c, "photos", op, &["user1/a", "user1/b/c"]).is_ok());
    assert!(authorize_keys(&c, "photos", op, &["user1/a", "user2/b"]).is_err());
    assert!(authorize_keys(&c, "photos", op, &["user1/../user2/b"]).is_err());
    assert!(authorize_keys(&c, "other", op, &["user1/a"]).is_err());
    assert!(!needs_key_check(&c, "other", op));
    let ro = cred(vec![scope("photos", ReadOnly, Some("user1/"))]);
    assert!(!needs_key_check(&ro, "photos", op));
    assert!(authorize_keys(&ro, "photos", op, &["user1/a"]).is_err());
    let full = cred(vec![scope("photos", ReadWrite, None)]);
    assert!(
        needs_key_check(&full, "photos", op),
        "prefix-free scopes too"
    );
    assert!(authorize_keys(&full, "photos", op, &["a", "b/../c", "user2/x"]).is_ok());
    for out in ["../other/k", "a/../../other/k", "..\\other\\k", ".", "a/.."] {
        assert!(
            authorize_keys(&full, "photos", op, &[out]).is_err(),
            "{out}"
        );
    }
    assert!(!needs_key_check(&c, "photos", S3Operation::PutObject));
}

#[test]
fn denial_messages_are_our_own_text() {
    let c = cred(vec![scope("photos", ReadOnly, None)]);
    let err = check(&c, "PUT", "/photos/k", "", None).unwrap_err();
    assert_eq!(err.message(), "Access Denied");
    let err = check(&c, "GET", "/photos", "events", None).unwrap_err();
    assert!(!err.message().contains("photos"));
}

#[test]
fn every_access_level_grants_exactly_its_classes() {
    use AccessClass as C;
    let table = [
        (
            ReadOnly,
            [true, false, true, true, false, false, false, false],
        ),
        (
            ReadWrite,
            [true, true, true, true, false, false, false, false],
        ),
        (Admin, [true, true, true, true, true, true, false, false]),
    ];
    let classes = [
        C::Read,
        C::Write,
        C::List,
        C::BucketRead,
        C::BucketConfigRead,
        C::BucketAdmin,
        C::Service,
        C::Unknown,
    ];
    for (access, expected) in table {
        for (class, want) in classes.iter().zip(expected) {
            assert_eq!(grants(access, *class), want, "{access} {class:?}");
        }
    }
}
