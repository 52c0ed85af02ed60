//! The Joseph projector: along each ray, one sample per voxel plane perpendicular to the ray's
//! main axis, bilinearly interpolated in that plane and weighted by the step length. Its
//! adjoint spreads each ray value back with exactly the same weights, so the pair is matched.

use crate::{check_sizes, Projector};
use gantry_core::geometry::{dot, sub, Vec3};
use gantry_core::{FrameMap, Result, ScanGeometry, Volume, VolumeGeometry};
use ndarray::{ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

/// Joseph forward projector and its exact adjoint for one volume grid (in the scan's world
/// frame) and one scan geometry.
#[derive(Debug, Clone)]
pub struct Joseph {
    /// The grid volumes are given on, in the scan's world frame.
    world: VolumeGeometry,
    /// The same voxels in the scanner frame, where the rays are walked.
    grid: VolumeGeometry,
    map: FrameMap,
    scan: ScanGeometry,
    generic_only: bool,
}

/// One ray in voxel-index space, ready to walk.
struct Walk {
    /// Index-space axis stepped one plane at a time, and the two interpolated axes.
    main: usize,
    a: usize,
    b: usize,
    /// Position of the ray on the interpolated axes at main index 0, and their slopes.
    a0: f32,
    sa: f32,
    b0: f32,
    sb: f32,
    /// First and last (exclusive) main index the ray touches.
    k_lo: usize,
    k_hi: usize,
    /// Path length in mm per plane.
    step_mm: f32,
}

impl Joseph {
    /// The projector for volumes on `volume`, a grid in the scan's world frame.
    pub fn new(volume: VolumeGeometry, scan: ScanGeometry) -> Result<Self> {
        scan.validate()?;
        let map = FrameMap::new(&volume, scan.frame)?;
        Ok(Joseph { world: volume, grid: map.scanner_grid().clone(), map, scan, generic_only: false })
    }

    /// World-grid voxels (`[z][y][x]`) in the scanner grid's order, when the two differ.
    fn to_scanner(&self, volume: ArrayView3<f32>) -> Result<Option<ndarray::Array3<f32>>> {
        if self.map.is_trivial() {
            return Ok(None);
        }
        let v = Volume::new(self.world.clone(), volume.to_owned())?;
        Ok(Some(self.map.to_scanner(&v)?.data))
    }

    /// Forces the generic ray-by-ray walk (the reference the fast path is tested against).
    pub fn generic_path(mut self) -> Self {
        self.generic_only = true;
        self
    }

    fn walk(&self, view: usize, row: usize, col: usize) -> Option<Walk> {
        let g = &self.grid;
        let (origin, dir) = self.scan.ray(view, row as f64, col as f64);
        // Index space: idx_c = (Dᵀ (p − o))_c / spacing_c.
        let rel: Vec3 = sub(origin, g.origin_mm);
        let p: Vec3 =
            std::array::from_fn(|c| (0..3).map(|r| g.direction[r][c] * rel[r]).sum::<f64>() / g.spacing_mm[c]);
        let d: Vec3 =
            std::array::from_fn(|c| (0..3).map(|r| g.direction[r][c] * dir[r]).sum::<f64>() / g.spacing_mm[c]);
        let main = (0..3).max_by(|&i, &j| d[i].abs().total_cmp(&d[j].abs())).unwrap();
        let (a, b) = match main {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        let dm = d[main];
        if dm.abs() < 1e-12 {
            return None;
        }
        // Position on axis c at main index k: p_c + (k − p_main)/d_main · d_c.
        let sa = d[a] / dm;
        let sb = d[b] / dm;
        let a0 = p[a] - p[main] * sa;
        let b0 = p[b] - p[main] * sb;
        // Main-index range where the interpolated coordinates stay within (−1, n).
        let mut lo = 0.0f64;
        let mut hi = g.dims[main] as f64 - 1.0;
        for (c0, s, n) in [(a0, sa, g.dims[a] as f64), (b0, sb, g.dims[b] as f64)] {
            if s.abs() < 1e-12 {
                if c0 <= -1.0 || c0 >= n {
                    return None;
                }
            } else {
                let k1 = (-1.0 - c0) / s;
                let k2 = (n - c0) / s;
                lo = lo.max(k1.min(k2));
                hi = hi.min(k1.max(k2));
            }
        }
        if hi < lo {
            return None;
        }
        let k_lo = lo.ceil().max(0.0) as usize;
        let k_hi = (hi.floor() as usize + 1).min(g.dims[main]);
        if k_lo >= k_hi {
            return None;
        }
        let _ = dot;
        Some(Walk {
            main,
            a,
            b,
            a0: a0 as f32,
            sa: sa as f32,
            b0: b0 as f32,
            sb: sb as f32,
            k_lo,
            k_hi,
            step_mm: (1.0 / dm.abs()) as f32,
        })
    }

    /// Visits the (up to four) voxels and weights of every sample along the ray.
    #[inline(always)]
    fn for_each_sample(&self, w: &Walk, mut f: impl FnMut(usize, f32)) {
        let dims = self.grid.dims;
        let strides = [1usize, dims[0], dims[0] * dims[1]];
        let (na, nb) = (dims[w.a] as isize, dims[w.b] as isize);
        let (st_m, st_a, st_b) = (strides[w.main], strides[w.a], strides[w.b]);
        for k in w.k_lo..w.k_hi {
            let ca = w.a0 + w.sa * k as f32;
            let cb = w.b0 + w.sb * k as f32;
            let ia = ca.floor();
            let ib = cb.floor();
            let fa = ca - ia;
            let fb = cb - ib;
            let (ia, ib) = (ia as isize, ib as isize);
            let base = k * st_m;
            let wts = [(1.0 - fa) * (1.0 - fb), fa * (1.0 - fb), (1.0 - fa) * fb, fa * fb];
            for (n, (da, db)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                let (xa, xb) = (ia + da, ib + db);
                if xa >= 0 && xa < na && xb >= 0 && xb < nb {
                    f(base + xa as usize * st_a + xb as usize * st_b, wts[n] * w.step_mm);
                }
            }
        }
    }
}

impl Projector for Joseph {
    fn volume_geometry(&self) -> &VolumeGeometry {
        &self.world
    }
    fn scan_geometry(&self) -> &ScanGeometry {
        &self.scan
    }

    fn forward(&self, volume: ArrayView3<f32>, mut projections: ArrayViewMut3<f32>) -> Result<()> {
        check_sizes(self, volume.shape(), projections.shape())?;
        let reordered = self.to_scanner(volume)?;
        let volume = reordered.as_ref().map_or(volume, |a| a.view());
        let vol = volume.as_standard_layout();
        let x = vol.as_slice().expect("standard layout");
        if self.fast_ok() {
            fast::forward(self, vol.view(), x, projections);
            return Ok(());
        }
        projections.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(view, mut proj)| {
            for ((row, col), out) in proj.indexed_iter_mut() {
                let mut sum = 0.0f32;
                if let Some(w) = self.walk(view, row, col) {
                    self.for_each_sample(&w, |i, wt| sum += wt * x[i]);
                }
                *out = sum;
            }
        });
        Ok(())
    }

    fn adjoint(&self, projections: ArrayView3<f32>, mut volume: ArrayViewMut3<f32>) -> Result<()> {
        check_sizes(self, volume.shape(), projections.shape())?;
        if !self.map.is_trivial() {
            let mut scanner = Volume::zeros(self.grid.clone());
            self.adjoint_scanner(projections, scanner.data.view_mut())?;
            volume.assign(&self.map.to_world(scanner)?.data);
            return Ok(());
        }
        self.adjoint_scanner(projections, volume)
    }
}

impl Joseph {
    /// Aᵀ onto the scanner grid.
    fn adjoint_scanner(&self, projections: ArrayView3<f32>, mut volume: ArrayViewMut3<f32>) -> Result<()> {
        if self.fast_ok() {
            fast::adjoint(self, projections, volume);
            return Ok(());
        }
        let n_vox = self.grid.len();
        let n_views = self.scan.n_views();
        let threads = rayon::current_num_threads().max(1);
        let chunk = n_views.div_ceil(threads).max(1);
        let starts: Vec<usize> = (0..n_views).step_by(chunk).collect();
        // One accumulator per chunk of views, then summed: no races, same weights as forward.
        let total = starts
            .into_par_iter()
            .map(|start| {
                let mut acc = vec![0.0f32; n_vox];
                for view in start..(start + chunk).min(n_views) {
                    for ((row, col), &y) in projections.index_axis(Axis(0), view).indexed_iter() {
                        if y == 0.0 {
                            continue;
                        }
                        if let Some(w) = self.walk(view, row, col) {
                            self.for_each_sample(&w, |i, wt| acc[i] += wt * y);
                        }
                    }
                }
                acc
            })
            .reduce(
                || vec![0.0f32; n_vox],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        for (dst, src) in volume.iter_mut().zip(&total) {
            *dst = *src;
        }
        Ok(())
    }
}

/// The column-shared fast path for the usual geometry (volume axes along x, y, z; every view's
/// detector v axis along z). All rays of one detector column lie in one vertical plane, so the
/// step through the planes of the dominant in-plane axis and the in-plane interpolation are
/// computed once per column and plane; each row then walks a z column of the volume (stored
/// `[y][x][z]`, zero-padded) linearly — the backprojector's column kernel, run the other way.
/// The weights are those of the generic walk, so results agree with it to rounding.
mod fast {
    use super::Joseph;
    use crate::backproject::kernel::{k_range, ColumnKernel, Lane, PAD_HI, PAD_LO};
    use gantry_core::Beam;
    use ndarray::{ArrayView3, ArrayViewMut3, Axis};
    use rayon::prelude::*;

    /// One detector column's in-plane walk.
    pub(super) struct ColumnWalk {
        /// Dominant in-plane axis: 0 = x, 1 = y.
        main: usize,
        /// Ray start (source, or a point behind the pixel for a parallel beam) and in-plane
        /// direction; z of row 0 and the change of z per row at the detector.
        s: [f64; 3],
        d: [f64; 2],
        z_row0: f64,
        dz_row: f64,
        parallel: bool,
    }

    /// Padded z-column length.
    pub(super) fn column_len(nz: usize) -> usize {
        PAD_LO + nz + PAD_HI
    }

    impl Joseph {
        /// Whether the fast path applies to the whole geometry.
        pub(super) fn fast_ok(&self) -> bool {
            !self.generic_only && self.grid.is_axis_aligned() && self.scan.is_axial_aligned()
        }

        /// The in-plane walk of column `col` of `view`, or None when some of its rays are
        /// steeper in z than in-plane (in voxel units): those take the generic walk.
        pub(super) fn column_walk(&self, view: usize, col: usize) -> Option<ColumnWalk> {
            let g = &self.grid;
            let scan = &self.scan;
            let p0 = scan.pixel_position(view, 0.0, col as f64);
            let p1 = scan.pixel_position(view, 1.0, col as f64);
            let parallel = scan.beam == Beam::Parallel;
            let (s, d) = if parallel {
                let (o, w) = scan.ray(view, 0.0, col as f64);
                (o, [w[0], w[1]])
            } else {
                let s = scan.views[view].source_mm;
                (s, [p0[0] - s[0], p0[1] - s[1]])
            };
            let (ax, ay) = ((d[0] / g.spacing_mm[0]).abs(), (d[1] / g.spacing_mm[1]).abs());
            // The generic walk takes the last of equal maxima (x, y, z): y over x, z over both.
            let main = if ay >= ax { 1 } else { 0 };
            let inplane = ax.max(ay);
            if inplane == 0.0 {
                return None;
            }
            let dz_row = p1[2] - p0[2];
            if !parallel {
                let n = scan.detector.n_rows as f64 - 1.0;
                let steepest = ((p0[2] - s[2]).abs()).max((p0[2] + n * dz_row - s[2]).abs());
                if steepest / g.spacing_mm[2] >= inplane {
                    return None;
                }
            }
            Some(ColumnWalk { main, s, d, z_row0: p0[2], dz_row, parallel })
        }
    }

    /// For each plane p along the walk's main axis that the rays cross: the lane (z walk over
    /// rows, in-plane weights), the in-plane index `ia` of the first voxel column, and the rows
    /// [r_lo, r_hi) that touch the volume.
    pub(super) fn for_each_plane(j: &Joseph, w: &ColumnWalk, mut f: impl FnMut(usize, isize, usize, usize, Lane)) {
        let g = &j.grid;
        let [nx, ny, nz] = g.dims;
        let nr = j.scan.detector.n_rows;
        let (m, a) = (w.main, 1 - w.main);
        let (n_m, n_a) = ([nx, ny][m], [nx, ny][a]);
        // t at plane p: (o_m + p·s_m − S_m)/d_m; a(p) = (S_a + t·d_a − o_a)/s_a, linear in p.
        let t_of = |p: f64| (g.origin_mm[m] + p * g.spacing_mm[m] - w.s[m]) / w.d[m];
        let a_of = |t: f64| (w.s[a] + t * w.d[a] - g.origin_mm[a]) / g.spacing_mm[a];
        let (a_first, a_last) = (a_of(t_of(0.0)), a_of(t_of(n_m as f64 - 1.0)));
        let slope = if n_m > 1 { (a_last - a_first) / (n_m as f64 - 1.0) } else { 0.0 };
        let (p_lo, p_hi) = k_range(a_first + 1.0, slope, n_a as f64 + 1.0, n_m);
        for p in p_lo..p_hi {
            let t = t_of(p as f64);
            let av = a_of(t);
            let ia = av.floor();
            let fa = (av - ia) as f32;
            // z index of row r: b + e·r.
            let (b, e) = if w.parallel {
                ((w.z_row0 - g.origin_mm[2]) / g.spacing_mm[2], w.dz_row / g.spacing_mm[2])
            } else {
                let b = (w.s[2] + t * (w.z_row0 - w.s[2]) - g.origin_mm[2]) / g.spacing_mm[2];
                (b, t * w.dz_row / g.spacing_mm[2])
            };
            let (r_lo, r_hi) = k_range(b + 1.0, e, nz as f64 + 1.0, nr);
            if r_lo >= r_hi {
                continue;
            }
            let lane = Lane { r0: (b + e * r_lo as f64 + PAD_LO as f64) as f32, rk: e as f32, w0: 1.0 - fa, w1: fa };
            f(p, ia as isize, r_lo, r_hi, lane);
        }
    }

    /// Path length in mm per plane for row `r` of the walk.
    pub(super) fn step_mm(j: &Joseph, w: &ColumnWalk, r: usize) -> f64 {
        let s_m = j.grid.spacing_mm[w.main];
        if w.parallel {
            return s_m / w.d[w.main].abs();
        }
        let dz = w.z_row0 + r as f64 * w.dz_row - w.s[2];
        (w.d[0] * w.d[0] + w.d[1] * w.d[1] + dz * dz).sqrt() * s_m / w.d[w.main].abs()
    }

    /// Offset in the padded `[y][x][z]` buffer of the z column at in-plane (plane p, index a).
    pub(super) fn column_offset(j: &Joseph, main: usize, p: usize, a: isize) -> usize {
        let [nx, _, nz] = j.grid.dims;
        let pz = column_len(nz);
        let (x, y) = if main == 0 { (p as isize, a) } else { (a, p as isize) };
        (((y + 1) as usize) * (nx + 2) + (x + 1) as usize) * pz
    }

    /// The volume as padded z columns: [y + 1][x + 1][PAD_LO + z], zeros around.
    pub(super) fn padded_columns(j: &Joseph, x: &ArrayView3<f32>) -> Vec<f32> {
        let [nx, ny, nz] = j.grid.dims;
        let pz = column_len(nz);
        let mut vt = vec![0.0f32; (ny + 2) * (nx + 2) * pz];
        vt.par_chunks_mut((nx + 2) * pz).enumerate().skip(1).take(ny).for_each(|(yp, rowbuf)| {
            let y = yp - 1;
            for xi in 0..nx {
                let col = &mut rowbuf[(xi + 1) * pz + PAD_LO..(xi + 1) * pz + PAD_LO + nz];
                for (z, v) in col.iter_mut().enumerate() {
                    *v = x[[z, y, xi]];
                }
            }
        });
        vt
    }

    pub(super) fn forward(j: &Joseph, x: ArrayView3<f32>, xs: &[f32], mut out: ArrayViewMut3<f32>) {
        let vt = padded_columns(j, &x);
        let pz = column_len(j.grid.dims[2]);
        let kernel = ColumnKernel::detect();
        let nr = j.scan.detector.n_rows;
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(view, mut proj)| {
            let mut buf = vec![0.0f32; nr];
            for col in 0..proj.shape()[1] {
                let Some(w) = j.column_walk(view, col) else {
                    // Too steep for the shared walk: the generic one, ray by ray.
                    for r in 0..nr {
                        let mut sum = 0.0f32;
                        if let Some(wk) = j.walk(view, r, col) {
                            j.for_each_sample(&wk, |i, wt| sum += wt * xs[i]);
                        }
                        proj[[r, col]] = sum;
                    }
                    continue;
                };
                buf.iter_mut().for_each(|b| *b = 0.0);
                for_each_plane(j, &w, |p, ia, r_lo, r_hi, lane| {
                    let o0 = column_offset(j, w.main, p, ia);
                    let o1 = column_offset(j, w.main, p, ia + 1);
                    kernel.run(&mut buf[r_lo..r_hi], &vt[o0..o0 + pz], &vt[o1..o1 + pz], &lane);
                });
                for (r, b) in buf.iter().enumerate() {
                    proj[[r, col]] = (*b as f64 * step_mm(j, &w, r)) as f32;
                }
            }
        });
    }

    /// Aᵀ: the same weights, scattered into the padded columns; one accumulator per chunk of
    /// views, summed.
    pub(super) fn adjoint(j: &Joseph, y: ArrayView3<f32>, mut out: ArrayViewMut3<f32>) {
        let [nx, ny, nz] = j.grid.dims;
        let pz = column_len(nz);
        let n_views = j.scan.n_views();
        let nr = j.scan.detector.n_rows;
        let threads = rayon::current_num_threads().max(1);
        let chunk = n_views.div_ceil(threads).max(1);
        let starts: Vec<usize> = (0..n_views).step_by(chunk).collect();
        let len = (ny + 2) * (nx + 2) * pz;
        let n_vox = j.grid.len();
        let (vt, generic) = starts
            .into_par_iter()
            .map(|start| {
                let mut acc = vec![0.0f32; len];
                let mut generic = vec![0.0f32; 0];
                let mut vals = vec![0.0f32; nr];
                for view in start..(start + chunk).min(n_views) {
                    let proj = y.index_axis(Axis(0), view);
                    for col in 0..proj.shape()[1] {
                        let Some(w) = j.column_walk(view, col) else {
                            if generic.is_empty() {
                                generic = vec![0.0f32; n_vox];
                            }
                            for r in 0..nr {
                                let v = proj[[r, col]];
                                if let Some(wk) = j.walk(view, r, col) {
                                    j.for_each_sample(&wk, |i, wt| generic[i] += wt * v);
                                }
                            }
                            continue;
                        };
                        for (r, v) in vals.iter_mut().enumerate() {
                            *v = (proj[[r, col]] as f64 * step_mm(j, &w, r)) as f32;
                        }
                        for_each_plane(j, &w, |p, ia, r_lo, r_hi, lane| {
                            let o0 = column_offset(j, w.main, p, ia);
                            let o1 = column_offset(j, w.main, p, ia + 1);
                            scatter_column(&vals[r_lo..r_hi], &mut acc, o0, o1, pz, &lane);
                        });
                    }
                }
                (acc, generic)
            })
            .reduce(
                || (vec![0.0f32; len], Vec::new()),
                |(mut a, mut ga), (b, gb)| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    if ga.is_empty() {
                        ga = gb;
                    } else if !gb.is_empty() {
                        ga.iter_mut().zip(&gb).for_each(|(x, y)| *x += y);
                    }
                    (a, ga)
                },
            );
        for ((z, yy, xx), v) in out.indexed_iter_mut() {
            let o = ((yy + 1) * (nx + 2) + xx + 1) * pz + PAD_LO + z;
            *v = vt[o] + if generic.is_empty() { 0.0 } else { generic[(z * ny + yy) * nx + xx] };
        }
    }

    /// The transpose of the column kernel: spreads `vals[i]` (row i of the lane) into the two
    /// padded z columns at offsets `o0`, `o1` with exactly the kernel's weights.
    fn scatter_column(vals: &[f32], acc: &mut [f32], o0: usize, o1: usize, pz: usize, l: &Lane) {
        let top = (pz - 2) as f32;
        for (i, &v) in vals.iter().enumerate() {
            let r = (l.r0 + l.rk * i as i32 as f32).max(0.0).min(top);
            let ri = r as usize;
            let fr = r - ri as f32;
            let (a, b) = (v * (1.0 - fr), v * fr);
            acc[o0 + ri] += l.w0 * a;
            acc[o0 + ri + 1] += l.w0 * b;
            acc[o1 + ri] += l.w1 * a;
            acc[o1 + ri + 1] += l.w1 * b;
        }
    }
}
