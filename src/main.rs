//! The `stowage` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use stowage::config::{self, Config};
use stowage::credentials::model::{Access, Scope};
use stowage::credentials::seal::load_root_key;
use stowage::credentials::sqlite::{NewCredential, SqliteStore};

mod main_audit;
mod main_browser;
mod main_key;
mod main_quota;

/// mimalloc instead of glibc malloc: the proxy allocates and frees many small buffers per
/// request from several threads, where glibc spent 15 % of the CPU of a small request
/// (README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stowage",
    version,
    about = "A multi-tenant S3 SigV4 reverse proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the S3 proxy (default :8090) and the admin listener (default :8080).
    Serve {
        /// The TOML configuration file (see config.example.toml).
        #[arg(long, short, env = "STOWAGE_CONFIG")]
        config: PathBuf,
    },
    /// Run a complete local setup: an embedded S3 upstream, the proxy, a demo bucket and
    /// a demo credential. Prints the shell lines to use it.
    Quickstart {
        /// Where the objects, database and keys live; reused by later runs.
        #[arg(long, default_value = "stowage-quickstart")]
        data_dir: PathBuf,
        /// S3 proxy address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Admin listener address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        admin_listen: SocketAddr,
    },
    /// Manage virtual credentials in the SQLite store (a running proxy sees changes
    /// within about a second).
    Credentials {
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Per-bucket quotas in the SQLite store (a running proxy sees changes within about
    /// a second). Kubernetes limits, set on Secrets, shadow these per bucket.
    Quota {
        #[command(subcommand)]
        action: main_quota::QuotaAction,
    },
    /// Per-bucket CORS rules in the SQLite store (a running proxy reloads them within
    /// `s3_proxy.credential_poll_interval`).
    Cors {
        #[command(subcommand)]
        action: main_browser::CorsAction,
    },
    /// Anonymous (unsigned) access bindings in the SQLite store. Bindings from
    /// Kubernetes Secrets are managed by those Secrets and shadow these per bucket.
    Anonymous {
        #[command(subcommand)]
        action: main_browser::AnonymousAction,
    },
    /// The audit log in the SQLite database.
    Audit {
        #[command(subcommand)]
        action: main_audit::AuditAction,
    },
    /// Root keys: generate a key file; rotate the database to a new key online.
    Key {
        #[command(subcommand)]
        action: main_key::KeyAction,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// The TOML configuration file naming the database and root key.
    #[arg(long, short, env = "STOWAGE_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum CredentialsAction {
    /// Mint a credential. The secret is printed once and cannot be shown again.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Backend id (a `[[backends]] id` of the config).
        #[arg(long)]
        backend: String,
        /// A scope `BUCKET[:ACCESS[:PREFIX]]`; BUCKET may end in `*`; ACCESS is
        /// read-only | read-write (default) | admin. Repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Expiry as RFC 3339 (`2026-12-31T00:00:00Z`) or a duration from now (`30d`).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List credentials (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one credential (never its secret).
    Show {
        #[command(flatten)]
        store: StoreArgs,
        access_key_id: String,
    },
    /// Enable a credential.
    Enable {
        #[command(flatten)]
        store: StoreArgs,
        access_key_id: String,
    },
    /// Disable a credential; requests signed with it are refused.
    Disable {
        #[command(flatten)]
        store: StoreArgs,
        access_key_id: String,
    },
    /// Delete a credential.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        access_key_id: String,
    },
    /// Replace a credential's secret; the new secret is printed once.
    RotateSecret {
        #[command(flatten)]
        store: StoreArgs,
        access_key_id: String,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a configuration file; exits non-zero naming the offending key.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Quickstart {
            data_dir,
            listen,
            admin_listen,
        } => runtime()?.block_on(stowage::quickstart::run(
            &stowage::quickstart::QuickstartOptions {
                data_dir,
                listen,
                admin_listen,
            },
        )),
        Command::Credentials { action } => credentials(action),
        Command::Quota { action } => main_quota::run(action),
        Command::Cors { action } => main_browser::cors(action),
        Command::Anonymous { action } => main_browser::anonymous(action),
        Command::Audit { action } => main_audit::run(action),
        Command::Key { action } => main_key::run(action),
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let cfg = config::load(&file)?;
            cfg.validate_for_serve()?;
            println!(
                "{}: ok ({} backend(s), proxy on {}, admin on {})",
                file.display(),
                cfg.backends.len(),
                cfg.s3_proxy.listen,
                cfg.admin.listen
            );
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(path)?;
    cfg.validate_for_serve()?;
    stowage::app::init_logging(&cfg.log.level, cfg.log.format == config::LogFormat::Json);
    let root = root_key(&cfg)?;
    runtime()?.block_on(async {
        let running = stowage::app::start(&cfg, root).await?;
        stowage::app::wait_for_signal().await;
        tracing::info!("signal received: shutting down (a second signal exits at once)");
        tokio::select! {
            () = running.shutdown() => Ok(()),
            () = stowage::app::wait_for_signal() => {
                tracing::warn!("second signal: exiting without waiting for in-flight requests");
                bail!("interrupted during shutdown")
            }
        }
    })
}

fn root_key(cfg: &Config) -> anyhow::Result<stowage::secret::RootKey> {
    Ok(load_root_key(
        std::env::var("STOWAGE_SECRET_KEY").ok().as_deref(),
        &cfg.database.secret_key_file,
    )?)
}

fn open_store(args: &StoreArgs) -> anyhow::Result<(Config, SqliteStore)> {
    let cfg = config::load(&args.config)?;
    let store = SqliteStore::open(&cfg.database.path, root_key(&cfg)?)
        .with_context(|| format!("cannot open {}", cfg.database.path.display()))?;
    Ok((cfg, store))
}

fn credentials(action: CredentialsAction) -> anyhow::Result<()> {
    match action {
        CredentialsAction::Create {
            store,
            backend,
            scopes,
            expires,
            description,
            disabled,
        } => {
            let (cfg, store) = open_store(&store)?;
            if !cfg.backends.iter().any(|b| b.id == backend) {
                bail!("--backend: `{backend}` is not a [[backends]] id in the config");
            }
            let scopes = scopes
                .iter()
                .map(|s| parse_scope(s))
                .collect::<anyhow::Result<_>>()?;
            let expires_at = expires.as_deref().map(parse_expiry).transpose()?;
            let (ak, sk) = store.create_credential(NewCredential {
                backend,
                scopes,
                expires_at,
                description,
                enabled: !disabled,
            })?;
            println!(
                "access_key_id:     {ak}\nsecret_access_key: {}",
                sk.expose()
            );
            eprintln!("The secret is shown only now; store it safely.");
            Ok(())
        }
        CredentialsAction::List { store, json } => {
            let (_, store) = open_store(&store)?;
            let rows = store.list_credentials()?;
            if json {
                for r in rows {
                    println!("{}", serde_json::to_string(&r)?);
                }
            } else {
                println!(
                    "{:<22} {:<8} {:<10} {:<20} SCOPES",
                    "ACCESS KEY", "ENABLED", "BACKEND", "EXPIRES"
                );
                for r in rows {
                    println!("{}", r.table_row());
                }
            }
            Ok(())
        }
        CredentialsAction::Show {
            store,
            access_key_id,
        } => {
            let (_, store) = open_store(&store)?;
            let rec = store
                .get_record(&access_key_id)?
                .with_context(|| format!("no credential {access_key_id}"))?;
            println!("{}", serde_json::to_string_pretty(&rec)?);
            Ok(())
        }
        CredentialsAction::Enable {
            store,
            access_key_id,
        } => {
            open_store(&store)?.1.set_enabled(&access_key_id, true)?;
            println!("{access_key_id} enabled");
            Ok(())
        }
        CredentialsAction::Disable {
            store,
            access_key_id,
        } => {
            open_store(&store)?.1.set_enabled(&access_key_id, false)?;
            println!("{access_key_id} disabled");
            Ok(())
        }
        CredentialsAction::Delete {
            store,
            access_key_id,
        } => {
            open_store(&store)?.1.delete_credential(&access_key_id)?;
            println!("{access_key_id} deleted");
            Ok(())
        }
        CredentialsAction::RotateSecret {
            store,
            access_key_id,
        } => {
            let sk = open_store(&store)?.1.rotate_secret(&access_key_id)?;
            println!(
                "access_key_id:     {access_key_id}\nsecret_access_key: {}",
                sk.expose()
            );
            eprintln!(
                "The new secret is shown only now; the old one stops working within seconds."
            );
            Ok(())
        }
    }
}

/// `BUCKET[:ACCESS[:PREFIX]]`.
fn parse_scope(s: &str) -> anyhow::Result<Scope> {
    let mut it = s.splitn(3, ':');
    let bucket = it.next().unwrap_or_default().to_owned();
    let access = match it.next() {
        None | Some("") => Access::ReadWrite,
        Some(a) => Access::parse(a).with_context(|| {
            format!("--scope {s}: access must be read-only, read-write or admin")
        })?,
    };
    let prefix = it.next().filter(|p| !p.is_empty()).map(str::to_owned);
    if bucket.is_empty() {
        bail!("--scope {s}: missing bucket");
    }
    Ok(Scope {
        bucket,
        access,
        prefix,
    })
}

fn parse_expiry(s: &str) -> anyhow::Result<time::OffsetDateTime> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s)
        .with_context(|| format!("--expires {s}: use RFC 3339 or a duration like 30d"))?;
    Ok(time::OffsetDateTime::now_utc() + d)
}
