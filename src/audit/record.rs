//! The decision record: one JSON object per request.

use crate::category::CategorySet;
use crate::filter::CookieReport;
use serde::Serialize;

/// Everything the decision log says about one request. No cookie value, no query string and no
/// raw client address can be put here: `client` is filled only from the minimizer.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// RFC 3339 UTC timestamp of when the response ended.
    pub ts: String,
    /// The minimized client address.
    pub client: String,
    /// The site the request was for (`default` for a config without `sites`); absent when it
    /// was for none (answered 421).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<std::sync::Arc<str>>,
    pub method: String,
    pub host: String,
    /// The request path, without its query string.
    pub path: String,
    /// The status sent to the client; 499 when the client went away before a response.
    pub status: u16,
    pub granted: CategorySet,
    /// The consent source that decided, or `default`.
    pub source: &'static str,
    /// Every consent source present on the request, in the policy's order, with `-invalid`
    /// or `-expired` where it granted nothing; absent when there was none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<&'static str>,
    /// The country whose regional default applied (only when no consent source spoke).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub signals: Vec<&'static str>,
    #[serde(flatten)]
    pub cookies: CookieReport,
    /// A tracking endpoint of a denied category (answered locally unless report-only).
    pub blocked: bool,
    /// HTML tags neutralized or removed (in report-only mode: that would have been).
    pub tags_neutralized: usize,
    /// The vendors of those tags.
    pub tag_vendors: Vec<String>,
    pub mode: &'static str,
    pub duration_ms: f64,
    /// Set when the response failed: `upstream_unavailable`, `upstream_timeout`,
    /// `client_disconnected`, `body_error`, `misdirected`, `rewrite_failed`,
    /// `encoded_html_refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}
