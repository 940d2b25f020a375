//! Every consent-cookie parser on the same input, and the whole consent decision with the input
//! as a `Cookie` header under the built-in policy (`combine: first`) and under `strictest` and
//! `newest`, at a fixed time ([`NOW`]) so that runs are reproducible.
//!
//! The input is read twice: as one cookie value, and as a `Cookie` header whose pairs' values
//! each go through every parser too. Checked beyond the absence of panics:
//!
//! - every grant contains `necessary`, and no opt-out denies it;
//! - a TC string that does not decode grants nothing; one that does grants exactly what the
//!   purpose map says, unless it was last updated more than 13 months before `now` (or more
//!   than a day after it), when it is expired and grants nothing; `TcfConfig::said` agrees;
//! - each source reads as its parser says, combined as the README says: several cookies of one
//!   name by intersection (one unreadable value makes the source unreadable, one expired
//!   expires it), GPP only when a `__gpp` cookie is present, US Privacy over both its names;
//! - `decide` grants `necessary` always; under `first` the first grant-type source present
//!   (not "not required", not an opt-out) decides; a source present but unreadable, or
//!   expired, grants `necessary` only; opt-outs (GPP's US sections, US Privacy) and a GPC
//!   subsection only ever remove categories, from the grant or from the default; `read` lists
//!   every source present, in order; under `strictest` the grant is within every source's,
//!   under `newest` it is the most recently dated source's;
//! - every TC string behind a TCF grant decodes.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::consent::cmp::{self, CategoryMap, Reading};
use consent_proxy::consent::format::{FormatId, ReadCtx, Said};
use consent_proxy::consent::gpp::{self, TcfReading};
use consent_proxy::consent::tcf::{self, PurposeMap, TcfConfig};
use consent_proxy::consent::{
    self, Combine, Consent, Precedence, Rules, Source, formats, native, usprivacy,
};
use consent_proxy::cookie_header::request_cookies;
use consent_proxy::policy::{self, CompiledPolicy};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The time of every request: 2026-11-30, Unix seconds.
const NOW: u64 = 1_795_996_800;
/// The default maximum age of a dated choice (native without a banner, TCF): 396 days.
const THIRTEEN_MONTHS: u64 = 396 * 24 * 3600;
const DAY: u64 = 24 * 3600;

const N: CategorySet = CategorySet::NECESSARY;

/// What the parsers need, built once.
struct Fixture {
    /// The built-in policy: every source, in the default order, `combine: first`.
    first: CompiledPolicy,
    strictest: CompiledPolicy,
    newest: CompiledPolicy,
    purposes: PurposeMap,
    tcf: TcfConfig,
    onetrust: CategoryMap,
    cookieconsent: CategoryMap,
    klaro: CategoryMap,
    borlabs: CategoryMap,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let compile = |combine: &str| {
            policy::compile("fuzz.yaml", &format!("consent:\n  combine: {combine}\n"))
                .expect("a policy naming only `combine` compiles")
        };
        let f = Fixture {
            first: policy::builtin().expect("the built-in policy compiles"),
            strictest: compile("strictest"),
            newest: compile("newest"),
            purposes: PurposeMap::default(),
            tcf: TcfConfig::default(),
            onetrust: cmp::onetrust::default_groups(),
            cookieconsent: cmp::cookieconsent::default_categories(),
            klaro: cmp::klaro::default_services(),
            borlabs: cmp::borlabs::default_groups(),
        };
        for (p, combine) in [
            (&f.first, Combine::First),
            (&f.strictest, Combine::Strictest),
            (&f.newest, Combine::Newest),
        ] {
            let rules = &p.consent;
            assert_eq!(rules.combine, combine);
            let names: Vec<&str> = rules.sources.iter().map(|r| r.id().name).collect();
            assert_eq!(names, formats::NAMES, "every source, in the default order");
            assert_eq!(p.consent_cookie, "cookie_consent");
            // What the checks below assume of the policy: GPC applies over any source.
            assert_eq!(rules.precedence, Precedence::Signal);
            assert_eq!(rules.default_grant, N);
        }
        f
    })
}

/// The cookie a single-cookie format is read from under the built-in policy.
fn cookie_of<'a>(f: &'a Fixture, format: &str) -> &'a str {
    match format {
        "native" => &f.first.consent_cookie,
        "tcf" => "euconsent-v2",
        "onetrust" => "OptanonConsent",
        "cookiebot" => "CookieConsent",
        "cookieconsent" => "cc_cookie",
        "klaro" => "klaro",
        "cookieyes" => "cookieyes-consent",
        "borlabs" => "borlabs-cookie",
        other => unreachable!("{other} is not read from one cookie"),
    }
}

/// A reading dated `at` under a maximum age of 13 months: expired if older than that, or more
/// than a day in the future.
fn dated(reading: Reading, at: u64) -> Said {
    let stale = NOW.saturating_sub(at) > THIRTEEN_MONTHS || at > NOW + DAY;
    let reading = match reading {
        Reading::Granted(_) | Reading::OptOut(_) if stale => Reading::Expired,
        r => r,
    };
    Said {
        reading,
        at: Some(at),
        gpc: false,
    }
}

/// What the TCF cookie says, from the decoder and the purpose map.
fn tcf_said(f: &Fixture, value: &str) -> Said {
    match cmp::prepare(value).map(tcf::decode) {
        Some(Ok(tc)) => dated(Reading::Granted(f.purposes.grant(&tc)), tc.last_updated / 10),
        _ => Said::new(Reading::Unreadable),
    }
}

/// A reading's invariants: a grant contains `necessary`, an opt-out does not deny it.
fn checked(format: &str, value: &str, said: Said) -> Said {
    match said.reading {
        Reading::Granted(set) => assert!(
            set.contains(Category::Necessary),
            "{format}: grant without necessary for {value:?}: {said:?}"
        ),
        Reading::OptOut(denied) => assert!(
            !denied.contains(Category::Necessary),
            "{format}: an opt-out of necessary for {value:?}: {said:?}"
        ),
        _ => {}
    }
    if format != "gpp" {
        assert!(!said.gpc, "{format}: a GPC signal from {value:?}");
    }
    said
}

/// What one cookie value of a format says, from the format's parser (GPP: with `only` naming
/// the applicable sections).
fn value_said(f: &Fixture, format: &str, value: &str, only: Option<&[u16]>) -> Said {
    let said = match format {
        "native" => match native::parse_dated(value) {
            Some((set, Some(at))) => dated(Reading::Granted(set), at),
            Some((set, None)) => Said::new(Reading::Granted(set)),
            None => Said::new(Reading::Unreadable),
        },
        "tcf" => tcf_said(f, value),
        "gpp" => {
            let tcf = TcfReading {
                config: &f.tcf,
                purposes: &f.purposes,
            };
            gpp::read(value, only, &tcf, NOW)
        }
        "usprivacy" => Said::new(usprivacy::parse(value)),
        "onetrust" => Said::new(cmp::onetrust::parse(value, &f.onetrust)),
        "cookiebot" => match cmp::cookiebot::parse_dated(value) {
            (reading, at) => Said {
                reading,
                at,
                gpc: false,
            },
        },
        "cookieconsent" => Said::new(cmp::cookieconsent::parse(value, &f.cookieconsent)),
        "klaro" => Said::new(cmp::klaro::parse(value, &f.klaro)),
        "cookieyes" => Said::new(cmp::cookieyes::parse(value)),
        "borlabs" => Said::new(cmp::borlabs::parse(value, &f.borlabs)),
        other => unreachable!("{other} reads several cookies"),
    };
    checked(format, value, said)
}

/// Two readings of one source, as the README combines several cookies of one name: a category
/// counts only if every reading grants it, one unreadable value makes the source unreadable,
/// one expired value expires it, opt-outs add up and narrow a grant, "not required" yields to
/// anything else; the oldest date stands.
fn stricter(a: Said, b: Said) -> Said {
    use Reading::*;
    let reading = match (a.reading, b.reading) {
        (Unreadable, _) | (_, Unreadable) => Unreadable,
        (Expired, _) | (_, Expired) => Expired,
        (Granted(x), Granted(y)) => Granted(x.intersection(y)),
        (OptOut(x), OptOut(y)) => OptOut(x.union(y)),
        (Granted(x), OptOut(d)) | (OptOut(d), Granted(x)) => Granted(x.difference(d).union(N)),
        (NotRequired, r) | (r, NotRequired) => r,
    };
    let at = match (a.at, b.at) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    Said {
        reading,
        at,
        gpc: a.gpc || b.gpc,
    }
}

fn values<'a>(cookies: &'a [(&'a str, &'a str)], name: &'a str) -> impl Iterator<Item = &'a str> {
    cookies
        .iter()
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// What a source says on a request with these cookies, from the parsers; `None` when absent.
fn source_said(f: &Fixture, format: &str, cookies: &[(&str, &str)]) -> Option<Said> {
    match format {
        "complianz" => cmp::complianz::read(cookies.iter().copied())
            .map(|r| checked(format, "(cmplz_ cookies)", Said::new(r))),
        "gpp" => {
            // The source is the `__gpp` string; `__gpp_sid` only narrows which sections
            // apply. One `__gpp_sid` that cannot be read, or several, make it unreadable.
            values(cookies, "__gpp").next()?;
            let sids: Vec<&str> = values(cookies, "__gpp_sid").collect();
            let only = match sids.as_slice() {
                [] => None,
                [one] => match gpp::applicable(one) {
                    Ok(ids) => Some(ids),
                    Err(_) => return Some(Said::new(Reading::Unreadable)),
                },
                _ => return Some(Said::new(Reading::Unreadable)),
            };
            values(cookies, "__gpp")
                .map(|v| value_said(f, format, v, only.as_deref()))
                .reduce(stricter)
        }
        "usprivacy" => ["usprivacy", "us_privacy"]
            .into_iter()
            .filter_map(|name| {
                values(cookies, name)
                    .map(|v| value_said(f, format, v, None))
                    .reduce(stricter)
            })
            .reduce(stricter),
        _ => values(cookies, cookie_of(f, format))
            .map(|v| value_said(f, format, v, None))
            .reduce(stricter),
    }
}

/// Every parser on one value, each checked on its own.
fn parse_everywhere(f: &Fixture, value: &str) {
    if let Some(set) = native::parse_value(value) {
        assert!(set.contains(Category::Necessary), "native: {value:?}");
    }
    // TCF: a string that decodes grants what the purpose map says (or is expired); one that
    // does not grants nothing, through the parser as through the configured reading.
    let decoded = tcf::decode(value);
    if let Ok(tc) = &decoded {
        let granted = f.purposes.grant(tc);
        assert!(granted.contains(Category::Necessary), "tcf: {value:?}");
    }
    let said = value_said(f, "tcf", value, None);
    match (cmp::prepare(value).map(tcf::decode), said.reading) {
        (Some(Ok(_)), Reading::Granted(_) | Reading::Expired) => {}
        (Some(Ok(_)), r) => panic!("tcf: a decoded string reads {r:?}: {value:?}"),
        (_, Reading::Unreadable) => {}
        (_, r) => panic!("tcf: a string that does not decode reads {r:?}: {value:?}"),
    }
    assert_eq!(
        f.tcf.said(&f.purposes, value, NOW),
        said,
        "TcfConfig::said on {value:?}"
    );
    for format in formats::NAMES {
        if *format != "complianz" {
            value_said(f, format, value, None);
        }
    }
    let pairs = [
        ("cmplz_statistics", value),
        ("cmplz_marketing", value),
        ("cmplz_preferences", value),
    ];
    if let Some(r) = cmp::complianz::read(pairs.iter().copied()) {
        checked("complianz", value, Said::new(r));
    }
}

/// What a decision should be, from what each source says (in the policy's order).
struct Expected {
    granted: CategorySet,
    source: Source,
    read: Vec<&'static str>,
    gpc: bool,
}

/// A grant-type source present on the request: what it grants and names, and its date.
struct Grant {
    set: CategorySet,
    source: Source,
    at: Option<u64>,
}

fn expected(rules: &Rules, said: &[(FormatId, Option<Said>)]) -> Expected {
    let mut read = Vec::new();
    let mut grants: Vec<Grant> = Vec::new();
    let mut opted_out = CategorySet::EMPTY;
    let mut first_opt_out = None;
    let mut gpc = false;
    for (id, s) in said {
        let Some(s) = s else { continue };
        gpc |= s.gpc;
        let (set, source, name) = match s.reading {
            Reading::NotRequired => continue,
            Reading::OptOut(denied) => {
                opted_out = opted_out.union(denied);
                first_opt_out.get_or_insert(*id);
                read.push(id.name);
                continue;
            }
            Reading::Granted(set) => (set, Source::Consent(*id), id.name),
            Reading::Unreadable => (N, Source::Invalid(*id), id.invalid),
            Reading::Expired => (N, Source::Expired(*id), id.expired),
        };
        read.push(name);
        grants.push(Grant {
            set,
            source,
            at: s.at,
        });
    }
    let chosen = match rules.combine {
        Combine::First => grants.first().map(|g| (g.set, g.source)),
        Combine::Strictest => {
            let all = grants.iter().map(|g| g.set).reduce(CategorySet::intersection);
            // Named after the first of those that grant least.
            let mut least: Option<&Grant> = None;
            for g in &grants {
                if least.is_none_or(|l| g.set.len() < l.set.len()) {
                    least = Some(g);
                }
            }
            all.zip(least.map(|g| g.source))
        }
        Combine::Newest => {
            // Undated counts as older than any date; a tie goes to the first in order.
            let mut newest: Option<&Grant> = None;
            for g in &grants {
                if newest.is_none_or(|n| g.at > n.at) {
                    newest = Some(g);
                }
            }
            newest.map(|g| (g.set, g.source))
        }
    };
    let default = rules.default_for(None).0;
    let (base, source) = match (chosen, first_opt_out) {
        (Some(c), _) => c,
        (None, Some(id)) => (default, Source::OptOut(id)),
        (None, None) => (default, Source::Default),
    };
    let mut granted = base.difference(opted_out);
    let signals_apply = rules.precedence == Precedence::Signal
        || !matches!(source, Source::Consent(_))
        || default == CategorySet::ALL;
    if gpc
        && signals_apply
        && let Some(denied) = rules.gpc_denies
    {
        granted = granted.difference(denied);
    }
    Expected {
        granted: granted.union(N),
        source,
        read,
        gpc,
    }
}

fn subset(a: CategorySet, b: CategorySet) -> bool {
    a.difference(b).is_empty()
}

/// The decision of one policy on a `Cookie` header holding `text`, checked against the model.
fn check_policy(
    f: &Fixture,
    p: &CompiledPolicy,
    text: &str,
    headers: &HeaderMap,
    cookies: &[(&str, &str)],
) -> Consent {
    let rules = &p.consent;
    let decision = consent::decide(headers, rules, None, NOW);
    let mode = rules.combine.as_str();
    assert!(
        decision.granted.contains(Category::Necessary),
        "{mode}: no necessary for {text:?}: {decision:?}"
    );
    // Each source reads as its parsers say.
    let ctx = ReadCtx { now: NOW };
    let said: Vec<(FormatId, Option<Said>)> = rules
        .sources
        .iter()
        .map(|reader| {
            let id = reader.id();
            let model = source_said(f, id.name, cookies);
            let got = reader.read(cookies, &ctx);
            assert_eq!(got, model, "{mode}: source {} on {text:?}", id.name);
            (id, model)
        })
        .collect();
    let want = expected(rules, &said);
    // The rules stated on their own first, for a clearer message.
    match decision.source {
        Source::Invalid(_) | Source::Expired(_) => assert_eq!(
            decision.granted, N,
            "{mode}: an unreadable or expired source grants more than necessary: {text:?}"
        ),
        Source::OptOut(_) | Source::Default => assert!(
            subset(decision.granted, rules.default_for(None).0.union(N)),
            "{mode}: more than the default without a grant: {text:?}: {decision:?}"
        ),
        Source::Consent(_) => {}
    }
    if let (Combine::First, Some((id, s))) = (
        rules.combine,
        said.iter()
            .find_map(|(id, s)| s.filter(|s| is_grant_type(s.reading)).map(|s| (*id, s))),
    ) {
        let (set, source) = match s.reading {
            Reading::Granted(set) => (set, Source::Consent(id)),
            Reading::Unreadable => (N, Source::Invalid(id)),
            _ => (N, Source::Expired(id)),
        };
        assert_eq!(
            decision.source, source,
            "first: the first grant-type source present does not decide: {text:?}"
        );
        assert!(
            subset(decision.granted, set),
            "first: opt-outs or signals added to the grant of {}: {text:?}: {decision:?}",
            id.name
        );
    }
    assert_eq!(
        (
            decision.granted,
            decision.source,
            decision.read.iter().collect::<Vec<_>>(),
            decision.signals.gpc,
            decision.signals.dnt,
            decision.region,
        ),
        (want.granted, want.source, want.read, want.gpc, false, None),
        "decide ({mode}) on Cookie: {text:?}"
    );
    decision
}

/// Whether a reading chooses per category (rather than being absent or an opt-out).
fn is_grant_type(r: Reading) -> bool {
    matches!(
        r,
        Reading::Granted(_) | Reading::Unreadable | Reading::Expired
    )
}

/// The decisions on a `Cookie` header holding `text`.
fn check_decide(f: &Fixture, text: &str, value: HeaderValue) {
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value);
    let cookies: Vec<(&str, &str)> = request_cookies(&headers).collect();
    let first = check_policy(f, &f.first, text, &headers, &cookies);
    let strictest = check_policy(f, &f.strictest, text, &headers, &cookies);
    let newest = check_policy(f, &f.newest, text, &headers, &cookies);
    // Strictest grants no more than any single source would decide alone: under the same
    // signals (precedence: signal), it is within what first and newest grant.
    assert!(
        subset(strictest.granted, first.granted) && subset(strictest.granted, newest.granted),
        "strictest grants more than first or newest: {text:?}: {strictest:?} {first:?} {newest:?}"
    );
    // Every TC string behind a TCF grant decodes.
    if first.source == Source::Consent(formats::id("tcf").unwrap()) {
        for v in values(&cookies, "euconsent-v2") {
            assert!(
                cmp::prepare(v).map(tcf::decode).is_some_and(|r| r.is_ok()),
                "a TCF grant from a string that does not decode: {v:?} in {text:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let text = String::from_utf8_lossy(data);
    parse_everywhere(f, &text);
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    // The values of the header's cookies, as the sources see them.
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value.clone());
    for (_, v) in request_cookies(&headers) {
        parse_everywhere(f, v);
    }
    check_decide(f, &text, value);
});
