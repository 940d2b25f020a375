//! Real web applications, driven in headless Chromium, directly and through the proxy.
//!
//! Each application in `tests/apps/` (Flask with flask-login and Flask-WTF, the Django admin,
//! Express with express-session, csrf-sync and connect-flash, Starlette's SessionMiddleware) is
//! started on 127.0.0.1 on a free port, and a user's flow through it (log in through a
//! CSRF-protected form, read the flash message, use the session, log out) runs twice in a fresh
//! browser profile: once against the application directly, the control, whose observations
//! must be the expected ones; once through the proxy with the built-in policy and no consent,
//! whose observations must be the same. A cookie the application needs and the catalogue does
//! not know is stripped, and the flow shows where it breaks.
//!
//! Needs `chromium` and `chromedriver`, `python3`, and `node`, with the applications' packages
//! installed as `scripts/test` does (PyPI into `tests/apps/NAME/.deps`, npm into
//! `tests/apps/express/node_modules`). `CHROMIUM` and `CHROMEDRIVER` override the browser's
//! paths; `CONSENT_PROXY_SKIP_BROWSER=1` skips these tests. `CONSENT_PROXY_APPS_POLICY=FILE`
//! runs the proxy with that policy instead of the built-in one, to try a catalogue change.

mod common;
use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One application and one browser at a time: the machine has two cores, and a browser that
/// waits for a CPU makes the waits below the thing being tested.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn skipped() -> bool {
    let skip = std::env::var("CONSENT_PROXY_SKIP_BROWSER").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("skipped: CONSENT_PROXY_SKIP_BROWSER=1");
    }
    skip
}

fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

// ---------------------------------------------------------------------------------------------
// The applications

/// One application process, stopped when dropped.
struct App {
    child: Child,
    port: u16,
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    /// Starts `tests/apps/NAME` and waits (at most 60 s) until it prints `listening on PORT`.
    fn start(name: &'static str) -> App {
        let dir = apps_dir().join(name);
        let mut cmd = if name == "express" {
            assert!(
                dir.join("node_modules/express").is_dir(),
                "{name}: its npm packages are missing; scripts/test installs them \
                 (npm ci --prefix tests/apps/{name})"
            );
            let mut c = Command::new("node");
            c.arg("app.js");
            c
        } else {
            let deps = dir.join(".deps");
            assert!(
                deps.is_dir(),
                "{name}: its PyPI packages are missing; scripts/test installs them \
                 (python3 -m pip install --target tests/apps/{name}/.deps -r \
                 tests/apps/{name}/requirements.txt)"
            );
            let mut c = Command::new("python3");
            c.arg("-B")
                .arg(if name == "django" {
                    "serve.py"
                } else {
                    "app.py"
                })
                .env("PYTHONPATH", deps)
                .env("PYTHONUNBUFFERED", "1");
            c
        };
        let mut child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} application: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let out = output.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("listening on ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
                out.lock().unwrap().push(line);
            }
        });
        let out = output.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                out.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(port) = rx.recv_timeout(Duration::from_millis(100)) {
                break port.unwrap_or_else(|| panic!("{name}: no port in its start-up line"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the {name} application exited with {status}: {:?}",
                    output.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the {name} application did not start within 60 s: {:?}",
                output.lock().unwrap()
            );
        };
        App {
            child,
            port,
            output,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The application's last lines of output, for a failure message.
    fn last_output(&self) -> Vec<String> {
        let all = self.output.lock().unwrap();
        all[all.len().saturating_sub(30)..].to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// The browser: ChromeDriver over the WebDriver protocol

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Sends one WebDriver command; `Err` carries the driver's error value.
async fn webdriver(method: &str, url: &str, body: Option<Value>) -> Result<Value, Value> {
    let body = body.map_or_else(empty_body, |b| {
        Full::new(Bytes::from(b.to_string()))
            .map_err(|never| match never {})
            .boxed()
    });
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), http1().request(req))
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {url}: no answer within 60 s"))
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let ok = resp.status().is_success();
    let bytes = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {url}: no body within 60 s"))
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("WebDriver answer is not JSON ({e}): {bytes:?}"));
    if ok {
        Ok(v["value"].clone())
    } else {
        Err(v["value"].clone())
    }
}

/// A ChromeDriver process.
struct Driver(ChromeDriver);

impl Driver {
    fn start() -> Driver {
        Driver(ChromeDriver::start())
    }

    /// A new headless Chromium with an empty profile: no cookie of an earlier run (cookies
    /// are shared between the ports of one host).
    async fn session(&self) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "timeouts": { "pageLoad": 30000, "script": 10000, "implicit": 0 },
                    "goog:chromeOptions": {
                        "binary": tool("CHROMIUM", "/usr/bin/chromium"),
                        "args": args
                    }
                }
            }
        });
        let created = webdriver("POST", &format!("{}/session", self.0.base), Some(caps))
            .await
            .unwrap_or_else(|e| panic!("no browser session: {e}"));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        Browser {
            at: format!("{}/session/{id}", self.0.base),
            _profile: profile,
        }
    }
}

/// One browser session.
struct Browser {
    at: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        webdriver(method, &format!("{}{path}", self.at), body)
            .await
            .map_err(|e| {
                let msg = e["message"].as_str().unwrap_or("");
                format!(
                    "{} {}",
                    e["error"].as_str().unwrap_or("error"),
                    first_line(msg)
                )
            })
    }

    /// Navigates and waits for the load event.
    async fn open(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    async fn eval(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    async fn element(&self, css: &str) -> Result<String, String> {
        let found = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .map_err(|_| format!("no {css} on the page"))?;
        Ok(found[ELEMENT].as_str().unwrap_or_default().to_string())
    }

    /// Types into a form field.
    async fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let el = self.element(css).await?;
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .await?;
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    async fn click(&self, css: &str) -> Result<(), String> {
        let el = self.element(css).await?;
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await
            .map(drop)
    }

    /// Clicks a button that submits a form, and waits (at most 20 s) until the next page has
    /// loaded: the old document's marker is gone and the new one is complete.
    async fn submit(&self, css: &str) -> Result<(), String> {
        self.eval("window.__appsTestOldPage = true;", json!([]))
            .await?;
        self.click(css).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = self
                .eval(
                    "return window.__appsTestOldPage === undefined \
                     && document.readyState === 'complete';",
                    json!([]),
                )
                .await;
            if done == Ok(Value::Bool(true)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("clicking {css} loaded no new page within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What a person sees: the path and the text of each selector's first element (null when
    /// there is none).
    async fn observe(&self, selectors: &[&str]) -> Value {
        self.eval(
            "const seen = { path: location.pathname + location.search };\
             for (const s of arguments[0]) {\
               const e = document.querySelector(s);\
               seen[s] = e ? e.innerText.trim().replace(/\\s+/g, ' ') : null;\
             }\
             return seen;",
            json!([selectors]),
        )
        .await
        .unwrap_or_else(|e| json!({ "error": e }))
    }

    /// The names of all cookies the browser keeps for the page, HttpOnly ones too.
    async fn cookie_names(&self) -> Value {
        let all = self.cmd("GET", "/cookie", None).await.unwrap_or_default();
        let names: BTreeSet<String> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        json!(names)
    }

    async fn delete_cookie(&self, name: &str) -> Result<(), String> {
        self.cmd("DELETE", &format!("/cookie/{name}"), None)
            .await
            .map(drop)
    }

    async fn quit(&self) {
        let _ = self.cmd("DELETE", "", None).await;
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// The flows. Each records what a person would see after each step; a step that cannot be done
// (a button missing from the page) ends the flow with what went wrong.

type Seen = Vec<(String, Value)>;

const FLASK: [&str; 5] = ["h1", "#flashes", "#who", "#errors", "#notes"];

async fn flask(b: &Browser, base: &str, seen: &mut Seen) -> Result<(), String> {
    b.open(&format!("{base}/private")).await?;
    step(seen, "private page, logged out", b.observe(&FLASK).await);
    b.fill("#username", "alice").await?;
    b.fill("#password", "wonderland").await?;
    b.submit("#submit").await?;
    step(
        seen,
        "log in (CSRF-protected form)",
        b.observe(&FLASK).await,
    );
    b.fill("#note", "first note").await?;
    b.submit("#submit").await?;
    step(
        seen,
        "save a note (CSRF-protected form)",
        b.observe(&FLASK).await,
    );
    b.submit("#logout").await?;
    step(
        seen,
        "log out (CSRF-protected form)",
        b.observe(&FLASK).await,
    );
    b.open(&format!("{base}/login")).await?;
    b.fill("#username", "alice").await?;
    b.fill("#password", "wonderland").await?;
    b.click("#remember").await?;
    b.submit("#submit").await?;
    step(seen, "log in, remember me", b.observe(&FLASK).await);
    step(
        seen,
        "cookies after a remembered login",
        b.cookie_names().await,
    );
    // A new browser session: the session cookie is gone, the remember-me cookie is not.
    b.delete_cookie("session").await?;
    b.open(&format!("{base}/private")).await?;
    step(
        seen,
        "private page, remembered without the session cookie",
        b.observe(&FLASK).await,
    );
    Ok(())
}

const DJANGO: [&str; 5] = ["h1", ".messagelist", ".errornote", ".paginator", "#count"];
const DJANGO_FEEDBACK: [&str; 3] = ["h1", "#messages", "#count"];

async fn django(b: &Browser, base: &str, seen: &mut Seen) -> Result<(), String> {
    b.open(&format!("{base}/admin/")).await?;
    step(seen, "admin, logged out", b.observe(&DJANGO).await);
    b.fill("#id_username", "admin").await?;
    b.fill("#id_password", "admin-password-1").await?;
    b.submit("input[type=submit]").await?;
    step(seen, "log in to the admin", b.observe(&DJANGO).await);
    b.open(&format!("{base}/admin/shop/product/add/")).await?;
    b.fill("#id_name", "Widget").await?;
    b.submit("input[name=_save]").await?;
    step(seen, "add a product", b.observe(&DJANGO).await);
    b.open(&format!("{base}/feedback/")).await?;
    b.fill("#text", "hello").await?;
    b.submit("#submit").await?;
    step(
        seen,
        "send feedback (CSRF-protected form)",
        b.observe(&DJANGO_FEEDBACK).await,
    );
    step(seen, "cookies while logged in", b.cookie_names().await);
    b.open(&format!("{base}/admin/")).await?;
    b.submit("#logout-form button").await?;
    step(seen, "log out of the admin", b.observe(&DJANGO).await);
    step(seen, "cookies at the end", b.cookie_names().await);
    Ok(())
}

const SHOP: [&str; 5] = ["h1", "#flashes", "#who", "#errors", "#cart"];

/// The Express and Starlette applications have the same pages.
async fn shop(b: &Browser, base: &str, seen: &mut Seen) -> Result<(), String> {
    b.open(&format!("{base}/account")).await?;
    step(seen, "account page, logged out", b.observe(&SHOP).await);
    b.fill("#username", "alice").await?;
    b.fill("#password", "wonderland").await?;
    b.submit("#submit").await?;
    step(seen, "log in (CSRF-protected form)", b.observe(&SHOP).await);
    b.submit("#add").await?;
    step(
        seen,
        "add to the cart (CSRF-protected form)",
        b.observe(&SHOP).await,
    );
    b.submit("#add").await?;
    step(seen, "add to the cart again", b.observe(&SHOP).await);
    step(seen, "cookies while logged in", b.cookie_names().await);
    b.submit("#logout").await?;
    step(
        seen,
        "log out (CSRF-protected form)",
        b.observe(&SHOP).await,
    );
    Ok(())
}

fn step(seen: &mut Seen, what: &str, v: Value) {
    seen.push((what.to_string(), v));
}

/// Runs the application's flow in a fresh browser against `base`.
async fn run_flow(app: &str, driver: &Driver, base: &str) -> Seen {
    let b = driver.session().await;
    let mut seen = Seen::new();
    let done = match app {
        "flask" => flask(&b, base, &mut seen).await,
        "django" => django(&b, base, &mut seen).await,
        "express" | "starlette" => shop(&b, base, &mut seen).await,
        other => panic!("no flow for {other}"),
    };
    if let Err(e) = done {
        step(&mut seen, "the flow stopped", json!(e));
    }
    b.quit().await;
    seen
}

fn show(seen: &Seen) -> String {
    seen.iter()
        .map(|(what, v)| format!("  {what}: {v}\n"))
        .collect()
}

/// The first step whose observation differs, as a message.
fn first_difference(got: &Seen, want: &Seen) -> Option<String> {
    for i in 0..got.len().max(want.len()) {
        let (g, w) = (got.get(i), want.get(i));
        if g != w {
            let fmt = |s: Option<&(String, Value)>| {
                s.map_or("(nothing)".to_string(), |(what, v)| format!("{what}: {v}"))
            };
            return Some(format!(
                "step {}: expected\n    {}\n  saw\n    {}",
                i + 1,
                fmt(w),
                fmt(g)
            ));
        }
    }
    None
}

/// The cookie names the proxy stripped or did not know, from its decision log.
fn stripped_by_proxy(proxy: &Proxy) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "stripped_set_cookies",
        "stripped_request_cookies",
        "unknown_cookies",
    ] {
        let names: BTreeSet<String> = proxy.logs(0).iter().flat_map(|r| names(&r[key])).collect();
        out.insert(key.to_string(), json!(names));
    }
    Value::Object(out)
}

/// The control run against the application directly must show `expected`; the run through the
/// proxy (built-in policy, no consent) must show the same.
async fn compare(app: &'static str, expected: Seen) {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let driver = Driver::start();

    let direct = {
        let site = App::start(app);
        let seen = run_flow(app, &driver, &site.url()).await;
        if let Some(diff) = first_difference(&seen, &expected) {
            panic!(
                "{app}, directly (the control): {diff}\nall steps:\n{}\napplication output: {:?}",
                show(&seen),
                site.last_output()
            );
        }
        seen
    };

    let site = App::start(app);
    let policy = std::env::var("CONSENT_PROXY_APPS_POLICY").ok();
    let args: Vec<&str> = match &policy {
        Some(p) => vec!["--policy", p.as_str()],
        None => vec![],
    };
    let proxy = Proxy::start(&site.url(), &args);
    let proxied = run_flow(app, &driver, &proxy.url("")).await;
    let stripped = stripped_by_proxy(&proxy);
    eprintln!(
        "{app}: {} steps, the same directly and through the proxy: {}; proxy: {stripped}; {:.1} s",
        direct.len(),
        first_difference(&proxied, &direct).is_none(),
        started.elapsed().as_secs_f64()
    );
    if let Some(diff) = first_difference(&proxied, &direct) {
        panic!(
            "{app} through the proxy ({}, no consent) differs from the control: {diff}\n\
             all steps through the proxy:\n{}\nthe proxy's decisions: {stripped}\n\
             application output: {:?}",
            policy.as_deref().unwrap_or("built-in policy"),
            show(&proxied),
            site.last_output()
        );
    }
    drop(proxy);
    drop(site);
}

fn seen(steps: &[(&str, Value)]) -> Seen {
    steps
        .iter()
        .map(|(what, v)| (what.to_string(), v.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests, with what a person sees at each step when the application is used directly

/// The texts of `FLASK`'s selectors (and `SHOP`'s: `#cart` in place of `#notes`), an absent
/// element as `None`.
fn page(
    path: &str,
    h1: &str,
    flashes: &str,
    who: &str,
    errors: Option<&str>,
    last: (&str, Option<&str>),
) -> Value {
    json!({
        "path": path, "h1": h1, "#flashes": flashes, "#who": who, "#errors": errors,
        last.0: last.1,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_login_csrf_flash_and_remember_me_work_through_the_proxy() {
    if skipped() {
        return;
    }
    let alice = "logged in as alice";
    let private = "Private page of alice";
    let notes = |n: &'static str| ("#notes", Some(n));
    let expected = seen(&[
        (
            "private page, logged out",
            page(
                "/login?next=%2Fprivate",
                "Log in",
                "Please log in to see this page.",
                "anonymous",
                Some(""),
                ("#notes", None),
            ),
        ),
        (
            "log in (CSRF-protected form)",
            page(
                "/private",
                private,
                "Welcome back, alice!",
                alice,
                Some(""),
                notes(""),
            ),
        ),
        (
            "save a note (CSRF-protected form)",
            page(
                "/private",
                private,
                "Note saved.",
                alice,
                Some(""),
                notes("first note"),
            ),
        ),
        (
            "log out (CSRF-protected form)",
            page(
                "/",
                "Home",
                "You are logged out.",
                "anonymous",
                None,
                ("#notes", None),
            ),
        ),
        (
            "log in, remember me",
            page(
                "/private",
                private,
                "Welcome back, alice!",
                alice,
                Some(""),
                notes("first note"),
            ),
        ),
        (
            "cookies after a remembered login",
            json!(["remember_token", "session"]),
        ),
        (
            "private page, remembered without the session cookie",
            page("/private", private, "", alice, Some(""), notes("")),
        ),
    ]);
    compare("flask", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_admin_login_add_and_messages_work_through_the_proxy() {
    if skipped() {
        return;
    }
    let admin = |path: &str, h1: Option<&str>, messages: Option<&str>, paginator: Option<&str>| {
        json!({
            "path": path, "h1": h1, ".messagelist": messages, ".errornote": null,
            ".paginator": paginator, "#count": null,
        })
    };
    let expected = seen(&[
        (
            "admin, logged out",
            admin("/admin/login/?next=/admin/", None, None, None),
        ),
        (
            "log in to the admin",
            admin("/admin/", Some("Site administration"), None, None),
        ),
        (
            "add a product",
            admin(
                "/admin/shop/product/",
                Some("Select product to change"),
                Some("The product “Widget” was added successfully."),
                Some("1 product"),
            ),
        ),
        (
            "send feedback (CSRF-protected form)",
            json!({
                "path": "/feedback/", "h1": "Feedback",
                "#messages": "Thanks for your feedback: hello",
                "#count": "Feedback sent in this session: 1",
            }),
        ),
        ("cookies while logged in", json!(["csrftoken", "sessionid"])),
        (
            "log out of the admin",
            admin("/admin/logout/", Some("Logged out"), None, None),
        ),
        ("cookies at the end", json!(["csrftoken"])),
    ]);
    compare("django", expected).await;
}

/// The Express and Starlette applications' pages, which are the same.
fn shop_expected(cookies: &[&str]) -> Seen {
    let alice = "logged in as alice";
    let account = "Account of alice";
    let cart = |n: &'static str| ("#cart", Some(n));
    seen(&[
        (
            "account page, logged out",
            page(
                "/login",
                "Log in",
                "Please log in to see this page.",
                "anonymous",
                None,
                ("#cart", None),
            ),
        ),
        (
            "log in (CSRF-protected form)",
            page(
                "/account",
                account,
                "Welcome back, alice!",
                alice,
                None,
                cart("Cart: 0 items"),
            ),
        ),
        (
            "add to the cart (CSRF-protected form)",
            page(
                "/account",
                account,
                "Added to cart.",
                alice,
                None,
                cart("Cart: 1 item"),
            ),
        ),
        (
            "add to the cart again",
            page(
                "/account",
                account,
                "Added to cart.",
                alice,
                None,
                cart("Cart: 2 items"),
            ),
        ),
        ("cookies while logged in", json!(cookies)),
        (
            "log out (CSRF-protected form)",
            page(
                "/",
                "Home",
                "You are logged out.",
                "anonymous",
                None,
                ("#cart", None),
            ),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_session_csrf_flash_and_cart_work_through_the_proxy() {
    if skipped() {
        return;
    }
    compare("express", shop_expected(&["connect.sid"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starlette_session_login_flash_and_cart_work_through_the_proxy() {
    if skipped() {
        return;
    }
    compare("starlette", shop_expected(&["session"])).await;
}
