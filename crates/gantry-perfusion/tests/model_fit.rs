//! The model fit and the curve-similarity filter against the tile phantom's truth
//! (the perfusion issue's tile targets, on a reduced grid to keep the tests quick).

use gantry_perfusion::{noise_sigma, Constants, FitEstimate, FitGrid, ModelFit, TipsFilter};
use gantry_phantom::perfusion::{Residue, TilePhantom};

#[path = "common/stats.rs"]
mod stats;
use stats::{median, p90};

/// Per tile: (truth, median CBF, median CBV, median MTT, median Tmax) after the filter and fit.
fn tile_medians(ph: &TilePhantom, filter: bool) -> Vec<(gantry_phantom::perfusion::Tissue, [f64; 4])> {
    let fit = ModelFit::new(&ph.aif, &ph.times_s, FitGrid::default(), Constants::default()).unwrap();
    let n_t = ph.times_s.len();
    let mosaic = ph.mosaic(14).unwrap();
    let mask: Vec<bool> = mosaic.tile_of.iter().map(|t| t.is_some()).collect();
    let curves = if filter {
        TipsFilter::default().apply_slice(&mosaic.curves, mosaic.width, mosaic.height, n_t, &mask)
    } else {
        mosaic.curves.clone()
    };
    // Noise-free curves have σ = 0 (the estimate would read their curvature as noise).
    let sigma = if filter { noise_sigma(&curves, n_t, &mask) } else { 0.0 };
    let mut per_tile: Vec<Vec<FitEstimate>> = vec![Vec::new(); ph.tiles.len()];
    for (p, t) in mosaic.tile_of.iter().enumerate() {
        if let Some(t) = t {
            per_tile[*t].push(fit.fit_noisy(&curves[p * n_t..(p + 1) * n_t], sigma).unwrap());
        }
    }
    ph.tiles
        .iter()
        .zip(per_tile)
        .map(|(tile, est)| {
            let m = |f: fn(&FitEstimate) -> f64| median(est.iter().map(f).collect());
            (tile.truth, [m(|e| e.cbf), m(|e| e.cbv), m(|e| e.mtt_s), m(|e| e.tmax_s)])
        })
        .collect()
}

// The grid, laid out 14 tiles to a row as in `examples/tiles.rs`.
const CBFS: [f64; 7] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0];
const MTTS: [f64; 6] = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0];
const DELAYS: [f64; 4] = [-2.0, 0.0, 2.0, 4.0];

#[test]
fn noise_free_fit_recovers_every_residue_without_bias() {
    for residue in [Residue::Exponential, Residue::Box, Residue::Gamma { shape: 3 }] {
        let ph = TilePhantom::grid_with(&CBFS, &MTTS, &DELAYS, residue, 0.0, 300.0, 1.0, 60.0, 1, 0.0, 1);
        for (t, [cbf, cbv, mtt, tmax]) in tile_medians(&ph, false) {
            let tol = if t.mtt_s < 4.0 { 0.25 } else { 0.15 };
            assert!((cbf / t.cbf - 1.0).abs() < tol, "{residue:?} {t:?}: CBF {cbf}");
            assert!((cbv / t.cbv() - 1.0).abs() < 0.10, "{residue:?} {t:?}: CBV {cbv}");
            assert!((mtt / t.mtt_s - 1.0).abs() < 0.20, "{residue:?} {t:?}: MTT {mtt}");
            // Tmax is the delay, negative ones included (no wrap to the end of the window).
            assert!((tmax - t.delay_s).abs() < 0.25, "{residue:?} {t:?}: Tmax {tmax}");
        }
    }
}

#[test]
fn two_hu_tiles_meet_the_low_noise_targets() {
    let ph = TilePhantom::grid(&CBFS, &MTTS, &DELAYS, 300.0, 1.0, 60.0, 100, 2.0, 7);
    let r = tile_medians(&ph, true);
    let long: Vec<f64> = r.iter().filter(|(t, _)| t.mtt_s >= 4.0).map(|(t, e)| (e[0] / t.cbf - 1.0).abs()).collect();
    let within = long.iter().filter(|e| **e <= 0.15).count() as f64 / long.len() as f64;
    let short = median(r.iter().filter(|(t, _)| t.mtt_s < 4.0).map(|(t, e)| (e[0] / t.cbf - 1.0).abs()).collect());
    let cbv = median(r.iter().map(|(t, e)| (e[1] / t.cbv() - 1.0).abs()).collect());
    let mtt = p90(r.iter().map(|(t, e)| (e[2] / t.mtt_s - 1.0).abs()).collect());
    let tmax: Vec<f64> = r.iter().map(|(t, e)| e[3] - t.delay_s).collect();
    let (bias, tp90) = (median(tmax.clone()), p90(tmax.iter().map(|x| x.abs()).collect()));
    eprintln!("2 HU: within {within}, MTT-2 {short}, CBV {cbv}, MTT p90 {mtt}, Tmax {bias} / {tp90}");
    assert!(within >= 0.9, "CBF within 15 % in {within} of MTT 4–12 tiles");
    assert!(short <= 0.25, "MTT 2 s: median CBF error {short}");
    assert!(cbv <= 0.10, "CBV median error {cbv}");
    assert!(mtt <= 0.20, "MTT p90 error {mtt}");
    assert!(bias.abs() <= 0.5 && tp90 <= 1.0, "Tmax bias {bias}, p90 {tp90}");
}

#[test]
fn ten_hu_tiles_keep_order_and_are_delay_insensitive() {
    let ph = TilePhantom::grid(&CBFS, &MTTS, &DELAYS, 300.0, 1.0, 60.0, 100, 10.0, 7);
    let r = tile_medians(&ph, true);
    // Tile medians against truth: the ranks agree.
    let truth: Vec<f64> = r.iter().map(|(t, _)| t.cbf).collect();
    let est: Vec<f64> = r.iter().map(|(_, e)| e[0]).collect();
    let mut concordant = 0;
    let mut pairs = 0;
    for i in 0..r.len() {
        for j in 0..r.len() {
            if truth[i] < truth[j] {
                pairs += 1;
                if est[i] < est[j] {
                    concordant += 1;
                }
            }
        }
    }
    let order = concordant as f64 / pairs as f64;
    assert!(order >= 0.9, "CBF tile medians in order for {order} of pairs");
    // CBF(δ)/CBF(0), the median over tiles per delay.
    for &d in &[-2.0, 2.0, 4.0] {
        let ratios: Vec<f64> = r
            .iter()
            .filter(|(t, _)| t.delay_s == d)
            .map(|(t, e)| {
                let c0 = r.iter().find(|(u, _)| u.cbf == t.cbf && u.mtt_s == t.mtt_s && u.delay_s == 0.0).unwrap().1[0];
                e[0] / c0
            })
            .collect();
        let m = median(ratios);
        assert!((m - 1.0).abs() <= 0.05, "CBF({d})/CBF(0) = {m}");
    }
    let tmax: Vec<f64> = r.iter().map(|(t, e)| e[3] - t.delay_s).collect();
    let (bias, tp90) = (median(tmax.clone()), p90(tmax.iter().map(|x| x.abs()).collect()));
    assert!(bias.abs() <= 0.5 && tp90 <= 1.5, "Tmax bias {bias}, p90 {tp90}");
    let cbv = median(r.iter().map(|(t, e)| (e[1] / t.cbv() - 1.0).abs()).collect());
    assert!(cbv <= 0.15, "CBV median error {cbv}");
}

#[test]
fn the_filter_averages_alike_curves_and_leaves_a_vessel_alone() {
    // Tissue, with a vessel-like curve 20× stronger in the last three columns; 5 HU noise.
    let ph = TilePhantom::grid(&[40.0], &[4.0], &[0.0], 300.0, 1.0, 40.0, 1, 0.0, 1);
    let tissue = &ph.tiles[0].voxels[0];
    let (nx, ny, n_t) = (16, 16, tissue.len());
    let mut rng = 12345u64;
    let mut noise = || {
        // Box–Muller on a small LCG: deterministic.
        let mut u = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos() * 5.0
    };
    let mut curves = vec![0f32; nx * ny * n_t];
    for p in 0..nx * ny {
        let gain = if p % nx < nx - 3 { 1.0 } else { 20.0 };
        for i in 0..n_t {
            curves[p * n_t + i] = (gain * tissue[i] + noise()) as f32;
        }
    }
    let mask = vec![true; nx * ny];
    let before = noise_sigma(&curves, n_t, &mask);
    let out = TipsFilter::default().apply_slice(&curves, nx, ny, n_t, &mask);
    let after = noise_sigma(&out, n_t, &mask);
    assert!((before / 5.0 - 1.0).abs() < 0.1, "noise estimate {before} for σ 5");
    assert!(after < before / 3.0, "noise {before} → {after}");
    // The tissue column next to the vessel keeps its own peak (no vessel blurred in).
    let peak = tissue.iter().cloned().fold(0.0, f64::max);
    for y in 2..ny - 2 {
        let p = y * nx + nx - 4;
        let got = out[p * n_t..(p + 1) * n_t].iter().cloned().fold(0f32, f32::max) as f64;
        assert!(got < peak + 4.0, "row {y}: tissue peak {got} beside the vessel (truth {peak})");
    }
}

#[test]
fn bad_curves_are_refused_with_their_field() {
    let times: Vec<f64> = (0..30).map(|i| i as f64).collect();
    let aif: Vec<f64> =
        times.iter().map(|&t| if t > 5.0 { (t - 5.0) * (-(t - 5.0) / 3.0).exp() } else { 0.0 }).collect();
    let fit = ModelFit::new(&aif, &times, FitGrid::default(), Constants::default()).unwrap();
    let e = fit.fit(&[1.0; 29]).unwrap_err().to_string();
    assert!(e.contains("tissue curve length") && e.contains("29"), "{e}");
    let mut c = vec![0f32; 30];
    c[3] = f32::NAN;
    assert!(fit.fit(&c).unwrap_err().to_string().contains("tissue sample"));
    let e = ModelFit::new(&vec![0.0; 30], &times, FitGrid::default(), Constants::default()).unwrap_err().to_string();
    assert!(e.contains("arterial curve area"), "{e}");
    let mut bad_t = times.clone();
    bad_t[4] = 3.0;
    let e = ModelFit::new(&aif, &bad_t, FitGrid::default(), Constants::default()).unwrap_err().to_string();
    assert!(e.contains("times_s"), "{e}");
    // A flat curve fits nothing: no flow, no Tmax.
    let f = fit.fit(&[0.0; 30]).unwrap();
    assert_eq!(f.cbf, 0.0);
    assert!(f.tmax_s.is_nan());
}

/// The two-scale fit's flow is unbiased where the per-voxel fit's is not: low-flow tissue
/// (CBF 5 and 10, MTT 10 s, delay 10 s, the ischaemic core) under noise that leaves each
/// voxel's curve near the noise floor. The guide is the tile's mean curve (what a regional
/// window averages to); the flow is each noisy voxel projected on the guide's model curve.
#[test]
fn guided_flow_is_unbiased_at_low_flow_where_the_per_voxel_fit_reads_high() {
    let ph = TilePhantom::grid_with(
        &[5.0, 10.0],
        &[10.0],
        &[10.0],
        Residue::Exponential,
        0.0,
        300.0,
        1.5,
        66.0,
        400,
        4.0,
        3,
    );
    let fit = ModelFit::new(&ph.aif, &ph.times_s, FitGrid::default(), Constants::default()).unwrap();
    let n_t = ph.times_s.len();
    for tile in &ph.tiles {
        let mut guide = vec![0f32; n_t];
        for v in &tile.voxels {
            for (g, &x) in guide.iter_mut().zip(v) {
                *g += x as f32 / tile.voxels.len() as f32;
            }
        }
        let sigma = 4.0;
        let mean = |f: &dyn Fn(&[f32]) -> f64| {
            tile.voxels.iter().map(|v| f(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())).sum::<f64>()
                / tile.voxels.len() as f64
        };
        let own = mean(&|c| fit.fit_noisy(c, sigma).unwrap().cbf);
        let guided = mean(&|c| fit.fit_guided(c, &guide, sigma / (tile.voxels.len() as f32).sqrt()).unwrap().cbf);
        let truth = tile.truth.cbf;
        assert!((guided / truth - 1.0).abs() < 0.10, "CBF {truth}: guided mean {guided:.2}");
        assert!(own / truth - 1.0 > 0.25, "CBF {truth}: the per-voxel fit was expected to read high, got {own:.2}");
    }
}
