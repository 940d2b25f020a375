//! The policy's `consent`, `regions` and `declarations` sections as written: where the visitor's
//! consent is read and in which order, the per-country defaults, and what the site declares
//! about Global Privacy Control and Do Not Track.

use super::model::{CookieName, DefaultConsent};
use crate::category::Category;
use crate::consent::tcf::PurposeMap;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// A place where consent is kept: the proxy's own cookie, or a consent manager's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The proxy's own cookie (`consent_cookie`): `analytics,marketing`, `all`, `none`.
    Native,
    /// IAB TCF v2 (`euconsent-v2`).
    Tcf,
    /// OneTrust (`OptanonConsent`).
    Onetrust,
    /// Cookiebot (`CookieConsent`).
    Cookiebot,
    /// orestbida/cookieconsent (`cc_cookie`).
    Cookieconsent,
    /// Klaro (`klaro`).
    Klaro,
    /// CookieYes (`cookieyes-consent`).
    Cookieyes,
    /// Complianz (`cmplz_statistics`, `cmplz_marketing`, `cmplz_preferences`).
    Complianz,
    /// Borlabs Cookie (`borlabs-cookie`).
    Borlabs,
}

impl Format {
    /// Every format, in the default order of precedence.
    pub const ALL: [Format; 9] = [
        Format::Native,
        Format::Tcf,
        Format::Onetrust,
        Format::Cookiebot,
        Format::Cookieconsent,
        Format::Klaro,
        Format::Cookieyes,
        Format::Complianz,
        Format::Borlabs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Tcf => "tcf",
            Format::Onetrust => "onetrust",
            Format::Cookiebot => "cookiebot",
            Format::Cookieconsent => "cookieconsent",
            Format::Klaro => "klaro",
            Format::Cookieyes => "cookieyes",
            Format::Complianz => "complianz",
            Format::Borlabs => "borlabs",
        }
    }

    /// The cookie the format is read from unless the policy names another.
    pub fn default_cookie(self) -> &'static str {
        match self {
            Format::Native => "cookie_consent",
            Format::Tcf => "euconsent-v2",
            Format::Onetrust => "OptanonConsent",
            Format::Cookiebot => "CookieConsent",
            Format::Cookieconsent => "cc_cookie",
            Format::Klaro => "klaro",
            Format::Cookieyes => "cookieyes-consent",
            Format::Complianz => "cmplz_",
            Format::Borlabs => "borlabs-cookie",
        }
    }
}

/// Complianz keeps one cookie per category.
pub const COMPLIANZ_COOKIES: [&str; 4] = [
    "cmplz_statistics",
    "cmplz_marketing",
    "cmplz_preferences",
    "cmplz_functional",
];

/// A map from a consent manager's own names (groups, services, categories) to categories.
pub use crate::consent::cmp::CategoryMap as NameMap;

fn sources_default() -> Vec<Format> {
    Format::ALL.to_vec()
}

fn unique_sources<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Format>, D::Error> {
    let list = Vec::<Format>::deserialize(d)?;
    let mut seen = HashSet::new();
    for f in &list {
        if !seen.insert(*f) {
            return Err(de::Error::custom(format!(
                "`{}` is listed twice in consent.sources",
                f.as_str()
            )));
        }
    }
    Ok(list)
}

/// A purpose map as written: `{ analytics: [1, 8, 9], … }`.
fn purposes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PurposeMap>, D::Error> {
    let raw = HashMap::<Category, Vec<u8>>::deserialize(d)?;
    let mut pairs: Vec<(Category, Vec<u8>)> = raw.into_iter().collect();
    pairs.sort_by_key(|(c, _)| *c);
    PurposeMap::new(pairs).map(Some).map_err(de::Error::custom)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieOnly {
    pub cookie: Option<CookieName>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcfSection {
    pub cookie: Option<CookieName>,
    /// Which purposes each category needs; replaces the default map.
    #[serde(default, deserialize_with = "purposes")]
    pub purposes: Option<PurposeMap>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsSection {
    pub cookie: Option<CookieName>,
    /// Replaces the default group map.
    pub groups: Option<NameMap>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoriesSection {
    pub cookie: Option<CookieName>,
    /// Replaces the default category map.
    pub categories: Option<NameMap>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSection {
    pub cookie: Option<CookieName>,
    /// Replaces the default service map.
    pub services: Option<NameMap>,
}

/// `consent:` — which sources are read, in which order, and how each is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSection {
    /// The first source present on a request decides.
    #[serde(default = "sources_default", deserialize_with = "unique_sources")]
    pub sources: Vec<Format>,
    #[serde(default)]
    pub tcf: TcfSection,
    #[serde(default)]
    pub onetrust: GroupsSection,
    #[serde(default)]
    pub cookiebot: CookieOnly,
    #[serde(default)]
    pub cookieconsent: CategoriesSection,
    #[serde(default)]
    pub klaro: ServicesSection,
    #[serde(default)]
    pub cookieyes: CookieOnly,
    #[serde(default)]
    pub borlabs: GroupsSection,
}

impl Default for ConsentSection {
    fn default() -> Self {
        ConsentSection {
            sources: sources_default(),
            tcf: TcfSection::default(),
            onetrust: GroupsSection::default(),
            cookiebot: CookieOnly::default(),
            cookieconsent: CategoriesSection::default(),
            klaro: ServicesSection::default(),
            cookieyes: CookieOnly::default(),
            borlabs: GroupsSection::default(),
        }
    }
}

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
