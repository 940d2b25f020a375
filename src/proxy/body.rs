//! The response body as the client receives it, and the decision record that travels with it:
//! the record is written exactly once, when the body ends, fails, or is dropped.

use crate::audit::{Decision, LogSink};
use crate::filter::html::{Kinds, Params, TagReportHandle};
use crate::filter::memo::{self, Memo};
use crate::proxy::admission::{Admission, ConnShare};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type InnerBody = UnsyncBoxBody<Bytes, BoxError>;

/// Owns one request's decision record and writes it to the sink when dropped.
pub struct RecordGuard {
    pub decision: Decision,
    /// The HTML rewriter's report, read when the record is written.
    pub tags: Option<TagReportHandle>,
    /// The request's places under the limits, given back with the record.
    pub admission: Option<Admission>,
    /// Its HTTP/2 connection's cancelled requests: counted if the client went away before the
    /// answer.
    pub resets: Option<Arc<ConnShare>>,
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
            admission: None,
            resets: None,
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
            // On HTTP/2, it cancelled a request whose answer the site was still working on
            // (a cancel in the middle of a body, as a video player does, costs the site
            // nothing more and is not counted).
            if let Some(share) = &self.resets {
                share.resets.count();
            }
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
    /// Bytes given to the client so far.
    sent: u64,
    /// The length the response declares (`Content-Length`): the client's HTTP/1.1 connection
    /// stops reading there, so a body dropped after exactly that many bytes was delivered.
    length: Option<u64>,
}

impl LoggedBody {
    pub fn new(inner: InnerBody, guard: RecordGuard) -> LoggedBody {
        LoggedBody {
            length: inner.size_hint().exact(),
            inner,
            guard: Some(guard),
            sent: 0,
        }
    }

    /// Declares the length the response's `Content-Length` header gives, when the body itself
    /// cannot tell (a body that is read but passed on unchanged).
    pub fn with_length(mut self, length: Option<u64>) -> LoggedBody {
        if length.is_some() {
            self.length = length;
        }
        self
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
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
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
            && self.length != Some(self.sent)
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

/// How long a document being gathered waits for the upstream's next bytes before it streams:
/// a page that arrives in pieces close together is still read whole. The first bytes of a page
/// whose upstream pauses longer (an early-flushed `<head>`) are held this long at most.
pub const GATHER_WAIT: Duration = Duration::from_millis(5);

/// The largest document read whole.
const MAX_GATHERED: usize = Memo::MAX_DOCUMENT;

/// What a rewriter is built from, when it is needed.
enum Phase {
    /// Collecting a document to read whole (only the kinds of tag it holds are parsed for) and,
    /// with a memo, to answer from it or remember: as long as the document stays small enough
    /// and the upstream sends its next bytes within [`GATHER_WAIT`]. Otherwise it streams.
    Gather {
        memo: Option<(Arc<Memo>, memo::Params)>,
        input: Vec<u8>,
        /// Set when the upstream first keeps the gathered bytes waiting.
        wait: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    Stream(Box<lol_html::send::HtmlRewriter<'static, Sink>>),
    Done,
}

/// An HTML body passed through the tag rewriter chunk by chunk. If the rewriter fails (its
/// memory limit, or content it cannot parse) the body ends in an error at that point: the client
/// gets a truncated document, never the unrewritten rest. A small document that arrives whole
/// may be answered from, or kept in, the memo.
pub struct RewriteBody {
    inner: InnerBody,
    /// In report-only mode the rewriter only counts: the client gets the original bytes.
    params: Params,
    phase: Phase,
    report: TagReportHandle,
    out: Output,
    /// An error to give once the output written before it has gone out.
    failed: Option<BoxError>,
    /// A document read whole, rewritten (or remembered), waiting to go out in one frame.
    ready: Option<Bytes>,
    /// The upstream's body failed while the document was being gathered.
    upstream_failed: bool,
    /// Output was given out since the body last returned `Pending`.
    sent_since_pause: bool,
    /// The document starts with a UTF-16 byte order mark: a browser reads it as UTF-16, which
    /// the rewriter cannot.
    uninspectable: bool,
    /// The encoding the document was read in, when the `Content-Type` named none.
    decided: Option<&'static encoding_rs::Encoding>,
}

/// Why a gathered page cannot be answered; nothing has been sent yet.
#[derive(Debug)]
pub enum Unanswerable {
    /// The upstream's body failed.
    Upstream(BoxError),
    /// The page is in UTF-16 by its byte order mark, or declares an encoding that is not
    /// ASCII-compatible.
    Uninspectable,
}

impl RewriteBody {
    pub fn new(
        inner: InnerBody,
        params: Params,
        memo: Option<Arc<Memo>>,
    ) -> (RewriteBody, TagReportHandle) {
        let mut body = RewriteBody {
            inner,
            phase: Phase::Done,
            report: TagReportHandle::default(),
            out: Output::default(),
            failed: None,
            ready: None,
            upstream_failed: false,
            uninspectable: false,
            sent_since_pause: false,
            decided: None,
            params,
        };
        let p = &body.params;
        body.phase = if p.enforce {
            Phase::Gather {
                memo: memo.map(|memo| {
                    let params = memo::Params {
                        granted: p.granted,
                        encoding: <&encoding_rs::Encoding>::from(p.encoding.0).name(),
                        adjustable: p.encoding.1,
                        head: p.consent_mode.as_deref().map(Arc::from),
                        body: p.body_start.clone(),
                    };
                    (memo, params)
                }),
                input: Vec::new(),
                wait: None,
            }
        } else {
            Phase::Stream(Box::new(body.build(Kinds::ALL)))
        };
        let report = body.report.clone();
        (body, report)
    }

    /// A rewriter that stops at the tags `kinds` lists: [`Kinds::ALL`] for a body read in
    /// pieces, those its bytes hold for a whole one.
    fn build(&self, kinds: Kinds) -> lol_html::send::HtmlRewriter<'static, Sink> {
        let sink = self.out.clone();
        let write: Sink = Box::new(move |c: &[u8]| {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(c)
        });
        let params = Params {
            kinds,
            ..self.params.clone()
        };
        crate::filter::html::rewriter_reporting_to(&self.report, params, write)
    }

    fn take_output(&self) -> Option<Bytes> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        (!out.is_empty()).then(|| Bytes::from(std::mem::take(&mut *out)))
    }

    fn fail(&mut self, e: lol_html::errors::RewritingError) {
        self.phase = Phase::Done;
        self.failed = Some(format!("HTML rewriting stopped: {e}").into());
    }

    /// Leaves gathering: what was collected goes through a rewriter, and the rest streams.
    fn stream(&mut self, input: &[u8]) {
        if !self.read_encoding(input) {
            return;
        }
        let mut rw = self.build(Kinds::ALL);
        match rw.write(input) {
            Ok(()) => self.phase = Phase::Stream(Box::new(rw)),
            Err(e) => self.fail(e),
        }
    }

    /// The encoding is decided once, from the first bytes, as a browser decides it: a byte order
    /// mark first (over the `Content-Type` charset and `<meta charset>`): UTF-8 for one, and a
    /// document in UTF-16 cannot be inspected (`false`: failed, closed); then the `Content-Type`
    /// charset; then a `<meta>` in the first 1024 bytes, as the HTML Standard's prescan finds it
    /// ([`crate::filter::html::prescan`]); else UTF-8. A `<meta>` further on changes nothing:
    /// the response names the encoding in its `Content-Type` ([`RewriteBody::decided`]), which
    /// a browser follows over any `<meta>`, so that it reads the output as the rewriter read
    /// the input, wherever the rewriting moved a `<meta>` (a removed tag brings a later one into
    /// the first 1024 bytes) and whether or not it kept it. A `<meta>` naming an encoding the
    /// rewriter cannot read (ISO-2022-JP, …) makes the page uninspectable.
    fn read_encoding(&mut self, input: &[u8]) -> bool {
        let uninspectable = |this: &mut Self, why: &str| {
            this.phase = Phase::Done;
            this.uninspectable = true;
            this.failed = Some(why.to_string().into());
            false
        };
        if input.starts_with(b"\xEF\xBB\xBF") {
            self.params.encoding = (lol_html::AsciiCompatibleEncoding::utf_8(), false);
        } else if input.starts_with(b"\xFE\xFF") || input.starts_with(b"\xFF\xFE") {
            return uninspectable(
                self,
                "the HTML is in UTF-16 (byte order mark): it cannot be inspected",
            );
        } else if self.params.encoding.1 {
            let declared = crate::filter::html::prescan(&input[..input.len().min(1024)]);
            let e = match declared.map(lol_html::AsciiCompatibleEncoding::new) {
                None => lol_html::AsciiCompatibleEncoding::utf_8(),
                Some(Some(e)) => e,
                Some(None) => {
                    return uninspectable(
                        self,
                        "the HTML declares an encoding that is not ASCII-compatible: it cannot be inspected",
                    );
                }
            };
            self.params.encoding = (e, false);
            self.decided = Some(e.into());
        }
        true
    }

    /// The encoding the document was read in, when the `Content-Type` did not name one: from
    /// a `<meta>` in its first bytes, else UTF-8. Known once [`RewriteBody::gathered`] is over.
    /// The response names it in its `Content-Type`.
    pub fn decided(&self) -> Option<&'static encoding_rs::Encoding> {
        self.decided
    }

    /// The whole document is in: answer it from the memo, or rewrite it (and remember it).
    fn complete(
        &mut self,
        memo: Option<(Arc<Memo>, memo::Params)>,
        input: Vec<u8>,
    ) -> Option<Bytes> {
        self.phase = Phase::Done;
        if !self.read_encoding(&input) {
            return None;
        }
        if let Some((memo, params)) = &memo
            && let Some(hit) = memo.get(params, &input)
        {
            self.report.set(hit.report.clone());
            return Some(hit.output.clone());
        }
        // The whole document is here: lol_html stops only at the kinds of tag it holds.
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(input.len() + input.len() / 8);
        let mut rw = self.build(Kinds::of(&input));
        if let Err(e) = rw.write(&input).and_then(|()| rw.end()) {
            self.fail(e);
            return self.take_output();
        }
        let output = self.take_output().unwrap_or_default();
        if let Some((memo, params)) = &memo {
            memo.insert(params, input.into(), output.clone(), self.report.report());
        }
        (!output.is_empty()).then_some(output)
    }

    /// Waits until the document has been read whole and rewritten (its output is then ready to
    /// go out in one frame, with its length known), or has begun to stream: so that the
    /// response's head and its first bytes leave together. An error if the upstream's body
    /// failed before then: nothing has been sent, and the client can be told so.
    pub async fn gathered(&mut self) -> Result<(), Unanswerable> {
        std::future::poll_fn(|cx| self.poll_gather(cx)).await;
        let nothing_out =
            self.ready.is_none() && self.out.lock().map(|o| o.is_empty()).unwrap_or(true);
        match self.failed.take() {
            Some(_) if self.uninspectable => Err(Unanswerable::Uninspectable),
            Some(e) if nothing_out && self.upstream_failed => Err(Unanswerable::Upstream(e)),
            failed => {
                self.failed = failed;
                Ok(())
            }
        }
    }

    /// Drives the gathering of a document; `Ready` once it is over: read whole and rewritten
    /// (the output in `ready`), streaming, or failed (the error in `failed`).
    fn poll_gather(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Phase::Gather { input, wait, memo } = &mut self.phase else {
                return Poll::Ready(());
            };
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending if input.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    let wait =
                        wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(GATHER_WAIT)));
                    if wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let input = std::mem::take(input);
                    self.stream(&input);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of an HTML body are dropped: they would follow rewritten data.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    input.extend_from_slice(&data);
                    if input.len() > MAX_GATHERED {
                        let input = std::mem::take(input);
                        self.stream(&input);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.phase = Phase::Done;
                    self.failed = Some(e);
                    self.upstream_failed = true;
                }
                Poll::Ready(None) => {
                    let (memo, input) = (memo.take(), std::mem::take(input));
                    self.ready = self.complete(memo, input);
                }
            }
        }
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
            if let Some(bytes) = self.ready.take().or_else(|| self.take_output()) {
                self.sent_since_pause = true;
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if self.failed.is_some() && self.sent_since_pause {
                // hyper drops what it has not yet written when a body fails: it writes the
                // output before the failure when the body pauses, so pause once.
                self.sent_since_pause = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(e) = self.failed.take() {
                return Poll::Ready(Some(Err(e)));
            }
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Gather { .. } => {
                    std::task::ready!(self.poll_gather(cx));
                    continue;
                }
                Phase::Stream(_) => {}
            }
            let this = &mut *self;
            // `None`: nothing yet; `Some(None)`: the end of the body.
            let next = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => None,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Some(Some(data)),
                    // Trailers of an HTML body are dropped: they would follow rewritten data.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => {
                    this.phase = Phase::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => Some(None),
            };
            match (&mut this.phase, next) {
                (Phase::Done | Phase::Gather { .. }, _) => return Poll::Ready(None),
                (Phase::Stream(_), None) => return Poll::Pending,
                (Phase::Stream(rw), Some(Some(data))) => {
                    let written = rw.write(&data);
                    if !this.params.enforce {
                        // Counting only: whatever happens to the rewriter, pass the original.
                        this.out.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        if written.is_err() {
                            this.phase = Phase::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if let Err(e) = written {
                        this.fail(e);
                    }
                }
                (Phase::Stream(_), Some(None)) => {
                    if let Phase::Stream(rw) = std::mem::replace(&mut this.phase, Phase::Done) {
                        let ended = rw.end();
                        if !this.params.enforce {
                            this.out.lock().unwrap_or_else(|e| e.into_inner()).clear();
                            return Poll::Ready(None);
                        }
                        if let Err(e) = ended {
                            this.fail(e);
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.phase, Phase::Done)
            && self.failed.is_none()
            && self.ready.is_none()
            && self.out.lock().map(|o| o.is_empty()).unwrap_or(true)
    }

    /// Exact once a document read whole has been rewritten: the response then carries its
    /// `Content-Length`.
    fn size_hint(&self) -> SizeHint {
        let pending = self.out.lock().map(|o| o.len()).unwrap_or(0);
        match (&self.phase, &self.ready, &self.failed) {
            (Phase::Done, ready, None) => {
                SizeHint::with_exact((ready.as_ref().map_or(0, Bytes::len) + pending) as u64)
            }
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategorySet;
    use crate::filter::html::Params;

    fn rewrite_body(page: &'static [u8]) -> RewriteBody {
        let rules = crate::policy::builtin().expect("the built-in policy").tags;
        let params = Params::new(rules, CategorySet::NECESSARY, 1 << 20);
        RewriteBody::new(full(page), params, None).0
    }

    async fn collect(body: RewriteBody) -> Vec<u8> {
        body.collect()
            .await
            .expect("a whole body")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn a_whole_page_goes_out_in_one_frame_of_known_length() {
        let mut body = rewrite_body(b"<p>a</p><script>fbq('init','1')</script>");
        body.gathered().await.unwrap();
        let len = body.size_hint().exact().expect("known length");
        let frame = body.frame().await.expect("a frame").expect("data");
        let out = frame.into_data().expect("data");
        assert_eq!(out.len() as u64, len);
        assert!(String::from_utf8_lossy(&out).contains("text/plain"));
        assert!(body.frame().await.is_none(), "more than one frame");
    }

    #[tokio::test]
    async fn a_byte_order_mark_decides_the_encoding() {
        // The BOM says UTF-8, over the <meta>: a browser reads `\x82` as a character of its own
        // and runs the Meta Pixel call after it; read as Shift_JIS, `\x82f` would hide the `f`.
        let mut body = rewrite_body(
            b"\xEF\xBB\xBF<meta charset=\"shift_jis\"><script>\x82fbq(\"init\",\"1\")</script>",
        );
        body.gathered().await.unwrap();
        let out = collect(body).await;
        assert!(
            out.windows(10).any(|w| w == b"text/plain"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        // UTF-16 cannot be read: nothing is sent.
        let mut body = rewrite_body(b"\xFF\xFE<\0s\0c\0r\0i\0p\0t\0>\0");
        assert!(matches!(
            body.gathered().await,
            Err(Unanswerable::Uninspectable)
        ));
    }

    #[tokio::test]
    async fn a_meta_in_the_first_bytes_decides_the_encoding_of_what_precedes_it() {
        // A browser's prescan finds the <meta> and reads the whole page in windows-1252, where
        // `\xA6` is `¦`: the host is an IDN under bing.com, Bing Ads. Read as UTF-8 up to the
        // <meta>, it was U+FFFD, an invalid host.
        // fuzz/artifacts-found/html_rewrite/crash-957f515d-minimized
        let mut body =
            rewrite_body(b"<img src=\"//\xA6t.bing.com\"><meta charset=\"windows-1252\">1");
        body.gathered().await.unwrap();
        let out = collect(body).await;
        assert!(
            out.windows(8).any(|w| w == b"data-src"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
