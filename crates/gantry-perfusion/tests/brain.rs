//! The stroke pipeline on the synthetic brain, against its exact volumes.
//!
//! The phantom is simulated on a 256 × 256 × 32 grid of 0.9 mm pixels (the anatomy in mm is the
//! issue's 512 × 512 case): the pipeline reads maps at 0.9 mm anyway, averaging 2 × 2 of the
//! 0.45 mm pixels, which halves white noise. So a noise of σ/2 here is the σ per
//! 0.45 mm voxel ("5 HU" below is 2.5 HU on this grid). The full-size case is run by
//! bench/stroke_brain.sh.

use gantry_perfusion::{run_stroke, StrokeOptions, StrokeResult};
use gantry_phantom::perfusion_brain::{BrainClass, BrainConfig, BrainPhantom, BrainTruth, Lesion, Motion};

fn run(noise_full_res_hu: f64, lesion: Option<Lesion>, motion: bool, seed: u64) -> (StrokeResult, BrainTruth) {
    let config = BrainConfig {
        noise_hu: noise_full_res_hu / 2.0,
        lesion,
        motion: motion.then_some(Motion { fraction: 0.1, translation_mm: 3.0, rotation_deg: 3.0 }),
        seed,
        ..BrainConfig::clinical().downsampled(2)
    };
    let p = BrainPhantom::new(&config);
    let r = run_stroke(p.series, &StrokeOptions::default()).expect("pipeline runs");
    (r, p.truth)
}

fn within(got: f64, want: f64, ml: f64, rel: f64) -> bool {
    (got - want).abs() <= ml || (got - want).abs() <= rel * want
}

/// The checks every lesion case shares; `core_tol` is (mL, relative).
fn check_lesion(r: &StrokeResult, t: &BrainTruth, core_tol: (f64, f64), what: &str) {
    let d = &r.decision;
    assert!(
        within(d.core_ml, t.core_ml, core_tol.0, core_tol.1),
        "{what}: core {:.1} mL vs truth {:.1} mL",
        d.core_ml,
        t.core_ml
    );
    assert!(
        within(d.hypoperfused_ml, t.tmax6_ml, 10.0, 0.10),
        "{what}: Tmax > 6 s {:.1} mL vs truth {:.1} mL",
        d.hypoperfused_ml,
        t.tmax6_ml
    );
    assert_eq!(d.affected_side, Some(gantry_perfusion::Side::Left), "{what}: the lesion is in the left hemisphere");
    if t.clear_of_cutoffs(0.2) {
        assert_eq!((d.defuse3, d.extend), (t.defuse3(), t.extend()), "{what}: flags vs truth ({d:?})");
    }
    check_vessels(r, t, what);
}

fn check_vessels(r: &StrokeResult, t: &BrainTruth, what: &str) {
    for v in &r.aif.voxels {
        assert_eq!(
            t.labels[[v[0], v[1], v[2]]],
            BrainClass::Artery as u8,
            "{what}: arterial voxel {v:?} is not in an artery"
        );
    }
    for v in &r.vof.voxels {
        assert_eq!(
            t.labels[[v[0], v[1], v[2]]],
            BrainClass::Sinus as u8,
            "{what}: venous voxel {v:?} is not in the sinus"
        );
    }
    // Partial volume lowers the thin arteries' peak; the venous area restores it: the true
    // arterial area over the measured one.
    let area = |c: &[f64]| c.iter().sum::<f64>();
    let want = area(&t.aif) / area(&r.aif.curve);
    assert!((r.aif_scale - want).abs() < 0.08 * want, "{what}: arterial scale {:.3} vs {:.3}", r.aif_scale, want);
}

#[test]
fn typical_lesion_without_noise() {
    let (r, t) = run(0.0, Some(Lesion::typical()), false, 1);
    check_lesion(&r, &t, (5.0, 0.10), "noise-free");
    assert!(r.quality.is_empty(), "{:?}", r.quality);
    assert!(r.timing.baseline.len() >= 2);
}

#[test]
fn typical_lesion_at_5_hu_with_motion() {
    let (r, t) = run(5.0, Some(Lesion::typical()), true, 2);
    check_lesion(&r, &t, (5.0, 0.10), "5 HU with motion");
    // Every moved frame was found and repaired (registered, or replaced when registration
    // could not restore it), and the motion was reported.
    for (i, (w, tr)) in t.motion.iter().enumerate() {
        if *w != [0.0; 3] || *tr != [0.0; 3] {
            assert!(r.motion[i].corrected, "frame {i} moved but was not corrected: {:?}", r.motion[i]);
            assert!(r.quality.iter().any(|q| matches!(q, gantry_perfusion::QualityFlag::Motion(f, _) if *f == i)));
        } else {
            assert!(!r.motion[i].corrected && !r.motion[i].excluded, "still frame {i}: {:?}", r.motion[i]);
        }
    }
}

#[test]
fn typical_lesion_at_10_hu() {
    let (r, t) = run(10.0, Some(Lesion::typical()), false, 3);
    check_lesion(&r, &t, (10.0, 0.20), "10 HU");
}

#[test]
fn large_core_at_5_hu() {
    let (r, t) = run(5.0, Some(Lesion::large_core()), false, 4);
    assert!(t.clear_of_cutoffs(0.2) && !t.defuse3());
    check_lesion(&r, &t, (5.0, 0.10), "large core");
}

#[test]
fn mimics_show_no_lesion() {
    for (noise, motion) in [(0.0, false), (15.0, true)] {
        let (r, t) = run(noise, None, motion, 5);
        let d = &r.decision;
        assert!(d.core_ml <= 1.0, "mimic at {noise} HU: core {:.2} mL", d.core_ml);
        assert!(d.hypoperfused_ml <= 5.0, "mimic at {noise} HU: Tmax > 6 s {:.2} mL", d.hypoperfused_ml);
        assert!(!d.defuse3 && !d.extend);
        check_vessels(&r, &t, "mimic");
    }
}

#[test]
fn quality_flags_say_what_limits_the_study() {
    use gantry_perfusion::QualityFlag;
    let small = BrainConfig { lesion: None, ..BrainConfig::clinical().downsampled(4) };
    let flags = |c: &BrainConfig| run_stroke(BrainPhantom::new(c).series, &StrokeOptions::default()).unwrap().quality;
    // A good study raises nothing.
    assert!(flags(&small).is_empty(), "{:?}", flags(&small));
    // A weak bolus: arterial peak (as measured, partial volume included) below 100 ΔHU.
    let weak = flags(&BrainConfig { aif_peak_hu: 90.0, ..small.clone() });
    assert!(weak.iter().any(|q| matches!(q, QualityFlag::LowArterialPeak(p) if *p < 100.0)), "{weak:?}");
    // Scanning stopped at 30 s: the venous curve has not come down.
    let short = flags(&BrainConfig { n_frames: 15, ..small.clone() });
    assert!(short.iter().any(|q| matches!(q, QualityFlag::VenousTruncated(_))), "{short:?}");
    // Scanning started at 6 s: one baseline frame before the bolus.
    let late = flags(&BrainConfig { first_frame_s: 6.0, ..small.clone() });
    assert!(late.iter().any(|q| matches!(q, QualityFlag::ShortBaseline(n) if *n < 2)), "{late:?}");
    // Noise of 20 HU per 0.45 mm pixel (5 HU on these 1.8 mm pixels): beyond what was validated.
    let noisy = flags(&BrainConfig { noise_hu: 5.0, ..small.clone() });
    assert!(noisy.iter().any(|q| matches!(q, QualityFlag::HighNoise(n) if (*n - 20.0).abs() < 2.0)), "{noisy:?}");
}

#[test]
fn bad_series_are_errors_that_name_the_problem() {
    let c = BrainConfig { lesion: None, n_frames: 8, ..BrainConfig::clinical().downsampled(8) };
    let p = BrainPhantom::new(&c);
    let mut s = p.series.clone();
    s.data[[3, 10, 20, 20]] = f32::NAN;
    let e = run_stroke(s, &StrokeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("series voxel") && e.contains("NaN"), "{e}");
    let few = gantry_core::VolumeSeries::new(
        p.series.geometry.clone(),
        p.series.times_s[..4].to_vec(),
        p.series.data.slice(ndarray::s![..4, .., .., ..]).to_owned(),
    )
    .unwrap();
    let e = run_stroke(few, &StrokeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("frames = 4"), "{e}");
    // No contrast at all: every frame is the first.
    let mut flat = p.series.clone();
    let first = flat.data.index_axis(ndarray::Axis(0), 0).to_owned();
    for mut f in flat.data.axis_iter_mut(ndarray::Axis(0)) {
        f.assign(&first);
    }
    let e = run_stroke(flat, &StrokeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no bolus"), "{e}");
}

#[test]
fn typical_lesion_at_15_hu() {
    let (r, t) = run(15.0, Some(Lesion::typical()), false, 6);
    check_lesion(&r, &t, (10.0, 0.20), "15 HU");
}

/// The two cases that missed the Tmax > 6 s target at 15 HU before the core, too weak to time
/// voxel by voxel, was timed on its mean curve (`pool_untimeable`).
#[test]
fn large_core_and_moving_typical_lesion_at_15_hu() {
    let (r, t) = run(15.0, Some(Lesion::large_core()), false, 7);
    assert!(r.untimeable_voxels > 0, "the large core at 15 HU is too weak to time voxel by voxel");
    assert!(r.quality.is_empty(), "15 HU is within the validated noise: {:?}", r.quality);
    check_lesion(&r, &t, (10.0, 0.20), "large core at 15 HU");
    let (r, t) = run(15.0, Some(Lesion::typical()), true, 8);
    check_lesion(&r, &t, (10.0, 0.20), "typical lesion at 15 HU with motion");
}

#[test]
fn deconvolution_estimators_run_through_the_pipeline() {
    // The textbook estimators are options: on the noise-free brain they find the lesion on the
    // right side, with the biases the tile tests measure (bSVD reports Tmax late, so its
    // Tmax > 6 s volume is larger, never smaller than the truth's core).
    use gantry_perfusion::{Estimator, Method};
    let config = BrainConfig { ..BrainConfig::clinical().downsampled(4) };
    let t = BrainPhantom::new(&config).truth;
    for method in [Method::default(), Method::Standard { threshold: 0.2 }, Method::Tikhonov { lambda: 0.1 }] {
        let options = StrokeOptions { estimator: Estimator::Deconvolution(method), ..StrokeOptions::default() };
        let r = run_stroke(BrainPhantom::new(&config).series, &options).expect("pipeline runs");
        let d = &r.decision;
        assert_eq!(d.affected_side, Some(gantry_perfusion::Side::Left), "{method:?}");
        assert!(d.hypoperfused_ml > t.core_ml && d.hypoperfused_ml < 2.0 * t.tmax6_ml, "{method:?}: {d:?}");
        assert!(r.maps.cbf.data.iter().any(|v| v.is_finite() && *v > 0.0));
    }
}
