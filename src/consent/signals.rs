//! Browser privacy signals: Do Not Track and Global Privacy Control.

use http::HeaderMap;
use http::header::HeaderName;
use serde::Deserialize;

pub static SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");
pub static DNT: HeaderName = HeaderName::from_static("dnt");

/// Which signals a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrowserSignals {
    /// `DNT: 1`.
    pub dnt: bool,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
}

/// True if any header of that name has exactly the value `1`.
fn any_exactly_one(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(name).iter().any(|v| v.as_bytes() == b"1")
}

impl BrowserSignals {
    pub fn read(headers: &HeaderMap) -> BrowserSignals {
        BrowserSignals {
            dnt: any_exactly_one(headers, &DNT),
            gpc: any_exactly_one(headers, &SEC_GPC),
        }
    }

    /// The signal names, as the decision log lists them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [(self.dnt, "dnt"), (self.gpc, "gpc")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
    }
}

/// How browser signals and the visitor's choice combine (`signals.precedence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precedence {
    /// A browser signal (DNT, GPC) denies its categories even when the consent cookie grants them.
    #[default]
    Signal,
    /// A readable consent cookie decides alone; signals apply only when there is none.
    Cookie,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_value_only() {
        let mut h = HeaderMap::new();
        h.append("dnt", "1".parse().unwrap());
        h.append("sec-gpc", "true".parse().unwrap());
        let s = BrowserSignals::read(&h);
        assert!(s.dnt);
        assert!(!s.gpc);
        assert_eq!(s.names().collect::<Vec<_>>(), vec!["dnt"]);
    }
}
