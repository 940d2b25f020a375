//! Requests whose framing or target two HTTP/1 parsers could read differently: refused before
//! anything is forwarded, so that nothing can be smuggled past the proxy to the site (RFC 9112,
//! sections 3.2 and 6.3).

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Version};

/// Why a request cannot be accepted, or `None`. HTTP/2 frames its messages itself.
pub fn problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    if version != Version::HTTP_10 && version != Version::HTTP_11 {
        return None;
    }
    if headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH) {
        return Some("Transfer-Encoding and Content-Length together");
    }
    if headers.get_all(CONTENT_LENGTH).iter().count() > 1 {
        return Some("more than one Content-Length");
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => Some("no Host"),
        (None, _) => None,
        (Some(_), Some(_)) => Some("more than one Host"),
        (Some(host), None) => (!valid_host(host.as_bytes())).then_some("an invalid Host"),
    }
}

/// `host[:port]`, as RFC 3986 allows it in a URI authority, without user information.
fn valid_host(v: &[u8]) -> bool {
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
    fn ambiguous_framing_is_refused() {
        let v = Version::HTTP_11;
        let ok = [("host", "example.com")];
        assert_eq!(problem(v, &h(&ok)), None);
        assert_eq!(
            problem(v, &h(&[("host", "a"), ("content-length", "4")])),
            None
        );
        assert_eq!(
            problem(v, &h(&[("host", "a"), ("transfer-encoding", "chunked")])),
            None
        );
        assert!(
            problem(
                v,
                &h(&[
                    ("host", "a"),
                    ("content-length", "4"),
                    ("transfer-encoding", "chunked")
                ])
            )
            .is_some()
        );
        assert!(
            problem(
                v,
                &h(&[
                    ("host", "a"),
                    ("content-length", "4"),
                    ("content-length", "4")
                ])
            )
            .is_some()
        );
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
