//! The usage ledger: per-bucket `used` bytes/objects, the reservations of writes in
//! flight, and the scan epochs that reconcile both with the upstream's ground truth.
//!
//! Admission is a single atomic step per bucket: `used + reserved + charge <= cap` is
//! checked and the reservation recorded under one lock, so N concurrent writers can
//! never all pass against the same snapshot (the TOCTOU hole of the Go proxy).
//!
//! [`UsageLedger`] is a trait so a shared ledger (Redis with a Lua script, or Postgres
//! with a row lock / conditional UPDATE) can replace [`InMemoryLedger`] when several
//! replicas serve one bucket (DESIGN §9). Such an implementation must keep the same
//! guarantee: the check and the reservation are one atomic step in the shared store, so
//! the cap is never overshot across replicas. Nothing here assumes this process is the
//! only writer: a scan replaces `used` with what the upstream reports.
//!
//! Memory: a bucket gets an entry only when it has a limit, a scan or persisted usage,
//! so made-up bucket names under a wildcard scope cannot grow the map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use time::OffsetDateTime;

use super::limits::{BucketKey, Limits};

/// Bytes and objects stored in a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

/// What a write asks to reserve before it is forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    pub bytes: u64,
    pub objects: u64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `used + reserved + charge` would pass the hard byte cap.
    HardBytes,
    /// The object count would pass `max_objects`.
    MaxObjects,
    /// The bucket has a cap but its usage has never been measured: fail closed.
    UsageUnknown,
}

impl Refusal {
    /// The metric label of this refusal.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::HardBytes => "hard_bytes",
            Self::MaxObjects => "max_objects",
            Self::UsageUnknown => "usage_unknown",
        }
    }
}

/// The outcome of settling a reservation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settled {
    /// `used` after the settle.
    pub usage: Usage,
    /// This settle took usage from `<= soft` to `> soft` (log once, set a header).
    pub crossed_soft: bool,
}

/// How many scans a bucket's ledger entry had applied when a request was admitted.
///
/// A delete (or a shrinking overwrite) takes effect upstream between its admission and
/// its settle. A scan that *finished* in that window may have listed the bucket after
/// the effect, so its `used` already lacks the freed bytes; subtracting them again
/// would undercount and let a tenant past the hard cap. Such a settle therefore drops
/// its negative part (counting high until the next scan, never low). Scans still
/// running at the settle already ignore negative deltas (see `finish_scan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanMark(u64);

/// A snapshot of one bucket's ledger state.
#[derive(Debug, Clone, Copy)]
pub struct LedgerView {
    pub used: Usage,
    pub reserved: Usage,
    /// Usage was measured by a scan or restored from disk.
    pub known: bool,
    pub scanned_at: Option<OffsetDateTime>,
    /// `used.bytes` is above the soft cap last passed to `try_reserve`/`settle`.
    pub soft_exceeded: bool,
}

/// Usage accounting with atomic admission (see the module doc).
pub trait UsageLedger: Send + Sync + 'static {
    /// Atomically: admit iff used+reserved+charge <= hard (bytes) and <= max_objects
    /// (objects); record the reservation. A bucket whose usage is not known (never
    /// scanned, nothing persisted) refuses with `UsageUnknown` when it has a hard or
    /// object cap.
    fn try_reserve(&self, key: &BucketKey, limits: &Limits, charge: Charge)
    -> Result<u64, Refusal>;
    /// Drop the reservation and apply the real delta to `used` (saturating at 0).
    /// `crossed_soft`: usage went from <= soft to > soft with this settle.
    fn settle(
        &self,
        key: &BucketKey,
        id: u64,
        delta_bytes: i64,
        delta_objects: i64,
        limits: &Limits,
    ) -> Settled;
    /// Drop a reservation without touching `used` (the write failed or was aborted).
    fn release(&self, key: &BucketKey, id: u64);
    /// Deletes, aborts (saturating at 0).
    fn adjust(&self, key: &BucketKey, delta_bytes: i64, delta_objects: i64);
    /// Where `key` stands now, to pass to [`Self::adjust_since`] later. `try_reserve`
    /// takes its own mark, which `settle` uses the same way.
    fn mark(&self, key: &BucketKey) -> ScanMark;
    /// [`Self::adjust`] for a change that took effect upstream after `since` was
    /// taken: when a scan finished in between, the negative parts are dropped (the
    /// scan may already reflect them). Returns whether anything was dropped.
    fn adjust_since(
        &self,
        key: &BucketKey,
        since: ScanMark,
        delta_bytes: i64,
        delta_objects: i64,
    ) -> bool;
    fn view(&self, key: &BucketKey) -> Option<LedgerView>;
    /// A scan of `key` starts; returns an epoch token.
    fn begin_scan(&self, key: &BucketKey) -> u64;
    /// A scan finished: used = scanned + every POSITIVE delta settled since
    /// `begin_scan` (a write that finished while the listing ran may or may not be in
    /// it, so it is counted again until the next scan rather than risk undercounting;
    /// negative deltas during the scan are ignored for the same reason). Marks known,
    /// sets `scanned_at`.
    fn finish_scan(&self, key: &BucketKey, epoch: u64, scanned: Usage, at: OffsetDateTime);
    /// Load persisted usage at start (known = true).
    fn restore(&self, key: &BucketKey, used: Usage, scanned_at: Option<OffsetDateTime>);
    /// Every key with state, for persistence and metrics.
    fn keys(&self) -> Vec<BucketKey>;
}

/// Positive deltas seen since one scan began.
#[derive(Debug, Clone, Copy)]
struct ScanAcc {
    epoch: u64,
    bytes: u64,
    objects: u64,
}

/// Scans of one bucket that may overlap (periodic + on-demand recount); older ones are
/// dropped past this, and their results then ignored, which keeps usage unchanged.
const MAX_CONCURRENT_SCANS: usize = 8;

#[derive(Debug, Default)]
struct Entry {
    used: Usage,
    /// Sums of `reservations`, in u128 so uncapped huge charges cannot overflow.
    reserved_bytes: u128,
    reserved_objects: u128,
    /// Each reservation's charge, and the scans applied when it was made.
    reservations: HashMap<u64, (Charge, ScanMark)>,
    known: bool,
    scanned_at: Option<OffsetDateTime>,
    scans: Vec<ScanAcc>,
    /// The newest scan epoch applied: an older scan finishing later is stale.
    applied_epoch: u64,
    /// Scans (and restores) that replaced `used`; see [`ScanMark`].
    replaced: u64,
    last_soft: Option<u64>,
}

/// `a + delta`, clamped to `0..=u64::MAX`.
fn apply_delta(a: u64, delta: i64) -> u64 {
    if delta >= 0 {
        a.saturating_add(delta.unsigned_abs())
    } else {
        a.saturating_sub(delta.unsigned_abs())
    }
}

/// Does `used + reserved + charge` stay within `cap`?
fn fits(used: u64, reserved: u128, charge: u64, cap: Option<u64>) -> bool {
    cap.is_none_or(|cap| u128::from(used) + reserved + u128::from(charge) <= u128::from(cap))
}

impl Entry {
    fn admit(&self, limits: &Limits, charge: Charge) -> Result<(), Refusal> {
        let capped = limits.hard_bytes.is_some() || limits.max_objects.is_some();
        if capped && !self.known {
            return Err(Refusal::UsageUnknown);
        }
        if !fits(
            self.used.bytes,
            self.reserved_bytes,
            charge.bytes,
            limits.hard_bytes,
        ) {
            return Err(Refusal::HardBytes);
        }
        let objects_fit = fits(
            self.used.objects,
            self.reserved_objects,
            charge.objects,
            limits.max_objects,
        );
        if !objects_fit {
            return Err(Refusal::MaxObjects);
        }
        Ok(())
    }

    fn unreserve(&mut self, id: u64) {
        if let Some((c, _)) = self.reservations.remove(&id) {
            self.reserved_bytes -= u128::from(c.bytes);
            self.reserved_objects -= u128::from(c.objects);
        }
    }

    fn mark(&self) -> ScanMark {
        ScanMark(self.replaced)
    }

    /// `(bytes, objects)` as they may be applied for a change admitted at `since`:
    /// negative parts are dropped when a scan replaced `used` in between.
    fn since(&self, since: ScanMark, delta_bytes: i64, delta_objects: i64) -> (i64, i64) {
        if since == self.mark() {
            (delta_bytes, delta_objects)
        } else {
            (delta_bytes.max(0), delta_objects.max(0))
        }
    }

    /// Apply a delta to `used`, remembering positive parts for running scans.
    fn apply(&mut self, delta_bytes: i64, delta_objects: i64) {
        self.used.bytes = apply_delta(self.used.bytes, delta_bytes);
        self.used.objects = apply_delta(self.used.objects, delta_objects);
        let (pb, po) = (delta_bytes.max(0), delta_objects.max(0));
        for scan in &mut self.scans {
            scan.bytes = apply_delta(scan.bytes, pb);
            scan.objects = apply_delta(scan.objects, po);
        }
    }

    fn soft_exceeded(&self) -> bool {
        self.last_soft.is_some_and(|s| self.used.bytes > s)
    }

    fn view(&self) -> LedgerView {
        let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        LedgerView {
            used: self.used,
            reserved: Usage {
                bytes: clamp(self.reserved_bytes),
                objects: clamp(self.reserved_objects),
            },
            known: self.known,
            scanned_at: self.scanned_at,
            soft_exceeded: self.soft_exceeded(),
        }
    }
}

/// The in-process ledger: one mutex per bucket inside a sharded map, so admission on
/// different buckets never contends and one bucket's check is O(1).
#[derive(Default)]
pub struct InMemoryLedger {
    entries: DashMap<BucketKey, Mutex<Entry>>,
    /// Reservation ids and scan epochs; global so they are unique and increasing.
    next_id: AtomicU64,
}

fn lock(m: &Mutex<Entry>) -> MutexGuard<'_, Entry> {
    // Every critical section leaves the entry consistent before it can panic, so a
    // poisoned lock still guards valid state.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl InMemoryLedger {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Run `f` on the entry of `key`, creating it if needed. The hot path (entry exists)
    /// takes only a shard read lock and clones nothing.
    fn with_entry<R>(&self, key: &BucketKey, f: impl FnOnce(&mut Entry) -> R) -> R {
        if let Some(e) = self.entries.get(key) {
            return f(&mut lock(e.value()));
        }
        // Downgraded, so readers of other buckets in this shard are not held up.
        let e = self.entries.entry(key.clone()).or_default().downgrade();
        f(&mut lock(e.value()))
    }

    /// Run `f` on an existing entry only (no entry: nothing to do).
    fn with_existing<R>(&self, key: &BucketKey, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.entries.get(key).map(|e| f(&mut lock(e.value())))
    }

    /// Run `f` on the entry of `key`; create it only for a bucket with limits. Usage
    /// of an unlimited bucket that has no entry (no scan, nothing persisted) is not
    /// tracked: it would be a meaningless partial sum, and a tenant with a wildcard
    /// scope could otherwise grow the map with made-up bucket names.
    fn with_tracked<R>(
        &self,
        key: &BucketKey,
        limits: &Limits,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        if limits.is_empty() {
            self.with_existing(key, f)
        } else {
            Some(self.with_entry(key, f))
        }
    }
}

impl UsageLedger for InMemoryLedger {
    fn try_reserve(
        &self,
        key: &BucketKey,
        limits: &Limits,
        charge: Charge,
    ) -> Result<u64, Refusal> {
        let id = self.next();
        self.with_tracked(key, limits, |e| {
            e.last_soft = limits.soft_bytes;
            e.admit(limits, charge)?;
            let mark = e.mark();
            e.reservations.insert(id, (charge, mark));
            e.reserved_bytes += u128::from(charge.bytes);
            e.reserved_objects += u128::from(charge.objects);
            Ok(id)
        })
        .unwrap_or(Ok(id)) // untracked and uncapped: nothing to check
    }

    fn settle(
        &self,
        key: &BucketKey,
        id: u64,
        delta_bytes: i64,
        delta_objects: i64,
        limits: &Limits,
    ) -> Settled {
        self.with_tracked(key, limits, |e| {
            // No reservation (made while untracked): the entry is newer than the write.
            let since = e.reservations.get(&id).map_or(ScanMark(u64::MAX), |r| r.1);
            let (delta_bytes, delta_objects) = e.since(since, delta_bytes, delta_objects);
            e.unreserve(id);
            e.last_soft = limits.soft_bytes;
            let was_over = e.soft_exceeded();
            e.apply(delta_bytes, delta_objects);
            Settled {
                usage: e.used,
                crossed_soft: !was_over && e.soft_exceeded(),
            }
        })
        .unwrap_or_default()
    }

    fn release(&self, key: &BucketKey, id: u64) {
        self.with_existing(key, |e| e.unreserve(id));
    }

    fn adjust(&self, key: &BucketKey, delta_bytes: i64, delta_objects: i64) {
        self.with_existing(key, |e| e.apply(delta_bytes, delta_objects));
    }

    fn mark(&self, key: &BucketKey) -> ScanMark {
        self.entries
            .get(key)
            .map_or(ScanMark::default(), |e| lock(e.value()).mark())
    }

    fn adjust_since(
        &self,
        key: &BucketKey,
        since: ScanMark,
        delta_bytes: i64,
        delta_objects: i64,
    ) -> bool {
        self.with_existing(key, |e| {
            let (bytes, objects) = e.since(since, delta_bytes, delta_objects);
            e.apply(bytes, objects);
            (bytes, objects) != (delta_bytes, delta_objects)
        })
        .unwrap_or(false)
    }

    fn view(&self, key: &BucketKey) -> Option<LedgerView> {
        self.entries.get(key).map(|e| lock(e.value()).view())
    }

    fn begin_scan(&self, key: &BucketKey) -> u64 {
        let epoch = self.next();
        self.with_entry(key, |e| {
            if e.scans.len() >= MAX_CONCURRENT_SCANS {
                e.scans.remove(0);
            }
            e.scans.push(ScanAcc {
                epoch,
                bytes: 0,
                objects: 0,
            });
        });
        epoch
    }

    fn finish_scan(&self, key: &BucketKey, epoch: u64, scanned: Usage, at: OffsetDateTime) {
        self.with_existing(key, |e| {
            let Some(pos) = e.scans.iter().position(|s| s.epoch == epoch) else {
                return; // unknown or evicted epoch: keep what we have
            };
            let acc = e.scans.remove(pos);
            if epoch < e.applied_epoch {
                return; // a newer scan already finished
            }
            e.applied_epoch = epoch;
            e.replaced += 1;
            e.used = Usage {
                bytes: scanned.bytes.saturating_add(acc.bytes),
                objects: scanned.objects.saturating_add(acc.objects),
            };
            e.known = true;
            e.scanned_at = Some(at);
        });
    }

    fn restore(&self, key: &BucketKey, used: Usage, scanned_at: Option<OffsetDateTime>) {
        self.with_entry(key, |e| {
            // A scan that already finished in this process is newer than the disk.
            if e.applied_epoch == 0 {
                e.replaced += 1;
                e.used = used;
                e.known = true;
                e.scanned_at = scanned_at;
            }
        });
    }

    fn keys(&self) -> Vec<BucketKey> {
        self.entries.iter().map(|e| e.key().clone()).collect()
    }
}

/// A reservation held by a write in flight. Released on drop unless settled — so a
/// client abort, an upstream error or a panic never leaks a reservation.
pub struct Reservation {
    ledger: Arc<dyn UsageLedger>,
    key: BucketKey,
    id: u64,
    charge: Charge,
    done: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("key", &self.key)
            .field("id", &self.id)
            .field("charge", &self.charge)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// Turn the reservation into usage: apply the real delta (which may differ from the
    /// charge, e.g. an overwrite adds `new - old` bytes and no object).
    pub fn settle(mut self, delta_bytes: i64, delta_objects: i64, limits: &Limits) -> Settled {
        self.done = true;
        self.ledger
            .settle(&self.key, self.id, delta_bytes, delta_objects, limits)
    }

    #[must_use]
    pub fn key(&self) -> &BucketKey {
        &self.key
    }

    #[must_use]
    pub fn charge(&self) -> Charge {
        self.charge
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.ledger.release(&self.key, self.id);
        }
    }
}

/// Reserve `charge` on `key`, returning a guard that releases it unless settled.
///
/// # Errors
/// The [`Refusal`] of the ledger.
pub fn reserve(
    ledger: &Arc<dyn UsageLedger>,
    key: &BucketKey,
    limits: &Limits,
    charge: Charge,
) -> Result<Reservation, Refusal> {
    let id = ledger.try_reserve(key, limits, charge)?;
    Ok(Reservation {
        ledger: Arc::clone(ledger),
        key: key.clone(),
        id,
        charge,
        done: false,
    })
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
