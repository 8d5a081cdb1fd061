use std::sync::Arc;

use super::*;
use crate::credentials::model::{Access, Scope};
use crate::secret::SecretKey;

fn cred(ak: &str, backend: &str, bucket: &str, kube: bool) -> Arc<Credential> {
    Arc::new(Credential {
        access_key_id: ak.into(),
        secret: SecretKey::new("s".repeat(40)),
        backend: backend.into(),
        scopes: vec![Scope {
            bucket: bucket.into(),
            access: Access::ReadOnly,
            prefix: None,
        }],
        expires_at: None,
        enabled: true,
        source: if kube {
            CredentialSource::Kubernetes {
                namespace: "team".into(),
                name: "claim".into(),
                uid: "u".into(),
            }
        } else {
            CredentialSource::Sqlite
        },
        description: String::new(),
    })
}

fn rows() -> Vec<Arc<Credential>> {
    vec![
        cred("D", "primary", "photos", false),
        cred("A", "primary", "team-*", true),
        cred("C", "other", "videos", false),
        cred("B", "primary", "photos", true),
    ]
}

fn keys(v: &[Arc<Credential>]) -> Vec<&str> {
    v.iter().map(|c| c.access_key_id.as_str()).collect()
}

fn q(query: &str) -> ListQuery {
    parse_list_query(Some(query)).unwrap()
}

#[test]
fn listings_are_sorted_by_access_key_and_paginated_with_a_cursor() {
    let (page, next) = select(rows(), &q("limit=3"));
    assert_eq!(keys(&page), ["A", "B", "C"]);
    let next = next.expect("a fourth row follows");
    assert!(!next.contains('C'), "the cursor is opaque: {next}");
    let (page, last) = select(rows(), &q(&format!("limit=3&cursor={next}")));
    assert_eq!(keys(&page), ["D"]);
    assert_eq!(last, None);
}

#[test]
fn an_exact_page_has_no_cursor() {
    let (page, next) = select(rows(), &q("limit=4"));
    assert_eq!(page.len(), 4);
    assert_eq!(next, None);
}

#[test]
fn filters_by_source_backend_and_bucket_including_patterns() {
    assert_eq!(keys(&select(rows(), &q("source=kubernetes")).0), ["A", "B"]);
    assert_eq!(keys(&select(rows(), &q("source=sqlite")).0), ["C", "D"]);
    assert_eq!(keys(&select(rows(), &q("backend=other")).0), ["C"]);
    assert_eq!(keys(&select(rows(), &q("bucket=photos")).0), ["B", "D"]);
    assert_eq!(
        keys(&select(rows(), &q("bucket=team-logs")).0),
        ["A"],
        "pattern scope"
    );
    assert_eq!(
        keys(&select(rows(), &q("source=sqlite&backend=primary&bucket=photos")).0),
        ["D"]
    );
}

#[test]
fn invalid_list_parameters_name_the_parameter() {
    for (query, field) in [
        ("source=etcd", "source"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=!!!", "cursor"),
        ("cursor=Zm9v", "cursor"),
        ("colour=red", "colour"),
    ] {
        let e = parse_list_query(Some(query)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{query}: {e:?}");
    }
}

#[test]
fn empty_parameters_mean_no_filter() {
    let l = q("source=&backend=&bucket=");
    assert_eq!(l.source, None);
    assert_eq!(l.backend, None);
    assert_eq!(l.limit, DEFAULT_PAGE);
}

#[test]
fn cursors_round_trip() {
    assert_eq!(decode_cursor(&encode_cursor("SWABC")).unwrap(), "SWABC");
}
