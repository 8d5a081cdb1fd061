use std::path::PathBuf;

use super::*;
use crate::quota::ledger::InMemoryLedger;
use crate::secret::RootKey;

fn open(path: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path, RootKey::from_bytes([3; 32])).unwrap())
}

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    (dir, path)
}

fn key(b: &str) -> BucketKey {
    BucketKey::new("local", b)
}

fn hard(n: u64) -> Limits {
    Limits {
        hard_bytes: Some(n),
        ..Limits::default()
    }
}

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

#[test]
fn usage_survives_a_restart_through_flush_and_restore() {
    let (_d, path) = db();
    let store = open(&path);
    let ledger = InMemoryLedger::new();
    let e = ledger.begin_scan(&key("a"));
    ledger.finish_scan(
        &key("a"),
        e,
        Usage {
            bytes: 10,
            objects: 1,
        },
        at(100),
    );
    ledger.adjust(&key("a"), 5, 1);
    ledger.adjust(&key("never-scanned"), 7, 1);
    assert_eq!(
        flush_all(&store, &ledger).unwrap(),
        1,
        "unknown usage is not persisted"
    );
    drop(store);

    let store = open(&path);
    let restarted = InMemoryLedger::new();
    assert_eq!(restore_usage(&store, &restarted).unwrap(), 1);
    let v = restarted.view(&key("a")).unwrap();
    assert!(v.known);
    assert_eq!(
        v.used,
        Usage {
            bytes: 15,
            objects: 2
        }
    );
    assert_eq!(v.scanned_at, Some(at(100)));
    assert!(restarted.view(&key("never-scanned")).is_none());
}

#[test]
fn flush_writes_only_what_changed_since_the_last_flush() {
    let (_d, path) = db();
    let store = open(&path);
    let ledger = InMemoryLedger::new();
    ledger.restore(&key("a"), Usage::default(), Some(at(1)));
    ledger.restore(&key("b"), Usage::default(), Some(at(1)));
    let mut last = Flushed::new();
    assert_eq!(flush_changed(&store, &ledger, &mut last).unwrap(), 2);
    assert_eq!(flush_changed(&store, &ledger, &mut last).unwrap(), 0);
    ledger.adjust(&key("b"), 3, 1);
    assert_eq!(flush_changed(&store, &ledger, &mut last).unwrap(), 1);
}

#[test]
fn rows_that_only_request_a_recount_are_not_restored() {
    let (_d, path) = db();
    let store = open(&path);
    store.request_recount(&key("a")).unwrap();
    let ledger = InMemoryLedger::new();
    assert_eq!(restore_usage(&store, &ledger).unwrap(), 0);
    assert!(ledger.view(&key("a")).is_none());
}

async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn limits_set_by_another_process_reach_the_cache() {
    let (_d, path) = db();
    let server = open(&path);
    let cache = Arc::new(LimitCache::new());
    let (stop, rx) = watch::channel(false);
    let task = spawn_limit_poller(server, Arc::clone(&cache), Duration::from_millis(20), rx);

    let cli = open(&path);
    cli.set_limits(&key("a"), hard(100)).unwrap();
    assert!(eventually(|| cache.effective(&key("a")).is_some()).await);
    cli.clear_limits(&key("a")).unwrap();
    assert!(eventually(|| cache.effective(&key("a")).is_none()).await);
    let _ = stop.send(true);
    task.await.unwrap();
}

#[tokio::test]
async fn usage_flushes_do_not_churn_the_limit_cache() {
    let (_d, path) = db();
    let server = open(&path);
    server.set_limits(&key("a"), hard(100)).unwrap();
    let cache = Arc::new(LimitCache::new());
    let (stop, rx) = watch::channel(false);
    let task = spawn_limit_poller(
        Arc::clone(&server),
        Arc::clone(&cache),
        Duration::from_millis(20),
        rx,
    );
    assert!(eventually(|| cache.effective(&key("a")).is_some()).await);
    let generation = cache.generation();
    for i in 0..5 {
        server
            .save_usage(&[(
                key("a"),
                Usage {
                    bytes: i,
                    objects: 0,
                },
                at(1),
            )])
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(cache.generation(), generation);
    let _ = stop.send(true);
    task.await.unwrap();
}

#[tokio::test]
async fn the_flusher_persists_usage_while_running() {
    let (_d, path) = db();
    let store = open(&path);
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    ledger.restore(
        &key("a"),
        Usage {
            bytes: 1,
            objects: 1,
        },
        Some(at(1)),
    );
    let (stop, rx) = watch::channel(false);
    let task = spawn_usage_flusher(
        Arc::clone(&store),
        Arc::clone(&ledger),
        Duration::from_millis(20),
        rx,
    );
    ledger.adjust(&key("a"), 41, 0);
    let persisted = || {
        store
            .usage_of(&key("a"))
            .unwrap()
            .is_some_and(|r| r.usage.bytes == 42)
    };
    assert!(eventually(persisted).await);
    let _ = stop.send(true);
    task.await.unwrap();
}
