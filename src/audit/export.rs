//! `stowage audit export`: rows in a time range as CSV (RFC 4180) or JSON lines.

use std::io::Write;
use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::store::{AuditError, for_each, open_reader};
use super::types::{AuditFilter, AuditRecord};

/// Output formats of `stowage audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportFormat {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

const CSV_HEADER: &str = "time,request_id,access_key,source,operation,bucket,key,status,\
bytes_in,bytes_out,client_ip,outcome,duration_ms";

/// A time argument: RFC 3339 (`2026-01-02T00:00:00Z`), or a duration before `now`
/// (`24h`, `7d`, `90m`).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_time_arg(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?}: use RFC 3339 (2026-01-02T00:00:00Z) or a duration (24h)"))?;
    let d = time::Duration::try_from(d).map_err(|_| format!("{s:?}: duration too long"))?;
    now.checked_sub(d)
        .ok_or_else(|| format!("{s:?}: duration too long"))
}

/// One CSV field, quoted when it holds a comma, a quote, CR or LF (quotes doubled).
/// Values are written verbatim otherwise; see `docs/decisions.md` on spreadsheets.
#[must_use]
pub fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    // A key like `=HYPERLINK(...)` must not become a formula in a spreadsheet.
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        let quoted = format!("'{value}");
        return std::borrow::Cow::Owned(csv_field(&quoted).into_owned());
    }
    if value.contains([',', '"', '\r', '\n']) {
        std::borrow::Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

fn csv_row(r: &AuditRecord) -> String {
    let opt = |v: &Option<String>| v.as_deref().map(csv_field).unwrap_or_default().into_owned();
    [
        csv_field(&r.time).into_owned(),
        csv_field(&r.request_id).into_owned(),
        opt(&r.access_key),
        csv_field(&r.source).into_owned(),
        csv_field(&r.operation).into_owned(),
        opt(&r.bucket),
        opt(&r.key),
        r.status.to_string(),
        r.bytes_in.to_string(),
        r.bytes_out.to_string(),
        csv_field(&r.client_ip).into_owned(),
        csv_field(&r.outcome).into_owned(),
        r.duration_ms.to_string(),
    ]
    .join(",")
}

/// Write every row of the database at `db` matching `filter` (time range, and the
/// other fields if set; no limit) to `out`, oldest first. Returns the row count.
///
/// # Errors
/// When the database cannot be read or `out` fails.
pub fn export(
    db: &Path,
    filter: &AuditFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let conn = open_reader(db)?;
    if format == ExportFormat::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    let n = for_each(&conn, filter, |r| {
        match format {
            ExportFormat::Csv => {
                out.write_all(csv_row(r).as_bytes())?;
                out.write_all(b"\r\n")?;
            }
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *out, r).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
pub(super) fn csv_row_for_test(r: &AuditRecord) -> String {
    csv_row(r)
}
