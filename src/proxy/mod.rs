//! HTTP plumbing: the listener, connections (HTTP/1.1 and h2c), the upstream client, streaming
//! bodies, and graceful shutdown.

pub mod body;
pub mod coding;
pub mod handler;
pub mod upstream;

use crate::audit::{LogSink, Minimizer};
use crate::config::Settings;
use crate::policy::CompiledPolicy;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything a request handler reads.
pub struct State {
    pub settings: Settings,
    /// Swapped atomically when the policy is replaced.
    pub policy: ArcSwap<CompiledPolicy>,
    pub minimizer: Minimizer,
    pub sink: Arc<LogSink>,
    pub client: upstream::UpstreamClient,
}

impl State {
    pub fn new(settings: Settings, policy: CompiledPolicy, sink: Arc<LogSink>) -> State {
        State {
            minimizer: Minimizer::new(settings.client_ip),
            client: upstream::client(&settings.timeouts),
            policy: ArcSwap::from_pointee(policy),
            settings,
            sink,
        }
    }
}

/// Binds the listener. Separate from [`serve`] so that callers learn the bound address (port 0)
/// before serving.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves connections until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish within the grace period.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.settings.timeouts.header_read);
    // Pings find HTTP/2 peers that vanished without closing the connection.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let svc = service_fn(move |req| handler::handle(state.clone(), peer, req));
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let grace = state.settings.timeouts.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace period of {grace:?} ended with connections still open");
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
