//! One connection's guard, shared by the IO wrapper, the service and a watchdog:
//!
//! - idle timeout: no request in flight (none being read, none being answered) for
//!   `idle_timeout` closes the connection; a request in flight is never cut by it;
//! - header read timeout (slowloris): a head whose first byte arrived more than
//!   `header_read_timeout` ago without the request being dispatched closes it;
//! - the raw head check ([`HeadChecker`]): a refused head never reaches hyper; the
//!   client gets the S3 error written straight to the socket, then the connection
//!   closes.
//!
//! hyper's own header timer is not used: it also runs while a keep-alive connection
//! merely waits for its next request, which would make it an idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::head_check::{HeadChecker, HeadFacts, HeadLimits};
use super::listener::{BoxError, ResponseBody};
use crate::error::S3Error;

/// The two connection timers.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub header_read: Duration,
}

/// Shared per-connection state.
pub struct ConnGuard {
    state: Mutex<State>,
    wake: Notify,
    timeouts: Timeouts,
}

struct State {
    inflight: usize,
    idle_since: Instant,
    /// First byte of a head that has not been dispatched yet.
    head_started: Option<Instant>,
    checker: HeadChecker,
}

impl ConnGuard {
    #[must_use]
    pub fn new(timeouts: Timeouts, limits: HeadLimits) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                inflight: 0,
                idle_since: Instant::now(),
                head_started: None,
                checker: HeadChecker::new(limits),
            }),
            wake: Notify::new(),
            timeouts,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counters half-updated: recover the data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived from the client. A refusal says whether a response is being
    /// written right now (a pipelined head): then nothing may be written over it.
    fn on_read(&self, data: &[u8]) -> Result<(), (S3Error, bool)> {
        let mut s = self.lock();
        if s.inflight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            self.wake.notify_one();
        }
        let busy = s.inflight > 0;
        s.checker.feed(data).map_err(|e| (e, busy))
    }

    /// hyper dispatched a request: it is in flight until the returned ticket drops
    /// (with the response body). Also returns the checked head, when vouched for.
    pub fn begin_request(
        self: &Arc<Self>,
        method: &str,
        target: &str,
    ) -> (Ticket, Option<HeadFacts>) {
        let mut s = self.lock();
        s.inflight += 1;
        s.head_started = None;
        let facts = s.checker.claim(method, target);
        drop(s);
        self.wake.notify_one();
        (Ticket(Arc::clone(self)), facts)
    }

    fn end_request(&self) {
        let mut s = self.lock();
        s.inflight -= 1;
        if s.inflight == 0 {
            s.idle_since = Instant::now();
        }
        drop(s);
        self.wake.notify_one();
    }

    /// The instant the connection must close at, if nothing changes before then.
    fn deadline(&self) -> Option<Instant> {
        let s = self.lock();
        if s.inflight > 0 {
            return None;
        }
        Some(match s.head_started {
            Some(t) => t + self.timeouts.header_read,
            None => s.idle_since + self.timeouts.idle,
        })
    }

    /// Resolves when the connection has been idle, or reading a head, for too long.
    pub async fn expired(&self) {
        loop {
            match self.deadline() {
                None => self.wake.notified().await,
                Some(at) => {
                    if Instant::now() >= at {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request in flight; dropping it (with the response body) ends the request.
pub struct Ticket(Arc<ConnGuard>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// The response body, holding its request's [`Ticket`] until hyper drops it.
pub struct TicketBody {
    inner: ResponseBody,
    _ticket: Ticket,
}

impl TicketBody {
    pub fn wrap(inner: ResponseBody, ticket: Ticket) -> ResponseBody {
        use http_body_util::BodyExt;
        Self {
            inner,
            _ticket: ticket,
        }
        .boxed_unsync()
    }
}

impl Body for TicketBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket as hyper sees it: every read passes the guard first.
pub struct GuardedIo {
    inner: TcpStream,
    guard: Arc<ConnGuard>,
    /// A refusal being written (possibly nothing, behind a response in progress);
    /// then the socket is shut down and reads see EOF.
    refusal: Option<(Bytes, usize)>,
}

impl GuardedIo {
    pub fn new(inner: TcpStream, guard: Arc<ConnGuard>) -> Self {
        Self {
            inner,
            guard,
            refusal: None,
        }
    }

    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.refusal.as_mut() {
            if *written == bytes.len() {
                ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((bytes, _)) = &this.refusal {
            // hyper sees end of input: it never gets the refused head.
            if bytes.is_empty() {
                return Poll::Ready(Ok(()));
            }
            return this.poll_refusal(cx);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if fresh.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match this.guard.on_read(fresh) {
            Ok(()) => Poll::Ready(Ok(())),
            Err((e, busy)) => {
                buf.set_filled(before);
                tracing::debug!(code = e.code(), "request head refused before parsing");
                if busy {
                    // hyper is writing an earlier response: end input, write nothing.
                    this.refusal = Some((Bytes::new(), 0));
                    return Poll::Ready(Ok(()));
                }
                this.refusal = Some((refusal_bytes(&e), 0));
                this.poll_refusal(cx)
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A complete `Connection: close` response carrying the S3 error document.
#[must_use]
pub fn refusal_bytes(e: &S3Error) -> Bytes {
    let request_id = format!("{:016X}", rand::random::<u64>());
    let body = e.to_xml("", &request_id);
    let status = e.status();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\nx-amz-request-id: {request_id}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    Bytes::from([head.into_bytes(), body.into_bytes()].concat())
}
