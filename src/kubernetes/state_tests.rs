//! The no-stale-keys rules: every event replaces a Secret's whole contribution.

use super::*;
use crate::credentials::CredentialLookup as _;
use crate::credentials::anonymous::AnonymousMode;
use crate::kubernetes::resource::fixture;
use crate::kubernetes::{ROLE_BINDING, ROLE_CREDENTIAL};
use crate::quota::Limits;
use crate::quota::limits::LimitSource;

const SECRET: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";

fn sinks() -> Sinks {
    Sinks {
        credentials: Arc::new(CredentialCache::new()),
        limits: Arc::new(LimitCache::new()),
        bindings: Arc::new(BindingCache::new()),
    }
}

fn vc(name: &str, ak: &str, extra: &[(&str, &str)]) -> WatchedSecret {
    let mut data = vec![
        ("access_key_id", ak),
        ("secret_access_key", SECRET),
        ("backend", "primary"),
        ("bucket_name", "photos"),
    ];
    data.extend_from_slice(extra);
    fixture(name, ROLE_CREDENTIAL, &data)
}

fn binding(name: &str, bucket: &str) -> WatchedSecret {
    fixture(
        name,
        ROLE_BINDING,
        &[
            ("bucket_name", bucket),
            ("backend", "primary"),
            ("anonymous_mode", "ReadOnly"),
        ],
    )
}

fn photos() -> BucketKey {
    BucketKey::new("primary", "photos")
}

#[test]
fn add_then_delete_serves_then_refuses_the_key() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    assert_eq!(st.apply(&vc("vc-a", "AKIAONE", &[])), Change::Added);
    assert!(s.credentials.lookup("AKIAONE").is_some());
    assert_eq!(st.apply(&vc("vc-a", "AKIAONE", &[])), Change::Modified);
    assert_eq!(st.delete(&vc("vc-a", "AKIAONE", &[])), Change::Deleted);
    assert!(s.credentials.lookup("AKIAONE").is_none());
    assert!(st.is_empty());
}

#[test]
fn an_edit_that_changes_the_access_key_removes_the_old_key() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-a", "AKIAOLD", &[]));
    st.apply(&vc("vc-a", "AKIANEW", &[]));
    assert!(s.credentials.lookup("AKIAOLD").is_none());
    assert!(s.credentials.lookup("AKIANEW").is_some());
    assert_eq!(s.credentials.len(SourceKind::Kubernetes), 1);
}

#[test]
fn an_edit_that_makes_the_secret_invalid_removes_its_credential_limits_and_counts_it() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-a", "AKIAONE", &[("quota_hard_bytes", "100")]));
    assert!(s.limits.effective(&photos()).is_some());
    st.apply(&vc("vc-a", "AKIAONE", &[("quota_hard_bytes", "lots")]));
    assert!(s.credentials.lookup("AKIAONE").is_none());
    assert!(s.limits.effective(&photos()).is_none());
    assert_eq!(st.invalid_count(), 1);
    st.apply(&vc("vc-a", "AKIAONE", &[]));
    assert!(s.credentials.lookup("AKIAONE").is_some(), "valid again");
    assert_eq!(st.invalid_count(), 0);
    st.apply(&vc("vc-a", "AKIAONE", &[("backend", "bad/backend")]));
    st.delete(&vc("vc-a", "AKIAONE", &[]));
    assert_eq!(
        st.invalid_count(),
        0,
        "a deleted invalid Secret is no longer counted"
    );
}

#[test]
fn quota_edits_update_the_limit_live_and_a_kubernetes_limit_shadows_sqlite() {
    let s = sinks();
    s.limits.set_sqlite(
        photos(),
        Limits {
            hard_bytes: Some(5),
            ..Limits::default()
        },
    );
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-a", "AKIAONE", &[("quota_hard_bytes", "100")]));
    let (l, src) = s.limits.effective(&photos()).unwrap();
    assert_eq!((l.hard_bytes, src), (Some(100), LimitSource::Kubernetes));
    st.apply(&vc("vc-a", "AKIAONE", &[("quota_hard_bytes", "200")]));
    assert_eq!(
        s.limits.effective(&photos()).unwrap().0.hard_bytes,
        Some(200)
    );
    st.apply(&vc("vc-a", "AKIAONE", &[]));
    assert_eq!(
        s.limits.effective(&photos()).unwrap().1,
        LimitSource::Sqlite
    );
}

#[test]
fn deleting_one_of_two_secrets_keeps_the_limit_the_other_carries() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-old", "AKIAOLD", &[("quota_hard_bytes", "100")]));
    st.apply(&vc("vc-new", "AKIANEW", &[("quota_hard_bytes", "100")]));
    st.delete(&vc("vc-old", "AKIAOLD", &[]));
    assert_eq!(
        s.limits.effective(&photos()).unwrap().0.hard_bytes,
        Some(100)
    );
}

#[test]
fn two_secrets_with_one_key_serve_the_first_by_name_until_it_goes() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-b", "AKIASAME", &[("backend", "second")]));
    st.apply(&vc("vc-a", "AKIASAME", &[("backend", "first")]));
    assert_eq!(s.credentials.lookup("AKIASAME").unwrap().backend, "first");
    st.delete(&vc("vc-a", "AKIASAME", &[]));
    assert_eq!(s.credentials.lookup("AKIASAME").unwrap().backend, "second");
    st.delete(&vc("vc-b", "AKIASAME", &[]));
    assert!(s.credentials.lookup("AKIASAME").is_none());
}

#[test]
fn bindings_follow_their_secret_through_edits_role_changes_and_deletes() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&binding("anon-a", "public"));
    assert_eq!(
        s.bindings.for_bucket("public").unwrap().mode,
        AnonymousMode::ReadOnly
    );
    st.apply(&binding("anon-a", "other"));
    assert!(s.bindings.for_bucket("public").is_none());
    // The same Secret now holds a credential: the binding goes.
    st.apply(&vc("anon-a", "AKIAONE", &[]));
    assert!(s.bindings.is_empty());
    st.apply(&binding("anon-b", "public"));
    st.delete(&binding("anon-b", "public"));
    assert!(s.bindings.is_empty());
}

#[test]
fn a_relist_replaces_everything_so_deletions_while_disconnected_vanish() {
    let s = sinks();
    let mut st = SourceState::new(s.clone());
    st.apply(&vc("vc-gone", "AKIAGONE", &[("quota_hard_bytes", "1")]));
    st.apply(&vc("vc-kept", "AKIAKEPT", &[]));
    st.apply(&binding("anon-gone", "public"));
    st.begin_relist();
    st.relist_apply(&vc("vc-kept", "AKIAKEPT", &[]));
    st.relist_apply(&vc("vc-new", "AKIANEW", &[("quota_hard_bytes", "7")]));
    st.relist_apply(&vc("vc-bad", "AKIABAD", &[("quota_soft_bytes", "x")]));
    // Until the list is complete, the old state is served.
    assert!(s.credentials.lookup("AKIAGONE").is_some());
    let sum = st.finish_relist();
    assert_eq!(
        sum,
        RelistSummary {
            secrets: 3,
            credentials: 2,
            bindings: 0,
            invalid: 1,
            removed: 2
        }
    );
    assert!(s.credentials.lookup("AKIAGONE").is_none());
    assert!(s.credentials.lookup("AKIANEW").is_some());
    assert!(s.credentials.lookup("AKIAKEPT").is_some());
    assert!(s.bindings.is_empty());
    assert_eq!(s.limits.effective(&photos()).unwrap().0.hard_bytes, Some(7));
    assert_eq!(st.invalid_count(), 1);
    // Bookkeeping survives the relist: a later edit still withdraws the old key.
    st.apply(&vc("vc-new", "AKIANEWER", &[]));
    assert!(s.credentials.lookup("AKIANEW").is_none());
    assert!(s.limits.effective(&photos()).is_none());
}

#[test]
fn a_relist_does_not_touch_sqlite_entries() {
    let s = sinks();
    let mut sql = crate::kubernetes::decode::decode_credential(&vc("x", "AKIASQL", &[]))
        .unwrap()
        .credential;
    sql.source = crate::credentials::CredentialSource::Sqlite;
    s.credentials.upsert(SourceKind::Sqlite, sql);
    let mut st = SourceState::new(s.clone());
    st.begin_relist();
    st.finish_relist();
    assert!(s.credentials.lookup("AKIASQL").is_some());
}
