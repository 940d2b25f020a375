//! The proxy's own consent cookie (`consent_cookie`): a comma-separated list of granted
//! categories, `all`, or `none`/empty, optionally followed by `@` and the time of the choice in
//! Unix seconds (`analytics,preferences@1796000000`), as the banner writes it.
//!
//! - Unknown tokens beside known ones are ignored.
//! - A value with no known token at all (`Y`, `true`, `1`) is a site's unrelated cookie of the
//!   same name, not a choice: unreadable, so it grants nothing and is logged `native-invalid`.
//! - A dated choice older than the banner's `lifetime` (13 months without a banner) is expired.

use super::cmp::Reading;
use super::format::{
    BuildCtx, ConsentReader, Format, FormatId, OneCookie, ReadCtx, Said, THIRTEEN_MONTHS,
};
use crate::category::{Category, CategorySet};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// The names of the proxy's own format.
pub const NATIVE: FormatId = FormatId {
    name: "native",
    invalid: "native-invalid",
    expired: "native-expired",
};

/// Parses one value, without its date. `None` means the value cannot be read.
pub fn parse_value(raw: &str) -> Option<CategorySet> {
    parse_dated(raw).map(|(set, _)| set)
}

/// Parses one value and its date, if it has one.
pub fn parse_dated(raw: &str) -> Option<(CategorySet, Option<u64>)> {
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !super::cmp::valid_percent(raw) {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    let (list, at) = match decoded.rsplit_once('@') {
        Some((list, at)) => {
            if at.is_empty() || at.len() > 12 || !at.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (list, Some(at.parse().ok()?))
        }
        None => (&*decoded, None),
    };
    let mut granted = CategorySet::NECESSARY;
    let mut none = false;
    let mut known = list.trim().is_empty();
    for token in list.split(',') {
        let token = token.trim();
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        if token.eq_ignore_ascii_case("all") {
            granted = CategorySet::ALL;
            known = true;
        } else if token.eq_ignore_ascii_case("none") {
            none = true;
            known = true;
        } else if let Some(c) = Category::parse(token) {
            granted.insert(c);
            known = true;
        }
    }
    if !known {
        return None;
    }
    let set = if none {
        CategorySet::NECESSARY
    } else {
        granted
    };
    Some((set, at))
}

/// The value that records a choice of `set` made at `at` (Unix seconds).
pub fn value(set: CategorySet, at: u64) -> String {
    let list = if set == CategorySet::ALL {
        "all".to_string()
    } else {
        let names: Vec<&str> = set
            .iter()
            .filter(|c| *c != Category::Necessary)
            .map(Category::as_str)
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        }
    };
    format!("{list}@{at}")
}

/// The proxy's own cookie as a consent format. It has no settings of its own: its name is the
/// policy's `consent_cookie`, its lifetime the banner's.
pub struct Native;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeConfig {}

impl Format for Native {
    type Config = NativeConfig;

    fn build(_: &NativeConfig, ctx: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let lifetime = ctx.native_lifetime.unwrap_or(THIRTEEN_MONTHS);
        Box::new(OneCookie {
            id,
            cookie: ctx.consent_cookie.to_string(),
            companions: &[],
            parse: move |v: &str, rc: &ReadCtx| match parse_dated(v) {
                Some((set, Some(at))) => {
                    Said::dated(Reading::Granted(set), at, rc.now, Some(lifetime))
                }
                Some((set, None)) => Said::new(Reading::Granted(set)),
                None => Said::new(Reading::Unreadable),
            },
        })
    }
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
        assert_eq!(
            parse_dated("analytics@1796000000"),
            Some((s(&[Analytics]).unwrap(), Some(1_796_000_000)))
        );
        assert_eq!(
            parse_dated("none%401796000000"),
            Some((s(&[]).unwrap(), Some(1_796_000_000)))
        );
        for set in [
            CategorySet::ALL,
            s(&[]).unwrap(),
            s(&[Analytics, Marketing]).unwrap(),
        ] {
            assert_eq!(parse_dated(&value(set, 7)), Some((set, Some(7))));
        }
    }

    #[test]
    fn a_sites_own_cookie_of_the_same_name_is_not_a_choice() {
        for v in ["Y", "true", "1", "yes", "abc123", "x,y"] {
            assert_eq!(parse_value(v), None, "{v:?}");
        }
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
            "analytics@",
            "analytics@12x",
            "analytics@1234567890123",
            "{\"analytics\":true}@1",
        ] {
            assert_eq!(parse_value(v), None, "{v:?}");
        }
    }
}
