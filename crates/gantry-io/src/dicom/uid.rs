//! Unique identifiers for what Gantry writes.
//!
//! Gantry has no registered organisational root, so it uses the root the standard gives to
//! everyone: `2.25.` followed by a 128-bit number written in decimal (PS3.5 B.2, UUID-derived
//! UIDs). Numbers are random by default; with a seed they repeat exactly, so a test or a
//! reproducible run writes byte-identical files.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The implementation class UID in the file meta header of every file Gantry writes.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.246170932613281207493925718916412651233";
/// The implementation version name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = "GANTRY_0_1";

/// Makes UIDs `2.25.<128-bit decimal>`.
#[derive(Debug, Clone)]
pub struct UidGenerator {
    rng: ChaCha8Rng,
}

impl UidGenerator {
    /// Random UIDs (seeded from the operating system).
    pub fn random() -> Self {
        UidGenerator { rng: ChaCha8Rng::from_rng(&mut rand::rng()) }
    }

    /// A reproducible sequence of UIDs.
    pub fn seeded(seed: u64) -> Self {
        UidGenerator { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `given` when it is set, else the next UID.
    pub fn given_or_new(&mut self, given: &str) -> String {
        if given.is_empty() {
            self.next_uid()
        } else {
            given.to_string()
        }
    }

    /// The next UID. The number has its top bit cleared as a UUID's variant bits would leave
    /// it, and is never zero, so the UID is at most 44 characters (the limit is 64).
    pub fn next_uid(&mut self) -> String {
        let n: u128 = self.rng.random::<u128>() >> 1 | 1;
        format!("2.25.{n}")
    }
}

/// Whether `uid` is a syntactically valid UID: 1–64 characters, dot-separated numbers without
/// leading zeros.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_unique_and_reproducible() {
        let mut g = UidGenerator::seeded(7);
        let a: Vec<String> = (0..100).map(|_| g.next_uid()).collect();
        assert!(a.iter().all(|u| is_valid_uid(u)), "{a:?}");
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), 100);
        let mut h = UidGenerator::seeded(7);
        assert_eq!(h.next_uid(), a[0]);
        assert!(is_valid_uid(IMPLEMENTATION_CLASS_UID));
        assert!(!is_valid_uid("1.02.3"));
        assert!(!is_valid_uid("1..3"));
        assert!(IMPLEMENTATION_VERSION_NAME.len() <= 16);
    }
}
