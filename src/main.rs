//! The command line: serve, check, demo.

use clap::{Parser, Subcommand};
use consent_proxy::audit::{LogSink, Secret};
use consent_proxy::config::{self, Overrides};
use consent_proxy::policy::CompiledPolicy;
use consent_proxy::proxy::{tls, upstream};
use consent_proxy::server::{self, Sources, load_policy};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc: the proxy allocates and frees small objects on every request (headers, records,
/// body frames), which glibc's allocator serves more slowly; it also gives freed memory back by
/// itself (see `memory::trim`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "consent-proxy",
    version,
    about = "A reverse proxy that enforces cookie consent, Do Not Track and Global Privacy Control"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in front of an upstream site. Each setting comes from its flag, else its
    /// environment variable, else the config file, else its default.
    Serve {
        /// Address to listen on, IP:PORT (default 127.0.0.1:8080). A host name (localhost:8080)
        /// is resolved: its first IPv4 address is used, else its first address.
        #[arg(long, env = "CONSENT_PROXY_LISTEN", value_parser = consent_proxy::config::listen_addr)]
        listen: Option<SocketAddr>,
        /// Address of the admin listener: /healthz, /readyz, /metrics, /cookies
        /// (default 127.0.0.1:9901). A host name is resolved as for --listen.
        #[arg(long, env = "CONSENT_PROXY_ADMIN_LISTEN", value_parser = consent_proxy::config::listen_addr)]
        admin_listen: Option<SocketAddr>,
        /// The site to protect, e.g. http://127.0.0.1:3000.
        #[arg(long, env = "CONSENT_PROXY_UPSTREAM")]
        upstream: Option<String>,
        /// Policy file (YAML). Without it, the built-in policy applies.
        #[arg(long, env = "CONSENT_PROXY_POLICY")]
        policy: Option<PathBuf>,
        /// Config file (YAML).
        #[arg(long, env = "CONSENT_PROXY_CONFIG")]
        config: Option<PathBuf>,
        /// Worker threads (default: one per CPU).
        #[arg(long, env = "CONSENT_PROXY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
    },
    /// Validate a policy (and a config file, if given) and print a summary.
    ///
    /// The policy checked is the one `serve` would use with the same options: --policy if
    /// given, else the policy the config file names, else the built-in one. Prints
    /// `FILE: ok` and a summary and exits 0, or prints `FILE:LINE:COLUMN: what is wrong` and
    /// exits 1.
    Check {
        /// Policy file to validate. Without it, the policy the --config file names is checked,
        /// else the built-in one.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Config file to validate, including that its TLS certificate, key and CA files load.
        /// The policy it names is checked too, unless --policy is given.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a sample site and the proxy in front of it, and show what the proxy does.
    Demo {
        /// Address for the proxy (default 127.0.0.1:8080). A host name is resolved as for
        /// `serve --listen`.
        #[arg(long, value_parser = consent_proxy::config::listen_addr)]
        listen: Option<SocketAddr>,
        /// Address of the admin listener: /healthz, /readyz, /metrics, /cookies
        /// (default 127.0.0.1:9901).
        #[arg(long, env = "CONSENT_PROXY_ADMIN_LISTEN", value_parser = consent_proxy::config::listen_addr)]
        admin_listen: Option<SocketAddr>,
        /// Run the walkthrough, print what each request got and exit instead of serving (no
        /// admin listener).
        #[arg(long)]
        once: bool,
    },
}

/// glibc serves allocations of 128 KiB and more (read buffers of large answers, gathered
/// documents) from their own mappings only until the first is freed; then it raises that
/// threshold and serves them from its heaps, which keep the memory after a burst. A fixed
/// threshold keeps them mapped, so memory returns to its baseline after the burst.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets a parameter of the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// mimalloc keeps freed pages for 10 ms before it returns them, and commits the memory of its
/// arenas as it reserves them: at 256 connections, each with a page gathered and rewritten, the
/// proxy's resident memory reached 94 MiB where it is 60 MiB with freed pages returned at once
/// and arena memory committed as it is used, at no measurable cost per request.
///
/// It also asks the kernel for transparent huge pages on its arenas (`MADV_HUGEPAGE`), before
/// `main` runs. The kernel's khugepaged then refills, every 10 s, the 4 KiB pages that mimalloc
/// returned, 2 MiB at a time: an idle proxy grew from 29 to 53 MiB of anonymous memory in 70 s
/// after a burst of 10,000 requests (tests/faults.rs). `no_huge_pages` turns them off for the
/// process, as `MIMALLOC_ALLOW_THP=0` would.
fn tune_mimalloc() {
    // mimalloc.h (v2): `mi_option_arena_eager_commit` and `mi_option_purge_delay`.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // mimalloc's own variables (`MIMALLOC_PURGE_DELAY`, …) override these.
    let unset = |name: &str| std::env::var_os(name).is_none();
    // SAFETY: setting an option of the allocator, before any thread starts.
    unsafe {
        if unset("MIMALLOC_ARENA_EAGER_COMMIT") {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
        if unset("MIMALLOC_PURGE_DELAY") {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
    if unset("MIMALLOC_ALLOW_THP") {
        no_huge_pages();
    }
}

/// Transparent huge pages off for the whole process, the mappings made so far included.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of the process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}

fn main() -> ExitCode {
    tune_allocator();
    tune_mimalloc();
    install_panic_hook();
    init_diagnostics();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { policy, config } => check(policy.as_deref(), config.as_deref()),
        Command::Serve {
            listen,
            admin_listen,
            upstream,
            policy,
            config,
            workers,
        } => serve(
            Overrides {
                listen,
                admin_listen,
                upstream,
                policy,
            },
            config.as_deref(),
            workers,
        ),
        Command::Demo {
            listen,
            admin_listen,
            once,
        } => run_async(consent_proxy::demo::run(listen, admin_listen, once), None),
    }
}

/// Diagnostics on stderr, filtered by `RUST_LOG` (default `info`), each place rate-limited.
fn init_diagnostics() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let limit = consent_proxy::logs::RateLimit::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with(limit.clone())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                // A closed stderr loses the lines quietly (the default reports it on stderr,
                // which panics when stderr is closed).
                .log_internal_errors(false),
        )
        .init();
    limit.spawn_summaries();
}

/// Panic messages can carry request data; print only where the panic happened.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        complain(format_args!("consent-proxy: internal error{at}"));
    }));
}

fn run_async(
    f: impl std::future::Future<Output = Result<(), String>>,
    workers: Option<u16>,
) -> ExitCode {
    let mut builder = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if let Some(n) = workers.filter(|&n| n > 1) {
        builder.worker_threads(usize::from(n));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            complain(format_args!("consent-proxy: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            complain(format_args!("consent-proxy: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Prints a line of a command's answer on stdout. A closed stdout (`| head`, `| true`) ends the
/// answer quietly, as Unix tools do; the exit status still says what was found.
fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints a message on stderr; a closed stderr loses it quietly.
fn complain(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn check(policy_path: Option<&Path>, config_path: Option<&Path>) -> ExitCode {
    let mut policy_path = policy_path.map(Path::to_path_buf);
    if let Some(c) = config_path {
        match config::load_file(c) {
            Ok(file) => {
                // The files the config names must load too.
                let site_tls = file.sites.iter().flatten().filter_map(|s| s.tls.as_ref());
                let tls = file
                    .tls
                    .iter()
                    .chain(site_tls)
                    .try_for_each(|t| tls::Tls::new(t).map(|_| ()));
                let ca = file
                    .upstream_ca
                    .as_deref()
                    .map(upstream::trusted_cas)
                    .transpose();
                let key = file.client_ip.key_file().map(Secret::read).transpose();
                if let Err(e) = tls.and(ca.map(|_| ())).and(key.map(|_| ())) {
                    say(format_args!("{}: {e}", c.display()));
                    return ExitCode::FAILURE;
                }
                say(format_args!("{}: ok", c.display()));
                if let Some(sites) = file.sites {
                    // Each site's policy; then the one given with --policy, if any.
                    if !check_sites(&sites) {
                        return ExitCode::FAILURE;
                    }
                    if policy_path.is_none() {
                        return ExitCode::SUCCESS;
                    }
                }
                policy_path = policy_path.or(file.policy);
            }
            Err(e) => {
                say(&e);
                return ExitCode::FAILURE;
            }
        }
    }
    match load_policy(policy_path.as_deref()) {
        Ok(p) => {
            say(check_summary(&p));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(&e);
            ExitCode::FAILURE
        }
    }
}

/// Checks each site's policy, and prints each site's summary under its name. False when one
/// does not load.
fn check_sites(sites: &[config::SiteFile]) -> bool {
    let mut ok = true;
    for site in sites {
        match load_policy(site.policy.as_deref()) {
            Ok(p) => {
                say(format_args!(
                    "site {} ({}) → {}://{}:",
                    site.name,
                    site.server_names.join(", "),
                    site.upstream.scheme,
                    site.upstream.authority
                ));
                say(check_summary(&p));
            }
            Err(e) => {
                say(format_args!("site {}: {e}", site.name));
                ok = false;
            }
        }
    }
    ok
}

/// The policy's summary, with its default said as the policy says it: `opt-in` or `opt-out`,
/// and what that grants a visitor no consent source speaks for.
fn check_summary(p: &CompiledPolicy) -> String {
    use consent_proxy::category::{Category, CategorySet};
    let grants = |set: CategorySet| {
        if set == CategorySet::ALL {
            "opt-out (without consent: every category)".to_string()
        } else if set == CategorySet::NECESSARY {
            "opt-in (without consent: necessary only)".to_string()
        } else {
            let names: Vec<&str> = set.iter().map(Category::as_str).collect();
            format!("without consent: {}", names.join(","))
        }
    };
    let mut line = format!("  default: {}", grants(p.consent.default_grant));
    if let Some(r) = &p.regions {
        let opt_out = r
            .defaults
            .values()
            .filter(|s| **s == CategorySet::ALL)
            .count();
        let _ = write!(
            line,
            "; by {}: opt-out in {opt_out} countries, opt-in in {}",
            r.header.as_str(),
            r.defaults.len() - opt_out
        );
    }
    p.summary()
        .lines()
        .map(|l| {
            if l.starts_with("  default: ") {
                line.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn serve(overrides: Overrides, config_path: Option<&Path>, workers: Option<u16>) -> ExitCode {
    let sources = Sources {
        config: config_path.map(Path::to_path_buf),
        overrides,
    };
    let loaded = match sources.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            complain(format_args!("consent-proxy: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let sink = match &loaded.settings.log.file {
        None => LogSink::stdout(),
        Some(path) => match LogSink::daily_file(path, loaded.settings.log.retention_days) {
            Ok(s) => s,
            Err(e) => {
                complain(format_args!("consent-proxy: {e}"));
                return ExitCode::FAILURE;
            }
        },
    };
    let sink = Arc::new(sink);
    let code = run_async(server::run(sources, loaded, sink.clone()), workers);
    // The runtime is gone: every request task has ended and written its record. Flush them.
    sink.close();
    tracing::info!("stopped");
    code
}
