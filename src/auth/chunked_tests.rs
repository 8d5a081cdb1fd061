//! Decoder tests: the AWS documentation vectors, every framing split, forged and
//! reordered chunks, and the trailer checks.

use rand::{Rng, SeedableRng};

use super::testutil::{
    ALL, DOC_SEED, Framer, TRAILER_DOC_SEED, checksum_b64, decode_whole, decoder, doc_ctx, encode,
    run,
};
use super::*;
use crate::auth::{ChecksumAlgorithm, checksum};

fn doc_body(seed: &str, trailer: Option<ChecksumAlgorithm>) -> (Vec<u8>, PayloadMode) {
    encode(&[b'a'; 66560], 65536, Some(&doc_ctx(seed)), trailer)
}

#[test]
fn doc_example_chunk_signatures_are_reproduced() {
    let f = Framer::new(Some(&doc_ctx(DOC_SEED)));
    let (body, _) = doc_body(DOC_SEED, None);
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with(
        "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    ));
    assert!(text.contains("\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"));
    assert!(text.ends_with("\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"));
    assert_eq!(
        f.sign_chunk(&[b'a'; 65536]),
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );
}

#[test]
fn doc_trailer_example_signatures_are_reproduced() {
    let (body, _) = doc_body(TRAILER_DOC_SEED, Some(ChecksumAlgorithm::Crc32c));
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with(
        "10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    ));
    assert!(text.contains("\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"));
    assert!(text.ends_with(
        "\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n\
         x-amz-checksum-crc32c:sOO8/Q==\r\n\
         x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
    ));
}

#[test]
fn doc_examples_decode_whole_and_byte_by_byte() {
    for (seed, trailer) in [
        (DOC_SEED, None),
        (TRAILER_DOC_SEED, Some(ChecksumAlgorithm::Crc32c)),
    ] {
        let (body, mode) = doc_body(seed, trailer);
        let ctx = doc_ctx(seed);
        let (out, r) = decode_whole(&mode, Some(&ctx), &body);
        assert_eq!(r, Ok(()));
        assert_eq!(out, vec![b'a'; 66560]);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let (out, r) = run(&mut decoder(&mode, Some(&ctx)), &bytes);
        assert_eq!((out.len(), r), (66560, Ok(())));
    }
}

#[test]
fn doc_example_decodes_under_random_splits() {
    let (body, mode) = doc_body(TRAILER_DOC_SEED, Some(ChecksumAlgorithm::Crc32c));
    let ctx = doc_ctx(TRAILER_DOC_SEED);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let mut pieces = Vec::new();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = rng.gen_range(1..=rest.len().min(9000));
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        let (out, r) = run(&mut decoder(&mode, Some(&ctx)), &pieces);
        assert_eq!((out.len(), r), (66560, Ok(())));
    }
}

/// Small bodies in every mode, split into two and three pieces at every position.
#[test]
fn small_bodies_decode_at_every_split_in_every_mode() {
    let data: Vec<u8> = (0..41u8).collect();
    let ctx = doc_ctx(DOC_SEED);
    let modes = [
        (Some(&ctx), None),
        (Some(&ctx), Some(ChecksumAlgorithm::Sha256)),
        (None, Some(ChecksumAlgorithm::Crc64Nvme)),
        (None, None),
    ];
    for (ctx, trailer) in modes {
        let (body, mode) = encode(&data, 16, ctx, trailer);
        // Two pieces: every single boundary. Three pieces: a spread of pairs.
        for i in 0..=body.len() {
            let (out, r) = run(&mut decoder(&mode, ctx), &[&body[..i], &body[i..]]);
            assert_eq!((out, r), (data.clone(), Ok(())), "{trailer:?} split {i}");
        }
        for i in (0..=body.len()).step_by(7) {
            for j in (i..=body.len()).step_by(11) {
                let pieces = [&body[..i], &body[i..j], &body[j..]];
                let (out, r) = run(&mut decoder(&mode, ctx), &pieces);
                assert_eq!(
                    (out, r),
                    (data.clone(), Ok(())),
                    "{trailer:?} split {i}/{j}"
                );
            }
        }
    }
}

#[test]
fn forged_middle_chunk_fails_after_releasing_exactly_the_chunks_before_it() {
    let ctx = doc_ctx(DOC_SEED);
    let mut f = Framer::new(Some(&ctx));
    f.chunk(&[1; 100]);
    let forged = [2u8; 100];
    let genuine_sig = f.sign_chunk(&[3; 100]);
    f.chunk_with_signature(&forged, &genuine_sig);
    f.chunk(&[4; 100]).final_chunk().end();
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 300,
    };
    let (out, r) = decode_whole(&mode, Some(&ctx), &f.bytes());
    assert_eq!(r, Err(ChunkedError::ChunkSignature));
    assert_eq!(out, vec![1; 100]);
    assert_eq!(
        ChunkedError::ChunkSignature.s3_error().code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn reordered_chunks_break_the_chain() {
    let ctx = doc_ctx(DOC_SEED);
    let mut a = Framer::new(Some(&ctx));
    a.chunk(&[1; 10]);
    let first = a.bytes();
    a.chunk(&[2; 10]);
    let second = a.bytes()[first.len()..].to_vec();
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 20,
    };
    let (out, r) = run(&mut decoder(&mode, Some(&ctx)), &[&second, &first]);
    assert_eq!((out, r), (vec![], Err(ChunkedError::ChunkSignature)));
}

#[test]
fn bad_trailer_checksum_fails_for_each_algorithm_and_holds_the_last_byte() {
    let data = b"the quick brown fox".to_vec();
    for a in ALL {
        for ctx in [None, Some(doc_ctx(DOC_SEED))] {
            let mut f = Framer::new(ctx.as_ref());
            f.chunk(&data).final_chunk();
            f.trailer(a.header_name(), &checksum_b64(a, b"something else"))
                .end();
            let mode = PayloadMode::Streaming {
                signed: ctx.is_some(),
                trailer: Some(a),
                decoded_length: data.len() as u64,
            };
            let (out, r) = decode_whole(&mode, ctx.as_ref(), &f.bytes());
            assert_eq!(r, Err(ChunkedError::ChecksumMismatch(a)));
            assert_eq!(out, data[..data.len() - 1], "last byte held back");
            let e = ChunkedError::ChecksumMismatch(a).s3_error();
            assert_eq!(e.code(), "BadDigest");
            assert!(e.message().contains(checksum::algorithm_name(a)));
        }
    }
}

fn trailer_case(lines: &[(&str, &str)], signed: bool) -> Result<(), ChunkedError> {
    let ctx = doc_ctx(DOC_SEED);
    let ctx = signed.then_some(&ctx);
    let mut f = Framer::new(ctx);
    f.chunk(b"abc").final_chunk();
    for (name, value) in lines {
        f.raw(format!("{name}:{value}\r\n").as_bytes());
    }
    f.end();
    let mode = PayloadMode::Streaming {
        signed,
        trailer: Some(ChecksumAlgorithm::Crc32),
        decoded_length: 3,
    };
    decode_whole(&mode, ctx, &f.bytes()).1
}

#[test]
fn trailer_must_be_the_declared_algorithm_once_and_well_formed() {
    let good = checksum_b64(ChecksumAlgorithm::Crc32, b"abc");
    let crc32c = checksum_b64(ChecksumAlgorithm::Crc32c, b"abc");
    assert_eq!(
        trailer_case(&[("x-amz-checksum-crc32", &good)], false),
        Ok(())
    );
    assert_eq!(
        trailer_case(&[("X-Amz-Checksum-CRC32", &good)], false),
        Ok(())
    );
    assert_eq!(
        trailer_case(&[("x-amz-checksum-crc32c", &crc32c)], false),
        Err(ChunkedError::TrailerAlgorithmMismatch)
    );
    assert_eq!(
        trailer_case(&[], false),
        Err(ChunkedError::MissingChecksumTrailer(
            ChecksumAlgorithm::Crc32
        ))
    );
    assert_eq!(
        trailer_case(&[("x-amz-checksum-crc32", "AAAA")], false),
        Err(ChunkedError::ChecksumMalformed(ChecksumAlgorithm::Crc32))
    );
    assert_eq!(
        trailer_case(
            &[
                ("x-amz-checksum-crc32", &good),
                ("x-amz-checksum-crc32", &good)
            ],
            false
        ),
        Err(ChunkedError::Malformed("duplicate trailer line"))
    );
    assert_eq!(
        trailer_case(&[("x-amz-meta-x", "1")], false),
        Err(ChunkedError::UnexpectedTrailer)
    );
    assert_eq!(
        trailer_case(&[("x-amz-trailer-signature", &"0".repeat(64))], false),
        Err(ChunkedError::UnexpectedTrailer)
    );
}

#[test]
fn trailer_signature_is_required_and_verified_in_signed_trailer_mode() {
    let good = checksum_b64(ChecksumAlgorithm::Crc32, b"abc");
    let forged = "0".repeat(64);
    assert_eq!(
        trailer_case(&[("x-amz-checksum-crc32", &good)], true),
        Err(ChunkedError::MissingTrailerSignature)
    );
    let r = trailer_case(
        &[
            ("x-amz-checksum-crc32", &good),
            ("x-amz-trailer-signature", &forged),
        ],
        true,
    );
    assert_eq!(r, Err(ChunkedError::TrailerSignature));
    assert_eq!(
        ChunkedError::TrailerSignature.s3_error().code(),
        "SignatureDoesNotMatch"
    );
    // A valid signature over a different checksum value does not cover this one.
    let ctx = doc_ctx(DOC_SEED);
    let mut f = Framer::new(Some(&ctx));
    f.chunk(b"abc").final_chunk();
    let mut signed_other = Framer::new(Some(&ctx));
    signed_other.chunk(b"abc").final_chunk();
    let before = signed_other.bytes().len();
    signed_other.trailer("x-amz-checksum-crc32", "AAAAAA==");
    let sig_line = String::from_utf8(signed_other.bytes()[before..].to_vec()).unwrap();
    let sig_line = sig_line.lines().nth(1).unwrap().to_owned();
    f.raw(format!("x-amz-checksum-crc32:{good}\r\n{sig_line}\r\n\r\n").as_bytes());
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: Some(ChecksumAlgorithm::Crc32),
        decoded_length: 3,
    };
    assert_eq!(
        decode_whole(&mode, Some(&ctx), &f.bytes()).1,
        Err(ChunkedError::TrailerSignature)
    );
}
