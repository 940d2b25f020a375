//! End to end, on loopback: 10,000 requests with upstream and client faults mixed in. The proxy
//! keeps serving, answers 502 or 504 where it should, writes exactly one decision record per
//! request, returns to its memory baseline, and no raw client address appears in anything it
//! writes.

mod common;
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Every client of this test connects from this address, which appears nowhere else.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

const PAGE: &str = "<!doctype html><html><head><script async src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></head><body><p>ok</p></body></html>";

/// An upstream that misbehaves on request: the path names the fault.
async fn fault_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_faults(stream));
        }
    });
    addr
}

/// Reads one request head; `None` at the end of the connection.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    Some(text.split(' ').nth(1).unwrap_or("/").to_string())
}

async fn serve_faults(mut s: TcpStream) {
    while let Some(path) = read_head(&mut s).await {
        let written = match path.as_str() {
            "/ok" | "/" => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nset-cookie: _ga=GA1.1.1; Path=/\r\nset-cookie: sid=1; Path=/\r\ncontent-length: {}\r\n\r\n",
                    PAGE.len()
                );
                s.write_all(format!("{head}{PAGE}").as_bytes()).await
            }
            "/big" => {
                let body = "<p>filler</p>".repeat(160_000); // about 2 MiB
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                s.write_all(body.as_bytes()).await
            }
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            "/reset" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 100000\r\n\r\n<p>a part")
                    .await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                // An RST rather than a FIN.
                let _ = s.set_zero_linger();
                return;
            }
            "/malformed" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nhello")
                    .await;
                return;
            }
            "/garbage" => {
                let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n\x00\xff").await;
                return;
            }
            "/cookies" => {
                let mut r = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n");
                for i in 0..10_000 {
                    r.push_str(&format!("set-cookie: c{i}=v; Path=/\r\n"));
                }
                r.push_str("content-length: 2\r\n\r\nok");
                let _ = s.write_all(r.as_bytes()).await;
                return;
            }
            "/big-header" => {
                let r = format!(
                    "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
                    "x".repeat(1 << 20)
                );
                let _ = s.write_all(r.as_bytes()).await;
                return;
            }
            _ => return, // "/close": the connection ends without an answer
        };
        if written.is_err() {
            return;
        }
    }
}

/// What a request of the load came to: a status and whether its body arrived whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Whole(u16),
    Cut(u16),
    Failed,
}

async fn fetch(client: &Client<HttpConnector, http_body_util::Empty<Bytes>>, url: &str) -> Outcome {
    let req = http::Request::get(url)
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(20), client.request(req)).await
    else {
        return Outcome::Failed;
    };
    let status = resp.status().as_u16();
    match tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect()).await {
        Ok(Ok(_)) => Outcome::Whole(status),
        _ => Outcome::Cut(status),
    }
}

/// A connection from the client address.
async fn connect_from_client(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(CLIENT), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Resident anonymous memory: the heaps and stacks, where a leak would show. `VmRSS` adds the
/// pages of the binary that happen to be resident, which vary by megabytes from run to run.
fn anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The path of the `i`th request of the load, and which proxy it goes to (`true`: the one whose
/// upstream refuses connections).
fn plan(i: usize) -> (&'static str, bool) {
    match i % 100 {
        0 | 1 => ("/hang", false),
        2..=6 => ("/reset", false),
        7..=11 => ("/malformed", false),
        12..=14 => ("/garbage", false),
        15..=17 => ("/cookies", false),
        18..=20 => ("/big-header", false),
        21..=23 => ("/close", false),
        24..=28 => ("/ok", true),
        _ => ("/ok", false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_with_faults() {
    const REQUESTS: usize = 10_000;
    const DISCONNECTING: usize = 50;
    const SLOWLORIS: usize = 20;
    const WARM_UP: usize = 500;

    let up = fault_upstream().await;
    let (_dir, config) = temp_file(
        "config.yaml",
        "timeouts:\n  upstream_response: 500ms\n  upstream_body_idle: 500ms\n  header_read: 1s\n",
    );
    let start = |upstream: String| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream", &upstream])
            .args(["--config", path_str(&config)])
            // Everything the proxy can say, searched for the client's address below.
            .env("RUST_LOG", "debug");
        Proxy::spawn(cmd)
    };
    let mut proxy = start(format!("http://{up}"));
    let mut refusing = start(format!("http://127.0.0.1:{}", dead_port()));

    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(CLIENT)));
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);

    // Warm up with the same mix, client faults beside it as in the load, so that the baseline is
    // a process that has seen each kind of traffic at the load's concurrency: growth beyond it
    // over 10,000 more requests would be a leak.
    let leavers = spawn_leavers(proxy.addr, 5);
    let slow = spawn_slowloris(proxy.addr, SLOWLORIS);
    let warm_up: Vec<Outcome> = futures_util::stream::iter(0..WARM_UP)
        .map(|i| {
            let (path, refused) = plan(i);
            let url = if refused {
                refusing.url(path)
            } else {
                proxy.url(path)
            };
            let client = client.clone();
            async move { fetch(&client, &url).await }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    assert_eq!(warm_up.len(), WARM_UP);
    leavers.await.unwrap();
    assert_eq!(slow.await.unwrap().0, 0, "warm-up slowloris still open");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let baseline = anon_kib(proxy.pid());
    let baseline_rss = rss_kib(proxy.pid());

    // Client faults beside the load: connections that leave in the middle of a 2 MiB answer,
    // and slowloris connections that never finish a request head.
    let leavers = spawn_leavers(proxy.addr, DISCONNECTING);
    let slow = spawn_slowloris(proxy.addr, SLOWLORIS);

    let started = Instant::now();
    let outcomes: Vec<(usize, Outcome)> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let (path, refused) = plan(i);
            let url = if refused {
                refusing.url(path)
            } else {
                proxy.url(path)
            };
            let client = client.clone();
            async move { (i, fetch(&client, &url).await) }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    let took = started.elapsed();
    leavers.await.unwrap();
    let (still_open, slow_for) = slow.await.unwrap();
    assert_eq!(
        still_open, 0,
        "slowloris connections still open after {slow_for:?}"
    );

    // What each fault came to.
    let mut by_path: HashMap<(&str, bool), HashMap<String, usize>> = HashMap::new();
    for (i, outcome) in &outcomes {
        *by_path
            .entry(plan(*i))
            .or_default()
            .entry(format!("{outcome:?}"))
            .or_default() += 1;
    }
    println!("{REQUESTS} requests in {took:?}: {by_path:?}");
    for (i, outcome) in &outcomes {
        let (path, refused) = plan(*i);
        let expected = match (path, refused) {
            (_, true) => Outcome::Whole(502),
            ("/ok", _) => Outcome::Whole(200),
            ("/hang", _) => Outcome::Whole(504),
            ("/reset", _) => Outcome::Cut(200),
            _ => Outcome::Whole(502),
        };
        // A page whose upstream breaks off is never passed off as whole: cut short if the proxy
        // had begun to answer (it gathers an HTML page for up to 5 ms before it does), 502 if
        // it had sent nothing yet, or, if the break comes as the head leaves, a connection
        // closed without an answer.
        if path == "/reset" {
            assert!(
                matches!(
                    outcome,
                    Outcome::Cut(200) | Outcome::Whole(502) | Outcome::Failed
                ),
                "request {i}: /reset came to {outcome:?}"
            );
            continue;
        }
        assert_eq!(*outcome, expected, "request {i}: {path}");
    }

    // Exactly one record per request: none missing, none doubled.
    let on_refusing = (0..WARM_UP)
        .chain(0..REQUESTS)
        .filter(|i| plan(*i).1)
        .count();
    let on_proxy = WARM_UP + REQUESTS + 5 + DISCONNECTING - on_refusing;
    let records = proxy.logs(on_proxy);
    let refused_records = refusing.logs(on_refusing);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proxy.logs(0).len(), on_proxy);
    assert_eq!(refusing.logs(0).len(), on_refusing);
    let mut statuses: HashMap<(String, u64, String), usize> = HashMap::new();
    for r in records.iter().chain(&refused_records) {
        assert_eq!(r["client"], "127.0.0.0/24", "{r}");
        let key = (
            r["path"].as_str().unwrap().to_string(),
            r["status"].as_u64().unwrap(),
            r["error"].as_str().unwrap_or("").to_string(),
        );
        *statuses.entry(key).or_default() += 1;
    }
    println!("records: {statuses:?}");
    let count = |path: &str, status: u64, error: &str| {
        statuses
            .get(&(path.to_string(), status, error.to_string()))
            .copied()
            .unwrap_or(0)
    };
    // Per kind, the warm-up's share and the load's (a twentieth more).
    let share = |path: &str| (REQUESTS + WARM_UP) / 100 * plan_share(path);
    assert_eq!(count("/hang", 504, "upstream_timeout"), share("/hang"));
    assert_eq!(
        count("/reset", 200, "body_error") + count("/reset", 502, "upstream_body_error"),
        share("/reset")
    );
    assert_eq!(
        count("/big", 200, "client_disconnected") + count("/big", 499, "client_disconnected"),
        DISCONNECTING + 5
    );
    for path in [
        "/malformed",
        "/garbage",
        "/cookies",
        "/big-header",
        "/close",
    ] {
        let n = statuses
            .iter()
            .filter(|((p, s, _), _)| p == path && *s == 502)
            .map(|(_, n)| n)
            .sum::<usize>();
        assert_eq!(n, share(path), "{path}");
    }
    assert_eq!(
        count("/ok", 502, "upstream_unavailable"),
        (REQUESTS + WARM_UP) / 100 * 5
    );

    // Still serving, never panicked, and back to its memory baseline.
    assert_eq!(fetch(&client, &proxy.url("/ok")).await, Outcome::Whole(200));
    assert!(proxy.is_running() && refusing.is_running());
    // Freed memory goes back once the burst is over: the allocator returns freed pages at once,
    // and the proxy looks every 10 s whether a burst of 5,000 requests or more has ended.
    let mut after = anon_kib(proxy.pid());
    for _ in 0..24 {
        if after <= baseline + 6 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = anon_kib(proxy.pid());
    }
    println!(
        "anonymous memory: baseline {baseline} KiB, after {after} KiB; RSS: baseline \
         {baseline_rss} KiB, peak {} KiB, after {} KiB",
        proxy.peak_rss_kib(),
        rss_kib(proxy.pid())
    );
    assert!(
        after <= baseline + 6 * 1024,
        "anonymous memory {after} KiB after the load, baseline {baseline} KiB"
    );

    // No raw client address in anything the proxies wrote or serve.
    let mut everything = proxy.all_output();
    everything.push_str(&refusing.all_output());
    for p in [&proxy, &refusing] {
        for path in ["/metrics", "/cookies"] {
            everything.push_str(&get(&http1(), &admin(p, path), &[]).await.body);
        }
    }
    assert!(!everything.contains("panicked"), "a panic");
    assert!(
        !everything.contains(&CLIENT.to_string()),
        "the client address appears: {}",
        everything
            .lines()
            .filter(|l| l.contains(&CLIENT.to_string()))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        everything.contains("127.0.0.0"),
        "records carry the minimized address"
    );
    proxy.terminate();
    refusing.terminate();
}

/// `n` connections, one after another, that ask for a 2 MiB answer and leave after its first
/// bytes.
fn spawn_leavers(addr: SocketAddr, n: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..n {
            let mut s = connect_from_client(addr).await;
            s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            drop(s);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// `n` slowloris connections: a byte of a request head every 300 ms, never its end. Returns
/// how many were still open when it gave up (after 10 s) and how long it waited.
fn spawn_slowloris(addr: SocketAddr, n: usize) -> tokio::task::JoinHandle<(usize, Duration)> {
    tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..n {
            let mut s = connect_from_client(addr).await;
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .await
                .unwrap();
            conns.push(s);
        }
        // The head never ends, and the proxy's deadline ends them.
        let started = Instant::now();
        let mut open = conns.len();
        while open > 0 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            open = 0;
            for s in &mut conns {
                if s.write_all(b"a").await.is_ok() {
                    open += 1;
                }
            }
        }
        (open, started.elapsed())
    })
}

/// Requests per hundred that go to `path` on the faulty upstream.
fn plan_share(path: &str) -> usize {
    (0..100).filter(|i| plan(*i) == (path, false)).count()
}
