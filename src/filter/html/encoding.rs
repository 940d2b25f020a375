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
