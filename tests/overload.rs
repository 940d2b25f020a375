//! End to end: what too much work costs. A client that cancels its HTTP/2 requests again and
//! again (a slow rapid reset) is sent GOAWAY and never has more requests in flight at the site
//! than its stream limit; beyond the proxy's capacity requests are shed with 503.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A site that takes `delay` to answer each request, and counts what reaches it.
struct SlowSite {
    addr: std::net::SocketAddr,
    /// Connections opened to it.
    connections: Arc<AtomicUsize>,
    /// Requests received.
    requests: Arc<AtomicUsize>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowSite {
    async fn start(delay: Duration) -> SlowSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters: [Arc<AtomicUsize>; 4] = Default::default();
        let [connections, requests, in_flight, peak] = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (requests, in_flight, peak) =
                    (requests.clone(), in_flight.clone(), peak.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let (in_flight, peak) = (in_flight.clone(), &peak);
                        requests.fetch_add(1, Ordering::SeqCst);
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        // The work goes on when the proxy gives up on it, as in an
                        // application server's worker.
                        let answering = Leaves(in_flight);
                        let work = tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            drop(answering);
                        });
                        async move {
                            let _ = work.await;
                            let mut resp = http::Response::new(Full::new(Bytes::from_static(
                                b"<!doctype html><title>slow</title>",
                            )));
                            resp.headers_mut()
                                .insert("content-type", "text/html".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let [connections, requests, in_flight, peak] = counters;
        SlowSite {
            addr,
            connections,
            requests,
            in_flight,
            peak,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Counts one request out of flight when dropped.
struct Leaves(Arc<AtomicUsize>);

impl Drop for Leaves {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a slow rapid reset achieved.
#[derive(Debug)]
struct Attack {
    streams: usize,
    /// The connection's end: `Some(reason)` for a GOAWAY with an error code.
    goaway: Option<h2::Reason>,
    elapsed: Duration,
}

/// On one h2c connection: open a stream, reset it 2 ms later, again and again, until the
/// connection ends, `max_streams` were opened or `limit` has passed.
async fn slow_rapid_reset(proxy: &Proxy, max_streams: usize, limit: Duration) -> Attack {
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let started = Instant::now();
    let mut streams = 0;
    while streams < max_streams && started.elapsed() < limit && !conn.is_finished() {
        let Ok(ready) = tokio::time::timeout(Duration::from_secs(1), client.clone().ready()).await
        else {
            continue;
        };
        let Ok(mut ready) = ready else { break };
        let req = http::Request::get(format!("http://{}/page", proxy.addr))
            .body(())
            .unwrap();
        let Ok((_response, mut stream)) = ready.send_request(req, true) else {
            break;
        };
        streams += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        stream.send_reset(h2::Reason::CANCEL);
        client = ready;
    }
    let ended = tokio::time::timeout(Duration::from_secs(2), conn).await;
    let goaway = match ended {
        Ok(Ok(Err(e))) if e.is_go_away() => e.reason(),
        _ => None,
    };
    Attack {
        streams,
        goaway,
        elapsed: started.elapsed(),
    }
}

/// What the site saw of an attack.
#[derive(Debug)]
struct AtTheSite {
    requests: usize,
    peak: usize,
    connections: usize,
}

/// A slow rapid reset against a site that takes `delay` per request, through a proxy whose
/// config is `config`.
async fn attack(delay: Duration, config: &str, max_streams: usize) -> (Attack, AtTheSite) {
    let site = SlowSite::start(delay).await;
    let (_dir, config) = temp_file("config.yaml", config);
    let proxy = Proxy::start(&site.url(), &["--config", path_str(&config)]);
    let attack = slow_rapid_reset(&proxy, max_streams, Duration::from_secs(6)).await;
    // Let the requests that reached the site end.
    let deadline = Instant::now() + delay + Duration::from_secs(3);
    while site.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        site.in_flight.load(Ordering::SeqCst),
        0,
        "requests never ended"
    );
    let seen = AtTheSite {
        requests: site.requests.load(Ordering::SeqCst),
        peak: site.peak.load(Ordering::SeqCst),
        connections: site.connections.load(Ordering::SeqCst),
    };
    eprintln!(
        "slow rapid reset, site answering in {delay:?}, config {:?}: {} streams in {:?}, \
         end {:?}; at the site {seen:?}",
        std::fs::read_to_string(&config).unwrap(),
        attack.streams,
        attack.elapsed,
        attack.goaway
    );
    // Ordinary clients are served all along.
    let got = get(&http2(), &proxy.url("/after"), &[]).await;
    assert_eq!(got.status, 200);
    (attack, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rapid_reset_gets_goaway() {
    let (attack, site) = attack(Duration::from_secs(2), "{}\n", 3000).await;
    assert_eq!(
        attack.goaway,
        Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{attack:?}"
    );
    // The default allows 100 cancelled requests in 10 s.
    assert!(attack.streams <= 110, "{attack:?}");
    assert!(site.requests <= 110 && site.connections <= 110, "{site:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_never_exceed_the_stream_limit_at_the_site() {
    // Resets allowed without end: the stream limit alone bounds what reaches the site.
    let config = "limits:\n  http2_max_resets: 1000000\n  http2_max_streams: 50\n";
    let (attack, site) = attack(Duration::from_secs(1), config, 600).await;
    assert_eq!(attack.goaway, None, "{attack:?}");
    assert!(attack.streams >= 300, "{attack:?}");
    assert!(site.peak <= 50, "{site:?}");
    // One more: the connection the proxy opens at start to see that the site can be reached.
    assert!(site.connections <= 50 + 1, "{site:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_costs_no_new_upstream_connection() {
    let config = "limits:\n  http2_max_resets: 1000000\n";
    let (attack, site) = attack(Duration::from_millis(20), config, 400).await;
    assert_eq!(attack.streams, 400, "{attack:?}");
    // Each abandoned exchange finishes and its connection serves a later one (one connection
    // per request before: 400).
    assert!(site.connections <= site.requests / 5, "{site:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_capacity_requests_are_shed_at_once_and_the_proxy_recovers() {
    let site = SlowSite::start(Duration::from_millis(600)).await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  max_requests: 8\n");
    let proxy = Proxy::start(&site.url(), &["--config", path_str(&config)]);
    // 40 clients at once, each on a connection of its own.
    let started = Instant::now();
    let clients: Vec<_> = (0..40)
        .map(|i| {
            let url = proxy.url(&format!("/page{i}"));
            tokio::spawn(async move {
                let got = get(&http1(), &url, &[]).await;
                (got, started.elapsed())
            })
        })
        .collect();
    // While they are in flight, the admin listener answers at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let health = get(&http1(), &admin(&proxy, "/healthz"), &[]).await;
    let health_took = asked.elapsed();
    // A request head that could be smuggling is still refused as such, not shed.
    let smuggling = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(
            b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(smuggling.starts_with("HTTP/1.1 400"), "{smuggling}");
    let mut served = 0;
    for c in clients {
        let (got, took) = c.await.unwrap();
        match got.status.as_u16() {
            200 => served += 1,
            503 => {
                assert_eq!(got.header("retry-after"), vec!["1"]);
                // Shed without waiting for the site.
                assert!(took < Duration::from_millis(500), "a 503 after {took:?}");
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(health.status, 200);
    assert!(health_took < Duration::from_millis(100), "{health_took:?}");
    assert!(served >= 8, "{served} served");
    assert_eq!(site.peak.load(Ordering::SeqCst), 8.min(served));
    let shed = 40 - served;
    assert!(shed >= 24, "only {shed} shed");
    // Counted, and one record each.
    let records = proxy.logs(41);
    let overloaded = records
        .iter()
        .filter(|r| r["error"] == "overloaded" && r["status"] == 503)
        .count();
    assert_eq!(overloaded, shed);
    assert_eq!(
        metric(
            &proxy,
            "consent_proxy_requests_total{site=\"default\",status=\"503\"}"
        )
        .await,
        shed as f64
    );
    // Back to normal as soon as the load is gone.
    let got = get(&http1(), &proxy.url("/after"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        metric(&proxy, "consent_proxy_in_flight_requests").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failures_writes_a_few_lines_and_a_summary() {
    // Every request to a site that is down is a warning: 100 of them.
    let proxy = Proxy::start(&format!("http://127.0.0.1:{}", dead_port()), &[]);
    for _ in 0..100 {
        assert_eq!(get(&http1(), &proxy.url("/"), &[]).await.status, 502);
    }
    let lines = |text: &str| {
        let err = proxy.stderr.lock().unwrap().clone();
        err.into_iter()
            .filter(|l| l.contains(text))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines("upstream request failed").len(),
        5,
        "{:?}",
        lines("WARN")
    );
    assert!(
        metric(&proxy, "consent_proxy_log_lines_suppressed_total").await >= 95.0,
        "{}",
        get(&http1(), &admin(&proxy, "/metrics"), &[]).await.body
    );
    // Within the next window, one line says what was held back.
    let deadline = Instant::now() + Duration::from_secs(12);
    while lines("more lines like this").is_empty() {
        assert!(Instant::now() < deadline, "no summary: {:?}", lines("WARN"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = lines("more lines like this");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(
        summary[0].contains("95 more lines like this from consent_proxy"),
        "{summary:?}"
    );
    assert!(
        summary[0].contains("upstream request failed"),
        "{summary:?}"
    );
    // Every request still has its record.
    assert_eq!(proxy.logs(100).len(), 100);
}
