use std::sync::Arc;

use proptest::prelude::*;
use time::OffsetDateTime;

use super::*;

fn key() -> BucketKey {
    BucketKey::new("local", "b")
}

fn hard(n: u64) -> Limits {
    Limits {
        hard_bytes: Some(n),
        ..Limits::default()
    }
}

fn bytes(n: u64) -> Charge {
    Charge {
        bytes: n,
        objects: 1,
    }
}

fn known_ledger(used: Usage) -> Arc<dyn UsageLedger> {
    let l = InMemoryLedger::new();
    l.restore(&key(), used, None);
    Arc::new(l)
}

fn used(l: &Arc<dyn UsageLedger>) -> Usage {
    l.view(&key()).unwrap().used
}

#[test]
fn sixty_four_racing_writers_never_push_usage_past_the_hard_cap() {
    let ledger = known_ledger(Usage::default());
    let limits = hard(10_000);
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                let mut admitted = 0u64;
                for _ in 0..200 {
                    if let Ok(r) = reserve(&ledger, &key(), &limits, bytes(7)) {
                        let v = ledger.view(&key()).unwrap();
                        assert!(v.used.bytes + v.reserved.bytes <= 10_000);
                        r.settle(7, 1, &limits);
                        admitted += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let u = used(&ledger);
    assert!(u.bytes <= 10_000, "used {} past the cap", u.bytes);
    assert_eq!(u.bytes, admitted * 7);
    // The cap is reached exactly: 10_000 / 7 writes fit, the next one never does.
    assert_eq!(admitted, 10_000 / 7);
}

#[test]
fn a_dropped_reservation_is_released() {
    let ledger = known_ledger(Usage::default());
    let r = reserve(&ledger, &key(), &hard(10), bytes(10)).unwrap();
    assert_eq!(
        reserve(&ledger, &key(), &hard(10), bytes(1)).unwrap_err(),
        Refusal::HardBytes
    );
    drop(r);
    let v = ledger.view(&key()).unwrap();
    assert_eq!(v.reserved, Usage::default());
    assert_eq!(v.used, Usage::default());
    assert!(reserve(&ledger, &key(), &hard(10), bytes(10)).is_ok());
}

#[test]
fn a_reservation_dropped_by_a_panicking_task_is_released() {
    let ledger = known_ledger(Usage::default());
    let l2 = Arc::clone(&ledger);
    let res = std::thread::spawn(move || {
        let _r = reserve(&l2, &key(), &hard(10), bytes(10)).unwrap();
        panic!("upstream handler blew up");
    })
    .join();
    assert!(res.is_err());
    assert_eq!(ledger.view(&key()).unwrap().reserved.bytes, 0);
}

#[test]
fn settled_reservation_becomes_usage_and_frees_its_reservation() {
    let ledger = known_ledger(Usage {
        bytes: 5,
        objects: 1,
    });
    let r = reserve(&ledger, &key(), &hard(100), bytes(10)).unwrap();
    assert_eq!(r.charge(), bytes(10));
    let s = r.settle(8, 1, &hard(100));
    assert_eq!(
        s.usage,
        Usage {
            bytes: 13,
            objects: 2
        }
    );
    assert_eq!(ledger.view(&key()).unwrap().reserved, Usage::default());
}

#[test]
fn soft_crossing_is_reported_once_per_crossing() {
    let ledger = known_ledger(Usage::default());
    let soft = Limits {
        soft_bytes: Some(100),
        ..Limits::default()
    };
    let put = |n: i64| {
        reserve(&ledger, &key(), &soft, bytes(n.unsigned_abs()))
            .unwrap()
            .settle(n, 0, &soft)
            .crossed_soft
    };
    assert!(!put(100), "exactly at soft is not over it");
    assert!(put(1));
    assert!(!put(50), "still over: no second report");
    ledger.adjust(&key(), -200, 0);
    assert!(!ledger.view(&key()).unwrap().soft_exceeded);
    assert!(
        put(150),
        "a new crossing after dropping below is reported again"
    );
    assert!(ledger.view(&key()).unwrap().soft_exceeded);
}

#[test]
fn adjust_saturates_at_zero() {
    let ledger = known_ledger(Usage {
        bytes: 5,
        objects: 1,
    });
    ledger.adjust(&key(), -10, -3);
    assert_eq!(used(&ledger), Usage::default());
    ledger.adjust(&key(), i64::MAX, 0);
    ledger.adjust(&key(), i64::MAX, 0);
    ledger.adjust(&key(), i64::MAX, 0);
    assert_eq!(used(&ledger).bytes, u64::MAX);
}

#[test]
fn unknown_usage_refuses_capped_buckets_and_admits_uncapped_ones() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    assert_eq!(
        reserve(&ledger, &key(), &hard(1 << 30), bytes(1)).unwrap_err(),
        Refusal::UsageUnknown
    );
    let objects = Limits {
        max_objects: Some(10),
        ..Limits::default()
    };
    assert_eq!(
        reserve(&ledger, &key(), &objects, bytes(1)).unwrap_err(),
        Refusal::UsageUnknown
    );
    let soft_only = Limits {
        soft_bytes: Some(1),
        ..Limits::default()
    };
    assert!(reserve(&ledger, &key(), &soft_only, bytes(1)).is_ok());
    assert!(reserve(&ledger, &key(), &Limits::default(), bytes(1)).is_ok());
}

#[test]
fn object_cap_refuses_the_object_past_it() {
    let ledger = known_ledger(Usage {
        bytes: 0,
        objects: 9,
    });
    let cap = Limits {
        max_objects: Some(10),
        ..Limits::default()
    };
    let r = reserve(&ledger, &key(), &cap, bytes(1)).unwrap();
    assert_eq!(
        reserve(&ledger, &key(), &cap, bytes(1)).unwrap_err(),
        Refusal::MaxObjects
    );
    // A part upload adds bytes but no object: still admitted at the object cap.
    assert!(
        reserve(
            &ledger,
            &key(),
            &cap,
            Charge {
                bytes: 5,
                objects: 0
            }
        )
        .is_ok()
    );
    drop(r);
}

#[test]
fn huge_charges_do_not_overflow_the_check() {
    let ledger = known_ledger(Usage {
        bytes: u64::MAX - 1,
        objects: 0,
    });
    assert_eq!(
        reserve(&ledger, &key(), &hard(u64::MAX), bytes(u64::MAX)).unwrap_err(),
        Refusal::HardBytes
    );
}

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

#[test]
fn scan_result_adds_positive_deltas_seen_during_the_scan_and_ignores_negative_ones() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    ledger.adjust(&key(), 999, 9); // before the scan: replaced by the scan's result
    let epoch = ledger.begin_scan(&key());
    ledger.adjust(&key(), 30, 1);
    ledger.adjust(&key(), -20, -1);
    let uncapped = Limits::default();
    reserve(&ledger, &key(), &uncapped, bytes(5))
        .unwrap()
        .settle(5, 1, &uncapped);
    ledger.finish_scan(
        &key(),
        epoch,
        Usage {
            bytes: 100,
            objects: 4,
        },
        at(10),
    );
    let v = ledger.view(&key()).unwrap();
    assert!(v.known);
    assert_eq!(v.scanned_at, Some(at(10)));
    assert_eq!(
        v.used,
        Usage {
            bytes: 135,
            objects: 6
        }
    );
}

fn scan_to(ledger: &Arc<dyn UsageLedger>, bytes: u64, objects: u64, t: i64) {
    let e = ledger.begin_scan(&key());
    ledger.finish_scan(&key(), e, Usage { bytes, objects }, at(t));
}

#[test]
fn a_delete_settled_after_a_scan_that_finished_during_it_subtracts_nothing() {
    // 100 bytes in 2 objects; a 40-byte object is deleted while a rescan lists the
    // bucket after the delete took effect (60 bytes, 1 object) and finishes first.
    let ledger = known_ledger(Usage {
        bytes: 100,
        objects: 2,
    });
    let mark = ledger.mark(&key());
    scan_to(&ledger, 60, 1, 1);
    assert!(ledger.adjust_since(&key(), mark, -40, -1));
    assert_eq!(
        used(&ledger),
        Usage {
            bytes: 60,
            objects: 1
        }
    );
}

#[test]
fn a_delete_with_no_scan_finishing_during_it_subtracts_what_it_freed() {
    let ledger = known_ledger(Usage {
        bytes: 100,
        objects: 2,
    });
    let mark = ledger.mark(&key());
    assert!(!ledger.adjust_since(&key(), mark, -40, -1));
    assert_eq!(
        used(&ledger),
        Usage {
            bytes: 60,
            objects: 1
        }
    );
    // A mark taken after the scan is current again.
    scan_to(&ledger, 60, 1, 1);
    let mark = ledger.mark(&key());
    assert!(!ledger.adjust_since(&key(), mark, -10, 0));
    assert_eq!(used(&ledger).bytes, 50);
}

#[test]
fn a_shrinking_overwrite_settled_after_a_finished_scan_keeps_only_its_growth() {
    let ledger = known_ledger(Usage {
        bytes: 100,
        objects: 1,
    });
    let uncapped = hard(1_000);
    let shrink = reserve(&ledger, &key(), &uncapped, bytes(10)).unwrap();
    let grow = reserve(&ledger, &key(), &uncapped, bytes(10)).unwrap();
    // The scan already lists the object at its new size.
    scan_to(&ledger, 10, 1, 1);
    shrink.settle(-90, 0, &uncapped);
    assert_eq!(used(&ledger).bytes, 10);
    grow.settle(5, 1, &uncapped);
    assert_eq!(
        used(&ledger),
        Usage {
            bytes: 15,
            objects: 2
        }
    );
    assert_eq!(ledger.view(&key()).unwrap().reserved, Usage::default());
}

#[test]
fn a_mark_taken_before_the_bucket_was_tracked_is_stale_once_a_scan_lands() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let mark = ledger.mark(&key());
    scan_to(&ledger, 50, 1, 1);
    assert!(ledger.adjust_since(&key(), mark, -50, -1));
    assert_eq!(used(&ledger).bytes, 50);
}

#[test]
fn a_scan_makes_a_capped_bucket_admissible() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let e = ledger.begin_scan(&key());
    assert!(reserve(&ledger, &key(), &hard(10), bytes(1)).is_err());
    ledger.finish_scan(&key(), e, Usage::default(), at(1));
    assert!(reserve(&ledger, &key(), &hard(10), bytes(1)).is_ok());
}

#[test]
fn an_older_scan_finishing_after_a_newer_one_is_ignored() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let old = ledger.begin_scan(&key());
    let new = ledger.begin_scan(&key());
    assert!(new > old);
    ledger.finish_scan(
        &key(),
        new,
        Usage {
            bytes: 7,
            objects: 1,
        },
        at(2),
    );
    ledger.finish_scan(
        &key(),
        old,
        Usage {
            bytes: 1,
            objects: 1,
        },
        at(3),
    );
    let v = ledger.view(&key()).unwrap();
    assert_eq!(v.used.bytes, 7);
    assert_eq!(v.scanned_at, Some(at(2)));
}

#[test]
fn finishing_an_unknown_epoch_changes_nothing() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    ledger.finish_scan(
        &key(),
        42,
        Usage {
            bytes: 1,
            objects: 1,
        },
        at(1),
    );
    assert!(ledger.view(&key()).is_none());
    assert!(reserve(&ledger, &key(), &hard(9), bytes(1)).is_err());
    ledger.finish_scan(
        &key(),
        42,
        Usage {
            bytes: 9,
            objects: 1,
        },
        at(1),
    );
    assert!(!ledger.view(&key()).unwrap().known);
}

#[test]
fn an_unlimited_bucket_without_state_is_not_tracked() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    let r = reserve(&ledger, &key(), &Limits::default(), bytes(5)).unwrap();
    assert_eq!(r.settle(5, 1, &Limits::default()).usage, Usage::default());
    ledger.adjust(&key(), -3, -1);
    assert!(ledger.view(&key()).is_none());
    assert!(ledger.keys().is_empty());
    // Once a limit exists, the bucket is tracked (its usage unknown until a scan).
    assert_eq!(
        reserve(&ledger, &key(), &hard(10), bytes(1)).unwrap_err(),
        Refusal::UsageUnknown
    );
    assert_eq!(ledger.keys(), vec![key()]);
}

#[test]
fn restore_marks_usage_known_but_never_overrides_a_finished_scan() {
    let ledger: Arc<dyn UsageLedger> = Arc::new(InMemoryLedger::new());
    ledger.restore(
        &key(),
        Usage {
            bytes: 3,
            objects: 1,
        },
        Some(at(1)),
    );
    assert!(ledger.view(&key()).unwrap().known);
    let e = ledger.begin_scan(&key());
    ledger.finish_scan(
        &key(),
        e,
        Usage {
            bytes: 8,
            objects: 2,
        },
        at(5),
    );
    ledger.restore(
        &key(),
        Usage {
            bytes: 3,
            objects: 1,
        },
        Some(at(1)),
    );
    assert_eq!(used(&ledger).bytes, 8);
    assert_eq!(ledger.keys(), vec![key()]);
}

#[derive(Debug, Clone)]
enum Op {
    Reserve(u64, u64),
    Settle(usize, i64, i64),
    Release(usize),
    Adjust(i64, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..400, 0u64..3).prop_map(|(b, o)| Op::Reserve(b, o)),
        (0usize..16, -400i64..400, -2i64..3).prop_map(|(i, b, o)| Op::Settle(i, b, o)),
        (0usize..16).prop_map(Op::Release),
        (-400i64..400, -2i64..2).prop_map(|(b, o)| Op::Adjust(b, o)),
    ]
}

proptest! {
    #[test]
    fn no_interleaving_leaves_used_plus_reserved_past_the_caps_after_a_reserve(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let ledger = known_ledger(Usage::default());
        let limits = Limits { hard_bytes: Some(1000), soft_bytes: Some(500), max_objects: Some(8) };
        let mut held: Vec<Reservation> = Vec::new();
        for op in ops {
            match op {
                Op::Reserve(b, o) => {
                    if let Ok(r) = reserve(&ledger, &key(), &limits, Charge { bytes: b, objects: o }) {
                        let v = ledger.view(&key()).unwrap();
                        prop_assert!(v.used.bytes + v.reserved.bytes <= 1000);
                        prop_assert!(v.used.objects + v.reserved.objects <= 8);
                        held.push(r);
                    }
                }
                Op::Settle(i, b, o) if !held.is_empty() => {
                    let r = held.swap_remove(i % held.len());
                    r.settle(b, o, &limits);
                }
                Op::Release(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                Op::Adjust(b, o) => ledger.adjust(&key(), b, o),
                _ => {}
            }
        }
        let sum: u64 = held.iter().map(|r| r.charge().bytes).sum();
        prop_assert_eq!(ledger.view(&key()).unwrap().reserved.bytes, sum);
        drop(held);
        prop_assert_eq!(ledger.view(&key()).unwrap().reserved, Usage::default());
    }
}
