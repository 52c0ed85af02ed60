//! One suite for every backprojector (`gantry_project::backprojectors()`; a GPU one later joins
//! the list and runs the same trials). Each implementation is checked against independent
//! truths where one exists — bilinear interpolation reproduces a projection that is linear in
//! the detector coordinates exactly, so the backprojection of such views is known in closed
//! form — and against the general reference path on random data for everything else (cone
//! weighting on cone-parallel rays, subsets, every geometry it supports). An implementation this
//! CPU cannot run (AVX2 without the instructions) is listed as ignored with the reason.

mod common;
use common::{geometries, random_array};

use gantry_core::geometry::{dot, sub};
use gantry_core::{Beam, ConeParallelGeometry, DetectorShape, ScanFrame, ScanGeometry, Volume, VolumeGeometry};
use gantry_project::backproject::Rays;
use gantry_project::{
    backprojectors, Backproject, BackprojectOptions, ColumnBackprojector, ColumnKernel, ConeWeighting, DistanceWeight,
    GeneralBackprojector,
};
use libtest_mimic::{Arguments, Failed, Trial};
use ndarray::{s, Array3};

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(msg().into())
    }
}

/// Backprojects `proj` along `rays` in two subsets, as FDK does.
fn run(
    b: &dyn Backproject,
    grid: &VolumeGeometry,
    rays: Rays,
    options: &BackprojectOptions,
    proj: &Array3<f32>,
    factors: &[f32],
) -> Result<Volume, Failed> {
    let mut acc = b.start(grid, rays, options).map_err(|e| e.to_string())?;
    let h = proj.shape()[0] / 2;
    acc.add(0, proj.slice(s![..h, .., ..]), &factors[..h]).map_err(|e| e.to_string())?;
    acc.add(h, proj.slice(s![h.., .., ..]), &factors[h..]).map_err(|e| e.to_string())?;
    Ok(acc.finish())
}

/// Detector (u, v) in mm and the FDK distance weight of point `p` in view `i`, from the
/// geometry's definitions.
fn detector_coords(scan: &ScanGeometry, i: usize, p: [f64; 3]) -> (f64, f64, f64) {
    let g = &scan.views[i];
    let (w, sdd, sid) = (g.w(), g.sdd_mm(), g.sid_mm());
    match (scan.beam, scan.detector.shape) {
        (Beam::Parallel, _) => {
            let r = sub(p, g.detector_center_mm);
            (dot(r, g.u), dot(r, g.v), 1.0)
        }
        (Beam::Cone, DetectorShape::Flat) => {
            let r = sub(p, g.source_mm);
            let depth = dot(r, w);
            (sdd * dot(r, g.u) / depth, sdd * dot(r, g.v) / depth, sid * sdd / (depth * depth))
        }
        (Beam::Cone, DetectorShape::Cylindrical) => {
            let r = sub(p, g.source_mm);
            let (a, depth) = (dot(r, g.u), dot(r, w));
            let rho2 = a * a + depth * depth;
            (sdd * a.atan2(depth), sdd * dot(r, g.v) / rho2.sqrt(), sid * sdd / rho2)
        }
    }
}

/// Views whose values are `a + b·u + c·v` (u, v detector mm), different per view. Inside the
/// detector bilinear interpolation reproduces them exactly; at its edges it meets the zeros
/// beyond. The backprojection of every voxel is then known in closed form from the geometry.
fn linear_projections_are_backprojected_exactly(b: &dyn Backproject) -> Result<(), Failed> {
    let grid = VolumeGeometry::centered([11, 9, 7], [1.7, 2.1, 1.9], [1.3, -0.8, 0.6]).unwrap();
    let mut checked = 0;
    for (name, scan) in geometries() {
        let rays = Rays::Scan(&scan);
        if !b.supports(&grid, rays) {
            continue;
        }
        let det = &scan.detector;
        let coef = |i: usize| (0.3 + 0.01 * i as f64, 0.02 - 0.001 * i as f64, -0.015 + 0.002 * i as f64);
        let value = |i: usize, r: i64, c: i64| -> f64 {
            if r < 0 || c < 0 || r >= det.n_rows as i64 || c >= det.n_cols as i64 {
                return 0.0;
            }
            let (a, bu, cv) = coef(i);
            a + bu * det.col_to_u(c as f64) + cv * det.row_to_v(r as f64)
        };
        let proj = Array3::from_shape_fn(scan.projection_shape(), |(i, r, c)| value(i, r as i64, c as i64) as f32);
        let factors: Vec<f32> = (0..scan.n_views()).map(|i| 0.5 + 0.05 * i as f32).collect();
        let got = run(b, &grid, rays, &BackprojectOptions::fdk(), &proj, &factors)?;
        let (mut interior, mut biggest) = (0, 0.0f64);
        for ((k, j, i), &v) in got.data.indexed_iter() {
            let p = grid.position_mm(i as f64, j as f64, k as f64);
            let mut want = 0.0;
            let mut all_inside = true;
            for (view, &factor) in factors.iter().enumerate() {
                let (u, vv, wt) = detector_coords(&scan, view, p);
                let (c, r) = (det.u_to_col(u), det.v_to_row(vv));
                all_inside &= c > 0.0 && c < det.n_cols as f64 - 1.0 && r > 0.0 && r < det.n_rows as f64 - 1.0;
                let (c0, r0) = (c.floor(), r.floor());
                let (fc, fr) = (c - c0, r - r0);
                let (c0, r0) = (c0 as i64, r0 as i64);
                let sample = (1.0 - fr) * ((1.0 - fc) * value(view, r0, c0) + fc * value(view, r0, c0 + 1))
                    + fr * ((1.0 - fc) * value(view, r0 + 1, c0) + fc * value(view, r0 + 1, c0 + 1));
                want += factor as f64 * wt * sample;
            }
            interior += all_inside as usize;
            biggest = biggest.max(want.abs());
            check((v as f64 - want).abs() < 2e-5 * want.abs().max(1.0), || {
                format!("{}/{name}: voxel {:?}: {v} against {want}", b.name(), [i, j, k])
            })?;
        }
        check(biggest > 1.0, || format!("{}/{name}: nothing backprojected", b.name()))?;
        check(interior > 0 || name == "helical", || format!("{}/{name}: no voxel inside every view", b.name()))?;
        checked += 1;
    }
    check(checked >= 3, || format!("{}: only {checked} geometries supported", b.name()))
}

/// A small cone-parallel geometry (as a clinical scanner's rebinned full turn).
fn cone_parallel(n_views: usize) -> ConeParallelGeometry {
    ConeParallelGeometry {
        theta_rad: (0..n_views).map(|i| 0.1 + i as f64 * 2.0 * std::f64::consts::PI / n_views as f64).collect(),
        t0_mm: -30.0,
        dt_mm: 0.8,
        n_t: 76,
        radius_mm: 250.0,
        sdd_mm: 450.0,
        z_mm: 0.5,
        shape: DetectorShape::Cylindrical,
        n_rows: 28,
        pixel_v_mm: 1.1,
        offset_v_mm: 0.3,
        v_sign: 1.0,
        frame: ScanFrame::default(),
    }
}

/// The same projections backprojected by `b` and by the general reference, on every geometry
/// `b` supports, and along cone-parallel rays with and without the cone weighting (with z
/// spacings that give row steps per voxel below 1, between 1 and 7/3, and above: every branch of
/// the vector kernels and the scalar one).
fn matches_the_general_path(b: &dyn Backproject) -> Result<(), Failed> {
    let reference = GeneralBackprojector;
    for (dz, nz) in [(1.3, 13), (0.4, 37), (2.9, 7), (0.7, 19)] {
        let grid = VolumeGeometry::centered([23, 17, nz], [1.1, 0.9, dz], [0.6, -0.4, 1.2]).unwrap();
        let mut cases: Vec<(String, Rays, BackprojectOptions, Array3<f32>)> = Vec::new();
        let scans = geometries();
        for (name, scan) in &scans {
            cases.push((
                name.to_string(),
                Rays::Scan(scan),
                BackprojectOptions::fdk(),
                random_array(scan.projection_shape(), 5),
            ));
        }
        let cp = cone_parallel(12);
        let cp_data = random_array([cp.n_views(), cp.n_rows, cp.n_t], 6);
        let plain = BackprojectOptions { distance: DistanceWeight::None, cone: None };
        cases.push(("cone-parallel".into(), Rays::ConeParallel(&cp), plain, cp_data.clone()));
        for fade_rows in [3.0, 16.0] {
            let cone = BackprojectOptions {
                distance: DistanceWeight::None,
                cone: Some(ConeWeighting { exponent: 0.0, fade_rows }),
            };
            cases.push((
                format!("cone-parallel, cone weighting over {fade_rows} rows"),
                Rays::ConeParallel(&cp),
                cone,
                cp_data.clone(),
            ));
        }
        let preferring = ConeWeighting { exponent: 2.0, fade_rows: 5.0 };
        cases.push((
            "cone-parallel, cone weighting q = 2".into(),
            Rays::ConeParallel(&cp),
            BackprojectOptions { distance: DistanceWeight::None, cone: Some(preferring) },
            cp_data,
        ));
        for (name, rays, options, proj) in cases {
            if !b.supports(&grid, rays) {
                continue;
            }
            let factors: Vec<f32> = (0..proj.shape()[0]).map(|i| 1.0 + 0.1 * i as f32).collect();
            let got = run(b, &grid, rays, &options, &proj, &factors)?;
            let want = run(&reference, &grid, rays, &options, &proj, &factors)?;
            let max = want.data.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
            let (diff, at) = got
                .data
                .indexed_iter()
                .map(|(idx, a)| ((a - want.data[idx]).abs(), idx))
                .fold((0.0f32, (0, 0, 0)), |m, x| if x.0 > m.0 { x } else { m });
            check(max > 0.1, || format!("{}/{name}: nothing backprojected", b.name()))?;
            check(diff < 1e-4 * max, || {
                format!(
                    "{}/{name} dz {dz}: max difference {diff} of {max} at [z, y, x] = {at:?} ({} against {})",
                    b.name(),
                    got.data[at],
                    want.data[at]
                )
            })?;
        }
    }
    Ok(())
}

/// The cone weighting on a volume far taller than the cone: the shares of the two rays of every
/// line add to the full weight where both see a voxel, the visible one takes all where the other
/// misses, and beyond both each takes half the edge row — so a view pair whose projections are
/// the same constant backprojects to that constant times 2 everywhere.
fn cone_weighting_keeps_every_line_once(b: &dyn Backproject) -> Result<(), Failed> {
    let mut cp = cone_parallel(2);
    cp.theta_rad = vec![0.4, 0.4 + std::f64::consts::PI];
    let grid = VolumeGeometry::centered([15, 13, 60], [3.0, 3.0, 1.5], [0.0, 0.0, 0.5]).unwrap();
    if !b.supports(&grid, Rays::ConeParallel(&cp)) {
        return Ok(());
    }
    let proj = Array3::from_elem((2, cp.n_rows, cp.n_t), 1.0f32);
    let options = BackprojectOptions { distance: DistanceWeight::None, cone: Some(ConeWeighting::default()) };
    let got = run(b, &grid, Rays::ConeParallel(&cp), &options, &proj, &[1.0, 1.0])?;
    for ((k, j, i), &v) in got.data.indexed_iter() {
        let p = grid.position_mm(i as f64, j as f64, k as f64);
        let t = p[0] * 0.4f64.cos() + p[1] * 0.4f64.sin();
        if cp.col_of(t) < 1.0 || cp.col_of(t) > cp.n_t as f64 - 2.0 {
            continue;
        }
        check((v - 2.0).abs() < 1e-4, || format!("{}: voxel {:?} at z {:.1}: {v}, not 2", b.name(), [i, j, k], p[2]))?;
    }
    Ok(())
}

fn bad_sizes_are_errors(b: &dyn Backproject) -> Result<(), Failed> {
    let scan = gantry_core::ScanProtocol::circular_flat(200.0, 400.0, 5, 10, 6, 1.0).build().unwrap();
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0; 3], [0.0; 3]).unwrap();
    let mut acc = b.start(&grid, Rays::Scan(&scan), &BackprojectOptions::fdk()).map_err(|e| e.to_string())?;
    let e = acc.add(0, Array3::<f32>::zeros((5, 6, 9)).view(), &[1.0; 5]).unwrap_err().to_string();
    check(e.contains("[6, 9]"), || format!("{}: {e}", b.name()))?;
    let e = acc.add(3, Array3::<f32>::zeros((5, 6, 10)).view(), &[1.0; 5]).unwrap_err().to_string();
    check(e.contains("views 3..8"), || format!("{}: {e}", b.name()))?;
    let e = acc.add(0, Array3::<f32>::zeros((5, 6, 10)).view(), &[1.0; 4]).unwrap_err().to_string();
    check(e.contains("view_factors"), || format!("{}: {e}", b.name()))?;
    // The cone weighting runs on cone-parallel rays only.
    let cone = BackprojectOptions { distance: DistanceWeight::Fdk, cone: Some(ConeWeighting::default()) };
    check(b.start(&grid, Rays::Scan(&scan), &cone).is_err(), || format!("{}: cone weighting on fan views", b.name()))
}

type Check = fn(&dyn Backproject) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let checks: [(&str, Check); 4] = [
        ("linear_projections_are_backprojected_exactly", linear_projections_are_backprojected_exactly),
        ("matches_the_general_path", matches_the_general_path),
        ("cone_weighting_keeps_every_line_once", cone_weighting_keeps_every_line_once),
        ("bad_sizes_are_errors", bad_sizes_are_errors),
    ];
    let mut trials = Vec::new();
    for b in backprojectors() {
        let b: &'static dyn Backproject = Box::leak(b);
        for (name, f) in checks {
            trials.push(Trial::test(format!("{}::{name}", b.name()), move || f(b)));
        }
    }
    if ColumnKernel::avx2().is_none() {
        let _ = ColumnBackprojector::new(ColumnKernel::portable());
        for (name, _) in checks {
            trials.push(
                Trial::test(format!("avx2::{name}"), || Ok(())).with_kind("needs AVX2 and FMA").with_ignored_flag(true),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
