//! Persistence of the browser-facing bucket settings (migration `0003_browser.sql`):
//! CORS rules and SQLite anonymous bindings, written by the CLI and the admin API,
//! and the caches a running proxy serves them from. Every write bumps
//! `meta.browser_version` in its transaction; the proxy reloads both tables when it
//! changes (they are small: one row per configured bucket).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use rusqlite::{OptionalExtension, params};
use tokio::sync::watch;

use super::CorsConfiguration;
use crate::credentials::anonymous::{AnonymousBinding, AnonymousMode, BindingCache};
use crate::credentials::cache::SourceKind;
use crate::credentials::model::CredentialSource;
use crate::credentials::sqlite::SqliteStore;
use crate::quota::BucketKey;
use crate::quota::store::to_millis;

/// Errors of the browser-settings tables. `Invalid` names the field.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'browser_version'",
        [],
    )?;
    Ok(())
}

fn now_ms() -> i64 {
    to_millis(time::OffsetDateTime::now_utc())
}

impl SqliteStore {
    /// Set a bucket's CORS rules (validated).
    ///
    /// # Errors
    /// Invalid rules, or a database error.
    pub fn set_cors(&self, key: &BucketKey, cors: &CorsConfiguration) -> Result<(), SettingsError> {
        cors.validate().map_err(|e| SettingsError::Invalid {
            field: e.field,
            reason: e.reason.into(),
        })?;
        let json = serde_json::to_string(&cors.rules).map_err(|_| SettingsError::Invalid {
            field: "CORSRules".into(),
            reason: "cannot be stored".into(),
        })?;
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO bucket_cors (backend, bucket, rules, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (backend, bucket) DO UPDATE SET rules = ?3, updated_at = ?4",
            params![key.backend, key.bucket, json, now_ms()],
        )?;
        bump(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Remove a bucket's CORS rules; `false` when it had none.
    ///
    /// # Errors
    /// A database error.
    pub fn clear_cors(&self, key: &BucketKey) -> Result<bool, SettingsError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM bucket_cors WHERE backend = ?1 AND bucket = ?2",
            params![key.backend, key.bucket],
        )?;
        bump(&tx)?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every bucket's CORS rules.
    ///
    /// # Errors
    /// A database error. A row that no longer parses is skipped (and logged).
    pub fn list_cors(&self) -> Result<Vec<(BucketKey, CorsConfiguration)>, SettingsError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare("SELECT backend, bucket, rules FROM bucket_cors ORDER BY backend, bucket")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (backend, bucket, json) = row?;
            match serde_json::from_str(&json) {
                Ok(rules) => {
                    out.push((BucketKey::new(backend, bucket), CorsConfiguration { rules }))
                }
                Err(_) => {
                    tracing::warn!(%backend, %bucket, "stored CORS rules do not parse; ignored")
                }
            }
        }
        Ok(out)
    }

    /// Bind a bucket for anonymous access.
    ///
    /// # Errors
    /// A negative or non-finite rate, or a database error.
    pub fn set_anonymous(
        &self,
        key: &BucketKey,
        mode: AnonymousMode,
        per_source_ip_rps: Option<f64>,
    ) -> Result<(), SettingsError> {
        if per_source_ip_rps.is_some_and(|r| !r.is_finite() || r < 0.0) {
            return Err(SettingsError::Invalid {
                field: "per_source_ip_rps".into(),
                reason: "must be a number >= 0".into(),
            });
        }
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO anonymous_bindings (backend, bucket, mode, per_source_ip_rps, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (backend, bucket)
             DO UPDATE SET mode = ?3, per_source_ip_rps = ?4, updated_at = ?5",
            params![
                key.backend,
                key.bucket,
                mode.as_str(),
                per_source_ip_rps,
                now_ms()
            ],
        )?;
        bump(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Remove a binding; `false` when there was none.
    ///
    /// # Errors
    /// A database error.
    pub fn clear_anonymous(&self, key: &BucketKey) -> Result<bool, SettingsError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM anonymous_bindings WHERE backend = ?1 AND bucket = ?2",
            params![key.backend, key.bucket],
        )?;
        bump(&tx)?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every SQLite anonymous binding.
    ///
    /// # Errors
    /// A database error.
    pub fn list_anonymous(&self) -> Result<Vec<AnonymousBinding>, SettingsError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT backend, bucket, mode, per_source_ip_rps FROM anonymous_bindings
             ORDER BY backend, bucket",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<f64>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (backend, bucket, mode, rps) = row?;
            // The CHECK constraint keeps `mode` valid; fail closed if it is not.
            let mode = AnonymousMode::parse(&mode).unwrap_or(AnonymousMode::None);
            out.push(AnonymousBinding {
                backend,
                bucket,
                mode,
                per_source_ip_rps: rps,
                source: CredentialSource::Sqlite,
            });
        }
        Ok(out)
    }

    fn browser_version(&self) -> Result<i64, SettingsError> {
        let conn = self.reader();
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'browser_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

/// CORS rules by (backend, bucket), and by bucket name for preflights (which name no
/// backend): every backend's rules for that name, in backend order.
#[derive(Debug, Default)]
pub struct CorsCache {
    by_key: DashMap<BucketKey, Arc<CorsConfiguration>>,
}

impl CorsCache {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn get(&self, key: &BucketKey) -> Option<Arc<CorsConfiguration>> {
        self.by_key.get(key).map(|e| Arc::clone(e.value()))
    }

    /// The rules of every backend's bucket of this name, concatenated.
    #[must_use]
    pub fn for_bucket(&self, bucket: &str) -> Option<CorsConfiguration> {
        let mut hits: Vec<(String, Arc<CorsConfiguration>)> = self
            .by_key
            .iter()
            .filter(|e| e.key().bucket == bucket)
            .map(|e| (e.key().backend.clone(), Arc::clone(e.value())))
            .collect();
        if hits.is_empty() {
            return None;
        }
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        Some(CorsConfiguration {
            rules: hits.iter().flat_map(|(_, c)| c.rules.clone()).collect(),
        })
    }

    /// Replace everything (a reload).
    pub fn replace(&self, all: Vec<(BucketKey, CorsConfiguration)>) {
        let keep: std::collections::HashSet<BucketKey> =
            all.iter().map(|(k, _)| k.clone()).collect();
        self.by_key.retain(|k, _| keep.contains(k));
        for (k, c) in all {
            self.by_key.insert(k, Arc::new(c));
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The owner id under which a SQLite binding sits in the [`BindingCache`].
#[must_use]
pub fn sqlite_owner(key: &BucketKey) -> String {
    format!("sqlite:{}/{}", key.backend, key.bucket)
}

/// Load CORS rules and SQLite bindings into the caches.
///
/// # Errors
/// A database error; the caches are left as they were.
pub fn reload(
    store: &SqliteStore,
    cors: &CorsCache,
    bindings: &BindingCache,
) -> Result<(), SettingsError> {
    let rules = store.list_cors()?;
    let anon = store.list_anonymous()?;
    cors.replace(rules);
    bindings.replace(
        SourceKind::Sqlite,
        anon.into_iter().map(|b| (sqlite_owner(&b.key()), b)),
    );
    Ok(())
}

/// Reload both caches whenever `meta.browser_version` changes.
pub fn spawn_poller(
    store: Arc<SqliteStore>,
    cors: Arc<CorsCache>,
    bindings: Arc<BindingCache>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let (s, c, b) = (Arc::clone(&store), Arc::clone(&cors), Arc::clone(&bindings));
            let last = seen;
            let res = tokio::task::spawn_blocking(move || {
                let v = s.browser_version()?;
                if Some(v) != last {
                    reload(&s, &c, &b)?;
                }
                Ok::<_, SettingsError>(v)
            })
            .await;
            match res {
                Ok(Ok(v)) => seen = Some(v),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot reload CORS rules and anonymous bindings")
                }
                Err(_) => tracing::warn!("the CORS/anonymous reload task failed"),
            }
        }
    })
}
