//! The wide-cone figures of the clinical preset over its full 160 mm: plain FDK against
//! cone-parallel FDK (with the cone-angle weighting) and against it with the cone-artefact
//! correction, on several phantom families, with the time of each.
//!
//! `cargo run --release -p gantry-recon --example wide_cone -- PHANTOM [VIEWS] [N_XY]`
//! PHANTOM: head, head2 (smaller, longer, lower, tilted: the family the settings were chosen on),
//! water (a 400 mm cylinder), water120 (120 mm long, its ends inside the cone), defrise.
//! Environment: METHODS (plain,cone,corrected), FADE (rows, default the library's).
//!
//! For each phantom: the mean error (HU) of uniform regions (voxels whose 5×5×5 truth
//! neighbourhood is one tissue) in slabs |z − z0| ≤ 2 mm at z0 = −70, −50, 0, 50, 70 mm, and the
//! mid-plane RMSE (|z| ≤ 10 mm, 3×3×3-uniform voxels); for the Defrise phantom the mean and
//! standard deviation of the gaps between discs in z bands.
use gantry_core::units::{mu_to_hu, MU_WATER_60KEV_PER_MM};
use gantry_core::{ScanProtocol, Volume, VolumeGeometry};
use gantry_phantom::{project_analytic, Phantom, Shape};
use gantry_recon::fdk::ConeHandling;
use gantry_recon::wide_cone::ConeArtefactCorrection;
use gantry_recon::{fdk, FdkOptions, Window};
use std::time::Instant;

/// A second head family: 0.92 × in-plane, 1.05 × along z, tilted 8° about x, 12 mm lower.
fn head2(mw: f64) -> Phantom {
    let mut h = Phantom::head(mw);
    let (c, s) = (8f64.to_radians().cos(), 8f64.to_radians().sin());
    for sh in &mut h.shapes {
        if let Shape::Ellipsoid { center_mm, semi_axes_mm, rotation, .. } = sh {
            let [x, y, z] = *center_mm;
            *center_mm = [0.92 * x, 0.92 * (c * y - s * z), 1.05 * (s * y + c * z) - 12.0];
            semi_axes_mm[0] *= 0.92;
            semi_axes_mm[1] *= 0.92;
            semi_axes_mm[2] *= 1.05;
            let rx = [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]];
            let r = *rotation;
            *rotation = std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| r[i][k] * rx[k][j]).sum()));
        }
    }
    h
}

fn uniform(truth: &Volume, k: usize, j: usize, i: usize, r: usize) -> bool {
    let (nz, ny, nx) = truth.data.dim();
    if k < r || j < r || i < r || k + r >= nz || j + r >= ny || i + r >= nx {
        return false;
    }
    let c = truth.data[[k, j, i]];
    (k - r..=k + r).all(|kk| (j - r..=j + r).all(|jj| (i - r..=i + r).all(|ii| truth.data[[kk, jj, ii]] == c)))
}

fn report(label: &str, defrise: bool, x: &Volume, truth: &Volume, mw: f64) {
    let g = &x.geometry;
    let (nz, ny, nx) = x.data.dim();
    let hu = |v: f32| mu_to_hu(v as f64, mw);
    let z_of = |k: usize| g.position_mm(0.0, 0.0, k as f64)[2];
    if defrise {
        let mut line = format!("{label}:");
        for (lo, hi) in [(0.0, 20.0), (20.0, 50.0), (50.0, 80.0)] {
            let mut v = Vec::new();
            for k in 2..nz - 2 {
                if !(lo..hi).contains(&z_of(k).abs()) {
                    continue;
                }
                for j in 0..ny {
                    for i in 0..nx {
                        let p = g.position_mm(i as f64, j as f64, k as f64);
                        if p[0].hypot(p[1]) <= 80.0 && (k - 2..=k + 2).all(|kk| truth.data[[kk, j, i]] == 0.0) {
                            v.push(hu(x.data[[k, j, i]]) + 1000.0);
                        }
                    }
                }
            }
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n).sqrt();
            line += &format!("  gaps |z| {lo}–{hi} mm: mean {m:+.1}, sd {sd:.1} HU above air");
        }
        println!("{line}");
        return;
    }
    let mut line = format!("{label}:");
    for z0 in [-70.0, -50.0, 0.0, 50.0, 70.0] {
        let (mut acc, mut n) = (0.0, 0usize);
        for k in 0..nz {
            if (z_of(k) - z0).abs() > 2.0 {
                continue;
            }
            for j in 0..ny {
                for i in 0..nx {
                    let t = hu(truth.data[[k, j, i]]);
                    if t > -900.0 && t < 100.0 && uniform(truth, k, j, i, 2) {
                        acc += hu(x.data[[k, j, i]]) - t;
                        n += 1;
                    }
                }
            }
        }
        line += &format!("  z {z0:+}: {:+.2}", acc / n.max(1) as f64);
    }
    let (mut s2, mut n) = (0.0, 0usize);
    for k in 0..nz {
        if z_of(k).abs() > 10.0 {
            continue;
        }
        for j in 0..ny {
            for i in 0..nx {
                let t = hu(truth.data[[k, j, i]]);
                if t > -900.0 && uniform(truth, k, j, i, 1) {
                    s2 += (hu(x.data[[k, j, i]]) - t).powi(2);
                    n += 1;
                }
            }
        }
    }
    println!("{line}  HU; mid-plane RMSE {:.2} HU", (s2 / n.max(1) as f64).sqrt());
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("head");
    let views: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n_xy: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
    let mw = MU_WATER_60KEV_PER_MM;
    let phantom = match which {
        "head" => Phantom::head(mw),
        "head2" => head2(mw),
        "water" => Phantom::water_cylinder(100.0, 400.0, mw),
        "water120" => Phantom::water_cylinder(100.0, 120.0, mw),
        "defrise" => Phantom::defrise(mw, 100.0, 8.0, 8.0, 13),
        other => panic!("unknown phantom {other:?}"),
    };
    let mut p = ScanProtocol::clinical_wide_detector();
    p.views_per_rotation = views;
    let scan = p.build().unwrap();
    let t = Instant::now();
    let proj = project_analytic(&phantom, &scan);
    eprintln!("{which}: {views} views projected in {:.1} s", t.elapsed().as_secs_f64());
    let spacing = 256.0 / n_xy as f64;
    let grid = VolumeGeometry::centered([n_xy, n_xy, 256], [spacing, spacing, 0.625], [0.0; 3]).unwrap();
    let truth = phantom.voxelize(&grid, 2);
    let cone = match std::env::var("FADE").ok().and_then(|v| v.parse::<f64>().ok()) {
        Some(fade_rows) => ConeHandling::Weighted { exponent: 0.0, fade_rows },
        None => ConeHandling::default(),
    };
    let methods = std::env::var("METHODS").unwrap_or_else(|_| "plain,cone,corrected".into());
    for method in methods.split(',') {
        let opts = FdkOptions {
            window: Window::SheppLogan,
            cutoff: 0.6,
            cone: if method == "plain" { ConeHandling::Plain } else { cone },
            cone_correction: (method == "corrected").then(ConeArtefactCorrection::default),
            ..FdkOptions::default()
        };
        let t = Instant::now();
        let x = fdk(&proj, &grid, &opts, &|_, _| {}).unwrap();
        report(&format!("{method} ({:.1} s)", t.elapsed().as_secs_f64()), which == "defrise", &x, &truth, mw);
    }
}
