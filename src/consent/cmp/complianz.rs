//! Complianz: one cookie per category, `cmplz_statistics`, `cmplz_marketing` and
//! `cmplz_preferences`, each `allow` or `deny` (`cmplz_functional` is always allowed and not
//! read).
//!
//! - No category cookie at all: `None` (the caller treats the visitor as having no consent
//!   cookie).
//! - A missing category cookie is a refusal; a value other than `allow`/`deny` (after the usual
//!   quote stripping and strict percent-decoding) makes the reading unreadable.
//! - The same cookie twice (different paths or domains) with different values: `deny` wins.

use super::{Reading, percent_decode};
use crate::category::{Category, CategorySet};
use crate::consent::format::{BuildCtx, ConsentReader, Format, FormatId, ReadCtx, Said};

/// The category cookies and what they grant.
const COOKIES: [(&str, Category); 3] = [
    ("cmplz_statistics", Category::Analytics),
    ("cmplz_marketing", Category::Marketing),
    ("cmplz_preferences", Category::Preferences),
];

/// Reads the Complianz cookies among all of a request's `(name, value)` cookie pairs.
pub fn read<'a>(cookies: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Reading> {
    let mut present = false;
    let mut unreadable = false;
    let mut allowed = CategorySet::EMPTY;
    let mut denied = CategorySet::EMPTY;
    for (name, value) in cookies {
        let Some(&(_, category)) = COOKIES.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        present = true;
        match super::prepare(value).and_then(percent_decode).as_deref() {
            Some("allow") => allowed.insert(category),
            Some("deny") => denied.insert(category),
            _ => unreadable = true,
        }
    }
    if !present {
        return None;
    }
    Some(if unreadable {
        Reading::Unreadable
    } else {
        Reading::granted(allowed.difference(denied))
    })
}

/// Complianz's category cookies as a consent format.
pub struct Complianz;

/// The category cookies Complianz keeps.
pub const CATEGORY_COOKIES: [&str; 4] = [
    "cmplz_statistics",
    "cmplz_marketing",
    "cmplz_preferences",
    "cmplz_functional",
];

#[derive(Debug)]
struct ComplianzReader(FormatId);

impl ConsentReader for ComplianzReader {
    fn id(&self) -> FormatId {
        self.0
    }

    fn cookie_names(&self) -> Vec<&str> {
        CATEGORY_COOKIES.to_vec()
    }

    fn companion_cookies(&self) -> &'static [&'static str] {
        &[
            "cmplz_banner-status",
            "cmplz_consented_services",
            "cmplz_policy_id",
            "cmplz_saved_categories",
            "cmplz_saved_services",
            "cmplz_id",
            "cmplz_consenttype",
        ]
    }

    fn read(&self, cookies: &[(&str, &str)], _: &ReadCtx) -> Option<Said> {
        read(cookies.iter().copied()).map(Said::new)
    }
}

/// Complianz has no settings: its cookie names are fixed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianzConfig {}

impl Format for Complianz {
    type Config = ComplianzConfig;

    fn build(_: &ComplianzConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        Box::new(ComplianzReader(id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use Category::*;

    fn r(pairs: &[(&str, &str)]) -> Option<Reading> {
        read(pairs.iter().copied()).map(checked)
    }

    /// The cookies of a request as Complianz sets them after "accept statistics only".
    const REAL: [(&str, &str); 8] = [
        ("cmplz_consented_services", ""),
        ("cmplz_policy_id", "14"),
        ("cmplz_marketing", "deny"),
        ("cmplz_statistics", "allow"),
        ("cmplz_preferences", "deny"),
        ("cmplz_functional", "allow"),
        ("cmplz_banner-status", "dismissed"),
        ("_ga", "GA1.1.123.456"),
    ];

    #[test]
    fn real_values() {
        assert_eq!(r(&REAL), Some(granted(&[Analytics])));
        assert_eq!(
            r(&[
                ("cmplz_functional", "allow"),
                ("cmplz_preferences", "allow"),
                ("cmplz_statistics", "allow"),
                ("cmplz_marketing", "allow"),
            ]),
            Some(Reading::Granted(CategorySet::ALL))
        );
        assert_eq!(
            r(&[
                ("cmplz_marketing", "\"allow\""),
                ("cmplz_preferences", "%61llow")
            ]),
            Some(granted(&[Marketing, Preferences]))
        );
        // Through the crate's own Cookie-header reader.
        let h = crate::test_headers(&[(
            "cookie",
            "cmplz_functional=allow; cmplz_statistics=allow; cmplz_marketing=allow; cmplz_preferences=deny",
        )]);
        assert_eq!(
            read(crate::cookie_header::request_cookies(&h)),
            Some(granted(&[Analytics, Marketing]))
        );
    }

    #[test]
    fn refused_and_missing() {
        assert_eq!(
            r(&[
                ("cmplz_marketing", "deny"),
                ("cmplz_statistics", "deny"),
                ("cmplz_preferences", "deny"),
            ]),
            Some(granted(&[]))
        );
        // A missing category cookie is a refusal.
        assert_eq!(
            r(&[("cmplz_statistics", "allow")]),
            Some(granted(&[Analytics]))
        );
        assert_eq!(r(&[("cmplz_marketing", "deny")]), Some(granted(&[])));
    }

    #[test]
    fn absent() {
        assert_eq!(r(&[]), None);
        assert_eq!(
            r(&[
                ("cmplz_functional", "allow"),
                ("cmplz_banner-status", "dismissed"),
                ("cmplz_consent_status", "allow"),
                ("CMPLZ_STATISTICS", "allow"),
                ("cmplz_statistics_x", "allow"),
                ("_ga", "GA1.1.1.1"),
            ]),
            None
        );
        // An unreadable functional cookie is not read.
        assert_eq!(r(&[("cmplz_functional", "%ZZ")]), None);
    }

    #[test]
    fn duplicates_take_the_stricter_value() {
        let allow_deny = [("cmplz_statistics", "allow"), ("cmplz_statistics", "deny")];
        assert_eq!(r(&allow_deny), Some(granted(&[])));
        let deny_allow = [("cmplz_statistics", "deny"), ("cmplz_statistics", "allow")];
        assert_eq!(r(&deny_allow), Some(granted(&[])));
        let twice = [("cmplz_statistics", "allow"), ("cmplz_statistics", "allow")];
        assert_eq!(r(&twice), Some(granted(&[Analytics])));
        let bad = [("cmplz_statistics", "allow"), ("cmplz_statistics", "yes")];
        assert_eq!(r(&bad), Some(Reading::Unreadable));
    }

    #[test]
    fn unreadable_values() {
        for v in [
            "",
            "\"\"",
            "Allow",
            "ALLOW",
            "allowed",
            "yes",
            "1",
            "true",
            " allow x",
            "allow%",
            "allow%2",
            "%G1",
            "%FF",
            "allo",
            "deny,allow",
            "\"allow",
        ] {
            assert_eq!(
                r(&[("cmplz_marketing", v), ("cmplz_statistics", "allow")]),
                Some(Reading::Unreadable),
                "{v:?}"
            );
        }
    }

    #[test]
    fn truncation_never_grants_more() {
        for full in ["allow", "deny", "%61llow", "\"allow\""] {
            assert_truncations(full, |v| {
                read([("cmplz_statistics", v), ("cmplz_marketing", "allow")].into_iter())
                    .unwrap_or(Reading::Unreadable)
            });
        }
    }

    #[test]
    fn hostile_values() {
        let long = "a".repeat(10_000);
        assert_eq!(r(&[("cmplz_statistics", &long)]), Some(Reading::Unreadable));
        let padded = format!("{}allow", " ".repeat(9000));
        assert_eq!(
            r(&[("cmplz_statistics", &padded)]),
            Some(Reading::Unreadable)
        );
        let nested = "[".repeat(10_000);
        assert_eq!(
            r(&[("cmplz_statistics", &nested)]),
            Some(Reading::Unreadable)
        );
        let many: Vec<(&str, &str)> = std::iter::repeat_n(("cmplz_statistics", "allow"), 10_000)
            .chain([("cmplz_statistics", "deny")])
            .collect();
        assert_eq!(r(&many), Some(granted(&[])));
    }

    #[test]
    fn fuzz() {
        let names = [
            "cmplz_statistics",
            "cmplz_marketing",
            "cmplz_preferences",
            "cmplz_functional",
            "other",
        ];
        let alphabet = [
            "allow", "deny", "a", "llow", "%", "%61", "%FF", "\"", " ", "x",
        ];
        let mut rng = XorShift::new(0x00C3_F1A7);
        for i in 0..10_000 {
            let n = rng.below(5);
            let pairs: Vec<(&str, String)> = (0..n)
                .map(|_| {
                    let name = names[rng.below(names.len())];
                    let value = if i % 2 == 0 {
                        rng.bytes_input(16)
                    } else {
                        rng.alphabet_input(&alphabet, 4)
                    };
                    (name, value)
                })
                .collect();
            let reading = read(pairs.iter().map(|(n, v)| (*n, v.as_str())));
            if let Some(reading) = reading {
                checked(reading);
            }
        }
        // And the single-cookie fuzz driver, through one category cookie.
        super::super::testutil::fuzz(0x00C3_F1A8, &alphabet, |v| {
            read([("cmplz_marketing", v)].into_iter()).unwrap_or(Reading::Unreadable)
        });
    }
}
