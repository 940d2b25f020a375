//! The response body as the client receives it, and the decision record that travels with it:
//! the record is written exactly once, when the body ends, fails, or is dropped.

use crate::audit::{Decision, LogSink};
use crate::filter::html::TagReportHandle;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type InnerBody = UnsyncBoxBody<Bytes, BoxError>;

/// Owns one request's decision record and writes it to the sink when dropped.
pub struct RecordGuard {
    pub decision: Decision,
    /// The HTML rewriter's report, read when the record is written.
    pub tags: Option<TagReportHandle>,
    start: Instant,
    sink: Arc<LogSink>,
    metrics: Arc<super::metrics::Metrics>,
}

impl RecordGuard {
    /// Counts the request as in flight until the record is written.
    pub fn new(
        decision: Decision,
        sink: Arc<LogSink>,
        metrics: Arc<super::metrics::Metrics>,
    ) -> RecordGuard {
        metrics.request_started();
        RecordGuard {
            decision,
            tags: None,
            start: Instant::now(),
            sink,
            metrics,
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        let d = &mut self.decision;
        if let Some(tags) = &self.tags {
            let report = tags.report();
            d.tags_neutralized = report.neutralized;
            d.tag_vendors = report.vendors;
        }
        if d.status == 0 {
            // The handler was dropped before it produced a response: the client went away.
            d.status = 499;
            d.error.get_or_insert("client_disconnected");
        }
        d.duration_ms = (self.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        d.ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        self.metrics.record(d);
        self.metrics.request_ended();
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

/// An upstream body that fails when the upstream sends nothing for `idle` while the client is
/// waiting for more, so that a stalled upstream cannot hold a request open forever. Time the
/// client spends not reading does not count.
pub struct IdleTimeout {
    inner: InnerBody,
    idle: std::time::Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
}

impl IdleTimeout {
    pub fn new(inner: InnerBody, idle: std::time::Duration) -> IdleTimeout {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "the upstream sent nothing for {:?} in the middle of a body",
                        this.idle
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The output side of an HTML rewriter: what it wrote since the last frame.
type Output = Arc<std::sync::Mutex<Vec<u8>>>;
/// Where the rewriter writes.
type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// An HTML body passed through the tag rewriter chunk by chunk. If the rewriter fails (its
/// memory limit, or content it cannot parse) the body ends in an error at that point: the client
/// gets a truncated document, never the unrewritten rest.
pub struct RewriteBody {
    inner: InnerBody,
    /// In report-only mode the rewriter only counts: the client gets the original bytes.
    enforce: bool,
    rewriter: Option<lol_html::send::HtmlRewriter<'static, Sink>>,
    out: Output,
}

impl RewriteBody {
    pub fn new(
        inner: InnerBody,
        rules: Arc<crate::filter::html::TagRules>,
        granted: crate::category::CategorySet,
        enforce: bool,
        max_memory: usize,
        encoding: (lol_html::AsciiCompatibleEncoding, bool),
        head: Option<String>,
    ) -> (RewriteBody, TagReportHandle) {
        let out: Output = Arc::default();
        let sink = out.clone();
        let write: Sink = Box::new(move |c: &[u8]| {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(c)
        });
        let (rewriter, report) = crate::filter::html::rewriter(
            rules, granted, enforce, max_memory, encoding, head, write,
        );
        (
            RewriteBody {
                inner,
                enforce,
                rewriter: Some(rewriter),
                out,
            },
            report,
        )
    }

    fn take_output(&self) -> Option<Bytes> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        (!out.is_empty()).then(|| Bytes::from(std::mem::take(&mut *out)))
    }
}

impl Body for RewriteBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(bytes) = self.take_output() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if self.rewriter.is_none() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of an HTML body are dropped: they would follow rewritten data.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let written = match self.rewriter.as_mut() {
                        Some(rw) => rw.write(&data),
                        None => Ok(()),
                    };
                    if !self.enforce {
                        // Counting only: whatever happens to the rewriter, pass the original.
                        self.out.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        if written.is_err() {
                            self.rewriter = None;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if let Err(e) = written {
                        self.rewriter = None;
                        return Poll::Ready(Some(Err(
                            format!("HTML rewriting stopped: {e}").into()
                        )));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.rewriter = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let ended = self.rewriter.take().map(|rw| rw.end());
                    if !self.enforce {
                        self.out.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        return Poll::Ready(None);
                    }
                    if let Some(Err(e)) = ended {
                        return Poll::Ready(Some(Err(
                            format!("HTML rewriting stopped: {e}").into()
                        )));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rewriter.is_none() && self.out.lock().map(|o| o.is_empty()).unwrap_or(true)
    }
}
