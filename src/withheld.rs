//! The placeholder a withheld embed shows: an `<iframe>` of a tracker (a video player, a social
//! post, a map, an ad frame) keeps its size and its `data-src`, and, when the policy gives a
//! placeholder text, its `src` points at a small page the proxy serves, which says in the
//! visitor's language what was withheld and why. A consent manager that activates the frame
//! sets `src` from `data-src`, which replaces the placeholder.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Where the proxy serves the placeholder page.
pub const PATH: &str = "/.well-known/consent-proxy/withheld";

/// The longest placeholder text a policy may give.
pub const MAX_TEXT: usize = 1000;

/// The placeholder texts by language tag, with `{vendor}` and `{category}` to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    texts: BTreeMap<String, String>,
    /// The language used when the visitor asks for none of them: `en` if given, else the first.
    fallback: String,
}

impl Placeholder {
    /// Validates the texts of a policy's `embed_placeholder`.
    pub fn new(texts: BTreeMap<String, String>) -> Result<Placeholder, String> {
        for (lang, text) in &texts {
            let valid = !lang.is_empty()
                && lang.split('-').all(|p| {
                    !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !valid {
                return Err(format!(
                    "embed_placeholder: `{lang}` is not a language tag (e.g. `en`, `de`, `pt-BR`)"
                ));
            }
            if text.trim().is_empty() || text.len() > MAX_TEXT {
                return Err(format!(
                    "embed_placeholder.{lang}: the text must hold 1 to {MAX_TEXT} bytes"
                ));
            }
        }
        let fallback = if texts.contains_key("en") {
            "en".to_string()
        } else {
            texts
                .keys()
                .next()
                .cloned()
                .ok_or("embed_placeholder: give at least one language")?
        };
        Ok(Placeholder { texts, fallback })
    }

    /// The text for a visitor's `Accept-Language`.
    fn text(&self, accept_language: Option<&str>) -> &str {
        let langs: Vec<&str> = self.texts.keys().map(String::as_str).collect();
        let lang = crate::language::choose(accept_language, &langs).unwrap_or(&self.fallback);
        self.texts
            .get(lang)
            .or_else(|| self.texts.get(&self.fallback))
            .map_or("", String::as_str)
    }

    /// The placeholder page for a request's query (`vendor`, `category`) and `Accept-Language`.
    /// It runs no script and loads nothing.
    pub fn page(&self, accept_language: Option<&str>, query: Option<&str>) -> Bytes {
        let mut vendor = String::new();
        let mut category = String::new();
        for (k, v) in form_urlencoded(query.unwrap_or("")) {
            match k.as_str() {
                "vendor" => vendor = v,
                "category" => category = v,
                _ => {}
            }
        }
        let text = self
            .text(accept_language)
            .replace("{vendor}", &vendor)
            .replace("{category}", &category);
        Bytes::from(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>\
             html,body{{height:100%;margin:0}}body{{display:flex;align-items:center;\
             justify-content:center;background:#f3f3f3;color:#222;font:15px/1.4 system-ui,\
             sans-serif;text-align:center;padding:1em;box-sizing:border-box}}</style></head>\
             <body><p>{}</p></body></html>",
            html_escape::encode_text(&vendor),
            html_escape::encode_text(&text)
        ))
    }
}

/// The `Content-Security-Policy` of the placeholder page: inline style only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'";

/// The `src` a withheld frame gets.
pub fn frame_src(vendor: &str, category: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!("{PATH}?vendor={}&category={}", enc(vendor), enc(category))
}

fn form_urlencoded(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (dec(k), dec(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder() -> Placeholder {
        Placeholder::new(BTreeMap::from([
            (
                "de".into(),
                "{vendor} ist ausgeblendet ({category}).".into(),
            ),
            (
                "en".into(),
                "{vendor} is hidden until you accept {category} cookies.".into(),
            ),
        ]))
        .unwrap()
    }

    #[test]
    fn the_visitors_language_is_chosen_with_a_fallback() {
        let p = placeholder();
        let q = Some("vendor=YouTube&category=marketing");
        let page = |al| String::from_utf8(p.page(al, q).to_vec()).unwrap();
        assert!(
            page(Some("de-DE,de;q=0.9,en;q=0.5")).contains("YouTube ist ausgeblendet (marketing).")
        );
        assert!(
            page(Some("fr-FR, en;q=0.8"))
                .contains("YouTube is hidden until you accept marketing cookies.")
        );
        assert!(page(Some("fr")).contains("is hidden"));
        assert!(page(None).contains("is hidden"));
    }

    #[test]
    fn what_the_query_says_is_escaped() {
        let p = placeholder();
        let src = frame_src("<script>alert(1)</script>", "marketing");
        let query = src.split_once('?').unwrap().1;
        let page = String::from_utf8(p.page(None, Some(query)).to_vec()).unwrap();
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; is hidden"),
            "{page}"
        );
    }

    #[test]
    fn bad_texts_are_refused() {
        let one = |l: &str, t: &str| Placeholder::new(BTreeMap::from([(l.into(), t.into())]));
        assert!(one("en", "").is_err());
        assert!(one("en us", "x").is_err());
        assert!(one("en", &"x".repeat(MAX_TEXT + 1)).is_err());
        assert!(Placeholder::new(BTreeMap::new()).is_err());
        assert_eq!(one("pt-BR", "x").unwrap().fallback, "pt-BR");
    }
}
