//! TOML files a person writes (protocols, geometries): parsed strictly, so a misspelt key is an
//! error naming the key and its line instead of a default silently taken.

use crate::error::{IoError, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// 1-based line and column of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Parses `text` (the content of `path`) as a `what` ("scan protocol", "scan geometry").
/// Unknown keys must be refused by `T` (`#[serde(deny_unknown_fields)]`); the error then names
/// the key and its line, and a missing key names the table it is missing from.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str, what: &str) -> Result<T> {
    toml::from_str::<T>(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let span = e.span();
        let (line, column) = span.as_ref().map_or((0, 0), |s| line_column(text, s.start));
        let reason = if let Some(rest) = message.strip_prefix("unknown field ") {
            let (key, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            let expected = if expected.is_empty() { String::new() } else { format!("; expected {expected}") };
            format!("unknown key {key} in the {what} (misspelt?){expected}")
        } else if let Some(key) = message.strip_prefix("missing field ") {
            match &span {
                Some(s) if s.start > 0 => {
                    let header = text[s.start..].lines().next().unwrap_or("").trim();
                    format!("missing key {key} in the {what}'s table {header:?}")
                }
                _ => format!("missing key {key} at the top level of the {what}"),
            }
        } else {
            format!("{message} (in the {what})")
        };
        let missing_at_top = message.starts_with("missing field ") && span.as_ref().is_none_or(|s| s.start == 0);
        IoError::Toml { path: path.to_owned(), line: if missing_at_top { 0 } else { line }, column, reason }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: usize,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        a: f64,
        #[serde(default)]
        b: Option<f64>,
        inner: Inner,
    }

    #[test]
    fn unknown_and_missing_keys_name_the_key_and_line() {
        let p = Path::new("p.toml");
        let e = parse_toml::<Outer>(p, "a = 1.0\nbb = 2.0\n[inner]\nn = 3\n", "test file").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`bb`"), "{e}");
        let e = parse_toml::<Outer>(p, "b = 1.0\n[inner]\nn = 3\n", "test file").unwrap_err().to_string();
        assert!(e.contains("missing key `a`") && !e.contains("line 1,"), "{e}");
        let e = parse_toml::<Outer>(p, "a = 1.0\n[inner]\nm = 3\n", "test file").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`m`"), "{e}");
        let e = parse_toml::<Outer>(p, "a = 1.0\n\n[inner]\n", "test file").unwrap_err().to_string();
        assert!(e.contains("missing key `n`") && e.contains("[inner]"), "{e}");
        let e = parse_toml::<Outer>(p, "a = \"x\"\n[inner]\nn = 3\n", "test file").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
