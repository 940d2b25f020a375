//! The proxy's own consent banner and preference centre, over real HTTP: the banner on pages
//! of undecided visitors, choices posted as forms, refused when they come from another site,
//! recorded in the consent store before they are applied, and read back on the admin listener.

mod common;

use bytes::Bytes;
use common::postgres;
use common::*;
use http::{Request, StatusCode};
use serde_json::Value;

const POLICY: &str = "extends: builtin\nbanner:\n  enabled: true\n  privacy_policy: /privacy\n";

struct Site {
    _up: Upstream,
    proxy: Proxy,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

/// A proxy with `policy` in front of the test upstream, recording consent in a SQLite file.
async fn site(policy: &str) -> Site {
    site_with(policy, None).await
}

/// A proxy with `policy`, recording consent in PostgreSQL at `postgres` (a URL), or else in a
/// SQLite file.
async fn site_with(policy: &str, postgres: Option<&str>) -> Site {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("consents.db");
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let config = dir.path().join("config.yaml");
    let records = match postgres {
        Some(url) => format!("consent_records:\n  store: postgres\n  url: \"{url}\"\n"),
        None => format!(
            "consent_records:\n  store: sqlite\n  path: {}\n",
            db.display()
        ),
    };
    std::fs::write(&config, records).unwrap();
    let proxy = Proxy::start(
        &up.url(),
        &[
            "--policy",
            path_str(&policy_file),
            "--config",
            path_str(&config),
        ],
    );
    Site {
        _up: up,
        proxy,
        _dir: dir,
        db,
    }
}

/// The choice in the native consent cookie the answer sets, without its date; the date must be
/// the time of the choice.
fn choice(got: &Got) -> Option<String> {
    let value = cookie_value(got, "cookie_consent")?;
    let (list, at) = value.split_once('@').expect("a dated choice");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at: u64 = at.parse().unwrap();
    assert!(at <= now && now - at < 120, "choice dated {at}, now {now}");
    Some(list.to_string())
}

/// A first visit: the page with its banner, the CSRF cookie and the form's token.
async fn first_visit(proxy: &Proxy, path: &str) -> (Got, String, String) {
    let page = get(&http1(), &proxy.url(path), &[]).await;
    let csrf = cookie_value(&page, "consent_proxy_csrf").expect("a CSRF cookie");
    let token = form_token(&page.body);
    (page, csrf, token)
}

const PREFS: &str = "/.well-known/consent-proxy/preferences";

#[tokio::test]
async fn an_undecided_visitor_gets_the_banner_and_no_tracker_runs() {
    let s = site(POLICY).await;
    let (page, csrf, token) = first_visit(&s.proxy, "/tracked?item=1").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let banner = body
        .find("id=\"consent-proxy-banner\"")
        .expect("the banner");
    assert!(body[..banner].contains("<body>"), "right after <body>");
    assert!(body.contains("value=\"accept\">Accept all</button>"));
    assert!(body.contains("value=\"reject\">Reject all</button>"));
    assert!(body.contains(
        "href=\"/.well-known/consent-proxy/preferences?return=%2Ftracked%3Fitem%3D1\">Settings</a>"
    ));
    assert!(body.contains("name=\"return\" value=\"/tracked?item=1\""));
    assert!(body.contains("<a href=\"/privacy\">Privacy policy</a>"));
    // Trackers neutralized, the banner runs no script.
    assert!(
        !body.contains("<script async src=\"https://www.googletagmanager.com"),
        "{body}"
    );
    assert!(body.contains("data-src=\"https://www.googletagmanager.com/gtag/js?id=G-DEMO123\""));
    assert!(
        !body[banner..]
            .split("</section>")
            .next()
            .unwrap()
            .contains("<script")
    );
    // The page holds the visitor's own token: never cached, never shared.
    assert_eq!(page.header("cache-control"), ["private, no-store"]);
    assert!(page.header("etag").is_empty());
    let set = page.set_cookies().join("\n");
    assert!(
        set.contains("consent_proxy_csrf=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert_eq!(token.len(), 32);
    assert_eq!(csrf.len(), 32);
    // The stylesheet is served, the banner text in the visitor's language.
    let css = get(
        &http1(),
        &s.proxy.url("/.well-known/consent-proxy/consent.css"),
        &[],
    )
    .await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header("content-type")[0].starts_with("text/css"));
    assert!(css.body.contains(".cp-banner"));
    let de = get(
        &http1(),
        &s.proxy.url("/tracked"),
        &[("accept-language", "de-DE,de;q=0.9")],
    )
    .await;
    assert!(de.body.contains("Alle ablehnen"));
    // A visitor who sends a CSRF cookie keeps it.
    let again = get(
        &http1(),
        &s.proxy.url("/tracked"),
        &[("cookie", &format!("consent_proxy_csrf={csrf}"))],
    )
    .await;
    assert!(cookie_value(&again, "consent_proxy_csrf").is_none());
    assert_eq!(form_token(&again.body), token);
}

#[tokio::test]
async fn reject_all_is_recorded_before_it_is_applied_and_read_back_by_its_id() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let cookie = format!("consent_proxy_csrf={csrf}");
    let origin = format!("http://{}", s.proxy.addr);
    let got = post(
        &s.proxy,
        PREFS,
        &[
            ("cookie", &cookie),
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
        ],
        &format!("csrf={token}&return=%2Ftracked&choice=reject"),
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
    assert_eq!(got.header("location"), ["/tracked"]);
    assert_eq!(choice(&got).as_deref(), Some("none"));
    let id = cookie_value(&got, "cookie_consent_id").expect("a consent ID");
    assert_eq!(id.len(), 32);
    for c in got
        .set_cookies()
        .iter()
        .filter(|c| c.starts_with("cookie_consent"))
    {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Max-Age=15724800"),
            "{c}"
        );
    }
    // The record, by its ID, on the admin listener.
    let record: Value = serde_json::from_str(
        &get(&http1(), &admin(&s.proxy, &format!("/consents/{id}")), &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["kind"], "reject");
    assert_eq!(record["choices"]["analytics"], false);
    assert_eq!(record["choices"]["necessary"], true);
    assert_eq!(record["client"], "127.0.0.0/24");
    assert_eq!(record["path"], "/tracked");
    assert_eq!(record["texts_version"].as_str().unwrap().len(), 16);
    assert!(record["ts"].as_str().unwrap().ends_with('Z'));
    // It is in the SQLite file the config names.
    assert!(s.db.exists());
    assert_eq!(
        metric(
            &s.proxy,
            "consent_proxy_consent_choices_total{kind=\"reject\"}"
        )
        .await,
        1.0
    );

    // Back on the page with the choice: no banner, a settings link, still no tracker.
    let page = get(
        &http1(),
        &s.proxy.url("/tracked"),
        &[(
            "cookie",
            &format!("cookie_consent=none; cookie_consent_id={id}"),
        )],
    )
    .await;
    assert!(!page.body.contains("consent-proxy-banner"));
    assert!(page.body.contains("class=\"cp-settings-link\""));
    assert!(
        !page
            .body
            .contains("<script async src=\"https://www.googletagmanager.com")
    );
    assert!(page.set_cookies().is_empty());
    // The preference centre shows the choice and the ID.
    let centre = get(
        &http1(),
        &s.proxy.url(PREFS),
        &[(
            "cookie",
            &format!("cookie_consent=none; cookie_consent_id={id}"),
        )],
    )
    .await;
    assert!(centre.body.contains(&format!("<code>{id}</code>")));
    assert!(!centre.body.contains("id=\"cp-analytics\" checked"));
    assert!(centre.header("content-security-policy")[0].contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn settings_grant_analytics_only() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let got = post(
        &s.proxy,
        PREFS,
        &[("cookie", &format!("consent_proxy_csrf={csrf}"))],
        &format!("csrf={token}&return=%2F&choice=save&category=analytics"),
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
    assert_eq!(choice(&got).as_deref(), Some("analytics"));
    let id = cookie_value(&got, "cookie_consent_id").unwrap();
    let record: Value = serde_json::from_str(
        &get(&http1(), &admin(&s.proxy, &format!("/consents/{id}")), &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(record["kind"], "settings");
    assert_eq!(record["choices"]["analytics"], true);
    assert_eq!(record["choices"]["marketing"], false);
    // Google Analytics runs, Meta does not.
    let page = get(
        &http1(),
        &s.proxy.url("/tracked"),
        &[("cookie", "cookie_consent=analytics")],
    )
    .await;
    assert!(
        page.body.contains(
            "<script async src=\"https://www.googletagmanager.com/gtag/js?id=G-DEMO123\"></script>"
        ),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<script>\n    !function(f,b,e,v,n,t,s)"),
        "{}",
        page.body
    );
    assert!(page.body.contains("!function(f,b,e,v,n,t,s)"));
}

#[tokio::test]
async fn withdrawal_expires_the_withdrawn_cookies_at_once() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let cookies =
        format!("consent_proxy_csrf={csrf}; cookie_consent=all; _ga=GA1.2.3.4; _fbp=fb.1.2.3");
    let got = post(
        &s.proxy,
        PREFS,
        &[("cookie", &cookies)],
        &format!("csrf={token}&return=%2F&choice=save&category=analytics"),
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
    let set = got.set_cookies();
    assert!(
        set.iter()
            .any(|c| c.starts_with("_fbp=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    assert!(
        !set.iter().any(|c| c.starts_with("_ga=;")),
        "analytics stays: {set:?}"
    );
    let id = cookie_value(&got, "cookie_consent_id").unwrap();
    let record: Value = serde_json::from_str(
        &get(&http1(), &admin(&s.proxy, &format!("/consents/{id}")), &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(record["kind"], "withdrawal");
}

#[tokio::test]
async fn posts_from_other_sites_or_without_a_valid_token_change_nothing() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let cookie = format!("consent_proxy_csrf={csrf}");
    let form = format!("csrf={token}&return=%2F&choice=accept");
    let other = new_csrf();
    type Case<'a> = (Vec<(&'a str, &'a str)>, String, StatusCode);
    let cases: Vec<Case> = vec![
        (
            vec![("cookie", &cookie), ("origin", "https://evil.example")],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("cookie", &cookie), ("sec-fetch-site", "cross-site")],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("cookie", &cookie), ("sec-fetch-site", "same-site")],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (vec![], form.clone(), StatusCode::FORBIDDEN),
        (
            vec![("cookie", &other)],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("cookie", &cookie)],
            format!("csrf={}&choice=accept", "0".repeat(32)),
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("cookie", &cookie)],
            format!("csrf={token}&choice=everything"),
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![("cookie", &cookie)],
            format!("csrf={token}&choice=save&category=x"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (headers, form, status) in &cases {
        let got = post(&s.proxy, PREFS, headers, form).await;
        assert_eq!(got.status, *status, "{headers:?} {form}: {}", got.body);
        assert!(
            got.set_cookies()
                .iter()
                .all(|c| !c.starts_with("cookie_consent")),
            "{headers:?}"
        );
        assert!(got.body.contains("Nothing was changed"));
    }
    // Not a form.
    let mut req = Request::post(s.proxy.url(PREFS)).header("content-type", "application/json");
    req = req.header("cookie", &cookie);
    let resp = http1()
        .request(
            req.body(boxed_json(&serde_json::json!({"choice": "accept"})))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was recorded.
    let export = get(&http1(), &admin(&s.proxy, "/consents"), &[]).await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.body, "");
    let refused: Vec<Value> = s
        .proxy
        .logs(cases.len() + 2)
        .into_iter()
        .filter(|r| r["path"] == PREFS)
        .collect();
    assert!(refused.iter().any(|r| r["error"] == "cross_site_post"));
    assert!(refused.iter().any(|r| r["error"] == "csrf_refused"));
    // The same post from this site is taken.
    let ok = post(&s.proxy, PREFS, &[("cookie", &cookie)], &form).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(choice(&ok).as_deref(), Some("all"));
}

fn new_csrf() -> String {
    format!("consent_proxy_csrf={}", "ab".repeat(16))
}

#[tokio::test]
async fn the_return_path_stays_on_this_site() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    for (given, location) in [
        ("%2F%2Fevil.example%2F", "/"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%2Fcart%3Fa%3D1", "/cart?a=1"),
    ] {
        let got = post(
            &s.proxy,
            PREFS,
            &[("cookie", &format!("consent_proxy_csrf={csrf}"))],
            &format!("csrf={token}&return={given}&choice=reject"),
        )
        .await;
        assert_eq!(got.header("location"), [location], "{given}");
    }
}

#[tokio::test]
async fn records_are_exported_by_time_range_as_json_lines() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let before = std::time::SystemTime::now();
    for choice in ["accept", "reject", "accept"] {
        let got = post(
            &s.proxy,
            PREFS,
            &[("cookie", &format!("consent_proxy_csrf={csrf}"))],
            &format!("csrf={token}&choice={choice}"),
        )
        .await;
        assert_eq!(got.status, StatusCode::SEE_OTHER);
    }
    let from = humantime::format_rfc3339_seconds(before - std::time::Duration::from_secs(1));
    let all = get(
        &http1(),
        &admin(&s.proxy, &format!("/consents?from={from}")),
        &[],
    )
    .await;
    assert_eq!(all.header("content-type"), ["application/x-ndjson"]);
    let kinds: Vec<String> = all
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["accept", "reject", "accept"]);
    let none = get(&http1(), &admin(&s.proxy, "/consents?to=1000"), &[]).await;
    assert_eq!(none.body, "");
    let bad = get(&http1(), &admin(&s.proxy, "/consents?from=yesterday"), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = get(
        &http1(),
        &admin(&s.proxy, &format!("/consents/{}", "0".repeat(32))),
        &[],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        metric(
            &s.proxy,
            "consent_proxy_consent_choices_total{kind=\"accept\"}"
        )
        .await,
        2.0
    );
}

/// A first visit's form, posted back with Accept all and `Sec-GPC: 1`.
async fn accept_all_with_gpc(proxy: &Proxy) -> Got {
    let (_, csrf, token) = first_visit(proxy, "/tracked").await;
    post(
        proxy,
        PREFS,
        &[
            ("cookie", &format!("consent_proxy_csrf={csrf}")),
            ("sec-gpc", "1"),
        ],
        &format!("csrf={token}&choice=accept"),
    )
    .await
}

#[tokio::test]
async fn browser_signals_are_said_to_be_honoured() {
    let s = site(POLICY).await;
    let page = get(&http1(), &s.proxy.url("/tracked"), &[("sec-gpc", "1")]).await;
    assert!(page.body.contains("class=\"cp-signals\""));
    let centre = get(
        &http1(),
        &s.proxy.url(PREFS),
        &[("sec-gpc", "1"), ("cookie", "cookie_consent=all")],
    )
    .await;
    // GPC denies marketing in the built-in policy: shown off; analytics stays as chosen.
    assert!(centre.body.contains("id=\"cp-analytics\" checked"));
    assert!(!centre.body.contains("id=\"cp-marketing\" checked"));
    // Accept all with GPC grants everything but what GPC denies.
    let got = accept_all_with_gpc(&s.proxy).await;
    assert_eq!(choice(&got).as_deref(), Some("preferences,analytics"));
}

#[tokio::test]
async fn without_the_banner_switched_on_nothing_is_added() {
    let s = site("extends: builtin\n").await;
    let page = get(&http1(), &s.proxy.url("/tracked"), &[]).await;
    assert!(!page.body.contains("consent-proxy"));
    assert!(page.set_cookies().is_empty());
    let centre = get(&http1(), &s.proxy.url(PREFS), &[]).await;
    assert!(!centre.body.contains("cp-page"), "the site's own answer");
    assert!(!s.db.exists(), "no store opened");
    // Report-only shows no banner either.
    let r = site("extends: builtin\nmode: report-only\nbanner: {enabled: true}\n").await;
    let page = get(&http1(), &r.proxy.url("/tracked"), &[]).await;
    assert!(!page.body.contains("consent-proxy-banner"));
}

#[tokio::test]
async fn a_page_that_allows_styles_by_nonce_gets_the_banner_stylesheet_with_it() {
    let s = site(POLICY).await;
    let page = get(
        &http1(),
        &s.proxy.url("/tracked-csp"),
        &[("x-csp", "default-src 'self'; style-src 'nonce-c3R5bGU='")],
    )
    .await;
    assert!(
        page.body.contains("<link nonce=\"c3R5bGU=\" rel=\"stylesheet\" href=\"/.well-known/consent-proxy/consent.css\">"),
        "{}",
        page.body
    );
    let plain = get(&http1(), &s.proxy.url("/tracked"), &[]).await;
    assert!(
        plain
            .body
            .contains("<link rel=\"stylesheet\" href=\"/.well-known/consent-proxy/consent.css\">")
    );
}

#[tokio::test]
async fn in_postgresql_a_choice_is_applied_only_once_its_record_is_stored() {
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let s = site_with(POLICY, Some(&pg.url())).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let cookie = format!("consent_proxy_csrf={csrf}");
    let form = format!("csrf={token}&return=%2Ftracked&choice=accept");
    let got = post(&s.proxy, PREFS, &[("cookie", &cookie)], &form).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
    let id = cookie_value(&got, "cookie_consent_id").unwrap();
    let record: Value = serde_json::from_str(
        &get(&http1(), &admin(&s.proxy, &format!("/consents/{id}")), &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(record["kind"], "accept");
    assert!(
        !s.db.exists(),
        "recorded in PostgreSQL, not in a SQLite file"
    );

    // The store goes away: the choice is refused at once, nothing is set, the visitor is told.
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let asked = std::time::Instant::now();
    let refused = post(&s.proxy, PREFS, &[("cookie", &cookie)], &form).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}\n{}",
        refused.body,
        s.proxy.all_output()
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(6));
    assert_eq!(refused.header("retry-after"), ["30"]);
    assert!(refused.body.contains("could not be saved"));
    assert!(
        refused
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("cookie_consent")),
        "{:?}",
        refused.set_cookies()
    );
    assert_eq!(
        metric(&s.proxy, "consent_proxy_consent_record_failures_total").await,
        1.0
    );
    // Its record: the third request (the page, the first choice, this one).
    assert_eq!(s.proxy.logs(3)[2]["error"], "consent_store_failed");
    assert!(!s.proxy.all_output().contains(postgres::PG_PASSWORD));

    // Back again: the next choice is stored.
    pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let again = post(&s.proxy, PREFS, &[("cookie", &cookie)], &form).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    drop(pg);
}

/// A site whose answers are not plain pages: `/xhtml` (application/xhtml+xml), `/download`
/// (an HTML attachment), `/partial` (206), `/utf16` (HTML in UTF-16), `/cdn` (a page with CDN
/// caching headers), and any other path a page. Each answer says in `x-saw-range` whether the
/// request carried a `Range`.
async fn odd_site() -> std::net::SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let page = "<!doctype html><html><head><title>t</title></head><body><p>page</p></body></html>";
                    let (status, ct, body): (u16, &str, Vec<u8>) = match req.uri().path() {
                        "/xhtml" => (200, "application/xhtml+xml", b"<html xmlns=\"http://www.w3.org/1999/xhtml\"><body><p>x</p></body></html>".to_vec()),
                        "/partial" => (206, "text/html", page.as_bytes()[..40].to_vec()),
                        "/utf16" => (
                            200,
                            "text/html; charset=utf-16le",
                            page.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
                        ),
                        _ => (200, "text/html; charset=utf-8", page.as_bytes().to_vec()),
                    };
                    let mut resp = http::Response::builder()
                        .status(status)
                        .header("content-type", ct)
                        .header(
                            "x-saw-range",
                            req.headers().contains_key("range").to_string(),
                        );
                    match req.uri().path() {
                        "/download" => {
                            resp = resp.header("content-disposition", "attachment; filename=a.html")
                        }
                        "/cdn" => {
                            resp = resp
                                .header("cache-control", "public, max-age=600")
                                .header("cdn-cache-control", "max-age=600")
                                .header("surrogate-control", "max-age=600")
                                .header("expires", "Thu, 01 Jan 2099 00:00:00 GMT")
                        }
                        _ => {}
                    }
                    Ok::<_, std::convert::Infallible>(
                        resp.body(http_body_util::Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A proxy with `policy` in front of [`odd_site`].
async fn odd_proxy(policy: &str) -> (Proxy, tempfile::TempDir) {
    let addr = odd_site().await;
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "consent_records:\n  path: consents.db\n").unwrap();
    let proxy = Proxy::start(
        &format!("http://{addr}"),
        &[
            "--policy",
            path_str(&policy_file),
            "--config",
            path_str(&config),
        ],
    );
    (proxy, dir)
}

fn has_banner(got: &Got) -> bool {
    got.body.contains("consent-proxy-banner")
}

#[tokio::test]
async fn only_a_browser_navigation_to_a_whole_page_gets_the_banner() {
    let (proxy, _dir) = odd_proxy(POLICY).await;
    let page = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let url = proxy.url(path);
        async move { get(&http1(), &url, headers).await }
    };
    let navigation = page(
        "/page",
        &[("sec-fetch-dest", "document"), ("accept", "text/html")],
    )
    .await;
    assert!(has_banner(&navigation));
    assert!(
        navigation
            .header("vary")
            .join(",")
            .contains("Accept-Language")
    );
    for (what, got) in [
        (
            "a frame",
            page("/page", &[("sec-fetch-dest", "iframe")]).await,
        ),
        (
            "a script's fetch",
            page("/page", &[("sec-fetch-dest", "empty")]).await,
        ),
        ("htmx", page("/page", &[("hx-request", "true")]).await),
        ("Turbo", page("/page", &[("turbo-frame", "main")]).await),
        (
            "JSON asked for",
            page("/page", &[("accept", "application/json")]).await,
        ),
        ("XHTML", page("/xhtml", &[]).await),
        ("a download", page("/download", &[]).await),
        ("a 206", page("/partial", &[]).await),
    ] {
        assert!(!has_banner(&got), "{what}: {}", got.body);
        assert!(cookie_value(&got, "consent_proxy_csrf").is_none(), "{what}");
    }
    // A banner page keeps no caching header a CDN would read first.
    let cdn = page("/cdn", &[]).await;
    assert!(has_banner(&cdn));
    assert_eq!(cdn.header("cache-control"), ["private, no-store"]);
    for h in ["cdn-cache-control", "surrogate-control", "expires"] {
        assert!(cdn.header(h).is_empty(), "{h}");
    }
}

#[tokio::test]
async fn the_settings_link_alone_changes_no_request_and_fails_no_page() {
    let (proxy, _dir) = odd_proxy(POLICY).await;
    let all = [("cookie", "cookie_consent=all"), ("range", "bytes=0-10")];
    let page = get(&http1(), &proxy.url("/page"), &all[..1]).await;
    assert!(
        page.body.contains("class=\"cp-settings-link\""),
        "{}",
        page.body
    );
    // Everything is granted: the request goes as it came.
    let ranged = get(&http1(), &proxy.url("/partial"), &all).await;
    assert_eq!(ranged.header("x-saw-range"), ["true"]);
    // A page that cannot be read passes without the link instead of failing.
    let utf16 = get(&http1(), &proxy.url("/utf16"), &all[..1]).await;
    assert_eq!(utf16.status, StatusCode::OK);
    assert!(!utf16.body.contains("cp-settings-link"));
    // Without consent the same page cannot be checked for trackers: refused.
    let refused = get(&http1(), &proxy.url("/utf16"), &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_stray_csrf_cookie_before_the_right_one_does_not_block_a_choice() {
    let s = site(POLICY).await;
    let (_, csrf, token) = first_visit(&s.proxy, "/tracked").await;
    let got = post(
        &s.proxy,
        PREFS,
        &[(
            "cookie",
            &format!("consent_proxy_csrf=zzz; consent_proxy_csrf={csrf}"),
        )],
        &format!("csrf={token}&choice=reject"),
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.body);
}

#[tokio::test]
async fn with_the_cookie_winning_over_signals_a_choice_may_grant_what_gpc_denies() {
    let policy = format!(
        "{POLICY}signals:\n  gpc: {{enabled: true, deny: [marketing]}}\n  precedence: cookie\n"
    );
    let s = site(&policy).await;
    let page = get(&http1(), &s.proxy.url("/tracked"), &[("sec-gpc", "1")]).await;
    assert!(has_banner(&page));
    assert!(
        !page.body.contains("cp-signals"),
        "no promise the choice would not keep"
    );
    let got = accept_all_with_gpc(&s.proxy).await;
    assert_eq!(choice(&got).as_deref(), Some("all"));
}

#[test]
fn the_banner_needs_the_proxys_own_cookie_to_decide_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "banner: {enabled: true}\nconsent:\n  sources: [tcf, native]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--policy", path_str(&file)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("must list `native` first"), "{said}");
}
