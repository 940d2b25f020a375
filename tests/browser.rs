//! In a real browser: headless Chromium, driven by ChromeDriver over the WebDriver protocol,
//! loads the demo site through the proxy. Every host name the browser resolves (so the Google and
//! Meta tracker hosts under their real names) is mapped by `--host-resolver-rules` to a local TLS
//! server that serves stand-ins for gtag.js and fbevents.js and records each request it gets.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). `CHROMIUM` and `CHROMEDRIVER` override the paths;
//! `CONSENT_PROXY_SKIP_BROWSER=1` skips this test on a machine without a browser. The browser
//! and the tracker server are in tests/common/browser.rs.

mod common;
use common::browser::*;
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_no_tracker_without_consent_and_all_of_them_with_it() {
    if skip_browser() {
        eprintln!("skipped: CONSENT_PROXY_SKIP_BROWSER=1");
        return;
    }
    let trackers = Trackers::start().await;
    let mut demo = Command::new(bin());
    demo.args(["demo", "--listen", "127.0.0.1:0"]);
    let proxy = Proxy::spawn(demo);
    let proxy_addr: SocketAddr = proxy.addr;
    let home = format!("http://{proxy_addr}/");
    // The demo's walkthrough loads the home page once per line it prints; wait for it, so that
    // the browser's own page loads are the records after those.
    let walkthrough = wait_for_walkthrough(&proxy).await;
    let browser = Browser::start(trackers.port).await;

    // Without consent: the tags arrive neutralized and nothing runs.
    browser.open(&home).await;
    assert_eq!(
        browser
            .eval("return document.querySelector('h1').textContent;")
            .await,
        "Demo shop"
    );
    let neutralized = browser
        .eval(
            "return Array.from(document.querySelectorAll('script[type=\"text/plain\"]'))\
             .map(s => s.dataset.category);",
        )
        .await;
    assert_eq!(
        names(&neutralized),
        ["analytics", "analytics", "marketing"],
        "gtag.js, its inline configuration and the Meta Pixel snippet, neutralized in the DOM"
    );
    assert_eq!(
        browser
            .eval("return [typeof window.gtag, typeof window.fbq, typeof window.dataLayer];")
            .await,
        json!(["undefined", "undefined", "undefined"]),
        "no tag's code ran"
    );
    // Anything still in flight would land in this time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cookies = browser.cookie_names().await;
    assert!(
        !cookies.iter().any(|c| c.starts_with("_ga") || c == "_fbp"),
        "document.cookie without consent: {cookies:?}"
    );
    assert!(
        cookies.contains(&"csrftoken".to_string()),
        "the site's necessary cookie passes: {cookies:?}"
    );
    let fetched = browser.resources().await;
    assert!(
        !fetched.iter().any(|u| is_tracker(host_of(u))),
        "resources fetched without consent: {fetched:?}"
    );
    assert_eq!(
        trackers.tracker_requests(),
        Vec::<String>::new(),
        "requests to tracker hosts without consent (all requests the local server saw: {:?})",
        trackers.seen()
    );

    // With consent: both tags load, set their cookies from JavaScript and send their hits.
    browser.delete_cookies().await;
    browser.add_cookie("cookie_consent", "all").await;
    browser.open(&home).await;
    wait_for_trackers(&trackers, "with consent", |seen| {
        [
            "www.googletagmanager.com /gtag/js?id=G-DEMO123",
            "www.google-analytics.com /g/collect?",
            "connect.facebook.net /en_US/fbevents.js",
            "www.facebook.com /tr?",
        ]
        .iter()
        .all(|want| seen.iter().any(|s| s.starts_with(want)))
    })
    .await;
    let cookies = browser.cookie_names().await;
    for want in ["_ga", "_ga_DEMO123", "_fbp", "cookie_consent"] {
        assert!(
            cookies.iter().any(|c| c == want),
            "{want} missing from document.cookie with consent: {cookies:?}"
        );
    }
    let fetched = browser.resources().await;
    assert!(
        fetched
            .iter()
            .any(|u| u.starts_with("https://www.googletagmanager.com/gtag/js")),
        "{fetched:?}"
    );
    browser.quit().await;

    // After the walkthrough's page loads, the browser's two: one decision record each, with
    // the tags the page arrived with neutralized.
    let home = home_records(&proxy, walkthrough + 2).await;
    assert_eq!(home.len(), walkthrough + 2, "{home:?}");
    let (without, with) = (&home[walkthrough], &home[walkthrough + 1]);
    assert_eq!(without["tags_neutralized"], 4, "{without:?}");
    assert_eq!(without["granted"], json!(["necessary"]), "{without:?}");
    assert_eq!(with["tags_neutralized"], 0, "{with:?}");
    assert_eq!(with["source"], "native", "{with:?}");
}

/// The decision records of home-page loads, once there are at least `n` (or after 10 s).
async fn home_records(proxy: &Proxy, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let home: Vec<Value> = proxy
            .logs(0)
            .into_iter()
            .filter(|r| r["path"] == "/")
            .collect();
        if home.len() >= n || Instant::now() > deadline {
            return home;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the demo has printed its walkthrough and logged its page loads; returns how many.
async fn wait_for_walkthrough(proxy: &Proxy) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let err = proxy.stderr.lock().unwrap().clone();
        if err.iter().any(|l| l.contains("Try it")) {
            break err.iter().filter(|l| l.contains("passed:")).count();
        }
        assert!(
            Instant::now() < deadline,
            "the demo printed no walkthrough: {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(lines >= 3, "walkthrough lines: {lines}");
    assert_eq!(home_records(proxy, lines).await.len(), lines);
    lines
}
