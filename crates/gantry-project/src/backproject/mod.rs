//! Voxel-driven backprojection with bilinear interpolation on the detector, the kernel of FDK,
//! behind one trait so that every implementation (and a GPU one later) swaps in at one place
//! and runs the same tests.
//!
//! Each voxel centre is projected onto every view's detector and the bilinearly interpolated
//! value is added, times a per-view factor, the distance weight (FDK: `SID·SDD / D²`, where D is
//! the voxel's depth along the central ray on a flat detector or its in-plane distance from the
//! source on a cylindrical one; 1 for a parallel beam), and optionally the cone weight of
//! [`ConeWeighting`].
//!
//! Implementations of [`Backproject`]:
//! - [`GeneralBackprojector`]: any geometry, one voxel at a time in f64 — the reference.
//! - [`ColumnBackprojector`] with [`ColumnKernel::portable`] or [`ColumnKernel::avx2`]: the
//!   usual geometry (volume axes along x, y, z; every view's detector v axis along z), where a
//!   voxel column projects to one detector column at one distance, so the column's weights are
//!   computed once and the inner loop walks z with a linear row index ([`kernel`]).
//!
//! [`best_backprojector`] picks the fastest one that supports a geometry; [`backprojectors`]
//! lists every one this CPU runs (the tests run each).

mod column;
mod cone;
mod general;
pub mod kernel;

pub use column::ColumnBackprojector;
pub use cone::ConeWeighting;
pub use general::GeneralBackprojector;
pub use kernel::{ColumnKernel, Lane};

use gantry_core::geometry::{dot, sub, Vec3};
use gantry_core::{Beam, ConeParallelGeometry, CoreError, DetectorShape, Result, ScanGeometry, Volume, VolumeGeometry};
use ndarray::ArrayView3;

/// The rays a backprojection runs along: a scan's views, or cone-parallel views rebinned from
/// a circular orbit.
#[derive(Debug, Clone, Copy)]
pub enum Rays<'a> {
    Scan(&'a ScanGeometry),
    ConeParallel(&'a ConeParallelGeometry),
}

impl Rays<'_> {
    pub fn n_views(&self) -> usize {
        match self {
            Rays::Scan(s) => s.n_views(),
            Rays::ConeParallel(c) => c.n_views(),
        }
    }

    /// `[rows, columns]` of one view.
    pub fn view_shape(&self) -> [usize; 2] {
        match self {
            Rays::Scan(s) => [s.detector.n_rows, s.detector.n_cols],
            Rays::ConeParallel(c) => [c.n_rows, c.n_t],
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            Rays::Scan(s) => s.validate(),
            Rays::ConeParallel(c) => c.validate(),
        }
    }

    fn to_owned(self) -> OwnedRays {
        match self {
            Rays::Scan(s) => OwnedRays::Scan(s.clone()),
            Rays::ConeParallel(c) => OwnedRays::ConeParallel(c.clone()),
        }
    }
}

/// What an accumulator keeps of its rays.
#[derive(Debug, Clone)]
pub(crate) enum OwnedRays {
    Scan(ScanGeometry),
    ConeParallel(ConeParallelGeometry),
}

impl OwnedRays {
    pub fn rays(&self) -> Rays<'_> {
        match self {
            OwnedRays::Scan(s) => Rays::Scan(s),
            OwnedRays::ConeParallel(c) => Rays::ConeParallel(c),
        }
    }
}

/// Which weight multiplies each backprojected value besides the per-view factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistanceWeight {
    /// None: the plain sum of interpolated values.
    None,
    /// FDK: `SID·SDD / D²` for a cone beam (1 for a parallel beam).
    Fdk,
}

/// What a backprojection weights its samples with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackprojectOptions {
    pub distance: DistanceWeight,
    /// The 3D (cone-angle) redundancy weighting of a full circular turn: each ray shares its
    /// weight with its conjugate by their cone angles, and takes it all where the conjugate
    /// misses the detector. None: every view counts alike.
    pub cone: Option<ConeWeighting>,
}

impl BackprojectOptions {
    /// The FDK distance weight, no cone weighting.
    pub fn fdk() -> Self {
        BackprojectOptions { distance: DistanceWeight::Fdk, cone: None }
    }
}

/// A backprojection implementation.
pub trait Backproject: Sync {
    /// A short name for logs and test messages ("general", "portable", "avx2").
    fn name(&self) -> &'static str;
    /// Whether this implementation handles `volume` with `rays`.
    fn supports(&self, volume: &VolumeGeometry, rays: Rays) -> bool;
    /// A zeroed accumulator for `volume` (in the scanner frame) and projections along `rays`.
    fn start(&self, volume: &VolumeGeometry, rays: Rays, options: &BackprojectOptions) -> Result<Box<dyn Accumulate>>;
}

/// A backprojection in progress: projection subsets are added, then the volume is taken.
pub trait Accumulate: Send {
    /// Adds the backprojection of views `first .. first + projections.len_of(0)`, each scaled
    /// by its entry in `view_factors`.
    fn add(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) -> Result<()>;
    /// The accumulated volume, `[z][y][x]`.
    fn finish(self: Box<Self>) -> Volume;
}

/// Every backprojector this CPU runs, fastest first.
pub fn backprojectors() -> Vec<Box<dyn Backproject>> {
    let mut out: Vec<Box<dyn Backproject>> = Vec::new();
    if let Some(k) = ColumnKernel::avx2() {
        out.push(Box::new(ColumnBackprojector::new(k)));
    }
    out.push(Box::new(ColumnBackprojector::new(ColumnKernel::portable())));
    out.push(Box::new(GeneralBackprojector));
    out
}

/// The fastest backprojector that supports `volume` with `rays`.
pub fn best_backprojector(volume: &VolumeGeometry, rays: Rays) -> Box<dyn Backproject> {
    backprojectors().into_iter().find(|b| b.supports(volume, rays)).unwrap_or_else(|| Box::new(GeneralBackprojector))
}

/// Whether the cone weighting can run along `rays` (a cone beam on one circular orbit about z),
/// or why not.
pub fn cone_weighting_applies(rays: Rays, cone: &ConeWeighting) -> Result<()> {
    cone::Orbit::new(rays, cone).map(|_| ())
}

/// Checks a subset against the rays before it is added.
pub(crate) fn check_subset(
    rays: Rays,
    first: usize,
    projections: &ArrayView3<f32>,
    view_factors: &[f32],
) -> Result<()> {
    let n = projections.shape()[0];
    let [nr, nc] = rays.view_shape();
    if first + n > rays.n_views() {
        return Err(CoreError::size_mismatch(
            "backprojected views",
            format!("at most {} views", rays.n_views()),
            format!("views {first}..{}", first + n),
        ));
    }
    if projections.shape()[1..] != [nr, nc] {
        return Err(CoreError::size_mismatch(
            "projection [row][col]",
            format!("[{nr}, {nc}]"),
            format!("{:?}", &projections.shape()[1..]),
        ));
    }
    if view_factors.len() != n {
        return Err(CoreError::size_mismatch("view_factors", n, view_factors.len()));
    }
    Ok(())
}

/// What one view contributes to a voxel: the detector position of its centre and the weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViewParams {
    pub s: Vec3,
    pub d: Vec3,
    pub u: Vec3,
    pub v: Vec3,
    pub w: Vec3,
    pub sdd: f64,
    pub sid: f64,
}

impl ViewParams {
    pub fn new(scan: &ScanGeometry, i: usize) -> Self {
        let g = &scan.views[i];
        ViewParams {
            s: g.source_mm,
            d: g.detector_center_mm,
            u: g.u,
            v: g.v,
            w: g.w(),
            sdd: g.sdd_mm(),
            sid: g.sid_mm(),
        }
    }

    /// Detector (u, v) coordinates in mm of point `p` and its distance weight.
    pub fn project(&self, scan: &ScanGeometry, p: Vec3, weight: DistanceWeight) -> (f64, f64, f64) {
        match (scan.beam, scan.detector.shape) {
            (Beam::Parallel, _) => {
                let r = sub(p, self.d);
                (dot(r, self.u), dot(r, self.v), 1.0)
            }
            (Beam::Cone, DetectorShape::Flat) => {
                let r = sub(p, self.s);
                let depth = dot(r, self.w);
                let m = self.sdd / depth;
                let wt = match weight {
                    DistanceWeight::None => 1.0,
                    DistanceWeight::Fdk => self.sid * self.sdd / (depth * depth),
                };
                (m * dot(r, self.u), m * dot(r, self.v), wt)
            }
            (Beam::Cone, DetectorShape::Cylindrical) => {
                let r = sub(p, self.s);
                let (a, depth) = (dot(r, self.u), dot(r, self.w));
                let rho2 = a * a + depth * depth;
                let wt = match weight {
                    DistanceWeight::None => 1.0,
                    DistanceWeight::Fdk => self.sid * self.sdd / rho2,
                };
                (self.sdd * a.atan2(depth), self.sdd * dot(r, self.v) / rho2.sqrt(), wt)
            }
        }
    }
}
