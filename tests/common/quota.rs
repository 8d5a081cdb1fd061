//! Helpers for the quota suites: setting limits the way an operator does (SQLite row
//! plus the live cache), reading the proxy's ledger, listing what really landed
//! upstream, waiting for the scanner, and an SDK client with the default retries on
//! (to prove a 507 is not retried).

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use stowage::quota::ledger::{LedgerView, Usage};
use stowage::quota::{BucketKey, Limits};

use super::clients::{LocalhostResolver, Recorder};
use super::{BACKEND, Harness, REGION};

pub const KIB: u64 = 1024;

pub fn key(bucket: &str) -> BucketKey {
    BucketKey::new(BACKEND, bucket)
}

pub fn hard(bytes: u64) -> Limits {
    Limits {
        hard_bytes: Some(bytes),
        ..Limits::default()
    }
}

/// Set a bucket's limits as `stowage quota set` does, and make them live now.
pub fn set_limits(h: &Harness, bucket: &str, limits: Limits) {
    h.store()
        .set_limits(&key(bucket), limits)
        .expect("store the limits");
    h.running().quota_limits.set_sqlite(key(bucket), limits);
}

/// The proxy's ledger entry for `bucket`.
pub fn view(h: &Harness, bucket: &str) -> Option<LedgerView> {
    h.running().ledger.view(&key(bucket))
}

/// The proxy's counted usage (panics when the bucket has no known usage).
pub fn used(h: &Harness, bucket: &str) -> Usage {
    let v = view(h, bucket).expect("the bucket has a ledger entry");
    assert!(v.known, "usage of {bucket} is known");
    v.used
}

/// Poll `check` every 50 ms until it holds or `timeout` passes; the last value.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait (up to 5 s) until the ledger's usage of `bucket` is known and equals `want`.
pub async fn wait_used(h: &Harness, bucket: &str, want: Usage) -> Usage {
    wait_until(Duration::from_secs(5), || async {
        view(h, bucket).is_some_and(|v| v.known && v.used == want)
    })
    .await;
    used(h, bucket)
}

/// Wait (up to 5 s) for the first scan of a bucket that just got a limit.
pub async fn wait_known(h: &Harness, bucket: &str) {
    let known = wait_until(Duration::from_secs(5), || async {
        view(h, bucket).is_some_and(|v| v.known)
    })
    .await;
    assert!(known, "the scanner measured {bucket} within 5 s");
}

/// What really landed upstream: bytes and objects from a full ListObjectsV2.
pub async fn listed(h: &Harness, bucket: &str) -> Usage {
    let mut usage = Usage::default();
    let mut token = None;
    loop {
        let out = h
            .admin_client()
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list upstream");
        for o in out.contents() {
            usage.bytes += u64::try_from(o.size().unwrap_or(0)).expect("size");
            usage.objects += 1;
        }
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return usage;
        }
    }
}

/// A path-style client with the SDK's standard retry policy (3 attempts).
pub fn retrying_client(h: &Harness, ak: &str, sk: &str, recorder: &Recorder) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_with_resolver(LocalhostResolver);
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ak, sk, None, None, "e2e"))
        .endpoint_url(h.proxy_url())
        .force_path_style(true)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .http_client(http)
        .interceptor(recorder.clone())
        .build();
    Client::from_conf(conf)
}
