//! The encoding a document is read in.

/// The charset a `Content-Type` names, if any.
pub fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The encoding a document is parsed in: the `Content-Type` charset if it names an
/// ASCII-compatible one; `None` if it names one the rewriter cannot parse (UTF-16 and the like);
/// UTF-8 when there is none (then a `<meta charset>` in the document switches it).
pub fn document_encoding(
    charset: Option<&str>,
) -> Option<(lol_html::AsciiCompatibleEncoding, bool)> {
    match charset {
        None => Some((lol_html::AsciiCompatibleEncoding::utf_8(), true)),
        Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
            // An unknown label is ignored, as browsers do.
            None => Some((lol_html::AsciiCompatibleEncoding::utf_8(), true)),
            Some(e) => lol_html::AsciiCompatibleEncoding::new(e).map(|e| (e, false)),
        },
    }
}

/// The HTML Standard's "prescan a byte stream to determine its encoding" over `b`: the encoding
/// the first `<meta>` that declares one names, outside comments and other tags; `None` when
/// the bytes run out first. UTF-16 is read as UTF-8 and x-user-defined as windows-1252.
pub fn prescan(b: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let mut at = 0;
    while at < b.len() {
        let rest = &b[at..];
        if rest.starts_with(b"<!--") {
            // To the `>` of the first `-->`, whose dashes may be those of `<!--`.
            let end = rest[2..].windows(3).position(|w| w == b"-->")?;
            at += 2 + end + 3;
            continue;
        }
        if rest.len() > 6 && rest[..5].eq_ignore_ascii_case(b"<meta") && is_space_or_slash(rest[5])
        {
            at += 6;
            if let Some(found) = meta_charset(b, &mut at)? {
                return Some(found);
            }
            continue;
        }
        let tag = match rest {
            [b'<', c, ..] if c.is_ascii_alphabetic() => Some(1),
            [b'<', b'/', c, ..] if c.is_ascii_alphabetic() => Some(2),
            _ => None,
        };
        if let Some(skip) = tag {
            at += skip
                + rest[skip..]
                    .iter()
                    .position(|&c| is_space(c) || c == b'>')?;
            while attribute(b, &mut at)?.is_some() {}
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") || rest.starts_with(b"<?") {
            at += rest.iter().position(|&c| c == b'>')?;
        }
        at += 1;
    }
    None
}

fn is_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_space_or_slash(c: u8) -> bool {
    is_space(c) || c == b'/'
}

/// The attributes of a `<meta>` from `at`: `Some(Some(encoding))` if it declares one (the
/// prescan ends), `Some(None)` if not (it goes on after the tag), `None` if the bytes ran out.
fn meta_charset(b: &[u8], at: &mut usize) -> Option<Option<&'static encoding_rs::Encoding>> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let (mut got_pragma, mut need_pragma, mut charset) = (false, None, None);
    while let Some((name, value)) = attribute(b, at)? {
        if seen.contains(&name) {
            continue;
        }
        match name.as_slice() {
            b"http-equiv" if value == b"content-type" => got_pragma = true,
            b"content" if charset.is_none() => {
                if let Some(e) = content_charset(&value) {
                    charset = Some(e);
                    need_pragma = Some(true);
                }
            }
            b"charset" => {
                charset = encoding_rs::Encoding::for_label(&value);
                need_pragma = Some(false);
            }
            _ => {}
        }
        seen.push(name);
    }
    *at += 1;
    let declared = match need_pragma {
        None => None,
        Some(true) if !got_pragma => None,
        _ => charset,
    };
    Some(declared.map(|e| {
        if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
            encoding_rs::UTF_8
        } else if e == encoding_rs::X_USER_DEFINED {
            encoding_rs::WINDOWS_1252
        } else {
            e
        }
    }))
}

/// The prescan's "get an attribute" from `at`: `Some(Some((name, value)))`, lowercased, with
/// `at` after it; `Some(None)` at the tag's `>` (`at` on it); `None` if the bytes ran out.
fn attribute(b: &[u8], at: &mut usize) -> Option<Option<(Vec<u8>, Vec<u8>)>> {
    while is_space_or_slash(*b.get(*at)?) {
        *at += 1;
    }
    if b[*at] == b'>' {
        return Some(None);
    }
    let (mut name, mut value) = (Vec::new(), Vec::new());
    loop {
        match *b.get(*at)? {
            b'=' if !name.is_empty() => {
                *at += 1;
                break;
            }
            c if is_space(c) => {
                while is_space(*b.get(*at)?) {
                    *at += 1;
                }
                if b[*at] != b'=' {
                    return Some(Some((name, value)));
                }
                *at += 1;
                break;
            }
            b'/' | b'>' => return Some(Some((name, value))),
            c => name.push(c.to_ascii_lowercase()),
        }
        *at += 1;
    }
    while is_space(*b.get(*at)?) {
        *at += 1;
    }
    match b[*at] {
        q @ (b'"' | b'\'') => loop {
            *at += 1;
            match *b.get(*at)? {
                c if c == q => {
                    *at += 1;
                    return Some(Some((name, value)));
                }
                c => value.push(c.to_ascii_lowercase()),
            }
        },
        b'>' => return Some(Some((name, value))),
        _ => {}
    }
    loop {
        match *b.get(*at)? {
            c if is_space(c) || c == b'>' => return Some(Some((name, value))),
            c => value.push(c.to_ascii_lowercase()),
        }
        *at += 1;
    }
}

/// "Extracting a character encoding from a meta element": the encoding after `charset=` in a
/// `content` value.
fn content_charset(value: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let mut from = 0;
    loop {
        let at = from
            + value[from..]
                .windows(7)
                .position(|w| w.eq_ignore_ascii_case(b"charset"))?;
        let mut i = at + 7;
        while value.get(i).is_some_and(|&c| is_space(c)) {
            i += 1;
        }
        if value.get(i) != Some(&b'=') {
            from = at + 7;
            continue;
        }
        i += 1;
        while value.get(i).is_some_and(|&c| is_space(c)) {
            i += 1;
        }
        let rest = &value[i..];
        return match rest.first()? {
            &q @ (b'"' | b'\'') => {
                let end = rest[1..].iter().position(|&c| c == q)?;
                encoding_rs::Encoding::for_label(&rest[1..1 + end])
            }
            _ => {
                let end = rest
                    .iter()
                    .position(|&c| is_space(c) || c == b';')
                    .unwrap_or(rest.len());
                encoding_rs::Encoding::for_label(&rest[..end])
            }
        };
    }
}

/// The encoding a `<meta charset>` or `<meta http-equiv="content-type" content="…;charset=…">`
/// declares, if it names one.
pub(super) fn meta_encoding<H: lol_html::HandlerTypes>(
    el: &lol_html::html_content::Element<'_, '_, H>,
) -> Option<&'static encoding_rs::Encoding> {
    let label = match el.get_attribute("charset") {
        Some(label) => label,
        None => {
            let equiv = el.get_attribute("http-equiv")?;
            if !equiv.trim().eq_ignore_ascii_case("content-type") {
                return None;
            }
            let content = el.get_attribute("content")?;
            let lower = content.to_ascii_lowercase();
            let at = lower.find("charset")?;
            let rest = lower[at + 7..].trim_start().strip_prefix('=')?.trim_start();
            let rest = rest.trim_start_matches(['"', '\'']);
            rest.split(|c: char| c == ';' || c == '"' || c == '\'' || c.is_ascii_whitespace())
                .next()?
                .to_string()
        }
    };
    encoding_rs::Encoding::for_label(label.trim().as_bytes())
}

/// UTF-16 in either byte order: a `<meta>` naming it is read as UTF-8 by browsers.
pub(super) fn is_utf16(e: &'static encoding_rs::Encoding) -> bool {
    e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE
}

#[cfg(test)]
mod tests {
    use super::prescan;
    use encoding_rs::{SHIFT_JIS, UTF_8, WINDOWS_1252};

    #[test]
    fn the_prescan_finds_the_meta_a_browser_finds() {
        for (doc, want) in [
            (&b"<meta charset=shift_jis>"[..], Some(SHIFT_JIS)),
            (
                b"<img src=\"//\xA6t.bing.com\"><meta charset=\"windows-1252\">1",
                Some(WINDOWS_1252),
            ),
            (b"<META CHARSET='Shift_JIS'>", Some(SHIFT_JIS)),
            (
                b"<meta http-equiv=Content-Type content=\"text/html; charset=sjis\">",
                Some(SHIFT_JIS),
            ),
            // A `content` charset counts only with the pragma.
            (b"<meta content=\"text/html; charset=sjis\">x", None),
            // Comments and other tags' attributes hide it.
            (b"<!-- <meta charset=sjis> --><p>", None),
            (b"<!-- --!><meta charset=sjis> -->", None),
            // `<!-->` is a whole comment: its `--` are those of `<!--`.
            (b"<!--><meta charset=sjis>", Some(SHIFT_JIS)),
            (b"<p title=\"<meta charset=sjis>\">x", None),
            // The first attribute of a name counts; UTF-16 is read as UTF-8.
            (b"<meta charset=utf-16 charset=sjis>", Some(UTF_8)),
            (b"<meta/charset=x-user-defined>", Some(WINDOWS_1252)),
            // An unknown label: the prescan goes on.
            (
                b"<meta charset=nonsense><meta charset=sjis>",
                Some(SHIFT_JIS),
            ),
            // The bytes run out in the tag.
            (b"<meta charset=sjis", None),
        ] {
            assert_eq!(prescan(doc), want, "{}", String::from_utf8_lossy(doc));
        }
    }
}
