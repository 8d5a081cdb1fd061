//! The chained signatures of aws-chunked bodies: each chunk's string to sign carries
//! the previous signature, and the trailer's carries the final chunk's. This holds
//! the running chain; the decoder decides when each link is checked.
//! Spec: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>
//!
//! The string-to-sign and HMAC steps themselves are `auth::sigv4`'s, shared with
//! the header verifier.

use sha2::{Digest, Sha256};

use crate::auth::ChunkSigningContext;
use crate::auth::sigv4::{chunk_string_to_sign, signature, trailer_string_to_sign};
use crate::secret::ct_eq_str;

/// The running state of the signature chain for one request body.
pub(crate) struct ChainVerifier {
    ctx: ChunkSigningContext,
    /// The signature the next chunk (or the trailer) chains from.
    prev: String,
}

impl ChainVerifier {
    pub(crate) fn new(ctx: &ChunkSigningContext) -> Self {
        Self {
            prev: ctx.seed_signature.clone(),
            ctx: ctx.clone(),
        }
    }

    /// Check a chunk's claimed signature against its SHA-256 and advance the chain.
    pub(crate) fn verify_chunk(&mut self, chunk_sha256: &[u8; 32], claimed: &str) -> bool {
        let sts = chunk_string_to_sign(
            &self.ctx.amz_date,
            &self.ctx.scope,
            &self.prev,
            &crate::auth::sigv4::hex32(chunk_sha256),
        );
        self.check_and_advance(&sts, claimed)
    }

    /// Check the trailer signature over the canonical trailer lines (`name:value\n`).
    pub(crate) fn verify_trailer(&mut self, canonical_trailers: &[u8], claimed: &str) -> bool {
        let hash = hex::encode(Sha256::digest(canonical_trailers));
        let sts = trailer_string_to_sign(&self.ctx.amz_date, &self.ctx.scope, &self.prev, &hash);
        self.check_and_advance(&sts, claimed)
    }

    fn check_and_advance(&mut self, string_to_sign: &str, claimed: &str) -> bool {
        let expected = signature(&self.ctx.signing_key, string_to_sign);
        let ok = !expected.is_empty() && ct_eq_str(&expected, claimed);
        if ok {
            self.prev = expected;
        }
        ok
    }
}

impl std::fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Signatures are bearer material for the rest of the chain: never printed.
        f.write_str("ChainVerifier(<redacted>)")
    }
}
