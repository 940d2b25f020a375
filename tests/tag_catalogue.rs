//! Golden tests for the built-in tag catalogue: each vendor's tags as sites embed them
//! (`tests/fixtures/tags/<vendor>.html`, from the vendors' installation instructions) go through
//! the rewriter with the built-in policy, once per action, and must give
//! `<vendor>.neutralize.html` and `<vendor>.remove.html` byte for byte. Every fixture is also
//! fed split at every byte offset, so that a signature or tag cut between two network chunks
//! still matches.
//!
//! `BLESS=1 cargo test --test tag_catalogue` writes the expected files from the current output;
//! read the diff before committing it.

use consent_proxy::category::CategorySet;
use consent_proxy::filter::html::{Kinds, Params, TagReport, document_encoding, rewriter};
use consent_proxy::policy;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const NONE: CategorySet = CategorySet::NECESSARY;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tags");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".html") && name.matches('.').count() == 1
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 15, "fixtures missing in {}", dir.display());
    inputs
}

fn catalogue(action: &str) -> Arc<consent_proxy::filter::html::TagRules> {
    let text = format!("extends: builtin\ntag_action: {action}\n");
    policy::compile("test.yaml", &text).unwrap().tags
}

/// Rewrites `html` delivered in pieces cut at `cuts`.
fn rewrite(
    rules: &Arc<consent_proxy::filter::html::TagRules>,
    html: &[u8],
    cuts: &[usize],
) -> (String, TagReport) {
    let streamed = rewrite_kinds(rules, html, cuts, Kinds::ALL);
    // The proxy reads a whole page with only the kinds of tag its bytes hold: the same output.
    let whole = rewrite_kinds(rules, html, cuts, Kinds::of(html));
    assert_eq!(
        streamed, whole,
        "selecting only the kinds present changed the rewrite"
    );
    streamed
}

fn rewrite_kinds(
    rules: &Arc<consent_proxy::filter::html::TagRules>,
    html: &[u8],
    cuts: &[usize],
    kinds: Kinds,
) -> (String, TagReport) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let (mut rw, report) = rewriter(
        Params {
            rules: rules.clone(),
            granted: NONE,
            enforce: true,
            max_memory: 16 << 20,
            encoding: document_encoding(None).unwrap(),
            consent_mode: None,
            kinds,
            body_start: None,
        },
        move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
    );
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&html.len())) {
        rw.write(&html[start..cut]).unwrap();
        start = cut;
    }
    rw.end().unwrap();
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    (text, report.report())
}

fn expected_path(input: &Path, action: &str) -> PathBuf {
    input.with_extension(format!("{action}.html"))
}

#[test]
fn every_vendor_matches_its_golden_output_for_each_action() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for action in ["neutralize", "remove"] {
        let rules = catalogue(action);
        for input in fixtures() {
            let html = std::fs::read(&input).unwrap();
            let (out, report) = rewrite(&rules, &html, &[]);
            let want_path = expected_path(&input, action);
            if bless {
                std::fs::write(&want_path, &out).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&want_path)
                .unwrap_or_else(|e| panic!("{}: {e}", want_path.display()));
            if out != want {
                failures.push(format!(
                    "{}: got\n{out}\n--- want\n{want}",
                    want_path.display()
                ));
            }
            assert!(
                report.neutralized > 0 && !report.vendors.is_empty(),
                "{}: nothing matched",
                input.display()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What must not be in a rewritten page: a live tracker of the catalogue.
fn live_trackers(out: &str) -> Vec<String> {
    let hosts = [
        "googletagmanager.com",
        "google-analytics.com",
        "googleadservices.com",
        "doubleclick.net",
        "facebook.net",
        "facebook.com/tr",
        "hotjar.com",
        "clarity.ms",
        "licdn.com",
        "ads.linkedin.com",
        "tiktok.com",
        "hs-scripts.com",
        "bat.bing.com",
        "mc.yandex.ru",
        "segment.com",
        "mxpnl.com",
        "matomo.",
        "piwik.",
    ];
    let mut live = Vec::new();
    for attr in [" src=\"", " src='", " href=\""] {
        for (i, _) in out.match_indices(attr) {
            let value = &out[i + attr.len()..];
            let value = &value[..value.find(['"', '\'']).unwrap_or(value.len())];
            if hosts.iter().any(|h| value.contains(h)) {
                live.push(value.to_string());
            }
        }
    }
    live
}

#[test]
fn no_tracker_url_survives_in_a_live_attribute() {
    for action in ["neutralize", "remove"] {
        let rules = catalogue(action);
        for input in fixtures() {
            let html = std::fs::read(&input).unwrap();
            let before = live_trackers(&String::from_utf8_lossy(&html));
            assert!(
                !before.is_empty(),
                "{}: no tracker to test",
                input.display()
            );
            let (out, _) = rewrite(&rules, &html, &[]);
            assert_eq!(
                live_trackers(&out),
                Vec::<String>::new(),
                "{} ({action})",
                input.display()
            );
        }
    }
}

#[test]
fn every_fixture_split_at_every_byte_gives_the_same_output() {
    let rules = catalogue("neutralize");
    for input in fixtures() {
        let html = std::fs::read(&input).unwrap();
        let (want, want_report) = rewrite(&rules, &html, &[]);
        for cut in 1..html.len() {
            let (got, report) = rewrite(&rules, &html, &[cut]);
            assert_eq!(got, want, "{} split at byte {cut}", input.display());
            assert_eq!(report, want_report, "{} split at {cut}", input.display());
        }
    }
}
