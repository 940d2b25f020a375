use super::srcdoc::MAX_SRCDOC_DEPTH;
use super::urls::srcset_urls;
use super::*;
use crate::category::Category::*;

fn rules(action: TagAction) -> Arc<TagRules> {
    let u = |h, p, c, v| UrlRule::new(h, p, c, v).unwrap();
    let i = |s: &str, c, v: &str| InlineRule {
        signature: s.into(),
        category: c,
        vendor: Arc::from(v),
        action: None,
        consent_mode: false,
    };
    Arc::new(
        TagRules::new(
            vec![
                u(
                    "googletagmanager.com",
                    Some("/gtag/js"),
                    Analytics,
                    "Google Analytics",
                ),
                u(
                    "googletagmanager.com",
                    Some("/ns.html"),
                    Analytics,
                    "Google Tag Manager",
                ),
                u(
                    "connect.facebook.net",
                    Some("/*/fbevents.js"),
                    Marketing,
                    "Meta Pixel",
                ),
                u("facebook.com", Some("/tr"), Marketing, "Meta Pixel"),
                u("*", Some("*/matomo.js"), Analytics, "Matomo"),
            ],
            vec![
                i("gtag(", Analytics, "Google Analytics"),
                i("fbq(", Marketing, "Meta Pixel"),
                i("_paq.push", Analytics, "Matomo"),
            ],
            action,
        )
        .unwrap(),
    )
}

/// Rewrites `html` fed in chunks cut at `cuts`, stopping at the tags `kinds` lists.
fn rewrite_kinds(
    html: &str,
    granted: CategorySet,
    enforce: bool,
    action: TagAction,
    cuts: &[usize],
    kinds: Kinds,
) -> (String, TagReport) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let (mut rw, report) = rewriter(
        Params {
            rules: rules(action),
            granted,
            enforce,
            max_memory: 8 << 20,
            encoding: document_encoding(None).unwrap(),
            consent_mode: None,
            kinds,
            body_start: None,
        },
        move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
    );
    let bytes = html.as_bytes();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        rw.write(&bytes[start..cut]).unwrap();
        start = cut;
    }
    rw.end().unwrap();
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    (text, report.report())
}

/// Rewrites `html` fed in chunks cut at `cuts`; the same once more with only the kinds of tag
/// its bytes hold selected, which must come out the same.
fn rewrite_split(
    html: &str,
    granted: CategorySet,
    enforce: bool,
    action: TagAction,
    cuts: &[usize],
) -> (String, TagReport) {
    let all = rewrite_kinds(html, granted, enforce, action, cuts, Kinds::ALL);
    let present = Kinds::of(html.as_bytes());
    let scanned = rewrite_kinds(html, granted, enforce, action, cuts, present);
    assert_eq!(
        all, scanned,
        "selecting only {present:?} changed the rewrite"
    );
    all
}

fn rewrite(html: &str, granted: CategorySet, action: TagAction) -> (String, TagReport) {
    rewrite_split(html, granted, true, action, &[])
}

const NONE: CategorySet = CategorySet::NECESSARY;
const PAGE: &str = r#"<html><head><script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script><script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());</script><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><img height="1" src="https://www.facebook.com/tr?id=1&ev=PageView"></noscript><link rel="preconnect" href="https://www.googletagmanager.com"><link rel="stylesheet" href="/s.css"></body></html>"#;

#[test]
fn golden_neutralize() {
    let (out, report) = rewrite(PAGE, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<html><head><script async type="text/plain" data-category="analytics" data-src="https://www.googletagmanager.com/gtag/js?id=G-1"></script><script type="text/plain" data-category="analytics">window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());</script><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><img height="1" data-category="marketing" data-src="https://www.facebook.com/tr?id=1&ev=PageView"></noscript><link rel="preconnect" data-category="analytics" data-href="https://www.googletagmanager.com"><link rel="stylesheet" href="/s.css"></body></html>"#
    );
    assert_eq!(report.neutralized, 4);
    assert_eq!(report.vendors, vec!["Google Analytics", "Meta Pixel"]);
}

#[test]
fn golden_remove() {
    let (out, report) = rewrite(PAGE, NONE, TagAction::Remove);
    assert_eq!(
        out,
        r#"<html><head><!----><!----><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><span></span></noscript><!----><link rel="stylesheet" href="/s.css"></body></html>"#
    );
    assert_eq!(report.neutralized, 4);
}

#[test]
fn granted_categories_are_left_alone() {
    let (out, report) = rewrite(PAGE, CategorySet::ALL, TagAction::Neutralize);
    assert_eq!(out, PAGE);
    assert_eq!(report.neutralized, 0);
    // Analytics granted: only the Meta pixel goes.
    let (_, report) = rewrite(PAGE, NONE.with(Analytics), TagAction::Neutralize);
    assert_eq!(report.vendors, vec!["Meta Pixel"]);
}

#[test]
fn report_only_counts_and_changes_nothing() {
    let (out, report) = rewrite_split(PAGE, NONE, false, TagAction::Remove, &[]);
    assert_eq!(out, PAGE);
    assert_eq!(report.neutralized, 4);
}

#[test]
fn signatures_match_only_where_an_identifier_starts() {
    let sig = |s: &str| InlineRule {
        signature: s.into(),
        category: Analytics,
        vendor: Arc::from("v"),
        action: None,
        consent_mode: false,
    };
    let rules = TagRules::new(
        vec![],
        vec![sig("ym("), sig(".yandex.ru/")],
        TagAction::Neutralize,
    )
    .unwrap();
    for hit in [
        "ym(1, 'init')",
        "window.ym(1)",
        "x;ym(2)",
        "\n  ym(3)",
        "anonym(x); ym(4)",
        "w['mc.yandex.ru/x']",
        // After a non-ASCII character (see `is_identifier`).
        "t\u{e9}ym(1)",
    ] {
        assert!(rules.match_inline(hit, NONE, false).is_some(), "{hit}");
    }
    for miss in ["anonym(x)", "_ym(1)", "$ym(1)", "Ym(1)"] {
        assert!(rules.match_inline(miss, NONE, false).is_none(), "{miss}");
    }
}

#[test]
fn the_most_restrictive_denied_category_labels_an_inline_script() {
    let sig = |s: &str, category, vendor: &str| InlineRule {
        signature: s.into(),
        category,
        vendor: Arc::from(vendor),
        action: None,
        consent_mode: false,
    };
    let rules = TagRules::new(
        vec![],
        vec![
            sig("gtag(", Analytics, "GA"),
            sig("'AW-", Marketing, "Ads"),
            sig("_paq.push", Analytics, "Matomo"),
        ],
        TagAction::Neutralize,
    )
    .unwrap();
    let text = "gtag('js'); _paq.push(1); gtag('config', 'AW-1');";
    let vendor = |granted| rules.match_inline(text, granted, false).map(|r| &*r.vendor);
    assert_eq!(vendor(NONE), Some("Ads"));
    assert_eq!(vendor(NONE.with(Marketing)), Some("GA"));
    assert_eq!(vendor(NONE.with(Analytics)), Some("Ads"));
    assert_eq!(vendor(NONE.with(Analytics).with(Marketing)), None);
}

#[test]
fn every_byte_split_gives_the_same_output() {
    let (want, want_report) = rewrite(PAGE, NONE, TagAction::Neutralize);
    for cut in 0..=PAGE.len() {
        let (got, report) = rewrite_split(PAGE, NONE, true, TagAction::Neutralize, &[cut]);
        assert_eq!(got, want, "split at {cut}");
        assert_eq!(report, want_report, "split at {cut}");
    }
}

const META: &str = r#"<script>!function(f,b,e,v){}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');</script><script src="https://connect.facebook.net/en_US/fbevents.js"></script><noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1" height="0"></iframe></noscript><script type="module">var _paq=[];_paq.push(['trackPageView']);</script><script src="/js/matomo.js" defer></script><p>kept</p>"#;

#[test]
fn golden_meta_matomo_gtm_noscript() {
    let (out, report) = rewrite(META, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<script type="text/plain" data-category="marketing">!function(f,b,e,v){}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');</script><script type="text/plain" data-category="marketing" data-src="https://connect.facebook.net/en_US/fbevents.js"></script><noscript><iframe height="0" data-category="analytics" data-src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe></noscript><script type="text/plain" data-category="analytics" data-type="module">var _paq=[];_paq.push(['trackPageView']);</script><script defer type="text/plain" data-category="analytics" data-src="/js/matomo.js"></script><p>kept</p>"#
    );
    assert_eq!(report.neutralized, 5);
    assert_eq!(
        report.vendors,
        vec!["Meta Pixel", "Google Tag Manager", "Matomo"]
    );
    let (out, _) = rewrite(META, NONE, TagAction::Remove);
    assert_eq!(
        out,
        "<!----><!----><noscript><!----></noscript><!----><!----><p>kept</p>"
    );
    for cut in 0..=META.len() {
        let (got, _) = rewrite_split(META, NONE, true, TagAction::Neutralize, &[cut]);
        assert_eq!(
            got,
            rewrite(META, NONE, TagAction::Neutralize).0,
            "split at {cut}"
        );
    }
}

#[test]
fn documents_in_other_charsets_keep_their_bytes() {
    let input: &[u8] = b"<p>\x82\xa0\x82\xa2</p><script>var s='\x82\xa0';fbq('init','1');</script>";
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let enc = document_encoding(charset_of("text/html; charset=Shift_JIS")).unwrap();
    assert!(!enc.1, "a header charset is not overridden by <meta>");
    let (mut rw, report) = rewriter(
        Params {
            rules: rules(TagAction::Neutralize),
            granted: NONE,
            enforce: true,
            max_memory: 8 << 20,
            encoding: enc,
            consent_mode: None,
            kinds: Kinds::ALL,
            body_start: None,
        },
        move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
    );
    rw.write(input).unwrap();
    rw.end().unwrap();
    let got = out.lock().unwrap().clone();
    let want: &[u8] = b"<p>\x82\xa0\x82\xa2</p><script type=\"text/plain\" data-category=\"marketing\">var s='\x82\xa0';fbq('init','1');</script>";
    assert_eq!(got, want);
    assert_eq!(report.report().neutralized, 1);
    assert!(document_encoding(Some("utf-16")).is_none());
    assert!(document_encoding(Some("no-such-charset")).is_some());
    assert_eq!(
        charset_of("text/html;Charset=\"ISO-8859-1\""),
        Some("ISO-8859-1")
    );
}

#[test]
fn a_construct_over_the_memory_limit_stops_the_rewriter() {
    // One start tag larger than the limit: the rewriter cannot hold it, so it fails, and
    // nothing after that point is written (the caller ends the response in an error).
    let huge = format!(
        r#"<p>before</p><script data-x="{}" src="https://www.googletagmanager.com/gtag/js"></script>"#,
        "a".repeat(256 * 1024)
    );
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let (mut rw, _) = rewriter(
        Params {
            rules: rules(TagAction::Neutralize),
            granted: NONE,
            enforce: true,
            max_memory: 64 * 1024,
            encoding: document_encoding(None).unwrap(),
            consent_mode: None,
            kinds: Kinds::ALL,
            body_start: None,
        },
        move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
    );
    let failed = huge
        .as_bytes()
        .chunks(1024)
        .map(|c| rw.write(c))
        .any(|r| r.is_err());
    assert!(failed, "the memory limit was not enforced");
    let written = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    assert!(!written.contains("googletagmanager"), "{written}");
}

#[test]
fn held_script_attributes_round_trip() {
    let html = r#"<script data-x="a&amp;b &quot;q&quot;" nonce='n"1'>console.log(1)</script>"#;
    let (out, _) = rewrite(html, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<script data-x="a&amp;b &quot;q&quot;" nonce="n&quot;1">console.log(1)</script>"#
    );
}

#[test]
fn urls_and_hosts() {
    let r = rules(TagAction::Neutralize);
    let m = |u: &str| r.match_url(u, NONE, false).map(|r| r.vendor.to_string());
    assert_eq!(
        m("https://connect.facebook.net/en_US/fbevents.js").as_deref(),
        Some("Meta Pixel")
    );
    assert_eq!(
        m("//www.googletagmanager.com/gtag/js?id=G").as_deref(),
        Some("Google Analytics")
    );
    assert_eq!(
        m("https://cdn.example.com/js/matomo.js").as_deref(),
        Some("Matomo")
    );
    assert_eq!(m("/matomo.js").as_deref(), Some("Matomo"));
    assert_eq!(m("https://notgoogletagmanager.com/gtag/js"), None);
    assert_eq!(
        m("https://www.googletagmanager.com.evil.example/gtag/js"),
        None
    );
    assert_eq!(
        m("https://www.GoogleTagManager.com:443/gtag/js").as_deref(),
        Some("Google Analytics")
    );
    assert!(
        r.match_host("https://static.example.com", NONE, false)
            .is_none()
    );
}

#[test]
fn oversized_inline_script_fails_closed() {
    let big = format!(
        "<script>{}</script><p>after</p>",
        "x".repeat(MAX_INLINE_SCRIPT + 10)
    );
    let (out, report) = rewrite(&big, NONE, TagAction::Neutralize);
    assert!(
        out.starts_with("<script type=\"text/plain\" data-category=\"marketing\"></script>"),
        "{}",
        &out[..80]
    );
    assert!(out.ends_with("<p>after</p>"));
    assert_eq!(report.vendors, vec!["unreadable inline script"]);
}

#[test]
fn scripts_that_run_nothing_are_left_as_they_are() {
    let big_json = format!(
        r#"<script type="application/json" id="__NEXT_DATA__">{{"x":"{}","u":"https://connect.facebook.net/en_US/fbevents.js"}}</script>"#,
        "x".repeat(MAX_INLINE_SCRIPT + 10)
    );
    for page in [
        r#"<script type="application/ld+json">{"sameAs":["https://www.facebook.com/x"],"a":"fbq('init')"}</script>"#.to_string(),
        r#"<script type=" Text/Plain " data-category="marketing">fbq('init', '1');</script>"#.to_string(),
        r#"<script type="text/plain" src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#.to_string(),
        r#"<script type="importmap">{"imports":{"a":"https://connect.facebook.net/en_US/fbevents.js"}}</script>"#.to_string(),
        big_json,
    ] {
        let (out, report) = rewrite(&page, NONE, TagAction::Neutralize);
        assert_eq!(out, page);
        assert_eq!(report.neutralized, 0, "{}", &page[..60]);
    }
    // A script of any other type is judged.
    let (out, _) = rewrite(
        "<script type=\"text/x-template\">fbq('init')</script>",
        NONE,
        TagAction::Neutralize,
    );
    assert!(out.contains("data-category=\"marketing\""), "{out}");
}

/// Rules where the Google tag honours Consent Mode and the Meta Pixel does not.
fn consent_mode_rules() -> Arc<TagRules> {
    let mut gtag = UrlRule::new("googletagmanager.com", Some("/gtag/js"), Analytics, "GA").unwrap();
    gtag.consent_mode = true;
    let sig = |s: &str, category, consent_mode| InlineRule {
        signature: s.into(),
        category,
        vendor: Arc::from("v"),
        action: None,
        consent_mode,
    };
    Arc::new(
        TagRules::new(
            vec![gtag],
            vec![sig("gtag(", Analytics, true), sig("fbq(", Marketing, false)],
            TagAction::Neutralize,
        )
        .unwrap(),
    )
}

fn rewrite_cm(html: &str, block: Option<&str>, enforce: bool, cut: usize) -> String {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let (mut rw, _) = rewriter(
        Params {
            rules: consent_mode_rules(),
            granted: NONE,
            enforce,
            max_memory: 8 << 20,
            encoding: document_encoding(None).unwrap(),
            consent_mode: block.map(str::to_string),
            kinds: Kinds::of(html.as_bytes()),
            body_start: None,
        },
        move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
    );
    rw.write(&html.as_bytes()[..cut]).unwrap();
    rw.write(&html.as_bytes()[cut..]).unwrap();
    rw.end().unwrap();
    String::from_utf8(out.lock().unwrap().clone()).unwrap()
}

const GTAG: &str =
    r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#;
const GTAG_INLINE: &str = "<script>gtag('js', new Date());</script>";
const FBQ: &str = "<script>fbq('init', '1');</script>";
const BLOCK: &str = "<script>/*consent default*/</script>";

#[test]
fn consent_mode_block_opens_the_head_and_lets_google_tags_run() {
    let page = format!("<html><head><title>t</title>{GTAG}{GTAG_INLINE}{FBQ}</head></html>");
    let want = format!(
        "<html><head>{BLOCK}<title>t</title>{GTAG}{GTAG_INLINE}<script type=\"text/plain\" data-category=\"marketing\">fbq('init', '1');</script></head></html>"
    );
    for cut in 0..=page.len() {
        assert_eq!(
            rewrite_cm(&page, Some(BLOCK), true, cut),
            want,
            "cut at {cut}"
        );
    }
    // Without the block (Consent Mode off, or a CSP that would block it) Google tags are
    // neutralized like any other; in report-only nothing is written.
    let off = rewrite_cm(&page, None, true, 0);
    assert!(
        off.contains("data-src=\"https://www.googletagmanager.com"),
        "{off}"
    );
    assert!(!off.contains("/*consent default*/"));
    assert_eq!(rewrite_cm(&page, Some(BLOCK), false, 0), page);
}

#[test]
fn without_a_head_the_block_precedes_the_first_live_script() {
    let page = format!("<!doctype html><p>x</p>{GTAG}{FBQ}");
    assert_eq!(
        rewrite_cm(&page, Some(BLOCK), true, 0),
        format!(
            "<!doctype html><p>x</p>{BLOCK}{GTAG}<script type=\"text/plain\" data-category=\"marketing\">fbq('init', '1');</script>"
        )
    );
    // A script inside a <template> is inert: the block is not put there, and a Google tag
    // before the block is neutralized.
    let page = format!("<template>{GTAG}</template>{GTAG_INLINE}");
    let out = rewrite_cm(&page, Some(BLOCK), true, 0);
    assert_eq!(
        out,
        format!(
            "<template><script async type=\"text/plain\" data-category=\"analytics\" data-src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></template>{BLOCK}{GTAG_INLINE}"
        )
    );
}

#[test]
fn a_script_after_a_tag_ending_in_an_empty_attribute_is_judged() {
    // `nonce=>` ends the tag with an attribute without value; what follows is script text,
    // so `<a title="` does not hide the next </script> and the inline pixel is seen.
    let page = r#"<script src="/app.js" nonce=>var tip = '<a title="';</script><script>fbq('init','1');</script><p class="note">x</p>"#;
    let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
    assert!(
        out.contains(
            r#"<script type="text/plain" data-category="marketing">fbq('init','1');</script>"#
        ),
        "{out}"
    );
    assert_eq!(report.neutralized, 1);
}

#[test]
fn a_signature_after_a_non_ascii_character_is_matched() {
    // U+FFFD (an invalid byte of the page), or any character a legacy encoding cannot
    // hold, is written back as a character reference ending in `;`.
    let r = rules(TagAction::Neutralize);
    assert!(r.match_inline("\u{FFFD}fbq('init')", NONE, false).is_some());
    assert!(r.match_inline("\u{E229}fbq('init')", NONE, false).is_some());
    assert!(r.match_inline("éfbq('init')", NONE, false).is_some());
    assert!(r.match_inline("xfbq('init')", NONE, false).is_none());
}

#[test]
fn a_noscript_in_svg_holds_no_script_text() {
    // In SVG, <noscript> is an ordinary element; the HTML script after `<i>` is judged on
    // its own text, and nothing of it is written back as markup.
    let page = "<svg><noscript><i><script>\n<script>fbq(12345)//</script></noscript>\n</script>";
    let (out, _) = rewrite(page, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        "<svg><noscript><i><script type=\"text/plain\" data-category=\"marketing\">\n<script>fbq(12345)//</script></noscript>\n</script>"
    );
    // An HTML <noscript> is still judged.
    let (out, report) = rewrite(
        r#"<noscript><img src="https://www.facebook.com/tr?id=1"></noscript>"#,
        NONE,
        TagAction::Neutralize,
    );
    assert!(
        out.contains("data-src=\"https://www.facebook.com/tr?id=1\""),
        "{out}"
    );
    assert_eq!(report.neutralized, 1);
}

#[test]
fn urls_are_read_as_a_browser_reads_them() {
    let r = rules(TagAction::Neutralize);
    for url in [
        "https://www.googletagmanager.com/gtag/js?id=G-1",
        "https://www.googletagmanager.com/gtag&#47;js?id=G-1",
        "https://www.googletagmanager.com/gtag&sol;js",
        "https:\\\\www.googletagmanager.com\\gtag\\js",
        "https:/www.googletagmanager.com/gtag/js",
        "https:www.googletagmanager.com/gtag/js",
        "///www.googletagmanager.com/gtag/js",
        "https://www.googletagmanager.com/gtag/./js",
        "https://www.googletagmanager.com/x/../gtag/js",
        "https://www.googletagmanager.com./gtag/js",
        "https://www.googletagmanager.com.:443/gtag/js",
        "https://www.googletagmanager%2Ecom/gtag/js",
        "https://www.googletagmanager.com/g%74ag/js",
        "https://www.google\ttagmanager.com/gtag/js",
        "https://www.googletag\nmanager.com/gtag/js",
        "  HTTPS://WWW.GOOGLETAGMANAGER.COM/gtag/js  ",
        "//www.googletagmanager.com/gtag/js",
        // A URL in the query, with a protocol-relative or an absolute URL.
        "//www.googletagmanager.com/gtag/js?id=G-1&dl=https://example.com/",
        "https://www.googletagmanager.com/gtag/js?u=https://example.com/",
    ] {
        assert!(r.match_url(url, NONE, false).is_some(), "{url:?}");
    }
    for url in [
        "/gtag/js",
        "https://www.googletagmanager.com.evil.example/gtag/js",
        "https://googletagmanager.com.example/gtag/js",
        "https://example.com/?u=https://www.googletagmanager.com/gtag/js",
        "https://www.googletagmanager.com/gtag/jsx",
        "data:text/javascript,1",
    ] {
        assert!(r.match_url(url, NONE, false).is_none(), "{url:?}");
    }
}

#[test]
fn srcset_candidates_are_split_as_browsers_split_them() {
    let urls = |s| srcset_urls(s).collect::<Vec<_>>();
    assert_eq!(urls("a.png 1x, b.png 2x"), ["a.png", "b.png"]);
    assert_eq!(urls(" ,,a.png,, b.png"), ["a.png", "b.png"]);
    assert_eq!(urls("a,b.png 1x,c.png"), ["a,b.png", "c.png"]);
    assert_eq!(urls("a.png (1x, x) 2x, b.png"), ["a.png", "b.png"]);
    assert_eq!(urls("a.png\t100w,\nb.png\x0c200w"), ["a.png", "b.png"]);
    assert_eq!(urls(""), [""; 0]);
    assert_eq!(urls(" , "), [""; 0]);
}

#[test]
fn every_way_an_element_loads_a_tracker_is_judged() {
    let cases = [
        (
            r#"<img srcset="/a.png 1x, https://www.facebook.com/tr?id=1 2x">"#,
            r#"<img data-category="marketing" data-srcset="/a.png 1x, https://www.facebook.com/tr?id=1 2x">"#,
        ),
        (
            r#"<picture><source srcset="https://www.facebook.com/tr?id=1"></picture>"#,
            r#"<picture><source data-category="marketing" data-srcset="https://www.facebook.com/tr?id=1"></picture>"#,
        ),
        (
            r#"<embed src="https://www.googletagmanager.com/ns.html?id=GTM-1">"#,
            r#"<embed data-category="analytics" data-src="https://www.googletagmanager.com/ns.html?id=GTM-1">"#,
        ),
        (
            r#"<object data="https://www.googletagmanager.com/ns.html?id=GTM-1"></object>"#,
            r#"<object data-category="analytics" data-data="https://www.googletagmanager.com/ns.html?id=GTM-1"></object>"#,
        ),
        (
            r#"<svg><script href="https://www.googletagmanager.com/gtag/js"></script></svg>"#,
            r#"<svg><script type="text/plain" data-category="analytics" data-href="https://www.googletagmanager.com/gtag/js"></script></svg>"#,
        ),
        (
            r#"<svg><image xlink:href="https://www.facebook.com/tr?id=1"/></svg>"#,
            r#"<svg><image data-category="marketing" data-xlink-href="https://www.facebook.com/tr?id=1" /></svg>"#,
        ),
        (
            r#"<link rel="modulepreload" href="https://www.googletagmanager.com/gtag/js">"#,
            r#"<link rel="modulepreload" data-category="analytics" data-href="https://www.googletagmanager.com/gtag/js">"#,
        ),
        (
            r#"<img src="https://www.facebook.com/tr?id=1&amp;ev=PageView">"#,
            r#"<img data-category="marketing" data-src="https://www.facebook.com/tr?id=1&amp;ev=PageView">"#,
        ),
        (
            r#"<video poster="https://www.facebook.com/tr?id=1" src="/v.mp4"></video>"#,
            r#"<video data-category="marketing" data-src="/v.mp4" data-poster="https://www.facebook.com/tr?id=1"></video>"#,
        ),
        (
            r#"<input type="image" src="https://www.facebook.com/tr?id=1">"#,
            r#"<input type="image" data-category="marketing" data-src="https://www.facebook.com/tr?id=1">"#,
        ),
        (
            r#"<audio><track src="https://www.facebook.com/tr?id=1"></audio>"#,
            r#"<audio><track data-category="marketing" data-src="https://www.facebook.com/tr?id=1"></audio>"#,
        ),
        // A candidate as browsers split a srcset: after character references are decoded,
        // with commas inside a URL.
        (
            r#"<img srcset="/a.png&#32;1x&#44;https://www.facebook.com/tr?id=1">"#,
            r#"<img data-category="marketing" data-srcset="/a.png&#32;1x&#44;https://www.facebook.com/tr?id=1">"#,
        ),
        // Site images stay.
        (
            r#"<img srcset="/a.png 1x, /b.png 2x"><object data="/doc.pdf"></object>"#,
            r#"<img srcset="/a.png 1x, /b.png 2x"><object data="/doc.pdf"></object>"#,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(rewrite(input, NONE, TagAction::Neutralize).0, expected);
    }
}

#[test]
fn an_iframe_srcdoc_is_rewritten_like_a_page() {
    let page = r#"<iframe srcdoc="<p>a &amp; b</p><script src=&quot;https://www.googletagmanager.com/gtag/js&quot;></script><script>fbq('init')</script>"></iframe>"#;
    let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<iframe srcdoc="<p>a &amp; b</p><script type=&quot;text/plain&quot; data-category=&quot;analytics&quot; data-src=&quot;https://www.googletagmanager.com/gtag/js&quot;></script><script type=&quot;text/plain&quot; data-category=&quot;marketing&quot;>fbq('init')</script>"></iframe>"#
    );
    assert_eq!(report.neutralized, 2);
    // Without a tracker the attribute is left as it was.
    let page = r#"<iframe srcdoc="<p>a &amp; b</p>"></iframe>"#;
    assert_eq!(rewrite(page, NONE, TagAction::Neutralize).0, page);
}

#[test]
fn an_svg_inline_script_fails_closed_in_place() {
    // SVG ignores `src`: the text runs. What belongs to an SVG script cannot be told
    // reliably, and its content is markup: every SVG inline script is neutralized in
    // place, its content untouched.
    for (page, expected) in [
        (
            r#"<svg><script src="/x.js">fbq('init')</script></svg>"#,
            r#"<svg><script src="/x.js" type="text/plain" data-category="marketing">fbq('init')</script></svg>"#,
        ),
        (
            r#"<svg><script>console.log(1)</script></svg>"#,
            r#"<svg><script type="text/plain" data-category="marketing">console.log(1)</script></svg>"#,
        ),
        // Held and written back, `<` and `img …` joined across the comment would be a tag,
        // and an <img> closes the <svg> and loads.
        (
            r#"<svg><script><<!---->img src="https://www.facebook.com/tr?id=1"></script></svg>"#,
            r#"<svg><script type="text/plain" data-category="marketing"><<!---->img src="https://www.facebook.com/tr?id=1"></script></svg>"#,
        ),
        // An HTML script with `href` and no `src` runs its text, judged as usual.
        (
            r#"<script href="/x.js">console.log(1)</script>"#,
            r#"<script href="/x.js">console.log(1)</script>"#,
        ),
        // A MathML <script> runs nothing.
        (
            r#"<math><script>fbq('init')</script></math>"#,
            r#"<math><script>fbq('init')</script></math>"#,
        ),
    ] {
        assert_eq!(rewrite(page, NONE, TagAction::Remove).0, expected);
    }
}

#[test]
fn a_removed_element_leaves_nothing_that_joins_into_a_tag() {
    // Removed outright, `<` and `script>gtag(…)` would join into a live script.
    let page = "<<script>gtag('js')</script>script>gtag('config')</script>";
    assert_eq!(
        rewrite(page, NONE, TagAction::Remove).0,
        "<<!---->script>gtag('config')</script>"
    );
    let page = r#"<<script src="https://www.googletagmanager.com/gtag/js"></script>script>gtag('config')</script>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Remove).0,
        "<<!---->script>gtag('config')</script>"
    );
}

#[test]
fn a_changed_tag_reads_as_it_did() {
    // Written back with spaces, `=` would give `x` the value `'y …` up to the next quote,
    // past the end of the tag.
    let page = r#"<img x/=/'y src="https://www.facebook.com/tr?id=1"><p title='q'>t</p>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Neutralize).0,
        r#"<img x="" 'y="" data-src="https://www.facebook.com/tr?id=1" data-category="marketing"><p title='q'>t</p>"#
    );
    // The same for an element with content, and for a srcdoc written back.
    let page = r#"<script x/=/'y src="https://www.googletagmanager.com/gtag/js">a</script><iframe x/=/'y srcdoc="<img src=&quot;https://www.facebook.com/tr?id=1&quot;>"></iframe><p title='q'>t</p>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Neutralize).0,
        r#"<script x="" 'y="" data-src="https://www.googletagmanager.com/gtag/js" type="text/plain" data-category="analytics">a</script><iframe x="" 'y="" srcdoc="<img data-category=&quot;marketing&quot; data-src=&quot;https://www.facebook.com/tr?id=1&quot;>"></iframe><p title='q'>t</p>"#
    );
}

#[test]
fn a_tag_written_anew_is_written_once() {
    // A tag a browser reads with an attribute named `=` (after a quoted value) is written anew
    // when changed; both its element handler and the `style` one would change this one.
    // fuzz/artifacts-found/html_rewrite/equals-attribute-*.
    let page = r#"<img src="https://www.facebook.com/tr?id=1"= style="background:url(https://www.facebook.com/tr?id=2)"><p>t</p>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Remove).0,
        "<span></span><p>t</p>"
    );
    assert_eq!(
        rewrite(page, NONE, TagAction::Neutralize).0,
        r#"<img data-src="https://www.facebook.com/tr?id=1" data-category="marketing"><p>t</p>"#
    );
    // A style that loads nothing is kept in the copy.
    let page = r#"<img src="https://www.facebook.com/tr?id=1"= style="color:red"><p>t</p>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Neutralize).0,
        r#"<img data-src="https://www.facebook.com/tr?id=1" style="color:red" data-category="marketing"><p>t</p>"#
    );
}

#[test]
fn css_escapes_hide_no_tracker() {
    // fuzz/artifacts-found/html_rewrite/css-escape-hides-host
    let page = r#"<p style="background:url(https://www\2e facebook\2e com/tr?id=1)">x</p><style>p{background:url(https://www\2e facebook\2e com/tr?id=2)} a{color:red}</style><p style="background:url(https://www&#46;facebook&#46;com/tr?id=3)">y</p>"#;
    let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<p style="background:url(data:,)">x</p><style>p{background:url(data:,)} a{color:red}</style><p style="background:url(data:,)">y</p>"#
    );
    assert_eq!(report.neutralized, 3, "{report:?}");
}

#[test]
fn an_svg_style_sheet_is_read_text_node_by_text_node() {
    // fuzz/artifacts-found/html_rewrite/svg-style-sheet-unread
    let page = r#"<svg><style>@import url(https://www.facebook.com/tr?id=1);.a{fill:red}</style><path class="a"/></svg>"#;
    let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        r#"<svg><style>@import url(data:,);.a{fill:red}</style><path class="a"/></svg>"#
    );
    assert_eq!(report.neutralized, 1);
    // Character references are decoded in SVG; what is written back is escaped as text.
    let page = "<svg><style>.a{background:url(https://www&#46;facebook&#46;com/tr)} .b::after{content:'<&amp;>'}</style></svg>";
    let (out, _) = rewrite(page, NONE, TagAction::Neutralize);
    assert_eq!(
        out,
        "<svg><style>.a{background:url(data:,)} .b::after{content:'&lt;&amp;&gt;'}</style></svg>"
    );
    // A style sheet that names no tracker is left as written, its text nodes in place.
    let page = "<svg><style>.a{fill:red}<!-- x -->.b{fill:&#x62;lue}</style></svg>";
    assert_eq!(rewrite(page, NONE, TagAction::Neutralize).0, page);
}

#[test]
fn foreign_elements_are_never_removed_with_their_content() {
    // A <link> in MathML hints nothing, and is not void: removed with what lol_html took
    // for its content, a later part of the page would be read otherwise.
    let page =
        r#"<math><link rel="preconnect" href="https://www.google-analytics.com"><p>x</p></math>"#;
    assert_eq!(rewrite(page, NONE, TagAction::Remove).0, page);
    // An SVG loader is neutralized, not removed.
    assert_eq!(
        rewrite(
            r#"<svg><image href="https://www.facebook.com/tr?id=1"><text>t</text></image></svg>"#,
            NONE,
            TagAction::Remove
        )
        .0,
        r#"<svg><image data-category="marketing" data-href="https://www.facebook.com/tr?id=1"><text>t</text></image></svg>"#
    );
}

#[test]
fn html_loaders_in_svg_load_nothing_and_are_left_alone() {
    // In SVG, <iframe> is an unknown element: removing it (with what lol_html takes for its
    // content) changed how the rest of the page parses.
    let page = r#"<svg><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe><video poster="https://www.facebook.com/tr?id=1"></video></svg>"#;
    assert_eq!(rewrite(page, NONE, TagAction::Remove).0, page);
    let math =
        r#"<math><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe></math>"#;
    assert_eq!(rewrite(math, NONE, TagAction::Remove).0, math);
    // <img> leaves the <svg>: it loads, and is judged.
    assert_eq!(
        rewrite(
            r#"<svg><img src="https://www.facebook.com/tr?id=1"></svg>"#,
            NONE,
            TagAction::Remove
        )
        .0,
        "<svg><span></span></svg>"
    );
}

#[test]
fn a_removed_element_that_leaves_svg_still_leaves_it() {
    // The first <img> ends the <svg>, so the <noscript> is HTML and its text is never
    // parsed (scripting is on). Removed outright, the <noscript> would be an SVG element
    // and the second pixel in it would load.
    let page = r#"<svg><img src="https://www.facebook.com/tr?id=1"><noscript><img src="https://www.facebook.com/tr?id=2" x="</noscript>"></svg>"#;
    assert_eq!(
        rewrite(page, NONE, TagAction::Remove).0,
        r#"<svg><span></span><noscript><img src="https://www.facebook.com/tr?id=2" x="</noscript>"></svg>"#
    );
    // An HTML <image> is an <img>.
    assert_eq!(
        rewrite(
            r#"<image src="https://www.facebook.com/tr?id=1">"#,
            NONE,
            TagAction::Neutralize
        )
        .0,
        r#"<image data-category="marketing" data-src="https://www.facebook.com/tr?id=1">"#
    );
}

/// A tracker inside `<iframe srcdoc>` documents nested `depth` deep.
fn nested_srcdoc(depth: usize) -> String {
    let mut doc = r#"<script src="https://www.googletagmanager.com/gtag/js"></script>"#.to_string();
    for _ in 0..depth {
        let escaped = doc.replace('&', "&amp;").replace('"', "&quot;");
        doc = format!(r#"<iframe srcdoc="{escaped}"></iframe>"#);
    }
    doc
}

#[test]
fn srcdoc_documents_are_rewritten_to_a_depth_and_dropped_beyond() {
    let (out, report) = rewrite(
        &nested_srcdoc(MAX_SRCDOC_DEPTH),
        NONE,
        TagAction::Neutralize,
    );
    assert_eq!(report.neutralized, 1);
    assert_eq!(out.matches("srcdoc=").count(), MAX_SRCDOC_DEPTH);
    assert!(out.contains("data-src="), "{out}");
    // One deeper: the innermost document is dropped, unread.
    let (out, report) = rewrite(
        &nested_srcdoc(MAX_SRCDOC_DEPTH + 1),
        NONE,
        TagAction::Neutralize,
    );
    assert_eq!(report.neutralized, 0);
    assert_eq!(out.matches("srcdoc=").count(), MAX_SRCDOC_DEPTH);
    assert!(!out.contains("googletagmanager"), "{out}");
    // Nesting that would exhaust a worker thread's stack if each level were rewritten.
    let deep = nested_srcdoc(400);
    let out = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || rewrite(&deep, NONE, TagAction::Neutralize).0)
        .unwrap()
        .join()
        .unwrap();
    assert!(!out.contains("googletagmanager"));
}

#[test]
fn a_noscript_inside_a_noscript_has_its_pixels_judged() {
    // With scripting off a browser reads the inner <noscript> as an element whose content is
    // markup: its pixel loads unless it is judged too.
    let pixel = r#"<img src="https://www.facebook.com/tr?id=1&ev=PageView">"#;
    let html = format!("<noscript><noscript>{pixel}</noscript><p>after</p>");
    let (out, report) = rewrite(&html, NONE, TagAction::Neutralize);
    assert!(
        !out.contains(r#"<img src="https://www.facebook.com"#),
        "{out}"
    );
    assert!(
        out.contains(r#"data-src="https://www.facebook.com/tr?id=1"#),
        "{out}"
    );
    assert_eq!(report.neutralized, 1);
    // Deeper than the rewriter reads, the text is dropped.
    let deep = format!("<noscript>{}{pixel}", "<noscript>".repeat(6));
    let (out, _) = rewrite(&deep, NONE, TagAction::Neutralize);
    assert!(!out.contains("facebook.com"), "{out}");
}

#[test]
fn a_breakout_tag_leaves_every_open_svg() {
    // After `<svg><svg>`, a `<p>` (or `</p>`) is HTML again, as is everything after it: the
    // iframe loads, and the <title> is an HTML title whose text holds the first <script>.
    for html in [
        r#"<svg><svg><p><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe>"#,
        r#"<svg><svg></p><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe>"#,
        r#"<math><svg><math><b><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe>"#,
    ] {
        let (out, report) = rewrite(html, NONE, TagAction::Neutralize);
        assert!(
            out.contains(r#"data-src="https://www.googletagmanager.com/ns.html"#),
            "{out}"
        );
        assert_eq!(report.neutralized, 1, "{html}");
    }
    let html = r#"<svg><svg><head><title><script></title><script>fbq("init","1")</script>"#;
    let (out, _) = rewrite(html, NONE, TagAction::Neutralize);
    assert!(
        out.ends_with(
            r#"<script type="text/plain" data-category="marketing">fbq("init","1")</script>"#
        ),
        "{out}"
    );
}

#[test]
fn a_meta_naming_an_encoding_the_rewriter_cannot_read_stops_it() {
    // A browser reads ISO-2022-JP: `\x1B$B<!\x1B(B` is one character, and the pixel is markup.
    // Read as UTF-8 it would open a bogus comment that hides the pixel from the rewriter.
    let html = b"<meta charset=\"iso-2022-jp\"><p>\x1B$B<!\x1B(B<img src=\"https://www.facebook.com/tr?id=1&ev=PageView\"></p>";
    for kinds in [Kinds::ALL, Kinds::of(html)] {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let mut params = Params::new(rules(TagAction::Neutralize), NONE, 8 << 20);
        params.kinds = kinds;
        let (mut rw, _) = rewriter(params, move |c: &[u8]| {
            sink.lock().unwrap().extend_from_slice(c)
        });
        let result = rw.write(html).and_then(|()| rw.end());
        assert!(result.is_err(), "the rewriter went on");
        let out = out.lock().unwrap();
        assert!(!out.windows(12).any(|w| w == b"facebook.com"));
    }
    // UTF-16 in a <meta> is read as UTF-8 by browsers, and by the rewriter.
    let (out, _) = rewrite(
        "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-16\"><script>fbq('init','1')</script>",
        NONE,
        TagAction::Neutralize,
    );
    assert!(out.contains("text/plain"), "{out}");
}

/// Rewrites `html` whole with `body_start` to write.
fn with_body_start(html: &str, kinds: Kinds) -> String {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let mut params = Params::new(
        rules(TagAction::Neutralize),
        CategorySet::NECESSARY,
        8 << 20,
    );
    params.kinds = kinds;
    params.body_start = Some(Arc::from("<p id=banner>B</p>"));
    let (mut rw, _) = rewriter(params, move |c: &[u8]| {
        sink.lock().unwrap().extend_from_slice(c)
    });
    rw.write(html.as_bytes()).unwrap();
    rw.end().unwrap();
    String::from_utf8(out.lock().unwrap().clone()).unwrap()
}

#[test]
fn the_body_block_goes_first_in_the_body_once_or_at_the_end_without_one() {
    for kinds in [Kinds::ALL, Kinds::of(b"<body>")] {
        assert_eq!(
            with_body_start(
                "<html><head></head><BODY class=x><p>a</p><body></body>",
                kinds
            ),
            "<html><head></head><BODY class=x><p id=banner>B</p><p>a</p><body></body>"
        );
    }
    // A `<body>` in a comment or in text is none, and one in a `<template>` is inert.
    assert_eq!(
        with_body_start(
            "<head><template><body>t</template></head><body>real",
            Kinds::ALL
        ),
        "<head><template><body>t</template></head><body><p id=banner>B</p>real"
    );
    assert_eq!(
        with_body_start("<p>no body tag <!-- <body> --></p>", Kinds::ALL),
        "<p>no body tag <!-- <body> --></p><p id=banner>B</p>"
    );
}
