//! A synthetic ECG: each beat a sum of Gaussian waves (P, Q, R, S, T; a premature ventricular
//! beat wide, without P, with its T inverted), the T wave moved with the RR interval (Bazett's
//! √RR), sampled at any rate, plus seeded noise: baseline wander, mains hum, muscle noise and
//! electrode-motion steps. The true R-peak times are the maxima of the noise-free signal.

use gantry_core::{CoreError, Ecg, EcgLead};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The rhythm of a synthetic ECG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rhythm {
    /// Sinus rhythm at `bpm` with 2 % beat-to-beat variability.
    Regular { bpm: f64 },
    /// Sinus rhythm at `bpm` with a premature ventricular beat every `every` beats, arriving
    /// at 0.65 RR and followed by the compensatory pause (the two intervals sum to 2 RR).
    Premature { bpm: f64, every: usize },
    /// Atrial-fibrillation-like: no P waves, fibrillatory waves, RR intervals drawn
    /// independently around 60/`bpm` with a coefficient of variation of 0.2.
    Fibrillation { bpm: f64 },
}

/// Noise added to a synthetic ECG, in mV. [`EcgNoise::realistic`] is a hard ambulatory-like
/// mix; [`EcgNoise::none`] leaves the signal clean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcgNoise {
    /// Baseline wander amplitude (breathing at 0.25 Hz plus a slow drift).
    pub baseline_mv: f64,
    /// Mains hum amplitude and frequency (50 or 60 Hz).
    pub mains_mv: f64,
    pub mains_hz: f64,
    /// Muscle noise: standard deviation of white noise band-limited to about 100 Hz.
    pub muscle_mv: f64,
    /// Electrode motion: steps of this size (random sign) recovering with τ = 0.3 s, this many
    /// per minute.
    pub motion_mv: f64,
    pub motion_per_min: f64,
}

impl EcgNoise {
    pub fn none() -> Self {
        EcgNoise {
            baseline_mv: 0.0,
            mains_mv: 0.0,
            mains_hz: 50.0,
            muscle_mv: 0.0,
            motion_mv: 0.0,
            motion_per_min: 0.0,
        }
    }
    pub fn realistic() -> Self {
        EcgNoise {
            baseline_mv: 0.4,
            mains_mv: 0.15,
            mains_hz: 50.0,
            muscle_mv: 0.05,
            motion_mv: 0.6,
            motion_per_min: 4.0,
        }
    }
}

/// A synthetic ECG with its truth.
#[derive(Debug, Clone)]
pub struct SyntheticEcg {
    /// One lead ("II") in mV.
    pub ecg: Ecg,
    /// True R-peak times (s): the maxima of the noise-free signal.
    pub r_peaks_s: Vec<f64>,
    /// Which beats are premature ventricular beats.
    pub premature: Vec<bool>,
}

/// One Gaussian wave: amplitude (mV), offset from the beat's R time (s), width σ (s).
#[derive(Debug, Clone, Copy)]
struct Wave {
    a: f64,
    t: f64,
    sigma: f64,
}

/// The waves of a beat ending an interval of `rr` seconds.
fn beat_waves(rr: f64, premature: bool, fibrillation: bool) -> Vec<Wave> {
    let h = rr.clamp(0.3, 2.0).sqrt();
    if premature {
        return vec![
            Wave { a: 1.5, t: 0.0, sigma: 0.028 },
            Wave { a: -0.4, t: 0.06, sigma: 0.03 },
            Wave { a: -0.35, t: 0.3 * h, sigma: 0.06 * h },
        ];
    }
    let mut w = vec![
        Wave { a: -0.12, t: -0.028, sigma: 0.008 },
        Wave { a: 1.2, t: 0.0, sigma: 0.010 },
        Wave { a: -0.25, t: 0.026, sigma: 0.009 },
        Wave { a: 0.32, t: 0.26 * h, sigma: 0.045 * h },
    ];
    if !fibrillation {
        w.push(Wave { a: 0.15, t: -0.17 * h.min(1.0), sigma: 0.022 });
    }
    w
}

fn waves_at(t: f64, beats: &[(f64, Vec<Wave>)], first: usize) -> f64 {
    let mut v = 0.0;
    for (r, waves) in &beats[first..] {
        if *r > t + 0.6 {
            break;
        }
        for w in waves {
            let d = t - r - w.t;
            if d.abs() < 6.0 * w.sigma {
                v += w.a * (-0.5 * (d / w.sigma).powi(2)).exp();
            }
        }
    }
    v
}

/// The R times and beat kinds (premature or not) of `rhythm` over `duration_s`, starting
/// 0.3–0.6 s in.
fn beat_times(rhythm: Rhythm, duration_s: f64, rng: &mut ChaCha8Rng) -> Vec<(f64, bool)> {
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let premature = |k: usize| matches!(rhythm, Rhythm::Premature { every, .. } if every > 1 && k % every == every - 1);
    let mut out = Vec::new();
    let mut t = 0.3 + rng.random::<f64>() * 0.3;
    let mut k = 0usize;
    while t < duration_s - 0.3 {
        out.push((t, premature(k)));
        k += 1;
        // The interval before beat k.
        let rr = match rhythm {
            Rhythm::Fibrillation { bpm } => (60.0 / bpm * (1.0 + 0.2 * normal.sample(rng))).clamp(0.3, 2.0),
            Rhythm::Regular { bpm } | Rhythm::Premature { bpm, .. } => {
                let rr0 = 60.0 / bpm;
                if premature(k) {
                    0.65 * rr0
                } else if premature(k - 1) {
                    1.35 * rr0
                } else {
                    rr0 * (1.0 + 0.02 * normal.sample(rng))
                }
            }
        };
        t += rr;
    }
    out
}

/// A synthetic single-lead ECG of `duration_s` at `sampling_hz`, seeded.
pub fn synthetic_ecg(
    rhythm: Rhythm,
    duration_s: f64,
    sampling_hz: f64,
    noise: EcgNoise,
    seed: u64,
) -> Result<SyntheticEcg, CoreError> {
    let bpm = match rhythm {
        Rhythm::Regular { bpm } | Rhythm::Premature { bpm, .. } | Rhythm::Fibrillation { bpm } => bpm,
    };
    if !(bpm.is_finite() && (20.0..=250.0).contains(&bpm)) {
        return Err(CoreError::invalid("ecg heart rate (bpm)", bpm, "must be 20 to 250"));
    }
    if !(duration_s.is_finite() && duration_s >= 2.0) {
        return Err(CoreError::invalid("ecg duration (s)", duration_s, "must be at least 2 s"));
    }
    if !(sampling_hz.is_finite() && sampling_hz >= 100.0) {
        return Err(CoreError::invalid("ecg sampling rate (Hz)", sampling_hz, "must be at least 100 Hz"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fib = matches!(rhythm, Rhythm::Fibrillation { .. });
    let times = beat_times(rhythm, duration_s, &mut rng);
    let beats: Vec<(f64, Vec<Wave>)> = times
        .iter()
        .enumerate()
        .map(|(i, &(t, p))| {
            let rr = if i > 0 { t - times[i - 1].0 } else { 60.0 / bpm };
            (t, beat_waves(rr, p, fib))
        })
        .collect();
    let n = (duration_s * sampling_hz).round() as usize;
    let mut first = 0usize;
    let mut clean = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / sampling_hz;
        while first + 1 < beats.len() && beats[first].0 < t - 1.5 {
            first += 1;
        }
        clean.push(waves_at(t, &beats, first));
    }
    // True R times: the noise-free maximum near each R wave, to 0.1 ms.
    let r_peaks_s: Vec<f64> = beats
        .iter()
        .map(|(r, _)| {
            let f = beats.partition_point(|(b, _)| *b < r - 1.5);
            (-300..=300)
                .map(|k| r + k as f64 * 1e-4)
                .max_by(|a, b| waves_at(*a, &beats, f).total_cmp(&waves_at(*b, &beats, f)))
                .unwrap_or(*r)
        })
        .collect();
    let signal = add_noise(clean, sampling_hz, noise, fib, &mut rng);
    let samples_mv = signal.iter().map(|&v| v as f32).collect();
    let ecg = Ecg::new(sampling_hz, vec![EcgLead { name: "II".into(), samples_mv }])?;
    Ok(SyntheticEcg { ecg, r_peaks_s, premature: times.iter().map(|t| t.1).collect() })
}

fn add_noise(mut x: Vec<f64>, fs: f64, noise: EcgNoise, fibrillation: bool, rng: &mut ChaCha8Rng) -> Vec<f64> {
    use std::f64::consts::PI;
    let phase: [f64; 4] = std::array::from_fn(|_| rng.random::<f64>() * 2.0 * PI);
    let normal = Normal::new(0.0, 1.0).unwrap();
    // Muscle noise: white noise smoothed over ~5 ms (band-limited to about 100 Hz).
    let width = ((fs / 200.0).round() as usize).max(1);
    let white: Vec<f64> = (0..x.len() + width).map(|_| normal.sample(rng)).collect();
    let scale = noise.muscle_mv * (width as f64).sqrt() / width as f64;
    let steps_per_sample = noise.motion_per_min / 60.0 / fs;
    let mut motion = 0.0;
    let decay = (-1.0 / (0.3 * fs)).exp();
    let mut window: f64 = white[..width].iter().sum();
    for (i, v) in x.iter_mut().enumerate() {
        let t = i as f64 / fs;
        let wander = noise.baseline_mv
            * (0.75 * (2.0 * PI * 0.25 * t + phase[0]).sin() + 0.5 * (2.0 * PI * 0.04 * t + phase[1]).sin());
        let mains = noise.mains_mv * (2.0 * PI * noise.mains_hz * t + phase[2]).sin();
        if rng.random::<f64>() < steps_per_sample {
            motion += noise.motion_mv * if rng.random::<bool>() { 1.0 } else { -1.0 };
        }
        motion *= decay;
        let muscle = scale * window;
        window += white[i + width] - white[i];
        let f_waves =
            if fibrillation { 0.05 * (2.0 * PI * 6.0 * t + phase[3] + 0.5 * (0.7 * t).sin()).sin() } else { 0.0 };
        *v += wander + mains + motion + muscle + f_waves;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premature_beats_come_early_and_are_followed_by_the_compensatory_pause() {
        let s = synthetic_ecg(Rhythm::Premature { bpm: 60.0, every: 5 }, 30.0, 1000.0, EcgNoise::none(), 1).unwrap();
        let rr: Vec<f64> = s.r_peaks_s.windows(2).map(|w| w[1] - w[0]).collect();
        let mut seen = 0;
        for (k, &p) in s.premature.iter().enumerate().skip(1) {
            if p && k < rr.len() {
                seen += 1;
                assert!((rr[k - 1] - 0.65).abs() < 0.08, "beat {k}: RR {}", rr[k - 1]);
                assert!((rr[k - 1] + rr[k] - 2.0).abs() < 0.08, "beat {k}: {} + {}", rr[k - 1], rr[k]);
            }
        }
        assert!(seen >= 5, "{seen}");
    }

    #[test]
    fn the_same_seed_gives_the_same_ecg_and_bad_input_is_refused() {
        let a = synthetic_ecg(Rhythm::Fibrillation { bpm: 90.0 }, 10.0, 500.0, EcgNoise::realistic(), 3).unwrap();
        let b = synthetic_ecg(Rhythm::Fibrillation { bpm: 90.0 }, 10.0, 500.0, EcgNoise::realistic(), 3).unwrap();
        assert_eq!(a.ecg, b.ecg);
        assert!(synthetic_ecg(Rhythm::Regular { bpm: f64::NAN }, 10.0, 500.0, EcgNoise::none(), 1).is_err());
        assert!(synthetic_ecg(Rhythm::Regular { bpm: 60.0 }, 10.0, 50.0, EcgNoise::none(), 1).is_err());
    }
}
