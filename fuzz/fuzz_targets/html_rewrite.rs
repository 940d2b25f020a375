//! The HTML tag rewriter under the built-in tag catalogue, with only `necessary` granted, in
//! enforce mode and without Consent Mode.
//!
//! The input is a document, fed in three chunks cut at places derived from a hash of the input;
//! the same hash picks the catalogue's action (`neutralize` or `remove`) and a memory limit.
//! Checked beyond the absence of panics:
//!
//! - no tracker of the catalogue is live in the output, as lol_html parses it again: no
//!   element that loads a URL a rule matches (`<script src>` that is not `type="text/plain"`,
//!   `<img src|srcset>`, `<source src|srcset>`, `<iframe src>`, `<embed src>`,
//!   `<object data>`, `<video src|poster>`, `<audio src>`, `<track src>`, `<input src>`, SVG
//!   `<script href>` and `<image href>`; every string a browser could take for a `srcset`
//!   candidate); none in the document of an `<iframe srcdoc>`, checked the same way; no live
//!   inline `<script>` whose text holds a signature; no resource hint
//!   (`<link rel=preconnect|dns-prefetch|preload|prefetch|modulepreload>`) to a tracker host; no
//!   pixel (`<img src>`, `<iframe src>`) in the text of a `<noscript>`, read as a fragment the
//!   way the rewriter reads it. This holds for the output written before an error (a memory
//!   limit) too.
//! - the output and the report do not depend on where the chunks were cut, when both runs
//!   succeed.
//!
//! A script counts as live unless its `type` is `text/plain` or a data type (JSON, structured
//! data, an import map), which browsers neither run nor load: more than browsers run, which is
//! sound because the rewriter neutralizes a matching script of any other type. The output is
//! read by lol_html, as the rewriter reads its input: a misreading of lol_html's that the output
//! still holds goes unseen here (see fuzz/artifacts-found/html_rewrite/README.md).

#![no_main]

use consent_proxy::category::CategorySet;
use consent_proxy::filter::html::{
    TagReport, TagRules, document_encoding, is_inert_type, rewriter,
};
use consent_proxy::filter::tags::TextKind;
use consent_proxy::policy;
use libfuzzer_sys::fuzz_target;
use lol_html::html_content::{Element, EndTag, TextChunk};
use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, MemorySettings, Settings, element, text};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

const GRANTED: CategorySet = CategorySet::NECESSARY;

/// Memory limits the rewriter runs under: small (a long tag or attribute exceeds it, the
/// seeds do not), the smallest the configuration accepts, and the default.
const MEMORY_LIMITS: [usize; 3] = [12 << 10, 64 << 10, 16 << 20];

/// The built-in catalogue with each action.
struct Catalogues {
    neutralize: Arc<TagRules>,
    remove: Arc<TagRules>,
}

fn catalogues() -> &'static Catalogues {
    static RULES: OnceLock<Catalogues> = OnceLock::new();
    RULES.get_or_init(|| Catalogues {
        neutralize: policy::builtin()
            .expect("the built-in policy compiles")
            .tags,
        remove: policy::compile("fuzz.yaml", "extends: builtin\ntag_action: remove\n")
            .expect("the built-in catalogue with remove compiles")
            .tags,
    })
}

/// FNV-1a: where to cut, which action, which limit.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one rewrite produced.
struct Rewritten {
    output: Vec<u8>,
    /// Whether every write and the end succeeded.
    ok: bool,
    report: TagReport,
}

/// Rewrites `html` fed in pieces cut at `cuts` (ascending), stopping at the first error.
fn rewrite(rules: &Arc<TagRules>, html: &[u8], cuts: &[usize], max_memory: usize) -> Rewritten {
    let mut output = Vec::new();
    let (ok, report) = {
        let sink = |c: &[u8]| output.extend_from_slice(c);
        let encoding = document_encoding(None).expect("UTF-8 is readable");
        let (mut rw, handle) = rewriter(
            rules.clone(),
            GRANTED,
            true,
            max_memory,
            encoding,
            None,
            sink,
        );
        let mut start = 0;
        let mut ok = true;
        for &cut in cuts.iter().chain(std::iter::once(&html.len())) {
            if rw.write(&html[start..cut]).is_err() {
                ok = false;
                break;
            }
            start = cut;
        }
        ok = ok && rw.end().is_ok();
        (ok, handle.report())
    };
    Rewritten { output, ok, report }
}

/// The elements that load a URL by an attribute.
const LOADERS: &str =
    "script, img, iframe, source, embed, object, image, video, audio, track, input";

const SVG: &str = "http://www.w3.org/2000/svg";
const HTML: &str = "http://www.w3.org/1999/xhtml";

/// The attributes through which an element loads a URL, by namespace: in SVG only `<script>`
/// and `<image>` load (by `href` or `xlink:href`; SVG ignores `src`), nothing loads in MathML;
/// in HTML an `<image>` is read as `<img>`, and `<input src>` loads only as `type=image`
/// (checked whatever its type).
fn loading_attributes(tag: &str, namespace: &str) -> &'static [&'static str] {
    match (namespace, tag) {
        (SVG, "script" | "image") => &["href", "xlink:href"],
        (HTML, "script") => &["src"],
        (HTML, "img" | "image" | "source") => &["src", "srcset"],
        (HTML, "iframe" | "embed" | "audio" | "track" | "input") => &["src"],
        (HTML, "video") => &["src", "poster"],
        (HTML, "object") => &["data"],
        _ => &[],
    }
}

/// Every string a browser could take for a candidate URL of `srcset` (character references
/// decoded), and more: each run without white space, and each of its parts after a comma, with
/// trailing commas cut. A browser's URL is the whole run or starts after a comma that ended the
/// descriptors before it.
fn srcset_superset(srcset: &str) -> Vec<String> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
    let mut urls = Vec::new();
    for run in srcset.split(ws).filter(|r| !r.is_empty()) {
        let starts = std::iter::once(0).chain(run.match_indices(',').map(|(i, _)| i + 1));
        for start in starts {
            let url = run[start..].trim_end_matches(',');
            if !url.is_empty() && !url.starts_with(',') {
                urls.push(url.to_string());
            }
        }
    }
    urls
}

/// Whether a script with this `type` attribute runs (over-approximated: see the module doc).
fn live_script(ty: Option<&str>) -> bool {
    ty.is_none_or(|t| !is_inert_type(t))
}

/// An element whose text is judged at its end tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Noscript,
    /// A live inline script.
    Script,
    Style,
}

/// Every tracker URL a style sheet names, as the rewriter finds them.
fn css_trackers(rules: &TagRules, css: &str, what: &str) -> Vec<String> {
    rules
        .named_trackers(css, TextKind::Style, GRANTED, false)
        .map(|(m, rule)| format!("{what} {:?} ({})", &css[m.start..m.end], rule.vendor))
        .collect()
}

/// What the checks found, and the inline script and `<noscript>` being read.
#[derive(Default)]
struct Findings {
    live: Vec<String>,
    /// Text of the innermost open inline script, `<noscript>` or `<style>`.
    open: Vec<(Held, String)>,
}

/// Every live tracker in `output`, as lol_html parses it with the rewriter's settings.
fn live_trackers(rules: &Arc<TagRules>, output: &[u8]) -> Vec<String> {
    let found = Rc::new(RefCell::new(Findings::default()));
    let (f1, f2, f3, f4) = (found.clone(), found.clone(), found.clone(), found.clone());
    let f5 = found.clone();
    let (r1, r2, r5) = (rules.clone(), rules.clone(), rules.clone());
    let settings = Settings::new()
        .with_encoding(AsciiCompatibleEncoding::utf_8())
        .with_adjust_charset_on_meta_tag(true)
        .with_strict(false)
        .with_memory_settings(MemorySettings::new())
        .append_element_content_handler(element!(LOADERS, move |el| {
            let tag = el.tag_name();
            let live = tag != "script" || live_script(el.get_attribute("type").as_deref());
            let namespace = el.namespace_uri();
            for attr in loading_attributes(&tag, &namespace).iter().filter(|_| live) {
                let Some(value) = el.get_attribute(attr) else {
                    continue;
                };
                let urls = if *attr == "srcset" {
                    srcset_superset(&html_escape::decode_html_entities(&value))
                } else {
                    vec![value]
                };
                for url in urls {
                    if let Some(rule) = r1.match_url(&url, GRANTED, false) {
                        f1.borrow_mut()
                            .live
                            .push(format!("<{tag} {attr}={url:?}> ({})", rule.vendor));
                    }
                }
            }
            if tag == "iframe"
                && namespace == HTML
                && let Some(doc) = el.get_attribute("srcdoc")
            {
                let doc = html_escape::decode_html_entities(&doc);
                let inner = live_trackers(&r1, doc.as_bytes());
                f1.borrow_mut()
                    .live
                    .extend(inner.into_iter().map(|t| format!("<iframe srcdoc> {t}")));
            }
            Ok(())
        }))
        .append_element_content_handler(element!("link[href]", move |el| {
            // Only an HTML `<link>` hints.
            if el.namespace_uri() != HTML {
                return Ok(());
            }
            let rel = el
                .get_attribute("rel")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let hint = rel.split_ascii_whitespace().any(|t| {
                matches!(
                    t,
                    "preconnect" | "dns-prefetch" | "preload" | "prefetch" | "modulepreload"
                )
            });
            let href = el.get_attribute("href").unwrap_or_default();
            let loads = rel
                .split_ascii_whitespace()
                .any(|t| matches!(t, "stylesheet" | "icon"));
            if loads && let Some(rule) = r2.match_url(&href, GRANTED, false) {
                f2.borrow_mut().live.push(format!(
                    "<link rel={rel:?} href={href:?}> ({})",
                    rule.vendor
                ));
            } else if hint && let Some(rule) = r2.match_host(&href, GRANTED, false) {
                f2.borrow_mut().live.push(format!(
                    "<link rel={rel:?} href={href:?}> ({})",
                    rule.vendor
                ));
            }
            Ok(())
        }))
        .append_element_content_handler(element!("script, noscript, style", move |el| {
            opened(el, &f3, rules);
            Ok(())
        }))
        .append_element_content_handler(element!("[style]", move |el| {
            let css = html_escape::decode_html_entities(&el.get_attribute("style").unwrap_or_default())
                .into_owned();
            let found = css_trackers(&r5, &css, "style attribute");
            f5.borrow_mut().live.extend(found);
            Ok(())
        }))
        .append_element_content_handler(text!("script, noscript, style", move |t: &mut TextChunk| {
            if let Some((_, text)) = f4.borrow_mut().open.last_mut() {
                text.push_str(t.as_str());
            }
            Ok(())
        }));
    let mut rw = HtmlRewriter::new(settings, |_: &[u8]| {});
    // The output of a rewriter that stopped may end anywhere: an error here only ends the
    // reading.
    if rw.write(output).is_ok() {
        let _ = rw.end();
    }
    std::mem::take(&mut found.borrow_mut().live)
}

/// An inline script or a `<noscript>` starts: its text is judged at its end tag. One never
/// closed is not judged: a browser does not run a script cut off by the end of the document.
fn opened(el: &mut Element<'_, '_>, found: &Rc<RefCell<Findings>>, rules: &Arc<TagRules>) {
    let held = match el.tag_name().as_str() {
        // Only an HTML `<noscript>` or `<style>` holds raw text; in SVG or MathML the
        // children of a `<noscript>` are elements, judged one by one.
        "noscript" if el.namespace_uri() == HTML => Held::Noscript,
        "style" if el.namespace_uri() == HTML => Held::Style,
        "script" => {
            // A script runs its own text without `src` in HTML, without `href` in SVG (which
            // ignores `src`); a MathML `<script>` runs nothing.
            let external = match el.namespace_uri() {
                SVG => el.has_attribute("href") || el.has_attribute("xlink:href"),
                HTML => el.has_attribute("src"),
                _ => true,
            };
            let ty = el.get_attribute("type");
            if external || !live_script(ty.as_deref()) {
                return;
            }
            Held::Script
        }
        _ => return,
    };
    let Some(handlers) = el.end_tag_handlers() else {
        return;
    };
    found.borrow_mut().open.push((held, String::new()));
    let (found, rules) = (found.clone(), rules.clone());
    handlers.push(Box::new(move |_: &mut EndTag<'_>| {
        let mut f = found.borrow_mut();
        let Some((held, text)) = f.open.pop() else {
            return Ok(());
        };
        match held {
            Held::Noscript => {
                let pixels = noscript_pixels(&rules, &text);
                f.live.extend(pixels);
            }
            Held::Style => {
                let urls = css_trackers(&rules, &text, "<style>");
                f.live.extend(urls);
            }
            Held::Script => {
                if let Some(hit) = rules.match_script(&text, GRANTED, false) {
                    f.live
                        .push(format!("inline script {text:?} ({})", hit.vendor));
                }
            }
        }
        Ok(())
    }));
}

/// Pixels in the text of a `<noscript>`, read as an HTML fragment as the rewriter reads it. The
/// selector is the rewriter's: lol_html tokenizes a tag no selector names by a faster scanner,
/// which reads `<script a=>` differently (what follows it is markup, not script text).
fn noscript_pixels(rules: &TagRules, text: &str) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let _ = lol_html::rewrite_str(
        text,
        lol_html::RewriteStrSettings::new().append_element_content_handler(element!(
            "img, iframe, script, embed, object, image, source, video, audio, track, input",
            |el| {
                let tag = el.tag_name();
                // Scripts do not run where `<noscript>` content shows.
                if tag == "script" {
                    return Ok(());
                }
                let namespace = el.namespace_uri();
                for attr in loading_attributes(&tag, &namespace) {
                    let Some(value) = el.get_attribute(attr) else {
                        continue;
                    };
                    let urls = if *attr == "srcset" {
                        srcset_superset(&html_escape::decode_html_entities(&value))
                    } else {
                        vec![value]
                    };
                    for url in urls {
                        if let Some(rule) = rules.match_url(&url, GRANTED, false) {
                            found.borrow_mut().push(format!(
                                "<noscript><{tag} {attr}={url:?}> ({})",
                                rule.vendor
                            ));
                        }
                    }
                }
                Ok(())
            }
        )),
    );
    found.into_inner()
}

fuzz_target!(|data: &[u8]| {
    let h = hash(data);
    let len = data.len() as u64;
    let mut cuts = [(h % (len + 1)) as usize, ((h >> 24) % (len + 1)) as usize];
    cuts.sort_unstable();
    let c = catalogues();
    let rules = if (h >> 48) & 1 == 0 {
        &c.neutralize
    } else {
        &c.remove
    };
    let max_memory = MEMORY_LIMITS[((h >> 49) % MEMORY_LIMITS.len() as u64) as usize];

    let split = rewrite(rules, data, &cuts, max_memory);
    let live = live_trackers(rules, &split.output);
    assert!(
        live.is_empty(),
        "trackers live in the output ({}): {live:#?}\noutput: {:?}",
        if split.ok {
            "complete"
        } else {
            "cut short by an error"
        },
        String::from_utf8_lossy(&split.output)
    );

    let whole = rewrite(rules, data, &[], max_memory);
    if split.ok && whole.ok {
        assert_eq!(
            String::from_utf8_lossy(&split.output),
            String::from_utf8_lossy(&whole.output),
            "the output depends on the cuts {cuts:?}"
        );
        assert_eq!(
            split.output, whole.output,
            "the output depends on the cuts {cuts:?}"
        );
        assert_eq!(
            split.report, whole.report,
            "the report depends on the cuts {cuts:?}"
        );
    } else if whole.ok {
        // Whole, the document was rewritten: the output must be clean too.
        let live = live_trackers(rules, &whole.output);
        assert!(live.is_empty(), "trackers live in the output: {live:#?}");
    }
});
