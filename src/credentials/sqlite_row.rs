//! One `credentials` row as stored, and its conversions into the public types. Reading
//! a row never trusts it: scopes are parsed and re-validated, times range-checked, and
//! the secret opened with the row's own access key id as AAD.

use rusqlite::{Connection, OptionalExtension};
use time::OffsetDateTime;

use super::model::{Credential, CredentialSource, Scope};
use super::seal;
use super::sqlite_types::{CredentialRecord, StoreError, validate_scopes};
use crate::secret::{RootKey, SecretBytes, SecretKey};

/// Columns in the order [`Row::from_sql`] reads them.
pub(super) const SELECT_ROW: &str = "SELECT access_key_id, secret_sealed, backend, scopes, \
     description, enabled, expires_at, created_at, updated_at, secret_sealed_prev FROM credentials";

pub(super) struct Row {
    pub access_key_id: String,
    pub secret_sealed: Vec<u8>,
    /// The ciphertext under the previous root key, kept by a rotation until the first
    /// process with the new key opens the database (see [`super::rotate`]).
    pub secret_sealed_prev: Option<Vec<u8>>,
    backend: String,
    scopes: String,
    description: String,
    enabled: bool,
    expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// Unix seconds of `t`, the column format for every time.
pub(super) fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(super) fn read_row(conn: &Connection, ak: &str) -> Result<Option<Row>, StoreError> {
    let sql = format!("{SELECT_ROW} WHERE access_key_id = ?1");
    Ok(conn.query_row(&sql, [ak], Row::from_sql).optional()?)
}

impl Row {
    pub(super) fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            access_key_id: r.get(0)?,
            secret_sealed: r.get(1)?,
            backend: r.get(2)?,
            scopes: r.get(3)?,
            description: r.get(4)?,
            enabled: r.get(5)?,
            expires_at: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
            secret_sealed_prev: r.get(9)?,
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            access_key_id: self.access_key_id.clone(),
            reason: reason.into(),
        }
    }

    fn time(&self, secs: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| self.corrupt(format!("{column} out of range")))
    }

    /// Scopes written by hand into the file get the same checks as scopes written by
    /// the store: a row that would not be accepted on write is not served either.
    fn parsed_scopes(&self) -> Result<Vec<Scope>, StoreError> {
        let scopes: Vec<Scope> = serde_json::from_str(&self.scopes)
            .map_err(|_| self.corrupt("scopes are not valid JSON scopes"))?;
        validate_scopes(&scopes).map_err(|e| self.corrupt(e.to_string()))?;
        Ok(scopes)
    }

    fn expiry(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        self.expires_at
            .map(|s| self.time(s, "expires_at"))
            .transpose()
    }

    pub(super) fn into_record(self) -> Result<CredentialRecord, StoreError> {
        Ok(CredentialRecord {
            scopes: self.parsed_scopes()?,
            expires_at: self.expiry()?,
            created_at: self.time(self.created_at, "created_at")?,
            updated_at: self.time(self.updated_at, "updated_at")?,
            access_key_id: self.access_key_id,
            backend: self.backend,
            description: self.description,
            enabled: self.enabled,
        })
    }

    /// The secret under `root`: the current ciphertext, or the one a rotation kept for
    /// processes that still run with the previous key.
    pub(super) fn open_secret(&self, root: &RootKey) -> Result<SecretBytes, StoreError> {
        let ak = &self.access_key_id;
        seal::open(root, ak, &self.secret_sealed)
            .or_else(|e| match &self.secret_sealed_prev {
                Some(prev) => seal::open(root, ak, prev),
                None => Err(e),
            })
            .map_err(|_| StoreError::Unseal(ak.clone()))
    }

    pub(super) fn into_credential(self, root: &RootKey) -> Result<Credential, StoreError> {
        let plain = self.open_secret(root)?;
        let text = std::str::from_utf8(&plain).map_err(|_| self.corrupt("secret is not UTF-8"))?;
        Ok(Credential {
            secret: SecretKey::new(text),
            scopes: self.parsed_scopes()?,
            expires_at: self.expiry()?,
            access_key_id: self.access_key_id,
            backend: self.backend,
            enabled: self.enabled,
            source: CredentialSource::Sqlite,
            description: self.description,
        })
    }
}
