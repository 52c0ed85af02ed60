//! Shared by the CLI tests that need a peer (a Python with pydicom, RTK): the peer helpers of
//! `gantry-testkit` (a missing peer is *ignored* with the reason outside CI, a failure under CI,
//! never passed), and running the gantry binary.
#![allow(dead_code)]

pub use gantry_testkit::*;
use std::path::Path;
use std::process::Command;

/// Runs the gantry binary with `args` in `dir`; its stdout and stderr, or an error with both.
pub fn gantry(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("gantry {args:?} failed: {text}"))
    }
}
