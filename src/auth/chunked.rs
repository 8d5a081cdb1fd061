//! The aws-chunked decoder: a push-style (sans-IO) state machine that turns the
//! framed body of the three streaming payload modes into the decoded payload and
//! only ever hands out bytes that are safe to forward.
//! Spec: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>
//!
//! "Safe" means:
//! - a signed chunk is buffered whole (at most [`BodyLimits::max_signed_chunk`]) and
//!   released only after its chained signature verified, so a forged chunk never
//!   reaches the upstream; unsigned chunks stream through as they arrive;
//! - the decoded length may never exceed `x-amz-decoded-content-length` (checked at
//!   each chunk header, before any of that chunk is read);
//! - the very last payload byte is held back until the whole body, trailer checksum
//!   and trailer signature included, verified and the input ended
//!   ([`ChunkedDecoder::finish`]). The upstream gets an exact Content-Length, so
//!   without its last byte it never commits a body that failed a check.

#[path = "chunked_errors.rs"]
mod errors;
#[path = "chunked_line.rs"]
mod line;
#[cfg(test)]
#[path = "chunked_proptests.rs"]
mod proptests;
#[path = "chunked_sign.rs"]
mod sign;
#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "chunked_tests_framing.rs"]
mod tests_framing;
#[cfg(test)]
#[path = "chunked_testutil.rs"]
pub(crate) mod testutil;
#[path = "chunked_trailer.rs"]
mod trailer;

use bytes::{Buf, Bytes, BytesMut};
use sha2::{Digest, Sha256};

pub use errors::ChunkedError;
use line::{parse_size_line, take_line};
use sign::ChainVerifier;
use trailer::TrailerCollector;

use crate::auth::body::BodyLimits;
use crate::auth::checksum::Checksummer;
use crate::auth::{ChunkSigningContext, PayloadMode};

/// Initial buffer for a signed chunk; it grows as bytes arrive, never to the
/// declared size up front, so a client cannot reserve memory it does not send.
const SIGNED_BUF_START: usize = 64 * 1024;

/// Incremental aws-chunked decoder for one request body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The partial header or trailer line carried across pushes (bounded).
    line: Vec<u8>,
    chain: Option<ChainVerifier>,
    checksum: Option<Checksummer>,
    trailer: Option<TrailerCollector>,
    decoded_length: u64,
    decoded: u64,
    held: Option<Bytes>,
    trailer_bytes: usize,
    limits: BodyLimits,
    failure: Option<ChunkedError>,
}

#[derive(Debug)]
enum State {
    SizeLine,
    SignedData(SignedChunk),
    UnsignedData {
        remaining: u64,
    },
    /// The CRLF after a chunk's data; `seen` counts its bytes read so far.
    DataEnd {
        seen: u8,
    },
    Trailer,
    Done,
    Failed,
}

#[derive(Debug)]
struct SignedChunk {
    size: usize,
    signature: String,
    buf: BytesMut,
}

impl ChunkedDecoder {
    /// A decoder for a `PayloadMode::Streaming` body. Signed modes need the chunk
    /// signing context; a missing one (or a non-streaming mode) is an internal error.
    pub fn new(
        payload: &PayloadMode,
        chunk_ctx: Option<&ChunkSigningContext>,
        limits: &BodyLimits,
    ) -> Result<Self, ChunkedError> {
        let PayloadMode::Streaming {
            signed,
            trailer,
            decoded_length,
        } = *payload
        else {
            return Err(ChunkedError::Internal);
        };
        let chain = match (signed, chunk_ctx) {
            (true, Some(ctx)) => Some(ChainVerifier::new(ctx)),
            (true, None) => return Err(ChunkedError::Internal),
            (false, _) => None,
        };
        Ok(Self {
            state: State::SizeLine,
            line: Vec::new(),
            chain,
            checksum: trailer.map(Checksummer::new),
            trailer: Some(TrailerCollector::new(trailer, signed)),
            decoded_length,
            decoded: 0,
            held: None,
            trailer_bytes: 0,
            limits: limits.clone(),
            failure: None,
        })
    }

    /// The declared decoded length (`x-amz-decoded-content-length`).
    #[must_use]
    pub fn decoded_length(&self) -> u64 {
        self.decoded_length
    }

    /// Payload bytes decoded so far, including a byte still held back.
    #[must_use]
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether the whole framed body, trailers included, has been read and verified.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feed the next bytes of the framed body. Decoded payload that is safe to
    /// release is appended to `out`, in order. On error, what was appended before
    /// the error is still safe (it precedes the faulty part); the decoder is then
    /// poisoned and repeats the error.
    pub fn push(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkedError> {
        if let Some(e) = &self.failure {
            return Err(e.clone());
        }
        while !input.is_empty() {
            if let Err(e) = self.step(&mut input, out) {
                self.state = State::Failed;
                self.failure = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// The input ended. Returns the held-back final byte(s) once everything verified;
    /// a body that stops early is [`ChunkedError::Truncated`].
    pub fn finish(&mut self) -> Result<Option<Bytes>, ChunkedError> {
        if let Some(e) = &self.failure {
            return Err(e.clone());
        }
        let result = match self.state {
            State::Done => Ok(()),
            // Leniency: every trailer line arrived whole, only the closing empty line
            // is missing. All checks still run, so nothing unverified gets through.
            State::Trailer if self.line.is_empty() => self.close_trailer(),
            _ => Err(ChunkedError::Truncated),
        };
        match result {
            Ok(()) => {
                self.state = State::Done;
                Ok(self.held.take())
            }
            Err(e) => {
                self.state = State::Failed;
                self.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    fn step(&mut self, input: &mut Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkedError> {
        // Taking the state out leaves `Failed` behind if a handler errors.
        self.state = match std::mem::replace(&mut self.state, State::Failed) {
            State::SizeLine => self.on_size_line(input)?,
            State::SignedData(chunk) => self.on_signed_data(chunk, input, out)?,
            State::UnsignedData { remaining } => self.on_unsigned_data(remaining, input, out),
            State::DataEnd { seen } => on_data_end(seen, input)?,
            State::Trailer => self.on_trailer_line(input)?,
            State::Done => return Err(ChunkedError::TrailingData),
            State::Failed => return Err(ChunkedError::Internal),
        };
        Ok(())
    }

    fn on_size_line(&mut self, input: &mut Bytes) -> Result<State, ChunkedError> {
        let limit = self.limits.max_chunk_line;
        let Some(line) = take_line(&mut self.line, input, limit, ChunkedError::LineTooLong)? else {
            return Ok(State::SizeLine);
        };
        let (size, signature) = parse_size_line(&line, self.chain.is_some())?;
        if size == 0 {
            return self.on_final_chunk(signature);
        }
        let total = self.decoded.checked_add(size);
        if total.is_none_or(|t| t > self.decoded_length) {
            return Err(ChunkedError::TooLong);
        }
        let Some(signature) = signature else {
            return Ok(State::UnsignedData { remaining: size });
        };
        // Checked before any of the chunk is read or buffered.
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= self.limits.max_signed_chunk)
            .ok_or(ChunkedError::ChunkTooLarge)?;
        Ok(State::SignedData(SignedChunk {
            size,
            signature,
            buf: BytesMut::new(),
        }))
    }

    fn on_final_chunk(&mut self, signature: Option<String>) -> Result<State, ChunkedError> {
        if let Some(signature) = signature {
            self.verify_chunk(&[], &signature)?;
        }
        if self.decoded != self.decoded_length {
            return Err(ChunkedError::TooShort);
        }
        Ok(State::Trailer)
    }

    fn on_signed_data(
        &mut self,
        mut chunk: SignedChunk,
        input: &mut Bytes,
        out: &mut Vec<Bytes>,
    ) -> Result<State, ChunkedError> {
        let data = if chunk.buf.is_empty() && input.len() >= chunk.size {
            // The whole chunk is in this input: no copy.
            input.split_to(chunk.size)
        } else {
            let take = (chunk.size - chunk.buf.len()).min(input.len());
            if chunk.buf.capacity() == 0 {
                chunk.buf.reserve(chunk.size.min(SIGNED_BUF_START));
            }
            chunk.buf.extend_from_slice(&input[..take]);
            input.advance(take);
            if chunk.buf.len() < chunk.size {
                return Ok(State::SignedData(chunk));
            }
            chunk.buf.freeze()
        };
        self.verify_chunk(&data, &chunk.signature)?;
        self.emit(data, out);
        Ok(State::DataEnd { seen: 0 })
    }

    fn on_unsigned_data(
        &mut self,
        remaining: u64,
        input: &mut Bytes,
        out: &mut Vec<Bytes>,
    ) -> State {
        let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        self.emit(input.split_to(take), out);
        // `take` ≤ `remaining`, so this cannot underflow.
        match remaining - take as u64 {
            0 => State::DataEnd { seen: 0 },
            left => State::UnsignedData { remaining: left },
        }
    }

    fn on_trailer_line(&mut self, input: &mut Bytes) -> Result<State, ChunkedError> {
        let budget = self
            .limits
            .max_trailer_section
            .saturating_sub(self.trailer_bytes);
        let Some(line) = take_line(&mut self.line, input, budget, ChunkedError::TrailerTooLarge)?
        else {
            return Ok(State::Trailer);
        };
        self.trailer_bytes += line.len() + 2;
        if line.is_empty() {
            self.close_trailer()?;
            return Ok(State::Done);
        }
        self.trailer
            .as_mut()
            .ok_or(ChunkedError::Internal)?
            .line(&line)?;
        Ok(State::Trailer)
    }

    fn close_trailer(&mut self) -> Result<(), ChunkedError> {
        let collector = self.trailer.take().ok_or(ChunkedError::Internal)?;
        collector.finish(self.checksum.take(), self.chain.as_mut())
    }

    fn verify_chunk(&mut self, data: &[u8], signature: &str) -> Result<(), ChunkedError> {
        let chain = self.chain.as_mut().ok_or(ChunkedError::Internal)?;
        let hash: [u8; 32] = Sha256::digest(data).into();
        if chain.verify_chunk(&hash, signature) {
            Ok(())
        } else {
            Err(ChunkedError::ChunkSignature)
        }
    }

    /// Account decoded bytes and release them, keeping the last payload byte back.
    fn emit(&mut self, mut data: Bytes, out: &mut Vec<Bytes>) {
        if data.is_empty() {
            return;
        }
        self.decoded += data.len() as u64;
        if let Some(c) = &mut self.checksum {
            c.update(&data);
        }
        if self.decoded == self.decoded_length {
            self.held = Some(data.split_off(data.len() - 1));
        }
        if !data.is_empty() {
            out.push(data);
        }
    }
}

fn on_data_end(mut seen: u8, input: &mut Bytes) -> Result<State, ChunkedError> {
    while seen < 2 {
        let Some(&b) = input.first() else {
            return Ok(State::DataEnd { seen });
        };
        let want = if seen == 0 { b'\r' } else { b'\n' };
        if b != want {
            return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
        }
        input.advance(1);
        seen += 1;
    }
    Ok(State::SizeLine)
}
