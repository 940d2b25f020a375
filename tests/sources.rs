//! End to end: consent read where sites already keep it (TCF and the consent managers' own
//! cookies), regional defaults, the GPC and DNT declarations, and Google Consent Mode.

mod common;
use common::tcf::recent;
use common::*;
use serde_json::Value;

/// Cookies the upstream sets: one per category, so what passes shows what was granted.
const SETS: [(&str, &str); 3] = [
    ("x-set-cookie", "_ga=GA1.1.1.1; Path=/"),
    ("x-set-cookie", "_fbp=fb.1.1.1; Path=/"),
    ("x-set-cookie", "sessionid=s; Path=/"),
];

/// TC strings with these purposes consented (TCF 2.3, CMP 300, built for these tests in 2023;
/// [`recent`] re-dates them).
const TCF_ANALYTICS: &str = "CP1R2oAP1R2oAEsABBENCWFAAIGAAAAAAAYgAAAAAAAA"; // 1, 8, 9
const TCF_ALL: &str = "CP1R2oAP1R2oAEsABBENCWFAAP_gAAAAAAYgAAAAAAAA"; // 1..=11
const TCF_MARKETING: &str = "CP1R2oAP1R2oAEsABBENCWFAAPIAAAAAAAYgAAAAAAAA"; // 1, 2, 3, 4, 7
const TCF_V1: &str = "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA";

struct Case {
    cookie: String,
    /// The tracking cookies that pass.
    passes: &'static [&'static str],
    source: &'static str,
}

fn case(cookie: impl Into<String>, passes: &'static [&'static str], source: &'static str) -> Case {
    Case {
        cookie: cookie.into(),
        passes,
        source,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("cookie_consent=analytics", &["_ga"], "native"),
        case(
            format!("euconsent-v2={}", recent(TCF_ANALYTICS)),
            &["_ga"],
            "tcf",
        ),
        case(
            format!("euconsent-v2={}", recent(TCF_MARKETING)),
            &["_fbp"],
            "tcf",
        ),
        case(
            format!("euconsent-v2={}", recent(TCF_ALL)),
            &["_ga", "_fbp"],
            "tcf",
        ),
        // As made, in 2023: older than 13 months, it grants nothing.
        case(format!("euconsent-v2={TCF_ALL}"), &[], "tcf-expired"),
        case(format!("euconsent-v2={TCF_V1}"), &[], "tcf-invalid"),
        case("euconsent-v2=not-a-tc-string", &[], "tcf-invalid"),
        case(
            "OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+23+2026+12%3A00%3A00+GMT%2B0100\
             &version=202409.1.0&consentId=abc&interactionCount=1&landingPath=NotLandingPage\
             &groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0%2CC0005%3A0",
            &["_ga"],
            "onetrust",
        ),
        case(
            "OptanonConsent=groups=C0001%3A1%2CC0002%3A0%2CC0004%3A1",
            &["_fbp"],
            "onetrust",
        ),
        case("OptanonConsent=groups=C0001%3Ayes", &[], "onetrust-invalid"),
        case(
            "CookieConsent={stamp:%27Q2x1c3Rlcg==%27%2Cnecessary:true%2Cpreferences:false\
             %2Cstatistics:false%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1\
             %2Cutc:1700000000000%2Cregion:%27de%27}",
            &["_fbp"],
            "cookiebot",
        ),
        case("CookieConsent=0", &[], "cookiebot"),
        // Outside a consent region: as if there were no cookie.
        case("CookieConsent=-1", &[], "default"),
        case(
            "cc_cookie=%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C\
             %22revision%22%3A0%2C%22data%22%3Anull%7D",
            &["_ga"],
            "cookieconsent",
        ),
        case(
            "cc_cookie=%7B%22categories%22%3A",
            &[],
            "cookieconsent-invalid",
        ),
        case(
            "klaro=%7B%22google-analytics%22%3Atrue%2C%22facebook-pixel%22%3Afalse%7D",
            &["_ga"],
            "klaro",
        ),
        case(
            "cookieyes-consent=consentid:abc,consent:yes,action:yes,necessary:yes,\
             functional:no,analytics:yes,performance:yes,advertisement:no,other:no",
            &["_ga"],
            "cookieyes",
        ),
        case(
            "cmplz_statistics=deny; cmplz_marketing=allow; cmplz_preferences=deny",
            &["_fbp"],
            "complianz",
        ),
        case(
            "borlabs-cookie=%7B%22consents%22%3A%7B%22essential%22%3A%5B%22borlabs-cookie%22%5D\
             %2C%22statistics%22%3A%5B%22google-analytics%22%5D%7D%2C%22version%22%3A%221%22%7D",
            &["_ga"],
            "borlabs",
        ),
        // The native cookie comes first by default.
        case(
            format!("euconsent-v2={}; cookie_consent=none", recent(TCF_ALL)),
            &[],
            "native",
        ),
    ]
}

fn tracking_set_cookies(got: &Got) -> Vec<String> {
    got.set_cookie_names()
        .into_iter()
        .filter(|n| n.starts_with('_'))
        .collect()
}

#[tokio::test]
async fn every_format_grants_and_denies_cookies_and_tags() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let mut n = 0;
    for c in cases() {
        let mut headers = SETS.to_vec();
        headers.push(("cookie", &c.cookie));
        let got = get(&http1(), &proxy.url("/page"), &headers).await;
        n += 1;
        assert_eq!(tracking_set_cookies(&got), c.passes, "{}", c.cookie);
        assert!(
            got.set_cookie_names().contains(&"sessionid".to_string()),
            "{}",
            c.cookie
        );
        let rec = proxy.log(n);
        assert_eq!(rec["source"], c.source, "{}", c.cookie);

        // The same consent on the page: the tags of what is denied are neutralized.
        let got = get(&http1(), &proxy.url("/tracked"), &[("cookie", &c.cookie)]).await;
        n += 1;
        let ga_live = got
            .body
            .contains(r#"<script async src="https://www.googletagmanager.com/gtag/js"#);
        let meta_live = got.body.contains("<script>\n    !function(f,b,e,v,n,t,s)");
        assert_eq!(ga_live, c.passes.contains(&"_ga"), "{}", c.cookie);
        assert_eq!(meta_live, c.passes.contains(&"_fbp"), "{}", c.cookie);
        let rec = proxy.log(n);
        let expected_tags = 4 - 2 * c.passes.len();
        assert_eq!(rec["tags_neutralized"], expected_tags, "{}", c.cookie);
        // The consent manager's own cookie reaches the site: its banner needs it.
        let seen = up.last_seen();
        let forwarded = seen
            .headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let first = c.cookie.split(';').next().unwrap();
        assert!(
            forwarded.contains(first),
            "{} was withheld: {forwarded}",
            first
        );
    }
}

#[tokio::test]
async fn sources_and_their_order_are_policy() {
    let up = Upstream::start().await;
    let (_dir, policy) = temp_file(
        "policy.yaml",
        "extends: builtin\nconsent:\n  sources: [tcf, native]\n  onetrust:\n    groups: { C0001: necessary, C0009: marketing }\n",
    );
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let both = format!("euconsent-v2={}; cookie_consent=none", recent(TCF_ALL));
    let mut headers = SETS.to_vec();
    headers.push(("cookie", &both));
    let got = get(&http1(), &proxy.url("/"), &headers).await;
    assert_eq!(tracking_set_cookies(&got), vec!["_ga", "_fbp"]);
    assert_eq!(proxy.log(1)["source"], "tcf");
    // OneTrust is not a listed source: its cookie decides nothing.
    let mut headers = SETS.to_vec();
    headers.push(("cookie", "OptanonConsent=groups=C0001%3A1%2CC0009%3A1"));
    let got = get(&http1(), &proxy.url("/"), &headers).await;
    assert_eq!(tracking_set_cookies(&got), Vec::<String>::new());
    assert_eq!(proxy.log(2)["source"], "default");
}

#[tokio::test]
async fn a_configured_group_map_is_used() {
    let up = Upstream::start().await;
    let (_dir, policy) = temp_file(
        "policy.yaml",
        "consent:\n  sources: [onetrust]\n  onetrust:\n    cookie: site_ot\n    groups: { C0001: necessary, C0009: marketing }\n",
    );
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let mut headers = SETS.to_vec();
    headers.push(("x-set-cookie", "site_ot=groups=C0001%3A1; Path=/"));
    headers.push(("cookie", "site_ot=groups=C0001%3A1%2CC0009%3A1"));
    let got = get(&http1(), &proxy.url("/"), &headers).await;
    // No catalogue: _ga and _fbp are unknown and need every category; the consent cookie
    // itself always passes.
    assert!(got.set_cookie_names().contains(&"site_ot".to_string()));
    let rec = proxy.log(1);
    assert_eq!(rec["source"], "onetrust");
    assert_eq!(names(&rec["granted"]), vec!["necessary", "marketing"]);
}

fn regional_policy() -> (tempfile::TempDir, std::path::PathBuf) {
    temp_file(
        "policy.yaml",
        "extends: builtin\nregions:\n  header: CF-IPCountry\n  opt-out: [US, CA]\n  opt-in: [DE]\n",
    )
}

#[tokio::test]
async fn regional_defaults_come_from_a_trusted_edge_only() {
    let up = Upstream::start().await;
    let (_dir, policy) = regional_policy();
    let (_cdir, config) = temp_file("config.yaml", "trusted_proxies: [127.0.0.1/32]\n");
    let proxy = Proxy::start(
        &up.url(),
        &["--policy", path_str(&policy), "--config", path_str(&config)],
    );
    let visit = |country: &'static str| {
        let mut h = SETS.to_vec();
        h.push(("cf-ipcountry", country));
        h
    };
    let got = get(&http1(), &proxy.url("/"), &visit("US")).await;
    assert_eq!(tracking_set_cookies(&got), vec!["_ga", "_fbp"]);
    assert!(got.header("vary").join(",").contains("cf-ipcountry"));
    let rec = proxy.log(1);
    assert_eq!(
        (rec["source"].as_str(), rec["region"].as_str()),
        (Some("default"), Some("US"))
    );
    let got = get(&http1(), &proxy.url("/"), &visit("de")).await;
    assert_eq!(tracking_set_cookies(&got), Vec::<String>::new());
    assert_eq!(proxy.log(2)["region"], "DE");
    // A country with no rule, or no country: the policy's default (opt-in).
    let got = get(&http1(), &proxy.url("/"), &visit("FR")).await;
    assert_eq!(tracking_set_cookies(&got), Vec::<String>::new());
    assert!(proxy.log(3).get("region").is_none());
    // GPC still denies marketing under an opt-out default.
    let mut h = visit("US");
    h.push(("sec-gpc", "1"));
    let got = get(&http1(), &proxy.url("/"), &h).await;
    assert_eq!(tracking_set_cookies(&got), vec!["_ga"]);
    // A consent source beats the regional default.
    let mut h = visit("US");
    h.push(("cookie", "cookie_consent=none"));
    let got = get(&http1(), &proxy.url("/"), &h).await;
    assert_eq!(tracking_set_cookies(&got), Vec::<String>::new());
}

#[tokio::test]
async fn a_country_header_from_an_untrusted_peer_is_ignored() {
    let up = Upstream::start().await;
    let (_dir, policy) = regional_policy();
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let mut h = SETS.to_vec();
    h.push(("cf-ipcountry", "US"));
    let got = get(&http1(), &proxy.url("/"), &h).await;
    assert_eq!(tracking_set_cookies(&got), Vec::<String>::new());
    let rec = proxy.log(1);
    assert_eq!(rec["source"], "default");
    assert!(rec.get("region").is_none(), "{rec}");
}

#[tokio::test]
async fn gpc_and_dnt_declarations_are_served_and_tk_is_sent() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dnt-policy.txt"),
        "Do Not Track Compliance Policy\nVersion 1.0\n",
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "extends: builtin\ndeclarations:\n  gpc: { last_update: 2026-11-01 }\n  dnt_policy: dnt-policy.txt\n",
    )
    .unwrap();
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(&http1(), &proxy.url("/.well-known/gpc.json"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), vec!["application/json"]);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"gpc": true, "lastUpdate": "2026-11-01"})
    );
    let got = get(&http1(), &proxy.url("/.well-known/dnt-policy.txt"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.body.starts_with("Do Not Track Compliance Policy"));
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "answered locally"
    );
    assert_eq!(proxy.log(2)["status"], 200);

    // Tk on responses to DNT requests: N without tracking, C with consent to it.
    let got = get(&http1(), &proxy.url("/"), &[("dnt", "1")]).await;
    assert_eq!(got.header("tk"), vec!["N"]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[("dnt", "0"), ("cookie", "cookie_consent=all")],
    )
    .await;
    assert_eq!(got.header("tk"), vec!["C"]);
    let got = get(&http1(), &proxy.url("/"), &[]).await;
    assert!(got.header("tk").is_empty());
    // A blocked tracking endpoint says it too.
    let got = get(&http1(), &proxy.url("/collect"), &[("dnt", "1")]).await;
    assert_eq!(
        (got.status.as_u16(), got.header("tk")),
        (204, vec!["N".to_string()])
    );

    // Without declarations the site's own resources are proxied.
    let bare = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &bare.url("/.well-known/gpc.json"), &[]).await;
    // The site's page, read as HTML: the head names the encoding it was read in.
    assert_eq!(got.header("content-type"), vec!["text/html; charset=UTF-8"]);
    assert_eq!(up.last_seen().path, "/.well-known/gpc.json");
}

#[test]
fn a_missing_dnt_policy_file_is_a_clear_error() {
    let (_dir, policy) = temp_file("policy.yaml", "declarations:\n  dnt_policy: nowhere.txt\n");
    let out = std::process::Command::new(bin())
        .args(["check", "--policy", path_str(&policy)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // `check` reports on stdout.
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("declarations.dnt_policy") && err.contains("nowhere.txt"),
        "{err}"
    );
}

#[tokio::test]
async fn google_consent_mode_tells_google_tags_instead_of_neutralizing_them() {
    let up = Upstream::start().await;
    let (_dir, policy) = temp_file(
        "policy.yaml",
        "extends: builtin\ngoogle_consent_mode: true\n",
    );
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(
        &http1(),
        &proxy.url("/tracked-csp"),
        &[("cookie", "cookie_consent=analytics")],
    )
    .await;
    let head_start = got.body.find("<head>").unwrap() + "<head>".len();
    assert!(
        got.body[head_start..].starts_with(
            "<script nonce=\"c3BhcmtsZQ==\">window.dataLayer=window.dataLayer||[];\
             function gtag(){dataLayer.push(arguments);}gtag('consent','default',\
             {'ad_storage':'denied','ad_user_data':'denied','ad_personalization':'denied',\
             'analytics_storage':'granted'});</script>"
        ),
        "{}",
        got.body
    );
    // The Google tag runs (Consent Mode governs it); the Meta Pixel is neutralized.
    assert!(
        got.body.contains(
            r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123">"#
        ),
        "{}",
        got.body
    );
    assert!(
        got.body
            .contains(r#"<script type="text/plain" data-category="marketing">"#)
    );
    assert_eq!(proxy.log(1)["tags_neutralized"], 2);

    // Without consent both Google categories are denied in the block, and the Google tag
    // still runs: Consent Mode keeps it from storing anything.
    let got = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert!(
        got.body.contains("'analytics_storage':'denied'"),
        "{}",
        got.body
    );
    assert!(
        got.body.contains("<head><script>window.dataLayer"),
        "no nonce without a CSP: {}",
        got.body
    );
    assert!(
        got.body.contains(
            r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123">"#
        )
    );
    assert_eq!(
        proxy.log(2)["tags_neutralized"],
        2,
        "the Meta Pixel and its noscript"
    );

    // A page whose CSP allows inline scripts only by hash would block the block: then the
    // Google tags are neutralized like any other.
    let got = get(
        &http1(),
        &proxy.url("/tracked-csp"),
        &[("x-csp", "script-src 'self' 'sha256-AAAA'")],
    )
    .await;
    assert!(!got.body.contains("gtag('consent'"), "{}", got.body);
    assert!(
        got.body
            .contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123""#)
    );
    assert_eq!(proxy.log(3)["tags_neutralized"], 4);
}
