//! Judging one cookie name against the consent decision; reading request cookies is
//! [`crate::cookie_header`]'s.

use crate::category::CategorySet;
pub use crate::cookie_header::{Pair, browser_name, request_cookies, request_pairs};
use crate::policy::{CompiledPolicy, Verdict};

/// How one cookie fares under a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub allowed: bool,
    /// No policy rule names it.
    pub unknown: bool,
    /// A classified cookie of a denied category (as opposed to an unknown one).
    pub known_denied: bool,
}

/// Judges a cookie name: it passes when every category it requires is granted.
pub fn judge(policy: &CompiledPolicy, granted: CategorySet, name: &str) -> Judgement {
    let verdict = policy.classify(name);
    let required = policy.requires(verdict);
    let allowed = required.difference(granted).is_empty();
    Judgement {
        allowed,
        unknown: verdict == Verdict::Unknown,
        known_denied: !allowed && matches!(verdict, Verdict::Known(_)),
    }
}

#[cfg(test)]
mod browser_name_tests {
    use super::*;

    #[test]
    fn a_name_trimmed_of_other_white_space_is_not_the_same_cookie() {
        let h = crate::test_headers(&[("cookie", "cookie_consent\u{a0}=all; a=1;\tb = 2")]);
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(pairs, vec![None, Some(("a", "1")), Some(("b", "2"))]);
        assert_eq!(browser_name(" x =1; Path=/"), "x");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_across_headers_with_bad_ones() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; b=\"x y\"; ;novalue; =v".parse().unwrap(),
        );
        h.append(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(b"c=\xff").unwrap(),
        );
        h.append(http::header::COOKIE, "d=4".parse().unwrap());
        let pairs: Vec<_> = request_pairs(&h).collect();
        assert_eq!(
            pairs,
            vec![
                Some(("a", "1")),
                Some(("b", "\"x y\"")),
                None,
                None,
                None,
                Some(("d", "4"))
            ]
        );
    }
}
