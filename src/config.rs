//! Process settings: listener, upstream, policy file, trusted proxies, client-address
//! minimization, timeouts, limits. Read from an optional YAML file; command-line flags override it.

use crate::audit::IpMode;
use crate::filter::underscores::Underscores;
use crate::located::{LocatedError, read_yaml};
use http::uri::{Authority, Scheme};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The admin listener: `/healthz`, `/readyz`, `/metrics`, `/cookies`.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting to the upstream; exceeded → 504.
    #[serde(with = "humantime_serde", default = "Timeouts::connect")]
    pub upstream_connect: Duration,
    /// From sending the request to the upstream's response headers; exceeded → 504.
    #[serde(with = "humantime_serde", default = "Timeouts::response")]
    pub upstream_response: Duration,
    /// Waiting for the next piece of an upstream response body; exceeded → the response is
    /// cut off and logged with `body_error`.
    #[serde(with = "humantime_serde", default = "Timeouts::body_idle")]
    pub upstream_body_idle: Duration,
    /// Reading a client's request headers (against slowloris). For HTTP/1.1 this also bounds
    /// how long a keep-alive connection may sit idle: the wait for the next request's head is
    /// timed from when the previous response ended.
    #[serde(with = "humantime_serde", default = "Timeouts::header_read")]
    pub header_read: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    #[serde(with = "humantime_serde", default = "Timeouts::shutdown_grace")]
    pub shutdown_grace: Duration,
}

impl Timeouts {
    fn connect() -> Duration {
        Duration::from_secs(5)
    }
    fn response() -> Duration {
        Duration::from_secs(30)
    }
    fn body_idle() -> Duration {
        Duration::from_secs(60)
    }
    fn header_read() -> Duration {
        Duration::from_secs(10)
    }
    fn shutdown_grace() -> Duration {
        Duration::from_secs(25)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            upstream_connect: Timeouts::connect(),
            upstream_response: Timeouts::response(),
            upstream_body_idle: Timeouts::body_idle(),
            header_read: Timeouts::header_read(),
            shutdown_grace: Timeouts::shutdown_grace(),
        }
    }
}

/// Memory bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// What the HTML rewriter may hold for one response (a tag, an attribute, a held inline
    /// script being parsed). A document that needs more is cut off there: fail closed.
    #[serde(
        default = "Limits::rewrite_memory",
        deserialize_with = "Limits::deserialize_rewrite_memory"
    )]
    pub rewrite_memory: usize,
    /// Rewritten documents remembered, in bytes held (documents and their rewrites): a page
    /// served again byte for byte under the same decision is not parsed again. 0 turns it off.
    #[serde(
        default = "Limits::rewrite_cache",
        deserialize_with = "Limits::deserialize_rewrite_cache"
    )]
    pub rewrite_cache: usize,
    /// The largest request head (request line and headers) a client may send; larger → 431.
    #[serde(
        default = "Limits::max_header_size",
        deserialize_with = "Limits::deserialize_header_size"
    )]
    pub max_header_size: usize,
    /// Client connections served at once; more wait in the kernel's accept queue.
    #[serde(default = "Limits::max_connections")]
    pub max_connections: usize,
    /// Requests in flight in the whole proxy, from their head to the end of their answer (or
    /// of their upstream exchange, if the client left first); more are answered 503 at once.
    #[serde(
        default = "Limits::max_requests",
        deserialize_with = "Limits::deserialize_at_least_one"
    )]
    pub max_requests: usize,
    /// Streams an HTTP/2 client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS), and
    /// upstream exchanges any one client connection may have running at once.
    #[serde(
        default = "Limits::http2_max_streams",
        deserialize_with = "Limits::deserialize_at_least_one"
    )]
    pub http2_max_streams: usize,
    /// Requests in flight an HTTP/2 client may cancel within 10 s; one more ends its
    /// connection with GOAWAY ENHANCE_YOUR_CALM.
    #[serde(default = "Limits::http2_max_resets")]
    pub http2_max_resets: u32,
    /// Idle keep-alive connections to the upstream kept for reuse; more are closed as they
    /// become idle (after a burst, the pool shrinks back to this at once, not after 60 s).
    #[serde(default = "Limits::upstream_idle_connections")]
    pub upstream_idle_connections: usize,
}

impl Limits {
    /// Below this the rewriter could not hold an ordinary start tag.
    pub const MIN_REWRITE_MEMORY: u64 = 64 * 1024;
    pub const MAX_REWRITE_MEMORY: u64 = 1 << 30;

    fn rewrite_memory() -> usize {
        16 << 20
    }

    fn rewrite_cache() -> usize {
        16 << 20
    }

    fn max_header_size() -> usize {
        64 << 10
    }

    fn max_connections() -> usize {
        10_000
    }

    fn max_requests() -> usize {
        1024
    }

    fn http2_max_streams() -> usize {
        200
    }

    fn http2_max_resets() -> u32 {
        100
    }

    fn upstream_idle_connections() -> usize {
        128
    }

    fn deserialize_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = usize::deserialize(d)?;
        if n == 0 {
            return Err(serde::de::Error::custom("must be at least 1"));
        }
        Ok(n)
    }

    fn deserialize_header_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let size = bytesize::ByteSize::deserialize(d)?.as_u64();
        if !(8 * 1024..=1 << 20).contains(&size) {
            return Err(serde::de::Error::custom(format!(
                "max_header_size must be between 8 KiB and 1 MiB, not {size} bytes"
            )));
        }
        usize::try_from(size).map_err(serde::de::Error::custom)
    }

    fn deserialize_rewrite_memory<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<usize, D::Error> {
        let size = bytesize::ByteSize::deserialize(d)?.as_u64();
        if !(Limits::MIN_REWRITE_MEMORY..=Limits::MAX_REWRITE_MEMORY).contains(&size) {
            return Err(serde::de::Error::custom(format!(
                "rewrite_memory must be between 64 KiB and 1 GiB, not {size} bytes"
            )));
        }
        usize::try_from(size).map_err(serde::de::Error::custom)
    }

    fn deserialize_rewrite_cache<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<usize, D::Error> {
        let size = bytesize::ByteSize::deserialize(d)?.as_u64();
        if size > Limits::MAX_REWRITE_MEMORY {
            return Err(serde::de::Error::custom(format!(
                "rewrite_cache must be 1 GiB at most (0 turns it off), not {size} bytes"
            )));
        }
        usize::try_from(size).map_err(serde::de::Error::custom)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rewrite_memory: Limits::rewrite_memory(),
            rewrite_cache: Limits::rewrite_cache(),
            max_header_size: Limits::max_header_size(),
            max_connections: Limits::max_connections(),
            max_requests: Limits::max_requests(),
            http2_max_streams: Limits::http2_max_streams(),
            http2_max_resets: Limits::http2_max_resets(),
            upstream_idle_connections: Limits::upstream_idle_connections(),
        }
    }
}

/// One certificate chain and its key, PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// TLS on the main listener.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Chosen by SNI among the names each certificate covers; the first is the default.
    pub certificates: Vec<CertificateFiles>,
}

/// Where decision records go.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A file, rotated daily (`FILE.YYYY-MM-DD`); without it, stdout.
    pub file: Option<PathBuf>,
    /// Days of rotated files kept; older ones are deleted.
    #[serde(default = "LogSettings::retention_days")]
    pub retention_days: u32,
}

impl LogSettings {
    fn retention_days() -> u32 {
        14
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            file: None,
            retention_days: LogSettings::retention_days(),
        }
    }
}

/// Where the records of visitors' consent choices are kept: each banner choice is stored
/// durably before it is answered, as proof of consent (GDPR Art. 7(1)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStore {
    pub backend: RecordBackend,
    /// Records older than this are deleted (checked at start and every hour).
    pub retention: Duration,
}

/// The database that holds consent records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBackend {
    /// A SQLite file, created if missing.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database; the table is created if missing.
    Postgres { url: PostgresUrl },
}

/// A PostgreSQL connection URL (or `key=value` string), given inline or in a file. It may hold a
/// password, so it is never printed: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub enum PostgresUrl {
    Inline(String),
    /// A file holding the URL (surrounding whitespace is trimmed), e.g. a mounted secret. Read
    /// when the store is opened.
    File(PathBuf),
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostgresUrl::Inline(_) => f.write_str("Inline(<redacted>)"),
            PostgresUrl::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

impl RecordStore {
    /// The SQLite file when none is configured, relative to the working directory.
    pub const DEFAULT_SQLITE_PATH: &str = "consent-records.db";

    /// Three years (of 365.25 days): the usual limitation period for civil claims (e.g. the
    /// regular period of § 195 BGB), during which the site may have to prove that a visitor
    /// consented.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3 * 31_557_600);
}

impl Default for RecordStore {
    fn default() -> Self {
        RecordStore {
            backend: RecordBackend::Sqlite {
                path: PathBuf::from(RecordStore::DEFAULT_SQLITE_PATH),
            },
            retention: RecordStore::DEFAULT_RETENTION,
        }
    }
}

/// Which database `consent_records` uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    #[default]
    Sqlite,
    Postgres,
}

/// The `consent_records` section as written, checked: a path only for SQLite, exactly one of
/// `url` and `url_file` for PostgreSQL. The default path is filled in by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStoreFile {
    pub backend: RecordBackendFile,
    pub retention: Duration,
}

/// [`RecordBackend`] before defaults: a relative `path` given in the file is relative to the
/// file's directory (like every path of the file); the default is relative to the working
/// directory, since the config's own directory is often a read-only mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBackendFile {
    Sqlite { path: Option<PathBuf> },
    Postgres { url: PostgresUrl },
}

impl Default for RecordStoreFile {
    fn default() -> Self {
        RecordStoreFile {
            backend: RecordBackendFile::Sqlite { path: None },
            retention: RecordStore::DEFAULT_RETENTION,
        }
    }
}

impl RecordStoreFile {
    fn resolve(self) -> RecordStore {
        RecordStore {
            backend: match self.backend {
                RecordBackendFile::Sqlite { path } => RecordBackend::Sqlite {
                    path: path.unwrap_or_else(|| RecordStore::DEFAULT_SQLITE_PATH.into()),
                },
                RecordBackendFile::Postgres { url } => RecordBackend::Postgres { url },
            },
            retention: self.retention,
        }
    }
}

impl<'de> Deserialize<'de> for RecordStoreFile {
    /// Checked at the section (not with `try_from`), so that an error points at the section
    /// rather than at the top of the file.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::located::checked_section::<D, RecordStoreFields, RecordStoreFile>(
            d,
            "the consent_records settings (store, path, url, url_file, retention)",
        )
    }
}

/// `consent_records` exactly as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordStoreFields {
    #[serde(default)]
    store: StoreKind,
    path: Option<PathBuf>,
    url: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(with = "humantime_serde", default = "RecordStoreFields::retention")]
    retention: Duration,
}

impl RecordStoreFields {
    fn retention() -> Duration {
        RecordStore::DEFAULT_RETENTION
    }
}

impl TryFrom<RecordStoreFields> for RecordStoreFile {
    type Error = String;

    fn try_from(f: RecordStoreFields) -> Result<Self, String> {
        if f.retention.is_zero() {
            return Err("retention must be longer than 0".into());
        }
        let backend = match f.store {
            StoreKind::Sqlite => {
                if f.url.is_some() || f.url_file.is_some() {
                    return Err("`url` and `url_file` are for `store: postgres`; \
                         with `store: sqlite` (the default) give `path`"
                        .into());
                }
                if f.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    return Err("path is empty".into());
                }
                RecordBackendFile::Sqlite { path: f.path }
            }
            StoreKind::Postgres => {
                if f.path.is_some() {
                    return Err("`path` is for `store: sqlite`; \
                         with `store: postgres` give `url` or `url_file`"
                        .into());
                }
                let url = match (f.url, f.url_file) {
                    (Some(_), Some(_)) => {
                        return Err("give `url` or `url_file`, not both".into());
                    }
                    (None, None) => {
                        return Err("`store: postgres` needs `url` \
                             (postgres://user@host:5432/db) or `url_file` (a file holding it)"
                            .into());
                    }
                    (Some(u), None) if u.trim().is_empty() => {
                        return Err("url is empty".into());
                    }
                    (Some(u), None) => PostgresUrl::Inline(u.trim().to_string()),
                    (None, Some(p)) => PostgresUrl::File(p),
                };
                RecordBackendFile::Postgres { url }
            }
        };
        Ok(RecordStoreFile {
            backend,
            retention: f.retention,
        })
    }
}

/// Parses a listen address: `IP:PORT`, or `HOST:PORT` with the host name resolved here. Of the
/// addresses a name resolves to, the first IPv4 address is taken, else the first: `localhost`
/// is `127.0.0.1`, as in the default addresses, whatever order the resolver gives.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    const HINT: &str = "give an IP address and port, e.g. 127.0.0.1:8080 or [::1]:8080, or a \
                        host name and port, e.g. localhost:8080";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("no port: {HINT}"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("no host: {HINT}"));
    }
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!("`{port}` is not a port number: {HINT}"));
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}; {HINT}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{host}` resolves to no address; {HINT}"))
}

/// A listen address in the config file: as on the command line, an IP address and port or a
/// host name and port.
fn de_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<SocketAddr>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an address and port, e.g. 127.0.0.1:8080 or localhost:8080")
        }
        // Judged while the parser stands at the value, so that an error carries its position.
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            listen_addr(s).map(Some).map_err(E::custom)
        }
    }
    d.deserialize_str(V)
}

/// The config file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, deserialize_with = "de_listen")]
    pub listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "de_listen")]
    pub admin_listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    /// PEM bundle of the CAs that may sign an https upstream's certificate (instead of the
    /// built-in Mozilla roots).
    pub upstream_ca: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub log: LogSettings,
    /// Relative paths are relative to the config file's directory.
    pub policy: Option<PathBuf>,
    /// Addresses or networks whose `X-Forwarded-*` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    pub client_ip: IpMode,
    /// Host names this proxy serves; an absolute-form request (`GET http://host/ HTTP/1.1`) for
    /// any other host is refused.
    #[serde(default)]
    pub server_names: Vec<String>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    /// Request header names with `_`: dropped (the default) or passed to the site.
    #[serde(default)]
    pub underscores_in_headers: Underscores,
    /// Where consent records are stored (SQLite by default).
    #[serde(default)]
    pub consent_records: RecordStoreFile,
    /// Several sites in one proxy, each chosen by the request's host. Without it, the file's
    /// `upstream`, `policy` and `server_names` make the one site.
    pub sites: Option<Vec<SiteFile>>,
}

/// One entry of `sites`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// The site's name in the decision log (`site`) and the metrics (`site` label).
    #[serde(deserialize_with = "de_site_name")]
    pub name: String,
    /// The host names the site answers, matched on `Host` (or the HTTP/2 authority) and on the
    /// TLS server name: exact names, or `*.example.com` for any one label before it.
    #[serde(deserialize_with = "de_server_names")]
    pub server_names: Vec<String>,
    #[serde(deserialize_with = "de_upstream")]
    pub upstream: Upstream,
    /// Relative paths are relative to the config file's directory.
    pub policy: Option<PathBuf>,
    /// The site's certificates, chosen by SNI with every other site's.
    pub tls: Option<TlsFiles>,
}

/// Whether `name` can be a site's name (it goes into log records and metric labels as it is),
/// or what is wrong with it.
pub fn check_site_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "site name `{name}`: use 1 to 64 of a-z, 0-9, `-`, `_` and `.`"
        ))
    }
}

fn de_site_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    check_site_name(&name).map_err(serde::de::Error::custom)?;
    Ok(name)
}

/// A site's server names, lower-cased: at least one, each a host name or `*.` and one.
fn de_server_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(serde::de::Error::custom(
            "list at least one server name (e.g. [www.example.com, example.com])",
        ));
    }
    names
        .into_iter()
        .map(|n| {
            crate::sites::ServerName::parse(&n)
                .map(|_| n.to_ascii_lowercase())
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

/// An upstream URL, judged where it is written.
fn de_upstream<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Upstream, D::Error> {
    let s = String::deserialize(d)?;
    Upstream::parse(&s).map_err(serde::de::Error::custom)
}

/// The upstream origin: where every request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Upstream {
    /// Parses `http://host[:port]` or `https://host[:port]`.
    pub fn parse(s: &str) -> Result<Upstream, String> {
        let uri: http::Uri = s
            .parse()
            .map_err(|e| format!("upstream `{s}` is not a URL: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("upstream `{s}` needs a scheme, e.g. http://{s}"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "upstream `{s}`: only http:// and https:// upstreams are supported (the scheme was {scheme})"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("upstream `{s}` has no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "upstream `{s}`: a path or query is not supported; give only scheme, host and port"
            ));
        }
        Ok(Upstream { scheme, authority })
    }
}

/// One site the proxy fronts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSettings {
    pub name: String,
    /// Empty for the one site of a config without `sites`: it answers any host.
    pub server_names: Vec<String>,
    pub upstream: Upstream,
    /// Without it, the built-in policy.
    pub policy: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
}

impl SiteSettings {
    /// The name of the one site of a config without `sites`.
    pub const SINGLE: &str = "default";
}

/// Everything the server needs, resolved from file and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream_ca: Option<PathBuf>,
    /// The listener's certificates: the file's `tls`, then each site's.
    pub tls: Option<TlsFiles>,
    pub log: LogSettings,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip: IpMode,
    /// Host names an absolute-form request may name, for a config without `sites`.
    pub server_names: Vec<String>,
    /// At least one. A config without `sites` has one, named `default`, that answers any host.
    pub sites: Vec<SiteSettings>,
    /// The sites came from `sites`: a request for a host none of them names is refused (421).
    pub virtual_hosts: bool,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub underscores_in_headers: Underscores,
    pub consent_records: RecordStore,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub policy: Option<PathBuf>,
}

/// Reads a config file.
pub fn load_file(path: &Path) -> Result<ConfigFile, LocatedError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| LocatedError::whole(&name, e.to_string()))?;
    let mut file: ConfigFile = read_yaml(&name, &text)?;
    check_sites(&file).map_err(|m| LocatedError::whole(&name, m))?;
    if let Some(dir) = path.parent() {
        let relative = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        file.policy.iter_mut().for_each(relative);
        file.upstream_ca.iter_mut().for_each(relative);
        file.log.file.iter_mut().for_each(relative);
        file.client_ip.key_file_mut().into_iter().for_each(relative);
        for site in file.sites.iter_mut().flatten() {
            site.policy.iter_mut().for_each(relative);
            for c in site.tls.iter_mut().flat_map(|t| t.certificates.iter_mut()) {
                relative(&mut c.cert);
                relative(&mut c.key);
            }
        }
        match &mut file.consent_records.backend {
            RecordBackendFile::Sqlite { path } => path.iter_mut().for_each(relative),
            RecordBackendFile::Postgres {
                url: PostgresUrl::File(p),
            } => relative(p),
            RecordBackendFile::Postgres { .. } => {}
        }
        for c in file.tls.iter_mut().flat_map(|t| t.certificates.iter_mut()) {
            relative(&mut c.cert);
            relative(&mut c.key);
        }
    }
    let site_tls = file.sites.iter().flatten().map(|s| s.tls.as_ref());
    if std::iter::once(file.tls.as_ref())
        .chain(site_tls)
        .any(|t| t.is_some_and(|t| t.certificates.is_empty()))
    {
        return Err(LocatedError::whole(
            &name,
            "tls.certificates: list at least one certificate",
        ));
    }
    Ok(file)
}

/// `sites` and the one-site settings exclude each other; site names and server names are unique.
fn check_sites(file: &ConfigFile) -> Result<(), String> {
    let Some(sites) = &file.sites else {
        return Ok(());
    };
    if sites.is_empty() {
        return Err("sites: list at least one site, or leave `sites` out".into());
    }
    let single = [
        ("upstream", file.upstream.is_some()),
        ("policy", file.policy.is_some()),
        ("server_names", !file.server_names.is_empty()),
    ];
    if let Some((key, _)) = single.iter().find(|(_, given)| *given) {
        return Err(format!(
            "`{key}` is for a config without `sites`; with `sites`, give it in each site"
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut hosts = std::collections::HashMap::new();
    for site in sites {
        if !names.insert(site.name.as_str()) {
            return Err(format!("sites: two sites are named `{}`", site.name));
        }
        for host in &site.server_names {
            if let Some(other) = hosts.insert(host.as_str(), site.name.as_str()) {
                return Err(format!(
                    "sites: `{host}` is a server name of both `{other}` and `{}`",
                    site.name
                ));
            }
        }
    }
    Ok(())
}

/// Merges the file (if any) and the flags. Flags win.
pub fn resolve(file: Option<ConfigFile>, o: Overrides) -> Result<Settings, String> {
    let file = file.unwrap_or_default();
    let listen = match o.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let (sites, virtual_hosts) = match file.sites {
        Some(sites) => {
            if o.upstream.is_some() || o.policy.is_some() {
                return Err(
                    "--upstream and --policy set the one site of a config without \
                            `sites`; this config lists `sites`: set them in each site"
                        .into(),
                );
            }
            let sites = sites
                .into_iter()
                .map(|s| SiteSettings {
                    name: s.name,
                    server_names: s.server_names,
                    upstream: s.upstream,
                    policy: s.policy,
                    tls: s.tls,
                })
                .collect();
            (sites, true)
        }
        None => {
            let upstream = o
                .upstream
                .or(file.upstream)
                .ok_or("no upstream: pass --upstream URL or set `upstream` in the config file")?;
            let site = SiteSettings {
                name: SiteSettings::SINGLE.to_string(),
                server_names: Vec::new(),
                upstream: Upstream::parse(&upstream)?,
                policy: o.policy.or(file.policy),
                tls: None,
            };
            (vec![site], false)
        }
    };
    // One certificate list for the listener: SNI picks among them all.
    let certificates: Vec<CertificateFiles> = file
        .tls
        .iter()
        .chain(sites.iter().filter_map(|s| s.tls.as_ref()))
        .flat_map(|t| t.certificates.iter().cloned())
        .collect();
    let tls = (!certificates.is_empty()).then_some(TlsFiles { certificates });
    let admin_listen = match o.admin_listen.or(file.admin_listen) {
        Some(l) => l,
        None => DEFAULT_ADMIN_LISTEN.parse().expect("valid default"),
    };
    Ok(Settings {
        listen,
        admin_listen,
        upstream_ca: file.upstream_ca,
        tls,
        log: file.log,
        trusted_proxies: file.trusted_proxies,
        client_ip: file.client_ip,
        server_names: file.server_names,
        sites,
        virtual_hosts,
        timeouts: file.timeouts,
        limits: file.limits,
        underscores_in_headers: file.underscores_in_headers,
        consent_records: file.consent_records.resolve(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        let u = Upstream::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(u.authority.as_str(), "127.0.0.1:3000");
        assert!(Upstream::parse("http://app/").is_ok());
        assert!(
            Upstream::parse("127.0.0.1:3000")
                .unwrap_err()
                .contains("scheme")
        );
        assert_eq!(
            Upstream::parse("https://app").unwrap().scheme,
            Scheme::HTTPS
        );
        assert!(
            Upstream::parse("ftp://app")
                .unwrap_err()
                .contains("only http")
        );
        assert!(
            Upstream::parse("http://app/base")
                .unwrap_err()
                .contains("path")
        );
    }

    #[test]
    fn flags_override_file() {
        let file: ConfigFile = read_yaml(
            "c.yaml",
            "listen: 0.0.0.0:9000\nupstream: http://a:1\ntimeouts:\n  upstream_response: 2s\nclient_ip:\n  mode: hmac\n",
        )
        .unwrap();
        let s = resolve(
            Some(file),
            Overrides {
                upstream: Some("http://b:2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
        let named = read_yaml::<ConfigFile>("c.yaml", "listen: localhost:9000\n").unwrap();
        assert_eq!(named.listen.unwrap().to_string(), "127.0.0.1:9000");
        let e = read_yaml::<ConfigFile>("c.yaml", "upstream: http://a\nlisten: localhost\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:2:") && e.contains("no port"), "{e}");
        assert_eq!(s.sites.len(), 1);
        assert_eq!(s.sites[0].name, "default");
        assert_eq!(s.sites[0].upstream.authority.as_str(), "b:2");
        assert_eq!(s.timeouts.upstream_response, Duration::from_secs(2));
        assert_eq!(s.timeouts.upstream_connect, Duration::from_secs(5));
        assert_eq!(s.client_ip, IpMode::Hmac { key_file: None });
        assert_eq!(s.limits.rewrite_memory, 16 << 20);
    }

    #[test]
    fn rewrite_memory_takes_units() {
        for (text, bytes) in [
            ("4 MiB", 4 << 20),
            ("512KiB", 512 << 10),
            ("1048576", 1 << 20),
        ] {
            let f: ConfigFile =
                read_yaml("c.yaml", &format!("limits:\n  rewrite_memory: {text}\n")).unwrap();
            assert_eq!(f.limits.rewrite_memory, bytes, "{text}");
        }
    }

    #[test]
    fn config_errors_have_positions() {
        let e =
            read_yaml::<ConfigFile>("c.yaml", "upstream: http://a\nlisten_port: 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        let e =
            read_yaml::<ConfigFile>("c.yaml", "timeouts:\n  upstream_connect: soon\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = read_yaml::<ConfigFile>("c.yaml", "trusted_proxies: [10.0.0.0/33]\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let e =
            read_yaml::<ConfigFile>("c.yaml", "limits:\n  rewrite_memory: 1 KiB\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("between 64 KiB and 1 GiB"), "{e}");
        let e = read_yaml::<ConfigFile>("c.yaml", "limits:\n  rewrite_memory: lots\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(
            resolve(None, Overrides::default())
                .unwrap_err()
                .contains("no upstream")
        );
    }

    fn records(yaml: &str) -> Result<RecordStore, LocatedError> {
        let file: ConfigFile = read_yaml("c.yaml", &format!("upstream: http://a\n{yaml}"))?;
        Ok(resolve(Some(file), Overrides::default())
            .unwrap()
            .consent_records)
    }

    #[test]
    fn consent_records_default_to_sqlite_for_three_years() {
        let r = records("").unwrap();
        assert_eq!(r, RecordStore::default());
        assert_eq!(
            r.backend,
            RecordBackend::Sqlite {
                path: "consent-records.db".into()
            }
        );
        assert_eq!(r.retention, humantime::parse_duration("3years").unwrap());
        assert_eq!(records("consent_records: {}\n").unwrap(), r);
    }

    #[test]
    fn consent_records_valid_forms() {
        let r =
            records("consent_records:\n  path: /var/lib/cp/c.db\n  retention: 2years\n").unwrap();
        assert_eq!(
            r.backend,
            RecordBackend::Sqlite {
                path: "/var/lib/cp/c.db".into()
            }
        );
        assert_eq!(r.retention, humantime::parse_duration("2years").unwrap());
        let r = records(
            "consent_records:\n  store: postgres\n  url: postgres://cp:s3cret@db:5432/consents\n",
        )
        .unwrap();
        assert_eq!(
            r.backend,
            RecordBackend::Postgres {
                url: PostgresUrl::Inline("postgres://cp:s3cret@db:5432/consents".into())
            }
        );
        assert_eq!(r.retention, RecordStore::DEFAULT_RETENTION);
        // Settings are printed in diagnostics: the URL's password never is.
        let s = format!("{r:?}");
        assert!(!s.contains("s3cret"), "{s}");
        let r = records(
            "consent_records:\n  store: postgres\n  url_file: /run/secrets/pg-url\n  retention: 400days\n",
        )
        .unwrap();
        assert_eq!(
            r.backend,
            RecordBackend::Postgres {
                url: PostgresUrl::File("/run/secrets/pg-url".into())
            }
        );
    }

    #[test]
    fn consent_records_refused_with_positions() {
        let e = records("consent_records:\n  store: sqlite\n  file: x.db\n").unwrap_err();
        // Line 1 is the upstream.
        assert_eq!((e.line, e.column), (4, 3), "{e}");
        assert!(e.to_string().contains("unknown field `file`"), "{e}");
        let e = records("consent_records:\n  store: mysql\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        for (yaml, expected) in [
            ("  store: postgres\n", "needs `url`"),
            (
                "  store: postgres\n  url: postgres://a@b/c\n  path: x.db\n",
                "`path` is for `store: sqlite`",
            ),
            (
                "  store: postgres\n  url: postgres://a@b/c\n  url_file: /run/u\n",
                "not both",
            ),
            ("  store: postgres\n  url: ' '\n", "url is empty"),
            ("  url: postgres://a@b/c\n", "are for `store: postgres`"),
            ("  retention: 0s\n", "longer than 0"),
        ] {
            let e = records(&format!("consent_records:\n{yaml}")).unwrap_err();
            assert!(e.to_string().contains(expected), "{yaml}: {e}");
            // At the section, with its name.
            assert_eq!(e.line, 3, "{yaml}: {e}");
            assert!(e.to_string().contains("consent_records: "), "{yaml}: {e}");
        }
    }

    #[test]
    fn consent_record_paths_given_in_the_file_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "consent_records:\n  path: data/c.db\n").unwrap();
        let r = resolve(
            Some(load_file(&path).unwrap()),
            Overrides {
                upstream: Some("http://a".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .consent_records;
        assert_eq!(
            r.backend,
            RecordBackend::Sqlite {
                path: dir.path().join("data/c.db")
            }
        );
        std::fs::write(
            &path,
            "consent_records:\n  store: postgres\n  url_file: pg-url\n",
        )
        .unwrap();
        let file = load_file(&path).unwrap();
        assert_eq!(
            file.consent_records.backend,
            RecordBackendFile::Postgres {
                url: PostgresUrl::File(dir.path().join("pg-url"))
            }
        );
        // The default stays relative to the working directory.
        std::fs::write(&path, "listen: 127.0.0.1:1\n").unwrap();
        let file = load_file(&path).unwrap();
        assert_eq!(
            file.consent_records.backend,
            RecordBackendFile::Sqlite { path: None }
        );
    }
}
