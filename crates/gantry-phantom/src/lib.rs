//! # gantry-phantom
//!
//! Gantry's test oracles: phantoms whose line integrals are known exactly, and a simulated
//! acquisition that turns them into detected counts.
//!
//! - [`Shape`]: ellipsoids and finite elliptic cylinders, rotated freely, with exact chords.
//! - [`Phantom`]: additive shapes; built-ins are the 3D Shepp–Logan, a water cylinder and a head
//!   in HU. `voxelize` samples one on a grid with supersampling (the truth an image is compared
//!   with); [`project_analytic`] gives exact line integrals for every detector pixel.
//! - [`Scene`]: anything with line integrals at a time; each view is projected at its own time,
//!   so moving and time-varying scenes plug in.
//! - [`Acquisition`]: line integrals → counts with Poisson and electronic noise, seeded.
//! - [`perfusion`]: CT perfusion ground truth (gamma-variate arterial input, residue functions,
//!   delayed and dispersed tissue curves from the indicator-dilution model).
//!
//! ```
//! use gantry_core::ScanProtocol;
//! use gantry_phantom::{project_analytic, Phantom};
//! let geometry = ScanProtocol::circular_flat(500.0, 1000.0, 4, 32, 8, 2.0).build().unwrap();
//! let water = Phantom::water_cylinder(50.0, 100.0, 0.02);
//! let p = project_analytic(&water, &geometry);
//! // The central ray crosses 100 mm of water.
//! assert!((p.data[[0, 4, 16]] - 2.0).abs() < 0.01);
//! ```

pub mod acquisition;
pub mod perfusion;
pub mod perfusion_brain;
pub mod phantom;
pub mod shapes;

pub use acquisition::Acquisition;
pub use phantom::{project_analytic, project_analytic_aperture, project_analytic_progress, Phantom, Scene};
pub use shapes::Shape;
