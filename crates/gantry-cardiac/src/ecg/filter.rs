//! Second-order IIR sections (Butterworth by the bilinear transform) and zero-phase filtering
//! (forward, then backward), so filtered ECG features keep their times.

use std::f64::consts::PI;

/// One second-order section, direct form II transposed: y = (b0 + b1 z⁻¹ + b2 z⁻²) /
/// (1 + a1 z⁻¹ + a2 z⁻²) x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// A second-order Butterworth low-pass at `cutoff_hz` for samples at `fs_hz`.
    pub fn low_pass(cutoff_hz: f64, fs_hz: f64) -> Self {
        let k = (PI * cutoff_hz / fs_hz).tan();
        let q = std::f64::consts::FRAC_1_SQRT_2;
        let norm = 1.0 / (1.0 + k / q + k * k);
        let b0 = k * k * norm;
        Biquad { b: [b0, 2.0 * b0, b0], a: [2.0 * (k * k - 1.0) * norm, (1.0 - k / q + k * k) * norm] }
    }

    /// A second-order Butterworth high-pass at `cutoff_hz` for samples at `fs_hz`.
    pub fn high_pass(cutoff_hz: f64, fs_hz: f64) -> Self {
        let k = (PI * cutoff_hz / fs_hz).tan();
        let q = std::f64::consts::FRAC_1_SQRT_2;
        let norm = 1.0 / (1.0 + k / q + k * k);
        Biquad { b: [norm, -2.0 * norm, norm], a: [2.0 * (k * k - 1.0) * norm, (1.0 - k / q + k * k) * norm] }
    }

    /// The gain at `f_hz` (magnitude of the frequency response).
    pub fn gain(&self, f_hz: f64, fs_hz: f64) -> f64 {
        let w = 2.0 * PI * f_hz / fs_hz;
        let z = |k: f64| (-(k * w)).sin_cos();
        let (s1, c1) = z(1.0);
        let (s2, c2) = z(2.0);
        let num = (self.b[0] + self.b[1] * c1 + self.b[2] * c2, self.b[1] * s1 + self.b[2] * s2);
        let den = (1.0 + self.a[0] * c1 + self.a[1] * c2, self.a[0] * s1 + self.a[1] * s2);
        (num.0.hypot(num.1)) / (den.0.hypot(den.1))
    }

    /// Filters `x` forward in place, starting from the steady state of its first sample (no
    /// start-up transient for a signal that begins off zero).
    fn run(&self, x: &mut [f64]) {
        let Some(&first) = x.first() else { return };
        // Steady state for a constant input `first`: y = gain(DC) · first.
        let dc = (self.b[0] + self.b[1] + self.b[2]) / (1.0 + self.a[0] + self.a[1]);
        let y0 = dc * first;
        let mut s1 = self.b[1] * first - self.a[0] * y0 + (self.b[2] * first - self.a[1] * y0);
        let mut s2 = self.b[2] * first - self.a[1] * y0;
        for v in x.iter_mut() {
            let input = *v;
            let y = self.b[0] * input + s1;
            s1 = self.b[1] * input - self.a[0] * y + s2;
            s2 = self.b[2] * input - self.a[1] * y;
            *v = y;
        }
    }
}

/// A cascade of sections applied forward and then backward: zero phase, the squared magnitude.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroPhase {
    pub sections: Vec<Biquad>,
}

impl ZeroPhase {
    /// A band-pass from `low_hz` to `high_hz` (a Butterworth high-pass and low-pass).
    pub fn band_pass(low_hz: f64, high_hz: f64, fs_hz: f64) -> Self {
        ZeroPhase { sections: vec![Biquad::high_pass(low_hz, fs_hz), Biquad::low_pass(high_hz, fs_hz)] }
    }

    /// The filtered copy of `x`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let mut y = x.to_vec();
        for s in &self.sections {
            s.run(&mut y);
        }
        y.reverse();
        for s in &self.sections {
            s.run(&mut y);
        }
        y.reverse();
        y
    }

    /// The zero-phase gain at `f_hz` (the product of the sections' gains, squared).
    pub fn gain(&self, f_hz: f64, fs_hz: f64) -> f64 {
        self.sections.iter().map(|s| s.gain(f_hz, fs_hz).powi(2)).product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn butterworth_sections_are_half_power_at_the_cutoff() {
        let fs = 1000.0;
        let lp = Biquad::low_pass(15.0, fs);
        assert!((lp.gain(15.0, fs) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-9);
        assert!((lp.gain(0.0, fs) - 1.0).abs() < 1e-12);
        // 12 dB per octave above the cut-off: ≈ 1/16 at four times it.
        assert!((lp.gain(60.0, fs) - 1.0 / 16.0).abs() < 0.01, "{}", lp.gain(60.0, fs));
        let hp = Biquad::high_pass(5.0, fs);
        assert!((hp.gain(5.0, fs) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-9);
        assert!(hp.gain(0.0, fs) < 1e-12);
    }

    #[test]
    fn zero_phase_band_pass_keeps_a_tone_in_band_in_place_and_removes_mains() {
        let fs = 500.0;
        let bp = ZeroPhase::band_pass(5.0, 15.0, fs);
        let tone = |f: f64| (0..5000).map(|i| (2.0 * PI * f * i as f64 / fs).sin()).collect::<Vec<_>>();
        let x = tone(9.0);
        let y = bp.apply(&x);
        let g = bp.gain(9.0, fs);
        // Away from the ends the output is the input scaled by the gain, with no shift.
        let err = (1000..4000).map(|i| (y[i] - g * x[i]).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "{err}");
        let m = bp.apply(&tone(50.0));
        let peak = (1000..4000).map(|i| m[i].abs()).fold(0.0, f64::max);
        assert!(peak < 0.01 && (peak - bp.gain(50.0, fs)).abs() < 2e-3, "{peak}");
    }

    #[test]
    fn a_constant_signal_starts_without_a_transient() {
        let y = ZeroPhase { sections: vec![Biquad::low_pass(15.0, 1000.0)] }.apply(&[2.5; 400]);
        assert!(y.iter().all(|v| (v - 2.5).abs() < 1e-9));
    }
}
