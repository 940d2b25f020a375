//! The IAB GPP decoder (`consent::gpp`) and the US Privacy string (`consent::usprivacy`) on
//! arbitrary text, at a fixed time ([`NOW`]).
//!
//! The input goes whole through `gpp::sections`, `gpp::header`, `gpp::decode_us` for every
//! section in `gpp::SECTIONS`, `gpp::read`, `gpp::applicable` and `usprivacy::parse`. An input
//! with a line break is also read as a `__gpp` value, then a `__gpp_sid` value naming the
//! sections that apply. Checked beyond the absence of panics:
//!
//! - `read` never grants `marketing` when an applicable US section of the string decodes with
//!   `SaleOptOut`, `SharingOptOut` or `TargetedAdvertisingOptOut` 1 (opted out): it is then
//!   unreadable, expired, a grant without `marketing`, or an opt-out that denies it; the same
//!   for a US Privacy section with `Y` in the opt-out place;
//! - an `OptOut` reading (of `read`, of `usprivacy::parse`) never denies `necessary`, and a
//!   grant always contains it;
//! - a decoded US section has as many fields as its definition lists (the version first) plus
//!   those of its second segment; each in order, by name, of its width and number of entries;
//! - `read` is what its parts say: unreadable when the string or an applicable US or US Privacy
//!   section does not decode, the TCF section read as the `euconsent-v2` cookie less what the
//!   US sections deny, an opt-out when only US sections spoke, "not required" when no section
//!   applies; GPC when an applicable section's GPC subsection says so;
//! - a header's section ids increase strictly and stay within 1..=1000, and `sections` splits
//!   the string into as many bodies as the header names; `usprivacy::parse` follows its
//!   specification; `applicable` reads back what it returned, written out.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::consent::cmp::{self, Reading};
use consent_proxy::consent::format::Said;
use consent_proxy::consent::gpp::{self, SECTIONS, Second, SectionDef, TcfReading, Value};
use consent_proxy::consent::tcf::{PurposeMap, TcfConfig};
use consent_proxy::consent::usprivacy;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The time of the request: 2026-11-30, Unix seconds.
const NOW: u64 = 1_795_996_800;

const OPT_OUT_FIELDS: [&str; 3] = ["SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"];
const MARKETING: CategorySet = CategorySet::EMPTY.with(Category::Marketing);
const N: CategorySet = CategorySet::NECESSARY;

struct Tcf {
    config: TcfConfig,
    purposes: PurposeMap,
}

fn tcf() -> TcfReading<'static> {
    static TCF: OnceLock<Tcf> = OnceLock::new();
    let t = TCF.get_or_init(|| Tcf {
        config: TcfConfig::default(),
        purposes: PurposeMap::default(),
    });
    TcfReading {
        config: &t.config,
        purposes: &t.purposes,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// Whether a field's entries are 1 or 3 (opted out, or no value the specification gives).
fn objects(v: &Value) -> bool {
    match v {
        Value::Int(i) => *i == 1 || *i == 3,
        Value::List(l) => l.iter().any(|i| *i == 1 || *i == 3),
        Value::Bool(_) => false,
    }
}

/// Whether a decoded US section opted out of sale, sharing or targeted advertising (1).
fn opted_out(fields: &[(&str, Value)]) -> bool {
    fields
        .iter()
        .any(|(n, v)| OPT_OUT_FIELDS.contains(n) && int(v) == Some(1))
}

/// What a decoded US section denies, by the module's rules: an opt-out field 1 or 3, or a known
/// child's sensitive-data consent 1 or 3, denies marketing; and whether its GPC bit is set.
fn us_model(fields: &[(&str, Value)]) -> (CategorySet, bool) {
    let denies = fields.iter().any(|(n, v)| {
        (OPT_OUT_FIELDS.contains(n) || *n == "KnownChildSensitiveDataConsents") && objects(v)
    });
    let gpc = fields
        .iter()
        .any(|(n, v)| *n == "Gpc" && *v == Value::Bool(true));
    (if denies { MARKETING } else { CategorySet::EMPTY }, gpc)
}

/// A decoded US section has the fields its definition lists, in order, of their widths.
fn check_fields(def: &SectionDef, text: &str, fields: &[(&'static str, Value)]) {
    let ctx = || format!("{} on {text:?}: {fields:?}", def.name);
    let second = match def.second {
        Second::None => 0,
        Second::Gpc => 3,
        Second::Sensitive(_) => 2,
    };
    assert_eq!(fields.len(), def.fields.len() + second, "field count of {}", ctx());
    let first = &fields[0];
    assert!(
        matches!(first.0, "Version" | "MspaVersion"),
        "first field of {}",
        ctx()
    );
    let version = int(&first.1).unwrap_or_else(|| panic!("version of {}", ctx()));
    assert!(version < 64, "version of {}", ctx());
    let (core, second_fields) = fields.split_at(def.fields.len());
    for (&field @ (name, _, width), (got, value)) in def.fields.iter().zip(core) {
        assert_eq!(name, *got, "field order of {}", ctx());
        let limit = 1u64 << width;
        match (gpp::entries(def, version, field), value) {
            (0, Value::Int(i)) => {
                assert!(*i < limit, "{name} wider than {width} bits in {}", ctx());
            }
            (n, Value::List(l)) => {
                assert_eq!(l.len(), n as usize, "entries of {name} in {}", ctx());
                assert!(l.iter().all(|i| *i < limit), "{name} in {}", ctx());
            }
            (n, value) => panic!("{name} ({n} entries) read as {value:?} in {}", ctx()),
        }
    }
    let included = text.contains('.');
    let names: Vec<&str> = second_fields.iter().map(|(n, _)| *n).collect();
    match def.second {
        Second::None => assert!(!included, "a second segment in {}", ctx()),
        Second::Gpc => {
            assert_eq!(
                names,
                ["GpcSegmentType", "Gpc", "GpcSegmentIncluded"],
                "{}",
                ctx()
            );
            assert!(int(&second_fields[0].1).is_some_and(|i| i < 4), "{}", ctx());
            assert!(matches!(second_fields[1].1, Value::Bool(_)), "{}", ctx());
            assert_eq!(second_fields[2].1, Value::Bool(included), "{}", ctx());
            if !included {
                assert_eq!(second_fields[1].1, Value::Bool(false), "{}", ctx());
            }
        }
        Second::Sensitive(n) => {
            assert_eq!(
                names,
                [
                    "SensitiveDataProcessing",
                    "SensitiveDataConsentSegmentIncluded"
                ],
                "{}",
                ctx()
            );
            match &second_fields[0].1 {
                Value::List(l) => {
                    assert_eq!(l.len(), n as usize, "{}", ctx());
                    assert!(l.iter().all(|i| *i < 4), "{}", ctx());
                }
                other => panic!("SensitiveDataProcessing {other:?} in {}", ctx()),
            }
            assert_eq!(second_fields[1].1, Value::Bool(included), "{}", ctx());
        }
    }
    let (denied, _) = gpp::us_denies(fields);
    assert_eq!(gpp::us_denies(fields), us_model(fields), "us_denies of {}", ctx());
    assert!(!denied.contains(Category::Necessary), "{}", ctx());
    if opted_out(fields) {
        assert!(denied.contains(Category::Marketing), "{}", ctx());
    }
}

/// The US Privacy string as its specification reads.
fn usprivacy_model(text: &str) -> Reading {
    let Some(v) = cmp::prepare(text) else {
        return Reading::Unreadable;
    };
    let flag = |b: u8| matches!(b, b'Y' | b'N' | b'-');
    match v.as_bytes() {
        b"1---" => Reading::NotRequired,
        [b'1', a, b, c] if flag(*a) && flag(*b) && flag(*c) => {
            Reading::OptOut(if *b == b'Y' { MARKETING } else { CategorySet::EMPTY })
        }
        _ => Reading::Unreadable,
    }
}

/// What `gpp::read` should say, from the pieces: the sections, each decoded on its own.
fn read_model(text: &str, only: Option<&[u16]>) -> Said {
    let unreadable = Said::new(Reading::Unreadable);
    let Some(v) = cmp::prepare(text) else {
        return unreadable;
    };
    let Ok(sections) = gpp::sections(v) else {
        return unreadable;
    };
    let mut denied = CategorySet::EMPTY;
    let mut gpc = false;
    let mut tcf_said = None;
    let mut spoke = false;
    let t = tcf();
    for (id, body) in sections {
        if only.is_some_and(|o| !o.contains(&id)) {
            continue;
        }
        if id == gpp::TCFEUV2 {
            tcf_said = Some(t.config.said(t.purposes, body, NOW));
            spoke = true;
        } else if id == gpp::USPV1 {
            match usprivacy_model(body) {
                Reading::OptOut(d) => {
                    denied = denied.union(d);
                    spoke = true;
                }
                Reading::NotRequired => {}
                _ => return unreadable,
            }
        } else if let Some(def) = SECTIONS.iter().find(|d| d.id == id) {
            let Ok(fields) = gpp::decode_us(def, body) else {
                return unreadable;
            };
            let (d, g) = us_model(&fields);
            denied = denied.union(d);
            gpc |= g;
            spoke = true;
        }
    }
    let reading = match tcf_said.map(|s| s.reading) {
        Some(Reading::Granted(set)) => Reading::Granted(set.difference(denied).union(N)),
        Some(r) => r,
        None if spoke => Reading::OptOut(denied),
        None => Reading::NotRequired,
    };
    Said {
        reading,
        at: tcf_said.and_then(|s| s.at),
        gpc,
    }
}

/// The brief's rules for `read` on `text` with `only` applicable, stated on their own.
fn check_read(text: &str, only: Option<&[u16]>) -> Said {
    let said = gpp::read(text, only, &tcf(), NOW);
    let ctx = || format!("read({text:?}, only {only:?}) = {said:?}");
    match said.reading {
        Reading::Granted(set) => assert!(set.contains(Category::Necessary), "{}", ctx()),
        Reading::OptOut(d) => assert!(!d.contains(Category::Necessary), "{}", ctx()),
        _ => {}
    }
    // An applicable section that opted out: marketing is never granted.
    if let Some(v) = cmp::prepare(text)
        && let Ok(sections) = gpp::sections(v)
    {
        let objecting = sections.iter().find(|(id, body)| {
            if only.is_some_and(|o| !o.contains(id)) {
                return false;
            }
            if *id == gpp::USPV1 {
                return cmp::prepare(body).is_some_and(|b| b.as_bytes().get(2) == Some(&b'Y'))
                    && usprivacy::parse(body) != Reading::Unreadable;
            }
            SECTIONS
                .iter()
                .find(|d| d.id == *id)
                .and_then(|def| gpp::decode_us(def, body).ok())
                .is_some_and(|fields| opted_out(&fields))
        });
        if let Some((id, body)) = objecting {
            match said.reading {
                Reading::Unreadable | Reading::Expired => {}
                Reading::Granted(set) => assert!(
                    !set.contains(Category::Marketing),
                    "marketing granted over an opt-out in section {id} ({body:?}): {}",
                    ctx()
                ),
                Reading::OptOut(d) => assert!(
                    d.contains(Category::Marketing),
                    "an opt-out in section {id} ({body:?}) that does not deny marketing: {}",
                    ctx()
                ),
                Reading::NotRequired => panic!(
                    "an opt-out in section {id} ({body:?}) reads as not required: {}",
                    ctx()
                ),
            }
        }
    }
    assert_eq!(said, read_model(text, only), "{}", ctx());
    said
}

/// Everything on one string.
fn everything(text: &str) {
    // The header, of the whole text and of its first part.
    let first_part = text.split('~').next().unwrap_or("");
    for h in [text, first_part] {
        if let Ok(ids) = gpp::header(h) {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "header ids not increasing: {h:?}: {ids:?}"
            );
            assert!(
                ids.iter().all(|i| (1..=1000).contains(i)),
                "header ids out of range: {h:?}: {ids:?}"
            );
        }
    }
    match gpp::sections(text) {
        Ok(sections) => {
            let ids = gpp::header(first_part).expect("sections read the header");
            let got: Vec<u16> = sections.iter().map(|(id, _)| *id).collect();
            assert_eq!(got, ids, "{text:?}");
            let bodies: Vec<&str> = text.split('~').skip(1).collect();
            let got: Vec<&str> = sections.iter().map(|(_, b)| *b).collect();
            assert_eq!(got, bodies, "{text:?}");
        }
        Err(_) => assert!(
            gpp::header(first_part).map_or(true, |ids| ids.len() != text.split('~').count() - 1),
            "sections fails on a string whose header names its sections: {text:?}"
        ),
    }
    for def in SECTIONS {
        if let Ok(fields) = gpp::decode_us(def, text) {
            check_fields(def, text, &fields);
            // Decoding is a function of the text alone.
            assert_eq!(gpp::decode_us(def, text), Ok(fields), "{}: {text:?}", def.name);
        }
    }
    let us = usprivacy::parse(text);
    if let Reading::OptOut(d) = us {
        assert!(!d.contains(Category::Necessary), "usprivacy: {text:?}");
    }
    assert_eq!(us, usprivacy_model(text), "usprivacy::parse({text:?})");
    if let Ok(ids) = gpp::applicable(text) {
        // `0` (as `00` may have been) and `-1` name no section; an empty list is written `-1`.
        let kept: Vec<u16> = ids.iter().copied().filter(|i| *i != 0).collect();
        let written: Vec<String> = kept.iter().map(u16::to_string).collect();
        let written = if written.is_empty() {
            "-1".to_string()
        } else {
            written.join(",")
        };
        let again = gpp::applicable(&written).expect("applicable reads its ids back");
        assert_eq!(again, kept, "applicable({text:?})");
    }
    // Read with every section applicable, with none, and with those the string names.
    let all = check_read(text, None);
    let none = check_read(text, Some(&[]));
    if let Some(v) = cmp::prepare(text)
        && let Ok(sections) = gpp::sections(v)
    {
        assert_eq!(none, Said::new(Reading::NotRequired), "{text:?}");
        let ids: Vec<u16> = sections.iter().map(|(id, _)| *id).collect();
        assert_eq!(check_read(text, Some(&ids)), all, "{text:?}");
    } else {
        assert_eq!(all.reading, Reading::Unreadable, "{text:?}");
        assert_eq!(none.reading, Reading::Unreadable, "{text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    everything(&text);
    // A `__gpp` value, then the `__gpp_sid` value that names the applicable sections.
    if let Some((value, sid)) = text.split_once('\n') {
        everything(value);
        if let Ok(only) = gpp::applicable(sid) {
            check_read(value, Some(&only));
        }
    }
});
