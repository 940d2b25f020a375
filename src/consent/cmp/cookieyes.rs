//! CookieYes's `cookieyes-consent` cookie: comma-separated `key:value` pairs,
//! `consentid:abc123,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes,
//! performance:no,advertisement:no,other:no`, sometimes percent-encoded as a whole.
//!
//! - The category keys `necessary`, `functional`, `analytics`, `performance`, `advertisement`
//!   and `other` must have the value `yes` or `no`; anything else is unreadable. Other keys
//!   (`consentid`, `consent`, `action`, a site's custom categories) are ignored whatever their
//!   value, and are split at their first `:` (so a value may contain `:`).
//! - `functional` → preferences, `analytics` and `performance` → analytics (granted only if
//!   every one of them present is `yes`), `advertisement` → marketing. `necessary` and `other`
//!   (uncategorised cookies) grant nothing of their own.
//! - `consent` and `action` are not interpreted: the category keys carry the choice.
//! - No category key at all, an empty pair, or a pair without `:` is unreadable. A key given
//!   twice grants only if both say `yes`.

use super::{Reading, from_names, map_of, percent_decode};
use crate::category::Category;
use crate::consent::format::{
    BuildCtx, ConsentReader, CookieOnly, Format, FormatId, OneCookie, ReadCtx, Said, cookie_or,
};

/// The keys whose value must be `yes` or `no`.
const CATEGORY_KEYS: [&str; 6] = [
    "necessary",
    "functional",
    "analytics",
    "performance",
    "advertisement",
    "other",
];

/// Parses one `cookieyes-consent` value.
pub fn parse(value: &str) -> Reading {
    let Some(decoded) = super::prepare(value).and_then(percent_decode) else {
        return Reading::Unreadable;
    };
    let mut flags = Vec::new();
    for pair in decoded.split(',') {
        let Some((key, value)) = pair.split_once(':') else {
            return Reading::Unreadable;
        };
        if !CATEGORY_KEYS.contains(&key) {
            continue;
        }
        let consented = match value {
            "yes" => true,
            "no" => false,
            _ => return Reading::Unreadable,
        };
        flags.push((key, consented));
    }
    if flags.is_empty() {
        return Reading::Unreadable;
    }
    let map = map_of(&[
        ("functional", Category::Preferences),
        ("analytics", Category::Analytics),
        ("performance", Category::Analytics),
        ("advertisement", Category::Marketing),
    ]);
    Reading::Granted(from_names(flags.into_iter(), &map))
}

/// CookieYes (`cookieyes-consent`) as a consent format.
pub struct Cookieyes;

impl Format for Cookieyes {
    type Config = CookieOnly;

    fn build(config: &CookieOnly, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "cookieyes-consent"),
            companions: &[],
            parse: |v: &str, _: &ReadCtx| Said::new(parse(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::category::CategorySet;
    use Category::*;

    fn p(v: &str) -> Reading {
        checked(parse(v))
    }

    /// Analytics yes but performance no: analytics stays denied.
    const MIXED: &str = "consentid:abc123,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes,performance:no,advertisement:no,other:no";

    const ALL: &str = "consentid:V2FZbk1YMmRQa3RqR0lNZ0Q0ZnRVN0F3,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:yes,other:yes";

    const REJECTED: &str = "consentid:V2FZbk1YMmRQa3RqR0lNZ0Q0ZnRVN0F3,consent:no,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:no,other:no";

    #[test]
    fn real_values() {
        assert_eq!(p(MIXED), granted(&[]));
        assert_eq!(p(ALL), Reading::Granted(CategorySet::ALL));
        assert_eq!(
            p(
                "consentid:abc123,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:no,other:no"
            ),
            granted(&[Preferences, Analytics])
        );
        assert_eq!(
            p(
                "consentid:abc,consent:yes,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:yes,other:yes"
            ),
            granted(&[Marketing])
        );
        // Percent-encoded as a whole, and quoted.
        assert_eq!(p(&encode(ALL)), Reading::Granted(CategorySet::ALL));
        assert_eq!(
            p("consent%3Ayes%2Caction%3Ayes%2Cnecessary%3Ayes%2Cfunctional%3Ayes%2Canalytics%3Ano"),
            granted(&[Preferences])
        );
        assert_eq!(p(&format!("\"{ALL}\"")), Reading::Granted(CategorySet::ALL));
        // Whitespace around the whole value is trimmed, as for every format.
        assert_eq!(p(" analytics:yes "), granted(&[Analytics]));
    }

    #[test]
    fn refused_values() {
        assert_eq!(p(REJECTED), granted(&[]));
        assert_eq!(p(&encode(REJECTED)), granted(&[]));
        // A site without a performance category: analytics alone decides.
        assert_eq!(p("necessary:yes,analytics:yes"), granted(&[Analytics]));
        assert_eq!(p("necessary:yes"), granted(&[]));
        assert_eq!(p("performance:no,analytics:yes"), granted(&[]));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        assert_eq!(
            p(
                "consentid:a:b:c,consent:maybe,action:,necessary:yes,analytics:yes,custom-video:whatever,marketing:yes"
            ),
            granted(&[Analytics])
        );
        // Keys are case-sensitive: Analytics is not a category key.
        assert_eq!(p("necessary:yes,Analytics:yes"), granted(&[]));
        assert_eq!(p("Analytics:yes"), Reading::Unreadable);
    }

    #[test]
    fn duplicate_keys_take_the_stricter_reading() {
        assert_eq!(p("analytics:yes,analytics:no"), granted(&[]));
        assert_eq!(p("analytics:no,analytics:yes"), granted(&[]));
        assert_eq!(p("analytics:yes,analytics:yes"), granted(&[Analytics]));
        assert_eq!(p("analytics:yes,analytics:y"), Reading::Unreadable);
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "consentid:abc,consent:yes,action:yes",
            "garbage",
            "analytics",
            "analytics:",
            "analytics:YES",
            "analytics:true",
            "analytics:1",
            "analytics: yes",
            "analytics:yes,",
            ",analytics:yes",
            "analytics:yes,,functional:yes",
            "analytics:yes,functional",
            "analytics:yes;functional:yes",
            "analytics:yes:no",
            "analytics%3Ayes%2",
            "analytics%3Ayes%",
            "analytics%3Ayes%G1",
            "analytics%3Ayes%2Cconsentid%3A%FF",
            "{\"analytics\":\"yes\"}",
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(ALL, p);
        assert_truncations(REJECTED, p);
        assert_truncations(&encode(REJECTED), p);
        // Known limit: pairs have no terminator, so a cut exactly before a `,` is a shorter but
        // well-formed value. In MIXED, cutting right after `analytics:yes` drops the refused
        // `performance` and grants analytics; every other cut grants no more.
        assert_eq!(
            p("consentid:abc123,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes"),
            granted(&[Analytics])
        );
        assert_truncations_with(MIXED, p, |rest| rest.starts_with(','));
        assert_truncations_with(&encode(MIXED), p, |rest| rest.starts_with("%2C"));
    }

    #[test]
    fn hostile_values() {
        let long = format!("consentid:{},analytics:yes", "a".repeat(9000));
        assert_eq!(p(&long), Reading::Unreadable);
        let fits = format!("consentid:{},analytics:yes", "a".repeat(8000));
        assert_eq!(p(&fits), granted(&[Analytics]));
        let many = "analytics:yes,".repeat(500) + "analytics:yes";
        assert_eq!(p(&many), granted(&[Analytics]));
        assert_eq!(p(&"[".repeat(10_000)), Reading::Unreadable);
        assert_eq!(p(&"{".repeat(8000)), Reading::Unreadable);
        assert_eq!(p(&",".repeat(8000)), Reading::Unreadable);
        assert_eq!(p(&":".repeat(8000)), Reading::Unreadable);
        assert_eq!(p("consentid:\"a,b\",analytics:yes"), Reading::Unreadable);
        assert_eq!(p("consentid:'x',analytics:yes"), granted(&[Analytics]));
        assert_eq!(p("consentid:ä\u{0},analytics:yes"), granted(&[Analytics]));
    }

    #[test]
    fn fuzz() {
        let alphabet = [
            "consentid:",
            "consent:",
            "analytics",
            "performance",
            "functional",
            "advertisement",
            "necessary",
            "other",
            ":",
            "%3A",
            ",",
            "%2C",
            "yes",
            "no",
            "y",
            "%",
            "%FF",
            "\"",
            " ",
            "x",
        ];
        super::super::testutil::fuzz(0x0C00_C1E5, &alphabet, p);
    }
}
