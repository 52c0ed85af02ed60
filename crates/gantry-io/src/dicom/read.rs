//! Reading DICOM: folders → series → volumes.

use super::pixels::{self, SampleLayout};
use super::write::PatientStudy;
use super::{tag_name, text};
use crate::error::{IoError, Result};
use dicom_core::header::HasLength;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use gantry_core::{Quantity, Volume, VolumeGeometry, VolumeSeries};
use ndarray::Array3;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One series found in a folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomSeries {
    /// Series Instance UID.
    pub uid: String,
    pub modality: String,
    pub description: String,
    pub series_number: Option<i32>,
    pub sop_class_uid: String,
    pub patient_study: PatientStudy,
    pub frame_of_reference_uid: String,
    pub body_part_examined: String,
    /// One file per SOP instance, in path order.
    pub files: Vec<PathBuf>,
}

/// What a folder holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderScan {
    /// In order of Series Instance UID.
    pub series: Vec<DicomSeries>,
    /// Files without the DICOM preamble and "DICM" magic.
    pub not_dicom: Vec<PathBuf>,
    /// Files holding an instance already seen (same SOP Instance UID), left out.
    pub duplicate_instances: Vec<PathBuf>,
    /// DICOM files left out because they cannot be read or do not name their series and
    /// instance, each with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl FolderScan {
    /// One line per file left out (not DICOM, unreadable, a second copy), naming the file and why.
    pub fn left_out_lines(&self) -> Vec<String> {
        let unreadable = self.unreadable.iter().map(|(p, why)| format!("left out {}: {why}", p.display()));
        let duplicates =
            self.duplicate_instances.iter().map(|p| format!("left out {}: a second copy of an instance", p.display()));
        let not_dicom = self.not_dicom.iter().map(|p| format!("left out {}: not DICOM", p.display()));
        unreadable.chain(duplicates).chain(not_dicom).collect()
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IoError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| IoError::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(".gantry-tmp-") {
            continue; // a write in progress
        }
        if p.is_dir() {
            files_under(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Up to the first `n` bytes of a file (fewer when it is shorter).
fn head_of(path: &Path, n: usize) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut head = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut head).map_err(|e| IoError::io(path, e))?;
    Ok(head)
}

/// Whether the file starts with the 128-byte preamble and "DICM".
fn has_dicm_magic(path: &Path) -> Result<bool> {
    let head = head_of(path, 132)?;
    Ok(head.len() == 132 && &head[128..132] == b"DICM")
}

fn numbers(obj: &InMemDicomObject, tag: Tag, path: &Path) -> Result<Option<Vec<f64>>> {
    let Some(e) = obj.get(tag) else { return Ok(None) };
    if e.value().primitive().is_some_and(|v| v.is_empty()) {
        return Ok(None);
    }
    let v = e.to_multi_float64().map_err(|err| {
        IoError::format(path, tag_name(tag), e.value().to_str().unwrap_or_default(), format!("not a number: {err}"))
    })?;
    if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
        return Err(IoError::format(path, tag_name(tag), bad, "must be finite"));
    }
    Ok(Some(v))
}

fn required(obj: &InMemDicomObject, tag: Tag, n: usize, path: &Path) -> Result<Vec<f64>> {
    match numbers(obj, tag, path)? {
        None => Err(IoError::format(path, tag_name(tag), "(absent)", "is required to place the image")),
        Some(v) if v.len() != n => Err(IoError::format(
            path,
            tag_name(tag),
            format!("{v:?}"),
            format!("must have {n} values, has {}", v.len()),
        )),
        Some(v) => Ok(v),
    }
}

/// A file's meta information and data set up to (not including) its pixel data.
pub(crate) fn open_header(path: &Path) -> Result<DefaultDicomObject> {
    open_object(path, true)
}

/// Whether a file without the "DICM" preamble starts like a bare data set: its first element a
/// group-0008 tag (every image's data set begins there), in little endian.
fn looks_like_bare_data_set(path: &Path) -> Result<bool> {
    let head = head_of(path, 8)?;
    Ok(head.len() == 8 && head[0] == 0x08 && head[1] == 0x00)
}

/// Opens a DICOM file, checked first ([`super::guard`]), whole or up to its pixel data. A file
/// without preamble and meta group (an old or bare data set) is read when it parses as
/// implicit or explicit VR little endian; the meta group is then made from its own SOP
/// Class and Instance UIDs.
pub(crate) fn open_object(path: &Path, header_only: bool) -> Result<DefaultDicomObject> {
    if has_dicm_magic(path)? {
        super::guard::check_path(path, header_only)?;
        let options =
            if header_only { OpenFileOptions::new().read_until(tags::PIXEL_DATA) } else { OpenFileOptions::new() };
        return options
            .open_file(path)
            .map_err(|e| IoError::format(path, "DICOM data set", "", format!("cannot be parsed: {e}")));
    }
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    let mut why = String::from("no meta group and not a bare data set");
    for ts_uid in [IMPLICIT_VR_LE, EXPLICIT_VR_LE] {
        if let Err(e) = super::guard::check_data_set(path, &bytes, ts_uid) {
            why = e.to_string();
            continue;
        }
        use dicom_encoding::TransferSyntaxIndex;
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(ts_uid).expect("built in");
        let Ok(obj) = InMemDicomObject::read_dataset_with_ts(&bytes[..], ts) else { continue };
        let (class, instance) = (text(&obj, tags::SOP_CLASS_UID), text(&obj, tags::SOP_INSTANCE_UID));
        if class.is_empty() || instance.is_empty() {
            continue;
        }
        let meta = dicom_object::meta::FileMetaTableBuilder::new()
            .transfer_syntax(ts_uid)
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(instance);
        return obj
            .with_meta(meta)
            .map_err(|e| IoError::format(path, "DICOM file meta", "", format!("cannot be made: {e}")));
    }
    Err(IoError::format(path, "DICOM data set", "(no meta group)", format!("cannot be parsed: {why}")))
}

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Finds the DICOM series under `dir` (recursively), grouped by Series Instance UID.
pub fn scan_folder(dir: &Path) -> Result<FolderScan> {
    if !dir.is_dir() {
        return Err(IoError::format(dir, "folder", dir.display(), "is not a folder"));
    }
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    let mut scan = FolderScan::default();
    let headers: Vec<Result<Option<(PathBuf, DefaultDicomObject)>>> = files
        .par_iter()
        .map(|p| {
            if has_dicm_magic(p)? || looks_like_bare_data_set(p)? {
                open_header(p).map(|o| Some((p.clone(), o)))
            } else {
                Ok(None)
            }
        })
        .collect();
    let mut by_series: BTreeMap<String, DicomSeries> = BTreeMap::new();
    let mut seen_instances = std::collections::HashSet::new();
    // A file that cannot be read, or does not say which series and instance it is, is left out
    // with its reason; the rest of the folder is read.
    for (path, h) in files.iter().zip(headers) {
        let (path, obj) = match h {
            Ok(Some(found)) => found,
            Ok(None) => {
                scan.not_dicom.push(path.clone());
                continue;
            }
            Err(e) => {
                let why = e.to_string();
                let why = why.strip_prefix(&format!("{}: ", path.display())).map(str::to_owned).unwrap_or(why);
                scan.unreadable.push((path.clone(), why));
                continue;
            }
        };
        let series_uid = text(&obj, tags::SERIES_INSTANCE_UID);
        let sop = text(&obj, tags::SOP_INSTANCE_UID);
        if series_uid.is_empty() || sop.is_empty() {
            let tag = if series_uid.is_empty() { tags::SERIES_INSTANCE_UID } else { tags::SOP_INSTANCE_UID };
            scan.unreadable.push((path, format!("{} is absent: the file names no series or instance", tag_name(tag))));
            continue;
        }
        if !seen_instances.insert(sop) {
            scan.duplicate_instances.push(path);
            continue;
        }
        let entry = by_series.entry(series_uid.clone()).or_insert_with(|| DicomSeries {
            uid: series_uid,
            modality: text(&obj, tags::MODALITY),
            description: text(&obj, tags::SERIES_DESCRIPTION),
            series_number: text(&obj, tags::SERIES_NUMBER).parse().ok(),
            sop_class_uid: text(&obj, tags::SOP_CLASS_UID),
            patient_study: PatientStudy {
                patient_name: text(&obj, tags::PATIENT_NAME),
                patient_id: text(&obj, tags::PATIENT_ID),
                patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
                patient_sex: text(&obj, tags::PATIENT_SEX),
                study_instance_uid: text(&obj, tags::STUDY_INSTANCE_UID),
                study_id: text(&obj, tags::STUDY_ID),
                study_date: text(&obj, tags::STUDY_DATE),
                study_time: text(&obj, tags::STUDY_TIME),
                study_description: text(&obj, tags::STUDY_DESCRIPTION),
                accession_number: text(&obj, tags::ACCESSION_NUMBER),
                referring_physician_name: text(&obj, tags::REFERRING_PHYSICIAN_NAME),
            },
            frame_of_reference_uid: text(&obj, tags::FRAME_OF_REFERENCE_UID),
            body_part_examined: text(&obj, tags::BODY_PART_EXAMINED),
            files: Vec::new(),
        });
        entry.files.push(path);
    }
    scan.series = by_series.into_values().collect();
    Ok(scan)
}

/// One decoded single-frame image and where it lies.
struct Slice {
    path: PathBuf,
    rows: usize,
    cols: usize,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    thickness: Option<f64>,
    tilt_deg: Option<f64>,
    /// Acquisition time (s since 1970 when a date is given, else since midnight), if any.
    time_s: Option<f64>,
    values: Vec<f32>,
    /// What the rescaled values are.
    quantity: Quantity,
}

/// What an image's rescaled values are: the unit of its Real World Value Mapping, HU for CT
/// (Rescale Type HU or absent), Bq/mL for PET in BQML; otherwise unspecified.
fn image_quantity(obj: &InMemDicomObject) -> Quantity {
    let first = |o: &InMemDicomObject, tag: Tag| -> Option<InMemDicomObject> {
        o.get(tag).and_then(|e| e.items()).and_then(|i| i.first()).cloned()
    };
    if let Some(unit) = first(obj, tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE)
        .and_then(|m| first(&m, tags::MEASUREMENT_UNITS_CODE_SEQUENCE))
    {
        let q = super::units::quantity_of_ucum(&text(&unit, tags::CODE_VALUE), &text(&unit, tags::CODE_MEANING));
        if q != Quantity::Unspecified {
            return q;
        }
    }
    let rescale_type = text(obj, tags::RESCALE_TYPE).to_ascii_uppercase();
    match text(obj, tags::MODALITY).to_ascii_uppercase().as_str() {
        "CT" if rescale_type.is_empty() || rescale_type == "HU" => Quantity::Hounsfield,
        "PT" if text(obj, tags::UNITS).eq_ignore_ascii_case("BQML") => Quantity::ActivityConcentration,
        _ if rescale_type == "HU" => Quantity::Hounsfield,
        _ => Quantity::Unspecified,
    }
}

/// Seconds since midnight of a DICOM TM value (HH, HHMM, HHMMSS, HHMMSS.FFFFFF; colons tolerated).
pub(crate) fn parse_tm(tm: &str) -> Option<f64> {
    let tm = tm.trim().replace(':', "");
    let (hms, frac) = tm.split_once('.').unwrap_or((&tm, ""));
    if hms.len() < 2 || hms.len() > 6 || hms.len() % 2 == 1 || !hms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |i: usize| hms.get(i..i + 2).map(|p| p.parse::<f64>().unwrap_or(0.0)).unwrap_or(0.0);
    let frac: f64 = if frac.is_empty() { 0.0 } else { format!("0.{frac}").parse().ok()? };
    let (h, m, s) = (part(0), part(2), part(4));
    (h < 24.0 && m < 60.0 && s < 61.0).then_some(h * 3600.0 + m * 60.0 + s + frac)
}

/// Days since 1970-01-01 of a DICOM DA value (YYYYMMDD).
pub(crate) fn parse_da(da: &str) -> Option<i64> {
    let da = da.trim().replace(['.', '-'], "");
    if da.len() != 8 || !da.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (da[0..4].parse().ok()?, da[4..6].parse().ok()?, da[6..8].parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The acquisition time of an image: Acquisition DateTime, else Acquisition Date + Time, else
/// Content Date + Time, else Trigger Time.
/// Seconds since 1970 of a DT value (YYYYMMDDHHMMSS.FFFFFF; an offset is ignored).
pub(crate) fn date_time_value(dt: &str) -> Option<f64> {
    if dt.len() < 8 {
        return None;
    }
    let (date, time) = dt.split_at(8);
    let time = time.split(['+', '-']).next().unwrap_or("");
    Some(parse_da(date)? as f64 * 86_400.0 + if time.is_empty() { 0.0 } else { parse_tm(time)? })
}

fn acquisition_time(obj: &InMemDicomObject) -> Option<f64> {
    if let Some(t) = date_time_value(&text(obj, tags::ACQUISITION_DATE_TIME)) {
        return Some(t);
    }
    for (d, t) in [(tags::ACQUISITION_DATE, tags::ACQUISITION_TIME), (tags::CONTENT_DATE, tags::CONTENT_TIME)] {
        if let Some(secs) = parse_tm(&text(obj, t)) {
            return Some(parse_da(&text(obj, d)).map(|days| days as f64 * 86_400.0).unwrap_or(0.0) + secs);
        }
    }
    text(obj, tags::TRIGGER_TIME).parse::<f64>().ok().filter(|t| t.is_finite()).map(|ms| ms / 1000.0)
}

/// Where frame `f`'s attribute `tag`, kept in functional group `group`, is: the frame's own
/// item of the Per-frame Functional Groups Sequence, else the Shared one, else the top level
/// (single-frame images and legacy multi-frame ones).
fn in_group<'a>(obj: &'a InMemDicomObject, f: Option<usize>, group: Tag, tag: Tag) -> &'a InMemDicomObject {
    let first_item = |holder: &'a InMemDicomObject| -> Option<&'a InMemDicomObject> {
        holder.get(group).and_then(|e| e.items()).and_then(|i| i.first()).filter(|item| item.get(tag).is_some())
    };
    if let Some(f) = f {
        let per_frame =
            obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).and_then(|i| i.get(f));
        if let Some(item) = per_frame.and_then(first_item) {
            return item;
        }
        let shared = obj.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).and_then(|i| i.first());
        if let Some(item) = shared.and_then(first_item) {
            return item;
        }
    }
    obj
}

/// Reads the images of one file: one for a single-frame image, one per frame for a multi-frame
/// one (Enhanced CT and the like, whose frame positions, orientation, spacing, rescale and times
/// come from the functional groups).
fn read_file(path: &Path) -> Result<Vec<Slice>> {
    let obj = open_object(path, false)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(IoError::format(path, tag_name(tags::PIXEL_DATA), "(absent)", "an image needs its pixels"));
    }
    let samples = text(&obj, tags::SAMPLES_PER_PIXEL);
    if !samples.is_empty() && samples != "1" {
        return Err(IoError::format(
            path,
            tag_name(tags::SAMPLES_PER_PIXEL),
            samples,
            "a volume needs grey-level images",
        ));
    }
    let n_frames_text = text(&obj, tags::NUMBER_OF_FRAMES);
    let n_frames: usize = if n_frames_text.is_empty() {
        1
    } else {
        n_frames_text.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
            IoError::format(path, tag_name(tags::NUMBER_OF_FRAMES), &n_frames_text, "must be a whole number from 1")
        })?
    };
    let multi = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).is_some() || n_frames > 1;
    // 12-bit JPEG extended is decoded here (dicom-pixeldata stops at 8-bit DCT samples);
    // everything else by dicom-pixeldata.
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_owned();
    let bits_stored = text(&obj, tags::BITS_STORED).parse::<u16>().unwrap_or(0);
    let own = if ts == JPEG_EXTENDED && bits_stored > 8 {
        Some(decode_jpeg_extended(&obj, path, n_frames, bits_stored)?)
    } else {
        None
    };
    let decoded;
    // Everything else is decoded by dicom-pixeldata and its stored values taken from the
    // decoded words by Bits Allocated/Stored, High Bit and Pixel Representation.
    let (shape, values): (Vec<usize>, Vec<f32>) = match own {
        Some(own) => own,
        None => {
            decoded = obj.decode_pixel_data().map_err(|e| {
                IoError::format(path, tag_name(tags::PIXEL_DATA), "", format!("cannot be decoded: {e}"))
            })?;
            let layout = SampleLayout::new(
                decoded.bits_allocated(),
                decoded.bits_stored(),
                decoded.high_bit(),
                decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed,
                path,
            )?;
            let shape =
                vec![decoded.number_of_frames() as usize, decoded.rows() as usize, decoded.columns() as usize, 1];
            let n = shape.iter().product::<usize>();
            (shape, layout.values(decoded.data(), n, pixels::is_native(&ts), path)?)
        }
    };
    if shape[0] != n_frames {
        return Err(IoError::format(
            path,
            tag_name(tags::NUMBER_OF_FRAMES),
            n_frames,
            format!("but the pixel data holds {} frames", shape[0]),
        ));
    }
    let (rows, cols) = (shape[1], shape[2]);
    let per_frame = rows * cols;
    // What the whole image says, for every frame.
    let tilt_deg = numbers(&obj, tags::GANTRY_DETECTOR_TILT, path)?.map(|v| v[0]);
    let quantity = image_quantity(&obj);
    let image_time = acquisition_time(&obj);
    let mut out = Vec::with_capacity(n_frames);
    for f in 0..n_frames {
        let fi = multi.then_some(f);
        // Errors about a frame of a multi-frame file name the frame.
        let name = if multi { PathBuf::from(format!("{}#frame{}", path.display(), f + 1)) } else { path.to_owned() };
        let at = |group: Tag, tag: Tag| in_group(&obj, fi, group, tag);
        let position = required(
            at(tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT),
            tags::IMAGE_POSITION_PATIENT,
            3,
            &name,
        )?;
        let orientation = required(
            at(tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT),
            tags::IMAGE_ORIENTATION_PATIENT,
            6,
            &name,
        )?;
        let spacing = required(at(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING), tags::PIXEL_SPACING, 2, &name)?;
        if spacing.iter().any(|&s| s <= 0.0) {
            return Err(IoError::format(
                &name,
                tag_name(tags::PIXEL_SPACING),
                format!("{spacing:?}"),
                "must be positive",
            ));
        }
        let rescale = |tag: Tag, default: f64| -> Result<f64> {
            Ok(numbers(at(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag), tag, &name)?
                .map(|v| v[0])
                .unwrap_or(default))
        };
        let (slope, intercept) = (rescale(tags::RESCALE_SLOPE, 1.0)?, rescale(tags::RESCALE_INTERCEPT, 0.0)?);
        pixels::check_rescale(slope, intercept, &name)?;
        let thickness =
            numbers(at(tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS), tags::SLICE_THICKNESS, &name)?;
        let frame_time = at(tags::FRAME_CONTENT_SEQUENCE, tags::FRAME_ACQUISITION_DATE_TIME);
        let time_s = if multi && frame_time.get(tags::FRAME_ACQUISITION_DATE_TIME).is_some() {
            date_time_value(&text(frame_time, tags::FRAME_ACQUISITION_DATE_TIME))
        } else {
            image_time
        };
        let range = f * per_frame..(f + 1) * per_frame;
        let rescale = |v: f64| (v * slope + intercept) as f32;
        let values: Vec<f32> = values[range].iter().map(|&v| rescale(v as f64)).collect();
        out.push(Slice {
            path: name.clone(),
            rows,
            cols,
            position: [position[0], position[1], position[2]],
            orientation: std::array::from_fn(|i| orientation[i]),
            spacing: [spacing[0], spacing[1]],
            thickness: thickness.map(|v| v[0]),
            tilt_deg,
            time_s,
            values,
            quantity,
        });
    }
    Ok(out)
}

/// Transfer syntax JPEG Extended (processes 2 and 4: 8- or 12-bit sequential DCT).
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Decodes 12-bit JPEG extended pixel data with [`super::jpeg12`]: the shape (frames, rows,
/// columns, 1) and the stored values, sign-extended from Bits Stored when Pixel Representation
/// is 1.
fn decode_jpeg_extended(
    obj: &DefaultDicomObject,
    path: &Path,
    n_frames: usize,
    bits_stored: u16,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let pixel_error = |value: String, reason: String| IoError::format(path, tag_name(tags::PIXEL_DATA), value, reason);
    let element = obj.element(tags::PIXEL_DATA).map_err(|e| pixel_error(String::new(), e.to_string()))?;
    let value = element.value();
    let (Some(fragments), Some(offsets)) = (value.fragments(), value.offset_table()) else {
        return Err(pixel_error("native".into(), "JPEG transfer syntax needs encapsulated pixel data".into()));
    };
    // The frames' JPEG streams: all fragments for one frame, one fragment per frame, or split
    // by the Basic Offset Table.
    let streams: Vec<Vec<u8>> = if n_frames == 1 {
        vec![fragments.concat()]
    } else if fragments.len() == n_frames {
        fragments.to_vec()
    } else if offsets.len() == n_frames {
        // Each offset is where a frame's first fragment starts, counted from the first
        // fragment's item header (8 bytes per item).
        let mut out = vec![Vec::new(); n_frames];
        let mut at = 0usize;
        for f in fragments {
            let k = offsets.partition_point(|&o| o as usize <= at);
            if k == 0 || (offsets[k - 1] as usize != at && out[k - 1].is_empty()) {
                return Err(pixel_error(
                    format!("offset {}", offsets[k.saturating_sub(1)]),
                    format!("the Basic Offset Table does not point at a fragment (one starts at {at})"),
                ));
            }
            out[k - 1].extend_from_slice(f);
            at += 8 + f.len();
        }
        if let Some(k) = out.iter().position(|s| s.is_empty()) {
            return Err(pixel_error(
                format!("offset {}", offsets[k]),
                format!("Basic Offset Table entry {k} points at no fragment"),
            ));
        }
        out
    } else {
        return Err(pixel_error(
            format!("{} fragments", fragments.len()),
            format!("cannot tell the {n_frames} frames apart (no Basic Offset Table)"),
        ));
    };
    let dim = |tag: Tag| -> Result<usize> {
        let t = text(obj, tag);
        t.parse().map_err(|_| IoError::format(path, tag_name(tag), &t, "must be a whole number"))
    };
    let (rows, cols) = (dim(tags::ROWS)?, dim(tags::COLUMNS)?);
    let shape = vec![n_frames, rows, cols, 1];
    let mut values = Vec::with_capacity(n_frames * rows * cols);
    let signed = text(obj, tags::PIXEL_REPRESENTATION) == "1";
    let wrap = 1i32 << bits_stored.min(16);
    for (k, stream) in streams.iter().enumerate() {
        let image = super::jpeg12::decode_grey(stream)
            .map_err(|e| pixel_error(format!("frame {}", k + 1), format!("cannot be decoded: 12-bit JPEG: {e}")))?;
        if (image.height, image.width) != (rows, cols) {
            return Err(pixel_error(
                format!("frame {} is {}×{}", k + 1, image.width, image.height),
                format!("but Rows × Columns say {cols}×{rows}"),
            ));
        }
        values.extend(image.samples.iter().map(|&v| {
            let v = v as i32;
            (if signed && v >= wrap / 2 { v - wrap } else { v }) as f32
        }));
    }
    Ok((shape, values))
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Row direction, column direction and normal from an Image Orientation (Patient), made
/// exactly orthonormal (DS rounding leaves them slightly off); an error when they are far off.
fn frame_from_orientation(o: &[f64; 6], path: &Path) -> Result<[[f64; 3]; 3]> {
    let bad =
        |why: &str| IoError::format(path, tag_name(tags::IMAGE_ORIENTATION_PATIENT), format!("{o:?}"), why.to_string());
    let r = [o[0], o[1], o[2]];
    let c = [o[3], o[4], o[5]];
    let (nr, nc) = (dot(r, r).sqrt(), dot(c, c).sqrt());
    if (nr - 1.0).abs() > 1e-3 || (nc - 1.0).abs() > 1e-3 {
        return Err(bad("row and column directions must be unit vectors"));
    }
    if dot(r, c).abs() > 1e-3 {
        return Err(bad("row and column directions must be perpendicular"));
    }
    let r = r.map(|x| x / nr);
    let k = dot(r, c);
    let c = [c[0] - k * r[0], c[1] - k * r[1], c[2] - k * r[2]];
    let n = dot(c, c).sqrt();
    let c = c.map(|x| x / n);
    let normal = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    Ok([r, c, normal])
}

/// Reads every image of a series, checking that they share size, orientation and pixel
/// spacing; returns them with the row direction, column direction and normal.
fn read_slices(series: &DicomSeries) -> Result<(Vec<Slice>, [[f64; 3]; 3])> {
    let first_path = series.files.first().cloned().unwrap_or_default();
    if series.files.is_empty() {
        return Err(IoError::format(&first_path, "series", &series.uid, "has no images"));
    }
    let per_file: Vec<Vec<Slice>> = series.files.par_iter().map(|p| read_file(p)).collect::<Result<_>>()?;
    let slices: Vec<Slice> = per_file.into_iter().flatten().collect();
    let s0 = &slices[0];
    let frame = frame_from_orientation(&s0.orientation, &s0.path)?;
    for s in &slices[1..] {
        if (s.rows, s.cols) != (s0.rows, s0.cols) {
            return Err(IoError::format(
                &s.path,
                "Rows × Columns (0028,0010/0011)",
                format!("{}×{}", s.rows, s.cols),
                format!("differs from {}×{} in {}", s0.rows, s0.cols, s0.path.display()),
            ));
        }
        if s.orientation.iter().zip(&s0.orientation).any(|(a, b)| (a - b).abs() > 1e-4) {
            return Err(IoError::format(
                &s.path,
                tag_name(tags::IMAGE_ORIENTATION_PATIENT),
                format!("{:?}", s.orientation),
                format!("differs from {:?} in {}", s0.orientation, s0.path.display()),
            ));
        }
        if s.spacing.iter().zip(&s0.spacing).any(|(a, b)| (a - b).abs() > 1e-4 * b.abs().max(1.0)) {
            return Err(IoError::format(
                &s.path,
                tag_name(tags::PIXEL_SPACING),
                format!("{:?}", s.spacing),
                format!("differs from {:?} in {}", s0.spacing, s0.path.display()),
            ));
        }
    }
    Ok((slices, frame))
}

/// Reads one series of single-frame images into a volume of its modality's values (HU for CT),
/// slices sorted along the normal of their orientation.
pub fn read_series_volume(series: &DicomSeries) -> Result<Volume> {
    let (slices, frame) = read_slices(series)?;
    stack(slices, frame)
}

/// Reads a dynamic series (the same slice positions repeated over time, as in CT perfusion)
/// into a [`VolumeSeries`]: the images at each position are ordered by acquisition time, frame t
/// is the t-th of every position, and its time is the mean of its images' times, from the first
/// frame's. A position with fewer time points than the others, or images without any
/// acquisition time, are errors.
pub fn read_dynamic_series(series: &DicomSeries) -> Result<VolumeSeries> {
    let (mut slices, frame) = read_slices(series)?;
    let normal = frame[2];
    slices
        .sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)).then_with(|| a.path.cmp(&b.path)));
    // Positions: runs of images closer than 1 µm along the normal.
    let mut groups: Vec<Vec<Slice>> = Vec::new();
    for s in slices {
        match groups.last_mut() {
            Some(g) if (dot(g[0].position, normal) - dot(s.position, normal)).abs() < 1e-3 => g.push(s),
            _ => groups.push(vec![s]),
        }
    }
    let n_t = groups.iter().map(Vec::len).max().unwrap_or(0);
    for g in &groups {
        if g.len() != n_t {
            return Err(IoError::format(
                &g[0].path,
                tag_name(tags::IMAGE_POSITION_PATIENT),
                format!("{:?}", g[0].position),
                format!("this position has {} time points, others have {n_t}: an image is missing", g.len()),
            ));
        }
    }
    for g in groups.iter_mut() {
        if let Some(s) = g.iter().find(|s| s.time_s.is_none()) {
            return Err(IoError::format(
                &s.path,
                tag_name(tags::ACQUISITION_TIME),
                "(absent)",
                "a dynamic series needs the acquisition time of every image",
            ));
        }
        g.sort_by(|a, b| a.time_s.unwrap_or(0.0).total_cmp(&b.time_s.unwrap_or(0.0)));
    }
    let mut frames = Vec::with_capacity(n_t);
    let mut times = Vec::with_capacity(n_t);
    let mut per_frame: Vec<Vec<Slice>> = (0..n_t).map(|_| Vec::with_capacity(groups.len())).collect();
    for g in groups {
        for (t, s) in g.into_iter().enumerate() {
            per_frame[t].push(s);
        }
    }
    for f in per_frame {
        times.push(f.iter().map(|s| s.time_s.unwrap_or(0.0)).sum::<f64>() / f.len() as f64);
        frames.push(stack(f, frame)?);
    }
    let t0 = times[0];
    let times: Vec<f64> = times.iter().map(|t| t - t0).collect();
    for (t, w) in times.windows(2).enumerate() {
        if w[1] - w[0] < 1e-3 {
            return Err(IoError::format(
                &series.files[0],
                tag_name(tags::ACQUISITION_TIME),
                format!("frame {} at {:.3} s, frame {} at {:.3} s", t, w[0], t + 1, w[1]),
                "frames must follow one another in time",
            ));
        }
    }
    VolumeSeries::from_frames(&frames, times).map_err(|e| IoError::core(&series.files[0], e))
}

/// Sorts single-time images along the normal and stacks them into a volume, after checking
/// for duplicates, tilt and uneven spacing.
fn stack(mut slices: Vec<Slice>, [row_dir, col_dir, normal]: [[f64; 3]; 3]) -> Result<Volume> {
    slices
        .sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)).then_with(|| a.path.cmp(&b.path)));
    let d: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let n = slices.len();
    for k in 1..n {
        if (d[k] - d[k - 1]).abs() < 1e-3 {
            return Err(IoError::format(
                &slices[k].path,
                tag_name(tags::IMAGE_POSITION_PATIENT),
                format!("{:?}", slices[k].position),
                format!(
                    "duplicate slice position, also in {} (a dynamic series repeats positions over time: read it as a time series)",
                    slices[k - 1].path.display()
                ),
            ));
        }
    }
    // Gantry tilt (or any shear): positions must move along the normal only.
    if n > 1 {
        let (a, b) = (&slices[0], &slices[n - 1]);
        let delta = [b.position[0] - a.position[0], b.position[1] - a.position[1], b.position[2] - a.position[2]];
        let along = dot(delta, normal);
        let perp = [delta[0] - along * normal[0], delta[1] - along * normal[1], delta[2] - along * normal[2]];
        let shift = dot(perp, perp).sqrt();
        if shift > 1e-3 * along.abs().max(1.0) {
            let angle = shift.atan2(along.abs()).to_degrees();
            return Err(IoError::format(
                &b.path,
                tag_name(tags::IMAGE_POSITION_PATIENT),
                format!("{:?}", b.position),
                format!(
                    "slices are sheared by {angle:.2}° against their normal (gantry tilt; {} = {}): \
                     a volume needs them stacked along the normal, resample first",
                    tag_name(tags::GANTRY_DETECTOR_TILT),
                    b.tilt_deg.map(|t| t.to_string()).unwrap_or_else(|| "absent".into())
                ),
            ));
        }
    }
    let spacing_z = if n > 1 {
        let mut gaps: Vec<f64> = d.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        for (k, g) in gaps.iter_mut().enumerate() {
            if (*g - median).abs() > (0.01 * median).max(0.01) {
                let ratio = *g / median;
                let why = if ratio > 1.5 && (ratio - ratio.round()).abs() < 0.1 {
                    format!(
                        "{} slice(s) missing between here and {} (gap {:.3} mm, spacing {:.3} mm)",
                        ratio.round() as usize - 1,
                        slices[k].path.display(),
                        g,
                        median
                    )
                } else {
                    format!(
                        "uneven slice spacing: {:.3} mm after {}, against {:.3} mm elsewhere",
                        g,
                        slices[k].path.display(),
                        median
                    )
                };
                return Err(IoError::format(
                    &slices[k + 1].path,
                    tag_name(tags::IMAGE_POSITION_PATIENT),
                    format!("{:?}", slices[k + 1].position),
                    why,
                ));
            }
        }
        (d[n - 1] - d[0]) / (n - 1) as f64
    } else {
        slices[0].thickness.filter(|t| *t > 0.0).unwrap_or(1.0)
    };
    let direction =
        [[row_dir[0], col_dir[0], normal[0]], [row_dir[1], col_dir[1], normal[1]], [row_dir[2], col_dir[2], normal[2]]];
    let (rows, cols) = (slices[0].rows, slices[0].cols);
    let geometry = VolumeGeometry::new(
        [cols, rows, n],
        [slices[0].spacing[1], slices[0].spacing[0], spacing_z],
        slices[0].position,
        direction,
    )
    .map_err(|e| IoError::core(&slices[0].path, e))?;
    let mut data = Vec::with_capacity(n * rows * cols);
    for s in &slices {
        data.extend_from_slice(&s.values);
    }
    let data = Array3::from_shape_vec((n, rows, cols), data)
        .map_err(|e| IoError::format(&slices[0].path, "pixel data", "", e.to_string()))?;
    let quantity = slices[0].quantity;
    if let Some(s) = slices.iter().find(|s| s.quantity != quantity) {
        return Err(IoError::format(
            &s.path,
            "image values",
            s.quantity.describe(),
            format!("differ in kind from {} in {}", quantity.describe(), slices[0].path.display()),
        ));
    }
    Volume::of(quantity, geometry, data).map_err(|e| IoError::core(&slices[0].path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_dates_and_times_parse() {
        assert_eq!(parse_tm("101530.25"), Some(10.0 * 3600.0 + 15.0 * 60.0 + 30.25));
        assert_eq!(parse_tm("10:15:30"), Some(36930.0));
        assert_eq!(parse_tm("1015"), Some(36900.0));
        assert_eq!(parse_tm("25"), None);
        assert_eq!(parse_tm("10153"), None);
        assert_eq!(parse_tm(""), None);
        assert_eq!(parse_da("19700101"), Some(0));
        assert_eq!(parse_da("20000301"), Some(11017));
        assert_eq!(parse_da("2026-11-22"), Some(20779));
        assert_eq!(parse_da("20261322"), None);
    }
}
