//! The HTML tag rewriter under the built-in tag catalogue, with only `necessary` granted, in
//! enforce mode and without Consent Mode.
//!
//! The input is a document, fed in three chunks cut at places derived from a hash of the input;
//! the same hash picks the catalogue's action (`neutralize` or `remove`) and a memory limit.
//! Checked beyond the absence of panics:
//!
//! - no tracker of the catalogue is live in the output, as a browser parses it: the output is
//!   read by html5ever's tree builder (the HTML Standard's tree construction, foreign content
//!   and all, scripting on), and the tree is walked. Live is: an element that loads a URL a
//!   rule matches (HTML `<script src>` of a type that runs, `<img src|srcset>`,
//!   `<source src|srcset>`, `<iframe src>`, `<embed src>`, `<object data>`,
//!   `<video src|poster>`, `<audio src>`, `<track src>`, `<input src>`; SVG `<script href>`
//!   and `<image href>`, `href` or `xlink:href`; the URL of each `srcset` candidate, split as
//!   the HTML Standard splits them; each URL as a browser parses it, against a page of either
//!   scheme,
//!   `http` or `https`); the same in the document of an `<iframe srcdoc>`; an inline script
//!   (HTML, or SVG without `href`) whose text holds a signature or names a tracker URL; a
//!   `<link rel=stylesheet|icon>` to a tracker URL or a resource hint
//!   (`rel=preconnect|dns-prefetch|preload|prefetch|modulepreload`) to a tracker host; a style
//!   sheet (`<style>`, HTML or SVG, and a `style` attribute with a function that loads, `url(`
//!   and the like) naming a tracker URL, CSS escapes decoded; and a pixel
//!   (the loaders above but scripts) in the text of an HTML `<noscript>`, read as a fragment
//!   with scripting off, as a browser without scripting would read it. This holds for the
//!   output written before an error (a memory limit) too.
//! - the output and the report do not depend on where the chunks were cut, when both runs
//!   succeed: the document is rewritten again whole, the rewriter told which kinds of element
//!   it holds ([`Kinds::of`]), as the proxy does for a whole body.
//!
//! Which element is HTML and which SVG or MathML, where an element ends and whether a
//! `<script>`'s text is raw text or markup is decided by html5ever's tree, as in a browser, not
//! by lol_html, which the rewriter reads with: lol_html builds no tree, and where it misreads
//! the output as it misread the input, a check that used it again was as blind as the rewriter
//! (fuzz/artifacts-found/html_rewrite/README.md, 2 and 5), and where it misread the output
//! alone it reported trackers no browser runs (15).
//!
//! Kept on the safe side: a script counts as live unless its `type` is `text/plain` or a data
//! type (JSON, structured data, an import map), which browsers neither run nor load; `<input
//! src>` whatever its type; the contents of every `<template>` as if they were in the page (a
//! page's code may clone them in). An HTML script that the document ends inside is not run by
//! a browser (the tree builder marks it "already started"), and is not judged.
//!
//! The encoding is decided as the proxy decides it for a page whose `Content-Type` names none
//! (src/proxy/body.rs, `read_encoding`): a byte order mark (UTF-8; a UTF-16 input is skipped, the
//! proxy refuses it), else the `<meta>` the prescan of the first 1024 bytes finds (an input whose
//! `<meta>` names an encoding that is not ASCII-compatible is skipped: the proxy refuses it),
//! else UTF-8; the rewriter reads the whole document in it. The output is decoded as a browser
//! decodes the proxy's response, which names that encoding in its `Content-Type`: by a byte
//! order mark, else by that charset. (Without either, as in the input seen alone: the prescan,
//! else the first `<meta charset>` or `<meta http-equiv=content-type>` the tree has, the
//! document read again in it as the HTML Standard's "change the encoding" does, else UTF-8.)
//!
//! Environment:
//!
//! - `FUZZ_HTML_REWRITE_SKIP`, a comma-separated list, leaves out classes of findings recorded
//!   in fuzz/artifacts-open/html_rewrite, so that a run can look for others:
//!   - `svg-style`: the text of an SVG `<style>` that holds more than one node (text split by
//!     a comment or an element);
//!   - `encoding`: a document a browser may decode otherwise than the rewriter (a byte order
//!     mark and a `charset`, a `<meta>` of an encoding that is not ASCII-compatible, a byte past
//!     ASCII before a `<meta>` that the prescan of the first 1024 bytes does not find);
//! - `FUZZ_HTML_REWRITE_DEBUG`, set, prints the trackers live in the input, and each output
//!   with the tree html5ever builds from it; `FUZZ_HTML_REWRITE_OUT=FILE` writes the last
//!   output read to FILE.

#![no_main]

use consent_proxy::category::CategorySet;
use consent_proxy::filter::html::{
    AsciiCompatibleEncoding, Kinds, Params, TagReport, TagRules, document_encoding, is_inert_type,
    prescan, rewriter,
};
use consent_proxy::filter::tags::TextKind;
use consent_proxy::policy;
use html5ever::interface::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::TreeBuilderOpts;
use html5ever::{
    Attribute, ExpandedName, ParseOpts, QualName, local_name, ns, parse_document, parse_fragment,
};
use libfuzzer_sys::fuzz_target;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use std::borrow::Cow;
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

/// Classes of findings left out of this run (`FUZZ_HTML_REWRITE_SKIP`).
struct Skip {
    svg_style: bool,
    encoding: bool,
}

fn skip() -> &'static Skip {
    static SKIP: OnceLock<Skip> = OnceLock::new();
    SKIP.get_or_init(|| {
        let list = std::env::var("FUZZ_HTML_REWRITE_SKIP").unwrap_or_default();
        let has = |name: &str| list.split(',').any(|s| s.trim() == name);
        Skip {
            svg_style: has("svg-style"),
            encoding: has("encoding"),
        }
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

/// How the proxy decides the encoding (src/proxy/body.rs, `read_encoding`): `Ok(None)` for a
/// byte order mark (UTF-8, which a browser follows too); else the encoding a `<meta>` in the
/// first 1024 bytes declares, or UTF-8, which the proxy then names in the response's
/// `Content-Type`; `Err` for a `<meta>` naming one the rewriter cannot read (the proxy answers
/// 502, sending nothing).
fn declared(html: &[u8]) -> Result<Option<AsciiCompatibleEncoding>, ()> {
    if encoding_rs::Encoding::for_bom(html).is_some() {
        return Ok(None);
    }
    match prescan(&html[..html.len().min(1024)]) {
        None => Ok(Some(AsciiCompatibleEncoding::utf_8())),
        Some(e) => AsciiCompatibleEncoding::new(e).map(Some).ok_or(()),
    }
}

/// Rewrites `html` fed in pieces cut at `cuts` (ascending), stopping at the first error. In
/// pieces the rewriter cannot know which kinds of element the document holds
/// ([`Kinds::ALL`]); whole (no cuts), it is told, as the proxy tells it for a whole body.
fn rewrite(rules: &Arc<TagRules>, html: &[u8], cuts: &[usize], max_memory: usize) -> Rewritten {
    let mut output = Vec::new();
    let (ok, report) = {
        let sink = |c: &[u8]| output.extend_from_slice(c);
        let mut params = Params::new(rules.clone(), GRANTED, max_memory);
        params.encoding = document_encoding(None).expect("UTF-8 is readable");
        // As the proxy decides the encoding (src/proxy/body.rs, `read_encoding`): a byte order
        // mark says UTF-8, over any `<meta charset>`; without one, the prescan of the first
        // 1024 bytes.
        match declared(html) {
            Ok(Some(e)) => params.encoding = (e, false),
            _ => params.encoding = (params.encoding.0, false),
        }
        params.kinds = if cuts.is_empty() {
            Kinds::of(html)
        } else {
            Kinds::ALL
        };
        let (mut rw, handle) = rewriter(params, sink);
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

const SVG: &str = "http://www.w3.org/2000/svg";
const HTML: &str = "http://www.w3.org/1999/xhtml";
const XLINK: &str = "http://www.w3.org/1999/xlink";

/// The attributes through which an element loads a URL, by namespace: in SVG only `<script>`
/// and `<image>` load (by `href` or `xlink:href`; SVG ignores `src`), nothing loads in MathML;
/// `<input src>` loads only as `type=image` (checked whatever its type). (The tree builder
/// turns an HTML `<image>` into `<img>`.)
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

/// The URL of each image candidate of a `srcset`, as the HTML Standard's "parse a srcset
/// attribute" splits them: after white space and commas, a URL runs to the next white space
/// (trailing commas cut; then it has no descriptors), and its descriptors to the next comma
/// outside parentheses. Candidates whose descriptors a browser rejects are kept: any may load.
fn srcset_urls(srcset: &str) -> Vec<String> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
    let chars: Vec<char> = srcset.chars().collect();
    let mut urls = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && (ws(chars[i]) || chars[i] == ',') {
            i += 1;
        }
        if i == chars.len() {
            return urls;
        }
        let start = i;
        while i < chars.len() && !ws(chars[i]) {
            i += 1;
        }
        let url: String = chars[start..i].iter().collect();
        if url.ends_with(',') {
            urls.push(url.trim_end_matches(',').to_string());
            continue;
        }
        urls.push(url);
        let mut parens = false;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                ')' if parens => parens = false,
                '(' if !parens => parens = true,
                ',' if !parens => break,
                _ => {}
            }
        }
    }
}

/// Whether a script with this `type` attribute runs (over-approximated: see the module doc).
fn live_script(ty: Option<&str>) -> bool {
    ty.is_none_or(|t| !is_inert_type(t))
}

/// CSS text with its escapes decoded (`\2e ` is `.`, `\/` is `/`), as the CSS tokenizer reads
/// names, strings and URLs; an escaped newline is dropped.
fn css_unescape(css: &str) -> Cow<'_, str> {
    if !css.contains('\\') {
        return Cow::Borrowed(css);
    }
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6
            && let Some(h) = chars.peek().filter(|h| h.is_ascii_hexdigit())
        {
            hex.push(*h);
            chars.next();
        }
        if hex.is_empty() {
            match chars.next() {
                Some('\n' | '\x0c') | None => {}
                Some('\r') => {
                    chars.next_if_eq(&'\n');
                }
                Some(other) => out.push(other),
            }
            continue;
        }
        let code = u32::from_str_radix(&hex, 16).unwrap_or(0);
        out.push(match char::from_u32(code) {
            Some(ch) if code != 0 => ch,
            _ => '\u{FFFD}',
        });
        // One white space after a hex escape belongs to it.
        match chars.peek() {
            Some(' ' | '\t' | '\n' | '\x0c') => {
                chars.next();
            }
            Some('\r') => {
                chars.next();
                chars.next_if_eq(&'\n');
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// Whether CSS declarations (a `style` attribute's) can load anything: only through a function
/// that takes a URL or an image (`url(`, `src(`, `image(`, `image-set(`, `cross-fade(`, with
/// or without a vendor prefix, in any case); a declaration block cannot `@import`. Read after
/// [`css_unescape`], so that an escaped name counts.
fn declarations_load(css: &str) -> bool {
    const LOADERS: [&str; 5] = ["url", "src", "image", "image-set", "cross-fade"];
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii();
    css.match_indices('(').any(|(paren, _)| {
        let name = &css[..paren];
        let start = name
            .char_indices()
            .rev()
            .find(|&(_, c)| !ident(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = name[start..].to_ascii_lowercase();
        let name = ["-webkit-", "-moz-", "-o-", "-ms-"]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name);
        LOADERS.contains(&name)
    })
}

/// Every tracker URL a style sheet names (its escapes decoded), as the rewriter finds them.
fn css_trackers(rules: &TagRules, css: &str, what: &str) -> Vec<String> {
    let css = css_unescape(css);
    rules
        .named_trackers(&css, TextKind::Style, GRANTED, false)
        .map(|(m, rule)| format!("{what} {:?} ({})", &css[m.start..m.end], rule.vendor))
        .collect()
}

/// html5ever's reference DOM, which also records the HTML scripts the tree builder marks
/// "already started" (those the document ends inside, which a browser does not run).
struct Dom {
    dom: RcDom,
    not_run: RefCell<Vec<Handle>>,
}

impl TreeSink for Dom {
    type Handle = Handle;
    type Output = Self;
    type ElemName<'a>
        = ExpandedName<'a>
    where
        Self: 'a;

    fn finish(self) -> Self {
        self
    }
    fn parse_error(&self, _msg: Cow<'static, str>) {}
    fn get_document(&self) -> Handle {
        self.dom.get_document()
    }
    fn elem_name<'a>(&'a self, target: &'a Handle) -> ExpandedName<'a> {
        self.dom.elem_name(target)
    }
    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> Handle {
        self.dom.create_element(name, attrs, flags)
    }
    fn create_comment(&self, text: StrTendril) -> Handle {
        self.dom.create_comment(text)
    }
    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Handle {
        self.dom.create_pi(target, data)
    }
    fn append(&self, parent: &Handle, child: NodeOrText<Handle>) {
        self.dom.append(parent, child)
    }
    fn append_based_on_parent_node(
        &self,
        element: &Handle,
        prev_element: &Handle,
        child: NodeOrText<Handle>,
    ) {
        self.dom
            .append_based_on_parent_node(element, prev_element, child)
    }
    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.dom
            .append_doctype_to_document(name, public_id, system_id)
    }
    fn mark_script_already_started(&self, node: &Handle) {
        self.not_run.borrow_mut().push(node.clone());
    }
    fn get_template_contents(&self, target: &Handle) -> Handle {
        self.dom.get_template_contents(target)
    }
    fn same_node(&self, x: &Handle, y: &Handle) -> bool {
        self.dom.same_node(x, y)
    }
    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.dom.set_quirks_mode(mode)
    }
    fn append_before_sibling(&self, sibling: &Handle, new_node: NodeOrText<Handle>) {
        self.dom.append_before_sibling(sibling, new_node)
    }
    fn add_attrs_if_missing(&self, target: &Handle, attrs: Vec<Attribute>) {
        self.dom.add_attrs_if_missing(target, attrs)
    }
    fn remove_from_parent(&self, target: &Handle) {
        self.dom.remove_from_parent(target)
    }
    fn reparent_children(&self, node: &Handle, new_parent: &Handle) {
        self.dom.reparent_children(node, new_parent)
    }
    fn is_mathml_annotation_xml_integration_point(&self, handle: &Handle) -> bool {
        self.dom.is_mathml_annotation_xml_integration_point(handle)
    }
    fn maybe_clone_an_option_into_selectedcontent(&self, option: &Handle) {
        self.dom.maybe_clone_an_option_into_selectedcontent(option)
    }
}

impl Dom {
    fn new() -> Self {
        Dom {
            dom: RcDom::default(),
            not_run: RefCell::new(Vec::new()),
        }
    }
}

/// Parses a document, scripting on.
fn parse(text: &str, srcdoc: bool) -> Dom {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: true,
            iframe_srcdoc: srcdoc,
            ..Default::default()
        },
        ..Default::default()
    };
    parse_document(Dom::new(), opts).one(text)
}

/// Parses the text of a `<noscript>` as a browser without scripting parses it in `<body>`.
fn parse_noscript(text: &str) -> Dom {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let body = QualName::new(None, ns!(html), local_name!("body"));
    parse_fragment(Dom::new(), opts, body, Vec::new(), false).one(text)
}

/// Every node of the tree under `root` (`<template>` contents included) in document order.
fn nodes(root: &Handle) -> Vec<Handle> {
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        if let NodeData::Element {
            template_contents, ..
        } = &node.data
            && let Some(contents) = template_contents.borrow().as_ref()
        {
            stack.push(contents.clone());
        }
        stack.extend(node.children.borrow().iter().rev().cloned());
        out.push(node);
    }
    out
}

/// The value of an attribute by the name it is written with: `xlink:href` on an SVG element
/// is `href` in the XLink namespace (the tree builder adjusts foreign attributes).
fn attr(attrs: &[Attribute], namespace: &str, name: &str) -> Option<String> {
    let (ns, local) = match name.split_once(':') {
        Some(("xlink", local)) if namespace != HTML => (XLINK, local),
        _ => ("", name),
    };
    attrs
        .iter()
        .find(|a| &*a.name.ns == ns && &*a.name.local == local)
        .map(|a| a.value.to_string())
}

/// An element's child text content: the text a `<script>` runs, a `<style>` applies.
fn child_text(node: &Handle) -> String {
    let mut text = String::new();
    for child in node.children.borrow().iter() {
        if let NodeData::Text { contents } = &child.data {
            text.push_str(&contents.borrow());
        }
    }
    text
}

/// The encoding a `<meta>` declares (the HTML Standard's "extracting a character encoding from
/// a meta element" for `http-equiv=content-type`).
fn meta_encoding(attrs: &[Attribute]) -> Option<&'static encoding_rs::Encoding> {
    if let Some(label) = attr(attrs, HTML, "charset") {
        return encoding_rs::Encoding::for_label(label.as_bytes());
    }
    let equiv = attr(attrs, HTML, "http-equiv")?;
    if !equiv.eq_ignore_ascii_case("content-type") {
        return None;
    }
    let content = attr(attrs, HTML, "content")?;
    let lower = content.to_ascii_lowercase();
    let mut from = 0;
    loop {
        let at = from + lower[from..].find("charset")?;
        let rest = lower[at + 7..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        let Some(rest) = rest.strip_prefix('=') else {
            from = at + 7;
            continue;
        };
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => &rest[1..rest[1..].find(q)? + 1],
            _ => rest
                .split(|c: char| c.is_ascii_whitespace() || c == ';')
                .next()
                .unwrap_or(""),
        };
        return encoding_rs::Encoding::for_label(value.as_bytes());
    }
}

/// The document a browser reads from `bytes` (see the module doc for the encoding); `None`
/// when the `encoding` class is left out and the browser may decode it otherwise than the
/// rewriter.
fn decode_and_parse(bytes: &[u8], header: Option<&'static encoding_rs::Encoding>) -> Option<Dom> {
    let charset = bytes
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b"charset"));
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        if skip().encoding && charset.is_some() {
            return None;
        }
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return Some(parse(&text, false));
    }
    // The `Content-Type` charset comes next; the proxy names there the encoding a `<meta>` in
    // the first bytes declared, which it read the page in.
    if let Some(e) = header {
        let (text, _) = e.decode_without_bom_handling(bytes);
        return Some(parse(&text, false));
    }
    // Then a browser's prescan of the first 1024 bytes: it finds a `<meta>` wherever it
    // stands, in a script's text too. (It is the rewriter's own `prescan`, which its unit tests
    // check against the HTML Standard; this check does not judge it.)
    if let Some(found) = prescan(&bytes[..bytes.len().min(1024)]) {
        let (text, _) = found.decode_without_bom_handling(bytes);
        return Some(parse(&text, false));
    }
    let text = String::from_utf8_lossy(bytes);
    let dom = parse(&text, false);
    let Some(charset) = charset else {
        return Some(dom);
    };
    let declared = nodes(&dom.dom.document)
        .into_iter()
        .find_map(|n| match &n.data {
            NodeData::Element { name, attrs, .. }
                if &*name.ns == HTML && &*name.local == "meta" =>
            {
                meta_encoding(&attrs.borrow())
            }
            _ => None,
        });
    // The rewriter reads what precedes a `<meta>` in its encoding only when the prescan of the
    // first 1024 bytes finds it.
    if skip().encoding
        && declared.is_some_and(|e| {
            e != encoding_rs::UTF_8
                && (!e.is_ascii_compatible()
                    || (!bytes[..charset].is_ascii()
                        && prescan(&bytes[..bytes.len().min(1024)]) != Some(e)))
        })
    {
        return None;
    }
    let encoding = match declared {
        None => return Some(dom),
        Some(e) if e == encoding_rs::UTF_16BE || e == encoding_rs::UTF_16LE => return Some(dom),
        Some(e) if e == encoding_rs::X_USER_DEFINED => encoding_rs::WINDOWS_1252,
        Some(e) => e,
    };
    if encoding == encoding_rs::UTF_8 {
        return Some(dom);
    }
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Some(parse(&text, false))
}

/// Walks a parsed document (or a `<noscript>` fragment) and gathers what is live in it.
struct Walk<'a> {
    rules: &'a TagRules,
    live: Vec<String>,
}

/// The URLs a browser fetches for an attribute value: parsed (WHATWG URL) against a page of
/// each scheme, as http or https (`https:host` is absolute in an `http:` page). A value that is
/// no such URL loads nothing, whatever a rule makes of its text.
fn fetched(value: &str) -> Vec<url::Url> {
    static BASES: OnceLock<[url::Url; 2]> = OnceLock::new();
    let bases = BASES.get_or_init(|| {
        [
            "https://page.invalid/dir/page",
            "http://page.invalid/dir/page",
        ]
        .map(|b| url::Url::parse(b).expect("a valid base"))
    });
    bases
        .iter()
        .filter_map(|base| base.join(value).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .collect()
}

impl Walk<'_> {
    /// An attribute that loads `value`: live if what a browser fetches matches a rule.
    fn url(&mut self, what: &str, value: &str) {
        for url in fetched(value) {
            if let Some(rule) = self.rules.match_url(url.as_str(), GRANTED, false) {
                self.live
                    .push(format!("{what}={value:?}> fetches {url} ({})", rule.vendor));
                return;
            }
        }
    }

    /// `scripting`: whether scripts run (off in a `<noscript>` fragment, where only its pixels
    /// are judged, as the rewriter judges them).
    fn tree(&mut self, dom: &Dom, scripting: bool, prefix: &str) {
        let not_run = dom.not_run.borrow();
        let all = nodes(&dom.dom.document);
        for node in all {
            let NodeData::Element { name, attrs, .. } = &node.data else {
                continue;
            };
            let attrs = attrs.borrow();
            let (namespace, tag) = (&*name.ns, &*name.local);
            let is_script = tag == "script" && (namespace == HTML || namespace == SVG);
            if is_script && !scripting {
                continue;
            }
            let get = |n: &str| attr(&attrs, namespace, n);
            let live = !is_script || live_script(get("type").as_deref());
            let ns_name = match namespace {
                HTML => "",
                SVG => "svg ",
                _ => "math ",
            };
            if live {
                for a in loading_attributes(tag, namespace) {
                    let Some(value) = get(a) else { continue };
                    let what = format!("{prefix}<{ns_name}{tag} {a}");
                    if *a == "srcset" {
                        for url in srcset_urls(&value) {
                            self.url(&what, &url);
                        }
                    } else {
                        self.url(&what, &value);
                    }
                }
            }
            // An inline script: HTML without `src`, SVG without `href` (SVG ignores `src`).
            let inline = match namespace {
                HTML => get("src").is_none() && !not_run.iter().any(|n| Rc::ptr_eq(n, &node)),
                _ => get("href").is_none() && get("xlink:href").is_none(),
            };
            if is_script && live && inline {
                let text = child_text(&node);
                if let Some(hit) = self.rules.match_script(&text, GRANTED, false) {
                    self.live.push(format!(
                        "{prefix}inline <{ns_name}script> {text:?} ({})",
                        hit.vendor
                    ));
                }
            }
            if !scripting {
                continue;
            }
            let html = namespace == HTML;
            if let Some(css) = get("style") {
                let what = format!("{prefix}<{ns_name}{tag} style>");
                if declarations_load(&css_unescape(&css)) {
                    self.live.extend(css_trackers(self.rules, &css, &what));
                }
            }
            match tag {
                // The rewriter reads an SVG style sheet text node by text node.
                "style"
                    if html
                        || (namespace == SVG
                            && !(skip().svg_style && node.children.borrow().len() > 1)) =>
                {
                    let what = format!("{prefix}<{ns_name}style>");
                    self.live
                        .extend(css_trackers(self.rules, &child_text(&node), &what));
                }
                "noscript" if html => {
                    let fragment = parse_noscript(&child_text(&node));
                    self.tree(&fragment, false, &format!("{prefix}<noscript> "));
                }
                "iframe" if html => {
                    if let Some(doc) = get("srcdoc") {
                        let inner = parse(&doc, true);
                        self.tree(&inner, true, &format!("{prefix}<iframe srcdoc> "));
                    }
                }
                "link" if html => self.link(&get("rel"), &get("href"), prefix),
                _ => {}
            }
        }
    }

    /// A `<link>`: a style sheet or an icon loads its URL; a resource hint names a host.
    fn link(&mut self, rel: &Option<String>, href: &Option<String>, prefix: &str) {
        let (Some(rel), Some(href)) = (rel, href) else {
            return;
        };
        let rel = rel.to_ascii_lowercase();
        let tokens = || rel.split_ascii_whitespace();
        let loads = tokens().any(|t| matches!(t, "stylesheet" | "icon"));
        let hint = tokens().any(|t| {
            matches!(
                t,
                "preconnect" | "dns-prefetch" | "preload" | "prefetch" | "modulepreload"
            )
        });
        for url in fetched(href) {
            let rule = if loads {
                self.rules.match_url(url.as_str(), GRANTED, false)
            } else {
                None
            };
            let rule = rule.or_else(|| {
                hint.then(|| self.rules.match_host(url.as_str(), GRANTED, false))
                    .flatten()
            });
            if let Some(rule) = rule {
                self.live.push(format!(
                    "{prefix}<link rel={rel:?} href={href:?}> fetches {url} ({})",
                    rule.vendor
                ));
                return;
            }
        }
    }
}

/// The tree as an outline, one node a line, for `FUZZ_HTML_REWRITE_DEBUG`.
fn outline(dom: &Dom) -> String {
    let mut out = String::new();
    let mut stack = vec![(dom.dom.document.clone(), 0)];
    while let Some((node, depth)) = stack.pop() {
        let pad = "  ".repeat(depth);
        match &node.data {
            NodeData::Element {
                name,
                attrs,
                template_contents,
                ..
            } => {
                let ns = match &*name.ns {
                    HTML => "",
                    SVG => "svg ",
                    _ => "math ",
                };
                let attrs: Vec<String> = attrs
                    .borrow()
                    .iter()
                    .map(|a| {
                        let prefix = if a.name.ns.is_empty() { "" } else { "xlink:" };
                        format!(" {prefix}{}={:?}", &*a.name.local, &*a.value)
                    })
                    .collect();
                out.push_str(&format!("{pad}<{ns}{}{}>\n", &*name.local, attrs.concat()));
                if let Some(contents) = template_contents.borrow().as_ref() {
                    stack.push((contents.clone(), depth + 1));
                }
            }
            NodeData::Text { contents } => {
                out.push_str(&format!("{pad}{:?}\n", &**contents.borrow()));
            }
            NodeData::Comment { contents } => {
                out.push_str(&format!("{pad}<!--{:?}-->\n", &**contents));
            }
            _ => {}
        }
        for child in node.children.borrow().iter().rev() {
            stack.push((child.clone(), depth + 1));
        }
    }
    out
}

/// Every live tracker in `output`, as a browser parses it.
fn live_trackers(
    rules: &TagRules,
    output: &[u8],
    header: Option<&'static encoding_rs::Encoding>,
) -> Vec<String> {
    let Some(dom) = decode_and_parse(output, header) else {
        return Vec::new();
    };
    if std::env::var_os("FUZZ_HTML_REWRITE_DEBUG").is_some() {
        eprintln!(
            "== output\n{}\n== as a browser reads it\n{}",
            String::from_utf8_lossy(output),
            outline(&dom)
        );
    }
    if let Some(path) = std::env::var_os("FUZZ_HTML_REWRITE_OUT") {
        let _ = std::fs::write(path, output);
    }
    let mut walk = Walk {
        rules,
        live: Vec::new(),
    };
    walk.tree(&dom, true, "");
    walk.live
}

fuzz_target!(|data: &[u8]| {
    // The proxy answers a page in UTF-16 (by its byte order mark) with an error, unread.
    if data.starts_with(b"\xFE\xFF") || data.starts_with(b"\xFF\xFE") {
        return;
    }
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
    // The proxy answers a page declaring an encoding it cannot read with an error, unread.
    let Ok(declared) = declared(data) else {
        return;
    };
    let header = declared.map(<&encoding_rs::Encoding>::from);

    if std::env::var_os("FUZZ_HTML_REWRITE_DEBUG").is_some() {
        let live = live_trackers(rules, data, None);
        eprintln!("== live in the input, as a browser reads it: {live:#?}");
    }
    let split = rewrite(rules, data, &cuts, max_memory);
    let live = live_trackers(rules, &split.output, header);
    assert!(
        live.is_empty(),
        "trackers live in the output ({}, {}, {max_memory} B): {live:#?}\noutput: {:?}",
        if split.ok {
            "complete"
        } else {
            "cut short by an error"
        },
        if Arc::ptr_eq(rules, &c.neutralize) {
            "neutralize"
        } else {
            "remove"
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
        let live = live_trackers(rules, &whole.output, header);
        assert!(
            live.is_empty(),
            "trackers live in the output: {live:#?}\noutput: {:?}",
            String::from_utf8_lossy(&whole.output)
        );
    }
});
