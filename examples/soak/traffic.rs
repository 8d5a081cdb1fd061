//! The workers: mixed aws-sdk-s3 traffic through the proxy. Each worker owns the keys
//! under its prefix `wNN/`, so its ledger (key → SHA-256 and size of the last
//! acknowledged write, minus acknowledged deletes) is exact, and a listing of its
//! prefix must match the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};

use crate::s3::{Failure, failure};
use crate::state::{Cred, Gate, Outcome, Pool, Stats};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Keys per worker: bounds the bucket's size and makes overwrites common.
pub const KEYS_PER_WORKER: usize = 16;
const MIN_PART: usize = 5 * MIB;

/// The last acknowledged write of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub sha: [u8; 32],
    pub size: u64,
}

pub type Ledger = BTreeMap<String, Entry>;

pub fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Everything the workers share.
pub struct Ctx {
    pub bucket: String,
    pub other_bucket: String,
    pub pool: Pool,
    pub gate: Gate,
    pub stats: Stats,
    /// A read-write credential that is never churned: the base of the injected
    /// out-of-scope requests.
    pub victim: Client,
    /// The victim's access key with a wrong secret.
    pub bad_signature: Client,
    /// A read-only credential for the bucket.
    pub read_only: Client,
    pub http: reqwest::Client,
    pub tmp: PathBuf,
    pub stop: AtomicBool,
}

pub struct Worker {
    ctx: Arc<Ctx>,
    id: usize,
    ledger: Ledger,
    rng: StdRng,
}

/// Run until `ctx.stop`; the ledger of what this worker's acknowledged writes left.
pub async fn run(ctx: Arc<Ctx>, id: usize) -> Ledger {
    let mut w = Worker {
        ctx,
        id,
        ledger: Ledger::new(),
        rng: StdRng::from_entropy(),
    };
    while !w.ctx.stop.load(Ordering::SeqCst) {
        w.step().await;
    }
    w.ledger
}

impl Worker {
    async fn step(&mut self) {
        let roll = self.rng.gen_range(0..1000);
        match roll {
            // The mix keeps the bytes written to about 10 GB in 10 minutes: Garage
            // frees deleted blocks only after a delay, so they pile up on disk.
            0..270 => self.put_memory(0, 64 * KIB).await,
            270..290 => self.put_memory(MIB, 3 * MIB).await,
            290..330 => self.put_streaming().await,
            330..580 => self.get().await,
            580..660 => self.head().await,
            660..730 => self.list().await,
            730..790 => self.delete().await,
            790..820 => self.delete_many().await,
            820..855 => self.copy().await,
            855..865 => self.multipart().await,
            865..950 => self.presigned_get().await,
            950..965 => self.bad_signature().await,
            965..985 => self.out_of_scope().await,
            _ => self.read_only_write().await,
        }
    }

    fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    fn key(&mut self) -> String {
        format!(
            "w{:02}/k{:02}",
            self.id,
            self.rng.gen_range(0..KEYS_PER_WORKER)
        )
    }

    fn existing(&mut self) -> Option<(String, Entry)> {
        if self.ledger.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.ledger.len());
        self.ledger.iter().nth(i).map(|(k, e)| (k.clone(), *e))
    }

    fn body(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let mut b = vec![0u8; self.rng.gen_range(lo..=hi)];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// Classify a failed call: a refusal of a credential the churn revoked, a 507 in a
    /// tight quota phase, or unexpected.
    fn fail(&self, op: &'static str, cred: &Cred, tight: Option<bool>, f: &Failure) {
        if f.status == Some(403) && cred.is_revoked() {
            self.stats()
                .record(op, Outcome::Injected("revoked_credential"));
        } else if f.status.is_none() && tight.is_some() && cred.is_revoked() && f.is_reset() {
            // The proxy answers an authentication refusal without reading the body;
            // a client still sending a large one sees the connection closed instead of
            // the 403. Counted apart, so the report shows how often.
            self.stats()
                .record(op, Outcome::Injected("revoked_credential_reset"));
        } else if tight == Some(true) && f.is(507, "QuotaExceeded") {
            self.stats().record(op, Outcome::Injected("quota_exceeded"));
        } else {
            self.stats().unexpected(
                op,
                format!(
                    "{} (credential gen {}, revoked {}, tight {tight:?})",
                    f.text,
                    cred.generation,
                    cred.is_revoked()
                ),
            );
        }
    }

    async fn put(&mut self, op: &'static str, key: String, body: ByteStream, entry: Entry) {
        let cred = self.ctx.pool.pick();
        let phase = self.ctx.gate.read().await;
        let res = cred
            .client
            .put_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .body(body)
            .send()
            .await;
        let tight = phase.tight;
        drop(phase);
        match res {
            Ok(_) => {
                self.ledger.insert(key, entry);
                self.stats().record(op, Outcome::Ok);
            }
            Err(e) => self.fail(op, &cred, Some(tight), &failure(&e)),
        }
    }

    /// PutObject of an in-memory body: hex `x-amz-content-sha256` plus a CRC32.
    async fn put_memory(&mut self, lo: usize, hi: usize) {
        let op = if hi > MIB { "put_large" } else { "put_small" };
        let body = self.body(lo, hi);
        let entry = Entry {
            sha: sha(&body),
            size: body.len() as u64,
        };
        let key = self.key();
        self.put(op, key, ByteStream::from(body), entry).await;
    }

    /// PutObject from a file: the SDK sends aws-chunked with a signed CRC32 trailer.
    async fn put_streaming(&mut self) {
        let body = self.body(16 * KIB, 2 * MIB);
        let entry = Entry {
            sha: sha(&body),
            size: body.len() as u64,
        };
        let file = self.ctx.tmp.join(format!("stream-{:02}.bin", self.id));
        if let Err(e) = tokio::fs::write(&file, &body).await {
            return self
                .stats()
                .unexpected("put_streaming", format!("temp file: {e}"));
        }
        let stream = match ByteStream::from_path(&file).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .stats()
                    .unexpected("put_streaming", format!("file body: {e}"));
            }
        };
        let key = self.key();
        self.put("put_streaming", key, stream, entry).await;
    }

    async fn get(&mut self) {
        let Some((key, entry)) = self.existing() else {
            return self.put_memory(0, 4 * KIB).await;
        };
        let cred = self.ctx.pool.pick();
        let res = cred
            .client
            .get_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .send()
            .await;
        match res {
            Ok(out) => match out.body.collect().await.map(|d| d.into_bytes()) {
                Ok(data) if sha(&data) == entry.sha => {
                    self.stats().record("get", Outcome::Ok);
                }
                Ok(_) => self.stats().unexpected(
                    "get",
                    format!("{key}: bytes differ from the acknowledged PUT"),
                ),
                Err(e) => self.stats().unexpected("get", format!("{key}: body: {e}")),
            },
            Err(e) => self.fail("get", &cred, None, &failure(&e)),
        }
    }

    async fn head(&mut self) {
        let Some((key, entry)) = self.existing() else {
            return self.put_memory(0, 4 * KIB).await;
        };
        let cred = self.ctx.pool.pick();
        let res = cred
            .client
            .head_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .send()
            .await;
        match res {
            Ok(out) if out.content_length() == Some(entry.size as i64) => {
                self.stats().record("head", Outcome::Ok);
            }
            Ok(out) => self.stats().unexpected(
                "head",
                format!(
                    "{key}: length {:?}, wanted {}",
                    out.content_length(),
                    entry.size
                ),
            ),
            Err(e) => self.fail("head", &cred, None, &failure(&e)),
        }
    }

    /// ListObjectsV2 of the worker's prefix must list exactly its ledger.
    async fn list(&mut self) {
        let cred = self.ctx.pool.pick();
        let res = cred
            .client
            .list_objects_v2()
            .bucket(&self.ctx.bucket)
            .prefix(format!("w{:02}/", self.id))
            .send()
            .await;
        match res {
            Ok(out) => {
                let listed: BTreeMap<String, u64> = out
                    .contents()
                    .iter()
                    .map(|o| {
                        let key = o.key().unwrap_or_default().to_owned();
                        (key, o.size().unwrap_or(-1) as u64)
                    })
                    .collect();
                let want: BTreeMap<String, u64> = self
                    .ledger
                    .iter()
                    .map(|(k, e)| (k.clone(), e.size))
                    .collect();
                if listed == want {
                    self.stats().record("list", Outcome::Ok);
                } else {
                    self.stats()
                        .unexpected("list", format!("listed {listed:?}, ledger {want:?}"));
                }
            }
            Err(e) => self.fail("list", &cred, None, &failure(&e)),
        }
    }

    async fn delete(&mut self) {
        let key = match self.existing() {
            Some((k, _)) => k,
            None => self.key(),
        };
        let cred = self.ctx.pool.pick();
        let phase = self.ctx.gate.read().await;
        let res = cred
            .client
            .delete_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .send()
            .await;
        drop(phase);
        match res {
            Ok(_) => {
                self.ledger.remove(&key);
                self.stats().record("delete", Outcome::Ok);
            }
            Err(e) => self.fail("delete", &cred, None, &failure(&e)),
        }
    }

    /// DeleteObjects of up to four keys (one of them possibly absent): every key must
    /// be reported deleted, none as an error.
    async fn delete_many(&mut self) {
        let mut keys = BTreeSet::new();
        for _ in 0..self.rng.gen_range(1..=4) {
            let k = match self.existing() {
                Some((k, _)) if self.rng.gen_bool(0.8) => k,
                _ => self.key(),
            };
            keys.insert(k);
        }
        let objects: Vec<ObjectIdentifier> = keys
            .iter()
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        let Ok(delete) = Delete::builder().set_objects(Some(objects)).build() else {
            return self
                .stats()
                .unexpected("delete_objects", "building the request".into());
        };
        let cred = self.ctx.pool.pick();
        let phase = self.ctx.gate.read().await;
        let res = cred
            .client
            .delete_objects()
            .bucket(&self.ctx.bucket)
            .delete(delete)
            .send()
            .await;
        drop(phase);
        match res {
            Ok(out) => {
                let deleted: BTreeSet<String> = out
                    .deleted()
                    .iter()
                    .filter_map(|d| d.key().map(str::to_owned))
                    .collect();
                if deleted == keys && out.errors().is_empty() {
                    for k in &keys {
                        self.ledger.remove(k);
                    }
                    self.stats().record("delete_objects", Outcome::Ok);
                } else {
                    // Keys reported deleted are gone whatever else went wrong.
                    for k in &deleted {
                        self.ledger.remove(k);
                    }
                    self.stats().unexpected(
                        "delete_objects",
                        format!(
                            "asked {keys:?}, deleted {deleted:?}, errors {:?}",
                            out.errors()
                        ),
                    );
                }
            }
            Err(e) => self.fail("delete_objects", &cred, None, &failure(&e)),
        }
    }

    /// CopyObject within the worker's prefix (admitted at the source's size).
    async fn copy(&mut self) {
        let Some((src, entry)) = self.existing() else {
            return self.put_memory(0, 4 * KIB).await;
        };
        let dst = self.key();
        let cred = self.ctx.pool.pick();
        let phase = self.ctx.gate.read().await;
        let res = cred
            .client
            .copy_object()
            .bucket(&self.ctx.bucket)
            .key(&dst)
            .copy_source(format!("{}/{src}", self.ctx.bucket))
            .send()
            .await;
        let tight = phase.tight;
        drop(phase);
        match res {
            Ok(_) => {
                self.ledger.insert(dst, entry);
                self.stats().record("copy", Outcome::Ok);
            }
            Err(e) => self.fail("copy", &cred, Some(tight), &failure(&e)),
        }
    }

    async fn presigned_get(&mut self) {
        let Some((key, entry)) = self.existing() else {
            return self.put_memory(0, 4 * KIB).await;
        };
        let cred = self.ctx.pool.pick();
        let Ok(cfg) = PresigningConfig::expires_in(Duration::from_secs(300)) else {
            return self
                .stats()
                .unexpected("presigned_get", "presigning config".into());
        };
        let req = match cred
            .client
            .get_object()
            .bucket(&self.ctx.bucket)
            .key(&key)
            .presigned(cfg)
            .await
        {
            Ok(r) => r,
            Err(e) => return self.fail("presigned_get", &cred, None, &failure(&e)),
        };
        let resp = match self.ctx.http.get(req.uri()).send().await {
            Ok(r) => r,
            Err(e) => {
                return self
                    .stats()
                    .unexpected("presigned_get", format!("{key}: {e}"));
            }
        };
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        if status == 200 && sha(&body) == entry.sha {
            self.stats().record("presigned_get", Outcome::Ok);
        } else if status == 403 && cred.is_revoked() {
            self.stats()
                .record("presigned_get", Outcome::Injected("revoked_credential"));
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            self.stats()
                .unexpected("presigned_get", format!("{key}: status {status}: {text}"));
        }
    }
}

/// Multipart uploads and the injected (expected-to-fail) requests.
mod special;
