//! The response body as the client receives it, and the decision record that travels with it:
//! the record is written exactly once, when the body ends, fails, or is dropped.

use crate::audit::{Decision, LogSink};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type InnerBody = UnsyncBoxBody<Bytes, BoxError>;

/// Owns one request's decision record and writes it to the sink when dropped.
pub struct RecordGuard {
    pub decision: Decision,
    start: Instant,
    sink: Arc<LogSink>,
}

impl RecordGuard {
    pub fn new(decision: Decision, sink: Arc<LogSink>) -> RecordGuard {
        RecordGuard {
            decision,
            start: Instant::now(),
            sink,
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        let d = &mut self.decision;
        if d.status == 0 {
            // The handler was dropped before it produced a response: the client went away.
            d.status = 499;
            d.error.get_or_insert("client_disconnected");
        }
        d.duration_ms = (self.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        d.ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        self.sink.emit(d);
    }
}

/// A response body that writes its request's decision record when it ends.
pub struct LoggedBody {
    inner: InnerBody,
    guard: Option<RecordGuard>,
}

impl LoggedBody {
    pub fn new(inner: InnerBody, guard: RecordGuard) -> LoggedBody {
        LoggedBody {
            inner,
            guard: Some(guard),
        }
    }
}

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> InnerBody {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> InnerBody {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => drop(self.guard.take()),
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut g) = self.guard.take() {
                    g.decision.error = Some("body_error");
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(g) = self.guard.as_mut()
            && !self.inner.is_end_stream()
        {
            // Dropped before the end: the client went away mid-body.
            g.decision.error.get_or_insert("client_disconnected");
        }
    }
}
