//! Text held until its element's end tag and judged whole: inline scripts, the raw text of
//! `<noscript>` and `<style>`.

use super::css::rewrite_css;
use super::state::{Held, TagReport};
use super::surgery::{REMOVED, neutralize, start_tag};
use super::urls::url_element;
use super::{Ctx, HTML_NAMESPACE, SVG_NAMESPACE};
use crate::category::{Category, CategorySet};
use crate::policy::tags::{TagAction, TagRules};
use lol_html::element;
use lol_html::html_content::{ContentType, Element};
use std::sync::Arc;

/// How deep `<noscript>` elements inside a `<noscript>`'s text are read; deeper text is dropped.
const MAX_NOSCRIPT_DEPTH: usize = 4;

/// Rewrites the text of a `<noscript>` (which the parser sees as text, since scripting is on)
/// as a fragment of HTML, for its pixel fallbacks. A browser reads that text with scripting off,
/// where a `<noscript>` inside it is an element like any other, whose content is markup too:
/// the text lol_html gives for one is rewritten the same way, to a depth.
pub(super) fn rewrite_noscript(
    text: &str,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
) -> String {
    rewrite_noscript_at(text, rules, granted, enforce, report, 1)
}

fn rewrite_noscript_at(
    text: &str,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
    depth: usize,
) -> String {
    let found = std::cell::RefCell::new(std::mem::take(report));
    // The text of the `<noscript>` inside being held.
    let inner: std::cell::RefCell<Option<String>> = Default::default();
    let result = lol_html::rewrite_str(
        text,
        lol_html::RewriteStrSettings::new()
            .append_element_content_handler(element!(
                "img, iframe, script, embed, object, image, source, video, audio, track, input",
                |el| {
                    // Nothing in a <noscript> runs: Consent Mode does not govern it.
                    let tag = el.tag_name();
                    let mut found = found.borrow_mut();
                    url_element(el, &tag, rules, granted, false, enforce, &mut found);
                    Ok(())
                }
            ))
            .append_element_content_handler(element!("noscript", |el| {
                // Its text runs to the end of this one's: there is no `</noscript>` in it.
                if el.namespace_uri() == HTML_NAMESPACE {
                    *inner.borrow_mut() = Some(String::new());
                }
                Ok(())
            }))
            .append_element_content_handler(lol_html::text!("noscript", |t| {
                if let Some(held) = inner.borrow_mut().as_mut() {
                    held.push_str(t.as_str());
                    t.remove();
                }
                Ok(())
            })),
    );
    *report = found.into_inner();
    // Fallback content that cannot be parsed is dropped rather than passed unjudged.
    let mut out = result.unwrap_or_default();
    // An inner `<noscript>` is left open at the end of the text (the outer one's text ends at
    // the first `</noscript>`): its text is the rest, written rewritten there.
    if let Some(held) = inner.into_inner() {
        if depth < MAX_NOSCRIPT_DEPTH {
            let rewritten = rewrite_noscript_at(&held, rules, granted, enforce, report, depth + 1);
            out.push_str(if enforce { &rewritten } else { &held });
        } else {
            report.record("unreadable noscript");
            if !enforce {
                out.push_str(&held);
            }
        }
    }
    out
}

/// How a `<script>` runs.
pub(super) enum ScriptKind {
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

pub(super) fn script_kind<H: lol_html::HandlerTypes>(el: &Element<'_, '_, H>) -> ScriptKind {
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

impl Ctx<'_> {
    /// An SVG inline script: neutralized in place, unread. lol_html does not follow which
    /// text belongs to it as a browser does, and its content is markup, so it can be neither
    /// judged nor held and written back (text joined across a comment can become a tag).
    pub(super) fn svg_script<H: lol_html::HandlerTypes>(&self, el: &mut Element<'_, '_, H>) {
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
    pub(super) fn inline_script(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
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
                let mut neutral = None;
                if let Some((category, vendor, action)) = &hit {
                    sh.report.record(vendor);
                    if enforce {
                        if action.unwrap_or(rules.default_action) == TagAction::Remove {
                            end.before(REMOVED, ContentType::Html);
                            return Ok(());
                        }
                        neutral = Some(category.as_str());
                    }
                }
                let held_back = neutral
                    .into_iter()
                    .flat_map(|c| [("type", "text/plain"), ("data-category", c)]);
                let own = attrs.iter().filter_map(|(name, value)| {
                    let name = match name.as_str() {
                        "data-category" if neutral.is_some() => return None,
                        "type" if neutral.is_some() => "data-type",
                        n => n,
                    };
                    Some((name, value.as_str()))
                });
                let mut html = start_tag("script", held_back.chain(own), false);
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
    pub(super) fn raw_text(
        &self,
        el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>,
        kind: RawText,
    ) {
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

impl Ctx<'_> {
    /// An SVG `<style>`: a style sheet of the page, whose content is markup. Each of its text
    /// nodes is held to its end and written back in place with its tracker URLs emptied
    /// ([`svg_style_text`]); text is never joined across markup, which could make a tag of it.
    pub(super) fn svg_style(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
        self.shared.lock().unwrap().svg_styles += 1;
        let shared = self.shared.clone();
        if let Some(handlers) = el.end_tag_handlers() {
            handlers.push(Box::new(move |_| {
                let mut sh = shared.lock().unwrap();
                sh.svg_styles = sh.svg_styles.saturating_sub(1);
                Ok(())
            }));
        }
    }
}

/// A text node of an SVG `<style>`, whole (raw: character references as written): what is
/// written in its place. Its CSS is read with references decoded; if that names a tracker URL,
/// the node is written back decoded, the URLs emptied, and escaped as text.
pub(super) fn svg_style_text(
    held: Held,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
) -> String {
    let Held { text, unreadable } = held;
    if unreadable {
        // Too long to judge: dropped (fail closed).
        report.record("unreadable style");
        return String::new();
    }
    let decoded = htmlize::unescape(&*text);
    match rewrite_css(&decoded, rules, granted, report) {
        Some(css) if enforce => html_escape::encode_text(&css).into_owned(),
        _ => text,
    }
}

/// An element whose content the parser gives as raw text, held whole to be rewritten.
#[derive(Clone, Copy)]
pub(super) enum RawText {
    Noscript,
    Style,
}
