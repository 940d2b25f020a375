//! What the site declares about browser signals: the GPC support resource
//! (`/.well-known/gpc.json`), the EFF DNT policy (`/.well-known/dnt-policy.txt`), and the W3C
//! Tracking Status `Tk` response header.

use crate::category::{Category, CategorySet};
use crate::consent::Consent;
use crate::policy::CompiledPolicy;
use crate::policy::sources::TkMode;
use bytes::Bytes;
use http::Method;

pub const GPC_PATH: &str = "/.well-known/gpc.json";
pub const DNT_POLICY_PATH: &str = "/.well-known/dnt-policy.txt";

/// The answer to a request for a declaration the policy makes: content type and body. `None`
/// when the request is for something else, or the policy does not declare it (the site may
/// serve its own).
pub fn well_known(
    policy: &CompiledPolicy,
    method: &Method,
    path: &str,
) -> Option<(&'static str, Bytes)> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match path {
        GPC_PATH => policy
            .gpc_json
            .as_ref()
            .map(|j| ("application/json", Bytes::from(j.clone()))),
        DNT_POLICY_PATH => policy
            .dnt_policy
            .as_ref()
            .map(|t| ("text/plain; charset=utf-8", t.clone())),
        _ => None,
    }
}

/// The categories that track a visitor.
const TRACKING: CategorySet = CategorySet::EMPTY
    .with(Category::Analytics)
    .with(Category::Marketing);

/// The `Tk` value for a response: `N` when neither analytics nor marketing is granted, `C`
/// when they are granted by the visitor's consent, `T` when they are granted by a default
/// (an opt-out policy). `None` when the header is not sent.
pub fn tracking_status(mode: TkMode, consent: &Consent, dnt_sent: bool) -> Option<&'static str> {
    let send = match mode {
        TkMode::Never => false,
        TkMode::Always => true,
        TkMode::Dnt => dnt_sent,
    };
    if !send {
        return None;
    }
    Some(if consent.granted.intersection(TRACKING).is_empty() {
        "N"
    } else if consent.source.is_consent() {
        "C"
    } else {
        "T"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::native::NATIVE;
    use crate::consent::{BrowserSignals, Source};

    fn consent(granted: CategorySet, source: Source) -> Consent {
        Consent {
            granted,
            source,
            read: Default::default(),
            signals: BrowserSignals::default(),
            region: None,
            opt_out_model: false,
        }
    }

    #[test]
    fn tracking_status_values() {
        let none = consent(CategorySet::NECESSARY, Source::Default);
        let prefs = consent(
            CategorySet::NECESSARY.with(Category::Preferences),
            Source::Consent(NATIVE),
        );
        let consented = consent(
            CategorySet::ALL,
            Source::Consent(crate::consent::formats::id("tcf").unwrap()),
        );
        let by_default = consent(CategorySet::ALL, Source::Default);
        let opted_out_of_nothing = consent(
            CategorySet::ALL,
            Source::OptOut(crate::consent::formats::id("gpp").unwrap()),
        );
        assert_eq!(
            tracking_status(TkMode::Dnt, &opted_out_of_nothing, true),
            Some("T")
        );
        assert_eq!(tracking_status(TkMode::Dnt, &none, true), Some("N"));
        assert_eq!(tracking_status(TkMode::Dnt, &prefs, true), Some("N"));
        assert_eq!(tracking_status(TkMode::Dnt, &consented, true), Some("C"));
        assert_eq!(tracking_status(TkMode::Dnt, &by_default, true), Some("T"));
        assert_eq!(tracking_status(TkMode::Dnt, &consented, false), None);
        assert_eq!(tracking_status(TkMode::Always, &none, false), Some("N"));
        assert_eq!(tracking_status(TkMode::Never, &consented, true), None);
    }

    #[test]
    fn declarations_are_served_only_when_made() {
        let p = crate::policy::compile(
            "p.yaml",
            "declarations:\n  gpc: { last_update: 2026-11-01 }\n",
        )
        .unwrap();
        let (ct, body) = well_known(&p, &Method::GET, GPC_PATH).unwrap();
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"gpc": true, "lastUpdate": "2026-11-01"})
        );
        assert!(well_known(&p, &Method::HEAD, GPC_PATH).is_some());
        assert!(well_known(&p, &Method::POST, GPC_PATH).is_none());
        assert!(well_known(&p, &Method::GET, DNT_POLICY_PATH).is_none());
        assert!(well_known(&p, &Method::GET, "/.well-known/gpc.json/x").is_none());
        let bare = crate::policy::compile("p.yaml", "").unwrap();
        assert!(well_known(&bare, &Method::GET, GPC_PATH).is_none());
    }
}
