//! The one error type of gantry-core: every variant names the field and the value that is wrong.

use thiserror::Error;

/// An error in the shared data types: a bad geometry, a size mismatch, a non-finite value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A field of a geometry or volume description has an impossible value.
    #[error("invalid {field} = {value}: {reason}")]
    Invalid { field: String, value: String, reason: String },
    /// Two things that must agree in size do not.
    #[error("size mismatch for {what}: expected {expected}, got {got}")]
    SizeMismatch { what: String, expected: String, got: String },
    /// An array holds NaN or infinity where finite numbers are required.
    #[error("{what} holds a non-finite value ({value}) at index {index}")]
    NonFinite { what: String, index: String, value: f32 },
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        CoreError::Invalid { field: field.into(), value: value.to_string(), reason: reason.into() }
    }

    pub fn size_mismatch(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        got: impl std::fmt::Display,
    ) -> Self {
        CoreError::SizeMismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

/// Returns an error naming the first non-finite element of `data`.
pub fn check_finite<'a, D: ndarray::Dimension>(what: &str, data: ndarray::ArrayView<'a, f32, D>) -> Result<()> {
    // A fast scan first; the index is worked out only when something is wrong.
    let all_finite = match data.as_slice() {
        Some(s) => s.iter().fold(true, |ok, v| ok & v.is_finite()),
        None => data.iter().all(|v| v.is_finite()),
    };
    if all_finite {
        return Ok(());
    }
    for (idx, &v) in data.indexed_iter() {
        if !v.is_finite() {
            return Err(CoreError::NonFinite { what: what.to_string(), index: format!("{idx:?}"), value: v });
        }
    }
    Ok(())
}
