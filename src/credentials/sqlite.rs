//! The SQLite credential store: the handle, and every read and write of the
//! `credentials` table. Secrets are sealed with the root key
//! (see [`super::seal`]) before they touch the file.
//!
//! Other processes (the `stowage credentials …` CLI, a hand-run `sqlite3`) may write the
//! same file while a server runs: triggers record every change in `credential_changes`,
//! and the server follows that feed ([`super::sqlite_feed`]).
//!
//! Opening, migrations and the root-key check live in [`super::sqlite_schema`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, TransactionBehavior, params};
use time::OffsetDateTime;

use super::model::{Credential, Scope};
use super::rotate::ensure_current_key;
use super::seal;
use super::sqlite_row::{Row, SELECT_ROW, read_row, unix};
pub use super::sqlite_schema::MIGRATIONS;
use super::sqlite_schema::{open_reader, open_writer};
use crate::secret::{RootKey, SecretKey};

pub use super::sqlite_feed::{
    CHANGE_BATCH, CHANGE_RETENTION, Change, DEFAULT_POLL_INTERVAL, spawn_poller, spawn_poller_from,
};
pub use super::sqlite_types::{
    ACCESS_KEY_LEN, ACCESS_KEY_PREFIX, CredentialRecord, NewCredential, SECRET_LEN, StoreError,
    generate_access_key_id, generate_secret, validate_scopes,
};
use super::sqlite_types::{validate_access_key_id, validate_new, validate_secret};

const ATTEMPTS_ON_ID_COLLISION: usize = 5;

/// The credential store. Writes go through one connection and reads through another,
/// so a long full load never holds up a write (WAL readers do not block the writer).
pub struct SqliteStore {
    path: PathBuf,
    pub(super) root: RootKey,
    write: Mutex<Connection>,
    read: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic mid-call drops its transaction, which rolls back: the connection is fine.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, apply pending migrations and
    /// check that `root` is the key the database was sealed with.
    pub fn open(path: &Path, root: RootKey) -> Result<Self, StoreError> {
        let write = open_writer(path, &root)?;
        let read = open_reader(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            root,
            write: Mutex::new(write),
            read: Mutex::new(read),
        })
    }

    /// The database file this store was opened on.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(lock(&self.read).pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Fold the WAL back into the database file (shutdown: a clean close leaves no
    /// WAL to replay).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub(crate) fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.read)
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.write)
    }

    /// Create a credential with a generated access key id and secret.
    pub fn create_credential(&self, req: NewCredential) -> Result<(String, SecretKey), StoreError> {
        validate_new(&req)?;
        for _ in 0..ATTEMPTS_ON_ID_COLLISION {
            let (ak, secret) = (generate_access_key_id(), generate_secret());
            match self.insert_validated(&ak, &secret, &req) {
                Err(StoreError::AlreadyExists(_)) => continue,
                other => return other.map(|()| (ak, secret)),
            }
        }
        Err(StoreError::Internal(
            "could not generate an unused access key id".into(),
        ))
    }

    /// Create a credential with a caller-chosen key pair (quickstart demo, imports).
    pub fn insert_credential_with_secret(
        &self,
        access_key_id: &str,
        secret: &SecretKey,
        req: NewCredential,
    ) -> Result<(), StoreError> {
        validate_access_key_id(access_key_id)?;
        validate_secret(secret)?;
        validate_new(&req)?;
        self.insert_validated(access_key_id, secret, &req)
    }

    /// Insert many caller-chosen credentials in one transaction (all or none).
    pub fn insert_many_with_secrets(
        &self,
        creds: impl IntoIterator<Item = (String, SecretKey, NewCredential)>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        ensure_current_key(&tx, &self.root)?;
        let mut n = 0;
        for (ak, secret, req) in creds {
            validate_access_key_id(&ak)?;
            validate_secret(&secret)?;
            validate_new(&req)?;
            insert_row(&tx, &self.root, &ak, &secret, &req)?;
            n += 1;
        }
        tx.commit()?;
        Ok(n)
    }

    fn insert_validated(
        &self,
        ak: &str,
        secret: &SecretKey,
        req: &NewCredential,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        ensure_current_key(&tx, &self.root)?;
        insert_row(&tx, &self.root, ak, secret, req)?;
        tx.commit()?;
        Ok(())
    }

    /// The credential with its secret, or `None` when no such row exists.
    pub fn get_credential(&self, access_key_id: &str) -> Result<Option<Credential>, StoreError> {
        let row = read_row(&self.reader(), access_key_id)?;
        row.map(|r| r.into_credential(&self.root)).transpose()
    }

    /// The credential without its secret, or `None`.
    pub fn get_record(&self, access_key_id: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let row = read_row(&self.reader(), access_key_id)?;
        row.map(Row::into_record).transpose()
    }

    /// Every credential without secrets, ordered by access key id. Rows whose scopes
    /// cannot be parsed are left out with a warning (they can still be deleted).
    pub fn list_credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!("{SELECT_ROW} ORDER BY access_key_id"))?;
        let rows = stmt.query_map([], Row::from_sql)?;
        let mut out = Vec::new();
        for row in rows {
            match row?.into_record() {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::warn!(error = %e, "skipping malformed credential row"),
            }
        }
        Ok(out)
    }

    pub fn set_enabled(&self, access_key_id: &str, enabled: bool) -> Result<(), StoreError> {
        self.update(access_key_id, "enabled = ?2", &enabled)
    }

    pub fn set_expiry(
        &self,
        access_key_id: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.update(
            access_key_id,
            "expires_at = ?2",
            &expires_at.map(|t| t.unix_timestamp()),
        )
    }

    pub fn set_description(
        &self,
        access_key_id: &str,
        description: &str,
    ) -> Result<(), StoreError> {
        if description.len() > 1024 {
            return Err(StoreError::Invalid(
                "description is longer than 1024 bytes".into(),
            ));
        }
        self.update(access_key_id, "description = ?2", &description)
    }

    pub fn update_scopes(&self, access_key_id: &str, scopes: &[Scope]) -> Result<(), StoreError> {
        validate_scopes(scopes)?;
        self.update(access_key_id, "scopes = ?2", &scopes_json(scopes)?)
    }

    /// Replace the secret with a fresh one; the old one stops working as soon as the
    /// running proxies see the change (one poll interval).
    /// Refused while this process's root key is not the database's (after a
    /// `stowage key rotate`, until restarted with the new key).
    pub fn rotate_secret(&self, access_key_id: &str) -> Result<SecretKey, StoreError> {
        let secret = generate_secret();
        let sealed = seal::seal(&self.root, access_key_id, secret.expose().as_bytes());
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        ensure_current_key(&tx, &self.root)?;
        // The previous key's copy is the *old* secret: it must not outlive it.
        let n = tx.execute(
            "UPDATE credentials SET secret_sealed = ?2, secret_sealed_prev = NULL, \
             updated_at = ?3 WHERE access_key_id = ?1",
            params![access_key_id, sealed, unix(OffsetDateTime::now_utc())],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(access_key_id.to_owned()));
        }
        tx.commit()?;
        Ok(secret)
    }

    pub fn delete_credential(&self, access_key_id: &str) -> Result<(), StoreError> {
        let n = self.writer().execute(
            "DELETE FROM credentials WHERE access_key_id = ?1",
            [access_key_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(access_key_id.to_owned()));
        }
        Ok(())
    }

    /// `SET <assignment>, updated_at = now` on one row; `?1` is the key, `?2` the value.
    fn update(
        &self,
        ak: &str,
        assignment: &str,
        value: &dyn rusqlite::ToSql,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE credentials SET {assignment}, updated_at = ?3 WHERE access_key_id = ?1"
        );
        let n = self
            .writer()
            .execute(&sql, params![ak, value, unix(OffsetDateTime::now_utc())])?;
        if n == 0 {
            return Err(StoreError::NotFound(ak.to_owned()));
        }
        Ok(())
    }
}

fn scopes_json(scopes: &[Scope]) -> Result<String, StoreError> {
    serde_json::to_string(scopes).map_err(|e| StoreError::Invalid(format!("scopes: {e}")))
}

fn insert_row(
    conn: &Connection,
    root: &RootKey,
    ak: &str,
    secret: &SecretKey,
    req: &NewCredential,
) -> Result<(), StoreError> {
    let sealed = seal::seal(root, ak, secret.expose().as_bytes());
    let now = unix(OffsetDateTime::now_utc());
    let mut stmt = conn.prepare_cached(
        "INSERT INTO credentials (access_key_id, secret_sealed, backend, scopes, description, \
         enabled, expires_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    let res = stmt.execute(params![
        ak,
        sealed,
        req.backend,
        scopes_json(&req.scopes)?,
        req.description,
        req.enabled,
        req.expires_at.map(|t| t.unix_timestamp()),
        now
    ]);
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Err(StoreError::AlreadyExists(ak.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}
