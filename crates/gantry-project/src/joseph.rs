//! The Joseph projector: along each ray, one sample per voxel plane perpendicular to the ray's
//! main axis, bilinearly interpolated in that plane and weighted by the step length. Its
//! adjoint spreads each ray value back with exactly the same weights, so the pair is matched.

use crate::{check_sizes, Projector};
use gantry_core::geometry::{dot, sub, Vec3};
use gantry_core::{Result, ScanGeometry, VolumeGeometry};
use ndarray::{ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

/// Joseph forward projector and its exact adjoint for one volume grid and one scan geometry.
#[derive(Debug, Clone)]
pub struct Joseph {
    volume: VolumeGeometry,
    scan: ScanGeometry,
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
    pub fn new(volume: VolumeGeometry, scan: ScanGeometry) -> Result<Self> {
        volume.validate()?;
        scan.validate()?;
        Ok(Joseph { volume, scan })
    }

    fn walk(&self, view: usize, row: usize, col: usize) -> Option<Walk> {
        let g = &self.volume;
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
        let dims = self.volume.dims;
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
        &self.volume
    }
    fn scan_geometry(&self) -> &ScanGeometry {
        &self.scan
    }

    fn forward(&self, volume: ArrayView3<f32>, mut projections: ArrayViewMut3<f32>) -> Result<()> {
        check_sizes(self, volume.shape(), projections.shape())?;
        let vol = volume.as_standard_layout();
        let x = vol.as_slice().expect("standard layout");
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
        let n_vox = self.volume.len();
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
