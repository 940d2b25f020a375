//! Which kinds of element a whole document can hold, read from its bytes before it is parsed, so
//! that the rewriter asks lol_html to stop only at those: every kind it selects costs lol_html
//! work on every element of the document, and a `style` attribute selector makes it read the
//! attributes of every tag: so that selector is used only when some `style` attribute can load
//! a URL (most only set colours and sizes).
//!
//! The reading is a superset of the parser's. A start tag of kind `k` is, in the bytes, `<`,
//! then `k` in any case (tag names are ASCII-lowercased; character references and percent
//! escapes mean nothing in a tag name; a NUL makes another name), then white space, `/` or `>`
//! (or the end of the document). An attribute named `style` is `style` in any case, after white
//! space, `/` or a quote, and before white space, `/`, `>` or `=`. In every ASCII-compatible
//! encoding (the only ones the rewriter parses) these ASCII bytes stand for themselves and are
//! never part of a multibyte character, so a document whose bytes hold no such sequence holds no
//! such element, wherever the parser would put it (raw text, comments and attribute values
//! included: a false match only costs time).

use super::css::declarations_can_load;

/// A set of element kinds, and whether some tag may have a `style` attribute that can load a
/// URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    tags: u32,
    style_attribute: bool,
}

/// The tag names the rewriter selects, each a bit of [`Kinds`].
const NAMES: [&str; 18] = [
    "script", "img", "iframe", "link", "noscript", "style", "embed", "object", "image", "source",
    "video", "audio", "track", "input", "head", "template", "meta", "body",
];

impl Kinds {
    /// Every kind: what a document read in pieces may hold.
    pub const ALL: Kinds = Kinds {
        tags: (1 << NAMES.len()) - 1,
        style_attribute: true,
    };

    /// The kinds the bytes of a whole document can hold.
    pub fn of(doc: &[u8]) -> Kinds {
        let mut tags = 0u32;
        for at in memchr::memchr_iter(b'<', doc) {
            let name = &doc[at + 1..];
            // Most tags are end tags or start with another letter.
            if !name
                .first()
                .is_some_and(|b| FIRST.contains(&b.to_ascii_lowercase()))
            {
                continue;
            }
            let len = name
                .iter()
                .take(NAMES_MAX + 1)
                .position(|b| !b.is_ascii_alphabetic())
                .unwrap_or(name.len().min(NAMES_MAX + 1));
            if !(NAMES_MIN..=NAMES_MAX).contains(&len) || !ends_tag_name(name.get(len)) {
                continue;
            }
            let mut lower = [0u8; NAMES_MAX];
            lower[..len].copy_from_slice(&name[..len]);
            lower.make_ascii_lowercase();
            if let Some(i) = index_of(&lower[..len]) {
                tags |= 1 << i;
            }
        }
        Kinds {
            tags,
            style_attribute: has_style_attribute(doc),
        }
    }

    /// Whether a tag of this name may be in the document.
    pub fn has(&self, name: &str) -> bool {
        NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.tags & (1 << i) != 0)
    }

    /// Whether some tag may have a `style` attribute that can load a URL.
    pub fn style_attribute(&self) -> bool {
        self.style_attribute
    }

    /// A lol_html selector list of those of `names` the document may hold; `None` if none.
    pub fn selector(&self, names: &[&str]) -> Option<String> {
        let present: Vec<&str> = names.iter().copied().filter(|n| self.has(n)).collect();
        (!present.is_empty()).then(|| present.join(", "))
    }
}

/// The first letters of [`NAMES`].
const FIRST: &[u8] = b"silneovathmb";
const NAMES_MIN: usize = 3;
const NAMES_MAX: usize = 8;

/// The bit of a lowercase tag name in [`NAMES`].
fn index_of(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"script" => 0,
        b"img" => 1,
        b"iframe" => 2,
        b"link" => 3,
        b"noscript" => 4,
        b"style" => 5,
        b"embed" => 6,
        b"object" => 7,
        b"image" => 8,
        b"source" => 9,
        b"video" => 10,
        b"audio" => 11,
        b"track" => 12,
        b"input" => 13,
        b"head" => 14,
        b"template" => 15,
        b"meta" => 16,
        b"body" => 17,
        _ => return None,
    })
}

/// White space (CR included: the input stream turns it into LF), `/` or `>` end a tag name, as
/// does the end of the document.
fn ends_tag_name(b: Option<&u8>) -> bool {
    matches!(
        b,
        None | Some(b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>')
    )
}

/// Whether `style`, in any case, stands in the bytes where an attribute name can, with a value
/// that can load a URL (see [`declarations_can_load`]; a character reference could make any
/// text). The value is read as the tokenizer reads it after an attribute name: white space,
/// `=`, white space, then a quoted value up to its quote or an unquoted one up to white space
/// or `>`. Where `style` stands in text rather than in a tag, the value read is garbage that
/// can only add a match. Found by its `y`, the rarest of its letters in pages.
fn has_style_attribute(doc: &[u8]) -> bool {
    const BEFORE: &[u8] = b"\t\n\x0c\r /\"'";
    const AFTER: &[u8] = b"\t\n\x0c\r />=";
    memchr::memchr2_iter(b'y', b'Y', doc).any(|y| {
        let Some(at) = y.checked_sub(2) else {
            return false;
        };
        doc.get(at..at + 5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"style"))
            && at.checked_sub(1).is_some_and(|p| BEFORE.contains(&doc[p]))
            && doc.get(at + 5).is_none_or(|b| AFTER.contains(b))
            && style_value(&doc[at + 5..])
                .is_some_and(|v| v.contains(&b'&') || declarations_can_load(v))
    })
}

/// The value of an attribute whose name has just been read, as the tokenizer reads it; `None`
/// for an attribute without one.
fn style_value(rest: &[u8]) -> Option<&[u8]> {
    let ws = |b: &u8| matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ');
    let rest = &rest[rest.iter().position(|b| !ws(b))?..];
    let rest = rest.strip_prefix(b"=")?;
    let rest = &rest[rest.iter().position(|b| !ws(b)).unwrap_or(rest.len())..];
    Some(match rest.first() {
        Some(&q @ (b'"' | b'\'')) => {
            let value = &rest[1..];
            &value[..memchr::memchr(q, value).unwrap_or(value.len())]
        }
        _ => {
            &rest[..rest
                .iter()
                .position(|b| ws(b) || *b == b'>')
                .unwrap_or(rest.len())]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_found_in_any_case_and_ending() {
        let k = Kinds::of(b"<IMG\nsrc=x><Script>x</script><iframe/><LINK>");
        for name in ["img", "script", "iframe", "link"] {
            assert!(k.has(name), "{name}");
        }
        for name in ["style", "video", "noscript", "head", "image"] {
            assert!(!k.has(name), "{name}");
        }
        assert!(
            Kinds::of(b"<video").has("video"),
            "at the end of the document"
        );
        assert!(
            Kinds::of(b"<p>'<object\t'").has("object"),
            "inside text too"
        );
    }

    #[test]
    fn longer_names_and_other_names_are_not_the_kind() {
        let k = Kinds::of(b"<imgx><scripts><link-x><images><iframe2><sourcex>");
        assert_eq!(k.tags, 0);
        assert_eq!(Kinds::of(b"<ima\0ge>").tags, 0, "a NUL makes another name");
    }

    #[test]
    fn style_attributes_that_can_load_are_found_where_an_attribute_name_can_stand() {
        for doc in [
            &b"<p style=\"background:url(/x.png)\">"[..],
            b"<p STYLE = 'b:URL(x)'>",
            b"<p a=\"b\"style=b:url(x)>",
            b"<p a='b'style=\"x:-webkit-image-set('a.png' 1x)\">",
            b"<p/style=b:u\\72l(x)>",
            b"<p style=\"b:url&#40;x)\">",
            b"<p\nstyle\n=\n\"b:image(x)\"",
            b"<p style=\"b:url(x",
        ] {
            assert!(
                Kinds::of(doc).style_attribute(),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        for doc in [
            &b"<link rel=stylesheet href=/s.css>"[..],
            b"<p data-style=\"b:url(x)\">",
            b"<p class=lifestyle>",
            b"<p xstyle=\"b:url(x)\">",
            b"<p style=\"color:rgba(0,0,0,.5);width:calc(1px + 2em)\">",
            b"<p style>url(x)</p>",
            b"<p style=\"a\" title=\"url(x)\">",
            b"<p style=a>url(x)",
        ] {
            assert!(
                !Kinds::of(doc).style_attribute(),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn every_name_has_its_bit() {
        for (i, name) in NAMES.iter().enumerate() {
            assert!(FIRST.contains(&name.as_bytes()[0]), "{name}");
            assert_eq!(index_of(name.as_bytes()), Some(i), "{name}");
            assert!((NAMES_MIN..=NAMES_MAX).contains(&name.len()), "{name}");
            assert!(
                Kinds::of(format!("<{name}>").as_bytes()).has(name),
                "{name}"
            );
        }
    }

    #[test]
    fn the_selector_lists_what_is_present() {
        let k = Kinds::of(b"<script></script><img src=x>");
        assert_eq!(
            k.selector(&["script", "img", "iframe"]).as_deref(),
            Some("script, img")
        );
        assert_eq!(k.selector(&["iframe", "video"]), None);
        assert_eq!(
            Kinds::ALL.selector(&["video", "head"]).as_deref(),
            Some("video, head")
        );
    }
}
