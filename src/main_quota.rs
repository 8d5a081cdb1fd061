//! `stowage quota set|show|clear|recount`: per-bucket limits in the SQLite store. A
//! running proxy polls the store, so changes apply within about a second; a recount is
//! a request the running proxy's scanner answers through the same file.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use stowage::config::Config;
use stowage::credentials::sqlite::SqliteStore;
use stowage::quota::BucketKey;
use stowage::quota::cli;
use stowage::quota::store::QuotaStoreError;

use crate::{StoreArgs, open_store};

#[derive(Args)]
pub struct QuotaTarget {
    #[command(flatten)]
    store: StoreArgs,
    bucket: String,
    /// Backend id; defaults to the only `[[backends]]` entry of the config.
    #[arg(long)]
    backend: Option<String>,
}

#[derive(Subcommand)]
pub enum QuotaAction {
    /// Set or edit a bucket's caps. Flags not given keep their stored value; `none`
    /// removes that cap.
    Set {
        #[command(flatten)]
        target: QuotaTarget,
        /// Hard byte cap: writes past it get 507. Bytes or a unit (10GiB, 500MB).
        #[arg(long, value_parser = parse_size_flag)]
        hard: Option<Cap>,
        /// Soft byte cap: crossing it warns (header, metric, log).
        #[arg(long, value_parser = parse_size_flag)]
        soft: Option<Cap>,
        /// Object-count cap: writes past it get 507.
        #[arg(long, value_parser = parse_count_flag)]
        max_objects: Option<Cap>,
    },
    /// Show limits and the usage last persisted by a running proxy.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this bucket.
        bucket: Option<String>,
        /// Only this backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Remove a bucket's caps.
    Clear {
        #[command(flatten)]
        target: QuotaTarget,
    },
    /// Ask the running proxy to rescan a bucket now, and print the result.
    Recount {
        #[command(flatten)]
        target: QuotaTarget,
        /// How long to wait for a running proxy to answer.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// Run one `quota` subcommand.
pub fn run(action: QuotaAction) -> anyhow::Result<()> {
    match action {
        QuotaAction::Set {
            target,
            hard,
            soft,
            max_objects,
        } => set(
            target,
            hard.map(|c| c.0),
            soft.map(|c| c.0),
            max_objects.map(|c| c.0),
        ),
        QuotaAction::Show {
            store,
            bucket,
            backend,
        } => show(&store, bucket.as_deref(), backend.as_deref()),
        QuotaAction::Clear { target } => {
            let (store, key) = open(target)?;
            if !store.clear_limits(&key)? {
                bail!("{}/{} has no quota set", key.backend, key.bucket);
            }
            println!("quota of {}/{} cleared", key.backend, key.bucket);
            Ok(())
        }
        QuotaAction::Recount { target, timeout } => {
            let (store, key) = open(target)?;
            let row = cli::recount_and_wait(&store, &key, timeout, Duration::from_millis(200))?;
            print!("{}", cli::render_table(&[], &[row]));
            Ok(())
        }
    }
}

/// A cap flag's value: a number, or `none` to remove the cap. A newtype because clap
/// reads `Option<Option<T>>` as "flag with an optional value".
#[derive(Clone, Copy)]
pub struct Cap(Option<u64>);

// clap value parsers: the error text is shown after "invalid value '…' for '--flag'".
fn parse_size_flag(s: &str) -> Result<Cap, String> {
    cli::parse_size_arg(s).map(Cap).map_err(|e| e.to_string())
}

fn parse_count_flag(s: &str) -> Result<Cap, String> {
    cli::parse_count_arg(s).map(Cap).map_err(|e| e.to_string())
}

/// The bucket's key: `--backend`, or the config's only backend.
pub(crate) fn key_of(
    cfg: &Config,
    bucket: String,
    backend: Option<String>,
) -> anyhow::Result<BucketKey> {
    let ids: Vec<&str> = cfg.backends.iter().map(|b| b.id.as_str()).collect();
    let backend = match (backend, ids.as_slice()) {
        (Some(b), _) if ids.contains(&b.as_str()) => b,
        (Some(b), _) => bail!(
            "--backend: `{b}` is not a [[backends]] id in the config (configured: {})",
            ids.join(", ")
        ),
        (None, [only]) => (*only).to_owned(),
        (None, _) => bail!(
            "--backend: the config has {} backends ({}); name one",
            ids.len(),
            ids.join(", ")
        ),
    };
    Ok(BucketKey::new(backend, bucket))
}

fn open(t: QuotaTarget) -> anyhow::Result<(SqliteStore, BucketKey)> {
    let (cfg, store) = open_store(&t.store)?;
    let key = key_of(&cfg, t.bucket, t.backend)?;
    Ok((store, key))
}

fn set(
    target: QuotaTarget,
    hard: cli::LimitArg,
    soft: cli::LimitArg,
    max_objects: cli::LimitArg,
) -> anyhow::Result<()> {
    if hard.is_none() && soft.is_none() && max_objects.is_none() {
        bail!("give at least one of --hard, --soft, --max-objects");
    }
    let (store, key) = open(target)?;
    let stored = |store: &SqliteStore| -> anyhow::Result<Vec<_>> {
        let rows = store.list_limits()?;
        Ok(rows.into_iter().filter(|r| r.key == key).collect())
    };
    let current = stored(&store)?
        .first()
        .map(|r| r.limits)
        .unwrap_or_default();
    let limits = cli::merge_limits(current, hard, soft, max_objects);
    store.set_limits(&key, limits).map_err(|e| match e {
        QuotaStoreError::Invalid { field, reason } => {
            anyhow::anyhow!("{} ({field}): {reason}", cli::flag_of(field))
        }
        other => other.into(),
    })?;
    print!("{}", cli::render_table(&stored(&store)?, &[]));
    Ok(())
}

fn show(args: &StoreArgs, bucket: Option<&str>, backend: Option<&str>) -> anyhow::Result<()> {
    let (_, store) = open_store(args)?;
    let keep = |k: &BucketKey| {
        bucket.is_none_or(|b| k.bucket == b) && backend.is_none_or(|b| k.backend == b)
    };
    let mut limits = store.list_limits()?;
    limits.retain(|r| keep(&r.key));
    let mut usage = store.load_usage()?;
    usage.retain(|r| keep(&r.key));
    if let Some(b) = bucket
        && limits.is_empty()
        && usage.is_empty()
    {
        bail!("no quota or usage recorded for bucket `{b}`");
    }
    print!("{}", cli::render_table(&limits, &usage));
    Ok(())
}
