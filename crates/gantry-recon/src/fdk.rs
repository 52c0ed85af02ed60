//! FDK (Feldkamp–Davis–Kress) cone-beam reconstruction, and with one detector row the 2D fan-
//! and parallel-beam FBP, as named steps over subsets of views:
//! cosine weight → redundancy weight (Parker, displaced detector) → ramp filter →
//! backprojection with the distance weight. Memory stays at the volume plus one filtered subset
//! besides the input.

use crate::filter::{RampFilter, Window};
use crate::weights::{cosine_weight, view_angular_steps, Redundancy};
use gantry_core::{check_finite, Beam, ProjectionStack, Result, Volume, VolumeGeometry};
use gantry_project::{Backprojector, DistanceWeight};
use ndarray::{s, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of an FDK reconstruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdkOptions {
    pub window: Window,
    /// Cut-off of the window as a fraction of Nyquist (0, 1].
    pub cutoff: f64,
    /// Views filtered and backprojected together; bounds the extra memory.
    pub subset_size: usize,
}

impl Default for FdkOptions {
    fn default() -> Self {
        FdkOptions { window: Window::RamLak, cutoff: 1.0, subset_size: 32 }
    }
}

/// Weights and filters one subset of views in place: the first two FDK steps.
pub fn weight_and_filter(
    projections: &ProjectionStack,
    first: usize,
    subset: &mut ndarray::Array3<f32>,
    redundancy: &Redundancy,
    angles: &[f64],
    filter: &RampFilter,
) -> Result<()> {
    let scan = &projections.geometry;
    subset.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut view)| {
        let v = first + i;
        cosine_weight(scan, v, view.view_mut());
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

/// Reconstructs μ on `grid` from line integrals. `progress(done, total)` is called after each
/// subset of views.
pub fn fdk(projections: &ProjectionStack, grid: &VolumeGeometry, options: &FdkOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Volume> {
    let scan = &projections.geometry;
    scan.validate()?;
    grid.validate()?;
    check_finite("projections", projections.data.view())?;
    if options.subset_size == 0 {
        return Err(gantry_core::CoreError::invalid("subset_size", 0, "must be at least 1"));
    }
    let redundancy = Redundancy::for_geometry(scan)?;
    let angles = scan.unwrapped_angles();
    let steps = view_angular_steps(scan, &redundancy);
    let det = &scan.detector;
    let sdd = scan.views[0].sdd_mm();
    let shape = if scan.beam == Beam::Parallel { gantry_core::DetectorShape::Flat } else { det.shape };
    let filter = RampFilter::new(det.n_cols, det.pixel_u_mm, shape, sdd, options.window, options.cutoff)?;
    let mut bp = Backprojector::new(grid.clone(), scan.clone(), DistanceWeight::Fdk)?;
    let n = scan.n_views();
    let mut start = 0;
    while start < n {
        let end = (start + options.subset_size).min(n);
        let mut subset = projections.data.slice(s![start..end, .., ..]).to_owned();
        weight_and_filter(projections, start, &mut subset, &redundancy, &angles, &filter)?;
        let factors: Vec<f32> = steps[start..end].iter().map(|&d| d as f32).collect();
        bp.add(start, subset.view(), &factors)?;
        progress(end, n);
        start = end;
    }
    Ok(bp.finish())
}
