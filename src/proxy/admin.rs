//! The admin listener, on its own port: `/healthz`, `/readyz`, `/metrics`, `/cookies`.

use super::State;
use super::metrics;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The paths the admin listener serves.
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const COOKIES: &str = "/cookies";
/// Consent records: `/consents/{id}`, and `/consents?from=…&to=…` for a time range.
pub const CONSENTS: &str = "/consents";
/// The most records one export returns, and how many it returns unless asked.
const MAX_EXPORT: usize = 100_000;
const DEFAULT_EXPORT: usize = 10_000;
/// One export at a time: an export reads from the store that visitors' choices are written to.
static EXPORTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answers one admin request.
pub fn route(state: &State, method: &Method, uri: &http::Uri) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    match uri.path() {
        HEALTHZ => answer(StatusCode::OK, TEXT, "ok\n"),
        READYZ if state.is_ready() => answer(StatusCode::OK, TEXT, "ready\n"),
        READYZ => answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n"),
        METRICS => answer(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.metrics.encode(),
        ),
        COOKIES => {
            let snapshot = state.current.load();
            let sites: Vec<(&str, &crate::policy::CompiledPolicy)> = snapshot
                .sites
                .iter()
                .map(|s| (&*s.name, &*s.policy))
                .collect();
            let only = match only_site(uri.query(), &sites) {
                Ok(only) => only,
                Err(e) => return answer(StatusCode::BAD_REQUEST, TEXT, e),
            };
            let report = state.inventory.report(&sites, only.as_deref());
            match serde_json::to_vec_pretty(&report) {
                Ok(json) => answer(StatusCode::OK, "application/json", json),
                Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "cannot encode\n"),
            }
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /healthz, /readyz, /metrics, /cookies, /consents\n",
        ),
    }
}

/// The site `/cookies?site=NAME` asks for (`None`: every site), or what is wrong with the query.
fn only_site(
    query: Option<&str>,
    sites: &[(&str, &crate::policy::CompiledPolicy)],
) -> Result<Option<String>, String> {
    let mut only = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "site" {
            return Err(format!(
                "unknown parameter {k:?}: the one parameter is site\n"
            ));
        }
        if !sites.iter().any(|(name, _)| *name == v) {
            let names: Vec<&str> = sites.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "no site is named {v:?}; the sites are: {}\n",
                names.join(", ")
            ));
        }
        only = Some(v.into_owned());
    }
    Ok(only)
}

/// Consent records: one by its consent ID, as JSON, or those of a time range as JSON lines
/// (`from` and `to` as RFC 3339 times or Unix milliseconds; `limit`, 10,000 unless given, at
/// most 100,000; `site`, one site's records), one export at a time.
pub async fn consents(state: &State, method: &Method, uri: &http::Uri) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    let Some(store) = state.consents.get() else {
        return answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "no consent records: the policy's banner is off\n",
        );
    };
    if let Some(id) = uri.path().strip_prefix("/consents/") {
        let id = id.to_ascii_lowercase();
        if !crate::audit::consents::is_valid_id(&id) {
            return answer(
                StatusCode::BAD_REQUEST,
                TEXT,
                "a consent ID is 32 hexadecimal digits\n",
            );
        }
        return match store.get(&id).await {
            Ok(Some(record)) => match serde_json::to_vec_pretty(&record) {
                Ok(json) => answer(StatusCode::OK, "application/json", json),
                Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "cannot encode\n"),
            },
            Ok(None) => answer(
                StatusCode::NOT_FOUND,
                TEXT,
                "no record with that consent ID\n",
            ),
            Err(e) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("the consent store failed: {e}\n"),
            ),
        };
    }
    let (mut from, mut to, mut limit) = (0i64, i64::MAX, DEFAULT_EXPORT);
    let mut site = None;
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let time = || parse_time(&v);
        match &*k {
            // Any site's name, also of a site no longer configured: its records stay.
            "site" => match crate::config::check_site_name(&v) {
                Ok(()) => site = Some(v.into_owned()),
                Err(e) => return answer(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
            },
            "from" => match time() {
                Some(t) => from = t,
                None => return answer(StatusCode::BAD_REQUEST, TEXT, BAD_TIME),
            },
            "to" => match time() {
                Some(t) => to = t,
                None => return answer(StatusCode::BAD_REQUEST, TEXT, BAD_TIME),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_EXPORT).contains(&n) => limit = n,
                _ => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        TEXT,
                        "limit: a number from 1 to 100000\n",
                    );
                }
            },
            _ => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    "the parameters are from, to, limit and site\n",
                );
            }
        }
    }
    let Ok(_one) = EXPORTING.try_acquire() else {
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            TEXT,
            "another export is running: try again when it is done\n",
        );
    };
    match store.export_site(site.as_deref(), from, to, limit).await {
        Ok(records) => {
            let mut out = Vec::new();
            for r in &records {
                if serde_json::to_writer(&mut out, r).is_err() {
                    return answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "cannot encode\n");
                }
                out.push(b'\n');
            }
            answer(StatusCode::OK, "application/x-ndjson", out)
        }
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("the consent store failed: {e}\n"),
        ),
    }
}

const BAD_TIME: &str =
    "from and to: an RFC 3339 time (2026-11-30T12:00:00Z) or Unix milliseconds\n";

/// An RFC 3339 time or Unix milliseconds, as Unix milliseconds.
fn parse_time(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(v).ok()?;
    let d = t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Serves the admin listener until `stop` completes.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let path = req.uri().path();
                            let resp = if path == CONSENTS || path.starts_with("/consents/") {
                                consents(&state, req.method(), req.uri()).await
                            } else {
                                route(&state, req.method(), req.uri())
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            () = &mut stop => break,
        }
    }
}
