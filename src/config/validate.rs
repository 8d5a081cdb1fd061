//! Checks that serde cannot express: ranges, cross-field rules, name syntax. Runs on
//! every loaded config and is public ([`Config::validate`]) for configs built in code.

use std::time::Duration;

use super::backend::{self, Backend};
use super::proxy::MAX_PRESIGN_EXPIRY;
use super::{Config, ConfigError};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: usize = 1024 * MIB;
/// Upper bound on every duration: far beyond any sane value, and small enough that
/// `Instant + d` can never overflow downstream.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const NONZERO: Duration = Duration::from_millis(1);
/// Highest configurable request rate: far beyond one process, and small enough that
/// `rps × rate_burst_seconds` fits the limiter's 32-bit burst.
const MAX_RPS: usize = 1_000_000;
/// hyper refuses a request target of 65535 bytes or more by itself (a bare 414).
const MAX_URL_BYTES: usize = 65_534;

impl Config {
    /// Checks every invariant of a config, including one built in code from
    /// `Config::default()`. Loading runs it already.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_proxy()?;
        self.check_other_sections()?;
        check_backends(&self.backends)
    }

    /// [`Config::validate`] plus what `serve` needs: at least one backend.
    pub fn validate_for_serve(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.backends.is_empty() {
            return Err(ConfigError::invalid(
                "backends",
                "at least one [[backends]] entry is required to serve",
            ));
        }
        Ok(())
    }

    fn check_admin_limits(&self) -> Result<(), ConfigError> {
        let a = &self.admin;
        number("admin.max_connections", a.max_connections, 1, 100_000)?;
        number("admin.max_header_bytes", a.max_header_bytes, KIB, MIB)?;
        number("admin.max_headers", a.max_headers, 1, 10_000)?;
        duration(
            "admin.header_read_timeout",
            a.header_read_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration("admin.idle_timeout", a.idle_timeout, NONZERO, MAX_DURATION)
    }

    pub(super) fn check_proxy(&self) -> Result<(), ConfigError> {
        let p = &self.s3_proxy;
        for (i, suffix) in p.host_suffixes.iter().enumerate() {
            check_dns_name(&format!("s3_proxy.host_suffixes[{i}]"), suffix)?;
        }
        duration(
            "s3_proxy.max_clock_skew",
            p.max_clock_skew,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "s3_proxy.max_presign_expiry",
            p.max_presign_expiry,
            Duration::from_secs(1),
            MAX_PRESIGN_EXPIRY,
        )?;
        for (path, rps) in [
            ("s3_proxy.global_rps", p.global_rps),
            ("s3_proxy.per_key_rps", p.per_key_rps),
            (
                "s3_proxy.unauthenticated_per_ip_rps",
                p.unauthenticated_per_ip_rps,
            ),
        ] {
            number(path, rps as usize, 0, MAX_RPS)?;
        }
        number(
            "s3_proxy.rate_burst_seconds",
            p.rate_burst_seconds as usize,
            1,
            3600,
        )?;
        number("s3_proxy.max_header_bytes", p.max_header_bytes, KIB, MIB)?;
        number("s3_proxy.max_headers", p.max_headers, 1, 10_000)?;
        number(
            "s3_proxy.max_url_bytes",
            p.max_url_bytes,
            256,
            MAX_URL_BYTES,
        )?;
        number("s3_proxy.max_connections", p.max_connections, 1, 1_000_000)?;
        number(
            "s3_proxy.max_signed_chunk_bytes",
            p.max_signed_chunk_bytes,
            8 * KIB,
            GIB,
        )?;
        duration(
            "s3_proxy.header_read_timeout",
            p.header_read_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "s3_proxy.idle_timeout",
            p.idle_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "s3_proxy.body_read_timeout",
            p.body_read_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        number(
            "s3_proxy.max_delete_objects_body_bytes",
            p.max_delete_objects_body_bytes,
            KIB,
            2 * MIB,
        )?;
        number(
            "s3_proxy.max_complete_multipart_body_bytes",
            p.max_complete_multipart_body_bytes,
            KIB,
            64 * MIB,
        )?;
        duration(
            "s3_proxy.credential_poll_interval",
            p.credential_poll_interval,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "s3_proxy.kubernetes.ready_timeout",
            p.kubernetes.ready_timeout,
            Duration::ZERO,
            MAX_DURATION,
        )?;
        check_namespace("s3_proxy.kubernetes.namespace", &p.kubernetes.namespace)
    }

    pub(super) fn check_other_sections(&self) -> Result<(), ConfigError> {
        self.check_admin_limits()?;
        if self.admin.listen == self.s3_proxy.listen && self.admin.listen.port() != 0 {
            return Err(ConfigError::invalid(
                "admin.listen",
                "must differ from s3_proxy.listen",
            ));
        }
        if self.admin.token_env.is_some() && self.admin.token_file.is_some() {
            return Err(ConfigError::invalid(
                "admin.token_env",
                "set only one of token_env, token_file",
            ));
        }
        let no_token = self.admin.token_env.is_none() && self.admin.token_file.is_none();
        for (path, on) in [
            ("admin.protect_metrics", self.admin.protect_metrics),
            ("admin.protect_probes", self.admin.protect_probes),
        ] {
            if on && no_token && self.admin.token.is_none() {
                return Err(ConfigError::invalid(
                    path,
                    "requires admin.token_env or admin.token_file (nothing could ever pass)",
                ));
            }
        }
        duration(
            "server.drain_delay",
            self.server.drain_delay,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        duration(
            "server.shutdown_timeout",
            self.server.shutdown_timeout,
            Duration::ZERO,
            MAX_DURATION,
        )?;
        let db = &self.database;
        if db.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("database.path", "must not be empty"));
        }
        if db.secret_key_file.as_os_str().is_empty() || db.secret_key_file == db.path {
            return Err(ConfigError::invalid(
                "database.secret_key_file",
                "must be a file path other than database.path",
            ));
        }
        check_log_level("log.level", &self.log.level)?;
        duration(
            "quotas.scan_interval",
            self.quotas.scan_interval,
            NONZERO,
            MAX_DURATION,
        )?;
        let u = &self.upstream;
        duration(
            "upstream.connect_timeout",
            u.connect_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "upstream.response_header_timeout",
            u.response_header_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "upstream.read_timeout",
            u.read_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "upstream.probe_interval",
            u.probe_interval,
            NONZERO,
            MAX_DURATION,
        )?;
        duration(
            "upstream.pool_idle_timeout",
            u.pool_idle_timeout,
            NONZERO,
            MAX_DURATION,
        )?;
        number(
            "upstream.pool_max_idle_per_host",
            u.pool_max_idle_per_host,
            0,
            100_000,
        )?;
        self.check_audit()
    }

    fn check_audit(&self) -> Result<(), ConfigError> {
        let a = &self.audit;
        let rate = a.sample_success_reads.get();
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::invalid(
                "audit.sample_success_reads",
                format!("{rate} is out of range; use 0.0 to 1.0"),
            ));
        }
        number("audit.queue_capacity", a.queue_capacity, 1, 1_000_000)?;
        if a.max_db_bytes != 0 && a.max_db_bytes < 1024 * 1024 {
            return Err(ConfigError::invalid(
                "audit.max_db_bytes",
                format!(
                    "{} is too small; use 0 (no cap) or at least 1048576",
                    a.max_db_bytes
                ),
            ));
        }
        duration(
            "audit.retention",
            a.retention,
            Duration::from_secs(3600),
            MAX_DURATION * 10,
        )
    }
}

/// Backends built in code get the same checks as loaded ones.
fn check_backends(backends: &[Backend]) -> Result<(), ConfigError> {
    for (i, b) in backends.iter().enumerate() {
        let at = |key: &str| format!("backends[{i}].{key}");
        backend::check_id(&b.id, &at("id"))?;
        if let Some(first) = backends[..i].iter().position(|o| o.id == b.id) {
            return Err(backend::duplicate(i, first, &b.id));
        }
        let canonical = backend::parse_endpoint(&b.endpoint.to_string(), &at("endpoint"))?;
        if canonical != b.endpoint {
            return Err(ConfigError::invalid(
                at("endpoint"),
                "must be scheme and authority only, with path \"/\"",
            ));
        }
        backend::check_region(&b.region, &at("region"))?;
        backend::check_access_key_id(&b.access_key_id, &at("access_key_id"))?;
        if b.secret_access_key.is_empty() {
            return Err(ConfigError::invalid(
                at("secret_access_key_env"),
                "the secret is empty",
            ));
        }
    }
    Ok(())
}

fn duration(path: &str, d: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if d < min {
        let why = if min == NONZERO {
            "must be greater than zero".to_owned()
        } else {
            format!("must be at least {}", humantime::format_duration(min))
        };
        return Err(ConfigError::invalid(path, why));
    }
    if d > max {
        return Err(ConfigError::invalid(
            path,
            format!("must be at most {}", humantime::format_duration(max)),
        ));
    }
    Ok(())
}

fn number(path: &str, v: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if (min..=max).contains(&v) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        format!("{v} is out of range; use {min} to {max}"),
    ))
}

/// A lowercase DNS name: dot-separated labels of a-z, 0-9, '-', at most 253 bytes.
fn check_dns_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label);
    if ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        format!(
            "invalid host suffix {name:?}; write a lowercase DNS name such as \"s3.example.com\""
        ),
    ))
}

/// A Kubernetes namespace is an RFC 1123 label.
fn check_namespace(path: &str, ns: &str) -> Result<(), ConfigError> {
    if is_dns_label(ns) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        path,
        format!(
            "invalid namespace {ns:?}; use 1 to 63 of a-z, 0-9, '-', starting and ending alphanumeric"
        ),
    ))
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn check_log_level(path: &str, level: &str) -> Result<(), ConfigError> {
    let bad = |why: String| {
        ConfigError::invalid(
            path,
            format!(
                "invalid log level {level:?}{why}; use trace, debug, info, warn, error, off or an EnvFilter directive such as \"info,stowage=debug\""
            ),
        )
    };
    let level = level.trim();
    // EnvFilter reads a bare word as a target name, so a misspelt level ("debg")
    // would silently log almost nothing; a single bare word must be a level.
    let bare_word = !level.contains(['=', ',', '[', ':']);
    if bare_word {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        return if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            Ok(())
        } else {
            Err(bad(String::new()))
        };
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| bad(format!(" ({e})")))
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    fn error_with(edit: impl FnOnce(&mut Config)) -> Option<String> {
        let mut c = Config::default();
        edit(&mut c);
        c.validate().err().map(|e| e.to_string())
    }

    #[test]
    fn rate_limit_keys_are_range_checked() {
        assert_eq!(error_with(|_| {}), None);
        let burst = error_with(|c| c.s3_proxy.rate_burst_seconds = 0).expect("refused");
        assert!(burst.starts_with("s3_proxy.rate_burst_seconds"), "{burst}");
        assert!(error_with(|c| c.s3_proxy.rate_burst_seconds = 3601).is_some());
        assert_eq!(error_with(|c| c.s3_proxy.rate_burst_seconds = 3600), None);
        let ip =
            error_with(|c| c.s3_proxy.unauthenticated_per_ip_rps = 1_000_001).expect("refused");
        assert!(
            ip.starts_with("s3_proxy.unauthenticated_per_ip_rps"),
            "{ip}"
        );
        assert!(error_with(|c| c.s3_proxy.global_rps = u32::MAX).is_some());
        assert_eq!(error_with(|c| c.s3_proxy.per_key_rps = 1_000_000), None);
    }
}
