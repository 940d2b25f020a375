//! HTML parser has 6 different state machines for text parsing
//! purposes in different contexts. Switch between these state machines
//! usually performed by the tree construction stage depending on the
//! state of the stack of open elements (HTML is a context-sensitive grammar).
//!
//! Luckily, in the majority of cases this tree construction stage feedback
//! can be simulated without the stack of open elements and complicated rules
//! required to maintain its state.
//!
//! This module implements such feedback simulation. However, there are few
//! cases where we can't unambiguously determine parsing context and prefer
//! to bail out from the tokenization in such a case
//! (see `AmbiguityGuard` for the details).
mod ambiguity_guard;

use self::ambiguity_guard::AmbiguityGuard;
use crate::base::eq_case_insensitive;
use crate::html::{LocalNameHash, Namespace, Tag, TextType};
use crate::parser::{TagLexeme, TagTokenOutline};
use TagTokenOutline::{EndTag, StartTag};

pub use self::ambiguity_guard::ParsingAmbiguityError;

#[must_use]
pub(crate) enum TreeBuilderFeedback {
    SwitchTextType(TextType),
    SetAllowCdata(bool),
    #[allow(clippy::type_complexity)]
    RequestLexeme(Box<dyn FnMut(&mut TreeBuilderSimulator, &TagLexeme<'_>) -> Self + Send>),
    None,
}

impl From<TextType> for TreeBuilderFeedback {
    #[inline]
    fn from(text_type: TextType) -> Self {
        Self::SwitchTextType(text_type)
    }
}

#[inline]
fn request_lexeme(
    callback: impl FnMut(&mut TreeBuilderSimulator, &TagLexeme<'_>) -> TreeBuilderFeedback
    + 'static
    + Send,
) -> TreeBuilderFeedback {
    TreeBuilderFeedback::RequestLexeme(Box::new(callback))
}

macro_rules! expect_tag {
    ($lexeme:expr, $tag_pat:pat => $action:expr) => {
        match *$lexeme.token_outline() {
            $tag_pat => $action,
            _ => {
                debug_assert!(false, "Got unexpected tag type");
                return TreeBuilderFeedback::None;
            }
        }
    };
}

#[inline]
fn get_text_type_adjustment(tag_name: LocalNameHash) -> TreeBuilderFeedback {
    use TextType::*;

    if tag_is_one_of!(tag_name, [Textarea, Title]) {
        RCData.into()
    } else if tag_name == Tag::Plaintext {
        PlainText.into()
    } else if tag_name == Tag::Script {
        ScriptData.into()
    } else if tag_is_one_of!(tag_name, [Style, Iframe, Xmp, Noembed, Noframes, Noscript]) {
        RawText.into()
    } else {
        TreeBuilderFeedback::None
    }
}

#[inline]
fn causes_foreign_content_exit(tag_name: LocalNameHash) -> bool {
    tag_is_one_of!(
        tag_name,
        [
            B, Big, Blockquote, Body, Br, Center, Code, Dd, Div, Dl, Dt, Em, Embed, H1, H2, H3, H4,
            H5, H6, Head, Hr, I, Img, Li, Listing, Menu, Meta, Nobr, Ol, P, Pre, Ruby, S, Small,
            Span, Strong, Strike, Sub, Sup, Table, Tt, U, Ul, Var
        ]
    )
}

#[inline]
fn is_text_integration_point_in_math_ml(tag_name: LocalNameHash) -> bool {
    tag_is_one_of!(tag_name, [Mi, Mo, Mn, Ms, Mtext])
}

#[inline]
fn is_html_integration_point_in_svg(tag_name: LocalNameHash) -> bool {
    tag_is_one_of!(tag_name, [Desc, Title, ForeignObject])
}

/// The most elements the simulator keeps on its stack of open elements (patch 4). A page that
/// goes past it, in or into foreign content, is ambiguous: in strict mode the simulator stops
/// with a [`ParsingAmbiguityError`] there (the rewriter fails closed); otherwise the elements
/// past it are not recorded.
const MAX_OPEN_ELEMENTS: usize = 1024;

/// Without the strict mode, `<svg>`, `<math>` and integration points are recorded past
/// [`MAX_OPEN_ELEMENTS`] (the namespace levels depend on them), up to this many in all; past
/// it they start no namespace level.
const MAX_OPEN_ELEMENTS_WITH_LEVELS: usize = 2 * MAX_OPEN_ELEMENTS;

/// The name of an open MathML `<annotation-xml>`, whose name has no hash: a value no tag name
/// hashes to (a name cannot start with a digit).
const ANNOTATION_XML: u64 = 1;

/// The hash of a tag name, as [`LocalNameHash`] computes it (all ASCII letters or `1`-`6`).
const fn h(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash = 0u64;
    let mut i = 0;
    while i < bytes.len() {
        let ch = bytes[i] as u64;
        hash = if bytes[i].is_ascii_alphabetic() {
            (hash << 5) | ((ch & 0x1F) + 5)
        } else {
            (hash << 5) | ((ch & 0x0F) - 1)
        };
        i += 1;
    }
    hash
}

macro_rules! names {
    ($($name:literal),+ $(,)?) => { [$(h($name)),+] };
}

mod n {
    use super::h;
    pub(super) const A: u64 = h("a");
    pub(super) const ADDRESS: u64 = h("address");
    pub(super) const BUTTON: u64 = h("button");
    pub(super) const DD: u64 = h("dd");
    pub(super) const DIV: u64 = h("div");
    pub(super) const DT: u64 = h("dt");
    pub(super) const FORM: u64 = h("form");
    pub(super) const LI: u64 = h("li");
    pub(super) const MATH: u64 = super::Tag::Math as u64;
    pub(super) const OL: u64 = h("ol");
    pub(super) const OPTION: u64 = h("option");
    pub(super) const OPTGROUP: u64 = h("optgroup");
    pub(super) const P: u64 = h("p");
    pub(super) const BR: u64 = h("br");
    pub(super) const SVG: u64 = super::Tag::Svg as u64;
    pub(super) const TABLE: u64 = h("table");
    pub(super) const TBODY: u64 = h("tbody");
    pub(super) const TD: u64 = h("td");
    pub(super) const TEMPLATE: u64 = h("template");
    pub(super) const TFOOT: u64 = h("tfoot");
    pub(super) const TH: u64 = h("th");
    pub(super) const THEAD: u64 = h("thead");
    pub(super) const TR: u64 = h("tr");
    pub(super) const UL: u64 = h("ul");
}

/// HTML elements that bound a scope ("has an element in scope"), all in the special category.
const SCOPE_BOUNDARIES: [u64; 8] = names![
    "applet", "caption", "marquee", "object", "table", "td", "th", "template"
];

/// The other HTML elements of the special category that can stay open (void elements, and
/// those whose content the tokenizer reads as text, never do; `<html>`, `<head>`, `<body>` and
/// `<frameset>` are not followed).
const SPECIAL: [u64; 43] = names![
    "address",
    "article",
    "aside",
    "blockquote",
    "button",
    "center",
    "colgroup",
    "dd",
    "details",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "li",
    "listing",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "search",
    "section",
    "select",
    "summary",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// The formatting elements: their end tag runs the adoption agency algorithm.
const FORMATTING: [u64; 14] = names![
    "a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt",
    "u",
];

/// The other HTML elements followed: the ordinary ones of the HTML standard that can hold an
/// `<svg>` or `<math>`. Unknown and custom elements are not followed.
const ORDINARY: [u64; 33] = names![
    "abbr", "audio", "bdi", "bdo", "canvas", "cite", "data", "datalist", "del", "dfn", "dialog",
    "ins", "kbd", "label", "legend", "map", "mark", "meter", "optgroup", "option", "output",
    "picture", "progress", "q", "ruby", "samp", "slot", "span", "sub", "sup", "time", "var",
    "video",
];

/// HTML elements not followed: void elements, those whose content the tokenizer reads as text
/// (their end tag follows it), the document's own, and the ruby parts whose end tags are implied.
const NOT_FOLLOWED: [u64; 36] = names![
    "area",
    "base",
    "basefont",
    "bgsound",
    "br",
    "col",
    "embed",
    "frame",
    "hr",
    "image",
    "img",
    "input",
    "keygen",
    "link",
    "meta",
    "param",
    "source",
    "track",
    "wbr",
    "script",
    "style",
    "title",
    "textarea",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "html",
    "head",
    "body",
    "frameset",
    "rb",
    "rp",
    "rt",
];

const HEADINGS: [u64; 6] = names!["h1", "h2", "h3", "h4", "h5", "h6"];

/// Start tags that close a `<p>` in button scope.
const CLOSES_P: [u64; 37] = names![
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "search",
    "section",
    "summary",
    "ul",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "listing",
    "form",
    "li",
    "dd",
    "dt",
];

/// What ends the search for an open cell, row, row group (a start tag that implies their end).
const CELL_SEARCH_STOP: [u64; 7] = names![
    "tr", "table", "tbody", "thead", "tfoot", "template", "caption"
];
const ROW_SEARCH_STOP: [u64; 6] = names!["table", "tbody", "thead", "tfoot", "template", "caption"];
/// What a `<table>` start tag may find open above the table it closes.
const TABLE_PARTS: [u64; 5] = names!["tr", "tbody", "thead", "tfoot", "colgroup"];
const DIALOG: u64 = h("dialog");
const HR: u64 = h("hr");
const XMP: u64 = h("xmp");
const PLAINTEXT: u64 = h("plaintext");

const TABLE_END_TAGS: [u64; 10] = names![
    "table", "tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup", "template",
];

#[inline]
fn is_one_of<const N: usize>(name: u64, set: &[u64; N]) -> bool {
    set.contains(&name)
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum HtmlClass {
    /// Not followed: void elements, those whose content is text, `html`, `head`, `body`.
    Untracked,
    /// Unknown and custom elements (all custom ones share the name `u64::MAX`, the hash of
    /// every name that has none): followed in HTML content, where they stop nothing, so that an
    /// integration point's end tag is ignored with one open in it; not in foreign content.
    Unknown,
    /// Special, and a scope boundary.
    Boundary,
    Special,
    Formatting,
    Ordinary,
}

#[inline]
fn html_class(name: u64) -> HtmlClass {
    if is_one_of(name, &SCOPE_BOUNDARIES) {
        HtmlClass::Boundary
    } else if is_one_of(name, &SPECIAL) {
        HtmlClass::Special
    } else if is_one_of(name, &FORMATTING) {
        HtmlClass::Formatting
    } else if is_one_of(name, &ORDINARY) {
        HtmlClass::Ordinary
    } else if is_one_of(name, &NOT_FOLLOWED) {
        HtmlClass::Untracked
    } else {
        HtmlClass::Unknown
    }
}

#[inline]
fn is_special_html(name: u64) -> bool {
    matches!(html_class(name), HtmlClass::Boundary | HtmlClass::Special)
}

/// Elements that are HTML integration points or MathML text integration points, and MathML
/// `<annotation-xml>`: special and scope boundaries in foreign content.
#[inline]
fn is_foreign_boundary(el: OpenElement) -> bool {
    match el.ns {
        Namespace::Svg => {
            el.name == Tag::ForeignObject as u64
                || el.name == Tag::Desc as u64
                || el.name == Tag::Title as u64
        }
        Namespace::MathML => {
            el.name == ANNOTATION_XML
                || el.name == Tag::Mi as u64
                || el.name == Tag::Mo as u64
                || el.name == Tag::Mn as u64
                || el.name == Tag::Ms as u64
                || el.name == Tag::Mtext as u64
        }
        Namespace::Html => false,
    }
}

/// How "in body" (or the table modes) process an end tag of this name.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum EndRule {
    Ignore,
    P,
    Form,
    ListItem,
    Heading,
    Table,
    Scope,
    Formatting,
    AnyOther,
}

#[inline]
fn end_rule(name: u64) -> EndRule {
    match html_class(name) {
        HtmlClass::Untracked => EndRule::Ignore,
        HtmlClass::Unknown => EndRule::AnyOther,
        HtmlClass::Formatting => EndRule::Formatting,
        _ if name == n::P => EndRule::P,
        _ if name == n::FORM => EndRule::Form,
        _ if name == n::LI => EndRule::ListItem,
        _ if is_one_of(name, &HEADINGS) => EndRule::Heading,
        _ if is_one_of(name, &TABLE_END_TAGS) => EndRule::Table,
        HtmlClass::Boundary | HtmlClass::Special => EndRule::Scope,
        HtmlClass::Ordinary if name == DIALOG => EndRule::Scope,
        HtmlClass::Ordinary => EndRule::AnyOther,
    }
}

/// An element of the simulated stack of open elements.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct OpenElement {
    name: u64,
    ns: Namespace,
}

/// A namespace level: the document (HTML), an `<svg>` or `<math>` root (its content is SVG or
/// MathML), or an integration point (its content is HTML). `base` is the length of the stack of
/// open elements just after the element that opened the level (its root, or the integration
/// point), which is at `base - 1`.
#[derive(Copy, Clone, Debug)]
struct Level {
    ns: Namespace,
    base: usize,
}

/// What an end tag does to the elements of an HTML run.
enum HtmlEndEffect {
    None,
    /// Pops elements until the stack has this length.
    Truncate(usize),
    /// Removes one element (`</form>`), or one and then truncates (the adoption agency).
    Remove(usize, Option<usize>),
}

pub(crate) struct TreeBuilderSimulator {
    /// The open elements the simulator follows (patch 4): HTML elements of the kinds listed
    /// above, `<svg>` and `<math>` roots, integration points, and the foreign elements whose
    /// end tag has a meaning to the HTML rules (see [`end_rule`]).
    open: Vec<OpenElement>,
    levels: Vec<Level>,
    current_ns: Namespace,
    /// The namespace to give the start tag just read, when it differs from `current_ns` (a
    /// self-closing `<svg/>` is an SVG element, and what follows it HTML).
    reported_ns: Option<Namespace>,
    /// The HTML element whose content the tokenizer now reads as text (`<title>`, `<style>`,
    /// `<script>` …): the next end tag is its own, which ends it and nothing else.
    text_element: Option<u64>,
    /// The stack went past [`MAX_OPEN_ELEMENTS`]: what it holds is no longer the whole story.
    overflowed: bool,
    ambiguity_guard: AmbiguityGuard,
    strict: bool,
}

impl TreeBuilderSimulator {
    #[inline]
    #[must_use]
    pub fn new(strict: bool) -> Self {
        let mut levels = Vec::with_capacity(8);
        levels.push(Level {
            ns: Namespace::Html,
            base: 0,
        });

        Self {
            open: Vec::with_capacity(64),
            levels,
            current_ns: Namespace::Html,
            reported_ns: None,
            text_element: None,
            overflowed: false,
            ambiguity_guard: AmbiguityGuard::default(),
            strict,
        }
    }

    pub fn get_feedback_for_start_tag(
        &mut self,
        tag_name: LocalNameHash,
    ) -> Result<TreeBuilderFeedback, ParsingAmbiguityError> {
        if self.strict {
            self.ambiguity_guard.track_start_tag(tag_name)?;
        }
        self.reported_ns = None;

        let name = tag_name.raw();
        let enters_root = self.current_ns == Namespace::Html && (name == n::SVG || name == n::MATH)
            || name == n::SVG
                && self.current_ns == Namespace::MathML
                && self.open.last().is_some_and(|el| el.name == ANNOTATION_XML);

        if self.open.len() >= MAX_OPEN_ELEMENTS {
            self.overflowed = true;
        }
        if self.strict && self.overflowed && (enters_root || self.levels.len() > 1) {
            return Err(ParsingAmbiguityError::too_deep(tag_name));
        }

        Ok(if enters_root {
            self.enter_root(if name == n::SVG {
                Namespace::Svg
            } else {
                Namespace::MathML
            })
        } else if self.current_ns != Namespace::Html {
            self.get_feedback_for_start_tag_in_foreign_content(tag_name)
        } else {
            self.html_start_tag(name);
            let feedback = get_text_type_adjustment(tag_name);
            if !matches!(feedback, TreeBuilderFeedback::None) {
                self.text_element = Some(name);
            }
            feedback
        })
    }

    pub fn get_feedback_for_end_tag(&mut self, tag_name: LocalNameHash) -> TreeBuilderFeedback {
        if self.strict {
            self.ambiguity_guard.track_end_tag(tag_name);
        }
        self.reported_ns = None;

        let name = tag_name.raw();
        // The end of an HTML element read as text (in an integration point, `</title>` ends
        // the HTML `<title>`, not the SVG one around it).
        if self.text_element.take() == Some(name) {
            return TreeBuilderFeedback::None;
        }

        match self.open.last() {
            // The current node is foreign: an element of an `<svg>` or `<math>` root, or an
            // integration point with nothing open in it (13.2.6: end tags there follow the
            // rules for foreign content).
            Some(el) if el.ns != Namespace::Html => {
                if tag_name.is_empty() {
                    if el.ns == Namespace::MathML {
                        // NOTE: empty tag name hash - possibly the </annotation-xml> case
                        return request_lexeme(|this, lexeme| {
                            expect_tag!(lexeme, EndTag { name, .. } => {
                                if eq_case_insensitive(&lexeme.part(name), b"annotation-xml") {
                                    this.foreign_end_tag(ANNOTATION_XML)
                                } else {
                                    TreeBuilderFeedback::None
                                }
                            })
                        });
                    }
                    TreeBuilderFeedback::None
                } else {
                    self.foreign_end_tag(name)
                }
            }
            _ => {
                {
                    let top = self.open.len();
                    match self.html_end_effect(top, name) {
                        HtmlEndEffect::None => (),
                        HtmlEndEffect::Truncate(len) => self.open.truncate(len),
                        HtmlEndEffect::Remove(i, then) => {
                            self.open.remove(i);
                            if let Some(len) = then {
                                self.open.truncate(len);
                            }
                        }
                    }
                }
                TreeBuilderFeedback::None
            }
        }
    }

    #[inline]
    pub const fn current_ns(&self) -> Namespace {
        match self.reported_ns {
            Some(ns) => ns,
            None => self.current_ns,
        }
    }

    #[inline]
    fn push(&mut self, el: OpenElement) -> bool {
        if self.open.len() >= MAX_OPEN_ELEMENTS {
            self.overflowed = true;
            false
        } else {
            self.open.push(el);
            true
        }
    }

    /// Pushes the element that opens a level, and the level.
    fn enter_level(&mut self, el: OpenElement, ns: Namespace) -> TreeBuilderFeedback {
        if self.open.len() >= MAX_OPEN_ELEMENTS_WITH_LEVELS {
            self.overflowed = true;
            return TreeBuilderFeedback::None;
        }
        if self.open.len() >= MAX_OPEN_ELEMENTS {
            self.overflowed = true;
        }
        self.open.push(el);
        self.levels.push(Level {
            ns,
            base: self.open.len(),
        });
        self.current_ns = ns;
        TreeBuilderFeedback::SetAllowCdata(ns != Namespace::Html)
    }

    /// An `<svg>` or `<math>` start tag processed by the HTML rules: a new root, unless the tag
    /// is self-closing (then the element is popped at once, and what follows is HTML).
    fn enter_root(&mut self, ns: Namespace) -> TreeBuilderFeedback {
        let name = if ns == Namespace::Svg {
            n::SVG
        } else {
            n::MATH
        };
        let entered = matches!(
            self.enter_level(OpenElement { name, ns }, ns),
            TreeBuilderFeedback::SetAllowCdata(_)
        );
        if !entered {
            return TreeBuilderFeedback::None;
        }
        let depth = self.levels.len();
        request_lexeme(move |this, lexeme| {
            expect_tag!(lexeme, StartTag { self_closing, .. } => {
                if self_closing && this.levels.len() == depth {
                    let level = this.levels.pop().expect("the level just entered");
                    this.open.truncate(level.base - 1);
                    this.current_ns = this.levels.last().map_or(Namespace::Html, |l| l.ns);
                    this.reported_ns = Some(ns);
                    TreeBuilderFeedback::SetAllowCdata(this.current_ns != Namespace::Html)
                } else {
                    TreeBuilderFeedback::SetAllowCdata(true)
                }
            })
        })
    }

    /// Pops the levels whose opening element is no longer open.
    fn pop_closed_levels(&mut self) -> TreeBuilderFeedback {
        let before = self.current_ns;
        while self.levels.len() > 1 && self.levels.last().is_some_and(|l| l.base > self.open.len())
        {
            self.levels.pop();
        }
        self.current_ns = self.levels.last().map_or(Namespace::Html, |l| l.ns);
        if self.current_ns == before {
            TreeBuilderFeedback::None
        } else {
            TreeBuilderFeedback::SetAllowCdata(self.current_ns != Namespace::Html)
        }
    }

    /// A breakout from foreign content (13.2.6.5): the tree builder pops elements until the
    /// current node is in the HTML namespace or is an integration point, however many `<svg>`
    /// and `<math>` roots are open; in this stack of levels, until its top is HTML.
    fn leave_foreign_content(&mut self) -> TreeBuilderFeedback {
        let mut left = false;
        while self.levels.len() > 1 && self.current_ns != Namespace::Html {
            let level = self.levels.pop().expect("more than one level");
            self.open.truncate(level.base - 1);
            self.current_ns = self.levels.last().map_or(Namespace::Html, |l| l.ns);
            left = true;
        }
        if left {
            TreeBuilderFeedback::SetAllowCdata(false)
        } else {
            TreeBuilderFeedback::None
        }
    }

    /// "Any other end tag" in foreign content (13.2.6.5), and `</p>`, `</br>`.
    fn foreign_end_tag(&mut self, name: u64) -> TreeBuilderFeedback {
        if name == n::P || name == n::BR {
            let feedback = if self.current_ns == Namespace::Html {
                // The current node is an integration point: processed by the HTML rules,
                // which find no `<p>` in scope.
                TreeBuilderFeedback::None
            } else {
                self.leave_foreign_content()
            };
            if name == n::P && self.open.last().is_some_and(|el| el.ns == Namespace::Html) {
                if let HtmlEndEffect::Truncate(len) = self.html_end_effect(self.open.len(), name) {
                    self.open.truncate(len);
                }
            }
            return feedback;
        }

        // Walk down the foreign elements: one of that name is popped to, with everything
        // opened in it.
        let mut blocked = false;
        let mut i = self.open.len();
        while i > 0 {
            let el = self.open[i - 1];
            if el.ns == Namespace::Html {
                break;
            }
            if el.name == name {
                self.open.truncate(i - 1);
                return self.pop_closed_levels();
            }
            blocked |= is_foreign_boundary(el);
            i -= 1;
        }

        // At the first HTML element, the HTML rules. An integration point on the way is special
        // and a scope boundary: the end tag is ignored there. (The table end tags look past it,
        // in table scope; the simulator does not.)
        if blocked || i == 0 || name == ANNOTATION_XML {
            return TreeBuilderFeedback::None;
        }
        match self.html_end_effect(i, name) {
            HtmlEndEffect::Truncate(len) => {
                self.open.truncate(len);
                self.pop_closed_levels()
            }
            HtmlEndEffect::Remove(at, Some(len)) => {
                self.open.remove(at);
                self.open.truncate(len);
                self.pop_closed_levels()
            }
            // `</form>` takes the form out of the stack and leaves what is open in it.
            HtmlEndEffect::Remove(_, None) | HtmlEndEffect::None => TreeBuilderFeedback::None,
        }
    }

    /// Where the HTML run that ends at `top` (exclusive: the elements `open[..top]`, down to the
    /// first foreign one) has an element named `name`, walking down from the top; `stop` ends
    /// the search (a scope boundary).
    fn find_in_run(
        &self,
        top: usize,
        name: impl Fn(u64) -> bool,
        stop: impl Fn(u64) -> bool,
    ) -> Option<usize> {
        let mut i = top;
        while i > 0 {
            let el = self.open[i - 1];
            if el.ns != Namespace::Html {
                return None;
            }
            if name(el.name) {
                return Some(i - 1);
            }
            if stop(el.name) {
                return None;
            }
            i -= 1;
        }
        None
    }

    /// What the "in body" rules (and the table modes) do with an end tag, for the HTML run
    /// below `top`.
    fn html_end_effect(&self, top: usize, name: u64) -> HtmlEndEffect {
        let in_scope = |extra: &dyn Fn(u64) -> bool| {
            self.find_in_run(
                top,
                |n| n == name,
                |n| is_one_of(n, &SCOPE_BOUNDARIES) || extra(n),
            )
        };
        let found = match end_rule(name) {
            EndRule::Ignore => None,
            EndRule::Scope => in_scope(&|_| false),
            EndRule::P => in_scope(&|n| n == n::BUTTON),
            EndRule::ListItem => in_scope(&|n| n == n::OL || n == n::UL),
            EndRule::Heading => self.find_in_run(
                top,
                |n| is_one_of(n, &HEADINGS),
                |n| is_one_of(n, &SCOPE_BOUNDARIES),
            ),
            EndRule::Table => {
                self.find_in_run(top, |n| n == name, |n| n == n::TABLE || n == n::TEMPLATE)
            }
            EndRule::Form => {
                return match in_scope(&|_| false) {
                    Some(i) => HtmlEndEffect::Remove(i, None),
                    None => HtmlEndEffect::None,
                };
            }
            EndRule::Formatting => {
                let Some(i) = in_scope(&|_| false) else {
                    return HtmlEndEffect::None;
                };
                // The adoption agency: with special elements open in it, the formatting
                // element goes and they stay, the last of them the current node; without, it
                // is popped with everything in it.
                return match (i + 1..top).rev().find(|&j| {
                    self.open[j].ns == Namespace::Html && is_special_html(self.open[j].name)
                }) {
                    Some(s) => HtmlEndEffect::Remove(i, Some(s)),
                    None => HtmlEndEffect::Truncate(i),
                };
            }
            EndRule::AnyOther => self.find_in_run(top, |n| n == name, is_special_html),
        };
        match found {
            Some(i) => HtmlEndEffect::Truncate(i),
            None => HtmlEndEffect::None,
        }
    }

    /// A start tag processed by the HTML rules: the end tags it implies, and the element
    /// pushed if it is followed.
    fn html_start_tag(&mut self, name: u64) {
        let class = html_class(name);
        let top = self.open.len();
        let truncate_to = |this: &Self, found: Option<usize>| found.unwrap_or(this.open.len());

        if name == n::LI || name == n::DD || name == n::DT {
            let is_item = |n: u64| {
                if name == n::LI {
                    n == n::LI
                } else {
                    n == n::DD || n == n::DT
                }
            };
            let found = self.find_in_run(top, is_item, |n| {
                is_special_html(n) && n != n::ADDRESS && n != n::DIV && n != n::P
            });
            let len = truncate_to(self, found);
            self.open.truncate(len);
        } else if name == n::TD || name == n::TH {
            let found = self.find_in_run(
                self.open.len(),
                |n| n == n::TD || n == n::TH,
                |n| is_one_of(n, &CELL_SEARCH_STOP),
            );
            let len = truncate_to(self, found);
            self.open.truncate(len);
        } else if name == n::TR {
            let found = self.find_in_run(
                self.open.len(),
                |n| n == n::TR,
                |n| is_one_of(n, &ROW_SEARCH_STOP),
            );
            let len = truncate_to(self, found);
            self.open.truncate(len);
        } else if name == n::TBODY || name == n::THEAD || name == n::TFOOT {
            let found = self.find_in_run(
                self.open.len(),
                |n| n == n::TBODY || n == n::THEAD || n == n::TFOOT,
                |n| n == n::TABLE || n == n::TEMPLATE,
            );
            let len = truncate_to(self, found);
            self.open.truncate(len);
        } else if name == n::TABLE {
            // A `<table>` directly in a table closes it.
            let found = self.find_in_run(
                self.open.len(),
                |n| n == n::TABLE,
                |n| !is_one_of(n, &TABLE_PARTS),
            );
            let len = truncate_to(self, found);
            self.open.truncate(len);
        } else if name == n::OPTION || name == n::OPTGROUP {
            if self
                .open
                .last()
                .is_some_and(|el| el.ns == Namespace::Html && el.name == n::OPTION)
            {
                self.open.pop();
            }
        } else if name == n::A || name == n::BUTTON {
            // A second `<a>` (or `<button>`) closes the first.
            if let Some(i) = self.find_in_run(
                self.open.len(),
                |n| n == name,
                |n| is_one_of(n, &SCOPE_BOUNDARIES),
            ) {
                match self.html_end_effect(self.open.len(), name) {
                    HtmlEndEffect::Remove(at, then) => {
                        self.open.remove(at);
                        if let Some(len) = then {
                            self.open.truncate(len);
                        }
                    }
                    _ => self.open.truncate(i),
                }
            }
        }

        if is_one_of(name, &CLOSES_P) || name == HR || name == XMP || name == PLAINTEXT {
            if let Some(i) = self.find_in_run(
                self.open.len(),
                |n| n == n::P,
                |n| is_one_of(n, &SCOPE_BOUNDARIES) || n == n::BUTTON,
            ) {
                self.open.truncate(i);
            }
            if is_one_of(name, &HEADINGS)
                && self
                    .open
                    .last()
                    .is_some_and(|el| el.ns == Namespace::Html && is_one_of(el.name, &HEADINGS))
            {
                self.open.pop();
            }
        }

        if class != HtmlClass::Untracked {
            let _ = self.push(OpenElement {
                name,
                ns: Namespace::Html,
            });
        }
    }

    fn is_integration_point_enter(&self, tag_name: LocalNameHash) -> bool {
        self.current_ns == Namespace::Svg && is_html_integration_point_in_svg(tag_name)
            || self.current_ns == Namespace::MathML
                && is_text_integration_point_in_math_ml(tag_name)
    }

    /// A breakout: the foreign elements are popped, and the start tag is processed by the HTML
    /// rules.
    fn break_out(&mut self, name: u64) -> TreeBuilderFeedback {
        let feedback = self.leave_foreign_content();
        if self.current_ns == Namespace::Html {
            self.html_start_tag(name);
        }
        feedback
    }

    /// A foreign element whose end tag means something to the HTML rules (`<a>`, `<svg>`,
    /// `<math>` …): followed unless self-closing, so that its end tag pops it and not an HTML
    /// element of that name.
    fn foreign_element(&mut self, name: u64) -> TreeBuilderFeedback {
        let ns = self.current_ns;
        let depth = self.levels.len();
        request_lexeme(move |this, lexeme| {
            expect_tag!(lexeme, StartTag { self_closing, .. } => {
                if !self_closing && this.levels.len() == depth {
                    let _ = this.push(OpenElement { name, ns });
                }
                TreeBuilderFeedback::None
            })
        })
    }

    fn get_feedback_for_start_tag_in_foreign_content(
        &mut self,
        tag_name: LocalNameHash,
    ) -> TreeBuilderFeedback {
        let name = tag_name.raw();

        if causes_foreign_content_exit(tag_name) {
            return self.break_out(name);
        }

        if self.is_integration_point_enter(tag_name) {
            return request_lexeme(move |this, lexeme| {
                expect_tag!(lexeme, StartTag { self_closing, .. } => {
                    if self_closing {
                        TreeBuilderFeedback::None
                    } else {
                        let ns = this.current_ns;
                        this.enter_level(OpenElement { name, ns }, Namespace::Html)
                    }
                })
            });
        }

        if tag_name == Tag::Font {
            // NOTE: <font> tag special case requires attributes
            // to decide on foreign context exit
            return request_lexeme(move |this, lexeme| {
                expect_tag!(lexeme, StartTag { ref attributes, self_closing, .. } => {
                    for attr in attributes.iter() {
                        let name = lexeme.part(attr.name);

                        if eq_case_insensitive(&name, b"color")
                            || eq_case_insensitive(&name, b"size")
                            || eq_case_insensitive(&name, b"face")
                        {
                            return this.break_out(n_font());
                        }
                    }
                    if !self_closing {
                        let ns = this.current_ns;
                        let _ = this.push(OpenElement { name: n_font(), ns });
                    }
                });

                TreeBuilderFeedback::None
            });
        }

        if tag_name.is_empty() && self.current_ns == Namespace::MathML {
            // NOTE: tag name hash is empty - we need integration point check
            // for the possible <annotation-xml> case
            return request_lexeme(|this, lexeme| {
                expect_tag!(lexeme, StartTag {
                    name,
                    ref attributes,
                    self_closing,
                    ..
                } => {
                    let name = lexeme.part(name);

                    if !self_closing && eq_case_insensitive(&name, b"annotation-xml") {
                        let el = OpenElement { name: ANNOTATION_XML, ns: Namespace::MathML };
                        for attr in attributes.iter() {
                            let name = lexeme.part(attr.name);
                            let Some(value) = lexeme.opt_part(attr.value) else {
                                continue;
                            };

                            if eq_case_insensitive(&name, b"encoding")
                                && (eq_case_insensitive(&value, b"text/html")
                                    || eq_case_insensitive(&value, b"application/xhtml+xml"))
                            {
                                return this.enter_level(el, Namespace::Html);
                            }
                        }
                        // Not an integration point: an `<svg>` in it starts SVG all the same.
                        let _ = this.push(el);
                    }
                });

                TreeBuilderFeedback::None
            });
        }

        // Patch 3: `<svg>` and `<math>` here are elements of the current namespace (an SVG
        // `math`, a MathML `svg`), followed so that their end tag pops them alone. So are the
        // foreign elements named like an HTML element (an SVG `<script>`, `<style>`, `<a>`):
        // their end tag pops them, with any integration point open inside them, where the HTML
        // rules would ignore it.
        if name == n::SVG || name == n::MATH || html_class(name) != HtmlClass::Unknown {
            return self.foreign_element(name);
        }

        TreeBuilderFeedback::None
    }
}

#[inline]
const fn n_font() -> u64 {
    Tag::Font as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html_content::Element;
    use crate::{RewriteStrSettings, rewrite_str};
    use std::cell::RefCell;

    /// The namespace of each element `selector` matches, in order: "html", "svg" or "math".
    fn namespaces_with(html: &str, selector: &str, strict: bool) -> Vec<&'static str> {
        let found = RefCell::new(Vec::new());
        rewrite_str(
            html,
            RewriteStrSettings {
                element_content_handlers: vec![element!(selector, |el: &mut Element<'_, '_>| {
                    found.borrow_mut().push(match el.namespace_uri() {
                        "http://www.w3.org/1999/xhtml" => "html",
                        "http://www.w3.org/2000/svg" => "svg",
                        _ => "math",
                    });
                    Ok(())
                })],
                strict,
                ..RewriteStrSettings::new()
            },
        )
        .unwrap();
        found.into_inner()
    }

    /// The same, read both by the lexer (a handler for every element) and by the tag scanner
    /// (a handler for these elements only).
    fn namespaces(html: &str, selector: &str) -> Vec<&'static str> {
        let scanned = namespaces_with(html, selector, true);
        let lexed = RefCell::new(Vec::new());
        rewrite_str(
            html,
            RewriteStrSettings {
                element_content_handlers: vec![
                    element!("*", |_el| Ok(())),
                    element!(selector, |el: &mut Element<'_, '_>| {
                        lexed
                            .borrow_mut()
                            .push(el.namespace_uri() == "http://www.w3.org/1999/xhtml");
                        Ok(())
                    }),
                ],
                ..RewriteStrSettings::new()
            },
        )
        .unwrap();
        let lexed: Vec<bool> = lexed.into_inner();
        assert_eq!(
            lexed,
            scanned.iter().map(|ns| *ns == "html").collect::<Vec<_>>(),
            "lexer and tag scanner disagree on {html}"
        );
        scanned
    }

    fn script_texts(html: &str) -> Vec<String> {
        let texts = RefCell::new(vec![String::new()]);
        rewrite_str(
            html,
            RewriteStrSettings {
                element_content_handlers: vec![text!("script", |t| {
                    texts.borrow_mut().last_mut().unwrap().push_str(t.as_str());
                    if t.last_in_text_node() {
                        texts.borrow_mut().push(String::new());
                    }
                    Ok(())
                })],
                ..RewriteStrSettings::new()
            },
        )
        .unwrap();
        let mut texts = texts.into_inner();
        texts.pop();
        texts
    }

    // Patch 4: an HTML ancestor's end tag closes the <svg> or <math> in it.

    #[test]
    fn the_end_of_an_html_title_in_an_svg_title_leaves_the_svg_title_open() {
        // In the SVG `<title>` (an integration point) the inner `<title>` is HTML, read as
        // RCDATA: its `</title>` ends it alone, and the `<style>` after it is HTML.
        let html = "<svg><title><title>t</title><style>a{}</style></title></svg><style></style>";
        assert_eq!(namespaces(html, "style"), ["html", "html"]);
    }

    #[test]
    fn an_svg_script_end_tag_closes_the_integration_point_inside_it() {
        // `</script>` at the SVG `<title>` (an integration point, nothing open in it) follows
        // the rules for foreign content: it pops to the SVG `<script>`, the title with it, and
        // the next `<script>` is an SVG one.
        let html = "<svg><script><title>t<img></script><script src=x></script></svg>";
        assert_eq!(namespaces(html, "script"), ["svg", "svg"]);
        assert_eq!(namespaces(html, "img"), ["html"]);
        // A self-closing one pops nothing.
        let html = "<svg><g><script/><title>t</script><p title=x></p></svg>";
        assert_eq!(namespaces(html, "p"), ["html"]);
    }

    #[test]
    fn an_html_end_tag_closes_the_svg_inside_its_element() {
        let html = r#"<div><svg><path d="M0 0"></div><iframe src="x"></iframe>"#;
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        assert_eq!(namespaces(html, "path"), ["svg"]);
    }

    #[test]
    fn a_heading_end_tag_closes_the_math_inside_it() {
        let html = "<h1><math></h1><script>gtag(</script>";
        assert_eq!(namespaces(html, "script"), ["html"]);
        // Script data: the text is read whole, as text.
        assert_eq!(
            script_texts("<h1><math></h1><script>a<b>c</script>"),
            ["a<b>c"]
        );
        // `</h2>` closes an open <h1> as well.
        assert_eq!(
            namespaces("<h1><math></h2><script></script>", "script"),
            ["html"]
        );
    }

    #[test]
    fn an_end_tag_of_no_open_element_is_ignored_in_svg() {
        assert_eq!(
            namespaces("<svg></div><script></script>", "script"),
            ["svg"]
        );
        assert_eq!(
            namespaces("<span><svg></div><script></script>", "script"),
            ["svg"]
        );
        assert_eq!(
            namespaces("<ul><li>a</li></ul><svg></li><script></script>", "script"),
            ["svg"]
        );
        // A special element in between: `</span>` stops at the <div>.
        assert_eq!(
            namespaces("<span><div><svg></span><script></script>", "script"),
            ["svg"]
        );
        // `</form>` takes the form out and leaves the <svg> open.
        assert_eq!(
            namespaces("<form><svg></form><script></script>", "script"),
            ["svg"]
        );
        // An unknown element is closed by its end tag; a custom one (its name has no hash)
        // cannot be told from another: its end tag is ignored in SVG.
        assert_eq!(
            namespaces("<foo><svg></foo><script></script>", "script"),
            ["html"]
        );
        assert_eq!(
            namespaces("<my-el><svg></my-el><script></script>", "script"),
            ["svg"]
        );
        // `</body>` pops nothing.
        assert_eq!(
            namespaces("<body><svg></body><script></script>", "script"),
            ["svg"]
        );
    }

    #[test]
    fn an_end_tag_of_an_open_foreign_element_stays_in_it() {
        assert_eq!(
            namespaces("<div><svg><g></g><script></script></svg></div>", "script"),
            ["svg"]
        );
        // The SVG <a> takes `</a>`, not the HTML one around the <svg>.
        let html =
            "<a href=x><svg><a><text>t</text></a><script></script></svg></a><script></script>";
        assert_eq!(namespaces(html, "script"), ["svg", "html"]);
        // A self-closing SVG <a> is not open.
        assert_eq!(
            namespaces("<a><svg><a/></a><script></script>", "script"),
            ["html"]
        );
        assert_eq!(
            namespaces(
                "<div><svg><script></script></div><script></script>",
                "script"
            ),
            ["svg", "html"]
        );
    }

    #[test]
    fn html_end_tags_inside_an_integration_point() {
        // `</div>` closes the <div> in the <foreignObject> and the <svg> in it.
        let html = "<div><svg><foreignObject><div><svg><path></div><script></script>\
                    </foreignObject><script></script></div><iframe></iframe>";
        assert_eq!(namespaces(html, "script"), ["html", "svg"]);
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        // The <foreignObject> bounds the scope: the outer <div> is out of reach.
        let html = "<div><svg><foreignObject><svg><path></div><script></script>";
        assert_eq!(namespaces(html, "script"), ["svg"]);
        // `</foreignObject>` with an element open in it is ignored.
        let html = "<svg><foreignObject><span></foreignObject><script></script>";
        assert_eq!(namespaces(html, "script"), ["html"]);
        // Also with an unknown or custom element open in it (found by the fuzz target).
        let html = "<svg>e<title>}<j>t</title>E<style></style><script></script>";
        assert_eq!(namespaces(html, "style, script"), ["html", "html"]);
        let html = "<svg><desc><x-y></desc><script></script>";
        assert_eq!(namespaces(html, "script"), ["html"]);
        let html = "<svg><foreignObject></foreignObject><script></script>";
        assert_eq!(namespaces(html, "script"), ["svg"]);
        // `</svg>` right in the <foreignObject> closes the <svg>.
        let html = "<svg><foreignObject></svg><script></script>";
        assert_eq!(namespaces(html, "script"), ["html"]);
    }

    #[test]
    fn implied_end_tags_are_followed() {
        // The second <li> closes the first: `</li>` closes the second, and the <svg> in it.
        let html = "<ul><li>a<li><svg></li><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        let html = "<ul><li>a<li>b</li><svg></li><script></script>";
        assert_eq!(namespaces(html, "script"), ["svg"]);
        let html = "<table><tr><td><svg></td><td><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        let html = "<table><tr><td>a<td><svg></tr><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        let html = "<div><p><svg></div><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        // The adoption agency: `</b>` closes what is open in the <div> in it.
        let html = "<b><div><svg></b><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
        let html = "<a href=1><svg></a><iframe></iframe>";
        assert_eq!(namespaces(html, "iframe"), ["html"]);
    }

    #[test]
    fn a_self_closing_root_is_no_root() {
        assert_eq!(namespaces("<svg/><iframe></iframe>", "iframe"), ["html"]);
        assert_eq!(namespaces("<svg/><iframe></iframe>", "svg"), ["svg"]);
        assert_eq!(namespaces("<math/><script></script>", "script"), ["html"]);
        assert_eq!(
            namespaces("<svg><svg/><script></script>", "script"),
            ["svg"]
        );
    }

    #[test]
    fn the_stack_is_bounded() {
        let deep = "<div>".repeat(MAX_OPEN_ELEMENTS + 10);
        // Past the cap, in strict mode, entering foreign content is ambiguous: the rewriter
        // stops (fails closed).
        let html = format!("{deep}<svg></div><iframe></iframe>");
        let err = rewrite_str(&html, RewriteStrSettings::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot tell where that content ends"),
            "{err}"
        );
        // Without a foreign root it is not.
        let html = format!("{deep}<iframe></iframe>");
        assert!(rewrite_str(&html, RewriteStrSettings::new()).is_ok());
        // Without the strict mode, past the cap, elements are not recorded.
        let html = format!("{deep}<svg><script></script>");
        assert_eq!(namespaces_with(&html, "script", false), ["svg"]);

        let mut sim = TreeBuilderSimulator::new(false);
        for _ in 0..10 * MAX_OPEN_ELEMENTS {
            let _ = sim
                .get_feedback_for_start_tag(LocalNameHash::from("div"))
                .unwrap();
            let _ = sim
                .get_feedback_for_start_tag(LocalNameHash::from("span"))
                .unwrap();
        }
        assert_eq!(sim.open.len(), MAX_OPEN_ELEMENTS);
        assert!(sim.overflowed);
        let mut sim = TreeBuilderSimulator::new(true);
        for _ in 0..10 * MAX_OPEN_ELEMENTS {
            if sim
                .get_feedback_for_start_tag(LocalNameHash::from("li"))
                .is_err()
            {
                break;
            }
        }
        // <li> closes the open <li>: nothing piles up.
        assert_eq!(sim.open.len(), 1);
    }

    #[test]
    fn deep_svg_content_fails_closed_in_strict_mode() {
        let html = format!(
            "<svg>{}<script></script>",
            "<a>".repeat(MAX_OPEN_ELEMENTS + 10)
        );
        assert!(rewrite_str(&html, RewriteStrSettings::new()).is_err());
        assert!(
            rewrite_str(
                &html,
                RewriteStrSettings {
                    strict: false,
                    ..RewriteStrSettings::new()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn name_hashes_agree() {
        for set in [
            &SCOPE_BOUNDARIES[..],
            &SPECIAL,
            &FORMATTING,
            &ORDINARY,
            &CLOSES_P,
            &TABLE_END_TAGS,
        ] {
            for &name in set {
                assert_ne!(name, 0);
                assert_ne!(name, ANNOTATION_XML);
            }
        }
        assert_eq!(h("div"), LocalNameHash::from("div").raw());
        assert_eq!(h("blockquote"), LocalNameHash::from("BlockQuote").raw());
        assert_eq!(h("h1"), Tag::H1 as u64);
        assert_eq!(h("figcaption"), LocalNameHash::from("figcaption").raw());
    }

    // Patch 3: <math> in SVG, <svg> in MathML.

    #[test]
    fn math_inside_svg_is_an_svg_element() {
        assert_eq!(
            namespaces("<svg><math><script >gtag(</script>", "script"),
            ["svg"]
        );
        assert_eq!(
            namespaces("<svg><math><script>fbq()</script></math></svg>", "script"),
            ["svg"]
        );
        assert_eq!(
            namespaces("<svg><math></math><script></script>", "script"),
            ["svg"]
        );
        assert_eq!(
            namespaces("<svg><math></math></svg><script></script>", "script"),
            ["html"]
        );
        assert_eq!(
            namespaces("<svg><math><image/></math></svg>", "image"),
            ["svg"]
        );
        assert_eq!(namespaces("<svg><math></math></svg>", "math"), ["svg"]);
    }

    #[test]
    fn svg_inside_math_is_a_mathml_element() {
        let html =
            r#"<math><svg><foreignObject><textarea></foreignObject><img src="x"></textarea>"#;
        assert_eq!(namespaces(html, "img"), ["html"]);
        assert_eq!(namespaces(html, "textarea"), ["math"]);
        assert_eq!(
            namespaces("<math><svg></svg><script></script>", "script"),
            ["math"]
        );
        assert_eq!(
            namespaces("<math><svg></svg></math><script></script>", "script"),
            ["html"]
        );
        // In <annotation-xml>, <svg> starts SVG.
        let html = "<math><annotation-xml><svg><script></script></svg><script></script>\
                    </annotation-xml></math><script></script>";
        assert_eq!(namespaces(html, "script"), ["svg", "math", "html"]);
        // So does it in a text integration point.
        assert_eq!(
            namespaces("<math><mi><svg><script></script>", "script"),
            ["svg"]
        );
        // And HTML ends both.
        assert_eq!(
            namespaces("<div><math><svg></div><script></script>", "script"),
            ["html"]
        );
    }
}
