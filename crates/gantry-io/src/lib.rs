//! # gantry-io
//!
//! Everything in Gantry that touches bytes. Every file is written whole or not at all
//! (temporary name, sync, rename), and every read error names the file, the field and the value.
//!
//! - Volumes: NIfTI-1 (`.nii`, `.nii.gz`; LPS ↔ RAS converted here and only here) and
//!   MetaImage (`.mha`, `.mhd`): [`write_volume`], [`read_volume`].
//! - Projections: MetaImage (x = column, y = row, z = view, RTK's layout) with a readable
//!   geometry file beside it (`name.geometry.toml`): [`write_projections`], [`read_projections`].
//! - RTK geometry XML read (and written for a circular scan), so RTK data reconstructs
//!   unchanged: [`rtk`].
//! - Dynamic series (CT perfusion) as 4D NIfTI with their frame interval:
//!   [`write_nifti_series`], [`read_nifti_series`].
//! - PNG slices with a display window: [`write_slice_png`]; RGB images: [`write_rgb_png`].
//! - DICOM: folders of series read into volumes, CT series and RGB Secondary Capture written:
//!   [`dicom`].
//!
//! ```no_run
//! use gantry_io::{read_volume, write_slice_png, Plane};
//! let vol = read_volume("head.nii.gz".as_ref()).unwrap();
//! write_slice_png("axial.png".as_ref(), &vol, Plane::Axial, 40, 40.0, 80.0).unwrap();
//! ```

pub mod atomic;
pub mod dicom;
pub mod ecg_csv;
pub mod error;
pub mod metaimage;
pub mod nifti_io;
pub mod png_slices;
pub mod rtk;
pub mod toml_file;
pub mod volume_files;

pub use error::{IoError, Result};
pub use nifti_io::{read_nifti_series, write_nifti_series};
pub use png_slices::{write_grey_png, write_rgb_png, write_slice_png, Plane};
pub use toml_file::parse_toml;
pub use volume_files::{
    geometry_path_for, read_geometry, read_projections, read_volume, write_geometry, write_projections, write_volume,
};
