//! Running the proxy: the listeners, the admin listener, reloads (SIGHUP and file changes),
//! and the drain on SIGTERM or SIGINT.

use crate::audit::{LogSink, Minimizer};
use crate::config::{self, Overrides, Settings};
use crate::policy::{self, CompiledPolicy};
use crate::proxy::{self, State, admin, tls};
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the settings come from: reread on every reload.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
}

impl Sources {
    /// Reads the config file (if any), merges the flags, and loads the policy it names.
    pub fn load(&self) -> Result<(Settings, CompiledPolicy), String> {
        let file = self
            .config
            .as_deref()
            .map(config::load_file)
            .transpose()
            .map_err(|e| e.to_string())?;
        let settings = config::resolve(file, self.overrides.clone())?;
        let policy = load_policy(settings.policy.as_deref()).map_err(|e| e.to_string())?;
        Ok((settings, policy))
    }
}

impl Sources {
    /// The policy file the flags or the config file name now, loaded or not.
    fn policy_named(&self) -> Option<PathBuf> {
        let from_file = || {
            let config = self.config.as_deref()?;
            config::load_file(config).ok()?.policy
        };
        self.overrides.policy.clone().or_else(from_file)
    }
}

pub fn load_policy(path: Option<&Path>) -> Result<CompiledPolicy, policy::PolicyError> {
    match path {
        Some(p) => policy::load(p),
        None => policy::builtin(),
    }
}

/// How long file-change events are gathered before one reload: editors write a file in
/// several steps, or save to a temporary file and rename it over the old one.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Runs the proxy until SIGTERM or SIGINT, then drains. `loaded` is what `sources` gave at
/// startup; reloads read them again. Startup errors are returned.
pub async fn run(
    sources: Sources,
    loaded: (Settings, CompiledPolicy),
    sink: Arc<LogSink>,
) -> Result<(), String> {
    let (mut settings, policy) = loaded;
    let started = settings.clone();
    let listener = proxy::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let admin_listener = proxy::bind(settings.admin_listen)
        .await
        .map_err(|e| format!("cannot listen on {} (admin): {e}", settings.admin_listen))?;
    let tls = settings
        .tls
        .as_ref()
        .map(|files| tls::Tls::new(files).map(Arc::new))
        .transpose()?;
    settings.listen = listener.local_addr().map_err(|e| e.to_string())?;
    settings.admin_listen = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let listening = format!(
        "listening on {}://{}, forwarding to {}://{}, policy {} ({} mode); admin on http://{}",
        if tls.is_some() { "https" } else { "http" },
        settings.listen,
        settings.upstream.scheme,
        settings.upstream.authority,
        policy.source,
        policy.mode.as_str(),
        settings.admin_listen,
    );
    let records = policy
        .banner
        .is_some()
        .then(|| settings.consent_records.clone());
    let state = Arc::new(State::new(settings, policy, sink)?);
    if let Some(records) = records {
        open_consent_store(&state, &records).await?;
    }

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_thread = spawn_admin(admin_listener, state.clone(), admin_stopped)?;
    // Watching before saying so: a change made once the proxy says it listens is seen.
    spawn_reloader(state.clone(), tls.clone(), sources, started);
    tokio::spawn(trim_when_quiet(state.clone()));
    tracing::info!("{listening}");
    tokio::spawn(probe_upstream(state.clone()));

    state.set_ready(true);
    let draining = state.clone();
    let acceptor = tls.as_ref().map(|t| t.acceptor());
    proxy::serve(listener, acceptor, state.clone(), async move {
        proxy::shutdown_signal().await;
        draining.set_ready(false);
        tracing::info!("draining: not ready, no new connections");
    })
    .await;
    let _ = stop_admin.send(());
    let _ = tokio::task::spawn_blocking(move || admin_thread.join()).await;
    Ok(())
}

/// Tries one connection to the upstream at start, and warns if it cannot be reached: the proxy
/// serves anyway (answering 502 until the upstream is up), and `/readyz` does not depend on it.
async fn probe_upstream(state: Arc<State>) {
    let snapshot = state.current.load_full();
    let upstream = &snapshot.settings.upstream;
    let port =
        upstream
            .authority
            .port_u16()
            .unwrap_or(if upstream.scheme == http::uri::Scheme::HTTPS {
                443
            } else {
                80
            });
    let host = upstream
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let timeout = snapshot.settings.timeouts.upstream_connect;
    let connected =
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await;
    let problem = match connected {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}", humantime::format_duration(timeout)),
    };
    tracing::warn!(
        "the upstream {}://{} cannot be reached ({problem}): requests are answered 502 until it \
         is up",
        upstream.scheme,
        upstream.authority
    );
}

/// Opens the store of consent records (the policy has the banner on), and purges records past
/// their retention from now on.
pub async fn open_consent_store(
    state: &State,
    records: &crate::config::RecordStore,
) -> Result<(), String> {
    let store = crate::audit::consents::ConsentStore::open(records).await?;
    let place = match &records.backend {
        crate::config::RecordBackend::Sqlite { path } => format!("SQLite file {}", path.display()),
        crate::config::RecordBackend::Postgres { .. } => "PostgreSQL".to_string(),
    };
    tracing::info!(
        "consent records in {place}, kept {}",
        humantime::format_duration(records.retention)
    );
    crate::audit::consents::spawn_purge(store.clone(), records.retention);
    let _ = state.consents.set(store);
    Ok(())
}

/// Requests in flight at most, for the proxy to count as quiet.
const QUIET: i64 = 8;
/// Requests started since memory was last given back that make a burst worth giving back after.
const BURST: u64 = 5_000;

/// Every 10 s: if a burst has ended (many requests started since memory was last given back, few
/// in flight now), gives the memory the burst left free back to the system. Counting since the
/// last trim rather than per tick, a burst that straddles ticks counts whole.
async fn trim_when_quiet(state: Arc<State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut trimmed_at = state.metrics.started();
    loop {
        tick.tick().await;
        let started = state.metrics.started();
        if state.metrics.in_flight() <= QUIET && started - trimmed_at >= BURST {
            let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
            trimmed_at = started;
        }
    }
}

/// Runs the admin listener on a thread and runtime of its own, so that health checks and
/// metrics are answered at once while the workers are saturated.
fn spawn_admin(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let listener = listener
        .into_std()
        .map_err(|e| format!("admin listener: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("admin runtime: {e}"))?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        admin::serve(listener, state, async {
                            let _ = stop.await;
                        })
                        .await
                    }
                    Err(e) => tracing::error!("admin listener: {e}"),
                }
            })
        })
        .map_err(|e| format!("admin thread: {e}"))
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The operator asked: reload even if no file changed.
    Hangup,
    /// Something happened in a watched directory: reload only if a file the proxy reads
    /// changed. Reading a file is an event too (the proxy's own reads among them), as is a
    /// log written beside it.
    FileEvent,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Hangup => "SIGHUP",
            Trigger::FileEvent => "file change",
        }
    }
}

/// What the files a reload reads held when last looked at: a file event reloads only when
/// this changes. Unreadable files count as `None`, so a file that appears or vanishes counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Contents(Vec<(PathBuf, Option<u128>)>);

impl Contents {
    fn of(files: &[PathBuf]) -> Contents {
        Contents(
            files
                .iter()
                .map(|f| {
                    let hash = std::fs::read(f)
                        .ok()
                        .map(|b| xxhash_rust::xxh3::xxh3_128(&b));
                    (f.clone(), hash)
                })
                .collect(),
        )
    }
}

/// Every file a reload reads: the config, the policy (the one in force, and the one the config
/// names now if it has not loaded), what the policy names, the certificates.
fn files_read(state: &State, sources: &Sources, tls_files: &[PathBuf]) -> Vec<PathBuf> {
    let current = state.current.load();
    let mut files: Vec<PathBuf> = sources.config.iter().cloned().collect();
    files.extend(current.policy.files.iter().cloned());
    if let Some(p) = sources.policy_named()
        && !files.contains(&p)
    {
        files.push(p);
    }
    files.extend(tls_files.iter().cloned());
    files
}

/// Reloads on SIGHUP and when the config, policy, DNT policy or certificate files change, for
/// as long as the runtime runs.
fn spawn_reloader(
    state: Arc<State>,
    tls: Option<Arc<tls::Tls>>,
    sources: Sources,
    started: Settings,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Trigger>();
    #[cfg(unix)]
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP: reload by file changes only");
                return;
            };
            while hup.recv().await.is_some() {
                if tx.send(Trigger::Hangup).is_err() {
                    break;
                }
            }
        });
    }
    let tls_files = started
        .tls
        .as_ref()
        .map(tls::Tls::files_to_watch)
        .unwrap_or_default();
    let mut watch = Watch::new(tx);
    let files = files_read(&state, &sources, &tls_files);
    files.iter().for_each(|f| watch.add(f));
    let mut seen = Contents::of(&files);
    tokio::spawn(async move {
        while let Some(mut trigger) = rx.recv().await {
            if trigger == Trigger::FileEvent {
                // Editors write a file in several steps: take them as one.
                tokio::time::sleep(DEBOUNCE).await;
            }
            // Coalesce a burst into one reload; a SIGHUP among it forces the reload.
            while let Ok(t) = rx.try_recv() {
                if t == Trigger::Hangup {
                    trigger = t;
                }
            }
            let state = state.clone();
            let (sources, started, tls) = (sources.clone(), started.clone(), tls.clone());
            let tls_files = tls_files.clone();
            let before = seen.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let now = Contents::of(&files_read(&state, &sources, &tls_files));
                if trigger == Trigger::FileEvent && now == before {
                    return (now, None);
                }
                let why = trigger.as_str();
                if let (Some(tls), Some(files)) = (&tls, &started.tls)
                    && let Err(e) = tls.reload(files)
                {
                    state.metrics.reloaded(false);
                    tracing::error!("reload ({why}): the certificates in force stay: {e}");
                }
                let result = reload(&state, &sources, &started, now == before);
                // A config may name another policy, which may name other files: look at them
                // from now on, whether they loaded or not. (Read after the reload: a change in
                // between reloads again.)
                let files = files_read(&state, &sources, &tls_files);
                let now = if files.len() == now.0.len()
                    && files.iter().zip(&now.0).all(|(a, (b, _))| a == b)
                {
                    now
                } else {
                    Contents::of(&files)
                };
                (now, Some((files, result.map_err(|e| (why, e)))))
            })
            .await;
            match outcome {
                Ok((now, result)) => {
                    seen = now;
                    if let Some((files, result)) = result {
                        files.iter().for_each(|f| watch.add(f));
                        if let Err((why, e)) = result {
                            tracing::error!(
                                "reload ({why}) failed, the previous policy and config stay in \
                                 force: {e}"
                            );
                        }
                    }
                }
                Err(_) => tracing::error!("the reload task failed"),
            }
        }
    });
}

/// The files a reload reads, watched through their directories (a file replaced by a rename is
/// a new file: watching the directory sees it).
struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    files: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    dirs: Vec<PathBuf>,
}

/// Whether an event can change a file's contents. Opening, reading and closing a file are
/// events too (the proxy's own reads among them): they change nothing.
fn may_change(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

impl Watch {
    fn new(tx: mpsc::UnboundedSender<Trigger>) -> Watch {
        let files: Arc<std::sync::Mutex<Vec<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !may_change(&event.kind) {
                return;
            }
            let watched = watched.lock().unwrap_or_else(|e| e.into_inner());
            if event.paths.iter().any(|p| concerns(&watched, p)) {
                let _ = tx.send(Trigger::FileEvent);
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot watch files: reload with SIGHUP"))
        .ok();
        Watch {
            watcher,
            files,
            dirs: Vec::new(),
        }
    }

    fn add(&mut self, file: &Path) {
        let Ok(file) = std::path::absolute(file) else {
            return;
        };
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.contains(&file) {
            return;
        }
        let dir = file.parent().map(Path::to_path_buf);
        files.push(file);
        drop(files);
        let (Some(dir), Some(watcher)) = (dir, self.watcher.as_mut()) else {
            return;
        };
        if self.dirs.contains(&dir) {
            return;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => self.dirs.push(dir),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch: reload with SIGHUP")
            }
        }
    }
}

/// Whether a change at `path` may change one of the `watched` files: the file itself, or, in
/// its directory, a `..`-named entry. Kubernetes updates a mounted ConfigMap or Secret by
/// swapping a `..data` symlink; the files themselves are symlinks through it and never change.
fn concerns(watched: &[PathBuf], path: &Path) -> bool {
    watched.iter().any(|f| {
        f == path
            || (path.parent() == f.parent()
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("..")))
    })
}

/// Validates the config and policy as they are now on disk and, if both are good, puts them in
/// force. What a running process cannot change (listen addresses, upstream, TLS files, log
/// file) keeps its value from startup; a change to it is reported. `unchanged`: no file has
/// changed since the last look, for the log. The rewrite memo stays when the policy's contents
/// are the same as those in force (its pages were rewritten under the same rules).
pub fn reload(
    state: &State,
    sources: &Sources,
    started: &Settings,
    unchanged: bool,
) -> Result<(), String> {
    let (mut new, policy) = sources
        .load()
        .inspect_err(|_| state.metrics.reloaded(false))?;
    // What changed of a setting read only at start: its name, and whether it changed.
    macro_rules! changed {
        ($($setting:ident).+) => {
            (
                stringify!($($setting).+),
                new.$($setting).+ != started.$($setting).+,
            )
        };
    }
    let fixed = [
        changed!(listen),
        changed!(admin_listen),
        changed!(upstream),
        changed!(upstream_ca),
        changed!(tls),
        changed!(log),
        changed!(limits.upstream_idle_connections),
        // Read when the listener starts.
        changed!(limits.max_header_size),
        changed!(limits.max_connections),
        changed!(limits.max_requests),
        changed!(limits.http2_max_streams),
        changed!(limits.http2_max_resets),
        changed!(timeouts.header_read),
        changed!(timeouts.upstream_connect),
        changed!(timeouts.shutdown_grace),
        changed!(consent_records),
    ];
    for (name, changed) in fixed {
        if changed {
            tracing::warn!("reload: `{name}` changed; it takes effect on restart");
        }
    }
    let current = state.current.load();
    let old = &current.settings;
    new.listen = old.listen;
    new.admin_listen = old.admin_listen;
    new.upstream = old.upstream.clone();
    new.upstream_ca = old.upstream_ca.clone();
    new.tls = old.tls.clone();
    new.log = old.log.clone();
    // The same minimizer (and so the same daily HMAC key) unless its mode changed.
    let minimizer = if new.client_ip == old.client_ip {
        current.minimizer.clone()
    } else {
        Arc::new(Minimizer::new(new.client_ip))
    };
    tracing::info!(
        "reloaded: policy {} ({} mode){}",
        policy.source,
        policy.mode.as_str(),
        if unchanged { ", no file changed" } else { "" }
    );
    if policy.banner.is_some() && state.consents.get().is_none() {
        tracing::warn!(
            "reload: the banner is switched on, but consent records are opened at start: it is \
             shown once the proxy restarts"
        );
    }
    let memo = current.memo.clone().filter(|_| {
        policy.digest == current.policy.digest
            && new.limits.rewrite_cache == old.limits.rewrite_cache
    });
    state.current.store(Arc::new(proxy::Snapshot::new(
        new,
        policy,
        minimizer,
        &state.metrics,
        memo,
    )));
    // Counted once in force, so that whoever watches the count sees the new policy.
    state.metrics.reloaded(true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reading_a_watched_file_is_no_event_and_writing_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.yaml");
        std::fs::write(&f, "mode: enforce\n").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watch = Watch::new(tx);
        watch.add(&f);
        for _ in 0..5 {
            std::fs::read(&f).unwrap();
        }
        let read = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(read.is_err(), "reading was taken for a change");
        std::fs::write(&f, "mode: report-only\n").unwrap();
        let written = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(written.ok().flatten(), Some(Trigger::FileEvent));
    }

    #[test]
    fn changes_that_concern_a_watched_file() {
        let watched = vec![PathBuf::from("/etc/cp/policy.yaml")];
        assert!(concerns(&watched, Path::new("/etc/cp/policy.yaml")));
        assert!(concerns(&watched, Path::new("/etc/cp/..data")));
        assert!(concerns(
            &watched,
            Path::new("/etc/cp/..2026_11_23_13_00_00.123")
        ));
        assert!(!concerns(&watched, Path::new("/etc/cp/other.yaml")));
        assert!(!concerns(&watched, Path::new("/etc/other/..data")));
        assert!(!concerns(&watched, Path::new("/etc/cp/policy.yaml.swp")));
    }
}
