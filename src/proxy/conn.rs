//! One client connection, driven to its end: the deadlines hyper does not keep, and the drain.
//!
//! - A connection that starts no request within `deadline` of opening (a silent socket, an
//!   HTTP/2 preface and nothing more) is dropped.
//! - A connection that starts no new request for `deadline` is closed gracefully (HTTP/2:
//!   GOAWAY after its streams end; HTTP/1.1 also has hyper's own header-read timer).
//! - On drain, a connection that is serving is closed gracefully (requests in flight finish); one
//!   that has not yet sent its first request gets until `deadline` to send it, is served, and is
//!   then closed: a request that was on its way when the drain began is answered.

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection's place under `limits.max_connections`, shared with the tunnel an upgrade
/// turns it into: released when both have ended.
#[derive(Debug, Clone)]
pub struct Slot(pub Arc<tokio::sync::OwnedSemaphorePermit>);

/// Counts the requests a connection has started.
#[derive(Debug, Default, Clone)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    pub fn started(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection that sent no request in time.
#[derive(Debug)]
struct NoRequest;

impl std::fmt::Display for NoRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no request within the header-read timeout")
    }
}

impl std::error::Error for NoRequest {}

/// Why a served connection ended in an error, for the metrics: `no_request`, `client_closed`
/// (the client closed or reset it in the middle of a message), `timeout`, `http2` (an HTTP/2
/// protocol error), or `protocol` (anything else the HTTP layer refused).
pub fn failure_reason(e: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<NoRequest>() {
            return "no_request";
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return "client_closed";
            }
            if h.is_timeout() {
                return "timeout";
            }
        }
        if s.is::<h2::Error>() {
            return "http2";
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return "client_closed";
            }
        }
        source = s.source();
    }
    "protocol"
}

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain TCP: HTTP/1.1, or HTTP/2 when the client starts with its preface (h2c by prior
    /// knowledge).
    Detect,
    /// TLS whose ALPN chose `http/1.1`, or chose nothing: HTTP/1.1 only.
    Http1,
    /// TLS whose ALPN chose `h2`: HTTP/2 only; anything but its preface ends the connection.
    Http2,
}

impl Protocol {
    /// The protocol a TLS connection's ALPN negotiated.
    pub fn from_alpn(alpn: Option<&[u8]>) -> Protocol {
        match alpn {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }
}

/// hyper's connection builders, one per [`Protocol`], configured alike.
#[derive(Clone)]
pub struct Builders {
    pub detect: auto::Builder<TokioExecutor>,
    pub http1: hyper::server::conn::http1::Builder,
    pub http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    /// From the builder for [`Protocol::Detect`]: HTTP/1.1 only for `http1`, HTTP/2 only for
    /// `http2`. `http1` takes the same head timeout and buffer size.
    pub fn new(
        detect: auto::Builder<TokioExecutor>,
        header_read: Duration,
        max_buf_size: usize,
    ) -> Builders {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read)
            .max_buf_size(max_buf_size);
        Builders {
            http2: detect.clone().http2_only(),
            detect,
            http1,
        }
    }
}

/// Serves one connection in `protocol` until it ends, keeping the deadlines and following
/// `drain`.
pub async fn drive<I, S, B>(
    builders: &Builders,
    protocol: Protocol,
    io: I,
    service: S,
    activity: Activity,
    deadline: Duration,
    drain: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(io);
    match protocol {
        Protocol::Detect => {
            let conn = builders.detect.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            keep(conn, |c| c.graceful_shutdown(), activity, deadline, drain).await
        }
        Protocol::Http1 => {
            let conn = builders.http1.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            keep(conn, |c| c.graceful_shutdown(), activity, deadline, drain).await
        }
        Protocol::Http2 => {
            let conn = builders.http2.serve_connection(io, service);
            tokio::pin!(conn);
            keep(conn, |c| c.graceful_shutdown(), activity, deadline, drain).await
        }
    }
}

/// Polls a connection until it ends, keeping the deadlines and following `drain`;
/// `graceful` asks it to close after its requests in flight.
async fn keep<C, E>(
    mut conn: std::pin::Pin<&mut C>,
    graceful: fn(std::pin::Pin<&mut C>),
    activity: Activity,
    deadline: Duration,
    mut drain: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    C: std::future::Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    // While draining, look often: a first request may arrive at any moment.
    const DRAIN_POLL: Duration = Duration::from_millis(50);
    let opened = Instant::now();
    let (mut seen, mut last_change) = (0u64, opened);
    let mut check = Box::pin(tokio::time::sleep(deadline));
    let mut draining = *drain.borrow();
    let mut closing = false;
    loop {
        let now = Instant::now();
        let count = activity.count();
        if count != seen {
            (seen, last_change) = (count, now);
        }
        if count == 0 && now >= opened + deadline {
            // Nothing asked for in time, draining or not: drop it.
            return Err(NoRequest.into());
        }
        if !closing && count > 0 && (draining || now >= last_change + deadline) {
            closing = true;
            graceful(conn.as_mut());
        }
        let next = if closing {
            // Only the requests in flight are left; the connection ends after them.
            now + deadline
        } else if draining {
            now + DRAIN_POLL
        } else if count == 0 {
            opened + deadline
        } else {
            last_change + deadline
        };
        check
            .as_mut()
            .reset(next.max(now + Duration::from_millis(1)));
        tokio::select! {
            ended = conn.as_mut() => return ended.map_err(Into::into),
            changed = drain.changed(), if !draining => {
                // A closed channel means the server is gone: drain too.
                draining = changed.is_err() || *drain.borrow();
            }
            () = &mut check => {}
        }
    }
}
