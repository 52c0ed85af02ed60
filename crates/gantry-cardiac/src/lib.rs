//! Cardiac CT. So far the ECG, which every later step (prospective triggering, the phase of a
//! short scan, best phase, motion correction) is timed by:
//!
//! - [`ecg::synthetic_ecg`]: a seeded synthetic ECG at any rate and rhythm (regular, premature
//!   ventricular beats with compensatory pauses, atrial-fibrillation-like irregular RR) with
//!   baseline wander, mains hum, muscle noise and electrode motion, and its true R-peak times;
//! - [`ecg::detect_r_peaks`]: Pan–Tompkins QRS detection (band-pass 5–15 Hz, derivative,
//!   squaring, 150 ms integration, adaptive thresholds, search-back, T-wave discrimination)
//!   with each R time refined on the ECG itself to a fraction of a sample;
//! - [`ecg::classify_beats`]: normal, premature and compensatory-pause beats against the
//!   running median of the preceding normal RR intervals, the next RR predicted for triggering,
//!   the rhythm called regular or irregular;
//! - [`ecg::CardiacPhase`]: a time as % RR and as ms after the preceding R.
//!
//! Times are in seconds, ECG samples in mV ([`gantry_core::Ecg`]).

pub mod ecg;
