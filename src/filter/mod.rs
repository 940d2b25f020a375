//! What the proxy does about the decision: block tracking endpoints, filter cookies both ways,
//! set forwarding headers. Pure functions over headers.

pub mod cookies;
pub mod forward;
pub mod path;
pub mod request;
pub mod response;

use serde::Serialize;

/// The longest cookie name the decision log records; longer names are cut.
const MAX_LOGGED_NAME: usize = 128;

/// Cookie names that the filters acted on, for the decision log. Names only, never values.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CookieReport {
    pub stripped_set_cookies: Vec<String>,
    pub stripped_request_cookies: Vec<String>,
    pub expired_cookies: Vec<String>,
    pub unknown_cookies: Vec<String>,
}

/// Appends a name to a list unless it is already there.
pub(crate) fn push_name(list: &mut Vec<String>, name: &str) {
    let name = truncate(name);
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn truncate(name: &str) -> &str {
    if name.len() <= MAX_LOGGED_NAME {
        return name;
    }
    let mut end = MAX_LOGGED_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}
