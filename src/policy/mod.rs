//! What the site declares: cookie and endpoint classifications, the consent cookie, signal
//! rules and defaults. Loaded from YAML, validated, and compiled once into matchers.

pub mod banner;
pub mod model;
pub mod pattern;
pub mod sources;
pub mod tags;
pub mod text_urls;

use crate::category::{Category, CategorySet};
use crate::url_path::canonical;
use crate::withheld::Placeholder;
pub use model::{DefaultConsent, Mode, Precedence, UnknownCookies};
use model::{Extends, PolicyFile};
use pattern::{Matcher, Pattern};
use sources::{Country, TkMode};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tags::TagRules;

/// The built-in policy: a catalogue of well-known cookies and tracking endpoints.
pub const BUILTIN_YAML: &str = include_str!("../../policies/default.yaml");
/// The name under which the built-in policy appears in messages.
pub const BUILTIN_NAME: &str = "<builtin>/policies/default.yaml";

pub use crate::located::LocatedError as PolicyError;

/// How a cookie is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieClass {
    pub category: Category,
    pub vendor: Option<Arc<str>>,
}

/// A policy compiled for the hot path.
pub struct CompiledPolicy {
    pub source: String,
    pub mode: Mode,
    pub consent_cookie: String,
    /// Where consent is read and how it combines with defaults and browser signals.
    pub consent: crate::consent::Rules,
    /// Categories that must all be granted for an unknown cookie to pass.
    pub unknown_requires: CategorySet,
    /// Rule layers, searched in order: the file's own rules, then the built-in catalogue if
    /// the file extends it.
    cookie_layers: Vec<Matcher<CookieClass>>,
    endpoint_layers: Vec<Matcher<Category>>,
    /// Tag rules for the HTML rewriter: the file's own first, then the built-in ones.
    pub tags: Arc<TagRules>,
    /// What a withheld embed shows, if the policy gives a text.
    pub placeholder: Option<Placeholder>,
    /// The cookies the consent sources read: the visitor's consent, never stripped.
    consent_cookies: HashSet<String>,
    pub regions: Option<CompiledRegions>,
    /// The body of `/.well-known/gpc.json`, if the site declares GPC support.
    pub gpc_json: Option<String>,
    /// The body of `/.well-known/dnt-policy.txt`, if the operator provides one.
    pub dnt_policy: Option<bytes::Bytes>,
    pub tk: TkMode,
    pub google_consent_mode: bool,
    /// The proxy's own consent banner and preference centre, if switched on.
    pub banner: Option<banner::Banner>,
    /// The files it was read from (the policy file and the DNT policy it names): a reload
    /// watches them.
    pub files: Vec<PathBuf>,
    /// A digest of everything it was compiled from: two policies with the same digest rewrite
    /// pages alike.
    pub digest: u128,
}

/// Regional defaults, ready for lookups.
#[derive(Debug, Clone)]
pub struct CompiledRegions {
    /// The request header naming the visitor's country, believed only from trusted proxies.
    pub header: http::HeaderName,
    pub defaults: HashMap<Country, CategorySet>,
}

fn default_grant(d: DefaultConsent) -> CategorySet {
    match d {
        DefaultConsent::OptIn => CategorySet::NECESSARY,
        DefaultConsent::OptOut => CategorySet::ALL,
    }
}

/// What a cookie name means under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// The consent cookie itself: always passes.
    ConsentCookie,
    Known(&'a CookieClass),
    Unknown,
}

impl CompiledPolicy {
    /// Classifies a cookie name.
    pub fn classify(&self, name: &str) -> Verdict<'_> {
        if name == self.consent_cookie || self.consent_cookies.contains(name) {
            return Verdict::ConsentCookie;
        }
        self.cookie_layers
            .iter()
            .find_map(|m| m.find(name))
            .map_or(Verdict::Unknown, Verdict::Known)
    }

    /// The categories that must be granted for a cookie to pass.
    pub fn requires(&self, verdict: Verdict<'_>) -> CategorySet {
        match verdict {
            Verdict::ConsentCookie => CategorySet::EMPTY,
            Verdict::Known(c) => CategorySet::EMPTY.with(c.category),
            Verdict::Unknown => self.unknown_requires,
        }
    }

    /// The category of a tracking endpoint, if the path is one. The path is matched in its
    /// canonical form ([`crate::url_path::canonical`]): case, `;parameters`, escapes of
    /// unreserved characters, dot segments and extra slashes do not matter.
    pub fn endpoint(&self, path: &str) -> Option<Category> {
        let path = canonical(path);
        self.endpoint_layers
            .iter()
            .find_map(|m| m.find(&path))
            .copied()
    }

    pub fn cookie_rule_count(&self) -> usize {
        self.cookie_layers.iter().map(Matcher::len).sum()
    }

    pub fn endpoint_rule_count(&self) -> usize {
        self.endpoint_layers.iter().map(Matcher::len).sum()
    }

    /// A short human summary, as `consent-proxy check` prints it.
    pub fn summary(&self) -> String {
        let fmt_set = |s: Option<CategorySet>| match s {
            None => "off".to_string(),
            Some(s) => format!(
                "denies {}",
                s.iter().map(Category::as_str).collect::<Vec<_>>().join(",")
            ),
        };
        format!(
            "{}: ok\n  mode: {}\n  consent sources: {} (combined: {})\n  default: {}{}\n  DNT: {}\n  GPC: {}\n  \
             precedence: {}\n  unknown cookies require: {}\n  cookie rules: {}\n  endpoint rules: {}\n  tag rules: {}{}{}",
            self.source,
            self.mode.as_str(),
            self.consent
                .sources
                .iter()
                .map(|r| format!("{} ({})", r.id().name, r.cookie_names().join(", ")))
                .collect::<Vec<_>>()
                .join(", "),
            self.consent.combine.as_str(),
            self.consent
                .default_grant
                .iter()
                .map(Category::as_str)
                .collect::<Vec<_>>()
                .join(","),
            match &self.regions {
                None => String::new(),
                Some(r) => format!(" ({} countries by {})", r.defaults.len(), r.header.as_str()),
            },
            fmt_set(self.consent.dnt_denies),
            fmt_set(self.consent.gpc_denies),
            match self.consent.precedence {
                Precedence::Signal => "signal",
                Precedence::Cookie => "cookie",
            },
            if self.unknown_requires.is_empty() {
                "nothing (allowed)".to_string()
            } else {
                self.unknown_requires
                    .iter()
                    .map(Category::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            },
            self.cookie_rule_count(),
            self.endpoint_rule_count(),
            self.tags.rule_count(),
            if self.google_consent_mode {
                " (Google Consent Mode)"
            } else {
                ""
            },
            match (&self.gpc_json, &self.dnt_policy) {
                (None, None) => "",
                (Some(_), None) => "\n  declares: gpc.json",
                (None, Some(_)) => "\n  declares: dnt-policy.txt",
                (Some(_), Some(_)) => "\n  declares: gpc.json, dnt-policy.txt",
            },
        ) + &match &self.banner {
            None => "\n  banner: off".to_string(),
            Some(b) => format!(
                "\n  banner: on, preference centre {}, texts {}, a choice kept {}",
                b.path,
                b.languages().collect::<Vec<_>>().join(", "),
                match b.lifetime.as_secs() {
                    s if s % 86_400 == 0 => format!("{} days", s / 86_400),
                    s => format!("{} hours", s / 3600),
                }
            ),
        }
    }
}

/// An endpoint pattern in the form request paths are matched in.
fn endpoint_pattern(p: &Pattern) -> Pattern {
    match p {
        Pattern::Exact(s) => Pattern::Exact(canonical(s)),
        Pattern::Prefix(s) => Pattern::Prefix(s.to_ascii_lowercase()),
        Pattern::Glob(s) => Pattern::Glob(s.to_ascii_lowercase()),
    }
}

fn parse_file(name: &str, text: &str) -> Result<PolicyFile, PolicyError> {
    crate::located::read_yaml(name, text)
}

fn layers(
    name: &str,
    file: &PolicyFile,
) -> Result<(Matcher<CookieClass>, Matcher<Category>), PolicyError> {
    let cookies = Matcher::new(file.cookies.0.iter().map(|r| {
        (
            r.pattern.clone(),
            CookieClass {
                category: r.category,
                vendor: r.vendor.as_deref().map(Arc::from),
            },
        )
    }))
    .map_err(|m| PolicyError::whole(name, m))?;
    let endpoints = Matcher::new(
        file.endpoints
            .0
            .iter()
            .map(|r| (endpoint_pattern(&r.pattern), r.category)),
    )
    .map_err(|m| PolicyError::whole(name, m))?;
    Ok((cookies, endpoints))
}

/// The largest DNT policy file served.
const MAX_DNT_POLICY: u64 = 1 << 20;

/// Where a file the policy names is: relative to the policy's directory, if it has one.
fn resolve_in(path: &Path, base: Option<&Path>) -> PathBuf {
    match base {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn read_dnt_policy(name: &str, full: &Path) -> Result<bytes::Bytes, PolicyError> {
    let fail = |why: String| {
        PolicyError::whole(
            name,
            format!(
                "declarations.dnt_policy: cannot read {}: {why}",
                full.display()
            ),
        )
    };
    let meta = std::fs::metadata(full).map_err(|e| fail(e.to_string()))?;
    // A device, FIFO or /proc file reports no size, or never ends: only regular files.
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut text = Vec::new();
    std::fs::File::open(full)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_DNT_POLICY + 1), &mut text)
        })
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_DNT_POLICY {
        return Err(fail(format!("larger than {MAX_DNT_POLICY} bytes")));
    }
    Ok(bytes::Bytes::from(text))
}

/// Parses and compiles a policy from text. `name` is used in messages; files the policy names
/// are relative to the working directory.
pub fn compile(name: &str, text: &str) -> Result<CompiledPolicy, PolicyError> {
    compile_in(name, text, None)
}

/// Parses and compiles a policy whose relative file names are relative to `base`.
fn compile_in(name: &str, text: &str, base: Option<&Path>) -> Result<CompiledPolicy, PolicyError> {
    let file = parse_file(name, text)?;
    let (cookies, endpoints) = layers(name, &file)?;
    let mut cookie_layers = vec![cookies];
    let mut endpoint_layers = vec![endpoints];
    let mut url_rules: Vec<_> = file.tags.0.iter().map(|t| t.rule.clone()).collect();
    let mut inline_rules: Vec<_> = file.inline_tags.0.iter().map(|t| t.rule.clone()).collect();
    if file.extends == Some(Extends::Builtin) {
        let builtin = parse_file(BUILTIN_NAME, BUILTIN_YAML)?;
        let (c, e) = layers(BUILTIN_NAME, &builtin)?;
        cookie_layers.push(c);
        endpoint_layers.push(e);
        url_rules.extend(builtin.tags.0.into_iter().map(|t| t.rule));
        inline_rules.extend(builtin.inline_tags.0.into_iter().map(|t| t.rule));
    }
    let mut tags = TagRules::new(url_rules, inline_rules, file.tag_action)
        .map_err(|m| PolicyError::whole(name, m))?;
    let placeholder = file
        .embed_placeholder
        .clone()
        .map(Placeholder::new)
        .transpose()
        .map_err(|m| PolicyError::whole(name, m))?;
    tags.withheld_frames = placeholder.is_some();
    let non_essential = CategorySet::ALL.difference(CategorySet::NECESSARY);
    let banner = file
        .banner
        .as_ref()
        .map(|b| banner::Banner::compile(b, &file.consent_cookie.0))
        .transpose()
        .map_err(|m| PolicyError::whole(name, m))?
        .flatten();
    let sources = crate::consent::formats::build(&crate::consent::format::BuildCtx {
        consent_cookie: &file.consent_cookie.0,
        section: &file.consent,
        native_lifetime: banner.as_ref().map(|b| b.lifetime),
    });
    if banner.is_some() && file.consent.sources.0.first().map(|f| f.name) != Some("native") {
        return Err(PolicyError::whole(
            name,
            "banner: the banner records a choice in the proxy's own consent cookie, so \
             consent.sources must list `native` first (else another source would go on \
             deciding after a visitor changed or withdrew consent in the preference centre)",
        ));
    }
    let mut consent_cookies: HashSet<String> = sources
        .iter()
        .flat_map(|r| {
            let mut names = r.cookie_names();
            names.extend_from_slice(r.companion_cookies());
            names
        })
        .map(str::to_string)
        .collect();
    if let Some(b) = &banner {
        consent_cookies.insert(b.id_cookie.clone());
        consent_cookies.insert(banner::CSRF_COOKIE.to_string());
    }
    let regions = file.regions.as_ref().map(|r| CompiledRegions {
        header: r.header.0.clone(),
        defaults: r
            .defaults
            .iter()
            .map(|(c, d)| (*c, default_grant(*d)))
            .collect(),
    });
    if file.declarations.gpc.is_some()
        && (!file.signals.gpc.enabled || file.signals.gpc.deny.0.is_empty())
    {
        return Err(PolicyError::whole(
            name,
            "declarations.gpc says the site honours Global Privacy Control, but signals.gpc \
             is disabled or denies nothing",
        ));
    }
    let gpc_json = file
        .declarations
        .gpc
        .as_ref()
        .map(|g| serde_json::json!({ "gpc": true, "lastUpdate": g.last_update.0 }).to_string());
    let dnt_policy_file = file
        .declarations
        .dnt_policy
        .as_deref()
        .map(|p| resolve_in(p, base));
    let dnt_policy = dnt_policy_file
        .as_deref()
        .map(|p| read_dnt_policy(name, p))
        .transpose()?;
    let digest = {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(text.as_bytes());
        h.update(&[0]);
        h.update(dnt_policy.as_deref().unwrap_or_default());
        h.digest128()
    };
    Ok(CompiledPolicy {
        source: name.to_string(),
        mode: file.mode,
        consent_cookie: file.consent_cookie.0,
        consent: crate::consent::Rules {
            regional: regions
                .as_ref()
                .map(|r| r.defaults.clone())
                .unwrap_or_default(),
            sources,
            combine: file.consent.combine,
            default_grant: default_grant(file.default),
            dnt_denies: file.signals.dnt.enabled.then_some(file.signals.dnt.deny.0),
            gpc_denies: file.signals.gpc.enabled.then_some(file.signals.gpc.deny.0),
            precedence: file.signals.precedence,
        },
        unknown_requires: match file.unknown_cookies {
            UnknownCookies::Strip => non_essential,
            UnknownCookies::Allow => CategorySet::EMPTY,
            UnknownCookies::As(c) => CategorySet::EMPTY
                .with(c)
                .difference(CategorySet::NECESSARY),
        },
        cookie_layers,
        endpoint_layers,
        tags: Arc::new(tags),
        placeholder,
        consent_cookies,
        regions,
        gpc_json,
        dnt_policy,
        tk: file.declarations.tk,
        google_consent_mode: file.google_consent_mode,
        banner,
        files: dnt_policy_file.into_iter().collect(),
        digest,
    })
}

/// Loads and compiles a policy file.
pub fn load(path: &Path) -> Result<CompiledPolicy, PolicyError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| PolicyError::whole(&name, e.to_string()))?;
    let mut policy = compile_in(&name, &text, path.parent())?;
    policy.files.insert(0, path.to_path_buf());
    Ok(policy)
}

/// The built-in policy.
pub fn builtin() -> Result<CompiledPolicy, PolicyError> {
    compile(BUILTIN_NAME, BUILTIN_YAML)
}

#[cfg(test)]
mod tests;
