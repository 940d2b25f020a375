//! Request header names with an underscore. Applications that read headers CGI-style
//! (`X-Forwarded-For` becomes `HTTP_X_FORWARDED_FOR`) cannot tell `X_Forwarded_For` from
//! `X-Forwarded-For`, so a client could forge the proxy's own forwarding headers, or send a
//! `Transfer_Encoding` or `Content_Length` that such a site reads as framing. nginx drops such
//! names by default (`underscores_in_headers off`); so does the proxy.

use http::HeaderMap;
use http::header::HeaderName;
use serde::Deserialize;

/// What to do with request header names that contain `_`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Underscores {
    /// Removed before the request goes upstream (the default).
    #[default]
    Drop,
    /// Passed on: only for a site that needs them and never maps header names CGI-style.
    Pass,
}

/// Removes every header whose name contains `_` and returns how many header lines went.
pub fn drop_underscored(headers: &mut HeaderMap) -> usize {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    names
        .into_iter()
        .map(|name| match headers.entry(name) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.count(),
            http::header::Entry::Vacant(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_underscores_go_and_are_counted() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x_forwarded_for", "6.6.6.6"),
            ("x_forwarded_for", "7.7.7.7"),
            ("transfer_encoding", "chunked"),
            ("content_length", "5"),
            ("_", "x"),
            ("x-forwarded-for", "1.2.3.4"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        assert_eq!(drop_underscored(&mut h), 5);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-forwarded-for"]);
        assert_eq!(drop_underscored(&mut h), 0);
    }
}
