//! How precisely the volumes were measured, and whether a trial criterion could go either way.
//!
//! The core and Tmax > 6 s volumes are thresholds of the cleaned CBF and Tmax maps (a
//! (2r + 1)² in-plane median). Two things make a volume uncertain:
//!
//! - **Noise in the maps at the threshold.** A voxel's own scatter is measured, not modelled:
//!   the robust spread (1.4826·MAD) of the map before cleaning about the cleaned map, over the
//!   voxels near the threshold. The median of a window divides it by √N_eff·/1.2533, with
//!   N_eff = (2r + 1)²/κ independent samples, κ the noise correlation factor
//!   ([`correlation_factor`](crate::correlation_factor)): correlated noise leaves fewer
//!   independent voxels in a window than it holds. The volumes are recounted with the
//!   thresholds moved by ±1.96 standard errors.
//! - **The mask's edge.** Each voxel on a region's in-plane edge is partly inside (the slice
//!   profile and point spread mix it with its neighbours): half a voxel each way.
//!
//! The first is propagated by replicates: the cleaned maps plus Gaussian errors of those
//! standard errors, correlated over the cleaning window as the median makes them, recounted
//! [`REPLICATES`] times (seeded); ±1.96 of the volumes' spread. The interval is the sum of both. A trial criterion is *uncertain* when it differs between
//! the interval's most and least favourable corners (small core with large Tmax > 6 s, and the
//! reverse).

use crate::decision::{hypoperfused_mask, trial_criteria, Decision, Thresholds};
use crate::summed_area::{box_around, SummedArea};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Replicates of the maps' random error the volumes' spread is taken over.
pub const REPLICATES: usize = 16;

/// Unit-variance Gaussian noise on `[nz, ny, nx]`, correlated in-plane over a (2r + 1)² box
/// (white noise averaged over the box, rescaled).
fn window_noise(rng: &mut ChaCha8Rng, [nz, ny, nx]: [usize; 3], r: usize) -> Vec<f32> {
    let white: Vec<f32> = (0..nz * ny * nx).map(|_| StandardNormal.sample(rng)).collect();
    let mut out = vec![0f32; white.len()];
    for k in 0..nz {
        let s = &white[k * ny * nx..(k + 1) * ny * nx];
        let sat = SummedArea::new(ny, nx, |p| s[p] as f64);
        for j in 0..ny {
            for i in 0..nx {
                let (j0, j1, i0, i1) = box_around(j, i, r, ny, nx);
                let n = ((j1 - j0) * (i1 - i0)) as f32;
                out[k * ny * nx + j * nx + i] = sat.sum(j0, j1, i0, i1) as f32 / n.sqrt();
            }
        }
    }
    out
}

/// Standard errors beyond which the interval does not reach (95 %).
pub const INTERVAL_Z: f64 = 1.96;

/// A volume and the interval it lies in (mL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, v: f64) -> bool {
        v >= self.low && v <= self.high
    }
}

/// How precisely the figures were measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// κ of the tissue curves (1: white noise).
    pub correlation_factor: f64,
    /// Independent samples in the cleaning window.
    pub effective_samples: f64,
    /// Standard error of the cleaned CBF at the core cut, as a share of the cut.
    pub core_cbf_se: f64,
    /// Standard error of the cleaned Tmax near the hypoperfusion threshold (s).
    pub tmax_se_s: f64,
    pub core_ml: Interval,
    pub hypoperfused_ml: Interval,
    pub mismatch_ml: Interval,
    /// DEFUSE-3 / EXTEND differ between the interval's corners.
    pub defuse3_uncertain: bool,
    pub extend_uncertain: bool,
}

/// The maps the volumes were counted from, before and after cleaning, on one grid.
#[derive(Debug, Clone, Copy)]
pub struct CountedMaps<'a> {
    pub cbf_raw: &'a [f32],
    pub cbf_clean: &'a [f32],
    pub tmax_raw: &'a [f32],
    pub tmax_clean: &'a [f32],
    pub tissue: &'a [bool],
    /// Tmax > threshold and core masks as counted from the clean maps.
    pub hypoperfused: &'a [bool],
    pub core: &'a [bool],
    /// [nz, ny, nx].
    pub shape: [usize; 3],
    pub voxel_ml: f64,
    /// Half-width of the cleaning median (voxels).
    pub clean_radius: usize,
}

/// Robust spread of `raw − clean` over the voxels `pick` chooses.
fn scatter(raw: &[f32], clean: &[f32], pick: impl Fn(usize) -> bool) -> Option<f64> {
    let mut d: Vec<f64> = (0..raw.len())
        .filter(|&i| pick(i) && raw[i].is_finite() && clean[i].is_finite())
        .map(|i| (raw[i] - clean[i]) as f64)
        .collect();
    if d.len() < 20 {
        return None;
    }
    let med = median(&mut d);
    let mut dev: Vec<f64> = d.iter().map(|v| (v - med).abs()).collect();
    Some(1.4826 * median(&mut dev))
}

fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// Voxels of `mask` with an in-plane 4-neighbour outside it.
fn edge_voxels(mask: &[bool], [nz, ny, nx]: [usize; 3]) -> usize {
    let mut n = 0;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = (k * ny + j) * nx + i;
                if !mask[p] {
                    continue;
                }
                let out = |q: Option<usize>| q.is_none_or(|q| !mask[q]);
                if out((i > 0).then(|| p - 1))
                    || out((i + 1 < nx).then(|| p + 1))
                    || out((j > 0).then(|| p - nx))
                    || out((j + 1 < ny).then(|| p + nx))
                {
                    n += 1;
                }
            }
        }
    }
    n
}

/// The precision of the volumes of `decision`, counted from `maps` at `thresholds`, with the
/// noise's correlation factor κ.
pub fn precision(
    maps: &CountedMaps,
    decision: &Decision,
    thresholds: Thresholds,
    correlation_factor: f64,
) -> Precision {
    let w = (2 * maps.clean_radius + 1) as f64;
    let kappa = correlation_factor.max(1.0);
    let effective_samples = (w * w / kappa).max(1.0);
    let se = |spread: f64| 1.2533 * spread / effective_samples.sqrt();
    let base = decision;
    let thr = thresholds.hypoperfusion_tmax_s;
    // Near the threshold where enough voxels are, else over all tissue.
    let tmax_spread =
        scatter(maps.tmax_raw, maps.tmax_clean, |i| maps.tissue[i] && ((maps.tmax_clean[i] as f64) - thr).abs() <= 2.0)
            .or_else(|| scatter(maps.tmax_raw, maps.tmax_clean, |i| maps.tissue[i]))
            .unwrap_or(0.0);
    let tmax_se_s = se(tmax_spread);
    let hypo = maps.hypoperfused;
    let cut = thresholds.core_relative_cbf * base.reference_cbf;
    let cbf_spread = scatter(maps.cbf_raw, maps.cbf_clean, |i| {
        hypo[i] && (maps.cbf_clean[i] as f64) >= 0.5 * cut && (maps.cbf_clean[i] as f64) <= 2.0 * cut
    })
    .or_else(|| scatter(maps.cbf_raw, maps.cbf_clean, |i| hypo[i]))
    .unwrap_or(0.0);
    let core_cbf_se = if cut > 0.0 { se(cbf_spread) / cut } else { 0.0 };

    // The random error of the cleaned maps: replicates with Gaussian errors of those standard
    // errors, correlated over the cleaning window as the median makes them.
    let n = maps.tissue.len();
    let (core_v, hypo_v): (Vec<f64>, Vec<f64>) = (0..REPLICATES)
        .into_par_iter()
        .map(|rep| {
            let mut rng = ChaCha8Rng::seed_from_u64(0x7072_6563);
            rng.set_stream(rep as u64);
            let e_cbf = window_noise(&mut rng, maps.shape, maps.clean_radius);
            let e_tmax = window_noise(&mut rng, maps.shape, maps.clean_radius);
            let cbf: Vec<f32> = (0..n).map(|i| maps.cbf_clean[i] + (core_cbf_se * cut) as f32 * e_cbf[i]).collect();
            let tmax: Vec<f32> = (0..n).map(|i| maps.tmax_clean[i] + tmax_se_s as f32 * e_tmax[i]).collect();
            // The reference is the contralateral normal mean over thousands of voxels: kept.
            let hypo = hypoperfused_mask(&cbf, &tmax, maps.tissue, thresholds);
            let core = crate::decision::core_mask(&cbf, &hypo, base.reference_cbf, thresholds);
            let count = |m: &[bool]| m.iter().filter(|&&v| v).count() as f64 * maps.voxel_ml;
            (count(&core), count(&hypo))
        })
        .unzip();
    let sd = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let half_edge = |mask: &[bool]| 0.5 * edge_voxels(mask, maps.shape) as f64 * maps.voxel_ml;
    let span = |v: f64, sd: f64, edge: f64| Interval {
        low: (v - INTERVAL_Z * sd - edge).max(0.0),
        high: v + INTERVAL_Z * sd + edge,
    };
    let core_ml = span(base.core_ml, sd(&core_v), half_edge(maps.core));
    let hypoperfused_ml = span(base.hypoperfused_ml, sd(&hypo_v), half_edge(hypo));
    let mismatch_ml = Interval {
        low: (hypoperfused_ml.low - core_ml.high).max(0.0),
        high: (hypoperfused_ml.high - core_ml.low).max(0.0),
    };
    // Most favourable: least core, most hypoperfusion; least favourable the reverse.
    let best = trial_criteria(core_ml.low, hypoperfused_ml.high);
    let worst = trial_criteria(core_ml.high, hypoperfused_ml.low);
    Precision {
        correlation_factor: kappa,
        effective_samples,
        core_cbf_se,
        tmax_se_s,
        core_ml,
        hypoperfused_ml,
        mismatch_ml,
        defuse3_uncertain: best.0 != worst.0,
        extend_uncertain: best.1 != worst.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{core_mask, decide, Side};

    /// Maps of one slab: normal tissue (CBF 50, Tmax 1 s) on the right; on the left a
    /// hypoperfused block (CBF 25, Tmax 9 s) holding a core block (CBF 5, Tmax 12 s); noise of
    /// `sd` (CBF) and `sd_t` (s) added to the raw maps, the clean maps the truth.
    /// (CBF raw, CBF clean, Tmax raw, Tmax clean, side).
    type Maps = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<Side>);

    fn maps(core_px: usize, hypo_px: usize, sd: f32, sd_t: f32) -> Maps {
        let (nz, ny, nx) = (4, 64, 128);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut c, mut t, mut cr, mut tr, mut side) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let (dx, dy) = (i as isize - 96, j as isize - 32);
                    let inside = |h: usize| {
                        let half = h as isize / 2;
                        (-half..half).contains(&dx) && (-half..half).contains(&dy)
                    };
                    let (cbf, tmax) = if inside(core_px) {
                        (5.0, 12.0)
                    } else if inside(hypo_px) {
                        (25.0, 9.0)
                    } else {
                        (50.0, 1.0)
                    };
                    c.push(cbf);
                    t.push(tmax);
                    let (a, b): (f32, f32) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
                    cr.push(cbf + sd * a);
                    tr.push(tmax + sd_t * b);
                    side.push(if i >= nx / 2 { Side::Left } else { Side::Right });
                }
            }
        }
        (cr, c, tr, t, side)
    }

    fn run(core_px: usize, hypo_px: usize) -> (Precision, crate::Decision) {
        let (cr, c, tr, t, side) = maps(core_px, hypo_px, 20.0, 2.0);
        let tissue = vec![true; c.len()];
        let d = decide(&c, &t, &tissue, &side, 0.02, Thresholds::default()).unwrap();
        let hypo = hypoperfused_mask(&c, &t, &tissue, Thresholds::default());
        let core = core_mask(&c, &hypo, d.reference_cbf, Thresholds::default());
        let m = CountedMaps {
            cbf_raw: &cr,
            cbf_clean: &c,
            tmax_raw: &tr,
            tmax_clean: &t,
            tissue: &tissue,
            hypoperfused: &hypo,
            core: &core,
            shape: [4, 64, 128],
            voxel_ml: 0.02,
            clean_radius: 3,
        };
        (precision(&m, &d, Thresholds::default(), 4.0), d)
    }

    #[test]
    fn a_clear_case_is_not_uncertain_and_its_interval_holds_the_volumes() {
        // Core 20² px · 4 · 0.02 = 32 mL inside 50² px = 200 mL: mismatch ratio 6.25.
        let (p, d) = run(20, 50);
        assert!((d.core_ml - 32.0).abs() < 1e-9 && (d.hypoperfused_ml - 200.0).abs() < 1e-9, "{d:?}");
        assert!(p.core_ml.contains(32.0) && p.hypoperfused_ml.contains(200.0), "{p:?}");
        assert!(!p.defuse3_uncertain && !p.extend_uncertain, "{p:?}");
        // Measured, not assumed: the raw maps' scatter (20 and 2 s) over √(49/κ) and 1/1.2533.
        assert!((p.tmax_se_s - 1.2533 * 2.0 / (49.0f64 / 4.0).sqrt()).abs() < 0.08, "{}", p.tmax_se_s);
        assert!(p.core_ml.high - p.core_ml.low < 0.5 * 32.0, "{p:?}");
    }

    #[test]
    fn a_case_at_a_cut_off_is_uncertain() {
        // Core 26² px = 54.1 mL in 34² px = 92.5 mL: ratio 1.71, mismatch 38 mL: DEFUSE-3 not
        // met (ratio < 1.8) but the edges alone could make it so; EXTEND clearly met.
        let (p, d) = run(26, 34);
        assert!(!d.defuse3 && d.extend, "{d:?}");
        assert!(p.defuse3_uncertain, "{p:?}");
        assert!(!p.extend_uncertain, "{p:?}");
    }
}
