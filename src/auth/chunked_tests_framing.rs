//! Decoder tests for lengths, bounds and malformed framing: every way a body can
//! overrun, underrun, stop early or try to make the proxy buffer.

use bytes::Bytes;

use super::testutil::{DOC_SEED, decode_whole, decoder, doc_ctx, encode, run};
use super::*;
use crate::auth::ChecksumAlgorithm;

#[test]
fn decoded_length_overrun_fails_at_the_chunk_header_and_underrun_at_the_end() {
    let data = [9u8; 64];
    let (body, _) = encode(&data, 32, None, None);
    let over = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 40,
    };
    let (out, r) = decode_whole(&over, None, &body);
    assert_eq!(r, Err(ChunkedError::TooLong));
    assert_eq!(out.len(), 32, "only the first chunk, which fit");
    let under = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 65,
    };
    let (out, r) = decode_whole(&under, None, &body);
    assert_eq!(r, Err(ChunkedError::TooShort));
    assert_eq!(out.len(), 64);
    assert_eq!(ChunkedError::TooShort.s3_error().code(), "IncompleteBody");
    // A size that overflows u64 when added is an overrun, not a panic.
    let huge = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: u64::MAX,
    };
    let (_, r) = run(
        &mut decoder(&huge, None),
        &[b"1\r\nx\r\nffffffffffffffff\r\n"],
    );
    assert_eq!(r, Err(ChunkedError::TooLong));
}

#[test]
fn oversized_signed_chunk_is_rejected_at_its_header_without_buffering() {
    let ctx = doc_ctx(DOC_SEED);
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: u64::MAX,
    };
    let mut d = decoder(&mode, Some(&ctx));
    let header = format!("1000001;chunk-signature={}\r\n", "a".repeat(64));
    let mut out = Vec::new();
    assert_eq!(
        d.push(Bytes::from(header), &mut out),
        Err(ChunkedError::ChunkTooLarge)
    );
    // A chunk at the cap is accepted, and nothing is reserved before data arrives.
    let mut d = decoder(&mode, Some(&ctx));
    let header = format!("1000000;chunk-signature={}\r\n", "a".repeat(64));
    assert_eq!(d.push(Bytes::from(header), &mut out), Ok(()));
    assert!(matches!(&d.state, State::SignedData(c) if c.buf.capacity() == 0));
    // Unsigned chunks are not capped: a huge one streams through as it arrives.
    let mode = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: u64::MAX,
    };
    let mut d = decoder(&mode, None);
    assert_eq!(
        d.push(Bytes::from_static(b"100000000\r\nabc"), &mut out),
        Ok(())
    );
    assert_eq!(out, vec![Bytes::from_static(b"abc")]);
}

#[test]
fn malformed_size_lines_are_rejected() {
    let mode = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 100,
    };
    for line in [
        "\r\n",
        "g\r\n",
        "+1\r\n",
        " 1\r\n",
        "1 \r\n",
        "11111111111111111\r\n",
        "1\n",
        "1;ext=1\r\n",
        "-1\r\n",
    ] {
        let (_, r) = run(&mut decoder(&mode, None), &[line.as_bytes()]);
        assert!(
            matches!(r, Err(ChunkedError::Malformed(_))),
            "{line:?} gave {r:?}"
        );
    }
    let signed = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 100,
    };
    let ctx = doc_ctx(DOC_SEED);
    for line in [
        "1\r\n".to_owned(),
        format!("1;chunk-signature={}\r\n", "a".repeat(63)),
        format!("1;chunk-signature={}z\r\n", "a".repeat(63)),
        format!("1;chunk-sig={}\r\n", "a".repeat(64)),
    ] {
        let (_, r) = run(&mut decoder(&signed, Some(&ctx)), &[line.as_bytes()]);
        assert!(
            matches!(r, Err(ChunkedError::Malformed(_))),
            "{line:?} gave {r:?}"
        );
    }
}

#[test]
fn header_lines_and_trailer_sections_are_bounded() {
    let mode = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 100,
    };
    let mut d = decoder(&mode, None);
    let mut out = Vec::new();
    assert_eq!(d.push(Bytes::from(vec![b'0'; 4095]), &mut out), Ok(()));
    assert_eq!(
        d.push(Bytes::from_static(b"0"), &mut out),
        Err(ChunkedError::LineTooLong)
    );
    let trailer = PayloadMode::Streaming {
        signed: false,
        trailer: Some(ChecksumAlgorithm::Crc32),
        decoded_length: 0,
    };
    let mut d = decoder(&trailer, None);
    assert_eq!(
        d.push(Bytes::from_static(b"0\r\nx-amz-checksum-crc32:"), &mut out),
        Ok(())
    );
    let filler = Bytes::from(vec![b'A'; 1000]);
    let r = (0..20).try_for_each(|_| d.push(filler.clone(), &mut out));
    assert_eq!(r, Err(ChunkedError::TrailerTooLarge));
}

#[test]
fn framing_errors_after_data_and_after_the_end_are_rejected() {
    let mode = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 3,
    };
    let (_, r) = decode_whole(&mode, None, b"3\r\nabcX\r\n0\r\n\r\n");
    assert!(matches!(r, Err(ChunkedError::Malformed(_))));
    let (out, r) = decode_whole(&mode, None, b"3\r\nabc\r\n0\r\n\r\nextra");
    assert_eq!((out, r), (b"ab".to_vec(), Err(ChunkedError::TrailingData)));
}

#[test]
fn no_prefix_of_a_valid_body_ever_releases_the_last_byte() {
    let data: Vec<u8> = (0..50u8).collect();
    let ctx = doc_ctx(DOC_SEED);
    for (ctx, trailer) in [
        (Some(&ctx), Some(ChecksumAlgorithm::Sha1)),
        (None, Some(ChecksumAlgorithm::Crc32)),
        (Some(&ctx), None),
    ] {
        let (body, mode) = encode(&data, 20, ctx, trailer);
        // Dropping only the closing CRLF is tolerated (all checks still ran).
        for cut in 0..body.len() - 2 {
            let (out, r) = run(&mut decoder(&mode, ctx), &[&body[..cut]]);
            assert!(r.is_err(), "prefix {cut} accepted");
            assert!(out.len() < data.len(), "prefix {cut} released everything");
        }
        let (out, r) = run(&mut decoder(&mode, ctx), &[&body[..body.len() - 2]]);
        assert_eq!((out, r), (data.clone(), Ok(())));
    }
}

#[test]
fn signed_mode_without_context_and_non_streaming_modes_are_internal_errors() {
    let mode = PayloadMode::Streaming {
        signed: true,
        trailer: None,
        decoded_length: 0,
    };
    let limits = BodyLimits::default();
    assert_eq!(
        ChunkedDecoder::new(&mode, None, &limits).err(),
        Some(ChunkedError::Internal)
    );
    assert_eq!(
        ChunkedDecoder::new(&PayloadMode::Unsigned, None, &limits).err(),
        Some(ChunkedError::Internal)
    );
    assert_eq!(ChunkedError::Internal.s3_error().code(), "InternalError");
}

#[test]
fn empty_body_decodes_in_every_mode() {
    let ctx = doc_ctx(DOC_SEED);
    for (ctx, trailer) in [
        (Some(&ctx), None),
        (Some(&ctx), Some(ChecksumAlgorithm::Crc32)),
        (None, Some(ChecksumAlgorithm::Sha256)),
    ] {
        let (body, mode) = encode(&[], 8, ctx, trailer);
        assert_eq!(decode_whole(&mode, ctx, &body), (vec![], Ok(())));
    }
}

#[test]
fn errors_repeat_once_the_decoder_failed() {
    let mode = PayloadMode::Streaming {
        signed: false,
        trailer: None,
        decoded_length: 3,
    };
    let mut d = decoder(&mode, None);
    let mut out = Vec::new();
    assert!(d.push(Bytes::from_static(b"zz\r\n"), &mut out).is_err());
    assert!(
        d.push(Bytes::from_static(b"3\r\nabc\r\n0\r\n\r\n"), &mut out)
            .is_err()
    );
    assert!(d.finish().is_err());
    assert!(out.is_empty());
}
