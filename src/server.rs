//! Running the proxy: the listeners, the admin listener, reloads (SIGHUP and file changes),
//! and the drain on SIGTERM or SIGINT.

use crate::audit::{LogSink, Secret};
use crate::config::{self, Overrides, Settings, SiteSettings};
use crate::policy::{self, CompiledPolicy};
use crate::proxy::{self, KeysChange, State, admin, tls};
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

/// What the sources give: the settings, a policy per site (in the order of `settings.sites`),
/// and the key file's secret.
pub struct Loaded {
    pub settings: Settings,
    pub policies: Vec<CompiledPolicy>,
    pub secret: Option<Secret>,
}

impl Sources {
    /// Reads the config file (if any), merges the flags, reads the key file and loads each
    /// site's policy. Any failure fails the whole.
    pub fn load(&self) -> Result<Loaded, String> {
        let (settings, secret) = self.load_settings()?;
        let policies = settings
            .sites
            .iter()
            .map(|site| site_policy(&settings, site))
            .collect::<Result<_, _>>()?;
        Ok(Loaded {
            settings,
            policies,
            secret,
        })
    }

    /// The settings and the key file's secret, without the policies.
    fn load_settings(&self) -> Result<(Settings, Option<Secret>), String> {
        let file = self
            .config
            .as_deref()
            .map(config::load_file)
            .transpose()
            .map_err(|e| e.to_string())?;
        let settings = config::resolve(file, self.overrides.clone())?;
        let secret = settings
            .client_ip
            .key_file()
            .map(Secret::read)
            .transpose()?;
        Ok((settings, secret))
    }

    /// The files the flags or the config file name now, loaded or not: the policies and the
    /// key file.
    fn files_named(&self) -> Vec<PathBuf> {
        let file = self
            .config
            .as_deref()
            .and_then(|c| config::load_file(c).ok());
        let mut named: Vec<PathBuf> = self.overrides.policy.iter().cloned().collect();
        if let Some(file) = file {
            named.extend(file.policy);
            named.extend(file.client_ip.key_file().map(Path::to_path_buf));
            named.extend(file.sites.into_iter().flatten().filter_map(|s| s.policy));
        }
        named
    }
}

/// A site's policy. With `sites`, an error names the site.
pub fn site_policy(settings: &Settings, site: &SiteSettings) -> Result<CompiledPolicy, String> {
    load_policy(site.policy.as_deref()).map_err(|e| {
        if settings.virtual_hosts {
            format!("site `{}`: {e}", site.name)
        } else {
            e.to_string()
        }
    })
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
pub async fn run(sources: Sources, loaded: Loaded, sink: Arc<LogSink>) -> Result<(), String> {
    let Loaded {
        mut settings,
        policies,
        secret,
    } = loaded;
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
    if let Some(tls) = &tls {
        warn_uncovered(&settings, tls);
    }
    settings.listen = listener.local_addr().map_err(|e| e.to_string())?;
    settings.admin_listen = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let listening = listening(&settings, &policies, tls.is_some());
    let records = policies
        .iter()
        .any(|p| p.banner.is_some())
        .then(|| settings.consent_records.clone());
    let state = Arc::new(State::new(settings, policies, secret, sink)?);
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

/// Warns of each server name of a site that no certificate names: a browser asking for it gets
/// the first certificate and refuses it. (A wildcard server name is judged by one name under
/// it.)
fn warn_uncovered(settings: &Settings, tls: &tls::Tls) {
    for site in &settings.sites {
        for name in &site.server_names {
            let probe = match name.strip_prefix("*.") {
                Some(rest) => format!("a.{rest}"),
                None => name.clone(),
            };
            if !tls.covers(&probe) {
                tracing::warn!(
                    "site {}: no TLS certificate names `{name}`: clients asking for it are given \
                     the first certificate, which they refuse; add one under the site's `tls`",
                    site.name
                );
            }
        }
    }
}

/// What the proxy says once it listens: where, and for each site where it forwards to and under
/// which policy.
fn listening(settings: &Settings, policies: &[CompiledPolicy], tls: bool) -> String {
    let forwarding = |site: &SiteSettings, policy: &CompiledPolicy| {
        format!(
            "forwarding to {}://{}, policy {} ({} mode)",
            site.upstream.scheme,
            site.upstream.authority,
            policy.source,
            policy.mode.as_str()
        )
    };
    let sites = if settings.virtual_hosts {
        let each: Vec<String> = settings
            .sites
            .iter()
            .zip(policies)
            .map(|(site, policy)| {
                format!(
                    "site {} ({}) {}",
                    site.name,
                    site.server_names.join(", "),
                    forwarding(site, policy)
                )
            })
            .collect();
        format!("{} sites: {}", each.len(), each.join("; "))
    } else {
        forwarding(&settings.sites[0], &policies[0])
    };
    format!(
        "listening on {}://{}, {sites}; admin on http://{}",
        if tls { "https" } else { "http" },
        settings.listen,
        settings.admin_listen,
    )
}

/// Tries one connection to each site's upstream at start, and warns for those that cannot be
/// reached: the proxy serves anyway (answering 502 until the upstream is up), and `/readyz`
/// does not depend on them.
async fn probe_upstream(state: Arc<State>) {
    let snapshot = state.current.load_full();
    for site in &snapshot.sites {
        probe_one(&site.upstream, snapshot.settings.timeouts.upstream_connect).await;
    }
}

async fn probe_one(upstream: &config::Upstream, timeout: Duration) {
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

/// Every file a reload reads: the config, the policies (those in force, and those the config
/// names now if they have not loaded), what the policies name, the key file, the certificates
/// in force.
fn files_read(state: &State, sources: &Sources) -> Vec<PathBuf> {
    let current = state.current.load();
    let tls_files = current
        .settings
        .tls
        .as_ref()
        .map(tls::Tls::files_to_watch)
        .unwrap_or_default();
    let mut files: Vec<PathBuf> = sources.config.iter().cloned().collect();
    let in_force = current
        .sites
        .iter()
        .flat_map(|s| s.policy.files.iter().cloned());
    let key = current.settings.client_ip.key_file().map(Path::to_path_buf);
    for f in in_force
        .chain(key)
        .chain(sources.files_named())
        .chain(tls_files)
    {
        if !files.contains(&f) {
            files.push(f);
        }
    }
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
    let mut watch = Watch::new(tx);
    let files = files_read(&state, &sources);
    files.iter().for_each(|f| watch.add(f));
    let mut seen = Contents::of(&files);
    tokio::spawn(async move {
        loop {
            // A banner on with no store opened: try again now and then, not only on a reload.
            let wanted = store_wanted(&state);
            let next = if wanted {
                tokio::time::timeout(STORE_RETRY, rx.recv()).await
            } else {
                Ok(rx.recv().await)
            };
            let mut trigger = match next {
                Ok(Some(trigger)) => trigger,
                Ok(None) => break,
                Err(_) => {
                    open_store_for_banner(&state).await;
                    continue;
                }
            };
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
            let state_now = state.clone();
            let (sources, started, tls) = (sources.clone(), started.clone(), tls.clone());
            let before = seen.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let state = state_now;
                let now = Contents::of(&files_read(&state, &sources));
                if trigger == Trigger::FileEvent && now == before {
                    return (now, None);
                }
                let why = trigger.as_str();
                let result = reload(&state, tls.as_deref(), &sources, &started, now == before);
                // A config may name another policy, which may name other files: look at them
                // from now on, whether they loaded or not. (Read after the reload: a change in
                // between reloads again.)
                let files = files_read(&state, &sources);
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
                        watch.rewatch();
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
            open_store_for_banner(&state).await;
        }
    });
}

/// How often a store of consent records that a banner needs, and that could not be opened, is
/// tried again.
const STORE_RETRY: Duration = Duration::from_secs(30);

/// Whether a site's banner is on and no store of consent records is open.
fn store_wanted(state: &State) -> bool {
    state.consents.get().is_none()
        && state
            .current
            .load()
            .sites
            .iter()
            .any(|s| s.policy.banner.is_some())
}

/// Opens the store of consent records when a reload has switched a site's banner on and none
/// was opened at start: the banner is shown, and its choices recorded, from then on. The store is
/// the one `consent_records` names in the config in force (once open, a change to it takes a
/// restart). A store that cannot be opened is logged and tried again on the next reload or
/// after `STORE_RETRY`; until then the banner stays hidden and the preference centre answers
/// 503, as at start.
async fn open_store_for_banner(state: &State) {
    let wanted = store_wanted(state);
    state.metrics.banner_hidden(wanted);
    if !wanted {
        return;
    }
    let records = state.current.load().settings.consent_records.clone();
    let opened = open_consent_store(state, &records).await;
    state.metrics.banner_hidden(opened.is_err());
    match opened {
        Ok(()) => tracing::info!("the banner is switched on; consent records are opened"),
        Err(e) => tracing::error!(
            "the banner is switched on, but the consent records cannot be opened, so it stays \
             hidden (tried again in {} s, or at the next reload): {e}",
            STORE_RETRY.as_secs()
        ),
    }
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

impl Watch {
    /// Watches every directory again. A directory reached through a symbolic link (a Kubernetes
    /// volume's `keys -> ..data/keys`) is replaced by the next update of the volume, and its
    /// watch goes with it: watching its path again follows the link to the new one.
    fn rewatch(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for dir in &self.dirs {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch: reload with SIGHUP");
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

/// Validates the config and policies as they are now on disk and puts them in force. What a
/// running process cannot change (listen addresses, whether there are `sites` or one upstream,
/// whether the listener has TLS, the log file, the upstream CA) keeps its value from startup; a
/// change to it is reported. Sites may be added, removed or changed (names, upstream,
/// certificates) when every new site's policy and the whole certificate list load; otherwise
/// the sites in force stay. Each site's policy is judged alone: one that does not load keeps
/// that site's policy in force, and the others take theirs. When the config (or the key file)
/// does not load, or no site's policy does, nothing changes and the error is returned.
/// `unchanged`: no file has changed since the last look, for the log. A site's rewrite memo
/// stays when its policy's contents are the same as those in force (its pages were rewritten
/// under the same rules).
pub fn reload(
    state: &State,
    tls: Option<&tls::Tls>,
    sources: &Sources,
    started: &Settings,
    unchanged: bool,
) -> Result<(), String> {
    let (mut new, secret) = sources
        .load_settings()
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
    let current = state.current.load();
    // Between one upstream and `sites` the listener's routing changes: that takes a restart.
    let mode_changed = new.virtual_hosts != started.virtual_hosts;
    // The listener is TLS or not from start; its certificates may change.
    let tls_changed = new.tls.is_some() != started.tls.is_some();
    let fixed = [
        changed!(listen),
        changed!(admin_listen),
        ("sites", mode_changed),
        ("tls", tls_changed),
        changed!(upstream_ca),
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
        // Read when the store is opened: at start, or after the reload that switches a banner
        // on. Once it is open, the snapshot keeps the settings it was opened with (below).
        (
            "consent_records",
            state.consents.get().is_some()
                && new.consent_records != current.settings.consent_records,
        ),
    ];
    for (name, changed) in fixed {
        if changed {
            let name = match name {
                "sites" => "`sites` (one upstream or several sites)".to_string(),
                "tls" => "`tls` (a listener with or without TLS)".to_string(),
                name => format!("`{name}`"),
            };
            tracing::warn!("reload: {name} changed; it takes effect on restart");
        }
    }
    let old = &current.settings;
    new.listen = old.listen;
    new.admin_listen = old.admin_listen;
    new.upstream_ca = old.upstream_ca.clone();
    new.log = old.log.clone();
    if state.consents.get().is_some() {
        new.consent_records = old.consent_records.clone();
    }
    if tls_changed {
        new.tls = old.tls.clone();
    }
    let load_policies = |s: &Settings| -> Vec<Result<CompiledPolicy, String>> {
        s.sites.iter().map(|site| site_policy(s, site)).collect()
    };
    let load_certificates = |s: &Settings| match (tls, &s.tls) {
        (Some(_), Some(files)) => Some(tls::Tls::prepare(files)),
        _ => None,
    };
    // The sites the config asks for, if every one of their policies and certificates loads;
    // else the sites in force, each with the policy file its entry names now.
    let mut failed = false;
    let mut kept = mode_changed || layout(&new) == layout(old);
    let mut loaded = Vec::new();
    let mut certificates = None;
    if !kept {
        loaded = load_policies(&new);
        certificates = load_certificates(&new);
        let errors: Vec<&String> = loaded
            .iter()
            .filter_map(|p| p.as_ref().err())
            .chain(certificates.as_ref().and_then(|c| c.as_ref().err()))
            .collect();
        if !errors.is_empty() {
            failed = true;
            kept = true;
            tracing::error!(
                "reload: the sites stay as they are, since not all of the new ones load: {}",
                errors
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    if kept {
        // A site in both sets keeps its policy file: what was loaded for the new set serves.
        let mut tried: Vec<(String, Result<CompiledPolicy, String>)> = new
            .sites
            .iter()
            .map(|s| s.name.clone())
            .zip(std::mem::take(&mut loaded))
            .collect();
        keep_sites(&mut new, old);
        loaded = new
            .sites
            .iter()
            .map(
                |site| match tried.iter().position(|(name, _)| *name == site.name) {
                    Some(i) => tried.swap_remove(i).1,
                    None => site_policy(&new, site),
                },
            )
            .collect();
        certificates = load_certificates(&new);
    }
    if loaded.iter().all(Result::is_err) {
        state.metrics.reloaded(false);
        let errors: Vec<String> = loaded.into_iter().filter_map(Result::err).collect();
        return Err(errors.join("; "));
    }
    let certificates = match certificates {
        Some(Err(e)) => {
            failed = true;
            tracing::error!("reload: the certificates in force stay: {e}");
            None
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    // The same keys (the same daily HMAC key, the same form key) unless `client_ip` or the key
    // file's secret changed; the same form key unless the secret changed.
    let (keys, change) = current.keys.reloaded(&new.client_ip, secret);
    match change {
        KeysChange::Nothing => {}
        KeysChange::Mode => tracing::info!("reload: client_ip changed"),
        KeysChange::Secret => tracing::info!(
            "reload: the key file's secret changed: new client address pseudonyms and a new \
             banner form key"
        ),
    }
    let mut policies = Vec::with_capacity(loaded.len());
    let mut sites = Vec::with_capacity(loaded.len());
    for (site, policy) in std::mem::take(&mut new.sites).into_iter().zip(loaded) {
        let before = current.site(&site.name);
        match (policy, before) {
            (Ok(policy), _) => {
                tracing::info!(
                    "reloaded: {}policy {} ({} mode){}",
                    if new.virtual_hosts {
                        format!("site {}: ", site.name)
                    } else {
                        String::new()
                    },
                    policy.source,
                    policy.mode.as_str(),
                    if unchanged { ", no file changed" } else { "" }
                );
                // The memo stays when the rules are those its pages were rewritten under.
                let memo = before
                    .filter(|b| {
                        policy.digest == b.policy.digest
                            && new.limits.rewrite_cache == old.limits.rewrite_cache
                    })
                    .and_then(|b| b.memo.clone());
                policies.push((Arc::new(policy), memo));
            }
            (Err(e), Some(before)) => {
                failed = true;
                tracing::error!("reload: {e}; the policy in force for this site stays");
                policies.push((before.policy.clone(), before.memo.clone()));
            }
            // Not met: the sites kept are those in force, and new ones are taken only when
            // all of their policies load.
            (Err(e), None) => {
                failed = true;
                tracing::error!("reload: site {} is not added: {e}", site.name);
                continue;
            }
        }
        sites.push(site);
    }
    new.sites = sites;
    let mut gone = Vec::new();
    if !kept {
        for site in new.sites.iter().filter(|s| current.site(&s.name).is_none()) {
            tracing::info!(
                "reload: site {} added ({})",
                site.name,
                site.server_names.join(", ")
            );
            state.metrics.show_site(&site.name);
        }
        for removed in old
            .sites
            .iter()
            .filter(|s| !new.sites.iter().any(|n| n.name == s.name))
        {
            tracing::info!("reload: site {} removed", removed.name);
            gone.push(removed.name.clone());
        }
    }
    let snapshot = Arc::new(proxy::Snapshot::new(new, policies, keys, &state.metrics));
    state.current.store(snapshot.clone());
    if let (Some(tls), Some(certificates)) = (tls, certificates) {
        tls.install(certificates);
        if !kept {
            warn_uncovered(&snapshot.settings, tls);
        }
    }
    state
        .inventory
        .retain_sites(snapshot.sites.iter().map(|s| &*s.name));
    for name in gone {
        state.metrics.forget_site(&name);
    }
    // Counted once in force, so that whoever watches the count sees the new policy.
    state.metrics.reloaded(!failed);
    Ok(())
}

/// What a reload changes of the sites beside their policies: which sites there are, their
/// server names, upstreams and certificates.
fn layout(s: &Settings) -> impl PartialEq + use<> {
    let sites: Vec<_> = s
        .sites
        .iter()
        .map(|x| {
            (
                x.name.clone(),
                x.server_names.clone(),
                x.upstream.clone(),
                x.tls.clone(),
            )
        })
        .collect();
    (
        sites,
        s.virtual_hosts,
        s.server_names.clone(),
        s.tls.clone(),
    )
}

/// Puts the sites of `old` into `new`, each with the policy file its entry in `new` names (or
/// its own, when `new` has no entry of that name).
fn keep_sites(new: &mut Settings, old: &Settings) {
    let sites = old
        .sites
        .iter()
        .map(|site| {
            let mut site = site.clone();
            if let Some(n) = new.sites.iter().find(|n| n.name == site.name) {
                site.policy = n.policy.clone();
            }
            site
        })
        .collect();
    new.sites = sites;
    new.virtual_hosts = old.virtual_hosts;
    new.server_names = old.server_names.clone();
    new.tls = old.tls.clone();
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

    /// A Kubernetes Secret volume with the key in a subdirectory: `keys -> ..data/keys`,
    /// `..data -> ..TIMESTAMP`. Each update writes a new timestamped directory, swaps `..data`
    /// and deletes the old one; every update is seen, not only the first.
    #[cfg(unix)]
    #[tokio::test]
    async fn every_update_of_a_volume_behind_symlinks_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let version = |n: u32| {
            let v = root.join(format!("..2026_11_30_{n:02}"));
            std::fs::create_dir_all(v.join("keys")).unwrap();
            std::fs::write(
                v.join("keys/client-ip.key"),
                format!("secret number {n:02} ......."),
            )
            .unwrap();
            std::os::unix::fs::symlink(&v, root.join("..data_tmp")).unwrap();
            std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
            if n > 1 {
                std::fs::remove_dir_all(root.join(format!("..2026_11_30_{:02}", n - 1))).unwrap();
            }
        };
        version(1);
        std::os::unix::fs::symlink("..data/keys", root.join("keys")).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watch = Watch::new(tx);
        watch.add(&root.join("keys/client-ip.key"));
        for n in 2..5 {
            version(n);
            let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert_eq!(seen.ok().flatten(), Some(Trigger::FileEvent), "update {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            // As after each reload.
            watch.rewatch();
        }
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
