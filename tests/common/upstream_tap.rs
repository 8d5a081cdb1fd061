//! A tap between the proxy and its upstream: a small HTTP/1.1 forwarder that records
//! every request the proxy sends (method, target, headers, whether its body arrived
//! whole) and passes it, Host header untouched, to the real s3s-fs server, so the
//! upstream still checks the proxy's signature. Also a "canary": a bare TCP listener
//! standing in for a host the proxy must never contact.
//!
//! Opt in with [`tapped_harness`] (s3s-fs) or [`tapped_harness_on`]; the harness's
//! admin client keeps talking to the upstream directly, so checks of what landed never
//! show up in the tap. [`Tap::hold`] holds back the upstream's answers to chosen
//! requests (which have then taken effect) until the test releases them: the way to
//! put something between an upstream change and the proxy learning of it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stowage::config::Config;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::{Harness, UpstreamKind};

/// How a recorded request's body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Still arriving.
    Open,
    /// Every byte arrived and the body ended cleanly.
    Complete(u64),
    /// The sender broke off (or the upstream stopped reading) after this many bytes.
    Aborted(u64),
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    end: Arc<Mutex<BodyEnd>>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_end(&self) -> BodyEnd {
        *self.end.lock().expect("tap lock")
    }
}

type Matcher = Box<dyn Fn(&Seen) -> bool + Send + Sync>;

/// Answers to hold back: which requests, how many were held, and the release.
struct HoldRule {
    matches: Matcher,
    held: Arc<tokio::sync::watch::Sender<usize>>,
    released: tokio::sync::watch::Receiver<bool>,
}

#[derive(Default)]
struct TapState {
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    hold: Mutex<Option<HoldRule>>,
}

/// Held answers (see [`Tap::hold`]); dropping it releases them too.
pub struct Held {
    held: tokio::sync::watch::Receiver<usize>,
    release: tokio::sync::watch::Sender<bool>,
    state: Arc<TapState>,
}

impl Held {
    /// Wait until `n` matching requests have been answered by the upstream (and held).
    pub async fn answered(&mut self, n: usize) {
        self.held
            .wait_for(|held| *held >= n)
            .await
            .expect("the tap is running");
    }

    /// Let the held answers through, and hold no more.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.state.hold.lock().expect("tap lock").take();
        let _ = self.release.send(true);
    }
}

/// The recording forwarder in front of the upstream.
#[derive(Clone)]
pub struct Tap {
    pub addr: SocketAddr,
    /// The real upstream behind the tap.
    pub upstream: SocketAddr,
    state: Arc<TapState>,
}

impl Tap {
    /// Listen on `127.0.0.1:0` and forward to `upstream`. Must run inside a tokio runtime.
    pub fn start(upstream: SocketAddr) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tap");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("tap addr");
        let listener = TcpListener::from_std(std_listener).expect("tokio listener");
        let tap = Self {
            addr,
            upstream,
            state: Arc::default(),
        };
        let client: Client<HttpConnector, TapBody> =
            Client::builder(TokioExecutor::new()).build_http();
        let state = tap.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                state.connections.fetch_add(1, Ordering::SeqCst);
                let (state, client) = (state.clone(), client.clone());
                let svc = hyper::service::service_fn(move |req| {
                    forward(state.clone(), client.clone(), upstream, req)
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        tap
    }

    /// How many requests reached the upstream so far.
    pub fn count(&self) -> usize {
        self.state.seen.lock().expect("tap lock").len()
    }

    /// The requests from index `from` on.
    pub fn since(&self, from: usize) -> Vec<Seen> {
        self.state.seen.lock().expect("tap lock")[from..].to_vec()
    }

    /// TCP connections the proxy opened to the upstream.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// From now on, hold the upstream's answer to each request `matches` picks: the
    /// request reaches the upstream and takes effect, its answer waits in the tap
    /// until the returned [`Held`] is released.
    pub fn hold(&self, matches: impl Fn(&Seen) -> bool + Send + Sync + 'static) -> Held {
        let (held_tx, held) = tokio::sync::watch::channel(0);
        let (release, released) = tokio::sync::watch::channel(false);
        *self.state.hold.lock().expect("tap lock") = Some(HoldRule {
            matches: Box::new(matches),
            held: Arc::new(held_tx),
            released,
        });
        Held {
            held,
            release,
            state: self.state.clone(),
        }
    }
}

async fn forward(
    state: Arc<TapState>,
    client: Client<HttpConnector, TapBody>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let (mut parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let end = Arc::new(Mutex::new(BodyEnd::Open));
    let seen = Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        end: end.clone(),
    };
    let hold = state
        .hold
        .lock()
        .expect("tap lock")
        .as_ref()
        .and_then(|rule| (rule.matches)(&seen).then(|| (rule.held.clone(), rule.released.clone())));
    state.seen.lock().expect("tap lock").push(seen);
    parts.uri = format!("http://{upstream}{target}").parse().expect("uri");
    let body = TapBody {
        inner: body,
        bytes: 0,
        end,
    };
    // The Host header stays as the proxy signed it.
    let answer = client.request(Request::from_parts(parts, body)).await;
    if let Some((held, mut released)) = hold {
        held.send_modify(|n| *n += 1);
        let _ = released.wait_for(|r| *r).await;
    }
    answer
}

/// The request body on its way through, noting how it ended.
struct TapBody {
    inner: Incoming,
    bytes: u64,
    end: Arc<Mutex<BodyEnd>>,
}

impl TapBody {
    fn mark(&self, end: BodyEnd) {
        let mut e = self.end.lock().expect("tap lock");
        if *e == BodyEnd::Open {
            *e = end;
        }
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.mark(BodyEnd::Aborted(self.bytes)),
            Poll::Ready(None) => self.mark(BodyEnd::Complete(self.bytes)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TapBody {
    fn drop(&mut self) {
        // A body the client never polled because it was empty ended cleanly.
        let end = if self.inner.is_end_stream() {
            BodyEnd::Complete(self.bytes)
        } else {
            BodyEnd::Aborted(self.bytes)
        };
        self.mark(end);
    }
}

/// A TCP listener standing in for a host the proxy must never reach; it counts
/// connections and keeps what they sent.
#[derive(Clone)]
pub struct Canary {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind canary");
        let addr = listener.local_addr().expect("canary addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Self { addr, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A harness on s3s-fs whose proxy reaches the upstream only through a [`Tap`];
/// `adjust` may change the rest of the proxy configuration.
pub async fn tapped_harness(adjust: impl FnOnce(&mut Config)) -> (Harness, Tap) {
    tapped_harness_on(UpstreamKind::S3sFs, adjust)
        .await
        .expect("s3s-fs harness")
}

/// [`tapped_harness`] on any upstream; `None` when that upstream cannot run here.
pub async fn tapped_harness_on(
    kind: UpstreamKind,
    adjust: impl FnOnce(&mut Config),
) -> Option<(Harness, Tap)> {
    let mut tap = None;
    let h = Harness::start_with(kind, |c| {
        let upstream: SocketAddr = c.backends[0]
            .endpoint
            .authority()
            .expect("upstream authority")
            .as_str()
            .parse()
            .expect("upstream socket address");
        let t = Tap::start(upstream);
        c.backends[0].endpoint = format!("http://{}", t.addr).parse().expect("tap uri");
        adjust(c);
        tap = Some(t);
    })
    .await?;
    Some((h, tap.expect("the tap was installed")))
}
