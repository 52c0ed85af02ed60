//! # gantry-core
//!
//! The shared vocabulary of Gantry. No I/O and no algorithms live here: only the data types every
//! other crate speaks, each validated once when it is built.
//!
//! - [`Volume`] / [`VolumeGeometry`]: f32 voxels stored `[z][y][x]` with spacing, origin,
//!   direction and [`Frame`] (DICOM LPS, or RTK's for RTK data), so every voxel has a position in
//!   mm, and the [`Quantity`] the values are (μ, HU, mL/100 g/min, mg/mL, Bq/mL, …).
//! - [`frame`]: patient positions, scan frames and [`FrameMap`], the one place where grids move
//!   between a world frame and the scanner frame.
//! - [`ScanGeometry`]: one vector description per view (source, detector centre, detector u and
//!   v axes, angle, time) for cone or parallel beams on flat or cylindrical detectors, built from
//!   a [`ScanProtocol`] (circular full scan, short scan over any arc, helical, parallel, detector
//!   offsets, the clinical wide-detector preset).
//! - [`ProjectionStack`]: projections `[view][row][col]` together with their geometry.
//! - [`ConeParallelGeometry`]: a circular orbit's cone-beam data rebinned to parallel views in
//!   the orbit plane, as the wide-cone reconstruction uses it.
//! - [`units`]: μ (1/mm) ↔ HU.
//!
//! ```
//! use gantry_core::{ScanProtocol, VolumeGeometry, Volume};
//! let geometry = ScanProtocol::clinical_wide_detector().build().unwrap();
//! assert_eq!(geometry.projection_shape(), [1000, 256, 888]);
//! let grid = VolumeGeometry::centered([64, 64, 16], [0.5, 0.5, 0.625], [0.0; 3]).unwrap();
//! let vol = Volume::zeros(grid);
//! assert_eq!(vol.data.shape(), &[16, 64, 64]);
//! ```
//!
//! Errors name the field and value: building a protocol with `sdd_mm` below `sid_mm` fails with
//! `invalid sdd_mm = 900: the detector must lie beyond the rotation axis (sid_mm = 1000)`.

pub mod cone_parallel;
pub mod ecg;
pub mod error;
pub mod frame;
pub mod geometry;
pub mod projections;
pub mod quantity;
pub mod series;
pub mod units;
pub mod volume;

pub use cone_parallel::ConeParallelGeometry;
pub use ecg::{Ecg, EcgLead};
pub use error::{check_finite, CoreError, Result};
pub use frame::{Frame, FrameMap, PatientPosition, ScanFrame};
pub use geometry::{Beam, Detector, DetectorShape, ScanGeometry, ScanProtocol, ViewGeometry};
pub use projections::ProjectionStack;
pub use quantity::Quantity;
pub use series::VolumeSeries;
pub use volume::{Volume, VolumeGeometry};
