//! DICOM files in and out, on dicom-rs.
//!
//! - [`scan_folder`]: a folder, searched recursively, → the series it holds (grouped by Series
//!   Instance UID; files that are not DICOM are counted and skipped; the same instance stored
//!   twice is kept once).
//! - [`read_series_volume`]: one series → a [`Volume`](gantry_core::Volume) in HU with its LPS
//!   geometry from Image Position/Orientation (Patient), slices sorted along the normal. Missing,
//!   duplicate or unevenly spaced slices, gantry tilt, mixed sizes or orientations, missing pixel
//!   data and truncated files are errors that name the file, the attribute and the value. Every
//!   transfer syntax dicom-pixeldata decodes in pure Rust (plus JPEG-LS through CharLS) is read,
//!   and 12-bit JPEG extended through [`jpeg12`], which dicom-pixeldata lacks.
//! - [`read_dynamic_series`]: a dynamic series (the same positions repeated over time, as in
//!   CT perfusion) → a [`VolumeSeries`](gantry_core::VolumeSeries) with each frame's acquisition
//!   time; [`write_ct_dynamic_series`] writes one.
//! - [`read_pet_suv_info`]: what a PET series carries for SUV (units, decay correction,
//!   radiopharmaceutical, dose, half-life, injection and scan times, patient weight), with
//!   [`PetSuvInfo::suv_bw_factor`] after the QIBA checks.
//! - [`read_ecg`]: a DICOM ECG waveform (12-lead or general) → leads in mV.
//! - [`net`]: C-ECHO and C-STORE as service user ([`net::echo`], [`net::store_files`]) and
//!   provider ([`net::StoreScp`]), storing every instance atomically.
//! - [`write_ct_series`]: a `Volume` → a CT Image Storage series, one instance per slice,
//!   16-bit with rescale, Explicit VR Little Endian, each file written atomically; patient and
//!   study given or copied from a source series. HU go out as Rescale Type HU; maps (CBF, CBV,
//!   times, iodine, …) with a Real World Value Mapping in their UCUM unit ([`units`]); μ and
//!   volumes that do not state their quantity are refused. Readers restore the quantity.
//! - [`write_rgb_secondary_capture`]: an RGB image (colour maps, reports) → Secondary Capture.
//!
//! ```no_run
//! use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, SeriesMeta};
//! let scan = scan_folder("incoming".as_ref()).unwrap();
//! let vol = read_series_volume(&scan.series[0]).unwrap();
//! let meta = SeriesMeta::derived_from(&scan.series[0], "Gantry copy");
//! write_ct_series("out".as_ref(), &vol, &meta).unwrap();
//! ```

pub mod anonymise;
mod guard;
pub mod jpeg12;
pub mod net;
pub mod pet;
mod pixels;
pub mod read;
pub mod storage_classes;
pub mod uid;
pub mod units;
pub mod waveform;
pub mod write;

pub use pet::{read_pet_suv_info, PetSuvInfo};
pub use read::{read_dynamic_series, read_series_volume, scan_folder, DicomSeries, FolderScan};
pub use uid::UidGenerator;
pub use waveform::read_ecg;
pub use write::{
    write_ct_dynamic_series, write_ct_series, write_rgb_secondary_capture, PatientStudy, RgbImage, SeriesMeta,
    ValueUnits,
};

/// An attribute's text, trailing padding removed; empty when absent or not text.
pub(crate) fn text(obj: &dicom_object::mem::InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .unwrap_or_default()
}

/// The first value of a numeric attribute, when present, a number and finite.
pub(crate) fn first_number(obj: &dicom_object::mem::InMemDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    text(obj, tag).split('\\').next().and_then(|s| s.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// A tag as DICOM writes it, with its keyword, for error messages: `ImagePositionPatient (0020,0032)`.
pub(crate) fn tag_name(tag: dicom_core::Tag) -> String {
    use dicom_core::dictionary::DataDictionary;
    let name = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias.to_string())
        .unwrap_or_else(|| "(private or unknown)".into());
    format!("{name} ({:04X},{:04X})", tag.group(), tag.element())
}
