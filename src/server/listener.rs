//! Accepting connections: TCP_NODELAY, a cap on concurrent connections (extra ones get
//! a 503 SlowDown and are closed), header size/count limits and a header read timeout
//! (slowloris), and graceful shutdown that lets in-flight exchanges finish.

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

use crate::error::S3Error;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
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
        let handler = handler.clone();
        let svc = service_fn(move |req| {
            let h = handler.clone();
            async move { Ok::<_, Infallible>(h(req, peer).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::debug!(error = %e, "connection ended with an error");
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
