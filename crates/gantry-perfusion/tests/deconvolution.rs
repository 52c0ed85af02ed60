//! Deconvolution against the indicator-dilution truth of gantry-phantom (noise-free curves).

use gantry_perfusion::{estimate_curve, oscillation_index, Constants, Method};
use gantry_phantom::perfusion::{arterial_curve, tissue_curve, GammaVariate, Residue, Tissue};

fn curves(t: &Tissue, dt: f64, duration: f64) -> (Vec<f64>, Vec<f64>) {
    let aif = GammaVariate::default_aif(300.0);
    let times: Vec<f64> = (0..).map(|i| i as f64 * dt).take_while(|&x| x <= duration).collect();
    (arterial_curve(&aif, 0.0, 0.0, &times), tissue_curve(&aif, t, &times))
}

fn tissue(cbf: f64, mtt: f64, delay: f64) -> Tissue {
    Tissue { cbf, mtt_s: mtt, delay_s: delay, dispersion_s: 0.0, residue: Residue::Exponential }
}

#[test]
fn block_circulant_is_delay_insensitive_and_tmax_follows_the_delay_unwrapped() {
    for method in [Method::BlockCirculant { threshold: 0.1 }, Method::default(), Method::Tikhonov { lambda: 0.1 }] {
        let (a, c) = curves(&tissue(50.0, 6.0, 0.0), 1.0, 60.0);
        let e0 = estimate_curve(&a, &c, 1.0, method, Constants::default()).unwrap();
        for delay in [-2.0, -1.0, 1.0, 2.0, 3.0, 4.0] {
            let (a, c) = curves(&tissue(50.0, 6.0, delay), 1.0, 60.0);
            let e = estimate_curve(&a, &c, 1.0, method, Constants::default()).unwrap();
            // Delay-insensitive: with the truncation fixed, a shift changes only the sampling
            // phase of the curves (a few per cent); the OI choice may pick another truncation.
            let tol = if matches!(method, Method::BlockCirculantOi { .. }) { 0.12 } else { 0.05 };
            assert!((e.cbf / e0.cbf - 1.0).abs() < tol, "{method:?} δ {delay}: CBF {} vs {}", e.cbf, e0.cbf);
            // Tmax moves with the delay, and a negative delay gives a negative Tmax, not ~2N s.
            assert!(
                (e.tmax_s - e0.tmax_s - delay).abs() < 0.6,
                "{method:?} δ {delay}: Tmax {} vs {}",
                e.tmax_s,
                e0.tmax_s
            );
        }
    }
}

#[test]
fn standard_svd_is_delay_sensitive() {
    let m = Method::Standard { threshold: 0.1 };
    let cbf = |delay: f64| {
        let (a, c) = curves(&tissue(50.0, 4.0, delay), 1.0, 60.0);
        estimate_curve(&a, &c, 1.0, m, Constants::default()).unwrap().cbf
    };
    let ratios: Vec<(f64, f64)> = [-2.0, 2.0, 4.0].iter().map(|&d| (d, cbf(d) / cbf(0.0))).collect();
    eprintln!("sSVD CBF(δ)/CBF(0): {ratios:?}");
    // A tissue that leads the arterial input cannot be represented by a causal residue: its
    // CBF moves by more than 10 % (the reason block-circulant is the default).
    assert!((ratios[0].1 - 1.0).abs() > 0.1, "{ratios:?}");
}

#[test]
fn cbv_is_the_area_ratio_and_mtt_follows() {
    for (cbf, mtt) in [(20.0, 4.0), (60.0, 4.0), (30.0, 8.0), (15.0, 12.0)] {
        let t = tissue(cbf, mtt, 1.0);
        let (a, c) = curves(&t, 1.0, 120.0);
        let e = estimate_curve(&a, &c, 1.0, Method::default(), Constants::default()).unwrap();
        assert!((e.cbv / t.cbv() - 1.0).abs() < 0.01, "CBV {} vs {}", e.cbv, t.cbv());
        assert!((e.mtt_s - 60.0 * e.cbv / e.cbf).abs() < 1e-9);
        // TTP of a noise-free curve lies after the arterial peak (12.5 s) and before it + MTT + delay.
        assert!(e.ttp_s > 12.5 && e.ttp_s < 12.5 + mtt + 1.0, "TTP {}", e.ttp_s);
    }
}

#[test]
fn noise_free_cbf_is_within_the_textbook_bias() {
    // Not the targets (they need more than the textbook): the known behaviour of
    // truncated block-circulant SVD, which under-estimates, most at short MTT.
    let mut errors = Vec::new();
    for mtt in [2.0, 4.0, 8.0, 12.0] {
        let (a, c) = curves(&tissue(40.0, mtt, 0.0), 1.0, 90.0);
        let e = estimate_curve(&a, &c, 1.0, Method::BlockCirculant { threshold: 0.1 }, Constants::default()).unwrap();
        errors.push((mtt, e.cbf / 40.0 - 1.0));
    }
    eprintln!("bSVD(0.1) noise-free CBF relative errors by MTT: {errors:?}");
    for &(mtt, err) in &errors {
        assert!(err < 0.05 && err > -0.6, "MTT {mtt}: CBF relative error {err}");
    }
    assert!(errors[0].1 < errors[3].1, "short MTT is the worst: {errors:?}");
}

#[test]
fn oscillation_index_choice_meets_its_bound() {
    let (a, c) = curves(&tissue(40.0, 4.0, 0.0), 1.0, 60.0);
    // A large OI bound takes the least regularisation; a tight one more; both meet their bound
    // (checked on k recomputed here as the difference of their CBF: tighter → smoother → lower).
    let loose = estimate_curve(&a, &c, 1.0, Method::BlockCirculantOi { oi_max: 1.0 }, Constants::default()).unwrap();
    let tight = estimate_curve(&a, &c, 1.0, Method::BlockCirculantOi { oi_max: 0.02 }, Constants::default()).unwrap();
    assert!(tight.cbf <= loose.cbf, "{tight:?} {loose:?}");
    assert!(oscillation_index(&[0.0, 1.0, 0.0, 1.0, 0.0]) > oscillation_index(&[1.0, 0.8, 0.6, 0.4, 0.2]));
}

#[test]
fn bad_curves_are_errors() {
    let a = vec![0.0, 10.0, 5.0, 1.0, 0.0];
    let c = std::vec![0.0; 4];
    let m = Method::default();
    let e = estimate_curve(&a, &c, 1.0, m, Constants::default()).unwrap_err().to_string();
    assert!(e.contains("tissue curve length = 4"), "{e}");
    let e = estimate_curve(&a, &a, 0.0, m, Constants::default()).unwrap_err().to_string();
    assert!(e.contains("dt_s = 0"), "{e}");
    let e = estimate_curve(&[0.0; 5], &a, 1.0, m, Constants::default()).unwrap_err().to_string();
    assert!(e.contains("arterial curve area"), "{e}");
    let mut bad = a.clone();
    bad[2] = f64::NAN;
    assert!(estimate_curve(&a, &bad, 1.0, m, Constants::default()).is_err());
}
