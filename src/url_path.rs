//! Request paths in the one form that endpoint rules and the decision log see: `;parameters`
//! removed, unreserved percent-escapes decoded, dot segments resolved, repeated and trailing
//! slashes removed, ASCII lowercased. Servers commonly treat all these spellings as the same
//! resource, so a tracking endpoint must not slip past a rule through one of them.

use std::borrow::Cow;

/// The path without `;parameters` in any segment (e.g. `;jsessionid=…`), as the decision log
/// records it.
pub fn without_params(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split(';').next().unwrap_or(""));
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The canonical form used to match endpoint rules (which are compared lowercased).
pub fn canonical(path: &str) -> String {
    let path = without_params(path);
    // Decode escapes of unreserved characters only; `%2F` stays a literal, undecoded byte run.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                decoded.push(c as char);
                i += 3;
                continue;
            }
        }
        // Paths from the request line are ASCII; anything else is kept as it is.
        let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
        decoded.push(ch);
        i += ch.len_utf8().max(1);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out.make_ascii_lowercase();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_endpoint_agree() {
        for p in [
            "/collect",
            "/collect/",
            "//collect",
            "/Collect",
            "/%63ollect",
            "/./collect",
            "/x/../collect",
            "/collect;x=1",
            "/../collect",
        ] {
            assert_eq!(canonical(p), "/collect", "{p}");
        }
        assert_eq!(canonical("/g//collect"), "/g/collect");
        assert_eq!(canonical("/"), "/");
        assert_eq!(canonical(""), "/");
        assert_eq!(canonical("/a%2Fb"), "/a%2fb");
        assert_eq!(canonical("/%zz%4"), "/%zz%4");
        assert_eq!(canonical("/tr/"), "/tr");
    }

    #[test]
    fn params_are_dropped_from_logged_paths() {
        assert_eq!(without_params("/shop;jsessionid=SECRET/item"), "/shop/item");
        assert_eq!(without_params("/plain"), "/plain");
    }
}
