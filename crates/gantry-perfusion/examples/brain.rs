//! Runs the stroke pipeline on the brain phantom and prints the figures against the truth:
//! `cargo run --release -p gantry-perfusion --example brain [noise_hu] [typical|large|mimic|graded] [downsample] [motion]`.
//! `graded` is `BrainConfig::scanner_like` (256 × 256 × 8, 45 frames, correlated noise; the
//! downsample argument is then the seed).
//! Environment: `ROW=1` prints the bench table's row; `TIPS=σ,λ,passes`, `FILL=mm²`,
//! `CLEAN=radius` and `UNTIME=evidence` (0: no regional timing) change the pipeline's options.

use gantry_perfusion::{run_stroke, StrokeOptions};
use gantry_phantom::perfusion_brain::{BrainClass, BrainConfig, BrainPhantom, Lesion, Motion};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let noise: f64 = args.get(1).map(|s| s.parse().expect("noise")).unwrap_or(0.0);
    let case = args.get(2).map(String::as_str).unwrap_or("typical");
    let lesion = match case {
        "typical" => Some(Lesion::typical()),
        "large" => Some(Lesion::large_core()),
        "mimic" | "graded" => None,
        o => panic!("unknown case {o}"),
    };
    let down: usize = args.get(3).map(|s| s.parse().expect("downsample")).unwrap_or(1);
    let motion = args.get(4).map(|_| Motion { fraction: 0.1, translation_mm: 3.0, rotation_deg: 3.0 });
    let config = if case == "graded" {
        let mut c = BrainConfig { noise_hu: noise, motion, ..BrainConfig::scanner_like(down as u64) };
        // Knobs to take one realism away at a time.
        for (key, f) in [
            ("NO_INTEGRATION", &(|c: &mut BrainConfig| c.frame_integration_s = 0.0) as &dyn Fn(&mut BrainConfig)),
            ("NO_RECIRCULATION", &|c: &mut BrainConfig| c.recirculation = None),
            ("NO_POSE", &|c: &mut BrainConfig| c.pose = None),
            ("WHITE_NOISE", &|c: &mut BrainConfig| c.noise_correlation_px = 0.0),
            ("FLOAT_HU", &|c: &mut BrainConfig| c.integer_hu = false),
            ("SAMPLING_1S", &|c: &mut BrainConfig| {
                c.frame_interval_s = 1.0;
                c.n_frames = 68;
            }),
        ] {
            if std::env::var(key).is_ok() {
                f(&mut c);
            }
        }
        c
    } else {
        BrainConfig { noise_hu: noise, lesion, motion, ..BrainConfig::clinical().downsampled(down) }
    };
    let t0 = Instant::now();
    let phantom = BrainPhantom::new(&config);
    println!("phantom {:?} generated in {:.1} s", config.dims, t0.elapsed().as_secs_f64());
    let truth = phantom.truth.clone();
    let t0 = Instant::now();
    let mut options = StrokeOptions::default();
    if let Ok(v) = std::env::var("TIPS") {
        let p: Vec<f64> = v.split(',').map(|x| x.parse().expect("number")).collect();
        options.denoise =
            Some(gantry_perfusion::TipsFilter { sigma_spatial_px: p[0], range: p[1], passes: p[2] as usize });
    }
    if let Ok(v) = std::env::var("FLOW") {
        options.flow_window_mm = v.parse().expect("mm");
    }
    if let Ok(v) = std::env::var("FILL") {
        options.fill_patch_mm2 = v.parse().expect("mm²");
    }
    if let Ok(v) = std::env::var("UNTIME") {
        options.untimeable_evidence = v.parse().expect("evidence");
    }
    if let Ok(v) = std::env::var("CLEAN") {
        options.clean_radius_px = v.parse().expect("radius");
    }
    let r = run_stroke(phantom.series, &options).expect("pipeline");
    let total = t0.elapsed().as_secs_f64();
    for (s, t) in &r.steps {
        println!("  {s:<28} {t:6.2} s");
    }
    println!("pipeline {total:.2} s");
    if std::env::var("ROW").is_ok() {
        // One markdown row: case, noise, motion, core (truth), Tmax>6 (truth), flags right,
        // AIF in artery, VOF in sinus, scale error, pipeline s, step times.
        let d = &r.decision;
        let aif_ok = r.aif.voxels.iter().all(|v| truth.labels[[v[0], v[1], v[2]]] == BrainClass::Artery as u8);
        let vof_ok = r.vof.voxels.iter().all(|v| truth.labels[[v[0], v[1], v[2]]] == BrainClass::Sinus as u8);
        let area = |c: &[f64]| c.iter().sum::<f64>();
        let scale_err = r.aif_scale / (area(&truth.aif) / area(&r.aif.curve)) - 1.0;
        let steps: Vec<String> = r.steps.iter().map(|(_, t)| format!("{t:.2}")).collect();
        println!(
            "ROW | {} | {} | {} | {:.1} ({:.1}) | {:+.1} | {:.1} ({:.1}) | {:+.1} | {:.1} ({:.1}) | {} / {} ({} / {}) | {} | {} | {:+.1} % | {:.1} | {} |",
            args.get(2).map(String::as_str).unwrap_or("typical"),
            noise * down as f64,
            if motion.is_some() { "10 %" } else { "none" },
            d.core_ml,
            truth.core_ml,
            d.core_ml - truth.core_ml,
            d.hypoperfused_ml,
            truth.tmax6_ml,
            d.hypoperfused_ml - truth.tmax6_ml,
            d.tmax_ml[3].1,
            truth.tmax10_ml,
            d.defuse3,
            d.extend,
            truth.defuse3(),
            truth.extend(),
            if aif_ok { "yes" } else { "NO" },
            if vof_ok { "yes" } else { "NO" },
            100.0 * scale_err,
            total,
            steps.join(" / "),
        );
    }
    let d = &r.decision;
    println!(
        "core {:.1} mL (truth {:.1}), Tmax>6 {:.1} mL (truth {:.1}), Tmax>10 {:.1} (truth {:.1})",
        d.core_ml, truth.core_ml, d.hypoperfused_ml, truth.tmax6_ml, d.tmax_ml[3].1, truth.tmax10_ml
    );
    println!(
        "ref CBF {:.1}, DEFUSE-3 {} (truth {}), EXTEND {} (truth {}), side {:?}",
        d.reference_cbf,
        d.defuse3,
        truth.defuse3(),
        d.extend,
        truth.extend(),
        d.affected_side
    );
    println!(
        "AIF peak {:.0} ΔHU scale {:.3}, VOF peak {:.0}, noise {:.2}, baseline {:?}",
        r.aif.peak_hu, r.aif_scale, r.vof.peak_hu, r.noise_hu, r.timing.baseline
    );
    let outside = r.aif.voxels.iter().filter(|v| truth.labels[[v[0], v[1], v[2]]] != BrainClass::Artery as u8).count();
    let vof_out = r.vof.voxels.iter().filter(|v| truth.labels[[v[0], v[1], v[2]]] != BrainClass::Sinus as u8).count();
    println!(
        "AIF voxels {} ({} outside an artery), VOF voxels {} ({} outside the sinus)",
        r.aif.voxels.len(),
        outside,
        r.vof.voxels.len(),
        vof_out
    );
    for (t, m) in r.motion.iter().enumerate() {
        if m.displacement_mm > 0.2 || truth.motion[t] != ([0.0; 3], [0.0; 3]) {
            let (w, tr) = truth.motion[t];
            let angle = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt().to_degrees();
            println!(
                "  frame {t}: estimated t {:.2?} mm, {:.2}°, residual {:.1}, excluded {}; true t {:.2?}, {:.2}°",
                m.transform.translation_mm,
                m.transform.angle_deg(),
                m.residual,
                m.excluded,
                tr,
                angle
            );
        }
    }
    let trap = |v: &[f64]| v.windows(2).map(|w| w[0] + w[1]).sum::<f64>();
    println!(
        "areas (trapezoid, 2 s): AIF measured {:.0} true {:.0}; VOF measured {:.0} true {:.0}",
        r.aif.area,
        trap(&truth.aif),
        r.vof.area,
        trap(&truth.vof)
    );
    println!("untimeable voxels pooled: {}", r.untimeable_voxels);
    {
        // Measured (rescaled) arterial curve against the truth: before arrival, first pass, tail.
        let m: Vec<f64> = r.aif.curve.iter().map(|v| v * r.aif_scale).collect();
        let peak = truth.aif.iter().enumerate().fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
        let seg = |a: usize, b: usize| {
            (a..b.min(m.len())).map(|i| m[i] - truth.aif[i]).sum::<f64>() / (b.min(m.len()) - a) as f64
        };
        if std::env::var("AIF_CURVE").is_ok() {
            for (i, (a, b)) in m.iter().zip(&truth.aif).enumerate() {
                println!("  aif frame {i}: measured {a:.1} truth {b:.1} diff {:+.1}", a - b);
            }
        }
        println!(
            "AIF error (ΔHU, rescaled minus truth): baseline {:+.1}, first pass {:+.1}, tail {:+.1}",
            seg(0, r.timing.baseline.end),
            seg(r.timing.baseline.end, peak + 4),
            seg(peak + 4, m.len())
        );
    }
    per_class(&r, &truth.labels);
    regions(&r, &truth);
    let pr = &r.precision;
    println!(
        "PRECISION kappa {:.2}, N_eff {:.1}, effective noise {:.1} HU/0.45 mm; CBF se {:.1} % of the cut, Tmax se {:.2} s; core [{:.1}, {:.1}] (truth {:.1} {}), Tmax>6 [{:.1}, {:.1}] (truth {:.1} {}), mismatch [{:.1}, {:.1}] (truth {:.1}); uncertain DEFUSE-3 {} EXTEND {}",
        pr.correlation_factor,
        pr.effective_samples,
        r.effective_noise_045_hu,
        100.0 * pr.core_cbf_se,
        pr.tmax_se_s,
        pr.core_ml.low,
        pr.core_ml.high,
        truth.core_ml,
        if pr.core_ml.contains(truth.core_ml) { "inside" } else { "OUTSIDE" },
        pr.hypoperfused_ml.low,
        pr.hypoperfused_ml.high,
        truth.tmax6_ml,
        if pr.hypoperfused_ml.contains(truth.tmax6_ml) { "inside" } else { "OUTSIDE" },
        pr.mismatch_ml.low,
        pr.mismatch_ml.high,
        truth.mismatch_ml(),
        pr.defuse3_uncertain,
        pr.extend_uncertain,
    );
    for q in &r.quality {
        println!("  quality: {q}");
    }
}

/// Median CBF in the true core and in normal white matter against the truth, each voxel's
/// truth the mean over its slice profile (maps on the phantom's grid only).
fn regions(r: &gantry_perfusion::StrokeResult, truth: &gantry_phantom::perfusion_brain::BrainTruth) {
    if r.maps.cbf.data.shape() != truth.labels.shape() {
        return;
    }
    let cbf = r.maps.cbf.data.as_slice().unwrap();
    let median = |mut v: Vec<f64>| {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[v.len() / 2]
        }
    };
    // Interior voxels: the voxel pure through its slice profile and its in-plane 4-neighbours
    // of the same class.
    let (nz, ny, nx) = truth.labels.dim();
    let lab = truth.labels.as_slice().unwrap();
    let pv = truth.cbf_pv.as_slice().unwrap();
    let pure = |i: usize| {
        let own = truth.class_perfusion[lab[i] as usize].map_or(0.0, |t| t.cbf as f32);
        let (j, x) = ((i / nx) % ny, i % nx);
        (pv[i] - own).abs() < 1e-3
            && j > 0
            && j + 1 < ny
            && x > 0
            && x + 1 < nx
            && [i - 1, i + 1, i - nx, i + nx].iter().all(|&q| lab[q] == lab[i])
    };
    let _ = nz;
    for (name, pick) in [
        ("core", &(|c: BrainClass| c.is_core()) as &dyn Fn(BrainClass) -> bool),
        ("white core", &|c: BrainClass| c == BrainClass::WhiteCore),
        ("grey core", &|c: BrainClass| c == BrainClass::GreyCore),
        ("white_matter", &|c: BrainClass| c == BrainClass::WhiteMatter),
        ("grey matter", &|c: BrainClass| c == BrainClass::GreyMatter),
        ("penumbra", &|c: BrainClass| c.is_penumbra()),
    ] {
        let idx: Vec<usize> = truth
            .labels
            .iter()
            .enumerate()
            .filter(|(i, &l)| r.tissue[*i] && pick(BrainClass::from_u8(l)) && (!name.contains(' ') || pure(*i)))
            .map(|(i, _)| i)
            .collect();
        let got = median(idx.iter().map(|&i| cbf[i] as f64).collect());
        let truth_of = |f: &dyn Fn(&gantry_phantom::perfusion::Tissue) -> f64| {
            median(
                idx.iter()
                    .filter_map(|&i| truth.class_perfusion[truth.labels.as_slice().unwrap()[i] as usize].map(|t| f(&t)))
                    .collect(),
            )
        };
        let want = median(idx.iter().map(|&i| truth.cbf_pv.as_slice().unwrap()[i] as f64).collect());
        let map_median = |m: &gantry_core::Volume| {
            let d = m.data.as_slice().unwrap();
            median(idx.iter().map(|&i| d[i] as f64).collect())
        };
        println!(
            "REGION {name}: CBF median {got:.1} (truth {want:.1}, {:+.0} %); CBV {:.2} ({:.2}), MTT {:.1} ({:.1}), Tmax {:.1} ({:.1})",
            100.0 * (got / want - 1.0),
            map_median(&r.maps.cbv),
            truth_of(&|t| t.cbv()),
            map_median(&r.maps.mtt),
            truth_of(&|t| t.mtt_s),
            map_median(&r.maps.tmax),
            truth_of(&|t| t.delay_s),
        );
    }
}

/// Per-class medians of the maps; when the maps are on a coarser grid (binned by a whole
/// factor in x and y), each map voxel takes the class of the phantom voxel at its corner, and
/// voxels whose block holds more than one class are left out.
#[allow(dead_code)]
pub fn per_class(r: &gantry_perfusion::StrokeResult, labels: &ndarray::Array3<u8>) {
    let (ms, ls) = (r.maps.cbf.data.shape(), labels.shape());
    // Arrays are [z, y, x].
    if ms[0] != ls[0] || ls[1] % ms[1] != 0 || ls[2] % ms[2] != 0 {
        return;
    }
    let (fy, fx) = (ls[1] / ms[1], ls[2] / ms[2]);
    let map_labels = ndarray::Array3::from_shape_fn((ms[0], ms[1], ms[2]), |(k, j, i)| {
        let c = labels[[k, j * fy, i * fx]];
        let pure = (0..fy).all(|b| (0..fx).all(|a| labels[[k, j * fy + b, i * fx + a]] == c));
        if pure {
            c
        } else {
            u8::MAX
        }
    });
    let labels = &map_labels;
    let cbf = r.maps.cbf.data.as_slice().unwrap();
    let tmax = r.maps.tmax.data.as_slice().unwrap();
    for c in 0..gantry_phantom::perfusion_brain::N_CLASSES as u8 {
        let idx: Vec<usize> = labels.iter().enumerate().filter(|(_, &l)| l == c).map(|(i, _)| i).collect();
        let tis: Vec<usize> = idx.iter().cloned().filter(|&i| r.tissue[i]).collect();
        if tis.is_empty() {
            continue;
        }
        let sorted = |v: &[f32]| {
            let mut x: Vec<f32> = tis.iter().map(|&i| v[i]).filter(|v| v.is_finite()).collect();
            x.sort_by(|a, b| a.total_cmp(b));
            x
        };
        let q = |x: &[f32], p: f64| if x.is_empty() { f32::NAN } else { x[((x.len() - 1) as f64 * p) as usize] };
        let (c_sorted, t_sorted) = (sorted(cbf), sorted(tmax));
        let e_sorted = sorted(r.maps.evidence.data.as_slice().unwrap());
        let hypo = tis.iter().filter(|&&i| r.hypoperfused[i]).count();
        let core = tis.iter().filter(|&&i| r.core[i]).count();
        println!(
            "  class {:?}: {} voxels, {} in tissue; CBF median {:.1}, Tmax p10/50/90 {:.2}/{:.2}/{:.2}; hypo {:.1} %, core {:.1} %; evidence p10/50/90 {:.0}/{:.0}/{:.0}",
            BrainClass::from_u8(c),
            idx.len(),
            tis.len(),
            q(&c_sorted, 0.5),
            q(&t_sorted, 0.1),
            q(&t_sorted, 0.5),
            q(&t_sorted, 0.9),
            100.0 * hypo as f64 / tis.len() as f64,
            100.0 * core as f64 / tis.len() as f64,
            q(&e_sorted, 0.1),
            q(&e_sorted, 0.5),
            q(&e_sorted, 0.9),
        );
    }
}
