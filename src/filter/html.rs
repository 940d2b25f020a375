//! The HTML tag rewriter: a streaming lol_html pass that neutralizes or removes analytics and
//! advertising tags of denied categories.
//!
//! What it matches:
//! - `<script src>`, `<img src>` and `<iframe src>` whose URL matches a URL rule (host and path);
//! - `<link rel=preconnect|dns-prefetch|preload|prefetch>` whose host is a tracker's;
//! - the same `<img>`/`<iframe>` pixels inside `<noscript>`, whose content the parser sees as
//!   text: it is held to its end tag and rewritten as a fragment;
//! - inline `<script>` whose text holds a tracker's signature (`gtag(`, `fbq(`, …). Script text
//!   arrives in chunks, so an inline script is held until its end tag and judged whole; one
//!   longer than [`MAX_INLINE_SCRIPT`] is judged unreadable and neutralized (fail closed).
//!
//! Two actions: `neutralize` (the convention of client-side consent managers: `type="text/plain"`,
//! `data-category`, `src` moved to `data-src`, so a banner can activate the tag after consent) and
//! `remove`.

use super::tags::TextKind;
pub use super::tags::{HostPattern, InlineRule, PathPattern, TagAction, TagRules, UrlRule};
use super::withheld;
use crate::category::{Category, CategorySet};
use lol_html::html_content::{ContentType, Element};
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{element, text};
use std::sync::{Arc, Mutex};

/// The longest inline script judged by its text; a longer one is neutralized unread.
pub const MAX_INLINE_SCRIPT: usize = 512 * 1024;

/// What the rewriter did, for the decision log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TagReport {
    pub neutralized: usize,
    pub vendors: Vec<String>,
}

impl TagReport {
    fn record(&mut self, vendor: &str) {
        self.neutralized += 1;
        if !self.vendors.iter().any(|v| v == vendor) {
            self.vendors.push(vendor.to_string());
        }
    }

    fn merge(&mut self, other: TagReport) {
        self.neutralized += other.neutralized;
        for v in other.vendors {
            if !self.vendors.contains(&v) {
                self.vendors.push(v);
            }
        }
    }
}

/// What an `<iframe srcdoc>` document may hold while it is rewritten.
const MAX_SRCDOC_MEMORY: usize = 16 << 20;

/// How deep `<iframe srcdoc>` documents are rewritten inside each other; a deeper one is
/// dropped. Each level is a rewriter on the stack (and the escaping grows with each), so a
/// bound keeps a crafted page from exhausting the stack.
const MAX_SRCDOC_DEPTH: usize = 4;

/// Neutralizes an element in place: `type="text/plain"` (scripts), `data-category`, and the
/// URL attribute moved to `data-<attr>`.
fn neutralize<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    url_attrs: &[&str],
    category: Category,
) {
    if misread_when_changed(el) {
        let script = el.tag_name() == "script";
        let mut attrs = Vec::new();
        for (name, value) in attributes_of(el) {
            if url_attrs.contains(&name.as_str()) {
                attrs.push((format!("data-{}", name.replace(':', "-")), value));
            } else if script && name == "type" {
                attrs.push(("data-type".to_string(), value));
            } else if name != "data-category" {
                attrs.push((name, value));
            }
        }
        if script {
            attrs.push(("type".to_string(), "text/plain".to_string()));
        }
        attrs.push(("data-category".to_string(), category.as_str().to_string()));
        rewrite_tags(el, &attrs);
        return;
    }
    if el.tag_name() == "script" {
        // The original type (e.g. `module`) is kept for the banner that activates the tag.
        if let Some(t) = el.get_attribute("type") {
            let _ = el.set_attribute("data-type", &t);
        }
        let _ = el.set_attribute("type", "text/plain");
    }
    let _ = el.set_attribute("data-category", category.as_str());
    for attr in url_attrs {
        if let Some(v) = el.get_attribute(attr) {
            el.remove_attribute(attr);
            let _ = el.set_attribute(&format!("data-{}", attr.replace(':', "-")), &v);
        }
    }
}

/// The attributes through which an element loads something, by namespace and tag name. In SVG
/// only `<script>` and `<image>` load (by `href` or `xlink:href`); an `<iframe>` or `<video>`
/// there is an unknown SVG element and loads nothing, and nothing loads in MathML. (An HTML
/// `<img>` or `<embed>` inside `<svg>` closes it and is in the HTML namespace.)
fn url_attributes(tag: &str, namespace: &str) -> &'static [&'static str] {
    if namespace == SVG_NAMESPACE {
        return match tag {
            "script" => &["src", "href", "xlink:href"],
            "image" => &["href", "xlink:href"],
            _ => &[],
        };
    }
    if namespace != HTML_NAMESPACE {
        return &[];
    }
    match tag {
        "script" => &["src"],
        // An HTML parser reads `<image>` as `<img>`.
        "img" | "image" | "source" => &["src", "srcset"],
        // An `<input>` loads its `src` only as `type=image`; judged whatever its type.
        "iframe" | "embed" | "audio" | "track" | "input" => &["src"],
        "video" => &["src", "poster"],
        "object" => &["data"],
        _ => &[],
    }
}

/// What a removed element leaves in its place: an empty comment, so that the text before and
/// after it cannot join into a tag (`<` + `<script>…</script>` + `script>…` would read
/// `<script>…`).
const REMOVED: &str = "<!---->";

/// Removes an element, leaving [`REMOVED`]. One that leaves foreign content (in SVG or MathML,
/// an HTML `<img>` or `<embed>` closes the `<svg>`) is replaced by an empty `<span>` instead,
/// which leaves it the same way: removed outright, what follows it would be read inside the
/// `<svg>`, where the text of a `<noscript>` is markup and a pixel in it loads.
fn remove<H: lol_html::HandlerTypes>(el: &mut Element<'_, '_, H>) {
    let leaves_foreign_content = el.namespace_uri() == HTML_NAMESPACE
        && matches!(el.tag_name().as_str(), "img" | "image" | "embed");
    let stand_in = if leaves_foreign_content {
        "<span></span>"
    } else {
        REMOVED
    };
    el.replace(stand_in, ContentType::Html);
}

/// The URLs of a `srcset`'s image candidates, as the HTML standard splits them: a URL is a run
/// without white space (trailing commas are not part of it), and its descriptors end at a comma
/// outside parentheses. `srcset` is the attribute's value with its character references
/// decoded.
fn srcset_urls(srcset: &str) -> impl Iterator<Item = &str> {
    const WS: [char; 5] = [' ', '\t', '\n', '\r', '\x0c'];
    let mut rest = srcset;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c| WS.contains(&c) || c == ',');
        if rest.is_empty() {
            return None;
        }
        let (url, after) = rest.split_at(rest.find(WS).unwrap_or(rest.len()));
        rest = after;
        let candidate = url.trim_end_matches(',');
        if candidate.len() == url.len() {
            let mut in_parens = false;
            let end = rest
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => in_parens = true,
                        ')' => in_parens = false,
                        ',' if !in_parens => return Some(i + 1),
                        _ => {}
                    }
                    None
                })
                .unwrap_or(rest.len());
            rest = &rest[end..];
        }
        Some(candidate)
    })
}

/// Whether a changed tag would read otherwise once written again. lol_html writes a changed tag
/// as its attributes joined by spaces; an attribute whose name starts with `=` (`<img a/=/'b …>`:
/// the slashes kept `a` and `=` apart) then becomes the value of the one before it, and a quote
/// after it runs on past the tag. lol_html cannot remove such an attribute.
fn misread_when_changed<H: lol_html::HandlerTypes>(el: &Element<'_, '_, H>) -> bool {
    el.attributes().iter().any(|a| a.name().starts_with('='))
}

/// Writes an element's tags anew, with `attrs` (those whose name starts with `=` dropped);
/// its content stays as it is.
fn rewrite_tags<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    attrs: &[(String, String)],
) {
    let tag = el.tag_name();
    let mut start = format!("<{tag}");
    for (name, value) in attrs.iter().filter(|(n, _)| !n.starts_with('=')) {
        start.push(' ');
        start.push_str(name);
        start.push_str("=\"");
        start.push_str(&escape_attr(value));
        start.push('"');
    }
    start.push_str(if el.is_self_closing() { " />" } else { ">" });
    el.before(&start, ContentType::Html);
    el.remove_and_keep_content();
    if let Some(handlers) = el.end_tag_handlers() {
        let end = format!("</{tag}>");
        handlers.push(H::new_end_tag_handler(
            move |e: &mut lol_html::html_content::EndTag<'_>| {
                e.before(&end, ContentType::Html);
                Ok(())
            },
        ));
    }
}

/// An element's attributes, names and raw values.
fn attributes_of<H: lol_html::HandlerTypes>(el: &Element<'_, '_, H>) -> Vec<(String, String)> {
    el.attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .collect()
}

/// Judges an element by every URL it loads (each candidate of a `srcset`), and acts on it:
/// neutralized, all its URL attributes are set aside.
fn url_element<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    tag: &str,
    rules: &TagRules,
    granted: CategorySet,
    exempt: bool,
    enforce: bool,
    report: &mut TagReport,
) {
    let attrs = url_attributes(tag, el.namespace_uri());
    let rule = attrs.iter().find_map(|attr| {
        let value = el.get_attribute(attr)?;
        if *attr == "srcset" {
            let value = html_escape::decode_html_entities(&value);
            srcset_urls(&value).find_map(|url| rules.match_url(url, granted, exempt))
        } else {
            rules.match_url(&value, granted, exempt)
        }
    });
    if let Some(rule) = rule {
        report.record(&rule.vendor);
        if enforce {
            // An SVG element is never removed: its content is markup whose end lol_html cannot
            // tell as a browser does, so removing it could make what follows read otherwise.
            match rule.action.unwrap_or(rules.default_action) {
                TagAction::Remove if el.namespace_uri() == HTML_NAMESPACE => remove(el),
                _ => {
                    // A withheld frame keeps its size; with a placeholder text, it says why.
                    let placeholder = rules.withheld_frames
                        && tag == "iframe"
                        && el.namespace_uri() == HTML_NAMESPACE
                        && !misread_when_changed(el);
                    neutralize(el, attrs, rule.category);
                    if placeholder {
                        let src = withheld::frame_src(&rule.vendor, rule.category.as_str());
                        // Written raw: `&` escaped here.
                        let _ = el.set_attribute("src", &src.replace('&', "&amp;"));
                    }
                }
            }
        }
    }
}

/// Rewrites the text of a `<noscript>` (which the parser sees as text, since scripting is on)
/// as a fragment of HTML, for its pixel fallbacks.
fn rewrite_noscript(
    text: &str,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
) -> String {
    let cell = std::cell::RefCell::new(std::mem::take(report));
    let result = lol_html::rewrite_str(
        text,
        lol_html::RewriteStrSettings::new().append_element_content_handler(element!(
            "img, iframe, script, embed, object, image, source, video, audio, track, input",
            |el| {
                // Nothing in a <noscript> runs: Consent Mode does not govern it.
                let tag = el.tag_name();
                url_element(
                    el,
                    &tag,
                    rules,
                    granted,
                    false,
                    enforce,
                    &mut cell.borrow_mut(),
                );
                Ok(())
            }
        )),
    );
    *report = cell.into_inner();
    // Fallback content that cannot be parsed is dropped rather than passed unjudged.
    result.unwrap_or_default()
}

/// Element text held until the end tag, up to [`MAX_INLINE_SCRIPT`] bytes.
#[derive(Default)]
struct Held {
    text: String,
    /// Longer than the limit: the text was dropped and the element cannot be judged.
    unreadable: bool,
}

impl Held {
    fn push(&mut self, chunk: &str) {
        if self.unreadable {
            return;
        }
        if self.text.len() + chunk.len() > MAX_INLINE_SCRIPT {
            self.unreadable = true;
            self.text = String::new();
        } else {
            self.text.push_str(chunk);
        }
    }
}

/// State shared by the handlers of one document.
#[derive(Default)]
struct Shared {
    report: TagReport,
    /// The inline script being held: its start tag's attributes and its text so far.
    script: Option<(Vec<(String, String)>, Held)>,
    /// The text of the `<noscript>` or `<style>` being held.
    raw: Option<(RawText, Held)>,
    /// Whether the `<head>` block has been written.
    injected: bool,
    /// How many `<template>` elements are open: their content is inert.
    templates: usize,
    /// How many `<iframe srcdoc>` documents this one is inside.
    srcdoc_depth: usize,
}

const HTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// How a `<script>` runs.
enum ScriptKind {
    /// Of a type that runs nothing (see [`is_inert_type`]): left as it is.
    Inert,
    /// HTML, without `src`: its text, which is raw text.
    Inline,
    /// SVG, without `href` or `xlink:href` (SVG ignores `src`): its text, but its content is
    /// markup, and the elements that close the `<svg>` (`<p>`, `<img>`, …) close it too.
    SvgInline,
    /// Loads a URL (HTML `src`, SVG `href`); or, in MathML, does not run at all.
    Other,
}

fn script_kind<H: lol_html::HandlerTypes>(el: &Element<'_, '_, H>) -> ScriptKind {
    if el.namespace_uri() == HTML_NAMESPACE
        && el.get_attribute("type").is_some_and(|t| is_inert_type(&t))
    {
        return ScriptKind::Inert;
    }
    match el.namespace_uri() {
        SVG_NAMESPACE if !el.has_attribute("href") && !el.has_attribute("xlink:href") => {
            ScriptKind::SvgInline
        }
        HTML_NAMESPACE if !el.has_attribute("src") => ScriptKind::Inline,
        _ => ScriptKind::Other,
    }
}

/// A `<script>` type that runs nothing and loads nothing: `text/plain` (what a consent manager,
/// or this rewriter, gives a held-back tag), and data for the page's own code (JSON, structured
/// data, an import map). The URLs such data names (a `sameAs` profile, a CMS field) are not
/// loads, and changing it would break the page that reads it, so it is left as it is.
pub fn is_inert_type(ty: &str) -> bool {
    matches!(
        ty.trim().to_ascii_lowercase().as_str(),
        "text/plain" | "application/json" | "application/ld+json" | "importmap"
    )
}

/// What the element handlers of one document share.
struct Ctx<'a> {
    rules: &'a Arc<TagRules>,
    shared: &'a Arc<Mutex<Shared>>,
    granted: CategorySet,
    enforce: bool,
    /// The Consent Mode block is to be written: Google tags after it are left to run.
    consent_mode: bool,
}

impl Ctx<'_> {
    /// Google tags are left to Consent Mode only once its block is in the page.
    fn exempt(&self, sh: &Shared) -> bool {
        self.consent_mode && sh.injected
    }

    /// `<link rel=stylesheet|icon>` that loads a tracker's URL, and
    /// `<link rel=preconnect|dns-prefetch|preload|prefetch|modulepreload>` to a tracker host.
    fn link<H: lol_html::HandlerTypes>(&self, el: &mut Element<'_, '_, H>) {
        // A `<link>` in SVG or MathML is an unknown element: it hints nothing.
        if el.namespace_uri() != HTML_NAMESPACE {
            return;
        }
        let rel = el
            .get_attribute("rel")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let tokens = || rel.split_ascii_whitespace();
        // A style sheet or an icon loads its URL; a hint names only a host.
        let loads = tokens().any(|t| matches!(t, "stylesheet" | "icon"));
        let hints = tokens().any(|t| {
            matches!(
                t,
                "preconnect" | "dns-prefetch" | "preload" | "prefetch" | "modulepreload"
            )
        });
        if !loads && !hints {
            return;
        }
        let Some(href) = el.get_attribute("href") else {
            return;
        };
        let mut sh = self.shared.lock().unwrap();
        let exempt = self.exempt(&sh);
        let rule = if loads {
            self.rules.match_url(&href, self.granted, exempt)
        } else {
            None
        };
        if let Some(rule) = rule.or_else(|| {
            hints
                .then(|| self.rules.match_host(&href, self.granted, exempt))
                .flatten()
        }) {
            sh.report.record(&rule.vendor);
            if self.enforce {
                match rule.action.unwrap_or(self.rules.default_action) {
                    TagAction::Remove => remove(el),
                    TagAction::Neutralize => neutralize(el, &["href"], rule.category),
                }
            }
        }
    }

    /// An `<iframe srcdoc>`: its document is rewritten like the page (with no Consent Mode: the
    /// block is not in it), and written back.
    fn srcdoc(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
        let Some(doc) = el.get_attribute("srcdoc") else {
            return;
        };
        let depth = self.shared.lock().unwrap().srcdoc_depth + 1;
        if depth > MAX_SRCDOC_DEPTH {
            if self.enforce {
                tracing::debug!("dropped an <iframe srcdoc> nested {depth} deep");
                el.remove_attribute("srcdoc");
            }
            return;
        }
        let doc = html_escape::decode_html_entities(&doc);
        let mut out = Vec::new();
        let report = TagReportHandle::default();
        report.0.lock().unwrap().srcdoc_depth = depth;
        let mut rw = rewriter_reporting_to(
            &report,
            self.rules.clone(),
            self.granted,
            self.enforce,
            MAX_SRCDOC_MEMORY,
            (lol_html::AsciiCompatibleEncoding::utf_8(), false),
            None,
            |c: &[u8]| out.extend_from_slice(c),
        );
        let done = rw.write(doc.as_bytes()).and_then(|()| rw.end());
        self.shared.lock().unwrap().report.merge(report.report());
        if !self.enforce {
            return;
        }
        let srcdoc = match (done, String::from_utf8(out)) {
            // Changed: a tag neutralized, or a srcdoc inside dropped. lol_html escapes the
            // double quotes of a value; `&` is escaped here.
            (Ok(()), Ok(out)) if out != doc => Some(out.replace('&', "&amp;")),
            (Ok(()), Ok(_)) => return,
            // A document that cannot be rewritten is not loaded.
            _ => None,
        };
        if misread_when_changed(el) {
            let mut attrs = attributes_of(el);
            attrs.retain(|(n, _)| n != "srcdoc");
            if let Some(doc) = srcdoc {
                // Written by `rewrite_tags`, which escapes double quotes as lol_html does.
                attrs.push(("srcdoc".to_string(), doc));
            }
            rewrite_tags(el, &attrs);
            return;
        }
        match srcdoc {
            Some(doc) => {
                let _ = el.set_attribute("srcdoc", &doc);
            }
            None => el.remove_attribute("srcdoc"),
        }
    }

    /// An SVG inline script: neutralized in place, unread. lol_html does not follow which
    /// text belongs to it as a browser does, and its content is markup, so it can be neither
    /// judged nor held and written back (text joined across a comment can become a tag).
    fn svg_script<H: lol_html::HandlerTypes>(&self, el: &mut Element<'_, '_, H>) {
        self.shared
            .lock()
            .unwrap()
            .report
            .record("unreadable inline script");
        if self.enforce {
            neutralize(el, &[], Category::Marketing);
        }
    }

    /// An inline script: its tags are dropped now and it is written whole at its end tag,
    /// judged by its text.
    fn inline_script(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
        let attrs = el
            .attributes()
            .iter()
            .map(|a| (a.name(), a.value()))
            .collect();
        self.shared.lock().unwrap().script = Some((attrs, Held::default()));
        el.remove_and_keep_content();
        let (rules, shared) = (self.rules.clone(), self.shared.clone());
        let (granted, enforce, consent_mode) = (self.granted, self.enforce, self.consent_mode);
        let Some(handlers) = el.end_tag_handlers() else {
            return;
        };
        let handler: lol_html::send::EndTagHandler<'static> =
            Box::new(move |end: &mut lol_html::html_content::EndTag<'_>| {
                let mut sh = shared.lock().unwrap();
                let Some((attrs, Held { text, unreadable })) = sh.script.take() else {
                    return Ok(());
                };
                let hit = if unreadable {
                    // Too long to judge: fail closed.
                    Some((
                        Category::Marketing,
                        Arc::<str>::from("unreadable inline script"),
                        None,
                    ))
                } else {
                    let exempt = consent_mode && sh.injected;
                    rules
                        .match_script(&text, granted, exempt)
                        .map(|h| (h.category, h.vendor.clone(), h.action))
                };
                let mut html = String::with_capacity(text.len() + 64);
                html.push_str("<script");
                let mut neutral = false;
                if let Some((category, vendor, action)) = &hit {
                    sh.report.record(vendor);
                    if enforce {
                        if action.unwrap_or(rules.default_action) == TagAction::Remove {
                            end.before(REMOVED, ContentType::Html);
                            return Ok(());
                        }
                        neutral = true;
                        html.push_str(" type=\"text/plain\" data-category=\"");
                        html.push_str(category.as_str());
                        html.push('"');
                    }
                }
                for (name, value) in &attrs {
                    let name = match name.as_str() {
                        "data-category" if neutral => continue,
                        "type" if neutral => "data-type",
                        n => n,
                    };
                    html.push(' ');
                    html.push_str(name);
                    html.push_str("=\"");
                    html.push_str(&escape_attr(value));
                    html.push('"');
                }
                html.push('>');
                html.push_str(&text);
                html.push_str("</script>");
                end.before(&html, ContentType::Html);
                Ok(())
            });
        handlers.push(handler);
    }

    /// An HTML `<noscript>` or `<style>`: its raw text is held and written at its end tag,
    /// rewritten: a `<noscript>`'s pixels judged, a style sheet's tracker URLs (`url(…)`,
    /// `@import`) emptied.
    fn raw_text(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>, kind: RawText) {
        self.shared.lock().unwrap().raw = Some((kind, Held::default()));
        let (rules, shared) = (self.rules.clone(), self.shared.clone());
        let (granted, enforce) = (self.granted, self.enforce);
        let Some(handlers) = el.end_tag_handlers() else {
            return;
        };
        let handler: lol_html::send::EndTagHandler<'static> =
            Box::new(move |end: &mut lol_html::html_content::EndTag<'_>| {
                let mut sh = shared.lock().unwrap();
                let Some((kind, Held { text, unreadable })) = sh.raw.take() else {
                    return Ok(());
                };
                let out: std::borrow::Cow<'_, str> = if unreadable {
                    // Too long to judge: dropped (fail closed).
                    sh.report.record(match kind {
                        RawText::Noscript => "unreadable noscript",
                        RawText::Style => "unreadable style",
                    });
                    "".into()
                } else {
                    match kind {
                        RawText::Noscript => {
                            rewrite_noscript(&text, &rules, granted, enforce, &mut sh.report).into()
                        }
                        RawText::Style => rewrite_css(&text, &rules, granted, &mut sh.report)
                            .map_or(text.as_str().into(), Into::into),
                    }
                };
                end.before(if enforce { &out } else { &text }, ContentType::Html);
                Ok(())
            });
        handlers.push(handler);
    }
}

/// An element whose content the parser gives as raw text, held whole to be rewritten.
#[derive(Clone, Copy)]
enum RawText {
    Noscript,
    Style,
}

/// The value CSS `text` becomes with every URL of a tracker whose category is denied replaced
/// by an empty `data:` URL (which loads nothing), each recorded; `None` if it names none.
fn rewrite_css(
    text: &str,
    rules: &TagRules,
    granted: CategorySet,
    report: &mut TagReport,
) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for (m, rule) in rules.named_trackers(text, TextKind::Style, granted, false) {
        report.record(&rule.vendor);
        out.push_str(&text[last..m.start]);
        out.push_str("data:,");
        last = m.end;
        changed = true;
    }
    changed.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// A `style` attribute that names a tracker's URL: the URL is emptied.
fn style_attribute<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
) {
    let Some(value) = el.get_attribute("style") else {
        return;
    };
    if !value.contains('.') {
        return;
    }
    let decoded = html_escape::decode_html_entities(&value);
    let Some(css) = rewrite_css(&decoded, rules, granted, report) else {
        return;
    };
    if !enforce {
        return;
    }
    // Written raw: `&` escaped here, double quotes by lol_html or `rewrite_tags`.
    let css = css.replace('&', "&amp;");
    if misread_when_changed(el) {
        let mut attrs = attributes_of(el);
        for (name, v) in attrs.iter_mut() {
            if name == "style" {
                *v = css.clone();
            }
        }
        rewrite_tags(el, &attrs);
    } else {
        let _ = el.set_attribute("style", &css);
    }
}

/// An attribute value as lol_html gives it (raw source text, entities not decoded), made safe
/// inside double quotes.
fn escape_attr(v: &str) -> String {
    v.replace('"', "&quot;")
}

/// Builds a streaming rewriter. `output` receives the rewritten bytes; `enforce: false` counts
/// what would be done and changes nothing.
/// The charset a `Content-Type` names, if any.
pub fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The encoding a document is parsed in: the `Content-Type` charset if it names an
/// ASCII-compatible one; `None` if it names one the rewriter cannot parse (UTF-16 and the like);
/// UTF-8 when there is none (then a `<meta charset>` in the document switches it).
pub fn document_encoding(
    charset: Option<&str>,
) -> Option<(lol_html::AsciiCompatibleEncoding, bool)> {
    match charset {
        None => Some((lol_html::AsciiCompatibleEncoding::utf_8(), true)),
        Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
            // An unknown label is ignored, as browsers do.
            None => Some((lol_html::AsciiCompatibleEncoding::utf_8(), true)),
            Some(e) => lol_html::AsciiCompatibleEncoding::new(e).map(|e| (e, false)),
        },
    }
}

/// `encoding` comes from [`document_encoding`]: the encoding, and whether `<meta charset>` may
/// change it. `consent_mode` is the Google Consent Mode default block: when enforcing it is
/// written at the start of `<head>` (or, in a document without one, before its first `<script>`
/// outside a `<template>`), and from that point on Google tags that honour Consent Mode are
/// left to run. Before it, or if it is never written, they are neutralized like any tag.
pub fn rewriter<'h, O: lol_html::OutputSink + Send>(
    rules: Arc<TagRules>,
    granted: CategorySet,
    enforce: bool,
    max_memory: usize,
    encoding: (lol_html::AsciiCompatibleEncoding, bool),
    consent_mode: Option<String>,
    output: O,
) -> (HtmlRewriter<'h, O>, TagReportHandle) {
    let handle = TagReportHandle::default();
    let rw = rewriter_reporting_to(
        &handle,
        rules,
        granted,
        enforce,
        max_memory,
        encoding,
        consent_mode,
        output,
    );
    (rw, handle)
}

/// [`rewriter`], reporting to a handle made beforehand. A handle serves one document.
#[allow(clippy::too_many_arguments)]
pub fn rewriter_reporting_to<'h, O: lol_html::OutputSink + Send>(
    handle: &TagReportHandle,
    rules: Arc<TagRules>,
    granted: CategorySet,
    enforce: bool,
    max_memory: usize,
    encoding: (lol_html::AsciiCompatibleEncoding, bool),
    consent_mode: Option<String>,
    output: O,
) -> HtmlRewriter<'h, O> {
    let shared = handle.0.clone();
    let s0 = shared.clone();
    let block = consent_mode.filter(|_| enforce);
    // Google tags are left to Consent Mode only once its block is in the page.
    let consent_mode = block.is_some();
    let mut handlers = Vec::new();
    if let Some(block) = block {
        handlers.push(element!("head, script, template", move |el| {
            let mut sh = s0.lock().unwrap();
            match el.tag_name().as_str() {
                "template" => {
                    sh.templates += 1;
                    let shared = s0.clone();
                    if let Some(end) = el.end_tag_handlers() {
                        let handler: lol_html::send::EndTagHandler<'static> = Box::new(move |_| {
                            let mut sh = shared.lock().unwrap();
                            sh.templates = sh.templates.saturating_sub(1);
                            Ok(())
                        });
                        end.push(handler);
                    }
                }
                "head" if !sh.injected => {
                    sh.injected = true;
                    el.prepend(&block, ContentType::Html);
                }
                "script" if !sh.injected && sh.templates == 0 => {
                    sh.injected = true;
                    el.before(&block, ContentType::Html);
                }
                _ => {}
            }
            Ok(())
        }));
    }
    // One selector per kind of handler: each selector costs lol_html work on every element.
    let (r1, s1) = (rules.clone(), shared.clone());
    handlers.push(element!(
        "script, img, iframe, link, noscript, style, embed, object, image, source, video, audio, track, input",
        move |el| {
            let ctx = Ctx {
                rules: &r1,
                shared: &s1,
                granted,
                enforce,
                consent_mode,
            };
            let tag = el.tag_name();
            let script = (tag == "script").then(|| script_kind(el));
            match tag.as_str() {
                "script" if matches!(script, Some(ScriptKind::Inert)) => {}
                "script" if matches!(script, Some(ScriptKind::Inline)) => ctx.inline_script(el),
                "script" if matches!(script, Some(ScriptKind::SvgInline)) => ctx.svg_script(el),
                "script" | "img" | "iframe" | "embed" | "object" | "image" | "source" | "video"
                | "audio" | "track" | "input" => {
                    let mut sh = s1.lock().unwrap();
                    let exempt = ctx.exempt(&sh);
                    url_element(el, &tag, &r1, granted, exempt, enforce, &mut sh.report);
                    drop(sh);
                    if tag == "iframe" && !el.removed() && el.namespace_uri() == HTML_NAMESPACE {
                        ctx.srcdoc(el);
                    }
                }
                "link" => ctx.link(el),
                // Only an HTML <noscript> holds raw text; in SVG or MathML its children are elements,
                // which the handlers judge one by one.
                "noscript" if el.namespace_uri() == HTML_NAMESPACE => {
                    ctx.raw_text(el, RawText::Noscript)
                }
                "style" if el.namespace_uri() == HTML_NAMESPACE => ctx.raw_text(el, RawText::Style),
                _ => {}
            }
            Ok(())
        }
    ));
    let (r3, s3) = (rules.clone(), shared.clone());
    handlers.push(element!("[style]", move |el| {
        let mut sh = s3.lock().unwrap();
        style_attribute(el, &r3, granted, enforce, &mut sh.report);
        Ok(())
    }));
    let s2 = shared;
    handlers.push(text!("script, noscript, style", move |t| {
        let mut sh = s2.lock().unwrap();
        // A <script> inside a <noscript> is text, and the other way round: one is held at most.
        if let Some((_, held)) = sh.raw.as_mut() {
            held.push(t.as_str());
            t.remove();
        } else if let Some((_, held)) = sh.script.as_mut() {
            held.push(t.as_str());
            t.remove();
        }
        Ok(())
    }));
    let mut settings = Settings::new_send()
        .with_memory_settings(
            lol_html::MemorySettings::new()
                .with_preallocated_parsing_buffer_size(8192.min(max_memory))
                .with_max_allowed_memory_usage(max_memory),
        )
        .with_encoding(encoding.0)
        .with_adjust_charset_on_meta_tag(encoding.1);
    for h in handlers {
        settings = settings.append_element_content_handler(h);
    }
    HtmlRewriter::new(settings, output)
}

/// Read access to a rewriter's report.
#[derive(Clone, Default)]
pub struct TagReportHandle(Arc<Mutex<Shared>>);

impl TagReportHandle {
    pub fn report(&self) -> TagReport {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report
            .clone()
    }

    /// Sets the report of a document that was not parsed (a remembered rewrite).
    pub fn set(&self, report: TagReport) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).report = report;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn rules(action: TagAction) -> Arc<TagRules> {
        let u = |h, p, c, v| UrlRule::new(h, p, c, v).unwrap();
        let i = |s: &str, c, v: &str| InlineRule {
            signature: s.into(),
            category: c,
            vendor: Arc::from(v),
            action: None,
            consent_mode: false,
        };
        Arc::new(
            TagRules::new(
                vec![
                    u(
                        "googletagmanager.com",
                        Some("/gtag/js"),
                        Analytics,
                        "Google Analytics",
                    ),
                    u(
                        "googletagmanager.com",
                        Some("/ns.html"),
                        Analytics,
                        "Google Tag Manager",
                    ),
                    u(
                        "connect.facebook.net",
                        Some("/*/fbevents.js"),
                        Marketing,
                        "Meta Pixel",
                    ),
                    u("facebook.com", Some("/tr"), Marketing, "Meta Pixel"),
                    u("*", Some("*/matomo.js"), Analytics, "Matomo"),
                ],
                vec![
                    i("gtag(", Analytics, "Google Analytics"),
                    i("fbq(", Marketing, "Meta Pixel"),
                    i("_paq.push", Analytics, "Matomo"),
                ],
                action,
            )
            .unwrap(),
        )
    }

    /// Rewrites `html` fed in chunks cut at `cuts`.
    fn rewrite_split(
        html: &str,
        granted: CategorySet,
        enforce: bool,
        action: TagAction,
        cuts: &[usize],
    ) -> (String, TagReport) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let (mut rw, report) = rewriter(
            rules(action),
            granted,
            enforce,
            8 << 20,
            document_encoding(None).unwrap(),
            None,
            move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
        );
        let bytes = html.as_bytes();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            rw.write(&bytes[start..cut]).unwrap();
            start = cut;
        }
        rw.end().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        (text, report.report())
    }

    fn rewrite(html: &str, granted: CategorySet, action: TagAction) -> (String, TagReport) {
        rewrite_split(html, granted, true, action, &[])
    }

    const NONE: CategorySet = CategorySet::NECESSARY;
    const PAGE: &str = r#"<html><head><script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script><script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());</script><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><img height="1" src="https://www.facebook.com/tr?id=1&ev=PageView"></noscript><link rel="preconnect" href="https://www.googletagmanager.com"><link rel="stylesheet" href="/s.css"></body></html>"#;

    #[test]
    fn golden_neutralize() {
        let (out, report) = rewrite(PAGE, NONE, TagAction::Neutralize);
        assert_eq!(
            out,
            r#"<html><head><script async type="text/plain" data-category="analytics" data-src="https://www.googletagmanager.com/gtag/js?id=G-1"></script><script type="text/plain" data-category="analytics">window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());</script><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><img height="1" data-category="marketing" data-src="https://www.facebook.com/tr?id=1&ev=PageView"></noscript><link rel="preconnect" data-category="analytics" data-href="https://www.googletagmanager.com"><link rel="stylesheet" href="/s.css"></body></html>"#
        );
        assert_eq!(report.neutralized, 4);
        assert_eq!(report.vendors, vec!["Google Analytics", "Meta Pixel"]);
    }

    #[test]
    fn golden_remove() {
        let (out, report) = rewrite(PAGE, NONE, TagAction::Remove);
        assert_eq!(
            out,
            r#"<html><head><!----><!----><script src="/app.js"></script><script>console.log("app")</script></head><body><noscript><span></span></noscript><!----><link rel="stylesheet" href="/s.css"></body></html>"#
        );
        assert_eq!(report.neutralized, 4);
    }

    #[test]
    fn granted_categories_are_left_alone() {
        let (out, report) = rewrite(PAGE, CategorySet::ALL, TagAction::Neutralize);
        assert_eq!(out, PAGE);
        assert_eq!(report.neutralized, 0);
        // Analytics granted: only the Meta pixel goes.
        let (_, report) = rewrite(PAGE, NONE.with(Analytics), TagAction::Neutralize);
        assert_eq!(report.vendors, vec!["Meta Pixel"]);
    }

    #[test]
    fn report_only_counts_and_changes_nothing() {
        let (out, report) = rewrite_split(PAGE, NONE, false, TagAction::Remove, &[]);
        assert_eq!(out, PAGE);
        assert_eq!(report.neutralized, 4);
    }

    #[test]
    fn signatures_match_only_where_an_identifier_starts() {
        let sig = |s: &str| InlineRule {
            signature: s.into(),
            category: Analytics,
            vendor: Arc::from("v"),
            action: None,
            consent_mode: false,
        };
        let rules = TagRules::new(
            vec![],
            vec![sig("ym("), sig(".yandex.ru/")],
            TagAction::Neutralize,
        )
        .unwrap();
        for hit in [
            "ym(1, 'init')",
            "window.ym(1)",
            "x;ym(2)",
            "\n  ym(3)",
            "anonym(x); ym(4)",
            "w['mc.yandex.ru/x']",
            // After a non-ASCII character (see `is_identifier`).
            "t\u{e9}ym(1)",
        ] {
            assert!(rules.match_inline(hit, NONE, false).is_some(), "{hit}");
        }
        for miss in ["anonym(x)", "_ym(1)", "$ym(1)", "Ym(1)"] {
            assert!(rules.match_inline(miss, NONE, false).is_none(), "{miss}");
        }
    }

    #[test]
    fn the_most_restrictive_denied_category_labels_an_inline_script() {
        let sig = |s: &str, category, vendor: &str| InlineRule {
            signature: s.into(),
            category,
            vendor: Arc::from(vendor),
            action: None,
            consent_mode: false,
        };
        let rules = TagRules::new(
            vec![],
            vec![
                sig("gtag(", Analytics, "GA"),
                sig("'AW-", Marketing, "Ads"),
                sig("_paq.push", Analytics, "Matomo"),
            ],
            TagAction::Neutralize,
        )
        .unwrap();
        let text = "gtag('js'); _paq.push(1); gtag('config', 'AW-1');";
        let vendor = |granted| rules.match_inline(text, granted, false).map(|r| &*r.vendor);
        assert_eq!(vendor(NONE), Some("Ads"));
        assert_eq!(vendor(NONE.with(Marketing)), Some("GA"));
        assert_eq!(vendor(NONE.with(Analytics)), Some("Ads"));
        assert_eq!(vendor(NONE.with(Analytics).with(Marketing)), None);
    }

    #[test]
    fn every_byte_split_gives_the_same_output() {
        let (want, want_report) = rewrite(PAGE, NONE, TagAction::Neutralize);
        for cut in 0..=PAGE.len() {
            let (got, report) = rewrite_split(PAGE, NONE, true, TagAction::Neutralize, &[cut]);
            assert_eq!(got, want, "split at {cut}");
            assert_eq!(report, want_report, "split at {cut}");
        }
    }

    const META: &str = r#"<script>!function(f,b,e,v){}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');</script><script src="https://connect.facebook.net/en_US/fbevents.js"></script><noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1" height="0"></iframe></noscript><script type="module">var _paq=[];_paq.push(['trackPageView']);</script><script src="/js/matomo.js" defer></script><p>kept</p>"#;

    #[test]
    fn golden_meta_matomo_gtm_noscript() {
        let (out, report) = rewrite(META, NONE, TagAction::Neutralize);
        assert_eq!(
            out,
            r#"<script type="text/plain" data-category="marketing">!function(f,b,e,v){}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');</script><script type="text/plain" data-category="marketing" data-src="https://connect.facebook.net/en_US/fbevents.js"></script><noscript><iframe height="0" data-category="analytics" data-src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe></noscript><script type="text/plain" data-category="analytics" data-type="module">var _paq=[];_paq.push(['trackPageView']);</script><script defer type="text/plain" data-category="analytics" data-src="/js/matomo.js"></script><p>kept</p>"#
        );
        assert_eq!(report.neutralized, 5);
        assert_eq!(
            report.vendors,
            vec!["Meta Pixel", "Google Tag Manager", "Matomo"]
        );
        let (out, _) = rewrite(META, NONE, TagAction::Remove);
        assert_eq!(
            out,
            "<!----><!----><noscript><!----></noscript><!----><!----><p>kept</p>"
        );
        for cut in 0..=META.len() {
            let (got, _) = rewrite_split(META, NONE, true, TagAction::Neutralize, &[cut]);
            assert_eq!(
                got,
                rewrite(META, NONE, TagAction::Neutralize).0,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn documents_in_other_charsets_keep_their_bytes() {
        let input: &[u8] =
            b"<p>\x82\xa0\x82\xa2</p><script>var s='\x82\xa0';fbq('init','1');</script>";
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let enc = document_encoding(charset_of("text/html; charset=Shift_JIS")).unwrap();
        assert!(!enc.1, "a header charset is not overridden by <meta>");
        let (mut rw, report) = rewriter(
            rules(TagAction::Neutralize),
            NONE,
            true,
            8 << 20,
            enc,
            None,
            move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
        );
        rw.write(input).unwrap();
        rw.end().unwrap();
        let got = out.lock().unwrap().clone();
        let want: &[u8] = b"<p>\x82\xa0\x82\xa2</p><script type=\"text/plain\" data-category=\"marketing\">var s='\x82\xa0';fbq('init','1');</script>";
        assert_eq!(got, want);
        assert_eq!(report.report().neutralized, 1);
        assert!(document_encoding(Some("utf-16")).is_none());
        assert!(document_encoding(Some("no-such-charset")).is_some());
        assert_eq!(
            charset_of("text/html;Charset=\"ISO-8859-1\""),
            Some("ISO-8859-1")
        );
    }

    #[test]
    fn a_construct_over_the_memory_limit_stops_the_rewriter() {
        // One start tag larger than the limit: the rewriter cannot hold it, so it fails, and
        // nothing after that point is written (the caller ends the response in an error).
        let huge = format!(
            r#"<p>before</p><script data-x="{}" src="https://www.googletagmanager.com/gtag/js"></script>"#,
            "a".repeat(256 * 1024)
        );
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let (mut rw, _) = rewriter(
            rules(TagAction::Neutralize),
            NONE,
            true,
            64 * 1024,
            document_encoding(None).unwrap(),
            None,
            move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
        );
        let failed = huge
            .as_bytes()
            .chunks(1024)
            .map(|c| rw.write(c))
            .any(|r| r.is_err());
        assert!(failed, "the memory limit was not enforced");
        let written = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(!written.contains("googletagmanager"), "{written}");
    }

    #[test]
    fn held_script_attributes_round_trip() {
        let html = r#"<script data-x="a&amp;b &quot;q&quot;" nonce='n"1'>console.log(1)</script>"#;
        let (out, _) = rewrite(html, NONE, TagAction::Neutralize);
        assert_eq!(
            out,
            r#"<script data-x="a&amp;b &quot;q&quot;" nonce="n&quot;1">console.log(1)</script>"#
        );
    }

    #[test]
    fn urls_and_hosts() {
        let r = rules(TagAction::Neutralize);
        let m = |u: &str| r.match_url(u, NONE, false).map(|r| r.vendor.to_string());
        assert_eq!(
            m("https://connect.facebook.net/en_US/fbevents.js").as_deref(),
            Some("Meta Pixel")
        );
        assert_eq!(
            m("//www.googletagmanager.com/gtag/js?id=G").as_deref(),
            Some("Google Analytics")
        );
        assert_eq!(
            m("https://cdn.example.com/js/matomo.js").as_deref(),
            Some("Matomo")
        );
        assert_eq!(m("/matomo.js").as_deref(), Some("Matomo"));
        assert_eq!(m("https://notgoogletagmanager.com/gtag/js"), None);
        assert_eq!(
            m("https://www.googletagmanager.com.evil.example/gtag/js"),
            None
        );
        assert_eq!(
            m("https://www.GoogleTagManager.com:443/gtag/js").as_deref(),
            Some("Google Analytics")
        );
        assert!(
            r.match_host("https://static.example.com", NONE, false)
                .is_none()
        );
    }

    #[test]
    fn oversized_inline_script_fails_closed() {
        let big = format!(
            "<script>{}</script><p>after</p>",
            "x".repeat(MAX_INLINE_SCRIPT + 10)
        );
        let (out, report) = rewrite(&big, NONE, TagAction::Neutralize);
        assert!(
            out.starts_with("<script type=\"text/plain\" data-category=\"marketing\"></script>"),
            "{}",
            &out[..80]
        );
        assert!(out.ends_with("<p>after</p>"));
        assert_eq!(report.vendors, vec!["unreadable inline script"]);
    }

    #[test]
    fn scripts_that_run_nothing_are_left_as_they_are() {
        let big_json = format!(
            r#"<script type="application/json" id="__NEXT_DATA__">{{"x":"{}","u":"https://connect.facebook.net/en_US/fbevents.js"}}</script>"#,
            "x".repeat(MAX_INLINE_SCRIPT + 10)
        );
        for page in [
            r#"<script type="application/ld+json">{"sameAs":["https://www.facebook.com/x"],"a":"fbq('init')"}</script>"#.to_string(),
            r#"<script type=" Text/Plain " data-category="marketing">fbq('init', '1');</script>"#.to_string(),
            r#"<script type="text/plain" src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#.to_string(),
            r#"<script type="importmap">{"imports":{"a":"https://connect.facebook.net/en_US/fbevents.js"}}</script>"#.to_string(),
            big_json,
        ] {
            let (out, report) = rewrite(&page, NONE, TagAction::Neutralize);
            assert_eq!(out, page);
            assert_eq!(report.neutralized, 0, "{}", &page[..60]);
        }
        // A script of any other type is judged.
        let (out, _) = rewrite(
            "<script type=\"text/x-template\">fbq('init')</script>",
            NONE,
            TagAction::Neutralize,
        );
        assert!(out.contains("data-category=\"marketing\""), "{out}");
    }

    /// Rules where the Google tag honours Consent Mode and the Meta Pixel does not.
    fn consent_mode_rules() -> Arc<TagRules> {
        let mut gtag =
            UrlRule::new("googletagmanager.com", Some("/gtag/js"), Analytics, "GA").unwrap();
        gtag.consent_mode = true;
        let sig = |s: &str, category, consent_mode| InlineRule {
            signature: s.into(),
            category,
            vendor: Arc::from("v"),
            action: None,
            consent_mode,
        };
        Arc::new(
            TagRules::new(
                vec![gtag],
                vec![sig("gtag(", Analytics, true), sig("fbq(", Marketing, false)],
                TagAction::Neutralize,
            )
            .unwrap(),
        )
    }

    fn rewrite_cm(html: &str, block: Option<&str>, enforce: bool, cut: usize) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let (mut rw, _) = rewriter(
            consent_mode_rules(),
            NONE,
            enforce,
            8 << 20,
            document_encoding(None).unwrap(),
            block.map(str::to_string),
            move |c: &[u8]| sink.lock().unwrap().extend_from_slice(c),
        );
        rw.write(&html.as_bytes()[..cut]).unwrap();
        rw.write(&html.as_bytes()[cut..]).unwrap();
        rw.end().unwrap();
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    const GTAG: &str =
        r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#;
    const GTAG_INLINE: &str = "<script>gtag('js', new Date());</script>";
    const FBQ: &str = "<script>fbq('init', '1');</script>";
    const BLOCK: &str = "<script>/*consent default*/</script>";

    #[test]
    fn consent_mode_block_opens_the_head_and_lets_google_tags_run() {
        let page = format!("<html><head><title>t</title>{GTAG}{GTAG_INLINE}{FBQ}</head></html>");
        let want = format!(
            "<html><head>{BLOCK}<title>t</title>{GTAG}{GTAG_INLINE}<script type=\"text/plain\" data-category=\"marketing\">fbq('init', '1');</script></head></html>"
        );
        for cut in 0..=page.len() {
            assert_eq!(
                rewrite_cm(&page, Some(BLOCK), true, cut),
                want,
                "cut at {cut}"
            );
        }
        // Without the block (Consent Mode off, or a CSP that would block it) Google tags are
        // neutralized like any other; in report-only nothing is written.
        let off = rewrite_cm(&page, None, true, 0);
        assert!(
            off.contains("data-src=\"https://www.googletagmanager.com"),
            "{off}"
        );
        assert!(!off.contains("/*consent default*/"));
        assert_eq!(rewrite_cm(&page, Some(BLOCK), false, 0), page);
    }

    #[test]
    fn without_a_head_the_block_precedes_the_first_live_script() {
        let page = format!("<!doctype html><p>x</p>{GTAG}{FBQ}");
        assert_eq!(
            rewrite_cm(&page, Some(BLOCK), true, 0),
            format!(
                "<!doctype html><p>x</p>{BLOCK}{GTAG}<script type=\"text/plain\" data-category=\"marketing\">fbq('init', '1');</script>"
            )
        );
        // A script inside a <template> is inert: the block is not put there, and a Google tag
        // before the block is neutralized.
        let page = format!("<template>{GTAG}</template>{GTAG_INLINE}");
        let out = rewrite_cm(&page, Some(BLOCK), true, 0);
        assert_eq!(
            out,
            format!(
                "<template><script async type=\"text/plain\" data-category=\"analytics\" data-src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></template>{BLOCK}{GTAG_INLINE}"
            )
        );
    }

    #[test]
    fn a_script_after_a_tag_ending_in_an_empty_attribute_is_judged() {
        // `nonce=>` ends the tag with an attribute without value; what follows is script text,
        // so `<a title="` does not hide the next </script> and the inline pixel is seen.
        let page = r#"<script src="/app.js" nonce=>var tip = '<a title="';</script><script>fbq('init','1');</script><p class="note">x</p>"#;
        let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
        assert!(
            out.contains(
                r#"<script type="text/plain" data-category="marketing">fbq('init','1');</script>"#
            ),
            "{out}"
        );
        assert_eq!(report.neutralized, 1);
    }

    #[test]
    fn a_signature_after_a_non_ascii_character_is_matched() {
        // U+FFFD (an invalid byte of the page), or any character a legacy encoding cannot
        // hold, is written back as a character reference ending in `;`.
        let r = rules(TagAction::Neutralize);
        assert!(r.match_inline("\u{FFFD}fbq('init')", NONE, false).is_some());
        assert!(r.match_inline("\u{E229}fbq('init')", NONE, false).is_some());
        assert!(r.match_inline("éfbq('init')", NONE, false).is_some());
        assert!(r.match_inline("xfbq('init')", NONE, false).is_none());
    }

    #[test]
    fn a_noscript_in_svg_holds_no_script_text() {
        // In SVG, <noscript> is an ordinary element; the HTML script after `<i>` is judged on
        // its own text, and nothing of it is written back as markup.
        let page =
            "<svg><noscript><i><script>\n<script>fbq(12345)//</script></noscript>\n</script>";
        let (out, _) = rewrite(page, NONE, TagAction::Neutralize);
        assert_eq!(
            out,
            "<svg><noscript><i><script type=\"text/plain\" data-category=\"marketing\">\n<script>fbq(12345)//</script></noscript>\n</script>"
        );
        // An HTML <noscript> is still judged.
        let (out, report) = rewrite(
            r#"<noscript><img src="https://www.facebook.com/tr?id=1"></noscript>"#,
            NONE,
            TagAction::Neutralize,
        );
        assert!(
            out.contains("data-src=\"https://www.facebook.com/tr?id=1\""),
            "{out}"
        );
        assert_eq!(report.neutralized, 1);
    }

    #[test]
    fn urls_are_read_as_a_browser_reads_them() {
        let r = rules(TagAction::Neutralize);
        for url in [
            "https://www.googletagmanager.com/gtag/js?id=G-1",
            "https://www.googletagmanager.com/gtag&#47;js?id=G-1",
            "https://www.googletagmanager.com/gtag&sol;js",
            "https:\\\\www.googletagmanager.com\\gtag\\js",
            "https:/www.googletagmanager.com/gtag/js",
            "https:www.googletagmanager.com/gtag/js",
            "///www.googletagmanager.com/gtag/js",
            "https://www.googletagmanager.com/gtag/./js",
            "https://www.googletagmanager.com/x/../gtag/js",
            "https://www.googletagmanager.com./gtag/js",
            "https://www.googletagmanager.com.:443/gtag/js",
            "https://www.googletagmanager%2Ecom/gtag/js",
            "https://www.googletagmanager.com/g%74ag/js",
            "https://www.google\ttagmanager.com/gtag/js",
            "https://www.googletag\nmanager.com/gtag/js",
            "  HTTPS://WWW.GOOGLETAGMANAGER.COM/gtag/js  ",
            "//www.googletagmanager.com/gtag/js",
            // A URL in the query, with a protocol-relative or an absolute URL.
            "//www.googletagmanager.com/gtag/js?id=G-1&dl=https://example.com/",
            "https://www.googletagmanager.com/gtag/js?u=https://example.com/",
        ] {
            assert!(r.match_url(url, NONE, false).is_some(), "{url:?}");
        }
        for url in [
            "/gtag/js",
            "https://www.googletagmanager.com.evil.example/gtag/js",
            "https://googletagmanager.com.example/gtag/js",
            "https://example.com/?u=https://www.googletagmanager.com/gtag/js",
            "https://www.googletagmanager.com/gtag/jsx",
            "data:text/javascript,1",
        ] {
            assert!(r.match_url(url, NONE, false).is_none(), "{url:?}");
        }
    }

    #[test]
    fn srcset_candidates_are_split_as_browsers_split_them() {
        let urls = |s| srcset_urls(s).collect::<Vec<_>>();
        assert_eq!(urls("a.png 1x, b.png 2x"), ["a.png", "b.png"]);
        assert_eq!(urls(" ,,a.png,, b.png"), ["a.png", "b.png"]);
        assert_eq!(urls("a,b.png 1x,c.png"), ["a,b.png", "c.png"]);
        assert_eq!(urls("a.png (1x, x) 2x, b.png"), ["a.png", "b.png"]);
        assert_eq!(urls("a.png\t100w,\nb.png\x0c200w"), ["a.png", "b.png"]);
        assert_eq!(urls(""), [""; 0]);
        assert_eq!(urls(" , "), [""; 0]);
    }

    #[test]
    fn every_way_an_element_loads_a_tracker_is_judged() {
        let cases = [
            (
                r#"<img srcset="/a.png 1x, https://www.facebook.com/tr?id=1 2x">"#,
                r#"<img data-category="marketing" data-srcset="/a.png 1x, https://www.facebook.com/tr?id=1 2x">"#,
            ),
            (
                r#"<picture><source srcset="https://www.facebook.com/tr?id=1"></picture>"#,
                r#"<picture><source data-category="marketing" data-srcset="https://www.facebook.com/tr?id=1"></picture>"#,
            ),
            (
                r#"<embed src="https://www.googletagmanager.com/ns.html?id=GTM-1">"#,
                r#"<embed data-category="analytics" data-src="https://www.googletagmanager.com/ns.html?id=GTM-1">"#,
            ),
            (
                r#"<object data="https://www.googletagmanager.com/ns.html?id=GTM-1"></object>"#,
                r#"<object data-category="analytics" data-data="https://www.googletagmanager.com/ns.html?id=GTM-1"></object>"#,
            ),
            (
                r#"<svg><script href="https://www.googletagmanager.com/gtag/js"></script></svg>"#,
                r#"<svg><script type="text/plain" data-category="analytics" data-href="https://www.googletagmanager.com/gtag/js"></script></svg>"#,
            ),
            (
                r#"<svg><image xlink:href="https://www.facebook.com/tr?id=1"/></svg>"#,
                r#"<svg><image data-category="marketing" data-xlink-href="https://www.facebook.com/tr?id=1" /></svg>"#,
            ),
            (
                r#"<link rel="modulepreload" href="https://www.googletagmanager.com/gtag/js">"#,
                r#"<link rel="modulepreload" data-category="analytics" data-href="https://www.googletagmanager.com/gtag/js">"#,
            ),
            (
                r#"<img src="https://www.facebook.com/tr?id=1&amp;ev=PageView">"#,
                r#"<img data-category="marketing" data-src="https://www.facebook.com/tr?id=1&amp;ev=PageView">"#,
            ),
            (
                r#"<video poster="https://www.facebook.com/tr?id=1" src="/v.mp4"></video>"#,
                r#"<video data-category="marketing" data-src="/v.mp4" data-poster="https://www.facebook.com/tr?id=1"></video>"#,
            ),
            (
                r#"<input type="image" src="https://www.facebook.com/tr?id=1">"#,
                r#"<input type="image" data-category="marketing" data-src="https://www.facebook.com/tr?id=1">"#,
            ),
            (
                r#"<audio><track src="https://www.facebook.com/tr?id=1"></audio>"#,
                r#"<audio><track data-category="marketing" data-src="https://www.facebook.com/tr?id=1"></audio>"#,
            ),
            // A candidate as browsers split a srcset: after character references are decoded,
            // with commas inside a URL.
            (
                r#"<img srcset="/a.png&#32;1x&#44;https://www.facebook.com/tr?id=1">"#,
                r#"<img data-category="marketing" data-srcset="/a.png&#32;1x&#44;https://www.facebook.com/tr?id=1">"#,
            ),
            // Site images stay.
            (
                r#"<img srcset="/a.png 1x, /b.png 2x"><object data="/doc.pdf"></object>"#,
                r#"<img srcset="/a.png 1x, /b.png 2x"><object data="/doc.pdf"></object>"#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite(input, NONE, TagAction::Neutralize).0, expected);
        }
    }

    #[test]
    fn an_iframe_srcdoc_is_rewritten_like_a_page() {
        let page = r#"<iframe srcdoc="<p>a &amp; b</p><script src=&quot;https://www.googletagmanager.com/gtag/js&quot;></script><script>fbq('init')</script>"></iframe>"#;
        let (out, report) = rewrite(page, NONE, TagAction::Neutralize);
        assert_eq!(
            out,
            r#"<iframe srcdoc="<p>a &amp; b</p><script type=&quot;text/plain&quot; data-category=&quot;analytics&quot; data-src=&quot;https://www.googletagmanager.com/gtag/js&quot;></script><script type=&quot;text/plain&quot; data-category=&quot;marketing&quot;>fbq('init')</script>"></iframe>"#
        );
        assert_eq!(report.neutralized, 2);
        // Without a tracker the attribute is left as it was.
        let page = r#"<iframe srcdoc="<p>a &amp; b</p>"></iframe>"#;
        assert_eq!(rewrite(page, NONE, TagAction::Neutralize).0, page);
    }

    #[test]
    fn an_svg_inline_script_fails_closed_in_place() {
        // SVG ignores `src`: the text runs. What belongs to an SVG script cannot be told
        // reliably, and its content is markup: every SVG inline script is neutralized in
        // place, its content untouched.
        for (page, expected) in [
            (
                r#"<svg><script src="/x.js">fbq('init')</script></svg>"#,
                r#"<svg><script src="/x.js" type="text/plain" data-category="marketing">fbq('init')</script></svg>"#,
            ),
            (
                r#"<svg><script>console.log(1)</script></svg>"#,
                r#"<svg><script type="text/plain" data-category="marketing">console.log(1)</script></svg>"#,
            ),
            // Held and written back, `<` and `img …` joined across the comment would be a tag,
            // and an <img> closes the <svg> and loads.
            (
                r#"<svg><script><<!---->img src="https://www.facebook.com/tr?id=1"></script></svg>"#,
                r#"<svg><script type="text/plain" data-category="marketing"><<!---->img src="https://www.facebook.com/tr?id=1"></script></svg>"#,
            ),
            // An HTML script with `href` and no `src` runs its text, judged as usual.
            (
                r#"<script href="/x.js">console.log(1)</script>"#,
                r#"<script href="/x.js">console.log(1)</script>"#,
            ),
            // A MathML <script> runs nothing.
            (
                r#"<math><script>fbq('init')</script></math>"#,
                r#"<math><script>fbq('init')</script></math>"#,
            ),
        ] {
            assert_eq!(rewrite(page, NONE, TagAction::Remove).0, expected);
        }
    }

    #[test]
    fn a_removed_element_leaves_nothing_that_joins_into_a_tag() {
        // Removed outright, `<` and `script>gtag(…)` would join into a live script.
        let page = "<<script>gtag('js')</script>script>gtag('config')</script>";
        assert_eq!(
            rewrite(page, NONE, TagAction::Remove).0,
            "<<!---->script>gtag('config')</script>"
        );
        let page = r#"<<script src="https://www.googletagmanager.com/gtag/js"></script>script>gtag('config')</script>"#;
        assert_eq!(
            rewrite(page, NONE, TagAction::Remove).0,
            "<<!---->script>gtag('config')</script>"
        );
    }

    #[test]
    fn a_changed_tag_reads_as_it_did() {
        // Written back with spaces, `=` would give `x` the value `'y …` up to the next quote,
        // past the end of the tag.
        let page = r#"<img x/=/'y src="https://www.facebook.com/tr?id=1"><p title='q'>t</p>"#;
        assert_eq!(
            rewrite(page, NONE, TagAction::Neutralize).0,
            r#"<img x="" 'y="" data-src="https://www.facebook.com/tr?id=1" data-category="marketing"><p title='q'>t</p>"#
        );
        // The same for an element with content, and for a srcdoc written back.
        let page = r#"<script x/=/'y src="https://www.googletagmanager.com/gtag/js">a</script><iframe x/=/'y srcdoc="<img src=&quot;https://www.facebook.com/tr?id=1&quot;>"></iframe><p title='q'>t</p>"#;
        assert_eq!(
            rewrite(page, NONE, TagAction::Neutralize).0,
            r#"<script x="" 'y="" data-src="https://www.googletagmanager.com/gtag/js" type="text/plain" data-category="analytics">a</script><iframe x="" 'y="" srcdoc="<img data-category=&quot;marketing&quot; data-src=&quot;https://www.facebook.com/tr?id=1&quot;>"></iframe><p title='q'>t</p>"#
        );
    }

    #[test]
    fn foreign_elements_are_never_removed_with_their_content() {
        // A <link> in MathML hints nothing, and is not void: removed with what lol_html took
        // for its content, a later part of the page would be read otherwise.
        let page = r#"<math><link rel="preconnect" href="https://www.google-analytics.com"><p>x</p></math>"#;
        assert_eq!(rewrite(page, NONE, TagAction::Remove).0, page);
        // An SVG loader is neutralized, not removed.
        assert_eq!(
            rewrite(r#"<svg><image href="https://www.facebook.com/tr?id=1"><text>t</text></image></svg>"#, NONE, TagAction::Remove).0,
            r#"<svg><image data-category="marketing" data-href="https://www.facebook.com/tr?id=1"><text>t</text></image></svg>"#
        );
    }

    #[test]
    fn html_loaders_in_svg_load_nothing_and_are_left_alone() {
        // In SVG, <iframe> is an unknown element: removing it (with what lol_html takes for its
        // content) changed how the rest of the page parses.
        let page = r#"<svg><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe><video poster="https://www.facebook.com/tr?id=1"></video></svg>"#;
        assert_eq!(rewrite(page, NONE, TagAction::Remove).0, page);
        let math = r#"<math><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1"></iframe></math>"#;
        assert_eq!(rewrite(math, NONE, TagAction::Remove).0, math);
        // <img> leaves the <svg>: it loads, and is judged.
        assert_eq!(
            rewrite(
                r#"<svg><img src="https://www.facebook.com/tr?id=1"></svg>"#,
                NONE,
                TagAction::Remove
            )
            .0,
            "<svg><span></span></svg>"
        );
    }

    #[test]
    fn a_removed_element_that_leaves_svg_still_leaves_it() {
        // The first <img> ends the <svg>, so the <noscript> is HTML and its text is never
        // parsed (scripting is on). Removed outright, the <noscript> would be an SVG element
        // and the second pixel in it would load.
        let page = r#"<svg><img src="https://www.facebook.com/tr?id=1"><noscript><img src="https://www.facebook.com/tr?id=2" x="</noscript>"></svg>"#;
        assert_eq!(
            rewrite(page, NONE, TagAction::Remove).0,
            r#"<svg><span></span><noscript><img src="https://www.facebook.com/tr?id=2" x="</noscript>"></svg>"#
        );
        // An HTML <image> is an <img>.
        assert_eq!(
            rewrite(
                r#"<image src="https://www.facebook.com/tr?id=1">"#,
                NONE,
                TagAction::Neutralize
            )
            .0,
            r#"<image data-category="marketing" data-src="https://www.facebook.com/tr?id=1">"#
        );
    }

    /// A tracker inside `<iframe srcdoc>` documents nested `depth` deep.
    fn nested_srcdoc(depth: usize) -> String {
        let mut doc =
            r#"<script src="https://www.googletagmanager.com/gtag/js"></script>"#.to_string();
        for _ in 0..depth {
            let escaped = doc.replace('&', "&amp;").replace('"', "&quot;");
            doc = format!(r#"<iframe srcdoc="{escaped}"></iframe>"#);
        }
        doc
    }

    #[test]
    fn srcdoc_documents_are_rewritten_to_a_depth_and_dropped_beyond() {
        let (out, report) = rewrite(
            &nested_srcdoc(MAX_SRCDOC_DEPTH),
            NONE,
            TagAction::Neutralize,
        );
        assert_eq!(report.neutralized, 1);
        assert_eq!(out.matches("srcdoc=").count(), MAX_SRCDOC_DEPTH);
        assert!(out.contains("data-src="), "{out}");
        // One deeper: the innermost document is dropped, unread.
        let (out, report) = rewrite(
            &nested_srcdoc(MAX_SRCDOC_DEPTH + 1),
            NONE,
            TagAction::Neutralize,
        );
        assert_eq!(report.neutralized, 0);
        assert_eq!(out.matches("srcdoc=").count(), MAX_SRCDOC_DEPTH);
        assert!(!out.contains("googletagmanager"), "{out}");
        // Nesting that would exhaust a worker thread's stack if each level were rewritten.
        let deep = nested_srcdoc(400);
        let out = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || rewrite(&deep, NONE, TagAction::Neutralize).0)
            .unwrap()
            .join()
            .unwrap();
        assert!(!out.contains("googletagmanager"));
    }
}
