//! A deadline on receiving a request's body: a client that sends its headers and then
//! trickles (or never finishes) the body cannot hold its connection for ever.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

/// The error a body gives once its deadline has passed; the extractor that reads the
/// body finds it in the cause chain and answers 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the time allowed")]
pub struct BodyReadTimeout;

/// A request body that fails with [`BodyReadTimeout`] if it is not all received by its
/// deadline. The timer is made only when the body is first waited for: a body that
/// came with its headers (nearly all of them) costs no timer at all.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    /// `inner`, to be received in full by `deadline`.
    pub fn new(inner: Incoming, deadline: Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyReadTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `err`, or anything in its cause chain, is a [`BodyReadTimeout`].
pub fn is_read_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        cause = err.source();
    }
    false
}
