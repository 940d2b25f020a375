//! In a real browser: headless Chromium, driven by ChromeDriver over the WebDriver protocol,
//! loads the demo site through the proxy. Every host name the browser resolves (so the Google and
//! Meta tracker hosts under their real names) is mapped by `--host-resolver-rules` to a local TLS
//! server that serves stand-ins for gtag.js and fbevents.js and records each request it gets.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). `CHROMIUM` and `CHROMEDRIVER` override the paths;
//! `CONSENT_PROXY_SKIP_BROWSER=1` skips this test on a machine without a browser.

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Domains whose hosts count as trackers in this test.
const TRACKER_DOMAINS: [&str; 5] = [
    "googletagmanager.com",
    "google-analytics.com",
    "doubleclick.net",
    "facebook.net",
    "facebook.com",
];

fn is_tracker(host: &str) -> bool {
    TRACKER_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Stand-in for gtag.js: sets the GA4 session cookie from JavaScript (the proxy never sees it in
/// a `Set-Cookie`) and sends a measurement hit.
const GTAG_JS: &str = r#"(function () {
  if (!/(^|; )_ga=/.test(document.cookie)) {
    document.cookie = "_ga=GA1.1.42.1700000000; path=/; max-age=63072000";
  }
  document.cookie = "_ga_DEMO123=GS1.1.1700000000.1.0.1700000000.0.0.0; path=/; max-age=63072000";
  new Image().src = "https://www.google-analytics.com/g/collect?v=2&tid=G-DEMO123&en=page_view";
})();
"#;

/// Stand-in for fbevents.js: sets `_fbp` from JavaScript and sends the PageView.
const FBEVENTS_JS: &str = r#"(function () {
  if (!/(^|; )_fbp=/.test(document.cookie)) {
    document.cookie = "_fbp=fb.1.1700000000000.42; path=/; max-age=7776000";
  }
  new Image().src = "https://www.facebook.com/tr?id=000000000000000&ev=PageView";
})();
"#;

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// The local TLS server that answers for every host the browser resolves.
struct Trackers {
    port: u16,
    /// `host path?query` of every request, in arrival order.
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Trackers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tracker_answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<String>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    seen.lock().unwrap().push(format!("{host} {target}"));
    let (content_type, body): (&str, Bytes) = match req.uri().path() {
        "/gtag/js" => ("text/javascript", Bytes::from_static(GTAG_JS.as_bytes())),
        "/en_US/fbevents.js" => (
            "text/javascript",
            Bytes::from_static(FBEVENTS_JS.as_bytes()),
        ),
        _ => ("image/gif", Bytes::from_static(PIXEL)),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
    Ok(resp)
}

impl Trackers {
    async fn start() -> Trackers {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(
            TRACKER_DOMAINS
                .iter()
                .flat_map(|d| [d.to_string(), format!("*.{d}")])
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task_seen = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let seen = task_seen.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| tracker_answer(req, seen.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Trackers { port, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn tracker_requests(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|l| is_tracker(l.split(' ').next().unwrap_or("")))
            .collect()
    }
}

/// A ChromeDriver process and one browser session.
struct Browser {
    /// Stopped when the browser is dropped, after its session.
    _driver: ChromeDriver,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

async fn webdriver(method: &str, url: &str, body: Option<Value>) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => boxed_json(&b),
            None => empty_body(),
        })
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), http1().request(req))
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {url}: no answer within 60 s"))
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("WebDriver answer is not JSON ({e}): {bytes:?}"));
    assert!(
        status.is_success(),
        "WebDriver {method} {url} failed with {status}: {v}"
    );
    v["value"].clone()
}

impl Browser {
    /// Starts ChromeDriver on a random port and opens a headless Chromium session whose host
    /// names all resolve to `127.0.0.1:resolve_port`.
    async fn start(resolve_port: u16) -> Browser {
        let driver = ChromeDriver::start();
        let base = driver.base.clone();
        let chromium = tool("CHROMIUM", "/usr/bin/chromium");
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--ignore-certificate-errors".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--host-resolver-rules=MAP * 127.0.0.1:{resolve_port}, EXCLUDE 127.0.0.1"),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:chromeOptions": { "binary": chromium, "args": args }
                }
            }
        });
        let created = webdriver("POST", &format!("{base}/session"), Some(caps)).await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_string();
        Browser {
            _driver: driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    /// Navigates and waits for the load event.
    async fn open(&self, url: &str) {
        webdriver("POST", &self.at("/url"), Some(json!({ "url": url }))).await;
    }

    async fn eval(&self, script: &str) -> Value {
        webdriver(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn add_cookie(&self, name: &str, value: &str) {
        webdriver(
            "POST",
            &self.at("/cookie"),
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/" } })),
        )
        .await;
    }

    async fn delete_cookies(&self) {
        webdriver("DELETE", &self.at("/cookie"), None).await;
    }

    async fn quit(&self) {
        webdriver("DELETE", &self.at(""), None).await;
    }

    /// The names in `document.cookie`.
    async fn cookie_names(&self) -> Vec<String> {
        let all = self.eval("return document.cookie;").await;
        all.as_str()
            .unwrap_or("")
            .split(';')
            .filter_map(|c| c.split('=').next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// The URLs of every resource the page fetched (Resource Timing).
    async fn resources(&self) -> Vec<String> {
        let v = self
            .eval("return performance.getEntriesByType('resource').map(e => e.name);")
            .await;
        names(&v)
    }
}

fn host_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':', '?']).next())
        .unwrap_or("")
}

/// Waits until `check` holds for the tracker server's log, or fails with it.
async fn wait_for_trackers(trackers: &Trackers, what: &str, check: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = trackers.tracker_requests();
        if check(&seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the tracker hosts received {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_no_tracker_without_consent_and_all_of_them_with_it() {
    if std::env::var("CONSENT_PROXY_SKIP_BROWSER").is_ok_and(|v| v == "1") {
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
