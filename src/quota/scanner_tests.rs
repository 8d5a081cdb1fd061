//! Scanner behaviour that needs no real S3 server: coalescing, and failures that
//! leave the ledger alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;
use crate::quota::ledger::InMemoryLedger;
use crate::secret::SecretKey;
use crate::upstream::client::ClientOptions;

#[derive(Default)]
struct Sink {
    saved: Mutex<Vec<(BucketKey, Usage)>>,
}

impl ScanSink for Sink {
    fn save_usage(&self, key: &BucketKey, used: Usage, _: OffsetDateTime) {
        self.saved.lock().unwrap().push((key.clone(), used));
    }
    fn pending_recounts(&self) -> Vec<(BucketKey, OffsetDateTime)> {
        Vec::new()
    }
    fn recount_done(&self, _: &BucketKey, _: Usage, _: OffsetDateTime) {}
}

fn scanner(endpoint: &str, ledger: Arc<dyn UsageLedger>) -> (Arc<Scanner>, IntCounter) {
    let client = UpstreamClient::new(&ClientOptions {
        connect_timeout: Duration::from_secs(1),
        response_header_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        pool_idle_timeout: Duration::from_secs(1),
        pool_max_idle_per_host: 0,
    });
    let backend = UpstreamBackend::new(
        "b",
        &endpoint.parse().unwrap(),
        "us-east-1",
        "AK",
        &SecretKey::new("sk"),
    )
    .unwrap();
    let errors = scan_errors_counter();
    let backends = HashMap::from([("b".to_owned(), backend)]);
    let s = Scanner::new(
        client,
        backends,
        ledger,
        Arc::new(Sink::default()),
        errors.clone(),
    );
    (s, errors)
}

/// An "upstream" that accepts, reads a little, waits, and hangs up: every scan
/// against it fails after `delay`. Counts its connections.
async fn hang_up_after(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                tokio::time::sleep(delay).await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn concurrent_scans_of_one_bucket_share_one_listing() {
    let (endpoint, accepted) = hang_up_after(Duration::from_millis(300)).await;
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let (s, errors) = scanner(&endpoint, Arc::clone(&ledger));
    let key = BucketKey::new("b", "bucket");
    let (a, b) = tokio::join!(s.scan(&key), s.scan(&key));
    assert!(a.is_err() && b.is_err());
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one listing");
    assert_eq!(errors.get(), 1, "one failure counted");
    // Finished scans are not joined: the next request lists again.
    assert!(s.scan(&key).await.is_err());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_scan_leaves_the_known_usage_untouched() {
    let (endpoint, _) = hang_up_after(Duration::ZERO).await;
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let key = BucketKey::new("b", "bucket");
    let before = Usage {
        bytes: 42,
        objects: 2,
    };
    ledger.restore(&key, before, None);
    let (s, errors) = scanner(&endpoint, Arc::clone(&ledger));
    assert!(matches!(
        s.scan(&key).await,
        Err(ScanError::Upstream(AdminOpError::Unavailable))
    ));
    let view = ledger.view(&key).unwrap();
    assert!(view.known);
    assert_eq!(view.used, before);
    assert_eq!(errors.get(), 1);
    assert!(!s.lists_uploads("b"), "unknown until a scan succeeds");
}

#[tokio::test]
async fn a_bucket_on_an_unknown_backend_fails_without_touching_the_ledger() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let (s, errors) = scanner("http://127.0.0.1:9", Arc::clone(&ledger));
    let key = BucketKey::new("elsewhere", "bucket");
    assert_eq!(s.scan(&key).await, Err(ScanError::UnknownBackend));
    assert!(ledger.view(&key).is_none());
    assert_eq!(errors.get(), 1);
}
