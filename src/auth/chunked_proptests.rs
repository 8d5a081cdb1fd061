//! Property tests: the decoder never panics on arbitrary bytes split anywhere, and
//! every valid body round-trips under any split.

use proptest::prelude::*;

use super::testutil::{ALL, DOC_SEED, decoder, doc_ctx, encode, run};
use crate::auth::{ChecksumAlgorithm, PayloadMode};

fn split(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        pieces.push(body[at..c].to_vec());
        at = c;
    }
    pieces
}

proptest! {
    #[test]
    fn decoder_never_panics_on_arbitrary_input(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        mode_pick in 0..4u8,
        decoded_length in 0u64..700,
    ) {
        let ctx = doc_ctx(DOC_SEED);
        let (signed, trailer) = match mode_pick {
            0 => (true, None),
            1 => (true, Some(ChecksumAlgorithm::Crc32)),
            2 => (false, Some(ChecksumAlgorithm::Sha256)),
            _ => (false, None),
        };
        let mode = PayloadMode::Streaming { signed, trailer, decoded_length };
        let pieces = split(&body, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (out, r) = run(&mut decoder(&mode, Some(&ctx)), &refs);
        prop_assert!(out.len() as u64 <= decoded_length);
        if r.is_ok() {
            prop_assert_eq!(out.len() as u64, decoded_length);
        }
    }

    #[test]
    fn valid_bodies_round_trip_under_any_split(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        chunk in 1usize..100,
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        mode_pick in 0..4u8,
        algo in 0..5usize,
    ) {
        let ctx = doc_ctx(DOC_SEED);
        let (ctx, trailer) = match mode_pick {
            0 => (Some(&ctx), None),
            1 => (Some(&ctx), Some(ALL[algo])),
            2 => (None, Some(ALL[algo])),
            _ => (None, None),
        };
        let (body, mode) = encode(&data, chunk, ctx, trailer);
        let pieces = split(&body, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (out, r) = run(&mut decoder(&mode, ctx), &refs);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(out, data);
    }
}
