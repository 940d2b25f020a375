//! End to end: requests built to abuse a proxy are refused, and nothing a client sends reaches
//! the site or other clients in a form the proxy did not check.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes on a new connection and reads until the proxy closes it (or 5 s pass).
async fn raw(proxy: &Proxy, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    String::from_utf8_lossy(&out).into_owned()
}

/// A request that smuggles `GET /smuggled` behind ambiguous framing, and the path of the
/// request that is refused.
const SMUGGLING: [(&str, &[u8], &str); 6] = [
    (
        "Content-Length and Transfer-Encoding",
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/upload",
    ),
    (
        "two equal Content-Length",
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcdGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/upload",
    ),
    (
        "two different Content-Length",
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 44\r\n\r\nabcdGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/upload",
    ),
    (
        "obs-fold",
        b"GET /a HTTP/1.1\r\nHost: t\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/a",
    ),
    (
        "bare LF",
        b"GET /a HTTP/1.1\nHost: t\n\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/a",
    ),
    (
        "bare LF inside a header line",
        b"GET /a HTTP/1.1\r\nHost: t\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "/a",
    ),
];

#[tokio::test]
async fn request_smuggling_is_answered_400_and_nothing_reaches_the_site() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    for (name, request, _) in SMUGGLING {
        let got = raw(&proxy, request).await;
        assert!(got.starts_with("HTTP/1.1 400"), "{name}: {got}");
        assert!(got.contains("connection: close"), "{name}: {got}");
        assert_eq!(got.matches("HTTP/1.1").count(), 1, "{name}: {got}");
        // The same on a kept-alive connection, after an ordinary request, sent byte by byte:
        // the first request is answered as usual, then the 400, and the connection ends.
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        for b in request {
            s.write_all(&[*b]).await.unwrap();
        }
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{name}: the connection stayed open");
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.starts_with("HTTP/1.1 200"), "{name}: {rest}");
        assert_eq!(rest.matches("HTTP/1.1 ").count(), 2, "{name}: {rest}");
        // The 400 follows the first answer whole: its body with its length, or its last chunk.
        let (first, _) = rest.split_once("HTTP/1.1 400").expect("a 400");
        assert!(
            first.ends_with("<title>upstream</title>") || first.ends_with("0\r\n\r\n"),
            "{name}: {rest}"
        );
    }
    let seen: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(seen.iter().all(|p| p == "/first"), "{seen:?}");
    assert_eq!(seen.len(), SMUGGLING.len());
    // One record per refused request, with its path and the reason.
    let recs = proxy.logs(3 * SMUGGLING.len());
    let refused: Vec<_> = recs.iter().filter(|r| r["status"] == 400).collect();
    assert_eq!(refused.len(), 2 * SMUGGLING.len(), "{recs:?}");
    for (r, (name, _, path)) in refused.chunks(2).zip(SMUGGLING) {
        for r in r {
            assert_eq!(r["error"], "ambiguous_framing", "{name}: {r}");
            assert_eq!(r["path"], path, "{name}: {r}");
            assert_ne!(r["method"], "-", "{name}: {r}");
        }
    }
    // Still serving.
    assert_eq!(get(&http1(), &proxy.url("/"), &[]).await.status, 200);
}

#[tokio::test]
async fn a_missing_repeated_or_malformed_host_is_400() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example; Secure\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
    ] {
        let got = raw(&proxy, request).await;
        assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    }
    assert!(up.seen.lock().unwrap().is_empty());
    // One record per refused request, with the reason.
    let recs = proxy.logs(4);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 400 && r["error"] == "bad_request"),
        "{recs:?}"
    );
}

#[tokio::test]
async fn cookie_names_and_values_cannot_inject_headers_or_attributes() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    // Names that match the catalogue's `_ga_*` but are no cookie name, and values with
    // separators: nothing of them is written into a Set-Cookie.
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[(
            "cookie",
            "_ga_X Domain=evil.example=1; _ga=GA1.1.1\"; Secure; x=1, _fbp=fb.1.1; Domain=evil.example",
        )],
    )
    .await;
    assert_eq!(got.status, 200);
    for c in got.set_cookies() {
        assert!(!c.contains("evil.example"), "{c}");
        assert!(!c.contains('"'), "{c}");
        let name = c.split('=').next().unwrap();
        assert!(["_ga", "_fbp"].contains(&name), "{c}");
    }
    // The site gets no tracker cookie at all, and no header split out of a value.
    let seen = up.last_seen();
    let cookie = seen
        .headers
        .get("cookie")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        cookie
            .as_deref()
            .is_none_or(|c| !c.contains("_ga") && !c.contains("_fbp")),
        "{cookie:?}"
    );
    // A raw CR or LF in a cookie never gets as far as the proxy's code.
    let got = raw(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: t\r\nCookie: a=1\rSet-Cookie: evil=1\r\n\r\n",
    )
    .await;
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 400"), "{got}");
    assert_eq!(up.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn sec_gpc_always_reaches_the_site() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    for cookie in [
        None,
        Some("cookie_consent=all"),
        Some("cookie_consent=garbage%%"),
    ] {
        let mut headers = vec![("sec-gpc", "1"), ("dnt", "1")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        for path in ["/", "/tracked", "/data.json"] {
            let got = get(&http1(), &proxy.url(path), &headers).await;
            assert_eq!(got.status, 200, "{path}");
            let seen = up.last_seen();
            assert_eq!(
                seen.headers.get("sec-gpc").unwrap(),
                "1",
                "{cookie:?} {path}"
            );
            assert_eq!(seen.headers.get("dnt").unwrap(), "1", "{cookie:?} {path}");
        }
    }
}

#[tokio::test]
async fn a_broken_chunked_request_body_is_400_and_ends_the_connection() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let cases: [(&str, &[u8]); 3] = [
        ("a bare LF in a chunk-size line", b"3\nabc\r\n0\r\n\r\n"),
        ("a bare LF in a trailer", b"3\r\nabc\r\n0\r\nT: 1\n\r\n"),
        ("a chunk size that is no number", b"zz\r\nabc\r\n0\r\n\r\n"),
    ];
    for (name, body) in cases {
        let mut request =
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
        let got = raw(&proxy, &request).await;
        // The site answers before it has read the body, or the broken body is seen first: its
        // answer, or 400. Either way one answer, and the connection ends there.
        let answered = got.starts_with("HTTP/1.1 200");
        assert!(answered || got.starts_with("HTTP/1.1 400"), "{name}: {got}");
        assert!(
            answered || got.contains("request body could not be read"),
            "{name}: {got}"
        );
        assert_eq!(got.matches("HTTP/1.1").count(), 1, "{name}: {got}");
    }
    let recs = proxy.logs(cases.len());
    assert!(
        recs.iter().all(|r| r["path"] == "/up"
            && (r["status"] == 200 || (r["status"] == 400 && r["error"] == "request_body_error"))),
        "{recs:?}"
    );
    let seen = up.seen.lock().unwrap();
    assert!(seen.iter().all(|s| s.path == "/up"), "{:?}", seen.len());
}

#[tokio::test]
async fn a_page_of_deeply_nested_srcdoc_documents_is_answered_and_the_proxy_lives_on() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &proxy.url("/nested-srcdoc"), &[]).await;
    assert_eq!(got.status, 200);
    // Four levels are rewritten; the document below them, with the tag, is dropped.
    assert!(!got.body.contains("googletagmanager"), "{}", got.body.len());
    assert_eq!(got.body.matches("srcdoc=").count(), 4);
    assert_eq!(get(&http1(), &proxy.url("/"), &[]).await.status, 200);
}

/// The header lines a CGI-style site would read as `HTTP_X_FORWARDED_FOR` and the like.
const UNDERSCORED: [(&str, &str); 4] = [
    ("X_Forwarded_For", "6.6.6.6"),
    ("X_Real_IP", "6.6.6.6"),
    ("Transfer_Encoding", "chunked"),
    ("Content_Length", "5"),
];

#[tokio::test]
async fn header_names_with_underscores_never_reach_the_site_unless_allowed() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let mut head = String::from("GET /h1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in UNDERSCORED {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    assert!(
        raw(&proxy, head.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
    let got = get(&http2(), &proxy.url("/h2"), &UNDERSCORED).await;
    assert_eq!(got.status, 200);
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        ["/h1", "/h2"]
    );
    for s in &seen {
        let names: Vec<_> = s.headers.keys().map(|k| k.as_str()).collect();
        assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
        assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1", "{:?}", s.headers);
        assert_eq!(s.headers.get_all("x-forwarded-for").iter().count(), 1);
    }
    assert_eq!(
        metric(
            &proxy,
            "consent_proxy_request_headers_dropped_total{reason=\"underscore\"}"
        )
        .await,
        8.0
    );

    // An operator who needs them passes them.
    let (_d, config) = temp_file("c.yaml", "underscores_in_headers: pass\n");
    let passing = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    get(&http2(), &passing.url("/pass"), &UNDERSCORED).await;
    let seen = up.last_seen();
    assert_eq!(seen.path, "/pass");
    assert_eq!(seen.headers["x_forwarded_for"], "6.6.6.6");
    assert_eq!(seen.headers["content_length"], "5");
}
