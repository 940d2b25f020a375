//! orestbida/cookieconsent's `cc_cookie`: JSON, percent-encoded by v3
//! (`encodeURIComponent(JSON.stringify(...))`) and plain in v2.
//!
//! - v3 lists the accepted categories under `categories`, v2 under `level`; either is accepted.
//!   Each listed name is granted through the category map; a category not listed is refused.
//! - Both keys present, or one key twice: a category counts only if every list names it.
//! - Not an object, neither key, a list that is not an array, or an entry that is not a string:
//!   unreadable.
//! - v3's per-category `services` lists are not interpreted: a listed category is granted as a
//!   whole.

use super::json::{self, Json};
use super::{CategoryMap, Reading, map_of, stricter};
use crate::category::{Category, CategorySet};
use crate::consent::format::{
    BuildCtx, CategoriesConfig, ConsentReader, Format, FormatId, OneCookie, ReadCtx, Said,
    cookie_or,
};

/// The category names the library's examples and real sites' configurations use, with the
/// category their descriptions give them: `tracking` is advertising (Sklik and Google Ads
/// cookies on the sites that use it), `performance` and `statistics` are measurement,
/// `functional`, `functionality`, `personalization` and `usability` remember the visitor's
/// settings. Embeds named per service or as `social`/`external` are left to the policy: sites
/// use them for both.
pub fn default_categories() -> CategoryMap {
    use Category::*;
    map_of(&[
        ("necessary", Necessary),
        ("functionality", Preferences),
        ("functional", Preferences),
        ("preferences", Preferences),
        ("personalization", Preferences),
        ("usability", Preferences),
        ("analytics", Analytics),
        ("performance", Analytics),
        ("statistics", Analytics),
        ("marketing", Marketing),
        ("targeting", Marketing),
        ("tracking", Marketing),
        ("ads", Marketing),
        ("advertising", Marketing),
        ("advertisement", Marketing),
    ])
}

/// Parses one `cc_cookie` value, mapping category names through `categories`.
pub fn parse(value: &str, categories: &CategoryMap) -> Reading {
    let Some(object) = json::parse_object(value) else {
        return Reading::Unreadable;
    };
    let mut result = None;
    for list in object.get_all("categories").chain(object.get_all("level")) {
        let Json::Array(items) = list else {
            return Reading::Unreadable;
        };
        let mut set = CategorySet::NECESSARY;
        for item in items {
            let Json::String(name) = item else {
                return Reading::Unreadable;
            };
            if let Some(&c) = categories.get(name.as_str()) {
                set.insert(c);
            }
        }
        result = stricter(result, set);
    }
    Reading::from_option(result)
}

/// orestbida/cookieconsent (`cc_cookie`) as a consent format.
pub struct Cookieconsent;

impl Format for Cookieconsent {
    type Config = CategoriesConfig;

    fn build(config: &CategoriesConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let map = config.categories.clone().unwrap_or_else(default_categories);
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "cc_cookie"),
            companions: &[],
            parse: move |v: &str, _: &ReadCtx| Said::new(parse(v, &map)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use Category::*;

    fn p(v: &str) -> Reading {
        checked(parse(v, &default_categories()))
    }

    const V3_JSON: &str = r#"{"categories":["necessary","analytics"],"revision":0,"data":null,"consentTimestamp":"2026-11-23T10:00:00.000Z","consentId":"7a1f3c9e-2b4d-4e6f-8a0b-1c2d3e4f5a6b","services":{"necessary":[],"analytics":["ga"]},"languageCode":"en","lastConsentTimestamp":"2026-11-23T10:00:00.000Z","expirationTime":1795000000000}"#;

    /// `V3_JSON` as v3 writes it into the cookie.
    const V3: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C%22revision%22%3A0%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222026-11-23T10%3A00%3A00.000Z%22%2C%22consentId%22%3A%227a1f3c9e-2b4d-4e6f-8a0b-1c2d3e4f5a6b%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%22ga%22%5D%7D%2C%22languageCode%22%3A%22en%22%2C%22lastConsentTimestamp%22%3A%222026-11-23T10%3A00%3A00.000Z%22%2C%22expirationTime%22%3A1795000000000%7D";

    /// A v2 cookie: plain JSON.
    const V2: &str = r#"{"level":["necessary","analytics","targeting"],"revision":0,"data":null,"rfc_cookie":false}"#;

    #[test]
    fn real_values() {
        assert_eq!(encode(V3_JSON), V3);
        assert_eq!(p(V3), granted(&[Analytics]));
        assert_eq!(p(V3_JSON), granted(&[Analytics]));
        assert_eq!(p(V2), granted(&[Analytics, Marketing]));
        assert_eq!(p(&encode(V2)), granted(&[Analytics, Marketing]));
        let all = r#"{"categories":["necessary","functionality","analytics","marketing"],"revision":3,"data":{"x":[1,{"y":null}]},"consentTimestamp":"2026-11-23T10:00:00.000Z","consentId":"x","services":{"necessary":[],"functionality":[],"analytics":["ga","hotjar"],"marketing":[]}}"#;
        assert_eq!(p(&encode(all)), Reading::Granted(CategorySet::ALL));
        // js-cookie style partial encoding.
        assert_eq!(
            p("{%22categories%22:[%22necessary%22%2C%22performance%22]}"),
            granted(&[Analytics])
        );
    }

    #[test]
    fn refused_values() {
        let none = r#"{"categories":["necessary"],"revision":0,"data":null,"consentTimestamp":"2026-11-23T10:00:00.000Z","consentId":"x","services":{"necessary":[],"analytics":[]}}"#;
        assert_eq!(p(&encode(none)), granted(&[]));
        assert_eq!(p(r#"{"categories":[]}"#), granted(&[]));
        assert_eq!(p(r#"{"level":[]}"#), granted(&[]));
        // Services are not interpreted: an empty services list for a listed category
        // does not refuse it, and a service list for an unlisted one does not grant it.
        assert_eq!(
            p(r#"{"categories":["analytics"],"services":{"analytics":[],"marketing":["ads"]}}"#),
            granted(&[Analytics])
        );
    }

    #[test]
    fn unknown_names_and_operator_map() {
        assert_eq!(
            p(r#"{"categories":["necessary","Analytics","stats","ads"]}"#),
            granted(&[Marketing])
        );
        // Names real sites use beside the library's own.
        assert_eq!(
            p(r#"{"categories":["necessary","tracking","statistics","functional"]}"#),
            granted(&[Marketing, Analytics, Preferences])
        );
        let map = map_of(&[("stats", Analytics), ("video", Preferences)]);
        assert_eq!(
            parse(r#"{"categories":["stats","video","analytics"]}"#, &map),
            granted(&[Analytics, Preferences])
        );
    }

    #[test]
    fn duplicate_keys_take_the_stricter_reading() {
        assert_eq!(
            p(r#"{"categories":["analytics","marketing"],"categories":["analytics"]}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p(r#"{"categories":["analytics","marketing"],"level":["marketing"]}"#),
            granted(&[Marketing])
        );
        assert_eq!(
            p(r#"{"level":["analytics"],"categories":[]}"#),
            granted(&[])
        );
        assert_eq!(
            p(r#"{"categories":["analytics"],"categories":null}"#),
            Reading::Unreadable
        );
        // A name listed twice is simply granted.
        assert_eq!(
            p(r#"{"categories":["analytics","analytics"]}"#),
            granted(&[Analytics])
        );
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "{}",
            "[]",
            "null",
            "analytics",
            r#"["analytics"]"#,
            r#"{"categories":"analytics"}"#,
            r#"{"categories":{"analytics":true}}"#,
            r#"{"categories":null}"#,
            r#"{"categories":["analytics",1]}"#,
            r#"{"categories":["analytics",null]}"#,
            r#"{"categories":[["analytics"]]}"#,
            r#"{"level":[true]}"#,
            r#"{"Categories":["analytics"]}"#,
            r#"{"data":{"categories":["analytics"]}}"#,
            r#"{"categories":["analytics"]"#,
            r#"{"categories":["analytics"],}"#,
            r#"{'categories':['analytics']}"#,
            "%7B%22categories%22%3A%5B%22analytics%22%5D%7",
            "%7B%22categories%22%3A%5B%22analytics%FF%22%5D%7D",
            "%7B%22categories%22%3A%5B%22analytics%G1%22%5D%7D",
            "%7B%22categories%22%3A%5B%22analytics%22%5D%7D%",
            "%7B%22categories%22%3A%5B%22analytics%22%5D%7D%7D",
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
    }

    #[test]
    fn quotes_and_escapes_inside_strings() {
        assert_eq!(
            p(r#"{"consentId":"a\"],\"categories\":[\"marketing","categories":["analytics"]}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p(r#"{"categories":["anal\u0079tics"]}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p(&encode(r#"{"categories":["analytics\""]}"#)),
            granted(&[])
        );
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(V3, p);
        assert_truncations(V3_JSON, p);
        assert_truncations(V2, p);
        assert_truncations("{%22categories%22:[%22necessary%22%2C%22analytics%22]}", p);
    }

    #[test]
    fn hostile_values() {
        let long = format!(
            r#"{{"categories":["analytics"],"data":"{}"}}"#,
            "a".repeat(9000)
        );
        assert_eq!(p(&long), Reading::Unreadable);
        let fits = format!(
            r#"{{"categories":["analytics"],"data":"{}"}}"#,
            "a".repeat(8000)
        );
        assert_eq!(p(&fits), granted(&[Analytics]));
        let deep = format!(
            r#"{{"categories":["analytics"],"data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(p(&deep), Reading::Unreadable);
        let deep_fits = format!(
            r#"{{"categories":["analytics"],"data":{}{}}}"#,
            "[".repeat(4000),
            "]".repeat(4000)
        );
        assert_eq!(p(&deep_fits), Reading::Unreadable);
        let deep_encoded = encode(&format!(
            r#"{{"categories":["analytics"],"data":{}1{}}}"#,
            "{\"a\":".repeat(500),
            "}".repeat(500)
        ));
        assert!(deep_encoded.len() <= super::super::MAX_VALUE_LEN);
        assert_eq!(p(&deep_encoded), Reading::Unreadable);
        let many = format!(r#"{{"categories":[{}"analytics"]}}"#, "\"x\",".repeat(1500));
        assert_eq!(p(&many), granted(&[Analytics]));
        assert_eq!(p(&"{".repeat(8000)), Reading::Unreadable);
        assert_eq!(p(&"%7B".repeat(2000)), Reading::Unreadable);
        assert_eq!(p("{\"categories\":[\"\\ud800\"]}"), Reading::Unreadable);
    }

    #[test]
    fn fuzz() {
        let alphabet = [
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "\\",
            "\"categories\"",
            "\"level\"",
            "\"analytics\"",
            "\"marketing\"",
            "\"necessary\"",
            "true",
            "null",
            "1",
            "%22",
            "%7B",
            "%7D",
            "%5B",
            "%5D",
            "%2C",
            "%3A",
            "%",
            "%FF",
            " ",
            "x",
        ];
        super::super::testutil::fuzz(0x00CC_C00C, &alphabet, p);
    }
}
