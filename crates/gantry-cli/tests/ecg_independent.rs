//! `gantry cardiac ecg` on ECGs from an independent generator: ECGSYN (McSharry et al. 2003)
//! through neurokit2, with neurokit2's own noise model (Laplace noise at 0.3, 5 and 20 Hz,
//! 50 Hz mains, motion artefacts), written as CSV and as a DICOM 12-lead waveform by pydicom.
//! The truth is the maxima of the noise-free signal. Beats within 0.2 s of either end (a QRS
//! the recording cuts) are not scored. Targets: sensitivity and positive predictivity ≥ 99.5 %,
//! RMS timing error ≤ 5 ms, no beat of these regular rhythms classed premature.

mod support;
use std::path::Path;
use support::{check, gantry, peer_trial, python, python_with};

const MAKE: &str = r#"
import sys, json, numpy as np, neurokit2 as nk, pydicom
from scipy.signal import find_peaks
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out = sys.argv[1]
cases = [(50, 500, 1), (75, 1000, 2), (100, 500, 3), (140, 500, 4)]
for hr, fs, seed in cases:
    clean = nk.ecg_simulate(duration=90, sampling_rate=fs, heart_rate=hr, heart_rate_std=3, method="ecgsyn", noise=0, random_state=seed)
    pk, _ = find_peaks(clean, height=0.5 * clean.max(), distance=int(0.25 * fs))
    truth = []
    for i in pk:
        a, b, c = clean[i - 1], clean[i], clean[i + 1]
        d = a - 2 * b + c
        truth.append((i + (0.5 * (a - c) / d if d < 0 else 0.0)) / fs)
    noisy = nk.signal_distort(clean, sampling_rate=fs, noise_shape="laplace", noise_amplitude=0.12,
        noise_frequency=[0.3, 5, 20], powerline_amplitude=0.1, powerline_frequency=50,
        artifacts_amplitude=0.5, artifacts_frequency=2, artifacts_number=5, linear_drift=False, random_state=seed)
    name = f"ecgsyn_{hr}bpm_{fs}hz"
    with open(f"{out}/{name}.csv", "w") as f:
        f.write("time_s,II\n")
        for i, v in enumerate(noisy):
            f.write(f"{i / fs:.6f},{v:.5f}\n")
    json.dump({"r_peaks_s": truth, "duration_s": len(noisy) / fs}, open(f"{out}/{name}.truth.json", "w"))
# The 100 bpm case also as a DICOM 12-lead ECG (lead II the ECGSYN signal, the others scaled
# copies), 16-bit signed samples of 2.5 µV.
hr, fs = 100, 500
clean = nk.ecg_simulate(duration=90, sampling_rate=fs, heart_rate=hr, heart_rate_std=3, method="ecgsyn", noise=0, random_state=3)
noisy = nk.signal_distort(clean, sampling_rate=fs, noise_shape="laplace", noise_amplitude=0.12,
    noise_frequency=[0.3, 5, 20], powerline_amplitude=0.1, powerline_frequency=50,
    artifacts_amplitude=0.5, artifacts_frequency=2, artifacts_number=5, linear_drift=False, random_state=3)
names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
scale = [0.6, 1.0, 0.4, -0.8, 0.1, 0.7, -0.5, 0.3, 0.8, 1.2, 1.1, 0.9]
data = np.stack([np.round(s * noisy / 2.5e-3) for s in scale], axis=1).astype("<i2")
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = FileDataset(f"{out}/ecg.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "ECG"
group = Dataset()
group.WaveformOriginality, group.NumberOfWaveformChannels, group.NumberOfWaveformSamples = "ORIGINAL", 12, len(noisy)
group.SamplingFrequency, group.WaveformBitsAllocated, group.WaveformSampleInterpretation = fs, 16, "SS"
channels = []
for n in names:
    ch = Dataset()
    src = Dataset(); src.CodeValue, src.CodingSchemeDesignator, src.CodeMeaning = "5.6.3-9-1", "SCPECG", "Lead " + n
    ch.ChannelSourceSequence = [src]
    ch.ChannelSensitivity, ch.ChannelSensitivityCorrectionFactor, ch.ChannelBaseline = "2.5", "1", "0"
    unit = Dataset(); unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
    ch.ChannelSensitivityUnitsSequence = [unit]
    ch.WaveformBitsStored = 16
    channels.append(ch)
group.ChannelDefinitionSequence = channels
group.WaveformData = data.tobytes()
ds.WaveformSequence = [group]
ds.save_as(f"{out}/ecg.dcm", enforce_file_format=True)
"#;

#[derive(Default)]
struct Score {
    truth: usize,
    found: usize,
    matched: usize,
    sq: f64,
}

/// Scores `found` against `truth`, both restricted to 0.2 s inside the recording.
fn score(truth: &[f64], found: &[f64], duration: f64) -> Score {
    let inside = |t: &&f64| **t >= 0.2 && **t <= duration - 0.2;
    let truth: Vec<f64> = truth.iter().filter(inside).copied().collect();
    let found: Vec<f64> = found.iter().filter(inside).copied().collect();
    let mut s = Score { truth: truth.len(), found: found.len(), ..Score::default() };
    let mut used = vec![false; found.len()];
    for &t in &truth {
        let j = found.partition_point(|&f| f < t - 0.075);
        if j < found.len() && (found[j] - t).abs() <= 0.075 && !used[j] {
            used[j] = true;
            s.matched += 1;
            s.sq += (found[j] - t).powi(2);
        }
    }
    s
}

fn numbers(v: &serde_json::Value, key: &str) -> Result<Vec<f64>, String> {
    v[key].as_array().ok_or(format!("no {key}"))?.iter().map(|x| x.as_f64().ok_or(format!("{key}: {x}"))).collect()
}

fn analyse(dir: &Path, input: &str) -> Result<serde_json::Value, String> {
    let out = format!("{input}.out.json");
    gantry(dir, &["cardiac", "ecg", input, "--json", &out])?;
    serde_json::from_str(&std::fs::read_to_string(dir.join(&out)).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

fn ecgsyn_r_peaks(py: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    python(py, dir.path(), MAKE, &[dir.path().to_str().ok_or("path")?])?;
    let mut all = Score::default();
    for name in ["ecgsyn_50bpm_500hz", "ecgsyn_75bpm_1000hz", "ecgsyn_100bpm_500hz", "ecgsyn_140bpm_500hz"] {
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("{name}.truth.json"))).unwrap())
                .map_err(|e| e.to_string())?;
        let duration = truth["duration_s"].as_f64().ok_or("duration")?;
        let report = analyse(dir.path(), &format!("{name}.csv"))?;
        let s = score(&numbers(&truth, "r_peaks_s")?, &numbers(&report, "r_peaks_s")?, duration);
        let classes = report["classes"].as_array().ok_or("classes")?;
        let odd = classes.iter().filter(|c| c.as_str() != Some("normal")).count();
        println!(
            "{name}: {} beats, Se {:.2} %, PPV {:.2} %, RMS {:.2} ms, {odd} not normal",
            s.truth,
            100.0 * s.matched as f64 / s.truth as f64,
            100.0 * s.matched as f64 / s.found.max(1) as f64,
            1e3 * (s.sq / s.matched.max(1) as f64).sqrt()
        );
        check(odd == 0, || format!("{name}: {odd} beats of a regular rhythm classed not normal"))?;
        all.truth += s.truth;
        all.found += s.found;
        all.matched += s.matched;
        all.sq += s.sq;
    }
    let (se, ppv) = (all.matched as f64 / all.truth as f64, all.matched as f64 / all.found as f64);
    let rms = 1e3 * (all.sq / all.matched as f64).sqrt();
    println!("all: {} beats, Se {:.2} %, PPV {:.2} %, RMS {rms:.2} ms", all.truth, 100.0 * se, 100.0 * ppv);
    check(se >= 0.995 && ppv >= 0.995 && rms <= 5.0, || format!("Se {se}, PPV {ppv}, RMS {rms} ms"))?;
    // The DICOM 12-lead waveform of the 100 bpm case: lead II chosen, the same peaks as the CSV.
    let dicom = analyse(dir.path(), "ecg.dcm")?;
    let csv = analyse(dir.path(), "ecgsyn_100bpm_500hz.csv")?;
    check(dicom["lead"] == "Lead II", || format!("lead {}", dicom["lead"]))?;
    let (a, b) = (numbers(&dicom, "r_peaks_s")?, numbers(&csv, "r_peaks_s")?);
    check(a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 2e-3), || {
        format!("DICOM {} peaks against CSV {}", a.len(), b.len())
    })?;
    let rate = dicom["heart_rate_bpm"].as_f64().ok_or("rate")?;
    check((rate - 100.0).abs() < 3.0, || format!("heart rate {rate}"))
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let py = python_with(&["neurokit2", "pydicom", "scipy"]);
    libtest_mimic::run(&args, vec![peer_trial("ecgsyn_r_peaks", &py, ecgsyn_r_peaks)]).exit();
}
