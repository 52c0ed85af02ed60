//! Decision figures on maps whose regions, and so whose volumes, are known exactly.

use gantry_perfusion::{decide, Side, Thresholds};

const NX: usize = 40;
const NY: usize = 40;
const NZ: usize = 10;
const VOXEL_ML: f64 = 0.05;

struct Maps {
    cbf: Vec<f32>,
    tmax: Vec<f32>,
    brain: Vec<bool>,
    side: Vec<Side>,
}

fn idx(x: usize, y: usize, z: usize) -> usize {
    (z * NY + y) * NX + x
}

/// Normal brain (CBF 50, Tmax 2 s); the left hemisphere is x < 20.
fn normal() -> Maps {
    let n = NX * NY * NZ;
    let side = (0..n).map(|i| if i % NX < NX / 2 { Side::Left } else { Side::Right }).collect();
    Maps { cbf: vec![50.0; n], tmax: vec![2.0; n], brain: vec![true; n], side }
}

fn fill(m: &mut Maps, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>, cbf: f32, tmax: f32) {
    for z in 0..NZ {
        for y in ys.clone() {
            for x in xs.clone() {
                m.cbf[idx(x, y, z)] = cbf;
                m.tmax[idx(x, y, z)] = tmax;
            }
        }
    }
}

#[test]
fn volumes_ratios_and_flags_of_a_left_mca_lesion() {
    let mut m = normal();
    // Hypoperfused: 12 × 25 × 10 voxels = 150 mL at Tmax 8 s …
    fill(&mut m, 2..14, 5..30, 30.0, 8.0);
    // … of which 5 × 10 × 10 = 25 mL is core (CBF 10 = 20 % of 50, Tmax 12 s) …
    fill(&mut m, 2..7, 5..15, 10.0, 12.0);
    // … and another 25 mL at Tmax 11 s, CBF 20 (40 %: not core).
    fill(&mut m, 7..12, 5..15, 20.0, 11.0);
    // Low flow without hypoperfusion (Tmax 3 s): not core, and not normal-contralateral.
    fill(&mut m, 15..19, 30..35, 5.0, 3.0);
    // A voxel without an estimate.
    m.cbf[idx(1, 1, 1)] = f32::NAN;
    let d = decide(&m.cbf, &m.tmax, &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap();
    assert_eq!(d.affected_side, Some(Side::Left));
    assert!((d.reference_cbf - 50.0).abs() < 1e-9, "reference {}", d.reference_cbf);
    assert!((d.core_ml - 25.0).abs() < 1e-9, "core {}", d.core_ml);
    assert!((d.hypoperfused_ml - 150.0).abs() < 1e-9);
    let v = |t: f64| d.tmax_ml.iter().find(|(s, _)| *s == t).unwrap().1;
    assert!((v(4.0) - 150.0).abs() < 1e-9 && (v(8.0) - 50.0).abs() < 1e-9 && (v(10.0) - 50.0).abs() < 1e-9);
    assert!((d.mismatch_ml - 125.0).abs() < 1e-9);
    assert!((d.mismatch_ratio.unwrap() - 6.0).abs() < 1e-9);
    assert!((d.hypoperfusion_intensity_ratio.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(d.defuse3 && d.extend);
    assert_eq!(d.unestimated_voxels, 1);
}

#[test]
fn a_large_core_or_a_small_mismatch_fails_the_criteria() {
    // Core 80 mL (16 × 10 × 10 at 0.05 mL) inside 160 mL of Tmax > 6 s, on the right.
    let mut m = normal();
    fill(&mut m, 22..38, 0..20, 30.0, 9.0);
    fill(&mut m, 22..38, 0..10, 5.0, 14.0);
    let d = decide(&m.cbf, &m.tmax, &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap();
    assert_eq!(d.affected_side, Some(Side::Right));
    assert!((d.core_ml - 80.0).abs() < 1e-9 && (d.hypoperfused_ml - 160.0).abs() < 1e-9);
    assert!(!d.defuse3 && !d.extend, "core ≥ 70 mL");
    // Core 20 mL, hypoperfusion 30 mL: ratio 1.5, mismatch 10 mL — neither DEFUSE-3 (ratio
    // < 1.8) nor EXTEND (mismatch not > 10 mL).
    let mut m = normal();
    fill(&mut m, 22..28, 0..10, 30.0, 9.0);
    fill(&mut m, 22..26, 0..10, 5.0, 14.0);
    let d = decide(&m.cbf, &m.tmax, &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap();
    assert!((d.core_ml - 20.0).abs() < 1e-9 && (d.hypoperfused_ml - 30.0).abs() < 1e-9);
    assert!(!d.defuse3 && !d.extend);
}

#[test]
fn no_lesion_gives_no_core_no_side_and_no_flags() {
    let m = normal();
    let d = decide(&m.cbf, &m.tmax, &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap();
    assert_eq!((d.core_ml, d.hypoperfused_ml, d.affected_side), (0.0, 0.0, None));
    assert_eq!((d.mismatch_ratio, d.hypoperfusion_intensity_ratio), (None, None));
    assert!(!d.defuse3 && !d.extend);
}

#[test]
fn bad_maps_are_refused() {
    let m = normal();
    let e = decide(&m.cbf, &m.tmax[1..], &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap_err().to_string();
    assert!(e.contains("Tmax map") && e.contains("15999"), "{e}");
    let e = decide(&m.cbf, &m.tmax, &m.brain, &m.side, 0.0, Thresholds::default()).unwrap_err().to_string();
    assert!(e.contains("voxel volume"), "{e}");
    let late = vec![9.0f32; m.cbf.len()];
    let e = decide(&m.cbf, &late, &m.brain, &m.side, VOXEL_ML, Thresholds::default()).unwrap_err().to_string();
    assert!(e.contains("normal contralateral tissue"), "{e}");
}
