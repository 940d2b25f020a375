//! Which site a request is for: its host, and on TLS its server name (SNI), against the names
//! each site answers. Pure decisions; the handler acts on them.

/// One name a site answers: a host name, or `*.example.com` for any one label before
/// `example.com` (not `example.com` itself, not `a.b.example.com`), as TLS wildcards match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    Exact(String),
    /// The suffix after the `*`, with its dot: `.example.com`.
    Wildcard(String),
}

impl ServerName {
    /// Parses a name as a config gives it. Refuses ports, schemes, paths, empty labels and
    /// anything that is not a host name (letters, digits, `-`; labels of 1 to 63).
    pub fn parse(s: &str) -> Result<ServerName, String> {
        let lower = s.to_ascii_lowercase();
        let (wildcard, rest) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid_label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(valid_label) {
            return Err(format!(
                "server name `{s}`: give a host name (www.example.com) or a wildcard \
                 (*.example.com), without scheme, port or path"
            ));
        }
        Ok(if wildcard {
            ServerName::Wildcard(format!(".{rest}"))
        } else {
            ServerName::Exact(rest.to_string())
        })
    }

    /// How well `host` (lower-case, without port) matches: an exact name beats any wildcard,
    /// a longer wildcard a shorter one; `None` when it does not match.
    fn score(&self, host: &str) -> Option<usize> {
        match self {
            ServerName::Exact(n) => (n == host).then_some(usize::MAX),
            ServerName::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .filter(|label| !label.is_empty() && !label.contains('.'))
                .map(|_| suffix.len()),
        }
    }
}

/// The host of a `Host` value or an authority: without its port and a trailing dot, lower-case.
/// `None` when nothing is left.
pub fn host_of(authority: &str) -> Option<String> {
    let host = if authority.starts_with('[') {
        // An IPv6 literal: up to its bracket.
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Why a request was not for any site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misdirected {
    /// Its host is none of the sites' names (or it has none).
    UnknownHost,
    /// Its TLS server name is another site's, or no site's.
    OtherServerName,
}

impl Misdirected {
    /// The answer's text.
    pub fn answer(self) -> &'static str {
        match self {
            Misdirected::UnknownHost => {
                "421 Misdirected Request: this proxy does not serve that host\n"
            }
            Misdirected::OtherServerName => {
                "421 Misdirected Request: the connection was opened for another host; open one \
                 for this host\n"
            }
        }
    }
}

/// The sites' names, in the sites' order.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Per site, its names; empty for the one site of a config without `sites`.
    names: Vec<Vec<ServerName>>,
    /// A config without `sites`: its one site answers every host.
    single: bool,
}

impl Routes {
    /// The routes of sites with these names, in order (checked when the config was read).
    /// `virtual_hosts`: the sites came from `sites`; otherwise the one site answers every host.
    pub fn new<'a>(sites: impl IntoIterator<Item = &'a [String]>, virtual_hosts: bool) -> Routes {
        Routes {
            names: sites
                .into_iter()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| ServerName::parse(n).ok())
                        .collect()
                })
                .collect(),
            single: !virtual_hosts,
        }
    }

    /// The site answering `host` (lower-case, without port), if any.
    pub fn site_of(&self, host: &str) -> Option<usize> {
        if self.single {
            return Some(0);
        }
        let mut best: Option<(usize, usize)> = None;
        for (site, names) in self.names.iter().enumerate() {
            for score in names.iter().filter_map(|n| n.score(host)) {
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((site, score));
                }
            }
        }
        best.map(|(site, _)| site)
    }

    /// The site a request is for, from its host and, on TLS, the server name its connection was
    /// opened for. Both must name the same site (RFC 9110 §7.4: a connection is for the hosts
    /// its certificate covers). Without a host, the server name decides.
    pub fn route(&self, host: Option<&str>, sni: Option<&str>) -> Result<usize, Misdirected> {
        if self.single {
            return Ok(0);
        }
        let by_sni = sni.map(|n| self.site_of(n));
        match host {
            Some(host) => {
                let site = self.site_of(host).ok_or(Misdirected::UnknownHost)?;
                match by_sni {
                    Some(s) if s != Some(site) => Err(Misdirected::OtherServerName),
                    _ => Ok(site),
                }
            }
            None => by_sni.flatten().ok_or(Misdirected::UnknownHost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn routes() -> Routes {
        let sites = [
            names(&["shop.example", "www.shop.example"]),
            names(&["*.blog.example", "blog.example"]),
            names(&["news.blog.example"]),
        ];
        Routes::new(sites.iter().map(Vec::as_slice), true)
    }

    #[test]
    fn hosts_find_their_site() {
        let r = routes();
        assert_eq!(r.site_of("shop.example"), Some(0));
        assert_eq!(r.site_of("www.shop.example"), Some(0));
        assert_eq!(r.site_of("blog.example"), Some(1));
        assert_eq!(r.site_of("a.blog.example"), Some(1));
        // An exact name beats a wildcard.
        assert_eq!(r.site_of("news.blog.example"), Some(2));
        // A wildcard covers one label only.
        assert_eq!(r.site_of("a.b.blog.example"), None);
        assert_eq!(r.site_of("evil-shop.example"), None);
        assert_eq!(r.site_of("shop.example.evil"), None);
        assert_eq!(r.site_of(""), None);
    }

    #[test]
    fn host_values_lose_port_dot_and_case() {
        assert_eq!(
            host_of("Shop.Example:8443").as_deref(),
            Some("shop.example")
        );
        assert_eq!(host_of("shop.example.").as_deref(), Some("shop.example"));
        assert_eq!(host_of("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host_of(":80"), None);
        assert_eq!(host_of(""), None);
    }

    #[test]
    fn host_and_server_name_must_agree() {
        let r = routes();
        assert_eq!(r.route(Some("shop.example"), None), Ok(0));
        assert_eq!(
            r.route(Some("shop.example"), Some("www.shop.example")),
            Ok(0)
        );
        assert_eq!(
            r.route(Some("shop.example"), Some("blog.example")),
            Err(Misdirected::OtherServerName)
        );
        assert_eq!(
            r.route(Some("shop.example"), Some("unknown.example")),
            Err(Misdirected::OtherServerName)
        );
        assert_eq!(
            r.route(Some("unknown.example"), None),
            Err(Misdirected::UnknownHost)
        );
        assert_eq!(r.route(None, Some("blog.example")), Ok(1));
        assert_eq!(r.route(None, None), Err(Misdirected::UnknownHost));
        // Without `sites`, the one site answers everything.
        let single = Routes::new([&[][..]], false);
        assert_eq!(single.route(Some("anything"), Some("else")), Ok(0));
        assert_eq!(single.route(None, None), Ok(0));
    }

    #[test]
    fn server_names_are_host_names() {
        assert_eq!(
            ServerName::parse("WWW.Example.com"),
            Ok(ServerName::Exact("www.example.com".into()))
        );
        assert_eq!(
            ServerName::parse("*.example.com"),
            Ok(ServerName::Wildcard(".example.com".into()))
        );
        for bad in [
            "",
            "*.",
            "example.com:443",
            "https://example.com",
            "example.com/x",
            "a..b",
            "-a.b",
            "a_b.example",
            "*.*.example",
            "ex*.com",
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad}");
        }
    }
}
