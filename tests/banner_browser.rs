//! The consent banner and the preference centre in a real browser. Headless Chromium (see
//! tests/common/browser.rs) goes through the whole journey twice, once with JavaScript switched
//! off and once with it on, over the proxy in front of the demo site (Google Analytics and Meta
//! Pixel, and tracking cookies set by the server): the banner on the first visit, Reject all,
//! Settings with analytics only, Accept all, withdrawal in the preference centre, and a choice
//! posted by a page of another site. Each step is checked in the page's DOM, in the browser's
//! cookies and by the requests that reach the tracker hosts, which all resolve to a local server
//! that records them; each choice is looked up in the consent store by the visitor's consent ID.
//! With JavaScript on, axe-core (tests/axe, pinned in its package-lock.json and installed by
//! scripts/test with `npm ci`) checks the page with the banner and the preference centre.
//!
//! Before the journey, the browser loads the demo site once without the proxy: the trackers it
//! reaches there are what the journey's "no tracker" checks would see if the proxy let them run.
//!
//! Needs Chromium, ChromeDriver and tests/axe/node_modules; `CONSENT_PROXY_SKIP_BROWSER=1` skips
//! the test.

mod common;
use common::browser::*;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const POLICY: &str = "extends: builtin\nbanner:\n  enabled: true\n  privacy_policy: /privacy\n";
const PREFS: &str = "/.well-known/consent-proxy/preferences";
/// The other site's host name: the browser resolves it to a local server of its own.
const ATTACKER: &str = "attacker.test";
/// Long enough for anything a loaded page still has in flight to reach the tracker server.
const SETTLE: Duration = Duration::from_millis(1000);

/// The demo site, and the proxy with the banner in front of it, recording choices in SQLite.
struct Site {
    proxy: Proxy,
    /// The demo site itself, without the proxy.
    direct: String,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Site {
    async fn start() -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let direct = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(site_route);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        let config = dir.path().join("config.yaml");
        let db = dir.path().join("consents.db");
        std::fs::write(
            &config,
            format!(
                "consent_records:\n  store: sqlite\n  path: {}\n",
                db.display()
            ),
        )
        .unwrap();
        let proxy = Proxy::start(
            direct.trim_end_matches('/'),
            &["--policy", path_str(&policy), "--config", path_str(&config)],
        );
        Site {
            proxy,
            direct,
            task,
            _dir: dir,
        }
    }

    /// A consent record, by its ID, from the admin listener.
    async fn record(&self, id: &str) -> Value {
        let got = get(
            &http1(),
            &admin(&self.proxy, &format!("/consents/{id}")),
            &[],
        )
        .await;
        assert_eq!(got.status, 200, "consent record {id}: {}", got.body);
        serde_json::from_str(&got.body).unwrap()
    }

    /// Every consent record stored.
    async fn records(&self) -> Vec<Value> {
        let got = get(&http1(), &admin(&self.proxy, "/consents"), &[]).await;
        assert_eq!(got.status, 200, "{}", got.body);
        got.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The demo site (`consent_proxy::demo::site`), and at `/accessible` its home page with the
/// content in a `<main>` landmark: a page without accessibility faults of its own, on which any
/// fault axe-core finds is the banner's.
async fn site_route(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    if req.uri().path() != "/accessible" {
        return consent_proxy::demo::site(req).await;
    }
    let home = consent_proxy::demo::HOME_PAGE;
    let page = if home.contains("<main") {
        home.to_string()
    } else {
        home.replacen("<body>", "<body>\n<main>", 1)
            .replacen("</body>", "</main>\n</body>", 1)
    };
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(page)));
    resp.headers_mut()
        .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
    Ok(resp)
}

/// A page of another site: a form that posts "Accept all" to the proxy's preference centre,
/// with the token of the visitor's own banner (given in the query) as if it had leaked.
struct Attacker {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Attacker {
    async fn start(target: String) -> Attacker {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let target = target.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let token: String = req
                            .uri()
                            .query()
                            .and_then(|q| q.strip_prefix("csrf="))
                            .unwrap_or("")
                            .chars()
                            .filter(char::is_ascii_hexdigit)
                            .collect();
                        let page = format!(
                            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                             <title>Win a prize</title></head><body>\
                             <form method=\"post\" action=\"{target}\">\
                             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                             <input type=\"hidden\" name=\"return\" value=\"/\">\
                             <input type=\"hidden\" name=\"choice\" value=\"accept\">\
                             <button type=\"submit\" id=\"claim\">Claim your prize</button>\
                             </form></body></html>"
                        );
                        let mut resp = http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(page),
                        ));
                        resp.headers_mut()
                            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
                        async { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Attacker { port, task }
    }
}

/// The browser, the journey's mode, and the servers it visits.
struct Journey {
    browser: Browser,
    trackers: Trackers,
    site: Site,
    _attacker: Attacker,
    javascript: bool,
    /// "JavaScript on" or "JavaScript off", for the messages.
    mode: &'static str,
}

/// The tracker requests the demo page's tags make when they run: gtag.js and its hit, then
/// fbevents.js and its PageView.
const GOOGLE_LOADS: [&str; 2] = [
    "www.googletagmanager.com /gtag/js?id=G-DEMO123",
    "www.google-analytics.com /g/collect?",
];
const META_LOADS: [&str; 2] = [
    "connect.facebook.net /en_US/fbevents.js",
    "www.facebook.com /tr?id=000000000000000&ev=PageView",
];
/// The Meta Pixel's `<noscript>` image: the one tracker request a page makes without scripts.
const META_NOSCRIPT: &str = "www.facebook.com /tr?id=000000000000000&ev=PageView&noscript=1";

/// The Meta Pixel's `<noscript>` image as the proxy neutralizes it, in the DOM of a browser
/// without scripting.
const META_NOSCRIPT_NEUTRALIZED: &str = "<img height=\"1\" width=\"1\" style=\"display:none\" \
    data-category=\"marketing\" \
    data-src=\"https://www.facebook.com/tr?id=000000000000000&amp;ev=PageView&amp;noscript=1\">";
/// The banner's stylesheet, before it at the start of the body.
const STYLESHEET_LINK: &str =
    "<link rel=\"stylesheet\" href=\"/.well-known/consent-proxy/consent.css\">";

fn is_meta(request: &str) -> bool {
    request.contains("facebook")
}

impl Journey {
    async fn start(javascript: bool) -> Journey {
        let trackers = Trackers::start().await;
        let site = Site::start().await;
        let attacker = Attacker::start(site.proxy.url(PREFS)).await;
        let browser = Browser::start_with(
            trackers.port,
            &BrowserOptions {
                javascript,
                hosts: &[(ATTACKER, attacker.port)],
            },
        )
        .await;
        Journey {
            browser,
            trackers,
            site,
            _attacker: attacker,
            javascript,
            mode: if javascript {
                "JavaScript on"
            } else {
                "JavaScript off"
            },
        }
    }

    fn home(&self) -> String {
        self.site.proxy.url("/")
    }

    async fn eval(&self, script: &str) -> Value {
        self.browser.eval(script).await
    }

    /// Waits until `script` returns true in the page, or fails with `what`.
    async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.eval(script).await == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {what} (at {}, `{script}` stayed false)",
                self.mode,
                self.browser.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks `css` and waits for the page at `url` (a prefix) to have loaded. The page before
    /// the click is marked first, so that a click leading back to the same address (a form's
    /// redirect to `/` from `/`) is not taken as done before the new page replaced the old.
    async fn click_to(&self, css: &str, url: &str) {
        self.eval("window.__cpBeforeClick = true; return true;")
            .await;
        self.browser.click(css).await;
        let script = format!(
            "return window.__cpBeforeClick === undefined && location.href.startsWith({}) \
             && document.readyState === 'complete';",
            json!(url)
        );
        self.wait_until(&format!("clicking {css} leads to {url}"), &script)
            .await;
    }

    /// The tracker requests after `mark`, once the page has settled.
    async fn settled_trackers(&self, mark: usize) -> Vec<String> {
        tokio::time::sleep(SETTLE).await;
        self.trackers.tracker_requests_since(mark)
    }

    async fn assert_no_trackers_since(&self, mark: usize, when: &str) {
        let seen = self.settled_trackers(mark).await;
        assert_eq!(
            seen,
            Vec::<String>::new(),
            "{}: {when}: the tracker hosts received requests",
            self.mode
        );
    }

    /// Waits until every request in `want` (prefixes) reached the tracker hosts after `mark`.
    async fn wait_for_loads(&self, mark: usize, want: &[&str], when: &str) {
        wait_for_trackers_since(
            &self.trackers,
            mark,
            &format!("{}: {when}", self.mode),
            |seen| want.iter().all(|w| seen.iter().any(|s| s.starts_with(w))),
        )
        .await;
    }

    /// The browser's cookies for the proxy's site (HttpOnly ones too): name → value.
    async fn cookies(&self) -> Vec<(String, String)> {
        self.browser
            .cookies()
            .await
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    async fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .await
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    /// Fails unless the browser holds each of `present` and none of `absent`.
    async fn assert_cookies(&self, present: &[&str], absent: &[&str], when: &str) {
        let names: Vec<String> = self.cookies().await.into_iter().map(|(n, _)| n).collect();
        for want in present {
            assert!(
                names.iter().any(|n| n == want),
                "{}: {when}: cookie {want} missing from {names:?}",
                self.mode
            );
        }
        for unwanted in absent {
            assert!(
                !names.iter().any(|n| n == unwanted),
                "{}: {when}: cookie {unwanted} present in {names:?}",
                self.mode
            );
        }
    }

    /// The consent cookie's value and the record its consent ID names, which must be one new
    /// since `previous` (an earlier ID).
    async fn choice(&self, previous: Option<&str>, when: &str) -> (String, String, Value) {
        let value = self
            .cookie("cookie_consent")
            .await
            .unwrap_or_else(|| panic!("{}: {when}: no cookie_consent", self.mode));
        // The choice, without the time it was made (`none@1796000000`).
        let value = match value.split_once('@') {
            Some((list, at)) if at.parse::<u64>().is_ok() => list.to_string(),
            _ => panic!("{}: {when}: an undated choice {value:?}", self.mode),
        };
        let all = self.browser.cookies().await;
        let id_cookie = all
            .iter()
            .find(|c| c["name"] == "cookie_consent_id")
            .unwrap_or_else(|| panic!("{}: {when}: no cookie_consent_id in {all:?}", self.mode));
        assert_eq!(
            id_cookie["httpOnly"], true,
            "{}: {when}: the consent ID is HttpOnly: {id_cookie}",
            self.mode
        );
        let id = id_cookie["value"].as_str().unwrap().to_string();
        assert_ne!(
            Some(id.as_str()),
            previous,
            "{}: {when}: each choice has a record of its own",
            self.mode
        );
        let record = self.site.record(&id).await;
        assert_eq!(record["id"], id.as_str());
        (value, id, record)
    }

    /// The categories (`data-category`) of the neutralized scripts in the page.
    async fn neutralized(&self) -> Vec<String> {
        names(
            &self
                .eval(
                    "return Array.from(document.querySelectorAll('script[type=\"text/plain\"]'))\
                     .map(s => s.dataset.category);",
                )
                .await,
        )
    }

    /// `typeof` of the globals the tags' code defines when it runs.
    async fn tag_globals(&self) -> Value {
        self.eval("return [typeof window.gtag, typeof window.dataLayer, typeof window.fbq];")
            .await
    }

    /// Every tag of the page neutralized (gtag.js, its inline configuration, the Meta Pixel
    /// snippet) and none of their code run.
    async fn assert_every_tag_held(&self, when: &str) {
        assert_eq!(
            self.neutralized().await,
            ["analytics", "analytics", "marketing"],
            "{}: {when}: gtag.js, its inline configuration and the Meta Pixel snippet, neutralized",
            self.mode
        );
        assert_eq!(
            self.tag_globals().await,
            json!(["undefined", "undefined", "undefined"]),
            "{}: {when}: no tag's code ran",
            self.mode
        );
    }

    /// The state of the preference centre's three boxes: preferences, analytics, marketing.
    async fn boxes(&self) -> Value {
        self.eval(
            "return ['preferences', 'analytics', 'marketing']\
             .map(c => document.getElementById('cp-' + c).checked);",
        )
        .await
    }

    /// The home page through the proxy shows the banner or the settings link (not both).
    async fn assert_banner(&self, shown: bool, when: &str) {
        let v = self
            .eval(
                "return [!!document.getElementById('consent-proxy-banner'), \
                 !!document.querySelector('.cp-settings-link')];",
            )
            .await;
        assert_eq!(
            v,
            json!([shown, !shown]),
            "{}: {when}: [banner, settings link]",
            self.mode
        );
    }

    async fn h1(&self) -> Value {
        self.eval(
            "return document.querySelector('h1') && document.querySelector('h1').textContent;",
        )
        .await
    }
}

/// The demo site without the proxy: its tags run and reach the trackers (or, without
/// JavaScript, its `<noscript>` pixel does), which shows that the journey's checks can see them.
async fn without_the_proxy(j: &Journey) {
    let mark = j.trackers.mark();
    j.browser.open(&j.site.direct).await;
    assert_eq!(j.h1().await, "Demo shop");
    if j.javascript {
        let all: Vec<&str> = GOOGLE_LOADS.iter().chain(&META_LOADS).copied().collect();
        j.wait_for_loads(mark, &all, "the demo site without the proxy")
            .await;
        assert_eq!(
            j.tag_globals().await,
            json!(["function", "object", "function"])
        );
    } else {
        assert_eq!(
            j.settled_trackers(mark).await,
            [META_NOSCRIPT],
            "{}: without the proxy, the <noscript> pixel is the only tracker request: no script \
             runs, although gtag.js is in the page as the site wrote it",
            j.mode
        );
        assert_eq!(
            j.eval(
                "const s = document.querySelector('script[src^=\"https://www.googletagmanager.com/gtag/js\"]');\
                 return s && !s.hasAttribute('type');"
            )
            .await,
            true
        );
        assert_eq!(
            j.tag_globals().await,
            json!(["undefined", "undefined", "undefined"]),
            "{}: the page's scripts did not run",
            j.mode
        );
    }
    // The site's cookies are the proxy's site's too (cookies do not tell ports apart).
    j.browser.delete_cookies().await;
    assert_eq!(j.cookies().await, Vec::<(String, String)>::new());
}

/// Step 1, the first visit: the banner, the tags neutralized, no tracker request.
async fn first_visit(j: &Journey) {
    let mark = j.trackers.mark();
    j.browser.open(&j.home()).await;
    assert_eq!(j.h1().await, "Demo shop");
    // Right after `<body>`, behind its stylesheet. Without scripting, the parser reads the
    // head's `<noscript>` as markup: its image (neutralized) starts the body, before the banner.
    let mut before = vec![json!(STYLESHEET_LINK)];
    if !j.javascript {
        before.insert(0, json!(META_NOSCRIPT_NEUTRALIZED));
    }
    let banner = j
        .eval(
            "const b = document.getElementById('consent-proxy-banner');\
             if (!b) return null;\
             const r = b.getBoundingClientRect();\
             return {\
               before: Array.from(document.body.children).slice(0, Array.from(document.body.children).indexOf(b)).map(e => e.outerHTML),\
               content_after: b.parentElement === document.body && !!(b.compareDocumentPosition(document.querySelector('h1')) & Node.DOCUMENT_POSITION_FOLLOWING),\
               position: getComputedStyle(b).position,\
               visible: r.height > 0 && r.top < innerHeight && r.bottom <= innerHeight + 1,\
               buttons: Array.from(b.querySelectorAll('button')).map(e => [e.value, e.textContent]),\
               settings: b.querySelector('a.cp-button').getAttribute('href'),\
               token: b.querySelector('input[name=csrf]').value.length,\
             };",
        )
        .await;
    assert_eq!(
        banner,
        json!({
            "before": before,
            "content_after": true,
            "position": "fixed",
            "visible": true,
            "buttons": [["accept", "Accept all"], ["reject", "Reject all"]],
            "settings": format!("{PREFS}?return=%2F"),
            "token": 32,
        }),
        "{}: the banner, right after <body>, styled and in view",
        j.mode
    );
    j.assert_every_tag_held("first visit").await;
    j.assert_no_trackers_since(mark, "first visit").await;
    let fetched = j.browser.resources().await;
    assert!(
        !fetched.iter().any(|u| is_tracker(host_of(u))),
        "{}: resources fetched on the first visit: {fetched:?}",
        j.mode
    );
    j.assert_cookies(
        &["consent_proxy_csrf", "csrftoken", "sessionid"],
        &["cookie_consent", "cookie_consent_id", "_ga", "_gid", "_fbp"],
        "first visit",
    )
    .await;

    // The banner's Settings link opens the preference centre with no box ticked; back again.
    j.click_to(
        "#consent-proxy-banner a.cp-button",
        &j.site.proxy.url(PREFS),
    )
    .await;
    assert_eq!(j.h1().await, "Cookie settings", "{}", j.mode);
    assert_eq!(j.boxes().await, json!([false, false, false]), "{}", j.mode);
    j.click_to(".cp-page a[href=\"/\"]", &j.home()).await;
    j.assert_banner(true, "back from the settings without a choice")
        .await;
    j.assert_no_trackers_since(mark, "first visit and settings")
        .await;
}

/// Step 2, Reject all: recorded; no banner; still no tracker request.
async fn reject_all(j: &Journey) -> String {
    let mark = j.trackers.mark();
    j.click_to("#consent-proxy-banner button[value=reject]", &j.home())
        .await;
    assert_eq!(j.h1().await, "Demo shop");
    j.assert_banner(false, "after Reject all").await;
    j.assert_every_tag_held("after Reject all").await;
    j.assert_no_trackers_since(mark, "after Reject all").await;
    let (value, id, record) = j.choice(None, "after Reject all").await;
    assert_eq!(value, "none");
    assert_eq!(record["kind"], "reject", "{record}");
    assert_eq!(
        record["choices"],
        json!({"necessary": true, "preferences": false, "analytics": false, "marketing": false}),
        "{record}"
    );
    assert_eq!(record["path"], "/", "{record}");
    j.assert_cookies(&[], &["_ga", "_gid", "_fbp"], "after Reject all")
        .await;
    id
}

/// Step 3, Settings with analytics only: Google Analytics runs (with JavaScript), Meta does
/// not.
async fn analytics_only(j: &Journey, previous: &str) -> String {
    let centre = j.site.proxy.url(PREFS);
    j.click_to(".cp-settings-link", &format!("{centre}?return=%2F"))
        .await;
    assert_eq!(
        j.boxes().await,
        json!([false, false, false]),
        "{}: after Reject all",
        j.mode
    );
    j.browser.click("#cp-analytics").await;
    assert_eq!(j.boxes().await, json!([false, true, false]), "{}", j.mode);
    j.click_to("button[value=save]", &format!("{centre}?saved=1"))
        .await;
    assert_eq!(
        j.eval("return document.querySelector('.cp-saved') !== null;")
            .await,
        true
    );
    assert_eq!(
        j.boxes().await,
        json!([false, true, false]),
        "{}: the saved choice",
        j.mode
    );
    let (value, id, record) = j.choice(Some(previous), "after saving analytics").await;
    assert_eq!(value, "analytics");
    assert_eq!(record["kind"], "settings", "{record}");
    assert_eq!(
        record["choices"],
        json!({"necessary": true, "preferences": false, "analytics": true, "marketing": false}),
        "{record}"
    );

    let mark = j.trackers.mark();
    j.click_to(".cp-page a[href=\"/\"]", &j.home()).await;
    j.assert_banner(false, "with analytics").await;
    assert_eq!(
        j.neutralized().await,
        ["marketing"],
        "{}: with analytics, only the Meta Pixel is neutralized",
        j.mode
    );
    assert_eq!(
        j.eval(
            "const g = document.querySelector('script[src^=\"https://www.googletagmanager.com/gtag/js\"]');\
             const c = Array.from(document.scripts).find(s => s.text.includes(\"gtag('config'\"));\
             return [!!g && !g.hasAttribute('type'), !!c && !c.hasAttribute('type')];"
        )
        .await,
        json!([true, true]),
        "{}: gtag.js and its configuration, intact",
        j.mode
    );
    if j.javascript {
        j.wait_for_loads(
            mark,
            &GOOGLE_LOADS,
            "with analytics, Google Analytics loads",
        )
        .await;
        let seen = j.settled_trackers(mark).await;
        assert!(
            !seen.iter().any(|s| is_meta(s)),
            "{}: with analytics only, Meta was reached: {seen:?}",
            j.mode
        );
        assert_eq!(
            j.tag_globals().await,
            json!(["function", "object", "undefined"])
        );
        j.assert_cookies(&["_ga", "_ga_DEMO123", "_gid"], &["_fbp"], "with analytics")
            .await;
    } else {
        j.assert_no_trackers_since(
            mark,
            "with analytics, scripts off: gtag.js is allowed but does not run",
        )
        .await;
        assert_eq!(
            j.tag_globals().await,
            json!(["undefined", "undefined", "undefined"]),
            "{}: the intact gtag configuration did not run",
            j.mode
        );
        // The site's own Set-Cookie for Google Analytics passes; Meta's does not.
        j.assert_cookies(&["_ga", "_gid"], &["_fbp", "_ga_DEMO123"], "with analytics")
            .await;
    }
    id
}

/// Step 4, Accept all in the preference centre: every tracker loads (with JavaScript).
async fn accept_all(j: &Journey, previous: &str) -> String {
    let centre = j.site.proxy.url(PREFS);
    j.click_to(".cp-settings-link", &centre).await;
    assert_eq!(j.boxes().await, json!([false, true, false]), "{}", j.mode);
    j.click_to(
        ".cp-form button[value=accept]",
        &format!("{centre}?saved=1"),
    )
    .await;
    assert_eq!(j.boxes().await, json!([true, true, true]), "{}", j.mode);
    let (value, id, record) = j.choice(Some(previous), "after Accept all").await;
    assert_eq!(value, "all");
    assert_eq!(record["kind"], "accept", "{record}");
    assert_eq!(
        record["choices"],
        json!({"necessary": true, "preferences": true, "analytics": true, "marketing": true}),
        "{record}"
    );

    let mark = j.trackers.mark();
    j.click_to(".cp-page a[href=\"/\"]", &j.home()).await;
    assert_eq!(
        j.neutralized().await,
        Vec::<String>::new(),
        "{}: with everything granted, nothing is neutralized",
        j.mode
    );
    if j.javascript {
        let all: Vec<&str> = GOOGLE_LOADS.iter().chain(&META_LOADS).copied().collect();
        j.wait_for_loads(mark, &all, "after Accept all, every tracker loads")
            .await;
        assert_eq!(
            j.tag_globals().await,
            json!(["function", "object", "function"])
        );
        j.assert_cookies(
            &["_ga", "_ga_DEMO123", "_gid", "_fbp"],
            &[],
            "after Accept all",
        )
        .await;
    } else {
        let seen = j.settled_trackers(mark).await;
        assert_eq!(
            seen,
            [META_NOSCRIPT],
            "{}: after Accept all without scripts, the Meta <noscript> pixel is the only \
             tracker request",
            j.mode
        );
        j.assert_cookies(
            &["_ga", "_gid", "_fbp"],
            &["_ga_DEMO123"],
            "after Accept all",
        )
        .await;
    }
    id
}

/// Step 5, withdrawal (Reject all in the preference centre): the trackers' cookies expire at
/// once, and the trackers stop.
async fn withdraw(j: &Journey, previous: &str) {
    let centre = j.site.proxy.url(PREFS);
    j.click_to(".cp-settings-link", &centre).await;
    assert_eq!(j.boxes().await, json!([true, true, true]), "{}", j.mode);
    let mark = j.trackers.mark();
    j.click_to(
        ".cp-form button[value=reject]",
        &format!("{centre}?saved=1"),
    )
    .await;
    assert_eq!(j.boxes().await, json!([false, false, false]), "{}", j.mode);
    let (value, _, record) = j.choice(Some(previous), "after withdrawal").await;
    assert_eq!(value, "none");
    assert_eq!(record["kind"], "withdrawal", "{record}");
    assert_eq!(
        record["choices"],
        json!({"necessary": true, "preferences": false, "analytics": false, "marketing": false}),
        "{record}"
    );
    // Expired by the answer to the post: the server's cookies and those the tags' JavaScript set.
    j.assert_cookies(
        &["csrftoken", "sessionid"],
        &["_ga", "_ga_DEMO123", "_gid", "_fbp"],
        "after withdrawal",
    )
    .await;

    j.click_to(".cp-page a[href=\"/\"]", &j.home()).await;
    j.browser.open(&j.home()).await;
    j.assert_banner(false, "after withdrawal").await;
    j.assert_every_tag_held("after withdrawal").await;
    j.assert_no_trackers_since(mark, "after withdrawal and two page loads")
        .await;
    j.assert_cookies(
        &[],
        &["_ga", "_ga_DEMO123", "_gid", "_fbp"],
        "after reloading",
    )
    .await;
}

/// Step 6: a choice posted from another site's page is refused: 403, no cookie, no record.
async fn cross_site_post(j: &Journey) {
    j.browser.delete_cookies().await;
    j.browser.open(&j.home()).await;
    j.assert_banner(true, "a new visitor").await;
    let token = j
        .eval("return document.querySelector('#consent-proxy-banner input[name=csrf]').value;")
        .await;
    let token = token.as_str().unwrap().to_string();
    let records = j.site.records().await.len();
    let logged = j.site.proxy.logs(0).len();

    j.browser
        .open(&format!("http://{ATTACKER}/?csrf={token}"))
        .await;
    assert_eq!(
        j.eval("return [location.host, document.title];").await,
        json!([ATTACKER, "Win a prize"]),
        "{}: the other site's page",
        j.mode
    );
    j.click_to("#claim", &j.site.proxy.url(PREFS)).await;
    assert_eq!(j.h1().await, "403 Forbidden", "{}", j.mode);
    let text = j.eval("return document.body.textContent;").await;
    assert!(
        text.as_str().unwrap().contains("Nothing was changed"),
        "{}: {text}",
        j.mode
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let post = loop {
        let found = j
            .site
            .proxy
            .logs(0)
            .into_iter()
            .skip(logged)
            .find(|r| r["method"] == "POST" && r["path"] == PREFS);
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the post was not logged",
            j.mode
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(post["status"], 403, "{}: {post}", j.mode);
    assert_eq!(post["error"], "cross_site_post", "{}: {post}", j.mode);
    j.assert_cookies(
        &["consent_proxy_csrf"],
        &["cookie_consent", "cookie_consent_id"],
        "after the other site's post",
    )
    .await;
    assert_eq!(
        j.site.records().await.len(),
        records,
        "{}: a record was stored for the other site's post",
        j.mode
    );
    j.browser.open(&j.home()).await;
    j.assert_banner(true, "after the other site's post").await;
}

/// axe-core's script, and the version package-lock.json pins.
fn axe() -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe");
    let script: PathBuf = dir.join("node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&script).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}). Install axe-core with `npm ci --prefix tests/axe` (scripts/test \
             does), or set CONSENT_PROXY_SKIP_BROWSER=1 to skip the browser tests",
            script.display()
        )
    });
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package-lock.json")).unwrap())
            .unwrap();
    let pinned = lock["packages"]["node_modules/axe-core"]["version"]
        .as_str()
        .expect("axe-core in tests/axe/package-lock.json")
        .to_string();
    (source, pinned)
}

/// Step 7: axe-core finds no violation on the page with the banner, nor on the preference
/// centre.
async fn accessibility(j: &Journey, axe: &(String, String)) {
    let (source, pinned) = axe;
    j.browser.script_timeout(Duration::from_secs(30)).await;
    let mut found = Vec::new();
    // The whole page, or the banner alone: the demo's home page has faults of its own (no
    // `<main>`, content outside landmarks) that are not the banner's.
    for (what, url, context) in [
        (
            "the page with the banner",
            j.site.proxy.url("/accessible"),
            "document",
        ),
        ("the preference centre", j.site.proxy.url(PREFS), "document"),
        (
            "the banner on the demo's home page",
            j.home(),
            "{ include: [['#consent-proxy-banner']] }",
        ),
    ] {
        j.browser.open(&url).await;
        if !url.contains(PREFS) {
            j.assert_banner(true, "before axe").await;
        }
        let version = j.eval(&format!("{source}\n;return axe.version;")).await;
        assert_eq!(
            version,
            pinned.as_str(),
            "the installed axe-core is not the one tests/axe/package-lock.json pins: run \
             `npm ci --prefix tests/axe`"
        );
        let result = j
            .browser
            .eval_async(&format!(
                "const done = arguments[arguments.length - 1];\
                 axe.run({context}, {{ resultTypes: ['violations'] }})\
                   .then(r => done({{ passes: r.passes.length, violations: r.violations.map(v => ({{\
                     id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,\
                     nodes: v.nodes.map(n => ({{ target: n.target, html: n.html,\
                       summary: n.failureSummary }})) }})) }}))\
                   .catch(e => done({{ error: String(e) }}));",
            ))
            .await;
        assert!(
            result["error"].is_null(),
            "axe-core failed on {what}: {result}"
        );
        assert!(
            result["passes"].as_u64().unwrap_or(0) > 0,
            "axe-core checked nothing on {what}: {result}"
        );
        for v in result["violations"].as_array().unwrap() {
            found.push(format!(
                "{what} ({url}): {}",
                serde_json::to_string_pretty(v).unwrap()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "axe-core {} found {} violation(s):\n{}",
        pinned,
        found.len(),
        found.join("\n")
    );
}

async fn journey(javascript: bool) {
    if skip_browser() {
        eprintln!("skipped: CONSENT_PROXY_SKIP_BROWSER=1");
        return;
    }
    // Missing axe-core fails before anything starts.
    let axe = javascript.then(axe);
    let j = Journey::start(javascript).await;
    without_the_proxy(&j).await;
    first_visit(&j).await;
    let rejected = reject_all(&j).await;
    let analytics = analytics_only(&j, &rejected).await;
    let accepted = accept_all(&j, &analytics).await;
    withdraw(&j, &accepted).await;
    cross_site_post(&j).await;
    if let Some(axe) = &axe {
        accessibility(&j, axe).await;
    }
    j.browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_journey_with_javascript_off() {
    journey(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_journey_with_javascript_on() {
    journey(true).await;
}
