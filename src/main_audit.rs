//! `stowage audit export`: the audit log as CSV or JSON lines on stdout. Reads the
//! database only; the root key is not needed.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use stowage::audit::{AuditFilter, ExportFormat, export, parse_time_arg};
use stowage::config;

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum AuditAction {
    /// Write rows in a time range to stdout, oldest first.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Start (inclusive): RFC 3339 (`2026-01-02T00:00:00Z`) or a duration before
        /// now (`24h`, `7d`).
        #[arg(long)]
        since: String,
        /// End (exclusive), same forms; default now.
        #[arg(long)]
        until: Option<String>,
        /// `csv` (RFC 4180, with a header line) or `jsonl`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only this access key.
        #[arg(long)]
        access_key: Option<String>,
        /// Only this bucket.
        #[arg(long)]
        bucket: Option<String>,
    },
}

pub fn run(action: AuditAction) -> anyhow::Result<()> {
    let AuditAction::Export {
        store,
        since,
        until,
        format,
        access_key,
        bucket,
    } = action;
    let Some(format) = ExportFormat::parse(&format) else {
        bail!("--format {format}: use csv or jsonl");
    };
    let now = time::OffsetDateTime::now_utc();
    let since = parse_time_arg(&since, now).map_err(|e| anyhow::anyhow!("--since {e}"))?;
    let until = until
        .map(|u| parse_time_arg(&u, now).map_err(|e| anyhow::anyhow!("--until {e}")))
        .transpose()?;
    let cfg = config::load(&store.config)?;
    let filter = AuditFilter {
        since: Some(since),
        until,
        access_key,
        bucket,
        ..AuditFilter::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = export(&cfg.database.path, &filter, format, &mut out)
        .with_context(|| format!("cannot export from {}", cfg.database.path.display()))?;
    eprintln!("{n} row(s)");
    Ok(())
}
