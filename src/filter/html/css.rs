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
///
/// URLs are looked for in the text as the CSS tokenizer reads it, escapes decoded
/// (`www\2e facebook\2e com` is `www.facebook.com`), and emptied where they are written.
pub(super) fn rewrite_css(
    text: &str,
    rules: &TagRules,
    granted: CategorySet,
    report: &mut TagReport,
) -> Option<String> {
    let unescaped;
    let (read, origin) = if text.contains('\\') {
        unescaped = unescape_css(text);
        (unescaped.0.as_str(), Some(&unescaped.1))
    } else {
        (text, None)
    };
    // Where the byte `i` of what was read starts in `text` (its end for `read.len()`).
    let at = |i: usize| origin.map_or(i, |o| o.get(i).copied().unwrap_or(text.len()));
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for (m, rule) in rules.named_trackers(read, TextKind::Style, granted, false) {
        report.record(&rule.vendor);
        let (start, end) = (at(m.start), at(m.end));
        // Mentions do not overlap, and an escape maps to one place: `start >= last`.
        out.push_str(&text[last..start.max(last)]);
        out.push_str("data:,");
        last = end.max(last);
        changed = true;
    }
    changed.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// CSS text with its escapes decoded (CSS Syntax, "consume an escaped code point": up to six
/// hex digits and one white space after them, or the character escaped; zero, a surrogate or a
/// value past U+10FFFF is U+FFFD; a backslash before a newline is dropped, as in a string), and
/// for each byte of the result the offset in `text` where the character it belongs to starts.
fn unescape_css(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    let mut push = |out: &mut String, c: char, from: usize| {
        out.push(c);
        origin.resize(out.len(), from);
    };
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            push(&mut out, c, i);
            continue;
        }
        match chars.peek().copied() {
            None => push(&mut out, '\u{FFFD}', i),
            Some((_, '\n' | '\r' | '\u{c}')) => {
                chars.next();
            }
            Some((_, h)) if h.is_ascii_hexdigit() => {
                let mut value = 0u32;
                for _ in 0..6 {
                    match chars.peek().and_then(|&(_, d)| d.to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                if matches!(chars.peek(), Some((_, ' ' | '\t' | '\n' | '\r' | '\u{c}'))) {
                    chars.next();
                }
                let c = char::from_u32(value)
                    .filter(|&c| c != '\0')
                    .unwrap_or('\u{FFFD}');
                push(&mut out, c, i);
            }
            Some((_, other)) => {
                chars.next();
                push(&mut out, other, i);
            }
        }
    }
    (out, origin)
}

/// A `style` attribute that names a tracker's URL: the URL is emptied.
pub(super) fn style_attribute<H: lol_html::HandlerTypes>(
    el: &mut Element<'_, '_, H>,
    rules: &TagRules,
    granted: CategorySet,
    enforce: bool,
    report: &mut TagReport,
) {
    // Removed, or written anew by the element's own handler (which runs first): the copy
    // written holds no style that could load.
    if el.removed() {
        return;
    }
    let Some(value) = el.get_attribute("style") else {
        return;
    };
    // A host has a dot, written or escaped.
    if !value.contains(['.', '\\', '&']) {
        return;
    }
    let decoded = htmlize::unescape_attribute(&*value);
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
    use super::{declarations_can_load, unescape_css};

    #[test]
    fn css_escapes_are_decoded_with_where_each_character_came_from() {
        let (text, origin) = unescape_css(
            r"a\2e b\.c\000000d\1F600 e\
f\",
        );
        assert_eq!(text, "a.b.c\u{FFFD}d\u{1F600}ef\u{FFFD}");
        // `.` from `\2e ` (offset 1), `b` at 5, `.` from `\.` at 6, `c` at 8 ...
        assert_eq!(&origin[..5], &[0, 1, 5, 6, 8]);
        assert_eq!(origin.len(), text.len());
    }

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
