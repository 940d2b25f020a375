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

/// Serves one connection until it ends, keeping the deadlines and following `drain`.
pub async fn drive<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    activity: Activity,
    deadline: Duration,
    mut drain: watch::Receiver<bool>,
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
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
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
            return Err("no request within the header-read timeout".into());
        }
        if !closing && count > 0 && (draining || now >= last_change + deadline) {
            closing = true;
            conn.as_mut().graceful_shutdown();
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
            ended = conn.as_mut() => return ended,
            changed = drain.changed(), if !draining => {
                // A closed channel means the server is gone: drain too.
                draining = changed.is_err() || *drain.borrow();
            }
            () = &mut check => {}
        }
    }
}
