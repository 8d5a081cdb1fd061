//! Editing several fields of one stored credential at once (the admin API's PATCH): one
//! `UPDATE` statement, so a reader or the change feed never sees half of an edit.

use rusqlite::params;
use time::OffsetDateTime;

use super::model::Scope;
use super::sqlite::SqliteStore;
use super::sqlite_row::unix;
use super::sqlite_types::{StoreError, validate_scopes};

const MAX_DESCRIPTION_LEN: usize = 1024;

/// The fields to change; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialPatch {
    pub scopes: Option<Vec<Scope>>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<OffsetDateTime>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

impl CredentialPatch {
    /// Nothing would change.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.scopes.is_none()
            && self.expires_at.is_none()
            && self.enabled.is_none()
            && self.description.is_none()
    }
}

impl SqliteStore {
    /// Apply `patch` to one credential atomically.
    ///
    /// # Errors
    /// `Invalid` (scopes, description), `NotFound`, or a database error.
    pub fn patch_credential(&self, ak: &str, patch: &CredentialPatch) -> Result<(), StoreError> {
        if let Some(scopes) = &patch.scopes {
            validate_scopes(scopes)?;
        }
        if patch
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN)
        {
            return Err(StoreError::Invalid(
                "description is longer than 1024 bytes".into(),
            ));
        }
        let scopes = patch
            .scopes
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("scopes: {e}")))?;
        let n = self.writer().execute(
            "UPDATE credentials SET \
               scopes = coalesce(?2, scopes), \
               expires_at = CASE WHEN ?3 THEN ?4 ELSE expires_at END, \
               enabled = coalesce(?5, enabled), \
               description = coalesce(?6, description), \
               updated_at = ?7 \
             WHERE access_key_id = ?1",
            params![
                ak,
                scopes,
                patch.expires_at.is_some(),
                patch.expires_at.flatten().map(unix),
                patch.enabled,
                patch.description,
                unix(OffsetDateTime::now_utc()),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(ak.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::model::Access;
    use crate::credentials::sqlite::NewCredential;
    use crate::secret::RootKey;

    fn store() -> (tempfile::TempDir, SqliteStore, String) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db"), RootKey::from_bytes([3; 32])).unwrap();
        let (ak, _) = s
            .create_credential(NewCredential {
                backend: "local".into(),
                scopes: vec![Scope {
                    bucket: "photos".into(),
                    access: Access::ReadOnly,
                    prefix: None,
                }],
                expires_at: Some(OffsetDateTime::now_utc() + time::Duration::days(1)),
                description: "before".into(),
                enabled: true,
            })
            .unwrap();
        (dir, s, ak)
    }

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let (_d, s, ak) = store();
        let before = s.get_record(&ak).unwrap().unwrap();
        s.patch_credential(
            &ak,
            &CredentialPatch {
                enabled: Some(false),
                ..CredentialPatch::default()
            },
        )
        .unwrap();
        let after = s.get_record(&ak).unwrap().unwrap();
        assert!(!after.enabled);
        assert_eq!(after.scopes, before.scopes);
        assert_eq!(after.expires_at, before.expires_at);
        assert_eq!(after.description, "before");
    }

    #[test]
    fn a_patch_can_clear_the_expiry_and_replace_scopes_together() {
        let (_d, s, ak) = store();
        let scopes = vec![Scope {
            bucket: "videos".into(),
            access: Access::ReadWrite,
            prefix: Some("a/".into()),
        }];
        s.patch_credential(
            &ak,
            &CredentialPatch {
                scopes: Some(scopes.clone()),
                expires_at: Some(None),
                description: Some("after".into()),
                ..CredentialPatch::default()
            },
        )
        .unwrap();
        let after = s.get_record(&ak).unwrap().unwrap();
        assert_eq!(after.scopes, scopes);
        assert_eq!(after.expires_at, None);
        assert_eq!(after.description, "after");
        assert!(after.enabled);
    }

    #[test]
    fn invalid_patches_and_unknown_keys_are_refused_without_writing() {
        let (_d, s, ak) = store();
        let bad = CredentialPatch {
            scopes: Some(vec![]),
            enabled: Some(false),
            ..CredentialPatch::default()
        };
        assert!(matches!(
            s.patch_credential(&ak, &bad),
            Err(StoreError::Invalid(_))
        ));
        assert!(
            s.get_record(&ak).unwrap().unwrap().enabled,
            "nothing was written"
        );
        let missing = s.patch_credential("SWNOPE", &CredentialPatch::default());
        assert!(matches!(missing, Err(StoreError::NotFound(_))));
    }
}
