//! Cookiebot's `CookieConsent` cookie: a percent-encoded JavaScript object literal (not JSON),
//! `{stamp:'...',necessary:true,preferences:false,statistics:true,marketing:false,
//! method:'explicit',ver:1,utc:1700000000000,region:'de'}`.
//!
//! - Keys are identifiers (quoted keys are accepted too); values are single- or double-quoted
//!   strings (a comma or brace inside quotes is part of the string), `true`/`false`, other bare
//!   words (numbers, `null`), or nested `{...}`/`[...]` (skipped, up to 32 levels).
//! - `preferences` → preferences, `statistics` → analytics, `marketing` → marketing. A missing
//!   category key is a refusal; a category key whose value is not `true`/`false` makes the value
//!   unreadable. A key given twice grants only if both occurrences are `true`.
//! - The whole value `-1` means the visitor is outside a consent region
//!   ([`Reading::NotRequired`]); the whole value `0` means necessary only.
//! - Anything else that is not exactly one well-formed object is unreadable.

use super::{Reading, from_names, map_of, percent_decode};
use crate::category::Category;
use crate::consent::format::{
    BuildCtx, ConsentReader, CookieOnly, Format, FormatId, OneCookie, ReadCtx, Said, cookie_or,
};

/// Deepest nesting of a skipped value.
const MAX_DEPTH: usize = 32;

/// The keys whose value must be a boolean.
const CATEGORY_KEYS: [&str; 4] = ["necessary", "preferences", "statistics", "marketing"];

/// Parses one `CookieConsent` value.
pub fn parse(value: &str) -> Reading {
    parse_dated(value).0
}

/// Parses one `CookieConsent` value, and the time of the choice (`utc`, milliseconds, as Unix
/// seconds) when it has one.
pub fn parse_dated(value: &str) -> (Reading, Option<u64>) {
    let Some(decoded) = super::prepare(value).and_then(percent_decode) else {
        return (Reading::Unreadable, None);
    };
    match decoded.as_str() {
        "-1" => return (Reading::NotRequired, None),
        "0" => {
            return (
                Reading::Granted(crate::category::CategorySet::NECESSARY),
                None,
            );
        }
        _ => {}
    }
    let Some(members) = parse_object(&decoded) else {
        return (Reading::Unreadable, None);
    };
    let mut flags = Vec::new();
    let mut utc = None;
    for (key, value) in members {
        match value {
            Value::Bool(b) => flags.push((key, b)),
            Value::Other(_) if CATEGORY_KEYS.contains(&key) => return (Reading::Unreadable, None),
            Value::Other(word) if key == "utc" => {
                utc = word.parse::<u64>().ok().map(|ms| ms / 1000);
            }
            Value::Other(_) => {}
        }
    }
    let map = map_of(&[
        ("preferences", Category::Preferences),
        ("statistics", Category::Analytics),
        ("marketing", Category::Marketing),
    ]);
    (Reading::Granted(from_names(flags.into_iter(), &map)), utc)
}

/// A member's value: booleans, and the bare word of the others (a number, `null`; empty for
/// strings and nested values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Bool(bool),
    Other(&'a str),
}

/// Parses a whole object literal into its members; `None` if malformed.
fn parse_object(src: &str) -> Option<Vec<(&str, Value<'_>)>> {
    let mut c = Cursor { src, i: 0 };
    let mut members = Vec::new();
    c.skip_ws();
    c.need(b'{')?;
    c.skip_ws();
    if !c.eat(b'}') {
        loop {
            c.skip_ws();
            let key = match c.peek()? {
                b'\'' | b'"' => c.quoted()?,
                _ => c.word(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')?,
            };
            c.skip_ws();
            c.need(b':')?;
            c.skip_ws();
            let value = c.value()?;
            members.push((key, value));
            c.skip_ws();
            if c.eat(b'}') {
                break;
            }
            c.need(b',')?;
        }
    }
    c.skip_ws();
    c.at_end().then_some(members)
}

/// A position in the decoded text. Every method returns `None` rather than read past the end.
struct Cursor<'a> {
    src: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.src.len()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn need(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// A non-empty run of bytes accepted by `ok` (all ASCII).
    fn word(&mut self, ok: impl Fn(u8) -> bool) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(&ok) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        self.src.get(start..self.i)
    }

    /// A string in single or double quotes, with backslash escapes; returns the raw contents.
    fn quoted(&mut self) -> Option<&'a str> {
        let quote = self.peek()?;
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b if b == quote => {
                    let contents = self.src.get(start..self.i);
                    self.i += 1;
                    return contents;
                }
                _ => self.i += 1,
            }
        }
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'\'' | b'"' => self.quoted().map(|_| Value::Other("")),
            b'{' | b'[' => self.skip_nested().map(|_| Value::Other("")),
            _ => {
                let w = self.word(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.' | b'+' | b'-')
                })?;
                Some(match w {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    w => Value::Other(w),
                })
            }
        }
    }

    /// Skips a nested object or array, brackets matched, strings respected; at most
    /// [`MAX_DEPTH`] levels. Iterative, so hostile nesting cannot exhaust the stack.
    fn skip_nested(&mut self) -> Option<()> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            match self.peek()? {
                b @ (b'{' | b'[') => {
                    if open.len() >= MAX_DEPTH {
                        return None;
                    }
                    open.push(if b == b'{' { b'}' } else { b']' });
                    self.i += 1;
                }
                b @ (b'}' | b']') => {
                    if open.pop()? != b {
                        return None;
                    }
                    self.i += 1;
                    if open.is_empty() {
                        return Some(());
                    }
                }
                b'\'' | b'"' => {
                    self.quoted()?;
                }
                _ => self.i += 1,
            }
        }
    }
}

/// Cookiebot (`CookieConsent`) as a consent format.
pub struct Cookiebot;

impl Format for Cookiebot {
    type Config = CookieOnly;

    fn build(config: &CookieOnly, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "CookieConsent"),
            companions: &[],
            parse: |v: &str, _: &ReadCtx| match parse_dated(v) {
                (reading, Some(at)) => Said {
                    reading,
                    at: Some(at),
                    gpc: false,
                },
                (reading, None) => Said::new(reading),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::category::CategorySet;
    use Category::*;

    /// A value as Cookiebot writes it.
    const SAMPLE: &str = "{stamp:%27-1%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1700000000000%2Cregion:%27de%27}";

    /// Accept-all with a real-looking stamp (base64 with escaped `+`, `/` and `=`).
    const ALL: &str = "{stamp:%27hT5Ok0FeqrdWfB7T8kAFLk6BN5aHbVjnkT%2FwJ5h3V1dBa7ZOMHcL%2Bvw%3D%3D%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1700000000000%2Cregion:%27de%27}";

    /// Reject-all in the newer layout (with `iab2` and a sub-region).
    const NONE: &str = "{stamp:%27mF9nY2xjTQ1x4oDgqg0cQmJ4gQh5Yk2C5aPx8Xh1F0zWJ7Rl3s4%2FbA%3D%3D%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:6%2Cutc:1763900000000%2Ciab2:%27%27%2Cregion:%27us-06%27}";

    fn p(v: &str) -> Reading {
        checked(parse(v))
    }

    #[test]
    fn real_values() {
        assert_eq!(p(SAMPLE), granted(&[Analytics]));
        assert_eq!(p(ALL), Reading::Granted(CategorySet::ALL));
        assert_eq!(p(NONE), granted(&[]));
        assert_eq!(
            p(
                "{stamp:%27abc%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:false%2Cmarketing:true%2Cmethod:%27implied%27%2Cver:1%2Cutc:1700000000000}"
            ),
            granted(&[Preferences, Marketing])
        );
        // Fully encoded, quoted, or decoded already.
        assert_eq!(
            p(&encode(&super::percent_decode(SAMPLE).unwrap_or_default())),
            granted(&[Analytics])
        );
        assert_eq!(p(&format!("\"{SAMPLE}\"")), granted(&[Analytics]));
        assert_eq!(
            p("{stamp:'x',necessary:true,preferences:true,statistics:false,marketing:false}"),
            granted(&[Preferences])
        );
        assert_eq!(
            p("{ \"statistics\" : true , 'marketing' : true }"),
            granted(&[Analytics, Marketing])
        );
    }

    #[test]
    fn the_time_of_the_choice() {
        let (reading, at) = parse_dated(
            "{stamp:%27abc%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:false%2Cmarketing:true%2Cmethod:%27implied%27%2Cver:1%2Cutc:1700000000000}",
        );
        assert_eq!(reading, granted(&[Preferences, Marketing]));
        assert_eq!(at, Some(1_700_000_000));
        assert_eq!(parse_dated("{utc:'1700000000000',marketing:true}").1, None);
        assert_eq!(parse_dated("{utc:soon,marketing:true}").1, None);
        assert_eq!(parse_dated("-1"), (Reading::NotRequired, None));
    }

    #[test]
    fn special_whole_values() {
        assert_eq!(p("-1"), Reading::NotRequired);
        assert_eq!(p("\"-1\""), Reading::NotRequired);
        assert_eq!(p("0"), granted(&[]));
        for v in ["1", "-2", "-1-1", "00", "- 1", "true"] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
        // `-1` as the stamp is not the whole value.
        assert_eq!(p("{stamp:'-1'}"), granted(&[]));
    }

    #[test]
    fn missing_keys_are_refusals() {
        assert_eq!(p("{}"), granted(&[]));
        assert_eq!(
            p("{necessary:true%2Cstatistics:true}"),
            granted(&[Analytics])
        );
        assert_eq!(p("{stamp:%27x%27%2Cmarketing:true}"), granted(&[Marketing]));
        // Unknown keys are ignored, even when boolean.
        assert_eq!(
            p("{statistic:true%2CStatistics:true%2Cads:true}"),
            granted(&[])
        );
    }

    #[test]
    fn quoted_strings_are_not_split() {
        assert_eq!(
            p("{stamp:%27a%2Cstatistics:true%2Cb%27%2Cstatistics:false}"),
            granted(&[])
        );
        assert_eq!(
            p(r"{stamp:'x\',marketing:true,',marketing:false,preferences:true}"),
            granted(&[Preferences])
        );
        assert_eq!(
            p(r#"{stamp:"it's {not} [here]",statistics:true}"#),
            granted(&[Analytics])
        );
        assert_eq!(
            p("{x:{a:[1%2C2%2C%27}%27]%2Cb:{}}%2Cstatistics:true}"),
            granted(&[Analytics])
        );
        assert_eq!(
            p("{stamp:%27ä→%27%2Cstatistics:true}"),
            granted(&[Analytics])
        );
    }

    #[test]
    fn duplicate_keys_take_the_stricter_reading() {
        assert_eq!(p("{statistics:true,statistics:false}"), granted(&[]));
        assert_eq!(p("{statistics:false,statistics:true}"), granted(&[]));
        assert_eq!(
            p("{statistics:true,statistics:true}"),
            granted(&[Analytics])
        );
        assert_eq!(
            p("{statistics:true,statistics:'true'}"),
            Reading::Unreadable
        );
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "{",
            "}",
            "{statistics:yes}",
            "{statistics:'true'}",
            "{statistics:1}",
            "{marketing:null}",
            "{necessary:'x'}",
            "{preferences:{}}",
            "{statistics:true",
            "statistics:true}",
            "statistics:true",
            "{statistics:true,}",
            "{statistics:true,,marketing:true}",
            "{statistics true}",
            "{statistics:}",
            "{:true}",
            "{'':true,statistics:true",
            "{stamp:'abc}",
            "{stamp:'abc\\'}",
            "{stamp:\"abc'}",
            "{x:[1,2}",
            "{x:{]}",
            "{x:]}",
            "{statistics:true}x",
            "{statistics:true}{}",
            "{statistics:true} ,",
            "{stat-istics:true}",
            "%7Bstatistics:true%7",
            "{stamp:%27%FF%27}",
            "{stamp:%27%C3%27}",
            "{stamp:%27%G1%27}",
            "{stamp:%27%27%}",
            "{statistics:true%2",
            "[statistics:true]",
        ] {
            assert_eq!(p(v), Reading::Unreadable, "{v:?}");
        }
    }

    #[test]
    fn truncation_never_grants_more() {
        assert_truncations(SAMPLE, p);
        assert_truncations(ALL, p);
        assert_truncations(NONE, p);
        assert_truncations("-1", p);
        assert_truncations("{x:[{'a':['}']}],statistics:true}", p);
    }

    #[test]
    fn hostile_values() {
        let long = format!("{{stamp:'{}',statistics:true}}", "a".repeat(9000));
        assert_eq!(p(&long), Reading::Unreadable);
        let fits = format!("{{stamp:'{}',statistics:true}}", "a".repeat(8000));
        assert_eq!(p(&fits), granted(&[Analytics]));
        let deep = format!(
            "{{x:{}{},statistics:true}}",
            "[".repeat(4000),
            "]".repeat(4000)
        );
        assert_eq!(p(&deep), Reading::Unreadable);
        let deep10k = format!("{{x:{}{}}}", "{".repeat(10_000), "}".repeat(10_000));
        assert_eq!(p(&deep10k), Reading::Unreadable);
        let ok_depth = format!("{{x:{}{},statistics:true}}", "[".repeat(32), "]".repeat(32));
        assert_eq!(p(&ok_depth), granted(&[Analytics]));
        let too_deep = format!("{{x:{}{},statistics:true}}", "[".repeat(33), "]".repeat(33));
        assert_eq!(p(&too_deep), Reading::Unreadable);
        let many = format!("{{{}statistics:true}}", "a:1,".repeat(2000));
        assert_eq!(p(&many), granted(&[Analytics]));
        assert_eq!(p(&"{".repeat(8000)), Reading::Unreadable);
        assert_eq!(p(&"'".repeat(8000)), Reading::Unreadable);
        assert_eq!(p("{stamp:'\\"), Reading::Unreadable);
        assert_eq!(p("{stamp:'\\ä'}"), granted(&[]));
        assert_eq!(p("{stamp:'\u{0}',statistics:true}"), granted(&[Analytics]));
    }

    #[test]
    fn fuzz() {
        let alphabet = [
            "{",
            "}",
            "[",
            "]",
            "stamp:",
            "'",
            "\"",
            "\\",
            "%27",
            "%2C",
            ",",
            ":",
            "necessary:",
            "statistics:",
            "marketing:",
            "preferences:",
            "true",
            "false",
            "-1",
            "0",
            " ",
            "%",
            "%7B",
            "%7D",
            "%FF",
            "ä",
            "x",
        ];
        super::super::testutil::fuzz(0x00C0_0C1E, &alphabet, p);
    }
}
