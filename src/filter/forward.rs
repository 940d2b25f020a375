//! Forwarding headers: hop-by-hop removal, `X-Forwarded-*`, `Via`, and which address is the
//! client's.

use http::header::{CONNECTION, FORWARDED, HeaderName, UPGRADE, VIA};
use http::{HeaderMap, HeaderValue, Version};
use ipnet::IpNet;
use std::net::IpAddr;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers that concern one connection only (RFC 9110 section 7.6.1, plus the customary ones).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// True if the message asks for a protocol upgrade (`Connection: upgrade` with `Upgrade`) that
/// may pass. An upgrade to HTTP itself (`h2c`, `HTTP/…`) never passes: the tunnel that followed
/// would carry requests and `Set-Cookie` headers past the filters.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let mut protocols = headers
        .get_all(UPGRADE)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    protocols.peek().is_some()
        && protocols.all(|p| {
            let p = p.to_ascii_lowercase();
            !p.is_empty() && !p.starts_with("h2c") && !p.starts_with("http/")
        })
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers, including every header named in `Connection`. When `upgrade` is
/// set, `Connection: upgrade` and `Upgrade` are kept so the upgrade reaches the other side.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Every `Proxy-*` header concerns the hop, not the site.
    let hop = |k: &HeaderName| {
        let k = k.as_str();
        HOP_BY_HOP.contains(&k) || k.starts_with("proxy-")
    };
    // Most messages hold none, or only `Connection`: the names present are looked at once, and
    // only those are removed.
    let mut doomed: Vec<HeaderName> = headers.keys().filter(|k| hop(k)).cloned().collect();
    if doomed.is_empty() {
        return;
    }
    doomed.extend(
        connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !hop(n) && headers.contains_key(n)),
    );
    let upgrade_value = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    for name in doomed {
        headers.remove(name);
    }
    if let Some(v) = upgrade_value {
        headers.insert(UPGRADE, v);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost address
/// in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| is_trusted(*ip, trusted);
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let entries: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.into_iter().rev() {
        match parse_forwarded_ip(entry.trim()) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// Whether an address is one of the configured trusted proxies (an IPv4-mapped IPv6 address
/// counts as its IPv4 address).
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|n| n.contains(&ip))
}

/// A header's value, if the peer is a trusted proxy that may set it. A header that occurs more
/// than once is not believed: an edge that appended its value instead of replacing the
/// client's would otherwise let the client's copy through.
pub fn trusted_header<'h>(
    peer: IpAddr,
    headers: &'h HeaderMap,
    trusted: &[IpNet],
    name: &http::HeaderName,
) -> Option<&'h str> {
    if !is_trusted(peer, trusted) {
        return None;
    }
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // "[v6]:port" or "v4:port"
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// What the forwarding headers say about the original request.
pub struct Forwarding<'a> {
    pub peer: IpAddr,
    pub peer_trusted: bool,
    pub host: Option<&'a str>,
    pub proto: &'static str,
    pub version: Version,
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host` and `Via`. Values from a trusted proxy are extended;
/// from anyone else they are replaced, so a client cannot forge them.
pub fn set_forwarding_headers(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    if !f.peer_trusted {
        // Other spellings of the same claims, which only a trusted proxy may make.
        headers.remove(FORWARDED);
        headers.remove(&X_REAL_IP);
    }
    let peer = f.peer.to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if f.peer_trusted && !prev.trim().is_empty() => {
            let all: Vec<&str> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            format!("{}, {peer}", all.join(", "))
        }
        _ => peer,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !(f.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(f.proto));
    }
    if !(f.peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        headers.remove(&X_FORWARDED_HOST);
        if let Some(v) = f.host.and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    append_via(headers, f.version);
}

/// Appends this proxy to `Via` (requests and responses alike).
pub fn append_via(headers: &mut HeaderMap, version: Version) {
    let v = match version {
        Version::HTTP_09 => "0.9 consent-proxy",
        Version::HTTP_10 => "1.0 consent-proxy",
        Version::HTTP_2 => "2 consent-proxy",
        Version::HTTP_3 => "3 consent-proxy",
        _ => "1.1 consent-proxy",
    };
    headers.append(VIA, HeaderValue::from_static(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_headers as h;

    #[test]
    fn trust_and_trusted_headers() {
        let nets: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(is_trusted(ip("10.1.2.3"), &nets));
        assert!(is_trusted(ip("::ffff:10.1.2.3"), &nets), "IPv4-mapped");
        assert!(is_trusted(ip("2001:db8::1"), &nets));
        assert!(!is_trusted(ip("11.0.0.1"), &nets));
        assert!(!is_trusted(ip("::ffff:11.0.0.1"), &nets));
        let name = http::HeaderName::from_static("cf-ipcountry");
        let one = h(&[("CF-IPCountry", "US")]);
        assert_eq!(
            trusted_header(ip("10.0.0.1"), &one, &nets, &name),
            Some("US")
        );
        assert_eq!(trusted_header(ip("192.0.2.1"), &one, &nets, &name), None);
        let two = h(&[("cf-ipcountry", "US"), ("cf-ipcountry", "DE")]);
        assert_eq!(trusted_header(ip("10.0.0.1"), &two, &nets, &name), None);
        assert_eq!(trusted_header(ip("10.0.0.1"), &h(&[]), &nets, &name), None);
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut m = h(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("proxy-foo", "1"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut m, false);
        assert_eq!(m.len(), 1);
        assert!(m.contains_key("accept"));
    }

    #[test]
    fn upgrade_is_kept_for_upgrades() {
        let mut m = h(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&m));
        remove_hop_by_hop(&mut m, true);
        assert_eq!(m.get("upgrade").unwrap(), "websocket");
        assert_eq!(m.get("connection").unwrap(), "upgrade");
        for proto in ["h2c", "HTTP/2.0", "websocket, h2c"] {
            let m = h(&[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", proto),
            ]);
            assert!(!is_upgrade(&m), "{proto}");
        }
        let mut m = h(&[("upgrade", "websocket")]);
        assert!(!is_upgrade(&m));
        remove_hop_by_hop(&mut m, false);
        assert!(m.is_empty());
    }

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let m = h(&[("x-forwarded-for", "198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &m, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("203.0.113.9".parse().unwrap(), &m, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let m = h(&[("x-forwarded-for", "garbage")]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &m, &trusted),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        let m = h(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &m, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarding_headers_replace_untrusted_values() {
        let mut m = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        set_forwarding_headers(
            &mut m,
            &Forwarding {
                peer: "192.0.2.1".parse().unwrap(),
                peer_trusted: false,
                host: Some("example.com"),
                proto: "http",
                version: Version::HTTP_11,
            },
        );
        assert_eq!(m.get("x-forwarded-for").unwrap(), "192.0.2.1");
        assert_eq!(m.get("x-forwarded-host").unwrap(), "example.com");
        assert_eq!(m.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(m.get("via").unwrap(), "1.1 consent-proxy");
        assert!(m.get("forwarded").is_none() && m.get("x-real-ip").is_none());
    }

    #[test]
    fn forwarding_headers_extend_trusted_values() {
        let mut m = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarding_headers(
            &mut m,
            &Forwarding {
                peer: "10.0.0.1".parse().unwrap(),
                peer_trusted: true,
                host: Some("example.com"),
                proto: "http",
                version: Version::HTTP_2,
            },
        );
        assert_eq!(m.get("x-forwarded-for").unwrap(), "1.2.3.4, 10.0.0.1");
        assert_eq!(m.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(m.get("via").unwrap(), "2 consent-proxy");
    }
}
