//! HTTP plumbing: the listener, connections (HTTP/1.1 and h2c), the upstream client, streaming
//! bodies, and graceful shutdown.

pub mod admin;
pub mod admission;
pub mod body;
pub mod calm;
pub mod coding;
pub mod conn;
pub mod framing;
pub mod handler;
pub mod inventory;
pub mod metrics;
pub mod preferences;
pub mod tls;
pub mod upstream;

use crate::audit::ip;
use crate::audit::{IpMode, LogSink, Minimizer, Secret};
use crate::config::{Settings, Upstream};
use crate::filter::memo::Memo;
use crate::policy::CompiledPolicy;
use crate::sites::Routes;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// One site, as a snapshot serves it.
pub struct Site {
    /// Its name, for the decision log and the metrics.
    pub name: Arc<str>,
    pub upstream: Upstream,
    pub policy: Arc<CompiledPolicy>,
    /// Rewritten documents under this policy; `None` when `limits.rewrite_cache` is 0.
    pub memo: Option<Arc<Memo>>,
}

/// The keys a snapshot works with: the client address's minimizer and the banner's form key.
#[derive(Clone)]
pub struct Keys {
    pub minimizer: Arc<Minimizer>,
    /// The key of the banner's CSRF tokens: derived from the key file's secret, so that every
    /// replica accepts the forms of the others, else drawn at random.
    pub csrf: [u8; 32],
    /// The key file's secret they come from, if any.
    secret: Option<Secret>,
}

/// What changed of the keys on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysChange {
    Nothing,
    /// `client_ip` changed, the secret did not: open banner forms stay valid.
    Mode,
    /// The key file's secret changed (or came or went): new pseudonyms and a new form key.
    Secret,
}

impl Keys {
    /// The keys of `mode`, from `secret` (the key file's) if given.
    pub fn new(mode: &IpMode, secret: Option<Secret>) -> Keys {
        let csrf = secret
            .as_ref()
            .map_or_else(ip::fresh_key, |s| s.derive("banner-csrf"));
        Keys {
            minimizer: Arc::new(Minimizer::new(mode.clone(), secret.clone())),
            csrf,
            secret,
        }
    }

    /// The keys after a reload with `mode` and `secret`: these, where neither changed; the same
    /// form key unless the secret changed, so that a change of `client_ip` alone does not
    /// invalidate the forms visitors have open.
    pub fn reloaded(&self, mode: &IpMode, secret: Option<Secret>) -> (Keys, KeysChange) {
        if secret != self.secret {
            return (Keys::new(mode, secret), KeysChange::Secret);
        }
        if self.minimizer.same(mode, secret.as_ref()) {
            return (self.clone(), KeysChange::Nothing);
        }
        let keys = Keys {
            minimizer: Arc::new(Minimizer::new(mode.clone(), secret.clone())),
            csrf: self.csrf,
            secret,
        };
        (keys, KeysChange::Mode)
    }
}

/// What a reload replaces, as one unit: a request sees one settings-and-policies set.
pub struct Snapshot {
    /// The listeners, the log file and the upstream CA stay as they were at start; the sites,
    /// their upstreams and certificates follow the config.
    pub settings: Settings,
    /// In the order of `settings.sites`.
    pub sites: Vec<Site>,
    pub routes: Routes,
    pub keys: Keys,
}

impl Snapshot {
    /// A snapshot of `settings` with a policy per site (in order), each site keeping the
    /// rewrite memo given for it or else getting an empty one sized by `settings`, counting
    /// into `metrics`.
    pub fn new(
        settings: Settings,
        policies: Vec<(Arc<CompiledPolicy>, Option<Arc<Memo>>)>,
        keys: Keys,
        metrics: &metrics::Metrics,
    ) -> Snapshot {
        let sites = settings
            .sites
            .iter()
            .zip(policies)
            .map(|(site, (policy, keep))| Site {
                name: Arc::from(site.name.as_str()),
                upstream: site.upstream.clone(),
                policy,
                memo: keep.or_else(|| {
                    Memo::new(settings.limits.rewrite_cache, metrics.memo_counters()).map(Arc::new)
                }),
            })
            .collect();
        let routes = Routes::new(
            settings.sites.iter().map(|s| s.server_names.as_slice()),
            settings.virtual_hosts,
        );
        Snapshot {
            settings,
            sites,
            routes,
            keys,
        }
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| &*s.name == name)
    }
}

/// Everything a request handler reads.
pub struct State {
    /// Swapped atomically on a reload.
    pub current: ArcSwap<Snapshot>,
    pub sink: Arc<LogSink>,
    pub client: upstream::UpstreamClient,
    pub metrics: Arc<metrics::Metrics>,
    pub inventory: inventory::Inventory,
    /// Ready to take traffic: set once serving, cleared when draining.
    pub ready: AtomicBool,
    /// Connections and upgraded tunnels: the drain waits for them.
    pub tasks: tokio_util::task::TaskTracker,
    /// Requests in flight (`limits.max_requests`, fixed at start).
    pub capacity: admission::Capacity,
    /// Where consent choices are recorded: opened when a site's policy has the banner on, at
    /// start or on the reload that switches it on.
    pub consents: std::sync::OnceLock<crate::audit::consents::ConsentStore>,
}

impl State {
    /// `policies`: one per site, in the order of `settings.sites`; `secret`: the key file's.
    /// Fails when the upstream client cannot be built (an unreadable CA bundle).
    pub fn new(
        settings: Settings,
        policies: Vec<CompiledPolicy>,
        secret: Option<Secret>,
        sink: Arc<LogSink>,
    ) -> Result<State, String> {
        let names: Vec<Arc<str>> = settings
            .sites
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        let metrics = Arc::new(metrics::Metrics::new(&names));
        let keys = Keys::new(&settings.client_ip, secret);
        let policies = policies.into_iter().map(|p| (Arc::new(p), None)).collect();
        Ok(State {
            consents: std::sync::OnceLock::new(),
            client: upstream::client(&settings)?,
            capacity: admission::Capacity::new(settings.limits.max_requests),
            current: ArcSwap::from_pointee(Snapshot::new(settings, policies, keys, &metrics)),
            sink,
            metrics,
            inventory: inventory::Inventory::default(),
            ready: AtomicBool::new(false),
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// Binds the listener. Separate from [`serve`] so that callers learn the bound address (port 0)
/// before serving.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves connections until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish within the grace period.
/// With `tls`, each connection first completes a TLS handshake (within
/// `timeouts.header_read`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let snapshot = state.current.load_full();
    let settings = &snapshot.settings;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let max_buf = settings.limits.max_header_size.max(8192);
    // A request head larger than the buffer is answered 431.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.timeouts.header_read)
        .max_buf_size(max_buf);
    // Pings find HTTP/2 peers that vanished without closing the connection.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.limits.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(
            u32::try_from(settings.limits.http2_max_streams).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    let builders = conn::Builders::new(builder, settings.timeouts.header_read, max_buf);
    // At most this many connections at once: beyond it, accepting waits.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        settings.limits.max_connections.max(1),
    ));
    let (drain, draining) = tokio::sync::watch::channel(false);
    let deadline = settings.timeouts.header_read;
    let max_head = settings.limits.max_header_size.max(8192);
    let (max_streams, max_resets) = (
        settings.limits.http2_max_streams,
        settings.limits.http2_max_resets,
    );
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
                let (state, builders, draining, tls) =
                    (state.clone(), builders.clone(), draining.clone(), tls.clone());
                state.tasks.clone().spawn(async move {
                    let activity = conn::Activity::default();
                    let counter = activity.clone();
                    let upgraded = Arc::new(AtomicBool::new(false));
                    let share = Arc::new(admission::ConnShare::new(max_streams, max_resets));
                    let peer = handler::Peer {
                        addr: peer,
                        tls: tls.is_some(),
                        sni: None,
                        slot: Some(conn::Slot(Arc::new(slot))),
                        upgraded: upgraded.clone(),
                        share: share.clone(),
                    };
                    let metrics = state.metrics.clone();
                    // The service of a connection, once its TLS server name is known.
                    let service = move |sni: Option<Arc<str>>| {
                        let peer = handler::Peer { sni, ..peer };
                        service_fn(move |req| {
                            counter.started();
                            handler::handle(state.clone(), peer.clone(), req)
                        })
                    };
                    let result = match tls {
                        None => {
                            let svc = service(None);
                            let protocol = conn::Protocol::Detect;
                            let io = calm::CalmIo::new(stream, share.clone());
                            let io = framing::Guard::new(io, max_head, upgraded.clone());
                            conn::drive(&builders, protocol, io, svc, activity, deadline, draining)
                                .await
                                .map_err(|e| ("protocol", e))
                        }
                        Some(acceptor) => {
                            match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let svc = service(stream.get_ref().1.server_name().map(Arc::from));
                                    // Exactly the protocol ALPN chose.
                                    let protocol =
                                        conn::Protocol::from_alpn(stream.get_ref().1.alpn_protocol());
                                    let io = calm::CalmIo::new(stream, share.clone());
                                    let io = framing::Guard::new(io, max_head, upgraded.clone());
                                    conn::drive(&builders, protocol, io, svc, activity, deadline, draining)
                                        .await
                                        .map_err(|e| ("protocol", e))
                                }
                                Ok(Err(e)) => Err(("tls_handshake", format!("TLS handshake failed: {e}").into())),
                                Err(_) => Err(("tls_handshake_timeout", "TLS handshake timed out".into())),
                            }
                        }
                    };
                    // Counted by reason; the lines themselves only at debug level, where an
                    // attacker's connections cannot flood the log an operator reads.
                    let reason = match &result {
                        _ if share.resets.tripped() => Some("http2_resets"),
                        Ok(()) => None,
                        Err(("protocol", e)) => Some(conn::failure_reason(e.as_ref())),
                        Err((reason, _)) => Some(*reason),
                    };
                    if let Some(reason) = reason {
                        metrics.connection_failed(reason);
                    }
                    if let Err((_, e)) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = drain.send(true);
    state.tasks.close();
    let grace = settings.timeouts.shutdown_grace;
    tokio::select! {
        () = state.tasks.wait() => tracing::info!("all connections closed"),
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
