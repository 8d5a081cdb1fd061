//! The pieces of `stowage quota …` worth testing without a process: size parsing
//! (`10GiB`, `500MB`, `1.5TiB`, plain bytes), limit merging for `quota set`, the `show`
//! table, and waiting for a running proxy to answer a recount.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::limits::{BucketKey, Limits};
use super::store::{QuotaRecord, QuotaStoreError, UsageRecord};
use crate::credentials::sqlite::SqliteStore;

/// A size or count argument that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size (use bytes or a unit: 10GiB, 500MB, 1.5TiB)")]
    Malformed(String),
    #[error("`{0}` has an unknown unit (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB)")]
    Unit(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// A size string is never longer than this; longer input is refused before parsing.
const MAX_SIZE_LEN: usize = 40;

fn unit_multiplier(unit: &str) -> Option<u128> {
    let u = unit.to_ascii_lowercase();
    if u.is_empty() || u == "b" {
        return Some(1);
    }
    let u = u.strip_suffix('b').unwrap_or(&u);
    let (exp, binary) = match u {
        "k" | "ki" => (1, u.len() == 2),
        "m" | "mi" => (2, u.len() == 2),
        "g" | "gi" => (3, u.len() == 2),
        "t" | "ti" => (4, u.len() == 2),
        "p" | "pi" => (5, u.len() == 2),
        _ => return None,
    };
    let base: u128 = if binary { 1024 } else { 1000 };
    Some(base.pow(exp))
}

/// Bytes from `123`, `10GiB`, `500MB`, `1.5 TiB` (decimal units are powers of 1000,
/// `…iB` of 1024; fractions round down to whole bytes).
///
/// # Errors
/// [`SizeError`] naming the input.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let err = || SizeError::Malformed(s.to_owned());
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_SIZE_LEN {
        return Err(err());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let mult = unit_multiplier(unit).ok_or_else(|| SizeError::Unit(s.to_owned()))?;
    let too_large = || SizeError::TooLarge(s.to_owned());
    let int: u128 = int.parse().map_err(|_| too_large())?;
    let mut bytes = int.checked_mul(mult).ok_or_else(too_large)?;
    if !frac.is_empty() {
        let digits = frac.get(..frac.len().min(18)).unwrap_or(frac);
        let scale = 10u128.pow(u32::try_from(digits.len()).unwrap_or(18));
        let f: u128 = digits.parse().map_err(|_| err())?;
        bytes += f * mult / scale;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// One `quota set` flag: absent (keep the stored value), `none` (remove that cap), or
/// a value.
pub type LimitArg = Option<Option<u64>>;

/// Parse a `--hard`/`--soft` value: a size, or `none`.
///
/// # Errors
/// [`SizeError`].
pub fn parse_size_arg(s: &str) -> Result<Option<u64>, SizeError> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_size(s).map(Some)
}

/// Parse a `--max-objects` value: a plain count, or `none`.
///
/// # Errors
/// [`SizeError`].
pub fn parse_count_arg(s: &str) -> Result<Option<u64>, SizeError> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    s.trim()
        .parse()
        .map(Some)
        .map_err(|_| SizeError::Malformed(s.to_owned()))
}

/// `quota set` edits a row: flags not given keep the stored value.
#[must_use]
pub fn merge_limits(current: Limits, hard: LimitArg, soft: LimitArg, objects: LimitArg) -> Limits {
    Limits {
        hard_bytes: hard.unwrap_or(current.hard_bytes),
        soft_bytes: soft.unwrap_or(current.soft_bytes),
        max_objects: objects.unwrap_or(current.max_objects),
    }
}

/// The CLI flag of a store field, for error messages.
#[must_use]
pub fn flag_of(field: &str) -> &'static str {
    match field {
        "hard_bytes" => "--hard",
        "soft_bytes" => "--soft",
        "max_objects" => "--max-objects",
        _ => "--hard/--soft/--max-objects",
    }
}

/// `10737418240` → `10 GiB`; exact sizes print exactly, others with one decimal.
#[must_use]
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut whole = bytes;
    while whole >= 1024 && unit + 1 < UNITS.len() {
        whole /= 1024;
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        return format!("{whole} {}", UNITS[unit]);
    }
    let tenths = u128::from(bytes) * 10 / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The `quota show` table: every bucket with limits or persisted usage, sorted.
#[must_use]
pub fn render_table(limits: &[QuotaRecord], usage: &[UsageRecord]) -> String {
    let mut rows: BTreeMap<&BucketKey, (Option<&Limits>, Option<&UsageRecord>)> = BTreeMap::new();
    for l in limits {
        rows.entry(&l.key).or_default().0 = Some(&l.limits);
    }
    for u in usage {
        rows.entry(&u.key).or_default().1 = Some(u);
    }
    let mut out = format!(
        "{:<10} {:<24} {:>12} {:>12} {:>11} {:>12} {:>9} {}\n",
        "BACKEND", "BUCKET", "HARD", "SOFT", "MAX_OBJECTS", "USED", "OBJECTS", "SCANNED_AT"
    );
    for (key, (l, u)) in rows {
        let l = l.copied().unwrap_or_default();
        let scanned = u.filter(|u| u.scanned_at.is_some());
        out.push_str(&format!(
            "{:<10} {:<24} {:>12} {:>12} {:>11} {:>12} {:>9} {}\n",
            key.backend,
            key.bucket,
            opt(l.hard_bytes, format_size),
            opt(l.soft_bytes, format_size),
            opt(l.max_objects, |n| n.to_string()),
            opt(scanned.map(|u| u.usage.bytes), format_size),
            opt(scanned.map(|u| u.usage.objects), |n| n.to_string()),
            opt(scanned.and_then(|u| u.scanned_at), rfc3339),
        ));
    }
    out
}

/// Why a recount produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum RecountError {
    #[error(
        "no running proxy answered the recount within {0:?}; is `stowage serve` running on \
         this database? (the request stays pending and is answered when one starts)"
    )]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] QuotaStoreError),
}

/// Ask running proxies to recount `key` and wait for a scan that began after the
/// request (its usage row's `scanned_at` reaches the request time).
///
/// # Errors
/// [`RecountError::Timeout`] when nothing answered within `timeout`.
pub fn recount_and_wait(
    store: &SqliteStore,
    key: &BucketKey,
    timeout: Duration,
    poll: Duration,
) -> Result<UsageRecord, RecountError> {
    let requested = store.request_recount(key)?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(row) = store.usage_of(key)?
            && row.scanned_at.is_some_and(|at| at >= requested)
        {
            return Ok(row);
        }
        if Instant::now() >= deadline {
            return Err(RecountError::Timeout(timeout));
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
