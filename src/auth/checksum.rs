//! Incremental flexible checksums (`x-amz-checksum-*`): the five algorithms S3
//! defines, computed over the decoded body as it streams, rendered the way S3 sends
//! them (base64 of the big-endian digest) and compared in constant time.
//! Spec: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::ChecksumAlgorithm;

/// The running state of one checksum over a byte stream.
pub struct Checksummer {
    state: State,
}

enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl std::fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checksummer")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl Checksummer {
    #[must_use]
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => State::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => State::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => State::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => State::Sha256(Sha256::new()),
        };
        Self { state }
    }

    #[must_use]
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            State::Crc32(_) => ChecksumAlgorithm::Crc32,
            State::Crc32c(_) => ChecksumAlgorithm::Crc32c,
            State::Crc64Nvme(_) => ChecksumAlgorithm::Crc64Nvme,
            State::Sha1(_) => ChecksumAlgorithm::Sha1,
            State::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    /// Feed the next bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            State::Crc64Nvme(d) => d.write(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// The raw big-endian digest.
    #[must_use]
    pub fn finish_bytes(self) -> Vec<u8> {
        match self.state {
            State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            State::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            State::Crc64Nvme(d) => d.sum64().to_be_bytes().to_vec(),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        }
    }

    /// The digest as S3 renders it in `x-amz-checksum-*`: standard base64, padded.
    #[must_use]
    pub fn finish(self) -> String {
        STANDARD.encode(self.finish_bytes())
    }

    /// Whether the stream matches `expected_b64`, compared in constant time. A value
    /// that is not canonical base64 of a digest of the right length never matches;
    /// use [`decode_checksum_value`] first to tell "malformed" from "mismatch".
    #[must_use]
    pub fn verify(self, expected_b64: &str) -> bool {
        let algorithm = self.algorithm();
        let Some(expected) = decode_checksum_value(algorithm, expected_b64) else {
            return false;
        };
        self.finish_bytes().ct_eq(&expected).into()
    }
}

/// The digest length in bytes of each algorithm.
#[must_use]
pub fn digest_len(algorithm: ChecksumAlgorithm) -> usize {
    match algorithm {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// Decode a client-supplied checksum value: canonical padded base64 whose decoded
/// length is the algorithm's digest length, else `None`. Bounded before decoding so
/// an oversized value costs nothing.
#[must_use]
pub fn decode_checksum_value(algorithm: ChecksumAlgorithm, value_b64: &str) -> Option<Vec<u8>> {
    let want = digest_len(algorithm);
    if value_b64.len() != want.div_ceil(3) * 4 {
        return None;
    }
    let bytes = STANDARD.decode(value_b64).ok()?;
    (bytes.len() == want).then_some(bytes)
}

/// The algorithm's name as S3 spells it in error messages (`CRC32`, `SHA256`, …).
#[must_use]
pub fn algorithm_name(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc32 => "CRC32",
        ChecksumAlgorithm::Crc32c => "CRC32C",
        ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        ChecksumAlgorithm::Sha1 => "SHA1",
        ChecksumAlgorithm::Sha256 => "SHA256",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    fn digest_of(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut c = Checksummer::new(algorithm);
        c.update(data);
        c.finish_bytes()
    }

    #[test]
    fn crc_check_values_match_the_crc_catalogue() {
        // The "check" value of each CRC model is its CRC over ASCII "123456789".
        let check = b"123456789";
        assert_eq!(
            digest_of(ChecksumAlgorithm::Crc32, check),
            0xCBF4_3926_u32.to_be_bytes()
        );
        assert_eq!(
            digest_of(ChecksumAlgorithm::Crc32c, check),
            0xE306_9283_u32.to_be_bytes()
        );
        assert_eq!(
            digest_of(ChecksumAlgorithm::Crc64Nvme, check),
            0xAE8B_1486_0A79_9888_u64.to_be_bytes()
        );
    }

    #[test]
    fn base64_rendering_matches_known_values() {
        let hello = b"hello world";
        let render = |a| {
            let mut c = Checksummer::new(a);
            c.update(hello);
            c.finish()
        };
        // CRC32("hello world") = 0x0d4a1185, CRC32C = 0xc99465aa.
        assert_eq!(render(ChecksumAlgorithm::Crc32), "DUoRhQ==");
        assert_eq!(render(ChecksumAlgorithm::Crc32c), "yZRlqg==");
        assert_eq!(
            render(ChecksumAlgorithm::Sha1),
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
        );
        assert_eq!(
            render(ChecksumAlgorithm::Sha256),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
    }

    #[test]
    fn crc32c_matches_the_aws_trailer_example() {
        // sigv4-streaming-trailers: 66560 bytes of 'a' carry x-amz-checksum-crc32c:sOO8/Q==.
        let mut c = Checksummer::new(ChecksumAlgorithm::Crc32c);
        c.update(&[b'a'; 66560]);
        assert_eq!(c.finish(), "sOO8/Q==");
    }

    #[test]
    fn incremental_updates_equal_one_shot_for_every_split() {
        let data: Vec<u8> = (0..200u16).map(|i| (i * 7 % 251) as u8).collect();
        for a in ALL {
            let whole = digest_of(a, &data);
            for cut in 0..=data.len() {
                let mut c = Checksummer::new(a);
                c.update(&data[..cut]);
                c.update(&data[cut..]);
                assert_eq!(c.finish_bytes(), whole, "{a:?} split at {cut}");
            }
        }
    }

    #[test]
    fn verify_accepts_the_right_value_and_rejects_others() {
        for a in ALL {
            let mut c = Checksummer::new(a);
            c.update(b"payload");
            let good = c.finish();
            let verify = |v: &str| {
                let mut c = Checksummer::new(a);
                c.update(b"payload");
                c.verify(v)
            };
            assert!(verify(&good), "{a:?}");
            let mut wrong = digest_of(a, b"payload");
            wrong[0] ^= 1;
            assert!(!verify(&STANDARD.encode(&wrong)), "{a:?} flipped bit");
            assert!(!verify(""), "{a:?} empty");
            assert!(!verify("!!!!"), "{a:?} not base64");
            assert!(!verify(&STANDARD.encode([0u8; 64])), "{a:?} too long");
        }
    }

    #[test]
    fn decode_rejects_wrong_lengths_and_non_canonical_base64() {
        assert!(decode_checksum_value(ChecksumAlgorithm::Crc32, "DUoRhQ==").is_some());
        assert!(decode_checksum_value(ChecksumAlgorithm::Crc32, "DUoRhQ").is_none());
        // Same length, but trailing bits set in the last symbol: not canonical.
        assert!(decode_checksum_value(ChecksumAlgorithm::Crc32, "DUoRhR==").is_none());
        assert!(decode_checksum_value(ChecksumAlgorithm::Crc64Nvme, "DUoRhQ==").is_none());
        assert_eq!(
            decode_checksum_value(ChecksumAlgorithm::Sha256, &"A".repeat(44)),
            None
        );
    }

    #[test]
    fn algorithm_round_trips_and_names() {
        for a in ALL {
            assert_eq!(Checksummer::new(a).algorithm(), a);
            assert_eq!(digest_of(a, b"").len(), digest_len(a));
            assert!(
                a.header_name()
                    .ends_with(&algorithm_name(a).to_ascii_lowercase())
            );
        }
    }
}
