//! Every consent format the proxy reads, in the default order of precedence, and the policy's
//! `consent:` section that configures them. A format is one file implementing [`Format`]; it is
//! added here with one line.

use super::format::{BuildCtx, ConsentReader, Format, FormatId};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::HashSet;

/// How several sources present on one request combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// The first source present, in the order of `sources`, decides.
    #[default]
    First,
    /// Every source present counts: a category is granted only if all of them grant it.
    Strictest,
    /// The source whose choice is the most recent decides; sources that keep no date count as
    /// older than any that do, and among those the order of `sources` decides.
    Newest,
}

impl Combine {
    pub fn as_str(self) -> &'static str {
        match self {
            Combine::First => "first",
            Combine::Strictest => "strictest",
            Combine::Newest => "newest",
        }
    }
}

/// The sources a policy reads, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub Vec<FormatId>);

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for name in names {
            let id = id(&name).ok_or_else(|| {
                de::Error::custom(format!(
                    "unknown consent source `{name}`: expected one of {}",
                    NAMES.join(", ")
                ))
            })?;
            if !seen.insert(id.name) {
                return Err(de::Error::custom(format!(
                    "`{name}` is listed twice in consent.sources"
                )));
            }
            ids.push(id);
        }
        Ok(Sources(ids))
    }
}

macro_rules! formats {
    ($( $field:ident => $ty:ty ),* $(,)?) => {
        /// The names of every format, in the default order of precedence.
        pub const NAMES: &[&str] = &[$(stringify!($field)),*];

        /// A format's names, if there is a format of that name.
        pub fn id(name: &str) -> Option<FormatId> {
            match name {
                $(stringify!($field) => Some(FormatId {
                    name: stringify!($field),
                    invalid: concat!(stringify!($field), "-invalid"),
                    expired: concat!(stringify!($field), "-expired"),
                }),)*
                _ => None,
            }
        }

        /// `consent:` — which sources are read and in which order, how they combine, and each
        /// format's settings.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ConsentSection {
            #[serde(default = "all_sources")]
            pub sources: Sources,
            #[serde(default)]
            pub combine: Combine,
            $(#[serde(default)] pub $field: <$ty as Format>::Config,)*
        }

        impl Default for ConsentSection {
            fn default() -> Self {
                ConsentSection {
                    sources: all_sources(),
                    combine: Combine::default(),
                    $($field: Default::default(),)*
                }
            }
        }

        fn build_one(id: FormatId, ctx: &BuildCtx<'_>) -> Option<Box<dyn ConsentReader>> {
            match id.name {
                $(stringify!($field) => Some(<$ty as Format>::build(&ctx.section.$field, ctx, id)),)*
                _ => None,
            }
        }
    };
}

formats! {
    native => super::native::Native,
    tcf => super::tcf::Tcf,
    gpp => super::gpp::Gpp,
    usprivacy => super::usprivacy::UsPrivacy,
    onetrust => super::cmp::onetrust::Onetrust,
    cookiebot => super::cmp::cookiebot::Cookiebot,
    cookieconsent => super::cmp::cookieconsent::Cookieconsent,
    klaro => super::cmp::klaro::Klaro,
    cookieyes => super::cmp::cookieyes::Cookieyes,
    complianz => super::cmp::complianz::Complianz,
    borlabs => super::cmp::borlabs::Borlabs,
}

fn all_sources() -> Sources {
    Sources(NAMES.iter().filter_map(|n| id(n)).collect())
}

/// The readers of the section's sources, in its order.
pub fn build(ctx: &BuildCtx<'_>) -> Vec<Box<dyn ConsentReader>> {
    ctx.section
        .sources
        .0
        .iter()
        .filter_map(|id| build_one(*id, ctx))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(NAMES[0], "native");
        let tcf = id("tcf").unwrap();
        assert_eq!(
            (tcf.name, tcf.invalid, tcf.expired),
            ("tcf", "tcf-invalid", "tcf-expired")
        );
        assert_eq!(id("nope"), None);
        for name in NAMES {
            assert_eq!(id(name).unwrap().name, *name);
        }
    }

    #[test]
    fn sources_are_checked() {
        let parse = |y: &str| serde_yaml::from_str::<ConsentSection>(y);
        let s = parse("sources: [tcf, native]\ncombine: newest\n").unwrap();
        assert_eq!(
            s.sources.0.iter().map(|i| i.name).collect::<Vec<_>>(),
            ["tcf", "native"]
        );
        assert_eq!(s.combine, Combine::Newest);
        let e = parse("sources: [tcf, tcf]\n").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = parse("sources: [tfc]\n").unwrap_err().to_string();
        assert!(e.contains("unknown consent source `tfc`"), "{e}");
        let e = parse("combine: loudest\n").unwrap_err().to_string();
        assert!(e.contains("first"), "{e}");
        let e = parse("tcf: { cookie: x, colour: red }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        assert_eq!(ConsentSection::default().sources.0.len(), NAMES.len());
    }
}
