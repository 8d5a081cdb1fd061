//! State the workers, the churn controllers and the sampler share: outcome counters,
//! the pool of live credentials, and the quota gate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use rand::Rng as _;
use tokio::sync::RwLock;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// An error the soak caused on purpose; the name is its class.
    Injected(&'static str),
    /// Anything else: the soak fails.
    Unexpected,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Injected(class) => class,
            Self::Unexpected => "UNEXPECTED",
        }
    }
}

/// Counts per (operation, outcome), and the first unexpected errors in full.
#[derive(Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    unexpected: Mutex<Vec<String>>,
}

const KEPT_UNEXPECTED: usize = 50;

impl Stats {
    pub fn record(&self, op: &'static str, outcome: Outcome) {
        *self
            .counts
            .lock()
            .expect("stats lock")
            .entry((op, outcome))
            .or_default() += 1;
    }

    pub fn unexpected(&self, op: &'static str, what: String) {
        self.record(op, Outcome::Unexpected);
        eprintln!("soak: UNEXPECTED {op}: {what}");
        let mut kept = self.unexpected.lock().expect("unexpected lock");
        if kept.len() < KEPT_UNEXPECTED {
            kept.push(format!("{op}: {what}"));
        }
    }

    pub fn snapshot(&self) -> BTreeMap<(&'static str, Outcome), u64> {
        self.counts.lock().expect("stats lock").clone()
    }

    pub fn unexpected_list(&self) -> Vec<String> {
        self.unexpected.lock().expect("unexpected lock").clone()
    }

    /// Totals by outcome over every operation.
    pub fn by_outcome(&self) -> BTreeMap<Outcome, u64> {
        let mut out = BTreeMap::new();
        for ((_, o), n) in self.snapshot() {
            *out.entry(o).or_default() += n;
        }
        out
    }
}

/// One generation of a credential (a rotation makes a new generation of the same key).
pub struct Cred {
    pub ak: String,
    pub secret: String,
    pub generation: u32,
    pub client: Client,
    /// Set *before* the admin call that disables, deletes or rotates it, so a refusal
    /// caused by the churn always finds it set; a refusal without it is unexpected.
    revoked: AtomicBool,
}

impl Cred {
    pub fn new(ak: String, secret: String, generation: u32, client: Client) -> Arc<Self> {
        Arc::new(Self {
            ak,
            secret,
            generation,
            client,
            revoked: AtomicBool::new(false),
        })
    }

    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
}

/// The credentials workers may pick from.
#[derive(Default)]
pub struct Pool {
    active: Mutex<Vec<Arc<Cred>>>,
}

impl Pool {
    pub fn push(&self, c: Arc<Cred>) {
        self.active.lock().expect("pool lock").push(c);
    }

    /// A random live credential.
    pub fn pick(&self) -> Arc<Cred> {
        let active = self.active.lock().expect("pool lock");
        let i = rand::thread_rng().gen_range(0..active.len());
        Arc::clone(&active[i])
    }

    /// Take one out of circulation (it is then revoked by the caller). Keeps at least
    /// `keep` in the pool.
    pub fn take_random(&self, keep: usize) -> Option<Arc<Cred>> {
        let mut active = self.active.lock().expect("pool lock");
        if active.len() <= keep {
            return None;
        }
        let i = rand::thread_rng().gen_range(0..active.len());
        Some(active.swap_remove(i))
    }

    pub fn len(&self) -> usize {
        self.active.lock().expect("pool lock").len()
    }

    pub fn clear(&self) {
        self.active.lock().expect("pool lock").clear();
    }
}

/// The quota in force. Every request that changes the bucket (writes, deletes,
/// aborts) holds the gate for reading for its whole duration; the quota controller and
/// the sampler hold it for writing. So a quota change never races an in-flight write,
/// and the direct listing and the ledger are read with nothing changing in between
/// (a delete landing between the two reads would look like an undercount).
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub hard: u64,
    /// A tight phase leaves little headroom: 507 QuotaExceeded is expected then, and
    /// unexpected in a loose phase.
    pub tight: bool,
}

pub type Gate = Arc<RwLock<Phase>>;
