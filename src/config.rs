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

/// The config file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
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

/// Everything the server needs, resolved from file and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream: Upstream,
    pub upstream_ca: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub log: LogSettings,
    pub policy: Option<PathBuf>,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip: IpMode,
    pub server_names: Vec<String>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub underscores_in_headers: Underscores,
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
    file.client_ip
        .validate()
        .map_err(|m| LocatedError::whole(&name, format!("client_ip: {m}")))?;
    if let Some(dir) = path.parent() {
        let relative = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        file.policy.iter_mut().for_each(relative);
        file.upstream_ca.iter_mut().for_each(relative);
        file.log.file.iter_mut().for_each(relative);
        for c in file.tls.iter_mut().flat_map(|t| t.certificates.iter_mut()) {
            relative(&mut c.cert);
            relative(&mut c.key);
        }
    }
    if file.tls.as_ref().is_some_and(|t| t.certificates.is_empty()) {
        return Err(LocatedError::whole(
            &name,
            "tls.certificates: list at least one certificate",
        ));
    }
    Ok(file)
}

/// Merges the file (if any) and the flags. Flags win.
pub fn resolve(file: Option<ConfigFile>, o: Overrides) -> Result<Settings, String> {
    let file = file.unwrap_or_default();
    let listen = match o.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let upstream = o
        .upstream
        .or(file.upstream)
        .ok_or("no upstream: pass --upstream URL or set `upstream` in the config file")?;
    let admin_listen = match o.admin_listen.or(file.admin_listen) {
        Some(l) => l,
        None => DEFAULT_ADMIN_LISTEN.parse().expect("valid default"),
    };
    Ok(Settings {
        listen,
        admin_listen,
        upstream: Upstream::parse(&upstream)?,
        upstream_ca: file.upstream_ca,
        tls: file.tls,
        log: file.log,
        policy: o.policy.or(file.policy),
        trusted_proxies: file.trusted_proxies,
        client_ip: file.client_ip,
        server_names: file.server_names,
        timeouts: file.timeouts,
        limits: file.limits,
        underscores_in_headers: file.underscores_in_headers,
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
        assert_eq!(s.upstream.authority.as_str(), "b:2");
        assert_eq!(s.timeouts.upstream_response, Duration::from_secs(2));
        assert_eq!(s.timeouts.upstream_connect, Duration::from_secs(5));
        assert_eq!(s.client_ip, IpMode::Hmac);
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
}
