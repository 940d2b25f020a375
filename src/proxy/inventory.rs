//! The cookie inventory: every cookie name the site set through the proxy, with how often it was
//! set and stripped. An operator completes a policy from it: unknown names come first.

use crate::policy::{CompiledPolicy, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// Names beyond this many are counted but not listed, so that a site that sets random cookie
/// names cannot grow the proxy's memory without bound.
pub const MAX_NAMES: usize = 10_000;
/// A longer name is counted but not listed.
pub const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    seen: u64,
    stripped: u64,
}

#[derive(Default)]
struct Inner {
    names: HashMap<String, Counts>,
    /// `Set-Cookie` headers whose name was not listed because the inventory was full.
    overflow: u64,
}

#[derive(Default)]
pub struct Inventory(Mutex<Inner>);

/// One line of the inventory as `/cookies` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// The category under the policy in force now; `null` when no rule names the cookie.
    pub category: Option<&'static str>,
    pub vendor: Option<String>,
    pub seen: u64,
    pub stripped: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cookies: Vec<Entry>,
    /// `Set-Cookie` headers not listed because the inventory holds [`MAX_NAMES`] names.
    pub unlisted: u64,
}

impl Inventory {
    /// Counts one `Set-Cookie` from the site.
    pub fn record(&self, name: &str, stripped: bool) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if name.len() > MAX_NAME_LEN {
            inner.overflow += 1;
            return;
        }
        let full = inner.names.len() >= MAX_NAMES;
        let counts = match inner.names.get_mut(name) {
            Some(c) => c,
            None if full => {
                inner.overflow += 1;
                return;
            }
            None => inner.names.entry(name.to_string()).or_default(),
        };
        counts.seen += 1;
        counts.stripped += u64::from(stripped);
    }

    /// The inventory classified under `policy`: unknown names first, then by how often they
    /// were seen, then by name.
    /// The names seen, each classified by the first of `policies` (the sites' policies, in
    /// order) that knows it.
    pub fn report(&self, policies: &[&CompiledPolicy]) -> Report {
        // Copied out, so that classifying and sorting do not hold up the requests.
        let (names, unlisted) = {
            let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
            (
                inner
                    .names
                    .iter()
                    .map(|(n, c)| (n.clone(), *c))
                    .collect::<Vec<_>>(),
                inner.overflow,
            )
        };
        let mut cookies: Vec<Entry> = names
            .into_iter()
            .map(|(name, c)| {
                let verdict = policies
                    .iter()
                    .map(|p| p.classify(&name))
                    .find(|v| !matches!(v, Verdict::Unknown))
                    .unwrap_or(Verdict::Unknown);
                let (category, vendor) = match verdict {
                    Verdict::ConsentCookie => (Some("necessary"), Some("consent".to_string())),
                    Verdict::Known(k) => (
                        Some(k.category.as_str()),
                        k.vendor.as_deref().map(str::to_string),
                    ),
                    Verdict::Unknown => (None, None),
                };
                Entry {
                    name,
                    category,
                    vendor,
                    seen: c.seen,
                    stripped: c.stripped,
                }
            })
            .collect();
        cookies.sort_by(|a, b| {
            (a.category.is_some(), std::cmp::Reverse(a.seen), &a.name).cmp(&(
                b.category.is_some(),
                std::cmp::Reverse(b.seen),
                &b.name,
            ))
        });
        Report { cookies, unlisted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_first_then_by_count_and_bounded() {
        let inv = Inventory::default();
        let policy = crate::policy::builtin().unwrap();
        for _ in 0..3 {
            inv.record("_ga", true);
        }
        inv.record("mystery", true);
        inv.record("sessionid", false);
        inv.record("zzz_unknown", true);
        inv.record("zzz_unknown", false);
        let r = inv.report(&[&policy]);
        let names: Vec<&str> = r.cookies.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zzz_unknown", "mystery", "_ga", "sessionid"]);
        assert_eq!(r.cookies[0].category, None);
        assert_eq!((r.cookies[0].seen, r.cookies[0].stripped), (2, 1));
        assert_eq!(r.cookies[2].category, Some("analytics"));
        assert_eq!(r.cookies[2].vendor.as_deref(), Some("Google Analytics"));
        for i in 0..MAX_NAMES + 5 {
            inv.record(&format!("n{i}"), true);
        }
        let r = inv.report(&[&policy]);
        assert_eq!(r.cookies.len(), MAX_NAMES);
        assert_eq!(r.unlisted, 9);
        inv.record(&"x".repeat(MAX_NAME_LEN + 1), true);
        assert_eq!(inv.report(&[&policy]).unlisted, 10);
        // A name already listed is still counted when the inventory is full.
        inv.record("_ga", true);
        assert_eq!(
            inv.report(&[&policy])
                .cookies
                .iter()
                .find(|e| e.name == "_ga")
                .unwrap()
                .seen,
            4
        );
    }
}
