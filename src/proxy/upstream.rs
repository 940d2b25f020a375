//! The pooled keep-alive client that talks to the upstream, and how its failures map to
//! statuses.
//!
//! `https://` upstreams are verified: against the Mozilla roots (webpki-roots) by default, or
//! against exactly the CAs in `upstream_ca` when it is set. The proxy speaks HTTP/1.1 upstream,
//! so it offers only `http/1.1` by ALPN.

use super::admission::Admission;
use crate::config::Settings;
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// The client's request body on its way upstream; a failure to read it is told apart from the
/// upstream's failures.
#[derive(Debug)]
pub struct RequestBody(pub Incoming);

/// The client's request body could not be read: cut short, or its chunked framing is broken.
#[derive(Debug)]
pub struct RequestBodyError(hyper::Error);

impl std::fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body could not be read: {}", self.0)
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl http_body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, RequestBodyError>>> {
        std::pin::Pin::new(&mut self.0)
            .poll_frame(cx)
            .map_err(RequestBodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// Builds the upstream client. Fails when `upstream_ca` cannot be read or holds no certificate.
pub fn client(settings: &Settings) -> Result<UpstreamClient, String> {
    let mut pool = pool();
    pool.pool_max_idle_per_host(settings.limits.upstream_idle_connections);
    Ok(pool.build(connector(settings)?))
}

fn pool() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60));
    builder
}

/// Plain TCP for `http://`, rustls over it for `https://`.
fn connector(settings: &Settings) -> Result<HttpsConnector<HttpConnector>, String> {
    let tls = client_tls(settings.upstream_ca.as_deref())?;
    let mut http = HttpConnector::new();
    // The https connector wraps this one, which then sees `https://` addresses too.
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.timeouts.upstream_connect));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    // Not `HttpsConnectorBuilder`: it leaves ALPN empty for HTTP/1.1 only, and this offers
    // `http/1.1` explicitly. The default resolver takes the server name from the URI's host.
    Ok(HttpsConnector::new(
        http,
        tls,
        false,
        Arc::new(hyper_rustls::DefaultServerNameResolver::default()),
    ))
}

fn client_tls(ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(super::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("upstream TLS: {e}"))?;
    let builder = match ca {
        None => builder.with_webpki_roots(),
        Some(path) => builder.with_root_certificates(trusted_cas(path)?),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate in a PEM bundle, as trust anchors.
pub fn trusted_cas(path: &Path) -> Result<rustls::RootCertStore, String> {
    let name = path.display();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("upstream_ca {name}: {}", super::tls::pem_problem(e)))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| format!("upstream_ca {name}: {}", super::tls::pem_problem(e)))?;
        roots
            .add(cert)
            .map_err(|e| format!("upstream_ca {name}: a certificate in it cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "upstream_ca {name}: no certificate in it (expected PEM blocks \
             `-----BEGIN CERTIFICATE-----`)"
        ));
    }
    Ok(roots)
}

/// The most of an answer's body read after its client went away, so that its connection can
/// serve another request; a longer body closes the connection instead.
const FINISH_AT_MOST: usize = 1 << 20;

/// What came of sending one request upstream.
pub struct Exchanged {
    pub answer: Result<http::Response<Incoming>, Failure>,
    /// From sending the request to the answer's head, when there was one.
    pub latency: Option<Duration>,
    /// The request's places under the limits, to keep until the answer has been sent on.
    pub hold: Option<Admission>,
}

/// The answer and how long it took.
type Sent = (Result<http::Response<Incoming>, Failure>, Option<Duration>);

/// Sends `req` and waits for the answer's head, within `timeout`; failures are logged.
async fn send(client: UpstreamClient, req: http::Request<RequestBody>, timeout: Duration) -> Sent {
    let asked = std::time::Instant::now();
    // The upstream, named in what is logged (its scheme and authority only).
    let target = format!(
        "{}://{}",
        req.uri().scheme_str().unwrap_or("http"),
        req.uri().authority().map_or("", |a| a.as_str())
    );
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(r)) => (Ok(r), Some(asked.elapsed())),
        Ok(Err(e)) => {
            let failure = Failure::classify(&e);
            if failure == Failure::RequestBody {
                tracing::debug!(error = %describe(&e), "request body failed");
            } else {
                tracing::warn!(upstream = %target, error = %describe(&e), "upstream request failed");
            }
            (Err(failure), None)
        }
        Err(_) => {
            tracing::warn!(upstream = %target, "upstream did not answer in time");
            (Err(Failure::Timeout), None)
        }
    }
}

/// An exchange in progress. Dropped before its end (the caller's client went away), it goes
/// on in a task of its own: see [`exchange`].
struct InProgress {
    sending: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Sent> + Send>>>,
    hold: Option<Admission>,
    timeout: Duration,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let (Some(sending), Some(mut hold)) = (self.sending.take(), self.hold.take()) else {
            return;
        };
        hold.client_gone();
        let timeout = self.timeout;
        // Without a runtime (it is shutting down) the exchange ends here.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let (Ok(resp), _) = sending.await {
                    let _ = tokio::time::timeout(timeout, finish(resp.into_body())).await;
                }
                drop(hold);
            });
        }
    }
}

/// Sends `req` upstream and keeps `hold` (the request's places under the limits) until the
/// exchange has ended. If the caller goes away first (its client cancelled the request), the
/// exchange goes on in a task of its own, which waits for the answer and reads its body to the
/// end (up to 1 MiB, within `timeout`), so that the upstream connection goes back to the pool:
/// a cancelled request costs no new upstream connection, and its connection's place is given
/// back only when the site has really finished with it.
pub async fn exchange(
    client: &UpstreamClient,
    req: http::Request<RequestBody>,
    timeout: Duration,
    hold: Admission,
) -> Exchanged {
    let mut progress = InProgress {
        sending: Some(Box::pin(send(client.clone(), req, timeout))),
        hold: Some(hold),
        timeout,
    };
    let (answer, latency) = match progress.sending.as_mut() {
        Some(sending) => sending.await,
        None => (Err(Failure::Unavailable), None),
    };
    // Ended: nothing is left to finish.
    progress.sending = None;
    Exchanged {
        answer,
        latency,
        hold: progress.hold.take(),
    }
}

/// Reads a body no one will receive to its end, unless it is longer than [`FINISH_AT_MOST`].
async fn finish(mut body: Incoming) {
    use http_body_util::BodyExt as _;
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len());
        if read > FINISH_AT_MOST {
            return;
        }
    }
}

/// Why the upstream did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client's request body could not be read: 400.
    RequestBody,
    /// Refused, reset, unreachable, an unreadable answer, or a failed TLS handshake (an
    /// untrusted or expired certificate, a name mismatch): 502.
    Unavailable,
    /// Too slow to connect or to answer: 504.
    Timeout,
}

impl Failure {
    pub fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
        if tls_error(e).is_some() {
            return Failure::Unavailable;
        }
        let mut source = e.source();
        while let Some(s) = source {
            if s.is::<RequestBodyError>() {
                return Failure::RequestBody;
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return Failure::Timeout;
            }
            source = s.source();
        }
        Failure::Unavailable
    }
}

/// The TLS failure behind a failed request, if that is what it was. hyper-rustls and
/// tokio-rustls wrap it in `io::Error`s, whose `source` skips the error they wrap.
fn tls_error(e: &hyper_util::client::legacy::Error) -> Option<&rustls::Error> {
    let mut source = e.source();
    while let Some(s) = source {
        let mut wrapped: Option<&(dyn std::error::Error + 'static)> = Some(s);
        while let Some(w) = wrapped {
            if let Some(tls) = w.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            wrapped = w
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        source = s.source();
    }
    None
}

/// The whole cause of a failed request, for logs: `hyper_util`'s own message is only
/// "client error (Connect)".
pub fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertificateFiles, Overrides, TlsFiles};
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper::{Request, Response};
    use std::convert::Infallible;

    const LOCALHOST_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
    const LOCALHOST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost-key.pem");

    fn settings(upstream: &str, ca: Option<&str>) -> Settings {
        let mut s = crate::config::resolve(
            None,
            Overrides {
                upstream: Some(upstream.into()),
                ..Default::default()
            },
        )
        .unwrap();
        s.upstream_ca = ca.map(Into::into);
        s
    }

    /// An https server with the bundled localhost certificate, answering `alpn:<protocol>`.
    async fn https_server() -> std::net::SocketAddr {
        let tls = crate::proxy::tls::Tls::new(&TlsFiles {
            certificates: vec![CertificateFiles {
                cert: LOCALHOST_CERT.into(),
                key: LOCALHOST_KEY.into(),
            }],
        })
        .unwrap();
        let acceptor = tls.acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    let body = format!(
                        "alpn:{}",
                        String::from_utf8_lossy(&alpn.unwrap_or_default())
                    );
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn get(
        settings: &Settings,
        url: &str,
    ) -> Result<String, hyper_util::client::legacy::Error> {
        let client = pool().build::<_, Empty<Bytes>>(connector(settings).unwrap());
        let resp = client
            .request(Request::get(url).body(Empty::new()).unwrap())
            .await?;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn builds_with_the_default_roots_and_with_a_ca_file() {
        assert!(client(&settings("http://127.0.0.1:1", None)).is_ok());
        assert!(client(&settings("https://127.0.0.1:1", Some(LOCALHOST_CERT))).is_ok());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let e = client(&settings("https://a", missing.to_str())).unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read"), "{e}");

        let e = client(&settings("https://a", Some(LOCALHOST_KEY))).unwrap_err();
        assert!(e.contains(LOCALHOST_KEY), "{e}");
        assert!(e.contains("no certificate"), "{e}");
    }

    #[tokio::test]
    async fn reaches_an_https_upstream_signed_by_the_configured_ca() {
        let addr = https_server().await;
        let url = format!("https://127.0.0.1:{}/", addr.port());
        let s = settings(&url, Some(LOCALHOST_CERT));
        assert_eq!(get(&s, &url).await.unwrap(), "alpn:http/1.1");
    }

    #[tokio::test]
    async fn an_untrusted_upstream_certificate_is_unavailable() {
        let addr = https_server().await;
        let url = format!("https://127.0.0.1:{}/", addr.port());
        // The Mozilla roots do not include the self-signed localhost certificate.
        let e = get(&settings(&url, None), &url).await.unwrap_err();
        assert_eq!(Failure::classify(&e), Failure::Unavailable);
        assert!(
            matches!(
                tls_error(&e),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{e:?}"
        );
        let text = describe(&e);
        assert!(text.contains("certificate"), "{text}");

        // Trusting some other CA fails the same way.
        let other = rcgen::generate_simple_self_signed(vec!["other.example".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("other-ca.pem");
        std::fs::write(&ca, other.cert.pem()).unwrap();
        let e = get(&settings(&url, ca.to_str()), &url).await.unwrap_err();
        assert_eq!(Failure::classify(&e), Failure::Unavailable);
        assert!(tls_error(&e).is_some(), "{e:?}");
    }

    #[tokio::test]
    async fn plain_http_still_works() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("plain"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
        let url = format!("http://127.0.0.1:{}/", addr.port());
        assert_eq!(get(&settings(&url, None), &url).await.unwrap(), "plain");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        );
        drop(listener);
        let e = get(&settings(&url, None), &url).await.unwrap_err();
        assert_eq!(Failure::classify(&e), Failure::Unavailable);
        assert!(tls_error(&e).is_none(), "{e:?}");
    }
}
