//! HTTP/1 requests whose target two parsers could read differently: refused before anything is
//! forwarded (RFC 9112, section 3.2). Ambiguous body framing never gets this far: hyper merges or
//! drops it, so it is refused on the connection's bytes (`proxy::framing`).

use http::header::HOST;
use http::{HeaderMap, Version};

/// Why a request cannot be accepted (the answer's text), or `None`. HTTP/2 carries `:authority` instead.
pub fn problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    if version != Version::HTTP_10 && version != Version::HTTP_11 {
        return None;
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => {
            Some("400 Bad Request: the request has no Host\n")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("400 Bad Request: the request has more than one Host\n"),
        (Some(host), None) => (!valid_host(host.as_bytes()))
            .then_some("400 Bad Request: the request's Host is not a host[:port]\n"),
    }
}

/// `host[:port]`, as RFC 3986 allows it in a URI authority, without user information.
pub(crate) fn valid_host(v: &[u8]) -> bool {
    !v.is_empty()
        && !v.contains(&b'@')
        && std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<http::uri::Authority>().ok())
            .is_some_and(|a| {
                let port = &a.as_str()[a.host().len()..];
                !a.host().is_empty()
                    && (port.is_empty()
                        || port.len() > 1
                            && port.starts_with(':')
                            && port[1..].bytes().all(|b| b.is_ascii_digit()))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        crate::test_headers(pairs)
    }

    #[test]
    fn host_must_be_one_valid_authority() {
        let v = Version::HTTP_11;
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "a",
        ] {
            assert_eq!(problem(v, &h(&[("host", good)])), None, "{good}");
        }
        for bad in [
            "",
            "a.com; Secure",
            "a.com/path",
            "user@a.com",
            "a b",
            "a.com:x",
            "a.com?q",
            "[::1",
        ] {
            assert!(problem(v, &h(&[("host", bad)])).is_some(), "{bad:?}");
        }
        assert!(problem(v, &h(&[])).is_some());
        assert_eq!(problem(Version::HTTP_10, &h(&[])), None);
        assert!(problem(v, &h(&[("host", "a"), ("host", "a")])).is_some());
        // HTTP/2 carries :authority and frames bodies itself.
        assert_eq!(problem(Version::HTTP_2, &h(&[])), None);
    }
}
