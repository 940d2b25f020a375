//! Style sheets and `style` attributes: tracker URLs (`url(…)`, `@import`) emptied.

use super::state::TagReport;
use super::surgery::{attributes_of, misread_when_changed, rewrite_tags};
use crate::category::CategorySet;
use crate::policy::tags::{TagRules, TextKind};
use lol_html::html_content::Element;

/// Whether CSS declarations (a `style` attribute's, character references decoded) can load a
/// URL: a function whose name ends in `url`, `image`, `image-set`, `cross-fade` or `src`
/// (`url(`, `-webkit-image-set(`, in any case), or any escape (`u\72l(` is `url(`). A
/// declaration block cannot `@import`. `rgba(`, `calc(`, `var(` load nothing.
pub(super) fn declarations_can_load(css: &[u8]) -> bool {
    const LOADERS: [&[u8]; 5] = [b"url", b"image", b"image-set", b"cross-fade", b"src"];
    if css.contains(&b'\\') {
        return true;
    }
    memchr::memchr_iter(b'(', css).any(|paren| {
        let name = &css[..paren];
        let start = name
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
            .map_or(0, |i| i + 1);
        let name = &name[start..];
        LOADERS
            .iter()
            .any(|l| name.len() >= l.len() && name[name.len() - l.len()..].eq_ignore_ascii_case(l))
    })
}

/// The value CSS `text` becomes with every URL of a tracker whose category is denied replaced
/// by an empty `data:` URL (which loads nothing), each recorded; `None` if it names none.
pub(super) fn rewrite_css(
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
pub(super) fn style_attribute<H: lol_html::HandlerTypes>(
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
    // Declarations that load nothing name no tracker to empty (a host in a custom property,
    // in `content: "…"`, is text).
    if !declarations_can_load(decoded.as_bytes()) {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::declarations_can_load;

    #[test]
    fn only_declarations_with_a_loading_function_can_load() {
        for css in [
            "background:url(https://t.example/p.gif)",
            "background: URL( 'x' )",
            "b:-webkit-image-set('a.png' 1x)",
            "b:image-set(\"a.png\" 1x)",
            "b:cross-fade(url(a), url(b))",
            "b:u\\72l(x)",
            "b:src(\"x\")",
        ] {
            assert!(declarations_can_load(css.as_bytes()), "{css}");
        }
        for css in [
            "color:red",
            "color:rgba(0,0,0,.5);width:calc(100% - var(--gap))",
            "--tracker: www.google-analytics.com",
            "content: 'url'",
            "b:u/**/rl(x)",
        ] {
            assert!(!declarations_can_load(css.as_bytes()), "{css}");
        }
    }
}
