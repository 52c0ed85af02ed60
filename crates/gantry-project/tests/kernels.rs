//! Joseph against independent truths: adjointness on random data, sums against exact line
//! integrals, the fast path against the generic walk. (The backprojectors' suite is
//! `backproject.rs`.)

use gantry_core::{ScanGeometry, ScanProtocol, Volume, VolumeGeometry};
use gantry_project::{Joseph, Projector};
use ndarray::Array3;

mod common;
use common::{geometries, random_array};

#[test]
fn joseph_is_exactly_adjoint() {
    let grid = VolumeGeometry::centered([19, 22, 11], [1.1, 0.9, 1.4], [0.7, -0.4, 0.3]).unwrap();
    for (name, scan) in geometries() {
        let a = Joseph::new(grid.clone(), scan.clone()).unwrap();
        let x = random_array(grid.shape_zyx(), 1);
        let y = random_array(scan.projection_shape(), 2);
        let mut ax = Array3::zeros(scan.projection_shape());
        a.forward(x.view(), ax.view_mut()).unwrap();
        let mut aty = Array3::zeros(grid.shape_zyx());
        a.adjoint(y.view(), aty.view_mut()).unwrap();
        let lhs: f64 = ax.iter().zip(y.iter()).map(|(&p, &q)| p as f64 * q as f64).sum();
        let rhs: f64 = x.iter().zip(aty.iter()).map(|(&p, &q)| p as f64 * q as f64).sum();
        let scale: f64 = ax.iter().map(|&p| (p as f64).abs()).sum::<f64>();
        let rel = (lhs - rhs).abs() / scale;
        assert!(rel < 1e-5, "{name}: <Ax,y> = {lhs}, <x,A'y> = {rhs}, rel {rel}");
        assert!(scale > 1.0, "{name}: the rays must hit the volume");
    }
}

/// Gaussian blobs: (centre, sigma, amplitude). Their line integrals are closed-form:
/// A·σ·√(2π)·exp(−d²/2σ²), d the ray's distance from the centre.
const BLOBS: [([f64; 3], f64, f64); 3] =
    [([0.0, 0.0, 0.0], 8.0, 0.03), ([9.0, -6.0, 4.0], 4.0, 0.03), ([-10.0, 8.0, -5.0], 3.5, -0.02)];

fn blob_volume(grid: &VolumeGeometry) -> Volume {
    let mut vol = Volume::zeros(grid.clone());
    for ((k, j, i), v) in vol.data.indexed_iter_mut() {
        let p = grid.position_mm(i as f64, j as f64, k as f64);
        *v = BLOBS
            .iter()
            .map(|(c, s, a)| {
                a * (-((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)) / (2.0 * s * s)).exp()
            })
            .sum::<f64>() as f32;
    }
    vol
}

fn blob_projections(scan: &ScanGeometry) -> Array3<f32> {
    Array3::from_shape_fn(scan.projection_shape(), |(v, r, c)| {
        let (o, d) = scan.ray(v, r as f64, c as f64);
        BLOBS
            .iter()
            .map(|(cen, s, a)| {
                let dist = gantry_phantom::phantom::distance_to_line(*cen, o, d);
                a * s * (2.0 * std::f64::consts::PI).sqrt() * (-dist * dist / (2.0 * s * s)).exp()
            })
            .sum::<f64>() as f32
    })
}

#[test]
fn joseph_matches_exact_line_integrals() {
    // Smooth blobs sampled at voxel centres: Joseph's error is O(h²), so a half-voxel shift, a
    // wrong step length or a wrong interpolation weight stands out far above it.
    let grid = VolumeGeometry::centered([200, 200, 200], [0.4, 0.4, 0.4], [0.0; 3]).unwrap();
    let vol = blob_volume(&grid);
    for (name, scan) in geometries() {
        let exact = blob_projections(&scan);
        let joseph = Joseph::new(grid.clone(), scan).unwrap().project(&vol).unwrap();
        let max = exact.iter().cloned().fold(0.0f32, f32::max);
        let err = exact.iter().zip(joseph.data.iter()).map(|(&a, &b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max > 0.4, "{name}: max {max}");
        assert!(err < 2e-3 * max, "{name}: max error {err} vs max {max}");
    }
    // The same data placed half a voxel off fails the check: the test can see such a bug.
    let shifted = VolumeGeometry::centered([200, 200, 200], [0.4, 0.4, 0.4], [0.2, 0.0, 0.0]).unwrap();
    let scan = geometries().remove(0).1;
    let exact = blob_projections(&scan);
    let bad = Joseph::new(shifted.clone(), scan).unwrap().project(&Volume::new(shifted, vol.data).unwrap()).unwrap();
    let max = exact.iter().cloned().fold(0.0f32, f32::max);
    let err = exact.iter().zip(bad.data.iter()).map(|(&a, &b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err > 4e-3 * max, "shifted grid error {err} vs max {max}");
}

#[test]
fn size_mismatch_is_an_error_not_a_panic() {
    let scan = ScanProtocol::circular_flat(200.0, 400.0, 5, 10, 6, 1.0).build().unwrap();
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0; 3], [0.0; 3]).unwrap();
    let a = Joseph::new(grid.clone(), scan.clone()).unwrap();
    let x = Array3::<f32>::zeros((8, 8, 7));
    let mut y = Array3::<f32>::zeros((5, 6, 10));
    let e = a.forward(x.view(), y.view_mut()).unwrap_err().to_string();
    assert!(e.contains("[8, 8, 7]"), "{e}");
}

#[test]
fn joseph_fast_path_equals_generic_walk() {
    // z spacings that make the row walk slower and faster than one voxel per row, and a steep
    // one where some columns fall back to the generic walk.
    for (dz, nz) in [(1.4, 11), (0.5, 31), (0.2, 60), (0.6, 27)] {
        let grid = VolumeGeometry::centered([19, 22, nz], [1.1, 0.9, dz], [0.7, -0.4, 0.3]).unwrap();
        for (name, scan) in geometries().into_iter().filter(|(n, _)| *n != "tilted") {
            let fast = Joseph::new(grid.clone(), scan.clone()).unwrap();
            let generic = Joseph::new(grid.clone(), scan.clone()).unwrap().generic_path();
            let x = random_array(grid.shape_zyx(), 3);
            let y = random_array(scan.projection_shape(), 4);
            let (mut f1, mut f2) = (Array3::zeros(scan.projection_shape()), Array3::zeros(scan.projection_shape()));
            fast.forward(x.view(), f1.view_mut()).unwrap();
            generic.forward(x.view(), f2.view_mut()).unwrap();
            let max = f2.iter().map(|v: &f32| v.abs()).fold(0.0f32, f32::max);
            let diff = f1.iter().zip(f2.iter()).map(|(a, b): (&f32, &f32)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max > 1.0 && diff < 1e-4 * max, "{name} dz {dz} forward: {diff} of {max}");
            let (mut b1, mut b2) = (Array3::zeros(grid.shape_zyx()), Array3::zeros(grid.shape_zyx()));
            fast.adjoint(y.view(), b1.view_mut()).unwrap();
            generic.adjoint(y.view(), b2.view_mut()).unwrap();
            let max = b2.iter().map(|v: &f32| v.abs()).fold(0.0f32, f32::max);
            let diff = b1.iter().zip(b2.iter()).map(|(a, b): (&f32, &f32)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max > 1.0 && diff < 1e-4 * max, "{name} dz {dz} adjoint: {diff} of {max}");
        }
    }
}
