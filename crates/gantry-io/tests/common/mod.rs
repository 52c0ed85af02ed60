//! Shared by the DICOM tests: finding the peer programs they run.
#![allow(dead_code)]

use std::path::PathBuf;

/// Whether a missing peer fails the test (GANTRY_REQUIRE_PEERS=1, as in .ci/run).
pub fn require_peers() -> bool {
    std::env::var("GANTRY_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The path of a peer program, or None (with a message) when absent and not required.
pub fn peer(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(!require_peers(), "{name} is required (GANTRY_REQUIRE_PEERS=1) but not installed");
        eprintln!("skipping: {name} is not installed");
    }
    found
}
