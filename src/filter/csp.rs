//! Reading a Content-Security-Policy: which directive governs a kind of element, and the nonces
//! its sources allow. Shared by the Consent Mode block (a script) and the banner (a stylesheet).

use http::HeaderMap;
use http::header::CONTENT_SECURITY_POLICY;

/// Every policy the response enforces: each `Content-Security-Policy` header, and each policy in
/// one header separated by commas. `None` if a header is not text (it cannot be read).
/// `Content-Security-Policy-Report-Only` blocks nothing and is not read.
pub fn policies(headers: &HeaderMap) -> Option<Vec<&str>> {
    let values = headers
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<&str>>>()?;
    Some(values.iter().flat_map(|v| v.split(',')).collect())
}

/// The source list of the directive that governs in `policy`: the first of `fallbacks` (e.g.
/// `script-src-elem`, `script-src`, `default-src`) the policy has. `None` when it has none of
/// them: the policy does not restrict that kind of element.
pub fn governing<'p>(policy: &'p str, fallbacks: &[&str]) -> Option<&'p str> {
    let directives: Vec<(String, &str)> = policy
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_ascii_lowercase(), value))
        })
        .collect();
    fallbacks
        .iter()
        .find_map(|want| directives.iter().find(|(n, _)| n == want))
        .map(|(_, sources)| *sources)
}

/// A `'nonce-…'` source: `None` if `token` is not one; `Some(None)` if its value is not one the
/// proxy writes into an attribute (only base64 and base64url characters are accepted, so that
/// the value is safe there); `Some(Some(value))` otherwise.
pub fn nonce(token: &str) -> Option<Option<&str>> {
    let prefixed = token
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("'nonce-"));
    if !prefixed || !token.ends_with('\'') {
        return None;
    }
    let value = token.get(7..token.len() - 1).unwrap_or("");
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    Some(valid.then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fallback_present_governs() {
        let p = "default-src 'self'; Script-Src 'nonce-a' ; style-src x";
        assert_eq!(
            governing(p, &["script-src-elem", "script-src", "default-src"]),
            Some("'nonce-a'")
        );
        assert_eq!(governing(p, &["img-src", "default-src"]), Some("'self'"));
        assert_eq!(governing("img-src *", &["script-src"]), None);
    }

    #[test]
    fn nonce_sources() {
        assert_eq!(nonce("'nonce-abc+/='"), Some(Some("abc+/=")));
        assert_eq!(nonce("'NONCE-abc'"), Some(Some("abc")));
        assert_eq!(nonce("'nonce-a\"b'"), Some(None));
        assert_eq!(nonce("'nonce-'"), Some(None));
        assert_eq!(nonce("'nonce"), None);
        assert_eq!(nonce("'self'"), None);
        assert_eq!(nonce("'nonce-abc"), None);
    }
}
