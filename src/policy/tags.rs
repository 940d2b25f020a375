//! The tag catalogue as the rewriter uses it: URL rules (host, path, query) and inline script
//! signatures, and how a URL or a script's text is matched against them.
//!
//! A catalogue holds thousands of host rules (one per tracker domain), so rules that name only a
//! domain are found through a map from domain to rule, by the host and each of its parent
//! domains; the few rules with a path, a query or any host are tried in order. The first rule in
//! precedence order (the site's, then the built-in catalogue's) decides either way.

use crate::category::{Category, CategorySet};
use aho_corasick::AhoCorasick;
use globset::{GlobBuilder, GlobMatcher};
use rustc_hash::FxHashMap;
use std::sync::Arc;

use super::text_urls::{self, Mention};

/// What to do with a matched tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagAction {
    #[default]
    Neutralize,
    Remove,
}

/// Which hosts a URL rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Any host, and relative URLs (e.g. `matomo.js` served by the site itself).
    Any,
    /// This domain and its subdomains, e.g. `googletagmanager.com` covers
    /// `www.googletagmanager.com`.
    Domain(String),
}

/// A rule for tags that load a URL.
#[derive(Debug, Clone)]
pub struct UrlRule {
    pub host: HostPattern,
    /// Glob over the URL path (`*` crosses `/`); `None` matches every path.
    pub path: Option<PathPattern>,
    /// Glob over the query string (without `?`); `None` matches any query or none.
    pub query: Option<GlobMatcher>,
    pub category: Category,
    pub vendor: Arc<str>,
    pub action: Option<TagAction>,
    /// A Google tag that honours Consent Mode: left alone when the policy uses it.
    pub consent_mode: bool,
    /// The domain also serves pages people visit (profiles, share dialogs): in a script, a URL
    /// on it that only this rule's host matches counts as a tracker only when loaded.
    pub pages: bool,
}

impl UrlRule {
    pub fn new(
        host: &str,
        path: Option<&str>,
        category: Category,
        vendor: &str,
    ) -> Result<UrlRule, String> {
        let host = match host {
            "*" => HostPattern::Any,
            h => HostPattern::Domain(h.trim_start_matches("*.").to_ascii_lowercase()),
        };
        let path = path.map(PathPattern::new).transpose()?;
        Ok(UrlRule {
            host,
            path,
            query: None,
            category,
            vendor: Arc::from(vendor),
            action: None,
            consent_mode: false,
            pages: false,
        })
    }

    /// Restricts the rule to URLs whose query string matches `query` (a glob).
    pub fn with_query(mut self, query: &str) -> Result<UrlRule, String> {
        self.query = Some(glob(query, "query")?);
        Ok(self)
    }

    fn matches(&self, host: Option<&str>, path: &str, query: Option<&str>) -> bool {
        host_matches(&self.host, host)
            && self.path.as_ref().is_none_or(|p| p.is_match(path))
            && self
                .query
                .as_ref()
                .is_none_or(|g| query.is_some_and(|q| g.is_match(q)))
    }
}

/// A rule for inline scripts: a substring of the script text.
#[derive(Debug, Clone)]
pub struct InlineRule {
    pub signature: String,
    pub category: Category,
    pub vendor: Arc<str>,
    pub action: Option<TagAction>,
    /// A Google tag that honours Consent Mode: left alone when the policy uses it.
    pub consent_mode: bool,
}

/// The compiled tag rules.
pub struct TagRules {
    /// The categories that have tag rules.
    categories: CategorySet,
    /// Every URL rule, in precedence order.
    urls: Vec<UrlRule>,
    /// The rules that name a domain, by domain, in order.
    by_domain: FxHashMap<Box<str>, Vec<usize>>,
    /// The rules for any host, in order.
    any_host: Vec<usize>,
    inline: Vec<InlineRule>,
    signatures: Option<AhoCorasick>,
    pub default_action: TagAction,
    /// A neutralized `<iframe>` shows the proxy's placeholder page (the policy gives a text).
    pub withheld_frames: bool,
}

/// A URL path pattern. Most are a literal, or a literal after or before one `*`: those are
/// compared as strings, and only the rest go through a compiled glob.
#[derive(Debug, Clone)]
pub enum PathPattern {
    Exact(String),
    /// `*` then a literal, e.g. `*/matomo.js`.
    Suffix(String),
    /// A literal then `*`, e.g. `/tag/*`.
    Prefix(String),
    Glob(GlobMatcher),
}

impl PathPattern {
    fn new(pattern: &str) -> Result<PathPattern, String> {
        let literal = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', '\\']);
        Ok(if literal(pattern) {
            PathPattern::Exact(pattern.to_string())
        } else if let Some(rest) = pattern.strip_prefix('*').filter(|r| literal(r)) {
            PathPattern::Suffix(rest.to_string())
        } else if let Some(rest) = pattern.strip_suffix('*').filter(|r| literal(r)) {
            PathPattern::Prefix(rest.to_string())
        } else {
            PathPattern::Glob(glob(pattern, "path")?)
        })
    }

    pub fn is_match(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Suffix(s) => path.ends_with(s.as_str()),
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            PathPattern::Glob(g) => g.is_match(path),
        }
    }
}

/// A glob in which `*` crosses `/`.
fn glob(pattern: &str, what: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid {what} glob `{pattern}`: {e}"))
}

/// The query string of a URL, without `?` and fragment.
fn query_of(url: &str) -> Option<&str> {
    let url = &url[..url.find('#').unwrap_or(url.len())];
    url.find('?').map(|i| &url[i + 1..])
}

/// The parts of a URL the rules look at: host (`None` for a relative URL), path and query.
struct UrlParts<'a> {
    host: Option<String>,
    path: std::borrow::Cow<'a, str>,
    query: Option<std::borrow::Cow<'a, str>>,
}

/// Reads an attribute's URL as a browser does. Most URLs are plain and are split as they are;
/// any other goes through the WHATWG URL parser after its character references are decoded as
/// the HTML Standard decodes them in an attribute value (lol_html gives values raw; `&#47tr`
/// with no `;` is `/tr` too), so that `gtag&#47;js`, `https:\\host`, `https:/host`,
/// tabs or newlines inside the URL, `/./` segments, a percent-encoded or trailing-dot host, or
/// percent-encoded path bytes name the same resource to the rules as to the browser.
fn url_parts(url: &str) -> UrlParts<'_> {
    // Only the scheme, host and path decide whether a URL is plain: `&` and `%` are common in
    // queries and change nothing there, but a character reference may stand anywhere.
    let head = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let plain = head
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\\&%".contains(&b))
        && !url.contains("&#")
        && (!url.contains('&') || !url.contains(';'))
        && !head.contains("/.")
        && !head.contains(".:")
        && !head.contains("./")
        && !head.ends_with('.')
        && plain_start(url);
    if plain {
        let (host, path) = split_url(url);
        // A path relative to the page's directory (`matomo.js`) is read against the root, as
        // the WHATWG reading below reads it: a `*/matomo.js` pattern matches it wherever the
        // page is.
        let path = match path {
            p if host.is_none() && !p.is_empty() && !p.starts_with('/') => format!("/{p}").into(),
            p => p.into(),
        };
        return UrlParts {
            host,
            path,
            query: query_of(url).map(Into::into),
        };
    }
    static BASE: std::sync::OnceLock<url::Url> = std::sync::OnceLock::new();
    // A base whose scheme is neither http nor https: `https:/host` and `https:host` read as
    // absolute, as they do in a page of the other scheme (in a page of the same scheme they
    // name a path of the site; taking them as absolute can only neutralize more).
    let base = BASE.get_or_init(|| url::Url::parse("ws://relative.invalid/").unwrap());
    let decoded = htmlize::unescape_attribute(url);
    // Browsers read any run of slashes (or backslashes) before a host as `//`, which the url
    // crate refuses for `///host`.
    let text: String = decoded
        .trim()
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    let text = match text.trim_start_matches('/') {
        rest if text.len() - rest.len() > 2 => format!("//{rest}"),
        _ => text,
    };
    let Ok(parsed) = base.join(&text) else {
        // Not a URL a browser would load.
        return UrlParts {
            host: None,
            path: "".into(),
            query: None,
        };
    };
    let host = parsed
        .host_str()
        .filter(|h| *h != "relative.invalid")
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    let decode = |s: &str| -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    UrlParts {
        host,
        path: decode(parsed.path()).into(),
        query: parsed.query().map(|q| decode(q).into()),
    }
}

/// A plain relative path (`/img/p.jpg?w=2`), the commonest URL in a page, read in one pass: its
/// path and query, as [`url_parts`] reads them; `None` for any other URL.
fn plain_path(url: &str) -> Option<(&str, Option<&str>)> {
    let b = url.as_bytes();
    if b.first() != Some(&b'/') || b.get(1) == Some(&b'/') {
        return None;
    }
    let mut head_end = b.len();
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if c == b'?' || c == b'#' {
            head_end = i;
            break;
        }
        // As in `url_parts`: no character reference, escape or backslash, no `/.`, `./` or `.:`.
        if !c.is_ascii_graphic()
            || matches!(c, b'\\' | b'&' | b'%')
            || (prev == b'/' && c == b'.')
            || (prev == b'.' && matches!(c, b'/' | b':'))
        {
            return None;
        }
        prev = c;
    }
    let rest = &url[head_end..];
    if prev == b'.' || (rest.contains('&') && (rest.contains("&#") || url.contains(';'))) {
        return None;
    }
    let query = rest
        .strip_prefix('?')
        .map(|q| &q[..q.find('#').unwrap_or(q.len())]);
    Some((&url[..head_end], query))
}

/// A URL whose scheme and authority split as they read: `scheme://host`, `//host`, or a path.
/// (`https:/host`, `https:host` and `///host` are read otherwise by browsers.)
fn plain_start(url: &str) -> bool {
    let after = match (url.find(':'), url.find('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon < s) => &url[colon + 1..],
        _ => url,
    };
    match after.strip_prefix("//") {
        Some(rest) => !rest.starts_with('/'),
        // A scheme must be followed by `//` to be plain; a path needs nothing.
        None => after.len() == url.len(),
    }
}

/// The parts of a plain URL.
fn split_url(url: &str) -> (Option<String>, &str) {
    let url = url.trim();
    // A scheme ends before any `/`, `?` or `#`: a `://` further on is in the path or query
    // (`//host/p?u=https://other`).
    let scheme_end = url
        .find("://")
        .filter(|&i| !url[..i].contains(['/', '?', '#']));
    let rest = if let Some(i) = scheme_end {
        let scheme = &url.as_bytes()[..i];
        let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
        if !valid {
            // No scheme (`://matomo.js`, `tt"hsp://…`): a path relative to the page.
            let end = url.find(['?', '#']).unwrap_or(url.len());
            return (None, &url[..end]);
        }
        &url[i + 3..]
    } else if let Some(r) = url.strip_prefix("//") {
        r
    } else {
        // Relative: only a path.
        let end = url.find(['?', '#']).unwrap_or(url.len());
        return (None, &url[..end]);
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let after = &rest[host_end..];
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    (Some(host), &after[..path_end])
}

/// Whether a matching rule acts: its category is denied, and it is not a Google tag left to
/// Consent Mode (`exempt`: the page carries the Consent Mode default). A `necessary` rule never
/// acts: it is an exception to a broader rule after it.
fn acts(granted: CategorySet, exempt: bool, category: Category, consent_mode: bool) -> bool {
    category != Category::Necessary && !(granted.contains(category) || (exempt && consent_mode))
}

/// An ASCII byte that can continue a JavaScript identifier. A non-ASCII character before a
/// signature does not count as one: a page whose encoding cannot hold it gets it back as a
/// character reference (`&#57897;`), after which the signature starts an identifier.
fn is_identifier(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn host_matches(pattern: &HostPattern, host: Option<&str>) -> bool {
    match (pattern, host) {
        (HostPattern::Any, _) => true,
        (HostPattern::Domain(_), None) => false,
        (HostPattern::Domain(d), Some(h)) => {
            h == d
                || (h.len() > d.len()
                    && h.ends_with(d.as_str())
                    && h.as_bytes()[h.len() - d.len() - 1] == b'.')
        }
    }
}

/// A host and each of its parent domains: `a.b.com`, `b.com`, `com`.
fn domains_of(host: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(host), |h| h.split_once('.').map(|(_, rest)| rest))
}

/// The subdomains on which a `pages: true` domain serves its pages: the domain itself, `www`,
/// mobile, and language or country sites (`de.linkedin.com`, `pt-br.facebook.com`). Any other
/// subdomain (`connect.`, `platform.`, `load.`, `a.`) serves resources.
fn is_page_host(rule: &UrlRule, host: &str) -> bool {
    const PAGE_LABELS: &[&str] = &[
        "www", "m", "mobile", "web", "touch", "de", "fr", "es", "it", "nl", "pt", "br", "uk", "jp",
        "ru", "pl", "tr", "in", "au", "ca", "mx", "ar", "at", "ch", "se", "no", "dk", "fi", "cz",
        "kr", "id", "en", "ie", "be", "gr", "hu", "ro", "ua", "il", "za", "nz", "sg", "hk", "tw",
        "cn", "ja", "ko", "zh", "sv", "da", "cs",
    ];
    let HostPattern::Domain(domain) = &rule.host else {
        return false;
    };
    match host.strip_suffix(domain.as_str()) {
        Some("") => true,
        Some(sub) => {
            let label = sub.trim_end_matches('.');
            !label.contains('.')
                && (PAGE_LABELS.contains(&label)
                    || label
                        .split_once('-')
                        .is_some_and(|(a, b)| PAGE_LABELS.contains(&a) && b.len() == 2))
        }
        None => false,
    }
}

/// What matched a script: a signature or a URL it names.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub category: Category,
    pub vendor: &'a Arc<str>,
    pub action: Option<TagAction>,
}

impl<'a> From<&'a UrlRule> for Hit<'a> {
    fn from(r: &'a UrlRule) -> Hit<'a> {
        Hit {
            category: r.category,
            vendor: &r.vendor,
            action: r.action,
        }
    }
}

impl<'a> From<&'a InlineRule> for Hit<'a> {
    fn from(r: &'a InlineRule) -> Hit<'a> {
        Hit {
            category: r.category,
            vendor: &r.vendor,
            action: r.action,
        }
    }
}

/// Of two hits, the more restrictive category; the first on a tie.
fn stricter<'a>(a: Option<Hit<'a>>, b: Option<Hit<'a>>) -> Option<Hit<'a>> {
    match (a, b) {
        (Some(a), Some(b)) if b.category > a.category => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

/// How a text names URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A script: a URL on a domain that also serves pages (`pages: true`) counts only as
    /// something the script loads.
    Script,
    /// A style sheet: every URL it names is loaded.
    Style,
}

impl TagRules {
    pub fn new(
        urls: Vec<UrlRule>,
        inline: Vec<InlineRule>,
        default_action: TagAction,
    ) -> Result<TagRules, String> {
        let signatures = if inline.is_empty() {
            None
        } else {
            Some(
                // A DFA: a few dozen signatures make a small one, and every inline script of
                // every page is searched with it.
                AhoCorasick::builder()
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .build(inline.iter().map(|r| r.signature.as_str()))
                    .map_err(|e| format!("cannot compile inline signatures: {e}"))?,
            )
        };
        let categories = urls
            .iter()
            .map(|r| r.category)
            .chain(inline.iter().map(|r| r.category))
            .collect();
        let mut by_domain: FxHashMap<Box<str>, Vec<usize>> = FxHashMap::default();
        let mut any_host = Vec::new();
        for (i, r) in urls.iter().enumerate() {
            match &r.host {
                HostPattern::Domain(d) => by_domain.entry(d.as_str().into()).or_default().push(i),
                HostPattern::Any => any_host.push(i),
            }
        }
        Ok(TagRules {
            categories,
            urls,
            by_domain,
            any_host,
            inline,
            signatures,
            default_action,
            withheld_frames: false,
        })
    }

    /// URL rules and inline signatures together.
    pub fn rule_count(&self) -> usize {
        self.urls.len() + self.inline.len()
    }

    /// The categories that have tag rules: rewriting is needed only if one is denied.
    pub fn categories(&self) -> CategorySet {
        self.categories
    }

    /// The index of the first rule matching a URL's parts: of the rules for the host and each
    /// of its parent domains, and those for any host.
    fn first_match(&self, host: Option<&str>, path: &str, query: Option<&str>) -> Option<usize> {
        let by_domain = host.and_then(|h| {
            domains_of(h)
                .filter_map(|d| self.by_domain.get(d))
                .filter_map(|rules| {
                    rules
                        .iter()
                        .copied()
                        .find(|&i| self.urls[i].matches(Some(h), path, query))
                })
                .min()
        });
        self.any_host
            .iter()
            .copied()
            .take_while(|&i| by_domain.is_none_or(|b| i < b))
            .find(|&i| self.urls[i].matches(host, path, query))
            .or(by_domain)
    }

    /// The first URL rule matching `url` (rules are in precedence order: the site's, then the
    /// built-in catalogue's), if its category is denied.
    ///
    /// With `exempt`, rules marked `consent_mode` (Google tags that honour Consent Mode) do not
    /// match: the page carries the Consent Mode default, which governs them.
    pub fn match_url(&self, url: &str, granted: CategorySet, exempt: bool) -> Option<&UrlRule> {
        let url = url.trim();
        let parts = match plain_path(url) {
            Some((path, query)) => UrlParts {
                host: None,
                path: path.into(),
                query: query.map(Into::into),
            },
            None => url_parts(url),
        };
        let path = if parts.path.is_empty() {
            "/"
        } else {
            &parts.path
        };
        let found = self
            .first_match(parts.host.as_deref(), path, parts.query.as_deref())
            .map(|i| &self.urls[i])
            .filter(|r| acts(granted, exempt, r.category, r.consent_mode));
        // `https:matomo.js` or `https:/matomo.js` (a scheme without `//`) is a path of the page
        // in a page of the same scheme, and names the host `matomo.js` in one of the other:
        // judged both ways. (A backslash is a slash in these schemes.)
        found.or_else(|| {
            let (scheme, rest) = url.split_once(':')?;
            let slashes = rest
                .bytes()
                .take(2)
                .filter(|b| matches!(b, b'/' | b'\\'))
                .count();
            let relative = (scheme.eq_ignore_ascii_case("http")
                || scheme.eq_ignore_ascii_case("https"))
                && slashes < 2;
            relative
                .then(|| self.match_url(rest, granted, exempt))
                .flatten()
        })
    }

    /// The first URL rule for a named tracker host (not `*`) covering `url`'s host, whose
    /// category is denied: for resource hints, which name only a host.
    pub fn match_host(&self, url: &str, granted: CategorySet, exempt: bool) -> Option<&UrlRule> {
        let host = url_parts(url.trim()).host?;
        domains_of(&host)
            .filter_map(|d| self.by_domain.get(d))
            .filter_map(|rules| {
                rules.iter().copied().find(|&i| {
                    let r = &self.urls[i];
                    acts(granted, exempt, r.category, r.consent_mode)
                })
            })
            .min()
            .map(|i| &self.urls[i])
    }

    /// Whether a rule names `host` or one of its parent domains.
    fn names_host(&self, host: &str) -> bool {
        domains_of(host).any(|d| self.by_domain.contains_key(d))
    }

    /// Every URL that `text` names and a rule whose category is denied matches, with the rule.
    /// In a script, a URL matched only by the host of a domain that also serves pages
    /// (`pages: true`), on one of its page hosts (the domain, `www.`, a mobile or language
    /// site), counts when the script loads it: its path ends in `.js`, or the script hands it
    /// to a `src`, `fetch(`, `sendBeacon(`… (see [`Mention::loads`]); a share link or a profile
    /// link is not a tracker.
    pub fn named_trackers<'s>(
        &'s self,
        text: &'s str,
        kind: TextKind,
        granted: CategorySet,
        exempt: bool,
    ) -> impl Iterator<Item = (Mention, &'s UrlRule)> + 's {
        text_urls::mentions(text).filter_map(move |m| {
            if !self.names_host(&m.host(text)) {
                return None;
            }
            let url = m.url(text);
            let rule = self.match_url(&url, granted, exempt)?;
            let host_only = rule.path.is_none() && rule.query.is_none();
            if kind == TextKind::Script
                && rule.pages
                && host_only
                && is_page_host(rule, &m.host(text))
            {
                let path = url_parts(&url).path;
                if !path.ends_with(".js") && !m.loads(text) {
                    return None;
                }
            }
            Some((m, rule))
        })
    }

    /// What an inline script's text matches: a signature, or a URL it names (see
    /// [`TagRules::named_trackers`]); of several, the most restrictive category.
    pub fn match_script<'s>(
        &'s self,
        text: &'s str,
        granted: CategorySet,
        exempt: bool,
    ) -> Option<Hit<'s>> {
        let signature = self.match_inline(text, granted, exempt).map(Hit::from);
        self.named_trackers(text, TextKind::Script, granted, exempt)
            .map(|(_, r)| Hit::from(r))
            .fold(signature, |best, hit| stricter(best, Some(hit)))
    }

    /// The signature in `text` that decides: of those whose category is denied, the first of
    /// the most restrictive category (marketing before analytics before preferences), so that
    /// a script holding both Google Analytics and Google Ads code is labelled marketing and a
    /// consent banner activates it only with marketing consent. A signature that starts with an
    /// identifier character matches only at the start of an identifier: `ym(` matches
    /// `ym(1, "init")` and `window.ym(`, not `anonym(`.
    pub fn match_inline(
        &self,
        text: &str,
        granted: CategorySet,
        exempt: bool,
    ) -> Option<&InlineRule> {
        let ac = self.signatures.as_ref()?;
        let bytes = text.as_bytes();
        ac.find_overlapping_iter(text)
            .filter(|m| {
                let rule = &self.inline[m.pattern().as_usize()];
                let starts_identifier = rule.signature.bytes().next().is_some_and(is_identifier);
                !starts_identifier || m.start() == 0 || !is_identifier(bytes[m.start() - 1])
            })
            .map(|m| &self.inline[m.pattern().as_usize()])
            .filter(|r| acts(granted, exempt, r.category, r.consent_mode))
            .fold(None, |best: Option<&InlineRule>, r| match best {
                Some(b) if b.category >= r.category => Some(b),
                _ => Some(r),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The one-pass reading of plain relative paths agrees with `url_parts` wherever it
        /// answers, and answers for the plain paths pages are full of.
        #[test]
        fn plain_paths_read_as_url_parts_reads_them(url in "/[a-z/.?#&;%:\\\\ \t=-]{0,14}") {
            if let Some((path, query)) = plain_path(&url) {
                let parts = url_parts(&url);
                proptest::prop_assert_eq!(parts.host, None);
                proptest::prop_assert_eq!(&*parts.path, path);
                proptest::prop_assert_eq!(parts.query.as_deref(), query);
            }
        }
    }

    #[test]
    fn paths_relative_to_the_page_are_read_against_the_root() {
        assert_eq!(&*url_parts("matomo.js").path, "/matomo.js");
        assert_eq!(&*url_parts("js/matomo.js?x=1").path, "/js/matomo.js");
        assert_eq!(&*url_parts("./matomo.js").path, "/matomo.js");
        assert_eq!(&*url_parts("?q=1").path, "");
        let rules = TagRules::new(
            vec![UrlRule::new("*", Some("*/piwik.php"), Category::Analytics, "Matomo").unwrap()],
            vec![],
            TagAction::Neutralize,
        )
        .unwrap();
        for url in [
            "piwik.php",
            "js/piwik.php?idsite=1",
            "https:piwik.php",
            "HTTP:a/piwik.php",
            // One slash (or backslash) after the scheme: a path of a page of that scheme.
            "http:/piwik.php?",
            "https:\\piwik.php",
            "https:/\tpiwik.php",
            // No scheme before `://`: a path relative to the page.
            "://piwik.php",
            "tt\"hsp://connect.facebook.net/e/piwik.php#s.js",
        ] {
            assert!(
                rules
                    .match_url(url, CategorySet::NECESSARY, false)
                    .is_some(),
                "{url}"
            );
        }
        assert!(
            rules
                .match_url("piwik.phpx", CategorySet::NECESSARY, false)
                .is_none()
        );
    }

    #[test]
    fn character_references_are_decoded_as_in_an_attribute() {
        // A numeric reference ends at its last digit, `;` or not; 0x80-0x9F are windows-1252.
        for (url, host, path) in [
            (
                "https://www.facebook.com&#47tr?id=1",
                "www.facebook.com",
                "/tr",
            ),
            ("https://www.facebook.com&#x2Ftr", "www.facebook.com", "/tr"),
            ("https://www.facebook.com&#47;tr", "www.facebook.com", "/tr"),
            ("//a&#46b.example/x", "a.b.example", "/x"),
        ] {
            let parts = url_parts(url);
            assert_eq!(parts.host.as_deref(), Some(host), "{url}");
            assert_eq!(&*parts.path, path, "{url}");
        }
        // U+0005 is stripped by URL parsing: `&#5/piwik.js` is the path `/piwik.js`.
        assert_eq!(&*url_parts("&#5/piwik.js").path, "/piwik.js");
        // A legacy named reference without `;` followed by an alphanumeric stays as written.
        let parts = url_parts("/a&#47;p?a=1&copy=2&amp/");
        assert_eq!(&*parts.path, "/a/p");
        assert_eq!(parts.query.as_deref(), Some("a=1&copy=2&/"));
    }

    #[test]
    fn plain_paths_take_the_one_pass_reading() {
        assert_eq!(plain_path("/img/p.jpg"), Some(("/img/p.jpg", None)));
        assert_eq!(plain_path("/p?a=1&b=2#top"), Some(("/p", Some("a=1&b=2"))));
        assert_eq!(plain_path("/p#x?y"), Some(("/p", None)));
        for other in [
            "//host/p",
            "/\\host/p",
            "/./p",
            "/a/../p",
            "/gtag&#47;js",
            "/p%2e",
            "/a.",
            "/p?a&amp;b",
            "https://host/p",
            "p.jpg",
        ] {
            assert_eq!(plain_path(other), None, "{other}");
        }
    }

    #[test]
    fn path_patterns_agree_with_globs() {
        let paths = [
            "/",
            "/gtag/js",
            "/gtag/jsx",
            "/a/gtag/js",
            "/stats/matomo.js",
            "/matomo.js",
            "/matomo.jsx",
            "/tag/abc",
            "/tag/",
            "/tag",
            "/en_US/fbevents.js",
            "/fbevents.js",
        ];
        for pattern in [
            "/gtag/js",
            "*/matomo.js",
            "/tag/*",
            "/*/fbevents.js",
            "/t?g/*",
            "*",
        ] {
            let fast = PathPattern::new(pattern).unwrap();
            let slow = glob(pattern, "path").unwrap();
            for p in paths {
                assert_eq!(fast.is_match(p), slow.is_match(p), "{pattern} on {p}");
            }
        }
        assert!(matches!(
            PathPattern::new("*/matomo.js").unwrap(),
            PathPattern::Suffix(_)
        ));
        assert!(matches!(
            PathPattern::new("/tag/*").unwrap(),
            PathPattern::Prefix(_)
        ));
        assert!(matches!(
            PathPattern::new("/*/fbevents.js").unwrap(),
            PathPattern::Glob(_)
        ));
    }

    #[test]
    fn on_a_domain_that_serves_pages_only_loads_count() {
        let mut page = UrlRule::new("facebook.com", None, Category::Marketing, "Facebook").unwrap();
        page.pages = true;
        let mut sumo = UrlRule::new("sumo.com", None, Category::Marketing, "Sumo").unwrap();
        sumo.pages = true;
        let rules = TagRules::new(vec![page, sumo], vec![], TagAction::Neutralize).unwrap();
        let hit = |text: &str| {
            rules
                .match_script(text, CategorySet::NECESSARY, false)
                .is_some()
        };
        // Page hosts: a share link or a profile is not a load; a script, a `src` or a beacon is.
        assert!(!hit(
            "window.open('https://www.facebook.com/sharer/sharer.php?u=' + u)"
        ));
        assert!(!hit("var p = 'https://de-de.facebook.com/brand';"));
        assert!(!hit("var p = 'https://m.facebook.com/brand';"));
        assert!(hit("var p = 'https://de.facebook.com/sdk.js';"));
        assert!(hit("img.src = 'https://www.facebook.com/brand';"));
        assert!(hit("navigator.sendBeacon('https://facebook.com/x')"));
        // Other subdomains serve resources: whatever the script does with them, they count.
        assert!(hit(
            "(function(s,u,m,o,j,v){})(window,document,'script','//load.sumo.com/')"
        ));
        assert!(hit("var l = \"a.sumo.com\";"));
        assert!(hit("x('//connect.facebook.com/x')"));
    }
}
