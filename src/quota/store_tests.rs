use time::Duration;

use super::*;
use crate::secret::RootKey;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db"), RootKey::from_bytes([7; 32])).unwrap();
    (dir, store)
}

fn key(b: &str) -> BucketKey {
    BucketKey::new("local", b)
}

fn limits(hard: Option<u64>, soft: Option<u64>, objects: Option<u64>) -> Limits {
    Limits {
        hard_bytes: hard,
        soft_bytes: soft,
        max_objects: objects,
    }
}

fn field_of(e: QuotaStoreError) -> &'static str {
    match e {
        QuotaStoreError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn limits_are_set_replaced_listed_and_cleared() {
    let (_d, s) = open();
    s.set_limits(&key("b"), limits(Some(100), Some(50), None))
        .unwrap();
    s.set_limits(&key("a"), limits(None, None, Some(3)))
        .unwrap();
    s.set_limits(&key("b"), limits(Some(200), None, None))
        .unwrap();
    let rows = s.list_limits().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].key, key("a"));
    assert_eq!(rows[1].limits, limits(Some(200), None, None));
    assert!(s.clear_limits(&key("b")).unwrap());
    assert!(!s.clear_limits(&key("b")).unwrap());
    assert_eq!(s.list_limits().unwrap().len(), 1);
}

#[test]
fn invalid_limits_are_refused_naming_the_field() {
    let (_d, s) = open();
    let soft_over_hard = s.set_limits(&key("a"), limits(Some(10), Some(11), None));
    assert_eq!(field_of(soft_over_hard.unwrap_err()), "soft_bytes");
    let none = s.set_limits(&key("a"), Limits::default());
    assert_eq!(field_of(none.unwrap_err()), "limits");
    let zero = s.set_limits(&key("a"), limits(Some(0), None, None));
    assert_eq!(field_of(zero.unwrap_err()), "hard_bytes");
    let huge = s.set_limits(&key("a"), limits(None, None, Some(u64::MAX)));
    assert_eq!(field_of(huge.unwrap_err()), "max_objects");
    assert!(s.list_limits().unwrap().is_empty());
}

fn t(ms: i64) -> OffsetDateTime {
    from_millis(ms)
}

#[test]
fn millisecond_times_round_trip() {
    let at = t(1_700_000_000_123);
    assert_eq!(from_millis(to_millis(at)), at);
}

#[test]
fn saved_usage_is_loaded_back_and_never_moves_scanned_at_backwards() {
    let (_d, s) = open();
    let u = |b| Usage {
        bytes: b,
        objects: 1,
    };
    s.save_usage(&[(key("a"), u(10), t(2_000))]).unwrap();
    s.save_usage(&[(key("a"), u(5), t(1_000))]).unwrap(); // stale flush: ignored
    s.save_usage(&[(key("a"), u(12), t(2_000))]).unwrap(); // same scan, new deltas
    let rows = s.load_usage().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].usage, u(12));
    assert_eq!(rows[0].scanned_at, Some(t(2_000)));
}

#[test]
fn a_recount_is_pending_until_a_scan_that_began_after_it_is_recorded() {
    let (_d, s) = open();
    let requested = s.request_recount(&key("a")).unwrap();
    let row = s.usage_of(&key("a")).unwrap().unwrap();
    assert_eq!(row.scanned_at, None, "a bare request carries no usage");
    assert_eq!(s.pending_recounts().unwrap(), vec![(key("a"), requested)]);

    let before = requested - Duration::milliseconds(5);
    s.record_recount_done(&key("a"), Usage::default(), before)
        .unwrap();
    assert_eq!(s.pending_recounts().unwrap().len(), 1, "began too early");

    let usage = Usage {
        bytes: 42,
        objects: 2,
    };
    s.record_recount_done(&key("a"), usage, requested).unwrap();
    assert!(s.pending_recounts().unwrap().is_empty());
    let row = s.usage_of(&key("a")).unwrap().unwrap();
    assert_eq!(row.usage, usage);
    assert!(row.scanned_at.unwrap() >= requested);
}

#[test]
fn a_usage_flush_keeps_a_pending_recount_request() {
    let (_d, s) = open();
    let requested = s.request_recount(&key("a")).unwrap();
    s.save_usage(&[(key("a"), Usage::default(), t(1))]).unwrap();
    assert_eq!(s.pending_recounts().unwrap(), vec![(key("a"), requested)]);
}

#[test]
fn data_version_changes_when_another_connection_commits() {
    let (d, s) = open();
    let v0 = s.data_version().unwrap();
    assert_eq!(s.data_version().unwrap(), v0);
    let other = SqliteStore::open(&d.path().join("s.db"), RootKey::from_bytes([7; 32])).unwrap();
    other
        .set_limits(&key("a"), limits(Some(1), None, None))
        .unwrap();
    assert_ne!(s.data_version().unwrap(), v0);
}
