//! End to end: analytics and advertising tags in HTML, through the proxy.

mod common;
use common::*;
use consent_proxy::demo::HOME_PAGE;

#[tokio::test]
async fn without_consent_tags_are_neutralized() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(
        !got.body
            .contains(r#"<script async src="https://www.googletagmanager.com"#),
        "{}",
        got.body
    );
    assert!(
        got.body
            .contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123""#)
    );
    assert!(
        got.body
            .contains(r#"<script type="text/plain" data-category="marketing">"#),
        "Meta Pixel inline"
    );
    assert!(
        got.body
            .contains(r#"data-src="https://www.facebook.com/tr?id="#),
        "noscript pixel"
    );
    assert!(got.body.contains("<h1>Demo shop</h1>"));
    // The page arrived whole, so the rewrite's own length is sent, never the site's.
    assert_eq!(
        got.header("content-length"),
        vec![got.body.len().to_string()]
    );
    assert_eq!(got.header("etag"), vec!["W/\"v1-cp1\""]);
    let seen = up.last_seen();
    assert_eq!(seen.headers.get("accept-encoding").unwrap(), "identity");
    let rec = proxy.log(1);
    assert_eq!(rec["tags_neutralized"], 4);
    assert_eq!(
        names(&rec["tag_vendors"]),
        vec!["Google Analytics", "Meta Pixel"]
    );
}

#[tokio::test]
async fn granted_visitors_and_other_types_get_the_bytes_unchanged() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/tracked"),
        &[("cookie", "cookie_consent=all")],
    )
    .await;
    assert_eq!(got.body, HOME_PAGE);
    assert_eq!(got.header("etag"), vec!["\"v1\""]);
    let got = get(&http1(), &proxy.url("/tracked.json"), &[]).await;
    assert_eq!(got.body, HOME_PAGE);
    let recs = proxy.logs(2);
    assert!(recs.iter().all(|r| r["tags_neutralized"] == 0));
}

#[tokio::test]
async fn analytics_granted_leaves_analytics_tags() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http2(),
        &proxy.url("/tracked"),
        &[("cookie", "cookie_consent=analytics")],
    )
    .await;
    assert!(
        got.body.contains(
            r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123">"#
        )
    );
    assert!(got.body.contains(r#"data-category="marketing""#));
    assert_eq!(names(&proxy.log(1)["tag_vendors"]), vec!["Meta Pixel"]);
}

#[tokio::test]
async fn report_only_counts_tags_and_changes_nothing() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file("p.yaml", "extends: builtin\nmode: report-only\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(got.body, HOME_PAGE);
    assert_eq!(got.header("etag"), vec!["\"v1\""]);
    assert_eq!(
        got.header("content-length"),
        vec![HOME_PAGE.len().to_string()]
    );
    let got2 = get(&http2(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(got2.body, HOME_PAGE);
    // The client read the whole page, which ended where its Content-Length said: no
    // disconnect (the body was never polled past its last byte).
    for rec in proxy.logs(2) {
        assert_eq!(rec["tags_neutralized"], 4, "{rec}");
        assert_eq!(rec["error"], serde_json::Value::Null, "{rec}");
        assert_eq!(rec["status"], 200, "{rec}");
    }
}

#[tokio::test]
async fn compressed_html_is_decoded_and_rewritten_in_every_coding() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    for (i, coding) in ["gzip", "deflate", "deflate-raw", "br", "zstd"]
        .into_iter()
        .enumerate()
    {
        let got = get(&http1(), &proxy.url(&format!("/tracked.{coding}")), &[]).await;
        assert_eq!(got.status, 200, "{coding}");
        assert!(got.headers.get("content-encoding").is_none(), "{coding}");
        assert!(
            got.body.contains("<h1>Demo shop</h1>"),
            "{coding}: {}",
            got.body
        );
        assert!(
            got.body
                .contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123""#),
            "{coding}"
        );
        assert_eq!(proxy.log(i + 1)["tags_neutralized"], 4, "{coding}");
    }
}

#[tokio::test]
async fn html_in_a_coding_that_cannot_be_decoded_is_refused() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(&http1(), &proxy.url("/tracked.compress"), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(proxy.log(1)["error"], "encoded_html_refused");
    // With consent nothing needs inspecting: it passes as it is.
    let got = get(
        &http1(),
        &proxy.url("/tracked.compress"),
        &[("cookie", "cookie_consent=all")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-encoding"), vec!["compress"]);
}

#[tokio::test]
async fn a_site_policy_can_remove_tags_instead() {
    let up = Upstream::start().await;
    let (_d, policy) = temp_file("p.yaml", "extends: builtin\ntag_action: remove\n");
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert!(
        !got.body.contains("googletagmanager") && !got.body.contains("fbq("),
        "{}",
        got.body
    );
    assert!(got.body.contains("<h1>Demo shop</h1>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_page_streams_through_the_rewriter_in_bounded_memory() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let before = proxy.peak_rss_kib();
    let resp = http1()
        .request(
            http::Request::get(proxy.url("/big"))
                .body(empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let (mut total, mut live_tags) = (0usize, 0usize);
    let mut tail = String::new();
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        total += data.len();
        // Count live tracker tags, including one split across two frames.
        let text = format!("{tail}{}", String::from_utf8_lossy(&data));
        live_tags += text
            .matches("<script src=\"https://www.googletagmanager")
            .count();
        tail = text[text.len().saturating_sub(64)..].to_string();
    }
    assert!(total > 50 << 20, "{total}");
    assert_eq!(live_tags, 0);
    let rec = proxy.log(1);
    assert!(rec["tags_neutralized"].as_u64().unwrap() > 700, "{rec}");
    let grew = proxy.peak_rss_kib().saturating_sub(before);
    eprintln!(
        "peak RSS before {before} KiB, growth {grew} KiB for {} MiB",
        total >> 20
    );
    assert!(grew < 40 * 1024, "resident memory grew by {grew} KiB");
}

#[tokio::test]
async fn rewritten_html_keeps_the_sites_coding_when_the_client_accepts_it() {
    use async_compression::tokio::bufread::GzipDecoder;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    // The site gzips; a client that accepts gzip gets the rewritten page gzipped, and the
    // proxy adds no compression of its own.
    for (accept, asked, want) in [
        ("gzip", "gzip", Some("gzip")),
        ("gzip, br, compress", "br, gzip", Some("gzip")),
        ("zstd;q=1, gzip;q=0", "zstd", None),
    ] {
        let resp = http1()
            .request(
                http::Request::get(proxy.url("/tracked.gzip"))
                    .header("accept-encoding", accept)
                    .body(empty_body())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            up.last_seen().headers["accept-encoding"],
            asked,
            "the site is asked only for codings the proxy decodes and the client accepts"
        );
        assert_eq!(
            resp.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            want,
            "{accept}"
        );
        if want.is_some() {
            let vary: Vec<_> = resp
                .headers()
                .get_all("vary")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert!(vary.join(",").contains("Accept-Encoding"), "{vary:?}");
        }
        let raw = resp.into_body().collect().await.unwrap().to_bytes();
        let mut text = String::new();
        match want {
            Some(_) => {
                GzipDecoder::new(&raw[..])
                    .read_to_string(&mut text)
                    .await
                    .unwrap();
            }
            None => text = String::from_utf8(raw.to_vec()).unwrap(),
        }
        assert!(text.contains("<h1>Demo shop</h1>"), "{accept}");
        assert!(
            text.contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-DEMO123""#)
        );
    }
}

/// Reads a body until it ends or fails; returns the bytes that arrived and whether it failed.
async fn read_until_error(resp: http::Response<hyper::body::Incoming>) -> (String, bool) {
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[tokio::test]
async fn a_document_over_the_rewrite_memory_limit_is_cut_off_before_any_tracker() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  rewrite_memory: 128 KiB\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let resp = http1()
        .request(
            http::Request::get(proxy.url("/huge-attribute"))
                .body(empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (body, failed) = read_until_error(resp).await;
    assert!(failed, "the body ended cleanly: {} bytes", body.len());
    assert!(!body.contains("<p>end</p>"), "the rest of the page arrived");
    assert!(
        body.contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-1""#),
        "the page up to the tag that cannot be held arrives, rewritten: {body}"
    );
    assert!(
        !body.contains("<script src=") && !body.contains("fbevents.js"),
        "a live tracker tag arrived: {}",
        &body[..body.len().min(400)]
    );
    let rec = proxy.log(1);
    assert_eq!(rec["error"], "body_error", "{rec}");

    // The default limit (16 MiB) holds the attribute: the whole page arrives, rewritten.
    let proxy = Proxy::start(&up.url(), &[]);
    let resp = http1()
        .request(
            http::Request::get(proxy.url("/huge-attribute"))
                .body(empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    let (body, failed) = read_until_error(resp).await;
    assert!(!failed);
    assert!(body.ends_with("<p>end</p></body></html>"));
    assert_eq!(
        body.matches("data-src=").count(),
        2,
        "both tags neutralized"
    );
    assert_eq!(proxy.log(1)["tags_neutralized"], 2);
}

#[tokio::test]
async fn a_page_served_again_is_answered_from_the_memo_with_the_same_result() {
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let (hit, miss) = (
        r#"consent_proxy_rewrite_memo_total{result="hit"}"#,
        r#"consent_proxy_rewrite_memo_total{result="miss"}"#,
    );
    // Stored the second time it is rewritten, answered from the memo the third.
    let first = get(&http1(), &proxy.url("/tracked"), &[]).await;
    get(&http1(), &proxy.url("/tracked"), &[]).await;
    let again = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(
        (metric(&proxy, miss).await, metric(&proxy, hit).await),
        (2.0, 1.0)
    );
    assert_eq!(first.body, again.body);
    assert!(
        again
            .body
            .contains(r#"data-src="https://www.googletagmanager.com/gtag/js"#)
    );
    // The record of the remembered answer says what was done to the page, as the first does.
    let recs = proxy.logs(3);
    for rec in &recs {
        assert_eq!(rec["tags_neutralized"], 4, "{rec}");
        assert_eq!(
            names(&rec["tag_vendors"]),
            vec!["Google Analytics", "Meta Pixel"]
        );
    }
    // Under another decision the page is another document.
    let analytics = get(
        &http1(),
        &proxy.url("/tracked"),
        &[("cookie", "cookie_consent=analytics")],
    )
    .await;
    assert_eq!(metric(&proxy, miss).await, 3.0);
    assert!(
        analytics
            .body
            .contains(r#"<script async src="https://www.googletagmanager.com"#)
    );
    assert!(!analytics.body.contains("fbevents.js\"></script>"));

    // A page the upstream pauses in the middle of streams: nothing waits for the rest to
    // remember it, and it is rewritten the same.
    let paused = get(&http1(), &proxy.url("/tracked-paused"), &[]).await;
    assert_eq!(paused.body, first.body);
    assert_eq!(metric(&proxy, miss).await + metric(&proxy, hit).await, 4.0);
}

#[tokio::test]
async fn the_memo_can_be_turned_off() {
    let up = Upstream::start().await;
    let (_dir, config) = temp_file("config.yaml", "limits:\n  rewrite_cache: 0\n");
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    let first = get(&http1(), &proxy.url("/tracked"), &[]).await;
    let again = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(first.body, again.body);
    assert!(
        again
            .body
            .contains(r#"data-src="https://www.googletagmanager.com/gtag/js"#)
    );
    for result in ["hit", "miss"] {
        let series = format!("consent_proxy_rewrite_memo_total{{result=\"{result}\"}}");
        assert_eq!(metric(&proxy, &series).await, 0.0, "{series}");
    }
}

#[tokio::test]
async fn embeds_loaders_and_styles_are_held_back_and_share_links_are_not() {
    let up = Upstream::start().await;
    let (_dir, policy) = temp_file(
        "policy.yaml",
        "extends: builtin\nembed_placeholder:\n  en: \"{vendor} is hidden until you accept {category} cookies.\"\n  de: \"{vendor} ist ausgeblendet.\"\n",
    );
    let proxy = Proxy::start(&up.url(), &["--policy", path_str(&policy)]);
    let got = get(&http1(), &proxy.url("/fixtures/pages/embeds.html"), &[]).await;
    assert_eq!(got.status, 200);
    let body = &got.body;
    // The video frame keeps its size and its URL for activation, and shows the placeholder.
    assert!(
        body.contains(
            r#"<iframe width="560" height="315" title="YouTube video player" frameborder="0" allowfullscreen data-category="marketing" data-src="https://www.youtube.com/embed/dQw4w9WgXcQ" src="/.well-known/consent-proxy/withheld?vendor=YouTube&amp;category=marketing"></iframe>"#
        ),
        "{body}"
    );
    // The SDK loader is neutralized by the URL it names.
    assert!(
        body.contains(
            "<script type=\"text/plain\" data-category=\"marketing\">\n  (function(d, s, id)"
        ),
        "{body}"
    );
    // CSS URLs of trackers are emptied, in a <style> and in a style attribute.
    assert!(
        body.contains(r#"background: url("data:,") no-repeat"#),
        "{body}"
    );
    assert!(!body.contains("quantserve.com"), "{body}");
    assert!(!body.contains("gravatar.com"), "{body}");
    // A share button's script, structured data and links are left as they are.
    assert!(
        body.contains("<script>\n  document.querySelector('.share')"),
        "{body}"
    );
    assert!(
        body.contains(r#"<script type="application/ld+json">{"@context""#),
        "{body}"
    );
    assert!(body.contains(r#"href="https://twitter.com/intent/tweet?text=hi""#));
    assert!(body.contains(r#"href="mailto:privacy@facebook.com""#));
    let rec = proxy.log(1);
    assert_eq!(rec["tags_neutralized"], 4, "{rec}");

    // The placeholder page, in the visitor's language.
    let got = get(
        &http1(),
        &proxy.url("/.well-known/consent-proxy/withheld?vendor=YouTube&category=marketing"),
        &[("accept-language", "de-CH, de;q=0.9")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(
        got.body.contains("<p>YouTube ist ausgeblendet.</p>"),
        "{}",
        got.body
    );
    assert_eq!(
        got.header("content-security-policy"),
        vec!["default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"]
    );
    let got = get(
        &http1(),
        &proxy.url("/.well-known/consent-proxy/withheld?vendor=YouTube&category=marketing"),
        &[],
    )
    .await;
    assert!(
        got.body
            .contains("<p>YouTube is hidden until you accept marketing cookies.</p>"),
        "{}",
        got.body
    );
    // Without a placeholder text the path is the site's.
    let plain = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &plain.url("/.well-known/consent-proxy/withheld"),
        &[],
    )
    .await;
    assert!(got.body.contains("<title>upstream</title>"), "{}", got.body);
}

#[tokio::test]
async fn the_encoding_a_page_was_read_in_is_named_in_the_head() {
    // A page whose Content-Type names no charset and that declares none in its first bytes is
    // read as UTF-8 throughout, and the head says so: a `<meta>` further on, which a browser
    // would otherwise follow, changes neither.
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/fixtures/meta-late-windows-1252.html"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), vec!["text/html; charset=UTF-8"]);
    // With a charset in the Content-Type the head is left as it is.
    let got = get(&http1(), &proxy.url("/tracked"), &[]).await;
    assert_eq!(got.header("content-type"), vec!["text/html; charset=utf-8"]);
}

#[tokio::test]
async fn a_meta_charset_in_the_first_bytes_decides_the_encoding_and_is_told_in_the_head() {
    // `\xA6` before the `<meta>` is `¦` in windows-1252, the encoding a browser's prescan finds:
    // the image's host is an IDN under bing.com (Bing Ads). Read as UTF-8 it would be U+FFFD,
    // an invalid host, and the pixel would pass.
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let direct = get(
        &http1(),
        &format!("{}/fixtures/meta-charset-windows-1252.html", up.url()),
        &[],
    )
    .await;
    assert_eq!(direct.header("content-type"), vec!["text/html"]);
    let got = get(
        &http1(),
        &proxy.url("/fixtures/meta-charset-windows-1252.html"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    // The head names the encoding the page was read in, so that a browser reads the rewritten
    // bytes the same way whatever became of the `<meta>`.
    assert_eq!(
        got.header("content-type"),
        vec!["text/html; charset=windows-1252"]
    );
    assert!(got.body.contains(r#"data-src="//"#), "{}", got.body);
    assert_eq!(names(&proxy.log(1)["tag_vendors"]), vec!["Bing Ads"]);
}

#[tokio::test]
async fn a_page_declaring_an_encoding_that_cannot_be_read_is_refused() {
    // ISO-2022-JP escapes can hide or show any tag (`\x1b$B<!\x1b(B` is one kanji to a browser,
    // a bogus comment to a UTF-8 reader): nothing of the page is sent.
    let up = Upstream::start().await;
    let proxy = Proxy::start(&up.url(), &[]);
    let got = get(
        &http1(),
        &proxy.url("/fixtures/meta-charset-iso-2022-jp.html"),
        &[],
    )
    .await;
    assert_eq!(got.status, 502);
    assert!(!got.body.contains("facebook"), "{}", got.body);
    assert_eq!(proxy.log(1)["error"], "encoded_html_refused");
}
