//! A fault-injecting TCP proxy that sits between stowage and the real upstream, switched
//! at runtime. Each accepted connection takes the fault in force when it is accepted (the
//! fault tests run the proxy with `pool_max_idle_per_host = 0`, so that is one request
//! per connection); [`FaultyProxy::kill`] acts at once on everything.
//!
//! The upstream itself stays real: pass-through bytes go to s3s-fs (or Garage) as they
//! are, signatures and all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stowage::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Harness, UpstreamKind};

/// What the next accepted connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes flow both ways untouched.
    Pass,
    /// The request is read and nothing is ever answered.
    StallBeforeHead,
    /// The response head and the first `body_bytes` of its body are passed, then
    /// nothing more (the connection stays open).
    StallAfterHead { body_bytes: usize },
    /// The response head and the first `body_bytes` of its body are passed, then both
    /// connections are reset (RST).
    ResetAfterHead { body_bytes: usize },
    /// The request head and the first `body_bytes` of the request body reach the
    /// upstream, then both connections are reset: the upstream stops receiving
    /// mid-upload.
    ResetRequestAfterHead { body_bytes: usize },
    /// The request is read and answered with bytes that are not HTTP.
    Garbage,
}

/// Bytes a [`Fault::Garbage`] connection answers with.
pub const GARBAGE: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 not-http\r\n\x00\x01\x02\xff\r\n\r\n";

struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    /// Bumped by `kill`: every live connection resets when it changes.
    kill: watch::Sender<u64>,
    listener: Mutex<Option<JoinHandle<()>>>,
    accepted: AtomicU64,
    /// Request bytes written to the upstream.
    to_upstream: AtomicU64,
}

/// The running fault proxy; dropping it stops the listener.
#[derive(Clone)]
pub struct FaultyProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    /// Listen on `127.0.0.1:0` in front of `upstream`. Synchronous so that it can run
    /// inside a config closure; needs a Tokio runtime.
    pub fn bind(upstream: SocketAddr) -> Self {
        let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("local addr");
        let listener = TcpListener::from_std(std).expect("tokio listener");
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            kill: watch::channel(0).0,
            listener: Mutex::new(None),
            accepted: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
        });
        let p = Self { addr, shared };
        p.serve(listener);
        p
    }

    /// `http://addr`, for a backend endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault new connections get from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().expect("fault lock") = fault;
    }

    /// The upstream "dies": the listener closes (connections are refused) and every
    /// live connection is reset.
    pub fn kill(&self) {
        if let Some(task) = self.shared.listener.lock().expect("listener lock").take() {
            task.abort();
        }
        self.shared.kill.send_modify(|g| *g += 1);
    }

    /// The upstream "comes back" on the same address, passing bytes through.
    pub async fn restart(&self) {
        self.set(Fault::Pass);
        let mut last = None;
        for _ in 0..50 {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => return self.serve(listener),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind the fault proxy on {}: {last:?}", self.addr);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Request bytes forwarded to the upstream so far.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::SeqCst)
    }

    fn serve(&self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let fault = *shared.fault.lock().expect("fault lock");
                let kill = shared.kill.subscribe();
                tokio::spawn(connection(Arc::clone(&shared), client, fault, kill));
            }
        });
        if let Some(old) = self
            .shared
            .listener
            .lock()
            .expect("listener lock")
            .replace(task)
        {
            old.abort();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// Close with RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(
    shared: Arc<Shared>,
    mut client: TcpStream,
    fault: Fault,
    mut kill: watch::Receiver<u64>,
) {
    match fault {
        Fault::StallBeforeHead => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                tokio::select! {
                    r = client.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                    _ = kill.changed() => return reset(client),
                }
            }
        }
        Fault::Garbage => {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await;
            let _ = client.write_all(GARBAGE).await;
            let _ = client.shutdown().await;
        }
        _ => {
            let Ok(up) = TcpStream::connect(shared.upstream).await else {
                return reset(client);
            };
            let _ = up.set_nodelay(true);
            pump(&shared, client, up, fault, kill).await;
        }
    }
}

/// Where the first HTTP head in a byte stream ends, once it has.
#[derive(Default)]
struct HeadScan {
    seen: Vec<u8>,
    end: Option<usize>,
}

impl HeadScan {
    /// Feed bytes; returns how many of them may pass given `body_bytes` after the head.
    fn allow(&mut self, data: &[u8], body_bytes: usize) -> usize {
        let before = self.seen.len();
        self.seen.extend_from_slice(data);
        if self.end.is_none() {
            self.end = self
                .seen
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4);
        }
        match self.end {
            None => data.len(),
            Some(end) => (end + body_bytes).saturating_sub(before).min(data.len()),
        }
    }
}

enum Step {
    Go,
    Close,
    Reset,
}

async fn pump(
    shared: &Shared,
    mut client: TcpStream,
    mut up: TcpStream,
    fault: Fault,
    mut kill: watch::Receiver<u64>,
) {
    let mut req_scan = HeadScan::default();
    let mut resp_scan = HeadScan::default();
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_up = vec![0u8; 64 * 1024];
    let mut stalled = false;
    loop {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = up.split();
        let step = tokio::select! {
            r = cr.read(&mut from_client) => match r {
                Ok(n @ 1..) if stalled => { let _ = n; Step::Go }
                Ok(n @ 1..) => {
                    let data = &from_client[..n];
                    let pass = match fault {
                        Fault::ResetRequestAfterHead { body_bytes } => req_scan.allow(data, body_bytes),
                        _ => n,
                    };
                    if uw.write_all(&data[..pass]).await.is_err() {
                        Step::Close
                    } else {
                        shared.to_upstream.fetch_add(pass as u64, Ordering::SeqCst);
                        if pass < n {
                            // Let the upstream read what it was given before the reset.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Step::Reset
                        } else {
                            Step::Go
                        }
                    }
                }
                _ => Step::Close,
            },
            r = ur.read(&mut from_up), if !stalled => match r {
                Ok(n @ 1..) => {
                    let data = &from_up[..n];
                    let pass = match fault {
                        Fault::StallAfterHead { body_bytes } | Fault::ResetAfterHead { body_bytes } => {
                            resp_scan.allow(data, body_bytes)
                        }
                        _ => n,
                    };
                    if cw.write_all(&data[..pass]).await.is_err() {
                        Step::Close
                    } else if pass < n && matches!(fault, Fault::ResetAfterHead { .. }) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Step::Reset
                    } else {
                        stalled = pass < n;
                        Step::Go
                    }
                }
                _ => Step::Close,
            },
            _ = kill.changed() => Step::Reset,
        };
        match step {
            Step::Go => {}
            Step::Close => break,
            Step::Reset => {
                reset(client);
                reset(up);
                return;
            }
        }
    }
    let _ = client.shutdown().await;
    let _ = up.shutdown().await;
}

/// A harness whose backend endpoint is a [`FaultyProxy`] in front of the real
/// upstream. Upstream pooling is off (one request per connection, so each request meets
/// the fault in force) and the timeouts are short; `adjust` may change more.
pub async fn harness_with_faults(
    kind: UpstreamKind,
    adjust: impl FnOnce(&mut Config),
) -> Option<(Harness, FaultyProxy)> {
    let mut proxy = None;
    let h = Harness::start_with(kind, |c| {
        let backend = &mut c.backends[0];
        let upstream: SocketAddr = backend
            .endpoint
            .authority()
            .expect("upstream authority")
            .as_str()
            .parse()
            .expect("upstream socket address");
        let p = FaultyProxy::bind(upstream);
        backend.endpoint = p.endpoint().parse().expect("fault proxy uri");
        c.upstream.pool_max_idle_per_host = 0;
        c.upstream.connect_timeout = Duration::from_secs(1);
        c.upstream.response_header_timeout = Duration::from_secs(2);
        c.upstream.read_timeout = Duration::from_secs(1);
        proxy = Some(p);
        adjust(c);
    })
    .await?;
    Some((h, proxy.expect("the config closure ran")))
}
