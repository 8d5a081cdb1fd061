//! The aws-chunked decoder (signed chunks, unsigned chunks, trailer checksums and
//! trailer signatures) over arbitrary framed bytes, split into arbitrary pushes.
//!
//! Half the inputs are raw bytes; the other half describe a body that the harness
//! frames and signs with a fixed key, then damages in one chosen way, so the signature
//! and checksum paths run too. Invariants:
//! - never more bytes out than `x-amz-decoded-content-length`;
//! - success releases exactly that many bytes;
//! - in a signed or checksummed mode, success releases exactly the original payload;
//! - a forged chunk signature releases nothing from that chunk on;
//! - a body that fails never releases its last byte (the upstream never commits it);
//! - an undamaged body decodes to its payload (under the default limits).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use stowage::auth::body::BodyLimits;
use stowage::auth::checksum::Checksummer;
use stowage::auth::chunked::ChunkedDecoder;
use stowage::auth::sigv4::{
    chunk_string_to_sign, derive_signing_key, sha256_hex, signature, trailer_string_to_sign,
};
use stowage::auth::{ChecksumAlgorithm, ChunkSigningContext, PayloadMode};
use stowage::secret::SecretKey;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

fn context() -> ChunkSigningContext {
    ChunkSigningContext {
        signing_key: derive_signing_key(&SecretKey::new(SECRET), "20130524", "us-east-1", "s3"),
        amz_date: DATE.into(),
        scope: SCOPE.into(),
        seed_signature: SEED.into(),
    }
}

/// One way to damage a well-formed body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Damage {
    None,
    /// Replace chunk `i`'s signature with another well-formed one.
    ForgeChunk(usize),
    /// Sign the trailer over a different checksum value.
    ForgeTrailerSignature,
    /// Send a checksum of different bytes.
    WrongChecksum,
    /// Flip one byte of the framed body.
    Flip(usize, u8),
    /// Cut the framed body short.
    Truncate(usize),
    /// Insert bytes into the framed body.
    Insert(usize, u8, u8),
}

struct Case {
    signed: bool,
    trailer: Option<ChecksumAlgorithm>,
    decoded_length: u64,
    body: Vec<u8>,
    /// The payload a correct decode yields (None for raw inputs).
    payload: Option<Vec<u8>>,
    /// Payload bytes before the first forged chunk.
    forged_at: Option<usize>,
    damaged: bool,
}

fn checksum_b64(a: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut c = Checksummer::new(a);
    c.update(data);
    c.finish()
}

fn frame(
    ctx: &ChunkSigningContext,
    signed: bool,
    trailer: Option<ChecksumAlgorithm>,
    chunks: &[Vec<u8>],
    damage: Damage,
) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::new();
    let mut prev = ctx.seed_signature.clone();
    let mut forged_at = None;
    let mut offset = 0;
    let finals = [Vec::new()];
    for (i, data) in chunks.iter().chain(finals.iter()).enumerate() {
        if signed {
            let sts = chunk_string_to_sign(&ctx.amz_date, &ctx.scope, &prev, &sha256_hex(data));
            let mut sig = signature(&ctx.signing_key, &sts);
            if damage == Damage::ForgeChunk(i) {
                sig = signature(&ctx.signing_key, &format!("{sts}x"));
                forged_at = Some(offset);
            }
            out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
            prev = sig;
        } else {
            out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
        }
        out.extend_from_slice(data);
        if !data.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        offset += data.len();
    }
    if let Some(a) = trailer {
        let payload: Vec<u8> = chunks.concat();
        let mut value = checksum_b64(a, &payload);
        if damage == Damage::WrongChecksum {
            value = checksum_b64(a, &[payload.as_slice(), b"!"].concat());
        }
        let line = format!("{}:{value}", a.header_name());
        out.extend_from_slice(format!("{line}\r\n").as_bytes());
        if signed {
            let signed_line = if damage == Damage::ForgeTrailerSignature {
                format!("{}:{}", a.header_name(), checksum_b64(a, b"other"))
            } else {
                line
            };
            let hash = sha256_hex(format!("{signed_line}\n").as_bytes());
            let sts = trailer_string_to_sign(&ctx.amz_date, &ctx.scope, &prev, &hash);
            let sig = signature(&ctx.signing_key, &sts);
            out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    (out, forged_at)
}

fn structured(u: &mut Unstructured<'_>, ctx: &ChunkSigningContext) -> ArbResult<Case> {
    let signed = u.arbitrary()?;
    let trailer = match u.int_in_range(0..=5u8)? {
        0 => None,
        n => Some(ALGORITHMS[usize::from(n - 1)]),
    };
    let mut chunks = Vec::new();
    // Few, small chunks: every decoder path runs on them, and executions stay cheap.
    for _ in 0..u.int_in_range(0..=4u8)? {
        let len = usize::from(u.int_in_range(1..=64u8)?);
        chunks.push(
            u.bytes(len.min(u.len()).max(1))
                .map(<[u8]>::to_vec)
                .unwrap_or(vec![b'a']),
        );
    }
    let damage = match u.int_in_range(0..=6u8)? {
        0 => Damage::None,
        1 if signed => Damage::ForgeChunk(u.choose_index(chunks.len() + 1)?),
        2 if signed && trailer.is_some() => Damage::ForgeTrailerSignature,
        3 if trailer.is_some() => Damage::WrongChecksum,
        4 => Damage::Flip(u.arbitrary()?, u.int_in_range(1..=255)?),
        5 => Damage::Truncate(u.arbitrary()?),
        6 => Damage::Insert(u.arbitrary()?, u.arbitrary()?, u.int_in_range(1..=8)?),
        _ => Damage::None,
    };
    let (mut body, forged_at) = frame(ctx, signed, trailer, &chunks, damage);
    match damage {
        Damage::Flip(at, x) => {
            let at = at % body.len();
            body[at] ^= x;
        }
        Damage::Truncate(at) => body.truncate(at % body.len()),
        Damage::Insert(at, b, n) => {
            let at = at % (body.len() + 1);
            body.splice(at..at, std::iter::repeat_n(b, usize::from(n)));
        }
        _ => {}
    }
    let payload: Vec<u8> = chunks.concat();
    Ok(Case {
        signed,
        trailer,
        decoded_length: payload.len() as u64,
        body,
        payload: Some(payload),
        forged_at,
        damaged: damage != Damage::None,
    })
}

fn raw(u: &mut Unstructured<'_>) -> ArbResult<Case> {
    let signed = u.arbitrary()?;
    let trailer = match u.int_in_range(0..=5u8)? {
        0 => None,
        n => Some(ALGORITHMS[usize::from(n - 1)]),
    };
    let decoded_length = u64::from(u16::from_le_bytes([u.arbitrary()?, u.arbitrary()?]));
    let body = u.bytes(u.len())?.to_vec();
    Ok(Case {
        signed,
        trailer,
        decoded_length,
        body,
        payload: None,
        forged_at: None,
        damaged: true,
    })
}

fn limits(u: &mut Unstructured<'_>) -> ArbResult<BodyLimits> {
    if u.arbitrary()? {
        return Ok(BodyLimits::default());
    }
    Ok(BodyLimits {
        max_signed_chunk: usize::from(u.arbitrary::<u16>()?),
        max_chunk_line: usize::from(u.arbitrary::<u8>()?) * 8,
        max_trailer_section: usize::from(u.arbitrary::<u16>()?),
    })
}

fn cuts(u: &mut Unstructured<'_>, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..u.int_in_range(0..=8u8).unwrap_or(0))
        .map(|_| {
            u.arbitrary::<u16>()
                .map_or(0, |c| usize::from(c) % (len + 1))
        })
        .collect();
    cuts.sort_unstable();
    cuts
}

fn run(ctx: &ChunkSigningContext, u: &mut Unstructured<'_>) -> ArbResult<()> {
    let lim = limits(u)?;
    let is_raw: bool = u.arbitrary()?;
    let split = u.bytes(10)?.to_vec();
    let case = if is_raw { raw(u)? } else { structured(u, ctx)? };
    let cuts = cuts(&mut Unstructured::new(&split), case.body.len());
    let mode = PayloadMode::Streaming {
        signed: case.signed,
        trailer: case.trailer,
        decoded_length: case.decoded_length,
    };
    let mut decoder = ChunkedDecoder::new(&mode, case.signed.then_some(ctx), &lim)
        .expect("a streaming mode with its context");
    let mut released = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut result = Ok(());
    for c in cuts.into_iter().chain([case.body.len()]) {
        let r = decoder.push(Bytes::copy_from_slice(&case.body[at..c]), &mut out);
        released.extend(out.drain(..).flat_map(|b| b.to_vec()));
        at = c;
        if r.is_err() {
            result = r;
            break;
        }
    }
    if result.is_ok() {
        match decoder.finish() {
            Ok(last) => released.extend(last.into_iter().flat_map(|b| b.to_vec())),
            Err(e) => result = Err(e),
        }
    }
    let n = released.len() as u64;
    assert!(n <= case.decoded_length, "{n} > {}", case.decoded_length);
    match &result {
        Ok(()) => {
            assert_eq!(n, case.decoded_length);
            assert!(decoder.is_complete());
            if let Some(p) = &case.payload
                && (case.signed || case.trailer.is_some())
            {
                assert_eq!(&released, p, "a checked mode released other bytes");
            }
        }
        Err(e) => {
            if case.decoded_length > 0 {
                assert!(
                    n < case.decoded_length,
                    "a failed body released its last byte"
                );
            }
            assert!(!e.reason().is_empty());
            let s3 = e.s3_error();
            assert!(
                !s3.status().is_server_error(),
                "{} for client bytes",
                s3.code()
            );
        }
    }
    if let Some(at) = case.forged_at {
        assert!(result.is_err(), "a forged chunk signature was accepted");
        assert!(
            released.len() <= at,
            "bytes of a forged chunk were released"
        );
    }
    if !case.damaged && lim == BodyLimits::default() {
        assert_eq!(result, Ok(()), "a well-formed body was refused");
        assert_eq!(Some(released), case.payload);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static CTX: ChunkSigningContext = context();
    }
    CTX.with(|ctx| {
        let _ = run(ctx, &mut Unstructured::new(data));
    });
});
