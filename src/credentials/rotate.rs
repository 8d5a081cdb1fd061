//! Online root-key rotation (`stowage key rotate`).
//!
//! One write transaction re-seals every secret under the new key and keeps the
//! ciphertext it replaced in `secret_sealed_prev`; the root-key check in `meta` moves
//! the same way (`root_key_id_prev`, `root_key_check_prev`). Either all of it commits
//! or none of it does: an interrupted rotation leaves the old key in charge and every
//! row as it was.
//!
//! While the rotation's previous key is kept:
//! * a proxy still running with the previous key follows the change feed as usual;
//!   readers try `secret_sealed` and fall back to `secret_sealed_prev`, so every
//!   re-sealed row still opens and its credential keeps working;
//! * a process *starting* with the previous key is refused
//!   ([`StoreError::StaleRootKey`]): it would seal new secrets under a retired key;
//! * a running process with the previous key refuses to seal anything
//!   ([`ensure_current_key`]) for the same reason.
//!
//! The first process that opens the database with the new key retires the previous
//! one ([`retire_previous_key`]): every `secret_sealed_prev` becomes NULL. From that
//! moment the previous key opens nothing; a proxy still running with it drops each
//! credential as the feed reports the row (fail closed) and logs that its key is stale.

use rusqlite::{Connection, TransactionBehavior, params};

use super::seal;
use super::sqlite::SqliteStore;
use super::sqlite_schema::{KEY_CHECK_AK, KEY_CHECK_PLAINTEXT, meta_get, meta_set};
use super::sqlite_types::StoreError;
use crate::secret::RootKey;

pub(super) const PREV_ID: &str = "root_key_id_prev";
pub(super) const PREV_CHECK: &str = "root_key_check_prev";
/// Rows read per page while re-sealing (bounded memory for any table size).
const PAGE: i64 = 1_000;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: usize,
    pub old_key_id: String,
    pub new_key_id: String,
}

impl SqliteStore {
    /// Re-seal every secret and the root-key check under `new`, in one transaction.
    ///
    /// # Errors
    /// When `new` is the current key, when this store's key is no longer the
    /// database's, when any row does not open under the current key (nothing is
    /// changed then), or on a database error.
    pub fn rotate_root_key(&self, new: &RootKey) -> Result<Rotation, StoreError> {
        self.rotate_root_key_with(new, |_| Ok(()))
    }

    /// [`Self::rotate_root_key`] with `after_row(n)` called after the n-th re-sealed
    /// row; an error from it aborts the rotation (tests simulate an interruption).
    #[doc(hidden)]
    pub fn rotate_root_key_with(
        &self,
        new: &RootKey,
        mut after_row: impl FnMut(usize) -> Result<(), StoreError>,
    ) -> Result<Rotation, StoreError> {
        let (old_id, new_id) = (self.root.key_id(), new.key_id());
        if new.expose() == self.root.expose() {
            return Err(StoreError::Invalid(
                "the new root key is the current one".into(),
            ));
        }
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        ensure_current_key(&tx, &self.root)?;
        let mut resealed = 0;
        let mut after = String::new();
        loop {
            let page = read_page(&tx, &after)?;
            let Some((last, _)) = page.last() else { break };
            after.clone_from(last);
            for (ak, sealed) in &page {
                let plain = seal::open(&self.root, ak, sealed)
                    .map_err(|_| StoreError::Unseal(ak.clone()))?;
                let fresh = seal::seal(new, ak, &plain);
                tx.execute(
                    "UPDATE credentials SET secret_sealed = ?2, secret_sealed_prev = ?3 \
                     WHERE access_key_id = ?1",
                    params![ak, fresh, sealed],
                )?;
                resealed += 1;
                after_row(resealed)?;
            }
        }
        let old_check = meta_get(&tx, "root_key_check")?.unwrap_or_default();
        meta_set(&tx, PREV_ID, &old_id)?;
        meta_set(&tx, PREV_CHECK, &old_check)?;
        let check = seal::seal(new, KEY_CHECK_AK, KEY_CHECK_PLAINTEXT);
        meta_set(&tx, "root_key_id", &new_id)?;
        meta_set(&tx, "root_key_check", &hex::encode(check))?;
        tx.commit()?;
        Ok(Rotation {
            resealed,
            old_key_id: old_id,
            new_key_id: new_id,
        })
    }

    /// The key id the database is sealed under now (it differs from this store's own
    /// key once another process rotated it).
    pub fn database_key_id(&self) -> Result<Option<String>, StoreError> {
        meta_get(&self.reader(), "root_key_id")
    }
}

fn read_page(conn: &Connection, after: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT access_key_id, secret_sealed FROM credentials \
         WHERE access_key_id > ?1 ORDER BY access_key_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Refuse to seal under `root` when the database has moved to another key: a secret
/// sealed now would not open for processes with the database's key.
pub(super) fn ensure_current_key(conn: &Connection, root: &RootKey) -> Result<(), StoreError> {
    let given = root.key_id();
    match meta_get(conn, "root_key_id")? {
        Some(current) if current != given => Err(StoreError::StaleRootKey { given, current }),
        _ => Ok(()),
    }
}

/// Called by the first open with the database's current key after a rotation: drop
/// every ciphertext kept for the previous key. A no-op when no rotation is pending.
pub(super) fn retire_previous_key(conn: &Connection) -> Result<(), StoreError> {
    let Some(prev) = meta_get(conn, PREV_ID)? else {
        return Ok(());
    };
    let n = conn.execute(
        "UPDATE credentials SET secret_sealed_prev = NULL WHERE secret_sealed_prev IS NOT NULL",
        [],
    )?;
    conn.execute(
        "DELETE FROM meta WHERE key IN (?1, ?2)",
        params![PREV_ID, PREV_CHECK],
    )?;
    tracing::info!(
        previous_key_id = %prev,
        rows = n,
        "retired the previous root key: it no longer opens any secret"
    );
    Ok(())
}
