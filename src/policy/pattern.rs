//! Name and path patterns, compiled into one matcher per rule list: exact names in a hash map,
//! prefixes in an anchored Aho-Corasick automaton (longest wins), globs in a `GlobSet`
//! (first listed wins). An exact rule beats a prefix rule, which beats a glob rule.

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashMap;
use std::fmt;

/// One pattern as written in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Glob(String),
}

impl Pattern {
    pub fn kind(&self) -> &'static str {
        match self {
            Pattern::Exact(_) => "exact",
            Pattern::Prefix(_) => "prefix",
            Pattern::Glob(_) => "glob",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Pattern::Exact(s) | Pattern::Prefix(s) | Pattern::Glob(s) => s,
        }
    }

    /// Checks that a glob compiles; exact and prefix patterns always do.
    pub fn validate(&self) -> Result<(), String> {
        if self.text().is_empty() {
            return Err(format!("empty {} pattern", self.kind()));
        }
        if let Pattern::Glob(g) = self {
            build_glob(g).map_err(|e| format!("invalid glob `{g}`: {e}"))?;
        }
        Ok(())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind(), self.text())
    }
}

fn build_glob(g: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(g)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

/// A compiled set of patterns, each carrying a value.
pub struct Matcher<T> {
    exact: HashMap<Box<str>, usize>,
    prefixes: Option<AhoCorasick>,
    prefix_values: Vec<usize>,
    globs: GlobSet,
    glob_values: Vec<usize>,
    values: Vec<T>,
}

impl<T> Matcher<T> {
    /// Compiles patterns. Patterns must already be validated; a glob that fails to compile here
    /// is reported as an error rather than ignored.
    pub fn new(rules: impl IntoIterator<Item = (Pattern, T)>) -> Result<Self, String> {
        let mut exact = HashMap::new();
        let mut prefix_texts = Vec::new();
        let mut prefix_values = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_values = Vec::new();
        let mut values = Vec::new();
        for (pattern, value) in rules {
            let idx = values.len();
            values.push(value);
            match pattern {
                Pattern::Exact(s) => {
                    exact.entry(s.into_boxed_str()).or_insert(idx);
                }
                Pattern::Prefix(s) => {
                    prefix_texts.push(s);
                    prefix_values.push(idx);
                }
                Pattern::Glob(g) => {
                    globs.add(build_glob(&g).map_err(|e| format!("invalid glob `{g}`: {e}"))?);
                    glob_values.push(idx);
                }
            }
        }
        let prefixes = if prefix_texts.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Anchored)
                    .build(&prefix_texts)
                    .map_err(|e| format!("cannot compile prefixes: {e}"))?,
            )
        };
        let globs = globs
            .build()
            .map_err(|e| format!("cannot compile globs: {e}"))?;
        Ok(Matcher {
            exact,
            prefixes,
            prefix_values,
            globs,
            glob_values,
            values,
        })
    }

    /// The value of the best-matching pattern, if any.
    pub fn find(&self, input: &str) -> Option<&T> {
        if let Some(&i) = self.exact.get(input) {
            return Some(&self.values[i]);
        }
        if let Some(ac) = &self.prefixes
            && let Some(m) = ac.find(Input::new(input).anchored(Anchored::Yes))
        {
            return Some(&self.values[self.prefix_values[m.pattern().as_usize()]]);
        }
        if !self.glob_values.is_empty() {
            let mut best: Option<usize> = None;
            for g in self.globs.matches(input) {
                best = Some(best.map_or(g, |b| b.min(g)));
            }
            if let Some(g) = best {
                return Some(&self.values[self.glob_values[g]]);
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matcher<&'static str> {
        Matcher::new([
            (Pattern::Exact("_ga".into()), "exact-ga"),
            (Pattern::Prefix("_ga_".into()), "prefix-ga"),
            (Pattern::Prefix("_g".into()), "prefix-g"),
            (Pattern::Glob("_gat_UA-*".into()), "glob-gat"),
            (Pattern::Glob("*".into()), "catch-all"),
        ])
        .unwrap()
    }

    #[test]
    fn exact_beats_prefix_beats_glob() {
        let m = m();
        assert_eq!(m.find("_ga"), Some(&"exact-ga"));
        assert_eq!(m.find("_ga_XYZ"), Some(&"prefix-ga"));
        assert_eq!(m.find("_gid"), Some(&"prefix-g"));
        assert_eq!(m.find("other"), Some(&"catch-all"));
    }

    #[test]
    fn longest_prefix_wins_and_first_glob_wins() {
        let m = Matcher::new([
            (Pattern::Prefix("a".into()), 1),
            (Pattern::Prefix("abc".into()), 2),
            (Pattern::Glob("x*".into()), 3),
            (Pattern::Glob("x?z".into()), 4),
        ])
        .unwrap();
        assert_eq!(m.find("abcd"), Some(&2));
        assert_eq!(m.find("abd"), Some(&1));
        assert_eq!(m.find("xyz"), Some(&3));
        assert_eq!(m.find("bcd"), None);
    }

    #[test]
    fn prefix_is_anchored() {
        let m = Matcher::new([(Pattern::Prefix("_hj".into()), 1)]).unwrap();
        assert_eq!(m.find("x_hjSession"), None);
        assert_eq!(m.find("_hjSession"), Some(&1));
    }

    #[test]
    fn glob_is_case_sensitive_and_whole() {
        let m = Matcher::new([(Pattern::Glob("_gat_UA-*".into()), 1)]).unwrap();
        assert_eq!(m.find("_gat_UA-1234-1"), Some(&1));
        assert_eq!(m.find("_gat_ua-1234-1"), None);
        assert_eq!(m.find("x_gat_UA-1"), None);
    }

    #[test]
    fn invalid_glob_is_reported() {
        assert!(Pattern::Glob("a[".into()).validate().is_err());
        assert!(Pattern::Exact(String::new()).validate().is_err());
        assert!(Pattern::Glob("a*b".into()).validate().is_ok());
    }
}
