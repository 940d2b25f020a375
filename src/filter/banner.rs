//! The consent banner and the preference centre, as pure functions: the HTML they show, the
//! form a choice arrives in, and what that choice grants. They run no script: each is a form
//! that posts the choice to the preference centre's path, and works with JavaScript off.

use crate::category::{Category, CategorySet};
use crate::consent::BrowserSignals;
use crate::policy::banner::{Banner, CHOSEN, STYLESHEET_PATH, Texts};
use hmac::{Hmac, KeyInit, Mac};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use sha2::Sha256;
use std::fmt::Write;

/// The largest form body the preference centre reads.
pub const MAX_FORM: usize = 8 * 1024;
/// The longest path a form may ask to return to.
const MAX_RETURN: usize = 2048;

/// What a visitor is shown, and where its form returns to.
pub struct View<'a> {
    pub banner: &'a Banner,
    pub texts: &'a Texts,
    /// The CSRF token of the form.
    pub token: &'a str,
    /// The same-origin path the choice returns to.
    pub return_to: &'a str,
    pub signals: BrowserSignals,
    /// The categories the signals deny: shown off, with a note.
    pub signal_denied: CategorySet,
}

/// The banner, written right after `<body>` for a visitor who has not chosen.
pub fn banner_html(v: &View) -> String {
    let t = v.texts;
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\
         <section class=\"cp-banner\" id=\"consent-proxy-banner\" lang=\"{lang}\" \
         aria-labelledby=\"cp-banner-title\">\
         <form class=\"cp-form\" method=\"post\" action=\"{action}\">\
         <p class=\"cp-title\" id=\"cp-banner-title\">{title}</p>\
         <p class=\"cp-intro\">{intro}{privacy}</p>",
        lang = attr(&t.lang),
        action = attr(&v.banner.path),
        title = text(&t.title),
        intro = text(&t.intro),
        privacy = privacy_link(v.banner, t),
    );
    signal_note(&mut s, v);
    hidden_fields(&mut s, v);
    let _ = write!(
        s,
        "<div class=\"cp-actions\">\
         <button type=\"submit\" class=\"cp-button\" name=\"choice\" value=\"accept\">{accept}</button>\
         <button type=\"submit\" class=\"cp-button\" name=\"choice\" value=\"reject\">{reject}</button>\
         <a class=\"cp-button\" href=\"{settings}\">{settings_text}</a>\
         </div></form></section>",
        accept = text(&t.accept),
        reject = text(&t.reject),
        settings = attr(&with_return(&v.banner.path, v.return_to)),
        settings_text = text(&t.settings),
    );
    s
}

/// The small link to the preference centre, for a visitor who has chosen.
pub fn settings_link_html(banner: &Banner, texts: &Texts, return_to: &str) -> String {
    format!(
        "<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\
         <a class=\"cp-settings-link\" lang=\"{lang}\" href=\"{href}\">{label}</a>",
        lang = attr(&texts.lang),
        href = attr(&with_return(&banner.path, return_to)),
        label = text(&texts.settings_link),
    )
}

/// What the preference centre shows besides the view.
pub struct Centre<'a> {
    /// The categories granted now.
    pub granted: CategorySet,
    /// Whether the visitor has chosen (else no box is ticked).
    pub decided: bool,
    /// The visitor's consent ID, if the proxy recorded a choice.
    pub consent_id: Option<&'a str>,
    /// The page follows a saved choice.
    pub saved: bool,
    /// The site's page to go back to.
    pub back: &'a str,
}

/// The preference centre: a whole page, each category with its state.
pub fn preferences_page(v: &View, c: &Centre) -> String {
    let t = v.texts;
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\"></head>\
         <body class=\"cp-page-body\"><main class=\"cp-page\"><h1>{title}</h1>",
        lang = attr(&t.lang),
        title = text(&t.preferences_title),
    );
    if c.saved {
        let _ = write!(
            s,
            "<p class=\"cp-saved\" role=\"status\">{}</p>",
            text(&t.saved)
        );
    }
    let _ = write!(
        s,
        "<p class=\"cp-intro\">{}{}</p>",
        text(&t.intro),
        privacy_link(v.banner, t)
    );
    signal_note(&mut s, v);
    let _ = write!(
        s,
        "<form class=\"cp-form\" method=\"post\" action=\"{}\">",
        attr(&v.banner.path)
    );
    hidden_fields(&mut s, v);
    let _ = write!(
        s,
        "<fieldset class=\"cp-categories\"><legend>{}</legend>",
        text(&t.preferences_title)
    );
    let (name, description) = &t.categories[&Category::Necessary];
    let _ = write!(
        s,
        "<div class=\"cp-category\"><input type=\"checkbox\" id=\"cp-necessary\" checked disabled \
         aria-describedby=\"cp-necessary-desc\"><label for=\"cp-necessary\">{name} ({always})</label>\
         <p class=\"cp-description\" id=\"cp-necessary-desc\">{description}</p></div>",
        name = text(name),
        always = text(&t.always_on),
        description = text(description),
    );
    for category in CHOSEN {
        let (name, description) = &t.categories[&category];
        // A category the browser's signal denies is shown off, and cannot be ticked.
        let held = v.signal_denied.contains(category);
        let on = c.decided && c.granted.contains(category) && !held;
        let _ = write!(
            s,
            "<div class=\"cp-category\"><input type=\"checkbox\" name=\"category\" value=\"{c}\" \
             id=\"cp-{c}\"{checked}{disabled} aria-describedby=\"cp-{c}-desc\"><label for=\"cp-{c}\">{name}</label>\
             <p class=\"cp-description\" id=\"cp-{c}-desc\">{description}</p></div>",
            c = category.as_str(),
            checked = if on { " checked" } else { "" },
            disabled = if held { " disabled" } else { "" },
            name = text(name),
            description = text(description),
        );
    }
    let _ = write!(
        s,
        "</fieldset><div class=\"cp-actions\">\
         <button type=\"submit\" class=\"cp-button\" name=\"choice\" value=\"save\">{save}</button>\
         <button type=\"submit\" class=\"cp-button\" name=\"choice\" value=\"accept\">{accept}</button>\
         <button type=\"submit\" class=\"cp-button\" name=\"choice\" value=\"reject\">{reject}</button>\
         </div></form>",
        save = text(&t.save),
        accept = text(&t.accept),
        reject = text(&t.reject),
    );
    if let Some(id) = c.consent_id {
        let _ = write!(
            s,
            "<p class=\"cp-id\">{}: <code>{}</code></p>",
            text(&t.consent_id),
            text(id)
        );
    }
    let _ = write!(
        s,
        "<p><a href=\"{}\">{}</a></p></main></body></html>",
        attr(c.back),
        text(&t.back)
    );
    s
}

fn privacy_link(banner: &Banner, t: &Texts) -> String {
    banner
        .privacy_policy
        .as_deref()
        .map(|href| {
            format!(
                " <a href=\"{}\">{}</a>",
                attr(href),
                text(&t.privacy_policy)
            )
        })
        .unwrap_or_default()
}

fn signal_note(s: &mut String, v: &View) {
    if (v.signals.gpc || v.signals.dnt) && !v.signal_denied.is_empty() {
        let names: Vec<&str> = v
            .signal_denied
            .iter()
            .filter_map(|c| v.texts.categories.get(&c).map(|(name, _)| name.as_str()))
            .collect();
        let note = v
            .texts
            .signals_honoured
            .replace("{categories}", &names.join(", "));
        let _ = write!(s, "<p class=\"cp-signals\">{}</p>", text(&note));
    }
}

fn hidden_fields(s: &mut String, v: &View) {
    let _ = write!(
        s,
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"return\" value=\"{}\">",
        attr(v.token),
        attr(v.return_to)
    );
}

fn with_return(path: &str, return_to: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{path}?return={encoded}")
}

/// The banner's stylesheet: one look for every button (rejecting is as easy to see as
/// accepting), text colours with a contrast ratio of at least 7:1, and a focus ring of 7.6:1
/// against white (WCAG 1.4.11 asks 3:1).
pub const STYLESHEET: &str = r#".cp-banner{position:fixed;left:0;right:0;bottom:0;z-index:2147483647;box-sizing:border-box;max-height:80vh;overflow:auto;margin:0;padding:1rem 1.25rem;background:#ffffff;color:#1a1a1a;border-top:3px solid #1a1a1a;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;box-shadow:0 -2px 12px rgba(0,0,0,.25)}
.cp-banner *,.cp-page *{box-sizing:border-box}
.cp-title{margin:0 0 .5rem;font-size:1.2rem;font-weight:700}
.cp-intro,.cp-signals,.cp-description{margin:0 0 .75rem}
.cp-signals{padding:.5rem .75rem;border-left:4px solid #0b5394;background:#eef4fb}
.cp-banner a,.cp-page a{color:#0b5394;text-decoration:underline}
.cp-actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:.75rem}
.cp-button,a.cp-button{display:inline-block;min-width:10rem;padding:.6rem 1rem;border:2px solid #1a1a1a;border-radius:4px;background:#1a1a1a;color:#ffffff;font:inherit;font-weight:600;text-align:center;text-decoration:none;cursor:pointer}
.cp-button:hover{background:#333333}
.cp-button:focus-visible,.cp-banner a:focus-visible,.cp-page a:focus-visible,.cp-category input:focus-visible,.cp-settings-link:focus-visible{outline:3px solid #0b5394;outline-offset:2px;box-shadow:0 0 0 5px #ffffff}
.cp-settings-link{position:fixed;left:.5rem;bottom:.5rem;z-index:2147483646;padding:.25rem .5rem;background:#ffffff;color:#0b5394;border:1px solid #1a1a1a;border-radius:4px;font:14px/1.4 system-ui,sans-serif;text-decoration:underline}
.cp-page-body{margin:0;background:#ffffff;color:#1a1a1a;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.cp-page{max-width:44rem;margin:0 auto;padding:1.5rem 1.25rem}
.cp-categories{border:0;margin:0;padding:0}
.cp-categories legend{font-weight:700;margin-bottom:.5rem}
.cp-category{padding:.75rem 0;border-top:1px solid #767676}
.cp-category input{width:1.25rem;height:1.25rem;margin-right:.5rem;vertical-align:middle}
.cp-category label{font-weight:600}
.cp-saved{padding:.5rem .75rem;border-left:4px solid #00703c;background:#e6f4ec}
"#;

/// The nonce the page's Content-Security-Policy gives stylesheets, if it gives one: the banner's
/// `<link>` carries it, so that a page that allows styles by nonce only still styles the
/// banner. Each policy's governing directive is the first of `style-src-elem`, `style-src`,
/// `default-src` it has; only base64 characters are accepted.
pub fn style_nonce(headers: &http::HeaderMap) -> Option<String> {
    super::csp::policies(headers)?
        .into_iter()
        .find_map(|policy| {
            super::csp::governing(policy, &["style-src-elem", "style-src", "default-src"])?
                .split_ascii_whitespace()
                .find_map(|t| super::csp::nonce(t).flatten())
                .map(str::to_string)
        })
}

/// A CSRF token for a browser's CSRF cookie: an HMAC of its value under the proxy's key, so
/// that only a page the proxy served to that browser can post a choice for it.
pub fn csrf_token(key: &[u8], cookie: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(b"consent-proxy csrf\0");
    mac.update(cookie.as_bytes());
    hex(&mac.finalize().into_bytes()[..16])
}

/// Whether `token` is the token of `cookie`, compared in constant time.
pub fn csrf_valid(key: &[u8], cookie: &str, token: &str) -> bool {
    let expected = csrf_token(key, cookie);
    expected.len() == token.len()
        && expected
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A fresh CSRF cookie value: 128 random bits.
pub fn new_csrf_cookie() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(hex(&b))
}

/// Whether a CSRF cookie value is one the proxy could have made.
pub fn is_csrf_cookie(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// What the visitor pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Accept,
    Reject,
    /// Saved the boxes ticked in the settings.
    Save,
}

/// A posted form, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub choice: Choice,
    /// The categories ticked (for `Save`).
    pub ticked: CategorySet,
    pub csrf: String,
    /// The page to return to: always a same-origin path.
    pub return_to: String,
}

/// Reads a posted form (`application/x-www-form-urlencoded`). Unknown fields are ignored; an
/// unknown choice or category is refused.
pub fn parse_form(body: &[u8]) -> Result<Form, &'static str> {
    if body.len() > MAX_FORM {
        return Err("the form is too large");
    }
    let (mut choice, mut ticked, mut csrf, mut return_to) = (None, CategorySet::EMPTY, None, None);
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "choice" => {
                choice = Some(match &*v {
                    "accept" => Choice::Accept,
                    "reject" => Choice::Reject,
                    "save" => Choice::Save,
                    _ => return Err("unknown choice"),
                })
            }
            "category" => match Category::parse(&v) {
                Some(c) => ticked.insert(c),
                None => return Err("unknown category"),
            },
            "csrf" => csrf = Some(v.into_owned()),
            "return" => return_to = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(Form {
        choice: choice.ok_or("no choice in the form")?,
        ticked,
        csrf: csrf.ok_or("no CSRF token in the form")?,
        return_to: safe_return(return_to.as_deref()),
    })
}

/// A path on this site to send the visitor back to: only a path starting with one `/` (not
/// `//` or `/\`, which browsers read as another host), printable ASCII, of reasonable length;
/// anything else becomes `/`.
pub fn safe_return(given: Option<&str>) -> String {
    match given {
        Some(p)
            if p.starts_with('/')
                && p.len() <= MAX_RETURN
                && p.bytes().all(|b| b.is_ascii_graphic())
                && plain_path(p) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Whether a path, with its percent-escapes of `/`, `\` and `.` read, has no empty segment, no
/// backslash and no `.` or `..` segment: such a path stays a path of this site however the
/// site resolves it (a site that answers `/.//evil.example` with a redirect to `//evil.example`
/// would send the visitor away).
fn plain_path(p: &str) -> bool {
    let path = p.split(['?', '#']).next().unwrap_or(p);
    let decoded = path
        .replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%5C", "\\")
        .replace("%5c", "\\")
        .replace("%2E", ".")
        .replace("%2e", ".");
    // Segments after the first `/`; the last may be empty (`/`, `/shop/`).
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    !decoded.contains('\\')
        && segments.iter().enumerate().all(|(i, seg)| {
            *seg != "." && *seg != ".." && (!seg.is_empty() || i + 1 == segments.len())
        })
}

/// What a choice grants: necessary always; the signals' denials stay denied.
pub fn granted_by(form: &Form, signal_denied: CategorySet) -> CategorySet {
    let chosen = match form.choice {
        Choice::Accept => CategorySet::ALL,
        Choice::Reject => CategorySet::NECESSARY,
        Choice::Save => form.ticked,
    };
    chosen
        .difference(signal_denied)
        .union(CategorySet::NECESSARY)
}

/// How a choice was made, for its record: a withdrawal takes back some category the visitor
/// had granted by an earlier choice.
pub fn kind_of(choice: Choice, before: Option<CategorySet>, after: CategorySet) -> &'static str {
    if before.is_some_and(|b| !b.difference(after).is_empty()) {
        return "withdrawal";
    }
    match choice {
        Choice::Accept => "accept",
        Choice::Reject => "reject",
        Choice::Save => "settings",
    }
}

/// Whether a cross-site page could have sent this post: `Sec-Fetch-Site` must be
/// `same-origin` when present, and `Origin` (when present) must name the host the request was
/// sent to (`host`, its `Host`). The scheme is not compared: a proxy behind a TLS-terminating
/// balancer sees plain HTTP for an `https` origin.
pub fn cross_site(headers: &http::HeaderMap, host: Option<&str>) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes() != b"same-origin");
    let foreign_origin = headers.get(http::header::ORIGIN).map(|v| {
        let authority = v
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, a)| a);
        match (authority, host) {
            (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h),
            _ => true,
        }
    });
    fetch_site.unwrap_or(false) || foreign_origin.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::banner::BannerFile;
    use Category::*;

    fn banner() -> Banner {
        let file: BannerFile =
            serde_yaml::from_str("enabled: true\nprivacy_policy: /privacy").unwrap();
        Banner::compile(&file, "cookie_consent").unwrap().unwrap()
    }

    fn view<'a>(b: &'a Banner, signals: BrowserSignals, denied: CategorySet) -> View<'a> {
        View {
            banner: b,
            texts: b.texts(None),
            token: "tok",
            return_to: "/shop?item=\"1\"",
            signals,
            signal_denied: denied,
        }
    }

    #[test]
    fn the_banner_offers_accept_reject_and_settings_alike_and_runs_no_script() {
        let b = banner();
        let html = banner_html(&view(&b, BrowserSignals::default(), CategorySet::EMPTY));
        assert!(html.contains("value=\"accept\">Accept all</button>"));
        assert!(html.contains("value=\"reject\">Reject all</button>"));
        assert!(html.contains(
            "<a class=\"cp-button\" href=\"/.well-known/consent-proxy/preferences?return=%2Fshop%3Fitem%3D%221%22\">Settings</a>"
        ));
        // The three share one class: one look.
        assert_eq!(html.matches("class=\"cp-button\"").count(), 3);
        assert!(!html.contains("<script"));
        assert!(html.contains("value=\"/shop?item=&quot;1&quot;\""));
        assert!(html.contains("<a href=\"/privacy\">Privacy policy</a>"));
        assert!(!html.contains("cp-signals"));
    }

    #[test]
    fn signals_are_said_to_be_honoured_and_their_categories_shown_off() {
        let b = banner();
        let gpc = BrowserSignals {
            gpc: true,
            dnt: false,
        };
        let denied = CategorySet::EMPTY.with(Analytics).with(Marketing);
        let v = view(&b, gpc, denied);
        assert!(banner_html(&v).contains("cp-signals"));
        let page = preferences_page(
            &v,
            &Centre {
                granted: CategorySet::ALL,
                decided: true,
                consent_id: Some("abc"),
                saved: false,
                back: "/",
            },
        );
        assert!(page.contains("value=\"preferences\" id=\"cp-preferences\" checked"));
        assert!(page.contains("value=\"analytics\" id=\"cp-analytics\" disabled aria"));
        assert!(page.contains("value=\"marketing\" id=\"cp-marketing\" disabled aria"));
        assert!(banner_html(&v).contains("We honour it: Analytics, Marketing stay off."));
        assert!(page.contains("<code>abc</code>"));
    }

    #[test]
    fn no_box_is_ticked_before_a_choice() {
        let b = banner();
        let page = preferences_page(
            &view(&b, BrowserSignals::default(), CategorySet::EMPTY),
            &Centre {
                granted: CategorySet::ALL,
                decided: false,
                consent_id: None,
                saved: false,
                back: "/",
            },
        );
        assert_eq!(page.matches(" checked").count(), 1, "necessary only");
        assert!(page.contains("id=\"cp-necessary\" checked disabled"));
    }

    #[test]
    fn forms_are_read_strictly() {
        let f = parse_form(b"csrf=t&return=%2Fa%3Fb&choice=save&category=analytics&x=1").unwrap();
        assert_eq!(f.choice, Choice::Save);
        assert_eq!(f.ticked, CategorySet::EMPTY.with(Analytics));
        assert_eq!(f.return_to, "/a?b");
        assert_eq!(
            granted_by(&f, CategorySet::EMPTY),
            CategorySet::NECESSARY.with(Analytics)
        );
        assert!(parse_form(b"csrf=t&choice=maybe").is_err());
        assert!(parse_form(b"csrf=t&choice=save&category=everything").is_err());
        assert!(parse_form(b"choice=accept").is_err());
        assert!(parse_form(b"csrf=t").is_err());
        assert!(parse_form(&vec![b'a'; MAX_FORM + 1]).is_err());
        let accept = parse_form(b"csrf=t&choice=accept").unwrap();
        assert_eq!(accept.return_to, "/");
        let gpc = CategorySet::EMPTY.with(Marketing);
        assert_eq!(granted_by(&accept, gpc), CategorySet::ALL.difference(gpc));
    }

    #[test]
    fn only_same_origin_paths_are_returned_to() {
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
            "/a b",
            "/\u{e9}",
            "/.//evil.example",
            "/%2F%2Fevil.example",
            "/a/../..//evil.example",
            "/%5Cevil.example",
            "/a//b",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(
            safe_return(Some("/shop/cart?x=1#top")),
            "/shop/cart?x=1#top"
        );
        assert_eq!(safe_return(Some("/shop/?q=a//b")), "/shop/?q=a//b");
        assert_eq!(safe_return(Some("/")), "/");
        assert_eq!(safe_return(None), "/");
    }

    #[test]
    fn kinds_and_cookie_values() {
        let a = CategorySet::ALL;
        let none = CategorySet::NECESSARY;
        assert_eq!(kind_of(Choice::Accept, None, a), "accept");
        assert_eq!(kind_of(Choice::Reject, None, none), "reject");
        assert_eq!(kind_of(Choice::Reject, Some(none), none), "reject");
        assert_eq!(kind_of(Choice::Save, Some(none), a), "settings");
        assert_eq!(kind_of(Choice::Reject, Some(a), none), "withdrawal");
        assert_eq!(
            kind_of(Choice::Save, Some(a), none.with(Analytics)),
            "withdrawal"
        );
    }

    #[test]
    fn csrf_tokens_bind_the_cookie_and_the_key() {
        let c = new_csrf_cookie().unwrap();
        assert!(is_csrf_cookie(&c));
        let t = csrf_token(b"key-1", &c);
        assert!(csrf_valid(b"key-1", &c, &t));
        assert!(!csrf_valid(b"key-2", &c, &t));
        assert!(!csrf_valid(b"key-1", &new_csrf_cookie().unwrap(), &t));
        assert!(!csrf_valid(b"key-1", &c, &t[..31]));
    }

    #[test]
    fn the_stylesheet_nonce_comes_from_the_governing_style_directive() {
        let csp = |v: &'static str| {
            let mut m = http::HeaderMap::new();
            m.insert("content-security-policy", http::HeaderValue::from_static(v));
            m
        };
        assert_eq!(
            style_nonce(&csp("default-src 'self'; style-src 'nonce-abc+/=' 'self'")),
            Some("abc+/=".into())
        );
        assert_eq!(
            style_nonce(&csp("default-src 'nonce-d1'; script-src 'nonce-s1'")),
            Some("d1".into())
        );
        assert_eq!(style_nonce(&csp("script-src 'nonce-s1'")), None);
        assert_eq!(style_nonce(&csp("style-src 'nonce-a\"b'")), None);
        assert_eq!(style_nonce(&http::HeaderMap::new()), None);
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, http::HeaderValue::from_static(v));
            }
            m
        };
        let me = Some("shop.example");
        assert!(!cross_site(&h(&[]), me));
        assert!(!cross_site(
            &h(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://shop.example")
            ]),
            me
        ));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")]), me));
        assert!(cross_site(&h(&[("sec-fetch-site", "same-site")]), me));
        assert!(cross_site(&h(&[("origin", "https://evil.example")]), me));
        assert!(cross_site(&h(&[("origin", "null")]), me));
        assert!(!cross_site(&h(&[("origin", "http://SHOP.example")]), me));
        assert!(cross_site(
            &h(&[("origin", "https://shop.example:8443")]),
            me
        ));
        assert!(cross_site(&h(&[("origin", "https://shop.example")]), None));
    }
}
