//! Voxel-driven backprojection with bilinear interpolation on the detector, the kernel of FDK.
//!
//! Each voxel centre is projected onto every view's detector and the bilinearly interpolated
//! value is added, times a per-view factor and (for FDK) the distance weight
//! `SID·SDD / D²`, where D is the voxel's depth along the central ray (flat detector) or its
//! in-plane distance from the source (cylindrical detector); 1 for a parallel beam.
//!
//! Two paths give the same result: a general one for any geometry, and a fast one for the usual
//! case (volume axes along x, y, z; every view's detector v axis along z). In the fast path a
//! voxel column along z projects to one detector column at one distance, so the column index,
//! weight and row slope are computed once per (x, y) and the inner loop walks z with a linear row
//! index over projections transposed to [col][row] (contiguous in z) into a [y][x][z] buffer.

use gantry_core::geometry::{dot, norm, sub, Vec3};
use gantry_core::{Beam, CoreError, DetectorShape, Result, ScanGeometry, Volume, VolumeGeometry};
use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;

/// Which weight multiplies each backprojected value besides the per-view factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistanceWeight {
    /// None: the plain sum of interpolated values.
    None,
    /// FDK: `SID·SDD / D²` for a cone beam (1 for a parallel beam).
    Fdk,
}

/// What one view contributes to a voxel: the detector position of its centre and the weight.
#[derive(Debug, Clone, Copy)]
struct ViewParams {
    s: Vec3,
    d: Vec3,
    u: Vec3,
    v: Vec3,
    w: Vec3,
    sdd: f64,
    sid: f64,
}

impl ViewParams {
    fn new(scan: &ScanGeometry, i: usize) -> Self {
        let g = &scan.views[i];
        ViewParams {
            s: g.source_mm,
            d: g.detector_center_mm,
            u: g.u,
            v: g.v,
            w: g.w(),
            sdd: g.sdd_mm(),
            sid: g.sid_mm(),
        }
    }

    /// Detector (u, v) coordinates in mm of point `p` and its distance weight.
    fn project(&self, scan: &ScanGeometry, p: Vec3, weight: DistanceWeight) -> (f64, f64, f64) {
        match (scan.beam, scan.detector.shape) {
            (Beam::Parallel, _) => {
                let r = sub(p, self.d);
                (dot(r, self.u), dot(r, self.v), 1.0)
            }
            (Beam::Cone, DetectorShape::Flat) => {
                let r = sub(p, self.s);
                let depth = dot(r, self.w);
                let m = self.sdd / depth;
                let wt = match weight {
                    DistanceWeight::None => 1.0,
                    DistanceWeight::Fdk => self.sid * self.sdd / (depth * depth),
                };
                (m * dot(r, self.u), m * dot(r, self.v), wt)
            }
            (Beam::Cone, DetectorShape::Cylindrical) => {
                let r = sub(p, self.s);
                let (a, depth) = (dot(r, self.u), dot(r, self.w));
                let rho2 = a * a + depth * depth;
                let wt = match weight {
                    DistanceWeight::None => 1.0,
                    DistanceWeight::Fdk => self.sid * self.sdd / rho2,
                };
                (self.sdd * a.atan2(depth), self.sdd * dot(r, self.v) / rho2.sqrt(), wt)
            }
        }
    }
}

/// Accumulates backprojections of projection subsets into one volume, keeping memory at the
/// volume plus the subset being added.
pub struct Backprojector {
    volume: VolumeGeometry,
    scan: ScanGeometry,
    weight: DistanceWeight,
    fast: bool,
    /// Fast path: [y][x][z]; general path: [z][y][x].
    acc: Vec<f32>,
}

impl Backprojector {
    /// A zeroed accumulator for `volume`, for projections acquired with `scan`.
    pub fn new(volume: VolumeGeometry, scan: ScanGeometry, weight: DistanceWeight) -> Result<Self> {
        volume.validate()?;
        scan.validate()?;
        let fast = volume.is_axis_aligned() && scan.is_axial_aligned();
        Ok(Backprojector { acc: vec![0.0; volume.len()], volume, scan, weight, fast })
    }

    /// Forces the general path (for tests of the fast path against it).
    pub fn general_path(mut self) -> Self {
        self.fast = false;
        self
    }

    /// Adds the backprojection of views `first .. first + projections.len_of(0)`, each scaled by
    /// its entry in `view_factors`.
    pub fn add(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) -> Result<()> {
        let n = projections.shape()[0];
        let d = &self.scan.detector;
        if first + n > self.scan.n_views() {
            return Err(CoreError::size_mismatch(
                "backprojected views",
                format!("at most {} views", self.scan.n_views()),
                format!("views {first}..{}", first + n),
            ));
        }
        if projections.shape()[1..] != [d.n_rows, d.n_cols] {
            return Err(CoreError::size_mismatch(
                "projection [row][col]",
                format!("[{}, {}]", d.n_rows, d.n_cols),
                format!("{:?}", &projections.shape()[1..]),
            ));
        }
        if view_factors.len() != n {
            return Err(CoreError::size_mismatch("view_factors", n, view_factors.len()));
        }
        if self.fast {
            self.add_fast(first, projections, view_factors);
        } else {
            self.add_general(first, projections, view_factors);
        }
        Ok(())
    }

    /// The accumulated volume, [z][y][x].
    pub fn finish(self) -> Volume {
        let [nx, ny, nz] = self.volume.dims;
        let data = if self.fast {
            let mut out = Array3::<f32>::zeros((nz, ny, nx));
            let acc = &self.acc;
            out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
                for ((j, i), v) in slice.indexed_iter_mut() {
                    *v = acc[(j * nx + i) * nz + k];
                }
            });
            out
        } else {
            Array3::from_shape_vec((nz, ny, nx), self.acc).expect("accumulator has the volume's size")
        };
        Volume { geometry: self.volume, data }
    }

    fn add_general(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) {
        let scan = &self.scan;
        let geom = &self.volume;
        let [nx, ny, _] = geom.dims;
        let det = &scan.detector;
        let (nr, nc) = (det.n_rows as isize, det.n_cols as isize);
        let views: Vec<ViewParams> = (0..projections.shape()[0]).map(|i| ViewParams::new(scan, first + i)).collect();
        let weight = self.weight;
        self.acc.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            for j in 0..ny {
                for i in 0..nx {
                    let p = geom.position_mm(i as f64, j as f64, k as f64);
                    let mut sum = 0.0f64;
                    for (vi, vp) in views.iter().enumerate() {
                        let (uc, vc, wt) = vp.project(scan, p, weight);
                        let c = det.u_to_col(uc);
                        let r = det.v_to_row(vc);
                        let (c0, r0) = (c.floor(), r.floor());
                        let (fc, fr) = (c - c0, r - r0);
                        let (c0, r0) = (c0 as isize, r0 as isize);
                        let proj = projections.index_axis(Axis(0), vi);
                        let mut val = 0.0f64;
                        for (dr, dc, f) in [
                            (0, 0, (1.0 - fr) * (1.0 - fc)),
                            (0, 1, (1.0 - fr) * fc),
                            (1, 0, fr * (1.0 - fc)),
                            (1, 1, fr * fc),
                        ] {
                            let (rr, cc) = (r0 + dr, c0 + dc);
                            if rr >= 0 && rr < nr && cc >= 0 && cc < nc {
                                val += f * proj[[rr as usize, cc as usize]] as f64;
                            }
                        }
                        sum += val * wt * view_factors[vi] as f64;
                    }
                    slice[j * nx + i] += sum as f32;
                }
            }
        });
    }

    fn add_fast(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) {
        let scan = &self.scan;
        let det = &scan.detector;
        let [nx, _, nz] = self.volume.dims;
        let (nr, nc) = (det.n_rows, det.n_cols);
        let n_views = projections.shape()[0];
        // Transposed, zero-padded copy: [view][col + 2][row + 2], so that bilinear reads just
        // outside the detector see zeros and a z walk reads contiguous memory.
        let (pc, pr) = (nc + 2, nr + 2);
        let mut tp = vec![0.0f32; n_views * pc * pr];
        tp.par_chunks_mut(pc * pr).enumerate().for_each(|(v, dst)| {
            let src = projections.index_axis(Axis(0), v);
            for ((r, c), &x) in src.indexed_iter() {
                dst[(c + 1) * pr + r + 1] = x;
            }
        });
        let views: Vec<ViewParams> = (0..n_views).map(|i| ViewParams::new(scan, first + i)).collect();
        let geom = &self.volume;
        let (ox, oy, oz) = (geom.origin_mm[0], geom.origin_mm[1], geom.origin_mm[2]);
        let (sx, sy, sz) = (geom.spacing_mm[0], geom.spacing_mm[1], geom.spacing_mm[2]);
        let weight = self.weight;
        let beam = scan.beam;
        let shape = det.shape;
        // Row index (padded) = (v_mm − offset_v)/pixel_v + (nr − 1)/2 + 1.
        let row_c = 0.5 * (nr as f64 - 1.0) + 1.0;
        let col_c = 0.5 * (nc as f64 - 1.0) + 1.0;
        self.acc.par_chunks_mut(nx * nz).enumerate().for_each(|(j, row_buf)| {
            let y = oy + j as f64 * sy;
            for i in 0..nx {
                let x = ox + i as f64 * sx;
                let acc = &mut row_buf[i * nz..(i + 1) * nz];
                for (vi, vp) in views.iter().enumerate() {
                    let vz = vp.v[2]; // ±1
                                      // In-plane projection: detector u (mm), v scale, distance weight, v origin.
                    let (uc, vscale, wt, z_ref) = match (beam, shape) {
                        (Beam::Parallel, _) => {
                            let (dx, dy) = (x - vp.d[0], y - vp.d[1]);
                            (vp.u[0] * dx + vp.u[1] * dy, 1.0, 1.0, vp.d[2])
                        }
                        (Beam::Cone, DetectorShape::Flat) => {
                            let (dx, dy) = (x - vp.s[0], y - vp.s[1]);
                            let depth = vp.w[0] * dx + vp.w[1] * dy;
                            let m = vp.sdd / depth;
                            let wt =
                                if weight == DistanceWeight::Fdk { vp.sid * vp.sdd / (depth * depth) } else { 1.0 };
                            (m * (vp.u[0] * dx + vp.u[1] * dy), m, wt, vp.s[2])
                        }
                        (Beam::Cone, DetectorShape::Cylindrical) => {
                            let (dx, dy) = (x - vp.s[0], y - vp.s[1]);
                            let depth = vp.w[0] * dx + vp.w[1] * dy;
                            let a = vp.u[0] * dx + vp.u[1] * dy;
                            let rho2 = a * a + depth * depth;
                            let wt = if weight == DistanceWeight::Fdk { vp.sid * vp.sdd / rho2 } else { 1.0 };
                            (vp.sdd * a.atan2(depth), vp.sdd / rho2.sqrt(), wt, vp.s[2])
                        }
                    };
                    let c = (uc - det.offset_u_mm) / det.pixel_u_mm + col_c;
                    if !(c >= 0.0 && c < (nc + 1) as f64) {
                        continue;
                    }
                    let ci = c as usize;
                    let fc = (c - ci as f64) as f32;
                    let wt = (wt * view_factors[vi] as f64) as f32;
                    let (w0, w1) = (wt * (1.0 - fc), wt * fc);
                    // Padded row index as a linear function of k.
                    let r0 = (vscale * vz * (oz - z_ref) - det.offset_v_mm) / det.pixel_v_mm + row_c;
                    let rk = vscale * vz * sz / det.pixel_v_mm;
                    // k range with 0 <= r < nr + 1.
                    let (k_lo, k_hi) = k_range(r0, rk, (nr + 1) as f64, nz);
                    if k_lo >= k_hi {
                        continue;
                    }
                    let base = vi * pc * pr + ci * pr;
                    let col0 = &tp[base..base + pr];
                    let col1 = &tp[base + pr..base + 2 * pr];
                    let (r0, rk) = (r0 as f32, rk as f32);
                    // r < nr + 1 keeps ri + 1 inside the padded column; the clamp only guards rounding.
                    let top = nr as f32 + 0.99994;
                    for (k, a) in acc.iter_mut().enumerate().take(k_hi).skip(k_lo) {
                        let r = (r0 + rk * k as f32).clamp(0.0, top);
                        let ri = r as usize;
                        let fr = r - ri as f32;
                        let lo = w0 * col0[ri] + w1 * col1[ri];
                        let hi = w0 * col0[ri + 1] + w1 * col1[ri + 1];
                        *a += lo + fr * (hi - lo);
                    }
                }
            }
        });
    }
}

/// The k in [0, n) for which `0 <= r0 + rk·k < limit`.
fn k_range(r0: f64, rk: f64, limit: f64, n: usize) -> (usize, usize) {
    if rk.abs() < 1e-12 {
        return if r0 >= 0.0 && r0 < limit { (0, n) } else { (0, 0) };
    }
    let (a, b) = ((0.0 - r0) / rk, (limit - r0) / rk);
    let (lo, hi) = (a.min(b), a.max(b));
    let k_lo = lo.ceil().max(0.0);
    let k_hi = (hi.ceil()).min(n as f64);
    if k_hi <= k_lo {
        (0, 0)
    } else {
        (k_lo as usize, k_hi as usize)
    }
}

/// The distance from `p` to the source of view `i` (a helper for tests and weights).
pub fn source_distance(scan: &ScanGeometry, i: usize, p: Vec3) -> f64 {
    norm(sub(p, scan.views[i].source_mm))
}
