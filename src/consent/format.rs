//! A consent format: where the visitor's choice is kept (the proxy's own cookie, a consent
//! manager's, an IAB string) and how it reads. Each format is one file that implements
//! [`Format`] (its settings under `consent:` and how they make a reader) and returns a
//! [`ConsentReader`] (its cookies and how their values read). `formats.rs` lists them.

use super::cmp::Reading;
use crate::category::CategorySet;
use serde::Deserialize;
use std::fmt::Debug;
use std::time::Duration;

/// Thirteen months: the longest a consent is relied upon by default (the CNIL's guidance, and
/// the TCF policy's bound for a stored TC string).
pub const THIRTEEN_MONTHS: Duration = Duration::from_secs(396 * 24 * 3600);

/// A format's names in `consent.sources` and in the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormatId {
    /// `tcf`.
    pub name: &'static str,
    /// `tcf-invalid`: present but unreadable.
    pub invalid: &'static str,
    /// `tcf-expired`: readable, but older than its maximum age.
    pub expired: &'static str,
}

/// What one source says on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Said {
    pub reading: Reading,
    /// When the choice was made or last updated (Unix seconds), where the format keeps it.
    pub at: Option<u64>,
    /// A Global Privacy Control signal carried inside the consent string (the GPC subsection of
    /// a GPP string): it counts like `Sec-GPC: 1`.
    pub gpc: bool,
}

impl Said {
    pub fn new(reading: Reading) -> Said {
        Said {
            reading,
            at: None,
            gpc: false,
        }
    }

    /// A reading made at `at`: expired (grants nothing) if that is longer than `max_age` before
    /// `now`, or more than a day in the future.
    pub fn dated(reading: Reading, at: u64, now: u64, max_age: Option<Duration>) -> Said {
        let too_old = max_age.is_some_and(|m| now.saturating_sub(at) > m.as_secs());
        let from_the_future = at > now.saturating_add(24 * 3600);
        let reading = match reading {
            Reading::Granted(_) | Reading::OptOut(_) if too_old || from_the_future => {
                Reading::Expired
            }
            r => r,
        };
        Said {
            reading,
            at: Some(at),
            gpc: false,
        }
    }
}

/// What a reader is given beside the cookies.
#[derive(Debug, Clone, Copy)]
pub struct ReadCtx {
    /// The time of the request, Unix seconds.
    pub now: u64,
}

/// A consent source, configured: which cookies it reads and what they say.
pub trait ConsentReader: Debug + Send + Sync {
    fn id(&self) -> FormatId;

    /// The cookies it is read from: they are the visitor's consent, so they always pass.
    fn cookie_names(&self) -> Vec<&str>;

    /// Cookies the consent manager keeps beside the one it is read from (whether its banner
    /// was closed, copies of the consent in other formats). They are its state, so they pass
    /// like the consent itself, even under a policy without the built-in catalogue.
    fn companion_cookies(&self) -> &'static [&'static str] {
        &[]
    }

    /// What it says on a request with these cookies; `None` when its cookies are absent.
    fn read(&self, cookies: &[(&str, &str)], ctx: &ReadCtx) -> Option<Said>;
}

/// What building a reader may look at beside the format's own settings.
pub struct BuildCtx<'a> {
    /// The proxy's own consent cookie (`consent_cookie`).
    pub consent_cookie: &'a str,
    /// The whole `consent:` section (GPP reads its TCF section with the TCF settings).
    pub section: &'a super::formats::ConsentSection,
    /// How long the proxy's own choice lasts (the banner's `lifetime`), if the policy says.
    pub native_lifetime: Option<Duration>,
}

/// A consent format: its settings under `consent:` and how they make its reader.
pub trait Format {
    type Config: for<'de> Deserialize<'de> + Default + Clone + Debug;
    fn build(config: &Self::Config, ctx: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader>;
}

/// Reads every cookie of one name with `parse`. Several cookies of the same name (different
/// paths or domains) count only as far as they agree: the grant is their intersection, one
/// unreadable value makes it unreadable, and the oldest date stands.
pub fn read_cookie(
    cookies: &[(&str, &str)],
    name: &str,
    parse: impl Fn(&str) -> Said,
) -> Option<Said> {
    cookies
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| parse(v))
        .reduce(combine)
}

/// Two readings of the same source: the stricter.
pub fn combine(a: Said, b: Said) -> Said {
    let reading = match (a.reading, b.reading) {
        (Reading::Unreadable, _) | (_, Reading::Unreadable) => Reading::Unreadable,
        (Reading::Expired, _) | (_, Reading::Expired) => Reading::Expired,
        (Reading::Granted(x), Reading::Granted(y)) => Reading::Granted(x.intersection(y)),
        (Reading::OptOut(x), Reading::OptOut(y)) => Reading::OptOut(x.union(y)),
        (Reading::Granted(x), Reading::OptOut(d)) | (Reading::OptOut(d), Reading::Granted(x)) => {
            Reading::Granted(x.difference(d).union(CategorySet::NECESSARY))
        }
        (r, Reading::NotRequired) | (Reading::NotRequired, r) => r,
    };
    Said {
        reading,
        at: match (a.at, b.at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        gpc: a.gpc || b.gpc,
    }
}

/// A reader of one cookie whose value a function reads: most consent managers.
pub struct OneCookie<P> {
    pub id: FormatId,
    pub cookie: String,
    pub companions: &'static [&'static str],
    pub parse: P,
}

impl<P> Debug for OneCookie<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneCookie")
            .field("format", &self.id.name)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl<P: Fn(&str, &ReadCtx) -> Said + Send + Sync> ConsentReader for OneCookie<P> {
    fn id(&self) -> FormatId {
        self.id
    }

    fn cookie_names(&self) -> Vec<&str> {
        vec![&self.cookie]
    }

    fn companion_cookies(&self) -> &'static [&'static str] {
        self.companions
    }

    fn read(&self, cookies: &[(&str, &str)], ctx: &ReadCtx) -> Option<Said> {
        read_cookie(cookies, &self.cookie, |v| (self.parse)(v, ctx))
    }
}

/// A cookie name as the policy may use it: a valid RFC 6265 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieName(pub String);

impl Default for CookieName {
    fn default() -> Self {
        CookieName("cookie_consent".into())
    }
}

pub fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

impl<'de> Deserialize<'de> for CookieName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_cookie_name(&s) {
            Ok(CookieName(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "`{s}` is not a valid cookie name"
            )))
        }
    }
}

/// The cookie a source reads: the one the policy names, else the format's own.
pub fn cookie_or(given: &Option<CookieName>, default: &str) -> String {
    given
        .as_ref()
        .map_or_else(|| default.to_string(), |n| n.0.clone())
}

/// Settings of a format read from one cookie.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieOnly {
    pub cookie: Option<CookieName>,
}

/// Settings of a format whose groups map to categories (OneTrust, Borlabs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    pub cookie: Option<CookieName>,
    /// Replaces the default group map.
    pub groups: Option<super::cmp::CategoryMap>,
}

/// Settings of a format whose categories map to categories (cookieconsent).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoriesConfig {
    pub cookie: Option<CookieName>,
    /// Replaces the default category map.
    pub categories: Option<super::cmp::CategoryMap>,
}

/// Settings of a format whose services map to categories (Klaro).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesConfig {
    pub cookie: Option<CookieName>,
    /// Replaces the default service map.
    pub services: Option<super::cmp::CategoryMap>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;

    #[test]
    fn several_cookies_of_one_name_intersect() {
        let parse = |v: &str| match v {
            "all" => Said::new(Reading::Granted(CategorySet::ALL)),
            "analytics" => Said::new(Reading::Granted(
                CategorySet::NECESSARY.with(Category::Analytics),
            )),
            _ => Said::new(Reading::Unreadable),
        };
        let analytics = CategorySet::NECESSARY.with(Category::Analytics);
        assert_eq!(
            read_cookie(&[("c", "all"), ("x", "1"), ("c", "analytics")], "c", parse)
                .map(|s| s.reading),
            Some(Reading::Granted(analytics))
        );
        assert_eq!(
            read_cookie(&[("c", "all"), ("c", "%%")], "c", parse).map(|s| s.reading),
            Some(Reading::Unreadable)
        );
        assert_eq!(read_cookie(&[("other", "all")], "c", parse), None);
    }

    #[test]
    fn combining_readings() {
        let a = CategorySet::NECESSARY.with(Category::Analytics);
        let said = |r| Said::new(r);
        assert_eq!(
            combine(said(Reading::NotRequired), said(Reading::Granted(a))).reading,
            Reading::Granted(a)
        );
        assert_eq!(
            combine(said(Reading::Granted(a)), said(Reading::Unreadable)).reading,
            Reading::Unreadable
        );
        let marketing = CategorySet::EMPTY.with(Category::Marketing);
        assert_eq!(
            combine(
                said(Reading::Granted(CategorySet::ALL)),
                said(Reading::OptOut(marketing))
            )
            .reading,
            Reading::Granted(CategorySet::ALL.difference(marketing))
        );
    }

    #[test]
    fn dated_readings_expire() {
        let all = Reading::Granted(CategorySet::ALL);
        let now = 1_800_000_000;
        let year = 365 * 24 * 3600;
        let max = Some(THIRTEEN_MONTHS);
        assert_eq!(Said::dated(all, now - year, now, max).reading, all);
        assert_eq!(
            Said::dated(all, now - 2 * year, now, max).reading,
            Reading::Expired
        );
        assert_eq!(Said::dated(all, now - 2 * year, now, None).reading, all);
        assert_eq!(
            Said::dated(all, now + 3 * 24 * 3600, now, max).reading,
            Reading::Expired
        );
        // An unreadable value stays unreadable, dated or not.
        assert_eq!(
            Said::dated(Reading::Unreadable, now, now, max).reading,
            Reading::Unreadable
        );
    }
}
