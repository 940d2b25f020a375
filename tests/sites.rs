//! End to end: several sites in one proxy (`sites:`). Each host reaches its own upstream under
//! its own policy, declarations and banner texts; an unknown host is answered 421; on TLS the
//! server name picks the certificate and must agree with the host; the decision log and the
//! metrics name the site; the cookie inventory and the consent records are kept per site; a
//! site whose policy breaks on reload keeps its old one while the others take their new ones;
//! and sites (with their certificates) are added, changed and removed on reload.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const SHOP_POLICY: &str = "extends: builtin\nconsent_cookie: shop_consent\ncookies:\n  - { name: basket_7f3, category: necessary }\ndeclarations:\n  gpc: { last_update: 2026-11-01 }\nbanner:\n  enabled: true\n  texts:\n    en: { preferences_title: Cookies at the shop }\n";
const BLOG_POLICY: &str = "extends: builtin\nconsent_cookie: blog_consent\nbanner:\n  enabled: true\n  texts:\n    en: { preferences_title: Cookies on the blog }\n";

/// A config of two sites, `shop` (shop.example and any one label before it) and `blog`
/// (blog.example), with their policies beside it; `extra` goes under each site.
fn two_sites(dir: &Path, shop: &str, blog: &str, extra: [&str; 2]) -> std::path::PathBuf {
    std::fs::write(dir.join("shop.yaml"), SHOP_POLICY).unwrap();
    std::fs::write(dir.join("blog.yaml"), BLOG_POLICY).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "consent_records: {{ path: records.db }}\n\
             sites:\n\
             \x20 - name: shop\n\
             \x20   server_names: [shop.example, '*.shop.example']\n\
             \x20   upstream: {shop}\n\
             \x20   policy: shop.yaml\n{}\
             \x20 - name: blog\n\
             \x20   server_names: [Blog.Example]\n\
             \x20   upstream: {blog}\n\
             \x20   policy: blog.yaml\n{}",
            extra[0], extra[1]
        ),
    )
    .unwrap();
    config
}

/// A GET to the proxy with this Host.
async fn at(proxy: &Proxy, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    get(&http1(), &proxy.url(path), &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_reaches_its_own_site() {
    let (shop_up, blog_up) = (Upstream::start().await, Upstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let config = two_sites(dir.path(), &shop_up.url(), &blog_up.url(), ["", ""]);
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("2 sites: site shop (shop.example, *.shop.example)")
            && said.contains("site blog (blog.example)"),
        "{said}"
    );
    let ga = [("x-set-cookie", "_ga=1; Path=/")];

    // Each site reads its own consent cookie and reaches its own upstream.
    let got = at(
        &proxy,
        "shop.example",
        "/a",
        &[("cookie", "shop_consent=all"), ga[0]],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.set_cookie_names(), ["_ga"]);
    assert_eq!(shop_up.last_seen().path, "/a");
    let got = at(
        &proxy,
        "www.shop.example:8080",
        "/b",
        &[("cookie", "blog_consent=all"), ga[0]],
    )
    .await;
    assert!(
        !got.set_cookie_names().contains(&"_ga".to_string()),
        "the blog's cookie grants nothing at the shop: {:?}",
        got.set_cookies()
    );
    assert_eq!(shop_up.last_seen().path, "/b");
    let got = at(
        &proxy,
        "BLOG.example",
        "/c",
        &[("cookie", "blog_consent=all"), ga[0]],
    )
    .await;
    assert_eq!(got.set_cookie_names(), ["_ga"]);
    assert_eq!(blog_up.last_seen().path, "/c");
    assert_eq!(blog_up.hits.load(Ordering::SeqCst), 1);
    assert_eq!(shop_up.hits.load(Ordering::SeqCst), 2);

    // Declarations and banner texts are the site's own.
    let got = at(&proxy, "shop.example", "/.well-known/gpc.json", &[]).await;
    assert_eq!(got.header("content-type"), ["application/json"]);
    assert!(got.body.contains("\"gpc\":true"), "{}", got.body);
    let got = at(&proxy, "blog.example", "/.well-known/gpc.json", &[]).await;
    assert!(
        got.header("content-type")[0].starts_with("text/html"),
        "the blog's own answer"
    );
    assert_eq!(blog_up.last_seen().path, "/.well-known/gpc.json");
    let prefs = "/.well-known/consent-proxy/preferences";
    let shop = at(&proxy, "shop.example", prefs, &[]).await;
    let blog = at(&proxy, "blog.example", prefs, &[]).await;
    assert!(shop.body.contains("Cookies at the shop"), "{}", shop.body);
    assert!(!shop.body.contains("Cookies on the blog"));
    assert!(blog.body.contains("Cookies on the blog"), "{}", blog.body);

    // HTTP/2 names its host in the authority.
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (authority, host, status) in [
        ("blog.example", None, 200),
        ("elsewhere.example", None, 421),
        // A Host naming another site than :authority is malformed (RFC 9113 §8.3.1).
        ("blog.example", Some("shop.example"), 400),
        ("blog.example", Some("BLOG.example:443"), 200),
    ] {
        let mut req = http::Request::get(format!("http://{authority}/h2"));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let resp = h2
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{authority} {host:?}");
    }
    assert_eq!(blog_up.last_seen().path, "/h2");
    assert_eq!(blog_up.hits.load(Ordering::SeqCst), 4);

    // An absolute-form target names the host (RFC 9112 §3.2.2), whatever Host says: the
    // request goes to that site, with that Host.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(
            b"GET http://blog.example/absolute HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let seen = blog_up.last_seen();
        assert_eq!(seen.path, "/absolute");
        assert_eq!(seen.headers["host"], "blog.example");
    }

    // A host no site names: 421, and nothing reaches an upstream.
    let before = shop_up.hits.load(Ordering::SeqCst) + blog_up.hits.load(Ordering::SeqCst);
    for host in [
        "unknown.example",
        "a.b.shop.example",
        "127.0.0.1",
        "shop.example.evil",
    ] {
        let got = at(&proxy, host, "/", &[]).await;
        assert_eq!(got.status, 421, "{host}");
        assert!(
            got.body.contains("does not serve that host"),
            "{}",
            got.body
        );
    }
    assert_eq!(
        shop_up.hits.load(Ordering::SeqCst) + blog_up.hits.load(Ordering::SeqCst),
        before
    );

    // The log names the site; a misdirected request names none.
    let logs = proxy.logs(16);
    let site_of = |path: &str, host: &str| {
        logs.iter()
            .find(|r| r["path"] == path && r["host"].as_str().unwrap().eq_ignore_ascii_case(host))
            .unwrap_or_else(|| panic!("no record of {host}{path}: {logs:?}"))["site"]
            .clone()
    };
    assert_eq!(site_of("/a", "shop.example"), "shop");
    assert_eq!(site_of("/b", "www.shop.example:8080"), "shop");
    assert_eq!(site_of("/c", "blog.example"), "blog");
    let misdirected = logs
        .iter()
        .find(|r| r["host"] == "unknown.example")
        .unwrap();
    assert_eq!(misdirected["error"], "misdirected");
    assert!(misdirected.get("site").is_none(), "{misdirected}");

    // The metrics carry the site.
    for (series, value) in [
        (
            "consent_proxy_requests_total{site=\"shop\",status=\"200\"}",
            4.0,
        ),
        (
            "consent_proxy_requests_total{site=\"blog\",status=\"200\"}",
            6.0,
        ),
        (
            "consent_proxy_requests_total{site=\"blog\",status=\"400\"}",
            1.0,
        ),
        (
            "consent_proxy_requests_total{site=\"\",status=\"421\"}",
            5.0,
        ),
        (
            "consent_proxy_cookies_stripped_total{site=\"shop\",direction=\"response\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&proxy, series).await, value, "{series}");
    }

    // The cookie inventory is kept per site, each name classified by its own site's policy:
    // `basket_7f3` is necessary at the shop, which names it, and unknown on the blog.
    let basket = [("x-set-cookie", "basket_7f3=1; Path=/")];
    let basket_kept = |got: Got| got.set_cookie_names().contains(&"basket_7f3".to_string());
    assert!(basket_kept(
        at(&proxy, "shop.example", "/inv", &basket).await
    ));
    assert!(!basket_kept(
        at(&proxy, "blog.example", "/inv", &basket).await
    ));
    let inventory = |query: &'static str| {
        let proxy = &proxy;
        async move { get(&http1(), &admin(proxy, &format!("/cookies{query}")), &[]).await }
    };
    let rows = |got: &Got| -> Vec<(String, String, serde_json::Value, u64, u64)> {
        let report: serde_json::Value = serde_json::from_str(&got.body).unwrap();
        report["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["site"].as_str().unwrap().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                    e["category"].clone(),
                    e["seen"].as_u64().unwrap(),
                    e["stripped"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let row = |site: &str, name: &str, category: serde_json::Value, seen, stripped| {
        (site.to_string(), name.to_string(), category, seen, stripped)
    };
    let all = inventory("").await;
    assert_eq!(all.status, 200);
    assert_eq!(
        rows(&all),
        [
            row("blog", "basket_7f3", serde_json::Value::Null, 1, 1),
            row("shop", "_ga", "analytics".into(), 2, 1),
            row("blog", "_ga", "analytics".into(), 1, 0),
            row("shop", "basket_7f3", "necessary".into(), 1, 0),
        ]
    );
    let blog = inventory("?site=blog").await;
    assert_eq!(
        rows(&blog),
        [
            row("blog", "basket_7f3", serde_json::Value::Null, 1, 1),
            row("blog", "_ga", "analytics".into(), 1, 0),
        ]
    );
    let got = inventory("?site=news").await;
    assert_eq!(got.status, 400);
    assert_eq!(
        got.body,
        "no site is named \"news\"; the sites are: shop, blog\n"
    );
    assert_eq!(inventory("?sight=blog").await.status, 400);
}

/// A TLS client trusting only `cert_pem`, asking for `name`.
async fn tls_to(
    addr: std::net::SocketAddr,
    cert_pem: &Path,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

/// An HTTP/1 connection over TLS to `addr`, trusting only `cert_pem`, opened for `name`.
async fn tls_http1(
    addr: std::net::SocketAddr,
    cert_pem: &Path,
    name: &str,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tls = tls_to(addr, cert_pem, name)
        .await
        .unwrap_or_else(|e| panic!("a TLS connection for {name}: {e}"));
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// Writes a self-signed certificate for `name` and its key; returns their paths.
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_server_name_picks_the_certificate_and_must_agree_with_the_host() {
    let (shop_up, blog_up) = (Upstream::start().await, Upstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (shop_cert, shop_key) = certificate(dir.path(), "shop.example");
    let (blog_cert, blog_key) = certificate(dir.path(), "blog.example");
    let tls = |c: &Path, k: &Path| {
        format!(
            "\x20   tls: {{ certificates: [{{ cert: {}, key: {} }}] }}\n",
            c.display(),
            k.display()
        )
    };
    let config = two_sites(
        dir.path(),
        &shop_up.url(),
        &blog_up.url(),
        [&tls(&shop_cert, &shop_key), &tls(&blog_cert, &blog_key)],
    );
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");

    // Each name gets its site's certificate: a client trusting only that one completes.
    let request = |host: &'static str| {
        http::Request::get("/t")
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let mut send = tls_http1(proxy.addr, &shop_cert, "shop.example").await;
    let resp = send.send_request(request("shop.example")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // The same connection, another site's host: 421, and nothing reaches the blog.
    send.ready().await.unwrap();
    let resp = send.send_request(request("blog.example")).await.unwrap();
    assert_eq!(resp.status(), 421);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("opened for another host"));
    assert_eq!(blog_up.hits.load(Ordering::SeqCst), 0);
    assert_eq!(shop_up.hits.load(Ordering::SeqCst), 1);

    let mut send = tls_http1(proxy.addr, &blog_cert, "blog.example").await;
    let resp = send.send_request(request("blog.example")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(blog_up.hits.load(Ordering::SeqCst), 1);

    // On reload, the blog goes and a news site comes with its own certificate: its name gets
    // that certificate, and the blog's is no longer offered.
    let news_up = Upstream::start().await;
    let (news_cert, news_key) = certificate(dir.path(), "news.example");
    std::fs::write(dir.path().join("news.yaml"), "extends: builtin\n").unwrap();
    let (shop_tls, news_tls) = (tls(&shop_cert, &shop_key), tls(&news_cert, &news_key));
    let shop_and_news = sites_config(
        dir.path(),
        &[
            (
                "shop",
                "shop.example",
                &shop_up.url(),
                "shop.yaml",
                &shop_tls,
            ),
            (
                "news",
                "news.example",
                &news_up.url(),
                "news.yaml",
                &news_tls,
            ),
        ],
    );
    replace(&config, &shop_and_news);
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    let mut send = tls_http1(proxy.addr, &news_cert, "news.example").await;
    let resp = send.send_request(request("news.example")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(news_up.hits.load(Ordering::SeqCst), 1);
    assert!(
        tls_to(proxy.addr, &blog_cert, "blog.example")
            .await
            .is_err(),
        "the removed blog's certificate is still offered"
    );
    assert!(tls_to(proxy.addr, &shop_cert, "shop.example").await.is_ok());

    // A new site whose certificate does not load is not added: the sites and certificates in
    // force stay.
    let mut with_bad = shop_and_news.clone();
    with_bad.push_str(&format!(
        "  - name: late
    server_names: [late.example]
    upstream: {}
{}",
        news_up.url(),
        tls(
            &dir.path().join("late.pem"),
            &dir.path().join("late-key.pem")
        )
    ));
    replace(&config, &with_bad);
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"failure\"}",
        1.0,
    )
    .await;
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("reload: the sites stay as they are, since not all of the new ones load")
            && said.contains("late.pem"),
        "{said}"
    );
    assert!(!said.contains("site late added"), "{said}");
    let metrics = get(&http1(), &admin(&proxy, "/metrics"), &[]).await.body;
    assert!(!metrics.contains("site=\"late\""), "{metrics}");
    assert!(tls_to(proxy.addr, &news_cert, "news.example").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_on_reload_keeps_that_site_and_not_the_others() {
    let (shop_up, blog_up) = (Upstream::start().await, Upstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let config = two_sites(dir.path(), &shop_up.url(), &blog_up.url(), ["", ""]);
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    let grants = |host: &'static str, cookie: &'static str| {
        let proxy = &proxy;
        async move {
            let got = at(
                proxy,
                host,
                "/",
                &[("cookie", cookie), ("x-set-cookie", "_ga=1; Path=/")],
            )
            .await;
            got.set_cookie_names().contains(&"_ga".to_string())
        }
    };
    assert!(grants("shop.example", "shop_consent=all").await);
    assert!(grants("blog.example", "blog_consent=all").await);

    // The blog's policy breaks, then the shop's changes: the shop takes its new policy, the
    // blog keeps the one in force.
    replace(
        &dir.path().join("blog.yaml"),
        "consent_cookie: blog_new\ncookies:\n  - { name: x, category: bogus }\n",
    );
    replace(
        &dir.path().join("shop.yaml"),
        &SHOP_POLICY.replace("shop_consent", "shop_new"),
    );
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"failure\"}",
        1.0,
    )
    .await;
    wait_until("the shop never took its new policy", async || {
        grants("shop.example", "shop_new=all").await
    })
    .await;
    assert!(!grants("shop.example", "shop_consent=all").await);
    assert!(
        grants("blog.example", "blog_consent=all").await,
        "the blog's policy stays"
    );
    assert!(!grants("blog.example", "blog_new=all").await);
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("reload: site `blog`: ")
            && said.contains("bogus")
            && said.contains("the policy in force for this site stays"),
        "{said}"
    );
    assert!(said.contains("reloaded: site shop: policy"), "{said}");

    // Fixed, it loads.
    replace(
        &dir.path().join("blog.yaml"),
        &BLOG_POLICY.replace("blog_consent", "blog_new"),
    );
    wait_until("the blog never took its fixed policy", async || {
        grants("blog.example", "blog_new=all").await
    })
    .await;
    assert!(grants("shop.example", "shop_new=all").await);
}

#[test]
fn a_config_with_sites_is_checked_site_by_site() {
    let dir = tempfile::tempdir().unwrap();
    let config = two_sites(
        dir.path(),
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        ["", ""],
    );
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("site shop (shop.example, *.shop.example) → http://127.0.0.1:1:"),
        "{text}"
    );
    assert!(
        text.contains("site blog (blog.example) → http://127.0.0.1:2:"),
        "{text}"
    );

    // A broken site policy fails the check, named.
    std::fs::write(
        dir.path().join("blog.yaml"),
        "cookies:\n  - { name: x, category: bogus }\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("site blog: ") && text.contains("bogus"),
        "{text}"
    );

    // Errors of the sites themselves, with where they are.
    for (yaml, expected) in [
        (
            "sites:\n  - name: a\n    server_names: []\n    upstream: http://a\n",
            "list at least one server name",
        ),
        (
            "sites:\n  - name: a\n    server_names: [a.example:443]\n    upstream: http://a\n",
            "without scheme, port or path",
        ),
        (
            "sites:\n  - name: A B\n    server_names: [a.example]\n    upstream: http://a\n",
            "site name `A B`",
        ),
        (
            "sites:\n  - name: a\n    server_names: [a.example]\n    upstream: a.example\n",
            "needs a scheme",
        ),
        (
            "sites:\n  - name: a\n    server_names: [a.example]\n    upstream: http://a\n  - name: b\n    server_names: [A.example]\n    upstream: http://b\n",
            "`a.example` is a server name of both `a` and `b`",
        ),
        (
            "sites:\n  - name: a\n    server_names: [a.example]\n    upstream: http://a\n  - name: a\n    server_names: [b.example]\n    upstream: http://b\n",
            "two sites are named `a`",
        ),
        (
            "upstream: http://x\nsites:\n  - name: a\n    server_names: [a.example]\n    upstream: http://a\n",
            "`upstream` is for a config without `sites`",
        ),
        ("sites: []\n", "list at least one site"),
    ] {
        std::fs::write(&config, yaml).unwrap();
        let out = std::process::Command::new(bin())
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{yaml}");
        assert!(text.contains(expected), "{yaml}: {text}");
    }

    // --upstream is for the one site of a config without `sites`.
    std::fs::write(
        &config,
        "sites:\n  - name: a\n    server_names: [a.example]\n    upstream: http://a\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://b",
            "--config",
        ])
        .arg(&config)
        .env("CONSENT_PROXY_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set them in each site"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A choice made on each site is recorded with its site, and an export can ask for one site's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_records_carry_their_site_and_export_by_site() {
    let (shop_up, blog_up) = (Upstream::start().await, Upstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let config = two_sites(dir.path(), &shop_up.url(), &blog_up.url(), ["", ""]);
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    for (host, choice) in [("shop.example", "accept"), ("blog.example", "reject")] {
        let page = at(&proxy, host, "/tracked", &[]).await;
        let csrf = cookie_value(&page, "consent_proxy_csrf").expect("a CSRF cookie");
        let (origin, cookie) = (
            format!("http://{host}"),
            format!("consent_proxy_csrf={csrf}"),
        );
        let got = post(
            &proxy,
            "/.well-known/consent-proxy/preferences",
            &[
                ("host", host),
                ("origin", &origin),
                ("sec-fetch-site", "same-origin"),
                ("cookie", &cookie),
            ],
            &format!(
                "csrf={}&return=%2Ftracked&choice={choice}",
                form_token(&page.body)
            ),
        )
        .await;
        assert_eq!(got.status, 303, "{host}: {}", got.body);
    }
    let export = |query: &'static str| {
        let proxy = &proxy;
        async move { get(&http1(), &admin(proxy, &format!("/consents{query}")), &[]).await }
    };
    let sites_and_kinds = |got: Got| -> Vec<(String, String)> {
        assert_eq!(got.status, 200, "{}", got.body);
        got.body
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    r["site"].as_str().unwrap().to_string(),
                    r["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |site: &str, kind: &str| (site.to_string(), kind.to_string());
    // Both (ordered here: two records of one millisecond are in the order of their IDs).
    let mut both = sites_and_kinds(export("").await);
    both.sort();
    assert_eq!(both, [pair("blog", "reject"), pair("shop", "accept")]);
    assert_eq!(
        sites_and_kinds(export("?site=shop").await),
        [pair("shop", "accept")]
    );
    assert_eq!(
        sites_and_kinds(export("?site=blog&limit=5").await),
        [pair("blog", "reject")]
    );
    // A site not configured (any more) may still have records: none here.
    assert_eq!(sites_and_kinds(export("?site=news").await), []);
    let got = export("?site=News%20Site").await;
    assert_eq!(got.status, 400);
    assert_eq!(
        got.body,
        "site name `News Site`: use 1 to 64 of a-z, 0-9, `-`, `_` and `.`\n"
    );
}

/// The config of `sites` (name, server names, upstream, policy file, extra lines) in `dir`.
fn sites_config(dir: &Path, sites: &[(&str, &str, &str, &str, &str)]) -> String {
    let mut text = String::from("consent_records: { path: records.db }\nsites:\n");
    for (name, names, upstream, policy, extra) in sites {
        text.push_str(&format!(
            "  - name: {name}\n    server_names: [{names}]\n    upstream: {upstream}\n    \
             policy: {}\n{extra}",
            dir.join(policy).display()
        ));
    }
    text
}

/// Whether a request to `host` with `cookie` keeps the `_ga` its upstream sets, and its status.
async fn visit(proxy: &Proxy, host: &str, cookie: &str) -> (u16, bool) {
    let got = at(
        proxy,
        host,
        "/r",
        &[("cookie", cookie), ("x-set-cookie", "_ga=1; Path=/")],
    )
    .await;
    (
        got.status.as_u16(),
        got.set_cookie_names().contains(&"_ga".to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_are_added_changed_and_removed_on_reload() {
    let (shop_up, blog_up) = (Upstream::start().await, Upstream::start().await);
    let (moved_up, news_up) = (Upstream::start().await, Upstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let config = two_sites(dir.path(), &shop_up.url(), &blog_up.url(), ["", ""]);
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    let successes = "consent_proxy_policy_reloads_total{result=\"success\"}";
    let failures = "consent_proxy_policy_reloads_total{result=\"failure\"}";
    assert_eq!(
        visit(&proxy, "blog.example", "blog_consent=all").await,
        (200, true)
    );
    assert_eq!(visit(&proxy, "news.example", "").await.0, 421);

    // The blog goes, the news site comes, the shop moves to another upstream and gains a name.
    std::fs::write(
        dir.path().join("news.yaml"),
        "extends: builtin\nconsent_cookie: news_consent\n",
    )
    .unwrap();
    let (moved_url, news_url) = (moved_up.url(), news_up.url());
    replace(
        &config,
        &sites_config(
            dir.path(),
            &[
                (
                    "shop",
                    "shop.example, store.example",
                    &moved_url,
                    "shop.yaml",
                    "",
                ),
                ("news", "news.example", &news_url, "news.yaml", ""),
            ],
        ),
    );
    wait_for_metric(&proxy, successes, 1.0).await;
    assert_eq!(
        visit(&proxy, "news.example", "news_consent=all").await,
        (200, true)
    );
    assert_eq!(
        visit(&proxy, "news.example", "shop_consent=all").await,
        (200, false)
    );
    assert_eq!(news_up.last_seen().path, "/r");
    assert_eq!(
        visit(&proxy, "store.example", "shop_consent=all").await,
        (200, true)
    );
    assert_eq!(visit(&proxy, "shop.example", "").await, (200, false));
    assert_eq!(moved_up.hits.load(Ordering::SeqCst), 2);
    assert_eq!(shop_up.hits.load(Ordering::SeqCst), 0);
    let blog_hits = blog_up.hits.load(Ordering::SeqCst);
    assert_eq!(
        visit(&proxy, "blog.example", "blog_consent=all").await.0,
        421
    );
    assert_eq!(blog_up.hits.load(Ordering::SeqCst), blog_hits);
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("reload: site news added (news.example)")
            && said.contains("reload: site blog removed"),
        "{said}"
    );
    // The new site's series are shown from 0, the removed site's are gone; the new site's log
    // records name it.
    let metrics = get(&http1(), &admin(&proxy, "/metrics"), &[]).await.body;
    assert!(
        metrics.contains("consent_proxy_tags_neutralized_total{site=\"news\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("site=\"blog\""), "{metrics}");
    let logs = proxy.logs(3);
    assert!(
        logs.iter()
            .any(|r| r["host"] == "news.example" && r["site"] == "news"),
        "{logs:?}"
    );

    // A new site whose policy does not load is not added, and the sites stay as they are (the
    // shop does not gain its new name) until every new one loads; the news site's policy, in a
    // site kept, is taken.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "cookies:\n  - { name: x, category: bogus }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("news.yaml"),
        "extends: builtin\nconsent_cookie: news_new\n",
    )
    .unwrap();
    let failed = metric(&proxy, failures).await;
    replace(
        &config,
        &sites_config(
            dir.path(),
            &[
                (
                    "shop",
                    "shop.example, store.example, extra.example",
                    &moved_url,
                    "shop.yaml",
                    "",
                ),
                ("news", "news.example", &news_url, "news.yaml", ""),
                ("broken", "broken.example", &news_url, "broken.yaml", ""),
            ],
        ),
    );
    wait_for_metric(&proxy, failures, failed + 1.0).await;
    assert_eq!(visit(&proxy, "broken.example", "").await.0, 421);
    assert_eq!(visit(&proxy, "extra.example", "").await.0, 421);
    assert_eq!(
        visit(&proxy, "news.example", "news_new=all").await,
        (200, true)
    );
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains("reload: the sites stay as they are, since not all of the new ones load")
            && said.contains("bogus"),
        "{said}"
    );

    // A rename is a new site: with a policy that does not load, the shop stays, under its
    // name, upstream and policy.
    let failed = metric(&proxy, failures).await;
    replace(
        &config,
        &sites_config(
            dir.path(),
            &[
                (
                    "store",
                    "shop.example, store.example",
                    &moved_url,
                    "broken.yaml",
                    "",
                ),
                ("news", "news.example", &news_url, "news.yaml", ""),
            ],
        ),
    );
    wait_for_metric(&proxy, failures, failed + 1.0).await;
    assert_eq!(
        visit(&proxy, "shop.example", "shop_consent=all").await,
        (200, true)
    );
    assert_eq!(
        at(&proxy, "shop.example", "/renamed", &[]).await.status,
        200
    );
    let renamed = || proxy.logs(0).into_iter().find(|r| r["path"] == "/renamed");
    wait_until("no record of /renamed", async || renamed().is_some()).await;
    assert_eq!(renamed().unwrap()["site"], "shop");

    // Switching from sites to one upstream takes a restart: the sites stay as they are.
    let before = metric(&proxy, successes).await;
    replace(&config, &format!("upstream: {}\n", blog_up.url()));
    wait_for_metric(&proxy, successes, before + 1.0).await;
    assert_eq!(
        visit(&proxy, "news.example", "news_new=all").await,
        (200, true)
    );
    assert_eq!(visit(&proxy, "blog.example", "").await.0, 421);
    let said = proxy.stderr.lock().unwrap().join("\n");
    assert!(
        said.contains(
            "reload: `sites` (one upstream or several sites) changed; it takes effect on restart"
        ),
        "{said}"
    );
}

/// A reload that switches a banner on, when no site had it at start, opens the consent records
/// (those `consent_records` named at start): the admin listener's `/consents` answers, and the
/// preference centre is the proxy's, with the site's texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_switched_on_by_a_reload_opens_the_consent_records() {
    let shop_up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.yaml"),
        "extends: builtin\nconsent_cookie: shop_consent\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    let url = shop_up.url();
    let with_records = |policy: &str, db: &Path| {
        sites_config(dir.path(), &[("shop", "shop.example", &url, policy, "")])
            .replace("records.db", &db.display().to_string())
    };
    std::fs::write(
        &config,
        with_records("shop.yaml", &dir.path().join("before.db")),
    )
    .unwrap();
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    let (before, after) = (dir.path().join("before.db"), dir.path().join("after.db"));
    let consents = admin(&proxy, "/consents?limit=5");
    assert_eq!(get(&http1(), &consents, &[]).await.status, 404);
    let prefs = "/.well-known/consent-proxy/preferences";
    // The banner off, the preference page is the site's own.
    let page = at(&proxy, "shop.example", prefs, &[]).await;
    assert!(!page.body.contains("Cookies at the shop"), "{}", page.body);
    assert_eq!(shop_up.last_seen().path, prefs);

    // The banner is switched on (a policy file with it) and the store moved in one change of
    // the config: the store opened is the config's new one.
    std::fs::write(dir.path().join("banner.yaml"), SHOP_POLICY).unwrap();
    replace(&config, &with_records("banner.yaml", &after));
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    // The store opens just after the new policy is in force.
    wait_until("the consent records were not opened", async || {
        get(&http1(), &consents, &[]).await.status == 200
    })
    .await;
    let page = at(&proxy, "shop.example", prefs, &[]).await;
    assert!(page.body.contains("Cookies at the shop"), "{}", page.body);
    assert_eq!(shop_up.hits.load(Ordering::SeqCst), 1);
    assert!(after.exists() && !before.exists());
    // The line is logged after the store is in place: wait for it.
    let opened = "the banner is switched on; consent records are opened";
    wait_until(&format!("no line `{opened}`"), async || {
        proxy.said(|l| l.contains(opened))
    })
    .await;
}

/// A banner switched on by a reload whose store cannot be opened stays hidden, and is shown
/// once a later attempt opens the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_opened_yet_is_tried_again() {
    let shop_up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let db = missing.join("records.db").display().to_string();
    let config = dir.path().join("config.yaml");
    let url = shop_up.url();
    let text = |policy: &str, touch: &str| {
        sites_config(dir.path(), &[("shop", "shop.example", &url, policy, "")])
            .replace("records.db", &db)
            + touch
    };
    std::fs::write(
        dir.path().join("shop.yaml"),
        "extends: builtin\nconsent_cookie: shop_consent\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("banner.yaml"), SHOP_POLICY).unwrap();
    std::fs::write(&config, text("shop.yaml", "")).unwrap();
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    let successes = "consent_proxy_policy_reloads_total{result=\"success\"}";
    let prefs = "/.well-known/consent-proxy/preferences";

    replace(&config, &text("banner.yaml", ""));
    wait_for_metric(&proxy, successes, 1.0).await;
    let hidden = "the banner is switched on, but the consent records cannot be opened";
    wait_until("no error logged", async || {
        proxy.said(|l| l.contains(hidden) && l.contains("not-yet"))
    })
    .await;
    // No store: the gauge says so, and the preference centre refuses (a choice would have
    // nowhere to go).
    wait_for_metric(&proxy, "consent_proxy_banner_hidden", 1.0).await;
    let page = at(&proxy, "shop.example", prefs, &[]).await;
    assert_eq!(page.status, 503);
    assert_eq!(
        page.body,
        "503 Service Unavailable: consent records are not configured on this proxy\n"
    );
    let consents = admin(&proxy, "/consents?limit=5");
    assert_eq!(get(&http1(), &consents, &[]).await.status, 404);

    // The directory appears; the next reload opens the store.
    std::fs::create_dir(&missing).unwrap();
    replace(&config, &text("banner.yaml", "# again\n"));
    wait_for_metric(&proxy, successes, 2.0).await;
    wait_until("the store was not opened on the next reload", async || {
        get(&http1(), &consents, &[]).await.status == 200
    })
    .await;
    let page = at(&proxy, "shop.example", prefs, &[]).await;
    assert!(page.body.contains("Cookies at the shop"), "{}", page.body);
    assert!(missing.join("records.db").exists());
    let metrics = get(&http1(), &admin(&proxy, "/metrics"), &[]).await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "consent_proxy_banner_hidden 0"),
        "{metrics}"
    );
}

/// Without `sites`, the one upstream moves on reload too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sites_the_upstream_moves_on_reload() {
    let (first, second) = (Upstream::start().await, Upstream::start().await);
    let (_dir, config) = temp_file("config.yaml", &format!("upstream: {}\n", first.url()));
    let proxy = Proxy::with_config(&config, "127.0.0.1:0");
    assert_eq!(get(&http1(), &proxy.url("/one"), &[]).await.status, 200);
    replace(&config, &format!("upstream: {}\n", second.url()));
    wait_for_metric(
        &proxy,
        "consent_proxy_policy_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    assert_eq!(get(&http1(), &proxy.url("/two"), &[]).await.status, 200);
    assert_eq!(first.hits.load(Ordering::SeqCst), 1);
    assert_eq!(second.last_seen().path, "/two");
    assert_eq!(proxy.log(2)["site"], "default");
}
