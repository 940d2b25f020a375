//! Reading request cookies, and judging one cookie name against the consent decision.

use crate::category::CategorySet;
use crate::policy::{CompiledPolicy, Verdict};
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

/// How one cookie fares under a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub allowed: bool,
    /// No policy rule names it.
    pub unknown: bool,
    /// A classified cookie of a denied category (as opposed to an unknown one).
    pub known_denied: bool,
}

/// Judges a cookie name: it passes when every category it requires is granted.
pub fn judge(policy: &CompiledPolicy, granted: CategorySet, name: &str) -> Judgement {
    let verdict = policy.classify(name);
    let required = policy.requires(verdict);
    let allowed = required.difference(granted).is_empty();
    Judgement {
        allowed,
        unknown: verdict == Verdict::Unknown,
        known_denied: !allowed && matches!(verdict, Verdict::Known(_)),
    }
}

#[cfg(test)]
mod browser_name_tests {
    use super::*;

    #[test]
    fn a_name_trimmed_of_other_white_space_is_not_the_same_cookie() {
        let h = crate::test_headers(&[("cookie", "cookie_consent\u{a0}=all; a=1;\tb = 2")]);
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(pairs, vec![None, Some(("a", "1")), Some(("b", "2"))]);
        assert_eq!(browser_name(" x =1; Path=/"), "x");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_across_headers_with_bad_ones() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; b=\"x y\"; ;novalue; =v".parse().unwrap());
        h.append(COOKIE, http::HeaderValue::from_bytes(b"c=\xff").unwrap());
        h.append(COOKIE, "d=4".parse().unwrap());
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(
            pairs,
            vec![
                Some(("a", "1")),
                Some(("b", "\"x y\"")),
                None,
                None,
                None,
                Some(("d", "4"))
            ]
        );
    }
}
