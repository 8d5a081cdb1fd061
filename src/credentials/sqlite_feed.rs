//! Following the SQLite store from a running proxy: a full load at start-up, then the
//! `credential_changes` feed (written by triggers, so every writing process feeds it).
//! Each poll reads the change rows after the last seen `seq` and re-reads only those
//! credentials: O(1) per changed credential, whatever the table size.
//!
//! Why `seq` order is safe: SQLite has one writer at a time, and a writer holds its
//! lock from its first change row to its commit, so no commit can later reveal a `seq`
//! below one a reader has already seen.
//!
//! Pruning: change rows older than [`CHANGE_RETENTION`] are deleted (by the poller,
//! every few minutes) and the highest deleted `seq` is recorded as the watermark
//! `changes_pruned_through`. A reader whose position is below the watermark, or above
//! the highest `seq` ever issued (the file was replaced by an older copy), gets
//! [`StoreError::FeedGap`] and reloads everything.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::cache::{CredentialCache, SourceKind};
use super::model::Credential;
use super::sqlite::SqliteStore;
use super::sqlite_row::{Row, SELECT_ROW, read_row, unix};
use super::sqlite_schema::{meta_get, meta_set, meta_u64};
use super::sqlite_types::StoreError;

/// A poll interval that keeps edits visible well within 2 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long change rows are kept; a poller that falls further behind reloads fully.
pub const CHANGE_RETENTION: Duration = Duration::from_secs(3600);
/// At most this many change rows per `changes_since` call; callers loop.
pub const CHANGE_BATCH: usize = 10_000;
const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// After failing this long, the poller empties the SQLite source rather than keep
/// serving credentials that may have been revoked since (fail closed).
const STALE_AFTER: Duration = Duration::from_secs(30);
const WATERMARK: &str = "changes_pruned_through";

/// One change to apply to a cache.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created or edited (possibly now disabled or expired: the cache decides usability).
    Upsert(Box<Credential>),
    /// Deleted, or no longer readable (fails closed).
    Remove(String),
}

fn latest_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'credential_changes'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Every credential that can be unsealed, and the feed position they reflect.
    /// Unreadable rows are skipped with a warning naming only the access key id.
    pub fn load_all(&self) -> Result<(Vec<Credential>, u64), StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let seq = latest_seq(&tx)?;
        let mut stmt = tx.prepare(SELECT_ROW)?;
        let mut out = Vec::new();
        let mut stale = StaleKey::default();
        for row in stmt.query_map([], Row::from_sql)? {
            let row = row?;
            let ak = row.access_key_id.clone();
            match row.into_credential(&self.root) {
                Ok(c) => out.push(c),
                Err(e) if !stale.check(&tx, &self.root) => {
                    tracing::warn!(access_key_id = %ak, error = %e, "skipping unreadable credential")
                }
                Err(_) => stale.count += 1,
            }
        }
        stale.report();
        Ok((out, seq))
    }

    /// Changes after feed position `since` (at most [`CHANGE_BATCH`] change rows), and
    /// the position to ask from next time. Each changed credential appears once, as
    /// it is now.
    pub fn changes_since(&self, since: u64) -> Result<(Vec<Change>, u64), StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let (pruned_through, latest) = (meta_u64(&tx, WATERMARK)?, latest_seq(&tx)?);
        if since < pruned_through || since > latest {
            return Err(StoreError::FeedGap {
                since,
                pruned_through,
                latest,
            });
        }
        let mut stmt = tx.prepare(
            "SELECT seq, access_key_id FROM credential_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(CHANGE_BATCH).unwrap_or(i64::MAX);
        let rows = stmt.query_map((to_i64(since), limit), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let (mut next, mut keys, mut seen) = (since, Vec::new(), HashSet::new());
        for row in rows {
            let (seq, ak) = row?;
            next = u64::try_from(seq).unwrap_or(next);
            if seen.insert(ak.clone()) {
                keys.push(ak);
            }
        }
        let mut stale = StaleKey::default();
        let changes = keys
            .into_iter()
            .map(|ak| self.current(&tx, ak, &mut stale))
            .collect::<Result<_, _>>()?;
        stale.report();
        Ok((changes, next))
    }

    fn current(
        &self,
        conn: &Connection,
        ak: String,
        stale: &mut StaleKey,
    ) -> Result<Change, StoreError> {
        let Some(row) = read_row(conn, &ak)? else {
            return Ok(Change::Remove(ak));
        };
        match row.into_credential(&self.root) {
            Ok(c) => Ok(Change::Upsert(Box::new(c))),
            Err(e) if !stale.check(conn, &self.root) => {
                tracing::warn!(access_key_id = %ak, error = %e, "dropping unreadable credential");
                Ok(Change::Remove(ak))
            }
            Err(_) => {
                stale.count += 1;
                Ok(Change::Remove(ak))
            }
        }
    }

    /// Delete change rows recorded before `before` (the poller passes now minus
    /// [`CHANGE_RETENTION`]; see the module doc); returns how many were deleted.
    pub fn prune_changes(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let cutoff = unix(before);
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Walk from the oldest row to the first recent one; stops early on clock skew.
        let first_recent: Option<i64> = tx
            .query_row(
                "SELECT seq FROM credential_changes WHERE changed_at >= ?1 ORDER BY seq LIMIT 1",
                [cutoff],
                |r| r.get(0),
            )
            .optional()?;
        let through = match first_recent {
            Some(seq) => seq - 1,
            None => tx.query_row(
                "SELECT coalesce(max(seq), 0) FROM credential_changes",
                [],
                |r| r.get(0),
            )?,
        };
        let through = u64::try_from(through).unwrap_or(0);
        if through <= meta_u64(&tx, WATERMARK)? {
            return Ok(0);
        }
        let n = tx.execute(
            "DELETE FROM credential_changes WHERE seq <= ?1",
            [to_i64(through)],
        )?;
        meta_set(&tx, WATERMARK, &through.to_string())?;
        tx.commit()?;
        Ok(n)
    }

    /// Load every credential into `cache` (replacing the SQLite source atomically) and
    /// return the feed position to follow from (see [`spawn_poller_from`]).
    pub fn reload_into(&self, cache: &CredentialCache) -> Result<u64, StoreError> {
        let (creds, seq) = self.load_all()?;
        cache.replace(SourceKind::Sqlite, creds);
        Ok(seq)
    }
}

/// Whether this process's root key was rotated out of the database, asked once per
/// load or feed batch on the first unreadable row; such rows are then reported in one
/// line instead of one per credential (after a rotation that is every row).
#[derive(Default)]
struct StaleKey {
    /// `Some((ours, the database's))` once asked and found stale.
    verdict: Option<Option<(String, String)>>,
    count: usize,
}

impl StaleKey {
    fn check(&mut self, conn: &Connection, root: &crate::secret::RootKey) -> bool {
        let verdict = self.verdict.get_or_insert_with(|| {
            let ours = root.key_id();
            match meta_get(conn, "root_key_id") {
                Ok(Some(current)) if current != ours => Some((ours, current)),
                _ => None,
            }
        });
        verdict.is_some()
    }

    fn report(&self) {
        if let Some(Some((ours, current))) = &self.verdict
            && self.count > 0
        {
            tracing::error!(
                credentials = self.count,
                root_key_id = %ours,
                database_key_id = %current,
                "this process's root key is stale: the database was re-keyed and the previous \
                 key retired; these SQLite credentials fail closed until stowage restarts \
                 with the new key"
            );
        }
    }
}

/// Follow the store into `cache`: a full load first, then the change feed every
/// `interval`.
pub fn spawn_poller(
    store: Arc<SqliteStore>,
    cache: Arc<CredentialCache>,
    interval: Duration,
) -> JoinHandle<()> {
    spawn_poller_from(store, cache, interval, None)
}

/// Like [`spawn_poller`], but starting from feed position `start` (what
/// [`SqliteStore::reload_into`] returned) instead of doing a full load first.
pub fn spawn_poller_from(
    store: Arc<SqliteStore>,
    cache: Arc<CredentialCache>,
    interval: Duration,
    start: Option<u64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut poller = Poller {
            store,
            cache,
            seq: start,
            failing_since: None,
            last_prune: Instant::now(),
        };
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            poller.poll().await;
        }
    })
}

struct Poller {
    store: Arc<SqliteStore>,
    cache: Arc<CredentialCache>,
    /// `None`: the next poll does a full load.
    seq: Option<u64>,
    failing_since: Option<Instant>,
    last_prune: Instant,
}

async fn blocking<T: Send + 'static>(
    store: &Arc<SqliteStore>,
    f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
}

impl Poller {
    async fn poll(&mut self) {
        let mut result = self.step().await;
        if let Err(StoreError::FeedGap { .. }) = result {
            tracing::info!("credential change feed has a gap; reloading all SQLite credentials");
            self.seq = None;
            result = self.step().await;
        }
        match result {
            Ok(seq) => {
                self.seq = Some(seq);
                self.failing_since = None;
            }
            Err(e) => self.failed(&e),
        }
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            if let Err(e) = blocking(&self.store, |s| {
                s.prune_changes(OffsetDateTime::now_utc() - CHANGE_RETENTION)
            })
            .await
            {
                tracing::warn!(error = %e, "cannot prune the credential change feed");
            }
        }
    }

    /// A full load when there is no position, else drain the feed until it is empty.
    async fn step(&self) -> Result<u64, StoreError> {
        let Some(mut seq) = self.seq else {
            let (creds, seq) = blocking(&self.store, SqliteStore::load_all).await?;
            tracing::debug!(credentials = creds.len(), "loaded all SQLite credentials");
            self.cache.replace(SourceKind::Sqlite, creds);
            return Ok(seq);
        };
        loop {
            let (changes, next) = blocking(&self.store, move |s| s.changes_since(seq)).await?;
            for change in changes {
                match change {
                    Change::Upsert(c) => self.cache.upsert(SourceKind::Sqlite, *c),
                    Change::Remove(ak) => {
                        self.cache.remove(SourceKind::Sqlite, &ak);
                    }
                }
            }
            if next == seq {
                return Ok(seq);
            }
            seq = next;
        }
    }

    fn failed(&mut self, e: &StoreError) {
        tracing::warn!(error = %e, "cannot read SQLite credential changes");
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= STALE_AFTER && self.cache.len(SourceKind::Sqlite) > 0 {
            tracing::error!(
                "SQLite credentials unreadable for 30 s; serving none of them until they load again"
            );
            self.cache.replace(SourceKind::Sqlite, Vec::new());
            self.seq = None;
        }
    }
}
