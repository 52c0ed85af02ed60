//! Writing DICOM: CT Image Storage series from a `Volume`, RGB Secondary Capture from an image.
//!
//! Objects are built module by module (PS3.3): Patient, General Study, General Series, Frame of
//! Reference, General Equipment, General Image, Image Plane, Image Pixel, CT Image, VOI LUT and
//! SOP Common for CT; Patient, General Study, General Series, SC Equipment, General Image, Image
//! Pixel, SC Image and SOP Common for Secondary Capture. Everything is Explicit VR Little Endian.

use super::read::DicomSeries;
use super::uid::{UidGenerator, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::atomic::write_atomically;
use crate::error::{IoError, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use gantry_core::{Frame, Quantity, Volume, VolumeGeometry, VolumeSeries};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Who and which study: copied into every object of a series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientStudy {
    pub patient_name: String,
    pub patient_id: String,
    /// YYYYMMDD or empty.
    pub patient_birth_date: String,
    /// M, F, O or empty.
    pub patient_sex: String,
    /// Generated when empty.
    pub study_instance_uid: String,
    pub study_id: String,
    /// YYYYMMDD or empty.
    pub study_date: String,
    /// HHMMSS or empty.
    pub study_time: String,
    pub study_description: String,
    pub accession_number: String,
    pub referring_physician_name: String,
}

/// What a written series says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesMeta {
    pub patient_study: PatientStudy,
    /// Generated when empty.
    pub series_instance_uid: String,
    pub series_number: i32,
    pub series_description: String,
    /// Generated when empty; give the source's to keep the images registered to it.
    pub frame_of_reference_uid: String,
    pub body_part_examined: String,
    /// HFS, FFS, …
    pub patient_position: String,
    /// When set, the images are DERIVED\SECONDARY and say how they were made.
    pub derivation_description: Option<String>,
    /// Default display window (HU).
    pub window_center: f64,
    pub window_width: f64,
    pub manufacturer: String,
    pub model_name: String,
    /// Seed of the UID generator: the same seed gives the same UIDs (and files).
    pub uid_seed: Option<u64>,
    /// For images that are not HU (perfusion maps, iodine): the label and resolution of their
    /// Real World Value Mapping. None: the default for the volume's quantity. Its UCUM unit must
    /// be the quantity's.
    #[serde(default)]
    pub value_units: Option<ValueUnits>,
}

/// The real-world quantity a derived CT series holds, written as Rescale Type and a Real World
/// Value Mapping with its UCUM unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueUnits {
    /// Rescale Type (PS3.3 C.11.1.1.2 defined terms; "US" = unspecified).
    pub rescale_type: String,
    /// UCUM code and its meaning, e.g. "mL/(100.g.min)", "mL/100 g/min".
    pub ucum_code: String,
    pub code_meaning: String,
    /// Short label (≤ 16 characters), e.g. "CBF".
    pub label: String,
    /// Value of one stored step (the rescale slope, unless the range needs a larger one).
    pub resolution: f64,
}

impl Default for SeriesMeta {
    fn default() -> Self {
        SeriesMeta {
            patient_study: PatientStudy {
                patient_name: "Gantry^Phantom".into(),
                patient_id: "GANTRY0001".into(),
                ..PatientStudy::default()
            },
            series_instance_uid: String::new(),
            series_number: 1,
            series_description: "Gantry reconstruction".into(),
            frame_of_reference_uid: String::new(),
            body_part_examined: "HEAD".into(),
            patient_position: "HFS".into(),
            derivation_description: None,
            window_center: 40.0,
            window_width: 400.0,
            manufacturer: "Gantry".into(),
            model_name: "Gantry open CT".into(),
            uid_seed: None,
            value_units: None,
        }
    }
}

impl SeriesMeta {
    /// A new derived series in the same patient, study and frame of reference as `source`.
    pub fn derived_from(source: &DicomSeries, description: &str) -> SeriesMeta {
        SeriesMeta {
            patient_study: source.patient_study.clone(),
            series_number: source.series_number.map(|n| n + 1000).unwrap_or(1000),
            series_description: description.into(),
            frame_of_reference_uid: source.frame_of_reference_uid.clone(),
            body_part_examined: if source.body_part_examined.is_empty() {
                SeriesMeta::default().body_part_examined
            } else {
                source.body_part_examined.clone()
            },
            derivation_description: Some(format!("{description}, derived by Gantry from series {}", source.uid)),
            ..SeriesMeta::default()
        }
    }
}

/// An 8-bit RGB image, rows of pixels, each pixel R, G, B.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// The VR-checked attribute list of one object, in insertion order (dicom-rs sorts by tag).
struct Elements(Vec<DataElement<InMemDicomObject>>);

impl Elements {
    fn str(&mut self, tag: Tag, vr: VR, v: impl Into<String>) {
        let v: String = v.into();
        self.0.push(DataElement::new(
            tag,
            vr,
            if v.is_empty() { PrimitiveValue::Empty } else { PrimitiveValue::from(v) },
        ));
    }
    fn strs(&mut self, tag: Tag, vr: VR, v: &[String]) {
        self.0.push(DataElement::new(tag, vr, PrimitiveValue::Strs(v.iter().cloned().collect())));
    }
    fn us(&mut self, tag: Tag, v: u16) {
        self.0.push(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    }
    fn ds(&mut self, tag: Tag, v: &[f64]) {
        let s: Vec<String> = v.iter().map(|&x| ds(x)).collect();
        self.strs(tag, VR::DS, &s);
    }
}

/// A decimal string of at most 16 characters (the DS limit) as close to `x` as that allows. A
/// value that is exactly an `f32` (a spacing read from NIfTI, a position computed in single
/// precision) is written as that `f32`'s shortest decimal: 0.9, not 0.89999997615814.
pub(crate) fn ds(x: f64) -> String {
    let x = if x == 0.0 { 0.0 } else { x }; // no "-0"
    let single = x as f32;
    if single.is_finite() && f64::from(single) == x {
        let s = format!("{single}");
        if s.len() <= 16 {
            return s;
        }
    }
    let s = format!("{x}");
    if s.len() <= 16 {
        return s;
    }
    for p in (0..=15).rev() {
        let s = format!("{x:.p$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    for p in (0..=9).rev() {
        let s = format!("{x:.p$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{x:.0e}")
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// DICOM date (YYYYMMDD) and time (HHMMSS, with `.FFFFFF` when `fraction`) of a Unix time, UTC.
fn date_time_at(unix_s: f64, fraction: bool) -> (String, String) {
    // Civil date from days since 1970 without a date crate (Hinnant's algorithm).
    let secs = unix_s.max(0.0).floor() as u64;
    let micros = ((unix_s.max(0.0) - secs as f64) * 1e6).round().min(999_999.0) as u64;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let hms = format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    (format!("{y:04}{m:02}{d:02}"), if fraction { format!("{hms}.{micros:06}") } else { hms })
}

/// What every object of one written series shares: the UID generator, the study and series
/// UIDs (given or new) and the moment of writing (one date and time for the whole series).
struct SeriesStart {
    uids: UidGenerator,
    study_uid: String,
    series_uid: String,
    unix_s: f64,
    date: String,
    time: String,
}

impl SeriesStart {
    fn new(meta: &SeriesMeta) -> SeriesStart {
        let mut uids = meta.uid_seed.map(UidGenerator::seeded).unwrap_or_else(UidGenerator::random);
        let study_uid = uids.given_or_new(&meta.patient_study.study_instance_uid);
        let series_uid = uids.given_or_new(&meta.series_instance_uid);
        let unix_s = unix_now();
        let (date, time) = date_time_at(unix_s, false);
        SeriesStart { uids, study_uid, series_uid, unix_s, date, time }
    }
}

/// Patient, General Study, General Series (common part) and SOP Common attributes.
fn common(e: &mut Elements, meta: &SeriesMeta, start: &SeriesStart, modality: &str) {
    let p = &meta.patient_study;
    let all = [
        &p.patient_name,
        &p.patient_id,
        &p.study_description,
        &p.referring_physician_name,
        &meta.series_description,
        &meta.manufacturer,
        &meta.model_name,
    ];
    if all.iter().any(|s| !s.is_ascii()) || meta.derivation_description.as_ref().is_some_and(|s| !s.is_ascii()) {
        e.str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    e.str(tags::PATIENT_NAME, VR::PN, p.patient_name.clone());
    e.str(tags::PATIENT_ID, VR::LO, p.patient_id.clone());
    e.str(tags::PATIENT_BIRTH_DATE, VR::DA, p.patient_birth_date.clone());
    e.str(tags::PATIENT_SEX, VR::CS, p.patient_sex.clone());
    e.str(tags::STUDY_INSTANCE_UID, VR::UI, start.study_uid.clone());
    // Study date, time and ID are type 2, but archives and DICOMDIRs need them: today's date
    // and time and "1" stand in for a study that does not say.
    let or = |v: &str, d: &str| if v.is_empty() { d.to_string() } else { v.to_string() };
    e.str(tags::STUDY_DATE, VR::DA, or(&p.study_date, &start.date));
    e.str(tags::STUDY_TIME, VR::TM, or(&p.study_time, &start.time));
    e.str(tags::REFERRING_PHYSICIAN_NAME, VR::PN, p.referring_physician_name.clone());
    e.str(tags::STUDY_ID, VR::SH, or(&p.study_id, "1"));
    e.str(tags::ACCESSION_NUMBER, VR::SH, p.accession_number.clone());
    if !p.study_description.is_empty() {
        e.str(tags::STUDY_DESCRIPTION, VR::LO, p.study_description.clone());
    }
    e.str(tags::MODALITY, VR::CS, modality);
    e.str(tags::SERIES_INSTANCE_UID, VR::UI, start.series_uid.clone());
    e.str(tags::SERIES_NUMBER, VR::IS, meta.series_number.to_string());
    if !meta.series_description.is_empty() {
        e.str(tags::SERIES_DESCRIPTION, VR::LO, meta.series_description.clone());
    }
    e.str(tags::MANUFACTURER, VR::LO, meta.manufacturer.clone());
    if !meta.model_name.is_empty() {
        e.str(tags::MANUFACTURER_MODEL_NAME, VR::LO, meta.model_name.clone());
    }
    e.str(tags::SOFTWARE_VERSIONS, VR::LO, format!("Gantry {}", env!("CARGO_PKG_VERSION")));
    if !meta.body_part_examined.is_empty() {
        e.str(tags::BODY_PART_EXAMINED, VR::CS, meta.body_part_examined.clone());
    }
}

/// Writes one object to `path` atomically (temporary name, sync, rename).
fn write_object(path: &Path, elements: Elements) -> Result<()> {
    let obj = InMemDicomObject::from_element_iter(elements.0);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
        )
        .map_err(|e| IoError::format(path, "file meta information", "", e.to_string()))?;
    write_atomically(path, |tmp| {
        file.write_to_file(tmp).map_err(|e| IoError::format(tmp, "DICOM data set", "", e.to_string()))
    })
}

/// The stored 16-bit values and (slope, intercept) for HU values in [lo, hi]: slope 1 and
/// intercept 0 (values rounded to 1 HU) whenever they fit a signed 16-bit integer, else the
/// range mapped onto it.
fn rescale_for(lo: f64, hi: f64) -> (f64, f64) {
    if lo >= -32768.0 && hi <= 32767.0 {
        (1.0, 0.0)
    } else {
        let slope = (hi - lo) / 65535.0;
        (slope, lo + 32768.0 * slope)
    }
}

/// Writes `volume` as a CT Image Storage series into `folder` (made if missing): one file per
/// slice, `CT00001.dcm`, … in slice order along the volume's z axis. Returns the paths. The
/// volume must be in LPS and state its quantity: HU, or a map with a UCUM unit (μ is refused:
/// convert it to HU first).
pub fn write_ct_series(folder: &Path, volume: &Volume, meta: &SeriesMeta) -> Result<Vec<PathBuf>> {
    let data = volume.data.view().insert_axis(ndarray::Axis(0));
    write_ct_frames(folder, &volume.geometry, volume.quantity, data, None, meta)
}

/// The Real World Value Mapping for `quantity` (None for HU), or why it cannot be a CT image.
fn units_for(folder: &Path, quantity: Quantity, meta: &SeriesMeta) -> Result<Option<ValueUnits>> {
    match quantity {
        Quantity::Hounsfield => match &meta.value_units {
            Some(u) if u.ucum_code != "[hnsf'U]" => Err(IoError::format(
                folder,
                "value_units.ucum_code",
                &u.ucum_code,
                "the volume holds HU (Rescale Type HU); its mapping cannot name another unit",
            )),
            _ => Ok(None),
        },
        Quantity::LinearAttenuation => Err(IoError::format(
            folder,
            "volume quantity",
            quantity.describe(),
            "a CT image holds HU: convert μ to HU first (gantry_recon::mu_to_hu_volume, or gantry recon without --mu)",
        )),
        Quantity::Unspecified => Err(IoError::format(
            folder,
            "volume quantity",
            quantity.describe(),
            "state what the values are (HU, a map's unit) before writing them as DICOM",
        )),
        q => {
            let default = ValueUnits::for_quantity(q).expect("mapped quantity");
            match &meta.value_units {
                None => Ok(Some(default)),
                Some(u) if u.ucum_code == default.ucum_code => Ok(Some(u.clone())),
                Some(u) => Err(IoError::format(
                    folder,
                    "value_units.ucum_code",
                    &u.ucum_code,
                    format!("the volume holds {}, whose UCUM unit is {}", q.describe(), default.ucum_code),
                )),
            }
        }
    }
}

/// Writes a dynamic series (CT perfusion): every frame's slices as CT images of one series,
/// frame t acquired `times_s[t]` seconds after the first (Acquisition Date/Time, Acquisition
/// Number t + 1), instances numbered frame by frame. Returns the paths.
pub fn write_ct_dynamic_series(folder: &Path, series: &VolumeSeries, meta: &SeriesMeta) -> Result<Vec<PathBuf>> {
    write_ct_frames(folder, &series.geometry, series.quantity, series.data.view(), Some(&series.times_s), meta)
}

/// Image Type: DERIVED\SECONDARY for derived series and for values other than HU (maps),
/// ORIGINAL\PRIMARY otherwise. Value 3 stays AXIAL for oblique and reformatted slices too: the
/// CT Image IOD's defined terms are AXIAL and LOCALIZER (PS3.3 C.8.2.1.1.1), and dciodvfy warns
/// on any other (REFORMATTED tried).
fn image_type(derived: bool) -> Vec<String> {
    let kind = if derived { ["DERIVED", "SECONDARY"] } else { ["ORIGINAL", "PRIMARY"] };
    kind.into_iter().chain(["AXIAL"]).map(String::from).collect()
}

fn write_ct_frames(
    folder: &Path,
    g: &VolumeGeometry,
    quantity: Quantity,
    frames: ndarray::ArrayView4<f32>,
    times_s: Option<&[f64]>,
    meta: &SeriesMeta,
) -> Result<Vec<PathBuf>> {
    g.validate().map_err(|e| IoError::core(folder, e))?;
    if g.frame != Frame::Lps {
        return Err(IoError::format(
            folder,
            "volume frame",
            g.frame,
            "DICOM positions are patient LPS; this volume is in another frame (RTK data goes back to RTK/ITK as .mha or .nii)",
        ));
    }
    let value_units = units_for(folder, quantity, meta)?;
    if frames.shape()[1..] != g.shape_zyx() || times_s.is_some_and(|t| t.len() != frames.shape()[0]) {
        return Err(IoError::format(
            folder,
            "series data [t][z][y][x]",
            format!("{:?}", frames.shape()),
            "does not match the grid and times",
        ));
    }
    if let Some(bad) = frames.iter().find(|v| !v.is_finite()) {
        return Err(IoError::format(folder, "volume voxel", bad, "must be finite to be written as DICOM"));
    }
    let [nx, ny, nz] = g.dims;
    if nx > 65535 || ny > 65535 {
        return Err(IoError::format(
            folder,
            "volume dims",
            format!("{nx}×{ny}"),
            "DICOM rows and columns are at most 65535",
        ));
    }
    std::fs::create_dir_all(folder).map_err(|e| IoError::io(folder, e))?;
    let mut start = SeriesStart::new(meta);
    let for_uid = start.uids.given_or_new(&meta.frame_of_reference_uid);
    let (lo, hi) =
        frames.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v as f64), b.max(v as f64)));
    let (slope, intercept) = match (&value_units, lo.is_finite()) {
        (_, false) => (1.0, 0.0),
        (None, true) => rescale_for(lo, hi),
        (Some(u), true) => {
            if !(u.resolution.is_finite() && u.resolution > 0.0) {
                return Err(IoError::format(folder, "value_units.resolution", u.resolution, "must be positive"));
            }
            // Intercept 0 (a real-world zero is stored as 0), the finest slope the range allows.
            (u.resolution.max(lo.abs().max(hi.abs()) / 32767.0), 0.0)
        }
    };
    // Image Orientation: the directions of increasing column index (x) and row index (y).
    let d = g.direction;
    let iop = [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]];
    let normal = [d[0][2], d[1][2], d[2][2]];
    let image_type = image_type(meta.derivation_description.is_some() || quantity != Quantity::Hounsfield);
    let n_frames = frames.shape()[0];
    let mut paths = Vec::with_capacity(n_frames * nz);
    for (t, k) in (0..n_frames).flat_map(|t| (0..nz).map(move |k| (t, k))) {
        let instance = t * nz + k + 1;
        let sop_uid = start.uids.next_uid();
        let ipp = g.position_mm(0.0, 0.0, k as f64);
        let mut e = Elements(Vec::with_capacity(64));
        common(&mut e, meta, &start, "CT");
        e.str(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
        e.str(tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
        e.strs(tags::IMAGE_TYPE, VR::CS, &image_type);
        e.str(tags::INSTANCE_CREATION_DATE, VR::DA, start.date.clone());
        e.str(tags::INSTANCE_CREATION_TIME, VR::TM, start.time.clone());
        e.str(tags::CONTENT_DATE, VR::DA, start.date.clone());
        e.str(tags::CONTENT_TIME, VR::TM, start.time.clone());
        e.str(tags::PATIENT_POSITION, VR::CS, meta.patient_position.clone());
        // Frame of Reference.
        e.str(tags::FRAME_OF_REFERENCE_UID, VR::UI, for_uid.clone());
        e.str(tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
        // General Image.
        e.str(tags::INSTANCE_NUMBER, VR::IS, instance.to_string());
        if let Some(times) = times_s {
            let (ad, at) = date_time_at(start.unix_s + times[t], true);
            e.str(tags::ACQUISITION_DATE, VR::DA, ad);
            e.str(tags::ACQUISITION_TIME, VR::TM, at);
        }
        e.str(tags::PATIENT_ORIENTATION, VR::CS, "");
        if let Some(desc) = &meta.derivation_description {
            e.str(tags::DERIVATION_DESCRIPTION, VR::ST, desc.clone());
        }
        // Image Plane.
        e.ds(tags::PIXEL_SPACING, &[g.spacing_mm[1], g.spacing_mm[0]]);
        e.ds(tags::IMAGE_ORIENTATION_PATIENT, &iop);
        e.ds(tags::IMAGE_POSITION_PATIENT, &ipp);
        e.ds(tags::SLICE_THICKNESS, &[g.spacing_mm[2]]);
        e.ds(tags::SLICE_LOCATION, &[ipp[0] * normal[0] + ipp[1] * normal[1] + ipp[2] * normal[2]]);
        // CT Image + Image Pixel.
        e.us(tags::SAMPLES_PER_PIXEL, 1);
        e.str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
        e.us(tags::ROWS, ny as u16);
        e.us(tags::COLUMNS, nx as u16);
        e.us(tags::BITS_ALLOCATED, 16);
        e.us(tags::BITS_STORED, 16);
        e.us(tags::HIGH_BIT, 15);
        e.us(tags::PIXEL_REPRESENTATION, 1);
        e.ds(tags::RESCALE_INTERCEPT, &[intercept]);
        e.ds(tags::RESCALE_SLOPE, &[slope]);
        match &value_units {
            None => e.str(tags::RESCALE_TYPE, VR::LO, "HU"),
            Some(u) => {
                e.str(tags::RESCALE_TYPE, VR::LO, u.rescale_type.clone());
                let stored = |v: f64| ((v - intercept) / slope).round().clamp(-32768.0, 32767.0) as i16;
                let unit = InMemDicomObject::from_element_iter([
                    DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(u.ucum_code.clone())),
                    DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from("UCUM")),
                    DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(u.code_meaning.clone())),
                ]);
                let mapping = InMemDicomObject::from_element_iter([
                    DataElement::new(
                        tags::REAL_WORLD_VALUE_FIRST_VALUE_MAPPED,
                        VR::SS,
                        PrimitiveValue::from(stored(lo)),
                    ),
                    DataElement::new(
                        tags::REAL_WORLD_VALUE_LAST_VALUE_MAPPED,
                        VR::SS,
                        PrimitiveValue::from(stored(hi)),
                    ),
                    DataElement::new(tags::REAL_WORLD_VALUE_INTERCEPT, VR::FD, PrimitiveValue::from(intercept)),
                    DataElement::new(tags::REAL_WORLD_VALUE_SLOPE, VR::FD, PrimitiveValue::from(slope)),
                    DataElement::new(tags::LUT_EXPLANATION, VR::LO, PrimitiveValue::from(u.code_meaning.clone())),
                    DataElement::new(tags::LUT_LABEL, VR::SH, PrimitiveValue::from(u.label.clone())),
                    DataElement::new(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, VR::SQ, DataSetSequence::from(vec![unit])),
                ]);
                e.0.push(DataElement::new(
                    tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE,
                    VR::SQ,
                    DataSetSequence::from(vec![mapping]),
                ));
            }
        }
        e.str(tags::KVP, VR::DS, "");
        e.str(tags::ACQUISITION_NUMBER, VR::IS, (t + 1).to_string());
        // VOI LUT.
        e.ds(tags::WINDOW_CENTER, &[meta.window_center]);
        e.ds(tags::WINDOW_WIDTH, &[meta.window_width]);
        let slice = frames.index_axis(ndarray::Axis(0), t);
        let slice = slice.index_axis(ndarray::Axis(0), k);
        let mut bytes = Vec::with_capacity(nx * ny * 2);
        for &v in slice.iter() {
            let s = ((v as f64 - intercept) / slope).round().clamp(-32768.0, 32767.0) as i16;
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        e.0.push(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(bytes)));
        let path = folder.join(format!("CT{instance:05}.dcm"));
        write_object(&path, e)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes an RGB image as a Secondary Capture Image Storage object at `path` (atomically).
/// The patient, study and series come from `meta`; returns the SOP Instance UID.
pub fn write_rgb_secondary_capture(
    path: &Path,
    image: &RgbImage,
    meta: &SeriesMeta,
    instance_number: u32,
) -> Result<String> {
    if image.width == 0 || image.height == 0 || image.width > 65535 || image.height > 65535 {
        return Err(IoError::format(
            path,
            "image size",
            format!("{}×{}", image.width, image.height),
            "must be 1–65535 each way",
        ));
    }
    if image.rgb.len() != image.width * image.height * 3 {
        return Err(IoError::format(
            path,
            "RGB samples",
            image.rgb.len(),
            format!("must be width × height × 3 = {}", image.width * image.height * 3),
        ));
    }
    let mut start = SeriesStart::new(meta);
    let sop_uid = start.uids.next_uid();
    let mut e = Elements(Vec::with_capacity(48));
    common(&mut e, meta, &start, "OT");
    e.str(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE);
    e.str(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.clone());
    e.strs(tags::IMAGE_TYPE, VR::CS, &["DERIVED".into(), "SECONDARY".into()]);
    e.str(tags::CONVERSION_TYPE, VR::CS, "WSD");
    e.str(tags::CONTENT_DATE, VR::DA, start.date.clone());
    e.str(tags::CONTENT_TIME, VR::TM, start.time.clone());
    e.str(tags::DATE_OF_SECONDARY_CAPTURE, VR::DA, start.date.clone());
    e.str(tags::INSTANCE_NUMBER, VR::IS, instance_number.to_string());
    e.str(tags::PATIENT_ORIENTATION, VR::CS, "");
    if let Some(desc) = &meta.derivation_description {
        e.str(tags::DERIVATION_DESCRIPTION, VR::ST, desc.clone());
    }
    e.us(tags::SAMPLES_PER_PIXEL, 3);
    e.str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    e.us(tags::PLANAR_CONFIGURATION, 0);
    e.us(tags::ROWS, image.height as u16);
    e.us(tags::COLUMNS, image.width as u16);
    e.us(tags::BITS_ALLOCATED, 8);
    e.us(tags::BITS_STORED, 8);
    e.us(tags::HIGH_BIT, 7);
    e.us(tags::PIXEL_REPRESENTATION, 0);
    e.str(tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    let mut bytes = image.rgb.clone();
    if bytes.len() % 2 == 1 {
        bytes.push(0); // even length
    }
    e.0.push(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bytes)));
    write_object(path, e)?;
    Ok(sop_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        for x in [0.0, -0.0, 1.0, -1024.0, 0.1 + 0.2, 1.0 / 3.0, -123456.789012345, 6.02e23, -1.6e-19, 255.5] {
            let s = ds(x);
            assert!(s.len() <= 16, "{x} → {s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - x).abs() <= 1e-9 * x.abs().max(1.0), "{x} → {s}");
        }
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(0.5), "0.5");
        // Single-precision values keep their own shortest decimal, not float noise.
        assert_eq!(ds(f64::from(0.9f32)), "0.9");
        assert_eq!(ds(f64::from(-119.3f32)), "-119.3");
        assert_eq!(ds(0.48828125), "0.48828125");
        assert_eq!(ds(0.9), "0.9");
    }

    #[test]
    fn image_type_says_derived_for_derived_series() {
        assert_eq!(image_type(false), ["ORIGINAL", "PRIMARY", "AXIAL"]);
        assert_eq!(image_type(true), ["DERIVED", "SECONDARY", "AXIAL"]);
    }

    #[test]
    fn rescale_keeps_hu_exact_when_it_fits() {
        assert_eq!(rescale_for(-1024.0, 3071.0), (1.0, 0.0));
        let (s, i) = rescale_for(-1e5, 1e5);
        assert!(((-1e5 - i) / s).round() >= -32768.0 && ((1e5 - i) / s).round() <= 32767.0);
    }
}
