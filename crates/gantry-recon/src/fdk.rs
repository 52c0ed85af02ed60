//! FDK (Feldkamp–Davis–Kress) cone-beam reconstruction, and with one detector row the 2D fan-
//! and parallel-beam FBP, as named steps over subsets of views:
//! cosine weight → redundancy weight (Parker, displaced detector) → ramp filter →
//! backprojection with the distance weight. Memory stays at the volume plus one filtered subset
//! besides the input.

use crate::filter::{RampFilter, Window};
use crate::weights::{cosine_weight, cosine_weight_table, view_angular_steps, Redundancy};
use gantry_core::{
    check_finite, Beam, FrameMap, ProjectionStack, Quantity, Result, ScanGeometry, Volume, VolumeGeometry,
};
use gantry_project::backproject::{Accumulate, Rays};
use gantry_project::{best_backprojector, Backproject, BackprojectOptions, ConeWeighting};
use ndarray::{s, Array3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Settings of an FDK reconstruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdkOptions {
    pub window: Window,
    /// Cut-off of the window as a fraction of Nyquist (0, 1].
    pub cutoff: f64,
    /// Views filtered and backprojected together; bounds the extra memory.
    pub subset_size: usize,
    /// How a wide cone is handled.
    #[serde(default)]
    pub cone: ConeHandling,
    /// The cone-artefact correction after cone-parallel FDK (off by default: it costs about two
    /// more reconstructions; see [`crate::wide_cone::ConeArtefactCorrection`]).
    #[serde(default)]
    pub cone_correction: Option<crate::wide_cone::ConeArtefactCorrection>,
}

impl Default for FdkOptions {
    fn default() -> Self {
        FdkOptions {
            window: Window::RamLak,
            cutoff: 1.0,
            subset_size: 8,
            cone: ConeHandling::default(),
            cone_correction: None,
        }
    }
}

/// How FDK handles the data a circular cone-beam orbit lacks away from its plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConeHandling {
    /// Plain FDK: every view alike, in fan geometry (what RTK's FDK does).
    Plain,
    /// A full circular turn is rebinned to cone-parallel views and backprojected with the
    /// cone-angle weighting ([`crate::wide_cone`], [`ConeWeighting`]); other scans are
    /// reconstructed plain, and the log says so.
    Weighted { exponent: f64, fade_rows: f64 },
}

impl Default for ConeHandling {
    fn default() -> Self {
        let c = ConeWeighting::default();
        ConeHandling::Weighted { exponent: c.exponent, fade_rows: c.fade_rows }
    }
}

/// Weights and filters one subset of views (first view `first` of `scan`) in place: the first
/// two FDK steps.
pub fn weight_and_filter(
    scan: &ScanGeometry,
    first: usize,
    subset: &mut Array3<f32>,
    redundancy: &Redundancy,
    angles: &[f64],
    filter: &RampFilter,
) -> Result<()> {
    // Views at the first view's source–detector distance share its cosine weights.
    let table = cosine_weight_table(scan, first);
    let sdd0 = scan.views[first].sdd_mm();
    subset.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut view)| {
        let v = first + i;
        if (scan.views[v].sdd_mm() - sdd0).abs() <= 1e-9 * sdd0 {
            view *= &table;
        } else {
            cosine_weight(scan, v, view.view_mut());
        }
        if *redundancy != Redundancy::FullScan {
            for c in 0..scan.detector.n_cols {
                let w = redundancy.weight(scan, angles, v, c as f64) as f32;
                view.column_mut(c).mapv_inplace(|x| x * w);
            }
        }
    });
    let (nv, nr, nc) = subset.dim();
    let mut rows = subset.view_mut().into_shape_with_order((nv * nr, nc)).expect("contiguous subset");
    filter.apply(rows.view_mut())
}

/// For a displaced detector, the geometry of the detector widened with virtual zero columns on
/// its short side until it is symmetric, and where the measured columns start in it. The
/// ramp-filtered projection is not zero beyond the short edge, and voxels projecting there need
/// it. Other geometries are returned as they are.
pub fn widen_displaced_detector(scan: &ScanGeometry, redundancy: &Redundancy) -> (ScanGeometry, usize) {
    let Redundancy::DisplacedDetector { long_side_positive, .. } = *redundancy else {
        return (scan.clone(), 0);
    };
    let det = &scan.detector;
    let (lo, hi) = (det.col_to_u(0.0), det.col_to_u(det.n_cols as f64 - 1.0));
    let k = ((hi.abs() - lo.abs()).abs() / det.pixel_u_mm).ceil() as usize;
    let mut wide = scan.clone();
    wide.detector.n_cols += k;
    if long_side_positive {
        wide.detector.offset_u_mm -= 0.5 * k as f64 * det.pixel_u_mm;
        (wide, k)
    } else {
        wide.detector.offset_u_mm += 0.5 * k as f64 * det.pixel_u_mm;
        (wide, 0)
    }
}

/// Reconstructs μ (1/mm) on `grid` from line integrals with the fastest backprojector for the
/// geometry. The grid is stated in the scan's world frame (LPS for a patient scan, RTK's frame
/// for RTK data; see [`gantry_core::FrameMap`]), and so is the result. `progress(done, total)`
/// is called after each subset of views.
pub fn fdk(
    projections: &ProjectionStack,
    grid: &VolumeGeometry,
    options: &FdkOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Volume> {
    let map = FrameMap::new(grid, projections.geometry.frame)?;
    let backprojector = best_backprojector(map.scanner_grid(), Rays::Scan(&projections.geometry));
    fdk_scanner(projections, map.scanner_grid(), options, backprojector.as_ref(), progress)
        .and_then(|mu| map.to_world(mu.with_quantity(Quantity::LinearAttenuation)))
}

/// [`fdk`] with a given backprojector (every implementation runs the same tests through this).
pub fn fdk_with(
    projections: &ProjectionStack,
    grid: &VolumeGeometry,
    options: &FdkOptions,
    backprojector: &dyn Backproject,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Volume> {
    let map = FrameMap::new(grid, projections.geometry.frame)?;
    let mu = fdk_scanner(projections, map.scanner_grid(), options, backprojector, progress)?;
    map.to_world(mu.with_quantity(Quantity::LinearAttenuation))
}

/// FDK on a grid in the scanner frame (what [`fdk`] runs after moving the grid there).
fn fdk_scanner(
    projections: &ProjectionStack,
    grid: &VolumeGeometry,
    options: &FdkOptions,
    backprojector: &dyn Backproject,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Volume> {
    let scan = &projections.geometry;
    scan.validate()?;
    grid.validate()?;
    check_finite("projections", projections.data.view())?;
    if options.subset_size == 0 {
        return Err(gantry_core::CoreError::invalid("subset_size", 0, "must be at least 1"));
    }
    if let ConeHandling::Weighted { exponent, fade_rows } = options.cone {
        match crate::wide_cone::cone_parallel_geometry(scan) {
            Ok(_) => {
                let cone = ConeWeighting { exponent, fade_rows };
                return match &options.cone_correction {
                    None => {
                        crate::wide_cone::cone_parallel_fdk(projections, grid, options, cone, backprojector, progress)
                    }
                    Some(c) => crate::wide_cone::corrected_cone_parallel_fdk(
                        projections,
                        grid,
                        options,
                        cone,
                        c,
                        backprojector,
                        progress,
                    ),
                };
            }
            Err(e) => {
                if options.cone_correction.is_some() {
                    tracing::warn!("FDK: the cone-artefact correction needs the cone-parallel path ({e}); not applied");
                }
                tracing::info!("FDK: no cone-parallel path ({e}); plain FDK");
            }
        }
    }
    let redundancy = Redundancy::for_geometry(scan)?;
    tracing::info!("FDK: {} views, redundancy weighting: {}", scan.n_views(), redundancy.describe());
    let angles = scan.unwrapped_angles();
    let steps = view_angular_steps(scan, &redundancy);
    let (wide, col0) = widen_displaced_detector(scan, &redundancy);
    let det = &wide.detector;
    let sdd = scan.views[0].sdd_mm();
    let shape = if scan.beam == Beam::Parallel { gantry_core::DetectorShape::Flat } else { det.shape };
    let filter = RampFilter::new(det.n_cols, det.pixel_u_mm, shape, sdd, options.window, options.cutoff)?;
    let bp_options = BackprojectOptions::fdk();
    tracing::info!("FDK: backprojector {}", backprojector.name());
    let bp = backprojector.start(grid, Rays::Scan(&wide), &bp_options)?;
    let n_cols = scan.detector.n_cols;
    let mut t_filter = Duration::ZERO;
    let (vol, t_bp, t_reorder) =
        backproject_subsets(bp, scan.n_views(), options.subset_size, progress, |start, end| {
            let t = Instant::now();
            let mut subset = Array3::<f32>::zeros((end - start, det.n_rows, det.n_cols));
            subset.slice_mut(s![.., .., col0..col0 + n_cols]).assign(&projections.data.slice(s![start..end, .., ..]));
            weight_and_filter(&wide, start, &mut subset, &redundancy, &angles, &filter)?;
            t_filter += t.elapsed();
            Ok((subset, steps[start..end].iter().map(|&d| d as f32).collect()))
        })?;
    tracing::info!(
        "FDK: weighting and ramp filtering {:.3} s, backprojection {:.3} s, volume reorder {:.3} s",
        t_filter.as_secs_f64(),
        t_bp.as_secs_f64(),
        t_reorder.as_secs_f64()
    );
    Ok(vol)
}

/// Backprojects `n` views in subsets of `subset_size` into `bp`: `prepare(start, end)` gives a
/// subset's weighted, filtered views and their view factors, each is added as it comes, and
/// the volume is finished. Returns it with the time of the backprojection and of the finish
/// (the volume reorder); the preparation times itself.
pub(crate) fn backproject_subsets(
    mut bp: Box<dyn Accumulate>,
    n: usize,
    subset_size: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    mut prepare: impl FnMut(usize, usize) -> Result<(Array3<f32>, Vec<f32>)>,
) -> Result<(Volume, Duration, Duration)> {
    let mut t_bp = Duration::ZERO;
    let mut start = 0;
    while start < n {
        let end = (start + subset_size).min(n);
        let (subset, factors) = prepare(start, end)?;
        let t = Instant::now();
        bp.add(start, subset.view(), &factors)?;
        t_bp += t.elapsed();
        progress(end, n);
        start = end;
    }
    let t = Instant::now();
    let vol = bp.finish();
    Ok((vol, t_bp, t.elapsed()))
}
