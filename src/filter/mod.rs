//! What the proxy does about the decision: block tracking endpoints, filter cookies both ways,
//! set forwarding headers. Pure functions over headers.

pub mod banner;
pub mod body;
pub mod consent_mode;
pub mod cookies;
pub mod csp;
pub mod declarations;
pub mod forward;
pub mod framing;
pub mod html;
pub mod memo;
pub use crate::url_path as path;
pub mod request;
pub mod response;
pub mod underscores;
pub use crate::withheld;

/// The tag catalogue's matching lives with the policy; these paths stay for existing users.
pub use crate::policy::{tags, text_urls};

use serde::Serialize;

/// The longest cookie name the decision log records; longer names are cut.
const MAX_LOGGED_NAME: usize = 128;

/// Cookie names that the filters acted on, for the decision log. Names only, never values.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CookieReport {
    pub stripped_set_cookies: Vec<String>,
    pub stripped_request_cookies: Vec<String>,
    pub expired_cookies: Vec<String>,
    pub unknown_cookies: Vec<String>,
}

/// Appends a name to a list unless it is already there.
pub(crate) fn push_name(list: &mut Vec<String>, name: &str) {
    let name = truncate(name);
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

/// An RFC 9110 token: what a cookie name may be (RFC 6265, section 4.1.1).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn truncate(name: &str) -> &str {
    if name.len() <= MAX_LOGGED_NAME {
        return name;
    }
    let mut end = MAX_LOGGED_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod bad_input_tests {
    //! Random bytes through every header-facing function: no panic, and nothing unparseable
    //! survives in enforce mode.
    use super::*;
    use crate::category::CategorySet;
    use http::header::{COOKIE, SET_COOKIE};
    use http::{HeaderMap, HeaderValue};

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self) -> Vec<u8> {
            const ALPHABET: &[u8] = b"_ga=;, %\"\\/.:-aZ09\t\x80\xff\xc3(){}[]*?<>@";
            let len = (self.next() % 40) as usize;
            (0..len)
                .map(|_| {
                    if self.next().is_multiple_of(4) {
                        (self.next() % 256) as u8
                    } else {
                        ALPHABET[(self.next() % ALPHABET.len() as u64) as usize]
                    }
                })
                .collect()
        }
    }

    #[test]
    fn random_headers_never_panic_and_fail_closed() {
        let policy = crate::policy::builtin().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let raw = rng.bytes();
            let Ok(value) = HeaderValue::from_bytes(&raw) else {
                continue;
            };
            let text = String::from_utf8_lossy(&raw);
            let _ = crate::consent::native::parse_value(&text);
            let _ = path::canonical(&text);
            let _ = path::without_params(&text);
            let _ = policy.endpoint(&text);

            let mut h = HeaderMap::new();
            h.append(COOKIE, value.clone());
            h.append("sec-gpc", value.clone());
            let consent = crate::consent::decide(&h, &policy.consent, None, 0);
            let mut report = CookieReport::default();
            request::filter_cookie_header(&mut h, &policy, consent.granted, true, &mut report);
            // Whatever is forwarded parses, and holds only cookies that may pass.
            for (name, _) in cookies::request_cookies(&h) {
                assert!(
                    cookies::judge(&policy, consent.granted, name).allowed,
                    "{name}"
                );
            }
            assert!(cookies::request_pairs(&h).all(|p| p.is_some()));

            let mut h = HeaderMap::new();
            h.append(SET_COOKIE, value);
            let mut report = CookieReport::default();
            response::filter_set_cookies(
                &mut h,
                &policy,
                CategorySet::NECESSARY,
                true,
                &mut report,
                |_, _| {},
            );
            for v in h.get_all(SET_COOKIE) {
                let c = cookie::Cookie::parse(std::str::from_utf8(v.as_bytes()).unwrap()).unwrap();
                assert!(cookies::judge(&policy, CategorySet::NECESSARY, c.name()).allowed);
            }
        }
    }
}
