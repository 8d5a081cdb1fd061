//! A body over shared bytes, sent in frames of at most `chunk` bytes with an exact
//! size hint (so hyper sends Content-Length). Cloning the source is a refcount bump.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub struct SliceBody {
    rest: Bytes,
    chunk: usize,
}

impl SliceBody {
    pub fn new(data: Bytes, chunk: usize) -> Self {
        Self {
            rest: data,
            chunk: chunk.max(1),
        }
    }

    pub fn empty() -> Self {
        Self::new(Bytes::new(), 1)
    }
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.chunk.min(self.rest.len());
        let frame = self.rest.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}
