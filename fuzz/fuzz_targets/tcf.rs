//! The IAB TCF v2 decoder on its own, and the consent source that reads it.
//!
//! Checked beyond the absence of panics: a decoded string is version 2 and its two-letter
//! fields are upper-case letters; the default purpose map grants `necessary`, and a category
//! only when all its purposes are consented; the `euconsent-v2` reader grants exactly that for
//! a string that decodes, and nothing (`Unreadable`) for one that does not.

#![no_main]

use consent_proxy::category::{Category, CategorySet};
use consent_proxy::consent::cmp::{self, Reading};
use consent_proxy::consent::reader::Reader;
use consent_proxy::consent::tcf::{self, PurposeMap};
use libfuzzer_sys::fuzz_target;

/// The purposes the default map requires for each category (see `PurposeMap::default`).
const REQUIRED: [(Category, &[u8]); 3] = [
    (Category::Preferences, &[1]),
    (Category::Analytics, &[1, 8, 9]),
    (Category::Marketing, &[1, 2, 3, 4, 7]),
];

fn letters(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let map = PurposeMap::default();
    let decoded = tcf::decode(&text);
    if let Ok(tc) = &decoded {
        assert_eq!(tc.version, 2, "{text:?}");
        assert!(letters(&tc.consent_language), "{text:?}: {tc:?}");
        assert!(letters(&tc.publisher_cc), "{text:?}: {tc:?}");
        assert_eq!(tc.purposes_consent >> 24, 0, "{text:?}: {tc:?}");
        assert_eq!(tc.purposes_li_transparency >> 24, 0, "{text:?}: {tc:?}");
        assert_eq!(tc.special_feature_opt_ins >> 12, 0, "{text:?}: {tc:?}");
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
    let reader = Reader::Tcf {
        cookie: "euconsent-v2".into(),
        purposes: map.clone(),
    };
    let reading = reader.read(&[("euconsent-v2", &text)]);
    let expected = match cmp::prepare(&text).map(tcf::decode) {
        Some(Ok(tc)) => Reading::Granted(map.grant(&tc).union(CategorySet::NECESSARY)),
        _ => Reading::Unreadable,
    };
    assert_eq!(reading, Some(expected), "{text:?}");
});
