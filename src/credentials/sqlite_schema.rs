//! Opening the SQLite database: a private file, WAL, pragmas, schema migrations and
//! the root-key check that makes a wrong key fail closed at start-up.
//!
//! Schema versions: `PRAGMA user_version` = number of entries of [`MIGRATIONS`] applied.
//! Migration files are append-only; a test pins their hashes.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::seal;
use super::sqlite_row::{Row, SELECT_ROW};
use super::sqlite_types::StoreError;
use crate::secret::RootKey;

/// Every schema migration, in order. Append only; never edit an applied one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_credentials",
        include_str!("../../migrations/0001_credentials.sql"),
    ),
    (
        "0002_quotas",
        include_str!("../../migrations/0002_quotas.sql"),
    ),
    (
        "0003_audit",
        include_str!("../../migrations/0003_audit.sql"),
    ),
    (
        "0004_root_key_rotation",
        include_str!("../../migrations/0004_root_key_rotation.sql"),
    ),
    (
        "0005_browser",
        include_str!("../../migrations/0005_browser.sql"),
    ),
];

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The pseudo access key id the root-key check value is sealed under; it cannot
/// collide with a real one (`<` is not allowed in access key ids).
pub(super) const KEY_CHECK_AK: &str = "<root-key-check>";
pub(super) const KEY_CHECK_PLAINTEXT: &[u8] = b"stowage root key check v1";

/// The write connection: creates the file, switches to WAL, migrates, checks the key.
pub(super) fn open_writer(path: &Path, root: &RootKey) -> Result<Connection, StoreError> {
    create_private_file(path)?;
    let mut conn = connect(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal(mode));
    }
    // FULL: a credential (and its one-time secret shown to the operator) survives a
    // power cut once `create` returns; the write rate is tiny.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // 32 MiB page cache for bulk imports (1M rows spill badly with the 2 MiB default);
    // pages are only allocated when used.
    conn.pragma_update(None, "cache_size", -32768)?;
    migrate(&mut conn)?;
    verify_root_key(&mut conn, root)?;
    Ok(conn)
}

/// A read-only connection (by pragma: WAL readers still need the `-shm` file).
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The database file holds sealed secrets and tenant metadata: create it (and its
/// directory) private. SQLite gives the `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io_error(dir, source))?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// Apply every migration newer than `user_version`, all in one write transaction, so
/// two processes starting together cannot both apply the same one.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let applied = usize::try_from(current).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: MIGRATIONS.len(),
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tracing::info!(migration = name, "applied database migration");
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(super) fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

pub(super) fn meta_u64(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    Ok(meta_get(conn, key)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Fail closed on a wrong root key: the first open records a value sealed with the
/// key (and the key's id); later opens must be able to unseal it.
fn verify_root_key(conn: &mut Connection, root: &RootKey) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mismatch = |expected: String| StoreError::RootKeyMismatch {
        given: root.key_id(),
        expected,
    };
    match (
        meta_get(&tx, "root_key_id")?,
        meta_get(&tx, "root_key_check")?,
    ) {
        (Some(id), Some(check)) => {
            if opens_check(root, &check) {
                // The first open with the key a rotation installed retires the old one.
                super::rotate::retire_previous_key(&tx)?;
            } else if meta_get(&tx, super::rotate::PREV_CHECK)?
                .is_some_and(|prev| opens_check(root, &prev))
            {
                return Err(StoreError::StaleRootKey {
                    given: root.key_id(),
                    current: id,
                });
            } else {
                return Err(mismatch(id));
            }
        }
        (id, _) => {
            // No check recorded (first open, or the row was removed): any existing
            // credential must still open under this key before we vouch for it.
            let sample = tx
                .query_row(&format!("{SELECT_ROW} LIMIT 1"), [], Row::from_sql)
                .optional()?;
            if let Some(row) = sample
                && row.open_secret(root).is_err()
            {
                return Err(mismatch(id.unwrap_or_else(|| "unknown".into())));
            }
            let check = seal::seal(root, KEY_CHECK_AK, KEY_CHECK_PLAINTEXT);
            meta_set(&tx, "root_key_id", &root.key_id())?;
            meta_set(&tx, "root_key_check", &hex::encode(check))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Whether the hex `check` value opens under `root` to the check plaintext.
pub(super) fn opens_check(root: &RootKey, check: &str) -> bool {
    let opened = hex::decode(check)
        .ok()
        .and_then(|c| seal::open(root, KEY_CHECK_AK, &c).ok());
    opened.as_deref().map(Vec::as_slice) == Some(KEY_CHECK_PLAINTEXT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Applied migrations must never change: a database that already ran one would
    /// silently diverge from a fresh one. Add a new file (and its hash here) instead.
    const PINNED: [(&str, &str); 5] = [
        (
            "0001_credentials",
            "516ab5e786906310730b05d391b14d75aa6bec22f30050300f745dbd6a29cd5f",
        ),
        (
            "0002_quotas",
            "81db7b14c4cb2c8e9ad10ed479b06fd507f37447f7b8144e28431b5445578b76",
        ),
        (
            "0003_audit",
            "d0db82eb746108c939ae3d4bac0febeaa2368844dc5acf98d922d6f51ddd18ae",
        ),
        (
            "0004_root_key_rotation",
            "87bc35acb14bca12991194f580cde221c817838f82b337b9f07f68bd40b717f2",
        ),
        (
            "0005_browser",
            "e9804d6ad4129d522486bd61fe3a1ee7cb3316c8bd504cc2d97092a34ec5c629",
        ),
    ];

    #[test]
    fn applied_migrations_are_unchanged() {
        assert_eq!(
            MIGRATIONS.len(),
            PINNED.len(),
            "pin the new migration's hash"
        );
        for ((name, sql), (want_name, want_hash)) in MIGRATIONS.iter().zip(PINNED) {
            assert_eq!(*name, want_name);
            assert_eq!(
                hex::encode(Sha256::digest(sql)),
                want_hash,
                "{name} was edited"
            );
        }
    }
}
