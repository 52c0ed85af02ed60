//! Experiment: plain FDK against cone-beam corrections over the clinical preset's full 160 mm.
//! `cargo run --release -p gantry-recon --example wide_cone -- PHANTOM VIEWS`
use gantry_core::units::{mu_to_hu, MU_WATER_60KEV_PER_MM};
use gantry_core::{ScanProtocol, Volume, VolumeGeometry};
use gantry_phantom::{project_analytic, Phantom};
use gantry_project::{Joseph, Projector};
use gantry_recon::{fdk, FdkOptions, Window};
use ndarray::{s, Array3};
use std::time::Instant;

fn smooth_xy(v: &Volume, sigma: f64) -> Volume {
    if sigma <= 0.0 {
        return v.clone();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let ks: f64 = k.iter().sum();
    let (nz, ny, nx) = v.data.dim();
    let mut a = v.data.clone();
    let mut b = Array3::<f32>::zeros((nz, ny, nx));
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let mut acc = 0.0;
                let mut w = 0.0;
                for (t, kk) in k.iter().enumerate() {
                    let xx = x as isize + t as isize - r;
                    if xx >= 0 && (xx as usize) < nx {
                        acc += kk * a[[z, y, xx as usize]] as f64;
                        w += kk;
                    }
                }
                b[[z, y, x]] = (acc / w.max(1e-12) * 1.0) as f32;
            }
        }
    }
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let mut acc = 0.0;
                let mut w = 0.0;
                for (t, kk) in k.iter().enumerate() {
                    let yy = y as isize + t as isize - r;
                    if yy >= 0 && (yy as usize) < ny {
                        acc += kk * b[[z, yy as usize, x]] as f64;
                        w += kk;
                    }
                }
                a[[z, y, x]] = (acc / w.max(1e-12)) as f32;
            }
        }
    }
    let _ = ks;
    Volume { data: a, ..v.clone() }
}

fn pad_z(v: &Volume, n: usize) -> Volume {
    let g = &v.geometry;
    let (nz, ny, nx) = v.data.dim();
    let mut data = Array3::<f32>::zeros((nz + 2 * n, ny, nx));
    for k in 0..nz + 2 * n {
        let src = (k as isize - n as isize).clamp(0, nz as isize - 1) as usize;
        data.slice_mut(s![k, .., ..]).assign(&v.data.slice(s![src, .., ..]));
    }
    let mut pg = g.clone();
    pg.dims[2] += 2 * n;
    pg.origin_mm[2] -= n as f64 * g.spacing_mm[2];
    Volume { geometry: pg, data, quantity: v.quantity }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("head");
    let views: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let passes: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let sigma: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let pad: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(32);
    let mw = MU_WATER_60KEV_PER_MM;
    let phantom = match which {
        "head" => Phantom::head(mw),
        "water" => Phantom::water_cylinder(100.0, 400.0, mw),
        "water160" => Phantom::water_cylinder(100.0, 160.0, mw),
        "defrise" => Phantom::defrise(mw, 100.0, 8.0, 8.0, 13),
        _ => panic!("phantom"),
    };
    let mut p = ScanProtocol::clinical_wide_detector();
    p.views_per_rotation = views;
    let scan = p.build().unwrap();
    let t = Instant::now();
    let proj = project_analytic(&phantom, &scan);
    eprintln!("projected in {:.1} s", t.elapsed().as_secs_f64());
    let grid = VolumeGeometry::centered([256, 256, 256], [1.0, 1.0, 0.625], [0.0; 3]).unwrap();
    let opts = FdkOptions { window: Window::SheppLogan, cutoff: 0.6, subset_size: 8 };
    let t = Instant::now();
    let x1 = fdk(&proj, &grid, &opts, &|_, _| {}).unwrap();
    let t_fdk = t.elapsed().as_secs_f64();
    let truth = phantom.voxelize(&grid, 2);
    report("plain FDK", which, &x1, &truth, mw);
    let mut x = x1.clone();
    for pass in 0..passes {
        let t = Instant::now();
        let sx = smooth_xy(&x, sigma);
        let padded = pad_z(&sx, pad);
        let a = Joseph::new(padded.geometry.clone(), scan.clone()).unwrap();
        let reproj = a.project(&padded).unwrap();
        let t_fp = t.elapsed().as_secs_f64();
        let y = fdk(&reproj, &grid, &opts, &|_, _| {}).unwrap();
        // x_{n+1} = x_n + (x1 − B S x_n) + (S x_n − ... ) : with S: x_{n+1} = x_n − (B S x_n − S x_n) computed from x1 data
        let mut next = x1.clone();
        // next = x1 − (B S x − S x) when x = x1; general: x + x1 − B S x ... keep residual form
        ndarray::Zip::from(&mut next.data).and(&x.data).and(&y.data).and(&sx.data).and(&x1.data).for_each(
            |n, &xn, &yn, &sxn, &x1n| {
                *n = xn + (x1n - yn) - (xn - sxn) * 0.0 + 0.0 * sxn;
            },
        );
        // With smoothing, the fixed point differs; use x1 − (B S x − S x) form for pass 0.
        if pass == 0 {
            ndarray::Zip::from(&mut next.data).and(&x1.data).and(&y.data).and(&sx.data).for_each(|n, &a, &b, &c| {
                *n = a - (b - c);
            });
        }
        x = next;
        eprintln!(
            "pass {pass}: forward {t_fp:.1} s, total {:.1} s (plain FDK {t_fdk:.1} s)",
            t.elapsed().as_secs_f64()
        );
        report(&format!("pass {}", pass + 1), which, &x, &truth, mw);
    }
}

fn report(label: &str, which: &str, x: &Volume, truth: &Volume, mw: f64) {
    let g = &x.geometry;
    let (nz, ny, nx) = x.data.dim();
    let hu = |v: f32| mu_to_hu(v as f64, mw);
    if which == "defrise" {
        // Gap voxels (truth air, 1 mm clear of a disc in z) within r < 80 mm, |z| in bands.
        for (lo, hi) in [(0.0, 20.0), (20.0, 50.0), (50.0, 80.0)] {
            let mut v = Vec::new();
            for k in 2..nz - 2 {
                let z = g.position_mm(0.0, 0.0, k as f64)[2].abs();
                if z < lo || z >= hi {
                    continue;
                }
                for j in 0..ny {
                    for i in 0..nx {
                        let p = g.position_mm(i as f64, j as f64, k as f64);
                        if p[0].hypot(p[1]) > 80.0 {
                            continue;
                        }
                        if (k - 2..=k + 2).all(|kk| truth.data[[kk, j, i]] == 0.0) {
                            v.push(x.data[[k, j, i]] as f64);
                        }
                    }
                }
            }
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n).sqrt();
            println!(
                "{label}: gaps |z| {lo}-{hi}: mean {:.1} HU-equiv, sd {:.2} (x1000/mu_w) n {}",
                m / mw * 1000.0,
                sd / mw * 1000.0,
                v.len()
            );
        }
        return;
    }
    let mut line = format!("{label}:");
    for z0 in [-70.0, -50.0, 0.0, 50.0, 70.0] {
        let mut acc = 0.0;
        let mut n = 0usize;
        for k in 1..nz - 1 {
            let z = g.position_mm(0.0, 0.0, k as f64)[2];
            if (z - z0).abs() > 2.0 {
                continue;
            }
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let c = truth.data[[k, j, i]];
                    let tc = hu(c);
                    let wanted = if which == "head" {
                        (tc - 37.0).abs() < 0.5 || (tc - 28.0).abs() < 0.5
                    } else {
                        tc.abs() < 0.5
                    };
                    if !wanted {
                        continue;
                    }
                    let uniform = (k - 1..=k + 1)
                        .all(|kk| (j - 1..=j + 1).all(|jj| (i - 1..=i + 1).all(|ii| truth.data[[kk, jj, ii]] == c)));
                    if uniform {
                        acc += hu(x.data[[k, j, i]]) - tc;
                        n += 1;
                    }
                }
            }
        }
        line += &format!("  z={z0}: {:+.2} HU ({n})", acc / n.max(1) as f64);
    }
    // Mid-plane RMSE (|z| < 10)
    let mut s2 = 0.0;
    let mut n = 0;
    for k in 1..nz - 1 {
        if g.position_mm(0.0, 0.0, k as f64)[2].abs() > 10.0 {
            continue;
        }
        for j in 1..ny - 1 {
            for i in 1..nx - 1 {
                let c = truth.data[[k, j, i]];
                if hu(c) < -900.0 {
                    continue;
                }
                let uniform = (k - 1..=k + 1)
                    .all(|kk| (j - 1..=j + 1).all(|jj| (i - 1..=i + 1).all(|ii| truth.data[[kk, jj, ii]] == c)));
                if uniform {
                    s2 += (hu(x.data[[k, j, i]]) - hu(c)).powi(2);
                    n += 1;
                }
            }
        }
    }
    line += &format!("  midplane RMSE {:.2} HU", (s2 / n.max(1) as f64).sqrt());
    println!("{line}");
}
