//! Limits on the request body the pipeline forwards: a cap on the XML bodies of
//! DeleteObjects and CompleteMultipartUpload (`MaxMessageLengthExceeded`), and a stall
//! timeout for every body (`RequestTimeout`, against slowloris on the body).
//!
//! Declared lengths are refused before anything is sent upstream ([`check_declared`]).
//! The bytes as received are counted too ([`GuardedBody`]): a body that grows past the
//! cap, or stops arriving, ends in an error, so the upstream request (sent with an exact
//! Content-Length) never gets its last byte and commits nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};

use crate::auth::PayloadMode;
use crate::config::ProxyConfig;
use crate::error::S3Error;
use crate::policy::operation::S3Operation;

/// The configured body limits (`s3_proxy.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyGuardLimits {
    pub read_timeout: Duration,
    pub max_delete_objects: u64,
    pub max_complete_multipart: u64,
}

impl BodyGuardLimits {
    #[must_use]
    pub fn from_config(p: &ProxyConfig) -> Self {
        Self {
            read_timeout: p.body_read_timeout,
            max_delete_objects: p.max_delete_objects_body_bytes as u64,
            max_complete_multipart: p.max_complete_multipart_body_bytes as u64,
        }
    }

    /// The body cap of `op`, for the operations whose body is an XML document.
    #[must_use]
    pub fn cap(&self, op: S3Operation) -> Option<u64> {
        match op {
            S3Operation::DeleteObjects => Some(self.max_delete_objects),
            S3Operation::CompleteMultipartUpload => Some(self.max_complete_multipart),
            _ => None,
        }
    }
}

/// Refuse a capped operation whose declared length (Content-Length, or the
/// aws-chunked `x-amz-decoded-content-length`) is over its cap.
pub fn check_declared(
    limits: &BodyGuardLimits,
    op: S3Operation,
    parts: &Parts,
    payload: &PayloadMode,
) -> Result<(), S3Error> {
    let Some(cap) = limits.cap(op) else {
        return Ok(());
    };
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let declared = content_length.into_iter().chain(payload.decoded_length());
    if declared.into_iter().any(|n| n > cap) {
        return Err(S3Error::MaxMessageLengthExceeded);
    }
    Ok(())
}

/// A client body that fails with `RequestTimeout` when no bytes arrive for
/// `read_timeout` while it is being read, and with `MaxMessageLengthExceeded` once more
/// than `cap` bytes arrived. Time the consumer spends not polling (upstream
/// back-pressure) does not count: the clock starts when a poll finds nothing ready.
pub struct GuardedBody<B> {
    inner: Pin<Box<B>>,
    cap: Option<u64>,
    received: u64,
    read_timeout: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    failed: bool,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, cap: Option<u64>, read_timeout: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            cap,
            received: 0,
            read_timeout,
            stall: None,
            failed: false,
        }
    }

    fn fail(&mut self, e: S3Error) -> Poll<Option<Result<Frame<Bytes>, S3Error>>> {
        self.failed = true;
        self.stall = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = S3Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, S3Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let polled = this.inner.as_mut().poll_frame(cx);
        let Poll::Ready(next) = polled else {
            let timeout = this.read_timeout;
            let stall = this
                .stall
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            ready!(stall.as_mut().poll(cx));
            return this.fail(S3Error::RequestTimeout);
        };
        this.stall = None;
        match next {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.cap.is_some_and(|cap| this.received > cap) {
                        return this.fail(S3Error::MaxMessageLengthExceeded);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // The transport's error is not ours to show; the verifier reports it as
            // `IncompleteBody`.
            Some(Err(_)) => this.fail(S3Error::IncompleteBody),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_of(chunks: Vec<&'static [u8]>) -> impl Body<Data = Bytes, Error = S3Error> {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, S3Error>(Frame::data(Bytes::from_static(c))));
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_within_the_cap_passes_whole() {
        let b = GuardedBody::new(
            body_of(vec![b"abc", b"def"]),
            Some(6),
            Duration::from_secs(1),
        );
        let out = b.collect().await.expect("within the cap").to_bytes();
        assert_eq!(&out[..], b"abcdef");
    }

    #[tokio::test]
    async fn a_body_one_byte_over_the_cap_fails_with_max_message_length_exceeded() {
        let b = GuardedBody::new(
            body_of(vec![b"abc", b"defg"]),
            Some(6),
            Duration::from_secs(1),
        );
        let err = b.collect().await.expect_err("over the cap");
        assert_eq!(err, S3Error::MaxMessageLengthExceeded);
    }

    #[tokio::test]
    async fn a_stalled_body_fails_with_request_timeout_after_the_read_timeout() {
        let pending = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, S3Error>,
        >());
        let b = GuardedBody::new(pending, None, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let err = b.collect().await.expect_err("stalls");
        assert_eq!(err, S3Error::RequestTimeout);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
