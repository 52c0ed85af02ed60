//! DICOM write → read round trips, errors on damaged series, and the real peers: dciodvfy
//! (dicom3tools), dcmtk and gdcm transcoders, pydicom. A peer that is not installed skips its
//! test with a message, unless GANTRY_REQUIRE_PEERS=1 (as in .ci/run), where it fails.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use gantry_core::{Quantity, Volume, VolumeGeometry};
use gantry_io::dicom::{
    read_series_volume, scan_folder, write_ct_series, write_rgb_secondary_capture, RgbImage, SeriesMeta,
};
use ndarray::Array3;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{peer, require_peers};

/// A Python with pydicom and numpy: $GANTRY_PYTHON, /opt/gantry-py/bin/python or python3.
fn pydicom_python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("GANTRY_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/opt/gantry-py/bin/python"), PathBuf::from("python3")])
        .collect();
    for c in candidates {
        let ok = Command::new(&c).args(["-c", "import pydicom, numpy"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    assert!(!require_peers(), "a Python with pydicom and numpy is required (GANTRY_REQUIRE_PEERS=1)");
    eprintln!("skipping: no Python with pydicom and numpy");
    None
}

/// An oblique, anisotropic, odd-sized volume with non-integer HU from −1024 to about 3000.
fn test_volume() -> Volume {
    let (a, b) = (0.3f64, -0.2f64);
    // Rotation about z by a, then about x by b: orthonormal columns.
    let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
    let rx = [[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
    let direction: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| rx[r][k] * rz[k][c]).sum()));
    let g = VolumeGeometry::new([37, 29, 9], [0.7, 0.9, 2.5], [-12.3, 40.1, -77.7], direction).unwrap();
    let data = Array3::from_shape_fn((9, 29, 37), |(k, j, i)| {
        let v = 1000.0 * ((i as f64 * 0.31).sin() + (j as f64 * 0.17).cos() + 0.3 * k as f64) + 0.37 * i as f64;
        v.clamp(-1024.0, 3000.0) as f32
    });
    Volume::of(Quantity::Hounsfield, g, data).unwrap()
}

fn meta(seed: u64) -> SeriesMeta {
    SeriesMeta { uid_seed: Some(seed), ..SeriesMeta::default() }
}

fn assert_same_volume(a: &Volume, b: &Volume, hu_tol: f32) {
    assert_eq!(a.geometry.dims, b.geometry.dims);
    for i in 0..3 {
        assert!(
            (a.geometry.spacing_mm[i] - b.geometry.spacing_mm[i]).abs() < 1e-6,
            "spacing {:?} {:?}",
            a.geometry,
            b.geometry
        );
        assert!(
            (a.geometry.origin_mm[i] - b.geometry.origin_mm[i]).abs() < 1e-6,
            "origin {:?} {:?}",
            a.geometry,
            b.geometry
        );
        for j in 0..3 {
            assert!((a.geometry.direction[i][j] - b.geometry.direction[i][j]).abs() < 1e-9, "direction");
        }
    }
    let max = a.data.iter().zip(b.data.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max <= hu_tol, "max |ΔHU| {max} > {hu_tol}");
}

#[test]
fn ct_series_round_trip_keeps_geometry_and_hu() {
    let dir = tempfile::tempdir().unwrap();
    let vol = test_volume();
    let paths = write_ct_series(dir.path(), &vol, &meta(1)).unwrap();
    assert_eq!(paths.len(), 9);
    std::fs::write(dir.path().join("README.txt"), "not DICOM").unwrap();
    let scan = scan_folder(dir.path()).unwrap();
    assert_eq!(scan.series.len(), 1);
    assert_eq!(scan.not_dicom.len(), 1);
    let s = &scan.series[0];
    assert_eq!(s.modality, "CT");
    assert_eq!(s.patient_study.patient_id, "GANTRY0001");
    let back = read_series_volume(s).unwrap();
    // Stored as whole HU: the round trip is within half a HU.
    assert_same_volume(&vol, &back, 0.5 + 1e-3);
    // A copy of an instance is left out, not read twice.
    std::fs::create_dir(dir.path().join("copy")).unwrap();
    std::fs::copy(&paths[3], dir.path().join("copy/again.dcm")).unwrap();
    let scan = scan_folder(dir.path()).unwrap();
    assert_eq!(scan.duplicate_instances.len(), 1);
    assert_same_volume(&vol, &read_series_volume(&scan.series[0]).unwrap(), 0.51);
}

/// Files that cannot be read (truncated, a stray "DICM" header over garbage, no Series Instance
/// UID) are left out of the scan one by one with their reason; the intact series beside them
/// still reads.
#[test]
fn unreadable_files_are_left_out_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let vol = test_volume();
    let paths = write_ct_series(&dir.path().join("good"), &vol, &meta(7)).unwrap();
    let other = write_ct_series(&dir.path().join("other"), &vol, &meta(8)).unwrap();
    let bytes = std::fs::read(&other[0]).unwrap();
    std::fs::write(dir.path().join("truncated.dcm"), &bytes[..300]).unwrap();
    let mut stray = vec![0u8; 128];
    stray.extend_from_slice(b"DICM");
    stray.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
    std::fs::write(dir.path().join("stray.dcm"), stray).unwrap();
    remove(&other[1], tags::SERIES_INSTANCE_UID);
    let scan = scan_folder(dir.path()).unwrap();
    let reasons: Vec<String> = scan.left_out_lines();
    assert_eq!(scan.unreadable.len(), 3, "{reasons:#?}");
    let why = |name: &str| {
        scan.unreadable.iter().find(|(p, _)| p.ends_with(name)).map(|(_, w)| w.clone()).unwrap_or_default()
    };
    assert!(why("truncated.dcm").contains("truncated"), "{reasons:#?}");
    assert!(why("stray.dcm").contains("not one the standard defines"), "{reasons:#?}");
    assert!(why(other[1].file_name().unwrap().to_str().unwrap()).contains("SeriesInstanceUID"), "{reasons:#?}");
    assert!(reasons.iter().all(|l| l.starts_with("left out ")), "{reasons:#?}");
    // Both series are listed (the damaged one without its two bad files); the intact one reads.
    assert_eq!(scan.series.len(), 2);
    let good = scan.series.iter().find(|s| s.files.len() == paths.len()).unwrap();
    assert_same_volume(&vol, &read_series_volume(good).unwrap(), 0.51);
}

/// Files without preamble and meta group (bare data sets) are read when they parse.
#[test]
fn bare_data_sets_without_a_meta_group_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let vol = test_volume();
    let paths = write_ct_series(&dir.path().join("src"), &vol, &meta(9)).unwrap();
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    for p in &paths {
        let bytes = std::fs::read(p).unwrap();
        // (0002,0000) UL, its value the length of the rest of the meta group.
        assert_eq!(&bytes[132..138], &[0x02, 0x00, 0x00, 0x00, b'U', b'L']);
        let group = u32::from_le_bytes([bytes[140], bytes[141], bytes[142], bytes[143]]) as usize;
        std::fs::write(bare.join(p.file_name().unwrap()), &bytes[144 + group..]).unwrap();
    }
    let scan = scan_folder(&bare).unwrap();
    assert!(scan.not_dicom.is_empty() && scan.unreadable.is_empty(), "{:?}", scan.left_out_lines());
    assert_same_volume(&vol, &read_series_volume(&scan.series[0]).unwrap(), 0.51);
}

#[test]
fn derived_series_copies_patient_and_study() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = meta(2);
    m.patient_study.patient_name = "Müller^Zoë".into(); // needs UTF-8
    m.patient_study.study_description = "Stroke protocol".into();
    write_ct_series(&dir.path().join("a"), &test_volume(), &m).unwrap();
    let src = scan_folder(&dir.path().join("a")).unwrap().series.remove(0);
    let derived = SeriesMeta { uid_seed: Some(3), ..SeriesMeta::derived_from(&src, "CBF map") };
    write_ct_series(&dir.path().join("b"), &test_volume(), &derived).unwrap();
    let scan = scan_folder(dir.path()).unwrap();
    assert_eq!(scan.series.len(), 2);
    let b = scan.series.iter().find(|s| s.uid != src.uid).unwrap();
    assert_eq!(b.patient_study, src.patient_study);
    assert_eq!(b.patient_study.patient_name, "Müller^Zoë");
    assert_eq!(b.frame_of_reference_uid, src.frame_of_reference_uid);
    assert_eq!(b.description, "CBF map");
}

/// Removes one element from a written file, in place.
fn remove(path: &Path, tag: dicom_core::Tag) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.remove_element(tag);
    obj.write_to_file(path).unwrap();
}

/// Rewrites one element of a written file in place.
fn edit(path: &Path, elem: DataElement<dicom_object::InMemDicomObject>) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(elem);
    obj.write_to_file(path).unwrap();
}

/// A DS element with these values.
fn ds<S: ToString>(tag: dicom_core::Tag, values: &[S]) -> DataElement<dicom_object::InMemDicomObject> {
    DataElement::new(tag, VR::DS, PrimitiveValue::Strs(values.iter().map(|v| v.to_string()).collect()))
}

fn ipp(p: [f64; 3]) -> DataElement<dicom_object::InMemDicomObject> {
    ds(tags::IMAGE_POSITION_PATIENT, &p.map(|x| format!("{x:.4}")))
}

fn read_err(dir: &Path) -> String {
    let scan = match scan_folder(dir) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    read_series_volume(&scan.series[0]).map(|_| "no error".to_string()).unwrap_or_else(|e| e.to_string())
}

#[test]
fn damaged_series_are_errors_that_name_file_attribute_and_value() {
    let vol = test_volume();
    // A missing slice.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(4)).unwrap();
    std::fs::remove_file(&paths[4]).unwrap();
    let e = read_err(dir.path());
    assert!(e.contains("1 slice(s) missing") && e.contains("ImagePositionPatient") && e.contains("CT00006.dcm"), "{e}");

    // Uneven spacing: one slice moved 0.7 mm along the normal.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(5)).unwrap();
    let n = [vol.geometry.direction[0][2], vol.geometry.direction[1][2], vol.geometry.direction[2][2]];
    let p = vol.geometry.position_mm(0.0, 0.0, 3.0);
    edit(&paths[3], ipp(std::array::from_fn(|i| p[i] + 0.7 * n[i])));
    let e = read_err(dir.path());
    assert!(e.contains("uneven slice spacing"), "{e}");

    // Gantry tilt: positions sheared along the column direction, 0.5 mm per slice.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(6)).unwrap();
    let c = [vol.geometry.direction[0][1], vol.geometry.direction[1][1], vol.geometry.direction[2][1]];
    for (k, path) in paths.iter().enumerate() {
        let p = vol.geometry.position_mm(0.0, 0.0, k as f64);
        edit(path, ipp(std::array::from_fn(|i| p[i] + 0.5 * k as f64 * c[i])));
    }
    let e = read_err(dir.path());
    assert!(e.contains("sheared by 11.3") && e.contains("GantryDetectorTilt"), "{e}");

    // The same positions twice under one series UID (two writes of one series).
    let dir = tempfile::tempdir().unwrap();
    let m = SeriesMeta { series_instance_uid: "1.2.3.4".into(), ..meta(7) };
    write_ct_series(&dir.path().join("a"), &vol, &m).unwrap();
    write_ct_series(&dir.path().join("b"), &vol, &SeriesMeta { uid_seed: Some(8), ..m.clone() }).unwrap();
    let e = read_err(dir.path());
    assert!(e.contains("duplicate slice position"), "{e}");

    // Mixed sizes in one series.
    let dir = tempfile::tempdir().unwrap();
    write_ct_series(&dir.path().join("a"), &vol, &m).unwrap();
    let g = VolumeGeometry { dims: [36, 29, 1], ..vol.geometry.clone() };
    let g = VolumeGeometry { origin_mm: vol.geometry.position_mm(0.0, 0.0, 9.0), ..g };
    write_ct_series(
        &dir.path().join("b"),
        &Volume::zeros(g).with_quantity(Quantity::Hounsfield),
        &SeriesMeta { uid_seed: Some(9), ..m.clone() },
    )
    .unwrap();
    let e = read_err(dir.path());
    assert!(e.contains("Rows × Columns") && e.contains("29×36"), "{e}");

    // Orientation differs.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(10)).unwrap();
    edit(&paths[2], ds(tags::IMAGE_ORIENTATION_PATIENT, &["1", "0", "0", "0", "1", "0"]));
    let e = read_err(dir.path());
    assert!(e.contains("ImageOrientationPatient") && e.contains("CT00003.dcm"), "{e}");

    // Missing position; not-a-number spacing.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(11)).unwrap();
    remove(&paths[1], tags::IMAGE_POSITION_PATIENT);
    let e = read_err(dir.path());
    assert!(e.contains("ImagePositionPatient (0020,0032) = (absent)") && e.contains("CT00002.dcm"), "{e}");
    std::fs::remove_file(&paths[1]).unwrap();
    edit(&paths[2], ds(tags::PIXEL_SPACING, &["0.9", "abc"]));
    let e = read_err(dir.path());
    assert!(e.contains("PixelSpacing") && e.contains("abc"), "{e}");

    // Missing pixel data.
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &vol, &meta(12)).unwrap();
    remove(&paths[0], tags::PIXEL_DATA);
    let e = read_err(dir.path());
    assert!(e.contains("PixelData (7FE0,0010) = (absent)"), "{e}");

    // A truncated file: cut inside the pixel data (an error naming it), and cut inside the
    // header (the scan leaves it out, naming it, and the series then misses that slice).
    for cut in [2000usize, 600] {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_ct_series(dir.path(), &vol, &meta(13)).unwrap();
        let bytes = std::fs::read(&paths[5]).unwrap();
        std::fs::write(&paths[5], &bytes[..bytes.len().min(cut)]).unwrap();
        let e = read_err(dir.path());
        if cut == 600 {
            let scan = scan_folder(dir.path()).unwrap();
            assert!(scan.unreadable.len() == 1 && scan.unreadable[0].0.ends_with("CT00006.dcm"), "{scan:?}");
            assert!(e.contains("1 slice(s) missing"), "cut at {cut}: {e}");
        } else {
            assert!(e.contains("CT00006.dcm"), "cut at {cut}: {e}");
        }
    }
}

#[test]
fn bad_volumes_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut vol = test_volume();
    vol.data[[1, 2, 3]] = f32::NAN;
    let e = write_ct_series(dir.path(), &vol, &meta(1)).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    let img = RgbImage { width: 4, height: 3, rgb: vec![0; 35] };
    let e = write_rgb_secondary_capture(&dir.path().join("sc.dcm"), &img, &meta(1), 1).unwrap_err().to_string();
    assert!(e.contains("RGB samples = 35"), "{e}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing half-written");
}

fn cbf_meta(seed: u64) -> SeriesMeta {
    SeriesMeta {
        derivation_description: Some("CBF map, Gantry test".into()),
        value_units: Some(gantry_io::dicom::ValueUnits {
            rescale_type: "US".into(),
            ucum_code: "mL/(100.g.min)".into(),
            code_meaning: "mL/100 g/min".into(),
            label: "CBF".into(),
            resolution: 0.01,
        }),
        ..meta(seed)
    }
}

#[test]
fn maps_keep_their_real_world_values() {
    let dir = tempfile::tempdir().unwrap();
    let map = test_volume().map(|v| (v + 1000.0) / 40.0).with_quantity(Quantity::BloodFlow);
    write_ct_series(dir.path(), &map, &cbf_meta(25)).unwrap();
    let scan = scan_folder(dir.path()).unwrap();
    let back = read_series_volume(&scan.series[0]).unwrap();
    let worst = back.data.iter().zip(map.data.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 0.005 + 1e-4, "map values back within half a step of 0.01: {worst}");
    let obj = dicom_object::open_file(&scan.series[0].files[0]).unwrap();
    assert_eq!(obj.element(dicom_dictionary_std::tags::RESCALE_TYPE).unwrap().to_str().unwrap().trim(), "US");
    let seq = obj.element(dicom_dictionary_std::tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE).unwrap();
    let item = &seq.items().unwrap()[0];
    let unit = &item.element(dicom_dictionary_std::tags::MEASUREMENT_UNITS_CODE_SEQUENCE).unwrap().items().unwrap()[0];
    assert_eq!(
        unit.element(dicom_dictionary_std::tags::CODE_VALUE).unwrap().to_str().unwrap().trim(),
        "mL/(100.g.min)"
    );
}

#[test]
fn written_objects_pass_dciodvfy() {
    let Some(dciodvfy) = peer("dciodvfy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_series(dir.path(), &test_volume(), &meta(20)).unwrap();
    let derived = SeriesMeta { derivation_description: Some("Gantry test".into()), ..meta(21) };
    let more = write_ct_series(&dir.path().join("d"), &test_volume(), &derived).unwrap();
    let img = RgbImage { width: 33, height: 17, rgb: (0..33 * 17 * 3).map(|i| (i % 251) as u8).collect() };
    let sc = dir.path().join("sc.dcm");
    write_rgb_secondary_capture(&sc, &img, &meta(22), 1).unwrap();
    let frames = [test_volume(), test_volume()];
    let dynamic = gantry_core::VolumeSeries::from_frames(&frames, vec![0.0, 1.5]).unwrap();
    let dyn_paths = gantry_io::dicom::write_ct_dynamic_series(&dir.path().join("t"), &dynamic, &meta(23)).unwrap();
    let map = test_volume().map(|v| (v + 1000.0) / 40.0).with_quantity(Quantity::BloodFlow);
    let map_paths = write_ct_series(&dir.path().join("m"), &map, &cbf_meta(24)).unwrap();
    // A map (not HU) and a derived series are DERIVED\SECONDARY; the reconstruction ORIGINAL.
    let image_type =
        |p: &Path| dicom_object::open_file(p).unwrap().element(tags::IMAGE_TYPE).unwrap().to_str().unwrap().to_string();
    assert_eq!(image_type(&paths[0]), "ORIGINAL\\PRIMARY\\AXIAL");
    assert_eq!(image_type(&more[0]), "DERIVED\\SECONDARY\\AXIAL");
    assert_eq!(image_type(&map_paths[0]), "DERIVED\\SECONDARY\\AXIAL");
    for p in [&paths[0], &paths[8], &more[0], &sc, &dyn_paths[12], &map_paths[3]] {
        let out = Command::new(&dciodvfy).arg(p).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        // dciodvfy's CT list of Rescale Type terms holds only HU; PS3.3 C.11.1.1.2 defines US
        // (unspecified) for values that are not HU, which the Real World Value Mapping then
        // names. That one warning is expected on maps, nothing else.
        let expected = |l: &str| p == &map_paths[3] && l.contains("defined term <US>") && l.contains("Rescale Type");
        let problems: Vec<&str> =
            text.lines().filter(|l| (l.starts_with("Error") || l.starts_with("Warning")) && !expected(l)).collect();
        assert!(problems.is_empty(), "dciodvfy on {}:\n{text}", p.display());
    }
}

#[test]
fn pydicom_reads_the_same_hu() {
    let Some(python) = pydicom_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let vol = test_volume();
    write_ct_series(dir.path(), &vol, &meta(30)).unwrap();
    let script = r#"
import sys, glob, numpy as np, pydicom
files = sorted(glob.glob(sys.argv[1] + "/CT*.dcm"))
ds = [pydicom.dcmread(f) for f in files]
ds.sort(key=lambda d: int(d.InstanceNumber))
hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
print(hu.shape[0], hu.shape[1], hu.shape[2], repr(float(hu.sum())), *[repr(float(v)) for v in ds[0].ImagePositionPatient])
"#;
    let out = Command::new(&python).args(["-c", script]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(&f[..3], &[9.0, 29.0, 37.0]);
    let want: f64 = vol.data.iter().map(|&v| (v as f64).round()).sum();
    assert_eq!(f[3], want, "sum of HU as pydicom reads them");
    let p = vol.geometry.origin_mm;
    for i in 0..3 {
        assert!((f[4 + i] - p[i]).abs() < 1e-6);
    }
}

/// Transcodes `src` with a peer command into `dst` (a file path).
fn transcode(tool: &Path, args: &[&str], src: &Path, dst: &Path) {
    let out = Command::new(tool).args(args).arg(src).arg(dst).output().unwrap();
    assert!(out.status.success(), "{} {args:?}: {}", tool.display(), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_transfer_syntax_decodes_to_the_same_pixels() {
    let (Some(dcmconv), Some(dcmcjpeg), Some(dcmcrle), Some(dcmcjpls), Some(gdcmconv)) =
        (peer("dcmconv"), peer("dcmcjpeg"), peer("dcmcrle"), peer("dcmcjpls"), peer("gdcmconv"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vol = test_volume();
    let src = dir.path().join("src");
    let paths = write_ct_series(&src, &vol, &meta(40)).unwrap();
    let reference = read_series_volume(&scan_folder(&src).unwrap().series[0]).unwrap();
    type Case<'a> = (&'a str, &'a Path, &'a [&'a str], &'a str);
    let cases: [Case; 8] = [
        ("implicit VR little endian", &dcmconv, &["+ti"], "1.2.840.10008.1.2"),
        ("explicit VR big endian", &dcmconv, &["+tb"], "1.2.840.10008.1.2.2"),
        ("deflated explicit VR little endian", &dcmconv, &["+td"], "1.2.840.10008.1.2.1.99"),
        ("RLE lossless", &dcmcrle, &[], "1.2.840.10008.1.2.5"),
        ("JPEG lossless process 14", &dcmcjpeg, &["+el"], "1.2.840.10008.1.2.4.57"),
        ("JPEG lossless SV1", &dcmcjpeg, &["+e1"], "1.2.840.10008.1.2.4.70"),
        ("JPEG-LS lossless", &dcmcjpls, &["+el"], "1.2.840.10008.1.2.4.80"),
        ("JPEG 2000 lossless", &gdcmconv, &["--j2k"], "1.2.840.10008.1.2.4.90"),
    ];
    for (name, tool, args, ts) in cases {
        let out_dir = dir.path().join(name.replace(' ', "_"));
        std::fs::create_dir(&out_dir).unwrap();
        for p in &paths {
            transcode(tool, args, p, &out_dir.join(p.file_name().unwrap()));
        }
        let scan = scan_folder(&out_dir).unwrap();
        let got_ts = dicom_object::open_file(&scan.series[0].files[0])
            .unwrap()
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        assert_eq!(got_ts, ts, "{name}: transfer syntax written by the peer");
        let read = read_series_volume(&scan.series[0]);
        if ts == "1.2.840.10008.1.2.4.80" && !cfg!(feature = "jpeg-ls") {
            // Built without CharLS: a clear error that names the file, never wrong pixels.
            let e = read.unwrap_err().to_string();
            assert!(e.contains("PixelData") && e.contains(".dcm"), "{name}: {e}");
            continue;
        }
        let vol = read.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_volume(&reference, &vol, 0.0);
    }
}

#[test]
fn dynamic_series_round_trip_with_times() {
    use gantry_core::VolumeSeries;
    use gantry_io::dicom::{read_dynamic_series, write_ct_dynamic_series};
    let vol = test_volume();
    let times = vec![0.0, 1.0, 2.5, 4.0, 6.0];
    let frames: Vec<Volume> = (0..times.len()).map(|t| vol.map(|v| v + 10.0 * t as f32)).collect();
    let series = VolumeSeries::from_frames(&frames, times.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = write_ct_dynamic_series(dir.path(), &series, &meta(50)).unwrap();
    assert_eq!(paths.len(), 5 * 9);
    let scan = scan_folder(dir.path()).unwrap();
    let back = read_dynamic_series(&scan.series[0]).unwrap();
    assert_eq!(back.n_frames(), 5);
    for (a, b) in back.times_s.iter().zip(&times) {
        assert!((a - b).abs() < 2e-6, "times {:?} vs {times:?}", back.times_s);
    }
    for (t, f) in frames.iter().enumerate() {
        assert_same_volume(f, &back.frame(t), 0.5 + 1e-3);
    }
    // As a single volume it is an error that says why.
    let e = read_series_volume(&scan.series[0]).unwrap_err().to_string();
    assert!(e.contains("duplicate slice position") && e.contains("dynamic"), "{e}");
    // One image missing from one frame.
    std::fs::remove_file(&paths[9 * 2 + 4]).unwrap();
    let scan = scan_folder(dir.path()).unwrap();
    let e = read_dynamic_series(&scan.series[0]).unwrap_err().to_string();
    assert!(e.contains("has 4 time points, others have 5"), "{e}");
}

/// pydicom (an independent writer) makes a small PET series: 3 slices of 4 × 4 with a
/// different rescale slope each, FDG injected at 23:30 the day before a 00:30 scan.
const MAKE_PET: &str = r#"
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, units, start_dt = sys.argv[1], sys.argv[2], sys.argv[3]
series = generate_uid()
for k, slope in enumerate([2.5, 3.0, 4.0]):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "PT"; ds.SeriesInstanceUID = series; ds.StudyInstanceUID = "1.2.3"
    ds.PatientName = "Pet^Test"; ds.PatientID = "PT1"; ds.PatientWeight = "75"; ds.PatientSex = "F"
    ds.SeriesDate = "20261122"; ds.SeriesTime = "003000"; ds.AcquisitionDate = "20261122"; ds.AcquisitionTime = "003100"
    ds.Units = units; ds.DecayCorrection = "START"; ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
    rp = Dataset(); rp.Radiopharmaceutical = "Fluorodeoxyglucose"; rp.RadionuclideTotalDose = "370000000"
    rp.RadionuclideHalfLife = "6586.2"
    if start_dt: rp.RadiopharmaceuticalStartDateTime = start_dt
    else: rp.RadiopharmaceuticalStartTime = "233000"
    ds.RadiopharmaceuticalInformationSequence = [rp]
    ds.ImagePositionPatient = [0, 0, 3.27 * k]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; ds.PixelSpacing = [4, 4]
    ds.Rows = 4; ds.Columns = 4; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 0
    ds.RescaleSlope = str(slope); ds.RescaleIntercept = "0"
    ds.PixelData = (np.arange(16, dtype=np.uint16) * (k + 1)).tobytes()
    ds.save_as(f"{out}/pt{k}.dcm", enforce_file_format=True)
"#;

#[test]
fn pet_series_keep_what_suv_needs() {
    let Some(python) = pydicom_python() else { return };
    use gantry_io::dicom::read_pet_suv_info;
    let make = |units: &str, start_dt: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out =
            Command::new(&python).args(["-c", MAKE_PET]).arg(dir.path()).args([units, start_dt]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    };
    // Closed form: 1 h between injection and scan start (across midnight).
    let want = 75_000.0 / (370e6 * 0.5f64.powf(3600.0 / 6586.2));
    for start_dt in ["20261121233000", ""] {
        let dir = make("BQML", start_dt);
        let s = scan_folder(dir.path()).unwrap().series.remove(0);
        let info = read_pet_suv_info(&s).unwrap();
        assert_eq!(info.radiopharmaceutical, "Fluorodeoxyglucose");
        let f = info.suv_bw_factor().unwrap();
        assert!((f / want - 1.0).abs() < 1e-9, "SUVbw factor {f} vs {want} (start {start_dt:?})");
        // Activity concentration with each slice's own rescale slope.
        let vol = read_series_volume(&s).unwrap();
        for (k, slope) in [2.5f32, 3.0, 4.0].iter().enumerate() {
            assert_eq!(vol.data[[k, 1, 2]], 6.0 * (k + 1) as f32 * slope);
        }
        assert!((vol.geometry.spacing_mm[2] - 3.27).abs() < 1e-9);
    }
    let dir = make("CNTS", "");
    let s = scan_folder(dir.path()).unwrap().series.remove(0);
    let e = read_pet_suv_info(&s).unwrap().suv_bw_factor().unwrap_err().to_string();
    assert!(e.contains("Units (0054,1001) = CNTS"), "{e}");
}

/// pydicom writes a 12-lead ECG: 500 Hz, 2 s, lead c a sine of (c + 1) Hz with amplitude
/// 400 + 50 c counts, sensitivity 2.5 µV (lead I with a baseline of 10 counts and a 1.02 correction).
const MAKE_ECG: &str = r#"
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
names = ["Lead I", "Lead II", "Lead III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset(); ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.Modality = "ECG"; ds.SeriesInstanceUID = generate_uid(); ds.StudyInstanceUID = generate_uid()
fs, n = 500.0, 1000
t = np.arange(n) / fs
raw = np.stack([np.round((400 + 50 * c) * np.sin(2 * np.pi * (c + 1) * t)) for c in range(12)], axis=1).astype(np.int16)
g = Dataset()
g.MultiplexGroupTimeOffset = "0"; g.WaveformOriginality = "ORIGINAL"
g.NumberOfWaveformChannels = 12; g.NumberOfWaveformSamples = n; g.SamplingFrequency = "500"
chans = []
for c, name in enumerate(names):
    ch = Dataset()
    src = Dataset(); src.CodeValue = str(c); src.CodingSchemeDesignator = "MDC"; src.CodeMeaning = name
    ch.ChannelSourceSequence = [src]
    ch.ChannelSensitivity = "2.5"
    u = Dataset(); u.CodeValue = "uV"; u.CodingSchemeDesignator = "UCUM"; u.CodeMeaning = "microvolt"
    ch.ChannelSensitivityUnitsSequence = [u]
    ch.ChannelSensitivityCorrectionFactor = "1.02" if c == 0 else "1"
    ch.ChannelBaseline = "10" if c == 0 else "0"
    ch.WaveformBitsStored = 16
    chans.append(ch)
g.ChannelDefinitionSequence = chans
g.WaveformBitsAllocated = 16; g.WaveformSampleInterpretation = "SS"
g.WaveformData = raw.tobytes()
ds.WaveformSequence = [g]
ds.save_as(sys.argv[1], enforce_file_format=True)
"#;

#[test]
fn twelve_lead_ecg_reads_into_millivolts() {
    let Some(python) = pydicom_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ecg.dcm");
    let out = Command::new(&python).args(["-c", MAKE_ECG]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ecg = gantry_io::dicom::read_ecg(&path).unwrap();
    assert_eq!(ecg.sampling_hz, 500.0);
    assert_eq!(ecg.leads.len(), 12);
    assert!((ecg.duration_s() - 2.0).abs() < 1e-12);
    assert_eq!(ecg.leads[6].name, "V1");
    for (c, lead) in ecg.leads.iter().enumerate() {
        for (s, &v) in lead.samples_mv.iter().enumerate().step_by(37) {
            let t = s as f64 / 500.0;
            let raw = ((400.0 + 50.0 * c as f64) * (2.0 * std::f64::consts::PI * (c + 1) as f64 * t).sin()).round();
            let want = if c == 0 { (raw + 10.0) * 2.5 * 1.02e-3 } else { raw * 2.5e-3 };
            assert!((v as f64 - want).abs() < 1e-6, "lead {} sample {s}: {v} vs {want}", lead.name);
        }
    }
    assert_eq!(ecg.lead("ii").unwrap().name, "Lead II");
    // Truncated waveform data: an error naming the attribute.
    let mut obj = dicom_object::open_file(&path).unwrap();
    let mut seq = obj.element(tags::WAVEFORM_SEQUENCE).unwrap().items().unwrap().to_vec();
    seq[0].put(DataElement::new(tags::WAVEFORM_DATA, VR::OW, PrimitiveValue::from(vec![0u8; 100])));
    obj.put(DataElement::new(tags::WAVEFORM_SEQUENCE, VR::SQ, dicom_core::value::DataSetSequence::from(seq)));
    obj.write_to_file(&path).unwrap();
    let e = gantry_io::dicom::read_ecg(&path).unwrap_err().to_string();
    assert!(e.contains("WaveformData") && e.contains("truncated"), "{e}");
}

/// pydicom turns a single-frame CT series into one Enhanced CT object: shared pixel measures,
/// orientation and rescale; per-frame positions and acquisition times; frames in reverse order.
/// With "dynamic", every slice appears twice, the second time 2 s later and 5 HU brighter.
const MAKE_ENHANCED: &str = r#"
import sys, glob, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
src, out, dynamic = sys.argv[1], sys.argv[2], sys.argv[3] == "dynamic"
ds_in = sorted([pydicom.dcmread(f) for f in glob.glob(src + "/*.dcm")], key=lambda d: int(d.InstanceNumber))[::-1]
frames = [(d, 0.0, 0) for d in ds_in] + ([(d, 2.0, 5) for d in ds_in] if dynamic else [])
first = ds_in[0]
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset(); ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
for k in ["PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "FrameOfReferenceUID"]:
    setattr(ds, k, getattr(first, k))
ds.NumberOfFrames = len(frames); ds.Rows = first.Rows; ds.Columns = first.Columns
ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 1
shared = Dataset()
pm = Dataset(); pm.PixelSpacing = first.PixelSpacing; pm.SliceThickness = first.SliceThickness
po = Dataset(); po.ImageOrientationPatient = first.ImageOrientationPatient
pv = Dataset(); pv.RescaleIntercept = first.RescaleIntercept; pv.RescaleSlope = first.RescaleSlope; pv.RescaleType = "HU"
shared.PixelMeasuresSequence = [pm]; shared.PlaneOrientationSequence = [po]; shared.PixelValueTransformationSequence = [pv]
ds.SharedFunctionalGroupsSequence = [shared]
per = []
for d, dt, add in frames:
    item = Dataset()
    pp = Dataset(); pp.ImagePositionPatient = d.ImagePositionPatient; item.PlanePositionSequence = [pp]
    fc = Dataset(); fc.FrameAcquisitionDateTime = "2026112210%02d%02d.000000" % (15 + int(dt) // 60, int(dt) % 60); item.FrameContentSequence = [fc]
    per.append(item)
ds.PerFrameFunctionalGroupsSequence = per
ds.PixelData = b"".join((d.pixel_array.astype(np.int16) + add).tobytes() for d, _, add in frames)
ds.save_as(out, enforce_file_format=True)
"#;

#[test]
fn enhanced_multi_frame_ct_reads_like_single_frames() {
    let Some(python) = pydicom_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_ct_series(&src, &test_volume(), &meta(60)).unwrap();
    let single = read_series_volume(&scan_folder(&src).unwrap().series[0]).unwrap();
    for mode in ["static", "dynamic"] {
        let out_dir = dir.path().join(mode);
        std::fs::create_dir(&out_dir).unwrap();
        let out = Command::new(&python)
            .args(["-c", MAKE_ENHANCED])
            .arg(&src)
            .arg(out_dir.join("enhanced.dcm"))
            .arg(mode)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s = scan_folder(&out_dir).unwrap().series.remove(0);
        if mode == "static" {
            assert_same_volume(&single, &read_series_volume(&s).unwrap(), 0.0);
        } else {
            let d = gantry_io::dicom::read_dynamic_series(&s).unwrap();
            assert_eq!(d.n_frames(), 2);
            assert!(d.times_s[0] == 0.0 && (d.times_s[1] - 2.0).abs() < 1e-6, "{:?}", d.times_s);
            assert_same_volume(&single, &d.frame(0), 0.0);
            assert_same_volume(&single.map(|v| v + 5.0), &d.frame(1), 0.0);
            let e = read_series_volume(&s).unwrap_err().to_string();
            assert!(e.contains("enhanced.dcm#frame"), "{e}");
        }
    }
}

/// pydicom writes an 8-bit and a 12-bit series (3 slices of 37 × 29, not whole 8 × 8 blocks, a
/// smooth pattern).
const MAKE_8_12_BIT: &str = r#"
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, bits = sys.argv[1], int(sys.argv[2])
series = generate_uid()
for k in range(3):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"; ds.SeriesInstanceUID = series; ds.StudyInstanceUID = "1.2.3"
    ds.ImagePositionPatient = [0, 0, 2.0 * k]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; ds.PixelSpacing = [1, 1]
    ds.Rows = 29; ds.Columns = 37; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    y, x = np.mgrid[0:29, 0:37]
    img = (0.5 + 0.4 * np.sin(x / 5.0 + k) * np.cos(y / 7.0)) * (2**bits - 1)
    if bits == 8:
        ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0
        ds.PixelData = img.astype(np.uint8).tobytes()
    else:
        ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11; ds.PixelRepresentation = 0
        ds.PixelData = img.astype(np.uint16).tobytes()
    ds.RescaleSlope = "1"; ds.RescaleIntercept = "-1024"
    ds.save_as(f"{out}/s{k}.dcm", enforce_file_format=True)
"#;

#[test]
fn lossy_jpeg_baseline_and_12_bit_extended_decode() {
    let (Some(python), Some(dcmcjpeg), Some(dcmdjpeg)) = (pydicom_python(), peer("dcmcjpeg"), peer("dcmdjpeg")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // (bits, encoder arguments): baseline 8-bit; extended 12-bit in one fragment and in 1 kB
    // fragments.
    for (bits, flags) in [(8, vec!["+eb"]), (12, vec!["+ee"]), (12, vec!["+ee", "+fs", "1"])] {
        let src = dir.path().join(format!("src{bits}"));
        let dst = dir.path().join(format!("jpeg{bits}-{}", flags.len()));
        let back = dir.path().join(format!("back{bits}-{}", flags.len()));
        for d in [&src, &dst, &back] {
            std::fs::create_dir_all(d).unwrap();
        }
        let out = Command::new(&python).args(["-c", MAKE_8_12_BIT]).arg(&src).arg(bits.to_string()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for k in 0..3 {
            let name = format!("s{k}.dcm");
            transcode(&dcmcjpeg, &flags, &src.join(&name), &dst.join(&name));
            transcode(&dcmdjpeg, &[], &dst.join(&name), &back.join(&name));
        }
        let original = read_series_volume(&scan_folder(&src).unwrap().series[0]).unwrap();
        let got = read_series_volume(&scan_folder(&dst).unwrap().series[0]).unwrap();
        // Lossy (quality 90): close to the original, not equal.
        let n = original.data.len() as f32;
        let mean = original.data.iter().zip(got.data.iter()).map(|(a, b)| (a - b).abs()).sum::<f32>() / n;
        let tolerance = if bits == 8 { 1.5 } else { 4.0 };
        assert!(mean < tolerance, "JPEG {flags:?} mean |Δ| {mean} against the original");
        assert!(mean > 0.0, "JPEG {flags:?} is lossy: equal to the original means it was not what was read");
        if bits == 12 {
            // 12-bit: the same pixels as dcmtk's own decoder (IJG integer IDCT), to the bit.
            let dcmtk = read_series_volume(&scan_folder(&back).unwrap().series[0]).unwrap();
            assert_same_volume(&dcmtk, &got, 0.0);
        }
    }
}

/// A multi-frame (Enhanced CT) 12-bit JPEG extended file, with the frames told apart by one
/// fragment each or by the Basic Offset Table, decodes to dcmtk's pixels; a truncated one is an
/// error naming the frame.
#[test]
fn multi_frame_12_bit_jpeg_extended_decodes() {
    let (Some(python), Some(dcmcjpeg), Some(dcmdjpeg)) = (pydicom_python(), peer("dcmcjpeg"), peer("dcmdjpeg")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    // Frames of 96 × 80 with fine texture, so each compresses to several kB and 1 kB fragments
    // split it (the Basic Offset Table then tells the frames apart).
    let g = VolumeGeometry::centered([96, 80, 4], [0.8, 0.8, 3.0], [0.0; 3]).unwrap();
    let textured = Array3::from_shape_fn((4, 80, 96), |(k, j, i)| {
        let h = ((i * 7919 + j * 104_729 + k * 1_299_709) % 1000) as f32;
        (600.0 * (i as f32 * 0.9).sin() * (j as f32 * 1.3).cos() + 0.4 * h - 200.0).round()
    });
    write_ct_series(&src, &Volume::of(Quantity::Hounsfield, g, textured).unwrap(), &meta(61)).unwrap();
    let enhanced = dir.path().join("enhanced.dcm");
    let out =
        Command::new(&python).args(["-c", MAKE_ENHANCED]).arg(&src).arg(&enhanced).arg("static").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, flags) in [("per-frame", vec!["+ee", "-ot"]), ("offset-table", vec!["+ee", "+fs", "1", "+ot"])] {
        let (jpeg, back) = (dir.path().join(name), dir.path().join(format!("{name}-back")));
        std::fs::create_dir_all(&jpeg).unwrap();
        std::fs::create_dir_all(&back).unwrap();
        transcode(&dcmcjpeg, &flags, &enhanced, &jpeg.join("e.dcm"));
        transcode(&dcmdjpeg, &[], &jpeg.join("e.dcm"), &back.join("e.dcm"));
        let got = read_series_volume(&scan_folder(&jpeg).unwrap().series[0]).unwrap();
        let dcmtk = read_series_volume(&scan_folder(&back).unwrap().series[0]).unwrap();
        assert_same_volume(&dcmtk, &got, 0.0);
    }
    // Cut the file inside the last frame's entropy-coded data.
    let bytes = std::fs::read(dir.path().join("per-frame/e.dcm")).unwrap();
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(cut.join("e.dcm"), &bytes[..bytes.len() - 300]).unwrap();
    match scan_folder(&cut).map(|s| read_series_volume(&s.series[0])) {
        Ok(Ok(_)) => panic!("a truncated JPEG file read as a volume"),
        Ok(Err(e)) | Err(e) => {
            let e = e.to_string();
            assert!(e.contains("e.dcm") && e.contains("truncated"), "{e}");
        }
    }
}

#[test]
fn dicom_keeps_the_quantity_and_refuses_what_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let hu = test_volume();
    write_ct_series(&dir.path().join("hu"), &hu, &meta(50)).unwrap();
    let back = read_series_volume(&scan_folder(&dir.path().join("hu")).unwrap().series[0]).unwrap();
    assert_eq!(back.quantity, Quantity::Hounsfield);
    for (q, scale) in [(Quantity::BloodFlow, 0.02), (Quantity::BloodVolume, 0.001), (Quantity::TimeSeconds, 0.004)] {
        let map = hu.map(|v| (v + 1024.0) * scale).with_quantity(q);
        let d = dir.path().join(q.code());
        write_ct_series(&d, &map, &SeriesMeta { derivation_description: Some("map".into()), ..meta(51) }).unwrap();
        let back = read_series_volume(&scan_folder(&d).unwrap().series[0]).unwrap();
        assert_eq!(back.quantity, q);
        let worst = back.data.iter().zip(map.data.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 0.01, "{q}: {worst}");
    }
    // μ is not a CT image, and neither are values that do not say what they are; nothing is
    // written (never a series of zeros).
    for (q, want) in [(Quantity::LinearAttenuation, "convert μ to HU"), (Quantity::Unspecified, "state what")] {
        let d = dir.path().join(format!("no-{}", q.code()));
        let e = write_ct_series(&d, &hu.map(|v| v * 1e-5).with_quantity(q), &meta(52)).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert!(!d.exists() || std::fs::read_dir(&d).unwrap().next().is_none(), "nothing written for {q}");
    }
    // A volume in RTK's frame has no patient orientation.
    let mut rtk = hu.clone();
    rtk.geometry.frame = gantry_core::Frame::Rtk;
    let e = write_ct_series(&dir.path().join("rtk"), &rtk, &meta(53)).unwrap_err().to_string();
    assert!(e.contains("frame") && e.contains("RTK"), "{e}");
    // A mapping whose unit contradicts the quantity is refused.
    let e = write_ct_series(&dir.path().join("x"), &hu.clone().with_quantity(Quantity::BloodVolume), &cbf_meta(54))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ucum") && e.contains("mL/(100.g)"), "{e}");
}
