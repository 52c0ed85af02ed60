//! Rigid 3D motion correction of a perfusion series.
//!
//! Contrast changes every soft-tissue voxel over the series, bone never does: each frame is
//! registered to the reference frame on its bone alone (HU clamped to 400–1400, so arteries at
//! their peak stay out), by Gauss–Newton on the sum of squared differences over the reference's
//! bone edges, coarse (≈ 4 mm voxels) then fine (≈ 2 mm). Frames that moved are resampled
//! (trilinear) onto the reference; still frames are left untouched, noise and all.
//!
//! Coordinates are millimetres along the grid's index axes about the grid's centre: a rigid
//! motion there is a rigid motion of the patient, with the same angle and translation length.

use gantry_core::{VolumeGeometry, VolumeSeries};
use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

use crate::{invalid, PerfusionError};

/// A rigid transform T(p) = R·(p − c) + c + t, in mm along the grid axes, c the grid centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RigidTransform {
    pub rotation: [[f64; 3]; 3],
    pub translation_mm: [f64; 3],
}

impl RigidTransform {
    pub fn identity() -> Self {
        RigidTransform { rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], translation_mm: [0.0; 3] }
    }
    /// Rotation angle (degrees).
    pub fn angle_deg(&self) -> f64 {
        let r = &self.rotation;
        (((r[0][0] + r[1][1] + r[2][2] - 1.0) / 2.0).clamp(-1.0, 1.0)).acos().to_degrees()
    }
    pub fn translation_length_mm(&self) -> f64 {
        norm(self.translation_mm)
    }
    /// The largest displacement of a point within `radius_mm` of the centre (mm).
    pub fn max_displacement_mm(&self, radius_mm: f64) -> f64 {
        let chord = 2.0 * (self.angle_deg().to_radians() / 2.0).sin() * radius_mm;
        self.translation_length_mm() + chord
    }
    fn apply(&self, q: [f64; 3]) -> [f64; 3] {
        let r = &self.rotation;
        std::array::from_fn(|i| (0..3).map(|j| r[i][j] * q[j]).sum::<f64>() + self.translation_mm[i])
    }
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Rotation matrix of an axis·angle vector (radians).
fn rodrigues(w: [f64; 3]) -> [[f64; 3]; 3] {
    let r = nalgebra::Rotation3::from_scaled_axis(nalgebra::Vector3::new(w[0], w[1], w[2]));
    std::array::from_fn(|i| std::array::from_fn(|j| r[(i, j)]))
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// A volume resampled for registration: values `[z][y][x]` with spacing (mm) per axis x, y, z.
struct Grid {
    data: Vec<f32>,
    dims: [usize; 3],
    spacing: [f64; 3],
}

impl Grid {
    /// Bone feature of `frame`, averaged over `f × f` in-plane blocks.
    fn bone(frame: ArrayView3<f32>, spacing: [f64; 3], f: usize) -> Grid {
        let (nz, ny, nx) = frame.dim();
        let dims = [nx / f, ny / f, nz];
        let mut data = vec![0f32; dims[0] * dims[1] * dims[2]];
        let inv = 1.0 / (f * f) as f32;
        data.par_chunks_mut(dims[0] * dims[1]).enumerate().for_each(|(k, out)| {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let mut s = 0.0;
                    for b in 0..f {
                        for a in 0..f {
                            s += frame[[k, j * f + b, i * f + a]].clamp(400.0, 1400.0) - 400.0;
                        }
                    }
                    out[j * dims[0] + i] = s * inv;
                }
            }
        });
        Grid { data, dims, spacing: [spacing[0] * f as f64, spacing[1] * f as f64, spacing[2]] }
    }

    fn center(&self) -> [f64; 3] {
        std::array::from_fn(|a| (self.dims[a] as f64 - 1.0) * self.spacing[a] / 2.0)
    }

    /// Trilinear value and gradient (per mm) at a point in mm from the first voxel; None outside.
    fn sample(&self, p: [f64; 3]) -> Option<(f32, [f32; 3])> {
        let u: [f64; 3] = std::array::from_fn(|a| p[a] / self.spacing[a]);
        let mut i0 = [0usize; 3];
        let mut fr = [0f32; 3];
        for a in 0..3 {
            if !(u[a] >= 0.0 && u[a] <= (self.dims[a] - 1) as f64) || self.dims[a] < 2 {
                return None;
            }
            let fl = (u[a].floor() as usize).min(self.dims[a] - 2);
            i0[a] = fl;
            fr[a] = (u[a] - fl as f64) as f32;
        }
        let [nx, ny, _] = self.dims;
        let c = corners(|di, dj, dk| self.data[((i0[2] + dk) * ny + i0[1] + dj) * nx + i0[0] + di]);
        let [fx, fy, fz] = fr;
        let v = |x: f32, y: f32, z: f32| trilinear(&c, [x, y, z]);
        let val = v(fx, fy, fz);
        let gx = (v(1.0, fy, fz) - v(0.0, fy, fz)) / self.spacing[0] as f32;
        let gy = (v(fx, 1.0, fz) - v(fx, 0.0, fz)) / self.spacing[1] as f32;
        let gz = (v(fx, fy, 1.0) - v(fx, fy, 0.0)) / self.spacing[2] as f32;
        Some((val, [gx, gy, gz]))
    }

    /// Box smoothing in-plane (3 × 3), to widen the capture range of the coarse level.
    fn smoothed(&self) -> Grid {
        let [nx, ny, nz] = self.dims;
        let mut data = vec![0f32; self.data.len()];
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let (mut s, mut n) = (0.0, 0.0);
                    for b in j.saturating_sub(1)..(j + 2).min(ny) {
                        for a in i.saturating_sub(1)..(i + 2).min(nx) {
                            s += self.data[(k * ny + b) * nx + a];
                            n += 1.0;
                        }
                    }
                    data[(k * ny + j) * nx + i] = s / n;
                }
            }
        }
        Grid { data, dims: self.dims, spacing: self.spacing }
    }
}

/// Every voxel of the reference on a bone edge, with its value.
fn edge_points(reference: &Grid) -> Vec<([f64; 3], f32)> {
    let [nx, ny, nz] = reference.dims;
    let mut points = Vec::new();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p =
                    [i as f64 * reference.spacing[0], j as f64 * reference.spacing[1], k as f64 * reference.spacing[2]];
                if let Some((_, g)) = reference.sample(p) {
                    if g.iter().map(|x| x * x).sum::<f32>() > 1.0 {
                        points.push((p, reference.data[(k * ny + j) * nx + i]));
                    }
                }
            }
        }
    }
    points
}

/// Root-mean-square difference of moving(T(p)) and reference(p) over the reference's edges.
fn residual(reference: &Grid, points: &[([f64; 3], f32)], moving: &Grid, t: &RigidTransform) -> f64 {
    let c = reference.center();
    let (sum, n) = points
        .iter()
        .filter_map(|&(p, r_val)| {
            let tp = t.apply([p[0] - c[0], p[1] - c[1], p[2] - c[2]]);
            moving.sample([tp[0] + c[0], tp[1] + c[1], tp[2] + c[2]]).map(|(m, _)| ((m - r_val) as f64).powi(2))
        })
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::INFINITY
    } else {
        (sum / n as f64).sqrt()
    }
}

/// Estimates T with moving(T(p)) ≈ reference(p) by Gauss–Newton over the reference's edge
/// points, starting from `start`.
fn gauss_newton(
    reference: &Grid,
    points: &[([f64; 3], f32)],
    moving: &Grid,
    start: RigidTransform,
    iterations: usize,
) -> RigidTransform {
    let c = reference.center();
    let mut t = start;
    if points.len() < 12 {
        return t;
    }
    for _ in 0..iterations {
        let (jtj, jtr) = points
            .par_iter()
            .fold(
                || ([[0f64; 6]; 6], [0f64; 6]),
                |(mut a, mut b), &(p, r_val)| {
                    let q = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
                    let tp = t.apply(q);
                    let x = [tp[0] + c[0], tp[1] + c[1], tp[2] + c[2]];
                    if let Some((m_val, g)) = moving.sample(x) {
                        let g = g.map(|v| v as f64);
                        // d/dδw of δR·T(q) at δw = 0 is −[T(q)]ₓ: g·(δw × Tq) = δw·(Tq × g).
                        let cross =
                            [tp[1] * g[2] - tp[2] * g[1], tp[2] * g[0] - tp[0] * g[2], tp[0] * g[1] - tp[1] * g[0]];
                        let jrow = [g[0], g[1], g[2], cross[0], cross[1], cross[2]];
                        let res = (m_val - r_val) as f64;
                        for u in 0..6 {
                            b[u] += jrow[u] * res;
                            for v in 0..6 {
                                a[u][v] += jrow[u] * jrow[v];
                            }
                        }
                    }
                    (a, b)
                },
            )
            .reduce(
                || ([[0f64; 6]; 6], [0f64; 6]),
                |(mut a, mut b), (a2, b2)| {
                    for u in 0..6 {
                        b[u] += b2[u];
                        for v in 0..6 {
                            a[u][v] += a2[u][v];
                        }
                    }
                    (a, b)
                },
            );
        let m = nalgebra::Matrix6::from_fn(|i, j| jtj[i][j]);
        let rhs = nalgebra::Vector6::from_fn(|i, _| -jtr[i]);
        let Some(delta) = m.cholesky().map(|ch| ch.solve(&rhs)) else {
            break;
        };
        let dt = [delta[0], delta[1], delta[2]];
        let dw = [delta[3], delta[4], delta[5]];
        // T ← (δR about the moved centre, then δt) ∘ T.
        let dr = rodrigues(dw);
        let tr = t.translation_mm;
        t.rotation = matmul(&dr, &t.rotation);
        t.translation_mm = std::array::from_fn(|i| (0..3).map(|j| dr[i][j] * tr[j]).sum::<f64>() + dt[i]);
        if norm(dt) < 1e-3 && norm(dw) < 1e-5 {
            break;
        }
    }
    t
}

/// What motion correction found for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMotion {
    pub transform: RigidTransform,
    /// Largest displacement within 80 mm of the centre (mm).
    pub displacement_mm: f64,
    /// Bone mismatch left after registration (RMS, HU above 400).
    pub residual: f64,
    /// Whether the frame was resampled.
    pub corrected: bool,
    /// Whether the frame was replaced by interpolation in time between its good neighbours,
    /// because registration could not bring its bone back onto the reference (out-of-plane
    /// motion across thick slices is not recoverable by resampling).
    pub excluded: bool,
}

/// Registers every frame of `series` to frame `reference` on bone and resamples frames that
/// moved more than `tolerance_mm` (largest displacement within 80 mm of the centre). A moved
/// frame whose bone still mismatches by more than three times the still frames' median after
/// registration is replaced by linear interpolation in time between the nearest good frames.
pub fn correct_motion(
    series: &mut VolumeSeries,
    reference: usize,
    tolerance_mm: f64,
) -> Result<Vec<FrameMotion>, PerfusionError> {
    let n = series.n_frames();
    if reference >= n {
        return Err(invalid("motion reference frame", reference, &format!("the series has {n} frames")));
    }
    let g = &series.geometry;
    let spacing = g.spacing_mm;
    let fine_factor = ((2.0 / spacing[0].min(spacing[1])).floor() as usize).max(1);
    let coarse_factor = fine_factor * 2;
    let [nz, ny, nx] = g.shape_zyx();
    if nx / coarse_factor < 4 || ny / coarse_factor < 4 || nz < 2 {
        return Err(invalid(
            "series grid for motion correction",
            format!("{nx} × {ny} × {nz}"),
            "needs at least 2 slices and 8 mm in-plane",
        ));
    }
    let ref_frame = series.data.index_axis(Axis(0), reference);
    let ref_fine = Grid::bone(ref_frame, spacing, fine_factor);
    let ref_coarse = Grid::bone(ref_frame, spacing, coarse_factor).smoothed();
    let (fine_points, coarse_points) = (edge_points(&ref_fine), edge_points(&ref_coarse));
    let mut out = Vec::with_capacity(n);
    for t in 0..n {
        let still = FrameMotion {
            transform: RigidTransform::identity(),
            displacement_mm: 0.0,
            residual: 0.0,
            corrected: false,
            excluded: false,
        };
        if t == reference {
            out.push(still);
            continue;
        }
        let frame = series.data.index_axis(Axis(0), t);
        let coarse = Grid::bone(frame, spacing, coarse_factor).smoothed();
        let est = gauss_newton(&ref_coarse, &coarse_points, &coarse, RigidTransform::identity(), 20);
        let fine = Grid::bone(frame, spacing, fine_factor);
        let est = gauss_newton(&ref_fine, &fine_points, &fine, est, 20);
        let displacement_mm = est.max_displacement_mm(80.0);
        let corrected = displacement_mm > tolerance_mm;
        let residual = if corrected {
            let moved = resample(series.data.index_axis(Axis(0), t), g, &est);
            series.data.index_axis_mut(Axis(0), t).assign(&moved);
            residual(
                &ref_fine,
                &fine_points,
                &Grid::bone(moved.view(), spacing, fine_factor),
                &RigidTransform::identity(),
            )
        } else {
            residual(&ref_fine, &fine_points, &fine, &RigidTransform::identity())
        };
        out.push(FrameMotion { transform: est, displacement_mm, residual, corrected, excluded: false });
    }
    // Frames registration could not repair.
    let mut still: Vec<f64> =
        out.iter().enumerate().filter(|(t, m)| *t != reference && !m.corrected).map(|(_, m)| m.residual).collect();
    still.sort_by(|a, b| a.total_cmp(b));
    // Without still frames to compare with, nothing is excluded.
    if let Some(&typical) = still.get(still.len() / 2) {
        for m in out.iter_mut() {
            m.excluded = m.corrected && m.residual > 3.0 * typical + 1.0;
        }
    }
    let good: Vec<usize> = (0..n).filter(|&t| !out[t].excluded).collect();
    for t in (0..n).filter(|&t| out[t].excluded) {
        let before = good.iter().rev().find(|&&g| g < t).copied();
        let after = good.iter().find(|&&g| g > t).copied();
        let replacement = match (before, after) {
            (Some(a), Some(b)) => {
                let w = (series.times_s[t] - series.times_s[a]) / (series.times_s[b] - series.times_s[a]);
                let (fa, fb) = (series.data.index_axis(Axis(0), a), series.data.index_axis(Axis(0), b));
                let mut r = fa.to_owned();
                r.zip_mut_with(&fb, |x, &y| *x += (y - *x) * w as f32);
                r
            }
            (Some(a), None) => series.data.index_axis(Axis(0), a).to_owned(),
            (None, Some(b)) => series.data.index_axis(Axis(0), b).to_owned(),
            (None, None) => continue,
        };
        series.data.index_axis_mut(Axis(0), t).assign(&replacement);
    }
    Ok(out)
}

/// The eight values around a point, c[dz][dy][dx], from `at(dx, dy, dz)`.
fn corners(at: impl Fn(usize, usize, usize) -> f32) -> [[[f32; 2]; 2]; 2] {
    std::array::from_fn(|dk| std::array::from_fn(|dj| std::array::from_fn(|di| at(di, dj, dk))))
}

/// Trilinear interpolation between eight corners at fractions (x, y, z).
fn trilinear(c: &[[[f32; 2]; 2]; 2], [x, y, z]: [f32; 3]) -> f32 {
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let c00 = lerp(c[0][0][0], c[0][0][1], x);
    let c01 = lerp(c[0][1][0], c[0][1][1], x);
    let c10 = lerp(c[1][0][0], c[1][0][1], x);
    let c11 = lerp(c[1][1][0], c[1][1][1], x);
    lerp(lerp(c00, c01, y), lerp(c10, c11, y), z)
}

/// out(p) = frame(T(p)) by trilinear interpolation (edge values outside).
fn resample(frame: ArrayView3<f32>, g: &VolumeGeometry, t: &RigidTransform) -> ndarray::Array3<f32> {
    let (nz, ny, nx) = frame.dim();
    let s = g.spacing_mm;
    let c = [(nx as f64 - 1.0) * s[0] / 2.0, (ny as f64 - 1.0) * s[1] / 2.0, (nz as f64 - 1.0) * s[2] / 2.0];
    let mut out = ndarray::Array3::<f32>::zeros((nz, ny, nx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
        for j in 0..ny {
            for i in 0..nx {
                let q = [i as f64 * s[0] - c[0], j as f64 * s[1] - c[1], k as f64 * s[2] - c[2]];
                let tp = t.apply(q);
                let u = [(tp[0] + c[0]) / s[0], (tp[1] + c[1]) / s[1], (tp[2] + c[2]) / s[2]];
                let dims = [nx, ny, nz];
                let mut i0 = [0usize; 3];
                let mut fr = [0f32; 3];
                for a in 0..3 {
                    let x = u[a].clamp(0.0, (dims[a] - 1) as f64);
                    let fl = (x.floor() as usize).min(dims[a].saturating_sub(2));
                    i0[a] = fl;
                    fr[a] = if dims[a] > 1 { (x - fl as f64) as f32 } else { 0.0 };
                }
                let c = corners(|di, dj, dk| {
                    frame[[(i0[2] + dk).min(nz - 1), (i0[1] + dj).min(ny - 1), (i0[0] + di).min(nx - 1)]]
                });
                slice[[j, i]] = trilinear(&c, fr);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::VolumeGeometry;
    use ndarray::Array4;

    /// An ellipsoidal skull (and a bony ridge) sampled at voxel centres, moved by x → R x + t.
    fn skull(g: &VolumeGeometry, w: [f64; 3], t: [f64; 3]) -> ndarray::Array3<f32> {
        let [nz, ny, nx] = g.shape_zyx();
        let r = rodrigues(w);
        let value = |p: [f64; 3]| moved_value(&r, t, p);
        ndarray::Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            // The slice profile: the mean over five depths of the 5 mm slice.
            (0..5).map(|s| value(g.position_mm(i as f64, j as f64, k as f64 + (s as f64 - 2.0) / 5.0))).sum::<f32>()
                / 5.0
        })
    }

    fn moved_value(r: &[[f64; 3]; 3], t: [f64; 3], p: [f64; 3]) -> f32 {
        {
            let d = [p[0] - t[0], p[1] - t[1], p[2] - t[2]];
            let q: [f64; 3] = std::array::from_fn(|a| (0..3).map(|b| r[b][a] * d[b]).sum::<f64>());
            let e = |s: [f64; 3]| (q[0] / s[0]).powi(2) + (q[1] / s[1]).powi(2) + (q[2] / s[2]).powi(2);
            let blob = |c: [f64; 3], r: [f64; 3]| (0..3).map(|a| ((q[a] - c[a]) / r[a]).powi(2)).sum::<f64>() <= 1.0;
            let ridge = blob([0.0, 5.0, -64.0], [48.0, 50.0, 6.0])
                || blob([-28.0, 18.0, -50.0], [24.0, 5.0, 6.0])
                || blob([28.0, 18.0, -50.0], [24.0, 5.0, 6.0])
                || blob([0.0, 80.0, -25.0], [14.0, 7.0, 10.0])
                || blob([0.0, -76.0, -35.0], [3.0, 8.0, 22.0]);
            if (e([67.5, 85.5, 77.5]) <= 1.0 && e([61.5, 79.5, 71.5]) > 1.0) || ridge {
                1200.0
            } else if e([67.5, 85.5, 77.5]) <= 1.0 {
                30.0
            } else {
                -1000.0
            }
        }
    }

    #[test]
    fn registration_recovers_a_known_motion() {
        let g = VolumeGeometry::centered([96, 96, 88], [1.8, 1.8, 1.8], [0.0; 3]).unwrap();
        for (w, t) in
            [([0.0, 0.0, 0.05], [1.0, -2.0, 1.5]), ([0.05, 0.0, 0.0], [0.0; 3]), ([0.0, 0.05, 0.0], [0.0, 0.0, 2.0])]
        {
            let a = skull(&g, [0.0; 3], [0.0; 3]);
            let b = skull(&g, w, t);
            let mut data = Array4::<f32>::zeros((2, 88, 96, 96));
            data.index_axis_mut(Axis(0), 0).assign(&a);
            data.index_axis_mut(Axis(0), 1).assign(&b);
            let mut s = VolumeSeries::new(g.clone(), vec![0.0, 1.0], data).unwrap();
            let m = correct_motion(&mut s, 0, 0.1).unwrap();
            let est = m[1].transform;
            let want = rodrigues(w);
            // Angle of R_est·R_trueᵀ and the translation error.
            let err = matmul(
                &est.rotation,
                &[
                    [want[0][0], want[1][0], want[2][0]],
                    [want[0][1], want[1][1], want[2][1]],
                    [want[0][2], want[1][2], want[2][2]],
                ],
            );
            let angle = RigidTransform { rotation: err, translation_mm: [0.0; 3] }.angle_deg();
            let dt = norm([est.translation_mm[0] - t[0], est.translation_mm[1] - t[1], est.translation_mm[2] - t[2]]);
            assert!(angle < 0.5 && dt < 0.4, "w {w:?} t {t:?}: rotation off by {angle:.2}°, translation by {dt:.2} mm");
            assert!(m[1].corrected && !m[1].excluded, "{:?}", m[1]);
        }
    }
}
