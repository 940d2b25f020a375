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
