//! `consent-proxy demo`: a sample site with Google Analytics and Meta Pixel tags that sets
//! tracking, session and CSRF cookies, with the proxy in front of it under the built-in policy
//! and the proxy's own consent banner, recording choices in a temporary SQLite file.

use crate::audit::LogSink;
use crate::config::{self, Overrides};
use crate::policy;
use crate::proxy::{self, State};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The sample site's home page: Google Analytics (gtag.js) and Meta Pixel, as sites embed them.
pub const HOME_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Demo shop</title>
  <!-- Google tag (gtag.js) -->
  <script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123"></script>
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag(){dataLayer.push(arguments);}
    gtag('js', new Date());
    gtag('config', 'G-DEMO123');
  </script>
  <!-- Meta Pixel Code -->
  <script>
    !function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?
    n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;
    n.push=n;n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;
    t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window,
    document,'script','https://connect.facebook.net/en_US/fbevents.js');
    fbq('init', '000000000000000');
    fbq('track', 'PageView');
  </script>
  <noscript><img height="1" width="1" style="display:none"
    src="https://www.facebook.com/tr?id=000000000000000&ev=PageView&noscript=1"></noscript>
</head>
<body>
  <h1>Demo shop</h1>
  <p>This page sets <code>_ga</code>, <code>_gid</code>, <code>_fbp</code>, a session cookie and a
  CSRF cookie. Look at the <code>Set-Cookie</code> headers that reach you through the proxy.</p>
  <p><a href="/echo">/echo</a> shows the cookies the site received.</p>
</body>
</html>
"#;

/// The cookies the home page sets: (name, Set-Cookie value).
pub const HOME_COOKIES: [(&str, &str); 5] = [
    (
        "_ga",
        "_ga=GA1.1.1234567890.1700000000; Path=/; Max-Age=63072000; SameSite=Lax",
    ),
    (
        "_gid",
        "_gid=GA1.1.987654321.1700000000; Path=/; Max-Age=86400; SameSite=Lax",
    ),
    (
        "_fbp",
        "_fbp=fb.1.1700000000000.1234567890; Path=/; Max-Age=7776000; SameSite=Lax",
    ),
    (
        "sessionid",
        "sessionid=s3ss10n; Path=/; HttpOnly; SameSite=Lax",
    ),
    ("csrftoken", "csrftoken=c5rf; Path=/; SameSite=Strict"),
];

fn page(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

/// The sample site.
pub async fn site(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/" => {
            let mut r = page(
                StatusCode::OK,
                "text/html; charset=utf-8",
                HOME_PAGE.to_string(),
            );
            for (_, v) in HOME_COOKIES {
                r.headers_mut()
                    .append(SET_COOKIE, http::HeaderValue::from_static(v));
            }
            r
        }
        "/echo" => {
            let cookies: Vec<&str> = req
                .headers()
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            page(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!("the site received Cookie: {}\n", cookies.join("; ")),
            )
        }
        "/collect" | "/g/collect" | "/tr" => page(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "the site's tracking endpoint received a hit\n".into(),
        ),
        _ => page(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    })
}

/// Serves the sample site on `listener` until the task is dropped.
pub async fn serve_site(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(site))
                .await;
        });
    }
}

/// The demo's policy: the built-in catalogue, with the consent banner on.
pub const DEMO_POLICY: &str = "extends: builtin\nbanner:\n  enabled: true\n";

/// What one request through the proxy got.
struct Visit {
    status: StatusCode,
    /// The names of the `Set-Cookie` headers that set a cookie.
    set: Vec<String>,
    /// Those cookies' `name=value` pairs.
    pairs: Vec<String>,
    /// Where a redirect points.
    location: Option<String>,
    /// The names of the `Set-Cookie` headers that expire one (`Max-Age=0`).
    expired: Vec<String>,
    body: String,
}

impl Visit {
    /// The tags that arrived neutralized (`data-category`) in the page.
    fn neutralized(&self) -> usize {
        self.body.matches("data-category=").count()
    }
}

/// Sends `GET path` with `headers` through the proxy.
async fn visit(proxy: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Visit, String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().uri(format!("http://{proxy}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = client
        .request(req.body(Empty::new()).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("demo request failed: {e}"))?;
    read_visit(resp).await
}

/// What came back.
async fn read_visit(resp: Response<Incoming>) -> Result<Visit, String> {
    let status = resp.status();
    let location = resp
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (mut set, mut expired, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for v in resp.headers().get_all(SET_COOKIE) {
        let v = String::from_utf8_lossy(v.as_bytes());
        let name = v.split('=').next().unwrap_or_default().to_string();
        if v.to_ascii_lowercase().contains("max-age=0") {
            expired.push(name);
        } else {
            set.push(name);
            pairs.push(v.split(';').next().unwrap_or_default().to_string());
        }
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("demo request failed: {e}"))?
        .to_bytes();
    Ok(Visit {
        status,
        set,
        pairs,
        location,
        expired,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Width of the walkthrough's labels.
const LABEL: usize = 28;

fn walkthrough_line(out: &mut String, label: &str, names: &[String], tags: usize) {
    let passed: Vec<&str> = HOME_COOKIES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| names.iter().any(|x| x == n))
        .collect();
    let stripped: Vec<&str> = HOME_COOKIES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !names.iter().any(|x| x == n))
        .collect();
    let _ = writeln!(
        out,
        "  {label:<LABEL$} passed: {:<36} stripped: {:<16} tags neutralized: {tags}",
        passed.join(" "),
        if stripped.is_empty() {
            "-".to_string()
        } else {
            stripped.join(" ")
        }
    );
}

/// A TC string with purposes 1, 8 and 9 (storage and measurement, no advertising), made by a
/// consent manager.
const TC_STRING: &str = "CP1R2oAP1R2oAEsABBENCWFAAIGAAAAAAAYgAAAAAAAA";

/// [`TC_STRING`] as if it had been made today: the proxy relies on a TC string for 13 months
/// only.
fn tc_string_of_today() -> String {
    let deciseconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_millis() / 100) as u64);
    crate::consent::tcf::with_dates(TC_STRING, deciseconds).unwrap_or_else(|| TC_STRING.into())
}

/// The visitor's consent to everything, in the proxy's own consent cookie.
const CONSENT_ALL: (&str, &str) = ("cookie", "cookie_consent=all");

/// The walkthrough: the home page under each kind of consent and signal, a request carrying a
/// tracking cookie, and a hit on a tracking endpoint, each made through the proxy and reported
/// as it was answered.
async fn walkthrough(proxy: SocketAddr, out: &mut String) -> Result<(), String> {
    let tcf_cookie = format!("euconsent-v2={}", tc_string_of_today());
    let pages: [(&str, &[(&str, &str)]); 7] = [
        ("no consent", &[]),
        ("Cookie: cookie_consent=all", &[CONSENT_ALL]),
        (
            "cookie_consent=analytics",
            &[("cookie", "cookie_consent=analytics")],
        ),
        // A TCF string with purposes 1, 8 and 9: storage and measurement, no advertising.
        (
            "TCF euconsent-v2 (1,8,9)",
            &[("cookie", tcf_cookie.as_str())],
        ),
        (
            "OneTrust C0002 only",
            &[(
                "cookie",
                "OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A0",
            )],
        ),
        ("consent all + Sec-GPC: 1", &[CONSENT_ALL, ("sec-gpc", "1")]),
        ("consent all + DNT: 1", &[CONSENT_ALL, ("dnt", "1")]),
    ];
    let mut first = None;
    for (label, headers) in pages {
        let v = visit(proxy, "/", headers).await?;
        walkthrough_line(out, label, &v.set, v.neutralized());
        first.get_or_insert(v);
    }
    if let Some(first) = first {
        banner_lines(proxy, &first, out).await?;
    }
    // A browser that still holds _ga from before: the site does not get it, and it is expired.
    let v = visit(proxy, "/echo", &[("cookie", "_ga=GA1.1.1; sessionid=s")]).await?;
    let received: Vec<&str> = v
        .body
        .trim_end()
        .strip_prefix("the site received Cookie: ")
        .unwrap_or_default()
        .split("; ")
        .filter_map(|pair| pair.split('=').next())
        .filter(|name| !name.is_empty())
        .collect();
    let _ = writeln!(
        out,
        "  {:<LABEL$} the site received: {:<18} expired in the browser: {}",
        "/echo with _ga, sessionid",
        if received.is_empty() {
            "-".to_string()
        } else {
            received.join(" ")
        },
        if v.expired.is_empty() {
            "-".to_string()
        } else {
            v.expired.join(" ")
        }
    );
    let v = visit(proxy, "/collect", &[]).await?;
    let what = if v.status == StatusCode::NO_CONTENT {
        "204 from the proxy: the site's tracking endpoint was not asked".to_string()
    } else {
        format!("{} from the site: {}", v.status, v.body.trim_end())
    };
    let _ = writeln!(out, "  {:<LABEL$} {what}", "/collect, no consent");
    Ok(())
}

/// The banner the first page (no consent) carried, and its Reject all, posted as a browser
/// would.
async fn banner_lines(proxy: SocketAddr, page: &Visit, out: &mut String) -> Result<(), String> {
    let shown = page.body.contains("id=\"consent-proxy-banner\"");
    let _ = writeln!(
        out,
        "  {:<LABEL$} {}",
        "the banner, no choice yet",
        if shown {
            "shown right after <body>: Accept all | Reject all | Settings"
        } else {
            "not shown"
        }
    );
    let token = page
        .body
        .split_once("name=\"csrf\" value=\"")
        .and_then(|(_, rest)| rest.get(..32));
    let csrf = page
        .pairs
        .iter()
        .find(|p| p.starts_with("consent_proxy_csrf="));
    let (Some(token), Some(csrf)) = (token, csrf) else {
        return Ok(());
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!(
        "http://{proxy}{}",
        crate::policy::banner::DEFAULT_PATH
    ))
    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
    .header(COOKIE, csrf.as_str())
    .body(Full::new(Bytes::from(format!(
        "csrf={token}&return=%2F&choice=reject"
    ))))
    .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("demo request failed: {e}"))?;
    let v = read_visit(resp).await?;
    let consent = v
        .pairs
        .iter()
        .find(|p| p.starts_with("cookie_consent="))
        .map_or("-", String::as_str);
    let id = v
        .pairs
        .iter()
        .find_map(|p| p.strip_prefix("cookie_consent_id="))
        .unwrap_or("-");
    let _ = writeln!(
        out,
        "  {:<LABEL$} {} to {}, {consent}, consent record {id}",
        "Reject all, posted",
        v.status.as_u16(),
        v.location.as_deref().unwrap_or("-"),
    );
    Ok(())
}

/// Runs the demo: the site on a random loopback port, the proxy on `listen` and, unless
/// `once`, the admin listener on `admin_listen`.
pub async fn run(
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    once: bool,
) -> Result<(), String> {
    let site_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the sample site: {e}"))?;
    let site_addr = site_listener.local_addr().map_err(|e| e.to_string())?;
    let site_task = tokio::spawn(serve_site(site_listener));

    let mut settings = config::resolve(
        None,
        Overrides {
            listen,
            admin_listen,
            upstream: Some(format!("http://{site_addr}")),
            ..Default::default()
        },
    )?;
    let policy = policy::compile("<demo>", DEMO_POLICY).map_err(|e| e.to_string())?;
    // Consent records in a file of their own, deleted when the demo ends.
    let records_file =
        std::env::temp_dir().join(format!("consent-proxy-demo-{}.db", std::process::id()));
    settings.consent_records = config::RecordStore {
        backend: config::RecordBackend::Sqlite {
            path: records_file.clone(),
        },
        ..Default::default()
    };
    let listener = proxy::bind(settings.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (choose another address with --listen 127.0.0.1:PORT)",
            settings.listen
        )
    })?;
    let proxy_addr = listener.local_addr().map_err(|e| e.to_string())?;
    settings.listen = proxy_addr;
    // The admin listener serves nothing a walkthrough that exits at once could show.
    let admin_listener = if once {
        None
    } else {
        let l = proxy::bind(settings.admin_listen).await.map_err(|e| {
            format!(
                "cannot listen on {} (admin): {e} (choose another address with --admin-listen \
                 127.0.0.1:PORT)",
                settings.admin_listen
            )
        })?;
        settings.admin_listen = l.local_addr().map_err(|e| e.to_string())?;
        Some(l)
    };
    let admin_addr = settings.admin_listen;
    tracing::info!(
        "listening on http://{proxy_addr}, forwarding to the sample site http://{site_addr}, \
         built-in policy with the consent banner{}",
        if admin_listener.is_some() {
            format!("; admin on http://{admin_addr}")
        } else {
            String::new()
        }
    );
    let sink = Arc::new(LogSink::stdout());
    let records = settings.consent_records.clone();
    let state = Arc::new(State::new(settings, vec![policy], None, sink.clone())?);
    crate::server::open_consent_store(&state, &records).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = admin_listener.map(|l| {
        tokio::spawn(proxy::admin::serve(l, state.clone(), async {
            let _ = admin_stopped.await;
        }))
    });
    state.set_ready(true);
    let server = tokio::spawn(proxy::serve(listener, None, state, async {
        let _ = stop_rx.await;
    }));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nconsent-proxy demo\n  sample site (direct): http://{site_addr}/\n  through the proxy:    http://{proxy_addr}/\n\n\
         The site sets _ga, _gid (Google Analytics), _fbp (Meta Pixel), sessionid and csrftoken.\n\
         What reaches a visitor through the proxy:"
    );
    walkthrough(proxy_addr, &mut out).await?;
    if once {
        let _ = writeln!(
            out,
            "\n(--once: the proxy has stopped. Without --once it keeps running, prints curl \
             commands to try and serves the admin endpoints.)"
        );
    } else {
        let p = proxy_addr;
        let a = admin_addr;
        let commands = [
            (
                format!("curl -si http://{p}/"),
                "no consent: _ga, _gid, _fbp stripped",
            ),
            (
                format!("curl -si -b 'cookie_consent=all' http://{p}/"),
                "consent: everything passes",
            ),
            (
                format!("curl -si -b 'cookie_consent=all' -H 'Sec-GPC: 1' http://{p}/"),
                "GPC: _fbp stripped",
            ),
            (
                format!("curl -si -b 'cookie_consent=all' -H 'DNT: 1' http://{p}/"),
                "DNT: _ga, _gid, _fbp stripped",
            ),
            (
                format!("curl -si -b '_ga=GA1.1.1; sessionid=s' http://{p}/echo"),
                "_ga withheld from the site and expired",
            ),
            (
                format!("curl -si http://{p}/collect"),
                "tracking endpoint: 204, never reaches the site",
            ),
            (
                format!("curl -s http://{p}/ | grep -n 'data-category'"),
                "the GA and Meta tags, neutralized",
            ),
            (
                format!("curl -s http://{p}/ | grep -o 'Reject all'"),
                "the banner: open the page in a browser to choose",
            ),
        ];
        let admin = [
            (
                format!("curl -s http://{a}/cookies"),
                "the cookies the site set, by category",
            ),
            (
                format!("curl -s http://{a}/consents"),
                "the consent records, as JSON lines",
            ),
        ];
        let width = commands
            .iter()
            .chain(&admin)
            .map(|(c, _)| c.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\nTry it (each request writes one JSON decision record to stdout):"
        );
        for (command, what) in &commands {
            let _ = writeln!(out, "  {command:<width$}  # {what}");
        }
        let _ = writeln!(
            out,
            "\nThe preference centre: http://{p}{}\n\n\
             The admin listener: http://{a}/healthz, /readyz, /metrics, /cookies, /consents",
            crate::policy::banner::DEFAULT_PATH
        );
        for (command, what) in &admin {
            let _ = writeln!(out, "  {command:<width$}  # {what}");
        }
        let _ = writeln!(out, "\nPress Ctrl-C to stop.");
    }
    // A closed stderr (`2>&1 | head`) loses the walkthrough quietly.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), out.as_bytes());

    if !once {
        proxy::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = stop_admin.send(());
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    site_task.abort();
    sink.close();
    for suffix in ["", "-wal", "-shm"] {
        let mut f = records_file.clone().into_os_string();
        f.push(suffix);
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::tcf::decode;

    #[test]
    fn the_tc_string_of_today_is_dated_now() {
        let new = decode(&tc_string_of_today()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            / 100;
        assert!(now.abs_diff(new.last_updated) < 600, "{}", new.last_updated);
        assert_eq!(
            new.purposes_consent,
            decode(TC_STRING).unwrap().purposes_consent
        );
    }
}
