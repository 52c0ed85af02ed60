//! `gantry dicom anonymise` checked by pydicom: two series of one study (the second referencing
//! the first's images) with names, IDs, dates, an institution and a private element go in;
//! pydicom finds every identifying value gone, no original UID anywhere in the files' bytes, the
//! study still one study, the reference still pointing at the right (new) instances, the frame
//! of reference shared, the pixels unchanged; the same key gives the same UIDs, another key
//! others.

mod support;
use std::path::Path;
use support::{check, gantry, peer_trial, python, python_with};

const MAKE: &str = r#"
import sys, os, pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
out = sys.argv[1]
study, frame = generate_uid(), generate_uid()
a_uids = []
for s, n in (("a", 3), ("b", 2)):
    series = generate_uid()
    os.makedirs(os.path.join(out, s))
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-778", "19610203"
        ds.InstitutionName, ds.StudyDate, ds.AccessionNumber = "General Hospital", "20261201", "ACC991"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        block = ds.private_block(0x0009, "ACME", create=True)
        block.add_new(0x01, "LO", "Doe^Jane private")
        if s == "a":
            a_uids.append(ds.SOPInstanceUID)
        else:
            ref = pydicom.Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, a_uids[i]
            ds.ReferencedImageSequence = [ref]
        ds.save_as(os.path.join(out, s, f"{i}.dcm"))
"#;

const VERIFY: &str = r#"
import sys, os, glob, pydicom, numpy as np
src, out = sys.argv[1], sys.argv[2]
orig = [pydicom.dcmread(p) for p in sorted(glob.glob(os.path.join(src, "*", "*.dcm")))]
anon = [pydicom.dcmread(p) for p in sorted(glob.glob(os.path.join(out, "**", "*.dcm"), recursive=True))]
assert len(anon) == len(orig) == 5, (len(anon), len(orig))
uids = set()
for d in orig:
    uids |= {d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID, d.FrameOfReferenceUID}
secrets = [b"Doe^Jane", b"PID-778", b"19610203", b"General Hospital", b"ACC991", b"20261201"] + [u.encode() for u in uids]
for p in glob.glob(os.path.join(out, "**", "*.dcm"), recursive=True):
    raw = open(p, "rb").read()
    for s in secrets:
        assert s not in raw, (p, s)
for d in anon:
    assert str(d.PatientName) == "ANONYMOUS" and d.PatientIdentityRemoved == "YES", d.PatientName
    assert not any(e.tag.is_private for e in d), "private element left"
    assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
assert len({d.PatientID for d in anon}) == 1 and anon[0].PatientID != "PID-778"
assert len({d.StudyInstanceUID for d in anon}) == 1, "the study was split"
assert len({d.FrameOfReferenceUID for d in anon}) == 1
series = {d.SeriesInstanceUID for d in anon}
assert len(series) == 2
a = {d.InstanceNumber: d for d in anon if "ReferencedImageSequence" not in d}
b = [d for d in anon if "ReferencedImageSequence" in d]
assert len(a) == 3 and len(b) == 2
for d in b:
    assert d.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a[d.InstanceNumber].SOPInstanceUID, "reference lost"
ref = orig[0].pixel_array
for d in anon:
    assert np.array_equal(d.pixel_array, ref), "pixels changed"
print("; ".join(sorted(d.SOPInstanceUID for d in anon)))
"#;

fn anonymised_series_pass_pydicom(py: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    python(py, d, MAKE, &["src"])?;
    gantry(d, &["dicom", "anonymise", "src", "-o", "out", "--key", "study-key"])?;
    let first = python(py, d, VERIFY, &["src", "out"])?;
    gantry(d, &["dicom", "anonymise", "src", "-o", "again", "--key", "study-key"])?;
    let again = python(py, d, VERIFY, &["src", "again"])?;
    check(first == again, || format!("the same key gave other UIDs:\n{first}\n{again}"))?;
    gantry(d, &["dicom", "anonymise", "src", "-o", "other", "--key", "another-key"])?;
    let other = python(py, d, VERIFY, &["src", "other"])?;
    check(first != other, || "another key gave the same UIDs".into())
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let py = python_with(&["pydicom", "numpy"]);
    libtest_mimic::run(&args, vec![peer_trial("anonymised_series_pass_pydicom", &py, anonymised_series_pass_pydicom)])
        .exit();
}
