//! The verified request body: wraps the client's body and enforces the payload
//! mode (DESIGN.md §3) while it streams to the upstream.
//!
//! - `Unsigned`: bytes pass through.
//! - `Sha256`: the body is hashed as it streams and the most recent frame is held
//!   back, so the last bytes leave only after the hash matched at end of input.
//! - `Streaming`: the aws-chunked decoder ([`ChunkedDecoder`]) releases verified
//!   chunks and holds the final payload byte until the trailer and total length
//!   verified at end of input.
//!
//! The upstream request carries an exact Content-Length, so on any failure the
//! upstream never receives its last byte and commits nothing: the body yields an
//! error instead, which aborts the upstream request.
//!
//! A body whose verified length is 0 has no "last byte" to hold back: the pipeline
//! must drive such a body to its end (it is tiny) before it forwards the request.

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::chunked::{ChunkedDecoder, ChunkedError};
use crate::auth::{ChunkSigningContext, PayloadMode};
use crate::error::S3Error;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Bounds on what a client-supplied body may make the proxy buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest signed aws-chunked chunk (buffered whole until its signature
    /// verified). Default 16 MiB: SDKs sign 64–128 KiB chunks, and MinIO has long
    /// capped signed chunks at 16 MiB. Unsigned chunks stream and are not capped.
    pub max_signed_chunk: usize,
    /// Longest chunk header line, extensions and CRLF included. Default 4 KiB.
    pub max_chunk_line: usize,
    /// Largest trailer section, all lines and CRLFs included. Default 16 KiB.
    pub max_trailer_section: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_signed_chunk: 16 * 1024 * 1024,
            max_chunk_line: 4 * 1024,
            max_trailer_section: 16 * 1024,
        }
    }
}

/// Why the body stopped: the S3 error to answer and a bounded reason label.
#[derive(Debug, thiserror::Error)]
#[error("request body rejected: {reason}")]
pub struct BodyError {
    s3: S3Error,
    reason: &'static str,
    #[source]
    source: Option<BoxError>,
}

impl BodyError {
    /// The client-facing error.
    #[must_use]
    pub fn s3_error(&self) -> S3Error {
        self.s3.clone()
    }

    /// A bounded label for metrics and logs (e.g. `chunk_signature`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    fn sha256_mismatch() -> Self {
        Self {
            s3: S3Error::XAmzContentSha256Mismatch,
            reason: "sha256_mismatch",
            source: None,
        }
    }

    /// The client's body failed: a read error (`IncompleteBody`), or one of the
    /// listener's body guards (a stall, a size cap) that carries its own `S3Error`.
    fn client_body(source: BoxError) -> Self {
        let (s3, reason) = match source.downcast_ref::<S3Error>() {
            Some(e @ S3Error::RequestTimeout) => (e.clone(), "body_read_timeout"),
            Some(e @ S3Error::MaxMessageLengthExceeded) => (e.clone(), "body_too_large"),
            _ => (S3Error::IncompleteBody, "client_body"),
        };
        Self {
            s3,
            reason,
            source: Some(source),
        }
    }
}

impl From<ChunkedError> for BodyError {
    fn from(e: ChunkedError) -> Self {
        Self {
            s3: e.s3_error(),
            reason: e.reason(),
            source: None,
        }
    }
}

/// Shared view of a body that has been handed to the upstream client: how many
/// bytes it released, and why it failed (if it did).
#[derive(Debug, Clone, Default)]
pub struct BodyHandle {
    released: Arc<AtomicU64>,
    failure: Arc<OnceLock<(S3Error, &'static str)>>,
}

impl BodyHandle {
    /// Bytes released to the consumer so far.
    #[must_use]
    pub fn bytes_released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// The error the body failed with, if it failed.
    #[must_use]
    pub fn failure(&self) -> Option<S3Error> {
        self.failure.get().map(|(e, _)| e.clone())
    }

    /// The bounded reason label of the failure, if it failed.
    #[must_use]
    pub fn failure_reason(&self) -> Option<&'static str> {
        self.failure.get().map(|(_, r)| *r)
    }

    /// For other verifying bodies (browser forms): `n` more bytes released.
    pub(crate) fn record_released(&self, n: u64) {
        self.released.fetch_add(n, Ordering::Relaxed);
    }

    /// For other verifying bodies: the first failure wins.
    pub(crate) fn record_failure(&self, e: S3Error, reason: &'static str) {
        let _ = self.failure.set((e, reason));
    }
}

/// A request body that only releases bytes its payload mode allows.
pub struct VerifiedBody<B> {
    inner: Pin<Box<B>>,
    check: Check,
    queue: VecDeque<Bytes>,
    pending_error: Option<BodyError>,
    phase: Phase,
    handle: BodyHandle,
}

enum Check {
    Passthrough,
    Sha256 {
        hasher: Sha256,
        expected: [u8; 32],
        held: Option<Bytes>,
    },
    Chunked(Box<ChunkedDecoder>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Ended,
    Failed,
}

/// Wrap `inner` so that it is verified against `payload` while it streams.
/// `chunk_ctx` is required for the signed streaming modes; without it the body
/// fails on first poll with an internal error.
pub fn verify_body<B>(
    inner: B,
    payload: &PayloadMode,
    chunk_ctx: Option<&ChunkSigningContext>,
    limits: &BodyLimits,
) -> VerifiedBody<B> {
    let mut pending_error = None;
    let check = match payload {
        PayloadMode::Unsigned => Check::Passthrough,
        PayloadMode::Sha256(expected) => Check::Sha256 {
            hasher: Sha256::new(),
            expected: *expected,
            held: None,
        },
        PayloadMode::Streaming { .. } => match ChunkedDecoder::new(payload, chunk_ctx, limits) {
            Ok(decoder) => Check::Chunked(Box::new(decoder)),
            Err(e) => {
                pending_error = Some(BodyError::from(e));
                Check::Passthrough
            }
        },
    };
    VerifiedBody {
        inner: Box::pin(inner),
        check,
        queue: VecDeque::new(),
        pending_error,
        phase: Phase::Reading,
        handle: BodyHandle::default(),
    }
}

impl<B> VerifiedBody<B> {
    /// A handle that outlives the body (it moves into the upstream client).
    #[must_use]
    pub fn handle(&self) -> BodyHandle {
        self.handle.clone()
    }

    /// Bytes released so far.
    #[must_use]
    pub fn bytes_released(&self) -> u64 {
        self.handle.bytes_released()
    }

    fn on_data(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match &mut self.check {
            Check::Passthrough => self.queue.push_back(data),
            Check::Sha256 { hasher, held, .. } => {
                hasher.update(&data);
                if let Some(previous) = held.replace(data) {
                    self.queue.push_back(previous);
                }
            }
            Check::Chunked(decoder) => {
                let mut out = Vec::new();
                let result = decoder.push(data, &mut out);
                // Bytes decoded before a failure precede the faulty part: release them.
                self.queue.extend(out);
                if let Err(e) = result {
                    self.pending_error = Some(e.into());
                }
            }
        }
    }

    fn on_eof(&mut self) {
        self.phase = Phase::Ended;
        match &mut self.check {
            Check::Passthrough => {}
            Check::Sha256 {
                hasher,
                expected,
                held,
            } => {
                let computed: [u8; 32] = std::mem::take(hasher).finalize().into();
                if bool::from(computed.ct_eq(expected)) {
                    self.queue.extend(held.take());
                } else {
                    *held = None;
                    self.pending_error = Some(BodyError::sha256_mismatch());
                }
            }
            Check::Chunked(decoder) => match decoder.finish() {
                Ok(last) => self.queue.extend(last),
                Err(e) => self.pending_error = Some(e.into()),
            },
        }
    }

    fn buffered_len(&self) -> u64 {
        let held = match &self.check {
            Check::Sha256 { held, .. } => held.as_ref().map_or(0, Bytes::len),
            _ => 0,
        };
        let queued: usize = self.queue.iter().map(Bytes::len).sum();
        (queued + held) as u64
    }
}

impl<B> Body for VerifiedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // `VerifiedBody` is `Unpin`: the inner body is pinned in its own box.
        let this = self.get_mut();
        loop {
            if let Some(data) = this.queue.pop_front() {
                this.handle
                    .released
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(e) = this.pending_error.take() {
                this.phase = Phase::Failed;
                let _ = this.handle.failure.set((e.s3_error(), e.reason()));
                return Poll::Ready(Some(Err(e)));
            }
            if this.phase != Phase::Reading {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                // HTTP trailers cannot travel with a Content-Length body: dropped.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.on_data(data);
                    }
                }
                Some(Err(e)) => this.pending_error = Some(BodyError::client_body(e.into())),
                None => this.on_eof(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Ended && self.queue.is_empty() && self.pending_error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if let Check::Chunked(decoder) = &self.check {
            let left = decoder
                .decoded_length()
                .saturating_sub(self.bytes_released());
            return SizeHint::with_exact(left);
        }
        let buffered = self.buffered_len();
        let inner = if self.phase == Phase::Reading {
            self.inner.size_hint()
        } else {
            SizeHint::with_exact(0)
        };
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(buffered));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

/// Remove only the `aws-chunked` token from a `Content-Encoding` list: the decoded
/// body may still carry a real encoding (`aws-chunked,gzip` → `gzip`). `None` when
/// nothing remains.
#[must_use]
pub fn strip_aws_chunked(content_encoding: &str) -> Option<String> {
    let rest: Vec<&str> = content_encoding
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!rest.is_empty()).then(|| rest.join(","))
}
