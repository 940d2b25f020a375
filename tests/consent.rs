//! End to end: what reaches the visitor and the site, by consent state, over real HTTP.

mod common;
use common::*;

const TRACKING: [(&str, &str); 6] = [
    ("x-set-cookie", "_ga=GA1.1.1.1; Path=/; Max-Age=63072000"),
    ("x-set-cookie", "_gid=GA1.1.2.2; Path=/"),
    ("x-set-cookie", "_fbp=fb.1.1.1; Path=/"),
    ("x-set-cookie", "sessionid=s; Path=/; HttpOnly"),
    ("x-set-cookie", "csrftoken=c; Path=/"),
    ("x-set-cookie", "mystery_cookie=m; Path=/"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = TRACKING.to_vec();
    v.extend_from_slice(extra);
    v
}

#[tokio::test]
async fn without_consent_only_necessary_cookies_are_set() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &proxy.url("/page?secret=1"), &with(&[])).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.set_cookie_names(), vec!["sessionid", "csrftoken"]);
    let vary = got.header("vary").join(",");
    for h in ["Cookie", "DNT", "Sec-GPC"] {
        assert!(vary.contains(h), "Vary lacks {h}: {vary}");
    }
    let rec = proxy.log(1);
    assert_eq!(rec["path"], "/page", "no query string in the log");
    assert_eq!(rec["method"], "GET");
    assert_eq!(rec["status"], 200);
    assert_eq!(names(&rec["granted"]), vec!["necessary"]);
    assert_eq!(rec["source"], "default");
    assert_eq!(names(&rec["signals"]), Vec::<String>::new());
    assert_eq!(
        names(&rec["stripped_set_cookies"]),
        vec!["_ga", "_gid", "_fbp", "mystery_cookie"]
    );
    assert_eq!(names(&rec["unknown_cookies"]), vec!["mystery_cookie"]);
    assert_eq!(rec["blocked"], false);
    assert_eq!(rec["mode"], "enforce");
    assert!(rec["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(rec["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rec["client"], "127.0.0.0/24");
    assert!(rec["host"].as_str().unwrap().starts_with("127.0.0.1:"));
    let out = proxy.all_output();
    assert!(
        !out.contains("GA1.1.1.1") && !out.contains("secret=1"),
        "a value leaked: {out}"
    );
}

#[tokio::test]
async fn consent_all_passes_every_cookie() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=all")]),
    )
    .await;
    assert_eq!(
        got.set_cookie_names(),
        vec![
            "_ga",
            "_gid",
            "_fbp",
            "sessionid",
            "csrftoken",
            "mystery_cookie"
        ]
    );
    let rec = proxy.log(1);
    assert_eq!(
        names(&rec["granted"]),
        vec!["necessary", "preferences", "analytics", "marketing"]
    );
    assert_eq!(rec["source"], "native");
    assert_eq!(names(&rec["stripped_set_cookies"]), Vec::<String>::new());
}

#[tokio::test]
async fn consent_per_category() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=analytics,bogus")]),
    )
    .await;
    assert_eq!(
        got.set_cookie_names(),
        vec!["_ga", "_gid", "sessionid", "csrftoken"]
    );
    assert_eq!(
        names(&proxy.log(1)["granted"]),
        vec!["necessary", "analytics"]
    );
}

#[tokio::test]
async fn dnt_denies_analytics_and_marketing() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=all"), ("dnt", "1")]),
    )
    .await;
    // Unknown cookies need every category, and DNT took two of them away.
    assert_eq!(got.set_cookie_names(), vec!["sessionid", "csrftoken"]);
    let rec = proxy.log(1);
    assert_eq!(names(&rec["signals"]), vec!["dnt"]);
    assert_eq!(names(&rec["granted"]), vec!["necessary", "preferences"]);
    assert_eq!(rec["source"], "native");
}

#[tokio::test]
async fn policy_can_let_the_cookie_win_over_signals() {
    let up = Upstream::start().await;
    let policy = |default: &str| {
        temp_file(
            "p.yaml",
            &format!(
                "extends: builtin\ndefault: {default}\nsignals:\n  precedence: cookie\n  gpc: {{ deny: [analytics, marketing] }}\n"
            ),
        )
    };
    let (_d, opt_in) = policy("opt-in");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&opt_in)]);
    let h = with(&[
        ("cookie", "cookie_consent=all"),
        ("dnt", "1"),
        ("sec-gpc", "1"),
    ]);
    let got = get(&http1(), &proxy.url("/"), &h).await;
    assert!(got.set_cookie_names().contains(&"_fbp".to_string()));
    assert_eq!(names(&proxy.log(1)["signals"]), vec!["dnt", "gpc"]);
    assert_eq!(names(&proxy.log(1)["granted"]).len(), 4);

    // Under an opt-out default (the US model) GPC is an opt-out of sale and sharing, which the
    // cookie does not override; DNT still yields to it.
    let (_d2, opt_out) = policy("opt-out");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&opt_out)]);
    let got = get(&http1(), &proxy.url("/"), &h).await;
    assert!(!got.set_cookie_names().contains(&"_fbp".to_string()));
    assert_eq!(
        names(&proxy.log(1)["granted"]),
        vec!["necessary", "preferences"]
    );
    let dnt_only = with(&[("cookie", "cookie_consent=all"), ("dnt", "1")]);
    let got = get(&http1(), &proxy.url("/"), &dnt_only).await;
    assert!(got.set_cookie_names().contains(&"_fbp".to_string()));
    // Without a consent cookie the signals apply to the opt-out default, with the policy's own
    // GPC rule.
    let got = get(&http1(), &proxy.url("/"), &with(&[("sec-gpc", "1")])).await;
    assert_eq!(got.set_cookie_names(), vec!["sessionid", "csrftoken"]);
    assert_eq!(
        names(&proxy.log(3)["granted"]),
        vec!["necessary", "preferences"]
    );
}

#[tokio::test]
async fn gpc_denies_marketing_and_is_forwarded_unchanged() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=all"), ("sec-gpc", "1")]),
    )
    .await;
    assert_eq!(
        got.set_cookie_names(),
        vec!["_ga", "_gid", "sessionid", "csrftoken"]
    );
    assert_eq!(up.last_seen().headers.get("sec-gpc").unwrap(), "1");
    let rec = proxy.log(1);
    assert_eq!(names(&rec["signals"]), vec!["gpc"]);
    // Only the exact value "1" counts.
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=all"), ("sec-gpc", "true")]),
    )
    .await;
    assert!(got.set_cookie_names().contains(&"_fbp".to_string()));
    assert_eq!(up.last_seen().headers.get("sec-gpc").unwrap(), "true");
}

#[tokio::test]
async fn unreadable_consent_cookie_grants_nothing() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file("p.yaml", "extends: builtin\ndefault: opt-out\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=%E0%A4%A")]),
    )
    .await;
    assert_eq!(got.set_cookie_names(), vec!["sessionid", "csrftoken"]);
    let rec = proxy.log(1);
    assert_eq!(rec["source"], "native-invalid");
    assert_eq!(names(&rec["granted"]), vec!["necessary"]);
    // The same policy without a consent cookie grants everything (opt-out).
    let got = get(&http1(), &proxy.url("/"), &with(&[])).await;
    assert!(got.set_cookie_names().contains(&"_fbp".to_string()));
}

#[tokio::test]
async fn request_cookies_of_denied_categories_are_withheld_and_expired() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[
            ("host", "www.shop.example"),
            (
                "cookie",
                "_ga=GA1.1.9; sessionid=abc; mystery_cookie=1; _fbp=fb; cookie_consent=analytics",
            ),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = up.last_seen();
    assert_eq!(
        seen.headers.get("cookie").unwrap(),
        "_ga=GA1.1.9; sessionid=abc; cookie_consent=analytics"
    );
    let expiries: Vec<String> = got
        .set_cookies()
        .into_iter()
        .filter(|c| c.contains("Max-Age=0"))
        .collect();
    assert_eq!(
        expiries,
        vec![
            "_fbp=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
            "_fbp=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=www.shop.example",
            "_fbp=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=shop.example",
        ]
    );
    let rec = proxy.log(1);
    assert_eq!(
        names(&rec["stripped_request_cookies"]),
        vec!["mystery_cookie", "_fbp"]
    );
    assert_eq!(names(&rec["expired_cookies"]), vec!["_fbp"]);
    assert_eq!(names(&rec["unknown_cookies"]), vec!["mystery_cookie"]);
    assert_eq!(rec["host"], "www.shop.example");
    let out = proxy.all_output();
    assert!(
        !out.contains("GA1.1.9") && !out.contains("abc"),
        "a cookie value leaked: {out}"
    );
}

#[tokio::test]
async fn tracking_endpoints_are_answered_locally_when_denied() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    for path in ["/collect?v=2&tid=G-1", "/g/collect", "/tr"] {
        let got = get(&http1(), &proxy.url(path), &[]).await;
        assert_eq!(got.status, 204, "{path}");
        assert!(got.body.is_empty());
    }
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream was contacted"
    );
    let recs = proxy.logs(3);
    assert!(
        recs.iter()
            .all(|r| r["blocked"] == true && r["status"] == 204)
    );
    assert_eq!(recs[0]["path"], "/collect");
    // Other spellings of the same endpoint are blocked too; ;parameters never reach the log.
    for path in [
        "/collect/",
        "//collect",
        "/Collect",
        "/%63ollect",
        "/x/../collect",
        "/tr/",
        "/g/collect;jsessionid=SECRET",
    ] {
        let got = get(&http1(), &proxy.url(path), &[]).await;
        assert_eq!(got.status, 204, "{path}");
    }
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream was contacted"
    );
    let recs = proxy.logs(10);
    assert_eq!(recs[9]["path"], "/g/collect");
    assert!(!proxy.all_output().contains("SECRET"));
    // A blocked request's answer still expires the withdrawn cookies it carried.
    let got = get(
        &http1(),
        &proxy.url("/collect"),
        &[("cookie", "_ga=GA1.1.5; sessionid=s")],
    )
    .await;
    assert_eq!(got.status, 204);
    assert_eq!(
        got.set_cookies(),
        vec!["_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"]
    );
    // With consent, the endpoint is the site's business.
    let got = get(
        &http1(),
        &proxy.url("/collect"),
        &[("cookie", "cookie_consent=all")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(proxy.log(12)["blocked"], false);
}

#[tokio::test]
async fn report_only_changes_nothing_and_logs_everything() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file("p.yaml", "extends: builtin\nmode: report-only\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "_ga=1; sessionid=2")]),
    )
    .await;
    assert_eq!(
        got.set_cookie_names(),
        vec![
            "_ga",
            "_gid",
            "_fbp",
            "sessionid",
            "csrftoken",
            "mystery_cookie"
        ]
    );
    assert!(
        got.set_cookies().iter().all(|c| !c.contains("Max-Age=0")),
        "no expiry in report-only"
    );
    assert_eq!(
        up.last_seen().headers.get("cookie").unwrap(),
        "_ga=1; sessionid=2"
    );
    let rec = proxy.log(1);
    assert_eq!(rec["mode"], "report-only");
    assert_eq!(
        names(&rec["stripped_set_cookies"]),
        vec!["_ga", "_gid", "_fbp", "mystery_cookie"]
    );
    assert_eq!(names(&rec["stripped_request_cookies"]), vec!["_ga"]);
    assert_eq!(names(&rec["expired_cookies"]), vec!["_ga"]);
    let got = get(&http1(), &proxy.url("/collect"), &[]).await;
    assert_eq!(got.status, 200, "report-only forwards tracking endpoints");
    let rec = proxy.log(2);
    assert_eq!(rec["blocked"], true);
}

#[tokio::test]
async fn unknown_cookies_can_be_allowed_by_policy() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file("p.yaml", "extends: builtin\nunknown_cookies: allow\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(&http1(), &proxy.url("/"), &with(&[])).await;
    assert_eq!(
        got.set_cookie_names(),
        vec!["sessionid", "csrftoken", "mystery_cookie"]
    );
    assert_eq!(
        names(&proxy.log(1)["unknown_cookies"]),
        vec!["mystery_cookie"]
    );
}

#[tokio::test]
async fn site_policy_renames_the_consent_cookie_and_classifies_its_own_cookies() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file(
        "p.yaml",
        "extends: builtin\nconsent_cookie: site_consent\ncookies:\n  - { name: mystery_cookie, category: preferences }\n",
    );
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "site_consent=preferences")]),
    )
    .await;
    assert_eq!(
        got.set_cookie_names(),
        vec!["sessionid", "csrftoken", "mystery_cookie"]
    );
    let got = get(
        &http1(),
        &proxy.url("/"),
        &with(&[("cookie", "cookie_consent=all")]),
    )
    .await;
    assert_eq!(got.set_cookie_names(), vec!["sessionid", "csrftoken"]);
}

#[tokio::test]
async fn http2_clients_get_the_same_decisions() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http2(),
        &proxy.url("/h2"),
        &with(&[
            ("cookie", "cookie_consent=analytics"),
            ("cookie", "_fbp=x; sessionid=y"),
        ]),
    )
    .await;
    assert_eq!(got.version, http::Version::HTTP_2);
    assert_eq!(
        got.set_cookie_names(),
        vec!["_ga", "_gid", "sessionid", "csrftoken"]
    );
    let seen = up.last_seen();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(
        seen.headers.get("cookie").unwrap(),
        "cookie_consent=analytics; sessionid=y"
    );
    assert_eq!(
        seen.headers.get("host").unwrap().to_str().unwrap(),
        proxy.addr.to_string()
    );
    assert!(
        seen.headers
            .get("via")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("2 consent-proxy")
    );
    let rec = proxy.log(1);
    assert_eq!(names(&rec["stripped_request_cookies"]), vec!["_fbp"]);
    assert_eq!(rec["path"], "/h2");
}
