//! How much work the proxy takes on: requests in flight in the whole process (beyond it, a
//! request is shed with 503 at once instead of queueing), upstream exchanges per client
//! connection, and how many of its requests in flight an HTTP/2 client may cancel.
//!
//! A request's places are an [`Admission`]. Its connection's places are held until the
//! request's upstream exchange has really ended, even when the client went away before the
//! answer: a client that cancels its requests cannot have more of them running at the site than
//! its connection's stream limit. Its place under the process's capacity is given back when the
//! client has gone, so that one client's cancelled requests do not take the capacity of others.

use super::conn::Slot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The window over which a connection's cancelled requests are counted.
pub const RESET_WINDOW: Duration = Duration::from_secs(10);

/// One request's places under the limits. Dropping it gives them back.
#[derive(Debug)]
pub struct Admission {
    /// Among the process's requests in flight; given back early when the client has gone.
    process: Option<OwnedSemaphorePermit>,
    /// Among its connection's upstream exchanges; taken just before going upstream.
    stream: Option<OwnedSemaphorePermit>,
    /// Its connection's place under `limits.max_connections`, kept while the exchange runs.
    _slot: Option<Slot>,
}

impl Admission {
    /// The client has gone: the request no longer counts against the process's capacity (its
    /// remaining work is to finish reading the site's answer), but it keeps its place among
    /// its connection's exchanges.
    pub fn client_gone(&mut self) {
        self.process = None;
    }

    /// Waits for a place among the connection's upstream exchanges.
    pub async fn take_stream(&mut self, share: &ConnShare) {
        if self.stream.is_none() {
            // The semaphore is never closed.
            self.stream = share.streams.clone().acquire_owned().await.ok();
        }
    }
}

/// Requests in flight in the whole process (`limits.max_requests`).
#[derive(Debug)]
pub struct Capacity(Arc<Semaphore>);

impl Capacity {
    pub fn new(max_requests: usize) -> Capacity {
        Capacity(Arc::new(Semaphore::new(max_requests.max(1))))
    }

    /// A place for one more request, or `None` when the proxy is at capacity.
    pub fn admit(&self, slot: Option<Slot>) -> Option<Admission> {
        let process = self.0.clone().try_acquire_owned().ok()?;
        Some(Admission {
            process: Some(process),
            stream: None,
            _slot: slot,
        })
    }
}

/// One client connection's share: its upstream exchanges and its cancelled requests.
#[derive(Debug)]
pub struct ConnShare {
    streams: Arc<Semaphore>,
    pub resets: Resets,
}

impl ConnShare {
    /// At most `max_streams` upstream exchanges at once; GOAWAY after `max_resets` cancelled
    /// requests within [`RESET_WINDOW`].
    pub fn new(max_streams: usize, max_resets: u32) -> ConnShare {
        ConnShare {
            streams: Arc::new(Semaphore::new(max_streams.max(1))),
            resets: Resets::new(max_resets, RESET_WINDOW),
        }
    }
}

/// Counts an HTTP/2 connection's requests that its client cancelled (`RST_STREAM`) while they
/// were in flight. h2's own limit counts only streams reset before the server accepted them;
/// a client that waits a moment before each reset (a slow rapid reset) is seen only here.
#[derive(Debug)]
pub struct Resets {
    limit: u32,
    window: Duration,
    /// The start of the current window and the resets counted in it.
    counted: Mutex<(Instant, u32)>,
    tripped: AtomicBool,
    /// Woken when tripped: the connection's reader, which then ends the connection.
    waker: Mutex<Option<Waker>>,
}

impl Resets {
    pub fn new(limit: u32, window: Duration) -> Resets {
        Resets {
            limit,
            window,
            counted: Mutex::new((Instant::now(), 0)),
            tripped: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Counts one cancelled request; above the limit the connection is to be closed.
    pub fn count(&self) {
        self.count_at(Instant::now());
    }

    fn count_at(&self, now: Instant) {
        let over = {
            let mut c = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(c.0) >= self.window {
                *c = (now, 0);
            }
            c.1 += 1;
            c.1 > self.limit
        };
        if over && !self.tripped.swap(true, Ordering::SeqCst) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// The limit was passed: the connection is to be closed with GOAWAY ENHANCE_YOUR_CALM.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Wakes `waker` when the limit is passed.
    pub fn wake_on_trip(&self, waker: &Waker) {
        let mut w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_sheds_beyond_its_limit_and_recovers() {
        let c = Capacity::new(2);
        let a = c.admit(None).unwrap();
        let b = c.admit(None).unwrap();
        assert!(c.admit(None).is_none());
        drop(a);
        assert!(c.admit(None).is_some());
        drop(b);
    }

    #[test]
    fn resets_trip_above_the_limit_within_the_window() {
        let r = Resets::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..3 {
            r.count_at(t0 + Duration::from_secs(i));
        }
        assert!(!r.tripped());
        // A new window starts afresh.
        let r2 = Resets::new(3, Duration::from_secs(10));
        for i in 0..3 {
            r2.count_at(t0 + Duration::from_secs(i * 6));
        }
        r2.count_at(t0 + Duration::from_secs(13));
        assert!(!r2.tripped());
        r.count_at(t0 + Duration::from_secs(4));
        assert!(r.tripped());
    }

    #[tokio::test]
    async fn an_exchange_waits_for_a_stream_place() {
        let share = ConnShare::new(1, 10);
        let c = Capacity::new(10);
        let mut first = c.admit(None).unwrap();
        first.take_stream(&share).await;
        let mut second = c.admit(None).unwrap();
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), second.take_stream(&share)).await;
        assert!(waiting.is_err(), "a second exchange got a place");
        drop(first);
        second.take_stream(&share).await;
    }
}
