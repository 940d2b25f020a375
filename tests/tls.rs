//! End to end: TLS on the main listener with the test certificate, HTTP/2 and HTTP/1.1 chosen
//! by ALPN, certificates reloaded from disk, and bad certificate files refused.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost-key.pem");

fn roots(cert_pem: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// A TLS connection to the proxy trusting `cert_pem`, offering `alpn`.
async fn connect(
    addr: std::net::SocketAddr,
    cert_pem: &Path,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(cert_pem))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn tls_config(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "tls:\n  certificates:\n    - {{ cert: {}, key: {} }}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_negotiates_h2_and_http1_by_alpn() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tls_config(dir.path(), Path::new(CERT), Path::new(KEY));
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    assert!(
        proxy
            .stderr
            .lock()
            .unwrap()
            .join("\n")
            .contains("listening on https://"),
        "the log names the scheme"
    );

    // h2, offered first, is chosen.
    let tls = connect(proxy.addr, Path::new(CERT), &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let version = tls.get_ref().1.protocol_version().unwrap();
    assert!(
        matches!(
            version,
            rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2
        ),
        "{version:?}"
    );
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/page")
        .header("x-set-cookie", "_ga=1; Path=/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "no consent: _ga stripped"
    );
    let seen = up.last_seen();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // A client that offers only http/1.1 gets it.
    let tls = connect(proxy.addr, Path::new(CERT), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/tracked")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("data-category"));

    // Plain HTTP on the TLS port is not served.
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        http1().request(
            http::Request::get(proxy.url("/"))
                .body(empty_body())
                .unwrap(),
        ),
    )
    .await
    .expect("answered or closed in time");
    assert!(got.is_err(), "plain HTTP was served: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_when_their_files_change() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(CERT, &cert).unwrap();
    std::fs::copy(KEY, &key).unwrap();
    let config = tls_config(dir.path(), &cert, &key);
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    assert!(
        connect(proxy.addr, Path::new(CERT), &[b"http/1.1"])
            .await
            .is_ok()
    );

    // A new certificate for localhost, from another key.
    let fresh = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let fresh_cert = dir.path().join("fresh-root.pem");
    std::fs::write(&fresh_cert, fresh.cert.pem()).unwrap();
    let tmp = dir.path().join("key.tmp");
    std::fs::write(&tmp, fresh.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("cert.tmp"), fresh.cert.pem()).unwrap();
    std::fs::rename(&tmp, &key).unwrap();
    std::fs::rename(dir.path().join("cert.tmp"), &cert).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(proxy.addr, &fresh_cert, &[b"http/1.1"])
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old one is gone.
    assert!(
        connect(proxy.addr, Path::new(CERT), &[b"http/1.1"])
            .await
            .is_err()
    );
}

#[test]
fn bad_certificate_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let config = tls_config(dir.path(), &empty, Path::new(KEY));
    let out = std::process::Command::new(bin())
        .args(["check", "--config", path_str(&config)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("empty.pem"), "{text}");

    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--config",
            path_str(&config),
        ])
        .env("CONSENT_PROXY_LISTEN", "127.0.0.1:0")
        .env("CONSENT_PROXY_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("empty.pem"), "{text}");
}

/// Reading the certificate files (as `cat` does, or as the proxy does when it loads them) and
/// writing stderr beside them is no change: no reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_certificates_or_logging_beside_them_does_not_reload() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(CERT, &cert).unwrap();
    std::fs::copy(KEY, &key).unwrap();
    let config = tls_config(dir.path(), &cert, &key);
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream", &up.url()])
        .args(["--config", path_str(&config)])
        // Every connection writes a line to stderr, beside the certificates.
        .env("RUST_LOG", "debug");
    let proxy = Proxy::spawn_with_stderr(cmd, Some(&dir.path().join("stderr.log")));
    for _ in 0..3 {
        assert!(
            connect(proxy.addr, Path::new(CERT), &[b"http/1.1"])
                .await
                .is_ok()
        );
        for f in [&cert, &key, &config] {
            std::fs::read(f).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines = proxy.stderr.lock().unwrap().clone();
    let reloads: Vec<_> = lines.iter().filter(|l| l.contains("reload")).collect();
    assert!(reloads.is_empty(), "{reloads:?}");
    assert!(lines.len() > 3, "stderr was written: {lines:?}");
    let got = get(&http1(), &admin(&proxy, "/metrics"), &[]).await;
    assert!(
        !got.body.contains("consent_proxy_policy_reloads_total{"),
        "{}",
        got.body
    );
}

/// Sends `bytes` on a TLS connection offering `alpn` and reads what comes back until the
/// proxy closes the connection (or 3 s pass).
async fn exchange_over_tls(addr: std::net::SocketAddr, alpn: &[&[u8]], bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = connect(addr, Path::new(CERT), alpn).await.unwrap();
    tls.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_speaks_exactly_the_protocol_alpn_chose() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tls_config(dir.path(), Path::new(CERT), Path::new(KEY));
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let h1_request = b"GET /h1-on-h2 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // An empty SETTINGS frame.
    const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

    // ALPN h2: an HTTP/1.1 request is not a connection preface. The answer, if any, is
    // HTTP/2 (a SETTINGS frame, then GOAWAY), never HTTP/1.1.
    let got = exchange_over_tls(proxy.addr, &[b"h2"], h1_request).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.is_empty() || got[3] == 4, "{got:?}");

    // ALPN http/1.1: the HTTP/2 preface is no HTTP/1.1 request and gets no HTTP/2 frame.
    let got = exchange_over_tls(proxy.addr, &[b"http/1.1"], &[PREFACE, SETTINGS].concat()).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
        "{text}"
    );
    assert!(
        got.len() < 9 || got[3] != 4,
        "an HTTP/2 SETTINGS frame: {got:?}"
    );

    // No ALPN at all: HTTP/1.1.
    let got = exchange_over_tls(
        proxy.addr,
        &[],
        b"GET /no-alpn HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // Only the last reached the site.
    let paths: Vec<_> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(paths, ["/no-alpn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_are_counted_not_written() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tls_config(dir.path(), Path::new(CERT), Path::new(KEY));
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let before = proxy.stderr.lock().unwrap().len();
    for _ in 0..30 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out),
        )
        .await;
    }
    let series = "consent_proxy_connections_failed_total{reason=\"tls_handshake\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&proxy, series).await < 30.0 {
        assert!(
            Instant::now() < deadline,
            "{}",
            metric(&proxy, series).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = proxy.stderr.lock().unwrap().len() - before;
    assert!(written <= 5, "{:?}", proxy.stderr.lock().unwrap());
}
