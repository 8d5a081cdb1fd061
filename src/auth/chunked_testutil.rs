//! Test-only aws-chunked encoder: builds signed, unsigned and trailer bodies the way
//! SDKs frame them, plus forged variants, for the decoder and body tests.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ChunkedDecoder, ChunkedError};
use crate::auth::body::BodyLimits;
use crate::auth::checksum::Checksummer;
use crate::auth::sigv4::{
    chunk_string_to_sign, derive_signing_key, signature, trailer_string_to_sign,
};
use crate::auth::{ChecksumAlgorithm, ChunkSigningContext, PayloadMode};
use crate::secret::SecretKey;

/// The example credentials of the AWS S3 SigV4 documentation.
pub(crate) const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(crate) const DOC_DATE: &str = "20130524T000000Z";
pub(crate) const DOC_SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
/// Seed signature of the sigv4-streaming example (PUT of 66560 bytes of 'a').
pub(crate) const DOC_SEED: &str =
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

/// The documentation's signing context with the given seed signature.
pub(crate) fn doc_ctx(seed: &str) -> ChunkSigningContext {
    ChunkSigningContext {
        signing_key: derive_signing_key(&SecretKey::new(DOC_SECRET), "20130524", "us-east-1", "s3"),
        amz_date: DOC_DATE.into(),
        scope: DOC_SCOPE.into(),
        seed_signature: seed.into(),
    }
}

/// Builds an aws-chunked body piece by piece.
pub(crate) struct Framer {
    out: Vec<u8>,
    ctx: Option<ChunkSigningContext>,
    prev: String,
}

impl Framer {
    pub(crate) fn new(ctx: Option<&ChunkSigningContext>) -> Self {
        Self {
            out: Vec::new(),
            prev: ctx.map(|c| c.seed_signature.clone()).unwrap_or_default(),
            ctx: ctx.cloned(),
        }
    }

    /// The signature a chunk with `data` gets next in the chain.
    pub(crate) fn sign_chunk(&self, data: &[u8]) -> String {
        let ctx = self.ctx.as_ref().expect("signed framer");
        let hash = hex::encode(Sha256::digest(data));
        let sts = chunk_string_to_sign(&ctx.amz_date, &ctx.scope, &self.prev, &hash);
        signature(&ctx.signing_key, &sts)
    }

    /// A correctly framed (and, if signed, correctly signed) chunk.
    pub(crate) fn chunk(&mut self, data: &[u8]) -> &mut Self {
        if self.ctx.is_some() {
            let sig = self.sign_chunk(data);
            self.chunk_with_signature(data, &sig);
            self.prev = sig;
        } else {
            self.out
                .extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
            self.out.extend_from_slice(data);
            if !data.is_empty() {
                self.out.extend_from_slice(b"\r\n");
            }
        }
        self
    }

    /// A signed chunk carrying an arbitrary signature (does not advance the chain).
    pub(crate) fn chunk_with_signature(&mut self, data: &[u8], sig: &str) -> &mut Self {
        let header = format!("{:x};chunk-signature={sig}\r\n", data.len());
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(data);
        if !data.is_empty() {
            self.out.extend_from_slice(b"\r\n");
        }
        self
    }

    /// The final 0-size chunk header.
    pub(crate) fn final_chunk(&mut self) -> &mut Self {
        self.chunk(&[])
    }

    /// A trailer line `name:value`, plus (signed) the trailer signature line.
    pub(crate) fn trailer(&mut self, name: &str, value: &str) -> &mut Self {
        self.raw(format!("{name}:{value}\r\n").as_bytes());
        if let Some(ctx) = &self.ctx {
            let hash = hex::encode(Sha256::digest(format!("{name}:{value}\n")));
            let sts = trailer_string_to_sign(&ctx.amz_date, &ctx.scope, &self.prev, &hash);
            let sig = signature(&ctx.signing_key, &sts);
            self.raw(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
        self
    }

    /// The empty line that closes the body.
    pub(crate) fn end(&mut self) -> &mut Self {
        self.raw(b"\r\n")
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.out.clone()
    }
}

/// The base64 checksum S3 expects for `data`.
pub(crate) fn checksum_b64(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut c = Checksummer::new(algorithm);
    c.update(data);
    c.finish()
}

/// A complete, valid body for `data` in `chunk`-sized chunks, and its payload mode.
pub(crate) fn encode(
    data: &[u8],
    chunk: usize,
    ctx: Option<&ChunkSigningContext>,
    trailer: Option<ChecksumAlgorithm>,
) -> (Vec<u8>, PayloadMode) {
    let mut f = Framer::new(ctx);
    for piece in data.chunks(chunk.max(1)) {
        f.chunk(piece);
    }
    f.final_chunk();
    if let Some(a) = trailer {
        f.trailer(a.header_name(), &checksum_b64(a, data));
    }
    f.end();
    let mode = PayloadMode::Streaming {
        signed: ctx.is_some(),
        trailer,
        decoded_length: data.len() as u64,
    };
    (f.bytes(), mode)
}

pub(crate) const ALL: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

/// Seed of the sigv4-streaming-trailers example (same PUT, crc32c trailer).
pub(crate) const TRAILER_DOC_SEED: &str =
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";

pub(crate) fn decoder(mode: &PayloadMode, ctx: Option<&ChunkSigningContext>) -> ChunkedDecoder {
    ChunkedDecoder::new(mode, ctx, &BodyLimits::default()).expect("decoder")
}

/// Feed `pieces` then end the input; returns everything released and the outcome.
pub(crate) fn run(d: &mut ChunkedDecoder, pieces: &[&[u8]]) -> (Vec<u8>, Result<(), ChunkedError>) {
    let mut released = Vec::new();
    let mut out = Vec::new();
    for p in pieces {
        let r = d.push(Bytes::copy_from_slice(p), &mut out);
        released.extend(out.drain(..).flat_map(|b| b.to_vec()));
        if let Err(e) = r {
            return (released, Err(e));
        }
    }
    match d.finish() {
        Ok(last) => {
            released.extend(last.into_iter().flat_map(|b| b.to_vec()));
            (released, Ok(()))
        }
        Err(e) => (released, Err(e)),
    }
}

pub(crate) fn decode_whole(
    mode: &PayloadMode,
    ctx: Option<&ChunkSigningContext>,
    body: &[u8],
) -> (Vec<u8>, Result<(), ChunkedError>) {
    run(&mut decoder(mode, ctx), &[body])
}
