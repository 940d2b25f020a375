//! A real browser for the end-to-end tests: headless Chromium, driven by ChromeDriver over the
//! WebDriver protocol. Every host name the browser resolves (so the Google and Meta tracker hosts
//! under their real names) is mapped by `--host-resolver-rules` to a local TLS server,
//! [`Trackers`], that serves stand-ins for gtag.js and fbevents.js and records each request it
//! gets.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! scripts/test installs them). `CHROMIUM` and `CHROMEDRIVER` override the paths;
//! `CONSENT_PROXY_SKIP_BROWSER=1` skips the browser tests on a machine without a browser.

use super::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Whether the browser tests are to be skipped (`CONSENT_PROXY_SKIP_BROWSER=1`).
pub fn skip_browser() -> bool {
    std::env::var("CONSENT_PROXY_SKIP_BROWSER").is_ok_and(|v| v == "1")
}

/// Domains whose hosts count as trackers in the browser tests.
pub const TRACKER_DOMAINS: [&str; 5] = [
    "googletagmanager.com",
    "google-analytics.com",
    "doubleclick.net",
    "facebook.net",
    "facebook.com",
];

pub fn is_tracker(host: &str) -> bool {
    TRACKER_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Stand-in for gtag.js: sets the GA4 session cookie from JavaScript (the proxy never sees it in
/// a `Set-Cookie`) and sends a measurement hit.
pub const GTAG_JS: &str = r#"(function () {
  if (!/(^|; )_ga=/.test(document.cookie)) {
    document.cookie = "_ga=GA1.1.42.1700000000; path=/; max-age=63072000";
  }
  document.cookie = "_ga_DEMO123=GS1.1.1700000000.1.0.1700000000.0.0.0; path=/; max-age=63072000";
  new Image().src = "https://www.google-analytics.com/g/collect?v=2&tid=G-DEMO123&en=page_view";
})();
"#;

/// Stand-in for fbevents.js: sets `_fbp` from JavaScript and sends the PageView.
pub const FBEVENTS_JS: &str = r#"(function () {
  if (!/(^|; )_fbp=/.test(document.cookie)) {
    document.cookie = "_fbp=fb.1.1700000000000.42; path=/; max-age=7776000";
  }
  new Image().src = "https://www.facebook.com/tr?id=000000000000000&ev=PageView";
})();
"#;

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// The local TLS server that answers for every host the browser resolves.
pub struct Trackers {
    pub port: u16,
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
    pub async fn start() -> Trackers {
        let acceptor = self_signed_acceptor(
            TRACKER_DOMAINS
                .iter()
                .flat_map(|d| [d.to_string(), format!("*.{d}")])
                .collect(),
        );
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

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests to tracker hosts, in arrival order.
    pub fn tracker_requests(&self) -> Vec<String> {
        self.tracker_requests_since(0)
    }

    /// How many requests the server has seen: a mark for [`Trackers::tracker_requests_since`].
    pub fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The requests to tracker hosts after `mark`.
    pub fn tracker_requests_since(&self, mark: usize) -> Vec<String> {
        self.seen()
            .into_iter()
            .skip(mark)
            .filter(|l| is_tracker(l.split(' ').next().unwrap_or("")))
            .collect()
    }
}

/// Waits until `check` holds for the tracker server's log, or fails with it.
pub async fn wait_for_trackers(trackers: &Trackers, what: &str, check: impl Fn(&[String]) -> bool) {
    wait_for_trackers_since(trackers, 0, what, check).await
}

/// Waits until `check` holds for the tracker requests after `mark`, or fails with them.
pub async fn wait_for_trackers_since(
    trackers: &Trackers,
    mark: usize,
    what: &str,
    check: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = trackers.tracker_requests_since(mark);
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

pub fn host_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':', '?']).next())
        .unwrap_or("")
}

/// A ChromeDriver process and one browser session.
pub struct Browser {
    /// Stopped when the browser is dropped, after its session.
    _driver: ChromeDriver,
    base: String,
    session: String,
    /// Whether the session has been ended.
    quit: std::sync::atomic::AtomicBool,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends the session, and so Chromium, if the test did not (after a failed assertion):
    /// stopping ChromeDriver alone would leave Chromium running.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.quit.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(addr) = self.base.strip_prefix("http://") else {
            return;
        };
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            s,
            "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.session
        );
        // ChromeDriver answers once Chromium has quit (and may keep the connection open).
        let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// The key of a web element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub async fn webdriver(method: &str, url: &str, body: Option<Value>) -> Value {
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

/// How a browser is started.
pub struct BrowserOptions<'a> {
    /// Whether pages may run JavaScript. Off, through Chrome's managed content setting (as an
    /// administrator's policy would switch it off): no script of any page runs, while WebDriver's
    /// own scripts (finding, clicking, reading the DOM) still do.
    pub javascript: bool,
    /// Host names mapped to local ports of their own, before every other name is mapped to the
    /// tracker server.
    pub hosts: &'a [(&'a str, u16)],
}

impl Default for BrowserOptions<'_> {
    fn default() -> Self {
        BrowserOptions {
            javascript: true,
            hosts: &[],
        }
    }
}

impl Browser {
    /// Starts ChromeDriver on a random port and opens a headless Chromium session whose host
    /// names all resolve to `127.0.0.1:resolve_port`.
    pub async fn start(resolve_port: u16) -> Browser {
        Browser::start_with(resolve_port, &BrowserOptions::default()).await
    }

    /// Like [`Browser::start`], with options.
    pub async fn start_with(resolve_port: u16, options: &BrowserOptions<'_>) -> Browser {
        let chromium = tool("CHROMIUM", "/usr/bin/chromium");
        assert!(
            std::path::Path::new(&chromium).exists(),
            "no Chromium at {chromium}. The browser tests need Chromium and ChromeDriver: \
             apt-get install chromium chromium-driver (or set CHROMIUM), or set \
             CONSENT_PROXY_SKIP_BROWSER=1 to skip them"
        );
        // Once in a long while ChromeDriver ends without reporting its port (seen once, under
        // load, not reproduced): a second try, before failing with the second one's message.
        let driver = std::panic::catch_unwind(ChromeDriver::start).unwrap_or_else(|_| {
            eprintln!("ChromeDriver did not start; trying once more");
            ChromeDriver::start()
        });
        let base = driver.base.clone();
        let profile = tempfile::tempdir().unwrap();
        let mut rules: Vec<String> = options
            .hosts
            .iter()
            .map(|(host, port)| format!("MAP {host} 127.0.0.1:{port}"))
            .collect();
        rules.push(format!("MAP * 127.0.0.1:{resolve_port}"));
        rules.push("EXCLUDE 127.0.0.1".into());
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
            format!("--host-resolver-rules={}", rules.join(", ")),
        ];
        let mut chrome_options = json!({ "binary": chromium, "args": args });
        if !options.javascript {
            chrome_options["prefs"] =
                json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:chromeOptions": chrome_options
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
            quit: std::sync::atomic::AtomicBool::new(false),
            _profile: profile,
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    /// Navigates and waits for the load event.
    pub async fn open(&self, url: &str) {
        webdriver("POST", &self.at("/url"), Some(json!({ "url": url }))).await;
    }

    /// The URL of the page the browser shows.
    pub async fn url(&self) -> String {
        let v = webdriver("GET", &self.at("/url"), None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn eval(&self, script: &str) -> Value {
        webdriver(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs an asynchronous script: it calls its last argument with the result.
    pub async fn eval_async(&self, script: &str) -> Value {
        webdriver(
            "POST",
            &self.at("/execute/async"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Sets how long an asynchronous script may run.
    pub async fn script_timeout(&self, timeout: Duration) {
        webdriver(
            "POST",
            &self.at("/timeouts"),
            Some(json!({ "script": timeout.as_millis() as u64 })),
        )
        .await;
    }

    /// The WebDriver reference of the first element matching `css`; fails if there is none.
    pub async fn find(&self, css: &str) -> String {
        let v = webdriver(
            "POST",
            &self.at("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {v}"))
            .to_string()
    }

    /// Clicks the first element matching `css` as a user would (WebDriver's element click: it
    /// must be visible and not covered), and waits for a navigation it starts.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        webdriver(
            "POST",
            &self.at(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await;
    }

    pub async fn add_cookie(&self, name: &str, value: &str) {
        webdriver(
            "POST",
            &self.at("/cookie"),
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/" } })),
        )
        .await;
    }

    /// Every cookie of the current page's site, HttpOnly ones too (WebDriver's cookie objects).
    pub async fn cookies(&self) -> Vec<Value> {
        let v = webdriver("GET", &self.at("/cookie"), None).await;
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .clone()
    }

    pub async fn delete_cookies(&self) {
        webdriver("DELETE", &self.at("/cookie"), None).await;
    }

    pub async fn quit(&self) {
        webdriver("DELETE", &self.at(""), None).await;
        self.quit.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The names in `document.cookie`.
    pub async fn cookie_names(&self) -> Vec<String> {
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
    pub async fn resources(&self) -> Vec<String> {
        let v = self
            .eval("return performance.getEntriesByType('resource').map(e => e.name);")
            .await;
        names(&v)
    }
}
