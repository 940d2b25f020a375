//! The policy file as written: YAML read through serde. Every check that can point at a place in
//! the file happens here, during deserialization, so that errors carry a line and a column.

use super::pattern::Pattern;
use super::tags::{InlineRule, TagAction, UrlRule};
use crate::category::{Category, CategorySet};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decisions are carried out.
    #[default]
    Enforce,
    /// Decisions are computed and logged; nothing is changed.
    ReportOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::ReportOnly => "report-only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultConsent {
    /// Without any consent, only necessary is granted.
    #[default]
    OptIn,
    /// Without any consent, every category is granted (signals may still deny).
    OptOut,
}

pub use crate::consent::signals::Precedence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Extends {
    /// Add the built-in catalogue of cookies and endpoints after this file's own rules.
    Builtin,
}

/// A set of categories that a rule may deny: `necessary` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniableSet(pub CategorySet);

impl<'de> Deserialize<'de> for DeniableSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let set = CategorySet::deserialize(d)?;
        if set.contains(Category::Necessary) {
            return Err(de::Error::custom(
                "`necessary` is always granted and cannot be denied",
            ));
        }
        Ok(DeniableSet(set))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRule {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub deny: DeniableSet,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    #[serde(default = "Signals::default_dnt")]
    pub dnt: SignalRule,
    #[serde(default = "Signals::default_gpc")]
    pub gpc: SignalRule,
    #[serde(default)]
    pub precedence: Precedence,
}

impl Signals {
    fn default_dnt() -> SignalRule {
        SignalRule {
            enabled: true,
            deny: DeniableSet(
                CategorySet::EMPTY
                    .with(Category::Analytics)
                    .with(Category::Marketing),
            ),
        }
    }
    fn default_gpc() -> SignalRule {
        SignalRule {
            enabled: true,
            deny: DeniableSet(CategorySet::EMPTY.with(Category::Marketing)),
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            dnt: Signals::default_dnt(),
            gpc: Signals::default_gpc(),
            precedence: Precedence::Signal,
        }
    }
}

/// What happens to a cookie that no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownCookies {
    /// Non-essential: it passes only when every non-essential category is granted.
    #[default]
    Strip,
    /// Treated as necessary: always passes.
    Allow,
    /// Treated as a cookie of this category.
    As(Category),
}

impl<'de> Deserialize<'de> for UnknownCookies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "strip" => Ok(UnknownCookies::Strip),
            "allow" => Ok(UnknownCookies::Allow),
            other => Category::parse(other)
                .filter(|c| c.as_str() == other)
                .map(UnknownCookies::As)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "unknown_cookies: expected strip, allow or a category \
                         (necessary, preferences, analytics, marketing), found `{other}`"
                    ))
                }),
        }
    }
}

pub use crate::consent::format::{CookieName, is_cookie_name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookieRule {
    name: Option<String>,
    prefix: Option<String>,
    glob: Option<String>,
    category: Category,
    vendor: Option<String>,
}

/// One cookie classification.
#[derive(Debug, Clone)]
pub struct CookieRule {
    pub pattern: Pattern,
    pub category: Category,
    pub vendor: Option<String>,
}

fn one_pattern(
    exact_key: &str,
    exact: Option<String>,
    prefix: Option<String>,
    glob: Option<String>,
) -> Result<Pattern, String> {
    let pattern = match (exact, prefix, glob) {
        (Some(n), None, None) => Pattern::Exact(n),
        (None, Some(p), None) => Pattern::Prefix(p),
        (None, None, Some(g)) => Pattern::Glob(g),
        (None, None, None) => {
            return Err(format!(
                "a rule needs one of `{exact_key}`, `prefix` or `glob`"
            ));
        }
        _ => {
            return Err(format!(
                "a rule takes only one of `{exact_key}`, `prefix` or `glob`"
            ));
        }
    };
    pattern.validate()?;
    Ok(pattern)
}

impl TryFrom<RawCookieRule> for CookieRule {
    type Error = String;
    fn try_from(r: RawCookieRule) -> Result<Self, String> {
        let pattern = one_pattern("name", r.name, r.prefix, r.glob)?;
        if let Pattern::Exact(n) = &pattern
            && !is_cookie_name(n)
        {
            return Err(format!("`{n}` is not a valid cookie name"));
        }
        Ok(CookieRule {
            pattern,
            category: r.category,
            vendor: r.vendor,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpointRule {
    path: Option<String>,
    prefix: Option<String>,
    glob: Option<String>,
    category: Category,
}

/// A tracking endpoint on the site: requests to it are answered locally when its category is
/// denied. A `necessary` endpoint is never blocked: it exempts a path that a rule further down
/// (e.g. in the built-in catalogue) would block.
#[derive(Debug, Clone)]
pub struct EndpointRule {
    pub pattern: Pattern,
    pub category: Category,
}

impl TryFrom<RawEndpointRule> for EndpointRule {
    type Error = String;
    fn try_from(r: RawEndpointRule) -> Result<Self, String> {
        let pattern = one_pattern("path", r.path, r.prefix, r.glob)?;
        if !pattern.text().starts_with('/') && !matches!(pattern, Pattern::Glob(_)) {
            return Err(format!("endpoint {pattern} must start with `/`"));
        }
        Ok(EndpointRule {
            pattern,
            category: r.category,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTagRule {
    host: String,
    path: Option<String>,
    query: Option<String>,
    category: Category,
    vendor: String,
    action: Option<TagAction>,
    #[serde(default)]
    consent_mode: bool,
    #[serde(default)]
    pages: bool,
}

/// A tag that loads a URL (`<script src>`, `<img>`, `<iframe>`, resource hints, a URL an inline
/// script or a style names): host (`*` for any, a domain covers its subdomains), an optional path
/// glob and an optional query glob. Category `necessary` makes an exception to a broader rule
/// after it: what it matches is never held back. `pages: true` marks a domain that also serves
/// pages people visit (see `TagRules::named_trackers`).
#[derive(Debug, Clone)]
pub struct TagRule {
    /// `host` + `path` + `query`, for the duplicate check.
    key: Pattern,
    pub rule: UrlRule,
}

impl TryFrom<RawTagRule> for TagRule {
    type Error = String;
    fn try_from(r: RawTagRule) -> Result<Self, String> {
        if r.host.is_empty() || r.host.contains(['/', ' ']) {
            return Err(format!("`{}` is not a host (use `*` for any host)", r.host));
        }
        if let Some(p) = &r.path
            && !p.starts_with('/')
            && !p.starts_with('*')
        {
            return Err(format!("tag path `{p}` must start with `/` or `*`"));
        }
        if r.pages && r.host == "*" {
            return Err("`pages: true` needs a named host".into());
        }
        let key = Pattern::Exact(format!(
            "{}{}?{}",
            r.host,
            r.path.as_deref().unwrap_or(""),
            r.query.as_deref().unwrap_or("")
        ));
        let mut rule = UrlRule::new(&r.host, r.path.as_deref(), r.category, &r.vendor)?;
        if let Some(q) = &r.query {
            rule = rule.with_query(q)?;
        }
        rule.action = r.action;
        rule.consent_mode = r.consent_mode;
        rule.pages = r.pages;
        Ok(TagRule { key, rule })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInlineRule {
    signature: String,
    category: Category,
    vendor: String,
    action: Option<TagAction>,
    #[serde(default)]
    consent_mode: bool,
}

/// An inline script signature.
#[derive(Debug, Clone)]
pub struct InlineTagRule {
    key: Pattern,
    pub rule: InlineRule,
}

impl TryFrom<RawInlineRule> for InlineTagRule {
    type Error = String;
    fn try_from(r: RawInlineRule) -> Result<Self, String> {
        if r.signature.len() < 3 {
            return Err(format!(
                "signature `{}` is too short: it would match ordinary scripts",
                r.signature
            ));
        }
        if r.category == Category::Necessary {
            return Err("a tag of category `necessary` would never be neutralized".into());
        }
        Ok(InlineTagRule {
            key: Pattern::Exact(r.signature.clone()),
            rule: InlineRule {
                signature: r.signature,
                category: r.category,
                vendor: r.vendor.as_str().into(),
                action: r.action,
                consent_mode: r.consent_mode,
            },
        })
    }
}

impl Rule for TagRule {
    type Raw = RawTagRule;
    fn pattern(&self) -> &Pattern {
        &self.key
    }
}

impl Rule for InlineTagRule {
    type Raw = RawInlineRule;
    fn pattern(&self) -> &Pattern {
        &self.key
    }
}

/// A rule as read from a list: its raw form, validated into the rule.
pub trait Rule: TryFrom<Self::Raw, Error = String> {
    type Raw: de::DeserializeOwned;
    fn pattern(&self) -> &Pattern;
}

impl Rule for CookieRule {
    type Raw = RawCookieRule;
    fn pattern(&self) -> &Pattern {
        &self.pattern
    }
}

impl Rule for EndpointRule {
    type Raw = RawEndpointRule;
    fn pattern(&self) -> &Pattern {
        &self.pattern
    }
}

/// A list of rules in which each pattern appears once.
#[derive(Debug, Clone)]
pub struct RuleList<T>(pub Vec<T>);

impl<T> Default for RuleList<T> {
    fn default() -> Self {
        RuleList(Vec::new())
    }
}

/// Reads one rule. Validation and the duplicate check run inside the rule's own mapping, so
/// that their errors point at the rule's line rather than at the list.
struct UniqueRule<'a, T> {
    seen: &'a mut HashSet<Pattern>,
    _rule: PhantomData<T>,
}

impl<'de, T: Rule> de::DeserializeSeed<'de> for UniqueRule<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Rule> Visitor<'de> for UniqueRule<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rule (a mapping)")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let raw = T::Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let rule = T::try_from(raw).map_err(de::Error::custom)?;
        if !self.seen.insert(rule.pattern().clone()) {
            return Err(de::Error::custom(format!(
                "duplicate rule for {}",
                rule.pattern()
            )));
        }
        Ok(rule)
    }
}

impl<'de, T: Rule> Deserialize<'de> for RuleList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Rule> Visitor<'de> for V<T> {
            type Value = RuleList<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of rules")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RuleList(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(rule) = seq.next_element_seed(UniqueRule {
                    seen: &mut seen,
                    _rule: PhantomData,
                })? {
                    out.push(rule);
                }
                Ok(RuleList(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The whole policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub extends: Option<Extends>,
    #[serde(default)]
    pub consent_cookie: CookieName,
    #[serde(default)]
    pub default: DefaultConsent,
    #[serde(default)]
    pub signals: Signals,
    #[serde(default)]
    pub unknown_cookies: UnknownCookies,
    #[serde(default)]
    pub cookies: RuleList<CookieRule>,
    #[serde(default)]
    pub endpoints: RuleList<EndpointRule>,
    /// What a matched tag gets unless its rule says otherwise.
    #[serde(default)]
    pub tag_action: TagAction,
    #[serde(default)]
    pub tags: RuleList<TagRule>,
    #[serde(default)]
    pub inline_tags: RuleList<InlineTagRule>,
    /// The text a withheld embed shows, by language (`{vendor}`, `{category}` filled in).
    #[serde(default)]
    pub embed_placeholder: Option<std::collections::BTreeMap<String, String>>,
    /// Where consent is read, in which order.
    #[serde(default)]
    pub consent: super::sources::ConsentSection,
    /// Defaults per country.
    #[serde(default)]
    pub regions: Option<super::sources::Regions>,
    #[serde(default)]
    pub declarations: super::sources::Declarations,
    /// Let Google tags that honour Consent Mode run, and tell them the decision with a
    /// `gtag('consent', 'default', …)` block, instead of neutralizing them.
    #[serde(default)]
    pub google_consent_mode: bool,
    /// The proxy's own consent banner and preference centre.
    #[serde(default)]
    pub banner: Option<super::banner::BannerFile>,
}
