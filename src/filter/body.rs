//! Whether a response body goes through the HTML tag rewriter, and the header changes that go
//! with it.

use super::html::{charset_of, document_encoding};
use crate::category::CategorySet;
use http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE,
    RANGE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// What happens to a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Streamed byte for byte.
    Passthrough,
    /// Streamed through the tag rewriter, decoded first if the upstream encoded it.
    Rewrite(Option<Coding>),
    /// HTML in a content coding or charset the proxy cannot inspect: refused rather than passed
    /// unjudged.
    RefuseEncoded,
}

/// A content coding the proxy can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// HTTP's `deflate`: zlib-wrapped.
    Deflate,
    Br,
    Zstd,
}

/// A content coding that cannot be decoded here: unknown, or several stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedCoding;

/// The response's content coding: `Ok(None)` for identity.
pub fn content_coding(headers: &HeaderMap) -> Result<Option<Coding>, UnsupportedCoding> {
    let mut codings = Vec::new();
    for v in headers.get_all(CONTENT_ENCODING) {
        let v = v.to_str().map_err(|_| UnsupportedCoding)?;
        for c in v.split(',').map(str::trim) {
            if !c.is_empty() && !c.eq_ignore_ascii_case("identity") {
                codings.push(c.to_ascii_lowercase());
            }
        }
    }
    match codings.as_slice() {
        [] => Ok(None),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
            "deflate" => Ok(Some(Coding::Deflate)),
            "br" => Ok(Some(Coding::Br)),
            "zstd" => Ok(Some(Coding::Zstd)),
            _ => Err(UnsupportedCoding),
        },
        _ => Err(UnsupportedCoding),
    }
}

/// The `Content-Encoding` value of a coding.
pub fn coding_token(c: Coding) -> HeaderValue {
    HeaderValue::from_static(coding_name(c))
}

fn coding_name(c: Coding) -> &'static str {
    match c {
        Coding::Gzip => "gzip",
        Coding::Deflate => "deflate",
        Coding::Br => "br",
        Coding::Zstd => "zstd",
    }
}

/// The codings the client accepts (q > 0, `*` included) among those the proxy can decode and
/// encode again, in the proxy's order of preference.
pub fn accepted_codings(accept_encoding: Option<&str>) -> Vec<Coding> {
    let Some(accept) = accept_encoding else {
        return Vec::new();
    };
    let q_of = |name: &str| -> Option<f32> {
        accept.split(',').find_map(|item| {
            let mut parts = item.split(';');
            let token = parts.next()?.trim();
            if !token.eq_ignore_ascii_case(name) {
                return None;
            }
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(q)
        })
    };
    let star = q_of("*");
    [
        ("br", Coding::Br),
        ("zstd", Coding::Zstd),
        ("gzip", Coding::Gzip),
        ("deflate", Coding::Deflate),
    ]
    .into_iter()
    .filter(|(name, _)| q_of(name).or(star).is_some_and(|q| q > 0.0))
    .map(|(_, c)| c)
    .collect()
}

/// True for an HTML (or XHTML) response.
pub fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| {
            let t = t.trim();
            t.eq_ignore_ascii_case("text/html") || t.eq_ignore_ascii_case("application/xhtml+xml")
        })
        .unwrap_or(false)
}

/// The charset named by the response's `Content-Type`.
pub fn charset(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(charset_of)
}

/// Decides the plan. `tags_denied`: some category with tag rules is denied.
pub fn plan(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    tags_denied: bool,
) -> BodyPlan {
    let bodiless = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !tags_denied || bodiless || !is_html(headers) {
        return BodyPlan::Passthrough;
    }
    match content_coding(headers) {
        Ok(coding) if document_encoding(charset(headers)).is_some() => BodyPlan::Rewrite(coding),
        _ => BodyPlan::RefuseEncoded,
    }
}

/// The suffix a rewritten response's ETag carries: the consent state it was made for.
fn etag_suffix(granted: CategorySet) -> String {
    let bits: u8 = granted.iter().map(|c| 1u8 << (c as u8)).sum();
    format!("-cp{bits:x}\"")
}

/// Request changes when the response may be rewritten: the upstream may answer only in a coding
/// the proxy can decode and the client accepts (`accepted`, from [`accepted_codings`]), or
/// unencoded; it is asked for the whole body (no ranges); and an `If-None-Match` made for
/// another consent state is dropped so that a 304 never resurrects the other variant, while one
/// made for this state is restored to the upstream's own ETag.
pub fn prepare_request(headers: &mut HeaderMap, granted: CategorySet, accepted: &[Coding]) {
    let accept = if accepted.is_empty() {
        HeaderValue::from_static("identity")
    } else {
        let list: Vec<&str> = accepted.iter().map(|c| coding_name(*c)).collect();
        HeaderValue::from_str(&list.join(", ")).unwrap_or(HeaderValue::from_static("identity"))
    };
    headers.insert(ACCEPT_ENCODING, accept);
    headers.remove(RANGE);
    headers.remove(IF_RANGE);
    let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let ours = etag_suffix(granted);
    let kept: Vec<String> = inm
        .split(',')
        .map(str::trim)
        .filter_map(|tag| {
            if let Some(orig) = tag.strip_prefix("W/").and_then(|t| t.strip_suffix(&ours)) {
                Some(format!("{orig}\""))
            } else if tag.contains("-cp") && tag.starts_with("W/") {
                None
            } else {
                Some(tag.to_string())
            }
        })
        .collect();
    headers.remove(IF_NONE_MATCH);
    if let Ok(v) = HeaderValue::from_str(&kept.join(", "))
        && !kept.is_empty()
    {
        headers.insert(IF_NONE_MATCH, v);
    }
}

/// Response changes for a rewritten body: no `Content-Length` (the length changes), no
/// `Content-Encoding` (the body is decoded and sent as identity), and an `ETag` made weak and
/// specific to the consent state.
pub fn prepare_response(headers: &mut HeaderMap, granted: CategorySet) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(CONTENT_ENCODING);
    if let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        if let Some(inner) = opaque.strip_suffix('"')
            && let Ok(v) = HeaderValue::from_str(&format!("W/{inner}{}", etag_suffix(granted)))
        {
            headers.insert(ETAG, v);
        } else {
            headers.remove(ETAG);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;

    use crate::test_headers as h;

    #[test]
    fn plans() {
        let html = h(&[("content-type", "text/html; charset=utf-8")]);
        let ok = StatusCode::OK;
        assert_eq!(plan(&Method::GET, ok, &html, true), BodyPlan::Rewrite(None));
        assert_eq!(plan(&Method::GET, ok, &html, false), BodyPlan::Passthrough);
        assert_eq!(plan(&Method::HEAD, ok, &html, true), BodyPlan::Passthrough);
        assert_eq!(
            plan(&Method::GET, StatusCode::NOT_MODIFIED, &html, true),
            BodyPlan::Passthrough
        );
        let json = h(&[("content-type", "application/json")]);
        assert_eq!(plan(&Method::GET, ok, &json, true), BodyPlan::Passthrough);
        let gz = h(&[("content-type", "TEXT/HTML"), ("content-encoding", "gzip")]);
        assert_eq!(
            plan(&Method::GET, ok, &gz, true),
            BodyPlan::Rewrite(Some(Coding::Gzip))
        );
        let stacked = h(&[
            ("content-type", "text/html"),
            ("content-encoding", "gzip, br"),
        ]);
        assert_eq!(
            plan(&Method::GET, ok, &stacked, true),
            BodyPlan::RefuseEncoded
        );
        let odd = h(&[
            ("content-type", "text/html"),
            ("content-encoding", "compress"),
        ]);
        assert_eq!(plan(&Method::GET, ok, &odd, true), BodyPlan::RefuseEncoded);
        let id = h(&[
            ("content-type", "text/html"),
            ("content-encoding", "identity"),
        ]);
        assert_eq!(plan(&Method::GET, ok, &id, true), BodyPlan::Rewrite(None));
        let sjis = h(&[("content-type", "text/html; charset=Shift_JIS")]);
        assert_eq!(plan(&Method::GET, ok, &sjis, true), BodyPlan::Rewrite(None));
        let utf16 = h(&[("content-type", "text/html; charset=\"utf-16le\"")]);
        assert_eq!(
            plan(&Method::GET, ok, &utf16, true),
            BodyPlan::RefuseEncoded
        );
    }

    #[test]
    fn codings_the_client_accepts() {
        use Coding::*;
        assert_eq!(
            accepted_codings(Some("gzip, deflate, br, zstd")),
            vec![Br, Zstd, Gzip, Deflate]
        );
        assert_eq!(accepted_codings(Some("gzip;q=1.0, br;q=0")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("*")), vec![Br, Zstd, Gzip, Deflate]);
        assert_eq!(accepted_codings(Some("*;q=0, gzip")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("identity")), vec![]);
        assert_eq!(accepted_codings(Some("compress, x-foo")), vec![]);
        assert_eq!(accepted_codings(None), vec![]);
        let mut req = h(&[("accept-encoding", "gzip, br, compress")]);
        prepare_request(
            &mut req,
            CategorySet::NECESSARY,
            &accepted_codings(Some("gzip, br, compress")),
        );
        assert_eq!(req.get("accept-encoding").unwrap(), "br, gzip");
    }

    #[test]
    fn etags_vary_with_the_consent_state() {
        let none = CategorySet::NECESSARY;
        let mut resp = h(&[("etag", "\"abc\""), ("content-length", "10")]);
        prepare_response(&mut resp, none);
        assert_eq!(resp.get("etag").unwrap(), "W/\"abc-cp1\"");
        assert!(resp.get("content-length").is_none());

        // The same state gets its 304; another state's tag is never sent upstream.
        let mut req = h(&[("if-none-match", "W/\"abc-cp1\""), ("range", "bytes=0-10")]);
        prepare_request(&mut req, none, &[]);
        assert_eq!(req.get("if-none-match").unwrap(), "\"abc\"");
        assert_eq!(req.get("accept-encoding").unwrap(), "identity");
        assert!(req.get("range").is_none());
        let mut req = h(&[("if-none-match", "W/\"abc-cp1\"")]);
        prepare_request(&mut req, none.with(Category::Analytics), &[]);
        assert!(req.get("if-none-match").is_none());
    }
}
