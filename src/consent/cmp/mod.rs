//! Consent cookies written by consent-management platforms (CMPs): pure parsers from a cookie
//! value to what it says about the visitor's choice.
//!
//! Each parser takes the raw value as it appears in the `Cookie` header and returns a
//! [`Reading`]. The rules they share:
//!
//! - A grant always contains `necessary`.
//! - Names the parser does not know (groups, services, categories) are ignored.
//! - A value that cannot be read (malformed syntax, a bad `%` escape, invalid UTF-8 after
//!   decoding, a value longer than [`MAX_VALUE_LEN`]) is [`Reading::Unreadable`]: it grants
//!   nothing beyond `necessary`.
//! - When the same key occurs twice, the stricter reading wins: a category counts only if every
//!   occurrence grants it.
//! - No parser panics, whatever the input.

pub mod borlabs;
pub mod complianz;
pub mod cookiebot;
pub mod cookieconsent;
pub mod cookieyes;
pub mod klaro;
pub mod onetrust;

mod json;

use crate::category::{Category, CategorySet};
use percent_encoding::percent_decode_str;
use std::collections::HashMap;

/// Maps a CMP's names (groups, services, categories) to consent categories.
pub type CategoryMap = HashMap<String, Category>;

/// The longest cookie value a parser reads; a longer one is [`Reading::Unreadable`].
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// What one CMP cookie value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The visitor's choice. Always contains `necessary`.
    Granted(CategorySet),
    /// The CMP says no consent is needed for this visitor (Cookiebot `-1`: outside a consent
    /// region): the caller falls back to its default as if the cookie were absent.
    NotRequired,
    /// The value cannot be read: grants nothing beyond necessary. Never panic.
    Unreadable,
    /// The choice is older than the policy relies on: grants nothing beyond necessary.
    Expired,
    /// A US-style opt-out (of sale, sharing, targeted advertising): these categories are
    /// denied, whatever else is granted.
    OptOut(CategorySet),
}

impl Reading {
    /// A grant, with `necessary` added.
    fn granted(set: CategorySet) -> Reading {
        Reading::Granted(set.union(CategorySet::NECESSARY))
    }

    /// `Granted` for `Some`, `Unreadable` for `None`.
    fn from_option(set: Option<CategorySet>) -> Reading {
        set.map_or(Reading::Unreadable, Reading::granted)
    }
}

/// The categories granted by a list of `(name, consented)` pairs: a category is granted only if
/// at least one name maps to it and every name that maps to it is consented (so one refused
/// analytics service keeps analytics denied, and a name given twice counts as refused if either
/// occurrence refuses it). Unknown names are ignored. The result contains `necessary`.
pub fn from_names<'a>(
    names: impl Iterator<Item = (&'a str, bool)>,
    map: &CategoryMap,
) -> CategorySet {
    let mut seen = CategorySet::EMPTY;
    let mut refused = CategorySet::EMPTY;
    for (name, consented) in names {
        if let Some(&category) = map.get(name) {
            seen.insert(category);
            if !consented {
                refused.insert(category);
            }
        }
    }
    seen.difference(refused).union(CategorySet::NECESSARY)
}

/// Builds a [`CategoryMap`] from a static table.
fn map_of(entries: &[(&str, Category)]) -> CategoryMap {
    entries
        .iter()
        .map(|&(name, category)| (name.to_owned(), category))
        .collect()
}

/// The first step of every parser: `None` if the value is longer than [`MAX_VALUE_LEN`];
/// otherwise the value with surrounding whitespace and one pair of surrounding double quotes
/// removed.
pub fn prepare(value: &str) -> Option<&str> {
    if value.len() > MAX_VALUE_LEN {
        return None;
    }
    Some(unquote(value.trim_matches([' ', '\t'])))
}

/// Removes one pair of surrounding double quotes (a quoted cookie value, RFC 6265).
pub fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// True if every `%` starts a two-digit hex escape.
pub fn valid_percent(raw: &str) -> bool {
    scan_percent(raw).is_some()
}

/// `None` unless every `%` starts a two-digit hex escape; else whether an escape is of a byte
/// of 0x80 or more (which can make the decoded text invalid UTF-8).
fn scan_percent(raw: &str) -> Option<bool> {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut non_ascii = false;
    while let Some(&byte) = b.get(i) {
        if byte == b'%' {
            match b.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    non_ascii |= *h >= b'8';
                    i += 3;
                }
                _ => return None,
            }
        } else {
            i += 1;
        }
    }
    Some(non_ascii)
}

/// Percent-decodes strictly: `None` for a malformed `%` escape or a result that is not UTF-8.
/// `+` stays a plus sign.
pub fn percent_decode(raw: &str) -> Option<String> {
    if !valid_percent(raw) {
        return None;
    }
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Decodes one component of a form-encoded query string: `+` is a space, then strict
/// [`percent_decode`].
fn form_decode(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    if raw.contains('+') {
        percent_decode(&raw.replace('+', " ")).map(Cow::Owned)
    } else if !raw.contains('%') {
        // Nothing to decode: the common case, without an allocation.
        Some(Cow::Borrowed(raw))
    } else {
        percent_decode(raw).map(Cow::Owned)
    }
}

/// Whether [`form_decode`] would accept `raw`, decoding into `scratch` instead of allocating.
fn form_valid(raw: &str, scratch: &mut Vec<u8>) -> bool {
    match scan_percent(raw) {
        None => false,
        // Escapes of ASCII bytes only, in text that is UTF-8 already.
        Some(false) => true,
        Some(true) => {
            // `+` decodes to a space: ASCII either way, so it cannot change UTF-8 validity.
            scratch.clear();
            scratch.extend(percent_decode_str(raw));
            std::str::from_utf8(scratch).is_ok()
        }
    }
}

/// Intersects an optional running result with a new set (for a key given several times).
fn stricter(acc: Option<CategorySet>, set: CategorySet) -> Option<CategorySet> {
    Some(acc.map_or(set, |a| a.intersection(set)))
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared test helpers: set construction, a deterministic generator, truncation and fuzz
    //! drivers.

    use super::Reading;
    use crate::category::{Category, CategorySet};
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

    /// The given categories plus `necessary`.
    pub fn set(cs: &[Category]) -> CategorySet {
        cs.iter()
            .copied()
            .collect::<CategorySet>()
            .with(Category::Necessary)
    }

    /// `Granted` of the given categories plus `necessary`.
    pub fn granted(cs: &[Category]) -> Reading {
        Reading::Granted(set(cs))
    }

    /// What JavaScript's `encodeURIComponent` leaves alone.
    const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');

    /// JavaScript's `encodeURIComponent`.
    pub fn encode(s: &str) -> String {
        utf8_percent_encode(s, URI_COMPONENT).to_string()
    }

    /// Checks the invariant of every reading (a grant contains `necessary`) and returns it.
    pub fn checked(r: Reading) -> Reading {
        if let Reading::Granted(s) = r {
            assert!(
                s.contains(Category::Necessary),
                "grant without necessary: {r:?}"
            );
        }
        r
    }

    /// True if `r` grants no more than `full`, whatever the caller's default is.
    pub fn at_most(r: Reading, full: Reading) -> bool {
        match (r, full) {
            (Reading::Unreadable | Reading::Expired, _) => true,
            (Reading::NotRequired, full) => full == Reading::NotRequired,
            // An opt-out grants nothing; it denies at least what the whole value denies.
            (Reading::OptOut(d), Reading::OptOut(f)) => f.difference(d).is_empty(),
            (Reading::OptOut(_), _) => false,
            (Reading::Granted(s), Reading::Granted(f)) => s.difference(f).is_empty(),
            (Reading::Granted(s), _) => s == CategorySet::NECESSARY,
        }
    }

    /// Cuts `full` at every offset (keeping the prefix, then the suffix): no panic, and no
    /// prefix grants more than the whole value, except prefixes for which `boundary_exempt`
    /// (given the rest of the value) is true.
    pub fn assert_truncations_with(
        full: &str,
        parse: impl Fn(&str) -> Reading,
        boundary_exempt: impl Fn(&str) -> bool,
    ) {
        let whole = checked(parse(full));
        for cut in 0..full.len() {
            if !full.is_char_boundary(cut) {
                continue;
            }
            let (prefix, rest) = full.split_at(cut);
            let r = checked(parse(prefix));
            if !boundary_exempt(rest) {
                assert!(
                    at_most(r, whole),
                    "prefix {prefix:?} reads {r:?}, more than the whole value's {whole:?}"
                );
            }
            checked(parse(rest));
        }
    }

    /// [`assert_truncations_with`] without exemptions.
    pub fn assert_truncations(full: &str, parse: impl Fn(&str) -> Reading) {
        assert_truncations_with(full, parse, |_| false);
    }

    /// A small deterministic xorshift64 generator.
    pub struct XorShift(u64);

    impl XorShift {
        pub fn new(seed: u64) -> XorShift {
            XorShift(seed | 1)
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A number in `0..n` (`n > 0`).
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        /// Random bytes, shown either as (lossy) UTF-8 or percent-encoded, so that decoding
        /// yields arbitrary bytes.
        pub fn bytes_input(&mut self, max_len: usize) -> String {
            let len = self.below(max_len + 1);
            let bytes: Vec<u8> = (0..len).map(|_| self.next_u64() as u8).collect();
            if self.below(2) == 0 {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                bytes.iter().map(|b| format!("%{b:02X}")).collect()
            }
        }

        /// A concatenation of random tokens from `alphabet`.
        pub fn alphabet_input(&mut self, alphabet: &[&str], max_tokens: usize) -> String {
            let n = self.below(max_tokens + 1);
            (0..n)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    /// Feeds 10,000 random-byte inputs and 10,000 inputs over `alphabet` to `parse`; every
    /// reading must satisfy the invariant.
    pub fn fuzz(seed: u64, alphabet: &[&str], parse: impl Fn(&str) -> Reading) {
        let mut rng = XorShift::new(seed);
        for _ in 0..10_000 {
            let input = rng.bytes_input(64);
            checked(parse(&input));
        }
        for _ in 0..10_000 {
            let input = rng.alphabet_input(alphabet, 40);
            checked(parse(&input));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use Category::*;

    fn map() -> CategoryMap {
        map_of(&[
            ("ga", Analytics),
            ("matomo", Analytics),
            ("pixel", Marketing),
            ("maps", Preferences),
        ])
    }

    #[test]
    fn from_names_needs_every_name_of_a_category() {
        let m = map();
        let names = [("ga", true), ("matomo", false), ("pixel", true)];
        assert_eq!(from_names(names.into_iter(), &m), set(&[Marketing]));
        let names = [("ga", true), ("matomo", true), ("unknown", false)];
        assert_eq!(from_names(names.into_iter(), &m), set(&[Analytics]));
        assert_eq!(from_names(std::iter::empty(), &m), set(&[]));
        // A name given twice counts as refused if either occurrence refuses it.
        let names = [("maps", true), ("maps", false)];
        assert_eq!(from_names(names.into_iter(), &m), set(&[]));
        // Only mapped names count: an unknown true name grants nothing.
        let names = [("youtube", true)];
        assert_eq!(from_names(names.into_iter(), &m), set(&[]));
    }

    #[test]
    fn prepare_strips_quotes_and_limits_length() {
        assert_eq!(prepare("\"abc\""), Some("abc"));
        assert_eq!(prepare(" abc "), Some("abc"));
        assert_eq!(prepare("\"abc"), Some("\"abc"));
        assert_eq!(prepare("\""), Some("\""));
        assert_eq!(prepare("\"\""), Some(""));
        let long = "a".repeat(MAX_VALUE_LEN);
        assert_eq!(prepare(&long), Some(long.as_str()));
        assert_eq!(prepare(&format!("{long}a")), None);
    }

    #[test]
    fn form_valid_agrees_with_form_decode() {
        let mut scratch = Vec::new();
        for raw in [
            "", "a", "a+b", "%41", "%4", "%zz", "%", "a%2", "%C3%A9", "%C3", "%FF", "+%C3%A9+",
            "%2B", "100%", "%e9", "%E9x", "%7F", "é%C3", "é%A9", "%c3%a9",
        ] {
            assert_eq!(
                form_valid(raw, &mut scratch),
                form_decode(raw).is_some(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn strict_percent_decoding() {
        assert_eq!(percent_decode("a%2Cb+c").as_deref(), Some("a,b+c"));
        assert_eq!(percent_decode("%C3%A4").as_deref(), Some("ä"));
        for bad in ["%", "%4", "%G1", "a%zz", "%FF", "%C3", "%C3%28"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
        assert_eq!(form_decode("a+b%2B").as_deref(), Some("a b+"));
        assert_eq!(form_decode("a+%").as_deref(), None);
    }

    #[test]
    fn at_most_orders_readings() {
        assert!(at_most(Reading::Unreadable, granted(&[])));
        assert!(at_most(granted(&[]), Reading::Unreadable));
        assert!(!at_most(granted(&[Analytics]), Reading::Unreadable));
        assert!(!at_most(Reading::NotRequired, granted(&[Analytics])));
        assert!(at_most(
            granted(&[Analytics]),
            granted(&[Analytics, Marketing])
        ));
        assert!(!at_most(granted(&[Preferences]), granted(&[Analytics])));
    }

    #[test]
    fn encode_matches_encode_uri_component() {
        assert_eq!(
            encode("{\"a\":[1,2]} x'(*)!~"),
            "%7B%22a%22%3A%5B1%2C2%5D%7D%20x'(*)!~"
        );
    }
}
