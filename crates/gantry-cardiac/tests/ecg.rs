//! R-peak detection and beat classification on Gantry's own synthetic ECGs (the family the
//! detector's few settings are checked on; the independent family, ECGSYN through neurokit2,
//! is the CLI's peer test): every rhythm, 45 to 150 bpm, with baseline wander, mains hum
//! (50 and 60 Hz), muscle noise and electrode motion, at 1 kHz and 250 Hz.

use gantry_cardiac::ecg::{classify_beats, detect_r_peaks, BeatClass, DetectorSettings, EcgNoise, Rhythm, RhythmCall};
use gantry_cardiac::ecg::{synthetic_ecg, SyntheticEcg};

/// Detected peaks matched to the truth within 75 ms: (sensitivity, positive predictivity, RMS
/// timing error in ms, for each true peak the index of its match).
fn score(truth: &[f64], found: &[f64]) -> (f64, f64, f64, Vec<Option<usize>>) {
    let mut matched = vec![None; truth.len()];
    let mut used = vec![false; found.len()];
    let mut sq = 0.0;
    for (i, &t) in truth.iter().enumerate() {
        let j = found.partition_point(|&f| f < t - 0.075);
        if j < found.len() && (found[j] - t).abs() <= 0.075 && !used[j] {
            used[j] = true;
            matched[i] = Some(j);
            sq += (found[j] - t).powi(2);
        }
    }
    let tp = matched.iter().flatten().count();
    let rms_ms = 1e3 * (sq / tp.max(1) as f64).sqrt();
    (tp as f64 / truth.len() as f64, tp as f64 / found.len().max(1) as f64, rms_ms, matched)
}

fn run(s: &SyntheticEcg) -> (f64, f64, f64, Vec<Option<usize>>, Vec<f64>) {
    let lead = &s.ecg.leads[0];
    let found = detect_r_peaks(&lead.samples_mv, s.ecg.sampling_hz, &DetectorSettings::default()).unwrap();
    let (se, ppv, rms, m) = score(&s.r_peaks_s, &found);
    (se, ppv, rms, m, found)
}

#[test]
fn r_peaks_are_found_on_every_rhythm_under_noise() {
    let rhythms = [
        Rhythm::Regular { bpm: 45.0 },
        Rhythm::Regular { bpm: 60.0 },
        Rhythm::Regular { bpm: 90.0 },
        Rhythm::Regular { bpm: 120.0 },
        Rhythm::Regular { bpm: 150.0 },
        Rhythm::Premature { bpm: 70.0, every: 5 },
        Rhythm::Premature { bpm: 110.0, every: 7 },
        Rhythm::Fibrillation { bpm: 80.0 },
        Rhythm::Fibrillation { bpm: 130.0 },
    ];
    let (mut truth_n, mut tp, mut found_n, mut sq) = (0usize, 0usize, 0usize, 0.0);
    for (k, &rhythm) in rhythms.iter().enumerate() {
        for (fs, mains) in [(1000.0, 50.0), (250.0, 60.0)] {
            let noise = EcgNoise { mains_hz: mains, ..EcgNoise::realistic() };
            let s = synthetic_ecg(rhythm, 120.0, fs, noise, 100 + k as u64).unwrap();
            let (se, ppv, rms, matched, found) = run(&s);
            println!("{rhythm:?} at {fs} Hz: Se {:.2} %, PPV {:.2} %, RMS {rms:.2} ms", 100.0 * se, 100.0 * ppv);
            let n_tp = matched.iter().flatten().count();
            truth_n += s.r_peaks_s.len();
            tp += n_tp;
            found_n += found.len();
            sq += (rms * 1e-3).powi(2) * n_tp as f64;
            // Each recording on its own may miss or add at most one beat in 200.
            assert!(se >= 0.995 && ppv >= 0.995, "{rhythm:?} at {fs} Hz: Se {se}, PPV {ppv}");
            assert!(rms <= 5.0, "{rhythm:?} at {fs} Hz: RMS {rms} ms");
        }
    }
    let (se, ppv) = (tp as f64 / truth_n as f64, tp as f64 / found_n as f64);
    let rms = 1e3 * (sq / tp as f64).sqrt();
    println!("all: {truth_n} beats, Se {:.3} %, PPV {:.3} %, RMS {rms:.2} ms", 100.0 * se, 100.0 * ppv);
    assert!(se >= 0.995 && ppv >= 0.995 && rms <= 5.0);
}

#[test]
fn every_premature_beat_is_flagged_and_regular_rhythms_are_not() {
    for (k, (bpm, every)) in [(60.0, 5), (75.0, 4), (100.0, 6), (130.0, 8)].into_iter().enumerate() {
        let s =
            synthetic_ecg(Rhythm::Premature { bpm, every }, 90.0, 500.0, EcgNoise::realistic(), 7 + k as u64).unwrap();
        let (_, _, _, matched, found) = run(&s);
        let report = classify_beats(&found);
        let mut flagged = 0;
        for (i, &p) in s.premature.iter().enumerate() {
            let Some(j) = matched[i] else { continue };
            if p {
                assert_eq!(report.classes[j], BeatClass::Premature, "{bpm} bpm: premature beat {i} classed otherwise");
                // The beat after it is the compensatory pause.
                if let Some(Some(n)) = matched.get(i + 1) {
                    assert_eq!(report.classes[*n], BeatClass::CompensatoryPause, "{bpm} bpm: beat after {i}");
                }
                flagged += 1;
            } else if i > 0 && !s.premature[i - 1] {
                assert_eq!(report.classes[j], BeatClass::Normal, "{bpm} bpm: normal beat {i} flagged");
            }
        }
        assert!(flagged >= 8, "{flagged}");
        // The prediction for the next trigger is the normal RR, not the premature one.
        let rr0 = 60.0 / bpm;
        assert!((report.next_rr_s.unwrap() - rr0).abs() < 0.05 * rr0, "{:?} vs {rr0}", report.next_rr_s);
    }
    for bpm in [50.0, 80.0, 140.0] {
        let s = synthetic_ecg(Rhythm::Regular { bpm }, 60.0, 500.0, EcgNoise::realistic(), 3).unwrap();
        let (_, _, _, _, found) = run(&s);
        let report = classify_beats(&found);
        assert!(report.classes.iter().all(|&c| c == BeatClass::Normal), "{bpm} bpm: {:?}", report.classes);
        assert_eq!(report.rhythm, RhythmCall::Regular);
        assert!((report.heart_rate_bpm.unwrap() - bpm).abs() < 0.03 * bpm);
    }
    let s = synthetic_ecg(Rhythm::Fibrillation { bpm: 100.0 }, 60.0, 500.0, EcgNoise::realistic(), 4).unwrap();
    let (_, _, _, _, found) = run(&s);
    assert_eq!(classify_beats(&found).rhythm, RhythmCall::Irregular);
}
