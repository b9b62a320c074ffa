//! The proxy's response body: a member's body streamed through, or the proxy's own short answer.
//! Either way it ends its request on the client connection when it ends or is dropped.

use super::conn::Active;
use super::pool::Conn;
use super::worker::Worker;
use crate::balancer::OwnedPick;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub(super) struct ResponseBody {
    kind: Kind,
    /// The request on its client connection: it ends with this body.
    _active: Active,
}

enum Kind {
    Upstream(Upstream),
    Plain(Option<Bytes>),
}

/// A member's response body. It holds the pick until it ends, so that the member's in-flight
/// count covers the whole exchange, and then puts the upstream connection back in the pool.
pub(super) struct Upstream {
    pub(super) inner: Incoming,
    pub(super) pick: Option<OwnedPick>,
    pub(super) conn: Option<Conn>,
    pub(super) worker: Arc<Worker>,
}

impl ResponseBody {
    pub(super) fn upstream(body: Upstream, active: Active) -> ResponseBody {
        ResponseBody { kind: Kind::Upstream(body), _active: active }
    }

    pub(super) fn plain(text: Bytes, active: Active) -> ResponseBody {
        ResponseBody { kind: Kind::Plain(Some(text)), _active: active }
    }
}

impl Upstream {
    /// The exchange is over: the member's in-flight count ends; a connection whose response
    /// was read to its end goes back to the pool.
    fn end(&mut self, complete: bool) {
        if let Some(p) = self.pick.take() {
            self.worker.common.stats.attempt_ended(p.member().id());
        }
        if let Some(conn) = self.conn.take() {
            if complete {
                self.worker.pool.checkin(conn);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Plain(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
            Kind::Upstream(up) => {
                let polled = Pin::new(&mut up.inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => up.end(true),
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(p) = &up.pick {
                            up.worker.common.stats.body_reset(p.member().id());
                        }
                        up.end(false);
                    }
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Plain(text) => text.is_none(),
            Kind::Upstream(up) => up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Plain(text) => SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64)),
            Kind::Upstream(up) => up.inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Upstream(up) = &mut self.kind {
            // Ended before its last frame was read: complete only if there was nothing to read
            // (hyper skips polling an empty body); else the client went away mid-body.
            let complete = up.inner.is_end_stream();
            up.end(complete);
        }
    }
}
