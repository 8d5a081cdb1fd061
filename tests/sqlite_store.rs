//! The SQLite credential store against real files: CRUD, two processes' worth of
//! handles on one database, root-key checks, migrations, the change feed and the
//! poller that feeds a running proxy's cache.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stowage::credentials::cache::{CredentialCache, CredentialLookup, SourceKind};
use stowage::credentials::model::{Access, CredentialSource, Scope};
use stowage::credentials::sqlite::{Change, NewCredential, SqliteStore, StoreError, spawn_poller};
use stowage::secret::{RootKey, SecretKey};
use time::OffsetDateTime;

fn root(b: u8) -> RootKey {
    RootKey::from_bytes([b; 32])
}

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/stowage.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, root(1)).unwrap()
}

fn req(bucket: &str) -> NewCredential {
    NewCredential {
        backend: "local".into(),
        scopes: vec![Scope {
            bucket: bucket.into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at: None,
        description: "test".into(),
        enabled: true,
    }
}

fn upserted(changes: &[Change]) -> Vec<(&str, bool)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(c) => Some((c.access_key_id.as_str(), c.enabled)),
            Change::Remove(_) => None,
        })
        .collect()
}

#[test]
fn credentials_can_be_created_read_listed_toggled_rotated_and_deleted() {
    let (_dir, path) = db();
    let store = open(&path);
    let (ak, sk) = store.create_credential(req("photos")).unwrap();
    assert_eq!(ak.len(), 20);
    assert!(sk.len() >= 40);

    let got = store.get_credential(&ak).unwrap().unwrap();
    assert_eq!(got.secret, sk);
    assert_eq!(got.backend, "local");
    assert_eq!(got.source, CredentialSource::Sqlite);
    assert!(got.enabled);

    let list = store.list_credentials().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].access_key_id, ak);
    assert_eq!(list[0].scopes[0].bucket, "photos");

    store.set_enabled(&ak, false).unwrap();
    assert!(!store.get_credential(&ak).unwrap().unwrap().enabled);
    store.set_enabled(&ak, true).unwrap();

    let later = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store.set_expiry(&ak, Some(later)).unwrap();
    let rec = store.get_record(&ak).unwrap().unwrap();
    assert_eq!(
        rec.expires_at.map(|t| t.unix_timestamp()),
        Some(later.unix_timestamp())
    );

    let new_scopes = vec![Scope {
        bucket: "team-*".into(),
        access: Access::ReadOnly,
        prefix: Some("a/".into()),
    }];
    store.update_scopes(&ak, &new_scopes).unwrap();
    assert_eq!(
        store.get_credential(&ak).unwrap().unwrap().scopes,
        new_scopes
    );

    let rotated = store.rotate_secret(&ak).unwrap();
    assert_ne!(rotated, sk);
    assert_eq!(store.get_credential(&ak).unwrap().unwrap().secret, rotated);

    store.delete_credential(&ak).unwrap();
    assert!(store.get_credential(&ak).unwrap().is_none());
    assert!(store.list_credentials().unwrap().is_empty());
}

#[test]
fn operations_on_a_missing_key_report_not_found() {
    let (_dir, path) = db();
    let store = open(&path);
    let nf = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound(ak)) if ak == "NOPE");
    assert!(nf(store.set_enabled("NOPE", true)));
    assert!(nf(store.delete_credential("NOPE")));
    assert!(nf(store.set_expiry("NOPE", None)));
    assert!(nf(store.update_scopes("NOPE", &req("a-b").scopes)));
    assert!(matches!(
        store.rotate_secret("NOPE"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn invalid_credentials_are_refused_on_write() {
    let (_dir, path) = db();
    let store = open(&path);
    let mut empty = req("photos");
    empty.scopes.clear();
    assert!(matches!(
        store.create_credential(empty),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_credential(req("a*b*")),
        Err(StoreError::Invalid(_))
    ));
    let mut abs = req("photos");
    abs.scopes[0].prefix = Some("/abs".into());
    assert!(matches!(
        store.create_credential(abs),
        Err(StoreError::Invalid(_))
    ));
    assert!(store.list_credentials().unwrap().is_empty());
}

#[test]
fn caller_chosen_key_pairs_are_stored_and_duplicates_refused() {
    let (_dir, path) = db();
    let store = open(&path);
    let sk = SecretKey::new("quickstart-demo-secret-0123456789abcdef");
    store
        .insert_credential_with_secret("STOWAGEDEMO", &sk, req("demo"))
        .unwrap();
    assert_eq!(
        store.get_credential("STOWAGEDEMO").unwrap().unwrap().secret,
        sk
    );
    let again = store.insert_credential_with_secret("STOWAGEDEMO", &sk, req("demo"));
    assert!(matches!(again, Err(StoreError::AlreadyExists(_))));
}

#[test]
fn the_database_file_is_private() {
    let (_dir, path) = db();
    drop(open(&path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn migrations_are_recorded_in_user_version_and_reopening_is_idempotent() {
    let (_dir, path) = db();
    let store = open(&path);
    let (ak, _) = store.create_credential(req("photos")).unwrap();
    let version = store.schema_version().unwrap();
    assert_eq!(
        version,
        i64::try_from(stowage::credentials::sqlite::MIGRATIONS.len()).unwrap()
    );
    drop(store);
    let again = open(&path);
    assert_eq!(again.schema_version().unwrap(), version);
    assert!(again.get_credential(&ak).unwrap().is_some());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let (_dir, path) = db();
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open(&path, root(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn a_wrong_root_key_fails_open_with_a_clear_message() {
    let (_dir, path) = db();
    let (_, sk) = open(&path).create_credential(req("photos")).unwrap();
    let err = SqliteStore::open(&path, root(2)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("root key does not match"), "{msg}");
    assert!(
        msg.contains(&root(2).key_id()) && msg.contains(&root(1).key_id()),
        "{msg}"
    );
    assert!(!msg.contains(sk.expose()));
}

#[test]
fn a_wrong_root_key_is_caught_even_without_the_recorded_check() {
    let (_dir, path) = db();
    open(&path).create_credential(req("photos")).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM meta", [])
        .unwrap();
    let err = SqliteStore::open(&path, root(2)).unwrap_err();
    assert!(matches!(err, StoreError::RootKeyMismatch { .. }), "{err}");
    // The right key re-records the check.
    drop(open(&path));
    assert!(SqliteStore::open(&path, root(2)).is_err());
}

#[test]
fn a_second_handle_sees_the_first_handles_writes_through_the_change_feed() {
    let (_dir, path) = db();
    let server = open(&path);
    let cli = open(&path);
    let (_, start) = server.load_all().unwrap();

    let (a, _) = cli.create_credential(req("photos")).unwrap();
    let (b, _) = cli.create_credential(req("videos")).unwrap();
    let (changes, seq) = server.changes_since(start).unwrap();
    assert!(seq > start);
    let mut seen = upserted(&changes);
    seen.sort_unstable();
    let mut want = vec![(a.as_str(), true), (b.as_str(), true)];
    want.sort_unstable();
    assert_eq!(seen, want);

    cli.set_enabled(&a, false).unwrap();
    cli.set_enabled(&a, true).unwrap();
    cli.set_enabled(&a, false).unwrap();
    cli.delete_credential(&b).unwrap();
    let (changes, seq2) = server.changes_since(seq).unwrap();
    assert_eq!(
        changes.len(),
        2,
        "one change per credential, however many edits"
    );
    assert_eq!(upserted(&changes), vec![(a.as_str(), false)]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Remove(k) if *k == b))
    );

    let (none, seq3) = server.changes_since(seq2).unwrap();
    assert!(none.is_empty());
    assert_eq!(seq3, seq2);
}

#[test]
fn a_secret_moved_to_another_row_does_not_open_and_is_dropped() {
    let (_dir, path) = db();
    let store = open(&path);
    let (a, _) = store.create_credential(req("photos")).unwrap();
    let (b, _) = store.create_credential(req("videos")).unwrap();
    let (_, seq) = store.load_all().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE credentials SET secret_sealed = (SELECT secret_sealed FROM credentials WHERE access_key_id = ?1) \
         WHERE access_key_id = ?2",
        [&a, &b],
    )
    .unwrap();
    let (changes, _) = store.changes_since(seq).unwrap();
    assert!(
        matches!(&changes[..], [Change::Remove(k)] if *k == b),
        "{changes:?}"
    );
    let (all, _) = store.load_all().unwrap();
    assert_eq!(
        all.iter()
            .map(|c| c.access_key_id.as_str())
            .collect::<Vec<_>>(),
        vec![a.as_str()]
    );
    assert!(matches!(
        store.get_credential(&b),
        Err(StoreError::Unseal(_))
    ));
}

#[test]
fn a_reader_behind_the_pruned_feed_is_told_to_reload() {
    let (_dir, path) = db();
    let store = open(&path);
    let (_, start) = store.load_all().unwrap();
    store.create_credential(req("photos")).unwrap();
    let (_, latest) = store.load_all().unwrap();
    let pruned = store
        .prune_changes(OffsetDateTime::now_utc() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(matches!(
        store.changes_since(start),
        Err(StoreError::FeedGap { .. })
    ));
    let (none, seq) = store.changes_since(latest).unwrap();
    assert!(none.is_empty() && seq == latest);
    assert!(matches!(
        store.changes_since(latest + 5),
        Err(StoreError::FeedGap { .. })
    ));
    // Recent rows survive a prune with the normal retention.
    store.create_credential(req("videos")).unwrap();
    assert_eq!(
        store
            .prune_changes(OffsetDateTime::now_utc() - Duration::from_secs(3600))
            .unwrap(),
        0
    );
    assert_eq!(store.changes_since(latest).unwrap().0.len(), 1);
}

#[test]
fn errors_and_debug_output_never_contain_secrets() {
    let (_dir, path) = db();
    let store = open(&path);
    let (ak, sk) = store.create_credential(req("photos")).unwrap();
    let cred = store.get_credential(&ak).unwrap().unwrap();
    assert!(!format!("{cred:?} {store:?}").contains(sk.expose()));
    let (changes, _) = store.changes_since(0).unwrap();
    assert!(!format!("{changes:?}").contains(sk.expose()));
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not within 2 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_shows_changes_from_another_handle_within_two_seconds() {
    let (_dir, path) = db();
    let server = Arc::new(open(&path));
    let (existing, _) = server.create_credential(req("photos")).unwrap();
    let cache = Arc::new(CredentialCache::new());
    let poller = spawn_poller(
        Arc::clone(&server),
        Arc::clone(&cache),
        Duration::from_millis(100),
    );
    eventually("initial load", || cache.lookup(&existing).is_some()).await;

    let cli = open(&path);
    let (ak, sk) = cli.create_credential(req("videos")).unwrap();
    eventually("created", || {
        cache.lookup(&ak).is_some_and(|c| c.secret == sk)
    })
    .await;
    cli.set_enabled(&ak, false).unwrap();
    eventually("disabled", || cache.lookup(&ak).is_some_and(|c| !c.enabled)).await;
    let rotated = cli.rotate_secret(&ak).unwrap();
    eventually("rotated", || {
        cache.lookup(&ak).is_some_and(|c| c.secret == rotated)
    })
    .await;
    cli.delete_credential(&ak).unwrap();
    eventually("deleted", || cache.lookup(&ak).is_none()).await;
    assert_eq!(cache.len(SourceKind::Sqlite), 1);
    poller.abort();
}

#[test]
fn loading_100k_credentials() {
    let (_dir, path) = db();
    let store = open(&path);
    let secret = SecretKey::new("s".repeat(40));
    let t = Instant::now();
    let n = store
        .insert_many_with_secrets(
            (0..100_000).map(|i| (format!("LOAD{i:016}"), secret.clone(), req("photos"))),
        )
        .unwrap();
    let inserted = t.elapsed();
    let t = Instant::now();
    let (all, seq) = store.load_all().unwrap();
    let loaded = t.elapsed();
    assert_eq!((n, all.len()), (100_000, 100_000));
    let t = Instant::now();
    let (changes, _) = store.changes_since(seq - 1).unwrap();
    let one = t.elapsed();
    assert_eq!(changes.len(), 1);
    println!("100k credentials: insert {inserted:?}, load_all {loaded:?}, one change {one:?}");
}
