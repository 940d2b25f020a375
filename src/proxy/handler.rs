//! One request's journey through the phases, in order: consent, request filter, upstream,
//! response headers, response body, log.

use super::admission::{Admission, ConnShare};
use super::body::{IdleTimeout, LoggedBody, RecordGuard, RewriteBody, Unanswerable, empty, full};
use super::coding::{decode, encode};
use super::upstream::{self, Failure};
use super::{Snapshot, State, conn, framing as stream};
use crate::audit::Decision;
use crate::config::Settings;
use crate::consent::{self, Consent};
use crate::filter::body::{self, BodyPlan};
use crate::filter::forward::{self, Forwarding};
use crate::filter::underscores::{self, Underscores};
use crate::filter::{consent_mode, declarations, framing, html, path, request, response, withheld};
use crate::policy::sources::{Country, TkMode};
use crate::policy::{CompiledPolicy, Mode};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// The longest host or path the decision log records; longer ones are cut.
const MAX_LOGGED: usize = 2048;

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_LOGGED);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The client end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// Its place under `limits.max_connections`.
    pub slot: Option<conn::Slot>,
    /// Set when the connection switches protocols: its request heads are no longer checked.
    pub upgraded: Arc<std::sync::atomic::AtomicBool>,
    /// The connection's share of the limits: its upstream exchanges, its cancelled requests.
    pub share: Arc<ConnShare>,
}

/// Handles one request. Never fails: every problem becomes a response and a decision record.
pub async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    // A place among the requests in flight, or none: the proxy is at capacity.
    let admission = state.capacity.admit(peer.slot.clone());
    // One snapshot for the whole request: a reload in the middle does not mix two.
    let snapshot = state.current.load_full();
    let (policy, settings) = (&snapshot.policy, &snapshot.settings);
    let client = forward::client_ip(peer.addr.ip(), req.headers(), &settings.trusted_proxies);
    let host = request_host(&req);
    let country = policy.regions.as_ref().and_then(|r| {
        forward::trusted_header(
            peer.addr.ip(),
            req.headers(),
            &settings.trusted_proxies,
            &r.header,
        )
        .and_then(Country::parse)
    });
    let consent = consent::decide(req.headers(), policy, country);
    let mut guard = RecordGuard::new(
        Decision {
            ts: String::new(),
            client: snapshot.minimizer.minimize(client),
            method: clip(req.method().as_str()),
            host: clip(host.as_deref().unwrap_or("")),
            path: clip(&path::without_params(req.uri().path())),
            status: 0,
            granted: consent.granted,
            source: consent.source.as_str(),
            region: consent.region.map(|c| c.as_str().to_string()),
            signals: consent.signals.names().collect(),
            cookies: Default::default(),
            blocked: false,
            tags_neutralized: 0,
            tag_vendors: Vec::new(),
            mode: policy.mode.as_str(),
            duration_ms: 0.0,
            error: None,
        },
        state.sink.clone(),
        state.metrics.clone(),
    );
    if req.version() == Version::HTTP_2 {
        guard.resets = Some(peer.share.clone());
    }
    Ok(journey(state, peer, req, host, &snapshot, consent, admission, guard).await)
}

/// The answer when the proxy is at capacity: at once, rather than after a queue.
fn overloaded(mut guard: RecordGuard) -> Response<LoggedBody> {
    guard.decision.error = Some("overloaded");
    let mut resp = local(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: too many requests in flight, try again shortly\n",
        guard,
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The Host the client asked for: the `Host` header, or the authority of an HTTP/2 request.
/// An HTTP/1 absolute-form target's authority replaces `Host` (RFC 9112, section 3.2.2).
fn request_host(req: &Request<Incoming>) -> Option<String> {
    let absolute = (req.version() != Version::HTTP_2)
        .then(|| req.uri().authority())
        .flatten();
    absolute
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}

fn local(status: StatusCode, text: &'static str, mut guard: RecordGuard) -> Response<LoggedBody> {
    guard.decision.status = status.as_u16();
    let mut resp = Response::new(LoggedBody::new(full(text), guard));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `resp`, closing the connection after it: what follows on it cannot be trusted to start a
/// request.
fn closing(mut resp: Response<LoggedBody>) -> Response<LoggedBody> {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// True if an absolute-form HTTP/1 request names a host this proxy does not serve.
fn misdirected(s: &Settings, req: &Request<Incoming>) -> bool {
    if req.version() == Version::HTTP_2 {
        return false; // HTTP/2 always carries an authority; it plays the role of Host.
    }
    let Some(authority) = req.uri().authority() else {
        return false;
    };
    let host = authority.host();
    let served = s.server_names.iter().any(|n| n.eq_ignore_ascii_case(host))
        || authority == &s.upstream.authority
        || authority.as_str() == s.listen.to_string();
    !served
}

/// The names of the request headers that the consent decision read.
fn vary_names(policy: &CompiledPolicy) -> &'static [&'static str] {
    // `Tk` on DNT requests depends on DNT even when DNT decides nothing.
    let dnt = policy.dnt_denies.is_some() || policy.tk == TkMode::Dnt;
    match (dnt, policy.gpc_denies.is_some()) {
        (true, true) => &["Cookie", "DNT", "Sec-GPC"],
        (true, false) => &["Cookie", "DNT"],
        (false, true) => &["Cookie", "Sec-GPC"],
        (false, false) => &["Cookie"],
    }
}

/// Response headers that say what the decision depended on and what it was: `Vary` on the
/// request headers it read, and the `Tk` tracking status.
fn decided_by(
    headers: &mut http::HeaderMap,
    policy: &CompiledPolicy,
    consent: &Consent,
    dnt_sent: bool,
) {
    response::add_vary(headers, vary_names(policy));
    if let Some(r) = &policy.regions {
        response::add_vary(headers, &[r.header.as_str()]);
    }
    if let Some(tk) = declarations::tracking_status(policy.tk, consent, dnt_sent) {
        headers.insert("tk", HeaderValue::from_static(tk));
    }
}

#[allow(clippy::too_many_arguments)]
async fn journey(
    state: Arc<State>,
    peer: Peer,
    mut req: Request<Incoming>,
    host: Option<String>,
    snapshot: &Snapshot,
    consent: Consent,
    admission: Option<Admission>,
    mut guard: RecordGuard,
) -> Response<LoggedBody> {
    let (policy, settings) = (&snapshot.policy, &snapshot.settings);
    let enforce = policy.mode == Mode::Enforce;
    let dnt_sent = req.headers().contains_key("dnt");

    // The stand-in for a request head refused on the connection's bytes.
    if let Some(why) = stream::refused(req.headers()) {
        guard.decision.error = Some("ambiguous_framing");
        return closing(local(StatusCode::BAD_REQUEST, why.answer(), guard));
    }
    // Never an open proxy.
    if req.method() == Method::CONNECT {
        guard.decision.error = Some("misdirected");
        return local(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: this is a reverse proxy\n",
            guard,
        );
    }
    if let Some(why) = framing::problem(req.version(), req.headers()) {
        guard.decision.error = Some("bad_request");
        return closing(local(StatusCode::BAD_REQUEST, why, guard));
    }
    if misdirected(settings, &req) {
        guard.decision.error = Some("misdirected");
        return local(
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: this proxy does not serve that host\n",
            guard,
        );
    }
    // Beyond capacity: shed at once. (After the refusals above, which close the connection
    // and say why in the record.)
    let Some(mut admission) = admission else {
        return overloaded(guard);
    };

    // Header names a CGI-style site would read as the proxy's own (`X_Forwarded_For`).
    if settings.underscores_in_headers == Underscores::Drop {
        let dropped = underscores::drop_underscored(req.headers_mut());
        state.metrics.headers_dropped("underscore", dropped);
    }

    // What the site declares about browser signals, answered here (not in report-only mode:
    // the proxy does not yet keep those promises).
    if let Some((content_type, body)) =
        declarations::well_known(policy, req.method(), req.uri().path()).filter(|_| enforce)
    {
        guard.decision.status = 200;
        let mut resp = Response::new(LoggedBody::new(full(body), guard));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        return resp;
    }

    // The placeholder page of a withheld embed.
    if enforce
        && let Some(placeholder) = &policy.placeholder
        && req.uri().path() == withheld::PATH
        && matches!(*req.method(), http::Method::GET | http::Method::HEAD)
    {
        let accept_language = req
            .headers()
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let body = placeholder.page(accept_language, req.uri().query());
        guard.decision.status = 200;
        let mut resp = Response::new(LoggedBody::new(full(body), guard));
        let headers = resp.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(withheld::CSP),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=3600"),
        );
        headers.insert(
            http::header::VARY,
            HeaderValue::from_static("Accept-Language"),
        );
        return resp;
    }

    // Request filter: cookies. Judged before the endpoint check so that a blocked request's
    // answer can expire withdrawn cookies too.
    let upgrade = forward::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    request::filter_cookie_header(
        &mut parts.headers,
        policy,
        consent.granted,
        enforce,
        &mut guard.decision.cookies,
    );

    // Request filter: tracking endpoints, answered here without contacting the upstream.
    if request::blocked_endpoint(policy, consent.granted, parts.uri.path()).is_some() {
        guard.decision.blocked = true;
        if enforce {
            guard.decision.status = 204;
            let mut headers = http::HeaderMap::new();
            response::expire_cookies(
                &mut headers,
                &guard.decision.cookies.expired_cookies,
                host.as_deref(),
            );
            decided_by(&mut headers, policy, &consent, dnt_sent);
            let mut resp = Response::new(LoggedBody::new(empty(), guard));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            *resp.headers_mut() = headers;
            return resp;
        }
    }

    // The body may need the tag rewriter: ask for an unencoded, whole body.
    let tags_denied = !policy
        .tags
        .categories()
        .difference(consent.granted)
        .is_empty();
    // Read only when the body may be rewritten (the only place they are used).
    let client_codings = if enforce && tags_denied {
        let codings = body::accepted_codings(
            parts
                .headers
                .get(http::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        body::prepare_request(&mut parts.headers, consent.granted, &codings);
        codings
    } else {
        Vec::new()
    };
    let method = parts.method.clone();

    // Request filter: hop-by-hop and forwarding headers.
    forward::remove_hop_by_hop(&mut parts.headers, upgrade);
    let peer_trusted = forward::is_trusted(peer.addr.ip(), &settings.trusted_proxies);
    forward::set_forwarding_headers(
        &mut parts.headers,
        &Forwarding {
            peer: peer.addr.ip(),
            peer_trusted,
            host: host.as_deref(),
            proto: if peer.tls { "https" } else { "http" },
            version: parts.version,
        },
    );
    // Host is kept as the client sent it; an HTTP/2 request carries it as its authority, and an
    // HTTP/1 absolute-form target's authority replaces it.
    if parts.version != Version::HTTP_2
        && let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(HOST, v);
    }
    if !parts.headers.contains_key(HOST) {
        let authority = parts
            .uri
            .authority()
            .unwrap_or(&settings.upstream.authority);
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(HOST, v);
        }
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match Uri::builder()
        .scheme(settings.upstream.scheme.clone())
        .authority(settings.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
    {
        Ok(u) => u,
        Err(_) => {
            return local(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: bad request target\n",
                guard,
            );
        }
    };
    parts.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, upstream::RequestBody(body));

    // Upstream: the request keeps its places until the site is done with it, even if the
    // client goes away first (the exchange then goes on in a task of its own).
    admission.take_stream(&peer.share).await;
    let exchanged = upstream::exchange(
        &state.client,
        upstream_req,
        settings.timeouts.upstream_response,
        admission,
    )
    .await;
    guard.admission = exchanged.hold;
    if let Some(latency) = exchanged.latency {
        state.metrics.upstream_latency(latency);
    }
    let mut resp = match exchanged.answer {
        Ok(r) => r,
        Err(failure) => return upstream_failure(failure, guard),
    };

    // Upgrades (WebSocket and others): join the two connections once both sides switch.
    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switched && client_upgrade.is_none() {
        tracing::warn!("the upstream switched protocols without being asked to");
        return upstream_failure(Failure::Unavailable, guard);
    }
    if let Some(client_upgrade) = client_upgrade.filter(|_| switched) {
        // What the client sends next is the tunnel's, not HTTP.
        peer.upgraded
            .store(true, std::sync::atomic::Ordering::Release);
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        // Tracked: the drain gives tunnels the grace period too.
        // The connection's slot under `max_connections`: the tunnel keeps it.
        let slot = peer.slot.clone();
        state.tasks.spawn(async move {
            let _slot = slot;
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((c, u)) => {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "protocol upgrade failed"),
            }
        });
    }

    // Response headers.
    let (mut parts, body) = resp.into_parts();
    forward::remove_hop_by_hop(&mut parts.headers, switched);
    let report = &mut guard.decision.cookies;
    response::filter_set_cookies(
        &mut parts.headers,
        policy,
        consent.granted,
        enforce,
        report,
        |name, stripped| state.inventory.record(name, stripped),
    );
    if enforce {
        response::expire_cookies(&mut parts.headers, &report.expired_cookies, host.as_deref());
        decided_by(&mut parts.headers, policy, &consent, dnt_sent);
    }
    forward::append_via(&mut parts.headers, Version::HTTP_11);
    guard.decision.status = parts.status.as_u16();

    // Response body: HTML through the tag rewriter when a tagged category is denied;
    // everything else streamed through untouched.
    let upstream_body = IdleTimeout::new(
        body.map_err(Into::into).boxed_unsync(),
        settings.timeouts.upstream_body_idle,
    )
    .boxed_unsync();
    let body = match body::plan(&method, parts.status, &parts.headers, tags_denied) {
        BodyPlan::Passthrough => upstream_body,
        BodyPlan::RefuseEncoded if enforce => {
            tracing::warn!(
                "the upstream sent HTML in an encoding or charset that cannot be inspected"
            );
            guard.decision.error = Some("encoded_html_refused");
            return local(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream sent HTML that cannot be inspected (an unknown content coding, or a charset such as UTF-16)\n",
                guard,
            );
        }
        BodyPlan::RefuseEncoded => upstream_body,
        BodyPlan::Rewrite(coding) => {
            // Report-only passes the original bytes on, so it reads a decoded copy only when
            // enforcing; an encoded body is then not counted.
            if !enforce && coding.is_some() {
                return Response::from_parts(parts, LoggedBody::new(upstream_body, guard));
            }
            if enforce {
                body::prepare_response(&mut parts.headers, consent.granted);
            }
            let upstream_body = match coding {
                Some(c) => decode(upstream_body, c),
                None => upstream_body,
            };
            let encoding = html::document_encoding(body::charset(&parts.headers))
                .unwrap_or_else(|| (lol_html::AsciiCompatibleEncoding::utf_8(), true));
            // Google tags are left to Consent Mode only if its block can run in this page.
            let block = match policy
                .google_consent_mode
                .then(|| consent_mode::permit(&parts.headers))
            {
                Some(consent_mode::Permit::Runs(nonce)) => {
                    Some(consent_mode::block(consent.granted, nonce.as_deref()))
                }
                Some(consent_mode::Permit::Blocked) => {
                    tracing::debug!(
                        "the page's Content-Security-Policy would block the Consent Mode block: Google tags are neutralized"
                    );
                    None
                }
                None => None,
            };
            let params = crate::filter::html::Params {
                rules: policy.tags.clone(),
                granted: consent.granted,
                enforce,
                max_memory: settings.limits.rewrite_memory,
                encoding,
                consent_mode: block,
                kinds: crate::filter::html::Kinds::ALL,
            };
            let (mut rewritten, report) =
                RewriteBody::new(upstream_body, params, snapshot.memo.clone());
            guard.tags = Some(report);
            // A page that arrives whole is rewritten before the head goes out: head and body
            // then leave in one write, with a Content-Length. One whose upstream fails before
            // anything was sent is answered 502.
            match rewritten.gathered().await {
                Ok(()) => {}
                Err(Unanswerable::Upstream(e)) => {
                    tracing::debug!("the upstream's HTML body failed: {e}");
                    guard.decision.error = Some("upstream_body_error");
                    return local(
                        StatusCode::BAD_GATEWAY,
                        "502 Bad Gateway: the upstream server's answer broke off\n",
                        guard,
                    );
                }
                Err(Unanswerable::Uninspectable) => {
                    tracing::warn!(
                        "the upstream sent HTML in UTF-16 or another encoding that is not ASCII-compatible, which cannot be inspected"
                    );
                    guard.decision.error = Some("encoded_html_refused");
                    return local(
                        StatusCode::BAD_GATEWAY,
                        "502 Bad Gateway: the upstream sent HTML that cannot be inspected (UTF-16, or another encoding that is not ASCII-compatible)\n",
                        guard,
                    );
                }
            }
            // The encoding the rewriter read the page in is told in the head: a browser then
            // reads the output in it, whatever became of a `<meta>`.
            // (It was decided when the `Content-Type` named no charset, or one no browser
            // knows, which a browser ignores: that one is replaced.)
            if let Some(e) = rewritten.decided()
                && let Some(v) = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| http::HeaderValue::from_str(&with_charset(v, e.name())).ok())
            {
                parts.headers.insert(http::header::CONTENT_TYPE, v);
            }
            // Sent in the coding the site chose (from codings the client accepts), so that
            // the proxy adds no compression the site did not do.
            match coding.filter(|c| enforce && client_codings.contains(c)) {
                Some(c) => {
                    parts
                        .headers
                        .insert(http::header::CONTENT_ENCODING, body::coding_token(c));
                    response::add_vary(&mut parts.headers, &["Accept-Encoding"]);
                    encode(rewritten.boxed_unsync(), c)
                }
                None => rewritten.boxed_unsync(),
            }
        }
    };
    // What the client is told to expect: where its HTTP/1.1 connection stops reading.
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    Response::from_parts(parts, LoggedBody::new(body, guard).with_length(length))
}

/// A `Content-Type` value with its `charset` parameter, if any, replaced by `charset`.
fn with_charset(content_type: &str, charset: &str) -> String {
    let mut out: String = content_type
        .split(';')
        .filter(|p| {
            p.split_once('=')
                .is_none_or(|(k, _)| !k.trim().eq_ignore_ascii_case("charset"))
        })
        .collect::<Vec<_>>()
        .join(";");
    out.push_str("; charset=");
    out.push_str(charset);
    out
}

fn upstream_failure(failure: Failure, mut guard: RecordGuard) -> Response<LoggedBody> {
    match failure {
        Failure::RequestBody => {
            guard.decision.error = Some("request_body_error");
            closing(local(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: the request body could not be read (cut short, or its chunked framing is broken)\n",
                guard,
            ))
        }
        Failure::Unavailable => {
            guard.decision.error = Some("upstream_unavailable");
            local(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream server is unavailable\n",
                guard,
            )
        }
        Failure::Timeout => {
            guard.decision.error = Some("upstream_timeout");
            local(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout: the upstream server did not answer in time\n",
                guard,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_charset;

    #[test]
    fn a_charset_is_added_or_replaces_one_no_browser_knows() {
        assert_eq!(
            with_charset("text/html", "UTF-8"),
            "text/html; charset=UTF-8"
        );
        assert_eq!(
            with_charset("text/html; charset=x-no-such; q=1", "Shift_JIS"),
            "text/html; q=1; charset=Shift_JIS"
        );
        assert_eq!(
            with_charset("text/html;CHARSET=\"bogus\"", "windows-1252"),
            "text/html; charset=windows-1252"
        );
    }
}
