//! The site's own consent cookie: a comma-separated list of granted categories, `all`, or
//! `none`/empty. Unknown tokens are ignored; a value that cannot be read grants nothing.

use crate::category::{Category, CategorySet};
use percent_encoding::percent_decode_str;

/// Parses one value. `None` means the value cannot be read.
pub fn parse_value(raw: &str) -> Option<CategorySet> {
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !super::cmp::valid_percent(raw) {
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
}
