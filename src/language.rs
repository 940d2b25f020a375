//! Choosing one of a few languages from a request's `Accept-Language` (RFC 9110, section
//! 12.5.4), as a pure function that never fails: a quality that is not a number from 0 to 1 drops
//! its entry, `q=0` means "not this one", tags compare without regard to case, and a tag the
//! visitor asks for also matches the language it narrows (`de-DE` finds `de`).

/// The longest header read; the rest is ignored.
const MAX_HEADER: usize = 4096;
/// The most entries read.
const MAX_ENTRIES: usize = 64;

/// The visitor's languages in order of preference (highest quality first, then as written).
fn ranges(header: &str) -> Vec<(&str, f32)> {
    let header = match header.char_indices().nth(MAX_HEADER) {
        Some((cut, _)) => &header[..cut],
        None => header,
    };
    let mut out: Vec<(usize, &str, f32)> = header
        .split(',')
        .take(MAX_ENTRIES)
        .enumerate()
        .filter_map(|(i, entry)| {
            let mut parts = entry.split(';');
            let tag = parts.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let mut q = 1.0f32;
            for p in parts {
                let (k, v) = p.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|q: &f32| (0.0..=1.0).contains(q))?;
                }
            }
            (q > 0.0).then_some((i, tag, q))
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(_, t, q)| (t, q)).collect()
}

/// The first of `available` the visitor accepts, by the visitor's order of preference: an exact
/// match of a range, else the language a range narrows (`de-CH` → `de`). `None` when it asks for
/// none of them (or sent no header).
pub fn choose<'a>(accept_language: Option<&str>, available: &[&'a str]) -> Option<&'a str> {
    let ranges = ranges(accept_language?);
    for (tag, _) in &ranges {
        if let Some(found) = available.iter().find(|a| a.eq_ignore_ascii_case(tag)) {
            return Some(found);
        }
        // Each shorter prefix of the range, as RFC 4647's lookup does.
        let mut narrower = *tag;
        while let Some((shorter, _)) = narrower.rsplit_once('-') {
            if let Some(found) = available.iter().find(|a| a.eq_ignore_ascii_case(shorter)) {
                return Some(found);
            }
            narrower = shorter;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::choose;

    const HAVE: [&str; 4] = ["de", "en", "fr", "pt-BR"];

    #[test]
    fn preference_order_case_and_narrowing() {
        assert_eq!(choose(Some("de-DE"), &HAVE), Some("de"));
        assert_eq!(choose(Some("DE"), &HAVE), Some("de"));
        assert_eq!(choose(Some("fr-FR,en;q=0.8"), &HAVE), Some("fr"));
        assert_eq!(choose(Some("ja, en;q=0.5, de;q=0.9"), &HAVE), Some("de"));
        assert_eq!(choose(Some("pt-br"), &HAVE), Some("pt-BR"));
        assert_eq!(choose(Some("pt"), &HAVE), None);
        assert_eq!(choose(Some("ja"), &HAVE), None);
        assert_eq!(choose(None, &HAVE), None);
        assert_eq!(choose(Some("*"), &HAVE), None);
    }

    #[test]
    fn zero_and_unreadable_qualities_are_not_choices() {
        assert_eq!(choose(Some("de;q=0, en;q=0.1"), &HAVE), Some("en"));
        assert_eq!(choose(Some("de;q=NaN, fr;q=0.5"), &HAVE), Some("fr"));
        assert_eq!(choose(Some("de;q=2, fr;q=-1, en;q=inf"), &HAVE), None);
        assert_eq!(choose(Some("de;q"), &HAVE), None);
    }

    #[test]
    fn a_header_whose_qualities_no_order_could_sort_does_not_panic() {
        // Many NaN qualities among numbers: a comparison that is not a total order can make
        // the standard sort panic.
        let header: String = (0..200)
            .map(|i| {
                let q = ["1", "0.7", "NaN", "nan", "0.9", "0", "0.2"][i % 7];
                format!("l{i};q={q}")
            })
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(choose(Some(&header), &HAVE), None);
        let long = "x-".repeat(10_000);
        assert_eq!(choose(Some(&long), &HAVE), None);
    }
}
