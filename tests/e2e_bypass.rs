//! The auth-bypass matrix (issue 7, part 2): table-driven rows, each a request that
//! tries to get past the proxy, hand-built with the independent signer and written as
//! raw HTTP to the proxy in front of s3s-fs. Every row asserts the exact status and S3
//! `<Code>`, that the answer carries no internal text, and what the upstream saw,
//! observed through a recording tap between the proxy and s3s-fs: nothing at all for
//! refusals decided on the request head, and no complete body for refusals decided
//! mid-stream (the streamed upload is aborted before its last byte). Control rows
//! (the same construction, correctly signed) prove each shape can succeed.
//!
//! A failing row is named by its label; all rows run and every failure is listed.
//!
//! - `e2e_bypass/auth.rs`: payload mode × auth location × failure;
//! - `e2e_bypass/presign.rs`: presigned-URL reuse;
//! - `e2e_bypass/scope.rs`: copy-source escapes, bucket-admin escalation;
//! - `e2e_bypass/writes.rs`: read-only writes, prefix escapes;
//! - `e2e_bypass/keys.rs`: DeleteObjects keys, form keys, listing prefixes, anonymous
//!   bindings, method overrides;
//! - `e2e_bypass/host.rs`: path-style/virtual-host confusion (nested suffixes too) and
//!   SSRF shapes.

mod common;

use std::time::Duration;

use common::Harness;
use common::raw::{self, RawResponse};
use common::signer::Req;
use common::upstream_tap::{BodyEnd, Seen, Tap};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "e2e_bypass/auth.rs"]
mod auth;
#[path = "e2e_bypass/host.rs"]
mod host;
#[path = "e2e_bypass/keys.rs"]
mod keys;
#[path = "e2e_bypass/presign.rs"]
mod presign;
#[path = "e2e_bypass/scope.rs"]
mod scope;
#[path = "e2e_bypass/writes.rs"]
mod writes;

/// What the upstream must have received while a row ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// No request at all.
    Nothing,
    /// At most one request, whose body never arrived whole (aborted mid-stream).
    NoCompleteBody,
    /// Exactly one complete request (a control row, or a shape the proxy serves from
    /// the configured upstream).
    Served,
}

/// The expected answer of one row.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub status: u16,
    /// `None` for a successful answer (no error document).
    pub code: Option<&'static str>,
    pub upstream: Upstream,
}

/// A refusal decided before anything is forwarded.
pub const fn refused(status: u16, code: &'static str) -> Want {
    Want {
        status,
        code: Some(code),
        upstream: Upstream::Nothing,
    }
}

/// A refusal decided while the body streams.
pub const fn aborted(status: u16, code: &'static str) -> Want {
    Want {
        status,
        code: Some(code),
        upstream: Upstream::NoCompleteBody,
    }
}

/// A successful answer, forwarded once.
pub const fn served(status: u16) -> Want {
    Want {
        status,
        code: None,
        upstream: Upstream::Served,
    }
}

/// Runs rows against one harness and collects every failure.
pub struct Matrix<'a> {
    pub h: &'a Harness,
    pub tap: &'a Tap,
    /// Access keys of tenant credentials: they must never reach the upstream.
    tenant_keys: Vec<String>,
    failures: Vec<String>,
    rows: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(h: &'a Harness, tap: &'a Tap) -> Self {
        Self {
            h,
            tap,
            tenant_keys: Vec::new(),
            failures: Vec::new(),
            rows: 0,
        }
    }

    /// Remember a tenant access key (checked against what the upstream received).
    pub fn tenant(&mut self, access_key: &str) {
        self.tenant_keys.push(access_key.to_owned());
    }

    pub fn fail(&mut self, label: &str, msg: String) {
        self.failures.push(format!("[{label}] {msg}"));
    }

    /// Send `req` as raw HTTP and check the answer and the upstream.
    pub async fn row(&mut self, label: &str, req: &Req, want: Want) -> Option<RawResponse> {
        let mut bytes = raw::head_bytes(req);
        bytes.extend_from_slice(&req.body);
        self.row_bytes(label, bytes, want).await
    }

    /// Send exact bytes (for request lines no client would write).
    pub async fn row_bytes(
        &mut self,
        label: &str,
        bytes: Vec<u8>,
        want: Want,
    ) -> Option<RawResponse> {
        self.rows += 1;
        let before = self.tap.count();
        let Some(resp) = exchange(self.h, bytes).await else {
            self.fail(label, "no parseable response".into());
            return None;
        };
        let got = resp.status_code();
        if got != (want.status, want.code.map(str::to_owned)) {
            self.fail(
                label,
                format!(
                    "got {got:?}, want ({}, {:?}); body {}",
                    want.status,
                    want.code,
                    resp.text()
                ),
            );
        }
        self.check_no_internal_text(label, &resp);
        let upstream = self.check_upstream(label, before, want.upstream).await;
        eprintln!(
            "row {label}: {} {:?}; upstream saw {upstream:?}",
            resp.status,
            resp.code()
        );
        Some(resp)
    }

    fn check_no_internal_text(&mut self, label: &str, resp: &RawResponse) {
        let mut text = resp.text();
        for (n, v) in &resp.headers {
            text.push_str(&format!("\n{n}: {v}"));
        }
        let lower = text.to_ascii_lowercase();
        let needles = [
            self.tap.addr.to_string(),
            self.tap.upstream.to_string(),
            self.h.admin_access_key().to_ascii_lowercase(),
            self.h.admin_secret().to_ascii_lowercase(),
            "hyper".to_owned(),
            "os error".to_owned(),
            "s3s".to_owned(),
            "panick".to_owned(),
            "connection refused".to_owned(),
        ];
        for needle in needles {
            if lower.contains(&needle) {
                self.fail(label, format!("the answer leaks {needle:?}: {text}"));
            }
        }
    }

    /// Returns how each request the upstream saw ended, for the row's log line.
    async fn check_upstream(&mut self, label: &str, before: usize, want: Upstream) -> Vec<BodyEnd> {
        // A forwarded request is on the tap's wire before the proxy answers; give the
        // tap a moment to parse it, and a streamed body time to end.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut seen = self.tap.since(before);
        for _ in 0..100 {
            if seen.iter().all(|s| s.body_end() != BodyEnd::Open) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen = self.tap.since(before);
        }
        let ends: Vec<BodyEnd> = seen.iter().map(Seen::body_end).collect();
        let ok = match want {
            Upstream::Nothing => seen.is_empty(),
            Upstream::NoCompleteBody => {
                seen.len() <= 1 && ends.iter().all(|e| matches!(e, BodyEnd::Aborted(_)))
            }
            Upstream::Served => {
                seen.len() == 1 && ends.iter().all(|e| matches!(e, BodyEnd::Complete(_)))
            }
        };
        if !ok {
            let what: Vec<String> = seen
                .iter()
                .map(|s| format!("{} {} {:?}", s.method, s.target, s.body_end()))
                .collect();
            self.fail(label, format!("upstream: want {want:?}, saw {what:?}"));
        }
        for s in &seen {
            self.check_hygiene(label, s);
        }
        ends
    }

    /// Whatever reached the upstream was addressed to the configured endpoint, signed
    /// by the backend key, and carried nothing of the tenant's authentication.
    fn check_hygiene(&mut self, label: &str, s: &Seen) {
        let tap_host = self.tap.addr.to_string();
        if s.header("host") != Some(tap_host.as_str()) {
            self.fail(label, format!("upstream Host {:?}", s.header("host")));
        }
        let auth = s.header("authorization").unwrap_or_default().to_owned();
        if !auth.contains(&format!("Credential={}/", self.h.admin_access_key())) {
            self.fail(
                label,
                "upstream request not signed by the backend key".into(),
            );
        }
        for (n, v) in &s.headers {
            let tenant = self.tenant_keys.iter().any(|k| v.contains(k.as_str()));
            if n.starts_with("x-forwarded-") || n == "forwarded" || n == "cookie" || tenant {
                self.fail(label, format!("upstream got {n}: {v}"));
            }
        }
        let tenant_in_target = self
            .tenant_keys
            .iter()
            .any(|k| s.target.contains(k.as_str()));
        if tenant_in_target || s.target.to_ascii_lowercase().contains("x-amz-signature") {
            self.fail(label, format!("upstream target {}", s.target));
        }
    }

    /// Record a failure unless `bucket/key` is absent upstream.
    pub async fn absent(&mut self, label: &str, bucket: &str, key: &str) {
        if self.h.exists_upstream(bucket, key).await {
            self.fail(label, format!("{bucket}/{key} landed upstream"));
        }
    }

    /// Record a failure unless `bucket/key` holds exactly `data` upstream.
    pub async fn holds(&mut self, label: &str, bucket: &str, key: &str, data: &[u8]) {
        if !self.h.exists_upstream(bucket, key).await {
            self.fail(label, format!("{bucket}/{key} did not land"));
        } else if self.h.read_upstream(bucket, key).await != data {
            self.fail(label, format!("{bucket}/{key} holds other bytes"));
        }
    }

    /// Panic with every failed row; print the count otherwise.
    pub fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} rows failed:\n{}",
            self.failures.len(),
            self.rows,
            self.failures.join("\n")
        );
        eprintln!("{what}: {} rows passed", self.rows);
    }
}

/// Write `bytes`, read one response (`None` when the connection ends without one).
async fn exchange(h: &Harness, bytes: Vec<u8>) -> Option<RawResponse> {
    let stream = TcpStream::connect(h.s3_addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&bytes).await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let resp = tokio::time::timeout(Duration::from_secs(20), raw::read_response(&mut rd))
        .await
        .ok()
        .flatten();
    writer.abort();
    resp
}
