//! Google Consent Mode v2: instead of neutralizing Google's tags, tell them the decision. A
//! `gtag('consent', 'default', …)` block at the start of `<head>` runs before any Google tag and
//! sets `ad_storage`, `ad_user_data`, `ad_personalization` (marketing) and `analytics_storage`
//! (analytics). A page whose Content-Security-Policy allows scripts by nonce gets the block with
//! its nonce.

use crate::category::{Category, CategorySet};
use http::HeaderMap;

fn state(granted: CategorySet, c: Category) -> &'static str {
    if granted.contains(c) {
        "granted"
    } else {
        "denied"
    }
}

/// The block for a decision. `nonce` must come from [`permit`] (it is inserted as it is).
pub fn block(granted: CategorySet, nonce: Option<&str>) -> String {
    let ads = state(granted, Category::Marketing);
    let analytics = state(granted, Category::Analytics);
    let nonce = nonce.map(|n| format!(" nonce=\"{n}\"")).unwrap_or_default();
    format!(
        "<script{nonce}>window.dataLayer=window.dataLayer||[];\
         function gtag(){{dataLayer.push(arguments);}}\
         gtag('consent','default',{{'ad_storage':'{ads}','ad_user_data':'{ads}',\
         'ad_personalization':'{ads}','analytics_storage':'{analytics}'}});</script>"
    )
}

/// Whether the response's Content-Security-Policy lets the block run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// It runs, carrying this nonce if one is needed.
    Runs(Option<String>),
    /// No attribute the block could carry satisfies every policy (inline scripts allowed only
    /// by hash, or by no source at all, or by nonces that differ between policies).
    Blocked,
}

/// What the response's policies (every `Content-Security-Policy` header, and every policy in
/// one header separated by commas) say about an inline `<script>`: each policy's governing
/// directive is the first of `script-src-elem`, `script-src`, `default-src` it has. A policy
/// without one allows it; one with nonces allows it with one of them (only base64 characters
/// are accepted, so the value is safe inside an attribute); one with hashes or
/// `'strict-dynamic'` and no usable nonce blocks it; otherwise `'unsafe-inline'` allows it.
/// `Content-Security-Policy-Report-Only` blocks nothing and is not read.
pub fn permit(headers: &HeaderMap) -> Permit {
    // The nonces every policy so far accepts; `None` while none has asked for one.
    let mut accepted: Option<Vec<String>> = None;
    // A header that is not text cannot be read: assume the worst.
    let Some(policies) = super::csp::policies(headers) else {
        return Permit::Blocked;
    };
    for policy in policies {
        match policy_permit(policy) {
            PolicyPermit::Allows => {}
            PolicyPermit::Blocks => return Permit::Blocked,
            PolicyPermit::Nonces(nonces) => {
                let common: Vec<String> = match accepted.take() {
                    None => nonces,
                    Some(before) => before.into_iter().filter(|n| nonces.contains(n)).collect(),
                };
                if common.is_empty() {
                    return Permit::Blocked;
                }
                accepted = Some(common);
            }
        }
    }
    Permit::Runs(accepted.and_then(|n| n.into_iter().next()))
}

enum PolicyPermit {
    Allows,
    Blocks,
    Nonces(Vec<String>),
}

fn policy_permit(policy: &str) -> PolicyPermit {
    let Some(sources) =
        super::csp::governing(policy, &["script-src-elem", "script-src", "default-src"])
    else {
        return PolicyPermit::Allows;
    };
    let mut nonces = Vec::new();
    let (mut hashes, mut strict_dynamic, mut unsafe_inline, mut bad_nonce) =
        (false, false, false, false);
    for token in sources.split_ascii_whitespace() {
        let lower = token.to_ascii_lowercase();
        if let Some(value) = super::csp::nonce(token) {
            match value {
                Some(v) => nonces.push(v.to_string()),
                None => bad_nonce = true,
            }
        } else if ["'sha256-", "'sha384-", "'sha512-"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            hashes = true;
        } else if lower == "'strict-dynamic'" {
            strict_dynamic = true;
        } else if lower == "'unsafe-inline'" {
            unsafe_inline = true;
        }
    }
    if !nonces.is_empty() {
        PolicyPermit::Nonces(nonces)
    } else if hashes || strict_dynamic || bad_nonce || !unsafe_inline {
        PolicyPermit::Blocks
    } else {
        PolicyPermit::Allows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_SECURITY_POLICY;

    fn csp(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_SECURITY_POLICY, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_block_reflects_the_decision() {
        let b = block(CategorySet::NECESSARY.with(Category::Analytics), None);
        assert!(b.starts_with("<script>"), "{b}");
        assert!(b.contains("'analytics_storage':'granted'"), "{b}");
        for k in ["ad_storage", "ad_user_data", "ad_personalization"] {
            assert!(b.contains(&format!("'{k}':'denied'")), "{k}: {b}");
        }
        let b = block(CategorySet::ALL, Some("r4nd0m"));
        assert!(b.starts_with("<script nonce=\"r4nd0m\">"), "{b}");
        assert!(!b.contains("denied"), "{b}");
    }

    #[test]
    fn permits_from_the_governing_directive() {
        let p = |v: &[&str]| permit(&csp(v));
        let runs = |n: Option<&str>| Permit::Runs(n.map(str::to_string));
        assert_eq!(p(&[]), runs(None));
        assert_eq!(p(&["img-src *; style-src 'self'"]), runs(None));
        assert_eq!(
            p(&["script-src 'self' 'nonce-abc123=='"]),
            runs(Some("abc123=="))
        );
        assert_eq!(
            p(&["default-src 'self'; Script-Src 'strict-dynamic' 'NONCE-x_Y-z'"]),
            runs(Some("x_Y-z"))
        );
        // script-src-elem governs an inline script over script-src.
        assert_eq!(
            p(&["script-src 'nonce-a'; script-src-elem 'nonce-b'"]),
            runs(Some("b"))
        );
        assert_eq!(p(&["default-src 'nonce-d'"]), runs(Some("d")));
        assert_eq!(p(&["script-src 'self' 'unsafe-inline'"]), runs(None));
        // Inline scripts not allowed, or only by hash: the block would not run.
        assert_eq!(p(&["script-src 'self'"]), Permit::Blocked);
        assert_eq!(p(&["default-src 'self'"]), Permit::Blocked);
        assert_eq!(
            p(&["script-src 'unsafe-inline' 'sha256-AAAA'"]),
            Permit::Blocked
        );
        assert_eq!(
            p(&["script-src 'unsafe-inline' 'strict-dynamic'"]),
            Permit::Blocked
        );
        // A nonce in another directive does not count.
        assert_eq!(
            p(&["style-src 'nonce-s'; script-src 'self'"]),
            Permit::Blocked
        );
        // Characters that could break out of the attribute are refused.
        assert_eq!(p(&["script-src 'nonce-a\"b'"]), Permit::Blocked);
        assert_eq!(p(&["script-src 'nonce-'"]), Permit::Blocked);
        // Every policy must allow it, with one nonce for all.
        assert_eq!(
            p(&["img-src *", "script-src 'nonce-two'"]),
            runs(Some("two"))
        );
        assert_eq!(
            p(&["img-src *, script-src 'nonce-three'"]),
            runs(Some("three"))
        );
        assert_eq!(
            p(&["script-src 'nonce-a' 'nonce-b'", "script-src 'nonce-b'"]),
            runs(Some("b"))
        );
        assert_eq!(
            p(&["script-src 'nonce-b'", "script-src 'nonce-a' 'nonce-b'"]),
            runs(Some("b"))
        );
        assert_eq!(
            p(&["script-src 'nonce-a'", "script-src 'nonce-c'"]),
            Permit::Blocked
        );
        assert_eq!(
            p(&["script-src 'nonce-a'", "script-src 'self'"]),
            Permit::Blocked
        );
    }
}
