//! Every consent-cookie parser on the same input, and the whole consent decision with the input
//! as a `Cookie` header under the built-in policy.
//!
//! The input is read twice: as one cookie value, and as a `Cookie` header whose pairs' values
//! each go through every parser too. Checked beyond the absence of panics:
//!
//! - every grant contains `necessary`;
//! - a TC string that does not decode grants nothing, and one that does grants exactly what the
//!   purpose map says;
//! - `decide` grants `necessary` always, and agrees with the README's rules for the sources:
//!   the first source present decides (one whose cookies all say "not required" counts as
//!   absent), several cookies of one name are combined by intersection, and a source that is
//!   present but cannot be read grants `necessary` only.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::consent::cmp::{self, CategoryMap, Reading};
use consent_proxy::consent::{self, Source, native, tcf};
use consent_proxy::filter::cookies::request_cookies;
use consent_proxy::policy::{self, CompiledPolicy, sources::Format};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// What the parsers need, built once.
struct Fixture {
    policy: CompiledPolicy,
    purposes: tcf::PurposeMap,
    onetrust: CategoryMap,
    cookieconsent: CategoryMap,
    klaro: CategoryMap,
    borlabs: CategoryMap,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        policy: policy::builtin().expect("the built-in policy compiles"),
        purposes: tcf::PurposeMap::default(),
        onetrust: cmp::onetrust::default_groups(),
        cookieconsent: cmp::cookieconsent::default_categories(),
        klaro: cmp::klaro::default_services(),
        borlabs: cmp::borlabs::default_groups(),
    })
}

/// A reading's grant contains `necessary`.
fn checked(format: Format, value: &str, r: Reading) -> Reading {
    if let Reading::Granted(set) = r {
        assert!(
            set.contains(Category::Necessary),
            "{}: grant without necessary for {value:?}: {r:?}",
            format.as_str()
        );
    }
    r
}

/// What one cookie value of a (single-cookie) format says, with the built-in policy's maps
/// (the defaults: the built-in policy configures none).
fn read(f: &Fixture, format: Format, value: &str) -> Reading {
    let r = match format {
        Format::Native => match native::parse_value(value) {
            Some(set) => Reading::Granted(set.union(CategorySet::NECESSARY)),
            None => Reading::Unreadable,
        },
        Format::Tcf => match cmp::prepare(value).map(tcf::decode) {
            Some(Ok(tc)) => Reading::Granted(f.purposes.grant(&tc)),
            _ => Reading::Unreadable,
        },
        Format::Onetrust => cmp::onetrust::parse(value, &f.onetrust),
        Format::Cookiebot => cmp::cookiebot::parse(value),
        Format::Cookieconsent => cmp::cookieconsent::parse(value, &f.cookieconsent),
        Format::Klaro => cmp::klaro::parse(value, &f.klaro),
        Format::Cookieyes => cmp::cookieyes::parse(value),
        Format::Borlabs => cmp::borlabs::parse(value, &f.borlabs),
        Format::Complianz => unreachable!("Complianz reads several cookies"),
    };
    checked(format, value, r)
}

/// Every parser on one value, each checked on its own.
fn parse_everywhere(f: &Fixture, value: &str) {
    if let Some(set) = native::parse_value(value) {
        assert!(set.contains(Category::Necessary), "native: {value:?}");
    }
    // TCF: a string that decodes grants what the purpose map says; one that does not grants
    // nothing, through the reader as through the decision.
    let decoded = tcf::decode(value);
    if let Ok(tc) = &decoded {
        let granted = f.purposes.grant(tc);
        assert!(granted.contains(Category::Necessary), "tcf: {value:?}");
    }
    match (
        cmp::prepare(value).map(tcf::decode),
        read(f, Format::Tcf, value),
    ) {
        (Some(Ok(_)), Reading::Granted(_)) => {}
        (Some(Ok(_)), r) => panic!("tcf: a decoded string reads {r:?}: {value:?}"),
        (_, Reading::Unreadable) => {}
        (_, r) => panic!("tcf: a string that does not decode reads {r:?}: {value:?}"),
    }
    for format in Format::ALL {
        if format != Format::Complianz {
            read(f, format, value);
        }
    }
    let pairs = [
        ("cmplz_statistics", value),
        ("cmplz_marketing", value),
        ("cmplz_preferences", value),
    ];
    if let Some(r) = cmp::complianz::read(pairs.iter().copied()) {
        checked(Format::Complianz, value, r);
    }
}

/// Several readings of one source: a category counts only if every reading grants it, one
/// unreadable value makes the source unreadable, and "not required" yields to a grant.
fn combine(readings: impl Iterator<Item = Reading>) -> Option<Reading> {
    readings.reduce(|a, b| match (a, b) {
        (Reading::Unreadable, _) | (_, Reading::Unreadable) => Reading::Unreadable,
        (Reading::Granted(x), Reading::Granted(y)) => Reading::Granted(x.intersection(y)),
        (Reading::Granted(x), Reading::NotRequired)
        | (Reading::NotRequired, Reading::Granted(x)) => Reading::Granted(x),
        (Reading::NotRequired, Reading::NotRequired) => Reading::NotRequired,
    })
}

/// The decision on a `Cookie` header holding `text`.
fn check_decide(f: &Fixture, text: &str, value: HeaderValue) {
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value);
    let decision = consent::decide(&headers, &f.policy, None);
    assert!(
        decision.granted.contains(Category::Necessary),
        "decide: no necessary for {text:?}: {decision:?}"
    );
    let cookies: Vec<(&str, &str)> = request_cookies(&headers).collect();
    // What each source says, in the policy's order; the first that speaks decides.
    let mut expected = None;
    for reader in &f.policy.sources {
        let format = reader.format();
        let reading = if format == Format::Complianz {
            cmp::complianz::read(cookies.iter().copied())
        } else {
            let name = format_cookie(f, format);
            combine(
                cookies
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, v)| read(f, format, v)),
            )
        };
        match reading {
            None | Some(Reading::NotRequired) => continue,
            Some(Reading::Granted(set)) => expected = Some((set, Source::Consent(format))),
            Some(Reading::Unreadable) => {
                expected = Some((CategorySet::NECESSARY, Source::Invalid(format)))
            }
        }
        break;
    }
    // No DNT or Sec-GPC on the request: nothing is taken away from what the source grants.
    let (granted, source) = expected.unwrap_or((f.policy.default_for(None).0, Source::Default));
    assert_eq!(
        (decision.granted, decision.source),
        (granted.union(CategorySet::NECESSARY), source),
        "decide on Cookie: {text:?}"
    );
    if let Source::Invalid(_) = decision.source {
        assert_eq!(decision.granted, CategorySet::NECESSARY, "{text:?}");
    }
    // Every TC string behind a TCF grant decodes.
    if decision.source == Source::Consent(Format::Tcf) {
        let name = format_cookie(f, Format::Tcf);
        for (_, v) in cookies.iter().filter(|(n, _)| *n == name) {
            assert!(
                cmp::prepare(v).map(tcf::decode).is_some_and(|r| r.is_ok()),
                "a TCF grant from a string that does not decode: {v:?} in {text:?}"
            );
        }
    }
}

/// The cookie a format is read from under the built-in policy.
fn format_cookie(f: &Fixture, format: Format) -> &str {
    match format {
        Format::Native => &f.policy.consent_cookie,
        other => other.default_cookie(),
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
