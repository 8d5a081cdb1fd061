//! The pooled upstream client: keep-alive connections with TCP_NODELAY, a connect
//! timeout, a response-header timeout, and failures classified into retryable S3
//! errors without internal text.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::S3Error;

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type the proxy sends upstream.
pub type OutBody = UnsyncBoxBody<Bytes, BoxError>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Client tuning, from `[upstream]`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    /// Idle timeout while reading a response body ([`super::idle`]).
    pub read_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

/// A failed upstream exchange, classified.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, reset, or closed before a response.
    #[error("upstream unavailable")]
    Unavailable,
    /// No response head within the timeout.
    #[error("upstream timed out")]
    Timeout,
    /// Bytes came back that are not an HTTP response (a wrong port, a broken
    /// middlebox). Answered like `Unavailable`: a retryable 503.
    #[error("upstream response malformed")]
    Malformed,
}

impl UpstreamError {
    #[must_use]
    pub fn s3_error(&self) -> S3Error {
        match self {
            Self::Unavailable | Self::Malformed => S3Error::ServiceUnavailable,
            Self::Timeout => S3Error::GatewayTimeout,
        }
    }

    /// Bounded metric label.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Malformed => "malformed",
        }
    }
}

/// The shared, pooled client.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, OutBody>,
    response_header_timeout: Duration,
    read_timeout: Duration,
}

impl UpstreamClient {
    #[must_use]
    pub fn new(opts: &ClientOptions) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(opts.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match builder.with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
            Err(_) => {
                tracing::warn!("no system TLS roots found; using the bundled Mozilla roots");
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http)
            }
        };
        // Without a pool timer hyper-util never reaps idle connections: they would
        // outlive `pool_idle_timeout` until reused (found by the soak's fd check).
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .build(connector);
        Self {
            client,
            response_header_timeout: opts.response_header_timeout,
            read_timeout: opts.read_timeout,
        }
    }

    /// The body idle timeout responses are read with.
    #[must_use]
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Send one request and wait for the response head.
    ///
    /// # Errors
    /// Classified failures; see [`UpstreamError`].
    pub async fn send(&self, req: Request<OutBody>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_header_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if is_parse_error(&e) => {
                tracing::warn!("the upstream answered with bytes that are not an HTTP response");
                Err(UpstreamError::Malformed)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream exchange failed");
                Err(UpstreamError::Unavailable)
            }
        }
    }
}

/// Whether hyper failed to parse the upstream's response (as opposed to a connection
/// that failed or closed).
fn is_parse_error(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            return h.is_parse() || h.is_parse_status() || h.is_parse_too_large();
        }
        source = err.source();
    }
    false
}
