//! OneTrust's `OptanonConsent` cookie: a form-encoded query string whose `groups` parameter
//! lists the consent groups with a flag each, `C0001:1,C0002:0,...` (`1` consented, `0`
//! refused).
//!
//! - A missing `groups` parameter, an entry that is not `id:flag`, or a flag other than `0` or
//!   `1` makes the value unreadable; so does a malformed `%` escape or invalid UTF-8 anywhere.
//! - An empty `groups` parameter grants `necessary` only.
//! - Group ids (ASCII letters, digits, `_`, `-`) are case-sensitive; unknown ids are ignored. A category is granted only if every
//!   listed group that maps to it is consented (C0004 and C0005 are both marketing by default).
//! - Some setups percent-encode the whole value once more (`groups%3DC0001%253A1...`): a value
//!   without `=` that decodes to one containing `groups=` is decoded once more.
//! - `groups` given twice: a category counts only if both grant it.
//!
//! The other parameters (`isGpcEnabled`, `interactionCount`, `geolocation`, ...) are not
//! interpreted: the proxy reads browser signals itself.

use super::{
    CategoryMap, Reading, form_decode, form_valid, from_names, map_of, percent_decode, stricter,
};
use crate::category::{Category, CategorySet};
use crate::consent::format::{
    BuildCtx, ConsentReader, Format, FormatId, GroupsConfig, OneCookie, ReadCtx, Said, cookie_or,
};

/// OneTrust's standard group ids: C0001 strictly necessary, C0002 performance (analytics),
/// C0003 functional (preferences), C0004 targeting and C0005 social media (marketing).
pub fn default_groups() -> CategoryMap {
    map_of(&[
        ("C0001", Category::Necessary),
        ("C0002", Category::Analytics),
        ("C0003", Category::Preferences),
        ("C0004", Category::Marketing),
        ("C0005", Category::Marketing),
    ])
}

/// Parses one `OptanonConsent` value, mapping group ids through `groups`.
pub fn parse(value: &str, groups: &CategoryMap) -> Reading {
    let Some(value) = super::prepare(value) else {
        return Reading::Unreadable;
    };
    if value.contains('=') {
        return Reading::from_option(parse_query(value, groups));
    }
    // Encoded once more as a whole.
    match percent_decode(value) {
        Some(inner) if inner.contains("groups=") => {
            Reading::from_option(parse_query(&inner, groups))
        }
        _ => Reading::Unreadable,
    }
}

/// Reads the query string; `None` if it cannot be read or has no `groups`.
fn parse_query(query: &str, map: &CategoryMap) -> Option<CategorySet> {
    let mut result = None;
    // The other parameters are only checked, in one reused buffer.
    let mut scratch = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let key = form_decode(key)?;
        if key == "groups" {
            result = stricter(result, parse_groups(&form_decode(value)?, map)?);
        } else if !form_valid(value, &mut scratch) {
            return None;
        }
    }
    result
}

/// Reads a decoded `groups` list such as `C0001:1,C0002:0`.
fn parse_groups(list: &str, map: &CategoryMap) -> Option<CategorySet> {
    if list.is_empty() {
        return Some(CategorySet::NECESSARY);
    }
    let mut entries = Vec::new();
    for entry in list.split(',') {
        let (id, flag) = entry.split_once(':')?;
        let consented = match flag {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        entries.push((id, consented));
    }
    Some(from_names(entries.into_iter(), map))
}

/// OneTrust (`OptanonConsent`) as a consent format.
pub struct Onetrust;

impl Format for Onetrust {
    type Config = GroupsConfig;

    fn build(config: &GroupsConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let map = config.groups.clone().unwrap_or_else(default_groups);
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "OptanonConsent"),
            companions: &[
                "OptanonAlertBoxClosed",
                "eupubconsent-v2",
                "OTAdditionalConsentString",
            ],
            parse: move |v: &str, _: &ReadCtx| Said::new(parse(v, &map)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use Category::*;

    /// A value as OneTrust writes it (and as it arrives in the `Cookie` header).
    const REAL: &str = "isGpcEnabled=0&datestamp=Mon+Nov+23+2026+12%3A00%3A00+GMT%2B0100+(Central+European+Standard+Time)&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=3f1e6b8a-0c2d-4f5e-9a7b-1c2d3e4f5a6b&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A0%2CC0005%3A0&AwaitingReconsent=false&geolocation=DE%3BBE";

    fn p(v: &str) -> Reading {
        checked(parse(v, &default_groups()))
    }

    fn with_groups(groups: &str) -> String {
        format!(
            "isGpcEnabled=0&datestamp=Mon+Nov+23+2026+12%3A00%3A00+GMT%2B0100&version=202409.1.0&isIABGlobal=false&hosts=&consentId=abc&interactionCount=1&landingPath=NotLandingPage&groups={groups}&AwaitingReconsent=false&geolocation=DE%3BBE"
        )
    }

    #[test]
    fn real_values() {
        assert_eq!(p(REAL), granted(&[Preferences]));
        assert_eq!(
            p(&with_groups(
                "C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1%2CC0005%3A1"
            )),
            Reading::Granted(CategorySet::ALL)
        );
        assert_eq!(
            p(&with_groups("C0001%3A1%2CC0002%3A1%2CC0004%3A1")),
            granted(&[Analytics, Marketing])
        );
        // groups last, unencoded separators, other parameter order.
        assert_eq!(
            p("consentId=x&groups=C0002:1,C0001:1"),
            granted(&[Analytics])
        );
        // Quoted cookie value.
        assert_eq!(p(&format!("\"{REAL}\"")), granted(&[Preferences]));
    }

    #[test]
    fn refused_values() {
        assert_eq!(
            p(&with_groups(
                "C0001%3A1%2CC0002%3A0%2CC0003%3A0%2CC0004%3A0%2CC0005%3A0"
            )),
            granted(&[])
        );
        // C0001:0 still leaves necessary.
        assert_eq!(p(&with_groups("C0001%3A0")), granted(&[]));
        // One marketing group refused keeps marketing denied.
        assert_eq!(p(&with_groups("C0004%3A1%2CC0005%3A0")), granted(&[]));
        assert_eq!(p(&with_groups("C0005%3A0%2CC0004%3A1")), granted(&[]));
        // Empty groups list.
        assert_eq!(p(&with_groups("")), granted(&[]));
    }

    #[test]
    fn unknown_and_case_sensitive_ids_are_ignored() {
        assert_eq!(
            p(&with_groups(
                "C0001%3A1%2CC0002%3A1%2CSTACK42%3A1%2CBG12%3A1%2CSPD_BG%3A1%2Cc0004%3A1"
            )),
            granted(&[Analytics])
        );
    }

    #[test]
    fn operator_map() {
        let map = map_of(&[("C0002", Analytics), ("C0007", Marketing)]);
        let v = with_groups("C0002%3A1%2CC0004%3A1%2CC0007%3A1");
        assert_eq!(parse(&v, &map), granted(&[Analytics, Marketing]));
        assert_eq!(
            parse(&v, &CategoryMap::new()),
            Reading::Granted(CategorySet::NECESSARY)
        );
    }

    #[test]
    fn double_encoded_value() {
        let once = with_groups("C0001%3A1%2CC0002%3A1%2CC0003%3A0");
        let twice = encode(&once);
        assert!(!twice.contains('=') && twice.contains("groups%3DC0001%253A1"));
        assert_eq!(p(&twice), granted(&[Analytics]));
        // Only once more: a triple-encoded value is not read.
        assert_eq!(p(&encode(&twice)), Reading::Unreadable);
        // A value without `=` that does not decode to a query with groups.
        assert_eq!(p("C0001%3A1%2CC0002%3A1"), Reading::Unreadable);
        assert_eq!(p("%FF"), Reading::Unreadable);
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "garbage",
            "isGpcEnabled=0&consentId=abc",
            "groups",
            &with_groups("C0002%3A2"),
            &with_groups("C0002%3Atrue"),
            &with_groups("C0002%3A"),
            &with_groups("C0002"),
            &with_groups("%3A1"),
            &with_groups("C0002%3A1%2C"),
            &with_groups("C0002%3A1%2C%2CC0003%3A1"),
            &with_groups("C0002%3A1%3A1"),
            &with_groups("C0002%3A+1"),
            &with_groups("C0002%3A1%FF"),
            &with_groups("C0002%3A1%G1"),
            &with_groups("C0002%3A1%"),
            &with_groups("C0002%3A1%2"),
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
        // A bad escape or invalid UTF-8 in another parameter also makes the value unreadable.
        assert_eq!(
            p(&format!("{}&geolocation=%E0%80", with_groups("C0002%3A1"))),
            Reading::Unreadable
        );
        assert_eq!(
            p(&format!("landingPath=%ZZ&{}", with_groups("C0002%3A1"))),
            Reading::Unreadable
        );
    }

    #[test]
    fn duplicate_groups_take_the_stricter_reading() {
        let v = "groups=C0002%3A1%2CC0003%3A1&x=1&groups=C0002%3A1%2CC0004%3A1";
        assert_eq!(p(v), granted(&[Analytics]));
        let v = "groups=C0002%3A1&groups=C0002%3A0";
        assert_eq!(p(v), granted(&[]));
        let v = "groups=C0002%3A1&groups=";
        assert_eq!(p(v), granted(&[]));
        let v = "groups=C0002%3A1&groups=C0002%3A7";
        assert_eq!(p(v), Reading::Unreadable);
        // The same id twice within one list: refused if either refuses.
        assert_eq!(p("groups=C0002:1,C0002:0"), granted(&[]));
        assert_eq!(p("groups=C0002:1,C0002:1"), granted(&[Analytics]));
        // An encoded key is still the groups key.
        assert_eq!(p("group%73=C0002:1"), granted(&[Analytics]));
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(REAL, p);
        assert_truncations(
            &with_groups("C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1%2CC0005%3A1"),
            p,
        );
        assert_truncations(&encode(&with_groups("C0001%3A1%2CC0002%3A1")), p);
        // Known limit: the list has no terminator, so a cut exactly before a `,` between two
        // groups of the same category is a shorter but well-formed list. With C0004 consented
        // and C0005 refused, such a prefix grants marketing; every other cut grants no more.
        let mixed = with_groups("C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A1%2CC0005%3A0");
        assert_eq!(p(&mixed), granted(&[Preferences]));
        let at_boundary = mixed.find("%2CC0005").unwrap_or(0);
        assert_eq!(p(&mixed[..at_boundary]), granted(&[Preferences, Marketing]));
        assert_truncations_with(&mixed, p, |rest| rest.starts_with("%2C"));
    }

    #[test]
    fn hostile_values() {
        let long = with_groups("C0002%3A1") + &"&x=".repeat(3000);
        assert!(long.len() > super::super::MAX_VALUE_LEN);
        assert_eq!(p(&long), Reading::Unreadable);
        let just_fits = {
            let base = with_groups("C0002%3A1") + "&pad=";
            let pad = super::super::MAX_VALUE_LEN - base.len();
            base + &"a".repeat(pad)
        };
        assert_eq!(just_fits.len(), super::super::MAX_VALUE_LEN);
        assert_eq!(p(&just_fits), granted(&[Analytics]));
        let many = with_groups(&("C0002%3A1%2C".repeat(600) + "C0002%3A1"));
        assert_eq!(p(&many), granted(&[Analytics]));
        let nested = "[".repeat(10_000);
        assert_eq!(p(&nested), Reading::Unreadable);
        assert_eq!(p(&"groups=".repeat(1000)), Reading::Unreadable);
        assert_eq!(p("groups=C0002%3A1%22%27"), Reading::Unreadable);
        assert_eq!(p("groups=\"C0002:1\""), Reading::Unreadable);
        assert_eq!(p("&&&=&=="), Reading::Unreadable);
        assert_eq!(p("groups==C0002:1"), Reading::Unreadable);
        assert_eq!(p("groups=C0002:1\u{0}"), Reading::Unreadable);
        assert_eq!(p("groups=C0002:1&\u{feff}"), granted(&[Analytics]));
    }

    #[test]
    fn fuzz() {
        let alphabet = [
            "groups=",
            "groups%3D",
            "C0001",
            "C0002",
            "C0003",
            "C0004",
            "C0005",
            ":",
            "%3A",
            "%253A",
            ",",
            "%2C",
            "%252C",
            "&",
            "%26",
            "=",
            "0",
            "1",
            "2",
            "%",
            "%2",
            "%FF",
            "+",
            "\"",
            "x",
        ];
        super::super::testutil::fuzz(0x00E7_0001, &alphabet, p);
    }
}
