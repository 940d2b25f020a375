//! The IAB CCPA / US Privacy string (`usprivacy` or `us_privacy` cookie, and GPP section 6):
//! four characters, `1YNN`.
//!
//! - 1: the specification's version, `1`.
//! - 2: explicit notice given: `Y`, `N`, or `-` (not applicable).
//! - 3: the visitor opted out of the sale of personal information: `Y`, `N`, or `-`.
//! - 4: the transaction is covered by the LSPA: `Y`, `N`, or `-`.
//!
//! `Y` in the third place is an opt-out: it denies `marketing` (sale and sharing are what ad
//! tags do). `N` opts out of nothing; `-` in every place after the version (`1---`) says the
//! string does not apply to this visitor, as if it were absent. Anything else (another version,
//! another length, another letter, lower case included) is unreadable and grants nothing.

use super::cmp::Reading;
use super::format::{
    BuildCtx, ConsentReader, CookieName, Format, FormatId, ReadCtx, Said, read_cookie,
};
use crate::category::{Category, CategorySet};
use serde::Deserialize;

/// What a US Privacy opt-out denies.
pub const OPT_OUT_DENIES: CategorySet = CategorySet::EMPTY.with(Category::Marketing);

/// Reads one US Privacy string.
pub fn parse(value: &str) -> Reading {
    let Some(value) = super::cmp::prepare(value) else {
        return Reading::Unreadable;
    };
    let flag = |b: u8| matches!(b, b'Y' | b'N' | b'-');
    match value.as_bytes() {
        [b'1', b'-', b'-', b'-'] => Reading::NotRequired,
        [b'1', notice, opt_out, lspa] if flag(*notice) && flag(*opt_out) && flag(*lspa) => {
            Reading::OptOut(if *opt_out == b'Y' {
                OPT_OUT_DENIES
            } else {
                CategorySet::EMPTY
            })
        }
        _ => Reading::Unreadable,
    }
}

/// The US Privacy cookie as a consent format.
pub struct UsPrivacy;

/// `consent.usprivacy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsPrivacyConfig {
    /// The cookie to read; without it, both names in use (`usprivacy`, `us_privacy`).
    pub cookie: Option<CookieName>,
}

/// The cookie names sites use for the string.
const DEFAULT_COOKIES: [&str; 2] = ["usprivacy", "us_privacy"];

#[derive(Debug)]
struct UsPrivacyReader {
    id: FormatId,
    cookies: Vec<String>,
}

impl ConsentReader for UsPrivacyReader {
    fn id(&self) -> FormatId {
        self.id
    }

    fn cookie_names(&self) -> Vec<&str> {
        self.cookies.iter().map(String::as_str).collect()
    }

    fn read(&self, cookies: &[(&str, &str)], _: &ReadCtx) -> Option<Said> {
        self.cookies
            .iter()
            .filter_map(|name| read_cookie(cookies, name, |v| Said::new(parse(v))))
            .reduce(super::format::combine)
    }
}

impl Format for UsPrivacy {
    type Config = UsPrivacyConfig;

    fn build(config: &UsPrivacyConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let cookies = match &config.cookie {
            Some(c) => vec![c.0.clone()],
            None => DEFAULT_COOKIES.iter().map(|c| c.to_string()).collect(),
        };
        Box::new(UsPrivacyReader { id, cookies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(parse("1YYN"), Reading::OptOut(OPT_OUT_DENIES));
        assert_eq!(parse("1-Y-"), Reading::OptOut(OPT_OUT_DENIES));
        assert_eq!(parse("\"1YYY\""), Reading::OptOut(OPT_OUT_DENIES));
        assert_eq!(parse("1YNN"), Reading::OptOut(CategorySet::EMPTY));
        assert_eq!(parse("1NN-"), Reading::OptOut(CategorySet::EMPTY));
        assert_eq!(parse("1---"), Reading::NotRequired);
        for bad in [
            "",
            "1",
            "1YN",
            "1YNNN",
            "2YNN",
            "1ynn",
            "1YXN",
            "1 YN",
            "YNN1",
            "1Y\u{e9}N",
        ] {
            assert_eq!(parse(bad), Reading::Unreadable, "{bad:?}");
        }
    }
}
