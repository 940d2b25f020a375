//! The response-header filter: `Set-Cookie` of denied categories, expiry of withdrawn cookies,
//! and `Vary`.

use super::cookies::judge;
use super::{CookieReport, push_name};
use crate::category::CategorySet;
use crate::policy::CompiledPolicy;
use cookie::Cookie;
use http::header::{SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

/// The name logged for a `Set-Cookie` header that cannot be parsed.
pub const UNPARSEABLE: &str = "(unparseable)";

/// Judges each `Set-Cookie` header on its own. When `enforce` is set, headers of denied
/// categories are removed; a header that cannot be parsed is removed too, since it cannot be
/// judged. `seen` is told each parsed cookie's name and whether it is stripped.
pub fn filter_set_cookies(
    headers: &mut HeaderMap,
    policy: &CompiledPolicy,
    granted: CategorySet,
    enforce: bool,
    report: &mut CookieReport,
    mut seen: impl FnMut(&str, bool),
) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let mut keep = Vec::new();
    let mut dropped = false;
    for value in headers.get_all(SET_COOKIE) {
        // The name must be the one a browser stores: the parser trims Unicode white space
        // from it, a browser only spaces and tabs (`a\u{a0}=1` is not the cookie `a`).
        let parsed = std::str::from_utf8(value.as_bytes()).ok().and_then(|s| {
            Cookie::parse(s)
                .ok()
                .filter(|c| c.name() == super::cookies::browser_name(s))
        });
        let Some(cookie) = parsed else {
            dropped = true;
            push_name(&mut report.stripped_set_cookies, UNPARSEABLE);
            continue;
        };
        let j = judge(policy, granted, cookie.name());
        seen(cookie.name(), !j.allowed);
        if j.unknown {
            push_name(&mut report.unknown_cookies, cookie.name());
        }
        if j.allowed {
            keep.push(value.clone());
        } else {
            dropped = true;
            push_name(&mut report.stripped_set_cookies, cookie.name());
        }
    }
    if enforce && dropped {
        headers.remove(SET_COOKIE);
        for v in keep {
            headers.append(SET_COOKIE, v);
        }
    }
}

/// The domains to expire a cookie on for a request to `host`: host-only, the host itself, and
/// each parent domain of two labels or more (`www.shop.example.com` gives `shop.example.com`
/// and `example.com`), since trackers commonly set their cookies on the registrable domain.
/// IP addresses and single-label hosts get host-only expiry.
pub fn expiry_domains(host: Option<&str>) -> Vec<Option<&str>> {
    let mut out = vec![None];
    let Some(host) = host.map(strip_port).filter(|h| !h.is_empty()) else {
        return out;
    };
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') || !host.contains('.') {
        return out;
    }
    let mut rest = host;
    loop {
        out.push(Some(rest));
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => break,
        }
    }
    out
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| h);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// Appends `Set-Cookie` headers that delete each named cookie (consent withdrawn), on every
/// domain from [`expiry_domains`].
pub fn expire_cookies(headers: &mut HeaderMap, names: &[String], host: Option<&str>) {
    let domains = expiry_domains(host);
    for name in names {
        for domain in &domains {
            let mut v =
                format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/");
            if let Some(d) = domain {
                v.push_str("; Domain=");
                v.push_str(d);
            }
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.append(SET_COOKIE, v);
            }
        }
    }
}

/// Adds each name to `Vary` unless it is already there or `Vary: *` is set.
pub fn add_vary(headers: &mut HeaderMap, names: &[&str]) {
    let present: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if present.iter().any(|t| t == "*") {
        return;
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !present.iter().any(|p| p.eq_ignore_ascii_case(n)))
        .collect();
    if !missing.is_empty()
        && let Ok(v) = HeaderValue::from_str(&missing.join(", "))
    {
        headers.append(VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use crate::policy::compile;

    fn policy() -> CompiledPolicy {
        compile(
            "t.yaml",
            "cookies:\n  - { name: _ga, category: analytics }\n  - { name: _fbp, category: marketing }\n  - { name: sid, category: necessary }\n",
        )
        .unwrap()
    }

    fn set_cookies(h: &HeaderMap) -> Vec<String> {
        h.get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_set_cookie_judged_alone() {
        let mut h = HeaderMap::new();
        for v in [
            "_ga=GA1.2.3; Path=/; Domain=example.com; Max-Age=63072000",
            "sid=abc; HttpOnly",
            "_fbp=fb.1; Path=/",
            "cookie_consent=none; Path=/",
            "odd=1",
            "=broken",
        ] {
            h.append(SET_COOKIE, v.parse().unwrap());
        }
        let mut r = CookieReport::default();
        let granted = CategorySet::NECESSARY.with(Category::Analytics);
        let mut seen = Vec::new();
        filter_set_cookies(&mut h, &policy(), granted, true, &mut r, |n, stripped| {
            seen.push((n.to_string(), stripped))
        });
        let seen: Vec<(&str, bool)> = seen.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        assert_eq!(
            seen,
            [
                ("_ga", false),
                ("sid", false),
                ("_fbp", true),
                ("cookie_consent", false),
                ("odd", true)
            ]
        );
        assert_eq!(
            set_cookies(&h),
            vec![
                "_ga=GA1.2.3; Path=/; Domain=example.com; Max-Age=63072000",
                "sid=abc; HttpOnly",
                "cookie_consent=none; Path=/"
            ]
        );
        assert_eq!(r.stripped_set_cookies, vec!["_fbp", "odd", UNPARSEABLE]);
        assert_eq!(r.unknown_cookies, vec!["odd"]);
    }

    #[test]
    fn a_name_a_browser_reads_otherwise_is_not_the_cookie_it_resembles() {
        let mut h = HeaderMap::new();
        for v in [
            "cookie_consent\u{a0}=all; Path=/",
            " cookie_consent =none",
            "sid\u{85}=1",
        ] {
            h.append(
                SET_COOKIE,
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        let mut r = CookieReport::default();
        filter_set_cookies(
            &mut h,
            &policy(),
            CategorySet::NECESSARY,
            true,
            &mut r,
            |_, _| {},
        );
        // Only the one whose name is `cookie_consent` to a browser (spaces trimmed) stays.
        assert_eq!(set_cookies(&h), vec![" cookie_consent =none"]);
    }

    #[test]
    fn report_only_keeps_headers() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, "_fbp=1".parse().unwrap());
        let mut r = CookieReport::default();
        filter_set_cookies(
            &mut h,
            &policy(),
            CategorySet::NECESSARY,
            false,
            &mut r,
            |_, _| {},
        );
        assert_eq!(set_cookies(&h), vec!["_fbp=1"]);
        assert_eq!(r.stripped_set_cookies, vec!["_fbp"]);
    }

    #[test]
    fn expiry_covers_parent_domains() {
        assert_eq!(
            expiry_domains(Some("www.shop.example.com:8080")),
            vec![
                None,
                Some("www.shop.example.com"),
                Some("shop.example.com"),
                Some("example.com")
            ]
        );
        assert_eq!(expiry_domains(Some("127.0.0.1:8080")), vec![None]);
        assert_eq!(expiry_domains(Some("[::1]:8080")), vec![None]);
        assert_eq!(expiry_domains(Some("localhost")), vec![None]);
        assert_eq!(expiry_domains(None), vec![None]);
        let mut h = HeaderMap::new();
        expire_cookies(&mut h, &["_ga".to_string()], Some("example.com"));
        assert_eq!(
            set_cookies(&h),
            vec![
                "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
                "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=example.com"
            ]
        );
    }

    #[test]
    fn vary_merges() {
        let mut h = HeaderMap::new();
        h.append(VARY, "Accept-Encoding, cookie".parse().unwrap());
        add_vary(&mut h, &["Cookie", "DNT", "Sec-GPC"]);
        let all: Vec<_> = h
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, vec!["Accept-Encoding, cookie", "DNT, Sec-GPC"]);
        let mut h = HeaderMap::new();
        h.append(VARY, "*".parse().unwrap());
        add_vary(&mut h, &["Cookie"]);
        assert_eq!(h.get_all(VARY).iter().count(), 1);
    }
}
