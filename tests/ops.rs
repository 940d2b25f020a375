//! End to end: what operators run it with. The admin endpoints, hot reload of the policy (good,
//! bad, under load, by SIGHUP), the drain on SIGTERM, and the connection limits.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &admin(&proxy, "/healthz"), &[]).await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "ok\n"));
    let got = get(&http1(), &admin(&proxy, "/readyz"), &[]).await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "ready\n"));

    let sets = [
        ("x-set-cookie", "_ga=1; Path=/"),
        ("x-set-cookie", "mystery=1; Path=/"),
        ("x-set-cookie", "sessionid=s; Path=/"),
    ];
    get(&http1(), &proxy.url("/a"), &sets).await;
    get(&http1(), &proxy.url("/collect"), &[]).await;
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    let got = get(&http1(), &admin(&proxy, "/metrics"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.header("content-type")[0].starts_with("application/openmetrics-text"));
    for line in [
        // Without `sites`, the one site is `default`.
        "consent_proxy_requests_total{site=\"default\",status=\"200\"} 2",
        "consent_proxy_requests_total{site=\"default\",status=\"204\"} 1",
        "consent_proxy_decisions_total{site=\"default\",category=\"marketing\",action=\"denied\"} 3",
        "consent_proxy_cookies_stripped_total{site=\"default\",direction=\"response\"} 2",
        "consent_proxy_tags_neutralized_total{site=\"default\"} 4",
        "consent_proxy_requests_blocked_total{site=\"default\"} 1",
        "consent_proxy_upstream_response_seconds_count 2",
        "consent_proxy_in_flight_requests 0",
    ] {
        assert!(got.body.contains(line), "{line} missing:\n{}", got.body);
    }

    let got = get(&http1(), &admin(&proxy, "/cookies"), &[]).await;
    assert_eq!(got.header("content-type"), vec!["application/json"]);
    let v: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    let cookies = v["cookies"].as_array().unwrap();
    assert_eq!(cookies[0]["name"], "mystery", "unknown names first: {v}");
    assert_eq!(cookies[0]["category"], serde_json::Value::Null);
    assert_eq!(
        (cookies[0]["seen"].as_u64(), cookies[0]["stripped"].as_u64()),
        (Some(1), Some(1))
    );
    let ga = cookies.iter().find(|c| c["name"] == "_ga").unwrap();
    assert_eq!(ga["category"], "analytics");
    let session = cookies.iter().find(|c| c["name"] == "sessionid").unwrap();
    assert_eq!(session["stripped"], 0);

    let got = get(&http1(), &admin(&proxy, "/nothing"), &[]).await;
    assert_eq!(got.status, 404);
    // The admin listener writes no decision records (records are written within 20 ms: wait
    // well past that before counting).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.logs(3).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_policy_replaces_the_old_and_a_bad_one_does_not() {
    let up = Upstream::start().await;
    let (dir, policy) = temp_file("policy.yaml", "consent_cookie: first\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let granted = |cookie: &'static str| {
        let proxy_url = proxy.url("/");
        async move {
            let got = get(
                &http1(),
                &proxy_url,
                &[("cookie", cookie), ("x-set-cookie", "_ga=1; Path=/")],
            )
            .await;
            got.set_cookie_names().contains(&"_ga".to_string())
        }
    };
    assert!(granted("first=all").await);
    assert!(!granted("second=all").await);

    replace(&policy, "consent_cookie: second\n");
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    assert!(granted("second=all").await);
    assert!(!granted("first=all").await);

    // A broken file: reported, counted, and the policy in force stays.
    replace(
        &policy,
        "consent_cookie: third\ncookies:\n  - { name: x, category: bogus }\n",
    );
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"failure\"}",
        1.0,
    )
    .await;
    assert!(granted("second=all").await);
    let err = proxy.stderr.lock().unwrap().join("\n");
    assert!(err.contains("reload") && err.contains("bogus"), "{err}");

    // SIGHUP reloads too: first let the watcher take a good file, then signal with no change.
    let success = "consent_proxy_policy_reloads_total{result=\"success\"}";
    let before = metric(&proxy, success).await;
    std::fs::write(&policy, "consent_cookie: fourth\n").unwrap();
    wait_for_metric(&proxy, success, before + 1.0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let settled = metric(&proxy, success).await;
    Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .unwrap();
    wait_for_metric(&proxy, success, settled + 1.0).await;
    assert!(granted("fourth=all").await);
    drop(dir);
}

/// The lines that say a reload happened.
fn reload_lines(proxy: &Proxy) -> Vec<String> {
    let lines = proxy.stderr.lock().unwrap().clone();
    lines.into_iter().filter(|l| l.contains("reload")).collect()
}

/// Reading the files the proxy watches, or writing its logs beside them, is no change: only
/// SIGHUP and changed contents reload, and a reload that changes nothing keeps the rewrite memo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_signal_or_changed_contents_reload() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("policy.yaml");
    let policy_text = "extends: builtin\ndeclarations:\n  dnt_policy: dnt.txt\n";
    std::fs::write(&policy, policy_text).unwrap();
    std::fs::write(d.join("dnt.txt"), "Do Not Track policy\n").unwrap();
    let config = d.join("config.yaml");
    std::fs::write(
        &config,
        "policy: policy.yaml\nlog:\n  file: decisions.log\n",
    )
    .unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream", &up.url()])
        .args(["--config", path_str(&config)]);
    let proxy = Proxy::spawn_with_stderr(cmd, Some(&d.join("stderr.log")));
    let success = "consent_proxy_policy_reloads_total{result=\"success\"}";
    let hit = r#"consent_proxy_rewrite_memo_total{result="hit"}"#;

    // Requests write the decision log and stderr beside the watched files. A page is
    // remembered the second time it is rewritten.
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    let kill_hup = || {
        Command::new("kill")
            .args(["-HUP", &proxy.pid().to_string()])
            .status()
            .unwrap()
    };
    kill_hup();
    wait_for_metric(&proxy, success, 1.0).await;
    // The same files: the page rewritten before is still remembered.
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(metric(&proxy, hit).await, 1.0, "{:?}", reload_lines(&proxy));

    // Reading every watched file (as `cat` does) changes nothing.
    for f in ["policy.yaml", "dnt.txt", "config.yaml"] {
        std::fs::read(d.join(f)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reload_lines(&proxy).len(), 1, "{:?}", reload_lines(&proxy));

    // An editor's save with new contents: one reload, and pages are rewritten anew under it.
    replace(&policy, &format!("{policy_text}mode: enforce\n"));
    wait_for_metric(&proxy, success, 2.0).await;
    let miss = r#"consent_proxy_rewrite_memo_total{result="miss"}"#;
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(
        (metric(&proxy, hit).await, metric(&proxy, miss).await),
        (1.0, 3.0)
    );
    for _ in 0..5 {
        get(&http1(), &proxy.url("/tracked"), &[]).await;
    }
    // Idle for 5 s: nothing more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines = reload_lines(&proxy);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("reloaded") && lines[0].contains("no file changed"));
    assert!(lines[1].contains("reloaded") && !lines[1].contains("no file changed"));
    assert_eq!(metric(&proxy, success).await, 2.0);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_the_policy_is_reloaded_under_load() {
    let up = Upstream::start().await;
    let (_dir, policy) = temp_file("policy.yaml", "extends: builtin\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (url, stop) = (proxy.url("/tracked"), stop.clone());
        workers.push(tokio::spawn(async move {
            let client = http1();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let req = http::Request::get(&url).body(empty_body()).unwrap();
                match client.request(req).await {
                    Ok(r) if r.status() == 200 => {
                        use http_body_util::BodyExt;
                        match r.into_body().collect().await {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let action = if i % 2 == 0 { "remove" } else { "neutralize" };
        // Each save is new contents (a reload follows only a change of contents).
        replace(
            &policy,
            &format!("extends: builtin\ntag_action: {action}\n# save {i}\n"),
        );
    }
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        2.0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    let reloads = metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
    )
    .await;
    eprintln!("{ok} requests during {reloads} reloads");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let up = Upstream::start().await;
    let mut proxy = Proxy::start(&up.url(), &[]);
    let url = proxy.url("/slow");
    let slow = tokio::spawn(async move { get(&http1(), &url, &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .unwrap();
    // Not ready at once, while the slow request is still in flight.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = get(&http1(), &admin(&proxy, "/readyz"), &[]).await;
        if got.status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No new connections.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
    let got = slow.await.unwrap();
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "slow"));
    let status = proxy.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(proxy.log(1)["status"], 200);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  max_header_size: 16 KiB\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let big = "x".repeat(20 * 1024);
    let got = get(&http1(), &proxy.url("/"), &[("x-big", &big)]).await;
    assert_eq!(got.status, 431);
    let small = "x".repeat(8 * 1024);
    let got = get(&http1(), &proxy.url("/"), &[("x-big", &small)]).await;
    assert_eq!(got.status, 200);
}

async fn exchange(stream: &mut tokio::net::TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "timeouts:\n  header_read: 1s\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    assert!(exchange(&mut s).await.starts_with("HTTP/1.1 200"));
    // Idle past the limit: the proxy closes the connection.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_their_turn() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  max_connections: 1\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let mut first = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    assert!(exchange(&mut first).await.starts_with("HTTP/1.1 200"));
    // The second connection is queued by the kernel, not served, while the first is open.
    let mut second = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(500), exchange(&mut second)).await;
    assert!(waiting.is_err(), "served beyond the limit: {waiting:?}");
    drop(first);
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("served once the first closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configmap_update_is_reloaded() {
    // A mounted ConfigMap: policy.yaml -> ..data/policy.yaml, ..data -> ..<timestamp>/. An
    // update writes a new timestamped directory and swaps the ..data symlink by a rename.
    use std::os::unix::fs::symlink;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/policy.yaml"), "consent_cookie: first\n").unwrap();
    symlink("..v1", d.join("..data")).unwrap();
    symlink("..data/policy.yaml", d.join("policy.yaml")).unwrap();
    let policy = d.join("policy.yaml");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(d.join("..v2/policy.yaml"), "consent_cookie: second\n").unwrap();
    symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[("cookie", "second=all"), ("x-set-cookie", "_ga=1; Path=/")],
    )
    .await;
    assert!(got.set_cookie_names().contains(&"_ga".to_string()));
}

#[tokio::test]
async fn silent_connections_are_dropped() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "timeouts:\n  header_read: 1s\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    // A socket that sends nothing, and an HTTP/2 connection that sends only its preface.
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut preface = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for s in [&mut silent, &mut preface] {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue, // the server's SETTINGS frame
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after 5 s");
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_just_after_sigterm_on_an_open_connection_is_answered() {
    let up = Upstream::start().await;
    let mut proxy = Proxy::start(&up.url(), &[]);
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = exchange(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(proxy.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_named_by_a_reloaded_config_is_watched_too() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (first, second) = (
        dir.path().join("first.yaml"),
        other.path().join("second.yaml"),
    );
    std::fs::write(&first, "consent_cookie: first\n").unwrap();
    std::fs::write(&second, "consent_cookie: second\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("policy: {}\n", first.display())).unwrap();
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let success = "consent_proxy_policy_reloads_total{result=\"success\"}";
    replace(&config, &format!("policy: {}\n", second.display()));
    wait_for_metric(&proxy, success, 1.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = metric(&proxy, success).await;
    // The new policy file, in a directory not watched at start, is now watched.
    replace(&second, "consent_cookie: third\n");
    wait_for_metric(&proxy, success, settled + 1.0).await;
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[("cookie", "third=all"), ("x-set-cookie", "_ga=1; Path=/")],
    )
    .await;
    assert!(got.set_cookie_names().contains(&"_ga".to_string()));
}

#[tokio::test]
async fn an_upgraded_tunnel_keeps_its_connection_slot() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  max_connections: 1\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let (mut ws, head) = websocket(proxy.addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    // The tunnel holds the only slot: another connection waits.
    let mut other = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(500), exchange(&mut other)).await;
    assert!(
        waiting.is_err(),
        "served beside an open tunnel: {waiting:?}"
    );
    drop(ws);
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), other.read(&mut buf))
        .await
        .expect("served once the tunnel closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
