//! File round trips, the LPS/RAS convention, RTK geometry, and errors that name what is wrong.

use gantry_core::{ProjectionStack, ScanProtocol, Volume, VolumeGeometry};
use gantry_io::metaimage::read_mha;
use gantry_io::rtk::{format_rtk_xml, parse_rtk_xml};
use gantry_io::{read_projections, read_volume, write_projections, write_slice_png, write_volume, Plane};
use ndarray::Array3;
use std::path::Path;

fn sample_volume() -> Volume {
    let g =
        VolumeGeometry::new([5, 4, 3], [0.7, 0.9, 2.5], [-10.0, 20.0, 35.0], gantry_core::volume::IDENTITY).unwrap();
    let data = Array3::from_shape_fn((3, 4, 5), |(k, j, i)| (100 * k + 10 * j + i) as f32 - 50.5);
    Volume::new(g, data).unwrap()
}

#[test]
fn nifti_round_trip_keeps_data_and_lps_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let v = sample_volume();
    for name in ["v.nii", "v.nii.gz"] {
        let p = dir.path().join(name);
        write_volume(&p, &v, "test").unwrap();
        let back = read_volume(&p).unwrap();
        assert_eq!(back.data, v.data, "{name}");
        for a in 0..3 {
            assert!((back.geometry.spacing_mm[a] - v.geometry.spacing_mm[a]).abs() < 1e-5);
            assert!((back.geometry.origin_mm[a] - v.geometry.origin_mm[a]).abs() < 1e-4);
        }
        assert_eq!(back.geometry.direction, v.geometry.direction);
        // On disk the affine is RAS: x and y flipped.
        let h = nifti::NiftiHeader::from_file(&p).unwrap();
        assert!((h.srow_x[0] + 0.7).abs() < 1e-6 && (h.srow_x[3] - 10.0).abs() < 1e-4, "{:?}", h.srow_x);
        assert!((h.srow_y[1] + 0.9).abs() < 1e-6 && (h.srow_y[3] + 20.0).abs() < 1e-4, "{:?}", h.srow_y);
        assert!((h.srow_z[2] - 2.5).abs() < 1e-6 && (h.srow_z[3] - 35.0).abs() < 1e-4, "{:?}", h.srow_z);
    }
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn metaimage_round_trip_and_truncation_error() {
    let dir = tempfile::tempdir().unwrap();
    let v = sample_volume();
    let p = dir.path().join("v.mha");
    write_volume(&p, &v, "").unwrap();
    let back = read_volume(&p).unwrap();
    assert_eq!(back, v);
    // Cut the file short: the error names the file and says truncated.
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.mha");
    std::fs::write(&cut, &bytes[..bytes.len() - 9]).unwrap();
    let e = read_volume(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.mha") && e.contains("truncated"), "{e}");
    let e = write_volume(&dir.path().join("nofolder").join("x.mha"), &v, "").unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let e = write_volume(&dir.path().join("x.png"), &v, "").unwrap_err().to_string();
    assert!(e.contains("extension"), "{e}");
}

#[test]
fn projections_round_trip_with_their_geometry_and_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = ScanProtocol::clinical_wide_detector();
    p.views_per_rotation = 12;
    p.detector.n_rows = 4;
    p.detector.n_cols = 9;
    let g = p.build().unwrap();
    let data = Array3::from_shape_fn(g.projection_shape(), |(v, r, c)| (v * 100 + r * 10 + c) as f32);
    let stack = ProjectionStack::new(g, data).unwrap();
    let path = dir.path().join("scan.mha");
    write_projections(&path, &stack).unwrap();
    assert!(dir.path().join("scan.geometry.toml").exists());
    let back = read_projections(&path, None).unwrap();
    assert_eq!(back, stack);
    // A geometry for another detector size is refused with both sizes named.
    let mut other = p.clone();
    other.detector.n_cols = 10;
    gantry_io::write_geometry(&dir.path().join("other.toml"), &other.build().unwrap()).unwrap();
    let e = read_projections(&path, Some(&dir.path().join("other.toml"))).unwrap_err().to_string();
    assert!(e.contains("DimSize") && e.contains("9 4 12") && e.contains("10 columns"), "{e}");
}

#[test]
fn rtk_geometry_maps_onto_gantry_views() {
    // The example of RTK's documentation, with a flat detector and constant offsets.
    let xml = r#"<?xml version="1.0"?>
<!DOCTYPE RTKGEOMETRY>
<RTKThreeDCircularGeometry version="3">
  <SourceToIsocenterDistance>1000</SourceToIsocenterDistance>
  <SourceToDetectorDistance>1536</SourceToDetectorDistance>
  <ProjectionOffsetX>-117.0</ProjectionOffsetX>
  <Projection><GantryAngle>0</GantryAngle></Projection>
  <Projection><GantryAngle>90</GantryAngle></Projection>
  <Projection><GantryAngle>271.847274780273</GantryAngle></Projection>
</RTKThreeDCircularGeometry>"#;
    let path = Path::new("geometry.xml");
    let rtk = parse_rtk_xml(path, xml).unwrap();
    assert_eq!(rtk.projections.len(), 3);
    let img = gantry_io::metaimage::MetaImage {
        dims: [10, 6, 3],
        spacing: [0.5, 0.8, 1.0],
        origin: [-2.25, -2.0, 0.0],
        direction: gantry_core::volume::IDENTITY,
        data: vec![0.0; 180],
        frame: gantry_core::Frame::Lps,
        quantity: gantry_core::Quantity::Unspecified,
    };
    let g = gantry_io::rtk::rtk_to_scan_geometry(path, &rtk, &img).unwrap();
    // Gantry angle θ is view angle β: the source at 1000·(sin θ, −cos θ, 0).
    for (v, deg) in g.views.iter().zip([0.0f64, 90.0, 271.847274780273]) {
        let b = deg.to_radians();
        let want = [1000.0 * b.sin(), -1000.0 * b.cos(), 0.0];
        for a in 0..3 {
            assert!((v.source_mm[a] - want[a]).abs() < 1e-9, "{deg}: {:?} vs {want:?}", v.source_mm);
        }
        assert!((v.sdd_mm() - 1536.0).abs() < 1e-9);
        assert!((v.v[2] - 1.0).abs() < 1e-12);
    }
    // The detector origin sits at ProjectionOffsetX = −117: column 0 (image x −2.25) is at
    // −119.25 from the principal point.
    assert!((g.detector.col_to_u(0.0) - (-2.25 - 117.0)).abs() < 1e-9);
    assert!((g.detector.row_to_v(0.0) + 2.0).abs() < 1e-9);
    // And written back for RTK, the angles survive.
    let again = parse_rtk_xml(path, &format_rtk_xml(&g).unwrap()).unwrap();
    for (a, b) in again.projections.iter().zip(&rtk.projections) {
        assert!((a.gantry_angle - b.gantry_angle).abs() < 1e-9);
    }
    // Per-view offsets are refused by name.
    let varying = xml.replace(
        "<Projection><GantryAngle>90</GantryAngle></Projection>",
        "<Projection><GantryAngle>90</GantryAngle><ProjectionOffsetX>3</ProjectionOffsetX></Projection>",
    );
    let e = gantry_io::rtk::rtk_to_scan_geometry(path, &parse_rtk_xml(path, &varying).unwrap(), &img)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Projection[1]") && e.contains("per-view"), "{e}");
    let bad = xml.replace("<SourceToDetectorDistance>1536", "<SourceToDetectorDistance>abc");
    let e = parse_rtk_xml(path, &bad).unwrap_err().to_string();
    assert!(e.contains("SourceToDetectorDistance") && e.contains("abc"), "{e}");
}

#[test]
fn png_slice_applies_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let v = sample_volume();
    let p = dir.path().join("s.png");
    // Window centre 0, width 200: −100 → 0, +100 → 255.
    write_slice_png(&p, &v, Plane::Axial, 1, 0.0, 200.0).unwrap();
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (5, 4));
    // Voxel (k=1, j=0, i=0) = 49.5 → (49.5 + 100)/200·255 = 190.6 → 191.
    assert_eq!(buf[0], 191);
    // (k=1, j=3, i=4) = 83.5 → 234.
    assert_eq!(buf[19], 234);
    let e = write_slice_png(&p, &v, Plane::Axial, 3, 0.0, 200.0).unwrap_err().to_string();
    assert!(e.contains("slice index") && e.contains('3'), "{e}");
    let _ = read_mha;
}

#[test]
fn four_d_nifti_round_trip_keeps_frames_times_and_geometry() {
    use gantry_core::VolumeSeries;
    use gantry_io::{read_nifti_series, write_nifti_series};
    let dir = tempfile::tempdir().unwrap();
    let g = VolumeGeometry::new(
        [5, 4, 3],
        [0.5, 0.6, 5.0],
        [-10.0, 20.0, -7.5],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    let data =
        ndarray::Array4::from_shape_fn((6, 3, 4, 5), |(t, k, j, i)| (t * 1000 + k * 100 + j * 10 + i) as f32 - 50.0);
    let times: Vec<f64> = (0..6).map(|t| 4.0 + 2.0 * t as f64).collect();
    let s = VolumeSeries::new(g, times, data).unwrap();
    let path = dir.path().join("ctp.nii.gz");
    write_nifti_series(&path, &s, "ctp").unwrap();
    let back = read_nifti_series(&path, None).unwrap();
    assert_eq!(back.data, s.data);
    assert_eq!(back.times_s, s.times_s);
    assert_eq!(back.geometry.dims, s.geometry.dims);
    for a in 0..3 {
        assert!((back.geometry.origin_mm[a] - s.geometry.origin_mm[a]).abs() < 1e-4);
        assert!((back.geometry.spacing_mm[a] - s.geometry.spacing_mm[a]).abs() < 1e-6);
    }
    // Given times override the header's; a wrong count is an error naming it.
    let t2: Vec<f64> = (0..6).map(|t| t as f64 * 1.5).collect();
    assert_eq!(read_nifti_series(&path, Some(t2.clone())).unwrap().times_s, t2);
    let e = read_nifti_series(&path, Some(vec![0.0; 5])).unwrap_err();
    assert!(e.to_string().contains("frame times"), "{e}");
    // Uneven sampling cannot be stored as one interval; a 3D file is not a series.
    let mut uneven = s.clone();
    uneven.times_s[3] += 0.7;
    let e = write_nifti_series(&dir.path().join("u.nii"), &uneven, "").unwrap_err();
    assert!(e.to_string().contains("frame interval"), "{e}");
    let vol = dir.path().join("v.nii");
    write_volume(&vol, &s.frame(0), "").unwrap();
    let e = read_nifti_series(&vol, None).unwrap_err();
    assert!(e.to_string().contains("4 dimensions"), "{e}");
}

#[test]
fn quantity_and_frame_round_trip_through_nifti_and_metaimage() {
    use gantry_core::{Frame, Quantity};
    let dir = tempfile::tempdir().unwrap();
    for q in [Quantity::LinearAttenuation, Quantity::Hounsfield, Quantity::BloodFlow, Quantity::TimeSeconds] {
        for frame in [Frame::Lps, Frame::Rtk] {
            let mut v = sample_volume().with_quantity(q);
            v.geometry.frame = frame;
            for name in ["q.nii", "q.nii.gz", "q.mha"] {
                let p = dir.path().join(name);
                write_volume(&p, &v, "quantity test").unwrap();
                let back = read_volume(&p).unwrap();
                assert_eq!(back.quantity, q, "{name} {q}");
                assert_eq!(back.geometry.frame, frame, "{name} {frame}");
            }
        }
    }
    // Files Gantry did not write say nothing: unspecified, LPS.
    let p = dir.path().join("plain.mha");
    std::fs::write(
        &p,
        [
            b"ObjectType = Image\nNDims = 3\nDimSize = 1 1 1\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
                .as_slice(),
            &1.0f32.to_le_bytes(),
        ]
        .concat(),
    )
    .unwrap();
    let back = read_volume(&p).unwrap();
    assert_eq!((back.quantity, back.geometry.frame), (Quantity::Unspecified, Frame::Lps));
    // A quantity code Gantry does not know is an error naming it.
    let text = std::fs::read(dir.path().join("q.mha")).unwrap();
    let bad = String::from_utf8_lossy(&text).replacen("GantryQuantity = seconds", "GantryQuantity = parsecs", 1);
    let p = dir.path().join("bad.mha");
    std::fs::write(&p, bad.as_bytes()).unwrap_or_else(|_| unreachable!());
    let e = read_volume(&p).map(|_| String::new()).unwrap_or_else(|e| e.to_string());
    assert!(e.contains("parsecs"), "{e}");
}
