//! The IAB TCF v2 decoder on its own, and the consent sources that read it: the `euconsent-v2`
//! cookie and GPP's TCF EU section.
//!
//! Checked beyond the absence of panics: a decoded string is version 2 and its two-letter
//! fields are upper-case letters; the default purpose map grants `necessary`, and a category
//! only when all its purposes are consented; the built-in policy's `tcf` reader grants exactly
//! that for a string that decodes and was last updated within 13 months before `now` (and at
//! most a day after it), reads a string outside that window as expired (nothing granted), and
//! one that does not decode as unreadable (nothing granted); its date is the last update's;
//! `TcfConfig::said` agrees, at `now` and at the edges of the window; a GPP string holding the
//! input as its only (TCF EU) section reads the same.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::consent::cmp::{self, Reading};
use consent_proxy::consent::format::{ConsentReader, ReadCtx, Said};
use consent_proxy::consent::gpp::{self, TcfReading};
use consent_proxy::consent::tcf::{self, PurposeMap, TcfConfig};
use consent_proxy::policy::{self, CompiledPolicy};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The time of the request: 2026-11-30, Unix seconds.
const NOW: u64 = 1_795_996_800;
/// The default `tcf.max_age`: 396 days.
const THIRTEEN_MONTHS: u64 = 396 * 24 * 3600;
const DAY: u64 = 24 * 3600;

/// The purposes the default map requires for each category (see `PurposeMap::default`).
const REQUIRED: [(Category, &[u8]); 3] = [
    (Category::Preferences, &[1]),
    (Category::Analytics, &[1, 8, 9]),
    (Category::Marketing, &[1, 2, 3, 4, 7]),
];

/// A GPP header naming one section, TCF EU v2 (id 2).
const GPP_TCF_HEADER: &str = "DBABMA";

fn policy() -> &'static CompiledPolicy {
    static POLICY: OnceLock<CompiledPolicy> = OnceLock::new();
    POLICY.get_or_init(|| policy::builtin().expect("the built-in policy compiles"))
}

/// The built-in policy's TCF reader.
fn reader() -> &'static dyn ConsentReader {
    policy()
        .consent
        .sources
        .iter()
        .find(|r| r.id().name == "tcf")
        .expect("the built-in policy reads TCF")
        .as_ref()
}

fn letters(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// What a decoded string last updated at `at` reads as at `now`.
fn expected_at(granted: CategorySet, at: u64, now: u64) -> Said {
    let fresh = now.saturating_sub(at) <= THIRTEEN_MONTHS && at <= now.saturating_add(DAY);
    Said {
        reading: if fresh {
            Reading::Granted(granted)
        } else {
            Reading::Expired
        },
        at: Some(at),
        gpc: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let map = PurposeMap::default();
    let config = TcfConfig::default();
    let decoded = tcf::decode(&text);
    if let Ok(tc) = &decoded {
        assert_eq!(tc.version, 2, "{text:?}");
        assert!(letters(&tc.consent_language), "{text:?}: {tc:?}");
        assert!(letters(&tc.publisher_cc), "{text:?}: {tc:?}");
        assert_eq!(tc.purposes_consent >> 24, 0, "{text:?}: {tc:?}");
        assert_eq!(tc.purposes_li_transparency >> 24, 0, "{text:?}: {tc:?}");
        assert_eq!(tc.special_feature_opt_ins >> 12, 0, "{text:?}: {tc:?}");
        assert!(tc.created < 1 << 36 && tc.last_updated < 1 << 36, "{text:?}: {tc:?}");
        // Decoding is a function of the string alone.
        assert_eq!(tcf::decode(&text).as_ref(), Ok(tc));
        let granted = map.grant(tc);
        assert!(granted.contains(Category::Necessary), "{text:?}");
        let consented = tc.purposes_consented();
        for (category, purposes) in REQUIRED {
            let all = purposes.iter().all(|p| consented.contains(p));
            assert_eq!(granted.contains(category), all, "{category:?} for {text:?}");
        }
        // Vendor sets answer membership queries for any id.
        for id in [0, 1, 755, u16::MAX] {
            let _ = tc.vendor_consents.contains(id);
            let _ = tc.vendor_legitimate_interests.contains(id);
        }
    }
    // The cookie as the proxy reads it (surrounding quotes and blanks stripped first).
    let value: &str = &text;
    let said = reader().read(&[("euconsent-v2", value)], &ReadCtx { now: NOW });
    let prepared = cmp::prepare(value).map(tcf::decode);
    let expected = match &prepared {
        Some(Ok(tc)) => expected_at(map.grant(tc), tc.last_updated / 10, NOW),
        _ => Said::new(Reading::Unreadable),
    };
    assert_eq!(said, Some(expected), "{text:?}");
    // Whatever it says, it grants no more than the purposes do, and never without necessary.
    if let Reading::Granted(set) = expected.reading {
        assert!(set.contains(Category::Necessary), "{text:?}");
    }
    // Read directly, at `now` and at the edges of the window of its date.
    assert_eq!(config.said(&map, value, NOW), expected, "{text:?}");
    if let Some(Ok(tc)) = &prepared {
        let at = tc.last_updated / 10;
        let granted = map.grant(tc);
        for now in [
            at,
            at + THIRTEEN_MONTHS,
            at + THIRTEEN_MONTHS + 1,
            at.saturating_sub(DAY),
            at.saturating_sub(DAY + 1),
        ] {
            let got = config.said(&map, value, now);
            assert_eq!(got, expected_at(granted, at, now), "at {now}: {text:?}");
        }
        assert_eq!(
            config.said(&map, value, at).reading,
            Reading::Granted(granted),
            "a string read when it was last updated: {text:?}"
        );
    }
    // The same string as GPP's TCF EU section reads the same (the GPP value as a whole may be
    // no longer than a cookie value read).
    if GPP_TCF_HEADER.len() + 1 + value.len() <= cmp::MAX_VALUE_LEN {
        let gpp_value = format!("{GPP_TCF_HEADER}~{value}");
        let tcf = TcfReading {
            config: &config,
            purposes: &map,
        };
        for only in [None, Some(&[gpp::TCFEUV2][..])] {
            let got = gpp::read(&gpp_value, only, &tcf, NOW);
            assert_eq!(got, expected, "GPP {gpp_value:?} (only {only:?})");
        }
        // With only another section applicable it says nothing (a `~` in the value makes a
        // second section the header does not name: unreadable).
        let skipped = gpp::read(&gpp_value, Some(&[7]), &tcf, NOW);
        let want = if value.contains('~') {
            Reading::Unreadable
        } else {
            Reading::NotRequired
        };
        assert_eq!(
            skipped.reading, want,
            "GPP {gpp_value:?} with only section 7 applicable"
        );
    }
});
