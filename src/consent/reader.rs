//! One configured consent source: which cookie it reads and how its value becomes categories.

use super::cmp::{self, Reading};
use super::{native, tcf};
use crate::category::CategorySet;
use crate::policy::sources::{COMPLIANZ_COOKIES, Format, NameMap};

/// A consent source with its configuration, compiled from the policy.
#[derive(Debug, Clone)]
pub enum Reader {
    Native {
        cookie: String,
    },
    Tcf {
        cookie: String,
        purposes: tcf::PurposeMap,
    },
    Onetrust {
        cookie: String,
        groups: NameMap,
    },
    Cookiebot {
        cookie: String,
    },
    Cookieconsent {
        cookie: String,
        categories: NameMap,
    },
    Klaro {
        cookie: String,
        services: NameMap,
    },
    Cookieyes {
        cookie: String,
    },
    Complianz,
    Borlabs {
        cookie: String,
        groups: NameMap,
    },
}

impl Reader {
    pub fn format(&self) -> Format {
        match self {
            Reader::Native { .. } => Format::Native,
            Reader::Tcf { .. } => Format::Tcf,
            Reader::Onetrust { .. } => Format::Onetrust,
            Reader::Cookiebot { .. } => Format::Cookiebot,
            Reader::Cookieconsent { .. } => Format::Cookieconsent,
            Reader::Klaro { .. } => Format::Klaro,
            Reader::Cookieyes { .. } => Format::Cookieyes,
            Reader::Complianz => Format::Complianz,
            Reader::Borlabs { .. } => Format::Borlabs,
        }
    }

    /// Cookies the consent manager keeps beside the one it is read from (whether its banner
    /// was closed, copies of the consent in other formats). They are its state, so they pass
    /// like the consent itself, even under a policy without the built-in catalogue.
    pub fn companion_cookies(&self) -> &'static [&'static str] {
        match self {
            Reader::Tcf { .. } => &["addtl_consent"],
            Reader::Onetrust { .. } => &[
                "OptanonAlertBoxClosed",
                "eupubconsent-v2",
                "OTAdditionalConsentString",
            ],
            Reader::Complianz => &[
                "cmplz_banner-status",
                "cmplz_consented_services",
                "cmplz_policy_id",
                "cmplz_saved_categories",
                "cmplz_saved_services",
                "cmplz_id",
                "cmplz_consenttype",
            ],
            _ => &[],
        }
    }

    /// The cookies this source is read from: they are the visitor's consent, so they always
    /// pass in both directions.
    pub fn cookie_names(&self) -> Vec<&str> {
        match self.cookie() {
            Some(cookie) => vec![cookie],
            None => COMPLIANZ_COOKIES.to_vec(),
        }
    }

    /// The one cookie a source is read from (Complianz has several).
    fn cookie(&self) -> Option<&str> {
        match self {
            Reader::Native { cookie }
            | Reader::Tcf { cookie, .. }
            | Reader::Onetrust { cookie, .. }
            | Reader::Cookiebot { cookie }
            | Reader::Cookieconsent { cookie, .. }
            | Reader::Klaro { cookie, .. }
            | Reader::Cookieyes { cookie }
            | Reader::Borlabs { cookie, .. } => Some(cookie),
            Reader::Complianz => None,
        }
    }

    /// What this source says on a request with these cookies; `None` when its cookie is absent.
    /// Several cookies of the same name (different paths or domains) count only as far as they
    /// agree: the grant is their intersection, and one unreadable value makes it unreadable.
    pub fn read<'a>(&self, cookies: &[(&'a str, &'a str)]) -> Option<Reading> {
        if let Reader::Complianz = self {
            return cmp::complianz::read(cookies.iter().copied());
        }
        let name = self.cookie()?;
        cookies
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| self.parse(v))
            .reduce(combine)
    }

    fn parse(&self, value: &str) -> Reading {
        match self {
            Reader::Native { .. } => match native::parse_value(value) {
                Some(set) => Reading::Granted(set.union(CategorySet::NECESSARY)),
                None => Reading::Unreadable,
            },
            Reader::Tcf { purposes, .. } => match cmp::prepare(value).map(tcf::decode) {
                Some(Ok(tc)) => Reading::Granted(purposes.grant(&tc)),
                _ => Reading::Unreadable,
            },
            Reader::Onetrust { groups, .. } => cmp::onetrust::parse(value, groups),
            Reader::Cookiebot { .. } => cmp::cookiebot::parse(value),
            Reader::Cookieconsent { categories, .. } => {
                cmp::cookieconsent::parse(value, categories)
            }
            Reader::Klaro { services, .. } => cmp::klaro::parse(value, services),
            Reader::Cookieyes { .. } => cmp::cookieyes::parse(value),
            Reader::Borlabs { groups, .. } => cmp::borlabs::parse(value, groups),
            Reader::Complianz => Reading::Unreadable,
        }
    }
}

/// Two readings of the same source: the stricter.
fn combine(a: Reading, b: Reading) -> Reading {
    match (a, b) {
        (Reading::Unreadable, _) | (_, Reading::Unreadable) => Reading::Unreadable,
        (Reading::Granted(x), Reading::Granted(y)) => Reading::Granted(x.intersection(y)),
        (Reading::Granted(x), Reading::NotRequired)
        | (Reading::NotRequired, Reading::Granted(x)) => Reading::Granted(x),
        (Reading::NotRequired, Reading::NotRequired) => Reading::NotRequired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;

    #[test]
    fn several_cookies_of_one_name_intersect() {
        let native = Reader::Native { cookie: "c".into() };
        let analytics = CategorySet::NECESSARY.with(Category::Analytics);
        assert_eq!(
            native.read(&[("c", "all"), ("x", "1"), ("c", "analytics")]),
            Some(Reading::Granted(analytics))
        );
        assert_eq!(
            native.read(&[("c", "all"), ("c", "%%")]),
            Some(Reading::Unreadable)
        );
        assert_eq!(native.read(&[("other", "all")]), None);
        let tcf = Reader::Tcf {
            cookie: "euconsent-v2".into(),
            purposes: tcf::PurposeMap::default(),
        };
        assert_eq!(
            tcf.read(&[("euconsent-v2", "garbage")]),
            Some(Reading::Unreadable)
        );
    }

    #[test]
    fn not_required_yields_to_a_grant_of_the_same_source() {
        let a = CategorySet::NECESSARY.with(Category::Analytics);
        assert_eq!(
            combine(Reading::NotRequired, Reading::Granted(a)),
            Reading::Granted(a)
        );
        assert_eq!(
            combine(Reading::Granted(a), Reading::Unreadable),
            Reading::Unreadable
        );
    }
}
