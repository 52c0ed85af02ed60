//! Stored pixel values by the standard, against pydicom's: Bits Stored, High Bit and Pixel
//! Representation applied (a signed 12-bit CT written without sign extension, an overlay bit
//! above Bits Stored, pydicom's JPEG 2000 CT whose codestream says unsigned for signed data),
//! a file without preamble and meta group (written by pydicom), and an impossible modality
//! LUT (Rescale Slope 0) refused naming the attribute.

use gantry_io::dicom::{read_series_volume, scan_folder};
use std::path::Path;

use gantry_testkit::{peer_trial, python, python_with};

/// Writes the test files into folders of their own under argv[1], and beside each the values
/// pydicom reads (pixel_array through the modality LUT) as little-endian f32.
const MAKE: &str = r#"
import sys, os, shutil, numpy as np, pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_rescale
out = sys.argv[1]
def folder(name):
    d = os.path.join(out, name); os.makedirs(d); return d
shutil.copy(get_testdata_file("J2K_pixelrep_mismatch.dcm"), os.path.join(folder("j2k"), "1.dcm"))
# CT_small as a bare implicit-VR data set: no preamble, no meta group.
bare = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
del bare.file_meta
bare.preamble = None
bare.save_as(os.path.join(folder("nometa"), "1.dcm"), implicit_vr=True, little_endian=True)
base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
a = base.pixel_array.astype(np.int32)
ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
ds.PixelData = (np.clip(a - 1024, -2048, 2047) & 0xFFF).astype(np.uint16).tobytes()
ds.save_as(os.path.join(folder("signed12"), "1.dcm"))
ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
u = np.clip(a, 0, 4095).astype(np.uint16)
u[::2, ::2] |= 0x8000
ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
ds.PixelData = u.tobytes()
ds.save_as(os.path.join(folder("overlay12"), "1.dcm"))
ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
ds.RescaleSlope = 0
ds.save_as(os.path.join(folder("slope0"), "1.dcm"))
for name in ["j2k", "signed12", "overlay12", "nometa"]:
    d = pydicom.dcmread(get_testdata_file("CT_small.dcm") if name == "nometa" else os.path.join(out, name, "1.dcm"))
    v = apply_rescale(d.pixel_array, d).astype("<f4")
    v.tofile(os.path.join(out, name + ".f32"))
"#;

fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn read_folder(dir: &Path) -> Result<gantry_core::Volume, String> {
    let scan = scan_folder(dir).map_err(|e| e.to_string())?;
    let series = scan.series.first().ok_or_else(|| format!("no series in {}", dir.display()))?;
    read_series_volume(series).map_err(|e| e.to_string())
}

fn stored_values_match_pydicom(python_path: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = dir.path().to_str().ok_or("temporary path")?;
    python(python_path, dir.path(), MAKE, &[out])?;
    // What reading them wrongly gives, for scale: j2k +6192 for −2000, signed12 +2072 for −2024
    // after the rescale, overlay12 up to +32768 too high.
    // nometa: pydicom's CT_small written by pydicom without preamble and meta group (implicit
    // VR little endian). (pydicom's own no_meta.dcm starts with a stray byte; neither pydicom
    // nor dcmtk reads it, and Gantry leaves it out as not DICOM.)
    for name in ["j2k", "signed12", "overlay12", "nometa"] {
        let want = read_f32(&dir.path().join(format!("{name}.f32")))?;
        let got = read_folder(&dir.path().join(name))?;
        let got: Vec<f32> = got.data.iter().copied().collect();
        if got.len() != want.len() {
            return Err(format!("{name}: {} values read, pydicom has {}", got.len(), want.len()));
        }
        let (worst, at) = got
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(i, (g, w))| ((g - w).abs(), i))
            .fold((0.0f32, 0), |a, b| if b.0 > a.0 { b } else { a });
        let (lo, hi) = want.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        println!("{name}: pydicom {lo}…{hi}, largest difference {worst} at {at}");
        if worst > 0.0 {
            return Err(format!("{name}: value {at} reads {} where pydicom reads {}", got[at], want[at]));
        }
    }
    let e = read_folder(&dir.path().join("slope0")).err().ok_or("Rescale Slope 0 was accepted")?;
    if !(e.contains("RescaleSlope") && e.contains('0')) {
        return Err(format!("the slope-0 error does not name the attribute and value: {e}"));
    }
    Ok(())
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let py = python_with(&["pydicom", "numpy", "pylibjpeg", "openjpeg"]);
    let trials = vec![peer_trial("stored_values_match_pydicom", &py, stored_values_match_pydicom)];
    libtest_mimic::run(&args, trials).exit();
}
