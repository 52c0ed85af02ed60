//! # gantry-recon
//!
//! Reconstruction from projections, written as small named steps on top of the kernels of
//! gantry-project:
//!
//! - [`preprocess`]: counts → line integrals; μ → HU.
//! - [`weights`]: cosine weight, redundancy weights (Parker for any short-scan arc from
//!   180° + fan, displaced detector, parallel half turn), angular steps.
//! - [`filter`]: the ramp filter with Ram-Lak, Shepp-Logan, cosine, Hamming and Hann windows
//!   and zero padding; equiangular for cylindrical detectors.
//! - [`fdk()`]: FDK for flat and cylindrical detectors, full and short scans, and with one row the
//!   2D fan-beam and parallel-beam FBP; processed in subsets of views so memory stays near the
//!   volume plus one subset. A full circular turn goes through [`wide_cone`] by default:
//!   cone-parallel rebinning and the cone-angle weighting, so the outer slices of a wide
//!   detector are as right as the central ones.
//!
//! ```
//! use gantry_core::{ScanProtocol, VolumeGeometry};
//! use gantry_phantom::{project_analytic, Phantom};
//! use gantry_recon::{fdk, FdkOptions};
//! let scan = ScanProtocol::circular_flat(300.0, 600.0, 90, 96, 8, 1.0).build().unwrap();
//! let water = Phantom::water_cylinder(15.0, 100.0, 0.02);
//! let p = project_analytic(&water, &scan);
//! let grid = VolumeGeometry::centered([32, 32, 2], [1.0; 3], [0.0; 3]).unwrap();
//! let mu = fdk(&p, &grid, &FdkOptions::default(), &|_, _| {}).unwrap();
//! assert!((mu.data[[1, 16, 16]] - 0.02).abs() < 0.001);
//! ```

pub mod fdk;
pub mod filter;
pub mod preprocess;
pub mod weights;
pub mod wide_cone;

pub use fdk::{fdk, FdkOptions};
pub use filter::{RampFilter, Window};
pub use preprocess::{counts_to_line_integrals, mu_to_hu_volume};
pub use weights::Redundancy;
