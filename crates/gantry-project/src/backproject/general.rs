//! The reference backprojection: any geometry, one voxel and one view at a time, in f64.

use super::cone::{Orbit, Share};
use super::{check_subset, Accumulate, Backproject, BackprojectOptions, DistanceWeight, OwnedRays, Rays, ViewParams};
use gantry_core::{ConeParallelGeometry, Quantity, Result, ScanGeometry, Volume, VolumeGeometry};
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// Backprojection for any geometry: each voxel centre projected onto each view's detector.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeneralBackprojector;

impl Backproject for GeneralBackprojector {
    fn name(&self) -> &'static str {
        "general"
    }

    fn supports(&self, _volume: &VolumeGeometry, _rays: Rays) -> bool {
        true
    }

    fn start(&self, volume: &VolumeGeometry, rays: Rays, options: &BackprojectOptions) -> Result<Box<dyn Accumulate>> {
        volume.validate()?;
        rays.validate()?;
        let orbit = options.cone.as_ref().map(|c| Orbit::new(rays, c)).transpose()?;
        Ok(Box::new(GeneralAccumulator {
            volume: volume.clone(),
            rays: rays.to_owned(),
            weight: options.distance,
            orbit,
            acc: vec![0.0; volume.len()],
        }))
    }
}

struct GeneralAccumulator {
    volume: VolumeGeometry,
    rays: OwnedRays,
    weight: DistanceWeight,
    orbit: Option<Orbit>,
    /// `[z][y][x]`.
    acc: Vec<f32>,
}

/// The share of a ray (with the detector v at which to sample it), given the cone column.
fn share_and_v(
    orbit: &Option<Orbit>,
    col: impl FnOnce(&Orbit) -> super::cone::ConeColumn,
    h: f64,
    v: f64,
) -> (f64, f64) {
    match orbit {
        None => (1.0, v),
        Some(o) => match o.share(&col(o), h) {
            Share::Own(w) => (w, v),
            Share::Extrapolated => (1.0, o.nearest_edge(v)),
        },
    }
}

/// Bilinear interpolation of `proj` at fractional (row, col); zero outside the detector.
fn bilinear(proj: &ArrayView2<f32>, r: f64, c: f64) -> f64 {
    let (nr, nc) = (proj.shape()[0] as isize, proj.shape()[1] as isize);
    let (c0, r0) = (c.floor(), r.floor());
    let (fc, fr) = (c - c0, r - r0);
    let (c0, r0) = (c0 as isize, r0 as isize);
    let mut val = 0.0f64;
    for (dr, dc, f) in
        [(0, 0, (1.0 - fr) * (1.0 - fc)), (0, 1, (1.0 - fr) * fc), (1, 0, fr * (1.0 - fc)), (1, 1, fr * fc)]
    {
        let (rr, cc) = (r0 + dr, c0 + dc);
        if rr >= 0 && rr < nr && cc >= 0 && cc < nc {
            val += f * proj[[rr as usize, cc as usize]] as f64;
        }
    }
    val
}

impl Accumulate for GeneralAccumulator {
    fn add(&mut self, first: usize, projections: ArrayView3<f32>, view_factors: &[f32]) -> Result<()> {
        check_subset(self.rays.rays(), first, &projections, view_factors)?;
        match &self.rays {
            OwnedRays::Scan(scan) => {
                add_scan(&mut self.acc, &self.volume, scan, self.weight, first, projections, view_factors)
            }
            OwnedRays::ConeParallel(g) => {
                add_cone_parallel(&mut self.acc, &self.volume, g, &self.orbit, first, projections, view_factors)
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Volume {
        let [nx, ny, nz] = self.volume.dims;
        let data = Array3::from_shape_vec((nz, ny, nx), self.acc).expect("accumulator has the volume's size");
        Volume { geometry: self.volume, data, quantity: Quantity::Unspecified }
    }
}

#[allow(clippy::too_many_arguments)]
fn add_scan(
    acc: &mut [f32],
    geom: &VolumeGeometry,
    scan: &ScanGeometry,
    weight: DistanceWeight,
    first: usize,
    projections: ArrayView3<f32>,
    view_factors: &[f32],
) {
    let [nx, ny, _] = geom.dims;
    let det = &scan.detector;
    let views: Vec<ViewParams> = (0..projections.shape()[0]).map(|i| ViewParams::new(scan, first + i)).collect();
    acc.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = geom.position_mm(i as f64, j as f64, k as f64);
                let mut sum = 0.0f64;
                for (vi, vp) in views.iter().enumerate() {
                    let (uc, vc, wt) = vp.project(scan, p, weight);
                    let proj = projections.index_axis(Axis(0), vi);
                    let val = bilinear(&proj, det.v_to_row(vc), det.u_to_col(uc));
                    sum += val * wt * view_factors[vi] as f64;
                }
                slice[j * nx + i] += sum as f32;
            }
        }
    });
}

fn add_cone_parallel(
    acc: &mut [f32],
    geom: &VolumeGeometry,
    g: &ConeParallelGeometry,
    orbit: &Option<Orbit>,
    first: usize,
    projections: ArrayView3<f32>,
    view_factors: &[f32],
) {
    let [nx, ny, _] = geom.dims;
    acc.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = geom.position_mm(i as f64, j as f64, k as f64);
                let h = p[2] - g.z_mm;
                let mut sum = 0.0f64;
                for (vi, &factor) in view_factors.iter().enumerate() {
                    let (t, l, l_c) = g.ray_through(first + vi, p[0], p[1]);
                    let v = g.v_per_height(t, l) * h;
                    let (share, v_at) = share_and_v(orbit, |o| o.parallel_column(g, t, l, l_c), h, v);
                    if share == 0.0 {
                        continue;
                    }
                    let proj = projections.index_axis(Axis(0), vi);
                    let val = bilinear(&proj, g.v_to_row(v_at), g.col_of(t));
                    sum += val * share * factor as f64;
                }
                slice[j * nx + i] += sum as f32;
            }
        }
    });
}
