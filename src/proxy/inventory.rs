//! The cookie inventory: every cookie name each site set through the proxy, with how often it
//! was set and stripped. An operator completes a site's policy from it: unknown names come first.

use crate::policy::{CompiledPolicy, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Names beyond this many (over all sites) are counted but not listed, so that a site that sets
/// random cookie names cannot grow the proxy's memory without bound.
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
    /// By site name.
    sites: HashMap<Arc<str>, HashMap<String, Counts>>,
    /// Names listed, over all sites.
    listed: usize,
    /// `Set-Cookie` headers whose name was not listed because the inventory was full.
    overflow: u64,
}

#[derive(Default)]
pub struct Inventory(Mutex<Inner>);

/// One line of the inventory as `/cookies` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// The site whose upstream set the cookie.
    pub site: String,
    pub name: String,
    /// The category under the site's policy in force now; `null` when no rule names the cookie.
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
    /// Counts one `Set-Cookie` from the upstream of `site`.
    pub fn record(&self, site: &Arc<str>, name: &str, stripped: bool) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if name.len() > MAX_NAME_LEN {
            inner.overflow += 1;
            return;
        }
        let full = inner.listed >= MAX_NAMES;
        let Inner {
            sites,
            listed,
            overflow,
        } = &mut *inner;
        let names = match sites.get_mut(&**site) {
            Some(names) => names,
            None => sites.entry(site.clone()).or_default(),
        };
        let counts = match names.get_mut(name) {
            Some(c) => c,
            None if full => {
                *overflow += 1;
                return;
            }
            None => {
                *listed += 1;
                names.entry(name.to_string()).or_default()
            }
        };
        counts.seen += 1;
        counts.stripped += u64::from(stripped);
    }

    /// Forgets the names of every site but `sites` (those removed on a reload), making room
    /// for others.
    pub fn retain_sites<'a>(&self, sites: impl Iterator<Item = &'a str> + Clone) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .sites
            .retain(|name, _| sites.clone().any(|s| s == &**name));
        inner.listed = inner.sites.values().map(HashMap::len).sum();
    }

    /// The names each of `sites` (name and policy) has set, classified by that site's policy:
    /// unknown names first, then by how often they were seen, then by site and name. With
    /// `only`, the names of that site alone. `unlisted` counts over all sites.
    pub fn report(&self, sites: &[(&str, &CompiledPolicy)], only: Option<&str>) -> Report {
        // Copied out, so that classifying and sorting do not hold up the requests.
        let (names, unlisted) = {
            let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let names: Vec<(Arc<str>, String, Counts)> = inner
                .sites
                .iter()
                .filter(|(site, _)| only.is_none_or(|only| &***site == only))
                .flat_map(|(site, names)| {
                    names
                        .iter()
                        .map(move |(n, c)| (site.clone(), n.clone(), *c))
                })
                .collect();
            (names, inner.overflow)
        };
        let mut cookies: Vec<Entry> = names
            .into_iter()
            .filter_map(|(site, name, c)| {
                let (site, policy) = sites.iter().find(|(s, _)| *s == &*site)?;
                let (category, vendor) = match policy.classify(&name) {
                    Verdict::ConsentCookie => (Some("necessary"), Some("consent".to_string())),
                    Verdict::Known(k) => (
                        Some(k.category.as_str()),
                        k.vendor.as_deref().map(str::to_string),
                    ),
                    Verdict::Unknown => (None, None),
                };
                Some(Entry {
                    site: (*site).to_string(),
                    name,
                    category,
                    vendor,
                    seen: c.seen,
                    stripped: c.stripped,
                })
            })
            .collect();
        cookies.sort_by(|a, b| {
            (
                a.category.is_some(),
                std::cmp::Reverse(a.seen),
                &a.site,
                &a.name,
            )
                .cmp(&(
                    b.category.is_some(),
                    std::cmp::Reverse(b.seen),
                    &b.site,
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
        let default: Arc<str> = Arc::from("default");
        for _ in 0..3 {
            inv.record(&default, "_ga", true);
        }
        inv.record(&default, "mystery", true);
        inv.record(&default, "sessionid", false);
        inv.record(&default, "zzz_unknown", true);
        inv.record(&default, "zzz_unknown", false);
        let r = inv.report(&[("default", &policy)], None);
        let names: Vec<&str> = r.cookies.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zzz_unknown", "mystery", "_ga", "sessionid"]);
        assert_eq!(r.cookies[0].category, None);
        assert_eq!((r.cookies[0].seen, r.cookies[0].stripped), (2, 1));
        assert_eq!(r.cookies[2].category, Some("analytics"));
        assert_eq!(r.cookies[2].vendor.as_deref(), Some("Google Analytics"));
        for i in 0..MAX_NAMES + 5 {
            inv.record(&default, &format!("n{i}"), true);
        }
        let r = inv.report(&[("default", &policy)], None);
        assert_eq!(r.cookies.len(), MAX_NAMES);
        assert_eq!(r.unlisted, 9);
        inv.record(&default, &"x".repeat(MAX_NAME_LEN + 1), true);
        assert_eq!(inv.report(&[("default", &policy)], None).unlisted, 10);
        // A name already listed is still counted when the inventory is full.
        inv.record(&default, "_ga", true);
        assert_eq!(
            inv.report(&[("default", &policy)], None)
                .cookies
                .iter()
                .find(|e| e.name == "_ga")
                .unwrap()
                .seen,
            4
        );
    }

    #[test]
    fn each_site_has_its_names_under_its_own_policy() {
        let builtin = crate::policy::builtin().unwrap();
        let shop = crate::policy::compile(
            "shop.yaml",
            "extends: builtin\ncookies:\n  - { name: basket_7f3, category: necessary }\n",
        )
        .unwrap();
        let sites = [("blog", &builtin), ("shop", &shop)];
        let (blog_name, shop_name): (Arc<str>, Arc<str>) = (Arc::from("blog"), Arc::from("shop"));
        let inv = Inventory::default();
        // The shop sets `basket_7f3` twice and `_ga`; the blog sets `basket_7f3` once.
        inv.record(&shop_name, "basket_7f3", false);
        inv.record(&shop_name, "basket_7f3", false);
        inv.record(&shop_name, "_ga", true);
        inv.record(&blog_name, "basket_7f3", true);
        let r = inv.report(&sites, None);
        let rows: Vec<(&str, &str, Option<&str>, u64)> = r
            .cookies
            .iter()
            .map(|e| (e.site.as_str(), e.name.as_str(), e.category, e.seen))
            .collect();
        assert_eq!(
            rows,
            [
                ("blog", "basket_7f3", None, 1),
                ("shop", "basket_7f3", Some("necessary"), 2),
                ("shop", "_ga", Some("analytics"), 1),
            ]
        );
        let blog = inv.report(&sites, Some("blog"));
        let only: Vec<(&str, &str)> = blog
            .cookies
            .iter()
            .map(|e| (e.site.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(only, [("blog", "basket_7f3")]);
        assert!(inv.report(&sites, Some("nowhere")).cookies.is_empty());
        // The bound is over all sites together.
        for i in 0..MAX_NAMES {
            let site = if i % 2 == 0 { &blog_name } else { &shop_name };
            inv.record(site, &format!("n{i}"), true);
        }
        let r = inv.report(&sites, None);
        assert_eq!(r.cookies.len(), MAX_NAMES);
        assert_eq!(r.unlisted, 3);
        // The blog removed: its names are forgotten, which makes room for new ones.
        inv.retain_sites(["shop"].into_iter());
        let r = inv.report(&sites, None);
        assert!(r.cookies.iter().all(|e| e.site == "shop"));
        // The shop's two, and its half (odd `i`) of the 9,997 names listed before the bound.
        assert_eq!(r.cookies.len(), 2 + 4_998);
        inv.record(&shop_name, "after", false);
        assert!(
            inv.report(&sites, Some("shop"))
                .cookies
                .iter()
                .any(|e| e.name == "after")
        );
    }
}
