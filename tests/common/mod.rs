//! Real servers on loopback for the end-to-end tests: an upstream site (hyper), the proxy as a
//! child process, and HTTP/1.1 and HTTP/2 clients.
#![allow(dead_code)]
pub mod browser;
pub mod postgres;
pub mod tcf;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub type UpBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub version: http::Version,
    pub headers: HeaderMap,
}

/// The upstream site. Routes:
/// - `/stream`: sends "first;" then waits for `release` before sending "rest".
/// - `/upload`: reports when its first request-body chunk arrived through `first_chunk`, then
///   reads the rest and answers with the byte count.
/// - `/tracked-csp`: the demo page with a Content-Security-Policy that allows scripts by nonce,
///   or the one in the request's `x-csp` header.
/// - `/huge-attribute`: HTML with two tracker tags, the second with a 300 KiB attribute, in
///   16 KiB frames.
/// - `/tracked-paused`: the demo page in two halves, 150 ms apart.
/// - `/nested-srcdoc`: a Google tag inside `<iframe srcdoc>` documents nested 400 deep.
/// - `/slow`: answers after 3 s.
/// - `/ws`: answers an upgrade with 101 and echoes every byte.
/// - anything else: 200 `text/html`, one `Set-Cookie` per `x-set-cookie` request header.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub hits: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
    pub first_chunk: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let first_chunk = Arc::new(Notify::new());
        let (s, h, r, f) = (
            seen.clone(),
            hits.clone(),
            release.clone(),
            first_chunk.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, h, r, f) = (s.clone(), h.clone(), r.clone(), f.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        upstream_route(req, s.clone(), h.clone(), r.clone(), f.clone())
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            hits,
            release,
            first_chunk,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

fn boxed(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

async fn upstream_route(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
    release: Arc<Notify>,
    first_chunk: Arc<Notify>,
) -> Result<Response<UpBody>, std::convert::Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(Seen {
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: req.version(),
        headers: req.headers().clone(),
    });
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/stream" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                    .await;
                release.notified().await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"rest")))).await;
            });
            let stream = tokio_stream_from(rx);
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            r
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            let mut first = true;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(d) = frame.data_ref() {
                    total += d.len();
                    if first {
                        first = false;
                        first_chunk.notify_one();
                    }
                }
            }
            Response::new(boxed(format!("received {total}")))
        }
        "/big" => {
            // 50 MiB of HTML in 64 KiB chunks, with a tracker tag in every chunk.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
            tokio::spawn(async move {
                let block = "<div><p>filler text for a very long page</p></div>".repeat(1300);
                let chunk = format!(
                    "{block}<script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script>"
                );
                let chunk = Bytes::from(chunk);
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(
                        b"<!doctype html><html><body>",
                    ))))
                    .await;
                let mut sent = 0usize;
                while sent < 50 << 20 {
                    sent += chunk.len();
                    if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                        return;
                    }
                }
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"</body></html>"))))
                    .await;
            });
            let mut r = Response::new(StreamBody::new(tokio_stream_from(rx)).boxed());
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            r
        }
        "/huge-attribute" => {
            // A tracker tag, then one with a 300 KiB attribute that the rewriter must hold whole
            // to judge it.
            let page = format!(
                "<!doctype html><html><body><script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script>\
                 <div>filler</div>\
                 <script data-blob=\"{}\" src=\"https://connect.facebook.net/en_US/fbevents.js\"></script><p>end</p></body></html>",
                "x".repeat(300 << 10)
            );
            // In 16 KiB frames, as a network delivers it: the attribute spans many of them.
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Bytes::from(page)
                .chunks(16 << 10)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let mut r = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            r
        }
        "/tracked-paused" => {
            let page = consent_proxy::demo::HOME_PAGE.as_bytes();
            let (first, rest) = page.split_at(page.len() / 2);
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(first)))).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(rest)))).await;
            });
            let mut r = Response::new(StreamBody::new(tokio_stream_from(rx)).boxed());
            r.headers_mut()
                .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(boxed("slow"))
        }
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on_upgrade.await {
                    let mut io = TokioIo::new(up);
                    let (mut r, mut w) = tokio::io::split(&mut io);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let mut r = Response::new(boxed(""));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            r
        }
        "/nested-srcdoc" => {
            let mut doc =
                r#"<script src="https://www.googletagmanager.com/gtag/js"></script>"#.to_string();
            for _ in 0..400 {
                let escaped = doc.replace('&', "&amp;").replace('"', "&quot;");
                doc = format!(r#"<iframe srcdoc="{escaped}"></iframe>"#);
            }
            let mut r = Response::new(boxed(doc));
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            r
        }
        "/tracked-csp" => {
            let mut r = Response::new(boxed(consent_proxy::demo::HOME_PAGE));
            r.headers_mut()
                .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
            let csp = req.headers().get("x-csp").cloned().unwrap_or_else(|| {
                http::HeaderValue::from_static(
                    "default-src 'self'; script-src 'nonce-c3BhcmtsZQ==' 'strict-dynamic'",
                )
            });
            r.headers_mut().insert("content-security-policy", csp);
            r
        }
        "/tracked" | "/tracked.json" => {
            let mut r = Response::new(boxed(consent_proxy::demo::HOME_PAGE));
            let ct = if path == "/tracked.json" {
                "application/json"
            } else {
                "text/html; charset=utf-8"
            };
            r.headers_mut().insert("content-type", ct.parse().unwrap());
            r.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
            r
        }
        p if p.starts_with("/tracked.") => {
            // The page in a content coding: /tracked.gzip, .deflate, .br, .zstd; .deflate-raw
            // (labelled deflate, sent as raw DEFLATE as some servers do); or .compress (which is
            // labelled but sent as it is: a coding the proxy cannot decode).
            let coding = &p["/tracked.".len()..];
            let page = consent_proxy::demo::HOME_PAGE.as_bytes();
            let body = encode(coding, page).await;
            let mut r = Response::new(boxed(body));
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            r.headers_mut().insert(
                "content-encoding",
                coding.trim_end_matches("-raw").parse().unwrap(),
            );
            r
        }
        // A file of tests/fixtures, as an HTML page.
        p if p.starts_with("/fixtures/") && !p.contains("..") => {
            let file = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(p.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(bytes) => {
                    let mut r = Response::new(boxed(bytes));
                    r.headers_mut()
                        .insert("content-type", "text/html".parse().unwrap());
                    r
                }
                Err(_) => {
                    let mut r = Response::new(boxed("no such fixture"));
                    *r.status_mut() = http::StatusCode::NOT_FOUND;
                    r
                }
            }
        }
        _ => {
            let mut r = Response::new(boxed("<!doctype html><title>upstream</title>"));
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            for v in req.headers().get_all("x-set-cookie") {
                r.headers_mut().append("set-cookie", v.clone());
            }
            if path == "/hop" {
                r.headers_mut()
                    .insert("connection", "x-up-secret".parse().unwrap());
                r.headers_mut().insert("x-up-secret", "1".parse().unwrap());
                r.headers_mut()
                    .insert("keep-alive", "timeout=5".parse().unwrap());
            }
            r
        }
    };
    Ok(resp)
}

/// A URL on the proxy's admin listener.
pub fn admin(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{}", proxy.admin.expect("an admin listener"), path)
}

/// The value of one metric line (`name{labels} value`), or 0 if absent.
pub async fn metric(proxy: &Proxy, series: &str) -> f64 {
    let got = get(&http1(), &admin(proxy, "/metrics"), &[]).await;
    got.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until a metric of the proxy reaches `at_least` (10 s at most).
pub async fn wait_for_metric(proxy: &Proxy, series: &str, at_least: f64) {
    wait_until(&format!("{series} never reached {at_least}"), async || {
        metric(proxy, series).await >= at_least
    })
    .await;
}

/// Waits until `done` (10 s at most, asking every 20 ms); `failure` says what did not happen.
pub async fn wait_until(failure: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replaces a file the way editors do: write a temporary file, rename it over the old one.
pub fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `data` in a content coding.
pub async fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{
        BrotliEncoder, DeflateEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder,
    };
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match coding {
        "gzip" => GzipEncoder::new(data).read_to_end(&mut out).await,
        "deflate" => ZlibEncoder::new(data).read_to_end(&mut out).await,
        "deflate-raw" => DeflateEncoder::new(data).read_to_end(&mut out).await,
        "br" => BrotliEncoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdEncoder::new(data).read_to_end(&mut out).await,
        _ => {
            out.extend_from_slice(data);
            Ok(out.len())
        }
    }
    .unwrap();
    out
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A free loopback port with nothing listening on it.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The proxy, running as a child process.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin listener, when the command serves one.
    pub admin: Option<SocketAddr>,
    child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn reader<R: std::io::Read + Send + 'static>(r: R, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            into.lock().unwrap().push(line);
        }
    });
}

/// Follows a file that another process writes, line by line, until the test ends.
fn tail(path: std::path::PathBuf, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        let mut read = 0;
        loop {
            if let Ok(text) = std::fs::read(&path)
                && let Some(end) = text.iter().rposition(|b| *b == b'\n')
                && end + 1 > read
            {
                let new = String::from_utf8_lossy(&text[read..=end]).into_owned();
                into.lock().unwrap().extend(new.lines().map(str::to_string));
                read = end + 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_consent-proxy")
}

impl Proxy {
    /// Starts `consent-proxy serve --listen 127.0.0.1:0 --upstream URL ARGS...` and waits until
    /// it listens.
    pub fn start(upstream: &str, args: &[&str]) -> Proxy {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .args(args);
        Proxy::spawn(cmd)
    }

    /// Starts `consent-proxy serve --listen LISTEN --config CONFIG` and waits until it listens.
    pub fn with_config(config: &Path, listen: &str) -> Proxy {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", listen, "--config"])
            .arg(config);
        Proxy::spawn(cmd)
    }

    pub fn spawn(cmd: Command) -> Proxy {
        Proxy::spawn_with_stderr(cmd, None)
    }

    /// Like [`Proxy::spawn`], with the proxy's stderr written to the file `stderr_file` (read
    /// back line by line into [`Proxy::stderr`]) instead of a pipe.
    pub fn spawn_with_stderr(mut cmd: Command, stderr_file: Option<&Path>) -> Proxy {
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        // Tests run side by side: each proxy's admin listener on a port of its own.
        if !cmd
            .get_envs()
            .any(|(k, _)| k == "CONSENT_PROXY_ADMIN_LISTEN")
        {
            cmd.env("CONSENT_PROXY_ADMIN_LISTEN", "127.0.0.1:0");
        }
        let stderr_to = match stderr_file {
            Some(f) => Stdio::from(std::fs::File::create(f).unwrap()),
            None => Stdio::piped(),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr_to)
            .spawn()
            .expect("start the proxy");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        reader(child.stdout.take().unwrap(), stdout.clone());
        match stderr_file {
            Some(f) => tail(f.to_path_buf(), stderr.clone()),
            None => reader(child.stderr.take().unwrap(), stderr.clone()),
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found: Option<(SocketAddr, Option<SocketAddr>)> =
                stderr.lock().unwrap().iter().find_map(|l| {
                    let rest = l.split("listening on http").nth(1)?;
                    let rest = rest.trim_start_matches('s').strip_prefix("://")?;
                    let addr = rest.split(',').next()?.parse().ok()?;
                    let admin = l
                        .split("admin on http://")
                        .nth(1)
                        .and_then(|a| a.trim().parse().ok());
                    Some((addr, admin))
                });
            if let Some((addr, admin)) = found {
                return Proxy {
                    addr,
                    admin,
                    child,
                    stdout,
                    stderr,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the proxy exited with {status}: {:?}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not start: {:?}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Whether a line the proxy wrote to stderr so far is one that `line` accepts.
    pub fn said(&self, line: impl Fn(&str) -> bool) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| line(l))
    }

    /// Waits until the decision log holds at least `n` records and returns them all.
    pub fn logs(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if lines.len() >= n {
                return lines
                    .iter()
                    .map(|l| {
                        serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} log records, have {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last decision record, once `n` exist.
    pub fn log(&self, n: usize) -> Value {
        self.logs(n).pop().unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                return s;
            }
            assert!(Instant::now() < deadline, "the proxy did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The proxy's peak resident memory so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn all_output(&self) -> String {
        let mut s = self.stdout.lock().unwrap().join("\n");
        s.push('\n');
        s.push_str(&self.stderr.lock().unwrap().join("\n"));
        s
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file into a fresh temporary directory.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub type ClientBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An HTTP/1.1 client.
pub fn http1() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn http2() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub fn empty_body() -> ClientBody {
    boxed(Bytes::new())
}

/// A finished response: status, headers, body text.
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub version: http::Version,
}

impl Got {
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// Names of cookies the response sets (not expiries).
    pub fn set_cookie_names(&self) -> Vec<String> {
        self.set_cookies()
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split('=').next().unwrap().to_string())
            .collect()
    }

    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// Sends a GET with the given headers through `client`.
pub async fn get(
    client: &Client<HttpConnector, ClientBody>,
    url: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = Request::builder().uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(empty_body()).unwrap())
        .await
        .expect("request");
    whole(resp).await
}

/// An answer, read whole.
async fn whole(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        version: parts.version,
    }
}

/// Sends a request over HTTP/1.1 and reads the answer whole.
pub async fn send(req: Request<ClientBody>) -> Got {
    whole(http1().request(req).await.expect("request")).await
}

/// Posts `form` (URL-encoded) to `path` on the proxy, with `headers`.
pub async fn post(proxy: &Proxy, path: &str, headers: &[(&str, &str)], form: &str) -> Got {
    let mut req =
        Request::post(proxy.url(path)).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(boxed(form.to_string())).unwrap()).await
}

/// The value of a cookie a response sets.
pub fn cookie_value(got: &Got, name: &str) -> Option<String> {
    got.set_cookies().iter().find_map(|c| {
        let (pair, _) = c.split_once(';').unwrap_or((c, ""));
        let (n, v) = pair.split_once('=')?;
        (n == name).then(|| v.to_string())
    })
}

/// The value of the hidden `csrf` field of the banner's form in `html`.
pub fn form_token(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    html[at..at + 32].to_string()
}

/// The names in a JSON array of strings.
pub fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Opens a WebSocket through the proxy at `/ws` and returns the stream after the handshake,
/// with the response head.
pub async fn websocket(addr: SocketAddr) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: site\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "closed during the handshake"
        );
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

/// A tool's path: from the environment variable `env`, else `default`.
pub fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

/// A JSON value as a request body.
pub fn boxed_json(v: &Value) -> ClientBody {
    Full::new(Bytes::from(v.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

/// A ChromeDriver process on a port of its own (`CHROMEDRIVER`, default `chromedriver`),
/// stopped when dropped. `base` is its WebDriver URL.
pub struct ChromeDriver {
    child: Child,
    pub base: String,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        let chromedriver = tool("CHROMEDRIVER", "chromedriver");
        let mut child = Command::new(&chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {chromedriver} ({e}). The browser tests need Chromium and \
                     ChromeDriver: apt-get install chromium chromium-driver, or set \
                     CONSENT_PROXY_SKIP_BROWSER=1 to skip them"
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .expect("ChromeDriver did not report its port");
        ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS acceptor, speaking HTTP/1.1, for a fresh self-signed certificate naming `names` (a
/// browser told to ignore certificate errors takes it).
pub fn self_signed_acceptor(names: Vec<String>) -> tokio_rustls::TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}
