//! Simulated detection: line integrals → counts with Poisson quantum noise and Gaussian
//! electronic noise, reproducible from a seed.

use gantry_core::{CoreError, ProjectionStack, Result};
use ndarray::Axis;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Detector and tube settings for a simulated acquisition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// Mean detected photons per detector pixel and view without an object (the air scan).
    pub unattenuated_counts: f64,
    /// Standard deviation of the electronic noise, in counts.
    pub electronic_noise_counts: f64,
    /// Seed: the same seed gives the same counts.
    pub seed: u64,
}

impl Acquisition {
    pub fn validate(&self) -> Result<()> {
        if !(self.unattenuated_counts.is_finite() && self.unattenuated_counts > 0.0) {
            return Err(CoreError::invalid(
                "unattenuated_counts",
                self.unattenuated_counts,
                "must be finite and positive",
            ));
        }
        if !(self.electronic_noise_counts.is_finite() && self.electronic_noise_counts >= 0.0) {
            return Err(CoreError::invalid(
                "electronic_noise_counts",
                self.electronic_noise_counts,
                "must be finite and not negative",
            ));
        }
        Ok(())
    }

    /// Detected counts for every pixel of `line_integrals`. Each view draws from its own stream
    /// of one seeded generator, so the result does not depend on the number of threads.
    pub fn detect(&self, line_integrals: &ProjectionStack) -> Result<ProjectionStack> {
        self.validate()?;
        let mut out = line_integrals.clone();
        let i0 = self.unattenuated_counts;
        let sigma = self.electronic_noise_counts;
        out.data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(view, mut proj)| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(view as u64);
            let normal = Normal::new(0.0, sigma.max(f64::MIN_POSITIVE)).expect("finite sigma");
            for p in proj.iter_mut() {
                let mean = i0 * (-(*p as f64)).exp();
                let quanta =
                    if mean > 0.0 { Poisson::new(mean).map(|d| d.sample(&mut rng)).unwrap_or(mean) } else { 0.0 };
                let e = if sigma > 0.0 { normal.sample(&mut rng) } else { 0.0 };
                *p = (quanta + e) as f32;
            }
        });
        Ok(out)
    }

    /// Predicted variance of a log-converted line integral of value `p`: 1/N + σₑ²/N² with
    /// N = I₀·e^(−p) the mean count (first-order propagation through −ln).
    pub fn line_integral_variance(&self, p: f64) -> f64 {
        let n = self.unattenuated_counts * (-p).exp();
        1.0 / n + self.electronic_noise_counts.powi(2) / (n * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::ScanProtocol;

    #[test]
    fn counts_have_poisson_mean_and_variance_and_are_reproducible() {
        let g = ScanProtocol::circular_flat(500.0, 1000.0, 8, 64, 64, 1.0).build().unwrap();
        let mut li = ProjectionStack::zeros(g);
        li.data.fill(1.0);
        let acq = Acquisition { unattenuated_counts: 1000.0, electronic_noise_counts: 3.0, seed: 7 };
        let c = acq.detect(&li).unwrap();
        let n = c.data.len() as f64;
        let mean = c.data.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = c.data.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let m = 1000.0 * (-1.0f64).exp();
        assert!((mean - m).abs() < 4.0 * (m / n).sqrt(), "{mean} vs {m}");
        let want_var = m + 9.0;
        assert!((var - want_var).abs() < 0.05 * want_var, "{var} vs {want_var}");
        assert_eq!(c, acq.detect(&li).unwrap());
        let other = Acquisition { seed: 8, ..acq.clone() }.detect(&li).unwrap();
        assert_ne!(c, other);
        assert!(Acquisition { unattenuated_counts: f64::NAN, ..acq }.detect(&li).is_err());
    }
}
