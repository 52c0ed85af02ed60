//! # gantry-perfusion
//!
//! CT perfusion from enhancement curves (ΔHU over time), as named steps:
//!
//! - [`TipsFilter`]: edge-preserving denoising — each voxel's curve averaged with its
//!   neighbours' in proportion to how alike their whole time curves are ([`noise_sigma`] gives
//!   the per-voxel noise it judges against).
//! - [`ModelFit`]: the default estimator — the indicator-dilution model (residue of a family
//!   from exponential to box, arrival delay, flow) fitted to each curve by a dictionary search;
//!   unbiased where deconvolution is not (CBF at short MTT, Tmax).
//! - [`ModelFit::fit_guided`] and [`regional_flow`]: the two-scale fit — the model from a
//!   regional mean curve, the flow from each voxel's own curve projected on it — which stays
//!   unbiased at low flow under noise, where a per-voxel best fit reads high.
//! - [`decide`]: core, hypoperfusion, mismatch, the DEFUSE-3 and EXTEND criteria;
//!   [`precision`]: the noise's spatial correlation, 95 % intervals of the volumes, and whether
//!   a criterion could go either way.
//! - Per-curve deconvolution ([`estimate_curve`]), for comparison and as options:
//! - [`Method`]: block-circulant deconvolution (delay-insensitive, Wu 2003) with a fixed
//!   truncation or with the oscillation-index choice of truncation per curve (the default),
//!   standard (lower-triangular) truncated SVD, and Tikhonov on the block-circulant form.
//!   The block-circulant matrix is diagonalised by the DFT, so its singular values are |FFT(a)|
//!   and the whole solve is three FFTs.
//! - [`estimate_curve`]: CBF (mL/100 g/min) = (k_H/ρ)·6000·max k; CBV (mL/100 g) =
//!   (k_H/ρ)·100·∫c/∫a; MTT (s) = 60·CBV/CBF; Tmax (s) = argmax k with parabolic sub-sample
//!   refinement, negative delays unwrapped (never wrapped to the end of the window); TTP (s).
//!
//! ```
//! use gantry_perfusion::{estimate_curve, Constants, Method};
//! let dt = 1.0;
//! let aif: Vec<f64> = (0..60).map(|i| if i > 8 { ((i - 8) as f64).powi(2) * (-((i - 8) as f64) / 2.0).exp() } else { 0.0 }).collect();
//! // A tissue whose flow-scaled residue is a 4 s box: c = a ⊗ k·Δt.
//! let k = 0.01;
//! let tissue: Vec<f64> = (0..60).map(|i| (0..4).filter(|&j| j <= i).map(|j| aif[i - j] * k * dt).sum()).collect();
//! let e = estimate_curve(&aif, &tissue, dt, Method::BlockCirculant { threshold: 0.0 }, Constants::default()).unwrap();
//! assert!((e.cbf - 0.73 / 1.04 * 6000.0 * k).abs() < 1e-6);
//! ```

mod decision;
mod denoise;
mod fit;
mod motion;
mod pipeline;
mod precision;
mod summed_area;

pub use decision::{core_mask, decide, hypoperfused_mask, trial_criteria, Decision, Side, Thresholds};
pub use denoise::{correlation_factor, noise_sigma, TipsFilter};
pub use fit::{FitEstimate, FitGrid, ModelFit, ResidueShape};
pub use motion::{correct_motion, FrameMotion, RigidTransform};
pub use pipeline::{
    bin_tissue, bolus_timing, connected_regions, enhancement, fill_small_patches, fit_maps, intracranial_mask,
    majority, mean_frames, median_clean, pool_untimeable, regional_flow, run_stroke, select_vessels, tissue_mask,
    BinnedCurves, BolusTiming, Estimator, PerfusionMaps, QualityFlag, RegionalWindow, StrokeOptions, StrokeResult,
    VascularCurve, MIN_POOLED_VOXELS, POOL_WINDOW_MM, VALIDATED_NOISE_HU,
};
pub use precision::{precision, CountedMaps, Interval, Precision, INTERVAL_Z};

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum PerfusionError {
    #[error("invalid {field} = {value}: {reason}")]
    Invalid { field: String, value: String, reason: String },
}

fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> PerfusionError {
    PerfusionError::Invalid { field: field.into(), value: value.to_string(), reason: reason.into() }
}

/// Tissue density and haematocrit correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    /// g/mL (brain: 1.04).
    pub density_g_per_ml: f64,
    /// (1 − H_large)/(1 − H_small) (0.73).
    pub hematocrit_factor: f64,
}

impl Default for Constants {
    fn default() -> Self {
        Constants { density_g_per_ml: 1.04, hematocrit_factor: 0.73 }
    }
}

/// How the flow-scaled residue k(t) is recovered from c = a ⊗ k.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Block-circulant SVD, the truncation chosen per curve: the least regularisation whose
    /// estimate has an oscillation index at most `oi_max` (Wu et al. 2003).
    BlockCirculantOi { oi_max: f64 },
    /// Block-circulant SVD truncated at `threshold` × the largest singular value.
    BlockCirculant { threshold: f64 },
    /// Standard truncated SVD of the lower-triangular (causal) matrix: sensitive to delay.
    Standard { threshold: f64 },
    /// Tikhonov on the block-circulant form: filter factors σ²/(σ² + (λ·σ_max)²).
    Tikhonov { lambda: f64 },
}

impl Default for Method {
    fn default() -> Self {
        Method::BlockCirculantOi { oi_max: 0.035 }
    }
}

/// What one tissue curve gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveEstimate {
    /// mL/100 g/min.
    pub cbf: f64,
    /// mL/100 g.
    pub cbv: f64,
    /// s.
    pub mtt_s: f64,
    /// s, from the arterial input's time origin; negative when the tissue leads the input.
    pub tmax_s: f64,
    /// s from the first sample.
    pub ttp_s: f64,
}

/// The oscillation index of a residue estimate (Wu 2003): (1/L)·(1/max k)·Σ|k_j − 2k_{j−1} + k_{j−2}|.
pub fn oscillation_index(k: &[f64]) -> f64 {
    let max = k.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if max.is_nan() || max <= 0.0 || k.len() < 3 {
        return f64::INFINITY;
    }
    let s: f64 = k.windows(3).map(|w| (w[2] - 2.0 * w[1] + w[0]).abs()).sum();
    s / (k.len() as f64 * max)
}

fn check(aif: &[f64], tissue: &[f64], dt_s: f64) -> Result<(), PerfusionError> {
    if aif.len() != tissue.len() {
        return Err(invalid(
            "tissue curve length",
            tissue.len(),
            &format!("must equal the arterial curve's {}", aif.len()),
        ));
    }
    if aif.len() < 4 {
        return Err(invalid("curve length", aif.len(), "needs at least 4 samples"));
    }
    if !(dt_s.is_finite() && dt_s > 0.0) {
        return Err(invalid("sampling interval dt_s", dt_s, "must be finite and positive"));
    }
    if let Some(v) = aif.iter().chain(tissue).find(|v| !v.is_finite()) {
        return Err(invalid("curve sample", v, "must be finite"));
    }
    let area: f64 = aif.iter().sum();
    if area.is_nan() || area <= 0.0 {
        return Err(invalid("arterial curve area", area * dt_s, "must be positive (no enhancement?)"));
    }
    Ok(())
}

/// Block-circulant solve for a given filter on the singular values (|A| → factor).
fn circulant_solve(
    a_f: &[Complex<f64>],
    c_f: &[Complex<f64>],
    filter: impl Fn(f64) -> f64,
    planner: &mut FftPlanner<f64>,
) -> Vec<f64> {
    let l = a_f.len();
    let mut k: Vec<Complex<f64>> = a_f
        .iter()
        .zip(c_f)
        .map(|(a, c)| {
            let s = a.norm();
            let f = filter(s);
            if f == 0.0 || s == 0.0 {
                Complex::new(0.0, 0.0)
            } else {
                c / a * f
            }
        })
        .collect();
    planner.plan_fft_inverse(l).process(&mut k);
    k.iter().map(|z| z.re / l as f64).collect()
}

/// Standard truncated SVD of the causal Toeplitz matrix A_ij = Δt·a(i − j), i ≥ j.
fn standard_svd(aif: &[f64], tissue: &[f64], dt: f64, threshold: f64) -> Vec<f64> {
    let n = aif.len();
    let a = nalgebra::DMatrix::from_fn(n, n, |i, j| if i >= j { dt * aif[i - j] } else { 0.0 });
    let svd = a.svd(true, true);
    let (u, v_t, s) = (svd.u.expect("u"), svd.v_t.expect("v_t"), svd.singular_values);
    let smax = s.iter().cloned().fold(0.0, f64::max);
    let c = nalgebra::DVector::from_column_slice(tissue);
    let utc = u.transpose() * c;
    let mut k = nalgebra::DVector::zeros(n);
    for i in 0..n {
        if s[i] >= threshold * smax && s[i] > 0.0 {
            k += v_t.row(i).transpose() * (utc[i] / s[i]);
        }
    }
    k.iter().cloned().collect()
}

/// Parabolic refinement of a peak at index `i` of a circular sequence: the offset in samples.
fn parabolic_offset(y: &[f64], i: usize) -> f64 {
    let l = y.len();
    let (a, b, c) = (y[(i + l - 1) % l], y[i], y[(i + 1) % l]);
    let d = a - 2.0 * b + c;
    if d >= 0.0 {
        0.0
    } else {
        (0.5 * (a - c) / d).clamp(-0.5, 0.5)
    }
}

/// Deconvolves `tissue` by `aif` (ΔHU, both sampled every `dt_s` from the same origin) and
/// returns the perfusion of that curve.
pub fn estimate_curve(
    aif: &[f64],
    tissue: &[f64],
    dt_s: f64,
    method: Method,
    constants: Constants,
) -> Result<CurveEstimate, PerfusionError> {
    check(aif, tissue, dt_s)?;
    let n = aif.len();
    let scale = constants.hematocrit_factor / constants.density_g_per_ml;
    // The flow-scaled residue k, over L = 2N samples (circular) or N (standard).
    let (k, circular) = match method {
        Method::Standard { threshold } => (standard_svd(aif, tissue, dt_s, threshold), false),
        _ => {
            let l = 2 * n;
            let mut planner = FftPlanner::new();
            let fft = planner.plan_fft_forward(l);
            let mut a_f: Vec<Complex<f64>> =
                (0..l).map(|i| Complex::new(if i < n { aif[i] * dt_s } else { 0.0 }, 0.0)).collect();
            let mut c_f: Vec<Complex<f64>> =
                (0..l).map(|i| Complex::new(if i < n { tissue[i] } else { 0.0 }, 0.0)).collect();
            fft.process(&mut a_f);
            fft.process(&mut c_f);
            let smax = a_f.iter().map(|z| z.norm()).fold(0.0, f64::max);
            let k = match method {
                Method::BlockCirculant { threshold } => {
                    circulant_solve(&a_f, &c_f, |s| if s >= threshold * smax { 1.0 } else { 0.0 }, &mut planner)
                }
                Method::Tikhonov { lambda } => {
                    let l2 = (lambda * smax).powi(2);
                    circulant_solve(&a_f, &c_f, |s| s * s / (s * s + l2), &mut planner)
                }
                Method::BlockCirculantOi { oi_max } => {
                    // From the least to the most regularisation; the first estimate smooth enough.
                    let mut chosen = None;
                    for step in 1..=95 {
                        let p = step as f64 * 0.01;
                        let k = circulant_solve(&a_f, &c_f, |s| if s >= p * smax { 1.0 } else { 0.0 }, &mut planner);
                        if oscillation_index(&k) <= oi_max {
                            chosen = Some(k);
                            break;
                        }
                    }
                    chosen.unwrap_or_else(|| {
                        circulant_solve(&a_f, &c_f, |s| if s >= 0.95 * smax { 1.0 } else { 0.0 }, &mut planner)
                    })
                }
                Method::Standard { .. } => unreachable!("handled above"),
            };
            (k, true)
        }
    };
    let (imax, kmax) =
        k.iter().enumerate().fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
    let cbf = scale * 6000.0 * kmax.max(0.0);
    let cbv = scale * 100.0 * tissue.iter().sum::<f64>() / aif.iter().sum::<f64>();
    // Circular indices past the middle are negative lags: the tissue leads the arterial input.
    let lag = if circular && imax >= n { imax as f64 - k.len() as f64 } else { imax as f64 };
    let tmax_s = (lag + if circular || (imax > 0 && imax + 1 < n) { parabolic_offset(&k, imax) } else { 0.0 }) * dt_s;
    let (ipeak, _) = tissue
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
    let ttp_off = if ipeak > 0 && ipeak + 1 < n { parabolic_offset(tissue, ipeak) } else { 0.0 };
    Ok(CurveEstimate {
        cbf,
        cbv,
        mtt_s: if cbf > 0.0 { 60.0 * cbv / cbf } else { f64::NAN },
        tmax_s,
        ttp_s: (ipeak as f64 + ttp_off) * dt_s,
    })
}
