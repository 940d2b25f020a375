//! URLs read as browsers read them: which attributes of which element load, how a `srcset`
//! splits, and the elements judged by the URLs they load.

use super::state::TagReport;
use super::surgery::{misread_when_changed, neutralize, remove};
use super::{Ctx, HTML_NAMESPACE, SVG_NAMESPACE};
use crate::category::CategorySet;
use crate::filter::withheld;
use crate::policy::tags::{TagAction, TagRules};
use lol_html::html_content::Element;

/// The attributes through which an element loads something, by namespace and tag name. In SVG
/// only `<script>` and `<image>` load (by `href` or `xlink:href`); an `<iframe>` or `<video>`
/// there is an unknown SVG element and loads nothing, and nothing loads in MathML. (An HTML
/// `<img>` or `<embed>` inside `<svg>` closes it and is in the HTML namespace.)
pub(super) fn url_attributes(tag: &str, namespace: &str) -> &'static [&'static str] {
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

/// The URLs of a `srcset`'s image candidates, as the HTML standard splits them: a URL is a run
/// without white space (trailing commas are not part of it), and its descriptors end at a comma
/// outside parentheses. `srcset` is the attribute's value with its character references
/// decoded.
pub(super) fn srcset_urls(srcset: &str) -> impl Iterator<Item = &str> {
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

/// Judges an element by every URL it loads (each candidate of a `srcset`), and acts on it:
/// neutralized, all its URL attributes are set aside.
pub(super) fn url_element<H: lol_html::HandlerTypes>(
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
            let value = htmlize::unescape_attribute(&*value);
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

impl Ctx<'_> {
    /// `<link rel=stylesheet|icon>` that loads a tracker's URL, and
    /// `<link rel=preconnect|dns-prefetch|preload|prefetch|modulepreload>` to a tracker host.
    pub(super) fn link<H: lol_html::HandlerTypes>(&self, el: &mut Element<'_, '_, H>) {
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
}
