//! The upstream response body with an idle timeout (`upstream.read_timeout`): when no
//! frame arrives for that long the body fails. The listener then aborts the client's
//! connection before its Content-Length is satisfied, which every S3 SDK treats as a
//! retryable transfer error, instead of holding the client (and a connection slot)
//! forever behind an upstream that stalled after its response head.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntCounterVec;
use tokio::time::{Instant, Sleep};

/// The body went quiet for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the upstream body stalled")]
pub struct BodyStalled;

/// `inner` with its idle timer; the timer restarts on every frame.
pub struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    errors: Option<IntCounterVec>,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            errors: None,
        }
    }

    /// Count failures in `errors` (`stowage_s3_upstream_errors_total`) by kind:
    /// `body_stalled` (the idle timeout) or `body_failed` (reset, truncated).
    #[must_use]
    pub fn counting(mut self, errors: IntCounterVec) -> Self {
        self.errors = Some(errors);
        self
    }

    fn count(&self, kind: &str) {
        if let Some(c) = &self.errors {
            c.with_label_values(&[kind]).inc();
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.count("body_failed");
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.count("body_stalled");
                    Poll::Ready(Some(Err(Box::new(BodyStalled))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    const IDLE: Duration = Duration::from_millis(300);

    type TestStream =
        Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>>;

    /// A body fed by hand: each sent chunk is one frame; dropping the sender ends it.
    fn channel() -> (mpsc::Sender<Bytes>, StreamBody<TestStream>) {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
        })
        .boxed();
        (tx, StreamBody::new(stream))
    }

    #[tokio::test]
    async fn a_body_that_goes_quiet_fails_after_the_idle_timeout() {
        let (tx, rx) = channel();
        let mut body = IdleTimeoutBody::new(rx, IDLE);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abc"));
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>());
        let waited = started.elapsed();
        assert!(
            waited >= IDLE && waited < IDLE * 5,
            "failed after {waited:?}"
        );
        drop(tx);
    }

    #[tokio::test]
    async fn every_frame_restarts_the_timer() {
        let (tx, rx) = channel();
        let body = IdleTimeoutBody::new(rx, IDLE);
        let feeder = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(IDLE / 2).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
        });
        // Four gaps of half the timeout add up to more than one timeout.
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"xxxx");
        feeder.await.unwrap();
    }
}
