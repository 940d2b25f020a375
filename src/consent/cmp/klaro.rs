//! Klaro's `klaro` cookie: a JSON object mapping each service name to a boolean,
//! `{"google-analytics":true,"facebook-pixel":false}`, percent-encoded by Klaro
//! (`encodeURIComponent(JSON.stringify(consents))`); plain JSON is accepted too.
//!
//! - Services are mapped to categories by the operator's map. A category is granted only if at
//!   least one service in the cookie maps to it and every service in the cookie that maps to it
//!   is `true` (a service given twice must be `true` both times).
//! - Unknown services are ignored, but every value must be a boolean: anything else, or a value
//!   that is not an object, is unreadable.

use super::json::{self, Json};
use super::{CategoryMap, Reading, from_names, map_of};
use crate::category::Category;
use crate::consent::format::{
    BuildCtx, ConsentReader, Format, FormatId, OneCookie, ReadCtx, Said, ServicesConfig, cookie_or,
};

/// Common service names (as in Klaro's examples, its service library and real sites'
/// configurations) and their categories. Klaro stores required services in the cookie too
/// (`klaro`, `default`): they are necessary.
pub fn default_services() -> CategoryMap {
    use Category::*;
    map_of(&[
        ("klaro", Necessary),
        ("default", Necessary),
        ("google-analytics", Analytics),
        ("googleAnalytics", Analytics),
        ("google-tag-manager", Analytics),
        ("google-tag", Analytics),
        ("matomo", Analytics),
        ("matomo-tracking", Analytics),
        ("microsoft-clarity", Analytics),
        ("clarity", Analytics),
        ("plausible", Analytics),
        ("hotjar", Analytics),
        ("facebook-pixel", Marketing),
        ("facebookPixel", Marketing),
        ("meta-pixel", Marketing),
        ("google-ads", Marketing),
        ("googleAds", Marketing),
        ("linkedin-insight", Marketing),
        ("linkedin-insight-tag", Marketing),
        ("pinterest-tag", Marketing),
        ("tiktok-pixel", Marketing),
        ("youtube", Preferences),
        ("vimeo", Preferences),
        ("google-maps", Preferences),
        ("googleMaps", Preferences),
    ])
}

/// Parses one `klaro` value, mapping service names through `services`.
pub fn parse(value: &str, services: &CategoryMap) -> Reading {
    let Some(Json::Object(members)) = json::parse_object(value) else {
        return Reading::Unreadable;
    };
    let mut flags = Vec::with_capacity(members.len());
    for (name, value) in &members {
        let Json::Bool(consented) = value else {
            return Reading::Unreadable;
        };
        flags.push((name.as_str(), *consented));
    }
    Reading::Granted(from_names(flags.into_iter(), services))
}

/// Klaro (`klaro`) as a consent format.
pub struct Klaro;

impl Format for Klaro {
    type Config = ServicesConfig;

    fn build(config: &ServicesConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let map = config.services.clone().unwrap_or_else(default_services);
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "klaro"),
            companions: &[],
            parse: move |v: &str, _: &ReadCtx| Said::new(parse(v, &map)),
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
        checked(parse(v, &default_services()))
    }

    /// As Klaro writes it: `{"google-analytics":true,"facebook-pixel":false,"youtube":true}`.
    const REAL: &str =
        "%7B%22google-analytics%22%3Atrue%2C%22facebook-pixel%22%3Afalse%2C%22youtube%22%3Atrue%7D";

    #[test]
    fn real_values() {
        assert_eq!(p(REAL), granted(&[Analytics, Preferences]));
        assert_eq!(
            p(r#"{"google-analytics":true,"facebook-pixel":false,"youtube":true}"#),
            granted(&[Analytics, Preferences])
        );
        let all = r#"{"googleAnalytics":true,"matomo":true,"facebookPixel":true,"googleMaps":true,"klaro":true}"#;
        assert_eq!(p(&encode(all)), Reading::Granted(CategorySet::ALL));
        assert_eq!(
            p(&format!("\"{REAL}\"")),
            granted(&[Analytics, Preferences])
        );
    }

    #[test]
    fn refused_values() {
        let none = r#"{"google-analytics":false,"facebook-pixel":false,"youtube":false}"#;
        assert_eq!(p(&encode(none)), granted(&[]));
        assert_eq!(p("{}"), granted(&[]));
        assert_eq!(p("%7B%7D"), granted(&[]));
        // Only unknown services: nothing beyond necessary.
        assert_eq!(p(r#"{"my-chat":true,"intercom":true}"#), granted(&[]));
    }

    #[test]
    fn one_refused_service_keeps_its_category_denied() {
        assert_eq!(
            p(r#"{"google-analytics":true,"matomo":false,"hotjar":true}"#),
            granted(&[])
        );
        assert_eq!(
            p(r#"{"google-analytics":true,"matomo":true,"google-ads":true,"tiktok-pixel":false}"#),
            granted(&[Analytics])
        );
    }

    #[test]
    fn operator_map() {
        let map = map_of(&[("chat", Preferences), ("youtube", Marketing)]);
        assert_eq!(
            parse(
                r#"{"chat":true,"youtube":true,"google-analytics":true}"#,
                &map
            ),
            granted(&[Preferences, Marketing])
        );
        assert_eq!(parse(r#"{"chat":true}"#, &CategoryMap::new()), granted(&[]));
    }

    #[test]
    fn duplicate_keys_take_the_stricter_reading() {
        assert_eq!(p(r#"{"youtube":true,"youtube":false}"#), granted(&[]));
        assert_eq!(p(r#"{"youtube":false,"youtube":true}"#), granted(&[]));
        assert_eq!(
            p(r#"{"youtube":true,"youtube":true}"#),
            granted(&[Preferences])
        );
        assert_eq!(p(r#"{"youtube":true,"youtube":1}"#), Reading::Unreadable);
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "[]",
            "true",
            r#"[{"youtube":true}]"#,
            r#"{"youtube":"true"}"#,
            r#"{"youtube":1}"#,
            r#"{"youtube":null}"#,
            r#"{"youtube":{"enabled":true}}"#,
            r#"{"unknown":"x","youtube":true}"#,
            r#"{"youtube":true"#,
            r#"{"youtube":true,}"#,
            r#"{youtube:true}"#,
            r#"{'youtube':true}"#,
            "%7B%22youtube%22%3Atrue%7",
            "%7B%22youtube%FF%22%3Atrue%7D",
            "%7B%22youtube%22%3Atrue%G1%7D",
            "%7B%22youtube%22%3Atrue%7D%",
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
    }

    #[test]
    fn quotes_and_escapes_inside_names() {
        assert_eq!(
            p(r#"{"x\",\"youtube\":true":false,"vimeo":true}"#),
            granted(&[Preferences])
        );
        assert_eq!(p(r#"{"you\u0074ube":true}"#), granted(&[Preferences]));
        assert_eq!(p(r#"{"youtube ":true}"#), granted(&[]));
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(REAL, p);
        assert_truncations(
            r#"{"google-analytics":true,"facebook-pixel":false,"youtube":true}"#,
            p,
        );
        // Mixed flags within one category: the JSON must be complete, so no prefix grants it.
        assert_truncations(
            &encode(r#"{"google-analytics":true,"matomo":false,"youtube":true}"#),
            p,
        );
    }

    #[test]
    fn hostile_values() {
        let long = format!(r#"{{"youtube":true,"{}":true}}"#, "a".repeat(9000));
        assert_eq!(p(&long), Reading::Unreadable);
        let fits = format!(r#"{{"youtube":true,"{}":true}}"#, "a".repeat(8000));
        assert_eq!(p(&fits), granted(&[Preferences]));
        let deep = format!(
            r#"{{"youtube":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(p(&deep), Reading::Unreadable);
        let deep_fits = format!(
            r#"{{"youtube":{}true{}}}"#,
            "[".repeat(4000),
            "]".repeat(4000)
        );
        assert_eq!(p(&deep_fits), Reading::Unreadable);
        let many: String = (0..500).map(|i| format!("\"s{i}\":true,")).collect();
        assert_eq!(
            p(&format!("{{{many}\"youtube\":true}}")),
            granted(&[Preferences])
        );
        assert_eq!(p(&"{".repeat(8000)), Reading::Unreadable);
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
            "\"youtube\"",
            "\"matomo\"",
            "\"google-analytics\"",
            "true",
            "false",
            "null",
            "1",
            "%22",
            "%7B",
            "%7D",
            "%2C",
            "%3A",
            "%",
            "%FF",
            " ",
            "x",
        ];
        super::super::testutil::fuzz(0x6B1A_0001, &alphabet, p);
    }
}
