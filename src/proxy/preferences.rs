//! The proxy's own consent pages, when the policy switches the banner on: the banner's
//! stylesheet, the preference centre, and the recording of a choice posted from either; and
//! what a page gets at the start of its `<body>` (the banner for a visitor who has not chosen,
//! else a link to the preference centre).
//!
//! A choice is stored as a consent record before it is applied: if the store cannot take it,
//! the visitor is told so (503) and no consent cookie is set.

use super::body::{InnerBody, full};
use super::handler::Ctx;
use crate::audit::consents::{ChoiceKind, ConsentRecord, is_valid_id, now_ms, try_new_id};
use crate::category::CategorySet;
use crate::consent::Source;
use crate::filter::banner::{self as page, Centre, Form, View};
use crate::filter::cookies::request_cookies;
use crate::filter::{path, request};
use crate::policy::banner::{Banner, CSRF_COOKIE, STYLESHEET_PATH};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

/// How long a form body may take to arrive.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a consent record may take to be stored before the choice is refused.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// What the proxy's pages allow: their own stylesheet, forms posted to this site, no framing
/// (a consent page in a frame could be clickjacked).
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What a page gets at the start of its `<body>`.
pub struct BodyStart {
    html: Arc<str>,
    /// The banner, which holds the visitor's own form token (else the settings link).
    banner: bool,
    /// A new CSRF cookie for the banner's form.
    csrf_cookie: Option<HeaderValue>,
}

impl BodyStart {
    /// Sets what a page written with it needs in its head: the banner's CSRF cookie, and no
    /// caching (the page holds the visitor's own token). Returns the HTML and whether it is
    /// the banner.
    pub fn apply(self, headers: &mut HeaderMap) -> (Arc<str>, bool) {
        // Its texts follow the visitor's language.
        crate::filter::response::add_vary(headers, &["Accept-Language"]);
        // A page that allows stylesheets by nonce: the banner's carries it. (Each block
        // starts with its `<link>`.)
        let html = match page::style_nonce(headers) {
            Some(n) => self
                .html
                .replacen("<link ", &format!("<link nonce=\"{n}\" "), 1)
                .into(),
            None => self.html,
        };
        if self.banner {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            // Caches that read these before Cache-Control must not keep it either.
            for name in [
                "cdn-cache-control",
                "surrogate-control",
                "expires",
                "etag",
                "last-modified",
            ] {
                headers.remove(name);
            }
        }
        if let Some(c) = self.csrf_cookie {
            headers.append(SET_COOKIE, c);
        }
        (html, self.banner)
    }
}

/// The banner for a visitor who has not chosen, or the link to the preference centre for one
/// who has; `None` when the banner is off, the request is not a browser's navigation to a page
/// (a frame, a script's fetch, an htmx or Turbo fragment), or there is no store to record a
/// choice in.
pub fn body_start(ctx: &Ctx, parts: &http::request::Parts) -> Option<BodyStart> {
    let banner = ctx.policy().banner.as_ref()?;
    if !ctx.enforce
        || parts.method != Method::GET
        || !is_navigation(&parts.headers)
        || ctx.state.consents.get().is_none()
    {
        return None;
    }
    let texts = banner.texts(accept_language(&parts.headers));
    let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let return_to = page::safe_return(Some(here));
    if !decided(ctx.consent.source) {
        let (cookie, fresh) = csrf_cookie(&parts.headers)?;
        let token = page::csrf_token(&ctx.snapshot.keys.csrf, &cookie);
        let html = page::banner_html(&View {
            banner,
            texts,
            token: &token,
            return_to: &return_to,
            signals: ctx.consent.signals,
            signal_denied: signal_denied(ctx),
        });
        return Some(BodyStart {
            html: html.into(),
            banner: true,
            csrf_cookie: fresh
                .then(|| session_cookie(CSRF_COOKIE, &cookie, https(ctx, &parts.headers))),
        });
    }
    banner.settings_link.then(|| BodyStart {
        // The path alone: one link per page, whatever its query.
        html: page::settings_link_html(banner, texts, &page::safe_return(Some(parts.uri.path())))
            .into(),
        banner: false,
        csrf_cookie: None,
    })
}

/// Whether a request is a navigation to a whole page: `Sec-Fetch-Dest: document` when the
/// browser sends it; an `Accept` that takes HTML when it sends one; never a fragment request of
/// htmx (`HX-Request`) or Turbo (`Turbo-Frame`).
fn is_navigation(headers: &HeaderMap) -> bool {
    let dest = headers
        .get("sec-fetch-dest")
        .is_none_or(|v| v.as_bytes() == b"document");
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
    dest && accept && !headers.contains_key("hx-request") && !headers.contains_key("turbo-frame")
}

/// Whether a response is a whole page the banner can be written into: 200, `text/html` (not
/// XHTML, which its markup is not), not a download.
pub fn is_page(status: StatusCode, headers: &HeaderMap) -> bool {
    let html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"));
    let download = headers
        .get(http::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    status == StatusCode::OK && html && !download
}

/// Whether the visitor reached the site over HTTPS: a TLS listener, or a trusted proxy's
/// `X-Forwarded-Proto: https` (a balancer that terminates TLS). The proxy's cookies are then
/// `Secure`.
fn https(ctx: &Ctx, headers: &HeaderMap) -> bool {
    static PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
    ctx.peer.tls
        || crate::filter::forward::trusted_header(
            ctx.peer.addr.ip(),
            headers,
            &ctx.snapshot.settings.trusted_proxies,
            &PROTO,
        )
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Whether the visitor has chosen: some consent source read a choice.
fn decided(source: Source) -> bool {
    matches!(source, Source::Consent(_))
}

/// The categories the request's browser signals deny whatever the visitor chooses: with
/// `signals.precedence: signal`, and GPC under an opt-out default; with `precedence: cookie`
/// otherwise a choice may grant them, and none is shown as held back.
fn signal_denied(ctx: &Ctx) -> CategorySet {
    let c = ctx.consent;
    ctx.policy()
        .consent
        .denied_by_signals(c.signals, c.opt_out_model, true)
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// The browser's CSRF cookie, or a new one (`true`); `None` only if no random bytes could be had.
fn csrf_cookie(headers: &HeaderMap) -> Option<(String, bool)> {
    match request_cookies(headers).find(|(n, v)| *n == CSRF_COOKIE && page::is_csrf_cookie(v)) {
        Some((_, v)) => Some((v.to_string(), false)),
        None => page::new_csrf_cookie().map(|c| (c, true)),
    }
}

/// A strictly necessary cookie of the proxy's own: HttpOnly, SameSite=Strict, for the session.
fn session_cookie(name: &str, value: &str, tls: bool) -> HeaderValue {
    let c = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(tls)
        .same_site(cookie::SameSite::Strict)
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// A cookie that holds the visitor's choice: HttpOnly, SameSite=Lax, for the banner's lifetime.
fn choice_cookie(name: &str, value: &str, lifetime: Duration, tls: bool) -> Option<HeaderValue> {
    let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let c = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(tls)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(secs))
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

/// Answers the banner's own paths: its stylesheet and the preference centre. Any other
/// request (or any, when the banner is off) is given back.
pub async fn answer(
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<InnerBody>, Request<Incoming>> {
    let snapshot = ctx.snapshot.clone();
    let Some(banner) = snapshot.sites[ctx.site].policy.banner.as_ref() else {
        return Err(req);
    };
    let path = req.uri().path();
    if path == STYLESHEET_PATH && matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = Response::new(full(Bytes::from_static(page::STYLESHEET.as_bytes())));
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        );
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        );
        return Ok(resp);
    }
    if path != banner.path {
        return Err(req);
    }
    if ctx.state.consents.get().is_none() {
        return Ok(ctx.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: consent records are not configured on this proxy\n",
            "consent_store_missing",
        ));
    }
    Ok(match *req.method() {
        Method::GET | Method::HEAD => preference_centre(ctx, banner, &req),
        Method::POST => record_choice(ctx, banner, req).await,
        _ => {
            let mut resp = ctx.refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed: GET the preference centre, POST a choice\n",
                "method_not_allowed",
            );
            resp.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST"),
            );
            resp
        }
    })
}

/// The preference centre: each category and its state, with a form to change them.
fn preference_centre(
    ctx: &mut Ctx,
    banner: &Banner,
    req: &Request<Incoming>,
) -> Response<InnerBody> {
    let mut return_to = None;
    let mut saved = false;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "return" => return_to = Some(v.into_owned()),
            "saved" => saved = true,
            _ => {}
        }
    }
    let return_to = page::safe_return(return_to.as_deref());
    // The centre's own form comes back here, to say the choice is saved.
    let back_here = format!(
        "{}?saved=1&return={}",
        banner.path,
        url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    );
    let Some((cookie, fresh)) = csrf_cookie(req.headers()) else {
        return ctx.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: no random numbers to protect the form with\n",
            "no_randomness",
        );
    };
    let token = page::csrf_token(&ctx.snapshot.keys.csrf, &cookie);
    let consent_id = request_cookies(req.headers())
        .find(|(n, v)| *n == banner.id_cookie && is_valid_id(v))
        .map(|(_, v)| v.to_string());
    let texts = banner.texts(accept_language(req.headers()));
    let view = View {
        banner,
        texts,
        token: &token,
        return_to: &back_here,
        signals: ctx.consent.signals,
        signal_denied: signal_denied(ctx),
    };
    let html = page::preferences_page(
        &view,
        &Centre {
            granted: ctx.consent.granted,
            decided: decided(ctx.consent.source),
            consent_id: consent_id.as_deref(),
            saved,
            back: &return_to,
        },
    );
    let mut resp = html_page(StatusCode::OK, html);
    if fresh {
        resp.headers_mut().append(
            SET_COOKIE,
            session_cookie(CSRF_COOKIE, &cookie, https(ctx, req.headers())),
        );
    }
    resp
}

/// A page of the proxy's own: not cached, not framed, nothing loaded but its stylesheet.
fn html_page(status: StatusCode, html: String) -> Response<InnerBody> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        http::header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    resp
}

/// A short page that says why a choice was not taken, and how to go on.
fn problem_page(
    ctx: &mut Ctx,
    status: StatusCode,
    error: &'static str,
    message: &str,
) -> Response<InnerBody> {
    ctx.guard.decision.error = Some(error);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{status}</title><link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\"></head>\
         <body class=\"cp-page-body\"><main class=\"cp-page\"><h1>{status}</h1><p>{}</p>\
         <p><a href=\"/\">/</a></p></main></body></html>",
        html_escape::encode_text(message)
    );
    html_page(status, html)
}

/// Records a posted choice: same-origin posts with a valid token only; the record is stored
/// before the cookies are set; the visitor returns to the page it came from.
async fn record_choice(
    ctx: &mut Ctx,
    banner: &Banner,
    req: Request<Incoming>,
) -> Response<InnerBody> {
    if page::cross_site(req.headers(), ctx.host.as_deref()) {
        return problem_page(
            ctx,
            StatusCode::FORBIDDEN,
            "cross_site_post",
            "A choice can only be made on this site's own pages. Nothing was changed.",
        );
    }
    let form_encoded = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_encoded {
        return problem_page(
            ctx,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_form",
            "A choice is posted as a form (application/x-www-form-urlencoded). Nothing was changed.",
        );
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        FORM_TIMEOUT,
        http_body_util::Limited::new(body, page::MAX_FORM).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(c)) => c.to_bytes(),
        _ => {
            return problem_page(
                ctx,
                StatusCode::BAD_REQUEST,
                "bad_form",
                "The form could not be read (too large, cut short, or too slow). Nothing was changed.",
            );
        }
    };
    let form = match page::parse_form(&bytes) {
        Ok(f) => f,
        Err(why) => {
            return problem_page(
                ctx,
                StatusCode::BAD_REQUEST,
                "bad_form",
                &format!("The form could not be read: {why}. Nothing was changed."),
            );
        }
    };
    // Any cookie of that name may be the one the form was made for (a stray one set for
    // another path or domain comes first in some browsers).
    let token_ok = request_cookies(&parts.headers)
        .filter(|(n, _)| *n == CSRF_COOKIE)
        .any(|(_, c)| page::csrf_valid(&ctx.snapshot.keys.csrf, c, &form.csrf));
    if !token_ok {
        return problem_page(
            ctx,
            StatusCode::FORBIDDEN,
            "csrf_refused",
            "This form has expired or did not come from this site. Go back, reload the page and choose again. Nothing was changed.",
        );
    }
    apply_choice(ctx, banner, &parts.headers, form).await
}

/// Stores the record of a choice, then sets the consent cookies, expires the cookies of
/// withdrawn categories and sends the visitor back.
async fn apply_choice(
    ctx: &mut Ctx,
    banner: &Banner,
    headers: &HeaderMap,
    form: Form,
) -> Response<InnerBody> {
    let policy = &ctx.snapshot.sites[ctx.site].policy;
    let denied_by_signals = signal_denied(ctx);
    let granted = page::granted_by(&form, denied_by_signals);
    let before = decided(ctx.consent.source).then_some(ctx.consent.granted);
    let kind = page::kind_of(form.choice, before, granted);
    let texts = banner.texts(accept_language(headers));
    let Ok(id) = try_new_id() else {
        return problem_page(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            "No random numbers for a consent ID just now, so your choice was not applied. Please try again.",
        );
    };
    let record = ConsentRecord {
        id,
        ts_ms: now_ms(),
        kind: ChoiceKind::parse(kind).unwrap_or(ChoiceKind::Withdrawal),
        choices: crate::category::Category::ALL
            .into_iter()
            .map(|c| (c.as_str().to_string(), granted.contains(c)))
            .collect(),
        texts_version: texts.version.clone(),
        policy_version: format!("{:016x}", (policy.digest >> 64) as u64),
        region: ctx.consent.region.map(|c| c.as_str().to_string()),
        signals: ctx.consent.signals.names().map(str::to_string).collect(),
        client: ctx.guard.decision.client.clone(),
        site: Some(ctx.site().name.to_string()),
        path: path::without_params(form.return_to.split(['?', '#']).next().unwrap_or("/"))
            .into_owned(),
    };
    let Some(store) = ctx.state.consents.get() else {
        return problem_page(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "consent_store_missing",
            "Consent records are not configured on this site. Nothing was changed.",
        );
    };
    let stored = tokio::time::timeout(STORE_TIMEOUT, store.insert(&record)).await;
    if let Err(e) = stored
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::error!(error = %e, "a consent record could not be stored: the choice was not applied");
        ctx.state.metrics.consent_record_failed();
        let mut resp = problem_page(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "consent_store_failed",
            "Your choice could not be saved just now, so it was not applied. Please try again in a minute.",
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("30"));
        return resp;
    }
    ctx.state.metrics.consent_choice(kind);
    // The cookies of categories no longer granted, which the browser still holds, go now.
    let mut report = crate::filter::CookieReport::default();
    request::filter_cookie_header(&mut headers.clone(), policy, granted, true, &mut report);
    ctx.guard.decision.cookies.expired_cookies = report.expired_cookies;

    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&form.return_to) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let tls = https(ctx, headers);
    for c in [
        choice_cookie(
            &policy.consent_cookie,
            &crate::consent::native::value(
                granted,
                u64::try_from(record.ts_ms / 1000).unwrap_or(0),
            ),
            banner.lifetime,
            tls,
        ),
        choice_cookie(&banner.id_cookie, &record.id, banner.lifetime, tls),
    ]
    .into_iter()
    .flatten()
    {
        h.append(SET_COOKIE, c);
    }
    resp
}
