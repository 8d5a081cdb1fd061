//! The periodic eviction of idle rate-limit buckets, stopped with the proxy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::RateLimits;

/// Run [`RateLimits::housekeep`] every `every` until `stop` turns `true` (or its
/// sender is dropped).
pub fn spawn_housekeeping(
    limits: Arc<RateLimits>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once; nothing is idle yet at start-up.
        tick.tick().await;
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = tick.tick() => {
                    // A pass walks every tracked key: off the async workers, so a
                    // large map never stalls request handling.
                    let limits = Arc::clone(&limits);
                    let _ = tokio::task::spawn_blocking(move || limits.housekeep()).await;
                }
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use prometheus::{IntCounterVec, Opts};

    use super::*;
    use crate::ratelimit::{RateLimitStore, Subject, Throttled};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl RateLimitStore for Counting {
        fn check(&self, _: Subject<'_>) -> Result<(), Throttled> {
            Ok(())
        }
        fn housekeep(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn housekeeping_runs_periodically_and_stops_on_shutdown() {
        let store = Arc::new(Counting::default());
        let counter = IntCounterVec::new(Opts::new("t", "t"), &["scope"]).expect("metric");
        let limits = Arc::new(RateLimits::new(store.clone(), counter));
        let (tx, rx) = watch::channel(false);
        let task = spawn_housekeeping(limits, Duration::from_millis(5), rx);
        // Wait for passes rather than for time, so a slow machine only waits longer.
        let two_passes = async {
            while store.0.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), two_passes)
            .await
            .expect("housekeeping runs");
        tx.send(true).expect("task listening");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .expect("no panic");
    }
}
