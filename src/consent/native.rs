//! The site's own consent cookie: a comma-separated list of granted categories, `all`, or
//! `none`/empty. Unknown tokens are ignored; a value that cannot be read grants nothing.

use crate::category::{Category, CategorySet};
use crate::filter::cookies::request_cookies;
use http::HeaderMap;
use percent_encoding::percent_decode_str;

/// What the consent cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieGrant {
    Absent,
    Unreadable,
    Granted(CategorySet),
}

/// Reads every consent cookie on the request. Several cookies of that name (different paths or
/// domains) are combined by intersection: a category counts only if all of them grant it.
pub fn read(headers: &HeaderMap, name: &str) -> CookieGrant {
    let mut result = CookieGrant::Absent;
    for (n, value) in request_cookies(headers) {
        if n != name {
            continue;
        }
        result = match (result, parse_value(value)) {
            (CookieGrant::Unreadable, _) | (_, None) => CookieGrant::Unreadable,
            (CookieGrant::Absent, Some(s)) => CookieGrant::Granted(s),
            (CookieGrant::Granted(a), Some(b)) => CookieGrant::Granted(a.intersection(b)),
        };
    }
    result
}

/// Parses one value. `None` means the value cannot be read.
pub fn parse_value(raw: &str) -> Option<CategorySet> {
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !valid_percent(raw) {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    let mut granted = CategorySet::NECESSARY;
    let mut none = false;
    for token in decoded.split(',') {
        let token = token.trim();
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        if token.eq_ignore_ascii_case("all") {
            granted = CategorySet::ALL;
        } else if token.eq_ignore_ascii_case("none") {
            none = true;
        } else if let Some(c) = Category::parse(token) {
            granted.insert(c);
        }
    }
    Some(if none {
        CategorySet::NECESSARY
    } else {
        granted
    })
}

/// True if every `%` starts a two-digit hex escape.
fn valid_percent(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn s(cs: &[Category]) -> Option<CategorySet> {
        Some(cs.iter().copied().collect::<CategorySet>().with(Necessary))
    }

    #[test]
    fn values() {
        assert_eq!(
            parse_value("analytics,marketing"),
            s(&[Analytics, Marketing])
        );
        assert_eq!(parse_value("all"), Some(CategorySet::ALL));
        assert_eq!(parse_value("ALL"), Some(CategorySet::ALL));
        assert_eq!(parse_value("none"), s(&[]));
        assert_eq!(parse_value(""), s(&[]));
        assert_eq!(
            parse_value("analytics, bogus ,preferences"),
            s(&[Analytics, Preferences])
        );
        assert_eq!(
            parse_value("analytics%2Cmarketing"),
            s(&[Analytics, Marketing])
        );
        assert_eq!(parse_value("\"analytics\""), s(&[Analytics]));
        assert_eq!(parse_value("none,all"), s(&[]));
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "%ZZ",
            "%",
            "%4",
            "{\"analytics\":true}",
            "analytics;marketing",
            "a%FFb",
            "ana lytics",
        ] {
            assert_eq!(parse_value(v), None, "{v:?}");
        }
    }

    #[test]
    fn several_cookies_intersect() {
        let mut h = HeaderMap::new();
        h.append("cookie", "c=all".parse().unwrap());
        h.append("cookie", "x=1; c=analytics".parse().unwrap());
        assert_eq!(
            read(&h, "c"),
            CookieGrant::Granted(s(&[Analytics]).unwrap())
        );
        h.append("cookie", "c=%%".parse().unwrap());
        assert_eq!(read(&h, "c"), CookieGrant::Unreadable);
        assert_eq!(read(&h, "other"), CookieGrant::Absent);
    }
}
