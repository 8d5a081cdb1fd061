//! Logs never carry a secret, a signature or an Authorization header (DESIGN §4.6).
//!
//! This binary installs one process-wide subscriber at TRACE (text and JSON layers,
//! both into a shared buffer), runs a mixed workload through the proxy — successes,
//! every kind of refusal, body failures, an upstream outage — and then searches the
//! whole capture.
//!
//! What is captured: every target except the test's own clients (aws-sdk-s3 and the
//! smithy runtime trace the requests they build, Authorization included) and the
//! embedded s3s-fs upstream, which stands in for a remote server. `aws_sigv4`, hyper
//! and everything stowage emits stay at TRACE (stricter than production, which turns
//! `aws_sigv4` off).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::clients::Expect as _;
use common::edge::{get, put, rw_signer, wrong_secret};
use common::signer::{Signer, sha256_hex};
use common::uploads::{Location, Mode, Tamper};
use common::{Harness, UpstreamKind, cases, pattern, scope, transfer_cases};
use stowage::credentials::model::Access;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

fn install(capture: &Capture) {
    let filter = tracing_subscriber::EnvFilter::new(
        "trace,aws_sdk_s3=off,aws_smithy_runtime=off,aws_smithy_runtime_api=off,\
         aws_smithy_http_client=off,aws_smithy_http=off,aws_smithy_types=off,\
         aws_smithy_checksums=off,aws_runtime=off,s3s=off,s3s_fs=off",
    );
    let (a, b) = (capture.clone(), capture.clone());
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || a.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || b.clone()),
        )
        .init();
}

/// Everything that must never appear in a log line, and the 64-hex values that may
/// (payload hashes are not secret; anything else that long is presumed a signature).
#[derive(Default)]
struct Forbidden {
    values: Vec<(String, &'static str)>,
    payload_hashes: Vec<String>,
}

impl Forbidden {
    fn add(&mut self, value: &str, what: &'static str) {
        if value.len() >= 8 {
            self.values.push((value.to_owned(), what));
        }
    }

    /// Signatures and Authorization values of every request the SDK clients sent (the
    /// tenants' and the admin client's), and their payload hashes.
    fn add_sent(&mut self, h: &Harness) {
        for r in h.sent.all().into_iter().chain(h.admin_sent.all()) {
            if let Some(auth) = r.header("authorization") {
                self.add(auth, "an Authorization header");
                if let Some((_, sig)) = auth.rsplit_once("Signature=") {
                    self.add(sig, "a request signature");
                }
            }
            if let Some(hash) = r.header("x-amz-content-sha256") {
                self.payload_hashes.push(hash.to_owned());
            }
        }
    }

    fn add_body(&mut self, body: &[u8]) {
        self.payload_hashes.push(sha256_hex(body));
    }
}

async fn workload(h: &mut Harness, f: &mut Forbidden) {
    let (ak, sk) = h.bucket_credential(Access::ReadWrite);
    f.add(&sk, "a tenant secret");
    let c = h.client(&ak, &sk);
    cases::put_bytes(&c, &h.bucket, "log/a", b"hello").await;
    assert_eq!(cases::get_bytes(&c, &h.bucket, "log/a").await, b"hello");
    let err = c
        .get_object()
        .bucket(&h.bucket)
        .key("log/missing")
        .send()
        .await
        .expect_err("404");
    assert_eq!(common::clients::status(&err), Some(404));
    let wrong = h.client(&ak, "not-the-secret-at-all");
    assert!(
        wrong
            .get_object()
            .bucket(&h.bucket)
            .key("log/a")
            .send()
            .await
            .is_err()
    );
    let denied = c.list_objects_v2().bucket("elsewhere").send().await;
    assert!(denied.is_err());

    // Streaming with a trailer, through the SDK.
    transfer_cases::sdk_default_checksum_streaming_body(h).await;
    cases::presigned_get_and_put_work_over_plain_http(h).await;

    // Hand-signed: successes and failures on the body path.
    let s = rw_signer(h);
    f.add(&s.secret_key, "a tenant secret");
    let data = pattern(90_000, 1);
    f.add_body(&data);
    for mode in Mode::ALL {
        let r = put(
            h,
            &s,
            Location::Header,
            mode,
            (&h.bucket, &format!("log/{mode:?}")),
            &data,
            &Tamper::default(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = put(
            h,
            &wrong_secret(&s),
            Location::Query,
            mode,
            (&h.bucket, "log/bad"),
            &data,
            &Tamper::default(),
        )
        .await;
        assert!(r.status >= 400);
    }
    let forged = Tamper {
        forge_chunk: Some(1),
        ..Tamper::default()
    };
    let r = put(
        h,
        &s,
        Location::Header,
        Mode::StreamingSignedTrailer,
        (&h.bucket, "log/forged"),
        &data,
        &forged,
    )
    .await;
    assert_eq!(r.status, 403);
    let bad_sum = Tamper {
        trailer_checksum: Some("AAAAAA==".into()),
        ..Tamper::default()
    };
    let r = put(
        h,
        &s,
        Location::Header,
        Mode::StreamingUnsignedTrailer,
        (&h.bucket, "log/sum"),
        &data,
        &bad_sum,
    )
    .await;
    assert_eq!(r.status, 400);
    let unknown = Signer::new("AKIDUNKNOWN123456789", "unknown-secret-value-1234");
    assert_eq!(get(h, &unknown, "/test/x", &[]).await.status, 403);

    // A rotated secret: both the old and the new must stay out of the logs.
    let (rak, old) = h.credential(vec![scope(&h.bucket, Access::ReadOnly)]);
    let new = h.store().rotate_secret(&rak).expect("rotate");
    h.reload();
    f.add(&old, "a rotated-out secret");
    f.add(new.expose(), "a rotated-in secret");
    assert!(
        h.client(&rak, &old)
            .list_objects_v2()
            .bucket(&h.bucket)
            .send()
            .await
            .is_err()
    );
    h.client(&rak, new.expose())
        .list_objects_v2()
        .bucket(&h.bucket)
        .send()
        .await
        .expect_ok("new secret");

    // Finally the upstream goes away: the warn path.
    h.stop_upstream();
    let _ = c.get_object().bucket(&h.bucket).key("log/a").send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets_signatures_or_authorization_values() {
    let capture = Capture::default();
    install(&capture);
    let mut h = Harness::start_with(UpstreamKind::S3sFs, |c| {
        c.upstream.pool_max_idle_per_host = 0
    })
    .await
    .expect("harness");
    let mut f = Forbidden::default();
    f.add(h.admin_secret(), "the backend admin secret");
    f.add(&h.root_key_hex(), "the root key");
    workload(&mut h, &mut f).await;
    f.add_sent(&h);
    h.shutdown().await;

    let logs = capture.text();
    // For diagnosis: STOWAGE_LOG_CAPTURE=/path keeps the capture.
    if let Some(path) = std::env::var_os("STOWAGE_LOG_CAPTURE") {
        std::fs::write(path, &logs).expect("write the capture");
    }
    assert!(
        logs.contains("stowage is serving"),
        "the capture works (start-up line missing)"
    );
    assert!(
        logs.len() > 10_000,
        "TRACE output was captured ({} bytes)",
        logs.len()
    );
    for (value, what) in &f.values {
        if let Some(at) = logs.find(value.as_str()) {
            let line = logs[..at].rsplit('\n').next().unwrap_or_default();
            panic!(
                "{what} appears in the logs, in a line starting: {:.200}",
                line
            );
        }
    }
    for marker in [
        "AWS4-HMAC-SHA256 Credential=",
        "Signature=",
        "X-Amz-Signature",
        "chunk-signature=",
        "x-amz-trailer-signature:",
    ] {
        assert!(!logs.contains(marker), "the logs contain {marker:?}");
    }
    f.add_body(b"");
    for (at, token) in hex64_tokens(&logs) {
        // aws_sigv4 traces the string-to-sign, whose last line is the SHA-256 of the
        // canonical request: public (S3 itself returns it in SignatureDoesNotMatch).
        let before = &logs[at.saturating_sub(16)..at];
        let string_to_sign =
            before.ends_with("aws4_request\n") || before.ends_with("aws4_request\\n");
        assert!(
            string_to_sign || f.payload_hashes.iter().any(|h| h == token),
            "an unexplained 64-hex value (a signature?) is logged: {token}"
        );
    }
    // Keep the capture in the test output only on failure; print its size on success.
    let _ = writeln!(
        std::io::stderr(),
        "captured {} bytes of TRACE logs",
        logs.len()
    );
}

/// Every maximal run of exactly 64 lowercase hex characters, with its offset.
fn hex64_tokens(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() && !bytes[i].is_ascii_uppercase() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_hexdigit() && !bytes[i].is_ascii_uppercase()
            {
                i += 1;
            }
            if i - start == 64 {
                out.push((start, &text[start..i]));
            }
        } else {
            i += 1;
        }
    }
    out
}
