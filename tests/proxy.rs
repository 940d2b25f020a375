//! End to end: the proxy as HTTP plumbing — forwarding headers, failures, upgrades, streaming,
//! open-proxy refusal, client address minimization, one record per request.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads the answer until the proxy closes or `until` appears.
async fn raw(addr: std::net::SocketAddr, request: &str, until: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&out).contains(until) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answer in time");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_set() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/hop"),
        &[
            ("host", "site.example"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "forged.example"),
            ("accept", "text/html"),
        ],
    )
    .await;
    let seen = up.last_seen();
    for h in ["x-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(seen.headers.get(h).is_none(), "{h} was forwarded");
    }
    assert_eq!(seen.headers.get("accept").unwrap(), "text/html");
    assert_eq!(
        seen.headers.get("host").unwrap(),
        "site.example",
        "Host is kept"
    );
    assert_eq!(
        seen.headers.get("x-forwarded-for").unwrap(),
        "127.0.0.1",
        "an untrusted XFF is replaced"
    );
    assert_eq!(
        seen.headers.get("x-forwarded-host").unwrap(),
        "site.example"
    );
    assert_eq!(seen.headers.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(seen.headers.get("via").unwrap(), "1.1 consent-proxy");
    // Hop-by-hop headers of the upstream's answer do not reach the client either.
    assert!(got.headers.get("x-up-secret").is_none());
    assert!(got.headers.get("keep-alive").is_none());
    assert_eq!(got.header("via"), vec!["1.1 consent-proxy"]);
}

#[tokio::test]
async fn upstream_down_is_502_and_the_proxy_keeps_serving() {
    let proxy = Proxy::start(&format!("http://127.0.0.1:{}", dead_port()), &[]);
    for _ in 0..3 {
        let got = get(&http1(), &proxy.url("/"), &[]).await;
        assert_eq!(got.status, 502);
        assert_eq!(
            got.header("content-type"),
            vec!["text/plain; charset=utf-8"]
        );
        assert!(
            got.body.contains("upstream") && got.body.len() < 200,
            "{}",
            got.body
        );
    }
    let recs = proxy.logs(3);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 502 && r["error"] == "upstream_unavailable")
    );
    let mut proxy = proxy;
    assert!(proxy.is_running());
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    let (_d, config) = temp_file("c.yaml", "timeouts:\n  upstream_response: 300ms\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let started = std::time::Instant::now();
    let got = get(&http1(), &proxy.url("/slow"), &[]).await;
    assert_eq!(got.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the proxy waited for the upstream"
    );
    assert!(got.body.contains("did not answer in time"));
    assert_eq!(proxy.log(1)["error"], "upstream_timeout");
    // Still serving.
    assert_eq!(get(&http1(), &proxy.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn absolute_form_requests_for_other_hosts_are_refused() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let answer = raw(
        proxy.addr,
        "GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    let answer = raw(
        proxy.addr,
        "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    // Absolute form naming this proxy itself is an ordinary request.
    let req = format!(
        "GET http://{0}/ HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let answer = raw(proxy.addr, &req, "</title>").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let recs = proxy.logs(3);
    assert_eq!(recs[0]["status"], 421);
    assert_eq!(recs[0]["error"], "misdirected");
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let (mut s, head) = websocket(proxy.addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s.write_all(b"ping through the tunnel").await.unwrap();
    let mut echo = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&echo, b"ping through the tunnel");
    let seen = up.last_seen();
    assert_eq!(seen.headers.get("upgrade").unwrap(), "websocket");
    assert_eq!(proxy.log(1)["status"], 101);
}

#[tokio::test]
async fn an_upgrade_to_http_itself_is_not_forwarded() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let answer = raw(
        proxy.addr,
        "GET /ws HTTP/1.1\r\nHost: site\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    let seen = up.last_seen();
    assert!(seen.headers.get("upgrade").is_none(), "{:?}", seen.headers);
    assert!(seen.headers.get("http2-settings").is_none());
    // This upstream switches anyway; a tunnel nobody asked for is refused.
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    // Response: the first chunk reaches the client while the upstream still holds the rest.
    let resp = http1()
        .request(
            http::Request::get(proxy.url("/stream"))
                .body(empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk arrived before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"first;"));
    up.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"rest"));

    // Request: the upstream receives the first chunk while the client still holds the rest.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(2);
    let body = http_body_util::StreamBody::new(futures_util::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    }));
    let req = http::Request::post(proxy.url("/upload"))
        .body(BodyExt::boxed(body))
        .unwrap();
    let client = http1();
    let pending = tokio::spawn(async move { client.request(req).await });
    tx.send(Ok(http_body::Frame::data(Bytes::from(vec![b'a'; 1000]))))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), up.first_chunk.notified())
        .await
        .expect("the upstream got the first chunk before the client finished");
    tx.send(Ok(http_body::Frame::data(Bytes::from(vec![b'b'; 500]))))
        .await
        .unwrap();
    drop(tx);
    let resp = pending.await.unwrap().unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, Bytes::from_static(b"received 1500"));
}

// terminate() blocks the test thread; the clients' connections must still answer the
// proxy's graceful shutdown, so they run on other worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_client_address_appears_in_no_output() {
    let up = Upstream::start().await;
    let (_d, config) = temp_file("c.yaml", "trusted_proxies: [127.0.0.1/32]\n");
    // Every diagnostic, down to the libraries' trace output, is searched.
    let mut cmd = Command::new(bin());
    cmd.env("RUST_LOG", "trace").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.url(),
        "--config",
        path_str(&config),
    ]);
    let mut proxy = Proxy::spawn(cmd);
    let client = "203.0.113.77";
    let h = [
        ("x-forwarded-for", client),
        ("cookie", "cookie_consent=%%%; _ga=1"),
    ];
    assert_eq!(get(&http1(), &proxy.url("/"), &h).await.status, 200);
    assert_eq!(get(&http1(), &proxy.url("/collect"), &h).await.status, 204);
    assert_eq!(
        get(&http2(), &proxy.url("/slow-enough?x=1"), &h)
            .await
            .status,
        200
    );
    let rec = proxy.log(3);
    assert_eq!(rec["client"], "203.0.113.0/24");
    // The upstream still learns the address, as it would without the proxy.
    assert_eq!(
        up.last_seen().headers.get("x-forwarded-for").unwrap(),
        "203.0.113.77, 127.0.0.1"
    );
    drop(up); // now the upstream is gone: errors are logged too
    let _ = get(&http1(), &proxy.url("/"), &h).await;
    proxy.log(4);
    assert!(proxy.terminate().success());
    let out = proxy.all_output();
    assert!(!out.contains(client), "the raw address leaked:\n{out}");
}

#[tokio::test]
async fn hmac_mode_hides_the_address_and_links_one_visitor() {
    let up = Upstream::start().await;
    let (_d, config) = temp_file(
        "c.yaml",
        "trusted_proxies: [127.0.0.0/8]\nclient_ip:\n  mode: hmac\n",
    );
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    get(
        &http1(),
        &proxy.url("/"),
        &[("x-forwarded-for", "198.51.100.23")],
    )
    .await;
    get(
        &http1(),
        &proxy.url("/"),
        &[("x-forwarded-for", "198.51.100.23")],
    )
    .await;
    get(
        &http1(),
        &proxy.url("/"),
        &[("x-forwarded-for", "198.51.100.24")],
    )
    .await;
    let recs = proxy.logs(3);
    let c: Vec<&str> = recs.iter().map(|r| r["client"].as_str().unwrap()).collect();
    assert!(c[0].starts_with("hmac:") && c[0].len() == 37, "{c:?}");
    assert_eq!(c[0], c[1]);
    assert_ne!(c[0], c[2]);
    assert!(!proxy.all_output().contains("198.51.100"));
}

// terminate() blocks the test thread; the clients' connections must still answer the
// proxy's graceful shutdown, so they run on other worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_record_per_request_under_concurrency_and_none_lost_on_shutdown() {
    let up = Upstream::start().await;
    let mut proxy = Proxy::start(&up.url(), &[]);
    let n = 200;
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = proxy.url(&format!("/r{i}"));
        let client = if i % 2 == 0 { http1() } else { http2() };
        tasks.push(tokio::spawn(
            async move { get(&client, &url, &[]).await.status },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }

    assert!(proxy.terminate().success(), "SIGTERM exits 0");
    let recs = proxy.logs(n);
    assert_eq!(recs.len(), n, "exactly one record per request");
    let mut paths: Vec<String> = recs
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), n);
    assert_eq!(up.hits.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn a_client_that_leaves_early_still_gets_one_record() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let rec = proxy.log(1);
    assert_eq!(rec["status"], 499);
    assert_eq!(rec["error"], "client_disconnected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.logs(1).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_on_shutdown() {
    let up = Upstream::start().await;
    let mut proxy = Proxy::start(&up.url(), &[]);
    let url = proxy.url("/slow");
    let pending = tokio::spawn(async move { get(&http1(), &url, &[]).await });
    while up.hits.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = tokio::task::spawn_blocking(move || {
        let s = proxy.terminate();
        (s, proxy)
    });
    let got = pending.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "slow");
    let (exit, proxy) = status.await.unwrap();
    assert!(exit.success());
    let recs = proxy.logs(1);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], 200);
    assert!(recs[0].get("error").is_none(), "{}", recs[0]);
}

#[tokio::test]
async fn a_stalled_upstream_body_is_cut_off() {
    let up = Upstream::start().await;
    let (_d, config) = temp_file("c.yaml", "timeouts:\n  upstream_body_idle: 300ms\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    // /stream sends its first chunk, then waits for a release that never comes.
    let resp = http1()
        .request(
            http::Request::get(proxy.url("/stream"))
                .body(empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
    assert!(
        result.expect("cut off in time").is_err(),
        "the body should end in an error"
    );
    let rec = proxy.log(1);
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["error"], "body_error");
}

#[tokio::test]
async fn absolute_form_authority_replaces_host() {
    let up = Upstream::start().await;
    let (_d, config) = temp_file("c.yaml", "server_names: [www.site.example]\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let answer = raw(
        proxy.addr,
        "GET http://www.site.example/a HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        "</title>",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.last_seen();
    assert_eq!(seen.headers.get("host").unwrap(), "www.site.example");
    assert_eq!(
        seen.headers.get("x-forwarded-host").unwrap(),
        "www.site.example"
    );
    assert_eq!(seen.path, "/a");
}
