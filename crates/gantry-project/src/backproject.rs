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
//! index over projections transposed to `[col][row]` (contiguous in z) into a `[y][x][z]` buffer.

use gantry_core::geometry::{dot, sub, Vec3};
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
    /// Fast path: `[y][x][z]`; general path: `[z][y][x]`.
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

    /// The accumulated volume, `[z][y][x]`.
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
        Volume { geometry: self.volume, data, quantity: gantry_core::Quantity::Unspecified }
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
        // Transposed copy, zero-padded: [view][col + 2][PAD_LO + row + PAD_HI], so a z walk
        // reads contiguous memory, and reads just outside the detector (or clamped onto the
        // padding) see zeros. The 10 zeros at the end also cover 8-wide vector loads.
        let (pc, pr) = (nc + 2, PAD_LO + nr + PAD_HI);
        let mut tp = vec![0.0f32; n_views * pc * pr];
        let src_all = projections.as_standard_layout();
        let src_all = src_all.as_slice().expect("standard layout");
        tp.par_chunks_mut(pc * pr).enumerate().for_each(|(v, dst)| {
            let src = &src_all[v * nr * nc..(v + 1) * nr * nc];
            // Blocks of 16 rows keep both sides of the transpose in cache.
            for r0 in (0..nr).step_by(16) {
                let r1 = (r0 + 16).min(nr);
                for c in 0..nc {
                    let d = &mut dst[(c + 1) * pr + PAD_LO..(c + 2) * pr];
                    for r in r0..r1 {
                        d[r] = src[r * nc + c];
                    }
                }
            }
        });
        let views: Vec<ViewParams> = (0..n_views).map(|i| ViewParams::new(scan, first + i)).collect();
        let geom = &self.volume;
        let (ox, oy, oz) = (geom.origin_mm[0], geom.origin_mm[1], geom.origin_mm[2]);
        let (sx, sy, sz) = (geom.spacing_mm[0], geom.spacing_mm[1], geom.spacing_mm[2]);
        let weight = self.weight;
        let beam = scan.beam;
        let shape = det.shape;
        let kernel = ColumnKernel::detect();
        // Padded row index = (v_mm − offset_v)/pixel_v + (nr − 1)/2 + PAD_LO.
        let row_c = 0.5 * (nr as f64 - 1.0) + PAD_LO as f64;
        let col_c = 0.5 * (nc as f64 - 1.0) + 1.0;
        // The volume is walked in tiles of TILE_X columns × `band` rows: the projection columns
        // that one tile's rays hit stay in cache for all its voxel columns (walking whole rows
        // of x re-read every detector column from memory once per row on large detectors).
        let ny = self.volume.dims[1];
        let band = (ny / (4 * rayon::current_num_threads().max(1))).clamp(1, TILE_Y);
        self.acc.par_chunks_mut(band * nx * nz).enumerate().for_each(|(b, band_buf)| {
            let rows = band_buf.len() / (nx * nz);
            let mut walks: Vec<Walk> = Vec::with_capacity(views.len());
            let tiles = (0..nx)
                .step_by(TILE_X)
                .flat_map(|x0| (0..rows).flat_map(move |jj| (x0..(x0 + TILE_X).min(nx)).map(move |i| (jj, i))));
            for (jj, i) in tiles {
                let y = oy + (b * band + jj) as f64 * sy;
                let row_buf = &mut band_buf[jj * nx * nz..(jj + 1) * nx * nz];
                let x = ox + i as f64 * sx;
                walks.clear();
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
                    // Padded row index as a linear function of k; the rows that touch the
                    // detector are PAD_LO − 1 <= r < PAD_LO + nr.
                    let r0 = (vscale * vz * (oz - z_ref) - det.offset_v_mm) / det.pixel_v_mm + row_c;
                    let rk = vscale * vz * sz / det.pixel_v_mm;
                    let (k_lo, k_hi) = k_range(r0 - (PAD_LO as f64 - 1.0), rk, (nr + 1) as f64, nz);
                    if k_lo >= k_hi {
                        continue;
                    }
                    let lane =
                        Lane { r0: (r0 + rk * k_lo as f64) as f32, rk: rk as f32, w0: wt * (1.0 - fc), w1: wt * fc };
                    walks.push(Walk { base: vi * pc * pr + ci * pr, k_lo, k_hi, lane });
                }
                let acc = &mut row_buf[i * nz..(i + 1) * nz];
                let cols = |w: &Walk| (&tp[w.base..w.base + pr], &tp[w.base + pr..w.base + 2 * pr]);
                // Two views per pass share the loads and stores of the voxel column (four
                // measured no faster); each view alone outside the range both reach.
                let starts: Vec<usize> =
                    walks.iter().map(|w| w.base + (w.lane.r0.max(0.0) as usize).min(pr.saturating_sub(1))).collect();
                for (gi, group) in walks.chunks(2).enumerate() {
                    // The first rows of the next pair's columns are usually not in cache yet:
                    // ask for them while this pair is walked.
                    for &o in starts.iter().skip(2 * gi + 2).take(2) {
                        prefetch(&tp, o);
                        prefetch(&tp, o + 16);
                        prefetch(&tp, o + pr);
                        prefetch(&tp, o + pr + 16);
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
        });
    }
}

/// Tile of the backprojection walk: voxel columns along x, rows along y (see `add_fast`).
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

/// One view's contribution to one voxel column: its detector columns in the transposed buffer,
/// the k range it reaches, and the walk from k_lo.
struct Walk {
    base: usize,
    k_lo: usize,
    k_hi: usize,
    lane: Lane,
}

/// Zero rows before and after each padded detector column.
pub(crate) const PAD_LO: usize = 2;
pub(crate) const PAD_HI: usize = 10;

/// One view's walk along a voxel column: padded row index r(k) = r0 + rk·k and the weights of
/// its two detector columns (bilinear in u, times the distance weight and view factor).
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    pub r0: f32,
    pub rk: f32,
    pub w0: f32,
    pub w1: f32,
}

impl Lane {
    /// The same walk started `dk` voxels later.
    pub fn advanced(&self, dk: f32) -> Lane {
        Lane { r0: self.r0 + self.rk * dk, ..*self }
    }
}

/// The column kernel for this CPU: AVX2 + FMA when present, portable scalar code otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl ColumnKernel {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return ColumnKernel::Avx2;
        }
        ColumnKernel::Scalar
    }

    /// Adds `w0·col0(r) + w1·col1(r)`, linearly interpolated at r(k), to every `acc[k]`.
    /// Indices are clamped into the padded columns (whose ends are zero), so any input is
    /// memory-safe.
    pub fn run(self, acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane) {
        match self {
            ColumnKernel::Scalar => column_scalar(acc, col0, col1, l, 0),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: constructed only when the CPU has AVX2 and FMA.
            ColumnKernel::Avx2 => unsafe { column_avx2(acc, col0, col1, l) },
        }
    }

    /// N views over the same voxels: the same as `run` for each, in one pass.
    pub fn run_n<const N: usize>(self, acc: &mut [f32], views: [(&[f32], &[f32], &Lane); N]) {
        match self {
            ColumnKernel::Scalar => {
                for v in views {
                    column_scalar(acc, v.0, v.1, v.2, 0);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: constructed only when the CPU has AVX2 and FMA.
            ColumnKernel::Avx2 => unsafe { column_n_avx2(acc, views) },
        }
    }
}

/// The portable inner loop, from `acc[start]` on.
#[inline(always)]
pub(crate) fn column_scalar(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane, start: usize) {
    let n = col0.len().min(col1.len());
    if n < 2 {
        return;
    }
    let top = (n - 2) as f32;
    for (k, a) in acc.iter_mut().enumerate().skip(start) {
        let r = (l.r0 + l.rk * k as i32 as f32).max(0.0).min(top);
        // SAFETY: r is finite and in [0, n − 2], so the truncation is in range.
        let ri = unsafe { r.to_int_unchecked::<i32>() } as usize;
        let fr = r - ri as i32 as f32;
        // SAFETY: ri + 1 <= n − 1 < col0.len(), col1.len().
        let (p0, p1, q0, q1) = unsafe {
            (*col0.get_unchecked(ri), *col0.get_unchecked(ri + 1), *col1.get_unchecked(ri), *col1.get_unchecked(ri + 1))
        };
        let lo = l.w0 * p0 + l.w1 * q0;
        let hi = l.w0 * p1 + l.w1 * q1;
        *a += lo + fr * (hi - lo);
    }
}

/// How many voxels a vector step covers for row slope `rk`: while the row index advances by
/// less than one row per voxel, eight consecutive voxels read at most nine consecutive rows (two
/// unaligned 8-wide loads per detector column and a lane permute replace eight gathers); with
/// 1 <= rk < 7/3 four voxels fit the same way (each half of an 8-lane vector on its own window,
/// `contribution8_split`); other slopes go scalar.
fn vector_group(rk: f32) -> usize {
    if (0.0..0.999).contains(&rk) {
        8
    } else if (0.0..2.33).contains(&rk) {
        4
    } else {
        0
    }
}

/// The contribution of one view to eight voxels whose padded row positions are `r` (all
/// within the column, spanning at most eight rows from lane 0's): bilinear in the two
/// detector columns, weights `w0`, `w1`. Loads stay within `col[base..base + 9]` with `base`
/// clamped to `n − 9`, so any `r` is memory-safe (the permute uses only the index's low bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn contribution8(
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let n = col0.len().min(col1.len());
    let ri = _mm256_cvttps_epi32(r);
    let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
    let base = _mm256_cvtsi256_si32(ri).clamp(0, n as i32 - 9);
    let idx = _mm256_sub_epi32(ri, _mm256_set1_epi32(base));
    let b = base as usize;
    // SAFETY: n >= 10 (checked by the callers) and b + 9 <= n <= both lengths.
    let (a_lo, a_hi, b_lo, b_hi) = unsafe {
        let p0 = col0.as_ptr().add(b);
        let p1 = col1.as_ptr().add(b);
        (
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(p0), idx),
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(p0.add(1)), idx),
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(p1), idx),
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(p1.add(1)), idx),
        )
    };
    bilinear([a_lo, a_hi, b_lo, b_hi], fr, w0, w1)
}

/// As `contribution8`, for row slopes from 1 to 7/3: each half of the vector (four voxels, at
/// most eight rows apart) looks up its own eight-row window, and a blend joins the halves, so
/// eight voxels share one pass of the arithmetic. Bases are clamped to `n − 9`, so any `r` is
/// memory-safe.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn contribution8_split(
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let n = col0.len().min(col1.len());
    let ri = _mm256_cvttps_epi32(r);
    let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
    let top = n as i32 - 9;
    let ba = _mm256_cvtsi256_si32(ri).clamp(0, top);
    let bb = _mm256_extract_epi32::<4>(ri).clamp(0, top);
    let idx = _mm256_sub_epi32(ri, _mm256_setr_epi32(ba, ba, ba, ba, bb, bb, bb, bb));
    let (pa, pb) = (ba as usize, bb as usize);
    // SAFETY: n >= 10 (checked by the callers) and both bases + 9 <= n <= both lengths.
    let look = |p: *const f32, off: usize| unsafe {
        let lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(p.add(pa + off)), idx);
        let hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(p.add(pb + off)), idx);
        _mm256_blend_ps::<0xF0>(lo, hi)
    };
    let (a_lo, a_hi) = (look(col0.as_ptr(), 0), look(col0.as_ptr(), 1));
    let (b_lo, b_hi) = (look(col1.as_ptr(), 0), look(col1.as_ptr(), 1));
    bilinear([a_lo, a_hi, b_lo, b_hi], fr, w0, w1)
}

/// w0·column 0 + w1·column 1 (each at rows ⌊r⌋ and ⌊r⌋ + 1), linearly interpolated at the
/// row fraction `fr`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn bilinear(
    [a_lo, a_hi, b_lo, b_hi]: [std::arch::x86_64::__m256; 4],
    fr: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let lo = _mm256_fmadd_ps(w1, b_lo, _mm256_mul_ps(w0, a_lo));
    let hi = _mm256_fmadd_ps(w1, b_hi, _mm256_mul_ps(w0, a_hi));
    _mm256_fmadd_ps(fr, _mm256_sub_ps(hi, lo), lo)
}

/// Adds `v` (8 lanes, of which the first `group` count) to `acc[k..]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn add_group(acc: &mut [f32], k: usize, group: usize, v: std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    assert!(k + group <= acc.len());
    // SAFETY: k + group <= acc.len() (asserted), group is 4 or 8.
    unsafe {
        let dst = acc.as_mut_ptr().add(k);
        if group == 8 {
            _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), v));
        } else {
            _mm_storeu_ps(dst, _mm_add_ps(_mm_loadu_ps(dst), _mm256_castps256_ps128(v)));
        }
    }
}

/// The AVX2 inner loop for one view; the walk must stay on the detector (as the k range
/// computed by the caller ensures), the last few voxels go scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn column_avx2(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane) {
    use std::arch::x86_64::*;
    let split = vector_group(l.rk) == 4;
    if vector_group(l.rk) == 0 || col0.len().min(col1.len()) < 10 {
        return column_scalar(acc, col0, col1, l, 0);
    }
    let group = 8;
    let (w0, w1) = (_mm256_set1_ps(l.w0), _mm256_set1_ps(l.w1));
    let step = _mm256_set1_ps(l.rk * group as f32);
    let mut r = _mm256_fmadd_ps(
        _mm256_set1_ps(l.rk),
        _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        _mm256_set1_ps(l.r0),
    );
    let mut k = 0usize;
    while k + group <= acc.len() {
        // SAFETY: AVX2 and FMA are enabled for this function; k + group <= acc.len().
        unsafe {
            let c =
                if split { contribution8_split(col0, col1, r, w0, w1) } else { contribution8(col0, col1, r, w0, w1) };
            add_group(acc, k, group, c)
        };
        r = _mm256_add_ps(r, step);
        k += group;
    }
    column_scalar(acc, col0, col1, l, k);
}

/// The AVX2 inner loop for N views over the same voxels, sharing the loads and stores of the
/// voxel column.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn column_n_avx2<const N: usize>(acc: &mut [f32], views: [(&[f32], &[f32], &Lane); N]) {
    use std::arch::x86_64::*;
    let smallest = views.iter().map(|v| vector_group(v.2.rk)).min().unwrap_or(0);
    let short = views.iter().any(|v| v.0.len().min(v.1.len()) < 10);
    if smallest == 0 || short {
        for v in views {
            // SAFETY: AVX2 and FMA are enabled for this function.
            unsafe { column_avx2(acc, v.0, v.1, v.2) };
        }
        return;
    }
    let split: [bool; N] = std::array::from_fn(|i| vector_group(views[i].2.rk) == 4);
    let group = 8;
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let w0: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.w0));
    let w1: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.w1));
    let step: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.rk * group as f32));
    let mut r: [__m256; N] =
        std::array::from_fn(|i| _mm256_fmadd_ps(_mm256_set1_ps(views[i].2.rk), lanes, _mm256_set1_ps(views[i].2.r0)));
    let mut k = 0usize;
    while k + group <= acc.len() {
        let mut v = _mm256_setzero_ps();
        for i in 0..N {
            let (c0, c1) = (views[i].0, views[i].1);
            // SAFETY: AVX2 and FMA are enabled for this function.
            let c = unsafe {
                if split[i] {
                    contribution8_split(c0, c1, r[i], w0[i], w1[i])
                } else {
                    contribution8(c0, c1, r[i], w0[i], w1[i])
                }
            };
            v = _mm256_add_ps(v, c);
            r[i] = _mm256_add_ps(r[i], step[i]);
        }
        // SAFETY: AVX2 and FMA are enabled; k + group <= acc.len().
        unsafe { add_group(acc, k, group, v) };
        k += group;
    }
    for vw in views {
        column_scalar(acc, vw.0, vw.1, vw.2, k);
    }
}

/// The k in [0, n) for which `0 <= r0 + rk·k < limit`.
pub(crate) fn k_range(r0: f64, rk: f64, limit: f64, n: usize) -> (usize, usize) {
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
