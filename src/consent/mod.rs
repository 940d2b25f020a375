//! What the visitor said: a pure function from request headers and the consent rules to the
//! set of granted categories, and what decided it.
//!
//! Each consent format is one file (see [`format`] and [`formats`]). This module depends on no
//! other part of the proxy but categories: the policy compiles [`Rules`], the proxy calls
//! [`decide`].

pub mod cmp;
pub mod format;
pub mod formats;
pub mod gpp;
pub mod native;
pub mod region;
pub mod signals;
pub mod tcf;
pub mod usprivacy;

use crate::category::CategorySet;
use crate::cookie_header::request_cookies;
use cmp::Reading;
use format::{ConsentReader, FormatId, ReadCtx};
pub use formats::Combine;
use http::HeaderMap;
pub use region::Country;
pub use signals::{BrowserSignals, Precedence};
use std::collections::HashMap;

/// What the policy says about consent, compiled: the sources and how they combine, the
/// defaults, and what browser signals deny.
#[derive(Debug)]
pub struct Rules {
    /// Consent sources, in the policy's order.
    pub sources: Vec<Box<dyn ConsentReader>>,
    pub combine: Combine,
    /// Granted when no consent source speaks (always includes necessary).
    pub default_grant: CategorySet,
    /// Regional defaults by country.
    pub regional: HashMap<Country, CategorySet>,
    /// Categories denied by `DNT: 1`, if the DNT rule is enabled.
    pub dnt_denies: Option<CategorySet>,
    /// Categories denied by `Sec-GPC: 1`, if the GPC rule is enabled.
    pub gpc_denies: Option<CategorySet>,
    pub precedence: Precedence,
}

impl Rules {
    /// What the browser signals deny. `over_a_choice`: a visitor's own choice per category
    /// decided, which `precedence: cookie` lets stand against DNT and GPC, except GPC under an
    /// opt-out default (`opt_out_model`), where it is an opt-out of sale and sharing.
    pub fn denied_by_signals(
        &self,
        signals: BrowserSignals,
        opt_out_model: bool,
        over_a_choice: bool,
    ) -> CategorySet {
        let apply = self.precedence == Precedence::Signal || !over_a_choice;
        let mut denied = CategorySet::EMPTY;
        if apply
            && signals.dnt
            && let Some(d) = self.dnt_denies
        {
            denied = denied.union(d);
        }
        if (apply || opt_out_model)
            && signals.gpc
            && let Some(d) = self.gpc_denies
        {
            denied = denied.union(d);
        }
        denied
    }

    /// What is granted when no consent source speaks: the regional default for `country` if
    /// there is one (and which country it was), else the policy's default.
    pub fn default_for(&self, country: Option<Country>) -> (CategorySet, Option<Country>) {
        country
            .and_then(|c| self.regional.get(&c).map(|set| (*set, Some(c))))
            .unwrap_or((self.default_grant, None))
    }
}

/// What decided the granted set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A consent source on the request: the proxy's own cookie, a consent manager's, an IAB
    /// string.
    Consent(FormatId),
    /// That source was present but could not be read: it grants nothing.
    Invalid(FormatId),
    /// That source was read, but its choice is older than the policy relies on: it grants
    /// nothing.
    Expired(FormatId),
    /// Only opt-outs spoke (GPP's US sections, a US Privacy string): the default applies,
    /// less what they deny.
    OptOut(FormatId),
    /// No source spoke: the policy's default (or its regional default) applies.
    Default,
}

impl Source {
    /// The name in the decision log: `native`, `tcf`, …, `tcf-invalid`, `tcf-expired`,
    /// `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Consent(f) | Source::OptOut(f) => f.name,
            Source::Invalid(f) => f.invalid,
            Source::Expired(f) => f.expired,
            Source::Default => "default",
        }
    }

    /// Whether the visitor's own choice per category decided (readable or not), rather than a
    /// default (with or without opt-outs).
    pub fn is_consent(self) -> bool {
        !matches!(self, Source::Default | Source::OptOut(_))
    }

    fn of(id: FormatId, reading: Reading) -> Source {
        match reading {
            Reading::Granted(_) | Reading::NotRequired => Source::Consent(id),
            Reading::OptOut(_) => Source::OptOut(id),
            Reading::Unreadable => Source::Invalid(id),
            Reading::Expired => Source::Expired(id),
        }
    }
}

/// The sources read on one request, by their log names, in the policy's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadList {
    names: [&'static str; 16],
    len: u8,
}

impl ReadList {
    fn push(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.len as usize) {
            *slot = name;
            self.len += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names[..self.len as usize].iter().copied()
    }
}

/// The consent decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// Granted categories; always contains `necessary`.
    pub granted: CategorySet,
    /// What decided.
    pub source: Source,
    /// Every source present on the request, as the decision log names them.
    pub read: ReadList,
    /// The browser signals present on the request (whether or not they changed the outcome),
    /// a GPC subsection of a consent string included.
    pub signals: BrowserSignals,
    /// The country whose regional default applied, if one did.
    pub region: Option<Country>,
    /// The visitor's default is opt-out (the US model): GPC is an opt-out whatever the
    /// precedence.
    pub opt_out_model: bool,
}

/// Decides what the visitor has granted. `country` is the visitor's country as a trusted edge
/// proxy named it, if it did; `now` the time of the request in Unix seconds.
///
/// - Sources that grant (a choice per category) combine as the policy says: the first present,
///   the strictest, or the newest.
/// - Sources that opt out (GPP's US sections, the US Privacy string) always restrict: an
///   opt-out of sale, sharing or targeted advertising denies its categories whichever source
///   granted, and applies to the default when none did.
/// - Browser signals then deny their categories, unless `precedence: cookie` lets a readable
///   choice stand. In a region whose default is opt-out (the US model), GPC is an opt-out of
///   sale and sharing, and applies whatever the precedence.
pub fn decide(headers: &HeaderMap, rules: &Rules, country: Option<Country>, now: u64) -> Consent {
    let mut signals = BrowserSignals::read(headers);
    let cookies: Vec<(&str, &str)> = request_cookies(headers).collect();
    let ctx = ReadCtx { now };
    let mut read = ReadList::default();
    // The grant-type sources combine as they are read, without a list: the choice so far,
    // and what ranks it (its size for `strictest`, its date for `newest`).
    let mut chosen: Option<(CategorySet, Source)> = None;
    let mut least = u32::MAX;
    let mut newest = None;
    let mut opted_out = CategorySet::EMPTY;
    let mut first_opt_out = None;
    for reader in &rules.sources {
        let Some(said) = reader.read(&cookies, &ctx) else {
            continue;
        };
        signals.gpc |= said.gpc;
        if said.reading == Reading::NotRequired {
            continue;
        }
        let id = reader.id();
        let source = Source::of(id, said.reading);
        read.push(source.as_str());
        let set = match said.reading {
            Reading::OptOut(denied) => {
                opted_out = opted_out.union(denied);
                first_opt_out.get_or_insert(id);
                continue;
            }
            Reading::Granted(set) => set,
            _ => CategorySet::NECESSARY,
        };
        chosen = Some(match (rules.combine, chosen) {
            (_, None) => {
                (least, newest) = (set.len(), said.at);
                (set, source)
            }
            (Combine::First, Some(c)) => c,
            // The source that grants least (the first of those) names the outcome; `sources`
            // lists the others that narrowed it.
            (Combine::Strictest, Some((all, named))) => {
                let named = if set.len() < least {
                    least = set.len();
                    source
                } else {
                    named
                };
                (all.intersection(set), named)
            }
            // Undated is older than any date; on a tie the earlier source stands.
            (Combine::Newest, Some(c)) => {
                if said.at > newest {
                    newest = said.at;
                    (set, source)
                } else {
                    c
                }
            }
        });
    }
    let (default, default_region) = rules.default_for(country);
    let (base, source, region) = match (chosen, first_opt_out) {
        (Some((set, source)), _) => (set, source, None),
        (None, Some(id)) => (default, Source::OptOut(id), default_region),
        (None, None) => (default, Source::Default, default_region),
    };
    let opt_out_model = default == CategorySet::ALL;
    let over_a_choice = matches!(source, Source::Consent(_));
    let granted = base
        .difference(opted_out)
        .difference(rules.denied_by_signals(signals, opt_out_model, over_a_choice));
    Consent {
        granted: granted.union(CategorySet::NECESSARY),
        source,
        read,
        signals,
        region,
        opt_out_model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category::{self, *};
    use crate::policy::compile;

    /// 2026-11-30.
    const NOW: u64 = 1_795_996_800;

    fn set(cs: &[Category]) -> CategorySet {
        cs.iter().copied().collect::<CategorySet>().with(Necessary)
    }

    fn decide_with(policy: &str, headers: &[(&str, &str)]) -> Consent {
        let p = compile("t.yaml", policy).unwrap();
        decide(&crate::test_headers(headers), &p.consent, None, NOW)
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
        assert_eq!(c.source, Source::Consent(native::NATIVE));
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
        assert_eq!(c.source, Source::Invalid(native::NATIVE));
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

    #[test]
    fn in_an_opt_out_region_gpc_is_an_opt_out_whatever_the_precedence() {
        // Where the default is opt-out, GPC opts out of sale and sharing even against a
        // cookie's grant under `precedence: cookie`…
        let p = "default: opt-out\nsignals:\n  precedence: cookie\n";
        let c = decide_with(p, &[("cookie", "cookie_consent=all"), ("sec-gpc", "1")]);
        assert_eq!(c.granted, set(&[Preferences, Analytics]));
        // …while under an opt-in default the cookie's grant stands.
        let opt_in = "signals:\n  precedence: cookie\n";
        let c = decide_with(
            opt_in,
            &[("cookie", "cookie_consent=all"), ("sec-gpc", "1")],
        );
        assert_eq!(c.granted, CategorySet::ALL);
    }

    #[test]
    fn opt_outs_restrict_whichever_source_granted() {
        for combine in ["first", "strictest", "newest"] {
            let p = format!("default: opt-out\nconsent:\n  combine: {combine}\n");
            let c = decide_with(&p, &[("cookie", "cookie_consent=all; usprivacy=1YYN")]);
            assert_eq!(c.granted, set(&[Preferences, Analytics]), "{combine}");
            assert_eq!(c.source, Source::Consent(native::NATIVE), "{combine}");
            assert_eq!(c.read.iter().collect::<Vec<_>>(), ["native", "usprivacy"]);
            // Alone, an opt-out applies to the default and names itself.
            let c = decide_with(&p, &[("cookie", "usprivacy=1YYN")]);
            assert_eq!(c.granted, set(&[Preferences, Analytics]), "{combine}");
            assert_eq!(c.source.as_str(), "usprivacy");
            assert!(!c.source.is_consent());
        }
        // Under an opt-in default an opt-out alone changes nothing.
        let c = decide_with("", &[("cookie", "usprivacy=1YYN")]);
        assert_eq!(c.granted, set(&[]));
    }

    #[test]
    fn dated_choices_expire_and_the_newest_decides() {
        let old = NOW - 400 * 24 * 3600;
        let recent = NOW - 24 * 3600;
        let c = decide_with("", &[("cookie", &format!("cookie_consent=all@{old}"))]);
        assert_eq!(c.granted, set(&[]));
        assert_eq!(c.source.as_str(), "native-expired");
        let p = "consent:\n  sources: [cookiebot, native]\n  combine: newest\n";
        let cookiebot = |utc_s: u64| {
            format!(
                "CookieConsent={{necessary:true,preferences:false,statistics:true,marketing:false,utc:{}000}}",
                utc_s
            )
        };
        let native = format!("cookie_consent=all@{old}");
        let both = format!("{}; {native}", cookiebot(recent));
        let c = decide_with(p, &[("cookie", &both)]);
        assert_eq!(c.granted, set(&[Analytics]));
        assert_eq!(c.source.as_str(), "cookiebot");
        // An expired choice still counts by its date: newer than an undated one.
        let undated = format!("CookieConsent={{necessary:true,statistics:true}}; {native}");
        let c = decide_with(p, &[("cookie", &undated)]);
        assert_eq!(c.source.as_str(), "native-expired");
        assert_eq!(c.granted, set(&[]));
    }
}
