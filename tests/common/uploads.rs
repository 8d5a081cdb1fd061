//! Uploads in every payload mode, signed with the independent [`Signer`]: hex, unsigned,
//! and the three aws-chunked framings, with knobs to break them (a forged chunk, a wrong
//! trailer checksum, a lying decoded length).

use super::signer::{
    Req, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, Signer, UNSIGNED,
    sha256_hex,
};

/// The five ways a body can be protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hex,
    Unsigned,
    StreamingSigned,
    StreamingUnsignedTrailer,
    StreamingSignedTrailer,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Hex,
        Mode::Unsigned,
        Mode::StreamingSigned,
        Mode::StreamingUnsignedTrailer,
        Mode::StreamingSignedTrailer,
    ];

    pub fn content_sha256(self, body: &[u8]) -> String {
        match self {
            Mode::Hex => sha256_hex(body),
            Mode::Unsigned => UNSIGNED.to_owned(),
            Mode::StreamingSigned => STREAMING_SIGNED.to_owned(),
            Mode::StreamingUnsignedTrailer => STREAMING_UNSIGNED_TRAILER.to_owned(),
            Mode::StreamingSignedTrailer => STREAMING_SIGNED_TRAILER.to_owned(),
        }
    }

    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            Mode::StreamingSigned | Mode::StreamingUnsignedTrailer | Mode::StreamingSignedTrailer
        )
    }

    pub fn has_trailer(self) -> bool {
        matches!(
            self,
            Mode::StreamingUnsignedTrailer | Mode::StreamingSignedTrailer
        )
    }
}

/// Where the signature goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Header,
    Query,
}

/// Base64 of the big-endian CRC32 of `data` (the `x-amz-checksum-crc32` value).
pub fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// Knobs for building broken streaming bodies.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    /// Replace this chunk's bytes after signing (a forged chunk).
    pub forge_chunk: Option<usize>,
    /// Send this trailer checksum instead of the right one.
    pub trailer_checksum: Option<String>,
    /// Declare this `x-amz-decoded-content-length` instead of the real one.
    pub decoded_length: Option<u64>,
}

/// A PUT of `data` to `target` = (host, path), signed in `mode` at `location`,
/// chunked by `chunk` bytes when streaming.
pub fn upload(
    signer: &Signer,
    location: Location,
    mode: Mode,
    target: (&str, &str),
    data: &[u8],
    chunk: usize,
    tamper: &Tamper,
) -> Req {
    let (host, path) = target;
    let mut req = Req::new("PUT", path, host);
    let content_sha = mode.content_sha256(data);
    if mode.is_streaming() {
        let decoded = tamper.decoded_length.unwrap_or(data.len() as u64);
        req.set_header("content-encoding", "aws-chunked");
        req.set_header("x-amz-decoded-content-length", &decoded.to_string());
        if mode.has_trailer() {
            req.set_header("x-amz-trailer", "x-amz-checksum-crc32");
        }
    }
    // The encoded length depends only on sizes, so it can be signed before the body.
    let body_len = encoded_len(mode, data.len(), chunk);
    req.set_header("content-length", &body_len.to_string());
    let seed = match location {
        Location::Header => signer.sign_header(&mut req, &content_sha, &[]),
        Location::Query => {
            req.set_header("x-amz-content-sha256", &content_sha);
            signer.presign(&mut req, 300, &content_sha)
        }
    };
    req.body = encode_body(signer, mode, &seed, data, chunk, tamper);
    assert_eq!(req.body.len(), body_len, "encoded length prediction");
    req
}

fn encoded_len(mode: Mode, n: usize, chunk: usize) -> usize {
    if !mode.is_streaming() {
        return n;
    }
    let sizes = chunk_sizes(n, chunk);
    let signed = matches!(mode, Mode::StreamingSigned | Mode::StreamingSignedTrailer);
    let ext = if signed {
        ";chunk-signature=".len() + 64
    } else {
        0
    };
    let frames: usize = sizes
        .iter()
        .map(|s| format!("{s:x}").len() + ext + 2 + s + 2)
        .sum();
    let last = 1 + ext + 2;
    let trailer = match mode {
        Mode::StreamingSigned => 2,
        Mode::StreamingUnsignedTrailer => "x-amz-checksum-crc32:".len() + 8 + 2 + 2,
        _ => "x-amz-checksum-crc32:".len() + 8 + 2 + "x-amz-trailer-signature:".len() + 64 + 2 + 2,
    };
    frames + last + trailer
}

fn chunk_sizes(n: usize, chunk: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let s = left.min(chunk);
        out.push(s);
        left -= s;
    }
    out
}

/// Frame `data` as aws-chunked for `mode`, chaining signatures from `seed`.
pub fn encode_body(
    signer: &Signer,
    mode: Mode,
    seed: &str,
    data: &[u8],
    chunk: usize,
    tamper: &Tamper,
) -> Vec<u8> {
    if !mode.is_streaming() {
        return data.to_vec();
    }
    let signed = matches!(mode, Mode::StreamingSigned | Mode::StreamingSignedTrailer);
    let mut out = Vec::new();
    let mut prev = seed.to_owned();
    for (i, part) in data
        .chunks(chunk)
        .chain(std::iter::once(&[][..]))
        .enumerate()
    {
        let mut bytes = part.to_vec();
        if signed {
            prev = signer.chunk_signature(&prev, &bytes);
            out.extend(format!("{:x};chunk-signature={prev}\r\n", bytes.len()).as_bytes());
        } else {
            out.extend(format!("{:x}\r\n", bytes.len()).as_bytes());
        }
        if tamper.forge_chunk == Some(i) {
            for b in &mut bytes {
                *b ^= 0x5a;
            }
        }
        out.extend(&bytes);
        if !bytes.is_empty() {
            out.extend(b"\r\n");
        }
    }
    match mode {
        Mode::StreamingSigned => out.extend(b"\r\n"),
        _ => {
            let value = tamper
                .trailer_checksum
                .clone()
                .unwrap_or_else(|| crc32_b64(data));
            let line = format!("x-amz-checksum-crc32:{value}");
            out.extend(format!("{line}\r\n").as_bytes());
            if signed {
                let sig = signer.trailer_signature(&prev, &format!("{line}\n"));
                out.extend(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
            }
            out.extend(b"\r\n");
        }
    }
    out
}
