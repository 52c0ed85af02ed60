//! R-peak detection: Pan and Tompkins (IEEE TBME 1985) at the ECG's own sampling rate, with
//! zero-phase filtering so no group delay has to be undone, and each R time refined on the ECG
//! (baseline and mains removed) to the sub-sample maximum of the QRS's dominant polarity.

use super::filter::{Biquad, ZeroPhase};
use gantry_core::CoreError;

/// The detector's settings; the defaults are Pan and Tompkins'.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// QRS band (Hz).
    pub band_hz: (f64, f64),
    /// Moving-window integration (s).
    pub integration_s: f64,
    /// No second QRS within this time of one (s).
    pub refractory_s: f64,
    /// A candidate this soon after a QRS (s) whose slope is under half the QRS's is a T wave.
    pub t_wave_window_s: f64,
    /// Search back with half the threshold when no QRS came within this many mean RR.
    pub search_back_rr: f64,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            band_hz: (5.0, 15.0),
            integration_s: 0.150,
            refractory_s: 0.200,
            t_wave_window_s: 0.360,
            search_back_rr: 1.66,
        }
    }
}

/// Local maxima of `x` at least `gap` samples from a larger one.
fn peaks(x: &[f64], gap: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for i in 1..x.len().saturating_sub(1) {
        if x[i] > x[i - 1] && x[i] >= x[i + 1] {
            match out.last() {
                Some(&j) if i - j < gap => {
                    if x[i] > x[j] {
                        *out.last_mut().expect("one there") = i;
                    }
                }
                _ => out.push(i),
            }
        }
    }
    out
}

/// Running signal and noise levels and the threshold between them.
struct Levels {
    signal: f64,
    noise: f64,
}

impl Levels {
    fn threshold(&self) -> f64 {
        self.noise + 0.25 * (self.signal - self.noise)
    }
}

/// The R-peak times (s) of one lead sampled at `fs_hz` (mV).
pub fn detect_r_peaks(samples_mv: &[f32], fs_hz: f64, settings: &DetectorSettings) -> Result<Vec<f64>, CoreError> {
    if !(fs_hz.is_finite() && fs_hz >= 100.0) {
        return Err(CoreError::invalid("ecg sampling rate (Hz)", fs_hz, "R-peak detection needs at least 100 Hz"));
    }
    let n = samples_mv.len();
    if (n as f64) < 2.0 * fs_hz {
        return Err(CoreError::invalid("ecg samples", n, "R-peak detection needs at least 2 s"));
    }
    if let Some(bad) = samples_mv.iter().find(|v| !v.is_finite()) {
        return Err(CoreError::invalid("ecg sample", bad, "must be finite"));
    }
    let x: Vec<f64> = samples_mv.iter().map(|&v| f64::from(v)).collect();
    let band = ZeroPhase::band_pass(settings.band_hz.0, settings.band_hz.1, fs_hz).apply(&x);
    // Five-point derivative (centred), squared, integrated over a centred window.
    let mut energy = vec![0.0; n];
    for i in 2..n.saturating_sub(2) {
        let d = (2.0 * band[i + 1] + band[i + 2] - 2.0 * band[i - 1] - band[i - 2]) * fs_hz / 8.0;
        energy[i] = d * d;
    }
    let w = ((settings.integration_s * fs_hz).round() as usize).max(1);
    let mut integrated = vec![0.0; n];
    let mut sum = 0.0;
    for i in 0..n + w / 2 {
        if i < n {
            sum += energy[i];
        }
        if i >= w {
            sum -= energy[i - w];
        }
        if i >= w / 2 {
            integrated[i - w / 2] = sum / w as f64;
        }
    }
    let refractory = (settings.refractory_s * fs_hz).round() as usize;
    let candidates = peaks(&integrated, refractory);
    // Levels from the first two seconds, as in the original.
    let learn = (2.0 * fs_hz) as usize;
    let max0 = integrated[..learn].iter().copied().fold(0.0, f64::max);
    let mean0 = integrated[..learn].iter().sum::<f64>() / learn as f64;
    let mut levels = Levels { signal: 0.25 * max0, noise: 0.5 * mean0 };
    let slope = |i: usize| -> f64 {
        let half = (0.075 * fs_hz) as usize;
        let (a, b) = (i.saturating_sub(half).max(1), (i + half).min(n - 1));
        (a..b).map(|k| (band[k] - band[k - 1]).abs()).fold(0.0, f64::max)
    };
    let mut qrs: Vec<usize> = Vec::new();
    let mut last_slope = 0.0;
    let mut rr_mean: Option<f64> = None;
    let mut last_checked = 0usize;
    for (ci, &c) in candidates.iter().enumerate() {
        let v = integrated[c];
        // Search back: no QRS for too long — take the largest candidate since the last one
        // above half the threshold.
        if let (Some(&last), Some(rr)) = (qrs.last(), rr_mean) {
            if (c - last) as f64 > settings.search_back_rr * rr {
                let missed = candidates[last_checked..ci]
                    .iter()
                    .copied()
                    .filter(|&k| k > last + refractory && integrated[k] > 0.5 * levels.threshold())
                    .max_by(|&a, &b| integrated[a].total_cmp(&integrated[b]));
                if let Some(m) = missed {
                    levels.signal = 0.25 * integrated[m] + 0.75 * levels.signal;
                    last_slope = slope(m);
                    qrs.push(m);
                }
            }
        }
        last_checked = ci;
        if v <= levels.threshold() {
            levels.noise = 0.125 * v + 0.875 * levels.noise;
            continue;
        }
        if let Some(&last) = qrs.last() {
            if c <= last + refractory {
                continue;
            }
            // A T wave: soon after the last QRS and with under half its slope.
            let s = slope(c);
            if ((c - last) as f64) < settings.t_wave_window_s * fs_hz && s < 0.5 * last_slope {
                levels.noise = 0.125 * v + 0.875 * levels.noise;
                continue;
            }
        }
        levels.signal = 0.125 * v + 0.875 * levels.signal;
        last_slope = slope(c);
        if let Some(&last) = qrs.last() {
            let rr = (c - last) as f64;
            rr_mean = Some(rr_mean.map_or(rr, |m| 0.875 * m + 0.125 * rr));
        }
        qrs.push(c);
    }
    qrs.sort_unstable();
    qrs.dedup();
    // A QRS cut by the start or end of the recording has no R time to give.
    let edge = EDGE_S * fs_hz;
    let end = (n - 1) as f64 / fs_hz;
    Ok(refine(&x, fs_hz, &qrs).into_iter().flatten().filter(|&t| t * fs_hz >= edge && t <= end - EDGE_S).collect())
}

/// R peaks closer than this to either end of the recording (half a QRS) are not reported.
pub const EDGE_S: f64 = 0.05;

/// Each QRS location moved to the extreme of the QRS's dominant polarity on the ECG with
/// baseline (0.5 Hz) and mains and muscle noise (40 Hz) removed, to a fraction of a sample by
/// a parabola through the three samples at the extreme. The first and last detections are
/// dropped (None) when their extreme lies on the edge of the search window: the signal is still
/// rising there, so the QRS was cut by the recording and what was found is its T wave.
fn refine(x: &[f64], fs: f64, qrs: &[usize]) -> Vec<Option<f64>> {
    let clean = ZeroPhase { sections: vec![Biquad::high_pass(0.5, fs), Biquad::low_pass(40.0, fs)] }.apply(x);
    let half = (0.06 * fs).round() as usize;
    let n = x.len();
    let window = |c: usize| c.saturating_sub(half)..(c + half + 1).min(n);
    // The lead's polarity: positive when the QRS maxima outweigh the minima over the beats.
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for &c in qrs {
        let r = window(c);
        up.push(clean[r.clone()].iter().copied().fold(f64::MIN, f64::max));
        down.push(-clean[r].iter().copied().fold(f64::MAX, f64::min));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let sign = if median(&mut up) >= median(&mut down) { 1.0 } else { -1.0 };
    qrs.iter()
        .enumerate()
        .map(|(k, &c)| {
            let r = window(c);
            let i = r.clone().max_by(|&a, &b| (sign * clean[a]).total_cmp(&(sign * clean[b]))).unwrap_or(c);
            let at_edge = i == r.start || i + 1 == r.end;
            if at_edge && (k == 0 || k + 1 == qrs.len()) {
                return None;
            }
            let mut t = i as f64;
            if i > 0 && i + 1 < n {
                let (a, b, d) = (clean[i - 1] * sign, clean[i] * sign, clean[i + 1] * sign);
                let den = a - 2.0 * b + d;
                if den < 0.0 {
                    t += (0.5 * (a - d) / den).clamp(-0.5, 0.5);
                }
            }
            Some(t / fs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_keep_the_larger_of_two_close_maxima() {
        let x = [0.0, 1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        assert_eq!(peaks(&x, 3), vec![3, 8]);
    }

    #[test]
    fn too_short_too_slow_or_not_finite_input_is_refused() {
        let s = DetectorSettings::default();
        assert!(detect_r_peaks(&[0.0; 100], 250.0, &s).is_err());
        assert!(detect_r_peaks(&[0.0; 1000], 50.0, &s).is_err());
        let mut x = vec![0.0f32; 1000];
        x[10] = f32::NAN;
        assert!(detect_r_peaks(&x, 250.0, &s).unwrap_err().to_string().contains("finite"));
    }
}
