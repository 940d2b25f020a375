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
        .map_err(|e| explain::<T>(name, text, &e))
}

/// Turns a failure to read `text` as `T` into what the author of the file needs to hear.
fn explain<T: serde::de::DeserializeOwned>(
    name: &str,
    text: &str,
    e: &serde_yaml::Error,
) -> LocatedError {
    // The parser hands over the events it read before a syntax error, so a mistake in the
    // YAML itself (an unclosed `{`, a bad indentation) shows first as an odd value there
    // (``unknown variant `necessary -` ``). If the text is not YAML at all, say that.
    if let Err(syntax) = serde_yaml::from_str::<serde::de::IgnoredAny>(text) {
        return syntax_error(name, &syntax);
    }
    let mut error = LocatedError::yaml(name, e);
    match top_level_shape::<T>(&error.message) {
        Some(message) => error.message = message,
        None => error.message = plain_type_names(&error.message),
    }
    error
}

/// A YAML syntax error, with what libyaml says about where the construct it was reading began.
fn syntax_error(name: &str, e: &serde_yaml::Error) -> LocatedError {
    let mut error = LocatedError::yaml(name, e);
    // libyaml's text: "PROBLEM at line L column C[, CONTEXT[ at line L column C]]"; the
    // problem's position is in the prefix already.
    let full = e.to_string();
    let context = full
        .split_once(", while ")
        .map(|(_, c)| format!("while {c}"));
    // libyaml leaves out a context position equal to the problem's or at the very start, and
    // a flow collection never starts where the parser finds it unclosed: the start, then.
    let opened = context
        .as_deref()
        .and_then(|c| c.split_once(" at line "))
        .map_or_else(
            || " opened at line 1 column 1".to_string(),
            |(_, at)| format!(" opened at line {at}"),
        );
    let context = context.as_deref().unwrap_or_default();
    error.message = if context.starts_with("while parsing a flow mapping") {
        format!(
            "YAML syntax error: the flow mapping `{{`{opened} is not closed (expected `,` or `}}` here)"
        )
    } else if context.starts_with("while parsing a flow sequence") {
        format!(
            "YAML syntax error: the flow sequence `[`{opened} is not closed (expected `,` or `]` here)"
        )
    } else if error.message == "mapping values are not allowed in this context" {
        "YAML syntax error: unexpected `key: value` (check the indentation, and quote a value \
         that contains `: `)"
            .to_string()
    } else if error.message.contains("more than one document") {
        "YAML syntax error: more than one YAML document (`---` starts another); the file must \
         hold one"
            .to_string()
    } else if context.is_empty() {
        format!("YAML syntax error: {}", error.message)
    } else {
        format!("YAML syntax error: {}, {context}", error.message)
    };
    error
}

/// The name and fields of the struct `T` deserializes as, if it is one.
fn struct_shape<T: serde::de::DeserializeOwned>() -> Option<(&'static str, &'static [&'static str])>
{
    let mut shape = None;
    let _ = T::deserialize(ShapeProbe(&mut shape));
    shape
}

/// A deserializer that only records the struct a type asks for, then fails.
struct ShapeProbe<'a>(&'a mut Option<(&'static str, &'static [&'static str])>);

impl<'de> serde::Deserializer<'de> for ShapeProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some((name, fields));
        Err(serde::de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// "invalid type: sequence, expected struct PolicyFile" (the whole file is not a mapping), said
/// in the file's terms: "a policy file is a mapping of settings (`mode:`, …), not a list".
fn top_level_shape<T: serde::de::DeserializeOwned>(message: &str) -> Option<String> {
    let (struct_name, fields) = struct_shape::<T>()?;
    let found = message
        .strip_prefix("invalid type: ")?
        .strip_suffix(&format!(", expected struct {struct_name}"))?;
    let what = words(struct_name);
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let keys: Vec<String> = fields.iter().take(3).map(|f| format!("`{f}:`")).collect();
    let found = if found.starts_with("sequence") {
        "not a list (no `- ` before its top-level keys)".to_string()
    } else if found.starts_with("map") {
        return None;
    } else {
        format!("not a single value ({found})")
    };
    Some(format!(
        "{article} {what} is a YAML mapping of settings ({}, …), {found}",
        keys.join(", ")
    ))
}

/// `PolicyFile` → "policy file".
fn words(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// "expected struct Signals" names a type of the program, not of the file: a mapping.
fn plain_type_names(message: &str) -> String {
    let Some(i) = message.find("expected struct ") else {
        return message.to_string();
    };
    let rest = &message[i + "expected struct ".len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    format!(
        "{}expected a mapping (`key: value` lines){}",
        &message[..i],
        &rest[end..]
    )
}

/// Deserializes a section as `F` (its keys exactly as written) and checks it into `T` while the
/// parser still stands at the section, so that an error, an unknown key or one `T::try_from`
/// finds, carries the section's line and column (`#[serde(try_from)]` would place it at the
/// top of the file). `expecting` says what the section holds.
pub fn checked_section<'de, D, F, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    F: serde::Deserialize<'de>,
    T: TryFrom<F, Error = String>,
{
    struct Section<F, T>(&'static str, std::marker::PhantomData<fn() -> (F, T)>);
    impl<'de, F, T> serde::de::Visitor<'de> for Section<F, T>
    where
        F: serde::Deserialize<'de>,
        T: TryFrom<F, Error = String>,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let fields = F::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            T::try_from(fields).map_err(serde::de::Error::custom)
        }
    }
    d.deserialize_map(Section::<F, T>(expecting, std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct SiteFile {
        mode: Option<String>,
        default: Option<String>,
        inner: Option<Inner>,
        rules: Option<Vec<Rule>>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        on: bool,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        name: String,
        category: Kind,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Necessary,
        Analytics,
    }

    fn err(text: &str) -> LocatedError {
        read_yaml::<SiteFile>("f.yaml", text).unwrap_err()
    }

    #[test]
    fn an_unclosed_brace_is_a_syntax_error_where_it_was_opened() {
        let e = err(
            "mode: x\nrules:\n  - { name: a, category: necessary\n  - { name: b, category: analytics }\n",
        );
        assert_eq!((e.line, e.column), (4, 5), "{e}");
        assert_eq!(
            e.message,
            "YAML syntax error: the flow mapping `{` opened at line 3 column 5 is not closed \
             (expected `,` or `}` here)"
        );
        let e = err("rules: [ { name: a, category: necessary }\n");
        assert!(
            e.message
                .contains("flow sequence `[` opened at line 1 column 8"),
            "{e}"
        );
        let e = err("{ mode: x\n");
        assert!(
            e.message
                .contains("flow mapping `{` opened at line 1 column 1"),
            "{e}"
        );
        let e = err("mode: x\n  default: y\n");
        assert!(
            e.message
                .starts_with("YAML syntax error: unexpected `key: value`"),
            "{e}"
        );
        assert_eq!(e.line, 2, "{e}");
        let e = err("mode: x\n---\nmode: y\n");
        assert!(e.message.contains("more than one YAML document"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_mapping_says_what_it_should_be() {
        let e = err("- mode: x\n- default: y\n");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        assert_eq!(
            e.message,
            "a site file is a YAML mapping of settings (`mode:`, `default:`, `inner:`, …), not \
             a list (no `- ` before its top-level keys)"
        );
        let e = err("just words\n");
        assert!(
            e.message.starts_with("a site file is a YAML mapping")
                && e.message.contains("not a single value"),
            "{e}"
        );
        let e = err("inner: [1]\n");
        assert_eq!(
            e.message,
            "inner: invalid type: sequence, expected a mapping (`key: value` lines)"
        );
    }

    #[test]
    fn other_errors_are_unchanged() {
        let e = err("rules:\n  - { name: a, category: trackers }\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("unknown variant `trackers`"), "{e}");
        assert!(read_yaml::<SiteFile>("f.yaml", "~\n").is_ok());
    }
}
