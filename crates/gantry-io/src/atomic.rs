//! Files are written whole or not at all: to a temporary name beside the target, synced, then
//! renamed over it.

use crate::error::{IoError, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary path in the same folder as `path`, unique in this process, ending in the same
/// extension (`.nii.gz` counts as one) and with no other dot: writers that rebuild the name
/// from its stem (the `nifti` crate) still write exactly there.
pub fn temp_path_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let ext = if lower.ends_with(".nii.gz") {
        ".nii.gz".to_string()
    } else {
        path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default()
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".gantry-tmp-{}-{n}{ext}", std::process::id()))
}

/// Runs `write` on a temporary path, syncs the file and renames it to `path`. On failure the
/// temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(IoError::format(path, "folder", parent.display(), "does not exist"));
        }
    }
    let tmp = temp_path_for(path);
    let result = write(&tmp).and_then(|_| {
        let f = File::open(&tmp).map_err(|e| IoError::io(&tmp, e))?;
        f.sync_all().map_err(|e| IoError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| IoError::io(path, e))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| IoError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| IoError::io(tmp, e))
    })
}
