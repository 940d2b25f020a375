//! Errors in files the operator writes (policy, config), pointing at a line and a column.

use std::fmt;

/// A file that could not be loaded, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedError {
    pub file: String,
    /// 1-based; 0 when the error has no position (e.g. the file cannot be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl LocatedError {
    /// An error about the file as a whole.
    pub fn whole(file: &str, message: impl Into<String>) -> LocatedError {
        LocatedError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// A YAML parse or validation error, with serde_yaml's position.
    pub fn yaml(file: &str, e: &serde_yaml::Error) -> LocatedError {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The position is already in our prefix; drop serde_yaml's own " at line X column Y".
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        LocatedError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    }
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for LocatedError {}

/// Reads a YAML file into `T`; an empty file is `T::default()`.
pub fn read_yaml<T: serde::de::DeserializeOwned + Default>(
    name: &str,
    text: &str,
) -> Result<T, LocatedError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    // A document that is only `~` or `null` is as empty as an empty file.
    serde_yaml::from_str::<Option<T>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| LocatedError::yaml(name, &e))
}
