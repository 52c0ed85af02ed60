//! The column path: for the usual geometry (volume axes along x, y, z; every view's detector v
//! axis along ±z) a voxel column along z projects to one detector column at one distance, so
//! the column index, weight and row slope are computed once per (x, y) and the inner loop walks
//! z with a linear row index ([`kernel`](super::kernel)) over projections transposed to
//! `[col][row]` (contiguous in z) into a `[y][x][z]` buffer.
//!
//! With the cone weighting, a column splits into runs of constant share (walked by the kernel
//! with scaled weights) and the few voxels where a ray fades at a detector edge (done one by one).

use super::cone::{ConeColumn, Orbit, Share};
use super::kernel::{k_range, ColumnKernel, Lane, PAD_HI, PAD_LO};
use super::{check_subset, Accumulate, Backproject, BackprojectOptions, DistanceWeight, OwnedRays, Rays, ViewParams};
use gantry_core::{Beam, DetectorShape, Quantity, Result, Volume, VolumeGeometry};
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// The column-walk backprojector, with the portable or the AVX2 kernel.
#[derive(Debug, Clone, Copy)]
pub struct ColumnBackprojector {
    kernel: ColumnKernel,
}

impl ColumnBackprojector {
    pub fn new(kernel: ColumnKernel) -> Self {
        ColumnBackprojector { kernel }
    }
}

impl Backproject for ColumnBackprojector {
    fn name(&self) -> &'static str {
        self.kernel.name()
    }

    fn supports(&self, volume: &VolumeGeometry, rays: Rays) -> bool {
        volume.is_axis_aligned()
            && match rays {
                Rays::Scan(scan) => scan.is_axial_aligned(),
                Rays::ConeParallel(_) => true,
            }
    }

    fn start(&self, volume: &VolumeGeometry, rays: Rays, options: &BackprojectOptions) -> Result<Box<dyn Accumulate>> {
        volume.validate()?;
        rays.validate()?;
        if !self.supports(volume, rays) {
            return Err(gantry_core::CoreError::invalid(
                "backprojector",
                self.name(),
                "needs an axis-aligned volume and every detector v axis along z (use the general backprojector)",
            ));
        }
        let orbit = options.cone.as_ref().map(|c| Orbit::new(rays, c)).transpose()?;
        Ok(Box::new(ColumnAccumulator {
            volume: volume.clone(),
            rays: rays.to_owned(),
            weight: options.distance,
            orbit,
            kernel: self.kernel,
            acc: vec![0.0; volume.len()],
            transposed: Vec::new(),
        }))
    }
}

struct ColumnAccumulator {
    volume: VolumeGeometry,
    rays: OwnedRays,
    weight: DistanceWeight,
    orbit: Option<Orbit>,
    kernel: ColumnKernel,
    /// `[y][x][z]`.
    acc: Vec<f32>,
    /// The current subset, transposed and padded (kept for the next subset).
    transposed: Vec<f32>,
}

/// Tile of the backprojection walk: voxel columns along x, rows along y.
const TILE_X: usize = 16;
const TILE_Y: usize = 16;

/// Hints the cache to fetch the line holding `buf[i]` (nothing when out of range or off x86).
#[inline(always)]
fn prefetch(buf: &[f32], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = buf.get(i) {
        // SAFETY: a prefetch hint reads nothing and cannot fault; the pointer is in bounds.
        unsafe { std::arch::x86_64::_mm_prefetch(v as *const f32 as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, i);
}

/// One run of one view along one voxel column: its detector columns in the transposed buffer,
/// the k range, and the walk from k_lo.
struct Walk {
    base: usize,
    k_lo: usize,
    k_hi: usize,
    lane: Lane,
}

/// What the in-plane projection of a voxel column gives for one view.
struct ColumnView {
    /// Detector column (padded index) and its fraction.
    ci: usize,
    fc: f32,
    /// Distance weight × view factor.
    wt: f32,
    /// Padded row index at k = 0 and per voxel.
    r0: f64,
    rk: f64,
}

impl ColumnAccumulator {
    /// Transposed copy, zero-padded: `[view][col + 2][PAD_LO + row + PAD_HI]`, so a z walk
    /// reads contiguous memory, and reads just outside the detector (or clamped onto the
    /// padding) see zeros. The zeros at the end also cover 8-wide vector loads.
    fn transpose(&self, projections: &ArrayView3<f32>, tp: &mut Vec<f32>) -> (usize, usize) {
        let [nr, nc] = self.rays.rays().view_shape();
        let n_views = projections.shape()[0];
        let (pc, pr) = (nc + 2, PAD_LO + nr + PAD_HI);
        // The buffer is kept from subset to subset (fresh pages cost a fault each); the padding
        // stays zero, every detector value is overwritten.
        if tp.len() != n_views * pc * pr {
            tp.clear();
            tp.resize(n_views * pc * pr, 0.0);
        }
        let src_all = projections.as_standard_layout();
        let src_all = src_all.as_slice().expect("standard layout");
        tp.par_chunks_mut(pc * pr).enumerate().for_each(|(v, dst)| {
            transpose_view(&src_all[v * nr * nc..(v + 1) * nr * nc], nr, nc, dst, pr);
        });
        (pc, pr)
    }

    /// The projection of the voxel column at (x, y) onto view `view` (with its parameters `vp`
    /// for a scan), and its cone weights; None when it misses the detector's columns.
    fn column_view(
        &self,
        view: usize,
        vp: Option<&ViewParams>,
        trig: (f64, f64),
        x: f64,
        y: f64,
        factor: f32,
    ) -> Option<(ColumnView, Option<ConeColumn>)> {
        let geom = &self.volume;
        let [nr, nc] = self.rays.rays().view_shape();
        let row_c = 0.5 * (nr as f64 - 1.0) + PAD_LO as f64;
        let (oz, sz) = (geom.origin_mm[2], geom.spacing_mm[2]);
        match (&self.rays, vp) {
            (OwnedRays::ConeParallel(g), _) => {
                let _ = view;
                let (t, l, l_c) = g.ray_through_at(trig, x, y);
                let c = g.col_of(t) + 1.0;
                if !(c >= 0.0 && c < (nc + 1) as f64) {
                    return None;
                }
                let ci = c as usize;
                let scale = g.v_per_height(t, l);
                let cv = ColumnView {
                    ci,
                    fc: (c - ci as f64) as f32,
                    wt: factor,
                    r0: (scale * (oz - g.z_mm) - g.offset_v_mm) / g.pixel_v_mm + row_c,
                    rk: scale * sz / g.pixel_v_mm,
                };
                Some((cv, self.orbit.map(|o| o.parallel_column(g, t, l, l_c))))
            }
            (OwnedRays::Scan(scan), Some(vp)) => {
                let det = &scan.detector;
                let col_c = 0.5 * (nc as f64 - 1.0) + 1.0;
                let fdk = self.weight == DistanceWeight::Fdk;
                let (inv_pu, inv_pv) = (1.0 / det.pixel_u_mm, 1.0 / det.pixel_v_mm);
                // In-plane projection: detector u (mm), v per mm of z, distance weight, v origin.
                let (uc, vscale, wt, z_ref) = match (scan.beam, det.shape) {
                    (Beam::Parallel, _) => {
                        let (dx, dy) = (x - vp.d[0], y - vp.d[1]);
                        (vp.u[0] * dx + vp.u[1] * dy, 1.0, 1.0, vp.d[2])
                    }
                    (Beam::Cone, DetectorShape::Flat) => {
                        let (dx, dy) = (x - vp.s[0], y - vp.s[1]);
                        let inv = 1.0 / (vp.w[0] * dx + vp.w[1] * dy);
                        let m = vp.sdd * inv;
                        let wt = if fdk { vp.sid * vp.sdd * inv * inv } else { 1.0 };
                        (m * (vp.u[0] * dx + vp.u[1] * dy), m, wt, vp.s[2])
                    }
                    (Beam::Cone, DetectorShape::Cylindrical) => {
                        let (dx, dy) = (x - vp.s[0], y - vp.s[1]);
                        let depth = vp.w[0] * dx + vp.w[1] * dy;
                        let a = vp.u[0] * dx + vp.u[1] * dy;
                        let inv2 = 1.0 / (a * a + depth * depth);
                        let wt = if fdk { vp.sid * vp.sdd * inv2 } else { 1.0 };
                        (vp.sdd * fan_angle(a, depth), vp.sdd * inv2.sqrt(), wt, vp.s[2])
                    }
                };
                let c = (uc - det.offset_u_mm) * inv_pu + col_c;
                if !(c >= 0.0 && c < (nc + 1) as f64) {
                    return None;
                }
                let ci = c as usize;
                let vz = vp.v[2]; // ±1
                let cv = ColumnView {
                    ci,
                    fc: (c - ci as f64) as f32,
                    wt: (wt * factor as f64) as f32,
                    r0: (vscale * vz * (oz - z_ref) - det.offset_v_mm) * inv_pv + row_c,
                    rk: vscale * vz * sz * inv_pv,
                };
                Some((cv, None))
            }
            (OwnedRays::Scan(_), None) => None,
        }
    }
}

impl Accumulate for ColumnAccumulator {
    fn add(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) -> Result<()> {
        check_subset(self.rays.rays(), first, &projections, view_factors)?;
        let mut tp = std::mem::take(&mut self.transposed);
        let (pc, pr) = self.transpose(&projections, &mut tp);
        let n_views = projections.shape()[0];
        let views: Vec<Option<ViewParams>> = (0..n_views)
            .map(|i| match &self.rays {
                OwnedRays::Scan(scan) => Some(ViewParams::new(scan, first + i)),
                OwnedRays::ConeParallel(_) => None,
            })
            .collect();
        let trig: Vec<(f64, f64)> = (0..n_views)
            .map(|i| match &self.rays {
                OwnedRays::ConeParallel(g) => g.theta_rad[first + i].sin_cos(),
                OwnedRays::Scan(_) => (0.0, 1.0),
            })
            .collect();
        let [nx, ny, nz] = self.volume.dims;
        let nr = self.rays.rays().view_shape()[0];
        let (ox, oy) = (self.volume.origin_mm[0], self.volume.origin_mm[1]);
        let (sx, sy) = (self.volume.spacing_mm[0], self.volume.spacing_mm[1]);
        let (oz, sz) = (self.volume.origin_mm[2], self.volume.spacing_mm[2]);
        let kernel = self.kernel;
        let orbit = self.orbit;
        // A scan's views without cone weighting: the walks come from one tight loop per column.
        let fast = match &self.rays {
            OwnedRays::Scan(scan) if orbit.is_none() => {
                Some(PlainWalks::new(scan, &self.volume, self.weight, first, n_views, view_factors))
            }
            _ => None,
        };
        // The volume is walked in tiles of TILE_X columns × `band` rows: the projection columns
        // that one tile's rays hit stay in cache for all its voxel columns.
        let band = (ny / (4 * rayon::current_num_threads().max(1))).clamp(1, TILE_Y);
        let mut acc = std::mem::take(&mut self.acc);
        let this = &*self;
        acc.par_chunks_mut(band * nx * nz).enumerate().for_each(|(b, band_buf)| {
            let rows = band_buf.len() / (nx * nz);
            let mut walks: Vec<Walk> = Vec::with_capacity(views.len());
            // The shorter runs of a view cut by the cone weighting: walked alone.
            let mut pieces: Vec<Walk> = Vec::new();
            // Per-voxel shares where a ray fades, and the voxels both rays miss.
            let (mut shares, mut extrapolated): (Vec<f32>, Vec<usize>) = (Vec::new(), Vec::new());
            let tiles = (0..nx)
                .step_by(TILE_X)
                .flat_map(|x0| (0..rows).flat_map(move |jj| (x0..(x0 + TILE_X).min(nx)).map(move |i| (jj, i))));
            for (jj, i) in tiles {
                let y = oy + (b * band + jj) as f64 * sy;
                let x = ox + i as f64 * sx;
                let acc = &mut band_buf[(jj * nx + i) * nz..(jj * nx + i + 1) * nz];
                walks.clear();
                pieces.clear();
                if let Some(f) = &fast {
                    f.walks(x, y, pc * pr, pr, &mut walks);
                    walk_pairs(kernel, acc, &tp, pr, &walks, nz);
                    continue;
                }
                for (vi, vp) in views.iter().enumerate() {
                    let Some((cv, cone)) = this.column_view(first + vi, vp.as_ref(), trig[vi], x, y, view_factors[vi])
                    else {
                        continue;
                    };
                    let base = vi * pc * pr + cv.ci * pr;
                    let lane = |k: usize, share: f32| Lane {
                        r0: (cv.r0 + cv.rk * k as f64) as f32,
                        rk: cv.rk as f32,
                        w0: share * cv.wt * (1.0 - cv.fc),
                        w1: share * cv.wt * cv.fc,
                    };
                    // The rows that touch the detector are PAD_LO − 1 <= r < PAD_LO + nr.
                    let (k_lo, k_hi) = k_range(cv.r0 - (PAD_LO as f64 - 1.0), cv.rk, (nr + 1) as f64, nz);
                    let (Some(o), Some(cc)) = (&orbit, cone) else {
                        if k_lo < k_hi {
                            walks.push(Walk { base, k_lo, k_hi, lane: lane(k_lo, 1.0) });
                        }
                        continue;
                    };
                    let cols = (&tp[base..base + pr], &tp[base + pr..base + 2 * pr]);
                    let (segments, n_seg) = cone_segments(o, &cc, oz - o.z, sz, nz);
                    // The longest constant run goes with the other views' (they overlap).
                    let longest = segments[..n_seg]
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| matches!(s.kind, SegmentKind::Constant(Share::Own(w)) if w > 0.0))
                        .max_by_key(|(_, s)| s.k1.min(k_hi).saturating_sub(s.k0.max(k_lo)))
                        .map(|(i, _)| i);
                    for (si, seg) in segments[..n_seg].iter().enumerate() {
                        match seg.kind {
                            SegmentKind::Constant(Share::Own(w)) => {
                                let (a, b) = (seg.k0.max(k_lo), seg.k1.min(k_hi));
                                if w > 0.0 && a < b {
                                    let walk = Walk { base, k_lo: a, k_hi: b, lane: lane(a, w as f32) };
                                    if Some(si) == longest {
                                        walks.push(walk);
                                    } else {
                                        pieces.push(walk);
                                    }
                                }
                            }
                            SegmentKind::Constant(Share::Extrapolated) => {
                                let v = edge_value(o, &cc, &cv, cols, oz - o.z + sz * seg.k0 as f64, nr);
                                for a in &mut acc[seg.k0..seg.k1] {
                                    *a += v;
                                }
                            }
                            SegmentKind::Varying => {
                                let (a, b) = (seg.k0, seg.k1);
                                shares.resize(b - a, 0.0);
                                extrapolated.clear();
                                o.fill_shares(&cc, oz - o.z + sz * a as f64, sz, &mut shares, &mut extrapolated);
                                for &k in &extrapolated {
                                    acc[a + k] += edge_value(o, &cc, &cv, cols, oz - o.z + sz * (a + k) as f64, nr);
                                }
                                let (lo, hi) = (a.max(k_lo), b.min(k_hi));
                                if lo < hi {
                                    kernel.run_weighted(
                                        &mut acc[lo..hi],
                                        cols.0,
                                        cols.1,
                                        &lane(lo, 1.0),
                                        &shares[lo - a..hi - a],
                                    );
                                }
                            }
                        }
                    }
                }
                walk_pairs(kernel, acc, &tp, pr, &walks, nz);
                for w in &pieces {
                    kernel.run(
                        &mut acc[w.k_lo..w.k_hi],
                        &tp[w.base..w.base + pr],
                        &tp[w.base + pr..w.base + 2 * pr],
                        &w.lane,
                    );
                }
            }
        });
        self.acc = acc;
        self.transposed = tp;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Volume {
        let [nx, ny, nz] = self.volume.dims;
        let plane = nx * ny;
        let mut out = vec![0.0f32; nz * plane];
        let acc = &self.acc;
        // Sixteen slices at a time: each voxel column gives one cache line of them, and the
        // sixteen output slices are written in order.
        const SLAB: usize = 16;
        out.par_chunks_mut(SLAB * plane).enumerate().for_each(|(b, slab)| {
            let k0 = b * SLAB;
            let depth = slab.len() / plane;
            for c in 0..plane {
                let column = &acc[c * nz + k0..c * nz + k0 + depth];
                for (dk, &v) in column.iter().enumerate() {
                    slab[dk * plane + c] = v;
                }
            }
        });
        let data = Array3::from_shape_vec((nz, ny, nx), out).expect("the volume's size");
        Volume { geometry: self.volume, data, quantity: Quantity::Unspecified }
    }
}

/// atan(a / depth) for a voxel in front of the source (depth > 0): a polynomial within ±31°
/// (error below 5·10⁻¹¹ rad, 10⁻⁸ of a clinical pixel), `atan2` beyond.
#[inline]
fn fan_angle(a: f64, depth: f64) -> f64 {
    let t = a / depth;
    if depth > 0.0 && t.abs() <= 0.6 {
        let z = t * t;
        // Odd minimax fit of atan on [−0.6, 0.6].
        let p = ATAN_COEFFS.iter().rev().fold(0.0, |acc, &c| acc * z + c);
        t * p
    } else {
        a.atan2(depth)
    }
}

/// Coefficients c_k of atan(t) ≈ t·Σ c_k t^(2k) on [−0.6, 0.6] (least squares on Chebyshev
/// nodes; the maximum error over the interval is 4.2·10⁻¹¹).
const ATAN_COEFFS: [f64; 8] = [
    0.999999998799744,
    -0.3333331699439281,
    0.1999934715555518,
    -0.14273888927878445,
    0.10995723892793949,
    -0.08434233112550178,
    0.05443110812972116,
    -0.020133039088615065,
];

/// One view `[row][col]` into its padded transposed columns (`dst[(c + 1)·pr + PAD_LO + r]`),
/// in 8 × 8 tiles: eight rows of eight columns read contiguously, written out as eight runs of
/// eight rows.
fn transpose_view(src: &[f32], nr: usize, nc: usize, dst: &mut [f32], pr: usize) {
    const T: usize = 8;
    let mut tile = [[0.0f32; T]; T];
    for c0 in (0..nc).step_by(T) {
        let cw = T.min(nc - c0);
        for r0 in (0..nr).step_by(T) {
            let rh = T.min(nr - r0);
            for (dr, row) in tile.iter_mut().enumerate().take(rh) {
                let s = &src[(r0 + dr) * nc + c0..(r0 + dr) * nc + c0 + cw];
                row[..cw].copy_from_slice(s);
            }
            for dc in 0..cw {
                let d = &mut dst[(c0 + dc + 1) * pr + PAD_LO + r0..(c0 + dc + 1) * pr + PAD_LO + r0 + rh];
                for (dr, out) in d.iter_mut().enumerate() {
                    *out = tile[dr][dc];
                }
            }
        }
    }
}

/// The geometry of a scan's voxel columns for a subset of views, with everything that is the
/// same for every column computed once: each column's walks then cost one division per view.
struct PlainWalks {
    kind: (Beam, DetectorShape),
    views: Vec<PlainView>,
    fdk: bool,
    inv_pu: f64,
    inv_pv: f64,
    off_u: f64,
    off_v: f64,
    col_c: f64,
    row_c: f64,
    n_cols: usize,
    n_rows: usize,
    nz: usize,
}

/// One view's part of [`PlainWalks`].
#[derive(Clone, Copy)]
struct PlainView {
    /// In-plane origin of the rays (source, or detector centre for a parallel beam).
    ox: f64,
    oy: f64,
    ux: f64,
    uy: f64,
    wx: f64,
    wy: f64,
    sdd: f64,
    sid_sdd: f64,
    /// ±(height of the volume's first slice above the ray origin) and ±(slice spacing).
    dz0: f64,
    dzk: f64,
    factor: f64,
}

impl PlainWalks {
    fn new(
        scan: &gantry_core::ScanGeometry,
        volume: &VolumeGeometry,
        weight: DistanceWeight,
        first: usize,
        n: usize,
        factors: &[f32],
    ) -> PlainWalks {
        let det = &scan.detector;
        let views = (0..n)
            .map(|i| {
                let vp = ViewParams::new(scan, first + i);
                let o = if scan.beam == Beam::Parallel { vp.d } else { vp.s };
                let vz = vp.v[2];
                PlainView {
                    ox: o[0],
                    oy: o[1],
                    ux: vp.u[0],
                    uy: vp.u[1],
                    wx: vp.w[0],
                    wy: vp.w[1],
                    sdd: vp.sdd,
                    sid_sdd: vp.sid * vp.sdd,
                    dz0: vz * (volume.origin_mm[2] - o[2]),
                    dzk: vz * volume.spacing_mm[2],
                    factor: factors[i] as f64,
                }
            })
            .collect();
        PlainWalks {
            kind: (scan.beam, det.shape),
            views,
            fdk: weight == DistanceWeight::Fdk,
            inv_pu: 1.0 / det.pixel_u_mm,
            inv_pv: 1.0 / det.pixel_v_mm,
            off_u: det.offset_u_mm,
            off_v: det.offset_v_mm,
            col_c: 0.5 * (det.n_cols as f64 - 1.0) + 1.0,
            row_c: 0.5 * (det.n_rows as f64 - 1.0) + PAD_LO as f64,
            n_cols: det.n_cols,
            n_rows: det.n_rows,
            nz: volume.dims[2],
        }
    }

    /// The walks of the voxel column at (x, y) (views `view_stride` apart in the transposed
    /// buffer, detector columns `pr` apart).
    fn walks(&self, x: f64, y: f64, view_stride: usize, pr: usize, out: &mut Vec<Walk>) {
        let limit = (self.n_cols + 1) as f64;
        for (vi, v) in self.views.iter().enumerate() {
            let (dx, dy) = (x - v.ox, y - v.oy);
            let a = v.ux * dx + v.uy * dy;
            // Detector u, detector v per mm of height, distance weight.
            let (u, scale, wt) = match self.kind {
                (Beam::Parallel, _) => (a, 1.0, 1.0),
                (Beam::Cone, DetectorShape::Flat) => {
                    let inv = 1.0 / (v.wx * dx + v.wy * dy);
                    let m = v.sdd * inv;
                    (m * a, m, if self.fdk { v.sid_sdd * inv * inv } else { 1.0 })
                }
                (Beam::Cone, DetectorShape::Cylindrical) => {
                    let depth = v.wx * dx + v.wy * dy;
                    let inv2 = 1.0 / (a * a + depth * depth);
                    (v.sdd * fan_angle(a, depth), v.sdd * inv2.sqrt(), if self.fdk { v.sid_sdd * inv2 } else { 1.0 })
                }
            };
            let c = (u - self.off_u) * self.inv_pu + self.col_c;
            if !(c >= 0.0 && c < limit) {
                continue;
            }
            let ci = c as usize;
            let fc = c - ci as f64;
            let r0 = (scale * v.dz0 - self.off_v) * self.inv_pv + self.row_c;
            let rk = scale * v.dzk * self.inv_pv;
            // The rows that touch the detector are PAD_LO − 1 <= r < PAD_LO + nr.
            let (k_lo, k_hi) = k_range(r0 - (PAD_LO as f64 - 1.0), rk, (self.n_rows + 1) as f64, self.nz);
            if k_lo >= k_hi {
                continue;
            }
            let w = wt * v.factor;
            out.push(Walk {
                base: vi * view_stride + ci * pr,
                k_lo,
                k_hi,
                lane: Lane {
                    r0: (r0 + rk * k_lo as f64) as f32,
                    rk: rk as f32,
                    w0: (w * (1.0 - fc)) as f32,
                    w1: (w * fc) as f32,
                },
            });
        }
    }
}

/// Runs the walks of one voxel column. Two views per pass share the loads and stores of the
/// voxel column (four measured no faster); each alone outside the range both reach.
fn walk_pairs(kernel: ColumnKernel, acc: &mut [f32], tp: &[f32], pr: usize, walks: &[Walk], nz: usize) {
    let cols = |w: &Walk| (&tp[w.base..w.base + pr], &tp[w.base + pr..w.base + 2 * pr]);
    let start = |w: &Walk| w.base + (w.lane.r0.max(0.0) as usize).min(pr.saturating_sub(1));
    for (gi, group) in walks.chunks(2).enumerate() {
        // The first rows of the next pair's columns are usually not in cache yet: ask for them
        // while this pair is walked.
        for w in walks.iter().skip(2 * gi + 2).take(2) {
            let o = start(w);
            prefetch(tp, o);
            prefetch(tp, o + 16);
            prefetch(tp, o + pr);
            prefetch(tp, o + pr + 16);
        }
        let (lo, hi) = group.iter().fold((0, nz), |(lo, hi), w| (lo.max(w.k_lo), hi.min(w.k_hi)));
        if group.len() < 2 || lo >= hi {
            for w in group {
                let (c0, c1) = cols(w);
                kernel.run(&mut acc[w.k_lo..w.k_hi], c0, c1, &w.lane);
            }
            continue;
        }
        for w in group {
            let (c0, c1) = cols(w);
            kernel.run(&mut acc[w.k_lo..lo], c0, c1, &w.lane);
            kernel.run(&mut acc[hi..w.k_hi], c0, c1, &w.lane.advanced((hi - w.k_lo) as f32));
        }
        let lanes: [Lane; 2] = std::array::from_fn(|i| group[i].lane.advanced((lo - group[i].k_lo) as f32));
        let c: [(&[f32], &[f32]); 2] = std::array::from_fn(|i| cols(&group[i]));
        kernel.run_n::<2>(&mut acc[lo..hi], std::array::from_fn(|i| (c[i].0, c[i].1, &lanes[i])));
    }
}

/// One sample of a walk at padded row `r` (zero off the detector).
fn sample((c0, c1): (&[f32], &[f32]), r: f64, l: &Lane) -> f32 {
    let top = (c0.len().min(c1.len()) - 2) as f64;
    let r = r.clamp(0.0, top);
    let ri = r as usize;
    let fr = (r - ri as f64) as f32;
    let lo = l.w0 * c0[ri] + l.w1 * c1[ri];
    let hi = l.w0 * c0[ri + 1] + l.w1 * c1[ri + 1];
    lo + fr * (hi - lo)
}

/// Half of the nearest edge row's value (both rays miss the detector), as the general path
/// takes it: the weight is 1 of the full turn's 2.
fn edge_value(o: &Orbit, cc: &ConeColumn, cv: &ColumnView, cols: (&[f32], &[f32]), h: f64, nr: usize) -> f32 {
    let r = if o.nearest_edge_is_low(cc.scale * h) { PAD_LO } else { PAD_LO + nr - 1 };
    let lane = Lane { r0: 0.0, rk: 0.0, w0: cv.wt * (1.0 - cv.fc), w1: cv.wt * cv.fc };
    sample(cols, r as f64, &lane)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SegmentKind {
    Constant(Share),
    Varying,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    k0: usize,
    k1: usize,
    kind: SegmentKind,
}

/// At most this many runs per voxel column and view: two rays × four breakpoints cut it.
const MAX_SEGMENTS: usize = 9;

/// The voxel column [0, nz) (heights `h0 + dz·k` above the orbit plane) cut where either ray
/// crosses a fade breakpoint: runs where both shares are constant, and runs where one fades.
fn cone_segments(o: &Orbit, cc: &ConeColumn, h0: f64, dz: f64, nz: usize) -> ([Segment; MAX_SEGMENTS], usize) {
    let mut cuts = [0usize; MAX_SEGMENTS + 1];
    cuts[1] = nz;
    let mut n = 2;
    for scale in [cc.scale, cc.scale_c] {
        for v in o.breakpoints() {
            // v = scale·(h0 + dz·k) → k = (v/scale − h0)/dz.
            let k = (v / scale - h0) / dz;
            if k.is_finite() && k > 0.0 && k < nz as f64 {
                cuts[n] = k.ceil() as usize;
                n += 1;
            }
        }
    }
    let cuts = &mut cuts[..n];
    cuts.sort_unstable();
    let in_fade = |v: f64| {
        let [lo, lo_in, hi_in, hi] = o.breakpoints();
        (v > lo && v < lo_in) || (v > hi_in && v < hi)
    };
    let mut out = [Segment { k0: 0, k1: 0, kind: SegmentKind::Varying }; MAX_SEGMENTS];
    let mut m = 0;
    for w in cuts.windows(2) {
        if w[1] <= w[0] {
            continue;
        }
        let mid = h0 + dz * 0.5 * (w[0] + w[1] - 1) as f64;
        let varying = in_fade(cc.scale * mid) || in_fade(cc.scale_c * mid)
            // A run of one voxel may straddle a breakpoint: take it voxel by voxel.
            || w[1] - w[0] == 1;
        let kind = if varying { SegmentKind::Varying } else { SegmentKind::Constant(o.share(cc, mid)) };
        out[m] = Segment { k0: w[0], k1: w[1], kind };
        m += 1;
    }
    (out, m)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fan_angle_polynomial_is_atan() {
        for i in -1000..=1000 {
            let a = i as f64 * 0.7e-3;
            let got = super::fan_angle(a, 1.0);
            assert!((got - a.atan()).abs() < 1e-10, "{a}: {got}");
        }
        assert_eq!(super::fan_angle(3.0, 1.0), 3.0f64.atan2(1.0));
    }
}
