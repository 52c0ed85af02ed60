//! Decision figures from the maps: ischaemic core, hypoperfusion, mismatch and the trial
//! criteria they are read against — decision support, not a treatment recommendation.
//!
//! - Hypoperfusion: Tmax > 6 s (volumes also at 4, 8 and 10 s).
//! - Affected side: the hemisphere holding more of the Tmax > 6 s volume.
//! - Reference flow: the mean CBF of normal tissue (Tmax ≤ 4 s) in the other hemisphere.
//! - Core: relative CBF < 30 % of that reference, counted only inside Tmax > 6 s.
//! - Mismatch volume V(Tmax>6) − V(core) and ratio V(Tmax>6)/V(core) (infinite without core);
//!   hypoperfusion intensity ratio V(Tmax>10)/V(Tmax>6).
//! - DEFUSE-3: core < 70 mL, ratio ≥ 1.8, mismatch ≥ 15 mL. EXTEND: core < 70 mL,
//!   ratio > 1.2, mismatch > 10 mL.

use crate::{invalid, PerfusionError};

/// Which side of the head a voxel lies on (patient left/right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// The thresholds the figures are taken at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Core: CBF below this share of the reference (0.30).
    pub core_relative_cbf: f64,
    /// Hypoperfusion: Tmax above this (6 s).
    pub hypoperfusion_tmax_s: f64,
    /// Normal tissue for the reference: Tmax at most this (4 s).
    pub normal_tmax_s: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { core_relative_cbf: 0.30, hypoperfusion_tmax_s: 6.0, normal_tmax_s: 4.0 }
    }
}

/// The figures a stroke team reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Mean CBF of normal contralateral tissue (mL/100 g/min).
    pub reference_cbf: f64,
    /// mL.
    pub core_ml: f64,
    /// (threshold s, volume mL) for Tmax > 4, 6, 8, 10 s.
    pub tmax_ml: Vec<(f64, f64)>,
    /// V(Tmax > 6 s) in mL.
    pub hypoperfused_ml: f64,
    pub mismatch_ml: f64,
    /// None when there is no core (an infinite ratio).
    pub mismatch_ratio: Option<f64>,
    /// V(Tmax>10)/V(Tmax>6); None without hypoperfusion.
    pub hypoperfusion_intensity_ratio: Option<f64>,
    /// None when neither side holds any Tmax > 6 s volume.
    pub affected_side: Option<Side>,
    pub defuse3: bool,
    pub extend: bool,
    /// Brain voxels without a usable estimate (counted in no region).
    pub unestimated_voxels: usize,
}

/// Brain voxels with a usable estimate and Tmax above the hypoperfusion threshold.
pub fn hypoperfused_mask(cbf: &[f32], tmax_s: &[f32], brain: &[bool], thresholds: Thresholds) -> Vec<bool> {
    (0..cbf.len())
        .map(|i| {
            brain[i]
                && cbf[i].is_finite()
                && tmax_s[i].is_finite()
                && tmax_s[i] as f64 > thresholds.hypoperfusion_tmax_s
        })
        .collect()
}

/// The core: hypoperfused voxels whose CBF is below the core share of the reference.
pub fn core_mask(cbf: &[f32], hypoperfused: &[bool], reference_cbf: f64, thresholds: Thresholds) -> Vec<bool> {
    let cut = thresholds.core_relative_cbf * reference_cbf;
    cbf.iter().zip(hypoperfused).map(|(&c, &h)| h && (c as f64) < cut).collect()
}

/// Computes the decision figures from per-voxel CBF and Tmax maps over the brain voxels
/// (`brain`), each voxel's side, and the volume of one voxel (mL).
pub fn decide(
    cbf: &[f32],
    tmax_s: &[f32],
    brain: &[bool],
    side: &[Side],
    voxel_ml: f64,
    thresholds: Thresholds,
) -> Result<Decision, PerfusionError> {
    let n = cbf.len();
    for (name, len) in [("Tmax map", tmax_s.len()), ("brain mask", brain.len()), ("side map", side.len())] {
        if len != n {
            return Err(invalid(name, len, &format!("must have as many voxels as the CBF map ({n})")));
        }
    }
    if !(voxel_ml.is_finite() && voxel_ml > 0.0) {
        return Err(invalid("voxel volume (mL)", voxel_ml, "must be finite and positive"));
    }
    let usable = |i: usize| brain[i] && cbf[i].is_finite() && tmax_s[i].is_finite();
    let unestimated_voxels = (0..n).filter(|&i| brain[i] && !usable(i)).count();
    let hypo = hypoperfused_mask(cbf, tmax_s, brain, thresholds);
    let (mut left, mut right) = (0usize, 0usize);
    for i in (0..n).filter(|&i| hypo[i]) {
        match side[i] {
            Side::Left => left += 1,
            Side::Right => right += 1,
        }
    }
    let affected_side = if left + right == 0 {
        None
    } else if right > left {
        Some(Side::Right)
    } else {
        Some(Side::Left)
    };
    // Normal tissue of the other hemisphere (both hemispheres when nothing is affected).
    let reference_side = affected_side.map(Side::other);
    let (mut sum, mut count) = (0f64, 0usize);
    for i in 0..n {
        if usable(i) && tmax_s[i] as f64 <= thresholds.normal_tmax_s && reference_side.is_none_or(|s| side[i] == s) {
            sum += cbf[i] as f64;
            count += 1;
        }
    }
    if count == 0 {
        return Err(invalid(
            "normal contralateral tissue",
            0,
            &format!("no brain voxel with Tmax ≤ {} s to take the reference CBF from", thresholds.normal_tmax_s),
        ));
    }
    let reference_cbf = sum / count as f64;
    let core_voxels = core_mask(cbf, &hypo, reference_cbf, thresholds).iter().filter(|&&c| c).count();
    let volume_above = |t: f64| (0..n).filter(|&i| usable(i) && tmax_s[i] as f64 > t).count() as f64 * voxel_ml;
    let tmax_ml: Vec<(f64, f64)> = [4.0, 6.0, 8.0, 10.0].iter().map(|&t| (t, volume_above(t))).collect();
    let core_ml = core_voxels as f64 * voxel_ml;
    // The hypoperfused voxels were counted by side above.
    let hypoperfused_ml = (left + right) as f64 * voxel_ml;
    let above_10_ml = tmax_ml[3].1;
    let mismatch_ml = (hypoperfused_ml - core_ml).max(0.0);
    let mismatch_ratio = (core_ml > 0.0).then(|| hypoperfused_ml / core_ml);
    let (defuse3, extend) = trial_criteria(core_ml, hypoperfused_ml);
    Ok(Decision {
        reference_cbf,
        core_ml,
        hypoperfusion_intensity_ratio: (hypoperfused_ml > 0.0).then(|| above_10_ml / hypoperfused_ml),
        tmax_ml,
        hypoperfused_ml,
        mismatch_ml,
        mismatch_ratio,
        affected_side,
        defuse3,
        extend,
        unestimated_voxels,
    })
}

/// (DEFUSE-3, EXTEND) imaging criteria for a core and a Tmax > 6 s volume (mL): DEFUSE-3 core
/// < 70 mL, ratio ≥ 1.8, mismatch ≥ 15 mL; EXTEND core < 70 mL, ratio > 1.2, mismatch > 10 mL
/// (an infinite ratio without core).
pub fn trial_criteria(core_ml: f64, hypoperfused_ml: f64) -> (bool, bool) {
    let mismatch_ml = (hypoperfused_ml - core_ml).max(0.0);
    let ratio = (core_ml > 0.0).then(|| hypoperfused_ml / core_ml);
    let defuse3 = core_ml < 70.0 && ratio.is_none_or(|m| m >= 1.8) && mismatch_ml >= 15.0;
    let extend = core_ml < 70.0 && ratio.is_none_or(|m| m > 1.2) && mismatch_ml > 10.0;
    (defuse3, extend)
}
