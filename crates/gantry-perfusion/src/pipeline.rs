//! The stroke pipeline on a 4D CT perfusion series, as named steps:
//!
//! 1. [`correct_motion`](crate::correct_motion): every frame registered to the first on bone.
//! 2. [`intracranial_mask`] and [`tissue_mask`]: inside the skull (not reachable from the
//!    image border without crossing bone), then parenchyma by unenhanced HU (CSF and bone out).
//! 3. [`bolus_timing`]: arrival of the bolus in the brain and the baseline frames before it.
//! 4. [`enhancement`]: ΔHU = HU − the voxel's baseline mean.
//! 5. [`select_vessels`]: the arterial input (early, high, anterior: ACA/MCA) and the venous
//!    output (late, large, posterior: superior sagittal sinus); the arterial curve is rescaled
//!    by the venous area (the sinus is wide enough to be free of partial volume).
//! 6. [`bin_tissue`]: tissue curves averaged over in-plane blocks to about `target_pixel_mm`
//!    (maps are read at that scale anyway; it quarters the work and halves the noise).
//! 7. [`TipsFilter`]: edge-preserving denoising of the curves, slice by slice.
//! 8. [`fit_maps`]: CBF, CBV, MTT, Tmax, TTP per voxel; vessels (CBV > 8 mL/100 g) removed.
//! 9. [`median_clean`]: a 7 × 7 (≈ 6 mm) masked median of CBF and Tmax before the volumes are counted,
//!    so isolated noisy voxels do not add up to millilitres; [`fill_small_patches`]: holes in the
//!    Tmax > 6 s region and specks outside it, below `fill_patch_mm2` per slice, are filled.
//!    [`pool_untimeable`]: low-flow regions (CBF under the core cut) whose fitted curves explain
//!    no more than noise would (model evidence < `untimeable_evidence`) — an ischaemic core under
//!    heavy noise — take the Tmax fitted to their mean curve, since their voxels' own Tmax is a
//!    guess; the Tmax map is then cleaned again.
//! 10. [`decide`]: core, hypoperfusion, mismatch, DEFUSE-3 and EXTEND; [`QualityFlag`]s.

use std::ops::Range;
use std::time::Instant;

use gantry_core::{Quantity, Volume, VolumeGeometry, VolumeSeries};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::decision::{core_mask, hypoperfused_mask};
use crate::denoise::correlation_factor;
use crate::motion::{correct_motion, FrameMotion};
use crate::precision::{precision, CountedMaps, Precision};
use crate::summed_area::{box_around, SummedArea};
use crate::{
    decide, estimate_curve, invalid, noise_sigma, Constants, Decision, FitGrid, Method, ModelFit, PerfusionError, Side,
    Thresholds, TipsFilter,
};

/// How the per-voxel figures are estimated.
#[derive(Debug, Clone, PartialEq)]
pub enum Estimator {
    /// The indicator-dilution model fit (default).
    ModelFit(FitGrid),
    /// Deconvolution: block-circulant SVD with oscillation index, standard SVD or Tikhonov.
    Deconvolution(Method),
}

/// Pipeline settings; the defaults are what `gantry stroke` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StrokeOptions {
    pub estimator: Estimator,
    /// None: no spatial denoising.
    pub denoise: Option<TipsFilter>,
    pub thresholds: Thresholds,
    pub constants: Constants,
    /// Frames displaced more than this (mm, within 80 mm of the centre) are resampled.
    pub motion_tolerance_mm: f64,
    /// In-plane size the tissue curves are averaged to (mm).
    pub target_pixel_mm: f64,
    /// Voxels whose CBV exceeds this (mL/100 g) are vessels, not tissue.
    pub vessel_cbv: f64,
    /// Tissue HU window of the unenhanced image (CSF below, bone and blood-rich above).
    pub tissue_hu: (f32, f32),
    /// Patches of at most this area (mm², per slice) on one side of the Tmax threshold inside
    /// the other are filled ([`fill_small_patches`]); 0: never.
    pub fill_patch_mm2: f64,
    /// Half-width (voxels) of the in-plane median the CBF and Tmax maps are cleaned with
    /// before the volumes are counted (1: 3 × 3).
    pub clean_radius_px: usize,
    /// Model fit only: half-width (mm) of the in-plane window of [`regional_flow`]: CBF and
    /// CBV are re-estimated as each voxel's own (undenoised) curve projected on the model
    /// fitted to the mean curve of the window's voxels in the same state (normal, penumbra-like,
    /// core-like by the first pass), which removes most of the low-flow bias of per-voxel fits
    /// under noise. 0: never.
    pub flow_window_mm: f64,
    /// Model fit only: tissue whose CBF is under the core cut and whose (median-cleaned) model
    /// evidence is below this explains no more of its curve than noise does, so its own Tmax
    /// is a guess; each region of such voxels (a majority over ±[`POOL_WINDOW_MM`]) takes the
    /// Tmax fitted to the mean of its curves before denoising ([`pool_untimeable`]). 0: never.
    pub untimeable_evidence: f64,
}

impl Default for StrokeOptions {
    fn default() -> Self {
        StrokeOptions {
            estimator: Estimator::ModelFit(FitGrid::default()),
            // σ 3 map voxels (≈ 2.7 mm): brain regions are wider than the tiles the filter's
            // own default (2 voxels) was tuned on.
            denoise: Some(TipsFilter { sigma_spatial_px: 3.0, ..TipsFilter::default() }),
            thresholds: Thresholds::default(),
            constants: Constants::default(),
            motion_tolerance_mm: 0.5,
            target_pixel_mm: 0.9,
            vessel_cbv: 8.0,
            tissue_hu: (18.0, 60.0),
            clean_radius_px: 3,
            fill_patch_mm2: 200.0,
            untimeable_evidence: 25.0,
            flow_window_mm: 9.0,
        }
    }
}

/// When the bolus arrives and which frames are baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BolusTiming {
    /// First frame whose brain-mean enhancement exceeds 10 % of its peak.
    pub arrival_frame: usize,
    pub peak_frame: usize,
    /// Frames averaged for the unenhanced baseline (all before the one preceding arrival).
    pub baseline: Range<usize>,
}

/// A vascular curve and where it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct VascularCurve {
    /// ΔHU per frame (the mean of the chosen voxels).
    pub curve: Vec<f64>,
    /// Chosen voxels, [z, y, x] indices of the input grid.
    pub voxels: Vec<[usize; 3]>,
    pub peak_hu: f64,
    /// Area under the curve (ΔHU·s).
    pub area: f64,
}

/// Things a reader of the maps must know.
#[derive(Debug, Clone, PartialEq)]
pub enum QualityFlag {
    /// The arterial peak (ΔHU, as measured) is below 100.
    LowArterialPeak(f64),
    /// The venous curve has not come back down by the last frame (last/peak).
    VenousTruncated(f64),
    /// Fewer than 2 baseline frames.
    ShortBaseline(usize),
    /// A frame moved more than 3 mm (frame, mm).
    Motion(usize, f64),
    /// The tissue curves are noisier than the figures were validated for: the white-noise
    /// equivalent σ (HU per voxel and frame, scaled to 0.45 mm pixels, times √κ for the noise's
    /// spatial correlation) above [`VALIDATED_NOISE_HU`].
    HighNoise(f64),
    /// A trial criterion differs across the volumes' precision intervals (criterion names).
    CriteriaUncertain(Vec<&'static str>),
}

/// Noise (HU per voxel and frame, for 0.45 mm pixels) up to which the volumes were validated on
/// the brain phantom: the 15 HU, plus the few percent the robust estimate reads high.
pub const VALIDATED_NOISE_HU: f64 = 16.0;

impl std::fmt::Display for QualityFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QualityFlag::LowArterialPeak(p) => write!(f, "arterial peak {p:.0} ΔHU is below 100 ΔHU"),
            QualityFlag::VenousTruncated(r) => {
                write!(f, "venous curve truncated: still at {:.0} % of its peak at the last frame", r * 100.0)
            }
            QualityFlag::ShortBaseline(n) => write!(f, "only {n} baseline frame(s) before the bolus (2 needed)"),
            QualityFlag::Motion(t, mm) => write!(f, "frame {t} moved {mm:.1} mm (more than 3 mm)"),
            QualityFlag::HighNoise(hu) => write!(
                f,
                "tissue noise {hu:.1} HU (white-noise equivalent per 0.45 mm voxel and frame) is above the \
                 {VALIDATED_NOISE_HU:.0} HU the volumes were validated for: read them with caution"
            ),
            QualityFlag::CriteriaUncertain(names) => write!(
                f,
                "{} uncertain: the criterion changes within the volumes' precision intervals",
                names.join(" and ")
            ),
        }
    }
}

/// CBF (mL/100 g/min), CBV (mL/100 g), MTT (s), Tmax (s), TTP (s) on the map grid; NaN
/// outside tissue.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfusionMaps {
    pub cbf: Volume,
    pub cbv: Volume,
    pub mtt: Volume,
    pub tmax: Volume,
    pub ttp: Volume,
    /// Model evidence: the squared signal the fitted model explains, in units of the curves'
    /// noise variance (a noise-only curve scores about 10–15; NaN for deconvolution).
    pub evidence: Volume,
}

/// Everything the pipeline found.
#[derive(Debug, Clone)]
pub struct StrokeResult {
    pub maps: PerfusionMaps,
    /// Tissue voxels too weak to time one by one whose Tmax was fitted over their region
    /// ([`pool_untimeable`]).
    pub untimeable_voxels: usize,
    /// The unenhanced image (baseline mean, HU) on the map grid, for display.
    pub baseline: Volume,
    /// Tissue voxels of the map grid the volumes are counted over (vessels removed).
    pub tissue: Vec<bool>,
    /// Core and Tmax > 6 s masks on the map grid, after clean-up.
    pub core: Vec<bool>,
    pub hypoperfused: Vec<bool>,
    pub decision: Decision,
    pub aif: VascularCurve,
    pub vof: VascularCurve,
    /// Factor the arterial curve was multiplied by (venous area / arterial area).
    pub aif_scale: f64,
    pub timing: BolusTiming,
    pub motion: Vec<FrameMotion>,
    pub quality: Vec<QualityFlag>,
    /// Noise of the tissue curves the estimator saw (ΔHU per sample).
    pub noise_hu: f64,
    /// White-noise equivalent noise of the tissue curves before denoising, per 0.45 mm voxel
    /// (what [`QualityFlag::HighNoise`] compares).
    pub effective_noise_045_hu: f64,
    /// Intervals of the volumes and whether the trial criteria could go either way.
    pub precision: Precision,
    pub times_s: Vec<f64>,
    /// (step, seconds).
    pub steps: Vec<(&'static str, f64)>,
}

/// Mean of frames `frames` of a series.
pub fn mean_frames(series: &VolumeSeries, frames: Range<usize>) -> Result<Volume, PerfusionError> {
    if frames.is_empty() || frames.end > series.n_frames() {
        return Err(invalid("frames to average", format!("{frames:?}"), &format!("series has {}", series.n_frames())));
    }
    let n = frames.len() as f32;
    let mut acc = Array3::<f32>::zeros(series.geometry.shape_zyx());
    for t in frames {
        acc += &series.data.index_axis(Axis(0), t);
    }
    acc.mapv_inplace(|v| v / n);
    Ok(Volume { geometry: series.geometry.clone(), data: acc, quantity: series.quantity })
}

/// Inside the skull: per slice, everything not reachable from the image border through
/// non-bone pixels (bone: > 150 HU), bone excluded. Returns `[z][y][x]` flags.
pub fn intracranial_mask(image: &Volume) -> Vec<bool> {
    let [nz, ny, nx] = image.geometry.shape_zyx();
    let data = image.data.as_slice().expect("standard layout");
    let mut out = vec![false; nz * ny * nx];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, m)| {
        let s = &data[k * ny * nx..(k + 1) * ny * nx];
        let bone: Vec<bool> = s.iter().map(|&v| v > 150.0).collect();
        let mut outside = vec![false; ny * nx];
        let mut stack: Vec<usize> = Vec::new();
        for j in 0..ny {
            for i in 0..nx {
                if (j == 0 || i == 0 || j == ny - 1 || i == nx - 1) && !bone[j * nx + i] {
                    outside[j * nx + i] = true;
                    stack.push(j * nx + i);
                }
            }
        }
        while let Some(p) = stack.pop() {
            let (j, i) = (p / nx, p % nx);
            let mut visit = |q: usize| {
                if !bone[q] && !outside[q] {
                    outside[q] = true;
                    stack.push(q);
                }
            };
            if i > 0 {
                visit(p - 1);
            }
            if i + 1 < nx {
                visit(p + 1);
            }
            if j > 0 {
                visit(p - nx);
            }
            if j + 1 < ny {
                visit(p + nx);
            }
        }
        for (q, v) in m.iter_mut().enumerate() {
            *v = !outside[q] && !bone[q];
        }
    });
    out
}

/// Parenchyma: intracranial voxels whose 3 × 3 in-plane median unenhanced HU lies in `window`
/// (a median, so a voxel beside bone keeps its own tissue value).
pub fn tissue_mask(baseline: &Volume, intracranial: &[bool], window: (f32, f32)) -> Vec<bool> {
    let [nz, ny, nx] = baseline.geometry.shape_zyx();
    let data = baseline.data.as_slice().expect("standard layout");
    let mut out = vec![false; nz * ny * nx];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, m)| {
        let s = &data[k * ny * nx..(k + 1) * ny * nx];
        let ic = &intracranial[k * ny * nx..(k + 1) * ny * nx];
        let mut buf = [0f32; 9];
        for j in 0..ny {
            for i in 0..nx {
                if !ic[j * nx + i] {
                    continue;
                }
                let mut n = 0;
                for b in j.saturating_sub(1)..(j + 2).min(ny) {
                    for a in i.saturating_sub(1)..(i + 2).min(nx) {
                        buf[n] = s[b * nx + a];
                        n += 1;
                    }
                }
                let near = &mut buf[..n];
                near.sort_unstable_by(|a, b| a.total_cmp(b));
                let v = near[n / 2];
                m[j * nx + i] = v >= window.0 && v <= window.1;
            }
        }
    });
    out
}

/// The brain-mean curve's arrival and peak, and the baseline frames.
pub fn bolus_timing(series: &VolumeSeries, mask: &[bool]) -> Result<BolusTiming, PerfusionError> {
    let n_vox = mask.iter().filter(|&&m| m).count();
    if n_vox == 0 {
        return Err(invalid("brain mask", 0, "no tissue voxels to time the bolus on"));
    }
    let mean: Vec<f64> = series
        .data
        .axis_iter(Axis(0))
        .map(|f| {
            f.as_slice()
                .expect("standard layout")
                .iter()
                .zip(mask)
                .filter(|(_, &m)| m)
                .map(|(&v, _)| v as f64)
                .sum::<f64>()
                / n_vox as f64
        })
        .collect();
    let base = mean[0];
    let (peak_frame, peak) =
        mean.iter().enumerate().fold((0, f64::MIN), |b, (i, &v)| if v - base > b.1 { (i, v - base) } else { b });
    if peak.is_nan() || peak <= 0.0 || peak_frame == 0 {
        return Err(invalid("brain-mean enhancement peak (ΔHU)", peak, "no bolus: the brain does not enhance"));
    }
    let arrival_frame = (1..=peak_frame).find(|&i| mean[i] - base > 0.1 * peak).unwrap_or(peak_frame);
    let baseline = 0..arrival_frame.saturating_sub(1).max(1);
    Ok(BolusTiming { arrival_frame, peak_frame, baseline })
}

/// Subtracts each voxel's baseline mean in place (HU → ΔHU) and returns the baseline image.
pub fn enhancement(series: &mut VolumeSeries, baseline: Range<usize>) -> Result<Volume, PerfusionError> {
    let base = mean_frames(series, baseline)?;
    for mut f in series.data.axis_iter_mut(Axis(0)) {
        f -= &base.data;
    }
    Ok(base)
}

/// Picks the arterial input and venous output among intracranial voxels of a ΔHU series.
pub fn select_vessels(
    delta: &VolumeSeries,
    baseline: &Volume,
    intracranial: &[bool],
    tissue: &[bool],
    timing: &BolusTiming,
) -> Result<(VascularCurve, VascularCurve), PerfusionError> {
    let g = &delta.geometry;
    let [nz, ny, nx] = g.shape_zyx();
    let n_t = delta.n_frames();
    let times = &delta.times_s;
    let frame_slices: Vec<&[f32]> =
        delta.data.axis_iter(Axis(0)).map(|f| f.to_slice().expect("standard layout")).collect::<Vec<_>>();
    // Brain centroid (y) in index space: anterior is smaller y in LPS.
    let (mut cy, mut n_tissue) = (0.0, 0usize);
    for (p, _) in tissue.iter().enumerate().filter(|(_, &m)| m) {
        cy += ((p / nx) % ny) as f64;
        n_tissue += 1;
    }
    if n_tissue == 0 {
        return Err(invalid("brain mask", 0, "no tissue voxels"));
    }
    let cy = cy / n_tissue as f64;
    // Posterior is +y in LPS when the grid's y axis runs along +y.
    let y_sign = g.direction[1][1].signum();
    let start = timing.baseline.end;
    // The arterial first pass: from the end of the baseline to the brain's peak (arteries peak
    // before the tissue they feed).
    let first_pass = start..(timing.peak_frame + 1).max(start + 1).min(n_t);
    // Peak, peak frame and first-pass area of every intracranial voxel. Voxels are ranked by
    // the first-pass area of their HU (ΔHU plus the baseline), so the noise that the ranking
    // selects for stays in those frames: ranked on ΔHU it would also select voxels whose
    // baseline happened to read low, and that offset lifts every later frame — a tail lifted
    // so reads as a longer arterial input, and every MTT comes out short and CBF high.
    let base = baseline.data.as_slice().expect("standard layout");
    let stats: Vec<(usize, f32, usize, f32)> = (0..nz * ny * nx)
        .into_par_iter()
        .filter(|&p| intracranial[p])
        .map(|p| {
            let (mut peak, mut at, mut area) = (f32::MIN, 0, 0f32);
            for (t, f) in frame_slices.iter().enumerate().skip(start) {
                let v = f[p];
                if v > peak {
                    peak = v;
                    at = t;
                }
                if first_pass.contains(&t) {
                    area += v + base[p];
                }
            }
            (p, peak, at, area)
        })
        .collect();
    if stats.is_empty() {
        return Err(invalid("intracranial mask", 0, "no voxels inside the skull"));
    }
    let mut peaks: Vec<f32> = stats.iter().map(|s| s.1).collect();
    let top = {
        let k = ((peaks.len() as f64) * 0.9995) as usize;
        let k = k.min(peaks.len() - 1);
        *peaks.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
    };
    let candidates: Vec<&(usize, f32, usize, f32)> = stats.iter().filter(|s| s.1 >= 0.5 * top).collect();
    if candidates.len() < 2 {
        return Err(invalid("vessel candidates", candidates.len(), "no enhancing vessels found"));
    }
    let mut ttps: Vec<usize> = candidates.iter().map(|s| s.2).collect();
    ttps.sort_unstable();
    let early = ttps[ttps.len() / 10];
    let late = ttps[ttps.len() * 9 / 10];
    let dy = |p: usize| ((p / nx) % ny) as f64 - cy;
    let pixel_area = g.spacing_mm[0] * g.spacing_mm[1];
    // The arterial input from the few most enhancing voxels (≈ 2 mm², the core of an MCA or
    // ACA), the venous output from more (≈ 8 mm² of the sinus), each ranked by area under the
    // curve, which noise disturbs less than the peak.
    let k_artery = ((2.0 / pixel_area).round() as usize).clamp(3, 40);
    let k_vein = ((8.0 / pixel_area).round() as usize).clamp(4, 80);
    let pick = |mut set: Vec<&(usize, f32, usize, f32)>, k: usize, what: &str| {
        if set.is_empty() {
            return Err(invalid(what, 0, "no candidate voxels"));
        }
        set.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
        set.truncate(k);
        let mut curve = vec![0f64; n_t];
        for s in &set {
            for (t, f) in frame_slices.iter().enumerate() {
                curve[t] += f[s.0] as f64 / set.len() as f64;
            }
        }
        let peak_hu = curve.iter().cloned().fold(f64::MIN, f64::max);
        let area = trapezoid(&curve, times);
        let voxels = set.iter().map(|s| [s.0 / (ny * nx), (s.0 / nx) % ny, s.0 % nx]).collect();
        Ok(VascularCurve { curve, voxels, peak_hu, area })
    };
    let arterial: Vec<_> = candidates.iter().copied().filter(|s| s.2 <= early && y_sign * dy(s.0) <= 0.0).collect();
    let aif = pick(arterial, k_artery, "arterial input (early, anterior, enhancing)")?;
    // The sinus is wide: each venous candidate is ranked by the mean area of a ring of in-plane
    // neighbours (from about 1.5 to 2.5 mm away: beyond the reach of spatially correlated
    // noise) and measured on itself, so the ranking does not select voxels whose own noise or
    // baseline happened to be high or low (that would bias the area the arterial scale is
    // taken from by several per cent).
    let px = g.spacing_mm[0].min(g.spacing_mm[1]);
    let r = ((2.5 / px).round() as usize).max(1);
    let r_in = ((1.5 / px).round() as usize).min(r - 1);
    let neighbourhood_area = |p: usize| -> f32 {
        let (k, j, i) = (p / (ny * nx), (p / nx) % ny, p % nx);
        let (mut sum, mut n) = (0f32, 0usize);
        for b in j.saturating_sub(r)..(j + r + 1).min(ny) {
            for a in i.saturating_sub(r)..(i + r + 1).min(nx) {
                let q = (k * ny + b) * nx + a;
                if b.abs_diff(j).max(a.abs_diff(i)) <= r_in {
                    continue;
                }
                sum += frame_slices.iter().skip(start).map(|f| f[q]).sum::<f32>();
                n += 1;
            }
        }
        sum / n as f32
    };
    let venous: Vec<(usize, f32, usize, f32)> = candidates
        .iter()
        .filter(|s| s.2 >= late.max(early + 1) && y_sign * dy(s.0) > 0.0)
        .map(|s| (s.0, s.1, s.2, neighbourhood_area(s.0)))
        .collect();
    let vof = pick(venous.iter().collect(), k_vein, "venous output (late, posterior, enhancing)")?;
    Ok((aif, vof))
}

fn trapezoid(v: &[f64], t: &[f64]) -> f64 {
    v.windows(2).zip(t.windows(2)).map(|(a, b)| 0.5 * (a[0] + a[1]) * (b[1] - b[0])).sum()
}

/// Tissue curves on a grid binned in-plane by `factor`: curves `[(z·ny + y)·nx + x][t]` and the
/// binned tissue mask (a block is tissue when at least 3 of 4 of its voxels are).
#[derive(Debug, Clone)]
pub struct BinnedCurves {
    pub geometry: VolumeGeometry,
    pub n_t: usize,
    pub curves: Vec<f32>,
    pub mask: Vec<bool>,
}

/// Averages ΔHU over `factor × factor` in-plane blocks of tissue voxels.
pub fn bin_tissue(delta: &VolumeSeries, tissue: &[bool], factor: usize) -> Result<BinnedCurves, PerfusionError> {
    let g = &delta.geometry;
    let [nz, ny, nx] = g.shape_zyx();
    let f = factor.max(1);
    let (bx, by) = (nx / f, ny / f);
    if bx == 0 || by == 0 {
        return Err(invalid("binning factor", f, &format!("larger than the {nx} × {ny} slices")));
    }
    let n_t = delta.n_frames();
    let half = (f as f64 - 1.0) / 2.0;
    let origin = g.position_mm(half, half, 0.0);
    let geometry = VolumeGeometry::new(
        [bx, by, nz],
        [g.spacing_mm[0] * f as f64, g.spacing_mm[1] * f as f64, g.spacing_mm[2]],
        origin,
        g.direction,
    )
    .map_err(|e| invalid("binned grid", f, &e.to_string()))?;
    let frames: Vec<&[f32]> = delta.data.axis_iter(Axis(0)).map(|fr| fr.to_slice().expect("standard layout")).collect();
    let mut curves = vec![0f32; nz * by * bx * n_t];
    let mut mask = vec![false; nz * by * bx];
    curves.par_chunks_mut(by * bx * n_t).zip(mask.par_chunks_mut(by * bx)).enumerate().for_each(|(k, (c, m))| {
        for j in 0..by {
            for i in 0..bx {
                let mut members = Vec::with_capacity(f * f);
                for b in 0..f {
                    for a in 0..f {
                        let p = (k * ny + j * f + b) * nx + i * f + a;
                        if tissue[p] {
                            members.push(p);
                        }
                    }
                }
                let q = j * bx + i;
                if members.len() * 4 < 3 * f * f || members.is_empty() {
                    continue;
                }
                m[q] = true;
                let inv = 1.0 / members.len() as f32;
                for (t, fr) in frames.iter().enumerate() {
                    c[q * n_t + t] = members.iter().map(|&p| fr[p]).sum::<f32>() * inv;
                }
            }
        }
    });
    Ok(BinnedCurves { geometry, n_t, curves, mask })
}

/// Block means of a volume over `factor × factor` in-plane blocks, on `geometry`.
fn bin_volume(v: &Volume, factor: usize, geometry: &VolumeGeometry) -> Volume {
    let [nz, by, bx] = geometry.shape_zyx();
    let f = factor.max(1);
    let inv = 1.0 / (f * f) as f32;
    let data = Array3::from_shape_fn((nz, by, bx), |(k, j, i)| {
        let mut s = 0.0;
        for b in 0..f {
            for a in 0..f {
                s += v.data[[k, j * f + b, i * f + a]];
            }
        }
        s * inv
    });
    Volume { geometry: geometry.clone(), data, quantity: v.quantity }
}

/// Per-voxel maps from (denoised) curves; voxels outside `mask` are NaN.
pub fn fit_maps(
    curves: &BinnedCurves,
    aif: &[f64],
    times_s: &[f64],
    estimator: &Estimator,
    constants: Constants,
    sigma: f32,
) -> Result<PerfusionMaps, PerfusionError> {
    let n_t = curves.n_t;
    let n = curves.mask.len();
    let dt =
        if times_s.len() > 1 { (times_s[times_s.len() - 1] - times_s[0]) / (times_s.len() - 1) as f64 } else { 1.0 };
    let model = match estimator {
        Estimator::ModelFit(grid) => Some(ModelFit::new(aif, times_s, grid.clone(), constants)?),
        Estimator::Deconvolution(_) => {
            // Deconvolution needs a uniform sampling.
            if let Some(w) = times_s.windows(2).find(|w| ((w[1] - w[0]) - dt).abs() > 0.05 * dt) {
                return Err(invalid(
                    "frame interval (s)",
                    w[1] - w[0],
                    &format!("deconvolution needs uniform sampling ({dt:.2} s)"),
                ));
            }
            None
        }
    };
    let nan = [f32::NAN; 6];
    let inv_var = if sigma > 0.0 { 1.0 / (sigma as f64 * sigma as f64) } else { f64::INFINITY };
    let values: Vec<[f32; 6]> = (0..n)
        .into_par_iter()
        .map(|v| {
            if !curves.mask[v] {
                return nan;
            }
            let c = &curves.curves[v * n_t..(v + 1) * n_t];
            let ttp = ttp_s(c, times_s) as f32;
            match (&model, estimator) {
                (Some(m), _) => match m.fit_noisy(c, sigma) {
                    Ok(e) => {
                        let energy: f64 = c.iter().map(|&v| v as f64 * v as f64).sum();
                        let evidence = (e.explained * energy * inv_var) as f32;
                        [e.cbf as f32, e.cbv as f32, e.mtt_s as f32, e.tmax_s as f32, ttp, evidence]
                    }
                    Err(_) => nan,
                },
                (None, Estimator::Deconvolution(method)) => {
                    let c64: Vec<f64> = c.iter().map(|&x| x as f64).collect();
                    match estimate_curve(aif, &c64, dt, *method, constants) {
                        Ok(e) => [e.cbf as f32, e.cbv as f32, e.mtt_s as f32, e.tmax_s as f32, ttp, f32::NAN],
                        Err(_) => nan,
                    }
                }
                _ => nan,
            }
        })
        .collect();
    let [nz, ny, nx] = curves.geometry.shape_zyx();
    let quantities = [
        Quantity::BloodFlow,
        Quantity::BloodVolume,
        Quantity::TimeSeconds,
        Quantity::TimeSeconds,
        Quantity::TimeSeconds,
        Quantity::Unitless,
    ];
    let vol = |i: usize| Volume {
        geometry: curves.geometry.clone(),
        data: Array3::from_shape_vec((nz, ny, nx), values.iter().map(|v| v[i]).collect()).expect("map size"),
        quantity: quantities[i],
    };
    Ok(PerfusionMaps { cbf: vol(0), cbv: vol(1), mtt: vol(2), tmax: vol(3), ttp: vol(4), evidence: vol(5) })
}

/// Per slice, every 4-connected patch of tissue on one side of `threshold` (Tmax above it or
/// not) of at most `max_voxels` takes the mean value of the tissue around it: a hole in a
/// lesion or a speck outside one is noise, not anatomy, once its area is below the scale the
/// maps resolve. Returns how many voxels changed side.
pub fn fill_small_patches(map: &mut Volume, tissue: &[bool], threshold: f32, max_voxels: usize) -> usize {
    let [nz, ny, nx] = map.geometry.shape_zyx();
    let data = map.data.as_slice_mut().expect("standard layout");
    let mut changed = 0;
    for k in 0..nz {
        let off = k * ny * nx;
        let mut seen = vec![false; ny * nx];
        for start in 0..ny * nx {
            let v0 = data[off + start];
            if seen[start] || !tissue[off + start] || !v0.is_finite() {
                continue;
            }
            let above = v0 > threshold;
            // Flood the patch; collect the values of the tissue around it.
            let mut patch = vec![start];
            seen[start] = true;
            let (mut around_sum, mut around_n) = (0f64, 0usize);
            let mut head = 0;
            let mut too_big = false;
            while head < patch.len() {
                let p = patch[head];
                head += 1;
                let (j, i) = (p / nx, p % nx);
                let neighbours = [
                    (i > 0).then(|| p - 1),
                    (i + 1 < nx).then(|| p + 1),
                    (j > 0).then(|| p - nx),
                    (j + 1 < ny).then(|| p + nx),
                ];
                for q in neighbours.into_iter().flatten() {
                    let v = data[off + q];
                    if !tissue[off + q] || !v.is_finite() {
                        continue;
                    }
                    if (v > threshold) == above {
                        if !seen[q] {
                            seen[q] = true;
                            patch.push(q);
                        }
                    } else {
                        around_sum += v as f64;
                        around_n += 1;
                    }
                }
                if patch.len() > max_voxels {
                    too_big = true;
                }
            }
            if too_big || around_n == 0 {
                continue;
            }
            let fill = (around_sum / around_n as f64) as f32;
            if (fill > threshold) != above {
                for &p in &patch {
                    data[off + p] = fill;
                }
                changed += patch.len();
            }
        }
    }
    changed
}

/// Half-width (mm) of the window whose majority decides which voxels belong to a region too
/// weak to time (see [`pool_untimeable`]).
pub const POOL_WINDOW_MM: f64 = 9.0;

/// Per slice, the voxels of `within` where more than half of the `within` voxels of the
/// (2r + 1)² window around them are in `set` (a majority filter; `r` in voxels).
pub fn majority(set: &[bool], within: &[bool], [_, ny, nx]: [usize; 3], r: usize) -> Vec<bool> {
    let mut out = vec![false; set.len()];
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, o)| {
        let off = k * ny * nx;
        let s_set = SummedArea::new(ny, nx, |p| u32::from(within[off + p] && set[off + p]));
        let s_all = SummedArea::new(ny, nx, |p| u32::from(within[off + p]));
        for j in 0..ny {
            for i in 0..nx {
                if !within[off + j * nx + i] {
                    continue;
                }
                let (j0, j1, i0, i1) = box_around(j, i, r, ny, nx);
                o[j * nx + i] = 2 * s_set.sum(j0, j1, i0, i1) > s_all.sum(j0, j1, i0, i1);
            }
        }
    });
    out
}

/// The 6-connected regions of `set` on `[nz, ny, nx]`, each as its voxel indices.
pub fn connected_regions(set: &[bool], [nz, ny, nx]: [usize; 3]) -> Vec<Vec<usize>> {
    let n = nz * ny * nx;
    let mut seen = vec![false; n];
    let mut regions = Vec::new();
    for start in 0..n {
        if seen[start] || !set[start] {
            continue;
        }
        let mut region = vec![start];
        seen[start] = true;
        let mut head = 0;
        while head < region.len() {
            let p = region[head];
            head += 1;
            let (k, j, i) = (p / (ny * nx), (p / nx) % ny, p % nx);
            let neighbours = [
                (i > 0).then(|| p - 1),
                (i + 1 < nx).then(|| p + 1),
                (j > 0).then(|| p - nx),
                (j + 1 < ny).then(|| p + nx),
                (k > 0).then(|| p - ny * nx),
                (k + 1 < nz).then(|| p + ny * nx),
            ];
            for q in neighbours.into_iter().flatten() {
                if set[q] && !seen[q] {
                    seen[q] = true;
                    region.push(q);
                }
            }
        }
        regions.push(region);
    }
    regions
}

/// Smallest region (map voxels) whose mean curve is fitted by [`pool_untimeable`]; smaller
/// ones keep their voxels' own Tmax, for the median and patch filling to deal with.
pub const MIN_POOLED_VOXELS: usize = 50;

/// Tmax where single voxels cannot be timed. Voxels marked `untimeable` (their fitted curve
/// explains no more signal than noise: little or no flow, as in an ischaemic core under heavy
/// noise) are grouped into 6-connected regions; each region of at least [`MIN_POOLED_VOXELS`]
/// takes the Tmax fitted to the mean of its curves (`curves`: n_t samples per map voxel, noise
/// independent between voxels, σ `sigma` each), where the averaging has brought the noise down
/// by √n. Returns the number of voxels so set.
pub fn pool_untimeable(
    tmax: &mut Volume,
    untimeable: &[bool],
    curves: &[f32],
    n_t: usize,
    model: &ModelFit,
    sigma: f32,
) -> usize {
    let shape = tmax.geometry.shape_zyx();
    let data = tmax.data.as_slice_mut().expect("standard layout");
    let mut set = 0;
    let mut mean = vec![0f32; n_t];
    for region in connected_regions(untimeable, shape) {
        if region.len() < MIN_POOLED_VOXELS {
            continue;
        }
        mean.fill(0.0);
        for &p in &region {
            for (m, &c) in mean.iter_mut().zip(&curves[p * n_t..(p + 1) * n_t]) {
                *m += c;
            }
        }
        let inv = 1.0 / region.len() as f32;
        mean.iter_mut().for_each(|m| *m *= inv);
        if let Ok(e) = model.fit_noisy(&mean, sigma * inv.sqrt()) {
            for &p in &region {
                data[p] = e.tmax_s as f32;
            }
            set += region.len();
        }
    }
    set
}

/// The neighbourhood [`regional_flow`] pools over: the voxels of `mask` within `radius` voxels
/// in-plane that share the voxel's `state` (in the pipeline: normal; Tmax above the threshold;
/// Tmax above it and CBF under the core cut, from the first pass), so a lesion's curves are not
/// averaged with normal tissue's nor the core's with the penumbra's.
#[derive(Debug, Clone, Copy)]
pub struct RegionalWindow<'a> {
    pub mask: &'a [bool],
    pub state: &'a [u8],
    /// [nz, ny, nx].
    pub shape: [usize; 3],
    pub radius: usize,
}

/// Re-estimates CBF and CBV (and MTT = CBV/CBF) with the two-scale fit
/// ([`ModelFit::fit_guided`]): the model curve is the one fitted to the window's mean of the
/// undenoised `raw` curves (a linear average: no filter's choices in it), the flow is the
/// projection on it of the voxel's own raw curve, whose noise the choice of model curve hardly
/// saw (one voxel of hundreds). Tmax stays the voxel's own. Voxels outside the mask are
/// left as they are.
pub fn regional_flow(
    maps: &mut PerfusionMaps,
    raw: &[f32],
    n_t: usize,
    window: &RegionalWindow,
    model: &ModelFit,
    sigma: f32,
) {
    let guide = regional_mean(raw, n_t, window);
    let [nz, ny, nx] = window.shape;
    // The guide changes little from one voxel to the next (a window of (2r + 1)²): it is fitted
    // at every other voxel in x and y, and its neighbours in the same state use that fit.
    let anchor = |v: usize| {
        let (k, j, i) = (v / (ny * nx), (v / nx) % ny, v % nx);
        (k * ny + (j & !1)) * nx + (i & !1)
    };
    let fit_at = |v: usize| model.fit_guide(&guide[v * n_t..(v + 1) * n_t], sigma).ok();
    let anchors: Vec<Option<crate::FitEstimate>> = (0..nz * ny * nx)
        .into_par_iter()
        .map(|v| (window.mask[v] && anchor(v) == v).then(|| fit_at(v)).flatten())
        .collect();
    let estimates: Vec<Option<crate::FitEstimate>> = (0..window.mask.len())
        .into_par_iter()
        .map(|v| {
            if !window.mask[v] {
                return None;
            }
            let a = anchor(v);
            let g = if window.mask[a] && window.state[a] == window.state[v] { anchors[a] } else { fit_at(v) };
            g.map(|g| model.flow_on(&g, &raw[v * n_t..(v + 1) * n_t]))
        })
        .collect();
    let cbf = maps.cbf.data.as_slice_mut().expect("standard layout");
    let cbv = maps.cbv.data.as_slice_mut().expect("standard layout");
    let mtt = maps.mtt.data.as_slice_mut().expect("standard layout");
    for (v, e) in estimates.iter().enumerate() {
        if let Some(e) = e {
            cbf[v] = e.cbf as f32;
            cbv[v] = e.cbv as f32;
            mtt[v] = e.mtt_s as f32;
        }
    }
}

/// Mean curve over the window of every voxel in the window's mask (others keep their own).
fn regional_mean(curves: &[f32], n_t: usize, window: &RegionalWindow) -> Vec<f32> {
    let [_, ny, nx] = window.shape;
    let (mask, state, r) = (window.mask, window.state, window.radius);
    let mut out = curves.to_vec();
    out.par_chunks_mut(ny * nx * n_t).enumerate().for_each(|(k, o)| {
        let base = k * ny * nx;
        let mut states: Vec<u8> = state[base..base + ny * nx].to_vec();
        states.sort_unstable();
        states.dedup();
        for st in states {
            let member = |p: usize| mask[base + p] && state[base + p] == st;
            let count = SummedArea::new(ny, nx, |p| u32::from(member(p)));
            for t in 0..n_t {
                let sums =
                    SummedArea::new(ny, nx, |p| if member(p) { curves[(base + p) * n_t + t] as f64 } else { 0.0 });
                for j in 0..ny {
                    for i in 0..nx {
                        let p = j * nx + i;
                        if !member(p) {
                            continue;
                        }
                        let (j0, j1, i0, i1) = box_around(j, i, r, ny, nx);
                        let n = count.sum(j0, j1, i0, i1);
                        o[p * n_t + t] = (sums.sum(j0, j1, i0, i1) / n.max(1) as f64) as f32;
                    }
                }
            }
        }
    });
    out
}

/// Time to peak (s) with parabolic refinement.
fn ttp_s(c: &[f32], t: &[f64]) -> f64 {
    let (i, _) = c.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    if i == 0 || i + 1 >= c.len() {
        return t[i];
    }
    let (a, b, d) = (c[i - 1] as f64, c[i] as f64, c[i + 1] as f64);
    let den = a - 2.0 * b + d;
    let off = if den < 0.0 { (0.5 * (a - d) / den).clamp(-0.5, 0.5) } else { 0.0 };
    let step = if off >= 0.0 { t[i + 1] - t[i] } else { t[i] - t[i - 1] };
    t[i] + off * step
}

/// In-plane median over (2r + 1)² voxels of a map, over the voxels in `mask` (NaN stay NaN).
pub fn median_clean(map: &Volume, mask: &[bool], r: usize) -> Volume {
    let [nz, ny, nx] = map.geometry.shape_zyx();
    let src = map.data.as_slice().expect("standard layout");
    let mut out = src.to_vec();
    out.par_chunks_mut(ny * nx).enumerate().for_each(|(k, o)| {
        let s = &src[k * ny * nx..(k + 1) * ny * nx];
        let m = &mask[k * ny * nx..(k + 1) * ny * nx];
        let mut buf = Vec::with_capacity((2 * r + 1) * (2 * r + 1));
        for j in 0..ny {
            for i in 0..nx {
                if !m[j * nx + i] || !s[j * nx + i].is_finite() {
                    continue;
                }
                buf.clear();
                for b in j.saturating_sub(r)..(j + r + 1).min(ny) {
                    for a in i.saturating_sub(r)..(i + r + 1).min(nx) {
                        let v = s[b * nx + a];
                        if m[b * nx + a] && v.is_finite() {
                            buf.push(v);
                        }
                    }
                }
                buf.sort_unstable_by(|a, b| a.total_cmp(b));
                o[j * nx + i] = buf[buf.len() / 2];
            }
        }
    });
    Volume {
        geometry: map.geometry.clone(),
        data: Array3::from_shape_vec((nz, ny, nx), out).expect("map size"),
        quantity: map.quantity,
    }
}

/// Runs the whole pipeline on a series in HU (consumed: it is corrected and turned into ΔHU in
/// place to keep one copy in memory).
pub fn run_stroke(mut series: VolumeSeries, options: &StrokeOptions) -> Result<StrokeResult, PerfusionError> {
    let mut steps = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, steps: &mut Vec<(&'static str, f64)>| {
        steps.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    if series.n_frames() < 6 {
        return Err(invalid("frames", series.n_frames(), "a perfusion series needs at least 6"));
    }
    if !matches!(series.quantity, Quantity::Hounsfield | Quantity::Unspecified) {
        return Err(invalid("series quantity", series.quantity.describe(), "a CT perfusion series holds HU"));
    }
    if let Some(v) = series.data.iter().find(|v| !v.is_finite()) {
        return Err(invalid("series voxel (HU)", v, "must be finite"));
    }
    let motion = correct_motion(&mut series, 0, options.motion_tolerance_mm)?;
    lap("motion correction", &mut steps);

    let first = mean_frames(&series, 0..2)?;
    let intracranial = intracranial_mask(&first);
    let rough_tissue = tissue_mask(&first, &intracranial, options.tissue_hu);
    let timing = bolus_timing(&series, &rough_tissue)?;
    lap("brain mask and bolus timing", &mut steps);

    let baseline = enhancement(&mut series, timing.baseline.clone())?;
    let tissue = tissue_mask(&baseline, &intracranial, options.tissue_hu);
    lap("enhancement", &mut steps);

    let (aif, vof) = select_vessels(&series, &baseline, &intracranial, &tissue, &timing)?;
    let aif_scale = if aif.area > 0.0 { (vof.area / aif.area).clamp(0.5, 3.0) } else { 1.0 };
    let scaled_aif: Vec<f64> = aif.curve.iter().map(|v| v * aif_scale).collect();
    lap("arterial and venous curves", &mut steps);

    let g = &series.geometry;
    let factor = ((options.target_pixel_mm / g.spacing_mm[0].max(g.spacing_mm[1])).round() as usize).max(1);
    let mut binned = bin_tissue(&series, &tissue, factor)?;
    let baseline = bin_volume(&baseline, factor, &binned.geometry);
    let times_s = series.times_s.clone();
    drop(series);
    lap("binning", &mut steps);

    // The curves before denoising, kept for the regions too weak to time voxel by voxel: their
    // noise is independent between voxels, so their mean over a region is as clean as it gets.
    let raw_sigma = noise_sigma(&binned.curves, binned.n_t, &binned.mask);
    let model_fit = matches!(options.estimator, Estimator::ModelFit(_));
    let pooling = model_fit && options.untimeable_evidence > 0.0;
    let raw = (pooling || (model_fit && options.flow_window_mm > 0.0)).then(|| binned.curves.clone());
    // Averaging f × f independent pixels divides white noise by f: the noise a 0.45 mm pixel
    // had; correlated noise survives averaging κ times more in variance.
    let pixel_mm = binned.geometry.spacing_mm[0].max(binned.geometry.spacing_mm[1]);
    let kappa = correlation_factor(&binned.curves, binned.n_t, &binned.mask, binned.geometry.shape_zyx());
    let noise_045_hu = raw_sigma as f64 * kappa.sqrt() * pixel_mm / 0.45;
    if let Some(filter) = &options.denoise {
        let [nz, ny, nx] = binned.geometry.shape_zyx();
        let n_t = binned.n_t;
        for k in 0..nz {
            let slice = &mut binned.curves[k * ny * nx * n_t..(k + 1) * ny * nx * n_t];
            let mask = &binned.mask[k * ny * nx..(k + 1) * ny * nx];
            let out = filter.apply_slice(slice, nx, ny, n_t, mask);
            slice.copy_from_slice(&out);
        }
    }
    let sigma = noise_sigma(&binned.curves, binned.n_t, &binned.mask);
    lap("denoising", &mut steps);

    let mut maps = fit_maps(&binned, &scaled_aif, &times_s, &options.estimator, options.constants, sigma)?;
    lap("fit", &mut steps);

    // Vessels out, then the clean maps the volumes are read from.
    let cbv = maps.cbv.data.as_slice().expect("standard layout");
    let tissue_map: Vec<bool> =
        binned.mask.iter().zip(cbv).map(|(&m, &v)| m && v.is_finite() && v <= options.vessel_cbv as f32).collect();
    let cbf_clean = median_clean(&maps.cbf, &tissue_map, options.clean_radius_px);
    let pixel_mm2 = binned.geometry.spacing_mm[0] * binned.geometry.spacing_mm[1];
    let max_patch = (options.fill_patch_mm2 / pixel_mm2).floor() as usize;
    let clean_tmax = |tmax: &Volume| {
        let mut clean = median_clean(tmax, &tissue_map, options.clean_radius_px);
        if max_patch > 0 {
            fill_small_patches(&mut clean, &tissue_map, options.thresholds.hypoperfusion_tmax_s as f32, max_patch);
        }
        clean
    };
    let mut tmax_clean = clean_tmax(&maps.tmax);
    let [nz, ny, nx] = binned.geometry.shape_zyx();
    let mut mid_x = 0.0;
    let mut n_mid = 0usize;
    for (p, _) in tissue_map.iter().enumerate().filter(|(_, &m)| m) {
        let (k, j, i) = (p / (ny * nx), (p / nx) % ny, p % nx);
        mid_x += binned.geometry.position_mm(i as f64, j as f64, k as f64)[0];
        n_mid += 1;
    }
    let mid_x = if n_mid > 0 { mid_x / n_mid as f64 } else { 0.0 };
    let side: Vec<Side> = (0..nz * ny * nx)
        .map(|p| {
            let (k, j, i) = (p / (ny * nx), (p / nx) % ny, p % nx);
            // LPS: +x is the patient's left.
            if binned.geometry.position_mm(i as f64, j as f64, k as f64)[0] >= mid_x {
                Side::Left
            } else {
                Side::Right
            }
        })
        .collect();
    let voxel_ml = binned.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let cbf_s = cbf_clean.data.as_slice().expect("standard layout");
    let tmax_s = tmax_clean.data.as_slice().expect("standard layout");
    let mut decision = decide(cbf_s, tmax_s, &tissue_map, &side, voxel_ml, options.thresholds)?;
    // Low-flow regions too weak to time voxel by voxel take the Tmax of their mean curve; then
    // the Tmax map is cleaned and the figures taken again.
    let mut untimeable_voxels = 0;
    // One dictionary for the regional timing and the regional flow (what `raw` is kept for).
    let model = match (&raw, &options.estimator) {
        (Some(_), Estimator::ModelFit(grid)) => {
            Some(ModelFit::new(&scaled_aif, &times_s, grid.clone(), options.constants)?)
        }
        _ => None,
    };
    if let (true, Some(raw_curves), Some(model)) = (pooling, &raw, &model) {
        let evidence = median_clean(&maps.evidence, &tissue_map, options.clean_radius_px);
        let cut = (options.thresholds.core_relative_cbf * decision.reference_cbf) as f32;
        let evidence = evidence.data.as_slice().expect("standard layout");
        let weak: Vec<bool> = (0..tissue_map.len())
            .map(|i| tissue_map[i] && (evidence[i] as f64) < options.untimeable_evidence && cbf_s[i] < cut)
            .collect();
        // Whole regions by a majority over a wide window, holes included: a region drawn
        // voxel by voxel would leave out the voxels whose noise happened to look like a bolus
        // and bias the mean curve (by 2 s of Tmax with a 7 × 7 window; none left at 21 × 21).
        let radius = (POOL_WINDOW_MM / pixel_mm).round();
        let untimeable = majority(&weak, &tissue_map, [nz, ny, nx], radius as usize);
        if untimeable.iter().any(|&u| u) {
            untimeable_voxels = pool_untimeable(&mut maps.tmax, &untimeable, raw_curves, binned.n_t, model, raw_sigma);
        }
        if untimeable_voxels > 0 {
            tmax_clean = clean_tmax(&maps.tmax);
            let tmax_s = tmax_clean.data.as_slice().expect("standard layout");
            decision = decide(cbf_s, tmax_s, &tissue_map, &side, voxel_ml, options.thresholds)?;
        }
    }
    let mut cbf_guided = None;
    if let (Some(raw_curves), Some(model)) = (&raw, &model) {
        if options.flow_window_mm > 0.0 {
            let tmax_s = tmax_clean.data.as_slice().expect("standard layout");
            let hypo = hypoperfused_mask(cbf_s, tmax_s, &tissue_map, options.thresholds);
            let cut = (options.thresholds.core_relative_cbf * decision.reference_cbf) as f32;
            // Normal tissue, hypoperfused tissue above the core cut, and below it (first pass).
            let state: Vec<u8> = (0..hypo.len())
                .map(|i| match (hypo[i], cbf_s[i] < cut) {
                    (false, _) => 0,
                    (true, false) => 1,
                    (true, true) => 2,
                })
                .collect();
            let radius = (options.flow_window_mm / pixel_mm).round() as usize;
            let window = RegionalWindow { mask: &tissue_map, state: &state, shape: [nz, ny, nx], radius };
            regional_flow(&mut maps, raw_curves, binned.n_t, &window, model, sigma);
            let clean = median_clean(&maps.cbf, &tissue_map, options.clean_radius_px);
            let cbf = clean.data.as_slice().expect("standard layout");
            decision = decide(cbf, tmax_s, &tissue_map, &side, voxel_ml, options.thresholds)?;
            cbf_guided = Some(clean);
        }
    }
    let cbf_clean = cbf_guided.unwrap_or(cbf_clean);
    drop(raw);
    lap("regional flow and decision", &mut steps);
    let cbf_s = cbf_clean.data.as_slice().expect("standard layout");
    let tmax_s = tmax_clean.data.as_slice().expect("standard layout");
    let hypoperfused = hypoperfused_mask(cbf_s, tmax_s, &tissue_map, options.thresholds);
    let core = core_mask(cbf_s, &hypoperfused, decision.reference_cbf, options.thresholds);
    let counted = CountedMaps {
        cbf_raw: maps.cbf.data.as_slice().expect("standard layout"),
        cbf_clean: cbf_s,
        tmax_raw: maps.tmax.data.as_slice().expect("standard layout"),
        tmax_clean: tmax_s,
        tissue: &tissue_map,
        hypoperfused: &hypoperfused,
        core: &core,
        shape: [nz, ny, nx],
        voxel_ml,
        clean_radius: options.clean_radius_px,
    };
    let precision = precision(&counted, &decision, options.thresholds, kappa);
    lap("precision", &mut steps);

    let mut quality = Vec::new();
    if aif.peak_hu < 100.0 {
        quality.push(QualityFlag::LowArterialPeak(aif.peak_hu));
    }
    if vof.peak_hu > 0.0 {
        let last = *vof.curve.last().expect("frames");
        if last / vof.peak_hu > 0.25 {
            quality.push(QualityFlag::VenousTruncated(last / vof.peak_hu));
        }
    }
    if timing.baseline.len() < 2 {
        quality.push(QualityFlag::ShortBaseline(timing.baseline.len()));
    }
    if noise_045_hu > VALIDATED_NOISE_HU {
        quality.push(QualityFlag::HighNoise(noise_045_hu));
    }
    for (t, m) in motion.iter().enumerate() {
        if m.displacement_mm > 3.0 {
            quality.push(QualityFlag::Motion(t, m.displacement_mm));
        }
    }
    let uncertain: Vec<&'static str> =
        [(precision.defuse3_uncertain, "DEFUSE-3"), (precision.extend_uncertain, "EXTEND")]
            .iter()
            .filter(|(u, _)| *u)
            .map(|(_, n)| *n)
            .collect();
    if !uncertain.is_empty() {
        quality.push(QualityFlag::CriteriaUncertain(uncertain));
    }
    Ok(StrokeResult {
        maps,
        untimeable_voxels,
        baseline,
        tissue: tissue_map,
        core,
        hypoperfused,
        decision,
        aif,
        vof,
        aif_scale,
        timing,
        motion,
        quality,
        noise_hu: sigma as f64,
        effective_noise_045_hu: noise_045_hu,
        precision,
        times_s,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intracranial_is_what_bone_encloses_and_tissue_is_its_soft_part() {
        // One slice: air, a bone ring (radius 8–10 px), CSF core (radius < 3), tissue between.
        let g = VolumeGeometry::centered([24, 24, 1], [1.0, 1.0, 5.0], [0.0; 3]).unwrap();
        let data = Array3::from_shape_fn((1, 24, 24), |(_, j, i)| {
            let r = ((i as f64 - 11.5).powi(2) + (j as f64 - 11.5).powi(2)).sqrt();
            if r > 10.0 {
                -1000.0f32
            } else if r > 8.0 {
                1200.0
            } else if r < 3.0 {
                8.0
            } else {
                35.0
            }
        });
        let img = Volume::new(g, data.clone()).unwrap();
        let ic = intracranial_mask(&img);
        let tissue = tissue_mask(&img, &ic, (18.0, 60.0));
        for j in 0..24 {
            for i in 0..24 {
                let r = ((i as f64 - 11.5).powi(2) + (j as f64 - 11.5).powi(2)).sqrt();
                let p = j * 24 + i;
                assert_eq!(ic[p], r <= 8.0, "intracranial at ({i}, {j}), r {r:.1}");
                // Tissue: inside, away from the CSF/tissue border by the 3 × 3 median.
                if (4.6..7.0).contains(&r) {
                    assert!(tissue[p], "tissue at ({i}, {j})");
                }
                if !(2.0..=8.0).contains(&r) {
                    assert!(!tissue[p], "not tissue at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn bolus_timing_finds_arrival_and_keeps_baseline_before_it() {
        let g = VolumeGeometry::centered([2, 2, 1], [1.0, 1.0, 5.0], [0.0; 3]).unwrap();
        // Frame 5 is the first above 10 % of the peak (frame 7); frame 4 already rises a little,
        // so the baseline stops before it.
        let curve = [0.0f32, 0.0, 0.0, 0.0, 0.5, 4.0, 20.0, 30.0, 25.0, 10.0];
        let data = ndarray::Array4::from_shape_fn((10, 1, 2, 2), |(t, ..)| 30.0 + curve[t]);
        let s = VolumeSeries::new(g, (0..10).map(|t| t as f64 * 2.0).collect(), data).unwrap();
        let timing = bolus_timing(&s, &[true; 4]).unwrap();
        assert_eq!(timing.arrival_frame, 5);
        assert_eq!(timing.peak_frame, 7);
        assert_eq!(timing.baseline, 0..4);
        let e = bolus_timing(&s, &[false; 4]).unwrap_err().to_string();
        assert!(e.contains("brain mask"), "{e}");
    }

    /// Seeded standard normal numbers (64-bit LCG, Box–Muller).
    fn normals(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
            })
            .collect()
    }

    #[test]
    fn majority_fills_holes_and_drops_specks() {
        let (ny, nx) = (30, 30);
        let within = vec![true; ny * nx];
        let mut set = vec![false; ny * nx];
        for j in 5..25 {
            for i in 5..25 {
                set[j * nx + i] = ![(14, 14), (15, 15)].contains(&(j, i));
                // two holes
            }
        }
        set[2 * nx + 27] = true; // a speck
        let out = majority(&set, &within, [1, ny, nx], 2);
        assert!(out[14 * nx + 14] && out[15 * nx + 15], "holes filled");
        assert!(!out[2 * nx + 27], "speck dropped");
        assert!(out[10 * nx + 10] && !out[nx + 1]);
        // Voxels outside `within` neither count nor get set.
        let mut within = vec![true; ny * nx];
        within[10 * nx + 10] = false;
        assert!(!majority(&set, &within, [1, ny, nx], 2)[10 * nx + 10]);
    }

    /// A region of tissue with almost no flow (CBF 2.5, delay 12 s) under noise 3× its peak:
    /// voxel by voxel its Tmax is anywhere; its mean curve puts it at 12 s.
    #[test]
    fn untimeable_region_takes_the_tmax_of_its_mean_curve() {
        use gantry_phantom::perfusion::{arterial_curve, tissue_curve, GammaVariate, Residue, Tissue};
        let times: Vec<f64> = (0..30).map(|t| 2.0 * t as f64).collect();
        let input = GammaVariate::default_aif(300.0);
        let aif = arterial_curve(&input, 0.0, 0.0, &times);
        let tissue = Tissue { cbf: 2.5, mtt_s: 10.0, delay_s: 12.0, dispersion_s: 0.0, residue: Residue::Exponential };
        let truth = tissue_curve(&input, &tissue, &times);
        let peak = truth.iter().cloned().fold(0.0, f64::max);
        let sigma = 3.0 * peak as f32;
        let (ny, nx, n_t) = (24, 24, times.len());
        let noise = normals(7, ny * nx * n_t);
        let curves: Vec<f32> = (0..ny * nx * n_t).map(|q| truth[q % n_t] as f32 + sigma * noise[q]).collect();
        // The region: a 20 × 20 square, and a 5-voxel patch too small to pool.
        let mut untimeable = vec![false; ny * nx];
        for j in 2..22 {
            for i in 2..22 {
                untimeable[j * nx + i] = true;
            }
        }
        let model = ModelFit::new(&aif, &times, FitGrid::default(), Constants::default()).unwrap();
        let g = VolumeGeometry::centered([nx, ny, 1], [0.9, 0.9, 5.0], [0.0; 3]).unwrap();
        let own: Vec<f32> = (0..ny * nx)
            .map(|p| model.fit_noisy(&curves[p * n_t..(p + 1) * n_t], sigma).unwrap().tmax_s as f32)
            .collect();
        let early = own.iter().zip(&untimeable).filter(|(&t, &u)| u && t < 6.0).count();
        assert!(early > 40, "per voxel, {early} of 400 region voxels are timed before 6 s");
        let mut tmax = Volume::new(g, Array3::from_shape_vec((1, ny, nx), own.clone()).unwrap()).unwrap();
        let set = pool_untimeable(&mut tmax, &untimeable, &curves, n_t, &model, sigma);
        assert_eq!(set, 400);
        let t = tmax.data.as_slice().unwrap();
        for p in 0..ny * nx {
            if untimeable[p] {
                assert!((t[p] - 12.0).abs() < 0.6, "pooled Tmax {} against 12 s", t[p]);
            } else {
                assert_eq!(t[p].to_bits(), own[p].to_bits(), "voxels outside the region keep their own Tmax");
            }
        }
        // A region below MIN_POOLED_VOXELS keeps its voxels' own values.
        let mut small = vec![false; ny * nx];
        small[..5].iter_mut().for_each(|u| *u = true);
        let g = tmax.geometry.clone();
        let mut tmax = Volume::new(g, Array3::from_shape_vec((1, ny, nx), own.clone()).unwrap()).unwrap();
        assert_eq!(pool_untimeable(&mut tmax, &small, &curves, n_t, &model, sigma), 0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(tmax.data.as_slice().unwrap()), bits(&own));
    }

    #[test]
    fn small_patches_fill_and_large_regions_stay() {
        let g = VolumeGeometry::centered([20, 20, 1], [1.0, 1.0, 5.0], [0.0; 3]).unwrap();
        // Left half hypoperfused (Tmax 9 s) with a 2 × 2 hole (3 s); a 1-voxel speck (8 s) in
        // the normal right half (2 s); one voxel outside tissue.
        let mut data = Array3::from_shape_fn((1, 20, 20), |(_, _, i)| if i < 10 { 9.0f32 } else { 2.0 });
        for (j, i) in [(5, 3), (5, 4), (6, 3), (6, 4)] {
            data[[0, j, i]] = 3.0;
        }
        data[[0, 15, 15]] = 8.0;
        let mut tissue = vec![true; 400];
        tissue[0] = false;
        let mut map = Volume::new(g, data).unwrap();
        let changed = fill_small_patches(&mut map, &tissue, 6.0, 4);
        assert_eq!(changed, 5);
        assert!(map.data[[0, 5, 3]] > 6.0 && map.data[[0, 15, 15]] <= 6.0);
        // The two halves (200 voxels each) are far above the patch size and keep their values.
        assert_eq!(map.data[[0, 10, 2]], 9.0);
        assert_eq!(map.data[[0, 10, 17]], 2.0);
    }
}
