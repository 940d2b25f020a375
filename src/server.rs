//! Running the proxy: the listeners, the admin listener, reloads (SIGHUP and file changes),
//! and the drain on SIGTERM or SIGINT.

use crate::audit::{LogSink, Minimizer};
use crate::config::{self, Overrides, Settings};
use crate::policy::{self, CompiledPolicy};
use crate::proxy::{self, State, admin, tls};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
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
    tracing::info!(
        "listening on {}://{}, forwarding to {}://{}, policy {} ({} mode); admin on http://{}",
        if tls.is_some() { "https" } else { "http" },
        settings.listen,
        settings.upstream.scheme,
        settings.upstream.authority,
        policy.source,
        policy.mode.as_str(),
        settings.admin_listen,
    );
    let state = Arc::new(State::new(settings, policy, sink)?);

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin::serve(admin_listener, state.clone(), async {
        let _ = admin_stopped.await;
    }));
    spawn_reloader(state.clone(), tls.clone(), sources, started);

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
    let _ = admin_task.await;
    Ok(())
}

/// Reloads on SIGHUP and when the config, policy or certificate files change, for as long as
/// the runtime runs.
fn spawn_reloader(
    state: Arc<State>,
    tls: Option<Arc<tls::Tls>>,
    sources: Sources,
    started: Settings,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
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
                if tx.send("SIGHUP").is_err() {
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
    for file in sources
        .config
        .iter()
        .chain(started.policy.iter())
        .chain(tls_files.iter())
    {
        watch.add(file);
    }
    tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            // Coalesce a burst into one reload.
            while rx.try_recv().is_ok() {}
            let state = state.clone();
            let (sources, started, tls) = (sources.clone(), started.clone(), tls.clone());
            let result = tokio::task::spawn_blocking(move || {
                if let (Some(tls), Some(files)) = (&tls, &started.tls)
                    && let Err(e) = tls.reload(files)
                {
                    state.metrics.reloaded(false);
                    tracing::error!("reload ({why}): the certificates in force stay: {e}");
                }
                reload(&state, &sources, &started).map(|()| state)
            })
            .await
            .unwrap_or_else(|_| Err("the reload task failed".to_string()));
            match result {
                // A config may name another policy file: watch it from now on.
                Ok(state) => {
                    if let Some(policy) = &state.current.load().settings.policy {
                        watch.add(policy);
                    }
                }
                Err(e) => tracing::error!(
                    "reload ({why}) failed, the previous policy and config stay in force: {e}"
                ),
            }
        }
    });
}

type Debouncer =
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>;

/// The files a reload reads, watched through their directories (a file replaced by a rename is
/// a new file: watching the directory sees it).
struct Watch {
    debouncer: Option<Debouncer>,
    files: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    dirs: Vec<PathBuf>,
}

impl Watch {
    fn new(tx: mpsc::UnboundedSender<&'static str>) -> Watch {
        let files: Arc<std::sync::Mutex<Vec<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| {
            let Ok(events) = events else { return };
            let watched = watched.lock().unwrap_or_else(|e| e.into_inner());
            if events.iter().any(|e| concerns(&watched, &e.path)) {
                let _ = tx.send("file change");
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot watch files: reload with SIGHUP"))
        .ok();
        Watch {
            debouncer,
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
        let (Some(dir), Some(debouncer)) = (dir, self.debouncer.as_mut()) else {
            return;
        };
        if self.dirs.contains(&dir) {
            return;
        }
        match debouncer.watcher().watch(&dir, RecursiveMode::NonRecursive) {
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
/// file) keeps its value from startup; a change to it is reported.
pub fn reload(state: &State, sources: &Sources, started: &Settings) -> Result<(), String> {
    let result = sources.load();
    state.metrics.reloaded(result.is_ok());
    let (mut new, policy) = result?;
    let fixed = [
        ("listen", new.listen != started.listen),
        ("admin_listen", new.admin_listen != started.admin_listen),
        ("upstream", new.upstream != started.upstream),
        ("upstream_ca", new.upstream_ca != started.upstream_ca),
        ("tls", new.tls != started.tls),
        ("log", new.log != started.log),
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
        "reloaded: policy {} ({} mode)",
        policy.source,
        policy.mode.as_str()
    );
    state.current.store(Arc::new(proxy::Snapshot::new(
        new,
        policy,
        minimizer,
        &state.metrics,
    )));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
