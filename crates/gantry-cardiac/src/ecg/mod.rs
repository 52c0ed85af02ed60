//! The ECG: synthetic rhythms, R-peak detection, beat classification and cardiac phases.

mod beats;
mod detect;
mod filter;
mod synth;

pub use beats::{classify_beats, BeatClass, BeatReport, CardiacPhase, Rhythm as RhythmCall};
pub use detect::{detect_r_peaks, DetectorSettings};
pub use filter::{Biquad, ZeroPhase};
pub use synth::{synthetic_ecg, EcgNoise, Rhythm, SyntheticEcg};
