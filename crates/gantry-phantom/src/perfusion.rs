//! CT perfusion ground truth: the indicator-dilution model evaluated on a fine time grid.
//!
//! Arterial input: a gamma variate a(t) = A·(t − t₀)^α·e^{−(t − t₀)/β}, scaled to a peak ΔHU.
//! A tissue fed through an artery delayed by δ and dispersed by an exponential kernel of time
//! constant τ_d has ΔHU c(t) = (ρ/k_H)·(CBF/6000)·∫ a_d(τ)·R(t − τ) dτ with R the residue
//! function of mean transit time MTT; then CBV = CBF·MTT/60 (mL/100 g) exactly.

/// Brain tissue density (g/mL).
pub const DENSITY_G_PER_ML: f64 = 1.04;
/// Large-to-small vessel haematocrit correction (1 − H_large)/(1 − H_small).
pub const HEMATOCRIT_FACTOR: f64 = 0.73;
/// Step of the fine grid the convolutions are evaluated on (s).
pub const FINE_STEP_S: f64 = 0.01;

/// A gamma-variate bolus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaVariate {
    /// Arrival time (s).
    pub t0_s: f64,
    pub alpha: f64,
    pub beta_s: f64,
    /// Peak enhancement (ΔHU), reached at t₀ + α·β.
    pub peak_hu: f64,
    /// A second, dispersed pass of the bolus through the heart and lungs (None: none).
    pub recirculation: Option<Recirculation>,
}

/// The bolus's second pass: a gamma variate of the same shape `delay_s` later, `dispersion`
/// times wider in time, holding `share` of the first pass's area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recirculation {
    pub share: f64,
    pub delay_s: f64,
    pub dispersion: f64,
}

impl GammaVariate {
    /// The default arterial input: arrival 8 s, α 3, β 1.5 s.
    pub fn default_aif(peak_hu: f64) -> Self {
        GammaVariate { t0_s: 8.0, alpha: 3.0, beta_s: 1.5, peak_hu, recirculation: None }
    }

    /// The same bolus with a second pass.
    pub fn with_recirculation(self, r: Recirculation) -> Self {
        GammaVariate { recirculation: Some(r), ..self }
    }

    pub fn value(&self, t: f64) -> f64 {
        let first = Self::pass(t - self.t0_s, self.alpha, self.beta_s, self.peak_hu);
        match self.recirculation {
            // Same α: the area scales with peak·β, so a pass w times wider peaks at share/w.
            Some(r) if r.share > 0.0 && r.dispersion > 0.0 => {
                first
                    + Self::pass(
                        t - self.t0_s - r.delay_s,
                        self.alpha,
                        self.beta_s * r.dispersion,
                        self.peak_hu * r.share / r.dispersion,
                    )
            }
            _ => first,
        }
    }

    fn pass(s: f64, alpha: f64, beta_s: f64, peak_hu: f64) -> f64 {
        if s <= 0.0 {
            return 0.0;
        }
        let tp = alpha * beta_s;
        // Normalised so the value at the peak is exactly peak_hu.
        peak_hu * ((s / tp).powf(alpha) * (-(s - tp) / beta_s).exp())
    }
}

/// The residue function R(t) (R(0) = 1, non-increasing) for a mean transit time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Residue {
    /// Well mixed: e^{−t/MTT}.
    Exponential,
    /// Plug flow: 1 for t < MTT.
    Box,
    /// Gamma-distributed transit times of shape k (mean MTT): R = 1 − CDF.
    Gamma { shape: u32 },
}

impl Residue {
    pub fn value(&self, t: f64, mtt_s: f64) -> f64 {
        if t < 0.0 {
            return 0.0;
        }
        match *self {
            Residue::Exponential => (-t / mtt_s).exp(),
            Residue::Box => {
                if t < mtt_s {
                    1.0
                } else {
                    0.0
                }
            }
            Residue::Gamma { shape } => {
                // Survival of an Erlang(k, θ = MTT/k): e^{−x}·Σ_{n<k} xⁿ/n!.
                let x = t * shape as f64 / mtt_s;
                let (mut term, mut sum) = (1.0, 1.0);
                for n in 1..shape {
                    term *= x / n as f64;
                    sum += term;
                }
                (-x).exp() * sum
            }
        }
    }
}

/// One tissue's perfusion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tissue {
    /// mL/100 g/min.
    pub cbf: f64,
    /// s.
    pub mtt_s: f64,
    /// Delay of the feeding artery after the measured arterial input (s; may be negative).
    pub delay_s: f64,
    /// Time constant of the exponential dispersion kernel (s; 0: none).
    pub dispersion_s: f64,
    pub residue: Residue,
}

impl Tissue {
    /// mL/100 g.
    pub fn cbv(&self) -> f64 {
        self.cbf * self.mtt_s / 60.0
    }
}

fn fine_grid(t_end: f64) -> Vec<f64> {
    let n = (t_end / FINE_STEP_S).ceil() as usize + 1;
    (0..n).map(|i| i as f64 * FINE_STEP_S).collect()
}

/// The arterial curve a tissue is fed by: a(t − δ) convolved with (1/τ)·e^{−t/τ}, on the fine grid.
fn feeding_artery(aif: &GammaVariate, delay_s: f64, dispersion_s: f64, grid: &[f64]) -> Vec<f64> {
    let shifted: Vec<f64> = grid.iter().map(|&t| aif.value(t - delay_s)).collect();
    if dispersion_s <= 0.0 {
        return shifted;
    }
    let kernel: Vec<f64> = grid.iter().map(|&t| (-t / dispersion_s).exp() / dispersion_s * FINE_STEP_S).collect();
    convolve(&shifted, &kernel)
}

/// Causal discrete convolution on the fine grid, truncated to the input length.
fn convolve(a: &[f64], k: &[f64]) -> Vec<f64> {
    let n = a.len();
    let mut out = vec![0.0; n];
    for (i, &ai) in a.iter().enumerate() {
        if ai == 0.0 {
            continue;
        }
        for (o, &kj) in out[i..].iter_mut().zip(k) {
            *o += ai * kj;
        }
    }
    out
}

/// Linear interpolation of a fine-grid curve at `t`.
fn sample(curve: &[f64], t: f64) -> f64 {
    let x = t / FINE_STEP_S;
    let i = x.floor();
    if i < 0.0 {
        return 0.0;
    }
    let i = i as usize;
    match (curve.get(i), curve.get(i + 1)) {
        (Some(&a), Some(&b)) => a + (x - i as f64) * (b - a),
        (Some(&a), None) => a,
        _ => 0.0,
    }
}

/// The arterial input sampled at `times` (ΔHU); with a delay and dispersion, any arterial or
/// venous curve of the same shape family.
pub fn arterial_curve(aif: &GammaVariate, delay_s: f64, dispersion_s: f64, times: &[f64]) -> Vec<f64> {
    let t_end = times.iter().cloned().fold(0.0, f64::max) + 1.0;
    let fine = feeding_artery(aif, delay_s, dispersion_s, &fine_grid(t_end));
    times.iter().map(|&t| sample(&fine, t)).collect()
}

/// The tissue enhancement (ΔHU) sampled at `times`.
pub fn tissue_curve(aif: &GammaVariate, tissue: &Tissue, times: &[f64]) -> Vec<f64> {
    let t_end = times.iter().cloned().fold(0.0, f64::max) + 1.0;
    let grid = fine_grid(t_end);
    let artery = feeding_artery(aif, tissue.delay_s, tissue.dispersion_s, &grid);
    let scale = DENSITY_G_PER_ML / HEMATOCRIT_FACTOR * tissue.cbf / 6000.0;
    // Trapezoid-free rectangle rule on 10 ms steps: the residue's jump (box) stays sharp.
    let residue: Vec<f64> = grid.iter().map(|&t| tissue.residue.value(t, tissue.mtt_s) * FINE_STEP_S * scale).collect();
    let fine = convolve(&artery, &residue);
    times.iter().map(|&t| sample(&fine, t)).collect()
}

/// The tile phantom (Kudo style): one tissue per tile of voxels, each voxel its own noisy
/// copy of the tile's curve.
#[derive(Debug, Clone)]
pub struct TilePhantom {
    /// Acquisition times (s).
    pub times_s: Vec<f64>,
    /// The arterial input as measured (ΔHU, noise-free: a large artery's mean).
    pub aif: Vec<f64>,
    pub tiles: Vec<Tile>,
}

#[derive(Debug, Clone)]
pub struct Tile {
    pub truth: Tissue,
    /// One curve (ΔHU) per voxel.
    pub voxels: Vec<Vec<f64>>,
}

impl TilePhantom {
    /// Every combination of `cbfs` × `mtts` × `delays` (exponential residue, no dispersion),
    /// `voxels` voxels per tile, Gaussian noise of `noise_hu` per voxel and frame, sampled
    /// every `dt_s` from 0 to `duration_s`, the arterial input peaking at `aif_peak_hu`.
    #[allow(clippy::too_many_arguments)]
    pub fn grid(
        cbfs: &[f64],
        mtts: &[f64],
        delays: &[f64],
        aif_peak_hu: f64,
        dt_s: f64,
        duration_s: f64,
        voxels: usize,
        noise_hu: f64,
        seed: u64,
    ) -> TilePhantom {
        Self::grid_with(
            cbfs,
            mtts,
            delays,
            Residue::Exponential,
            0.0,
            aif_peak_hu,
            dt_s,
            duration_s,
            voxels,
            noise_hu,
            seed,
        )
    }

    /// As [`TilePhantom::grid`], with the residue and the dispersion time constant (s) given.
    #[allow(clippy::too_many_arguments)]
    pub fn grid_with(
        cbfs: &[f64],
        mtts: &[f64],
        delays: &[f64],
        residue: Residue,
        dispersion_s: f64,
        aif_peak_hu: f64,
        dt_s: f64,
        duration_s: f64,
        voxels: usize,
        noise_hu: f64,
        seed: u64,
    ) -> TilePhantom {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let times: Vec<f64> = (0..).map(|i| i as f64 * dt_s).take_while(|&t| t <= duration_s + 1e-9).collect();
        let aif_model = GammaVariate::default_aif(aif_peak_hu);
        let aif = arterial_curve(&aif_model, 0.0, 0.0, &times);
        let normal = Normal::new(0.0, noise_hu.max(0.0)).expect("finite noise");
        let mut tiles = Vec::new();
        for (ti, (&cbf, (&mtt, &delay))) in
            cbfs.iter().flat_map(|c| mtts.iter().flat_map(move |m| delays.iter().map(move |d| (c, (m, d))))).enumerate()
        {
            let truth = Tissue { cbf, mtt_s: mtt, delay_s: delay, dispersion_s, residue };
            let clean = tissue_curve(&aif_model, &truth, &times);
            // One stream per tile, so a tile's noise does not depend on the others.
            let mut rng =
                rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (ti as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let voxels = (0..voxels)
                .map(|_| clean.iter().map(|&v| if noise_hu > 0.0 { v + normal.sample(&mut rng) } else { v }).collect())
                .collect();
            tiles.push(Tile { truth, voxels });
        }
        TilePhantom { times_s: times, aif, tiles }
    }
}

/// The tiles laid side by side as one image of curves (Kudo style): each tile a square of
/// voxels, `tiles_per_row` tiles to a row, in the order of `TilePhantom::tiles`.
#[derive(Debug, Clone)]
pub struct TileMosaic {
    pub width: usize,
    pub height: usize,
    pub n_t: usize,
    /// curves[(y·width + x)·n_t + i] (ΔHU); pixels outside every tile are 0.
    pub curves: Vec<f32>,
    /// The tile of each pixel (None outside every tile).
    pub tile_of: Vec<Option<usize>>,
}

impl TilePhantom {
    /// Lays the tiles out as a mosaic; `None` unless each tile has a square number of voxels.
    pub fn mosaic(&self, tiles_per_row: usize) -> Option<TileMosaic> {
        let n_vox = self.tiles.first()?.voxels.len();
        let side = (n_vox as f64).sqrt().round() as usize;
        if side * side != n_vox || tiles_per_row == 0 || self.tiles.iter().any(|t| t.voxels.len() != n_vox) {
            return None;
        }
        let rows = self.tiles.len().div_ceil(tiles_per_row);
        let (width, height, n_t) = (tiles_per_row * side, rows * side, self.times_s.len());
        let mut curves = vec![0f32; width * height * n_t];
        let mut tile_of = vec![None; width * height];
        for (ti, tile) in self.tiles.iter().enumerate() {
            let (tx, ty) = (ti % tiles_per_row, ti / tiles_per_row);
            for (vi, v) in tile.voxels.iter().enumerate() {
                let (x, y) = (tx * side + vi % side, ty * side + vi / side);
                let p = y * width + x;
                tile_of[p] = Some(ti);
                for (o, &c) in curves[p * n_t..(p + 1) * n_t].iter_mut().zip(v) {
                    *o = c as f32;
                }
            }
        }
        Some(TileMosaic { width, height, n_t, curves, tile_of })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_variate_peaks_where_and_as_said() {
        let g = GammaVariate::default_aif(300.0);
        assert!((g.value(8.0 + 4.5) - 300.0).abs() < 1e-9);
        assert!(g.value(12.4) < 300.0 && g.value(12.6) < 300.0);
        assert_eq!(g.value(7.9), 0.0);
    }

    #[test]
    fn tile_noise_has_its_sigma_and_repeats_with_its_seed() {
        let a = TilePhantom::grid(&[40.0], &[4.0], &[0.0, 2.0], 300.0, 1.0, 60.0, 100, 5.0, 9);
        let b = TilePhantom::grid(&[40.0], &[4.0], &[0.0, 2.0], 300.0, 1.0, 60.0, 100, 5.0, 9);
        let clean = TilePhantom::grid(&[40.0], &[4.0], &[0.0, 2.0], 300.0, 1.0, 60.0, 1, 0.0, 9);
        assert_eq!(a.tiles[1].voxels, b.tiles[1].voxels);
        assert_eq!(a.tiles.len(), 2);
        let d: Vec<f64> = a.tiles[0]
            .voxels
            .iter()
            .flat_map(|v| v.iter().zip(&clean.tiles[0].voxels[0]).map(|(x, c)| x - c))
            .collect();
        let sd = (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt();
        assert!((sd / 5.0 - 1.0).abs() < 0.03, "noise sd {sd}");
    }

    #[test]
    fn residues_have_their_mean_transit_time() {
        // ∫R dt = MTT for every residue.
        for r in [Residue::Exponential, Residue::Box, Residue::Gamma { shape: 3 }] {
            let area: f64 = (0..20_000).map(|i| r.value((i as f64 + 0.5) * 0.01, 6.0) * 0.01).sum();
            assert!((area - 6.0).abs() < 0.01, "{r:?}: {area}");
            assert_eq!(r.value(0.0, 6.0), 1.0);
        }
    }

    #[test]
    fn tissue_curves_satisfy_the_central_volume_theorem() {
        // CBV = (k_H/ρ)·100·∫c/∫a = CBF·MTT/60, for any residue, delay and dispersion.
        let aif = GammaVariate::default_aif(300.0);
        let times: Vec<f64> = (0..=150).map(|i| i as f64).collect();
        let a: f64 = arterial_curve(&aif, 0.0, 0.0, &times).iter().sum();
        for residue in [Residue::Exponential, Residue::Box, Residue::Gamma { shape: 3 }] {
            for (delay, disp) in [(0.0, 0.0), (-2.0, 0.0), (4.0, 2.0)] {
                let t = Tissue { cbf: 60.0, mtt_s: 4.0, delay_s: delay, dispersion_s: disp, residue };
                let c: f64 = tissue_curve(&aif, &t, &times).iter().sum();
                let cbv = HEMATOCRIT_FACTOR / DENSITY_G_PER_ML * 100.0 * c / a;
                assert!((cbv / t.cbv() - 1.0).abs() < 0.005, "{residue:?} δ {delay}: CBV {cbv} vs {}", t.cbv());
            }
        }
        // Grey matter at CBF 60, MTT 4 s under a 300 HU arterial peak peaks near 11 ΔHU (the
        // issue's 10–25 ΔHU range); the curve against Simpson's rule on the convolution integral.
        let gm = Tissue { cbf: 60.0, mtt_s: 4.0, delay_s: 0.0, dispersion_s: 0.0, residue: Residue::Exponential };
        let curve = tissue_curve(&aif, &gm, &times);
        let peak = curve.iter().cloned().fold(0.0, f64::max);
        assert!((10.0..25.0).contains(&peak), "grey-matter peak {peak} ΔHU");
        let scale = DENSITY_G_PER_ML / HEMATOCRIT_FACTOR * 60.0 / 6000.0;
        for t in [9.0, 12.0, 15.0, 20.0, 30.0, 45.0] {
            let n = 20_000;
            let h = t / n as f64;
            let f = |tau: f64| aif.value(tau) * (-(t - tau) / 4.0).exp();
            let simpson: f64 = (0..=n)
                .map(|i| {
                    let w = if i == 0 || i == n {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    w * f(i as f64 * h)
                })
                .sum::<f64>()
                * h
                / 3.0;
            let want = scale * simpson;
            assert!((curve[t as usize] - want).abs() < 0.005 * peak, "t {t}: {} vs {want}", curve[t as usize]);
        }
    }
}
