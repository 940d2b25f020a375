//! consent-proxy: a reverse proxy that enforces cookie consent, Do Not Track and Global Privacy
//! Control in front of an existing website.
//!
//! A request passes through fixed phases: [`consent`] decides what the visitor granted,
//! [`filter`] acts on it (blocking tracking endpoints, filtering cookies both ways), [`proxy`]
//! carries the HTTP, and [`audit`] writes one decision record per request.

pub mod audit;
pub mod category;
pub mod config;
pub mod consent;
pub mod cookie_header;
pub mod demo;
pub mod filter;
pub mod language;
pub mod located;
pub mod logs;
pub mod memory;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod sites;
pub mod url_path;
pub mod withheld;

/// A header map from name/value pairs, for unit tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut m = http::HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}
