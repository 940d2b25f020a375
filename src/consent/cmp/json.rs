//! A JSON value that keeps every occurrence of a duplicated object key (so the parsers can apply
//! the stricter reading), and reading a cookie value that holds JSON either plain or
//! percent-encoded.
//!
//! Parsing goes through `serde_json`, whose recursion limit (128 levels) turns deeply nested
//! input into an error rather than a stack overflow.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A parsed JSON value. Numbers are not kept (no parser needs them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number,
    String(String),
    Array(Vec<Json>),
    /// Members in document order, duplicates included.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Every value of `key` in an object, in document order; nothing for a non-object.
    pub(crate) fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Json> + 'a {
        let members: &[(String, Json)] = match self {
            Json::Object(m) => m,
            _ => &[],
        };
        members
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Json>()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

/// Reads a cookie value holding a JSON object: after [`super::prepare`], the value is parsed as
/// plain JSON; if that fails, it is percent-decoded strictly (as `encodeURIComponent` or a
/// partial encoder such as js-cookie's writes it) and parsed again. `None` for anything that is
/// not a JSON object.
pub(crate) fn parse_object(value: &str) -> Option<Json> {
    let value = super::prepare(value)?;
    let parsed = match serde_json::from_str::<Json>(value) {
        Ok(v) => v,
        Err(_) if value.contains('%') => {
            serde_json::from_str::<Json>(&super::percent_decode(value)?).ok()?
        }
        Err(_) => return None,
    };
    match parsed {
        Json::Object(_) => Some(parsed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let v = parse_object(r#"{"a":true,"b":[1,"x",null],"a":false}"#).unwrap();
        assert_eq!(
            v.get_all("a").cloned().collect::<Vec<_>>(),
            vec![Json::Bool(true), Json::Bool(false)]
        );
        assert_eq!(
            v.get_all("b").next(),
            Some(&Json::Array(vec![
                Json::Number,
                Json::String("x".into()),
                Json::Null
            ]))
        );
        assert_eq!(v.get_all("c").count(), 0);
        assert_eq!(Json::Null.get_all("a").count(), 0);
    }

    #[test]
    fn plain_encoded_and_partly_encoded() {
        let want = parse_object(r#"{"a":["x","y"]}"#).unwrap();
        for v in [
            "%7B%22a%22%3A%5B%22x%22%2C%22y%22%5D%7D",
            // js-cookie leaves {}[]: alone.
            "{%22a%22:[%22x%22%2C%22y%22]}",
            "\"%7B%22a%22%3A%5B%22x%22%2C%22y%22%5D%7D\"",
            " {\"a\":[\"x\",\"y\"]} ",
        ] {
            assert_eq!(parse_object(v).as_ref(), Some(&want), "{v:?}");
        }
        // A plain value that parses is not decoded again.
        assert_eq!(
            parse_object(r#"{"a":"%41"}"#),
            Some(Json::Object(vec![("a".into(), Json::String("%41".into()))]))
        );
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        for v in [
            "",
            "[]",
            "1",
            "null",
            "\"x\"",
            "%5B%5D",
            "{",
            "{\"a\":1,}",
            "{\"a\":1}x",
            "%7B%22a%22%3A1%7",
            "%7B%22a%22%3A%22%FF%22%7D",
            "{\"a\":\"\u{0}\"}",
        ] {
            assert_eq!(parse_object(v), None, "{v:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(4000), "]".repeat(4000));
        assert!(deep.len() < super::super::MAX_VALUE_LEN);
        assert_eq!(parse_object(&deep), None);
        let deep_objects = "{\"a\":".repeat(1000) + "1" + &"}".repeat(1000);
        assert!(deep_objects.len() < super::super::MAX_VALUE_LEN);
        assert_eq!(parse_object(&deep_objects), None);
        let deeper = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(parse_object(&deeper), None);
        // Within the limit, nesting is fine.
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse_object(&ok).is_some());
    }
}
