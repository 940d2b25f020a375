//! TC strings made by consent managers, re-dated: the proxy relies on a TC string for 13
//! months only, so a string taken from a real site ages out of the tests unless its dates move.

/// The time now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `tc` with its `Created` and `LastUpdated` set to `at` (Unix seconds).
pub fn dated(tc: &str, at: u64) -> String {
    let dated = consent_proxy::consent::tcf::with_dates(tc, at * 10).expect("a TC string");
    let decoded = consent_proxy::consent::tcf::decode(&dated).expect("still a TC string");
    assert_eq!(decoded.last_updated / 10, at);
    dated
}

/// `tc` as if made a day ago.
pub fn recent(tc: &str) -> String {
    dated(tc, now() - 24 * 3600)
}
