//! IAB Transparency and Consent Framework v2 (TCF 2.0 to 2.3) consent strings, as a CMP stores
//! them in the `euconsent-v2` cookie: the core segment decoded field by field, the optional
//! disclosed-vendors, allowed-vendors and publisher segments, and the mapping from TCF purposes
//! to the proxy's categories.
//!
//! A string is base64url segments joined by `.`; the core segment comes first. `=` padding and
//! unknown segments are tolerated. Version 1 strings and anything malformed are errors, which
//! grant nothing.

use super::cmp::Reading;
use super::format::{
    BuildCtx, ConsentReader, CookieName, Format, FormatId, OneCookie, ReadCtx, Said,
    THIRTEEN_MONTHS, cookie_or,
};
use crate::category::{Category, CategorySet};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// The longest string decoded; real ones are a few hundred characters.
pub const MAX_LEN: usize = 16 * 1024;

/// Why a string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcfError {
    Empty,
    TooLong,
    Base64,
    /// The string ends before a field it must hold.
    Truncated,
    /// TCF v1 (or another version): only v2 strings are read.
    Version(u8),
    /// A vendor range whose end precedes its start, or a vendor id 0.
    BadRange,
}

impl fmt::Display for TcfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcfError::Empty => write!(f, "empty TC string"),
            TcfError::TooLong => write!(f, "TC string longer than {MAX_LEN} characters"),
            TcfError::Base64 => write!(f, "TC string is not base64url"),
            TcfError::Truncated => write!(f, "TC string ends inside a field"),
            TcfError::Version(v) => write!(f, "TC string version {v}, only version 2 is read"),
            TcfError::BadRange => write!(f, "TC string holds an invalid vendor range"),
        }
    }
}

impl std::error::Error for TcfError {}

/// A set of vendor ids, as ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vendors(Vec<RangeInclusive<u16>>);

impl Vendors {
    pub fn contains(&self, id: u16) -> bool {
        self.0.iter().any(|r| r.contains(&id))
    }

    /// Every id, in ascending order (for tests and diagnostics; ranges are expanded).
    pub fn ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self.0.iter().flat_map(|r| r.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The publisher segment (type 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publisher {
    /// Bit `i - 1` is purpose `i`.
    pub purposes_consent: u32,
    pub purposes_li_transparency: u32,
}

/// A decoded TC string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcString {
    pub version: u8,
    /// Deciseconds since the Unix epoch.
    pub created: u64,
    pub last_updated: u64,
    pub cmp_id: u16,
    pub cmp_version: u16,
    pub consent_screen: u8,
    /// Two upper-case letters, e.g. `EN`.
    pub consent_language: String,
    pub vendor_list_version: u16,
    pub tcf_policy_version: u8,
    pub is_service_specific: bool,
    pub use_non_standard_texts: bool,
    /// Bit `i - 1` is special feature `i` (1..=12).
    pub special_feature_opt_ins: u16,
    /// Bit `i - 1` is purpose `i` (1..=24).
    pub purposes_consent: u32,
    pub purposes_li_transparency: u32,
    pub purpose_one_treatment: bool,
    /// Two upper-case letters, e.g. `DE`; `AA` when unknown.
    pub publisher_cc: String,
    pub vendor_consents: Vendors,
    pub vendor_legitimate_interests: Vendors,
    pub disclosed_vendors: Option<Vendors>,
    pub allowed_vendors: Option<Vendors>,
    pub publisher: Option<Publisher>,
}

/// The numbers of the set bits of a purpose or feature field, from 1.
pub fn numbers(bits: u32) -> Vec<u8> {
    (0..32u8)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| i + 1)
        .collect()
}

impl TcString {
    pub fn purposes_consented(&self) -> Vec<u8> {
        numbers(self.purposes_consent)
    }
}

/// Reads bits most significant first.
struct Bits<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u64, TcfError> {
        debug_assert!(n <= 64);
        if self.pos + n > self.bytes.len() * 8 {
            return Err(TcfError::Truncated);
        }
        let mut v = 0u64;
        for _ in 0..n {
            let bit = (self.bytes[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    fn bool(&mut self) -> Result<bool, TcfError> {
        Ok(self.read(1)? == 1)
    }

    fn u8(&mut self, n: usize) -> Result<u8, TcfError> {
        Ok(self.read(n)? as u8)
    }

    fn u16(&mut self, n: usize) -> Result<u16, TcfError> {
        Ok(self.read(n)? as u16)
    }

    /// Two 6-bit letters (`A` = 0).
    fn letters(&mut self) -> Result<String, TcfError> {
        let a = self.u8(6)?;
        let b = self.u8(6)?;
        Ok([a, b]
            .iter()
            .map(|&c| char::from(b'A' + c.min(25)))
            .collect())
    }

    /// A field of `n` flags, first flag = bit 0 of the result (purpose 1, feature 1).
    fn flags(&mut self, n: usize) -> Result<u32, TcfError> {
        let mut v = 0u32;
        for i in 0..n {
            if self.bool()? {
                v |= 1 << i;
            }
        }
        Ok(v)
    }

    /// A vendor section: MaxVendorId, then a bitfield or a list of ranges.
    fn vendors(&mut self) -> Result<Vendors, TcfError> {
        let max = self.u16(16)?;
        if self.bool()? {
            self.ranges()
        } else {
            let mut ranges: Vec<RangeInclusive<u16>> = Vec::new();
            for id in 1..=max {
                if self.bool()? {
                    match ranges.last_mut() {
                        Some(r) if *r.end() + 1 == id => *r = *r.start()..=id,
                        _ => ranges.push(id..=id),
                    }
                }
            }
            Ok(Vendors(ranges))
        }
    }

    /// NumEntries, then each entry: a single id or a range.
    fn ranges(&mut self) -> Result<Vendors, TcfError> {
        let entries = self.u16(12)?;
        let mut ranges = Vec::with_capacity(usize::from(entries).min(self.bytes.len()));
        for _ in 0..entries {
            let is_range = self.bool()?;
            let start = self.u16(16)?;
            let end = if is_range { self.u16(16)? } else { start };
            if start == 0 || end < start {
                return Err(TcfError::BadRange);
            }
            ranges.push(start..=end);
        }
        Ok(Vendors(ranges))
    }
}

const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn segment_bytes(segment: &str) -> Result<Vec<u8>, TcfError> {
    BASE64URL
        .decode(segment.trim_end_matches('='))
        .map_err(|_| TcfError::Base64)
}

/// `tc` with its `Created` and `LastUpdated` fields (36 bits each, from bit 6 of the core
/// segment) set to `deciseconds` since the epoch; every other bit, and the other segments, as
/// they were. `None` when the core segment is not base64url or too short to hold them.
pub fn with_dates(tc: &str, deciseconds: u64) -> Option<String> {
    let (core, rest) = match tc.split_once('.') {
        Some((core, rest)) => (core, Some(rest)),
        None => (tc, None),
    };
    let mut bytes = segment_bytes(core).ok()?;
    if bytes.len() * 8 < 78 {
        return None;
    }
    for field in [6, 42] {
        for i in 0..36 {
            let bit = field + i;
            let mask = 0x80u8 >> (bit % 8);
            if deciseconds >> (35 - i) & 1 == 1 {
                bytes[bit / 8] |= mask;
            } else {
                bytes[bit / 8] &= !mask;
            }
        }
    }
    let core = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Some(match rest {
        Some(rest) => format!("{core}.{rest}"),
        None => core,
    })
}

/// Decodes a TC string.
pub fn decode(s: &str) -> Result<TcString, TcfError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TcfError::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(TcfError::TooLong);
    }
    let mut segments = s.split('.');
    let core = segment_bytes(segments.next().unwrap_or(""))?;
    let mut b = Bits {
        bytes: &core,
        pos: 0,
    };
    let version = b.u8(6)?;
    if version != 2 {
        return Err(TcfError::Version(version));
    }
    let mut tc = TcString {
        version,
        created: b.read(36)?,
        last_updated: b.read(36)?,
        cmp_id: b.u16(12)?,
        cmp_version: b.u16(12)?,
        consent_screen: b.u8(6)?,
        consent_language: b.letters()?,
        vendor_list_version: b.u16(12)?,
        tcf_policy_version: b.u8(6)?,
        is_service_specific: b.bool()?,
        use_non_standard_texts: b.bool()?,
        special_feature_opt_ins: b.flags(12)? as u16,
        purposes_consent: b.flags(24)?,
        purposes_li_transparency: b.flags(24)?,
        purpose_one_treatment: b.bool()?,
        publisher_cc: b.letters()?,
        ..TcString::default()
    };
    tc.vendor_consents = b.vendors()?;
    tc.vendor_legitimate_interests = b.vendors()?;
    // Publisher restrictions follow; they narrow vendors, not purposes, and are not read.

    for segment in segments {
        if segment.is_empty() {
            continue;
        }
        let bytes = segment_bytes(segment)?;
        let mut b = Bits {
            bytes: &bytes,
            pos: 0,
        };
        match b.u8(3)? {
            1 => tc.disclosed_vendors = Some(b.vendors()?),
            2 => tc.allowed_vendors = Some(b.vendors()?),
            3 => {
                tc.publisher = Some(Publisher {
                    purposes_consent: b.flags(24)?,
                    purposes_li_transparency: b.flags(24)?,
                })
            }
            _ => {} // unknown segment types are skipped
        }
    }
    Ok(tc)
}

/// Which TCF purposes (with consent, not legitimate interest) each category needs: all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeMap {
    requires: Vec<(Category, u32)>,
}

impl PurposeMap {
    /// `(category, purposes)` pairs; purposes are numbered from 1 to 24.
    pub fn new(pairs: impl IntoIterator<Item = (Category, Vec<u8>)>) -> Result<PurposeMap, String> {
        let mut requires = Vec::new();
        for (category, purposes) in pairs {
            if category == Category::Necessary {
                return Err("`necessary` is always granted and takes no TCF purposes".into());
            }
            if purposes.is_empty() {
                return Err(format!(
                    "`{}` needs at least one TCF purpose",
                    category.as_str()
                ));
            }
            let mut mask = 0u32;
            for p in purposes {
                if !(1..=24).contains(&p) {
                    return Err(format!("TCF purpose {p} does not exist (1 to 24)"));
                }
                mask |= 1 << (p - 1);
            }
            requires.push((category, mask));
        }
        Ok(PurposeMap { requires })
    }

    /// The categories a string grants: those whose purposes are all consented.
    pub fn grant(&self, tc: &TcString) -> CategorySet {
        self.requires
            .iter()
            .filter(|(_, mask)| tc.purposes_consent & mask == *mask)
            .fold(CategorySet::NECESSARY, |set, (c, _)| set.with(*c))
    }
}

impl Default for PurposeMap {
    /// Storage (purpose 1) for everything; analytics adds the measurement purposes 8 (content
    /// performance) and 9 (audience statistics); marketing adds the advertising purposes 2, 3
    /// and 4 (select ads, create and use ad profiles) and 7 (ad performance).
    fn default() -> Self {
        PurposeMap::new([
            (Category::Preferences, vec![1]),
            (Category::Analytics, vec![1, 8, 9]),
            (Category::Marketing, vec![1, 2, 3, 4, 7]),
        ])
        .expect("valid default purpose map")
    }
}

/// The IAB TCF v2 cookie (`euconsent-v2`) as a consent format.
pub struct Tcf;

/// `consent.tcf`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcfConfig {
    pub cookie: Option<CookieName>,
    /// Which purposes each category needs; replaces the default map.
    #[serde(default, deserialize_with = "purposes")]
    pub purposes: Option<PurposeMap>,
    /// A string last updated longer ago than this grants nothing (`tcf-expired`).
    #[serde(default = "thirteen_months", with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for TcfConfig {
    fn default() -> Self {
        TcfConfig {
            cookie: None,
            purposes: None,
            max_age: THIRTEEN_MONTHS,
        }
    }
}

fn thirteen_months() -> Duration {
    THIRTEEN_MONTHS
}

/// A purpose map as written: `{ analytics: [1, 8, 9], … }`.
fn purposes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PurposeMap>, D::Error> {
    let raw = HashMap::<Category, Vec<u8>>::deserialize(d)?;
    let mut pairs: Vec<(Category, Vec<u8>)> = raw.into_iter().collect();
    pairs.sort_by_key(|(c, _)| *c);
    PurposeMap::new(pairs).map(Some).map_err(de::Error::custom)
}

impl TcfConfig {
    /// What a TC string says under these settings, at `now` (Unix seconds).
    pub fn said(&self, purposes: &PurposeMap, value: &str, now: u64) -> Said {
        match super::cmp::prepare(value).map(decode) {
            Some(Ok(tc)) => Said::dated(
                Reading::Granted(purposes.grant(&tc)),
                tc.last_updated / 10,
                now,
                Some(self.max_age),
            ),
            _ => Said::new(Reading::Unreadable),
        }
    }
}

impl Format for Tcf {
    type Config = TcfConfig;

    fn build(config: &TcfConfig, _: &BuildCtx<'_>, id: FormatId) -> Box<dyn ConsentReader> {
        let config = config.clone();
        let purposes = config.purposes.clone().unwrap_or_default();
        Box::new(OneCookie {
            id,
            cookie: cookie_or(&config.cookie, "euconsent-v2"),
            companions: &["addtl_consent"],
            parse: move |v: &str, rc: &ReadCtx| config.said(&purposes, v, rc.now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Vector {
        tc: String,
        comment: Option<String>,
        version: Option<u8>,
        cmp_id: Option<u16>,
        vendor_list_version: Option<u16>,
        tcf_policy_version: Option<u8>,
        consent_language: Option<String>,
        publisher_cc: Option<String>,
        purpose_one_treatment: Option<bool>,
        special_feature_opt_ins: Option<Vec<u8>>,
        purposes_consent: Option<Vec<u8>>,
        purposes_li_transparency: Option<Vec<u8>>,
        vendor_consents: Option<Vec<u16>>,
        vendor_legitimate_interests: Option<Vec<u16>>,
        disclosed_vendors: Option<Vec<u16>>,
        allowed_vendors: Option<Vec<u16>>,
        publisher_purposes_consent: Option<Vec<u8>>,
    }

    const VECTORS: &str = include_str!("../../tests/fixtures/tcf-test-vectors.yaml");

    #[test]
    fn decodes_the_published_test_vectors() {
        let v: Vectors = serde_yaml::from_str(VECTORS).unwrap();
        assert!(v.vectors.len() >= 4);
        for v in v.vectors {
            let tc = decode(&v.tc).unwrap_or_else(|e| panic!("{}: {e}", v.tc));
            let ctx = format!("{} {}", v.tc, v.comment.as_deref().unwrap_or(""));
            if let Some(x) = v.version {
                assert_eq!(tc.version, x, "{ctx}");
            }
            if let Some(x) = v.cmp_id {
                assert_eq!(tc.cmp_id, x, "{ctx}");
            }
            if let Some(x) = v.vendor_list_version {
                assert_eq!(tc.vendor_list_version, x, "{ctx}");
            }
            if let Some(x) = v.tcf_policy_version {
                assert_eq!(tc.tcf_policy_version, x, "{ctx}");
            }
            if let Some(x) = &v.consent_language {
                assert_eq!(&tc.consent_language, x, "{ctx}");
            }
            if let Some(x) = &v.publisher_cc {
                assert_eq!(&tc.publisher_cc, x, "{ctx}");
            }
            if let Some(x) = v.purpose_one_treatment {
                assert_eq!(tc.purpose_one_treatment, x, "{ctx}");
            }
            if let Some(x) = &v.special_feature_opt_ins {
                assert_eq!(&numbers(u32::from(tc.special_feature_opt_ins)), x, "{ctx}");
            }
            if let Some(x) = &v.purposes_consent {
                assert_eq!(&tc.purposes_consented(), x, "{ctx}");
            }
            if let Some(x) = &v.purposes_li_transparency {
                assert_eq!(&numbers(tc.purposes_li_transparency), x, "{ctx}");
            }
            if let Some(x) = &v.vendor_consents {
                assert_eq!(&tc.vendor_consents.ids(), x, "{ctx}");
            }
            if let Some(x) = &v.vendor_legitimate_interests {
                assert_eq!(&tc.vendor_legitimate_interests.ids(), x, "{ctx}");
            }
            if let Some(x) = &v.disclosed_vendors {
                assert_eq!(&tc.disclosed_vendors.as_ref().unwrap().ids(), x, "{ctx}");
            }
            if let Some(x) = &v.allowed_vendors {
                assert_eq!(&tc.allowed_vendors.as_ref().unwrap().ids(), x, "{ctx}");
            }
            if let Some(x) = &v.publisher_purposes_consent {
                assert_eq!(
                    &numbers(tc.publisher.as_ref().unwrap().purposes_consent),
                    x,
                    "{ctx}"
                );
            }
        }
    }

    /// Builds a core segment from fields, for edge cases the published vectors do not cover.
    struct Writer(Vec<bool>);

    impl Writer {
        fn put(&mut self, v: u64, n: usize) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
            self
        }
        fn flags(&mut self, set: &[u8], n: usize) -> &mut Self {
            for i in 1..=n {
                self.0.push(set.contains(&(i as u8)));
            }
            self
        }
        fn encode(&self) -> String {
            let mut bytes = vec![0u8; self.0.len().div_ceil(8)];
            for (i, &bit) in self.0.iter().enumerate() {
                if bit {
                    bytes[i / 8] |= 1 << (7 - i % 8);
                }
            }
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        }
    }

    /// A core segment with these purposes consented and vendor consents as given.
    fn core(purposes: &[u8], vendors: impl FnOnce(&mut Writer)) -> String {
        let mut w = Writer(Vec::new());
        w.put(2, 6) // version
            .put(17_000_000_000, 36)
            .put(17_000_000_000, 36)
            .put(300, 12) // cmp id
            .put(1, 12)
            .put(1, 6)
            .put(4, 6) // E
            .put(13, 6) // N
            .put(150, 12)
            .put(5, 6) // TCF 2.3
            .put(1, 1)
            .put(0, 1)
            .flags(&[], 12)
            .flags(purposes, 24)
            .flags(&[2, 7], 24)
            .put(0, 1)
            .put(3, 6) // D
            .put(4, 6); // E
        vendors(&mut w);
        w.put(0, 16).put(0, 1); // no legitimate-interest vendors (bitfield of 0)
        w.put(0, 12); // no publisher restrictions
        w.encode()
    }

    #[test]
    fn range_and_bitfield_vendor_encodings() {
        let ranged = core(&[1], |w| {
            w.put(800, 16).put(1, 1).put(2, 12);
            w.put(0, 1).put(755, 16); // single
            w.put(1, 1).put(10, 16).put(12, 16); // range
        });
        let tc = decode(&ranged).unwrap();
        assert_eq!(tc.vendor_consents.ids(), vec![10, 11, 12, 755]);
        assert_eq!(tc.tcf_policy_version, 5);
        assert_eq!(tc.publisher_cc, "DE");
        assert_eq!(tc.consent_language, "EN");
        assert!(tc.is_service_specific);
        let bitfield = core(&[1], |w| {
            w.put(6, 16).put(0, 1).flags(&[2, 3, 6], 6);
        });
        assert_eq!(
            decode(&bitfield).unwrap().vendor_consents.ids(),
            vec![2, 3, 6]
        );
        // A range that ends before it starts.
        let bad = core(&[1], |w| {
            w.put(20, 16)
                .put(1, 1)
                .put(1, 12)
                .put(1, 1)
                .put(12, 16)
                .put(10, 16);
        });
        assert_eq!(decode(&bad), Err(TcfError::BadRange));
    }

    #[test]
    fn padding_and_extra_segments_are_tolerated() {
        let s = core(&[1, 8, 9], |w| {
            w.put(0, 16).put(0, 1);
        });
        let base = decode(&s).unwrap();
        assert_eq!(decode(&format!("{s}==")).unwrap(), base);
        assert_eq!(decode(&format!("{s}.")).unwrap(), base);
        // A segment of an unknown type (7) is skipped.
        assert_eq!(decode(&format!("{s}.4A")).unwrap(), base);
    }

    #[test]
    fn default_map_needs_storage_and_the_purposes_of_each_category() {
        let map = PurposeMap::default();
        let grant = |purposes: &[u8]| {
            map.grant(
                &decode(&core(purposes, |w| {
                    w.put(0, 16).put(0, 1);
                }))
                .unwrap(),
            )
        };
        let set = |cs: &[Category]| cs.iter().fold(CategorySet::NECESSARY, |s, c| s.with(*c));
        assert_eq!(grant(&[]), set(&[]));
        // Without purpose 1 nothing may be stored, whatever else is consented.
        assert_eq!(grant(&[2, 3, 4, 7, 8, 9, 10]), set(&[]));
        assert_eq!(grant(&[1]), set(&[Preferences]));
        assert_eq!(grant(&[1, 8, 9]), set(&[Preferences, Analytics]));
        assert_eq!(grant(&[1, 8]), set(&[Preferences]));
        assert_eq!(grant(&[1, 2, 3, 4, 7]), set(&[Preferences, Marketing]));
        assert_eq!(grant(&(1..=11).collect::<Vec<_>>()), CategorySet::ALL);
        // The first published vector consents to 2 and 10 only: nothing.
        assert_eq!(
            map.grant(&decode("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA").unwrap()),
            set(&[])
        );
    }

    #[test]
    fn purpose_maps_are_validated() {
        assert!(PurposeMap::new([(Necessary, vec![1])]).is_err());
        assert!(PurposeMap::new([(Analytics, vec![])]).is_err());
        assert!(PurposeMap::new([(Analytics, vec![0])]).is_err());
        assert!(PurposeMap::new([(Analytics, vec![25])]).is_err());
        assert!(PurposeMap::new([(Analytics, vec![1, 24])]).is_ok());
    }

    #[test]
    fn version_1_empty_and_malformed_strings_are_errors() {
        // A TCF v1.1 string (BO… encodes version 1).
        assert_eq!(
            decode("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"),
            Err(TcfError::Version(1))
        );
        assert_eq!(decode(""), Err(TcfError::Empty));
        assert_eq!(decode("   "), Err(TcfError::Empty));
        assert_eq!(decode("C"), Err(TcfError::Base64));
        assert_eq!(decode("CO"), Err(TcfError::Truncated));
        assert_eq!(decode("COtybn4PA_zT4KjA"), Err(TcfError::Truncated));
        assert_eq!(decode("COtybn4PA_zT4K+ACBEN"), Err(TcfError::Base64));
        assert_eq!(decode("COtybn4PA_zT4Kj%ACBEN"), Err(TcfError::Base64));
        assert_eq!(decode(&"A".repeat(MAX_LEN + 1)), Err(TcfError::TooLong));
        let good = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA";
        assert!(
            decode(&format!("{good}.@@")).is_err(),
            "a bad later segment"
        );
    }

    #[test]
    fn no_truncation_panics() {
        for good in [
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA",
            "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg=",
        ] {
            for cut in 0..good.len() {
                let _ = decode(&good[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(s in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = decode(&String::from_utf8_lossy(&s));
        }

        #[test]
        fn random_base64url_never_panics(s in "[A-Za-z0-9_=.-]{0,600}") {
            if let Ok(tc) = decode(&s) {
                let _ = PurposeMap::default().grant(&tc);
            }
        }

        #[test]
        fn random_v2_cores_never_panic(tail in "[A-Za-z0-9_-]{0,300}") {
            let _ = decode(&format!("C{tail}"));
        }
    }

    #[test]
    fn a_string_redated_differs_only_in_its_dates() {
        let tc = "CP1R2oAP1R2oAEsABBENCWFAAIGAAAAAAAYgAAAAAAAA";
        let old = decode(tc).unwrap();
        let new = decode(&with_dates(tc, 17_959_968_000).unwrap()).unwrap();
        assert_eq!(
            (new.created, new.last_updated),
            (17_959_968_000, 17_959_968_000)
        );
        let undated = |mut t: TcString| {
            t.created = 0;
            t.last_updated = 0;
            t
        };
        assert_eq!(undated(old), undated(new));
        assert_eq!(with_dates("CP1R", 1), None);
        assert_eq!(with_dates("not base64!", 1), None);
        let segmented = with_dates(&format!("{tc}.IAAA"), 1).unwrap();
        assert!(segmented.ends_with(".IAAA"));
    }
}
