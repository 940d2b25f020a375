//! Borlabs Cookie's `borlabs-cookie` cookie: JSON (percent-encoded or plain) whose `consents`
//! object has one key per consented group, listing that group's consented cookie ids:
//! `{"consents":{"essential":["borlabs-cookie"],"statistics":["google-analytics"]},
//! "domainPath":"example.com/","expires":"...","uid":"abc","version":"1"}`.
//!
//! - A group key present under `consents` is consented, whatever its list holds; an absent group
//!   is refused. Groups are mapped through the group map; unknown groups are ignored.
//! - Each group's value must be an array of strings; `consents` must be an object; a value
//!   without `consents` is unreadable.
//! - `consents` given twice: a category counts only if both grant it.

use super::json::{self, Json};
use super::{CategoryMap, Reading, map_of, stricter};
use crate::category::{Category, CategorySet};
use crate::consent::format::{
    BuildCtx, ConsentReader, Format, FormatId, GroupsConfig, OneCookie, ReadCtx, Said, cookie_or,
};

/// Borlabs Cookie's standard groups.
pub fn default_groups() -> CategoryMap {
    map_of(&[
        ("essential", Category::Necessary),
        ("preferences", Category::Preferences),
        ("statistics", Category::Analytics),
        ("marketing", Category::Marketing),
        ("external-media", Category::Preferences),
    ])
}

/// Parses one `borlabs-cookie` value, mapping group names through `groups`.
pub fn parse(value: &str, groups: &CategoryMap) -> Reading {
    let Some(object) = json::parse_object(value) else {
        return Reading::Unreadable;
    };
    let mut result = None;
    for consents in object.get_all("consents") {
        let Json::Object(members) = consents else {
            return Reading::Unreadable;
        };
        let mut set = CategorySet::NECESSARY;
        for (group, ids) in members {
            let Json::Array(ids) = ids else {
                return Reading::Unreadable;
            };
            if !ids.iter().all(|id| matches!(id, Json::String(_))) {
                return Reading::Unreadable;
            }
            if let Some(&c) = groups.get(group.as_str()) {
                set.insert(c);
            }
        }
        result = stricter(result, set);
    }
    Reading::from_option(result)
}

/// Borlabs Cookie (`borlabs-cookie`) as a consent format.
pub struct Borlabs;

impl Format for Borlabs {
    type Config = GroupsConfig;

    fn build(config: &GroupsConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let map = config.groups.clone().unwrap_or_else(default_groups);
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "borlabs-cookie"),
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
        checked(parse(v, &default_groups()))
    }

    const REAL_JSON: &str = r#"{"consents":{"essential":["borlabs-cookie"],"statistics":["google-analytics"],"marketing":["facebook-pixel"]},"domainPath":"example.com/","expires":"Tue, 23 Nov 2027 10:00:00 GMT","uid":"abc","version":"1"}"#;

    /// `REAL_JSON` percent-encoded, as it arrives in the `Cookie` header.
    const REAL: &str = "%7B%22consents%22%3A%7B%22essential%22%3A%5B%22borlabs-cookie%22%5D%2C%22statistics%22%3A%5B%22google-analytics%22%5D%2C%22marketing%22%3A%5B%22facebook-pixel%22%5D%7D%2C%22domainPath%22%3A%22example.com%2F%22%2C%22expires%22%3A%22Tue%2C%2023%20Nov%202027%2010%3A00%3A00%20GMT%22%2C%22uid%22%3A%22abc%22%2C%22version%22%3A%221%22%7D";

    #[test]
    fn real_values() {
        assert_eq!(encode(REAL_JSON), REAL);
        assert_eq!(p(REAL), granted(&[Analytics, Marketing]));
        assert_eq!(p(REAL_JSON), granted(&[Analytics, Marketing]));
        let all = r#"{"consents":{"essential":["borlabs-cookie","wordpress"],"preferences":[],"statistics":["google-analytics","matomo"],"marketing":["google-ads"],"external-media":["youtube","vimeo"]},"domainPath":"www.example.com/","expires":"Tue, 23 Nov 2027 10:00:00 GMT","uid":"xyz","version":"3"}"#;
        assert_eq!(p(&encode(all)), Reading::Granted(CategorySet::ALL));
        assert_eq!(
            p(r#"{"consents":{"essential":["borlabs-cookie"],"external-media":["youtube"]}}"#),
            granted(&[Preferences])
        );
        assert_eq!(p(&format!("\"{REAL}\"")), granted(&[Analytics, Marketing]));
    }

    #[test]
    fn refused_values() {
        let essential_only = r#"{"consents":{"essential":["borlabs-cookie"]},"domainPath":"example.com/","expires":"Tue, 23 Nov 2027 10:00:00 GMT","uid":"abc","version":"1"}"#;
        assert_eq!(p(&encode(essential_only)), granted(&[]));
        assert_eq!(p(r#"{"consents":{}}"#), granted(&[]));
        // A present group is consented even with an empty list.
        assert_eq!(
            p(r#"{"consents":{"statistics":[]}}"#),
            granted(&[Analytics])
        );
    }

    #[test]
    fn unknown_groups_and_operator_map() {
        assert_eq!(
            p(r#"{"consents":{"Statistics":["ga"],"social":["x"],"marketing ":[]}}"#),
            granted(&[])
        );
        let map = map_of(&[("social", Marketing), ("statistics", Analytics)]);
        assert_eq!(
            parse(
                r#"{"consents":{"social":["x"],"external-media":["y"]}}"#,
                &map
            ),
            granted(&[Marketing])
        );
    }

    #[test]
    fn duplicate_keys_take_the_stricter_reading() {
        assert_eq!(
            p(r#"{"consents":{"statistics":[],"marketing":[]},"consents":{"statistics":[]}}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p(r#"{"consents":{"statistics":[]},"consents":{}}"#),
            granted(&[])
        );
        assert_eq!(
            p(r#"{"consents":{"statistics":[]},"consents":null}"#),
            Reading::Unreadable
        );
        // A group twice inside one object: present either way, each value checked.
        assert_eq!(
            p(r#"{"consents":{"statistics":[],"statistics":["ga"]}}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p(r#"{"consents":{"statistics":[],"statistics":true}}"#),
            Reading::Unreadable
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
            r#"{"uid":"abc","version":"1"}"#,
            r#"{"consents":null}"#,
            r#"{"consents":[]}"#,
            r#"{"consents":["statistics"]}"#,
            r#"{"consents":"statistics"}"#,
            r#"{"consents":{"statistics":true}}"#,
            r#"{"consents":{"statistics":"ga"}}"#,
            r#"{"consents":{"statistics":null}}"#,
            r#"{"consents":{"statistics":{}}}"#,
            r#"{"consents":{"statistics":[1]}}"#,
            r#"{"consents":{"statistics":[["ga"]]}}"#,
            r#"{"consents":{"essential":["borlabs-cookie",null]}}"#,
            r#"{"Consents":{"statistics":[]}}"#,
            r#"{"consents":{"statistics":[]}"#,
            r#"{"consents":{"statistics":[],}}"#,
            "%7B%22consents%22%3A%7B%7D%7",
            "%7B%22consents%22%3A%7B%22x%FF%22%3A%5B%5D%7D%7D",
            "%7B%22consents%22%3A%7B%7D%G1%7D",
            "%7B%22consents%22%3A%7B%7D%7D%",
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
    }

    #[test]
    fn quotes_inside_strings() {
        assert_eq!(
            p(
                r#"{"uid":"a\",\"consents\":{\"marketing\":[]}","consents":{"statistics":["g\"a"]}}"#
            ),
            granted(&[Analytics])
        );
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(REAL, p);
        assert_truncations(REAL_JSON, p);
    }

    #[test]
    fn hostile_values() {
        let long = format!(
            r#"{{"consents":{{"statistics":[]}},"uid":"{}"}}"#,
            "a".repeat(9000)
        );
        assert_eq!(p(&long), Reading::Unreadable);
        let fits = format!(
            r#"{{"consents":{{"statistics":[]}},"uid":"{}"}}"#,
            "a".repeat(8000)
        );
        assert_eq!(p(&fits), granted(&[Analytics]));
        let deep = format!(
            r#"{{"consents":{{"statistics":[]}},"x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(p(&deep), Reading::Unreadable);
        let deep_fits = format!(
            r#"{{"consents":{{"statistics":[]}},"x":{}{}}}"#,
            "[".repeat(4000),
            "]".repeat(4000)
        );
        assert_eq!(p(&deep_fits), Reading::Unreadable);
        let deep_ids = format!(
            r#"{{"consents":{{"statistics":{}{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(p(&deep_ids), Reading::Unreadable);
        let many: String = (0..400).map(|i| format!("\"id{i}\",")).collect();
        assert_eq!(
            p(&format!(r#"{{"consents":{{"statistics":[{many}"ga"]}}}}"#)),
            granted(&[Analytics])
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
            "\"consents\"",
            "\"statistics\"",
            "\"marketing\"",
            "\"ga\"",
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
        super::super::testutil::fuzz(0xB0B0_71AB, &alphabet, p);
    }
}
