//! One request's journey through the phases, in order: consent, accept checks, local answers,
//! request filter, upstream, upstream headers, response body, the response phase every answer
//! passes, log. Each phase is a function of the request's context ([`Ctx`]); [`handle`] calls
//! them in order.

use super::admission::{Admission, ConnShare};
use super::body::InnerBody;
use super::body::{IdleTimeout, LoggedBody, RecordGuard, RewriteBody, Unanswerable, empty, full};
use super::coding::{decode, encode};
use super::upstream::{self, Failure};
use super::{Site, Snapshot, State, conn, framing as stream, preferences};
use crate::audit::Decision;
use crate::config::Settings;
use crate::consent::{self, Consent};
use crate::filter::body::{self, BodyPlan};
use crate::filter::forward::{self, Forwarding};
use crate::filter::underscores::{self, Underscores};
use crate::filter::{consent_mode, declarations, framing, html, path, request, response, withheld};
use crate::policy::sources::{Country, TkMode};
use crate::policy::{CompiledPolicy, Mode};
use crate::sites::{self, Misdirected};
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
    /// The server name its TLS handshake asked for (SNI).
    pub sni: Option<Arc<str>>,
    /// Its place under `limits.max_connections`.
    pub slot: Option<conn::Slot>,
    /// Set when the connection switches protocols: its request heads are no longer checked.
    pub upgraded: Arc<std::sync::atomic::AtomicBool>,
    /// The connection's share of the limits: its upstream exchanges, its cancelled requests.
    pub share: Arc<ConnShare>,
}

/// What the phases of one request share: the snapshot it is served under, its client, the
/// consent decision, and the decision record that the log step writes.
pub struct Ctx {
    pub state: Arc<State>,
    /// One snapshot for the whole request: a reload in the middle does not mix two.
    pub snapshot: Arc<Snapshot>,
    /// The request's site in `snapshot.sites` (the first when it is for none).
    pub site: usize,
    /// Why the request is for no site, when it is not.
    misdirected: Option<Misdirected>,
    pub peer: Peer,
    /// The Host the client asked for.
    pub host: Option<String>,
    pub consent: Consent,
    pub dnt_sent: bool,
    /// The policy enforces (not report-only).
    pub enforce: bool,
    /// A place among the requests in flight, or none: the proxy is at capacity.
    admission: Option<Admission>,
    /// The decision record.
    pub guard: RecordGuard,
    /// What the body phase writes at the start of `<body>`: the banner or the settings link.
    body_start: Option<preferences::BodyStart>,
    pub method: Method,
    /// The codings the client accepts, read when the body may be rewritten.
    client_codings: Vec<body::Coding>,
}

impl Ctx {
    /// The consent phase: the snapshot, the client, its consent.
    fn new(state: Arc<State>, peer: Peer, req: &Request<Incoming>) -> Ctx {
        let admission = state.capacity.admit(peer.slot.clone());
        let snapshot = state.current.load_full();
        let host = request_host(req);
        let routed = if snapshot.settings.virtual_hosts {
            let name = host.as_deref().and_then(sites::host_of);
            snapshot.routes.route(name.as_deref(), peer.sni.as_deref())
        } else {
            Ok(0)
        };
        let site = *routed.as_ref().unwrap_or(&0);
        let (policy, settings) = (&snapshot.sites[site].policy, &snapshot.settings);
        let client = forward::client_ip(peer.addr.ip(), req.headers(), &settings.trusted_proxies);
        let country = policy.regions.as_ref().and_then(|r| {
            forward::trusted_header(
                peer.addr.ip(),
                req.headers(),
                &settings.trusted_proxies,
                &r.header,
            )
            .and_then(Country::parse)
        });
        let consent = consent::decide(req.headers(), &policy.consent, country, now_secs());
        let mut guard = RecordGuard::new(
            Decision {
                ts: String::new(),
                site: routed.is_ok().then(|| snapshot.sites[site].name.clone()),
                client: snapshot.keys.minimizer.minimize(client),
                method: clip(req.method().as_str()),
                host: clip(host.as_deref().unwrap_or("")),
                path: clip(&path::without_params(req.uri().path())),
                status: 0,
                granted: consent.granted,
                source: consent.source.as_str(),
                sources: consent.read.iter().collect(),
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
        Ctx {
            enforce: policy.mode == Mode::Enforce,
            dnt_sent: req.headers().contains_key("dnt"),
            state,
            snapshot,
            site,
            misdirected: routed.err(),
            peer,
            host,
            consent,
            admission,
            guard,
            body_start: None,
            method: req.method().clone(),
            client_codings: Vec::new(),
        }
    }

    pub fn policy(&self) -> &CompiledPolicy {
        &self.snapshot.sites[self.site].policy
    }

    /// The request's site.
    pub fn site(&self) -> &Site {
        &self.snapshot.sites[self.site]
    }

    fn settings(&self) -> &Settings {
        &self.snapshot.settings
    }

    /// A local answer with a plain-text body, for `error` in the record.
    pub fn refuse(
        &mut self,
        status: StatusCode,
        text: &'static str,
        error: &'static str,
    ) -> Response<InnerBody> {
        self.guard.decision.error = Some(error);
        plain(status, text)
    }
}

/// What the request phases lead to.
enum Next {
    /// Answered here: a refusal, a local page, a blocked endpoint.
    Answer(Response<InnerBody>),
    /// On to the upstream, with the client's side of a protocol upgrade if it asked for one.
    Forward(
        Request<upstream::RequestBody>,
        Option<hyper::upgrade::OnUpgrade>,
    ),
}

/// Handles one request: the phases in order. Never fails: every problem becomes a response and
/// a decision record.
pub async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let mut ctx = Ctx::new(state, peer, &req);
    let resp = match request_phases(&mut ctx, req).await {
        Next::Answer(resp) => resp,
        Next::Forward(req, upgrade) => match upstream_phase(&mut ctx, req, upgrade).await {
            Ok(resp) => {
                let resp = upstream_headers(&mut ctx, resp);
                body_phase(&mut ctx, resp).await
            }
            Err(resp) => resp,
        },
    };
    let resp = response_phase(&mut ctx, resp);
    Ok(log(ctx, resp))
}

/// Accept checks, local answers, and the request filter.
async fn request_phases(ctx: &mut Ctx, req: Request<Incoming>) -> Next {
    if let Some(refused) = accept_checks(ctx, &req) {
        return Next::Answer(refused);
    }
    match local_answer(ctx, req).await {
        Ok(answer) => Next::Answer(answer),
        Err(req) => request_filter(ctx, req),
    }
}

/// Requests refused before anything else: bad framing, CONNECT, a host this proxy does not
/// serve, no capacity left.
fn accept_checks(ctx: &mut Ctx, req: &Request<Incoming>) -> Option<Response<InnerBody>> {
    // The stand-in for a request head refused on the connection's bytes.
    if let Some(why) = stream::refused(req.headers()) {
        return Some(closing(ctx.refuse(
            StatusCode::BAD_REQUEST,
            why.answer(),
            "ambiguous_framing",
        )));
    }
    // Never an open proxy.
    if req.method() == Method::CONNECT {
        return Some(ctx.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: this is a reverse proxy\n",
            "misdirected",
        ));
    }
    if let Some(why) = framing::problem(req.version(), req.headers()) {
        return Some(closing(ctx.refuse(
            StatusCode::BAD_REQUEST,
            why,
            "bad_request",
        )));
    }
    // RFC 9113 §8.3.1: a Host naming another host than :authority makes the request malformed
    // (one proxy in front could route by one, this one by the other).
    if req.version() == Version::HTTP_2
        && let (Some(authority), Some(host)) = (
            req.uri().authority(),
            req.headers().get(HOST).and_then(|h| h.to_str().ok()),
        )
        && sites::host_of(authority.as_str()) != sites::host_of(host)
    {
        return Some(ctx.refuse(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: the Host header names another host than :authority\n",
            "bad_request",
        ));
    }
    let misdirected = ctx.misdirected.or_else(|| {
        let s = ctx.settings();
        let upstream = &ctx.site().upstream.authority;
        (!s.virtual_hosts && absolute_form_elsewhere(s, upstream, req))
            .then_some(Misdirected::UnknownHost)
    });
    if let Some(why) = misdirected {
        return Some(ctx.refuse(StatusCode::MISDIRECTED_REQUEST, why.answer(), "misdirected"));
    }
    // Beyond capacity: shed at once, rather than after a queue. (After the refusals above,
    // which close the connection and say why in the record.)
    if ctx.admission.is_none() {
        let mut resp = ctx.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: too many requests in flight, try again shortly\n",
            "overloaded",
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Some(resp);
    }
    None
}

/// Pages the proxy answers itself (only when enforcing: in report-only mode the proxy does not
/// yet keep the policy's promises): the site's declarations about browser signals, the
/// placeholder of a withheld embed, the banner's stylesheet and the preference centre. Any
/// other request is given back.
async fn local_answer(
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<InnerBody>, Request<Incoming>> {
    if !ctx.enforce {
        return Err(req);
    }
    let policy = ctx.policy();
    if let Some((content_type, body)) =
        declarations::well_known(policy, req.method(), req.uri().path())
    {
        let mut resp = Response::new(full(body));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        return Ok(resp);
    }
    if let Some(placeholder) = &policy.placeholder
        && req.uri().path() == withheld::PATH
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        let accept_language = req
            .headers()
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let body = placeholder.page(accept_language, req.uri().query());
        let mut resp = Response::new(full(body));
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
        return Ok(resp);
    }
    preferences::answer(ctx, req).await
}

/// The request filter: the `Cookie` header, tracking endpoints (answered here without
/// contacting the upstream), what the body phase will need, and the forwarding headers.
fn request_filter(ctx: &mut Ctx, mut req: Request<Incoming>) -> Next {
    // Header names a CGI-style site would read as the proxy's own (`X_Forwarded_For`).
    if ctx.settings().underscores_in_headers == Underscores::Drop {
        let dropped = underscores::drop_underscored(req.headers_mut());
        ctx.state.metrics.headers_dropped("underscore", dropped);
    }
    // Cookies: judged before the endpoint check so that a blocked request's answer can expire
    // withdrawn cookies too.
    let upgrade = forward::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let snapshot = ctx.snapshot.clone();
    let site = &snapshot.sites[ctx.site];
    let (policy, settings) = (&site.policy, &snapshot.settings);
    request::filter_cookie_header(
        &mut parts.headers,
        policy,
        ctx.consent.granted,
        ctx.enforce,
        &mut ctx.guard.decision.cookies,
    );

    if request::blocked_endpoint(policy, ctx.consent.granted, parts.uri.path()).is_some() {
        ctx.guard.decision.blocked = true;
        if ctx.enforce {
            let mut resp = Response::new(empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            return Next::Answer(resp);
        }
    }

    // The banner, or the link to the preference centre, for a page.
    ctx.body_start = preferences::body_start(ctx, &parts);
    // The body may need the rewriter. For tags, the upstream is asked for an unencoded, whole
    // body; for the banner alone the request goes as it is, and only a whole page is written.
    let tags = tags_denied(ctx);
    if ctx.enforce && (tags || ctx.body_start.is_some()) {
        ctx.client_codings = body::accepted_codings(
            parts
                .headers
                .get(http::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        if tags {
            body::prepare_request(&mut parts.headers, ctx.consent.granted, &ctx.client_codings);
        }
    }

    // Hop-by-hop and forwarding headers.
    forward::remove_hop_by_hop(&mut parts.headers, upgrade);
    let peer_trusted = forward::is_trusted(ctx.peer.addr.ip(), &settings.trusted_proxies);
    forward::set_forwarding_headers(
        &mut parts.headers,
        &Forwarding {
            peer: ctx.peer.addr.ip(),
            peer_trusted,
            host: ctx.host.as_deref(),
            proto: if ctx.peer.tls { "https" } else { "http" },
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
        let authority = parts.uri.authority().unwrap_or(&site.upstream.authority);
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
        .scheme(site.upstream.scheme.clone())
        .authority(site.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
    {
        Ok(u) => u,
        Err(_) => {
            return Next::Answer(ctx.refuse(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: bad request target\n",
                "bad_request",
            ));
        }
    };
    parts.version = Version::HTTP_11;
    Next::Forward(
        Request::from_parts(parts, upstream::RequestBody(body)),
        client_upgrade,
    )
}

/// Whether some category with tag rules is denied: HTML then goes through the rewriter.
fn tags_denied(ctx: &Ctx) -> bool {
    !ctx.policy()
        .tags
        .categories()
        .difference(ctx.consent.granted)
        .is_empty()
}

/// The upstream: the request keeps its places until the site is done with it, even if the
/// client goes away first (the exchange then goes on in a task of its own). Upgrades
/// (WebSocket and others) join the two connections once both sides switch.
async fn upstream_phase(
    ctx: &mut Ctx,
    req: Request<upstream::RequestBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Incoming>, Response<InnerBody>> {
    let Some(mut admission) = ctx.admission.take() else {
        return Err(plain(StatusCode::SERVICE_UNAVAILABLE, "503\n"));
    };
    admission.take_stream(&ctx.peer.share).await;
    let exchanged = upstream::exchange(
        &ctx.state.client,
        req,
        ctx.settings().timeouts.upstream_response,
        admission,
    )
    .await;
    ctx.guard.admission = exchanged.hold;
    if let Some(latency) = exchanged.latency {
        ctx.state.metrics.upstream_latency(latency);
    }
    let mut resp = match exchanged.answer {
        Ok(r) => r,
        Err(failure) => return Err(upstream_failure(ctx, failure)),
    };
    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switched && client_upgrade.is_none() {
        tracing::warn!("the upstream switched protocols without being asked to");
        return Err(upstream_failure(ctx, Failure::Unavailable));
    }
    if let Some(client_upgrade) = client_upgrade.filter(|_| switched) {
        // What the client sends next is the tunnel's, not HTTP.
        ctx.peer
            .upgraded
            .store(true, std::sync::atomic::Ordering::Release);
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        // Tracked: the drain gives tunnels the grace period too.
        // The connection's slot under `max_connections`: the tunnel keeps it.
        let slot = ctx.peer.slot.clone();
        ctx.state.tasks.spawn(async move {
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
    Ok(resp)
}

/// The upstream's response headers: hop-by-hop headers go, and each `Set-Cookie` of a denied
/// category is dropped.
fn upstream_headers(ctx: &mut Ctx, resp: Response<Incoming>) -> Response<Incoming> {
    let (mut parts, body) = resp.into_parts();
    let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    forward::remove_hop_by_hop(&mut parts.headers, switched);
    let (state, site) = (ctx.state.clone(), &ctx.snapshot.sites[ctx.site]);
    response::filter_set_cookies(
        &mut parts.headers,
        &site.policy,
        ctx.consent.granted,
        ctx.enforce,
        &mut ctx.guard.decision.cookies,
        |name, stripped| state.inventory.record(&site.name, name, stripped),
    );
    Response::from_parts(parts, body)
}

/// The response body: HTML through the tag rewriter when a tagged category is denied or the
/// banner is written; everything else streamed through untouched.
async fn body_phase(ctx: &mut Ctx, resp: Response<Incoming>) -> Response<InnerBody> {
    let (mut parts, body) = resp.into_parts();
    let snapshot = ctx.snapshot.clone();
    let site = &snapshot.sites[ctx.site];
    let (policy, settings) = (&site.policy, &snapshot.settings);
    let enforce = ctx.enforce;
    let upstream_body = IdleTimeout::new(
        body.map_err(Into::into).boxed_unsync(),
        settings.timeouts.upstream_body_idle,
    )
    .boxed_unsync();
    let tags = tags_denied(ctx);
    // The banner or the settings link goes only into a whole page (200, text/html, not a
    // download).
    if ctx.body_start.is_some() && !preferences::is_page(parts.status, &parts.headers) {
        ctx.body_start = None;
    }
    let rewrite = tags || ctx.body_start.is_some();
    let coding = match body::plan(&ctx.method, parts.status, &parts.headers, rewrite) {
        BodyPlan::Passthrough => return Response::from_parts(parts, upstream_body),
        BodyPlan::RefuseEncoded if enforce && tags => {
            tracing::warn!(
                "the upstream sent HTML in an encoding or charset that cannot be inspected"
            );
            return ctx.refuse(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream sent HTML that cannot be inspected (an unknown content coding, or a charset such as UTF-16)\n",
                "encoded_html_refused",
            );
        }
        // Only the banner would be written: the page passes as it is.
        BodyPlan::RefuseEncoded => return Response::from_parts(parts, upstream_body),
        // Report-only passes the original bytes on, so it reads a decoded copy only when
        // enforcing; an encoded body is then not counted.
        BodyPlan::Rewrite(Some(_)) if !enforce => {
            return Response::from_parts(parts, upstream_body);
        }
        BodyPlan::Rewrite(coding) => coding,
    };
    if enforce {
        body::prepare_response(&mut parts.headers, ctx.consent.granted);
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
            Some(consent_mode::block(ctx.consent.granted, nonce.as_deref()))
        }
        Some(consent_mode::Permit::Blocked) => {
            tracing::debug!(
                "the page's Content-Security-Policy would block the Consent Mode block: Google tags are neutralized"
            );
            None
        }
        None => None,
    };
    // The banner or settings link, for a page rewritten while enforcing.
    let body_start = ctx
        .body_start
        .take()
        .filter(|_| enforce)
        .map(|b| b.apply(&mut parts.headers));
    // A banner carries the visitor's own form token: the page is not remembered.
    let memo = site
        .memo
        .clone()
        .filter(|_| !matches!(&body_start, Some((_, true))));
    let params = crate::filter::html::Params {
        rules: policy.tags.clone(),
        granted: ctx.consent.granted,
        enforce,
        max_memory: settings.limits.rewrite_memory,
        encoding,
        consent_mode: block,
        kinds: crate::filter::html::Kinds::ALL,
        body_start: body_start.map(|(html, _)| html),
    };
    let (mut rewritten, report) = RewriteBody::new(upstream_body, params, memo);
    ctx.guard.tags = Some(report);
    // A page that arrives whole is rewritten before the head goes out: head and body then
    // leave in one write, with a Content-Length. One whose upstream fails before anything was
    // sent is answered 502.
    match rewritten.gathered().await {
        Ok(()) => {}
        Err(Unanswerable::Upstream(e)) => {
            tracing::debug!("the upstream's HTML body failed: {e}");
            return ctx.refuse(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream server's answer broke off\n",
                "upstream_body_error",
            );
        }
        Err(Unanswerable::Uninspectable) => {
            tracing::warn!(
                "the upstream sent HTML in UTF-16 or another encoding that is not ASCII-compatible, which cannot be inspected"
            );
            return ctx.refuse(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream sent HTML that cannot be inspected (UTF-16, or another encoding that is not ASCII-compatible)\n",
                "encoded_html_refused",
            );
        }
    }
    // The encoding the rewriter read the page in is told in the head: a browser then reads the
    // output in it, whatever became of a `<meta>`. (It was decided when the `Content-Type`
    // named no charset, or one no browser knows, which a browser ignores: that one is
    // replaced.)
    if let Some(e) = rewritten.decided()
        && let Some(v) = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| http::HeaderValue::from_str(&with_charset(v, e.name())).ok())
    {
        parts.headers.insert(http::header::CONTENT_TYPE, v);
    }
    // Sent in the coding the site chose (from codings the client accepts), so that the proxy
    // adds no compression the site did not do.
    let client_codings = std::mem::take(&mut ctx.client_codings);
    let body = match coding.filter(|c| enforce && client_codings.contains(c)) {
        Some(c) => {
            parts
                .headers
                .insert(http::header::CONTENT_ENCODING, body::coding_token(c));
            response::add_vary(&mut parts.headers, &["Accept-Encoding"]);
            encode(rewritten.boxed_unsync(), c)
        }
        None => rewritten.boxed_unsync(),
    };
    Response::from_parts(parts, body)
}

/// The one response phase every answer passes, local or from the upstream: cookies of denied
/// categories that the browser still sent are expired, `Vary` names what the decision read,
/// `Tk` tells the tracking status, and `Via` the proxy.
fn response_phase(ctx: &mut Ctx, mut resp: Response<InnerBody>) -> Response<InnerBody> {
    let headers = resp.headers_mut();
    if ctx.enforce {
        response::expire_cookies(
            headers,
            &ctx.guard.decision.cookies.expired_cookies,
            ctx.host.as_deref(),
        );
        decided_by(headers, ctx.policy(), &ctx.consent, ctx.dnt_sent);
    }
    forward::append_via(headers, Version::HTTP_11);
    resp
}

/// The log step: the decision record goes with the body and is written when it ends (or
/// fails, or the client goes away).
fn log(mut ctx: Ctx, resp: Response<InnerBody>) -> Response<LoggedBody> {
    ctx.guard.decision.status = resp.status().as_u16();
    // What the client is told to expect: where its HTTP/1.1 connection stops reading.
    let length = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, LoggedBody::new(body, ctx.guard).with_length(length))
}

/// The request's client-facing answer of a local page: plain text.
fn plain(status: StatusCode, text: &'static str) -> Response<InnerBody> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The host the client asked for: an HTTP/1 absolute-form target's authority (RFC 9112
/// §3.2.2) or HTTP/2's `:authority` (RFC 9113 §8.3.1), else the `Host` header.
fn request_host(req: &Request<Incoming>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
}

/// `resp`, closing the connection after it: what follows on it cannot be trusted to start a
/// request.
fn closing(mut resp: Response<InnerBody>) -> Response<InnerBody> {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// True if an absolute-form HTTP/1 request names a host this proxy does not serve (a config
/// without `sites`: its `server_names`, its upstream, its listen address).
fn absolute_form_elsewhere(
    s: &Settings,
    upstream: &http::uri::Authority,
    req: &Request<Incoming>,
) -> bool {
    if req.version() == Version::HTTP_2 {
        return false; // HTTP/2 always carries an authority; it plays the role of Host.
    }
    let Some(authority) = req.uri().authority() else {
        return false;
    };
    let host = authority.host();
    let served = s.server_names.iter().any(|n| n.eq_ignore_ascii_case(host))
        || authority == upstream
        || authority.as_str() == s.listen.to_string();
    !served
}

/// The names of the request headers that the consent decision read.
fn vary_names(policy: &CompiledPolicy) -> &'static [&'static str] {
    // `Tk` on DNT requests depends on DNT even when DNT decides nothing.
    let dnt = policy.consent.dnt_denies.is_some() || policy.tk == TkMode::Dnt;
    match (dnt, policy.consent.gpc_denies.is_some()) {
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

fn upstream_failure(ctx: &mut Ctx, failure: Failure) -> Response<InnerBody> {
    match failure {
        Failure::RequestBody => closing(ctx.refuse(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: the request body could not be read (cut short, or its chunked framing is broken)\n",
            "request_body_error",
        )),
        Failure::Unavailable => ctx.refuse(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the upstream server is unavailable\n",
            "upstream_unavailable",
        ),
        Failure::Timeout => ctx.refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the upstream server did not answer in time\n",
            "upstream_timeout",
        ),
    }
}

/// The time now, in Unix seconds (0 if the clock is before 1970).
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
