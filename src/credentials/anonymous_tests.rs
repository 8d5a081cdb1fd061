//! Binding cache behaviour: owners, sources, relists.

use super::*;

fn binding(backend: &str, bucket: &str, mode: AnonymousMode, rps: Option<f64>) -> AnonymousBinding {
    AnonymousBinding {
        backend: backend.into(),
        bucket: bucket.into(),
        mode,
        per_source_ip_rps: rps,
        source: CredentialSource::Sqlite,
    }
}

const K8S: SourceKind = SourceKind::Kubernetes;

#[test]
fn modes_parse_in_the_operator_spelling_and_unknown_modes_do_not() {
    assert_eq!(
        AnonymousMode::parse("ReadOnly"),
        Some(AnonymousMode::ReadOnly)
    );
    assert_eq!(AnonymousMode::parse("None"), Some(AnonymousMode::None));
    assert_eq!(
        AnonymousMode::parse("read-only"),
        Some(AnonymousMode::ReadOnly)
    );
    assert_eq!(AnonymousMode::parse("ReadWrite"), None);
}

#[test]
fn a_binding_is_found_by_key_and_by_unambiguous_bucket_name() {
    let c = BindingCache::new();
    c.set(
        K8S,
        "ns/a",
        Some(binding("b1", "pub", AnonymousMode::ReadOnly, None)),
    );
    assert!(c.get(&BucketKey::new("b1", "pub")).is_some());
    assert_eq!(c.for_bucket("pub").unwrap().backend, "b1");
    c.set(
        K8S,
        "ns/b",
        Some(binding("b2", "pub", AnonymousMode::ReadOnly, None)),
    );
    assert!(c.for_bucket("pub").is_none(), "two backends bind the name");
    c.set(K8S, "ns/b", None);
    assert_eq!(c.for_bucket("pub").unwrap().backend, "b1");
}

#[test]
fn an_edit_that_moves_a_binding_to_another_bucket_drops_the_old_one() {
    let c = BindingCache::new();
    c.set(
        K8S,
        "ns/a",
        Some(binding("b", "old", AnonymousMode::ReadOnly, None)),
    );
    c.set(
        K8S,
        "ns/a",
        Some(binding("b", "new", AnonymousMode::ReadOnly, None)),
    );
    assert!(c.for_bucket("old").is_none());
    assert!(c.for_bucket("new").is_some());
    assert_eq!(c.len(), 1);
}

#[test]
fn removing_one_owner_keeps_what_another_owner_contributes() {
    let c = BindingCache::new();
    c.set(
        K8S,
        "ns/a",
        Some(binding("b", "pub", AnonymousMode::ReadOnly, Some(5.0))),
    );
    c.set(
        K8S,
        "ns/b",
        Some(binding("b", "pub", AnonymousMode::ReadOnly, Some(2.0))),
    );
    assert_eq!(c.for_bucket("pub").unwrap().per_source_ip_rps, Some(2.0));
    c.set(K8S, "ns/b", None);
    assert_eq!(c.for_bucket("pub").unwrap().per_source_ip_rps, Some(5.0));
}

#[test]
fn disagreeing_owners_yield_the_strictest_mode() {
    let c = BindingCache::new();
    c.set(
        K8S,
        "ns/a",
        Some(binding("b", "pub", AnonymousMode::ReadOnly, None)),
    );
    c.set(
        K8S,
        "ns/b",
        Some(binding("b", "pub", AnonymousMode::None, None)),
    );
    assert_eq!(c.for_bucket("pub").unwrap().mode, AnonymousMode::None);
}

#[test]
fn kubernetes_shadows_sqlite_and_sqlite_shows_through_after_removal() {
    let c = BindingCache::new();
    c.set(
        SourceKind::Sqlite,
        "1",
        Some(binding("b", "pub", AnonymousMode::ReadOnly, None)),
    );
    c.set(
        K8S,
        "ns/a",
        Some(binding("b", "pub", AnonymousMode::None, None)),
    );
    assert_eq!(c.for_bucket("pub").unwrap().mode, AnonymousMode::None);
    c.set(K8S, "ns/a", None);
    assert_eq!(c.for_bucket("pub").unwrap().mode, AnonymousMode::ReadOnly);
}

#[test]
fn replace_swaps_one_source_and_keeps_the_other() {
    let c = BindingCache::new();
    c.set(
        SourceKind::Sqlite,
        "1",
        Some(binding("b", "sql", AnonymousMode::ReadOnly, None)),
    );
    c.set(
        K8S,
        "ns/gone",
        Some(binding("b", "gone", AnonymousMode::ReadOnly, None)),
    );
    c.replace(
        K8S,
        vec![(
            "ns/new".to_owned(),
            binding("b", "new", AnonymousMode::ReadOnly, None),
        )],
    );
    assert!(c.for_bucket("gone").is_none());
    assert!(c.for_bucket("new").is_some());
    assert!(c.for_bucket("sql").is_some());
    c.set(K8S, "ns/new", None);
    assert!(c.for_bucket("new").is_none(), "owners survive a replace");
}
