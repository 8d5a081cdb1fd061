//! `stowage key generate|rotate`: root-key files and online rotation of the database
//! to a new root key (see the README's operations section for the procedure).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use stowage::credentials::seal::{generate_key_file, load_key_file};

use crate::{StoreArgs, open_store};

#[derive(Subcommand)]
pub enum KeyAction {
    /// Write a new random root key to a file created with mode 0600 (an existing file
    /// is never overwritten). Prints its key id, never the key.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-seal every secret under the key in NEW, in one transaction, while `serve`
    /// keeps running with the current key. Then restart `serve` with NEW: its first
    /// start retires the current key.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        /// The new root key file (mode 0600, 64 hex characters or base64 of 32 bytes).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

pub fn run(action: KeyAction) -> anyhow::Result<()> {
    match action {
        KeyAction::Generate { out } => {
            let key = generate_key_file(&out)?;
            println!("{}: new root key, key id {}", out.display(), key.key_id());
            Ok(())
        }
        KeyAction::Rotate {
            store,
            new_key_file,
        } => {
            let new = load_key_file(&new_key_file).context("--new-key-file")?;
            let (cfg, store) = open_store(&store)?;
            let r = store.rotate_root_key(&new).with_context(|| {
                format!(
                    "rotation of {} failed; nothing was changed and the current key still works",
                    cfg.database.path.display()
                )
            })?;
            println!(
                "re-sealed {} secret(s): key id {} -> {}",
                r.resealed, r.old_key_id, r.new_key_id
            );
            eprintln!(
                "Running proxies keep working with the old key. Now point \
                 database.secret_key_file (or STOWAGE_SECRET_KEY) at {} and restart them: \
                 the first process opened with the new key retires the old one.",
                new_key_file.display()
            );
            Ok(())
        }
    }
}
