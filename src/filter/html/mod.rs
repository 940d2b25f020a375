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

mod css;
mod encoding;
mod held;
mod prescan;
mod srcdoc;
mod state;
mod surgery;
#[cfg(test)]
mod tests;
mod urls;

pub use crate::policy::tags::{HostPattern, InlineRule, PathPattern, TagAction, TagRules, UrlRule};
pub use encoding::{charset_of, document_encoding, prescan};
pub use held::is_inert_type;
/// The encodings the rewriter reads ([`Params::encoding`]).
pub use lol_html::AsciiCompatibleEncoding;
pub use prescan::Kinds;
pub use state::{MAX_INLINE_SCRIPT, TagReport, TagReportHandle};

use crate::category::CategorySet;
use css::style_attribute;
use held::{RawText, ScriptKind, script_kind, svg_style_text};
use lol_html::html_content::ContentType;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{element, text};
use state::Shared;
use std::sync::{Arc, Mutex};
use urls::url_element;

pub(super) const HTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";
pub(super) const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// The elements judged one by one.
const JUDGED: [&str; 14] = [
    "script", "img", "iframe", "link", "noscript", "style", "embed", "object", "image", "source",
    "video", "audio", "track", "input",
];

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
}

/// What a rewriter is asked to do with one document.
#[derive(Clone)]
pub struct Params {
    /// The tag catalogue.
    pub rules: Arc<TagRules>,
    /// The categories the visitor granted: their tags are left alone.
    pub granted: CategorySet,
    /// `false` counts what would be done and changes nothing.
    pub enforce: bool,
    /// What lol_html may hold at once; beyond it the rewriter stops with an error.
    pub max_memory: usize,
    /// From [`document_encoding`]: the encoding, and whether `<meta charset>` may change it.
    pub encoding: (lol_html::AsciiCompatibleEncoding, bool),
    /// The Google Consent Mode default block. When enforcing it is written at the start of
    /// `<head>` (or, in a document without one, before its first `<script>` outside a
    /// `<template>`), and from that point on Google tags that honour Consent Mode are left to
    /// run. Before it, or if it is never written, they are neutralized like any tag.
    pub consent_mode: Option<String>,
    /// The kinds of element the document may hold ([`Kinds::of`] a whole document); the
    /// rewriter stops only at those. [`Kinds::ALL`] for a document read in pieces.
    pub kinds: Kinds,
    /// HTML written at the start of `<body>` (the consent banner, or a link to the preference
    /// centre), or at the end of a document without a `<body>` tag.
    pub body_start: Option<Arc<str>>,
}

impl Params {
    /// Enforcing `rules` with `granted`, on a UTF-8 document (a `<meta charset>` may change it),
    /// under `max_memory`, without Consent Mode.
    pub fn new(rules: Arc<TagRules>, granted: CategorySet, max_memory: usize) -> Params {
        Params {
            rules,
            granted,
            enforce: true,
            max_memory,
            encoding: (lol_html::AsciiCompatibleEncoding::utf_8(), true),
            consent_mode: None,
            kinds: Kinds::ALL,
            body_start: None,
        }
    }
}

/// Builds a streaming rewriter; `output` receives the rewritten bytes.
pub fn rewriter<'h, O: lol_html::OutputSink + Send>(
    params: Params,
    output: O,
) -> (HtmlRewriter<'h, O>, TagReportHandle) {
    let handle = TagReportHandle::default();
    let rw = rewriter_reporting_to(&handle, params, output);
    (rw, handle)
}

/// [`rewriter`], reporting to a handle made beforehand. A handle serves one document.
pub fn rewriter_reporting_to<'h, O: lol_html::OutputSink + Send>(
    handle: &TagReportHandle,
    params: Params,
    output: O,
) -> HtmlRewriter<'h, O> {
    let Params {
        rules,
        granted,
        enforce,
        max_memory,
        encoding,
        consent_mode,
        kinds,
        body_start,
    } = params;
    let shared = handle.0.clone();
    let s0 = shared.clone();
    let block = consent_mode.filter(|_| enforce);
    // Google tags are left to Consent Mode only once its block is in the page.
    let consent_mode = block.is_some();
    let mut handlers = Vec::new();
    // `<template>` content is inert: what is written into the page goes outside it.
    if (block.is_some() || body_start.is_some())
        && let Some(selector) = kinds.selector(&["template"])
    {
        let st = shared.clone();
        handlers.push(element!(&selector, move |el| {
            st.lock().unwrap().templates += 1;
            let shared = st.clone();
            if let Some(end) = el.end_tag_handlers() {
                let handler: lol_html::send::EndTagHandler<'static> = Box::new(move |_| {
                    let mut sh = shared.lock().unwrap();
                    sh.templates = sh.templates.saturating_sub(1);
                    Ok(())
                });
                end.push(handler);
            }
            Ok(())
        }));
    }
    let consent_mode_tags = kinds.selector(&["head", "script"]);
    if let (Some(block), Some(selector)) = (block, consent_mode_tags) {
        handlers.push(element!(&selector, move |el| {
            let mut sh = s0.lock().unwrap();
            match el.tag_name().as_str() {
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
    // One selector per kind of handler, listing only the tags the document may hold: each
    // costs lol_html work on every element.
    let (r1, s1) = (rules.clone(), shared.clone());
    let judged = kinds.selector(&JUDGED);
    if let Some(selector) = judged {
        handlers.push(element!(&selector, move |el| {
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
                "style" if el.namespace_uri() == SVG_NAMESPACE => ctx.svg_style(el),
                _ => {}
            }
            Ok(())
        }));
    }
    let (r3, s3) = (rules.clone(), shared.clone());
    if kinds.style_attribute() {
        handlers.push(element!("[style]", move |el| {
            let mut sh = s3.lock().unwrap();
            style_attribute(el, &r3, granted, enforce, &mut sh.report);
            Ok(())
        }));
    }
    let (r2, s2) = (rules, shared.clone());
    if let Some(selector) = kinds.selector(&["script", "noscript", "style"]) {
        handlers.push(text!(&selector, move |t| {
            let mut sh = s2.lock().unwrap();
            // A <script> inside a <noscript> is text, and the other way round: one is held at most.
            if let Some((_, held)) = sh.raw.as_mut() {
                held.push(t.as_str());
                t.remove();
            } else if let Some((_, held)) = sh.script.as_mut() {
                held.push(t.as_str());
                t.remove();
            } else if sh.svg_styles > 0 {
                sh.svg_text.push(t.as_str());
                if t.last_in_text_node() {
                    let held = std::mem::take(&mut sh.svg_text);
                    let out = svg_style_text(held, &r2, granted, enforce, &mut sh.report);
                    t.replace(&out, ContentType::Html);
                } else {
                    t.remove();
                }
            }
            Ok(())
        }));
    }
    // A `<meta>` may switch the encoding mid-document (lol_html follows one that names an
    // ASCII-compatible encoding); one that names an encoding the rewriter cannot read, which a
    // browser reads the page in, stops it (fail closed).
    if encoding.1
        && let Some(selector) = kinds.selector(&["meta"])
    {
        handlers.push(element!(&selector, |el| match encoding::meta_encoding(el) {
            Some(e) if !e.is_ascii_compatible() && !encoding::is_utf16(e) => Err(format!(
                "a <meta> declares {}, which cannot be inspected",
                e.name()
            )
            .into()),
            _ => Ok(()),
        }));
    }
    // The banner goes first in `<body>`, where keyboard focus reaches it first; a document
    // without a `<body>` tag gets it at its end.
    let mut document_end = None;
    if let Some(html) = body_start {
        if let Some(selector) = kinds.selector(&["body"]) {
            let (sb, html) = (shared.clone(), html.clone());
            handlers.push(element!(&selector, move |el| {
                let mut sh = sb.lock().unwrap();
                if !sh.body_written && el.namespace_uri() == HTML_NAMESPACE && sh.templates == 0 {
                    sh.body_written = true;
                    el.prepend(&html, ContentType::Html);
                }
                Ok(())
            }));
        }
        let se = shared.clone();
        document_end = Some(lol_html::end!(move |end| {
            let mut sh = se.lock().unwrap();
            if !sh.body_written {
                sh.body_written = true;
                end.append(&html, ContentType::Html);
            }
            Ok(())
        }));
    }
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
    if let Some(h) = document_end {
        settings = settings.append_document_content_handler(h);
    }
    HtmlRewriter::new(settings, output)
}
