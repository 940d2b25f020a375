//! The `Set-Cookie` filter under the built-in policy, with only `necessary` granted.
//!
//! The input is split at `\n` into `Set-Cookie` header values (lines that are not valid header
//! values are left out). Checked after filtering in enforce mode:
//!
//! - every remaining header parses, and its cookie is allowed (`filter::cookies::judge`);
//! - no remaining header sets, as a browser reads it (RFC 6265bis 5.6: the text before the
//!   first `;`, split at the first `=`, blanks trimmed), a cookie the policy classifies in a
//!   category other than `necessary`, nor a cookie the decision would not allow;
//! - exactly the headers that parse (with the name a browser stores) and are allowed remain,
//!   in their order;
//! - the `seen` callback and the report agree with what was dropped;
//! - in report-only mode the headers are left as they were.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::filter::CookieReport;
use consent_proxy::filter::cookies::judge;
use consent_proxy::filter::response::{UNPARSEABLE, filter_set_cookies};
use consent_proxy::policy::{self, CompiledPolicy, Verdict};
use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// At most this many headers per input.
const MAX_HEADERS: usize = 64;

const GRANTED: CategorySet = CategorySet::NECESSARY;

fn builtin() -> &'static CompiledPolicy {
    static POLICY: OnceLock<CompiledPolicy> = OnceLock::new();
    POLICY.get_or_init(|| policy::builtin().expect("the built-in policy compiles"))
}

/// The cookie name a browser stores for a `Set-Cookie` value (RFC 6265bis 5.6); `None` for a
/// header the browser ignores (no name and no value).
fn browser_name(header: &str) -> Option<&str> {
    let pair = header.split(';').next().unwrap_or("");
    let blank = |c: char| c == ' ' || c == '\t';
    let (name, value) = match pair.split_once('=') {
        Some((n, v)) => (n.trim_matches(blank), v.trim_matches(blank)),
        None => ("", pair.trim_matches(blank)),
    };
    (!name.is_empty() || !value.is_empty()).then_some(name)
}

/// The cookie name the filter judges a header by, if it can judge it: the header parses, and
/// the parser's name is the one a browser stores (a name the parser trims of other white space,
/// `cookie_consent\u{a0}`, is not the cookie it resembles).
fn parsed_name(value: &HeaderValue) -> Option<String> {
    let text = std::str::from_utf8(value.as_bytes()).ok()?;
    let cookie = Cookie::parse(text).ok()?;
    (Some(cookie.name()) == browser_name(text)).then(|| cookie.name().to_string())
}

fn set_cookies(headers: &HeaderMap) -> Vec<HeaderValue> {
    headers.get_all(SET_COOKIE).iter().cloned().collect()
}

fuzz_target!(|data: &[u8]| {
    let policy = builtin();
    let values: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .take(MAX_HEADERS)
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    let mut headers = HeaderMap::new();
    for v in &values {
        headers.append(SET_COOKIE, v.clone());
    }

    // Report-only: judged, not changed.
    let mut report = CookieReport::default();
    filter_set_cookies(&mut headers, policy, GRANTED, false, &mut report, |_, _| {});
    assert_eq!(
        set_cookies(&headers),
        values,
        "report-only changed the headers"
    );

    let mut report = CookieReport::default();
    let mut seen = Vec::new();
    filter_set_cookies(
        &mut headers,
        policy,
        GRANTED,
        true,
        &mut report,
        |name, stripped| seen.push((name.to_string(), stripped)),
    );
    let remaining = set_cookies(&headers);

    // Exactly the headers that parse and are allowed remain, in their order.
    let expected: Vec<HeaderValue> = values
        .iter()
        .filter(|v| parsed_name(v).is_some_and(|n| judge(policy, GRANTED, &n).allowed))
        .cloned()
        .collect();
    assert_eq!(
        remaining, expected,
        "the filter kept other headers than the allowed ones"
    );

    for v in &remaining {
        let name = parsed_name(v).expect("a remaining Set-Cookie parses");
        assert!(judge(policy, GRANTED, &name).allowed, "{name:?} remains");
        // As the browser reads it.
        let text = std::str::from_utf8(v.as_bytes()).expect("a remaining Set-Cookie is UTF-8");
        let Some(stored) = browser_name(text) else {
            continue;
        };
        if let Verdict::Known(class) = policy.classify(stored) {
            assert_eq!(
                class.category,
                Category::Necessary,
                "Set-Cookie {text:?} sets {stored:?} ({:?}) under necessary-only consent",
                class.category
            );
        }
        assert!(
            judge(policy, GRANTED, stored).allowed,
            "Set-Cookie {text:?} kept: the filter judged {name:?}, the browser stores {stored:?}, \
             which is not allowed"
        );
    }

    // The callback heard every parsed cookie, with whether it was stripped.
    let parsed: Vec<(String, bool)> = values
        .iter()
        .filter_map(parsed_name)
        .map(|n| {
            let stripped = !judge(policy, GRANTED, &n).allowed;
            (n, stripped)
        })
        .collect();
    assert_eq!(seen, parsed);
    // A header that does not parse is reported as such (a cookie may also be named so).
    if values.iter().any(|v| parsed_name(v).is_none()) {
        assert!(report.stripped_set_cookies.iter().any(|n| n == UNPARSEABLE));
    }
    if remaining == values {
        assert!(report.stripped_set_cookies.is_empty());
    }
});
