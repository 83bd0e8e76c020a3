//! Request bodies counted against the memory budget while they are read
//! ([`ReservingBody`]): each frame grows the request's [`Reservation`]
//! before it is handed on, so bytes past the budget are refused as they
//! arrive rather than after the whole body is buffered.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tf_application::pipeline::Reservation;
use tf_application::ports::WriteError;

/// The error a [`ReservingBody`] ends with when the budget refuses more:
/// a `tonic::Status` (UNAVAILABLE, with RetryInfo), which tonic answers as
/// it is and the HTTP receiver turns into a 429.
pub fn over_budget(e: &WriteError) -> tonic::Status {
    let WriteError::Overloaded { retry_after, .. } = e else {
        return tonic::Status::unavailable(e.to_string());
    };
    let msg = e.to_string();
    let details = crate::status::RpcStatus::new(crate::status::code::UNAVAILABLE, msg.clone())
        .with_retry_after(*retry_after);
    tonic::Status::with_details(
        tonic::Code::Unavailable,
        msg,
        prost::Message::encode_to_vec(&details).into(),
    )
}

/// `inner`, with every data frame reserved before it is yielded.
pub struct ReservingBody<B> {
    inner: Pin<Box<B>>,
    reservation: Arc<Reservation>,
    /// Bytes yielded so far: the reservation covers at least them (a
    /// declared size reserved up front covers the first bytes).
    read: usize,
    refused: bool,
}

impl<B> ReservingBody<B> {
    pub fn new(inner: B, reservation: Arc<Reservation>) -> Self {
        Self {
            inner: Box::pin(inner),
            reservation,
            read: 0,
            refused: false,
        }
    }
}

impl<B> Body for ReservingBody<B>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.refused {
            return Poll::Ready(None);
        }
        let frame = match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            self.read += data.remaining();
        }
        if let Err(e) = self.reservation.grow_to(self.read) {
            self.refused = true;
            return Poll::Ready(Some(Err(Box::new(over_budget(&e)))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `tonic::Status` a body error carries, if it is a refusal of
/// [`ReservingBody`].
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a tonic::Status> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<tonic::Status>() {
            return Some(s);
        }
        cur = err.source();
    }
    None
}
