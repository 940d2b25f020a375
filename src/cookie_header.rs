//! Reading the `Cookie` request header: the pairs a browser sent, as it reads them.

use cookie::Cookie;
use http::HeaderMap;
use http::header::COOKIE;

/// One `name=value` pair of a `Cookie` header, borrowed from the header; `None` for a pair that
/// cannot be parsed.
pub type Pair<'a> = Option<(&'a str, &'a str)>;

/// Every pair of every `Cookie` header (HTTP/2 clients may send several). A header that is not
/// UTF-8 yields one unparseable pair.
pub fn request_pairs(headers: &HeaderMap) -> impl Iterator<Item = Pair<'_>> {
    headers.get_all(COOKIE).iter().flat_map(|v| {
        let (text, bad) = match std::str::from_utf8(v.as_bytes()) {
            Ok(t) => (t, None),
            Err(_) => ("", Some(None)),
        };
        bad.into_iter().chain(
            text.split(';')
                .map(|p| p.trim_matches([' ', '\t']))
                .filter(|p| !p.is_empty())
                .map(|p| {
                    Cookie::parse(p)
                        .ok()
                        .and_then(|c| Some((c.name_raw()?, c.value_raw()?)))
                        .filter(|(name, _)| *name == browser_name(p))
                }),
        )
    })
}

/// A cookie's name as a browser reads it from a `Set-Cookie` or `Cookie` pair: the text before
/// the first `=` of the first `;` part, with spaces and tabs (only) trimmed (RFC 6265bis 5.6).
pub fn browser_name(pair: &str) -> &str {
    let first = pair.split(';').next().unwrap_or("");
    first
        .split('=')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t'])
}

/// The readable `(name, value)` pairs of the request's cookies.
pub fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    request_pairs(headers).flatten()
}
