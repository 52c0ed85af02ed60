//! The ramp filter of filtered backprojection, with apodisation windows and zero padding.
//!
//! The kernel is the band-limited ramp sampled in space (Ram–Lak: h(0) = 1/(4Δ²),
//! h(odd n) = −1/(n²π²Δ²), 0 for even n), so the discrete filter has no DC error; it is
//! transformed once and multiplied, row by row, in the frequency domain of a zero-padded FFT.
//! For a cylindrical detector the kernel carries the equiangular factor (γ/sin γ)².
//! The factor ½ of full-scan redundancy and the sample spacing Δ are folded in, so a filtered
//! row is ready for `SID·SDD/D²`-weighted backprojection.

use gantry_core::{CoreError, DetectorShape, Result};
use ndarray::ArrayViewMut2;
use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Apodisation window of the ramp, as a function of frequency up to the cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    /// The plain ramp: sharpest, noisiest.
    #[default]
    RamLak,
    /// Ramp × sinc: the classic compromise.
    SheppLogan,
    /// Ramp × cos.
    Cosine,
    /// Ramp × (0.54 + 0.46 cos).
    Hamming,
    /// Ramp × (0.5 + 0.5 cos): smoothest.
    Hann,
}

impl Window {
    /// The window's value at `x` = frequency / cut-off frequency, 0 ≤ x ≤ 1.
    pub fn value(self, x: f64) -> f64 {
        use std::f64::consts::PI;
        match self {
            Window::RamLak => 1.0,
            Window::SheppLogan => {
                let a = 0.5 * PI * x;
                if a == 0.0 {
                    1.0
                } else {
                    a.sin() / a
                }
            }
            Window::Cosine => (0.5 * PI * x).cos(),
            Window::Hamming => 0.54 + 0.46 * (PI * x).cos(),
            Window::Hann => 0.5 + 0.5 * (PI * x).cos(),
        }
    }

    pub fn parse(name: &str) -> Result<Window> {
        Ok(match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "ram-lak" | "ramlak" | "ramp" => Window::RamLak,
            "shepp-logan" | "shepplogan" => Window::SheppLogan,
            "cosine" | "cos" => Window::Cosine,
            "hamming" => Window::Hamming,
            "hann" | "hanning" => Window::Hann,
            _ => {
                return Err(CoreError::invalid(
                    "filter window",
                    name,
                    "choose ram-lak, shepp-logan, cosine, hamming or hann",
                ))
            }
        })
    }
}

/// The smallest even number ≥ `n` whose only prime factors are 2, 3 and 5.
pub fn smooth_size(n: usize) -> usize {
    (n.max(2)..)
        .find(|&m| {
            let mut r = m;
            for p in [2, 3, 5] {
                while r % p == 0 {
                    r /= p;
                }
            }
            r == 1 && m % 2 == 0
        })
        .expect("smooth numbers are unbounded")
}

/// A ramp filter for rows of `n` samples, ready to apply.
pub struct RampFilter {
    n: usize,
    padded: usize,
    spectrum: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl RampFilter {
    /// A filter for rows of `n` samples `spacing_mm` apart on a `shape` detector at `sdd_mm`
    /// from the source, with `window` and cut-off `cutoff` (fraction of Nyquist, 0 < c ≤ 1).
    pub fn new(
        n: usize,
        spacing_mm: f64,
        shape: DetectorShape,
        sdd_mm: f64,
        window: Window,
        cutoff: f64,
    ) -> Result<Self> {
        if !(cutoff.is_finite() && cutoff > 0.0 && cutoff <= 1.0) {
            return Err(CoreError::invalid("filter cutoff", cutoff, "must be in (0, 1] (a fraction of Nyquist)"));
        }
        if n == 0 {
            return Err(CoreError::invalid("detector.n_cols", 0, "must be at least 1"));
        }
        // Linear convolution of n samples with a kernel of support 2n−1 needs ≥ 2n−1 points;
        // the next even size with only factors 2, 3 and 5 keeps the FFT fast and the padding
        // small (2496 → 2500 rather than 4096).
        let padded = smooth_size((2 * n).max(64));
        let d = spacing_mm;
        let mut kernel = vec![0.0f64; padded];
        let half = padded / 2;
        for (i, k) in kernel.iter_mut().enumerate() {
            let n_signed = if i <= half { i as i64 } else { i as i64 - padded as i64 };
            let h = if n_signed == 0 {
                1.0 / (4.0 * d * d)
            } else if n_signed % 2 != 0 {
                -1.0 / ((n_signed * n_signed) as f64 * std::f64::consts::PI.powi(2) * d * d)
            } else {
                0.0
            };
            let equiangular = match shape {
                DetectorShape::Flat => 1.0,
                DetectorShape::Cylindrical => {
                    let g = n_signed as f64 * d / sdd_mm;
                    if g == 0.0 {
                        1.0
                    } else {
                        (g / g.sin()).powi(2)
                    }
                }
            };
            // ½ for the redundancy of a full turn, Δ for the convolution sum.
            *k = 0.5 * d * h * equiangular;
        }
        let mut planner = RealFftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(padded);
        let inverse = planner.plan_fft_inverse(padded);
        let mut input: Vec<f32> = kernel.iter().map(|&k| k as f32).collect();
        let mut spec = forward.make_output_vec();
        forward.process(&mut input, &mut spec).expect("sizes from the same plan");
        let n_freq = spec.len();
        let spectrum = spec
            .iter()
            .enumerate()
            .map(|(k, c)| {
                // Frequency as a fraction of Nyquist.
                let x = k as f64 / (n_freq - 1) as f64 / cutoff;
                let w = if x > 1.0 { 0.0 } else { window.value(x) };
                // The kernel is real and even, so its transform is real; 1/N for the inverse.
                (c.re as f64 * w / padded as f64) as f32
            })
            .collect();
        Ok(RampFilter { n, padded, spectrum, forward, inverse })
    }

    /// The filter's frequency response (real), from DC to Nyquist, without the 1/N factor.
    pub fn response(&self) -> Vec<f32> {
        self.spectrum.iter().map(|s| s * self.padded as f32).collect()
    }

    /// Filters every row (last axis) of `rows` in place, in parallel.
    pub fn apply(&self, mut rows: ArrayViewMut2<f32>) -> Result<()> {
        if rows.shape()[1] != self.n {
            return Err(CoreError::size_mismatch("filtered row length", self.n, rows.shape()[1]));
        }
        let rows_vec: Vec<_> = rows.rows_mut().into_iter().collect();
        rows_vec.into_par_iter().for_each_init(
            || {
                (
                    self.forward.make_input_vec(),
                    self.forward.make_output_vec(),
                    self.forward.make_scratch_vec(),
                    self.inverse.make_scratch_vec(),
                )
            },
            |(buf, spec, s1, s2), mut row| {
                buf[..self.n].iter_mut().zip(row.iter()).for_each(|(b, r)| *b = *r);
                buf[self.n..].iter_mut().for_each(|b| *b = 0.0);
                self.forward.process_with_scratch(buf, spec, s1).expect("planned sizes");
                spec.iter_mut().zip(&self.spectrum).for_each(|(c, h): (&mut Complex32, &f32)| *c *= *h);
                // The imaginary parts of DC and Nyquist are zero for real input; make it exact.
                spec[0].im = 0.0;
                if let Some(last) = spec.last_mut() {
                    last.im = 0.0;
                }
                self.inverse.process_with_scratch(spec, buf, s2).expect("planned sizes");
                row.iter_mut().zip(buf.iter()).for_each(|(r, b)| *r = *b);
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ramp_response_is_linear_in_frequency() {
        // The band-limited ramp's response is |f| (in cycles/mm) times ½: at Nyquist ½·1/(2Δ).
        let d = 0.8;
        let f = RampFilter::new(256, d, DetectorShape::Flat, 1000.0, Window::RamLak, 1.0).unwrap();
        let r = f.response();
        let n = r.len() - 1;
        for k in [n / 8, n / 4, n / 2, 3 * n / 4] {
            let freq = k as f64 / n as f64 * 0.5 / d;
            assert!((r[k] as f64 - 0.5 * freq).abs() < 2e-3 * 0.5 * 0.5 / d, "k {k}: {} vs {}", r[k], 0.5 * freq);
        }
        // The spatial kernel's DC is ½·(1/(4Δ²) − 2Σ 1/(n²π²Δ²))·Δ → 0 as the padding grows.
        assert!(r[0].abs() < 2e-3 * r[n], "DC {}", r[0]);
    }

    #[test]
    fn windows_fall_off_as_defined() {
        for w in [Window::SheppLogan, Window::Cosine, Window::Hamming, Window::Hann] {
            assert_eq!(w.value(0.0), 1.0);
            assert!(w.value(1.0) < w.value(0.5) && w.value(0.5) < 1.0);
        }
        assert!((Window::Hann.value(1.0)).abs() < 1e-12);
        assert!((Window::Hamming.value(1.0) - 0.08).abs() < 1e-12);
        assert!((Window::Cosine.value(1.0)).abs() < 1e-12);
        assert!((Window::SheppLogan.value(1.0) - 2.0 / std::f64::consts::PI).abs() < 1e-12);
        assert!(Window::parse("hann").is_ok() && Window::parse("Shepp_Logan").is_ok());
        assert!(Window::parse("box").unwrap_err().to_string().contains("box"));
    }

    #[test]
    fn filtering_a_constant_row_keeps_the_interior_near_zero_mean_and_checks_length() {
        let f = RampFilter::new(64, 1.0, DetectorShape::Flat, 1000.0, Window::RamLak, 1.0).unwrap();
        let mut rows = Array2::<f32>::zeros((2, 64));
        rows.row_mut(0)[32] = 1.0;
        f.apply(rows.view_mut()).unwrap();
        // An impulse gives back the kernel: ½·Δ·h(0) at the centre, ½·Δ·h(1) beside it.
        assert!((rows[[0, 32]] - 0.125).abs() < 1e-5, "{}", rows[[0, 32]]);
        assert!((rows[[0, 33]] + 0.5 / std::f32::consts::PI.powi(2)).abs() < 1e-5);
        assert!(rows[[0, 34]].abs() < 1e-5);
        let mut bad = Array2::<f32>::zeros((2, 63));
        assert!(f.apply(bad.view_mut()).is_err());
    }
}
