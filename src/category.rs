//! The four consent categories and a compact set of them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A consent category. Every consent format and every cookie or endpoint classification maps
/// into one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Strictly necessary: always granted.
    Necessary,
    Preferences,
    Analytics,
    Marketing,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Necessary,
        Category::Preferences,
        Category::Analytics,
        Category::Marketing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Necessary => "necessary",
            Category::Preferences => "preferences",
            Category::Analytics => "analytics",
            Category::Marketing => "marketing",
        }
    }

    /// Parses a category name, ignoring ASCII case.
    pub fn parse(token: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(token))
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of categories, as a bit set. `necessary` is an ordinary member here; the consent
/// decision always inserts it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u8);

impl CategorySet {
    pub const EMPTY: CategorySet = CategorySet(0);
    pub const ALL: CategorySet = CategorySet(0b1111);
    pub const NECESSARY: CategorySet = CategorySet(1);

    pub fn contains(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    pub const fn insert(&mut self, c: Category) {
        self.0 |= c.bit();
    }

    pub const fn with(mut self, c: Category) -> CategorySet {
        self.insert(c);
        self
    }

    pub fn union(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 | other.0)
    }

    pub fn intersection(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & other.0)
    }

    pub fn difference(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many categories it holds.
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Category> for CategorySet {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        let mut set = CategorySet::EMPTY;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for CategorySet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for CategorySet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Category>::deserialize(d)?;
        Ok(list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let s: CategorySet = [Category::Analytics, Category::Marketing]
            .into_iter()
            .collect();
        assert!(s.contains(Category::Analytics));
        assert!(!s.contains(Category::Preferences));
        assert_eq!(
            s.difference(CategorySet::EMPTY.with(Category::Marketing)),
            CategorySet::EMPTY.with(Category::Analytics)
        );
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Category::Analytics, Category::Marketing]
        );
        assert_eq!(CategorySet::ALL.iter().count(), 4);
    }

    #[test]
    fn parse_is_case_insensitive_and_strict() {
        assert_eq!(Category::parse("Analytics"), Some(Category::Analytics));
        assert_eq!(Category::parse("ads"), None);
        assert_eq!(Category::parse(""), None);
    }

    #[test]
    fn serializes_as_list() {
        let s = CategorySet::NECESSARY.with(Category::Marketing);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["necessary","marketing"]"#
        );
    }
}
