//! The visitor's country, as a trusted edge proxy names it.

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// Reads a code as an edge proxy sends it (`de`, `DE`); anything else is `None`.
    pub fn parse(s: &str) -> Option<Country> {
        match s.trim().as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Country::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "`{s}` is not a two-letter country code (ISO 3166-1 alpha-2, e.g. DE, US)"
            ))
        })
    }
}
