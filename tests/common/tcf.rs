//! TC strings made by consent managers, re-dated: the proxy relies on a TC string for 13
//! months only, so a string taken from a real site ages out of the tests unless its dates move.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The time now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `tc` with its `Created` and `LastUpdated` fields (36 bits each, deciseconds, from bit 6 of
/// the core segment) set to `at` (Unix seconds); every other bit, and the other segments, as
/// they were.
pub fn dated(tc: &str, at: u64) -> String {
    let (core, rest) = match tc.split_once('.') {
        Some((core, rest)) => (core, Some(rest)),
        None => (tc, None),
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(core).expect("a base64url TC string");
    let deciseconds = at * 10;
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
    let core = URL_SAFE_NO_PAD.encode(bytes);
    let dated = match rest {
        Some(rest) => format!("{core}.{rest}"),
        None => core,
    };
    let decoded = consent_proxy::consent::tcf::decode(&dated).expect("still a TC string");
    assert_eq!(decoded.last_updated / 10, at);
    dated
}

/// `tc` as if made a day ago.
pub fn recent(tc: &str) -> String {
    dated(tc, now() - 24 * 3600)
}
