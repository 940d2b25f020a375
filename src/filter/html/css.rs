//! Style sheets and `style` attributes: tracker URLs (`url(…)`, `@import`) emptied.

use super::state::TagReport;
use super::surgery::{attributes_of, misread_when_changed, rewrite_tags};
use crate::category::CategorySet;
use crate::policy::tags::{TagRules, TextKind};
use lol_html::html_content::Element;

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
