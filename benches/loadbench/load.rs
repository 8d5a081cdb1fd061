//! The load generator: N keep-alive HTTP/1.1 connections (one task each, TCP_NODELAY),
//! each replaying its pre-signed request until the slice's deadline, timing every
//! request from send to the last body byte and checking its status and length.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use super::body::SliceBody;

/// One request, ready to be sent again and again.
#[derive(Clone)]
pub struct Prepared {
    pub method: Method,
    pub target: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub expect_status: u16,
    /// Expected response body length (GET), when known.
    pub expect_len: Option<usize>,
}

impl Prepared {
    fn request(&self) -> Request<SliceBody> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.target.as_str());
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(SliceBody::new(self.body.clone(), 1 << 20))
            .expect("request")
    }
}

#[derive(Default)]
pub struct SliceResult {
    pub latencies_us: Vec<u32>,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    window: Option<(Instant, Instant)>,
}

impl SliceResult {
    fn merge(&mut self, o: SliceResult) {
        self.latencies_us.extend(o.latencies_us);
        self.bytes += o.bytes;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.window = match (self.window, o.window) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (w, None) | (None, w) => w,
        };
    }
}

type Sender = hyper::client::conn::http1::SendRequest<SliceBody>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Send once; Ok(body bytes) or a description of what was wrong.
async fn once(sender: &mut Sender, p: &Prepared) -> Result<u64, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let resp = sender
        .send_request(p.request())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    let mut head = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(d) = frame.data_ref() {
            if status != p.expect_status && head.len() < 512 {
                head.extend_from_slice(&d[..d.len().min(512 - head.len())]);
            }
            n += d.len() as u64;
        }
    }
    if status != p.expect_status {
        return Err(format!(
            "status {status}, expected {}: {}",
            p.expect_status,
            String::from_utf8_lossy(&head)
        ));
    }
    if let Some(len) = p.expect_len
        && n != len as u64
    {
        return Err(format!("body {n} bytes, expected {len}"));
    }
    Ok(n + p.body.len() as u64)
}

/// Run one slice: `reqs[i]` is worker i's request. Every worker connects first; the
/// clock starts when all have; each sends until `dur` has passed (finishing the
/// request in flight), or `max_per_worker` requests.
pub async fn run_slice(
    addr: SocketAddr,
    reqs: Vec<Prepared>,
    dur: Duration,
    max_per_worker: usize,
) -> SliceResult {
    let n = reqs.len();
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for p in reqs {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = SliceResult::default();
            let mut sender = match connect(addr).await {
                Ok(s) => Some(s),
                Err(e) => {
                    r.errors += 1;
                    r.first_error = Some(e);
                    None
                }
            };
            barrier.wait().await;
            let start = Instant::now();
            let deadline = start + dur;
            let mut count = 0;
            // At least one request each, so a zero-length slice sends exactly one.
            while (count == 0 || Instant::now() < deadline) && count < max_per_worker {
                count += 1;
                let Some(s) = sender.as_mut() else { break };
                let t = Instant::now();
                match once(s, &p).await {
                    Ok(b) => {
                        r.latencies_us
                            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        r.bytes += b;
                    }
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                        // A broken connection is replaced; the error still counts.
                        sender = connect(addr).await.ok();
                    }
                }
            }
            r.window = Some((start, Instant::now()));
            r
        }));
    }
    barrier.wait().await;
    let mut total = SliceResult::default();
    for t in tasks {
        total.merge(t.await.expect("worker task"));
    }
    // From the first worker's start to the last one's end.
    total.elapsed = total.window.map_or(Duration::ZERO, |(a, b)| b - a);
    total
}
