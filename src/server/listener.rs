//! Accepting connections: TCP_NODELAY, a cap on concurrent connections (extra ones get
//! a 503 SlowDown and are closed), the per-connection guard (`conn_guard`: idle and
//! header-read timeouts, the raw head check against smuggling and oversized heads),
//! and graceful shutdown that lets in-flight exchanges finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::conn_guard::{ConnGuard, GuardedIo, Ticket, TicketBody, Timeouts};
use super::head_check::{HeadFacts, HeadLimits};
use crate::error::S3Error;

/// Largest read buffer of a tenant connection: request bodies are read (and sent
/// on) in frames up to this size.
const BODY_READ_BUFFER: usize = 256 * 1024;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ListenerLimits {
    fn head(&self) -> HeadLimits {
        HeadLimits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }
}

/// Serve `handler` on `listener` until `shutdown` flips to true, then wait up to
/// `drain` for in-flight connections.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: ListenerLimits,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    on_shed: impl Fn() + Send + Sync + 'static,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // The guard enforces the configured head limits exactly; hyper's own, at twice
    // those, only back it up for a head the guard could not frame. Its header timer
    // is off: it would also run on idle keep-alive connections (the guard's runs
    // from a head's first byte).
    let hard_header_bytes = limits.max_header_bytes.saturating_mul(2);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(limits.max_headers.saturating_mul(2))
        .max_header_size(hard_header_bytes)
        // The read buffer grows to this for bodies (uploads arrive in frames this
        // large); the head limit is `max_header_size`, not this.
        .max_buf_size(hard_header_bytes.max(BODY_READ_BUFFER))
        .keep_alive(true);
    let timeouts = Timeouts {
        idle: limits.idle_timeout,
        header_read: limits.header_read_timeout,
    };
    let on_shed = Arc::new(on_shed);
    loop {
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            on_shed();
            tokio::spawn(shed(stream));
            continue;
        };
        let guard = ConnGuard::new(timeouts, limits.head());
        let svc = service_fn({
            let (handler, guard, limits) = (handler.clone(), Arc::clone(&guard), limits.clone());
            move |req: Request<Incoming>| {
                let h = handler.clone();
                let (ticket, facts) =
                    guard.begin_request(req.method().as_str(), &req.uri().to_string());
                let refused = check_dispatched(&req, facts.as_ref(), &limits);
                // No head after a chunked body is checked: that connection closes.
                let close = facts.is_some_and(|f| f.chunked);
                async move {
                    let resp = match refused {
                        Err(e) => refusal(&e),
                        Ok(()) => h(req, peer).await,
                    };
                    Ok::<_, Infallible>(finish(resp, ticket, close))
                }
            }
        });
        let io = TokioIo::new(GuardedIo::new(stream, Arc::clone(&guard)));
        let fut = graceful.watch(builder.serve_connection(io, svc));
        tokio::spawn(async move {
            tokio::select! {
                res = fut => if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                () = guard.expired() => tracing::debug!("connection closed: idle, or its request head took too long"),
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with connections still open");
    }
}

/// Checks on a request hyper dispatched, for heads the guard did not vouch for
/// (pipelined after a chunked body): the head limits again, and no
/// Transfer-Encoding, whose Content-Length hyper may have dropped unseen.
fn check_dispatched(
    req: &Request<Incoming>,
    facts: Option<&HeadFacts>,
    limits: &ListenerLimits,
) -> Result<(), S3Error> {
    if facts.is_some() {
        return Ok(());
    }
    let head_bytes = req.method().as_str().len()
        + req.uri().to_string().len()
        + " HTTP/1.1\r\n\r\n".len()
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if req.headers().len() > limits.max_headers || head_bytes > limits.max_header_bytes {
        return Err(S3Error::RequestHeaderSectionTooLarge);
    }
    if req.headers().contains_key(http::header::TRANSFER_ENCODING) {
        return Err(S3Error::InvalidRequest(
            "A chunked request must not be pipelined behind another one.".into(),
        ));
    }
    Ok(())
}

/// The S3 error document for a request refused by the listener; the connection closes.
fn refusal(e: &S3Error) -> Response<ResponseBody> {
    use http_body_util::BodyExt;
    let request_id = format!("{:016X}", rand::random::<u64>());
    let body = http_body_util::Full::new(Bytes::from(e.to_xml("", &request_id)))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = e.status();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        h.insert("x-amz-request-id", v);
    }
    resp
}

/// The response as sent: it holds its request's ticket until hyper drops the body.
fn finish(resp: Response<ResponseBody>, ticket: Ticket, close: bool) -> Response<ResponseBody> {
    let mut resp = resp.map(|b| TicketBody::wrap(b, ticket));
    if close {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Answer a connection over the limit with 503 SlowDown and close it.
async fn shed(mut stream: TcpStream) {
    let body = S3Error::SlowDown.to_xml("", "");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
