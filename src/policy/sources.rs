//! The policy's `consent`, `regions` and `declarations` sections as written: where the visitor's
//! consent is read and in which order, the per-country defaults, and what the site declares
//! about Global Privacy Control and Do Not Track.

use super::model::DefaultConsent;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::HashMap;
use std::path::PathBuf;

pub use crate::consent::formats::{Combine, ConsentSection};

pub use crate::consent::region::Country;

/// A request header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub http::HeaderName);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        http::HeaderName::from_bytes(s.as_bytes())
            .map(HeaderName)
            .map_err(|_| de::Error::custom(format!("`{s}` is not a valid header name")))
    }
}

/// `regions:` — defaults per country, the country named by a header from a trusted edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRegions")]
pub struct Regions {
    pub header: HeaderName,
    pub defaults: HashMap<Country, DefaultConsent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegions {
    header: HeaderName,
    #[serde(default, rename = "opt-in")]
    opt_in: Vec<Country>,
    #[serde(default, rename = "opt-out")]
    opt_out: Vec<Country>,
}

impl TryFrom<RawRegions> for Regions {
    type Error = String;
    fn try_from(r: RawRegions) -> Result<Self, String> {
        let mut defaults = HashMap::new();
        for (list, default) in [
            (r.opt_in, DefaultConsent::OptIn),
            (r.opt_out, DefaultConsent::OptOut),
        ] {
            for c in list {
                if defaults.insert(c, default).is_some() {
                    return Err(format!("country {} is listed twice", c.as_str()));
                }
            }
        }
        Ok(Regions {
            header: r.header,
            defaults,
        })
    }
}

/// When the `Tk` (W3C Tracking Status) response header is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TkMode {
    /// On responses to requests that carry a `DNT` header.
    #[default]
    Dnt,
    Always,
    Never,
}

/// A calendar date written `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Date(pub String);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML reads an unquoted 2026-01-31 as a string here.
        let s = String::deserialize(d)?;
        let valid = s.len() == 10
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[7] == b'-'
            && match (
                s[0..4].parse::<u16>(),
                s[5..7].parse::<u8>(),
                s[8..10].parse::<u8>(),
            ) {
                (Ok(y), Ok(m), Ok(day)) => {
                    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                    let days = match m {
                        2 if leap => 29,
                        2 => 28,
                        4 | 6 | 9 | 11 => 30,
                        1..=12 => 31,
                        _ => 0,
                    };
                    y >= 1970 && (1..=days).contains(&day)
                }
                _ => false,
            };
        if valid {
            Ok(Date(s))
        } else {
            Err(de::Error::custom(format!(
                "`{s}` is not a date written YYYY-MM-DD"
            )))
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpcDeclaration {
    pub last_update: Date,
}

/// `declarations:` — what the site states about browser signals.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declarations {
    /// Serve `/.well-known/gpc.json`.
    pub gpc: Option<GpcDeclaration>,
    /// Serve `/.well-known/dnt-policy.txt` from this file (relative to the policy file).
    pub dnt_policy: Option<PathBuf>,
    #[serde(default)]
    pub tk: TkMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_and_dates() {
        assert_eq!(Country::parse("de"), Some(Country(*b"DE")));
        assert_eq!(Country::parse(" US "), Some(Country(*b"US")));
        for bad in ["", "D", "DEU", "1A", "é", "D-"] {
            assert_eq!(Country::parse(bad), None, "{bad}");
        }
        let date = |s: &str| serde_yaml::from_str::<Date>(s).map(|d| d.0);
        assert_eq!(date("2026-02-28").unwrap(), "2026-02-28");
        assert_eq!(date("2024-02-29").unwrap(), "2024-02-29");
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "26-01-01",
            "2026/01/01",
            "x",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }
}
