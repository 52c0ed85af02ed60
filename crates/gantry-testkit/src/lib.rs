//! Test support shared by Gantry's crates, a dev-dependency only.
//!
//! A test that needs a peer (a Python with pydicom or RTK, a dcmtk program) is a trial of a
//! libtest-mimic harness built with [`peer_trial`]: a missing peer is reported as *ignored*
//! with the reason outside CI, and as a failure under CI (`GANTRY_REQUIRE_PEERS=1`, as
//! `.ci/run` sets) — never as passed.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use libtest_mimic;

/// Whether a missing peer fails the test (GANTRY_REQUIRE_PEERS=1, as in .ci/run).
pub fn require_peers() -> bool {
    std::env::var("GANTRY_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// A Python that imports every module of `modules` (dotted names allowed: `itk.RTK`):
/// $GANTRY_PYTHON, /opt/gantry-py/bin/python, /opt/rtkvenv/bin/python or python3 — or why
/// there is none.
pub fn python_with(modules: &[&str]) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("GANTRY_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/opt/gantry-py/bin/python", "/opt/rtkvenv/bin/python", "python3"].map(PathBuf::from))
        .collect();
    let code: Vec<String> = modules
        .iter()
        .map(|m| match m.rsplit_once('.') {
            Some((package, name)) => format!("from {package} import {name}"),
            None => format!("import {m}"),
        })
        .collect();
    let code = code.join("; ");
    candidates
        .into_iter()
        .find(|c| Command::new(c).args(["-c", &code]).output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| format!("needs a Python with {}", modules.join(", ")))
}

/// A trial that needs `peer`: run when it is there; ignored (with the reason as its kind) when
/// it is not, or failed under CI.
pub fn peer_trial(
    name: &str,
    peer: &Result<PathBuf, String>,
    body: impl FnOnce(&Path) -> Result<(), String> + Send + 'static,
) -> libtest_mimic::Trial {
    match peer.clone() {
        Ok(p) => libtest_mimic::Trial::test(name, move || body(&p).map_err(Into::into)),
        Err(why) if require_peers() => {
            libtest_mimic::Trial::test(
                name,
                move || Err(format!("{why}, which GANTRY_REQUIRE_PEERS=1 requires").into()),
            )
        }
        Err(why) => libtest_mimic::Trial::test(name, || Ok(())).with_kind(why).with_ignored_flag(true),
    }
}

/// Runs `python -c code args…` in `dir`; its stdout, or an error with its stderr.
pub fn python(python: &Path, dir: &Path, code: &str, args: &[&str]) -> Result<String, String> {
    let out =
        Command::new(python).arg("-c").arg(code).args(args).current_dir(dir).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!("python failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Fails with `message` unless `ok`.
pub fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

/// A program on `PATH` (and /usr/sbin, /sbin), or why there is none.
pub fn program(name: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|p| p.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("needs {name} on PATH"))
}
