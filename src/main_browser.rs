//! `stowage cors set|show|clear` and `stowage anonymous set|list|remove`: the
//! browser-facing bucket settings in the SQLite store. A running proxy reloads them
//! within `s3_proxy.credential_poll_interval`. Bindings from Kubernetes
//! `anonymous-binding` Secrets are managed by those Secrets and not shown here.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use stowage::config::Config;
use stowage::cors::CorsConfiguration;
use stowage::cors::store::SettingsError;
use stowage::credentials::anonymous::{AnonymousBinding, AnonymousMode};
use stowage::credentials::model::{Access, Scope};
use stowage::credentials::sqlite::{SqliteStore, validate_scopes};
use stowage::quota::BucketKey;

use crate::main_quota::key_of;
use crate::{StoreArgs, open_store};

/// A bucket, and the backend it lives on.
#[derive(Args)]
pub struct Target {
    #[command(flatten)]
    store: StoreArgs,
    bucket: String,
    /// Backend id; defaults to the only `[[backends]]` entry of the config.
    #[arg(long)]
    backend: Option<String>,
}

#[derive(Subcommand)]
pub enum CorsAction {
    /// Set (replace) a bucket's CORS rules, from S3's `put-bucket-cors` JSON
    /// (`{"CORSRules": [...]}`; `aws s3api get-bucket-cors` output works).
    #[command(group(ArgGroup::new("rules").required(true).args(["file", "json"])))]
    Set {
        #[command(flatten)]
        target: Target,
        /// A file with the rules; `-` reads standard input.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The rules inline.
        #[arg(long)]
        json: Option<String>,
    },
    /// Show rules: one bucket's (its backend as for `set`), or every bucket's.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        bucket: Option<String>,
        /// Only this backend.
        #[arg(long)]
        backend: Option<String>,
        /// JSON: one bucket's rules in S3's shape (input for `cors set --file`), or
        /// one line per bucket.
        #[arg(long)]
        json: bool,
    },
    /// Remove a bucket's CORS rules; preflights to it are then refused.
    Clear {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum AnonymousAction {
    /// Bind a bucket for unsigned requests (needs `s3_proxy.anonymous_enabled = true`).
    Set {
        #[command(flatten)]
        target: Target,
        /// `ReadOnly` (object reads and listing) or `None` (deny, explicitly).
        #[arg(long, value_parser = parse_mode)]
        mode: AnonymousMode,
        /// Requests per second per source IP on this bucket; absent (or 0): only the
        /// proxy-wide source-IP limits apply.
        #[arg(long)]
        rps: Option<f64>,
    },
    /// List the SQLite bindings.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove a bucket's binding.
    Remove {
        #[command(flatten)]
        target: Target,
    },
}

// A clap value parser: the text follows "invalid value '…' for '--mode'".
fn parse_mode(s: &str) -> Result<AnonymousMode, String> {
    AnonymousMode::parse(s).ok_or_else(|| "use ReadOnly or None".to_owned())
}

fn bucket_name(bucket: &str) -> anyhow::Result<()> {
    let scope = Scope {
        bucket: bucket.to_owned(),
        access: Access::ReadOnly,
        prefix: None,
    };
    if bucket.contains('*') || validate_scopes(&[scope]).is_err() {
        bail!("BUCKET: `{bucket}` is not a bucket name (3-63 of a-z 0-9 . -)");
    }
    Ok(())
}

fn open(t: Target) -> anyhow::Result<(Config, SqliteStore, BucketKey)> {
    bucket_name(&t.bucket)?;
    let (cfg, store) = open_store(&t.store)?;
    let key = key_of(&cfg, t.bucket, t.backend)?;
    Ok((cfg, store, key))
}

fn store_error(flag: &str, e: SettingsError) -> anyhow::Error {
    match e {
        SettingsError::Invalid { field, reason } => anyhow::anyhow!("{flag} ({field}): {reason}"),
        other @ SettingsError::Sqlite(_) => other.into(),
    }
}

/// Run one `cors` subcommand.
pub fn cors(action: CorsAction) -> anyhow::Result<()> {
    match action {
        CorsAction::Set { target, file, json } => {
            let (flag, text) = match (file, json) {
                (Some(p), _) => (format!("--file {}", p.display()), read_rules(&p)?),
                (None, Some(j)) => ("--json".to_owned(), j),
                (None, None) => bail!("give --file or --json"),
            };
            let rules = parse_rules(&flag, &text)?;
            let (_, store, key) = open(target)?;
            store
                .set_cors(&key, &rules)
                .map_err(|e| store_error(&flag, e))?;
            print!("{}", cors_table(&[(key, rules)]));
            Ok(())
        }
        CorsAction::Show {
            store,
            bucket,
            backend,
            json,
        } => show_cors(&store, bucket, backend, json),
        CorsAction::Clear { target } => {
            let (_, store, key) = open(target)?;
            if !store.clear_cors(&key).map_err(|e| store_error("", e))? {
                bail!("{}/{} has no CORS rules", key.backend, key.bucket);
            }
            println!("CORS rules of {}/{} cleared", key.backend, key.bucket);
            Ok(())
        }
    }
}

/// S3's JSON shape, decoded as the admin API decodes it, so both name the same field
/// (`CORSRules[0].AllowedMethods`).
fn parse_rules(flag: &str, text: &str) -> anyhow::Result<CorsConfiguration> {
    let rules: CorsConfiguration = stowage::admin::json::decode(text.as_bytes()).map_err(|e| {
        let field = e.field.unwrap_or_else(|| "CORSRules".to_owned());
        anyhow::anyhow!("{flag} ({field}): {}", e.message)
    })?;
    rules
        .validate()
        .map_err(|e| anyhow::anyhow!("{flag} ({}): {}", e.field, e.reason))?;
    Ok(rules)
}

fn read_rules(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("--file -: cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("--file {}: cannot read", path.display()))?;
    }
    Ok(text)
}

fn show_cors(
    args: &StoreArgs,
    bucket: Option<String>,
    backend: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let (cfg, store) = open_store(args)?;
    let all = store.list_cors().map_err(|e| store_error("", e))?;
    let Some(bucket) = bucket else {
        let rows: Vec<_> = all
            .into_iter()
            .filter(|(k, _)| backend.as_deref().is_none_or(|b| k.backend == b))
            .collect();
        if json {
            for (k, c) in &rows {
                let line = serde_json::json!({"backend": k.backend, "bucket": k.bucket, "CORSRules": c.rules});
                println!("{line}");
            }
        } else {
            print!("{}", cors_table(&rows));
        }
        return Ok(());
    };
    let key = key_of(&cfg, bucket, backend)?;
    let Some((_, rules)) = all.into_iter().find(|(k, _)| *k == key) else {
        bail!("{}/{} has no CORS rules", key.backend, key.bucket);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rules)?);
    } else {
        print!("{}", cors_table(&[(key, rules)]));
    }
    Ok(())
}

/// One row per rule.
fn cors_table(rows: &[(BucketKey, CorsConfiguration)]) -> String {
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    let mut out = format!(
        "{:<10} {:<24} {:>4} {:<32} {:<18} {:<12} {:<12} MAX_AGE\n",
        "BACKEND", "BUCKET", "RULE", "ORIGINS", "METHODS", "HEADERS", "EXPOSE"
    );
    for (k, c) in rows {
        for (i, r) in c.rules.iter().enumerate() {
            out.push_str(&format!(
                "{:<10} {:<24} {:>4} {:<32} {:<18} {:<12} {:<12} {}\n",
                k.backend,
                k.bucket,
                i,
                dash(&r.allowed_origins),
                dash(&r.allowed_methods),
                dash(&r.allowed_headers),
                dash(&r.expose_headers),
                r.max_age_seconds
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            ));
        }
    }
    out
}

fn kill_switch_note(cfg: &Config) {
    if !cfg.s3_proxy.anonymous_enabled {
        eprintln!(
            "note: s3_proxy.anonymous_enabled is false in this config; bindings take effect \
             only once it is true"
        );
    }
}

/// Run one `anonymous` subcommand.
pub fn anonymous(action: AnonymousAction) -> anyhow::Result<()> {
    match action {
        AnonymousAction::Set { target, mode, rps } => {
            let (cfg, store, key) = open(target)?;
            store
                .set_anonymous(&key, mode, rps)
                .map_err(|e| store_error("--rps", e))?;
            let rows = store.list_anonymous().map_err(|e| store_error("", e))?;
            let rows: Vec<_> = rows.into_iter().filter(|b| b.key() == key).collect();
            print!("{}", binding_table(&rows));
            kill_switch_note(&cfg);
            Ok(())
        }
        AnonymousAction::List { store, json } => {
            let (cfg, store) = open_store(&store)?;
            let rows = store.list_anonymous().map_err(|e| store_error("", e))?;
            if json {
                for b in &rows {
                    let line = serde_json::json!({
                        "backend": b.backend, "bucket": b.bucket, "mode": b.mode.as_str(),
                        "per_source_ip_rps": b.per_source_ip_rps, "source": "sqlite",
                    });
                    println!("{line}");
                }
            } else {
                print!("{}", binding_table(&rows));
            }
            eprintln!(
                "SQLite bindings only: bindings from Kubernetes `anonymous-binding` Secrets \
                 are managed by those Secrets (the admin API's GET /api/v1/anonymous shows \
                 both)."
            );
            kill_switch_note(&cfg);
            Ok(())
        }
        AnonymousAction::Remove { target } => {
            let (_, store, key) = open(target)?;
            if !store
                .clear_anonymous(&key)
                .map_err(|e| store_error("", e))?
            {
                bail!("{}/{} has no anonymous binding", key.backend, key.bucket);
            }
            println!(
                "anonymous binding of {}/{} removed",
                key.backend, key.bucket
            );
            Ok(())
        }
    }
}

fn binding_table(rows: &[AnonymousBinding]) -> String {
    let mut out = format!(
        "{:<10} {:<24} {:<9} RPS_PER_SOURCE_IP\n",
        "BACKEND", "BUCKET", "MODE"
    );
    for b in rows {
        let rps = b
            .per_source_ip_rps
            .map_or_else(|| "default".to_owned(), |r| r.to_string());
        out.push_str(&format!(
            "{:<10} {:<24} {:<9} {rps}\n",
            b.backend,
            b.bucket,
            b.mode.as_str()
        ));
    }
    out
}
