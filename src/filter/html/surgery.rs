//! Element surgery: an element neutralized in place, removed, or its start tag written anew.

use super::HTML_NAMESPACE;
use super::css::declarations_can_load;
use crate::category::Category;
use lol_html::html_content::{ContentType, Element};

/// Neutralizes an element in place: `type="text/plain"` (scripts), `data-category`, and the
/// URL attribute moved to `data-<attr>`.
pub(super) fn neutralize<H: lol_html::HandlerTypes>(
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
            } else if name == "style"
                && declarations_can_load(htmlize::unescape_attribute(&*value).as_bytes())
            {
                // This copy is the only one written: the `style` handler leaves an element
                // already written anew, so a style that could load a URL is dropped here.
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

/// What a removed element leaves in its place: an empty comment, so that the text before and
/// after it cannot join into a tag (`<` + `<script>…</script>` + `script>…` would read
/// `<script>…`).
pub(super) const REMOVED: &str = "<!---->";

/// Removes an element, leaving [`REMOVED`]. One that leaves foreign content (in SVG or MathML,
/// an HTML `<img>` or `<embed>` closes the `<svg>`) is replaced by an empty `<span>` instead,
/// which leaves it the same way: removed outright, what follows it would be read inside the
/// `<svg>`, where the text of a `<noscript>` is markup and a pixel in it loads.
pub(super) fn remove<H: lol_html::HandlerTypes>(el: &mut Element<'_, '_, H>) {
    let leaves_foreign_content = el.namespace_uri() == HTML_NAMESPACE
        && matches!(el.tag_name().as_str(), "img" | "image" | "embed");
    let stand_in = if leaves_foreign_content {
        "<span></span>"
    } else {
        REMOVED
    };
    el.replace(stand_in, ContentType::Html);
}

/// Whether a changed tag would read otherwise once written again. lol_html writes a changed tag
/// as its attributes joined by spaces; an attribute whose name starts with `=` (`<img a/=/'b …>`:
/// the slashes kept `a` and `=` apart) then becomes the value of the one before it, and a quote
/// after it runs on past the tag. lol_html cannot remove such an attribute.
pub(super) fn misread_when_changed<H: lol_html::HandlerTypes>(el: &Element<'_, '_, H>) -> bool {
    el.attributes().iter().any(|a| a.name().starts_with('='))
}

/// Writes an element's tags anew, with `attrs` (those whose name starts with `=` dropped);
/// its content stays as it is.
pub(super) fn rewrite_tags<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    attrs: &[(String, String)],
) {
    let tag = el.tag_name();
    let pairs = attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let start = start_tag(&tag, pairs, el.is_self_closing());
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
pub(super) fn attributes_of<H: lol_html::HandlerTypes>(
    el: &Element<'_, '_, H>,
) -> Vec<(String, String)> {
    el.attributes()
        .iter()
        .map(|a| (a.name(), a.value()))
        .collect()
}

/// A start tag: `<tag`, each attribute as `name="value"` (those whose name starts with `=`
/// dropped: see [`misread_when_changed`]), and `>` or ` />`. Values are as lol_html gives them
/// (raw source text, character references not decoded); double quotes in them are escaped.
pub(super) fn start_tag<'a>(
    tag: &str,
    attrs: impl IntoIterator<Item = (&'a str, &'a str)>,
    self_closing: bool,
) -> String {
    let mut start = format!("<{tag}");
    for (name, value) in attrs.into_iter().filter(|(n, _)| !n.starts_with('=')) {
        start.push(' ');
        start.push_str(name);
        start.push_str("=\"");
        start.push_str(&escape_attr(value));
        start.push('"');
    }
    start.push_str(if self_closing { " />" } else { ">" });
    start
}

/// An attribute value as lol_html gives it (raw source text, entities not decoded), made safe
/// inside double quotes.
fn escape_attr(v: &str) -> String {
    v.replace('"', "&quot;")
}
