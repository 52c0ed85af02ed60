//! Errors of file I/O: every one names the file, and what in it is wrong.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is readable but its content is not what it must be.
    #[error("{path}: {field} = {value}: {reason}")]
    Format { path: PathBuf, field: String, value: String, reason: String },
    /// A TOML file a person wrote does not parse as what it must be.
    #[error("{path}{}: {reason}", if *line > 0 { format!(", line {line}, column {column}") } else { String::new() })]
    Toml { path: PathBuf, line: usize, column: usize, reason: String },
    #[error("{path}: {source}")]
    Core { path: PathBuf, source: gantry_core::CoreError },
    #[error("{path}: NIfTI: {source}")]
    Nifti { path: PathBuf, source: nifti::NiftiError },
    /// A DICOM network peer refused, misbehaved or could not be reached.
    #[error("DICOM peer {peer}: {reason}")]
    Network { peer: String, reason: String },
}

impl IoError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        IoError::Io { path: path.to_owned(), source }
    }
    pub fn format(
        path: &Path,
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        IoError::Format { path: path.to_owned(), field: field.into(), value: value.to_string(), reason: reason.into() }
    }
    pub fn network(peer: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        IoError::Network { peer: peer.to_string(), reason: reason.to_string() }
    }
    pub fn core(path: &Path, source: gantry_core::CoreError) -> Self {
        IoError::Core { path: path.to_owned(), source }
    }
}

pub type Result<T> = std::result::Result<T, IoError>;
