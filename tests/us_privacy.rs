//! End to end: the US opt-out formats (GPP's US sections and GPC subsection, the US Privacy
//! string), the maximum age of TCF strings, and how several consent sources combine (`first`,
//! `strictest`, `newest`), over real HTTP, with the proxy in front of a test upstream.
//!
//! Every GPP and TC string is taken at run time, by vector name, from `tests/gpp/vectors.json`:
//! strings encoded by the IAB's JavaScript library `@iabgpp/cmpapi` 3.2.0 (see
//! `tests/gpp/README.md`). A tcfeuv2 vector's `sectionString` is a TC string, sent as the
//! `euconsent-v2` cookie.

mod common;
use common::tcf::now;
use common::*;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

/// Cookies the upstream sets, one per category: what passes shows what was granted.
const SETS: [(&str, &str); 4] = [
    ("x-set-cookie", "pll_language=en; Path=/"),
    ("x-set-cookie", "_ga=GA1.1.1.1; Path=/"),
    ("x-set-cookie", "_fbp=fb.1.1.1; Path=/"),
    ("x-set-cookie", "sessionid=s; Path=/"),
];

/// The same cookies sent by the visitor: what reaches the upstream shows it too.
const SENT: &str = "pll_language=en; _ga=GA1.1.9; _fbp=fb.1.9; sessionid=s";

/// The cookies of the catalogue's preferences, analytics and marketing categories above.
const TRACKING: [&str; 3] = ["pll_language", "_ga", "_fbp"];

const ALL: [&str; 4] = ["necessary", "preferences", "analytics", "marketing"];
const NO_MARKETING: [&str; 3] = ["necessary", "preferences", "analytics"];

/// Thirteen months, the default `consent.tcf.max_age`, in seconds.
const THIRTEEN_MONTHS: u64 = 396 * 24 * 3600;

fn vectors() -> &'static [Value] {
    static VECTORS: OnceLock<Vec<Value>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gpp/vectors.json");
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            (&file["library"], &file["version"]),
            (&Value::from("@iabgpp/cmpapi"), &Value::from("3.2.0"))
        );
        file["vectors"].as_array().unwrap().clone()
    })
}

/// The vector of this name.
fn vector(name: &str) -> &'static Value {
    vectors()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name} in vectors.json"))
}

/// The full GPP string of a vector.
fn gpp(name: &str) -> &'static str {
    vector(name)["gpp"].as_str().unwrap()
}

/// A field of a single-section vector, as the library decodes it.
fn field(name: &str, f: &str) -> &'static Value {
    &vector(name)["fields"][f]
}

/// A tcfeuv2 vector's TC string (for `euconsent-v2`) and its LastUpdated in Unix seconds.
fn tc_string(name: &str) -> (&'static str, u64) {
    let v = vector(name);
    assert_eq!(v["section"], "tcfeuv2", "{name}");
    let updated = humantime::parse_rfc3339(v["fields"]["LastUpdated"].as_str().unwrap())
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (v["sectionString"].as_str().unwrap(), updated)
}

/// A stale TC string (older than thirteen months) granting purposes 1, 2, 3, 7 and 11: only
/// preferences under the default purpose map.
fn stale_tcf() -> &'static str {
    let (tc, updated) = tc_string("tcfeuv2/old-consent");
    assert!(
        now() - updated > THIRTEEN_MONTHS,
        "old-consent is not stale"
    );
    tc
}

/// A recent TC string granting purposes 1, 3, 4, 6–10: preferences and analytics, not
/// marketing (purpose 2 is missing): the library's `tcfeuv2/purposes-and-vendors`, dated ten
/// days ago so that it stays recent. Returns it with that date in Unix seconds.
fn recent_tcf() -> (String, u64) {
    let (tc, _) = tc_string("tcfeuv2/purposes-and-vendors");
    let at = now() - 10 * 24 * 3600;
    (common::tcf::dated(tc, at), at)
}

/// A CookieYes cookie granting analytics only (as in tests/sources.rs).
const COOKIEYES_ANALYTICS: &str = "cookieyes-consent=consentid:abc,consent:yes,action:yes,\
     necessary:yes,functional:no,analytics:yes,performance:yes,advertisement:no,other:no";

/// What one request showed.
struct Outcome {
    /// Tracking cookies the upstream set that reached the visitor.
    set: Vec<String>,
    /// Tracking cookies the visitor sent that reached the upstream.
    forwarded: Vec<String>,
    /// The decision log record.
    rec: Value,
    /// The request's consent cookies, for messages.
    cookie: String,
}

impl Outcome {
    /// The tracking cookies that pass both ways, and the log's `granted`, `source` and
    /// `sources` (empty: the field is absent).
    fn expect(&self, passes: &[&str], granted: &[&str], source: &str, sources: &[&str]) {
        let c = &self.cookie;
        assert_eq!(self.set, passes, "Set-Cookie passed, with {c}");
        assert_eq!(self.forwarded, passes, "cookies forwarded, with {c}");
        assert_eq!(names(&self.rec["granted"]), granted, "granted, with {c}");
        assert_eq!(self.rec["source"], source, "source, with {c}: {}", self.rec);
        if sources.is_empty() {
            assert!(self.rec.get("sources").is_none(), "{}", self.rec);
        } else {
            assert_eq!(names(&self.rec["sources"]), sources, "sources, with {c}");
        }
    }

    fn signals(&self) -> Vec<String> {
        names(&self.rec["signals"])
    }
}

/// The proxy under one policy in front of its upstream.
struct Site {
    up: Upstream,
    proxy: Proxy,
    _dir: tempfile::TempDir,
    requests: usize,
}

impl Site {
    async fn start(policy: &str) -> Site {
        let up = Upstream::start().await;
        let (dir, file) = temp_file("policy.yaml", policy);
        let proxy = Proxy::start(&up.url(), &["--policy", path_str(&file)]);
        Site {
            up,
            proxy,
            _dir: dir,
            requests: 0,
        }
    }

    /// The proxy's cookie granting all, beside a GPP opt-out of sale (usva): the cookie decides,
    /// less marketing.
    async fn an_opt_out_restricts_the_native_grant(&mut self) {
        let usva = gpp("usva/opt-outs-12");
        self.visit(&format!("cookie_consent=all; __gpp={usva}"))
            .await
            .expect(
                &["pll_language", "_ga"],
                &NO_MARKETING,
                "native",
                &["native", "gpp"],
            );
    }

    /// A page request with these consent cookies (and the tracking cookies) and extra headers.
    async fn visit_with(&mut self, cookie: &str, extra: &[(&str, &str)]) -> Outcome {
        let sent = if cookie.is_empty() {
            SENT.to_string()
        } else {
            format!("{cookie}; {SENT}")
        };
        let mut headers = SETS.to_vec();
        headers.push(("cookie", &sent));
        headers.extend_from_slice(extra);
        let got = get(&http1(), &self.proxy.url("/page"), &headers).await;
        assert_eq!(got.status, 200);
        self.requests += 1;
        let tracking = |n: &str| TRACKING.contains(&n);
        let set = got
            .set_cookie_names()
            .into_iter()
            .filter(|n| tracking(n))
            .collect();
        let seen = self.up.last_seen();
        let forwarded = seen
            .headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
            .split(';')
            .filter_map(|c| c.split('=').next())
            .map(str::trim)
            .filter(|n| tracking(n))
            .map(str::to_string)
            .collect();
        Outcome {
            set,
            forwarded,
            rec: self.proxy.log(self.requests),
            cookie: cookie.to_string(),
        }
    }

    async fn visit(&mut self, cookie: &str) -> Outcome {
        self.visit_with(cookie, &[]).await
    }
}

const OPT_OUT: &str = "extends: builtin\ndefault: opt-out\n";

#[tokio::test]
async fn a_gpp_opt_out_denies_marketing_only() {
    // SaleOptOut 1 (usva), TargetedAdvertisingOptOut 1 (usnat, without a GPC subsection).
    for (name, opted_out) in [
        ("usva/opt-outs-12", "SaleOptOut"),
        ("usnat/opt-outs-201", "TargetedAdvertisingOptOut"),
    ] {
        assert_eq!(field(name, opted_out), 1, "{name}");
        assert_ne!(field(name, "Gpc"), true, "{name}");
    }
    let mut site = Site::start(OPT_OUT).await;
    // Without it, the opt-out default grants everything.
    site.visit("").await.expect(&TRACKING, &ALL, "default", &[]);
    for name in ["usva/opt-outs-12", "usnat/opt-outs-201"] {
        let o = site.visit(&format!("__gpp={}", gpp(name))).await;
        o.expect(&["pll_language", "_ga"], &NO_MARKETING, "gpp", &["gpp"]);
        assert!(o.signals().is_empty(), "{}", o.rec);
    }
    // `__gpp_sid` naming the section read: the same; naming another section: nothing applies.
    let usva = gpp("usva/opt-outs-12");
    site.visit(&format!("__gpp={usva}; __gpp_sid=9"))
        .await
        .expect(&["pll_language", "_ga"], &NO_MARKETING, "gpp", &["gpp"]);
    site.visit(&format!("__gpp={usva}; __gpp_sid=7"))
        .await
        .expect(&TRACKING, &ALL, "default", &[]);
}

#[tokio::test]
async fn a_gpp_string_without_opt_outs_denies_nothing() {
    assert_eq!(field("usnat/defaults", "SaleOptOut"), 0);
    assert_eq!(field("usnat/opt-outs-all-2", "SaleOptOut"), 2);
    let mut site = Site::start(OPT_OUT).await;
    for name in ["usnat/defaults", "usnat/opt-outs-all-2"] {
        let o = site.visit(&format!("__gpp={}", gpp(name))).await;
        o.expect(&TRACKING, &ALL, "gpp", &["gpp"]);
        assert!(o.signals().is_empty(), "{}", o.rec);
    }
}

#[tokio::test]
async fn a_gpc_subsection_counts_like_sec_gpc() {
    // Gpc true in the GPC subsection, every opt-out 2 (did not opt out), no child-data denial.
    let name = "usnat/max";
    assert_eq!(field(name, "Gpc"), true);
    assert_eq!(field(name, "GpcSegmentIncluded"), true);
    for f in ["SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"] {
        assert_eq!(field(name, f), 2, "{f}");
    }
    let cookie = format!("__gpp={}", gpp(name));
    let mut site = Site::start(OPT_OUT).await;
    let o = site.visit(&cookie).await;
    o.expect(&["pll_language", "_ga"], &NO_MARKETING, "gpp", &["gpp"]);
    assert_eq!(o.signals(), ["gpc"]);
    assert!(
        site.up.last_seen().headers.get("sec-gpc").is_none(),
        "the request had no Sec-GPC header"
    );
    // Under an opt-in default the subsection's GPC restricts the proxy's own cookie, too.
    let mut site = Site::start("extends: builtin\n").await;
    let o = site.visit(&format!("cookie_consent=all; {cookie}")).await;
    o.expect(
        &["pll_language", "_ga"],
        &NO_MARKETING,
        "native",
        &["native", "gpp"],
    );
    assert_eq!(o.signals(), ["gpc"]);
}

#[tokio::test]
async fn the_us_privacy_string() {
    let mut site = Site::start(OPT_OUT).await;
    for cookie in ["usprivacy=1YYN", "us_privacy=1YYN"] {
        site.visit(cookie).await.expect(
            &["pll_language", "_ga"],
            &NO_MARKETING,
            "usprivacy",
            &["usprivacy"],
        );
    }
    site.visit("usprivacy=1YNN")
        .await
        .expect(&TRACKING, &ALL, "usprivacy", &["usprivacy"]);
    // Not applicable: as if there were no string.
    site.visit("usprivacy=1---")
        .await
        .expect(&TRACKING, &ALL, "default", &[]);
    // Unreadable: grants nothing, even under the opt-out default.
    site.visit("usprivacy=2YYN").await.expect(
        &[],
        &["necessary"],
        "usprivacy-invalid",
        &["usprivacy-invalid"],
    );
    // The same string as GPP's uspv1 section.
    assert_eq!(vector("uspv1/YYN")["sectionString"], "1YYN");
    site.visit(&format!("__gpp={}", gpp("uspv1/YYN")))
        .await
        .expect(&["pll_language", "_ga"], &NO_MARKETING, "gpp", &["gpp"]);
    assert_eq!(vector("uspv1/defaults")["sectionString"], "1---");
    site.visit(&format!("__gpp={}", gpp("uspv1/defaults")))
        .await
        .expect(&TRACKING, &ALL, "default", &[]);
}

#[tokio::test]
async fn a_stale_tcf_string_grants_nothing() {
    let stale = stale_tcf();
    let (recent, _) = recent_tcf();
    for policy in ["extends: builtin\n", OPT_OUT] {
        let mut site = Site::start(policy).await;
        site.visit(&format!("euconsent-v2={stale}")).await.expect(
            &[],
            &["necessary"],
            "tcf-expired",
            &["tcf-expired"],
        );
        // The same string as GPP's TCF section.
        site.visit(&format!("__gpp={}", gpp("tcfeuv2/old-consent")))
            .await
            .expect(&[], &["necessary"], "gpp-expired", &["gpp-expired"]);
        // A recent one grants its purposes.
        site.visit(&format!("euconsent-v2={recent}")).await.expect(
            &["pll_language", "_ga"],
            &NO_MARKETING,
            "tcf",
            &["tcf"],
        );
    }
    // With a longer maximum age the stale string grants what it says: purpose 1, preferences.
    let mut site = Site::start("extends: builtin\nconsent:\n  tcf: { max_age: 36500days }\n").await;
    site.visit(&format!("euconsent-v2={stale}")).await.expect(
        &["pll_language"],
        &["necessary", "preferences"],
        "tcf",
        &["tcf"],
    );
    site.visit(&format!("__gpp={}", gpp("tcfeuv2/old-consent")))
        .await
        .expect(
            &["pll_language"],
            &["necessary", "preferences"],
            "gpp",
            &["gpp"],
        );
}

/// A policy reading the proxy's cookie, TCF (without a maximum age that could run out under
/// the test), GPP and CookieYes, in that order, combined as `combine` says.
fn combining(combine: &str, sources: &str) -> String {
    format!(
        "extends: builtin\nconsent:\n  sources: [{sources}]\n  combine: {combine}\n  \
         tcf: {{ max_age: 36500days }}\n"
    )
}

const ORDER: &str = "native, tcf, gpp, cookieyes";

#[tokio::test]
async fn combine_first_takes_the_first_present_source() {
    let (tcf, _) = recent_tcf();
    let both = format!("cookie_consent=all; euconsent-v2={tcf}");
    let mut site = Site::start(&combining("first", ORDER)).await;
    site.visit(&both)
        .await
        .expect(&TRACKING, &ALL, "native", &["native", "tcf"]);
    // An opt-out restricts the first source's grant.
    site.an_opt_out_restricts_the_native_grant().await;
    // TCF listed first: TCF decides, and the log lists the sources in the policy's order.
    let mut site = Site::start(&combining("first", "tcf, native, gpp, cookieyes")).await;
    site.visit(&both).await.expect(
        &["pll_language", "_ga"],
        &NO_MARKETING,
        "tcf",
        &["tcf", "native"],
    );
}

#[tokio::test]
async fn combine_strictest_takes_the_intersection() {
    let (tcf, _) = recent_tcf();
    let mut site = Site::start(&combining("strictest", ORDER)).await;
    site.visit(&format!("cookie_consent=all; euconsent-v2={tcf}"))
        .await
        .expect(
            &["pll_language", "_ga"],
            &NO_MARKETING,
            "tcf",
            &["native", "tcf"],
        );
    // Three sources: only analytics is granted by all of them.
    site.visit(&format!(
        "{COOKIEYES_ANALYTICS}; cookie_consent=all; euconsent-v2={tcf}"
    ))
    .await
    .expect(
        &["_ga"],
        &["necessary", "analytics"],
        "cookieyes",
        &["native", "tcf", "cookieyes"],
    );
    // An unreadable source counts as necessary only.
    site.visit("cookie_consent=all; euconsent-v2=not-a-tc-string")
        .await
        .expect(
            &[],
            &["necessary"],
            "tcf-invalid",
            &["native", "tcf-invalid"],
        );
    // An opt-out restricts too.
    site.an_opt_out_restricts_the_native_grant().await;
}

#[tokio::test]
async fn combine_newest_takes_the_latest_choice() {
    let (tcf, tcf_updated) = recent_tcf();
    let mut site = Site::start(&combining("newest", ORDER)).await;
    // The proxy's cookie chosen now: newer than the TC string.
    let newer = format!("cookie_consent=all@{}; euconsent-v2={tcf}", now());
    site.visit(&newer)
        .await
        .expect(&TRACKING, &ALL, "native", &["native", "tcf"]);
    // Chosen a day before the TC string was last updated: the TC string decides.
    let older_at = tcf_updated - 24 * 3600;
    let native = if now() - older_at > THIRTEEN_MONTHS {
        "native-expired"
    } else {
        "native"
    };
    site.visit(&format!(
        "cookie_consent=all@{older_at}; euconsent-v2={tcf}"
    ))
    .await
    .expect(
        &["pll_language", "_ga"],
        &NO_MARKETING,
        "tcf",
        &[native, "tcf"],
    );
    // Undated: older than any dated choice.
    site.visit(&format!("cookie_consent=all; euconsent-v2={tcf}"))
        .await
        .expect(
            &["pll_language", "_ga"],
            &NO_MARKETING,
            "tcf",
            &["native", "tcf"],
        );
    // Both undated: the policy's order decides.
    site.visit(&format!("{COOKIEYES_ANALYTICS}; cookie_consent=all"))
        .await
        .expect(&TRACKING, &ALL, "native", &["native", "cookieyes"]);
    // An opt-out restricts the newest source's grant.
    let usva = gpp("usva/opt-outs-12");
    site.visit(&format!("{newer}; __gpp={usva}")).await.expect(
        &["pll_language", "_ga"],
        &NO_MARKETING,
        "native",
        &["native", "tcf", "gpp"],
    );
}

#[tokio::test]
async fn gpp_not_listed_as_a_source_decides_nothing() {
    let opt_out = format!("__gpp={}", gpp("usva/opt-outs-12"));
    let gpc = format!("__gpp={}", gpp("usnat/max"));
    let mut site = Site::start(&format!(
        "{OPT_OUT}consent:\n  sources: [native, tcf, usprivacy]\n"
    ))
    .await;
    site.visit(&opt_out)
        .await
        .expect(&TRACKING, &ALL, "default", &[]);
    let o = site.visit(&gpc).await;
    o.expect(&TRACKING, &ALL, "default", &[]);
    assert!(o.signals().is_empty(), "{}", o.rec);
    // The same requests with GPP listed: marketing denied.
    let mut site = Site::start(&format!(
        "{OPT_OUT}consent:\n  sources: [native, tcf, gpp, usprivacy]\n"
    ))
    .await;
    for cookie in [&opt_out, &gpc] {
        site.visit(cookie)
            .await
            .expect(&["pll_language", "_ga"], &NO_MARKETING, "gpp", &["gpp"]);
    }
}
