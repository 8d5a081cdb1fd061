//! `stowage quickstart`: a working proxy on a fresh machine with nothing configured.
//! It starts an embedded filesystem-backed S3 upstream in a local data directory,
//! writes a real config file there (so every other subcommand works against it),
//! creates a demo bucket and credential, and prints the exact shell lines to use them.
//! A second run reuses everything.

pub mod upstream;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::Rng;

use crate::credentials::model::{Access, Scope};
use crate::credentials::sqlite::NewCredential;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
}

pub const DEMO_BUCKET: &str = "demo";
const UPSTREAM_ACCESS_KEY_FILE: &str = "upstream-access-key";
const UPSTREAM_SECRET_FILE: &str = "upstream-secret-key";
const DEMO_KEY_FILE: &str = "demo-access-key";
/// The admin page's token (`admin.token_file`), created once with mode 0600.
const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Run until Ctrl-C.
///
/// # Errors
/// When the data directory, the ports or the database cannot be used.
pub async fn run(opts: &QuickstartOptions) -> anyhow::Result<()> {
    let dir = &opts.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let upstream_ak = read_or_create(&dir.join(UPSTREAM_ACCESS_KEY_FILE), || {
        random_text(20, true)
    })?;
    let upstream_sk = read_or_create(&dir.join(UPSTREAM_SECRET_FILE), || random_text(40, false))?;
    let admin_token = read_or_create(&dir.join(ADMIN_TOKEN_FILE), || random_text(32, false))?;
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join(DEMO_BUCKET))?;
    let up =
        upstream::spawn_fs_upstream(&objects, "127.0.0.1:0".parse()?, &upstream_ak, &upstream_sk)
            .await
            .context("cannot start the embedded upstream")?;

    let config_path = dir.join("stowage.toml");
    std::fs::write(&config_path, config_text(opts, &up.endpoint()))?;
    let config = crate::config::load(&config_path)?;
    crate::app::init_logging(&config.log.level, false);
    let root = crate::credentials::seal::load_root_key(
        std::env::var("STOWAGE_SECRET_KEY").ok().as_deref(),
        &config.database.secret_key_file,
    )?;
    let running = crate::app::start(&config, root).await?;
    let (ak, sk) = demo_credential(&running.store, dir)?;
    running.store.reload_into(&running.cache)?;
    print_banner(opts, &config_path, &ak, sk.expose(), &admin_token);

    crate::app::wait_for_signal().await;
    eprintln!("\nshutting down…");
    running.shutdown().await;
    up.stop();
    Ok(())
}

/// The generated config: the same format an operator writes by hand.
fn config_text(opts: &QuickstartOptions, upstream_endpoint: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `stowage quickstart`; regenerated on every quickstart run."
    );
    let _ = writeln!(
        s,
        "[s3_proxy]\nlisten = \"{}\"\nhost_suffixes = [\"localhost\"]\n",
        opts.listen
    );
    let _ = writeln!(
        s,
        "[admin]\nlisten = \"{}\"\ntoken_file = \"{ADMIN_TOKEN_FILE}\"\n",
        opts.admin_listen
    );
    // Nothing balances load in front of a quickstart: Ctrl-C need not wait for one.
    let _ = writeln!(s, "[server]\ndrain_delay = \"0s\"\n");
    let _ = writeln!(
        s,
        "[database]\npath = \"stowage.db\"\nsecret_key_file = \"stowage.key\"\n"
    );
    let _ = writeln!(
        s,
        "[[backends]]\nid = \"local\"\nendpoint = \"{upstream_endpoint}\"\nregion = \"us-east-1\"\naccess_key_id_file = \"{UPSTREAM_ACCESS_KEY_FILE}\"\nsecret_access_key_file = \"{UPSTREAM_SECRET_FILE}\""
    );
    s
}

/// Reuse the demo credential from an earlier run, or mint one.
fn demo_credential(
    store: &crate::credentials::sqlite::SqliteStore,
    dir: &Path,
) -> anyhow::Result<(String, crate::secret::SecretKey)> {
    let marker = dir.join(DEMO_KEY_FILE);
    if let Ok(ak) = std::fs::read_to_string(&marker)
        && let Some(c) = store.get_credential(ak.trim())?
    {
        return Ok((c.access_key_id.clone(), c.secret.clone()));
    }
    let (ak, sk) = store.create_credential(NewCredential {
        backend: "local".into(),
        scopes: vec![Scope {
            bucket: DEMO_BUCKET.into(),
            access: Access::ReadWrite,
            prefix: None,
        }],
        expires_at: None,
        description: "quickstart demo credential".into(),
        enabled: true,
    })?;
    std::fs::write(&marker, &ak)?;
    Ok((ak, sk))
}

fn print_banner(opts: &QuickstartOptions, config_path: &Path, ak: &str, sk: &str, token: &str) {
    let port = opts.listen.port();
    // A closed stdout (the reader went away) must not take the running proxy down, as
    // `println!` would by panicking on the broken pipe.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nStowage quickstart is running.\n\
         \n  S3 proxy:  http://127.0.0.1:{port}   (bucket `{DEMO_BUCKET}` is ready)\
         \n  admin:     http://{}/admin/s3-proxy   (token: {token})\
         \n  config:    {}\
         \n\nIn another shell:\n\
         \nexport AWS_ACCESS_KEY_ID={ak}\
         \nexport AWS_SECRET_ACCESS_KEY={sk}\
         \nexport AWS_REGION=us-east-1\
         \nexport AWS_ENDPOINT_URL=http://127.0.0.1:{port}\
         \necho hello > hello.txt\
         \naws s3 cp hello.txt s3://{DEMO_BUCKET}/hello.txt\
         \naws s3 ls s3://{DEMO_BUCKET}/\
         \n\nManage credentials: stowage credentials list --config {}\
         \nPress Ctrl-C to stop; the next run reuses the data in {}.\n",
        opts.admin_listen,
        config_path.display(),
        config_path.display(),
        opts.data_dir.display(),
    );
}

/// Read a one-line secret file, or create it (mode 0600) with `make()`.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(v) = std::fs::read_to_string(path) {
        return Ok(v.trim().to_owned());
    }
    let value = make();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(value)
}

fn random_text(len: usize, upper_only: bool) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let alphabet = if upper_only { UPPER } else { MIXED };
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}
