//! The pooled keep-alive client that talks to the upstream, and how its failures map to
//! statuses.

use crate::config::Timeouts;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::time::Duration;

pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// Builds the upstream client.
pub fn client(timeouts: &Timeouts) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(timeouts.upstream_connect));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Why the upstream did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Refused, reset, unreachable, or an unreadable answer: 502.
    Unavailable,
    /// Too slow to connect or to answer: 504.
    Timeout,
}

impl Failure {
    pub fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return Failure::Timeout;
            }
            source = s.source();
        }
        Failure::Unavailable
    }
}
