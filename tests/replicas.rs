//! End to end: two replicas behind a load balancer (Debian's nginx, round robin), sharing one
//! key file and one PostgreSQL store of consent records, as a Kubernetes Deployment of the
//! proxy runs them.
//! - Whichever replica answers, a visitor gets the same decision and the same pseudonym, the
//!   one the documented derivation gives (HKDF-SHA256 of the key file and the date).
//! - A banner form made by one replica is accepted by the other, and the record it stores is
//!   read back through either. A third proxy with another key file is the control: it refuses
//!   the form and gives another pseudonym.
//! - While each replica in turn is drained (SIGTERM) and started again on its port, as a
//!   rolling update does, a steady load through the balancer sees no error, answers under way
//!   on the stopped replica included. (With SIGKILL in place of the drain, the same load sees
//!   answers cut short.)

mod common;
use common::postgres::PgServer;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const POLICY: &str = "extends: builtin\nbanner:\n  enabled: true\n  privacy_policy: /privacy\n";
/// The visitor's address, as the balancer forwards it.
const VISITOR: &str = "203.0.113.77";

/// A free loopback port for a replica to listen on, now and again after a restart: below
/// the kernel's range of ephemeral ports (from 32768 on Linux), which the load's own
/// connections draw from.
fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 5_000) as u16;
    loop {
        let port = start + NEXT.fetch_add(1, Ordering::SeqCst) % 5_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// nginx as the load balancer: round robin over `replicas`, keep-alive to them, and the next
/// replica tried when one cannot be reached (as for any idempotent request).
struct Balancer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(replicas: &[u16]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let servers: String = replicas
            .iter()
            // Never marked down: a replica that cannot be reached costs one refused connection
            // and the next is tried (with the default max_fails=1, two replicas restarted
            // within fail_timeout of each other would leave "no live upstreams": 502).
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 upstream replicas {{\n{servers}    keepalive 32;\n  }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             \x20     proxy_pass http://replicas;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n\
             \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20     proxy_next_upstream error timeout;\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let nginx = tool("CONSENT_PROXY_NGINX", "/usr/sbin/nginx");
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {nginx} ({e}): scripts/test installs Debian's nginx-light")
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Balancer {
            child,
            addr,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Balancer {
    /// SIGTERM: nginx's master stops its workers (a SIGKILL would leave them running).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Writes a replica's config: the site, trusting the balancer's `X-Forwarded-For`, the client
/// address hashed with the key file, records in PostgreSQL.
fn config(dir: &Path, name: &str, upstream: &str, key_file: &Path, pg_url: &str) -> PathBuf {
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "upstream: {upstream}\npolicy: policy.yaml\ntrusted_proxies: [127.0.0.1/32]\n\
             client_ip:\n  mode: hmac\n  key_file: {}\n\
             consent_records:\n  store: postgres\n  url: \"{pg_url}\"\n\
             timeouts:\n  shutdown_grace: 5s\n",
            key_file.display()
        ),
    )
    .unwrap();
    path
}

/// Starts a replica on `port` (0: any).
fn replica(config: &Path, port: u16) -> Proxy {
    Proxy::with_config(config, &format!("127.0.0.1:{port}"))
}

/// The pseudonym of `ip` today under the secret `key`, derived as README.md documents it, by
/// another implementation than the proxy's (the OpenSSL command line): HKDF-SHA256 (salt
/// `consent-proxy v1`, info `client-ip YYYY-MM-DD`, the UTC date) gives the day's key, and the
/// pseudonym is the first 16 bytes of HMAC-SHA256 of the address's bytes under it.
fn expected_pseudonym(key: &[u8], ip: std::net::Ipv4Addr) -> String {
    let today = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let openssl = |args: &[String], input: &[u8]| -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the openssl command (scripts/test installs it)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // `openssl kdf` prints the key as colon-separated hexadecimal pairs.
    let day_key = openssl(
        &[
            "kdf".into(),
            "-keylen".into(),
            "32".into(),
            "-kdfopt".into(),
            "digest:SHA256".into(),
            "-kdfopt".into(),
            format!("hexkey:{}", hex(key)),
            "-kdfopt".into(),
            "salt:consent-proxy v1".into(),
            "-kdfopt".into(),
            format!("info:client-ip {}", &today[..10]),
            "HKDF".into(),
        ],
        b"",
    )
    .trim()
    .replace(':', "")
    .to_ascii_lowercase();
    assert_eq!(day_key.len(), 64, "{day_key}");
    // `openssl dgst` prints `HMAC-SHA2-256(stdin)= HEX`.
    let mac = openssl(
        &[
            "dgst".into(),
            "-sha256".into(),
            "-mac".into(),
            "HMAC".into(),
            "-macopt".into(),
            format!("hexkey:{day_key}"),
        ],
        &ip.octets(),
    );
    let digest = mac.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(digest.len(), 64, "{mac}");
    format!("hmac:{}", &digest[..32])
}

/// Posts the banner's "accept" to `proxy` as the balancer would pass it on: the site's host,
/// the visitor's form token and CSRF cookie.
async fn accept(proxy: &Proxy, host: &str, csrf_cookie: &str, token: &str) -> Got {
    let origin = format!("http://{host}");
    let cookie = format!("consent_proxy_csrf={csrf_cookie}");
    let headers = [
        ("host", host),
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("x-forwarded-for", VISITOR),
        ("cookie", cookie.as_str()),
    ];
    let form = format!("csrf={token}&return=%2Ftracked&choice=accept");
    post(
        proxy,
        "/.well-known/consent-proxy/preferences",
        &headers,
        &form,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_agree_and_a_rolling_restart_loses_no_request() {
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = b"shared secret of the replicas, 44 bytes long";
    let key_file = dir.path().join("client-ip.key");
    std::fs::write(&key_file, secret).unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, [b'o'; 40]).unwrap();
    let shared = config(dir.path(), "a.yaml", &up.url(), &key_file, &pg.url());
    let control = config(dir.path(), "c.yaml", &up.url(), &other_key, &pg.url());
    let ports = [free_port(), free_port()];
    let mut replicas = vec![replica(&shared, ports[0]), replica(&shared, ports[1])];
    let lb = Balancer::start(&ports);
    let host = lb.addr.to_string();

    // 1. The same decision and the same pseudonym, whichever replica answers. (Should the UTC
    // day turn during the test, the pseudonym of either day will do.)
    let before = expected_pseudonym(secret, VISITOR.parse().unwrap());
    for _ in 0..10 {
        let got = get(
            &http1(),
            &lb.url("/page"),
            &[
                ("x-forwarded-for", VISITOR),
                ("cookie", "cookie_consent=analytics"),
                ("x-set-cookie", "_ga=GA1.1; Path=/"),
                ("x-set-cookie", "_fbp=fb.1; Path=/"),
            ],
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            got.set_cookie_names(),
            ["_ga"],
            "analytics granted, marketing not"
        );
    }
    let expected = expected_pseudonym(secret, VISITOR.parse().unwrap());
    let pseudonyms = [Value::from(before), Value::from(expected.clone())];
    // Records of `path` each replica wrote, once there are `n` in all (the log is written as
    // answers end).
    let records_of = |replicas: &[Proxy], path: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let each: Vec<Vec<Value>> = replicas
                .iter()
                .map(|r| {
                    r.stdout
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .filter(|v: &Value| v["path"] == path)
                        .collect()
                })
                .collect();
            if each.iter().map(Vec::len).sum::<usize>() >= n {
                return each;
            }
            assert!(
                Instant::now() < deadline,
                "{n} records of {path} never came"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut served = [0usize; 2];
    for (i, records) in records_of(&replicas, "/page", 10).iter().enumerate() {
        served[i] = records.len();
        for rec in records {
            assert!(pseudonyms.contains(&rec["client"]), "replica {i}: {rec}");
            assert_eq!(names(&rec["granted"]), ["necessary", "analytics"], "{rec}");
            assert_eq!(names(&rec["stripped_set_cookies"]), ["_fbp"], "{rec}");
        }
    }
    assert_eq!(served, [5, 5], "round robin: each replica answered half");

    // 2. A form made by one replica is accepted by the other; the record is read back through
    // either. The control, with another key file, refuses the form.
    let (csrf, token) = form(&replicas[0], &host).await;
    let control_proxy = replica(&control, 0);
    let refused = accept(&control_proxy, &host, &csrf, &token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let got = accept(&replicas[1], &host, &csrf, &token).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
    let id = cookie_value(&got, "cookie_consent_id").expect("a consent ID");
    let mut records = Vec::new();
    for r in [&replicas[0], &replicas[1], &control_proxy] {
        let got = get(&http1(), &admin(r, &format!("/consents/{id}")), &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        records.push(serde_json::from_str::<Value>(&got.body).unwrap());
    }
    assert!(records.iter().all(|r| *r == records[0]), "{records:?}");
    assert_eq!(records[0]["kind"], "accept");
    assert_eq!(records[0]["site"], "default");
    assert!(pseudonyms.contains(&records[0]["client"]), "{}", records[0]);
    // The control hashes the same visitor to another pseudonym.
    get(
        &http1(),
        &control_proxy.url("/page"),
        &[("x-forwarded-for", VISITOR), ("host", &host)],
    )
    .await;
    let control_record = control_proxy.log(2);
    assert_eq!(control_record["path"], "/page");
    assert!(!pseudonyms.contains(&control_record["client"]));
    drop(control_proxy);

    // 3. A rolling restart under steady load: each replica in turn drained and started again.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, ok, failed, failures) =
            (stop.clone(), ok.clone(), failed.clone(), failures.clone());
        // Half the workers fetch a page that arrives in two halves 150 ms apart, so that a
        // replica always has answers under way when it is stopped.
        let url = lb.url(if worker % 2 == 0 {
            "/tracked-paused"
        } else {
            "/page"
        });
        load.push(tokio::spawn(async move {
            let client = http1();
            while !stop.load(Ordering::SeqCst) {
                let req = Request::get(&url)
                    .header("x-forwarded-for", VISITOR)
                    .body(empty_body())
                    .unwrap();
                let outcome = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.into_body().collect().await {
                            Ok(_) if status == StatusCode::OK => Ok(()),
                            Ok(_) => Err(format!("status {status}")),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                match outcome {
                    Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut timeline = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let before = ok.load(Ordering::SeqCst);
        let old = replicas.remove(i);
        let config = shared.clone();
        let (status, new) = tokio::task::spawn_blocking(move || {
            let mut old = old;
            let status = old.terminate();
            (status, replica(&config, port))
        })
        .await
        .unwrap();
        assert!(
            status.success(),
            "replica {i} drained and exited 0: {status}"
        );
        replicas.insert(i, new);
        tokio::time::sleep(Duration::from_millis(700)).await;
        timeline.push((i, ok.load(Ordering::SeqCst) - before));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the rolling restart: {:?}",
        ok + failed,
        failures.lock().unwrap().iter().take(5).collect::<Vec<_>>()
    );
    assert!(ok > 200, "the load ran: {ok} requests");
    for (i, during) in timeline {
        assert!(during > 0, "requests went on while replica {i} restarted");
    }
    // Both restarted replicas take traffic again.
    for _ in 0..4 {
        let got = get(&http1(), &lb.url("/after"), &[("x-forwarded-for", VISITOR)]).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    for (i, records) in records_of(&replicas, "/after", 4).iter().enumerate() {
        assert!(!records.is_empty(), "replica {i} serves after its restart");
    }
    drop(pg);
}

/// Writes a single proxy's config with the banner on, records in SQLite, and `client_ip`.
fn single(dir: &Path, upstream: &str, client_ip: &str) -> PathBuf {
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let path = dir.join("config.yaml");
    replace(
        &path,
        &format!(
            "upstream: {upstream}\npolicy: policy.yaml\ntrusted_proxies: [127.0.0.1/32]\n\
             consent_records: {{ path: records.db }}\nclient_ip: {client_ip}\n"
        ),
    );
    path
}

/// The banner's form as a first visit to `host` through `proxy` gets it: (CSRF cookie, token).
async fn form(proxy: &Proxy, host: &str) -> (String, String) {
    let page = get(&http1(), &proxy.url("/tracked"), &[("host", host)]).await;
    let csrf = cookie_value(&page, "consent_proxy_csrf").expect("a CSRF cookie");
    (csrf, form_token(&page.body))
}

/// The client address of the visitor's next request, as the decision log has it.
async fn pseudonym_now(proxy: &Proxy) -> Value {
    let n = proxy.stdout.lock().unwrap().len() + 1;
    get(
        &http1(),
        &proxy.url("/page"),
        &[("x-forwarded-for", VISITOR)],
    )
    .await;
    proxy.log(n)["client"].clone()
}

/// Waits until the proxy's diagnostics say `what`.
fn wait_for_line(proxy: &Proxy, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(what))
    {
        assert!(Instant::now() < deadline, "never said `{what}`");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The key file is reread when it changes: new pseudonyms from the new secret, and forms made
/// under the old one refused. A change of `client_ip` alone keeps the forms visitors have open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_taken_and_a_client_ip_change_keeps_open_forms() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client-ip.key");
    let (first, second) = ([b'1'; 32], [b'2'; 32]);
    std::fs::write(&key_file, first).unwrap();
    let hmac = format!("{{ mode: hmac, key_file: {} }}", key_file.display());
    let config = single(dir.path(), &up.url(), &hmac);
    let proxy = replica(&config, 0);
    let host = proxy.addr.to_string();
    let visitor = VISITOR.parse().unwrap();
    assert_eq!(
        pseudonym_now(&proxy).await,
        expected_pseudonym(&first, visitor)
    );

    // Rotation: a new secret in the file.
    let (csrf, token) = form(&proxy, &host).await;
    replace(&key_file, std::str::from_utf8(&second).unwrap());
    wait_for_line(&proxy, "the key file's secret changed");
    assert_eq!(
        pseudonym_now(&proxy).await,
        expected_pseudonym(&second, visitor)
    );
    let got = accept(&proxy, &host, &csrf, &token).await;
    assert_eq!(
        got.status,
        StatusCode::FORBIDDEN,
        "a form of the old secret"
    );

    // Without a key file, a change of `client_ip` alone keeps the (random) form key: the
    // forms visitors have open stay valid.
    drop(proxy);
    let dir = tempfile::tempdir().unwrap();
    let config = single(dir.path(), &up.url(), "{ mode: prefix, ipv4_prefix: 24 }");
    let proxy = replica(&config, 0);
    let host = proxy.addr.to_string();
    assert_eq!(pseudonym_now(&proxy).await, "203.0.113.0/24");
    let (csrf, token) = form(&proxy, &host).await;
    single(dir.path(), &up.url(), "{ mode: prefix, ipv4_prefix: 16 }");
    wait_for_line(&proxy, "reload: client_ip changed");
    assert_eq!(pseudonym_now(&proxy).await, "203.0.0.0/16");
    let got = accept(&proxy, &host, &csrf, &token).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
}
