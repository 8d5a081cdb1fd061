//! The two churn controllers: credentials (create, rotate, disable, enable, delete
//! through the admin API while workers use them) and the bucket's quota (alternating
//! tight and loose hard caps).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::SharedHttpClient;
use rand::Rng as _;

use crate::admin::Admin;
use crate::s3::{client, failure};
use crate::state::{Cred, Outcome, Phase};
use crate::traffic::Ctx;

/// What the credential controller needs besides the shared context.
pub struct CredChurn {
    pub ctx: Arc<Ctx>,
    pub admin: Arc<Admin>,
    pub endpoint: String,
    pub http: SharedHttpClient,
    /// Every secret ever issued, to prove none reached the proxy's log.
    pub secrets: Arc<Mutex<Vec<String>>>,
    pub disabled: Vec<Arc<Cred>>,
    pub next_generation: u32,
}

const MIN_ACTIVE: usize = 3;
const MAX_ACTIVE: usize = 8;

impl CredChurn {
    /// One churn action every 2–6 s until stopped; admin failures are unexpected.
    pub async fn run(mut self) -> Self {
        while !self.ctx.stop.load(Ordering::SeqCst) {
            let wait = rand::thread_rng().gen_range(2000..6000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if self.ctx.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = self.step().await {
                self.ctx
                    .stats
                    .unexpected("credential_churn", format!("{e:#}"));
            }
        }
        self
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let active = self.ctx.pool.len();
        let roll = rand::thread_rng().gen_range(0..100);
        if active < MIN_ACTIVE || (roll < 25 && active < MAX_ACTIVE) {
            return self.create().await;
        }
        match roll {
            0..45 => self.rotate().await,
            45..65 => self.disable().await,
            65..80 if !self.disabled.is_empty() => self.enable_or_delete_disabled().await,
            _ => self.delete_active().await,
        }
    }

    fn cred(&mut self, ak: String, secret: String) -> Arc<Cred> {
        self.secrets.lock().expect("secrets").push(secret.clone());
        self.next_generation += 1;
        let c = client(&self.endpoint, &ak, &secret, self.http.clone());
        Cred::new(ak, secret, self.next_generation, c)
    }

    /// A credential must work the moment the admin API answered.
    async fn probe_works(&self, c: &Cred, after: &'static str) {
        let op = "credential_probe";
        let res = c
            .client
            .list_objects_v2()
            .bucket(&self.ctx.bucket)
            .max_keys(1)
            .send()
            .await;
        match res {
            Ok(_) => self.ctx.stats.record(op, Outcome::Ok),
            Err(e) => self.ctx.stats.unexpected(
                op,
                format!("refused right after {after}: {}", failure(&e).text),
            ),
        }
    }

    /// A revoked credential must be refused (403) the moment the admin API answered.
    async fn probe_refused(&self, c: &Cred, after: &'static str) {
        let op = "revoked_probe";
        let res = c
            .client
            .list_objects_v2()
            .bucket(&self.ctx.bucket)
            .max_keys(1)
            .send()
            .await;
        match res {
            Err(e) if failure(&e).status == Some(403) => {
                self.ctx
                    .stats
                    .record(op, Outcome::Injected("revoked_credential"));
            }
            Err(e) => self.ctx.stats.unexpected(op, failure(&e).text),
            Ok(_) => self
                .ctx
                .stats
                .unexpected(op, format!("still accepted after {after}")),
        }
    }

    async fn create(&mut self) -> anyhow::Result<()> {
        let (ak, secret) = self
            .admin
            .create(&[(self.ctx.bucket.as_str(), "read-write")])
            .await?;
        let c = self.cred(ak, secret);
        self.probe_works(&c, "create").await;
        self.ctx.stats.record("cred_create", Outcome::Ok);
        self.ctx.pool.push(c);
        Ok(())
    }

    async fn rotate(&mut self) -> anyhow::Result<()> {
        let Some(old) = self.ctx.pool.take_random(MIN_ACTIVE - 1) else {
            return Ok(());
        };
        old.revoke();
        let secret = self.admin.rotate(&old.ak).await?;
        let new = self.cred(old.ak.clone(), secret);
        self.probe_works(&new, "rotate-secret (new secret)").await;
        self.probe_refused(&old, "rotate-secret (old secret)").await;
        self.ctx.stats.record("cred_rotate", Outcome::Ok);
        self.ctx.pool.push(new);
        Ok(())
    }

    async fn disable(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.ctx.pool.take_random(MIN_ACTIVE) else {
            return Ok(());
        };
        c.revoke();
        self.admin.set_enabled(&c.ak, false).await?;
        self.probe_refused(&c, "disable").await;
        self.ctx.stats.record("cred_disable", Outcome::Ok);
        self.disabled.push(c);
        Ok(())
    }

    async fn enable_or_delete_disabled(&mut self) -> anyhow::Result<()> {
        let i = rand::thread_rng().gen_range(0..self.disabled.len());
        let c = self.disabled.swap_remove(i);
        if rand::thread_rng().gen_bool(0.5) {
            self.admin.set_enabled(&c.ak, true).await?;
            let again = self.cred(c.ak.clone(), c.secret.clone());
            self.probe_works(&again, "enable").await;
            self.ctx.stats.record("cred_enable", Outcome::Ok);
            self.ctx.pool.push(again);
        } else {
            self.admin.delete(&c.ak).await?;
            self.probe_refused(&c, "delete").await;
            self.ctx.stats.record("cred_delete", Outcome::Ok);
        }
        Ok(())
    }

    async fn delete_active(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.ctx.pool.take_random(MIN_ACTIVE) else {
            return Ok(());
        };
        c.revoke();
        self.admin.delete(&c.ak).await?;
        self.probe_refused(&c, "delete").await;
        self.ctx.stats.record("cred_delete", Outcome::Ok);
        Ok(())
    }
}

/// Headroom of a loose phase: far more than the bucket can hold in a soak.
pub const LOOSE_HEADROOM: u64 = 4 << 30;

/// Alternate tight (0–8 MiB above the current usage) and loose hard caps every
/// 8–20 s. The gate is held for writing while the cap changes, so no write is in
/// flight: the new cap is never below what the bucket holds or has reserved.
pub async fn quota_churn(ctx: Arc<Ctx>, admin: Arc<Admin>, direct: Arc<crate::sample::Direct>) {
    let mut tight = false;
    while !ctx.stop.load(Ordering::SeqCst) {
        let wait = rand::thread_rng().gen_range(8000..20000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if ctx.stop.load(Ordering::SeqCst) {
            break;
        }
        tight = !tight;
        let mut phase = ctx.gate.write().await;
        let res = async {
            let ledger = admin.usage(&ctx.bucket).await?;
            let real = direct.usage(&ctx.bucket).await?;
            let base = (ledger.bytes + ledger.reserved_bytes).max(real);
            let headroom = if tight {
                rand::thread_rng().gen_range(0..8 << 20)
            } else {
                LOOSE_HEADROOM
            };
            let hard = base + headroom;
            admin.put_quota(&ctx.bucket, hard, hard / 10 * 9).await?;
            anyhow::Ok(hard)
        }
        .await;
        match res {
            Ok(hard) => {
                *phase = Phase { hard, tight };
                ctx.stats.record("quota_change", Outcome::Ok);
            }
            Err(e) => ctx.stats.unexpected("quota_change", format!("{e:#}")),
        }
    }
}
