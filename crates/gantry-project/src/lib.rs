//! # gantry-project
//!
//! The few hot kernels of Gantry, behind small traits so a faster or GPU kernel swaps in at one
//! place and runs the same tests:
//!
//! - [`Projector`]: a matched pair, forward projection `A` and its exact adjoint `Aᵀ`, for the
//!   iterative methods. [`Joseph`] implements it (bilinear sampling, one sample per voxel plane).
//! - [`Backproject`]: voxel-driven backprojection with bilinear detector interpolation, the FDK
//!   distance weight and the optional cone-angle weighting of wide detectors, accumulated over
//!   projection subsets (the FDK kernel). Implemented by [`GeneralBackprojector`] (any geometry)
//!   and [`ColumnBackprojector`] with the portable or AVX2 [`ColumnKernel`]; one test suite runs
//!   for each. Not the adjoint of Joseph; fast, and what analytic reconstruction needs.
//!
//! Both work for cone and parallel beams, flat and cylindrical detectors, any per-view geometry,
//! and run on all cores with rayon.
//!
//! ```
//! use gantry_core::{ScanProtocol, Volume, VolumeGeometry};
//! use gantry_project::{Joseph, Projector};
//! let scan = ScanProtocol::circular_flat(500.0, 1000.0, 8, 32, 4, 2.0).build().unwrap();
//! let grid = VolumeGeometry::centered([16, 16, 4], [1.0; 3], [0.0; 3]).unwrap();
//! let mut vol = Volume::zeros(grid.clone());
//! vol.data.fill(0.02);
//! let a = Joseph::new(grid, scan).unwrap();
//! let p = a.project(&vol).unwrap();
//! // The central ray crosses 16 mm of the cube.
//! assert!((p.data[[0, 2, 16]] - 0.32).abs() < 0.01);
//! ```

pub mod backproject;
pub mod joseph;

pub use backproject::{
    backprojectors, best_backprojector, Accumulate, Backproject, BackprojectOptions, ColumnBackprojector, ColumnKernel,
    ConeWeighting, DistanceWeight, GeneralBackprojector,
};
pub use joseph::Joseph;

use gantry_core::{CoreError, ProjectionStack, Result, ScanGeometry, Volume, VolumeGeometry};
use ndarray::{ArrayView3, ArrayViewMut3};

/// A linear operator from volumes (`[z][y][x]`) to projections (`[view][row][col]`) and its adjoint.
pub trait Projector: Sync {
    fn volume_geometry(&self) -> &VolumeGeometry;
    fn scan_geometry(&self) -> &ScanGeometry;
    /// Overwrites `projections` with A·`volume`.
    fn forward(&self, volume: ArrayView3<f32>, projections: ArrayViewMut3<f32>) -> Result<()>;
    /// Overwrites `volume` with Aᵀ·`projections`.
    fn adjoint(&self, projections: ArrayView3<f32>, volume: ArrayViewMut3<f32>) -> Result<()>;

    /// A·volume as a new projection stack.
    fn project(&self, volume: &Volume) -> Result<ProjectionStack> {
        if volume.geometry != *self.volume_geometry() {
            return Err(CoreError::size_mismatch(
                "volume geometry",
                format!("{:?}", self.volume_geometry()),
                format!("{:?}", volume.geometry),
            ));
        }
        let mut out = ProjectionStack::zeros(self.scan_geometry().clone());
        self.forward(volume.data.view(), out.data.view_mut())?;
        Ok(out)
    }
}

/// Checks array shapes against the operator's geometries.
pub(crate) fn check_sizes<P: Projector + ?Sized>(p: &P, vol: &[usize], proj: &[usize]) -> Result<()> {
    let want_v = p.volume_geometry().shape_zyx();
    if vol != want_v {
        return Err(CoreError::size_mismatch("volume [z][y][x]", format!("{want_v:?}"), format!("{vol:?}")));
    }
    let want_p = p.scan_geometry().projection_shape();
    if proj != want_p {
        return Err(CoreError::size_mismatch(
            "projections [view][row][col]",
            format!("{want_p:?}"),
            format!("{proj:?}"),
        ));
    }
    Ok(())
}
