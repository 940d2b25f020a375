//! The IAB Global Privacy Platform string (`__gpp` cookie, with `__gpp_sid` naming the sections
//! that apply): `header~section~section…`.
//!
//! Decoded as the IAB's own library (`@iabgpp/cmpapi` 3.2.0) encodes it, where it and the
//! specification differ:
//!
//! - base64url, six bits per character, no `=` padding; trailing bits are ignored;
//! - the header: type 6 bits (3), version 6 bits (1), then the section ids as a Fibonacci
//!   range;
//! - US sections (7–27): unsigned fields of the widths in [`SECTIONS`], most significant bit
//!   first, then an optional `.`-separated second segment (the GPC subsection, or for usin,
//!   usky and usri the sensitive-data consents);
//! - uspv1 (6): the four characters of a US Privacy string;
//! - tcfeuv2 (2): a TC string, read like the `euconsent-v2` cookie.
//!
//! What the sections deny:
//!
//! - `SaleOptOut`, `SharingOptOut`, `TargetedAdvertisingOptOut` of 1 (opted out) deny
//!   `marketing`; 0 (not applicable) and 2 (did not opt out) deny nothing. 3 is no value the
//!   specification gives; it is read as an opt-out.
//! - `KnownChildSensitiveDataConsents` with any entry 1 (no consent) or 3 denies `marketing`:
//!   targeted advertising to a known child needs that consent.
//! - `SensitiveDataProcessing` denies nothing by itself: it is per kind of data (health,
//!   precise location, …), and which data a tag takes is not known from the page; the
//!   advertising opt-outs above carry the decision about ad tags.
//! - The GPC subsection's `Gpc` bit counts like `Sec-GPC: 1`.
//! - The TCF section grants as the TCF cookie does (its purposes, its maximum age), less what
//!   the US sections deny.
//!
//! A string that cannot be decoded in full (bad characters, a wrong header, fewer sections
//! than the header names, a section cut short) is unreadable: it grants nothing.

use super::cmp::Reading;
use super::format::{
    BuildCtx, ConsentReader, CookieName, Format, FormatId, ReadCtx, Said, cookie_or, read_cookie,
};
use super::tcf::{PurposeMap, TcfConfig};
use crate::category::{Category, CategorySet};
use serde::Deserialize;

/// What an opt-out in a US section denies.
pub const OPT_OUT_DENIES: CategorySet = CategorySet::EMPTY.with(Category::Marketing);

/// The second segment a US section may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Second {
    None,
    /// `GpcSegmentType` 2 bits, `Gpc` 1 bit.
    Gpc,
    /// `SensitiveDataProcessing`, this many 2-bit entries, without a type field.
    Sensitive(u8),
}

/// One field of a US section: its name, its entries (0: a single value, not a list) and the
/// bits of each.
pub type Field = (&'static str, u8, u8);

/// One US section: its id, name, every field of its core segment in encoding order, and its
/// second segment.
pub struct SectionDef {
    pub id: u16,
    pub name: &'static str,
    pub fields: &'static [Field],
    pub second: Second,
}

/// A 2-bit field, or a list of `n` of them.
macro_rules! field {
    ($name:literal) => {
        ($name, 0, 2)
    };
    ($name:literal x $n:literal) => {
        ($name, $n, 2)
    };
}

/// The layout of the sections up to usmn: `Version` (6 bits), the section's own fields, then
/// the three MSPA fields.
macro_rules! state {
    ($($name:literal $(x $n:literal)?),* $(,)?) => {
        &[
            ("Version", 0, 6),
            $(field!($name $(x $n)?),)*
            ("MspaCoveredTransaction", 0, 2),
            ("MspaOptOutOptionMode", 0, 2),
            ("MspaServiceProviderMode", 0, 2),
        ]
    };
}

/// The layout most states share: a processing notice, opt-outs of sale and of targeted
/// advertising, `sdp` sensitive-data entries, the known-child consents (one value, or a list of
/// `kc`), and consent to additional processing.
macro_rules! processing_state {
    ($sdp:literal $(, $kc:literal)?) => {
        state![
            "ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SaleOptOut", "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x $sdp,
            "KnownChildSensitiveDataConsents" $(x $kc)?, "AdditionalDataProcessingConsent"
        ]
    };
}

/// The layout of the newest states (usmd onward): `MspaVersion` (6 bits) and the MSPA fields
/// first.
macro_rules! mspa_first {
    ($($name:literal),* $(,)?) => {
        &[
            ("MspaVersion", 0, 6),
            field!("MspaCoveredTransaction"),
            field!("MspaMode"),
            field!("ProcessingNotice"),
            field!("SaleOptOutNotice"),
            field!("TargetedAdvertisingOptOutNotice"),
            field!("SaleOptOut"),
            field!("TargetedAdvertisingOptOut"),
            $(field!($name),)*
            field!("AdditionalDataProcessingConsent"),
        ]
    };
}

const PROCESSING_8_KC3: &[Field] = processing_state!(8, 3);
const PROCESSING_8_KC1: &[Field] = processing_state!(8);
const MSPA_FIRST_KC: &[Field] = mspa_first!["KnownChildSensitiveDataConsents"];

/// Every US section the library knows, by id.
pub const SECTIONS: &[SectionDef] = &[
    SectionDef {
        id: 7,
        name: "usnat",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "SharingOptOutNotice",
            "TargetedAdvertisingOptOutNotice", "SensitiveDataProcessingOptOutNotice",
            "SensitiveDataLimitUseNotice", "SaleOptOut", "SharingOptOut",
            "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x 16,
            "KnownChildSensitiveDataConsents" x 3, "PersonalDataConsents",
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 8,
        name: "usca",
        fields: state![
            "SaleOptOutNotice", "SharingOptOutNotice", "SensitiveDataLimitUseNotice",
            "SaleOptOut", "SharingOptOut", "SensitiveDataProcessing" x 9,
            "KnownChildSensitiveDataConsents" x 2, "PersonalDataConsents",
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 9,
        name: "usva",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SaleOptOut", "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x 8,
            "KnownChildSensitiveDataConsents",
        ],
        second: Second::None,
    },
    SectionDef {
        id: 10,
        name: "usco",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SaleOptOut", "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x 7,
            "KnownChildSensitiveDataConsents",
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 11,
        name: "usut",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SensitiveDataProcessingOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut",
            "SensitiveDataProcessing" x 8, "KnownChildSensitiveDataConsents",
        ],
        second: Second::None,
    },
    SectionDef {
        id: 12,
        name: "usct",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SaleOptOut", "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x 8,
            "KnownChildSensitiveDataConsents" x 3,
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 13,
        name: "usfl",
        fields: PROCESSING_8_KC3,
        second: Second::None,
    },
    SectionDef {
        id: 14,
        name: "usmt",
        fields: state![
            "SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SaleOptOut", "TargetedAdvertisingOptOut", "SensitiveDataProcessing" x 8,
            "KnownChildSensitiveDataConsents" x 3, "AdditionalDataProcessingConsent",
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 15,
        name: "usor",
        fields: processing_state!(11, 3),
        second: Second::Gpc,
    },
    SectionDef {
        id: 16,
        name: "ustx",
        fields: PROCESSING_8_KC1,
        second: Second::Gpc,
    },
    SectionDef {
        id: 17,
        name: "usde",
        fields: processing_state!(9, 5),
        second: Second::Gpc,
    },
    SectionDef {
        id: 18,
        name: "usia",
        fields: state![
            "ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SensitiveDataOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut",
            "SensitiveDataProcessing" x 8, "KnownChildSensitiveDataConsents",
        ],
        second: Second::Gpc,
    },
    SectionDef {
        id: 19,
        name: "usne",
        fields: PROCESSING_8_KC1,
        second: Second::Gpc,
    },
    SectionDef {
        id: 20,
        name: "usnh",
        fields: PROCESSING_8_KC3,
        second: Second::Gpc,
    },
    SectionDef {
        id: 21,
        name: "usnj",
        fields: processing_state!(10, 5),
        second: Second::Gpc,
    },
    SectionDef {
        id: 22,
        name: "ustn",
        fields: PROCESSING_8_KC1,
        second: Second::Gpc,
    },
    SectionDef {
        id: 23,
        name: "usmn",
        fields: PROCESSING_8_KC1,
        second: Second::Gpc,
    },
    SectionDef {
        id: 24,
        name: "usmd",
        fields: mspa_first![],
        second: Second::Gpc,
    },
    SectionDef {
        id: 25,
        name: "usin",
        fields: MSPA_FIRST_KC,
        second: Second::Sensitive(8),
    },
    SectionDef {
        id: 26,
        name: "usky",
        fields: MSPA_FIRST_KC,
        second: Second::Sensitive(8),
    },
    SectionDef {
        id: 27,
        name: "usri",
        fields: MSPA_FIRST_KC,
        second: Second::Sensitive(8),
    },
];

/// The entries a field has in a section of this version: usnat version 1 had 12 sensitive-data
/// and 2 known-child entries.
pub fn entries(def: &SectionDef, version: u64, (name, entries, _): Field) -> u8 {
    match (def.name, version, name) {
        ("usnat", 1, "SensitiveDataProcessing") => 12,
        ("usnat", 1, "KnownChildSensitiveDataConsents") => 2,
        _ => entries,
    }
}

/// The TCF EU v2 section's id, and the US Privacy section's.
pub const TCFEUV2: u16 = 2;
pub const USPV1: u16 = 6;

/// One decoded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(u64),
    List(Vec<u64>),
    Bool(bool),
}

/// Why a GPP string could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GppError(pub String);

/// Bits of a base64url text, most significant first.
pub struct Bits {
    bits: Vec<bool>,
    at: usize,
}

impl Bits {
    pub fn new(text: &str) -> Result<Bits, GppError> {
        let mut bits = Vec::with_capacity(text.len() * 6);
        for c in text.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return Err(GppError(format!("`{}` is not base64url", c as char))),
            };
            bits.extend((0..6).rev().map(|i| v >> i & 1 == 1));
        }
        Ok(Bits { bits, at: 0 })
    }

    pub fn int(&mut self, width: u8) -> Result<u64, GppError> {
        let end = self.at + width as usize;
        let slice = self
            .bits
            .get(self.at..end)
            .ok_or_else(|| GppError("cut short".into()))?;
        self.at = end;
        Ok(slice.iter().fold(0, |acc, b| acc << 1 | u64::from(*b)))
    }

    /// A Fibonacci-coded integer: one bit per term 1, 2, 3, 5, … ending in `11`.
    fn fibonacci(&mut self) -> Result<u64, GppError> {
        let (mut a, mut b) = (1u64, 2u64);
        let mut value = 0u64;
        let mut last = false;
        loop {
            let bit = self.int(1)? == 1;
            if bit && last {
                return Ok(value);
            }
            if bit {
                value = value
                    .checked_add(a)
                    .ok_or_else(|| GppError("a section id out of range".into()))?;
            }
            last = bit;
            (a, b) = (b, a.saturating_add(b));
            if a > 1 << 20 {
                return Err(GppError("a section id out of range".into()));
            }
        }
    }
}

/// The header's section ids.
pub fn header(text: &str) -> Result<Vec<u16>, GppError> {
    let mut bits = Bits::new(text)?;
    let (kind, version) = (bits.int(6)?, bits.int(6)?);
    if kind != 3 || version != 1 {
        return Err(GppError(format!(
            "header of type {kind}, version {version}: only type 3, version 1 is known"
        )));
    }
    let groups = bits.int(12)?;
    let mut ids = Vec::new();
    let mut prev = 0u64;
    for _ in 0..groups {
        let range = bits.int(1)? == 1;
        let start = prev + bits.fibonacci()?;
        let end = if range {
            start + bits.fibonacci()?
        } else {
            start
        };
        if end > 1000 {
            return Err(GppError("a section id out of range".into()));
        }
        ids.extend((start..=end).map(|i| i as u16));
        prev = end;
    }
    Ok(ids)
}

/// Decodes one US section: every field by name, in encoding order, and whether the second
/// segment was there (`GpcSegmentIncluded` / `SensitiveDataConsentSegmentIncluded`).
pub fn decode_us(def: &SectionDef, text: &str) -> Result<Vec<(&'static str, Value)>, GppError> {
    let mut segments = text.split('.');
    let mut core = Bits::new(segments.next().unwrap_or(""))?;
    let mut out = Vec::with_capacity(def.fields.len() + 3);
    let Some((&(version_name, _, version_bits), rest)) = def.fields.split_first() else {
        return Err(GppError(format!("{}: no fields", def.name)));
    };
    let version = core.int(version_bits)?;
    out.push((version_name, Value::Int(version)));
    for &field @ (name, _, width) in rest {
        let value = match entries(def, version, field) {
            0 => Value::Int(core.int(width)?),
            n => Value::List((0..n).map(|_| core.int(width)).collect::<Result<_, _>>()?),
        };
        out.push((name, value));
    }
    let second = segments.next();
    if segments.next().is_some() {
        return Err(GppError(format!("{}: more than two segments", def.name)));
    }
    match (def.second, second) {
        (Second::None, Some(_)) => {
            return Err(GppError(format!("{} has no second segment", def.name)));
        }
        (Second::None, None) => {}
        (Second::Gpc, segment) => {
            let (kind, gpc) = match segment {
                Some(s) => {
                    let mut bits = Bits::new(s)?;
                    (bits.int(2)?, bits.int(1)? == 1)
                }
                None => (1, false),
            };
            out.push(("GpcSegmentType", Value::Int(kind)));
            out.push(("Gpc", Value::Bool(gpc)));
            out.push(("GpcSegmentIncluded", Value::Bool(segment.is_some())));
        }
        (Second::Sensitive(n), segment) => {
            let list = match segment {
                Some(s) => {
                    let mut bits = Bits::new(s)?;
                    (0..n).map(|_| bits.int(2)).collect::<Result<_, _>>()?
                }
                None => vec![0; n as usize],
            };
            out.push(("SensitiveDataProcessing", Value::List(list)));
            out.push((
                "SensitiveDataConsentSegmentIncluded",
                Value::Bool(segment.is_some()),
            ));
        }
    }
    Ok(out)
}

/// What one decoded US section denies, and whether it carries a GPC signal.
pub fn us_denies(fields: &[(&str, Value)]) -> (CategorySet, bool) {
    let mut denied = CategorySet::EMPTY;
    let mut gpc = false;
    for (name, value) in fields {
        match (*name, value) {
            ("SaleOptOut" | "SharingOptOut" | "TargetedAdvertisingOptOut", Value::Int(v))
                if *v == 1 || *v == 3 =>
            {
                denied = denied.union(OPT_OUT_DENIES);
            }
            ("KnownChildSensitiveDataConsents", Value::Int(v)) if *v == 1 || *v == 3 => {
                denied = denied.union(OPT_OUT_DENIES);
            }
            ("KnownChildSensitiveDataConsents", Value::List(l))
                if l.iter().any(|v| *v == 1 || *v == 3) =>
            {
                denied = denied.union(OPT_OUT_DENIES);
            }
            ("Gpc", Value::Bool(true)) => gpc = true,
            _ => {}
        }
    }
    (denied, gpc)
}

/// A GPP string split into its sections, by id, in the header's order.
pub fn sections(value: &str) -> Result<Vec<(u16, &str)>, GppError> {
    let mut parts = value.split('~');
    let ids = header(parts.next().unwrap_or(""))?;
    let bodies: Vec<&str> = parts.collect();
    if bodies.len() != ids.len() {
        return Err(GppError(format!(
            "the header names {} sections, the string has {}",
            ids.len(),
            bodies.len()
        )));
    }
    Ok(ids.into_iter().zip(bodies).collect())
}

/// The applicable sections a `__gpp_sid` value names (`7`, `2,7`, `2_7`); `-1` and `0` name
/// none.
pub fn applicable(sid: &str) -> Result<Vec<u16>, GppError> {
    let sid = super::cmp::prepare(sid).ok_or_else(|| GppError("too long".into()))?;
    let decoded = super::cmp::percent_decode(sid).ok_or_else(|| GppError("bad escape".into()))?;
    decoded
        .split([',', '_'])
        .map(str::trim)
        .filter(|s| *s != "-1" && *s != "0")
        .map(|s| {
            s.parse::<u16>()
                .map_err(|_| GppError(format!("`{s}` is not a section id")))
        })
        .collect()
}

/// What a GPP string says, reading only the sections in `only` when given.
pub fn read(value: &str, only: Option<&[u16]>, tcf: &TcfReading<'_>, now: u64) -> Said {
    let Some(value) = super::cmp::prepare(value) else {
        return Said::new(Reading::Unreadable);
    };
    let Ok(sections) = sections(value) else {
        return Said::new(Reading::Unreadable);
    };
    let mut denied = CategorySet::EMPTY;
    let mut gpc = false;
    let mut tcf_said = None;
    let mut spoke = false;
    for (id, body) in sections {
        if only.is_some_and(|o| !o.contains(&id)) {
            continue;
        }
        if id == TCFEUV2 {
            tcf_said = Some(tcf.config.said(tcf.purposes, body, now));
            spoke = true;
        } else if id == USPV1 {
            match super::usprivacy::parse(body) {
                Reading::OptOut(d) => {
                    denied = denied.union(d);
                    spoke = true;
                }
                Reading::NotRequired => {}
                _ => return Said::new(Reading::Unreadable),
            }
        } else if let Some(def) = SECTIONS.iter().find(|d| d.id == id) {
            let Ok(fields) = decode_us(def, body) else {
                return Said::new(Reading::Unreadable);
            };
            let (d, g) = us_denies(&fields);
            denied = denied.union(d);
            gpc |= g;
            spoke = true;
        }
        // Other sections (TCF Canada, sections yet to come) say nothing here.
    }
    let mut said = match tcf_said {
        Some(mut s) => {
            if let Reading::Granted(set) = s.reading {
                s.reading = Reading::Granted(set.difference(denied).union(CategorySet::NECESSARY));
            }
            s
        }
        None if spoke => Said::new(Reading::OptOut(denied)),
        None => Said::new(Reading::NotRequired),
    };
    said.gpc = gpc;
    said
}

/// The TCF settings a GPP string's TCF section is read with.
pub struct TcfReading<'a> {
    pub config: &'a TcfConfig,
    pub purposes: &'a PurposeMap,
}

/// The GPP cookies as a consent format.
pub struct Gpp;

/// `consent.gpp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GppConfig {
    pub cookie: Option<CookieName>,
    /// The cookie naming the applicable sections.
    pub sid_cookie: Option<CookieName>,
}

#[derive(Debug)]
struct GppReader {
    id: FormatId,
    cookie: String,
    sid_cookie: String,
    tcf: TcfConfig,
    purposes: PurposeMap,
}

impl ConsentReader for GppReader {
    fn id(&self) -> FormatId {
        self.id
    }

    fn cookie_names(&self) -> Vec<&str> {
        vec![&self.cookie, &self.sid_cookie]
    }

    fn read(&self, cookies: &[(&str, &str)], ctx: &ReadCtx) -> Option<Said> {
        // Without a string, the section list alone says nothing.
        if !cookies.iter().any(|(n, _)| *n == self.cookie) {
            return None;
        }
        let sids: Vec<&str> = cookies
            .iter()
            .filter(|(n, _)| *n == self.sid_cookie)
            .map(|(_, v)| *v)
            .collect();
        let only = match sids.as_slice() {
            [] => None,
            [one] => match applicable(one) {
                Ok(ids) => Some(ids),
                Err(_) => return Some(Said::new(Reading::Unreadable)),
            },
            // Several, disagreeing or not: which sections apply is unclear.
            _ => return Some(Said::new(Reading::Unreadable)),
        };
        let tcf = TcfReading {
            config: &self.tcf,
            purposes: &self.purposes,
        };
        read_cookie(cookies, &self.cookie, |v| {
            read(v, only.as_deref(), &tcf, ctx.now)
        })
    }
}

impl Format for Gpp {
    type Config = GppConfig;

    fn build(config: &GppConfig, ctx: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let tcf = ctx.section.tcf.clone();
        Box::new(GppReader {
            id,
            cookie: cookie_or(&config.cookie, "__gpp"),
            sid_cookie: cookie_or(&config.sid_cookie, "__gpp_sid"),
            purposes: tcf.purposes.clone().unwrap_or_default(),
            tcf,
        })
    }
}
