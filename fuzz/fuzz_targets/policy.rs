//! `policy::compile` on arbitrary text: an error is fine, a panic is not. A policy that
//! compiles is then used a little (a summary, lookups, a decision) to reach the compiled
//! matchers.
//!
//! `declarations.dnt_policy` names a file that compiling reads. An input naming anything but a
//! regular file with a size (a device, a FIFO, a directory, or a `/proc` file, which reports
//! none) is skipped, so that the fuzzer does not read `/dev/zero` or wait on a FIFO.

#![no_main]

use consent_proxy::category::Category;
use consent_proxy::consent;
use consent_proxy::located::read_yaml;
use consent_proxy::policy::{self, model::PolicyFile};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

/// Whether compiling `text` would read a file that is not a plain file with a known size.
fn names_a_special_file(text: &str) -> bool {
    // The key can only be written without its letters in a double-quoted escape.
    if !text.contains("dnt_policy") && !text.contains('\\') {
        return false;
    }
    let Ok(file) = read_yaml::<PolicyFile>("fuzz.yaml", text) else {
        return false;
    };
    let Some(path) = file.declarations.dnt_policy else {
        return false;
    };
    match std::fs::metadata(&path) {
        Ok(meta) => !meta.is_file() || meta.len() == 0,
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if names_a_special_file(&text) {
        return;
    }
    let Ok(p) = policy::compile("fuzz.yaml", &text) else {
        return;
    };
    assert!(p.consent.default_grant.contains(Category::Necessary));
    let _ = p.summary();
    for name in ["_ga", "sessionid", "", "cookie_consent", "_gat_UA-1", "a=b"] {
        let verdict = p.classify(name);
        let _ = p.requires(verdict);
    }
    for path in [
        "/",
        "/collect",
        "/g/collect?x",
        "//a/../tr",
        "/%63ollect",
        "",
    ] {
        let _ = p.endpoint(path);
    }
    let decision = consent::decide(&HeaderMap::new(), &p.consent, None, 1_795_996_800);
    assert!(decision.granted.contains(Category::Necessary));
    let tags = p.tags.clone();
    let none = consent_proxy::category::CategorySet::NECESSARY;
    for url in [
        "https://www.googletagmanager.com/gtag/js?id=G-1",
        "/matomo.js",
        "",
    ] {
        let _ = tags.match_url(url, none, false);
        let _ = tags.match_host(url, none, false);
    }
    let _ = tags.match_inline("gtag('config'); fbq('init')", none, false);
});
