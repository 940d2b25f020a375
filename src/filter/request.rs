//! The request filter: tracking endpoints and the `Cookie` header.

use super::cookies::{judge, request_pairs};
use super::{CookieReport, push_name};
use crate::category::{Category, CategorySet};
use crate::policy::CompiledPolicy;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// The category of a tracking endpoint that the visitor has not granted, if `path` is one.
pub fn blocked_endpoint(
    policy: &CompiledPolicy,
    granted: CategorySet,
    path: &str,
) -> Option<Category> {
    policy.endpoint(path).filter(|c| !granted.contains(*c))
}

/// Judges each request cookie and records what would be stripped. When `enforce` is set, the
/// `Cookie` headers are replaced by one header holding only the cookies that may pass (or none).
/// A pair that cannot be parsed is dropped: it cannot be judged.
pub fn filter_cookie_header(
    headers: &mut HeaderMap,
    policy: &CompiledPolicy,
    granted: CategorySet,
    enforce: bool,
    report: &mut CookieReport,
) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let mut kept = String::new();
    let mut changed = false;
    for pair in request_pairs(headers) {
        let Some((name, value)) = pair else {
            changed = true;
            continue;
        };
        let j = judge(policy, granted, name);
        if j.unknown {
            push_name(&mut report.unknown_cookies, name);
        }
        if j.allowed {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(name);
            kept.push('=');
            kept.push_str(value);
        } else {
            changed = true;
            push_name(&mut report.stripped_request_cookies, name);
            // Only a name that is a token can be written back into a Set-Cookie as it is.
            if j.known_denied && super::is_token(name) && name.len() <= super::MAX_LOGGED_NAME {
                push_name(&mut report.expired_cookies, name);
            }
        }
    }
    if !enforce {
        return;
    }
    // Several Cookie headers (HTTP/2) are folded into one for the HTTP/1.1 upstream.
    let several = headers.get_all(COOKIE).iter().nth(1).is_some();
    if !changed && !several {
        return;
    }
    headers.remove(COOKIE);
    if !kept.is_empty() {
        // Built only from parsed cookie names and values, which are valid header text.
        if let Ok(v) = HeaderValue::from_str(&kept) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile;

    fn policy() -> CompiledPolicy {
        compile(
            "t.yaml",
            "cookies:\n  - { name: _ga, category: analytics }\n  - { name: _fbp, category: marketing }\n  - { name: sid, category: necessary }\nendpoints:\n  - { path: /collect, category: analytics }\n",
        )
        .unwrap()
    }

    fn run(cookie: &str, granted: CategorySet, enforce: bool) -> (Option<String>, CookieReport) {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, cookie.parse().unwrap());
        let mut r = CookieReport::default();
        filter_cookie_header(&mut h, &policy(), granted, enforce, &mut r);
        (h.get(COOKIE).map(|v| v.to_str().unwrap().to_string()), r)
    }

    #[test]
    fn strips_denied_and_unknown_keeps_necessary_and_consent() {
        let (c, r) = run(
            "sid=1; _ga=GA1.1; cookie_consent=none; mystery=2; _fbp=fb",
            CategorySet::NECESSARY,
            true,
        );
        assert_eq!(c.as_deref(), Some("sid=1; cookie_consent=none"));
        assert_eq!(r.stripped_request_cookies, vec!["_ga", "mystery", "_fbp"]);
        assert_eq!(r.expired_cookies, vec!["_ga", "_fbp"]);
        assert_eq!(r.unknown_cookies, vec!["mystery"]);
    }

    #[test]
    fn granted_categories_pass() {
        let (c, r) = run("_ga=1; _fbp=2", CategorySet::ALL, true);
        assert_eq!(c.as_deref(), Some("_ga=1; _fbp=2"));
        assert!(r.stripped_request_cookies.is_empty());
    }

    #[test]
    fn report_only_changes_nothing_but_reports() {
        let (c, r) = run("_ga=1; sid=2", CategorySet::NECESSARY, false);
        assert_eq!(c.as_deref(), Some("_ga=1; sid=2"));
        assert_eq!(r.stripped_request_cookies, vec!["_ga"]);
    }

    #[test]
    fn header_removed_when_nothing_left() {
        let (c, _) = run("_ga=1", CategorySet::NECESSARY, true);
        assert_eq!(c, None);
    }

    #[test]
    fn endpoint_blocked_only_when_denied() {
        let p = policy();
        assert_eq!(
            blocked_endpoint(&p, CategorySet::NECESSARY, "/collect"),
            Some(Category::Analytics)
        );
        assert_eq!(blocked_endpoint(&p, CategorySet::ALL, "/collect"), None);
        assert_eq!(
            blocked_endpoint(&p, CategorySet::NECESSARY, "/collectx"),
            None
        );
        assert_eq!(
            blocked_endpoint(&p, CategorySet::NECESSARY, "//Collect/;x"),
            Some(Category::Analytics)
        );
    }
}
