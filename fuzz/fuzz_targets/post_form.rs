//! Browser form uploads: the `multipart/form-data` head reader, the streaming file
//! body, and the POST policy decoder and checker, on arbitrary input.
//!
//! Input: `P` + `<file length>\n<policy JSON>\n\n<name>=<value>` lines drives the
//! policy alone (the harness base64-encodes the JSON); anything else is
//! `<Content-Type>\n<body>`, with the body split into frames at arbitrary points.
//! Invariants:
//! - the head reader never waits on a body that is always ready, and accepted field
//!   names are unique lower-case tokens;
//! - the file body releases at most the file's length, exactly the bytes between the
//!   head and the closing delimiter when it succeeds, and never its last byte when it
//!   fails (so the upstream never commits a broken upload);
//! - a policy check that passes means: not expired, every length range holds, and
//!   every non-exempt field is named by a condition.

#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use stowage::auth::post_policy::{Condition, FormFields, Policy, is_token};
use stowage::server::form::{FileBody, FormLimits, boundary, closing, read_head};
use time::OffsetDateTime;

/// A body whose frames are all ready.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn split(body: &[u8], seed: &[u8]) -> Frames {
    let mut cuts: Vec<usize> = seed
        .chunks(2)
        .map(|c| usize::from(c[0]) << 8 | usize::from(*c.get(1).unwrap_or(&0)))
        .map(|c| c % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut frames = VecDeque::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        frames.push_back(Bytes::copy_from_slice(&body[at..c]));
        at = c;
    }
    Frames(frames)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("a valid time")
}

fn check_policy(policy: &Policy, fields: &FormFields, file_len: u64) {
    assert!(policy.conditions.len() <= stowage::auth::post_policy::MAX_CONDITIONS);
    if policy.check(fields, "photos", file_len, now()).is_err() {
        return;
    }
    assert!(now() < policy.expiration);
    for c in &policy.conditions {
        match c {
            Condition::LengthRange { min, max } => assert!(*min <= file_len && file_len <= *max),
            Condition::Eq { field, value } if field != "bucket" => {
                assert_eq!(fields.get(field).unwrap_or(""), value);
            }
            Condition::Eq { .. } => {}
            // A Content-Type list passes only when every member does.
            Condition::StartsWith { field, prefix } if field == "content-type" => {
                let value = fields.get(field).unwrap_or("");
                assert!(
                    value
                        .split(',')
                        .all(|t| t.trim().starts_with(prefix.as_str()))
                );
            }
            Condition::StartsWith { field, prefix } if field != "bucket" => {
                assert!(fields.get(field).unwrap_or("").starts_with(prefix.as_str()));
            }
            Condition::StartsWith { .. } => {}
        }
    }
    for (name, _) in fields.iter() {
        let exempt =
            matches!(name, "x-amz-signature" | "policy" | "file") || name.starts_with("x-ignore-");
        let covered = policy.conditions.iter().any(|c| match c {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
            Condition::LengthRange { .. } => false,
        });
        assert!(exempt || covered, "field {name} passed uncovered");
    }
    if let Some(b) = fields.get("bucket") {
        assert_eq!(b, "photos");
    }
}

fn policy_only(text: &str) {
    let (len, rest) = text.split_once('\n').unwrap_or((text, ""));
    let file_len = len.trim().parse::<u64>().unwrap_or(0);
    let (json, lines) = rest.split_once("\n\n").unwrap_or((rest, ""));
    let mut fields = FormFields::default();
    for line in lines.lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let _ = fields.push(name, value.to_owned());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    if let Ok(policy) = Policy::decode(&b64) {
        check_policy(&policy, &fields, file_len);
    }
    let _ = Policy::decode(json);
}

fn form(data: &[u8]) {
    let (head_line, rest) = match memchr_split(data) {
        Some(x) => x,
        None => (data, &[][..]),
    };
    let (seed, body) = rest.split_at(rest.len().min(8));
    let Ok(b) = boundary(&String::from_utf8_lossy(head_line)) else {
        return;
    };
    assert!((1..=70).contains(&b.len()));
    let total = body.len() as u64;
    let mut frames = split(body, seed);
    let limits = FormLimits {
        max_head_bytes: 4096,
        max_parts: 16,
        max_field_bytes: 1024,
        max_part_header_bytes: 512,
    };
    let head = read_head(&mut frames, &b, &limits)
        .now_or_never()
        .expect("read_head waited on a body that is always ready");
    let Ok(head) = head else {
        return;
    };
    assert!(head.consumed <= total);
    for (name, value) in head.fields.iter() {
        assert!(
            is_token(name) && name == name.to_ascii_lowercase(),
            "{name}"
        );
        assert!(value.len() <= limits.max_field_bytes);
    }
    let close = closing(&b);
    let Some(file_len) = total.checked_sub(head.consumed + close.len() as u64) else {
        return;
    };
    if let Some(p) = head.fields.get("policy")
        && let Ok(policy) = Policy::decode(p)
    {
        check_policy(&policy, &head.fields, file_len);
    }
    let mut file = FileBody::new(head.leftover, frames, file_len, close.clone());
    let handle = file.handle();
    let mut released = Vec::new();
    let mut failed = false;
    loop {
        let next = file
            .frame()
            .now_or_never()
            .expect("the file body waited on a body that is always ready");
        match next {
            Some(Ok(frame)) => {
                if let Ok(d) = frame.into_data() {
                    released.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => {
                assert!(e.status().is_client_error(), "{}", e.code());
                failed = true;
                break;
            }
            None => break,
        }
    }
    assert!(released.len() as u64 <= file_len);
    assert_eq!(handle.bytes_released(), released.len() as u64);
    if failed {
        assert!(handle.failure().is_some());
        if file_len > 0 {
            assert!(
                (released.len() as u64) < file_len,
                "a failed upload released its last byte"
            );
        }
    } else {
        assert_eq!(released.len() as u64, file_len);
        let start = usize::try_from(head.consumed).expect("small");
        assert_eq!(&released[..], &body[start..start + released.len()]);
        let delimiter = &close[..close.len() - 4];
        assert!(
            memchr::memmem::find(&released, delimiter).is_none(),
            "the file carried the delimiter"
        );
        assert!(body.ends_with(&close));
    }
}

fn memchr_split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b'\n', data)?;
    Some((&data[..i], &data[i + 1..]))
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'P', rest)) => policy_only(&String::from_utf8_lossy(rest)),
        _ => form(data),
    }
});
