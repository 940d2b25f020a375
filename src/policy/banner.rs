//! The consent banner and preference centre a policy can switch on: where the preference centre
//! is served, the texts shown in each language, how long a choice lasts, and a version of the
//! texts that each consent record names.

use crate::category::Category;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the proxy serves the preference centre unless the policy says otherwise: under the
/// proxy's own well-known prefix, which no site route uses.
pub const DEFAULT_PATH: &str = "/.well-known/consent-proxy/preferences";
/// The banner's stylesheet.
pub const STYLESHEET_PATH: &str = "/.well-known/consent-proxy/consent.css";
/// How long a choice lasts by default: six months, the renewal period the CNIL recommends.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(182 * 24 * 3600);
/// The longest lifetime a policy may give: 13 months.
pub const MAX_LIFETIME: Duration = crate::consent::format::THIRTEEN_MONTHS;
/// The cookie that ties the banner's form to the browser it was shown in (signed double
/// submit): strictly necessary, HttpOnly, for the session.
pub const CSRF_COOKIE: &str = "consent_proxy_csrf";
/// The categories a visitor chooses (necessary is always on).
pub const CHOSEN: [Category; 3] = [
    Category::Preferences,
    Category::Analytics,
    Category::Marketing,
];

/// The policy's `banner:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BannerFile {
    /// Off unless switched on.
    #[serde(default)]
    pub enabled: bool,
    /// The preference centre's path.
    #[serde(default)]
    pub path: Option<String>,
    /// The site's privacy policy (a path or an `https://` URL), linked from the banner.
    #[serde(default)]
    pub privacy_policy: Option<String>,
    /// How long a choice is kept in the visitor's browser.
    #[serde(default, with = "humantime_serde")]
    pub lifetime: Option<Duration>,
    /// Inject a small "Cookie settings" link into pages for visitors who have chosen.
    #[serde(default = "yes")]
    pub settings_link: bool,
    /// Texts per language tag; each field left out is taken from the built-in texts of that
    /// language (or English).
    #[serde(default)]
    pub texts: BTreeMap<String, TextsFile>,
}

fn yes() -> bool {
    true
}

/// One language's texts, as the policy gives them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextsFile {
    pub title: Option<String>,
    pub intro: Option<String>,
    pub accept: Option<String>,
    pub reject: Option<String>,
    pub settings: Option<String>,
    pub save: Option<String>,
    pub privacy_policy: Option<String>,
    pub preferences_title: Option<String>,
    pub settings_link: Option<String>,
    /// `{categories}` is replaced by the names of the categories the signal denies.
    pub signals_honoured: Option<String>,
    pub saved: Option<String>,
    pub consent_id: Option<String>,
    pub back: Option<String>,
    pub always_on: Option<String>,
    #[serde(default)]
    pub categories: BTreeMap<Category, CategoryTexts>,
}

/// A category's name and what it is for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryTexts {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// One language's texts, complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub lang: String,
    pub title: String,
    pub intro: String,
    pub accept: String,
    pub reject: String,
    pub settings: String,
    pub save: String,
    pub privacy_policy: String,
    pub preferences_title: String,
    pub settings_link: String,
    /// Shown when the request carries GPC or DNT.
    pub signals_honoured: String,
    pub saved: String,
    pub consent_id: String,
    pub back: String,
    pub always_on: String,
    /// Name and description of each category, necessary first.
    pub categories: BTreeMap<Category, (String, String)>,
    /// A digest of all of the above: the version of the texts a consent record names.
    pub version: String,
}

/// The banner as a compiled policy holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    pub path: String,
    /// The cookie holding the visitor's consent ID: the consent cookie's name with `_id`.
    pub id_cookie: String,
    pub privacy_policy: Option<String>,
    pub lifetime: Duration,
    pub settings_link: bool,
    texts: BTreeMap<String, Texts>,
    /// Used when the visitor asks for none of the languages: `en` if given, else the first.
    fallback: String,
}

impl Banner {
    /// Validates and completes a policy's `banner:` section; `None` when it is off.
    pub fn compile(file: &BannerFile, consent_cookie: &str) -> Result<Option<Banner>, String> {
        if !file.enabled {
            return Ok(None);
        }
        let path = file
            .path
            .clone()
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        if !is_plain_path(&path) || path == "/" {
            return Err(format!(
                "banner.path: `{path}` must be a path of its own starting with `/` (no query, \
                 no fragment, no `//`), e.g. {DEFAULT_PATH}"
            ));
        }
        if let Some(p) = &file.privacy_policy
            && !(is_plain_path(p) || p.starts_with("https://") || p.starts_with("http://"))
        {
            return Err(format!(
                "banner.privacy_policy: `{p}` must be a path starting with `/` or an http(s) URL"
            ));
        }
        let lifetime = file.lifetime.unwrap_or(DEFAULT_LIFETIME);
        if lifetime < Duration::from_secs(3600) || lifetime > MAX_LIFETIME {
            return Err(
                "banner.lifetime: give between 1 hour and 13 months (e.g. `182days`)".to_string(),
            );
        }
        let mut texts = BTreeMap::new();
        let given: Vec<&String> = file.texts.keys().collect();
        let langs: Vec<String> = if given.is_empty() {
            BUILTIN.iter().map(|b| b.lang.to_string()).collect()
        } else {
            given.iter().map(|s| s.to_string()).collect()
        };
        for lang in langs {
            if !is_language_tag(&lang) {
                return Err(format!(
                    "banner.texts: `{lang}` is not a language tag (e.g. `en`, `de`, `pt-BR`)"
                ));
            }
            let own = file.texts.get(&lang).cloned().unwrap_or_default();
            let t = complete(&lang, &own).map_err(|m| format!("banner.texts.{lang}: {m}"))?;
            texts.insert(lang, t);
        }
        let fallback = if texts.contains_key("en") {
            "en".to_string()
        } else {
            texts.keys().next().cloned().unwrap_or_default()
        };
        Ok(Some(Banner {
            path,
            id_cookie: format!("{consent_cookie}_id"),
            privacy_policy: file.privacy_policy.clone(),
            lifetime,
            settings_link: file.settings_link,
            texts,
            fallback,
        }))
    }

    /// The texts for a visitor's `Accept-Language`.
    pub fn texts(&self, accept_language: Option<&str>) -> &Texts {
        let langs: Vec<&str> = self.texts.keys().map(String::as_str).collect();
        crate::language::choose(accept_language, &langs)
            .and_then(|l| self.texts.get(l))
            .unwrap_or_else(|| &self.texts[&self.fallback])
    }

    /// The languages the banner speaks.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }
}

/// A path of the site: starts with one `/`, no query or fragment, printable ASCII.
fn is_plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 256
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'\\' | b'"' | b'<' | b'>'))
}

fn is_language_tag(lang: &str) -> bool {
    !lang.is_empty()
        && lang
            .split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The longest text a policy may give.
const MAX_TEXT: usize = 2000;

/// A language's texts: the policy's, each missing one taken from the built-in texts of that
/// language, or of English.
fn complete(lang: &str, own: &TextsFile) -> Result<Texts, String> {
    let primary = lang.split('-').next().unwrap_or(lang);
    let base = BUILTIN
        .iter()
        .find(|b| b.lang.eq_ignore_ascii_case(primary))
        .unwrap_or(&BUILTIN[0]);
    let pick = |given: &Option<String>, field: &str, builtin: &str| -> Result<String, String> {
        let text = given.as_deref().unwrap_or(builtin);
        if text.trim().is_empty() || text.len() > MAX_TEXT {
            return Err(format!("{field}: give 1 to {MAX_TEXT} bytes"));
        }
        Ok(text.to_string())
    };
    let mut categories = BTreeMap::new();
    for (i, c) in Category::ALL.into_iter().enumerate() {
        let given = own.categories.get(&c).cloned().unwrap_or_default();
        let (name, description) = base.categories[i];
        categories.insert(
            c,
            (
                pick(&given.name, &format!("categories.{c}.name"), name)?,
                pick(
                    &given.description,
                    &format!("categories.{c}.description"),
                    description,
                )?,
            ),
        );
    }
    let mut t = Texts {
        lang: lang.to_string(),
        title: pick(&own.title, "title", base.title)?,
        intro: pick(&own.intro, "intro", base.intro)?,
        accept: pick(&own.accept, "accept", base.accept)?,
        reject: pick(&own.reject, "reject", base.reject)?,
        settings: pick(&own.settings, "settings", base.settings)?,
        save: pick(&own.save, "save", base.save)?,
        privacy_policy: pick(&own.privacy_policy, "privacy_policy", base.privacy_policy)?,
        preferences_title: pick(
            &own.preferences_title,
            "preferences_title",
            base.preferences_title,
        )?,
        settings_link: pick(&own.settings_link, "settings_link", base.settings_link)?,
        signals_honoured: pick(
            &own.signals_honoured,
            "signals_honoured",
            base.signals_honoured,
        )?,
        saved: pick(&own.saved, "saved", base.saved)?,
        consent_id: pick(&own.consent_id, "consent_id", base.consent_id)?,
        back: pick(&own.back, "back", base.back)?,
        always_on: pick(&own.always_on, "always_on", base.always_on)?,
        categories,
        version: String::new(),
    };
    t.version = version_of(&t);
    Ok(t)
}

/// A digest of every text shown: the first 16 hex digits of a SHA-256.
fn version_of(t: &Texts) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in [
        &t.lang,
        &t.title,
        &t.intro,
        &t.accept,
        &t.reject,
        &t.settings,
        &t.save,
        &t.privacy_policy,
        &t.preferences_title,
        &t.signals_honoured,
        &t.always_on,
    ] {
        h.update(s.as_bytes());
        h.update([0]);
    }
    for (c, (name, description)) in &t.categories {
        h.update(c.as_str().as_bytes());
        h.update([0]);
        h.update(name.as_bytes());
        h.update([0]);
        h.update(description.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Built-in texts of one language.
struct Builtin {
    lang: &'static str,
    title: &'static str,
    intro: &'static str,
    accept: &'static str,
    reject: &'static str,
    settings: &'static str,
    save: &'static str,
    privacy_policy: &'static str,
    preferences_title: &'static str,
    settings_link: &'static str,
    signals_honoured: &'static str,
    saved: &'static str,
    consent_id: &'static str,
    back: &'static str,
    always_on: &'static str,
    /// Name and description, in the order of `Category::ALL`.
    categories: [(&'static str, &'static str); 4],
}

const BUILTIN: [Builtin; 3] = [
    Builtin {
        lang: "en",
        title: "Cookies on this site",
        intro: "We use necessary cookies to make this site work. With your consent we would also \
                like to remember your preferences, measure how the site is used, and show \
                advertising. You can change your choice at any time under Cookie settings.",
        accept: "Accept all",
        reject: "Reject all",
        settings: "Settings",
        save: "Save my choices",
        privacy_policy: "Privacy policy",
        preferences_title: "Cookie settings",
        settings_link: "Cookie settings",
        signals_honoured: "Your browser asks sites not to track you (Global Privacy Control or \
                           Do Not Track). We honour it: {categories} stay off.",
        saved: "Your choice is saved.",
        consent_id: "Your consent ID",
        back: "Back to the site",
        always_on: "Always on",
        categories: [
            (
                "Necessary",
                "Needed for the site to work, for example to keep you signed in and to remember \
                 this choice. They cannot be switched off.",
            ),
            (
                "Preferences",
                "Remember your settings, such as language or region.",
            ),
            (
                "Analytics",
                "Count visits and measure how the site is used, so that we can improve it.",
            ),
            (
                "Marketing",
                "Used by advertising partners to show you relevant advertising here and on other \
                 sites.",
            ),
        ],
    },
    Builtin {
        lang: "de",
        title: "Cookies auf dieser Website",
        intro: "Wir verwenden notwendige Cookies, damit diese Website funktioniert. Mit Ihrer \
                Einwilligung möchten wir außerdem Ihre Einstellungen speichern, die Nutzung der \
                Website messen und Werbung zeigen. Sie können Ihre Wahl jederzeit unter \
                Cookie-Einstellungen ändern.",
        accept: "Alle akzeptieren",
        reject: "Alle ablehnen",
        settings: "Einstellungen",
        save: "Auswahl speichern",
        privacy_policy: "Datenschutzerklärung",
        preferences_title: "Cookie-Einstellungen",
        settings_link: "Cookie-Einstellungen",
        signals_honoured: "Ihr Browser bittet Websites, Sie nicht zu verfolgen (Global Privacy \
                           Control oder Do Not Track). Wir respektieren das: {categories} \
                           bleiben aus.",
        saved: "Ihre Auswahl ist gespeichert.",
        consent_id: "Ihre Einwilligungs-ID",
        back: "Zurück zur Website",
        always_on: "Immer aktiv",
        categories: [
            (
                "Notwendig",
                "Für den Betrieb der Website nötig, etwa um Sie angemeldet zu halten und diese \
                 Wahl zu speichern. Sie können nicht abgeschaltet werden.",
            ),
            (
                "Einstellungen",
                "Speichern Ihre Einstellungen, etwa Sprache oder Region.",
            ),
            (
                "Statistik",
                "Zählen Besuche und messen die Nutzung der Website, damit wir sie verbessern \
                 können.",
            ),
            (
                "Marketing",
                "Werden von Werbepartnern genutzt, um Ihnen hier und auf anderen Websites \
                 passende Werbung zu zeigen.",
            ),
        ],
    },
    Builtin {
        lang: "fr",
        title: "Les cookies sur ce site",
        intro: "Nous utilisons des cookies nécessaires au fonctionnement du site. Avec votre \
                consentement, nous aimerions aussi retenir vos préférences, mesurer \
                l’utilisation du site et afficher de la publicité. Vous pouvez modifier votre \
                choix à tout moment dans Paramètres des cookies.",
        accept: "Tout accepter",
        reject: "Tout refuser",
        settings: "Paramètres",
        save: "Enregistrer mes choix",
        privacy_policy: "Politique de confidentialité",
        preferences_title: "Paramètres des cookies",
        settings_link: "Paramètres des cookies",
        signals_honoured: "Votre navigateur demande aux sites de ne pas vous suivre (Global \
                           Privacy Control ou Do Not Track). Nous le respectons : \
                           {categories} restent désactivés.",
        saved: "Votre choix est enregistré.",
        consent_id: "Votre identifiant de consentement",
        back: "Retour au site",
        always_on: "Toujours actifs",
        categories: [
            (
                "Nécessaires",
                "Indispensables au fonctionnement du site, par exemple pour garder votre session \
                 et retenir ce choix. Ils ne peuvent pas être désactivés.",
            ),
            (
                "Préférences",
                "Retiennent vos réglages, comme la langue ou la région.",
            ),
            (
                "Mesure d’audience",
                "Comptent les visites et mesurent l’utilisation du site, pour l’améliorer.",
            ),
            (
                "Marketing",
                "Utilisés par des partenaires publicitaires pour afficher des publicités \
                 pertinentes ici et sur d’autres sites.",
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> BannerFile {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn off_unless_switched_on() {
        assert_eq!(
            Banner::compile(&file("{}"), "cookie_consent").unwrap(),
            None
        );
        let b = Banner::compile(&file("enabled: true"), "cookie_consent")
            .unwrap()
            .unwrap();
        assert_eq!(b.path, DEFAULT_PATH);
        assert_eq!(b.lifetime, DEFAULT_LIFETIME);
        assert_eq!(b.languages().collect::<Vec<_>>(), ["de", "en", "fr"]);
    }

    #[test]
    fn texts_by_language_with_a_fallback_and_the_policys_own_words() {
        let b = Banner::compile(&file(
            "enabled: true\ntexts:\n  en: {title: Our cookies}\n  de: {}\n  pt-BR: {accept: Aceitar tudo}\n",
        ), "cookie_consent")
        .unwrap()
        .unwrap();
        assert_eq!(b.texts(Some("de-CH, de;q=0.9")).accept, "Alle akzeptieren");
        assert_eq!(b.texts(Some("ja")).title, "Our cookies");
        assert_eq!(b.texts(None).lang, "en");
        let pt = b.texts(Some("pt-BR"));
        assert_eq!(pt.accept, "Aceitar tudo");
        // Missing fields of a language without built-in texts come from English.
        assert_eq!(pt.reject, "Reject all");
        assert_ne!(b.texts(Some("en")).version, b.texts(Some("de")).version);
    }

    #[test]
    fn the_version_changes_with_any_text_shown() {
        let a = Banner::compile(&file("enabled: true"), "cookie_consent")
            .unwrap()
            .unwrap();
        let b = Banner::compile(&file(
            "enabled: true\ntexts:\n  en:\n    categories:\n      analytics: {description: We count visits.}\n",
        ), "cookie_consent")
        .unwrap()
        .unwrap();
        assert_ne!(a.texts(None).version, b.texts(None).version);
        assert_eq!(a.texts(None).version.len(), 16);
    }

    #[test]
    fn bad_sections_are_refused_with_what_to_give() {
        for (yaml, says) in [
            ("enabled: true\npath: preferences", "banner.path"),
            ("enabled: true\npath: //evil.example", "banner.path"),
            ("enabled: true\npath: /a?b", "banner.path"),
            (
                "enabled: true\nprivacy_policy: javascript:alert(1)",
                "banner.privacy_policy",
            ),
            ("enabled: true\nlifetime: 5years", "banner.lifetime"),
            ("enabled: true\ntexts:\n  'e n': {}", "language tag"),
            (
                "enabled: true\ntexts:\n  en: {title: ''}",
                "banner.texts.en: title",
            ),
        ] {
            let err = Banner::compile(&file(yaml), "cookie_consent").unwrap_err();
            assert!(err.contains(says), "{yaml}: {err}");
        }
        assert!(serde_yaml::from_str::<BannerFile>("enabled: true\ncolour: red").is_err());
    }
}
