//! The per-request decision work, without I/O: consent, request-cookie filtering and
//! Set-Cookie filtering under the built-in policy (about two thousand cookie rules).
//!
//! Run with `cargo bench --bench decision`.

use consent_proxy::category::CategorySet;
use consent_proxy::consent;
use consent_proxy::filter::{CookieReport, request, response};
use consent_proxy::policy;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use http::HeaderMap;
use http::header::{COOKIE, SET_COOKIE};

/// The time of every decision here, 2026-11-30 (Unix seconds).
const NOW: u64 = 1_795_996_800;
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        "_ga=GA1.1.123.456; _ga_ABC123=GS1.1.1; _gid=GA1.1.9; _fbp=fb.1.2.3; sessionid=s3ss; \
         csrftoken=tok; cookie_consent=analytics,preferences; _hjSessionUser_123=x; unknown_thing=1"
            .parse()
            .unwrap(),
    );
    h.insert("sec-gpc", "1".parse().unwrap());
    h.insert("user-agent", "Mozilla/5.0".parse().unwrap());
    h
}

/// A request of a site that runs a TCF CMP: analytics and tracking cookies beside the TC string.
const TCF_COOKIES: &str = "_ga=GA1.1.123.456; _gid=GA1.1.9; sessionid=s3ss; csrftoken=tok; \
    euconsent-v2=CP1R2oAP1R2oAEsABBENCWFAAIGAAAAAAAYgAAAAAAAA; _fbp=fb.1.2.3";

/// A request of a site that runs OneTrust.
const ONETRUST_COOKIES: &str = "_ga=GA1.1.123.456; _gid=GA1.1.9; sessionid=s3ss; \
    OptanonAlertBoxClosed=2026-11-23T10:00:00.000Z; OptanonConsent=isGpcEnabled=0&datestamp=\
    Mon+Nov+23+2026+11%3A00%3A00+GMT%2B0100&version=202409.1.0&isIABGlobal=false&hosts=&\
    consentId=0f2d&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1\
    %2CC0003%3A0%2CC0004%3A0%2CC0005%3A0&AwaitingReconsent=false";

fn response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in [
        "_ga=GA1.1.1.1; Path=/; Max-Age=63072000; Domain=example.com",
        "_gid=GA1.1.2.2; Path=/; Max-Age=86400",
        "_fbp=fb.1.1.1; Path=/; Max-Age=7776000",
        "sessionid=s; Path=/; HttpOnly; Secure; SameSite=Lax",
        "csrftoken=c; Path=/",
    ] {
        h.append(SET_COOKIE, v.parse().unwrap());
    }
    h
}

fn bench(c: &mut Criterion) {
    let policy = policy::builtin().expect("the built-in policy compiles");
    let req = request_headers();
    let resp = response_headers();

    c.bench_function("consent::decide (native cookie)", |b| {
        b.iter(|| consent::decide(black_box(&req), &policy.consent, None, NOW))
    });
    // Sites with a consent manager: the native cookie is absent, so the sources are tried in
    // order until TCF or OneTrust speaks.
    for (name, cookie) in [("TCF", TCF_COOKIES), ("OneTrust", ONETRUST_COOKIES)] {
        let mut h = req.clone();
        h.insert(COOKIE, cookie.parse().unwrap());
        assert!(
            consent::decide(&h, &policy.consent, None, NOW)
                .source
                .is_consent()
        );
        c.bench_function(&format!("consent::decide ({name})"), |b| {
            b.iter(|| consent::decide(black_box(&h), &policy.consent, None, NOW))
        });
    }

    let granted = consent::decide(&req, &policy.consent, None, NOW).granted;
    c.bench_function("filter_cookie_header (9 cookies)", |b| {
        b.iter_batched(
            || req.clone(),
            |mut h| {
                let mut r = CookieReport::default();
                request::filter_cookie_header(&mut h, &policy, granted, true, &mut r);
                (h, r)
            },
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("filter_set_cookies (5 headers)", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut h| {
                let mut r = CookieReport::default();
                response::filter_set_cookies(
                    &mut h,
                    &policy,
                    CategorySet::NECESSARY,
                    true,
                    &mut r,
                    |_, _| {},
                );
                (h, r)
            },
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("classify (prefix match)", |b| {
        b.iter(|| policy.classify(black_box("_hjSessionUser_123456")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
