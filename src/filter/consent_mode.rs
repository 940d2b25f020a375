//! Google Consent Mode v2: instead of neutralizing Google's tags, tell them the decision. A
//! `gtag('consent', 'default', …)` block at the start of `<head>` runs before any Google tag and
//! sets `ad_storage`, `ad_user_data`, `ad_personalization` (marketing) and `analytics_storage`
//! (analytics). A page whose Content-Security-Policy allows scripts by nonce gets the block with
//! its nonce.

use crate::category::{Category, CategorySet};
use http::HeaderMap;
use http::header::CONTENT_SECURITY_POLICY;

fn state(granted: CategorySet, c: Category) -> &'static str {
    if granted.contains(c) {
        "granted"
    } else {
        "denied"
    }
}

/// The block for a decision. `nonce` must come from [`csp_nonce`] (it is inserted as it is).
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

/// The nonce that the response's Content-Security-Policy accepts for scripts, if it uses one:
/// from the first of `script-src-elem`, `script-src`, `default-src` that the policy has (the
/// directive that governs an inline `<script>`). Only base64 characters are accepted, so the
/// value is safe inside an attribute.
pub fn csp_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        // One header may carry several policies separated by commas.
        .flat_map(|v| v.split(','))
        .find_map(policy_nonce)
}

fn policy_nonce(policy: &str) -> Option<String> {
    let directives: Vec<(String, &str)> = policy
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_ascii_lowercase(), value))
        })
        .collect();
    let governing = ["script-src-elem", "script-src", "default-src"]
        .iter()
        .find_map(|want| directives.iter().find(|(n, _)| n == want))?;
    governing.1.split_ascii_whitespace().find_map(|token| {
        let inner = token.strip_prefix("'")?.strip_suffix("'")?;
        let (kind, value) = inner.split_once('-')?;
        (kind.eq_ignore_ascii_case("nonce")
            && !value.is_empty()
            && value.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
            }))
        .then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn nonce_from_the_governing_directive() {
        let n = |v: &[&str]| csp_nonce(&csp(v));
        assert_eq!(
            n(&["script-src 'self' 'nonce-abc123=='"]),
            Some("abc123==".into())
        );
        assert_eq!(
            n(&["default-src 'self'; Script-Src 'strict-dynamic' 'NONCE-x_Y-z'"]),
            Some("x_Y-z".into())
        );
        // script-src-elem governs an inline script over script-src.
        assert_eq!(
            n(&["script-src 'nonce-a'; script-src-elem 'nonce-b'"]),
            Some("b".into())
        );
        assert_eq!(n(&["default-src 'nonce-d'"]), Some("d".into()));
        // A nonce in another directive does not count.
        assert_eq!(n(&["style-src 'nonce-s'; script-src 'self'"]), None);
        assert_eq!(n(&["img-src *"]), None);
        assert_eq!(n(&[]), None);
        // Characters that could break out of the attribute are refused.
        assert_eq!(n(&["script-src 'nonce-a\"b'"]), None);
        assert_eq!(n(&["script-src 'nonce-'"]), None);
        // A second policy (second header, or after a comma) is searched too.
        assert_eq!(
            n(&["img-src *", "script-src 'nonce-two'"]),
            Some("two".into())
        );
        assert_eq!(
            n(&["img-src *, script-src 'nonce-three'"]),
            Some("three".into())
        );
    }
}
