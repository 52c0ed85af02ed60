//! Model-based estimation: the tissue curve matched against a dictionary of model curves.
//!
//! Deconvolution by truncated SVD smears the flow-scaled residue's jump, so its maximum (CBF)
//! comes out 15–55 % low and its argmax (Tmax) 1–3 s late, worst at short MTT. Here the tissue
//! curve is instead fitted by the indicator-dilution model itself,
//!
//! c(t) = F · ∫ a(τ) · R(t − δ − τ) dτ,
//!
//! a residue R of mean transit time MTT behind an arrival delay δ, with F the flow scale
//! (CBF = (k_H/ρ)·6000·F). R is one of a family from well mixed to plug flow: exponential,
//! gamma-distributed transit times of shape 2 and 3, and a box. For each (R, δ, MTT) on a grid
//! the best F is a closed-form projection, so the fit is a search over a dictionary of
//! unit-flow curves ("atoms"): a coarse pass over the whole grid, two finer passes around the
//! best atom so far, and a parabolic refinement of the score between grid points. δ is the time of the residue's maximum, i.e. Tmax, and may
//! be negative (a tissue that leads the measured arterial input) without any wrap-around.
//!
//! The arterial input between samples is a cubic (Catmull–Rom) interpolation; before its first sample it is 0 (ΔHU) and after
//! its last it holds the last value. Any sampling schedule works: atoms are evaluated at the
//! acquisition times themselves.

use crate::{invalid, Constants, PerfusionError};

/// A residue shape of the model family (all with R(0) = 1 and ∫R = MTT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidueShape {
    /// Gamma-distributed transit times of integer shape k (k = 1: exponential, well mixed).
    Gamma(u32),
    /// Plug flow: every particle stays MTT.
    Box,
}

/// Search ranges of the model fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitGrid {
    /// Residue shapes, ordered from well mixed to plug flow.
    pub shapes: Vec<ResidueShape>,
    /// Arrival delays searched (s): from, to, step.
    pub delay_from_s: f64,
    pub delay_to_s: f64,
    pub delay_step_s: f64,
    /// Mean transit times searched (s): from, to, and the ratio between neighbours.
    pub mtt_from_s: f64,
    pub mtt_to_s: f64,
    pub mtt_ratio: f64,
    /// The search passes from coarse to fine, as (delay step, MTT step) in grid steps: the
    /// first visits the whole grid for every shape, each later one the neighbourhood (± the
    /// previous steps) of the best atom so far — the second for the neighbouring shapes too,
    /// the rest for the best shape; a last pass at single steps always follows.
    pub passes: Vec<(usize, usize)>,
}

impl Default for FitGrid {
    fn default() -> Self {
        // Tmax from −6 to 24 s in 0.1 s steps (the 10 s threshold and beyond), MTT 1–30 s in
        // 3 % steps.
        FitGrid {
            shapes: vec![ResidueShape::Gamma(1), ResidueShape::Gamma(2), ResidueShape::Gamma(3), ResidueShape::Box],
            delay_from_s: -6.0,
            delay_to_s: 24.0,
            delay_step_s: 0.1,
            mtt_from_s: 1.0,
            mtt_to_s: 30.0,
            mtt_ratio: 1.03,
            passes: vec![(20, 10), (4, 2)],
        }
    }
}

/// The dictionary of unit-flow model curves for one arterial input and sampling schedule.
#[derive(Debug, Clone)]
pub struct ModelFit {
    times: Vec<f64>,
    delays: Vec<f64>,
    mtts: Vec<f64>,
    /// atoms[((r·n_mtt + m)·n_delay + d)·stride + i]: the unit-flow curve of shape r, MTT m,
    /// delay d at time i, zero-padded to `stride` (a multiple of 8) for whole SIMD lanes.
    atoms: Vec<f32>,
    stride: usize,
    /// 1/‖atom‖² per atom.
    inv_norm2: Vec<f32>,
    grid: FitGrid,
    constants: Constants,
}

/// What the model fit gives for one tissue curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitEstimate {
    /// mL/100 g/min.
    pub cbf: f64,
    /// mL/100 g (CBF·MTT/60, the model's own).
    pub cbv: f64,
    /// s.
    pub mtt_s: f64,
    /// s: the delay of the residue's maximum after the arterial input (negative: leads it).
    pub tmax_s: f64,
    /// Share of the curve's energy the model explains (R² about zero), 0–1.
    pub explained: f64,
    /// The residue shape that fitted best (None when nothing fitted).
    pub shape: Option<ResidueShape>,
}

/// How many σ² of squared residual a non-exponential shape must explain to be preferred.
pub const SHAPE_PENALTY: f32 = 4.0;

/// Step of the fine grid the model convolution is evaluated on (s).
const FINE_STEP_S: f64 = 0.02;

impl ModelFit {
    /// Builds the dictionary for an arterial curve `aif` (ΔHU) sampled at `times_s`.
    pub fn new(aif: &[f64], times_s: &[f64], grid: FitGrid, constants: Constants) -> Result<Self, PerfusionError> {
        if aif.len() != times_s.len() {
            return Err(invalid(
                "arterial curve length",
                aif.len(),
                &format!("must equal the {} times", times_s.len()),
            ));
        }
        if aif.len() < 4 {
            return Err(invalid("curve length", aif.len(), "needs at least 4 samples"));
        }
        if let Some(v) = aif.iter().chain(times_s).find(|v| !v.is_finite()) {
            return Err(invalid("curve sample", v, "must be finite"));
        }
        if let Some(w) = times_s.windows(2).find(|w| w[1] <= w[0]) {
            return Err(invalid("times_s", format!("{} then {}", w[0], w[1]), "must increase strictly"));
        }
        if !(!grid.shapes.is_empty()
            && grid.shapes.iter().all(|s| *s != ResidueShape::Gamma(0))
            && grid.delay_step_s > 0.0
            && grid.delay_to_s > grid.delay_from_s
            && grid.mtt_from_s > 0.0
            && grid.mtt_to_s > grid.mtt_from_s
            && grid.mtt_ratio > 1.0
            && !grid.passes.is_empty()
            && grid.passes.iter().all(|&(d, m)| d >= 1 && m >= 1)
            && grid.passes.windows(2).all(|w| w[0].0 >= w[1].0 && w[0].1 >= w[1].1))
        {
            return Err(invalid("fit grid", format!("{grid:?}"), "needs positive steps and ranges"));
        }
        let area: f64 = aif.windows(2).zip(times_s.windows(2)).map(|(a, t)| 0.5 * (a[0] + a[1]) * (t[1] - t[0])).sum();
        if area.is_nan() || area <= 0.0 {
            return Err(invalid("arterial curve area", area, "must be positive (no enhancement?)"));
        }
        let n_delay = ((grid.delay_to_s - grid.delay_from_s) / grid.delay_step_s).round() as usize + 1;
        let delays: Vec<f64> = (0..n_delay).map(|i| grid.delay_from_s + i as f64 * grid.delay_step_s).collect();
        let n_mtt = ((grid.mtt_to_s / grid.mtt_from_s).ln() / grid.mtt_ratio.ln()).floor() as usize + 1;
        let mtts: Vec<f64> = (0..n_mtt).map(|i| grid.mtt_from_s * grid.mtt_ratio.powi(i as i32)).collect();

        // The arterial input on the fine grid s_k = s0 + k·h, covering every t − δ needed.
        let (t_first, t_last) = (times_s[0], times_s[times_s.len() - 1]);
        let s0 = t_first - grid.delay_to_s - FINE_STEP_S;
        let s_end = t_last - grid.delay_from_s + FINE_STEP_S;
        let n_fine = ((s_end - s0) / FINE_STEP_S).ceil() as usize + 2;
        let a_fine: Vec<f64> = (0..n_fine).map(|k| interpolate(aif, times_s, s0 + k as f64 * FINE_STEP_S)).collect();

        let n_t = times_s.len();
        let stride = n_t.div_ceil(8) * 8;
        let n_r = grid.shapes.len();
        let mut atoms = vec![0f32; n_r * n_mtt * n_delay * stride];
        let mut inv_norm2 = vec![0f32; n_r * n_mtt * n_delay];
        // Running integral of the input, for the box residue.
        let mut cum = vec![0f64; n_fine];
        for k in 1..n_fine {
            cum[k] = cum[k - 1] + 0.5 * FINE_STEP_S * (a_fine[k - 1] + a_fine[k]);
        }
        let mut y = vec![0f64; n_fine];
        let mut stage = vec![0f64; n_fine];
        for (r, shape) in grid.shapes.iter().enumerate() {
            for (m, &mtt) in mtts.iter().enumerate() {
                // y(s) = ∫ a(τ)·R(s − τ) dτ on the fine grid.
                match *shape {
                    ResidueShape::Box => {
                        let lag = mtt / FINE_STEP_S;
                        for k in 0..n_fine {
                            let x = k as f64 - lag;
                            let before = if x <= 0.0 {
                                0.0
                            } else {
                                let j = x.floor() as usize;
                                let f = x - j as f64;
                                cum[j] + f * (cum[(j + 1).min(n_fine - 1)] - cum[j])
                            };
                            y[k] = cum[k] - before;
                        }
                    }
                    ResidueShape::Gamma(kk) => {
                        // Survival of Erlang(k, θ = MTT/k) = θ·Σ_{j≤k} f_j with f_j the Erlang(j, θ)
                        // density: a cascade of k first-order compartments of time constant θ.
                        let theta = mtt / kk as f64;
                        let e = (-FINE_STEP_S / theta).exp();
                        stage.copy_from_slice(&a_fine);
                        y.iter_mut().for_each(|v| *v = 0.0);
                        for _ in 0..kk {
                            // stage ← stage ⊗ (1/θ)·e^{−t/θ} (trapezoid recursion).
                            let mut prev_in = stage[0];
                            stage[0] = 0.0;
                            for k in 1..n_fine {
                                let cur_in = stage[k];
                                stage[k] = stage[k - 1] * e + 0.5 * FINE_STEP_S / theta * (prev_in * e + cur_in);
                                prev_in = cur_in;
                            }
                            for (v, s) in y.iter_mut().zip(&stage) {
                                *v += theta * s;
                            }
                        }
                    }
                }
                for (d, &delay) in delays.iter().enumerate() {
                    let idx = (r * n_mtt + m) * n_delay + d;
                    let atom = &mut atoms[idx * stride..idx * stride + n_t];
                    let mut norm2 = 0.0;
                    for (v, &t) in atom.iter_mut().zip(times_s) {
                        let x = (t - delay - s0) / FINE_STEP_S;
                        let k = (x.floor() as usize).min(n_fine - 2);
                        let f = x - k as f64;
                        let val = y[k] + f * (y[k + 1] - y[k]);
                        *v = val as f32;
                        norm2 += val * val;
                    }
                    inv_norm2[idx] = if norm2 > 0.0 { (1.0 / norm2) as f32 } else { 0.0 };
                }
            }
        }
        Ok(ModelFit { times: times_s.to_vec(), delays, mtts, atoms, stride, inv_norm2, grid, constants })
    }

    /// The acquisition times the dictionary was built for.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    fn n_t(&self) -> usize {
        self.times.len()
    }

    /// (score, projection) of atom (r, m, d): score = (b·c)²/‖b‖² for b·c > 0.
    #[inline]
    fn score(&self, r: usize, m: usize, d: usize, c: &[f32]) -> (f32, f32) {
        let idx = (r * self.mtts.len() + m) * self.delays.len() + d;
        let atom = &self.atoms[idx * self.stride..(idx + 1) * self.stride];
        let dot = dot(atom, c);
        if dot <= 0.0 {
            return (0.0, 0.0);
        }
        let f = dot * self.inv_norm2[idx];
        (dot * f, f)
    }

    /// Fits one tissue curve (ΔHU at the dictionary's times). A curve the model cannot explain
    /// with any positive flow gives CBF 0 and NaN for MTT and Tmax.
    pub fn fit(&self, tissue: &[f32]) -> Result<FitEstimate, PerfusionError> {
        self.check(tissue)?;
        Ok(self.fit_unchecked(tissue, 0.0))
    }

    fn check(&self, tissue: &[f32]) -> Result<(), PerfusionError> {
        if tissue.len() != self.n_t() {
            return Err(invalid("tissue curve length", tissue.len(), &format!("must equal the {} times", self.n_t())));
        }
        if let Some(v) = tissue.iter().find(|v| !v.is_finite()) {
            return Err(invalid("tissue sample", v, "must be finite"));
        }
        Ok(())
    }

    /// As [`ModelFit::fit`] for a curve with noise σ (ΔHU per sample): a shape other than the
    /// first (the exponential) must lower the squared residual by more than `SHAPE_PENALTY`·σ²
    /// to be chosen, so noise alone does not pick a shape.
    pub fn fit_noisy(&self, tissue: &[f32], sigma: f32) -> Result<FitEstimate, PerfusionError> {
        self.check(tissue)?;
        Ok(self.fit_unchecked(tissue, SHAPE_PENALTY * sigma * sigma))
    }

    /// The best atom among shapes `rs`, MTTs `m_lo..=m_hi` by `sm`, delays `d_lo..=d_hi` by `sd`.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        c: &[f32],
        rs: std::ops::RangeInclusive<usize>,
        (m_lo, m_hi, sm): (usize, usize, usize),
        (d_lo, d_hi, sd): (usize, usize, usize),
        penalty: f32,
        mut best: (f32, usize, usize, usize),
    ) -> (f32, usize, usize, usize) {
        for r in rs {
            let pen = if r == 0 { 0.0 } else { penalty };
            for m in (m_lo..=m_hi).step_by(sm) {
                for d in (d_lo..=d_hi).step_by(sd) {
                    let (s, _) = self.score(r, m, d, c);
                    let s = s - pen;
                    if s > best.0 {
                        best = (s, r, m, d);
                    }
                }
            }
        }
        best
    }

    /// Two-scale fit: the residue shape, MTT and Tmax are those fitted to `guide` (the same
    /// tissue's curve averaged over a wider neighbourhood, where noise is low), and the flow is
    /// the projection of `tissue` itself on that model curve. A projection on a curve chosen
    /// without looking at the voxel's own noise is unbiased (it may be negative), where the
    /// best-fitting curve's projection is not: the search picks the curve that noise happens to
    /// align with, which reads low flows high.
    pub fn fit_guided(&self, tissue: &[f32], guide: &[f32], sigma: f32) -> Result<FitEstimate, PerfusionError> {
        self.check(tissue)?;
        let g = self.fit_guide(guide, sigma)?;
        Ok(self.flow_on(&g, tissue))
    }

    /// The first half of [`ModelFit::fit_guided`]: the model fitted to a guide curve (noise σ),
    /// to project any number of tissue curves on with [`ModelFit::flow_on`].
    pub fn fit_guide(&self, guide: &[f32], sigma: f32) -> Result<FitEstimate, PerfusionError> {
        self.check(guide)?;
        Ok(self.fit_unchecked(guide, SHAPE_PENALTY * sigma * sigma))
    }

    /// The second half of [`ModelFit::fit_guided`]: `tissue` (as long as the dictionary's times;
    /// shorter curves are zero-padded, longer ones cut) projected on the model curve of a guide
    /// fit; the shape, MTT and Tmax are the guide's.
    pub fn flow_on(&self, guide_fit: &FitEstimate, tissue: &[f32]) -> FitEstimate {
        let g = *guide_fit;
        let Some((r, m, d)) = self.atom_of(&g) else {
            return FitEstimate { cbf: 0.0, cbv: 0.0, ..g };
        };
        let mut padded = vec![0f32; self.stride];
        let n = tissue.len().min(self.n_t());
        padded[..n].copy_from_slice(&tissue[..n]);
        let idx = (r * self.mtts.len() + m) * self.delays.len() + d;
        let atom = &self.atoms[idx * self.stride..(idx + 1) * self.stride];
        let f = dot(atom, &padded) as f64 * self.inv_norm2[idx] as f64;
        let scale = self.constants.hematocrit_factor / self.constants.density_g_per_ml;
        let cbf = scale * 6000.0 * f;
        FitEstimate { cbf, cbv: cbf * g.mtt_s / 60.0, ..g }
    }

    /// The grid atom nearest a fitted estimate.
    fn atom_of(&self, e: &FitEstimate) -> Option<(usize, usize, usize)> {
        let r = self.grid.shapes.iter().position(|s| Some(*s) == e.shape)?;
        if !(e.mtt_s.is_finite() && e.tmax_s.is_finite()) {
            return None;
        }
        let m = ((e.mtt_s / self.grid.mtt_from_s).ln() / self.grid.mtt_ratio.ln()).round().max(0.0) as usize;
        let d = ((e.tmax_s - self.grid.delay_from_s) / self.grid.delay_step_s).round().max(0.0) as usize;
        Some((r, m.min(self.mtts.len() - 1), d.min(self.delays.len() - 1)))
    }

    pub(crate) fn fit_unchecked(&self, tissue: &[f32], penalty: f32) -> FitEstimate {
        let mut padded = vec![0f32; self.stride];
        padded[..tissue.len()].copy_from_slice(tissue);
        let c = &padded[..];
        let (n_r, n_d, n_m) = (self.grid.shapes.len(), self.delays.len(), self.mtts.len());
        let g = &self.grid;
        let none = FitEstimate { cbf: 0.0, cbv: 0.0, mtt_s: f64::NAN, tmax_s: f64::NAN, explained: 0.0, shape: None };
        let around = |i: usize, step: usize, n: usize| (i.saturating_sub(step), (i + step).min(n - 1));
        let mut best = (0.0, 0, 0, 0);
        let mut prev = (n_d, n_m);
        for (level, &(sd, sm)) in g.passes.iter().chain(std::iter::once(&(1, 1))).enumerate() {
            let (sd, sm) = (sd.min(prev.0), sm.min(prev.1));
            let (rs, (m_lo, m_hi), (d_lo, d_hi)) = if level == 0 {
                (0..=n_r - 1, (0, n_m - 1), (0, n_d - 1))
            } else {
                let (r_lo, r_hi) = if level == 1 { around(best.1, 1, n_r) } else { (best.1, best.1) };
                (r_lo..=r_hi, around(best.2, prev.1, n_m), around(best.3, prev.0, n_d))
            };
            // Centre the coarse lattice in its range so both ends are reached.
            let d_lo = if level == 0 { ((n_d - 1) % sd) / 2 } else { d_lo };
            let m_lo = if level == 0 { ((n_m - 1) % sm) / 2 } else { m_lo };
            best = self.search(c, rs, (m_lo, m_hi, sm), (d_lo, d_hi, sd), penalty, best);
            if level == 0 && best.0 <= 0.0 {
                return none;
            }
            prev = (sd, sm);
        }
        let (_, r, m, d) = best;
        let (s_best, f_best) = self.score(r, m, d, c);
        // Parabolic refinement of the score along each axis (delay linear, MTT logarithmic).
        let along = |lo: Option<(usize, usize)>, hi: Option<(usize, usize)>| -> (f64, f64) {
            match (lo, hi) {
                (Some(l), Some(h)) => {
                    let (sl, fl) = self.score(r, l.0, l.1, c);
                    let (sh, fh) = self.score(r, h.0, h.1, c);
                    let den = sl as f64 - 2.0 * s_best as f64 + sh as f64;
                    if den < 0.0 {
                        let off = (0.5 * (sl as f64 - sh as f64) / den).clamp(-0.5, 0.5);
                        // F along the same parabola through the three points.
                        let f = f_best as f64
                            + 0.5 * off * (fh as f64 - fl as f64)
                            + 0.5 * off * off * (fh as f64 - 2.0 * f_best as f64 + fl as f64);
                        (off, f - f_best as f64)
                    } else {
                        (0.0, 0.0)
                    }
                }
                _ => (0.0, 0.0),
            }
        };
        let (off_d, df_d) = along(d.checked_sub(1).map(|x| (m, x)), (d + 1 < n_d).then_some((m, d + 1)));
        let (off_m, df_m) = along(m.checked_sub(1).map(|x| (x, d)), (m + 1 < n_m).then_some((m + 1, d)));
        let f = (f_best as f64 + df_d + df_m).max(0.0);
        let tmax_s = self.delays[d] + off_d * self.grid.delay_step_s;
        let mtt_s = self.mtts[m] * self.grid.mtt_ratio.powf(off_m);
        let scale = self.constants.hematocrit_factor / self.constants.density_g_per_ml;
        let cbf = scale * 6000.0 * f;
        let energy = dot(c, c);
        FitEstimate {
            cbf,
            cbv: cbf * mtt_s / 60.0,
            mtt_s,
            tmax_s,
            explained: if energy > 0.0 { (s_best / energy).clamp(0.0, 1.0) as f64 } else { 0.0 },
            shape: Some(self.grid.shapes[r]),
        }
    }
}

/// Value of samples `v` at times `t` by cubic Hermite interpolation with centred
/// finite-difference tangents (Catmull–Rom on any spacing); 0 before the first sample, the last
/// value after the last.
fn interpolate(v: &[f64], t: &[f64], x: f64) -> f64 {
    if x < t[0] {
        return 0.0;
    }
    let i = t.partition_point(|&ti| ti <= x);
    if i >= t.len() {
        return v[v.len() - 1];
    }
    let (k0, k1) = (i - 1, i);
    let h = t[k1] - t[k0];
    let slope = |k: usize| -> f64 {
        if k == 0 {
            // Before the first sample the curve is 0: the tangent of the chord from there.
            (v[1] - v[0]) / (t[1] - t[0])
        } else if k + 1 >= t.len() {
            (v[k] - v[k - 1]) / (t[k] - t[k - 1])
        } else {
            (v[k + 1] - v[k - 1]) / (t[k + 1] - t[k - 1])
        }
    };
    let (m0, m1) = (slope(k0) * h, slope(k1) * h);
    let u = (x - t[k0]) / h;
    let (u2, u3) = (u * u, u * u * u);
    (2.0 * u3 - 3.0 * u2 + 1.0) * v[k0] + (u3 - 2.0 * u2 + u) * m0 + (-2.0 * u3 + 3.0 * u2) * v[k1] + (u3 - u2) * m1
}

/// Dot product in eight independent lanes (vectorises).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}
