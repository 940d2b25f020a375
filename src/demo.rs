//! `consent-proxy demo`: a sample site with Google Analytics and Meta Pixel tags that sets
//! tracking, session and CSRF cookies, with the proxy in front of it under the built-in policy.

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

/// What a request through the proxy receives: the cookie names in `Set-Cookie`, and how many
/// tags arrive neutralized (`data-category`) in the page.
async fn visit(proxy: SocketAddr, cookie: Option<&str>) -> Result<(Vec<String>, usize), String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().uri(format!("http://{proxy}/"));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let resp = client
        .request(req.body(Empty::new()).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("demo request failed: {e}"))?;
    let names = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split('=').next())
        .map(str::to_string)
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("demo request failed: {e}"))?
        .to_bytes();
    let neutralized = String::from_utf8_lossy(&body)
        .matches("data-category=")
        .count();
    Ok((names, neutralized))
}

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
        "  {label:<28} passed: {:<36} stripped: {:<16} tags neutralized: {tags}",
        passed.join(" "),
        if stripped.is_empty() {
            "-".to_string()
        } else {
            stripped.join(" ")
        }
    );
}

/// Runs the demo: the site on a random loopback port, the proxy on `listen`.
pub async fn run(listen: Option<SocketAddr>, once: bool) -> Result<(), String> {
    let site_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the sample site: {e}"))?;
    let site_addr = site_listener.local_addr().map_err(|e| e.to_string())?;
    let site_task = tokio::spawn(serve_site(site_listener));

    let mut settings = config::resolve(
        None,
        Overrides {
            listen,
            upstream: Some(format!("http://{site_addr}")),
            ..Default::default()
        },
    )?;
    let policy = policy::builtin().map_err(|e| e.to_string())?;
    let listener = proxy::bind(settings.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (choose another address with --listen 127.0.0.1:PORT)",
            settings.listen
        )
    })?;
    let proxy_addr = listener.local_addr().map_err(|e| e.to_string())?;
    settings.listen = proxy_addr;
    tracing::info!(
        "listening on http://{proxy_addr}, forwarding to the sample site http://{site_addr}, built-in policy"
    );
    let sink = Arc::new(LogSink::stdout());
    let state = Arc::new(State::new(settings, policy, sink.clone())?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
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
    for (label, cookie) in [
        ("no consent", None),
        ("Cookie: cookie_consent=all", Some("cookie_consent=all")),
        ("cookie_consent=analytics", Some("cookie_consent=analytics")),
        // A TCF string with purposes 1, 8 and 9: storage and measurement, no advertising.
        (
            "TCF euconsent-v2 (1,8,9)",
            Some("euconsent-v2=CP1R2oAP1R2oAEsABBENCWFAAIGAAAAAAAYgAAAAAAAA"),
        ),
        (
            "OneTrust C0002 only",
            Some("OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A0"),
        ),
    ] {
        let (names, tags) = visit(proxy_addr, cookie).await?;
        walkthrough_line(&mut out, label, &names, tags);
    }
    let p = proxy_addr;
    let _ = writeln!(
        out,
        "\nTry it (each request writes one JSON decision record to stdout):\n\
         \x20 curl -si http://{p}/                                          # no consent: _ga, _gid, _fbp stripped\n\
         \x20 curl -si -b 'cookie_consent=all' http://{p}/                  # consent: everything passes\n\
         \x20 curl -si -b 'cookie_consent=all' -H 'Sec-GPC: 1' http://{p}/  # GPC: _fbp stripped\n\
         \x20 curl -si -b 'cookie_consent=all' -H 'DNT: 1' http://{p}/      # DNT: _ga, _gid, _fbp stripped\n\
         \x20 curl -si -b '_ga=GA1.1.1; sessionid=s' http://{p}/echo        # _ga withheld from the site and expired\n\
         \x20 curl -si http://{p}/collect                                   # tracking endpoint: 204, never reaches the site\n\
         \x20 curl -s http://{p}/ | grep -n 'data-category'                  # the GA and Meta tags, neutralized\n"
    );
    // A closed stderr (`2>&1 | head`) loses the walkthrough quietly.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), out.as_bytes());

    if once {
        let _ = stop_tx.send(());
    } else {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"Press Ctrl-C to stop.\n");
        proxy::shutdown_signal().await;
        let _ = stop_tx.send(());
    }
    let _ = server.await;
    site_task.abort();
    sink.close();
    Ok(())
}
