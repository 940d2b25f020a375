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
pub fn route(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    match path {
        HEALTHZ => answer(StatusCode::OK, TEXT, "ok\n"),
        READYZ if state.is_ready() => answer(StatusCode::OK, TEXT, "ready\n"),
        READYZ => answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n"),
        METRICS => answer(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.metrics.encode(),
        ),
        COOKIES => {
            let report = state.inventory.report(&state.current.load().policy);
            match serde_json::to_vec_pretty(&report) {
                Ok(json) => answer(StatusCode::OK, "application/json", json),
                Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "cannot encode\n"),
            }
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /healthz, /readyz, /metrics, /cookies\n",
        ),
    }
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
                        let resp = route(&state, req.method(), req.uri().path());
                        async move { Ok::<_, Infallible>(resp) }
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
