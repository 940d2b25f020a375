//! The URLs that a script's or a style sheet's text names: host names followed by a path or by
//! the end of a string, however the text builds the URL around them (`"https://host/p"`,
//! `'//host/p'`, `"https:\/\/host\/p"` in JSON, `"http://www" + ".host.com/p.js"`,
//! `document.write('<img src="//host/p">')`, `url(//host/p)`).
//!
//! A pure scanner: it knows nothing of the catalogue. [`mentions`] yields every candidate host;
//! the caller looks the host up, and only for a known one asks for its [`Mention::url`] and its
//! [`Mention::loads`] context.

/// A host named in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// Where the URL starts: its scheme, its `//`, or the host when neither precedes it.
    pub start: usize,
    /// Where the host starts and ends.
    pub host_start: usize,
    pub host_end: usize,
    /// Where the URL ends (after its path and query).
    pub end: usize,
}

impl Mention {
    /// The host, lower-cased, without a leading dot.
    pub fn host<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let host = &text[self.host_start..self.host_end];
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            host.to_ascii_lowercase().into()
        } else {
            host.into()
        }
    }

    /// The URL as `//host/path?query`, with JSON's `\/` read as `/`.
    pub fn url(&self, text: &str) -> String {
        let rest = text[self.host_end..self.end].replace("\\/", "/");
        format!("//{}{rest}", self.host(text))
    }

    /// Whether the text hands the URL to something that loads it: a `src` (`src="…"`,
    /// `.src = '…'`, `src: "…"`, `setAttribute('src', '…')`), or `fetch(`, `sendBeacon(`,
    /// `import(`, `importScripts(`, `url(`.
    pub fn loads(&self, text: &str) -> bool {
        // Read as bytes: what precedes a URL may be any text.
        let skipped = |b: &u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'\\');
        let trim =
            |s: &[u8]| -> usize { s.len() - s.iter().rev().take_while(|b| skipped(b)).count() };
        let bytes = &text.as_bytes()[..self.start];
        let before = &bytes[..trim(bytes)];
        let Some((&last, rest)) = before.split_last() else {
            return false;
        };
        let head = &rest[..trim(rest)];
        let ends_with_word = |word: &str| {
            let word = word.as_bytes();
            head.len() >= word.len()
                && head[head.len() - word.len()..].eq_ignore_ascii_case(word)
                && !head[..head.len() - word.len()]
                    .last()
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        };
        match last {
            b'=' | b':' | b',' => ends_with_word("src"),
            b'(' => ["fetch", "sendBeacon", "import", "importScripts", "url"]
                .iter()
                .any(|w| ends_with_word(w)),
            _ => false,
        }
    }
}

fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Bytes that end a URL in script or CSS text.
fn ends_url(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"'`<>(){}+|".contains(&b)
}

/// What may follow a host for it to count as one: a path, a query, a port, or the end of a
/// string. A name followed by anything else (`window.location.href;`, `a.b(`) is not a host.
fn follows_host(b: Option<&u8>) -> bool {
    matches!(
        b,
        Some(b'/' | b'\\' | b'"' | b'\'' | b'`' | b'?' | b'#' | b':')
    )
}

/// Every host-like name in `text` that could be a URL's host: two or more labels of letters,
/// digits and hyphens, the last of at least two letters; not part of an e-mail address or an
/// identifier (`$a.b`, `_x.y`); followed by a path, a query, a port or a closing quote.
pub fn mentions(text: &str) -> impl Iterator<Item = Mention> + '_ {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(dot) = memchr::memchr(b'.', &bytes[from..]).map(|i| from + i) {
            let mut start = dot;
            while start > 0 && host_byte(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = dot + 1;
            while end < bytes.len() && host_byte(bytes[end]) {
                end += 1;
            }
            from = end.max(dot + 1);
            let before = start.checked_sub(1).map(|i| bytes[i]);
            if matches!(before, Some(b'@' | b'_' | b'$')) || !follows_host(bytes.get(end)) {
                continue;
            }
            // `"http://www" + ".host.com"`: the leading dot is the concatenation's.
            let host_start =
                start + text[start..end].len() - text[start..end].trim_start_matches('.').len();
            let host_end = host_start + text[host_start..end].trim_end_matches('.').len();
            let host = &text[host_start..host_end];
            let tld = host.rsplit('.').next().unwrap_or("");
            if !host.contains('.')
                || host.contains("..")
                || tld.len() < 2
                || !tld.bytes().all(|b| b.is_ascii_alphabetic())
            {
                continue;
            }
            // A port, then the path.
            let mut url_end = host_end;
            if bytes.get(url_end) == Some(&b':') {
                let digits = bytes[url_end + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    continue;
                }
                url_end += 1 + digits;
            }
            while url_end < bytes.len() {
                let b = bytes[url_end];
                if b == b'\\' && bytes.get(url_end + 1) == Some(&b'/') {
                    url_end += 2;
                } else if b == b'\\' || ends_url(b) {
                    break;
                } else {
                    url_end += 1;
                }
            }
            from = from.max(url_end);
            return Some(Mention {
                start: url_start(text, host_start),
                host_start,
                host_end,
                end: url_end,
            });
        }
        from = bytes.len();
        None
    })
}

/// Where a URL whose host starts at `host_start` begins: before `//` (or JSON's `\/\/`) and a
/// scheme, when they are there.
fn url_start(text: &str, host_start: usize) -> usize {
    let head = &text[..host_start];
    let Some(rest) = head
        .strip_suffix("//")
        .or_else(|| head.strip_suffix("\\/\\/"))
    else {
        return host_start;
    };
    let scheme_len = rest
        .bytes()
        .rev()
        .skip_while(|&b| b == b':')
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    if rest.ends_with(':') && scheme_len > 0 {
        rest.len() - scheme_len - 1
    } else {
        rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(text: &str) -> Vec<String> {
        mentions(text).map(|m| m.url(text)).collect()
    }

    #[test]
    fn urls_are_found_however_a_script_writes_them() {
        assert_eq!(
            urls(r#"s.src = "https://connect.facebook.net/en_US/sdk.js#xfbml=1";"#),
            ["//connect.facebook.net/en_US/sdk.js#xfbml=1"]
        );
        assert_eq!(
            urls(r#"{"u":"https:\/\/connect.facebook.net\/en_US\/fbevents.js"}"#),
            ["//connect.facebook.net/en_US/fbevents.js"]
        );
        assert_eq!(
            urls(
                r#"('https:' == d.location.protocol ? 'https://secure' : 'http://edge') + '.quantserve.com/quant.js'"#
            ),
            ["//quantserve.com/quant.js"]
        );
        assert_eq!(
            urls(
                r#"document.write('<iframe src="http://1.fls.doubleclick.net/activityi;src=1;ord=' + a + '?" width="1"></iframe>');"#
            ),
            ["//1.fls.doubleclick.net/activityi;src=1;ord="]
        );
        assert_eq!(
            urls("fetch('https://facebook.com/tr?id=1&ev=x', {mode: 'no-cors'})"),
            ["//facebook.com/tr?id=1&ev=x"]
        );
        assert_eq!(
            urls("background:url(//pixel.example.com:8080/p.gif) no-repeat"),
            ["//pixel.example.com:8080/p.gif"]
        );
        assert_eq!(urls("var h = 'cdn.taboola.com';"), ["//cdn.taboola.com"]);
    }

    #[test]
    fn names_that_are_not_hosts_are_passed_over() {
        for text in [
            "window.location.href;",
            "a.b(c)",
            "mailto:privacy@facebook.com'",
            "$a.bc/2",
            "_x.yz'",
            "x = 1.5/2",
            "v1.2.3'",
            "'We use Google Analytics and facebook.com to'",
        ] {
            assert!(urls(text).is_empty(), "{text}: {:?}", urls(text));
        }
    }

    #[test]
    fn a_url_start_includes_its_scheme() {
        let text = r#"x="https://a.example.com/p" y=\/\/b.example.org\/q z='c.example.net/'"#;
        let found: Vec<&str> = mentions(text).map(|m| &text[m.start..m.end]).collect();
        assert_eq!(
            found,
            [
                "https://a.example.com/p",
                "\\/\\/b.example.org\\/q",
                "c.example.net/"
            ]
        );
    }

    #[test]
    fn load_contexts_are_told_from_links() {
        let loads = |text: &str| mentions(text).next().unwrap().loads(text);
        for text in [
            "img.src = 'https://www.facebook.com/x'",
            "<iframe src=\"//www.facebook.com/x\">",
            "<iframe src=\\\"https:\\/\\/www.facebook.com\\/x\\\">",
            "{src: 'https://www.facebook.com/x'}",
            "el.setAttribute('src', 'https://www.facebook.com/x')",
            "fetch('https://www.facebook.com/x')",
            "navigator.sendBeacon(\"https://www.facebook.com/x\")",
            "background: url(https://www.facebook.com/x)",
        ] {
            assert!(loads(text), "{text}");
        }
        for text in [
            "window.open('https://www.facebook.com/sharer/sharer.php?u=' + u)",
            "a.href = 'https://www.facebook.com/x'",
            "location = 'https://www.facebook.com/x'",
            "var datasrc = 'https://www.facebook.com/x'",
            "{share: 'https://www.facebook.com/x'}",
            "'https://www.facebook.com/x'",
            "\u{e9}'https://www.facebook.com/x'",
            "\u{20ac}src\u{e9}('https://www.facebook.com/x'",
        ] {
            assert!(!loads(text), "{text}");
        }
        assert!(loads("\u{e9}src='https://www.facebook.com/x'"));
    }
}
