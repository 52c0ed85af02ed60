//! Frames end to end: a Gantry protocol's patient position reaches the DICOM export (pydicom
//! finds the orientation phantom's bead at the patient's left, anterior, head end, whatever
//! the position), and RTK's data comes back in RTK's frame (see `rtk.rs`).

mod support;
use support::{check, gantry, peer_trial, python, python_with};

/// The bead centroid (LPS mm) of a CT series, from pydicom alone: every pixel above 700 HU
/// placed by Image Position/Orientation (Patient) and Pixel Spacing, weighted by its HU.
const BEAD_CENTROID: &str = r#"
import sys, glob, numpy as np, pydicom
pts, w, positions = [], [], set()
for f in sorted(glob.glob(sys.argv[1] + "/*.dcm")):
    ds = pydicom.dcmread(f)
    a = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ipp = np.array([float(x) for x in ds.ImagePositionPatient])
    iop = np.array([float(x) for x in ds.ImageOrientationPatient])
    row_mm, col_mm = [float(x) for x in ds.PixelSpacing]
    positions.add(ds.PatientPosition)
    for j, i in zip(*np.nonzero(a > 700)):
        pts.append(ipp + iop[:3] * col_mm * i + iop[3:] * row_mm * j)
        w.append(a[j, i])
c = (np.array(pts) * np.array(w)[:, None]).sum(0) / np.sum(w)
print(" ".join(f"{x:.3f}" for x in c), ",".join(sorted(positions)), len(w))
"#;

fn patient_frame_reaches_dicom(py: &std::path::Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    let want = gantry_phantom::Phantom::ORIENTATION_BEAD_MM;
    for pos in ["HFS", "FFS", "HFP", "FFDR"] {
        let proto = format!(
            "beam = \"cone\"\npatient_position = \"{pos}\"\nsid_mm = 500.0\nsdd_mm = 1000.0\n\
             views_per_rotation = 180\n[detector]\nshape = \"flat\"\nn_cols = 300\nn_rows = 128\n\
             pixel_u_mm = 1.0\npixel_v_mm = 1.0\n"
        );
        std::fs::write(d.join(format!("{pos}.toml")), proto).map_err(|e| e.to_string())?;
        gantry(d, &["simulate", "--protocol", &format!("{pos}.toml"), "--phantom", "orientation", "-o", "p.mha"])?;
        gantry(d, &["recon", "p.mha", "-o", "v.nii.gz", "--size", "100,100,64", "--spacing", "1.5,1.5,1"])?;
        let out = format!("dcm_{pos}");
        gantry(d, &["dicom", "export", "v.nii.gz", "-o", &out, "--patient-position", pos])?;
        let line = python(py, d, BEAD_CENTROID, &[&out])?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let c: Vec<f64> = f[..3].iter().map(|s| s.parse().unwrap_or(f64::NAN)).collect();
        let err = (0..3).map(|a| (c[a] - want[a]).powi(2)).sum::<f64>().sqrt();
        // Voxels of 1.5 × 1.5 × 1 mm: the centroid of a 4 mm bead lands within half a voxel.
        check(err < 0.75, || format!("{pos}: bead at {c:?} (LPS) against {want:?}: {err:.2} mm off"))?;
        check(f[3] == pos, || format!("{pos}: Patient Position written as {}", f[3]))?;
    }
    Ok(())
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let py = python_with(&["pydicom", "numpy"]);
    let trials = vec![peer_trial("patient_frame_reaches_dicom", &py, patient_frame_reaches_dicom)];
    libtest_mimic::run(&args, trials).exit();
}
