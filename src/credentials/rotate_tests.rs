//! Root-key rotation against a real SQLite file: all-or-nothing, the previous key's
//! window, and its retirement.

use super::model::{Access, Scope};
use super::sqlite::{NewCredential, SqliteStore, generate_access_key_id, generate_secret};
use super::sqlite_types::StoreError;
use crate::secret::RootKey;

const OLD: [u8; 32] = [1; 32];
const NEW: [u8; 32] = [2; 32];

fn key(b: [u8; 32]) -> RootKey {
    RootKey::from_bytes(b)
}

fn new_credential() -> NewCredential {
    NewCredential {
        backend: "local".into(),
        scopes: vec![Scope {
            bucket: "photos".into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at: None,
        description: String::new(),
        enabled: true,
    }
}

/// A store with `n` credentials under [`OLD`]; returns their (access key, secret).
fn populated(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SqliteStore::open(&path, key(OLD)).unwrap();
    let keys: Vec<_> = (0..n)
        .map(|_| (generate_access_key_id(), generate_secret()))
        .collect();
    let rows = keys
        .iter()
        .map(|(ak, sk)| (ak.clone(), sk.clone(), new_credential()));
    store.insert_many_with_secrets(rows).unwrap();
    let creds = keys
        .into_iter()
        .map(|(ak, sk)| (ak, sk.expose().to_owned()))
        .collect();
    (dir, path, creds)
}

fn secrets_under(store: &SqliteStore, creds: &[(String, String)]) {
    for (ak, sk) in creds {
        let c = store.get_credential(ak).unwrap().expect("row");
        assert_eq!(c.secret.expose(), sk, "{ak}");
    }
}

#[test]
fn an_interrupted_rotation_changes_nothing_and_the_old_key_still_opens_every_row() {
    let (_dir, path, creds) = populated(2_500);
    let store = SqliteStore::open(&path, key(OLD)).unwrap();
    let err = store
        .rotate_root_key_with(&key(NEW), |n| {
            if n == 1_700 {
                Err(StoreError::Internal("interrupted".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err}");
    drop(store);
    let reopened = SqliteStore::open(&path, key(OLD)).expect("the old key still opens");
    secrets_under(&reopened, &creds);
    assert_eq!(reopened.database_key_id().unwrap(), Some(key(OLD).key_id()));
    let refused = SqliteStore::open(&path, key(NEW)).unwrap_err();
    assert!(
        matches!(refused, StoreError::RootKeyMismatch { .. }),
        "{refused}"
    );
}

#[test]
fn a_row_that_does_not_open_aborts_the_rotation_naming_it() {
    let (_dir, path, creds) = populated(3);
    let store = SqliteStore::open(&path, key(OLD)).unwrap();
    store
        .writer()
        .execute(
            "UPDATE credentials SET secret_sealed = x'01' WHERE access_key_id = ?1",
            [&creds[1].0],
        )
        .unwrap();
    let err = store.rotate_root_key(&key(NEW)).unwrap_err();
    assert!(err.to_string().contains(&creds[1].0), "{err}");
    secrets_under(&store, &[creds[0].clone(), creds[2].clone()]);
    assert_eq!(store.database_key_id().unwrap(), Some(key(OLD).key_id()));
}

#[test]
fn after_rotation_the_old_key_process_reads_everything_but_seals_nothing() {
    let (_dir, path, creds) = populated(5);
    let old_server = SqliteStore::open(&path, key(OLD)).unwrap();
    let cli = SqliteStore::open(&path, key(OLD)).unwrap();
    let r = cli.rotate_root_key(&key(NEW)).unwrap();
    assert_eq!(r.resealed, 5);
    assert_eq!(
        (r.old_key_id, r.new_key_id),
        (key(OLD).key_id(), key(NEW).key_id())
    );
    // The running old-key process still opens every row (through the kept copy).
    secrets_under(&old_server, &creds);
    let (all, _) = old_server.load_all().unwrap();
    assert_eq!(all.len(), 5);
    // It refuses to seal under a retired key…
    for err in [
        old_server.rotate_secret(&creds[0].0).unwrap_err(),
        old_server.create_credential(new_credential()).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::StaleRootKey { .. }), "{err}");
    }
    // …and a process starting with it is refused with a message that says why.
    let err = SqliteStore::open(&path, key(OLD)).unwrap_err();
    assert!(matches!(err, StoreError::StaleRootKey { .. }), "{err}");
    assert!(err.to_string().contains("rotated away"), "{err}");
}

#[test]
fn the_first_open_with_the_new_key_retires_the_old_one() {
    let (_dir, path, creds) = populated(4);
    let old_server = SqliteStore::open(&path, key(OLD)).unwrap();
    SqliteStore::open(&path, key(OLD))
        .unwrap()
        .rotate_root_key(&key(NEW))
        .unwrap();
    let new_process = SqliteStore::open(&path, key(NEW)).unwrap();
    secrets_under(&new_process, &creds);
    let kept: i64 = new_process
        .reader()
        .query_row(
            "SELECT count(*) FROM credentials WHERE secret_sealed_prev IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 0, "no ciphertext under the old key is left");
    // The old-key process now fails closed on every row.
    let (all, _) = old_server.load_all().unwrap();
    assert!(all.is_empty());
    assert!(matches!(
        old_server.get_credential(&creds[0].0),
        Err(StoreError::Unseal(_))
    ));
    // The old key no longer matches at all.
    let err = SqliteStore::open(&path, key(OLD)).unwrap_err();
    assert!(matches!(err, StoreError::RootKeyMismatch { .. }), "{err}");
    // New secrets are sealed under the new key only.
    let rotated = new_process.rotate_secret(&creds[0].0).unwrap();
    let c = new_process.get_credential(&creds[0].0).unwrap().unwrap();
    assert_eq!(c.secret, rotated);
}

#[test]
fn rotating_to_the_current_key_is_refused() {
    let (_dir, path, _) = populated(1);
    let store = SqliteStore::open(&path, key(OLD)).unwrap();
    let err = store.rotate_root_key(&key(OLD)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

#[test]
fn a_second_rotation_moves_on_from_the_key_in_charge() {
    let (_dir, path, creds) = populated(3);
    SqliteStore::open(&path, key(OLD))
        .unwrap()
        .rotate_root_key(&key(NEW))
        .unwrap();
    let third = key([3; 32]);
    SqliteStore::open(&path, key(NEW))
        .unwrap()
        .rotate_root_key(&third)
        .unwrap();
    let store = SqliteStore::open(&path, third).unwrap();
    secrets_under(&store, &creds);
}
