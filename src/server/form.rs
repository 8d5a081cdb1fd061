//! Streaming `multipart/form-data` for browser uploads: [`read_head`] reads the fields
//! up to the `file` part (bounded in bytes, parts and field size), and [`FileBody`]
//! releases the file to the upstream as it arrives, holding its last byte back until
//! the closing delimiter has been seen. The file's length is known before a byte is
//! sent: the request's Content-Length minus the head and the closing delimiter, so the
//! upstream gets an exact Content-Length and a malformed end commits nothing.
//!
//! The file must be the last part (S3 requires it), followed by exactly
//! `\r\n--BOUNDARY--\r\n`, as browsers, curl and the SDKs' form helpers send it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

use crate::auth::body::BodyHandle;
use crate::auth::post_policy::{FormFields, is_token};
use crate::error::S3Error;

/// Form heads read at once, before their policy is verified; more get `SlowDown`.
pub const MAX_CONCURRENT_HEADS: usize = 256;

/// Bounds on a form's head (everything before the file's bytes).
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    /// The whole head: every field, every part header.
    pub max_head_bytes: usize,
    pub max_parts: usize,
    pub max_field_bytes: usize,
    pub max_part_header_bytes: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        Self {
            // S3 allows about 20 KB of fields; a policy is the largest of them.
            max_head_bytes: 256 * 1024,
            max_parts: 64,
            max_field_bytes: 64 * 1024,
            max_part_header_bytes: 8 * 1024,
        }
    }
}

/// The form up to the file's first byte.
#[derive(Debug)]
pub struct FormHead {
    pub fields: FormFields,
    /// The `filename` of the file part, for `${filename}`.
    pub filename: String,
    /// Body bytes up to the file's first byte.
    pub consumed: u64,
    /// Bytes already read that belong to the file (or its closing delimiter).
    pub leftover: Bytes,
}

fn malformed(msg: &'static str) -> S3Error {
    S3Error::MalformedPostRequest(std::borrow::Cow::Borrowed(msg))
}

/// The boundary of a `multipart/form-data` Content-Type.
///
/// # Errors
/// Another type, or a missing or over-long boundary.
pub fn boundary(content_type: &str) -> Result<String, S3Error> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(malformed("The body must be multipart/form-data."));
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| (1..=70).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| malformed("The multipart boundary is missing or invalid."))
}

/// The closing delimiter that must follow the file's bytes.
#[must_use]
pub fn closing(boundary: &str) -> Vec<u8> {
    format!("\r\n--{boundary}--\r\n").into_bytes()
}

/// Read fields until the `file` part's headers.
///
/// # Errors
/// Malformed framing, a limit exceeded, no file part, a body error.
pub async fn read_head<B>(
    body: &mut B,
    boundary: &str,
    limits: &FormLimits,
) -> Result<FormHead, S3Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let first = format!("--{boundary}\r\n");
    let delim = format!("\r\n--{boundary}");
    fill(body, &mut buf, first.len(), limits).await?;
    if !buf.starts_with(first.as_bytes()) {
        return Err(malformed(
            "The body does not start with the multipart boundary.",
        ));
    }
    let mut pos = first.len();
    let mut fields = FormFields::default();
    for _ in 0..limits.max_parts {
        let headers_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n\r\n") {
                break pos + i;
            }
            if buf.len() - pos > limits.max_part_header_bytes {
                return Err(malformed("A part's headers are too large."));
            }
            more(body, &mut buf, limits).await?;
        };
        let (name, filename) = disposition(&buf[pos..headers_end])?;
        let value_start = headers_end + 4;
        if name == "file" {
            return Ok(FormHead {
                fields,
                filename: filename.unwrap_or_default(),
                consumed: value_start as u64,
                leftover: buf.split_off(value_start).freeze(),
            });
        }
        let value_end = loop {
            if let Some(i) = find(&buf[value_start..], delim.as_bytes()) {
                break value_start + i;
            }
            if buf.len() - value_start > limits.max_field_bytes + delim.len() {
                return Err(malformed("A form field is too large."));
            }
            more(body, &mut buf, limits).await?;
        };
        if value_end - value_start > limits.max_field_bytes {
            return Err(malformed("A form field is too large."));
        }
        let value = std::str::from_utf8(&buf[value_start..value_end])
            .map_err(|_| malformed("A form field is not UTF-8 text."))?
            .to_owned();
        fields
            .push(&name, value)
            .map_err(|_| malformed("A form field appears more than once."))?;
        let after = value_end + delim.len();
        fill(body, &mut buf, after + 2, limits).await?;
        match &buf[after..after + 2] {
            b"\r\n" => pos = after + 2,
            b"--" => return Err(malformed("The form has no file field.")),
            _ => return Err(malformed("The multipart framing is broken.")),
        }
    }
    Err(malformed("The form has too many parts."))
}

/// `name` (a lower-cased token) and `filename` from a part's headers.
fn disposition(head: &[u8]) -> Result<(String, Option<String>), S3Error> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("A part header is not text."))?;
    let value = text
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, v)| v.trim())
        .ok_or_else(|| malformed("A part has no Content-Disposition."))?;
    let mut params = value.split(';').map(str::trim);
    if !params
        .next()
        .is_some_and(|k| k.eq_ignore_ascii_case("form-data"))
    {
        return Err(malformed("A part is not form-data."));
    }
    let (mut name, mut filename) = (None, None);
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(v.to_ascii_lowercase()),
            "filename" => filename = Some(v),
            _ => {}
        }
    }
    let name = name
        .filter(|n| is_token(n))
        .ok_or_else(|| malformed("A form field name is missing or invalid."))?;
    Ok((name, filename))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Read until `buf` holds at least `n` bytes.
async fn fill<B>(body: &mut B, buf: &mut BytesMut, n: usize, l: &FormLimits) -> Result<(), S3Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    while buf.len() < n {
        more(body, buf, l).await?;
    }
    Ok(())
}

/// Read one more data frame into `buf`, within the head bound.
async fn more<B>(body: &mut B, buf: &mut BytesMut, l: &FormLimits) -> Result<(), S3Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > l.max_head_bytes + data.len().min(64 * 1024) {
                        return Err(malformed("The form's fields are too large."));
                    }
                    buf.extend_from_slice(&data);
                    return Ok(());
                }
            }
            Some(Err(_)) => return Err(S3Error::IncompleteBody),
            None => return Err(malformed("The form ended before its file field.")),
        }
    }
}

/// The file's bytes: exactly `len` of them, the last one released only once the
/// closing delimiter is verified and nothing follows it.
pub struct FileBody<B> {
    leftover: Option<Bytes>,
    inner: B,
    /// File bytes that may still be released before the held-back last one.
    free: u64,
    /// Everything after the free bytes: the last file byte plus the delimiter.
    tail: BytesMut,
    expected_tail: Vec<u8>,
    /// `\r\n--BOUNDARY`: it may not occur inside the file (RFC 2046), or a field
    /// smuggled after the file would be stored as part of it.
    delimiter: memchr::memmem::Finder<'static>,
    /// The last released bytes, so a delimiter split across frames is still seen.
    carry: Vec<u8>,
    len: u64,
    handle: BodyHandle,
    done: bool,
}

impl<B> FileBody<B> {
    /// `len` > 0; `closing` is [`closing`] of the form's boundary.
    pub fn new(leftover: Bytes, inner: B, len: u64, closing: Vec<u8>) -> Self {
        Self {
            leftover: Some(leftover),
            inner,
            free: len.saturating_sub(1),
            tail: BytesMut::new(),
            delimiter: memchr::memmem::Finder::new(&closing[..closing.len() - 4]).into_owned(),
            expected_tail: closing,
            carry: Vec::new(),
            len,
            handle: BodyHandle::default(),
            done: false,
        }
    }

    #[must_use]
    pub fn handle(&self) -> BodyHandle {
        self.handle.clone()
    }

    /// Split `data` into what may be released now and what goes to the tail.
    fn take(&mut self, mut data: Bytes) -> Result<Option<Bytes>, S3Error> {
        let n = usize::try_from(self.free)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let out = data.split_to(n);
        self.free -= n as u64;
        if self.tail.len() + data.len() > self.expected_tail.len() + 1 {
            return Err(malformed(
                "The file must be the last form field, followed only by the closing boundary.",
            ));
        }
        self.tail.extend_from_slice(&data);
        self.scan(&out)?;
        Ok((!out.is_empty()).then_some(out))
    }

    /// Refuse file content that contains the delimiter, across frame boundaries too.
    fn scan(&mut self, released: &[u8]) -> Result<(), S3Error> {
        let keep = self.delimiter.needle().len() - 1;
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(&released[..released.len().min(keep)]);
        if self.delimiter.find(&window).is_some() || self.delimiter.find(released).is_some() {
            return Err(malformed(
                "The file must be the last form field, followed only by the closing boundary.",
            ));
        }
        // The last `keep` bytes of everything released so far.
        self.carry = if released.len() >= keep {
            released[released.len() - keep..].to_vec()
        } else {
            window[window.len().saturating_sub(keep)..].to_vec()
        };
        Ok(())
    }

    fn finish(&mut self) -> Result<Bytes, S3Error> {
        let want_len = self.expected_tail.len() + usize::from(self.len > 0);
        if self.tail.len() != want_len || !self.tail.ends_with(&self.expected_tail) {
            return Err(malformed(
                "The file must be the last form field, followed only by the closing boundary.",
            ));
        }
        let last = self
            .tail
            .split_to(want_len - self.expected_tail.len())
            .freeze();
        self.scan(&last)?;
        Ok(last)
    }

    fn fail(&mut self, e: S3Error) -> Poll<Option<Result<Frame<Bytes>, S3Error>>> {
        self.done = true;
        self.handle.record_failure(e.clone(), "form");
        Poll::Ready(Some(Err(e)))
    }

    fn release(&self, b: Bytes) -> Poll<Option<Result<Frame<Bytes>, S3Error>>> {
        self.handle.record_released(b.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(b))))
    }
}

impl<B> Body for FileBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = S3Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, S3Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let data = match this.leftover.take() {
                Some(b) => b,
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(f))) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    Poll::Ready(Some(Err(_))) => return this.fail(S3Error::IncompleteBody),
                    Poll::Ready(None) => {
                        this.done = true;
                        return match this.finish() {
                            Ok(last) if last.is_empty() => Poll::Ready(None),
                            Ok(last) => this.release(last),
                            Err(e) => this.fail(e),
                        };
                    }
                },
            };
            match this.take(data) {
                Ok(Some(out)) => return this.release(out),
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
#[path = "form_tests.rs"]
mod tests;
