//! One process-wide log capture per test binary (the proxy's tasks run on runtime
//! threads, so a thread-local subscriber would miss them). Tests running in parallel
//! share it: assertions filter lines by something only their own test has (an access
//! key, the fake apiserver's address).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Install the capture (once), at TRACE for the proxy and the kube client.
pub fn capture() {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "info,stowage=trace,kube_client=trace,kube_runtime=trace",
        );
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            )
            .try_init();
        capture
    });
}

/// Everything logged so far by any test of this binary.
pub fn logs() -> String {
    CAPTURE
        .get()
        .map(|c| String::from_utf8_lossy(&c.0.lock().expect("capture lock")).into_owned())
        .unwrap_or_default()
}

/// The captured lines that contain every one of `needles`.
pub fn lines_with(needles: &[&str]) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}
