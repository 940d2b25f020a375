//! What the visitor said: a pure function from request headers and the compiled policy to the
//! set of granted categories, and what decided it.

pub mod cmp;
pub mod native;
pub mod reader;
pub mod signals;
pub mod tcf;

use crate::category::CategorySet;
use crate::filter::cookies::request_cookies;
use crate::policy::sources::{Country, Format};
use crate::policy::{CompiledPolicy, Precedence};
use cmp::Reading;
use http::HeaderMap;
pub use signals::BrowserSignals;

/// What decided the granted set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A consent source on the request: the proxy's own cookie or a consent manager's.
    Consent(Format),
    /// That source was present but could not be read: it grants nothing.
    Invalid(Format),
    /// No source spoke: the policy's default (or its regional default) applies.
    Default,
}

impl Source {
    /// The name in the decision log: `native`, `tcf`, `onetrust`, …, `tcf-invalid`, `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Consent(f) => f.as_str(),
            Source::Invalid(f) => match f {
                Format::Native => "native-invalid",
                Format::Tcf => "tcf-invalid",
                Format::Onetrust => "onetrust-invalid",
                Format::Cookiebot => "cookiebot-invalid",
                Format::Cookieconsent => "cookieconsent-invalid",
                Format::Klaro => "klaro-invalid",
                Format::Cookieyes => "cookieyes-invalid",
                Format::Complianz => "complianz-invalid",
                Format::Borlabs => "borlabs-invalid",
            },
            Source::Default => "default",
        }
    }

    /// Whether the visitor's own choice decided (readable or not).
    pub fn is_consent(self) -> bool {
        !matches!(self, Source::Default)
    }
}

/// The consent decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// Granted categories; always contains `necessary`.
    pub granted: CategorySet,
    pub source: Source,
    /// The browser signals present on the request (whether or not they changed the outcome).
    pub signals: BrowserSignals,
    /// The country whose regional default applied, if one did.
    pub region: Option<Country>,
}

/// Decides what the visitor has granted. `country` is the visitor's country as a trusted edge
/// proxy named it, if it did.
pub fn decide(headers: &HeaderMap, policy: &CompiledPolicy, country: Option<Country>) -> Consent {
    let signals = BrowserSignals::read(headers);
    let cookies: Vec<(&str, &str)> = request_cookies(headers).collect();
    let spoken = policy.sources.iter().find_map(|reader| {
        let format = reader.format();
        match reader.read(&cookies)? {
            Reading::Granted(set) => Some((set, Source::Consent(format))),
            Reading::Unreadable => Some((CategorySet::NECESSARY, Source::Invalid(format))),
            // The consent manager says no consent is needed here: as if it were absent.
            Reading::NotRequired => None,
        }
    });
    let (base, source, region) = match spoken {
        Some((set, source)) => (set, source, None),
        None => {
            let (set, region) = policy.default_for(country);
            (set, Source::Default, region)
        }
    };
    let signals_apply = match policy.precedence {
        Precedence::Signal => true,
        Precedence::Cookie => !matches!(source, Source::Consent(_)),
    };
    let mut granted = base;
    if signals_apply {
        if signals.dnt
            && let Some(denied) = policy.dnt_denies
        {
            granted = granted.difference(denied);
        }
        if signals.gpc
            && let Some(denied) = policy.gpc_denies
        {
            granted = granted.difference(denied);
        }
    }
    Consent {
        granted: granted.union(CategorySet::NECESSARY),
        source,
        signals,
        region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category::{self, *};
    use crate::policy::compile;

    fn set(cs: &[Category]) -> CategorySet {
        cs.iter().copied().collect::<CategorySet>().with(Necessary)
    }

    fn decide_with(policy: &str, headers: &[(&str, &str)]) -> Consent {
        let p = compile("t.yaml", policy).unwrap();
        decide(&crate::test_headers(headers), &p, None)
    }

    #[test]
    fn no_signal_means_necessary_only() {
        let c = decide_with("", &[]);
        assert_eq!(c.granted, set(&[]));
        assert_eq!(c.source, Source::Default);
    }

    #[test]
    fn opt_out_default_grants_everything_but_signals_still_deny() {
        assert_eq!(
            decide_with("default: opt-out", &[]).granted,
            CategorySet::ALL
        );
        assert_eq!(
            decide_with("default: opt-out", &[("sec-gpc", "1")]).granted,
            set(&[Preferences, Analytics])
        );
    }

    #[test]
    fn cookie_grants_listed_categories() {
        let c = decide_with(
            "",
            &[("cookie", "a=b; cookie_consent=analytics,preferences")],
        );
        assert_eq!(c.granted, set(&[Analytics, Preferences]));
        assert_eq!(c.source, Source::Consent(Format::Native));
    }

    #[test]
    fn dnt_denies_analytics_and_marketing_over_the_cookie() {
        let c = decide_with("", &[("cookie", "cookie_consent=all"), ("dnt", "1")]);
        assert_eq!(c.granted, set(&[Preferences]));
        assert!(c.signals.dnt && !c.signals.gpc);
        let c = decide_with("", &[("cookie", "cookie_consent=all"), ("dnt", "0")]);
        assert_eq!(c.granted, CategorySet::ALL);
    }

    #[test]
    fn gpc_denies_marketing_only_for_exact_one() {
        let c = decide_with("", &[("cookie", "cookie_consent=all"), ("sec-gpc", "1")]);
        assert_eq!(c.granted, set(&[Preferences, Analytics]));
        for v in ["0", "true", "1 ", "yes", "11"] {
            let c = decide_with("", &[("cookie", "cookie_consent=all"), ("sec-gpc", v)]);
            assert_eq!(c.granted, CategorySet::ALL, "Sec-GPC: {v:?}");
        }
        let c = decide_with(
            "",
            &[
                ("cookie", "cookie_consent=all"),
                ("sec-gpc", "0"),
                ("sec-gpc", "1"),
            ],
        );
        assert_eq!(c.granted, set(&[Preferences, Analytics]));
    }

    #[test]
    fn cookie_precedence_lets_a_cookie_grant_stand() {
        let p = "signals:\n  precedence: cookie\n";
        let c = decide_with(
            p,
            &[
                ("cookie", "cookie_consent=all"),
                ("dnt", "1"),
                ("sec-gpc", "1"),
            ],
        );
        assert_eq!(c.granted, CategorySet::ALL);
        assert!(c.signals.dnt && c.signals.gpc);
        let c = decide_with(
            "default: opt-out\nsignals:\n  precedence: cookie\n",
            &[("dnt", "1")],
        );
        assert_eq!(c.granted, set(&[Preferences]));
    }

    #[test]
    fn configurable_signal_rules() {
        let p = "signals:\n  gpc: { deny: [analytics, marketing] }\n  dnt: { enabled: false, deny: [] }\n";
        let c = decide_with(p, &[("cookie", "cookie_consent=all"), ("sec-gpc", "1")]);
        assert_eq!(c.granted, set(&[Preferences]));
        let c = decide_with(p, &[("cookie", "cookie_consent=all"), ("dnt", "1")]);
        assert_eq!(c.granted, CategorySet::ALL);
    }

    #[test]
    fn unreadable_cookie_grants_nothing_even_under_opt_out() {
        let c = decide_with("default: opt-out", &[("cookie", "cookie_consent=%ZZ")]);
        assert_eq!(c.granted, set(&[]));
        assert_eq!(c.source, Source::Invalid(Format::Native));
    }

    #[test]
    fn configured_cookie_name() {
        let p = "consent_cookie: site_consent\n";
        assert_eq!(
            decide_with(p, &[("cookie", "site_consent=marketing")]).granted,
            set(&[Marketing])
        );
        assert_eq!(
            decide_with(p, &[("cookie", "cookie_consent=marketing")]).source,
            Source::Default
        );
    }
}
