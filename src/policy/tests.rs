use super::*;

fn err(text: &str) -> PolicyError {
    match compile("p.yaml", text) {
        Ok(_) => panic!("policy should have been refused:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn empty_file_is_the_strict_default() {
    let p = compile("p.yaml", "").unwrap();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.consent_cookie, "cookie_consent");
    assert_eq!(p.consent.default_grant, CategorySet::NECESSARY);
    assert_eq!(
        p.consent.dnt_denies,
        Some(
            CategorySet::EMPTY
                .with(Category::Analytics)
                .with(Category::Marketing)
        )
    );
    assert_eq!(
        p.consent.gpc_denies,
        Some(CategorySet::EMPTY.with(Category::Marketing))
    );
    assert_eq!(p.consent.precedence, Precedence::Signal);
    assert_eq!(p.classify("anything"), Verdict::Unknown);
    assert_eq!(
        p.requires(Verdict::Unknown),
        CategorySet::ALL.difference(CategorySet::NECESSARY)
    );
}

#[test]
fn a_null_document_is_an_empty_policy() {
    assert_eq!(compile("p.yaml", "~\n").unwrap().cookie_rule_count(), 0);
    assert_eq!(
        compile("p.yaml", "# only a comment\n")
            .unwrap()
            .cookie_rule_count(),
        0
    );
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let e = err("mode: enforce\nconsent_cookie: c\nbogus: 1\n");
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    assert!(e.message.contains("bogus"), "{e}");
    assert!(e.to_string().starts_with("p.yaml:3:1: "), "{e}");
}

#[test]
fn unknown_key_inside_a_rule_is_an_error_with_position() {
    let e = err("cookies:\n  - name: _ga\n    category: analytics\n    colour: red\n");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("colour"), "{e}");
}

#[test]
fn bad_category_is_an_error_with_position() {
    let e = err("cookies:\n  - { name: _ga, category: tracking }\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("tracking"), "{e}");
}

#[test]
fn bad_mode_and_default_are_errors() {
    assert!(err("mode: enforcing\n").message.contains("enforcing"));
    assert!(err("default: maybe\n").message.contains("maybe"));
    assert!(
        err("signals:\n  precedence: browser\n")
            .message
            .contains("browser")
    );
}

#[test]
fn rule_needs_exactly_one_pattern() {
    let e = err("cookies:\n  - { category: analytics }\n");
    assert!(e.message.contains("needs one of"), "{e}");
    assert_eq!(e.line, 2, "{e}");
    let e = err("cookies:\n  - { name: a, prefix: b, category: analytics }\n");
    assert!(e.message.contains("only one of"), "{e}");
}

#[test]
fn duplicate_rule_is_an_error_at_the_duplicate() {
    let e = err(
        "cookies:\n  - { name: _ga, category: analytics }\n  - { name: _gid, category: analytics }\n  - { name: _ga, category: marketing }\n",
    );
    assert!(e.message.contains("duplicate"), "{e}");
    assert_eq!(e.line, 4, "{e}");
}

#[test]
fn invalid_glob_and_cookie_names_are_errors() {
    assert!(
        err("cookies:\n  - { glob: 'a[', category: analytics }\n")
            .message
            .contains("invalid glob")
    );
    assert!(
        err("cookies:\n  - { name: 'a b', category: analytics }\n")
            .message
            .contains("not a valid cookie name")
    );
    assert!(
        err("consent_cookie: 'a;b'\n")
            .message
            .contains("not a valid cookie name")
    );
}

#[test]
fn necessary_cannot_be_denied() {
    assert!(
        err("signals:\n  dnt:\n    deny: [necessary]\n")
            .message
            .contains("cannot be denied")
    );
    assert!(
        err("endpoints:\n  - { path: x, category: analytics }\n")
            .message
            .contains("must start with")
    );
}

#[test]
fn type_errors_have_positions() {
    let e = err("cookies: 3\n");
    assert_eq!(e.line, 1, "{e}");
    let e = err("signals:\n  dnt:\n    enabled: perhaps\n    deny: []\n");
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn malformed_yaml_has_position() {
    let e = err("mode: enforce\ncookies: [\n  { name: a\n");
    assert!(e.line >= 2, "{e}");
}

#[test]
fn settings_are_read() {
    let p = compile(
        "p.yaml",
        "mode: report-only\nconsent_cookie: my_consent\ndefault: opt-out\nsignals:\n  dnt: { enabled: false, deny: [] }\n  gpc: { deny: [analytics, marketing] }\n  precedence: cookie\nunknown_cookies: allow\n",
    )
    .unwrap();
    assert_eq!(p.mode, Mode::ReportOnly);
    assert_eq!(p.consent_cookie, "my_consent");
    assert_eq!(p.consent.default_grant, CategorySet::ALL);
    assert_eq!(p.consent.dnt_denies, None);
    assert_eq!(
        p.consent.gpc_denies,
        Some(
            CategorySet::EMPTY
                .with(Category::Analytics)
                .with(Category::Marketing)
        )
    );
    assert_eq!(p.consent.precedence, Precedence::Cookie);
    assert!(p.requires(Verdict::Unknown).is_empty());
}

#[test]
fn unknown_cookies_as_a_category() {
    let p = compile("p.yaml", "unknown_cookies: analytics\n").unwrap();
    assert_eq!(
        p.requires(Verdict::Unknown),
        CategorySet::EMPTY.with(Category::Analytics)
    );
    assert!(err("unknown_cookies: drop\n").message.contains("drop"));
}

#[test]
fn own_rules_come_before_the_builtin_catalogue() {
    let p = compile(
        "p.yaml",
        "extends: builtin\ncookies:\n  - { name: _ga, category: preferences }\n  - { name: site_pref, category: preferences }\n",
    )
    .unwrap();
    let cat = |n: &str| match p.classify(n) {
        Verdict::Known(c) => Some(c.category),
        _ => None,
    };
    assert_eq!(cat("_ga"), Some(Category::Preferences));
    assert_eq!(cat("site_pref"), Some(Category::Preferences));
    assert_eq!(cat("_fbp"), Some(Category::Marketing));
    assert_eq!(p.endpoint("/g/collect"), Some(Category::Analytics));
    let bare = compile("p.yaml", "cookies: []\n").unwrap();
    assert_eq!(bare.classify("_fbp"), Verdict::Unknown);
}

#[test]
fn a_necessary_endpoint_exempts_a_builtin_one() {
    let p = compile(
        "p.yaml",
        "extends: builtin\nendpoints:\n  - { path: /tr, category: necessary }\n",
    )
    .unwrap();
    assert_eq!(p.endpoint("/tr"), Some(Category::Necessary));
    assert_eq!(
        builtin().unwrap().endpoint("/tr"),
        Some(Category::Marketing)
    );
}

#[test]
fn consent_cookie_is_its_own_verdict() {
    let p = compile(
        "p.yaml",
        "consent_cookie: c\ncookies:\n  - { name: c, category: marketing }\n",
    )
    .unwrap();
    assert_eq!(p.classify("c"), Verdict::ConsentCookie);
    assert!(p.requires(Verdict::ConsentCookie).is_empty());
}

// --- The built-in catalogue's curation invariants. ---

fn builtin_category(name: &str) -> Option<Category> {
    let p = builtin().unwrap();
    match p.classify(name) {
        Verdict::Known(c) => Some(c.category),
        Verdict::ConsentCookie => Some(Category::Necessary),
        Verdict::Unknown => None,
    }
}

#[test]
fn builtin_policy_compiles_with_strict_defaults() {
    let p = builtin().unwrap();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.consent_cookie, "cookie_consent");
    assert_eq!(p.consent.default_grant, CategorySet::NECESSARY);
    assert!(p.cookie_rule_count() > 1000, "{}", p.cookie_rule_count());
    for path in ["/collect", "/g/collect", "/tr"] {
        assert!(p.endpoint(path).is_some(), "{path}");
    }
}

#[test]
fn builtin_framework_session_and_csrf_cookies_are_necessary() {
    for name in [
        "PHPSESSID",
        "JSESSIONID",
        "ASP.NET_SessionId",
        "connect.sid",
        "laravel_session",
        "csrftoken",
        "XSRF-TOKEN",
        "sessionid",
        "__RequestVerificationToken",
        "cookie_consent",
    ] {
        assert_eq!(builtin_category(name), Some(Category::Necessary), "{name}");
    }
}

#[test]
fn builtin_known_trackers_are_never_necessary_or_preferences() {
    let trackers = [
        ("_ga", Category::Analytics),
        ("_ga_ABC123", Category::Analytics),
        ("_gid", Category::Analytics),
        ("_gat", Category::Analytics),
        ("_gat_UA-12345-1", Category::Analytics),
        ("_hjSession_123", Category::Analytics),
        ("_hjSessionUser_123", Category::Analytics),
        ("_clck", Category::Analytics),
        ("_fbp", Category::Marketing),
        ("_fbc", Category::Marketing),
        ("_gcl_au", Category::Marketing),
        ("IDE", Category::Marketing),
        ("_uetsid", Category::Marketing),
        ("_ttp", Category::Marketing),
    ];
    for (name, want) in trackers {
        assert_eq!(builtin_category(name), Some(want), "{name}");
    }
}

#[test]
fn rule_errors_point_at_the_rule() {
    let e = err("cookies:\n  - { name: a, category: analytics }\n  - { category: analytics }\n");
    assert_eq!(e.line, 3, "{e}");
    let e = err(
        "endpoints:\n  - { path: /a, category: analytics }\n\n  - { path: b, category: analytics }\n",
    );
    assert_eq!(e.line, 4, "{e}");
}

#[test]
fn the_first_tag_rule_that_matches_decides() {
    use crate::category::CategorySet;
    let p = builtin().unwrap();
    let ads = "https://www.googletagmanager.com/gtag/js?id=AW-123456789";
    let ga = "https://www.googletagmanager.com/gtag/js?id=G-XXXX";
    let analytics = CategorySet::NECESSARY.with(Category::Analytics);
    let marketing = CategorySet::NECESSARY.with(Category::Marketing);
    // The Google tag with an Ads id is marketing, whatever analytics says.
    assert_eq!(
        p.tags.match_url(ads, analytics, false).map(|r| r.category),
        Some(Category::Marketing)
    );
    assert!(p.tags.match_url(ads, marketing, false).is_none());
    // With a Google Analytics id it is analytics.
    assert!(p.tags.match_url(ga, analytics, false).is_none());
    assert_eq!(
        p.tags.match_url(ga, marketing, false).map(|r| r.category),
        Some(Category::Analytics)
    );
    // A site's own rule comes first: here it moves a tag to another category.
    let site = compile(
        "site.yaml",
        "extends: builtin\ntags:\n  - { host: googletagmanager.com, path: /gtag/js, category: preferences, vendor: Site }\n",
    )
    .unwrap();
    assert!(
        site.tags
            .match_url(
                ads,
                CategorySet::NECESSARY.with(Category::Preferences),
                false
            )
            .is_none()
    );
}

#[test]
fn query_globs_are_validated_and_part_of_the_duplicate_check() {
    let e = err(
        "tags:\n  - { host: a.com, path: /x, query: \"id=[\", category: analytics, vendor: A }\n",
    );
    assert!(e.to_string().contains("query glob"), "{e}");
    assert!(
        compile(
            "p.yaml",
            "tags:\n  - { host: a.com, path: /x, query: \"id=1*\", category: analytics, vendor: A }\n  - { host: a.com, path: /x, category: marketing, vendor: A }\n",
        )
        .is_ok()
    );
}

#[test]
fn declaring_gpc_needs_the_gpc_signal() {
    for text in [
        "declarations:\n  gpc: { last_update: 2026-01-01 }\nsignals:\n  gpc: { enabled: false, deny: [marketing] }\n",
        "declarations:\n  gpc: { last_update: 2026-01-01 }\nsignals:\n  gpc: { deny: [] }\n",
    ] {
        assert!(err(text).to_string().contains("signals.gpc"), "{text}");
    }
    let e = err("declarations:\n  gpc: { last_update: 2026-02-30 }\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(
        compile(
            "p.yaml",
            "declarations:\n  gpc: { last_update: 2026-01-01 }\n"
        )
        .is_ok()
    );
}

#[test]
fn sources_are_validated() {
    let e = err("consent:\n  sources: [native, tcf, native]\n");
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = err("consent:\n  sources: [usercentrics]\n");
    assert_eq!(e.line, 2, "{e}");
    let e = err("consent:\n  tcf:\n    purposes: { analytics: [1, 30] }\n");
    assert!(e.to_string().contains("purpose 30"), "{e}");
    let e = err("consent:\n  onetrust:\n    groups: { C0002: statistics }\n");
    assert_eq!(e.line, 3, "{e}");
    let e = err("regions:\n  header: CF-IPCountry\n  opt-in: [DE]\n  opt-out: [de]\n");
    assert!(e.to_string().contains("DE is listed twice"), "{e}");
    let e = err("regions:\n  header: \"bad header\"\n");
    assert!(e.to_string().contains("not a valid header name"), "{e}");
    let e = err("regions:\n  header: X-Country\n  opt-in: [Germany]\n");
    assert!(e.to_string().contains("two-letter"), "{e}");
}

#[test]
fn consent_manager_cookies_pass_without_the_catalogue() {
    let p = compile("p.yaml", "").unwrap();
    for name in [
        "cookie_consent",
        "euconsent-v2",
        "addtl_consent",
        "OptanonConsent",
        "OptanonAlertBoxClosed",
        "eupubconsent-v2",
        "CookieConsent",
        "cc_cookie",
        "klaro",
        "cookieyes-consent",
        "cmplz_statistics",
        "cmplz_banner-status",
        "borlabs-cookie",
    ] {
        assert_eq!(p.classify(name), Verdict::ConsentCookie, "{name}");
    }
    let only_native = compile("p.yaml", "consent:\n  sources: [native]\n").unwrap();
    assert_eq!(only_native.classify("OptanonConsent"), Verdict::Unknown);
}

#[test]
fn the_dnt_policy_must_be_a_regular_file_of_at_most_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let ok = dir.path().join("ok.txt");
    std::fs::write(&ok, "policy").unwrap();
    let with = |file: &str| {
        compile_in(
            "p",
            &format!("declarations:\n  dnt_policy: {file}\n"),
            Some(dir.path()),
        )
    };
    assert!(with("ok.txt").is_ok());
    let e = with("big.txt").err().unwrap().to_string();
    assert!(e.contains("larger than"), "{e}");
    // A device reports no size and never ends.
    let e = with("/dev/zero").err().unwrap().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = with(dir.path().to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
}
