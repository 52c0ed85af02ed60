//! Phantoms made of additive shapes, the built-in ones, and what can be computed from them
//! exactly: values at points, line integrals and supersampled voxelisations.

use crate::shapes::{euler_zxz, rot_z, Shape, NO_ROTATION};
use gantry_core::frame::mat_vec;
use gantry_core::geometry::{sub, Vec3};
use gantry_core::units::hu_to_mu;
use gantry_core::{ProjectionStack, Quantity, ScanGeometry, Volume, VolumeGeometry};
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Something that can be X-rayed: its line integral along any ray at any time. Time-dependent
/// scenes (beating coronaries, contrast arriving) implement it; each view asks at its own time.
pub trait Scene: Sync {
    /// ∫ μ dl along the ray `origin + t·dir` (dir a unit vector), at `time_s`.
    fn line_integral(&self, origin: Vec3, dir: Vec3, time_s: f64) -> f64;
}

/// A static phantom: the sum of its shapes' values, which are `quantity` (μ in 1/mm for the
/// phantoms that are scanned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phantom {
    pub shapes: Vec<Shape>,
    #[serde(default)]
    pub quantity: Quantity,
}

impl Scene for Phantom {
    fn line_integral(&self, origin: Vec3, dir: Vec3, _time_s: f64) -> f64 {
        self.line_integral(origin, dir)
    }
}

impl Phantom {
    /// Value at a point (sum of the shapes that contain it).
    pub fn value_at(&self, p: Vec3) -> f64 {
        self.shapes.iter().filter(|s| s.contains(p)).map(|s| s.value()).sum()
    }

    /// Exact line integral along the whole line `origin + t·dir`, dir a unit vector.
    pub fn line_integral(&self, origin: Vec3, dir: Vec3) -> f64 {
        self.shapes.iter().map(|s| s.value() * s.chord_mm(origin, dir)).sum()
    }

    /// The modified 3D Shepp–Logan phantom (Toft's higher-contrast values, the ellipsoids of
    /// Kak & Slaney extended to 3D as in Yu, Ye & Wang's table), scaled so the unit cube
    /// [−1, 1]³ spans ±`half_size_mm`. Values are the classic densities (outer skull 1.0,
    /// brain 0.2); multiply by a μ scale to make attenuation.
    pub fn shepp_logan_3d(half_size_mm: f64) -> Phantom {
        // value, a, b, c, x0, y0, z0, phi, theta, psi (degrees)
        const T: [[f64; 10]; 10] = [
            [1.0, 0.6900, 0.920, 0.810, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [-0.8, 0.6624, 0.874, 0.780, 0.0, -0.0184, 0.0, 0.0, 0.0, 0.0],
            [-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0, 0.0, -18.0, 0.0, 10.0],
            [-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0, 0.0, 18.0, 0.0, 10.0],
            [0.1, 0.2100, 0.250, 0.410, 0.0, 0.35, -0.15, 0.0, 0.0, 0.0],
            [0.1, 0.0460, 0.046, 0.050, 0.0, 0.1, 0.25, 0.0, 0.0, 0.0],
            [0.1, 0.0460, 0.046, 0.050, 0.0, -0.1, 0.25, 0.0, 0.0, 0.0],
            [0.1, 0.0460, 0.023, 0.050, -0.08, -0.605, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.0230, 0.023, 0.020, 0.0, -0.606, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.0230, 0.046, 0.020, 0.06, -0.605, 0.0, 0.0, 0.0, 0.0],
        ];
        let s = half_size_mm;
        let shapes = T
            .iter()
            .map(|r| Shape::Ellipsoid {
                center_mm: [r[4] * s, r[5] * s, r[6] * s],
                semi_axes_mm: [r[1] * s, r[2] * s, r[3] * s],
                rotation: euler_zxz(r[7].to_radians(), r[8].to_radians(), r[9].to_radians()),
                value: r[0],
            })
            .collect();
        Phantom { shapes, quantity: Quantity::Unitless }
    }

    /// The same shapes, stating what their values are.
    pub fn with_quantity(self, quantity: Quantity) -> Phantom {
        Phantom { quantity, ..self }
    }

    /// The same phantom with every value multiplied by `factor`.
    pub fn scaled(mut self, factor: f64) -> Phantom {
        for s in &mut self.shapes {
            match s {
                Shape::Ellipsoid { value, .. } | Shape::Cylinder { value, .. } => *value *= factor,
            }
        }
        self
    }

    /// A water cylinder along z, of `radius_mm` and `length_mm`, μ = `mu_water_per_mm`.
    pub fn water_cylinder(radius_mm: f64, length_mm: f64, mu_water_per_mm: f64) -> Phantom {
        Phantom {
            shapes: vec![Shape::Cylinder {
                center_mm: [0.0; 3],
                radii_mm: [radius_mm, radius_mm],
                half_length_mm: 0.5 * length_mm,
                rotation: NO_ROTATION,
                value: mu_water_per_mm,
            }],
            quantity: Quantity::LinearAttenuation,
        }
    }

    /// An adult head in HU, stated as μ (1/mm) against `mu_water_per_mm`: scalp, skull, brain
    /// with grey and white matter, ventricles, a hyperdense haemorrhage
    /// (70 HU), a hypodense infarct (18 HU) and a small calcification (400 HU). Centred on the
    /// isocentre; about 184 × 230 × 200 mm.
    pub fn head(mu_water_per_mm: f64) -> Phantom {
        Self::from_hu_layers(mu_water_per_mm, &Self::head_layers())
    }

    /// The head phantom's regions: (shape with its HU as value, HU of what it sits in).
    fn head_layers() -> Vec<(Shape, f64)> {
        let e = |c: Vec3, a: Vec3, rot: f64, hu: f64| Shape::Ellipsoid {
            center_mm: c,
            semi_axes_mm: a,
            rotation: rot_z(rot.to_radians()),
            value: hu,
        };
        vec![
            (e([0.0, 0.0, 0.0], [92.0, 115.0, 100.0], 0.0, 40.0), -1000.0), // scalp, soft tissue
            (e([0.0, 0.0, 0.0], [87.0, 110.0, 95.0], 0.0, 1100.0), 40.0),   // skull (cortical bone)
            (e([0.0, 1.0, 1.0], [81.0, 104.0, 89.0], 0.0, 37.0), 1100.0),   // grey matter
            (e([0.0, 3.0, 4.0], [66.0, 86.0, 70.0], 0.0, 28.0), 37.0),      // white matter
            (e([-12.0, -4.0, 12.0], [7.0, 26.0, 12.0], -12.0, 5.0), 28.0),  // left ventricle (CSF)
            (e([12.0, -4.0, 12.0], [7.0, 26.0, 12.0], 12.0, 5.0), 28.0),    // right ventricle
            (e([34.0, 40.0, 18.0], [9.0, 9.0, 9.0], 0.0, 70.0), 28.0),      // haemorrhage
            (e([-38.0, 28.0, -6.0], [14.0, 20.0, 16.0], 25.0, 18.0), 28.0), // infarct
            (e([-20.0, -50.0, 30.0], [2.5, 2.5, 2.5], 0.0, 400.0), 37.0),   // calcification
        ]
    }

    fn from_hu_layers(mu_water_per_mm: f64, layers: &[(Shape, f64)]) -> Phantom {
        let shapes = layers
            .iter()
            .map(|(shape, below_hu)| {
                let mut s = shape.clone();
                let hu = s.value();
                let delta = hu_to_mu(hu, mu_water_per_mm) - hu_to_mu(*below_hu, mu_water_per_mm);
                match &mut s {
                    Shape::Ellipsoid { value, .. } | Shape::Cylinder { value, .. } => *value = delta,
                }
                s
            })
            .collect();
        Phantom { shapes, quantity: Quantity::LinearAttenuation }
    }

    /// An orientation phantom (μ in 1/mm): a water cylinder along z (radius 70 mm, 100 mm long)
    /// with a bone bead (4 mm radius, 1000 HU) at the patient's left, anterior, head end, LPS
    /// (35, −35, 20) mm, and a fainter one (3 mm, 500 HU) at the patient's right, (−35, 0, 0):
    /// where the beads land in an image tells whether it is the right way round.
    pub fn orientation(mu_water_per_mm: f64) -> Phantom {
        let bead = |c: Vec3, r: f64, hu: f64| {
            (Shape::Ellipsoid { center_mm: c, semi_axes_mm: [r; 3], rotation: NO_ROTATION, value: hu }, 0.0)
        };
        let layers = [
            (
                Shape::Cylinder {
                    center_mm: [0.0; 3],
                    radii_mm: [70.0, 70.0],
                    half_length_mm: 50.0,
                    rotation: NO_ROTATION,
                    value: 0.0,
                },
                -1000.0,
            ),
            bead(Self::ORIENTATION_BEAD_MM, 4.0, 1000.0),
            bead([-35.0, 0.0, 0.0], 3.0, 500.0),
        ];
        Self::from_hu_layers(mu_water_per_mm, &layers)
    }

    /// The Defrise phantom, the classic test of cone-beam data insufficiency: `n_discs` thin
    /// discs (cylinders along z) of `radius_mm` and `thickness_mm`, `gap_mm` apart, centred on
    /// z = 0, each of μ `mu_per_mm`, in air. A circular orbit measures the discs far from its
    /// plane incompletely; FDK smears them into the gaps there.
    pub fn defrise(mu_per_mm: f64, radius_mm: f64, thickness_mm: f64, gap_mm: f64, n_discs: usize) -> Phantom {
        let pitch = thickness_mm + gap_mm;
        let shapes = (0..n_discs)
            .map(|k| Shape::Cylinder {
                center_mm: [0.0, 0.0, (k as f64 - 0.5 * (n_discs as f64 - 1.0)) * pitch],
                radii_mm: [radius_mm, radius_mm],
                half_length_mm: 0.5 * thickness_mm,
                rotation: NO_ROTATION,
                value: mu_per_mm,
            })
            .collect();
        Phantom { shapes, quantity: Quantity::LinearAttenuation }
    }

    /// Where [`Phantom::orientation`]'s bright bead is (LPS, mm): left, anterior, superior.
    pub const ORIENTATION_BEAD_MM: Vec3 = [35.0, -35.0, 20.0];

    /// The phantom sampled on a grid: each voxel is the mean of `supersample³` points spread
    /// evenly inside it (1 = the voxel centre only). Positions are the grid's: a phantom is
    /// stated in patient coordinates (LPS), and so must the grid be.
    pub fn voxelize(&self, geometry: &VolumeGeometry, supersample: usize) -> Volume {
        let ss = supersample.max(1);
        let [nx, ny, _] = geometry.dims;
        let offsets: Vec<f64> = (0..ss).map(|i| (i as f64 + 0.5) / ss as f64 - 0.5).collect();
        let norm = 1.0 / (ss * ss * ss) as f64;
        let mut data = Array3::<f32>::zeros(geometry.shape_zyx());
        // Voxel index ranges each shape can touch (whole grid when the grid is rotated).
        let boxes: Vec<[std::ops::Range<usize>; 3]> = self
            .shapes
            .iter()
            .map(|s| {
                let full = [0..geometry.dims[0], 0..geometry.dims[1], 0..geometry.dims[2]];
                if !geometry.is_axis_aligned() {
                    return full;
                }
                let (c, h) = s.bounding_box();
                std::array::from_fn(|a| {
                    let lo = ((c[a] - h[a] - geometry.origin_mm[a]) / geometry.spacing_mm[a] - 1.0).floor();
                    let hi = ((c[a] + h[a] - geometry.origin_mm[a]) / geometry.spacing_mm[a] + 1.0).ceil();
                    let n = geometry.dims[a] as f64;
                    (lo.clamp(0.0, n) as usize)..(hi.clamp(0.0, n - 1.0) as usize + 1).min(geometry.dims[a])
                })
            })
            .collect();
        data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
            let mut acc = vec![0.0f64; nx * ny];
            for (shape, bx) in self.shapes.iter().zip(&boxes) {
                if !bx[2].contains(&k) {
                    continue;
                }
                let v = shape.value() * norm;
                for j in bx[1].clone() {
                    for i in bx[0].clone() {
                        let mut inside = 0usize;
                        for dz in &offsets {
                            for dy in &offsets {
                                for dx in &offsets {
                                    let p = geometry.position_mm(i as f64 + dx, j as f64 + dy, k as f64 + dz);
                                    inside += shape.contains(p) as usize;
                                }
                            }
                        }
                        acc[j * nx + i] += v * inside as f64;
                    }
                }
            }
            for (dst, src) in slice.iter_mut().zip(&acc) {
                *dst = *src as f32;
            }
        });
        Volume { geometry: geometry.clone(), data, quantity: self.quantity }
    }
}

/// Exact line integrals of `scene` for every pixel of `geometry` (one ray through each pixel
/// centre), each view seen at its own time. The scene is stated in the scan's world frame (the
/// patient's LPS, placed as the scan's patient position says; RTK's frame for RTK geometry).
pub fn project_analytic(scene: &dyn Scene, geometry: &ScanGeometry) -> ProjectionStack {
    project_analytic_aperture(scene, geometry, 1, 1)
}

/// Line integrals averaged over each pixel's aperture: `sub_u × sub_v` rays spread evenly over
/// the pixel, as a real detector integrates its whole area. Point sampling a sharp edge (a
/// skull) aliases in the projections and leaves rings parallel to it in the image; the aperture
/// removes most of that.
pub fn project_analytic_aperture(
    scene: &dyn Scene,
    geometry: &ScanGeometry,
    sub_u: usize,
    sub_v: usize,
) -> ProjectionStack {
    project_analytic_progress(scene, geometry, sub_u, sub_v, &|_| {})
}

/// [`project_analytic_aperture`], calling `progress(views_done)` as views are finished (from
/// any thread, in no particular order).
pub fn project_analytic_progress(
    scene: &dyn Scene,
    geometry: &ScanGeometry,
    sub_u: usize,
    sub_v: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> ProjectionStack {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut stack = ProjectionStack::zeros(geometry.clone());
    let (su, sv) = (sub_u.max(1), sub_v.max(1));
    let offsets = |n: usize| -> Vec<f64> { (0..n).map(|i| (i as f64 + 0.5) / n as f64 - 0.5).collect() };
    let (ou, ov) = (offsets(su), offsets(sv));
    let norm = 1.0 / (su * sv) as f64;
    let to_world = geometry.frame.scanner_to_world();
    let identity = to_world == gantry_core::volume::IDENTITY;
    stack.data.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(view, mut proj)| {
        let t = geometry.views[view].time_s;
        for ((row, col), out) in proj.indexed_iter_mut() {
            let mut sum = 0.0;
            for dv in &ov {
                for du in &ou {
                    let (o, d) = geometry.ray(view, row as f64 + dv, col as f64 + du);
                    let (o, d) = if identity { (o, d) } else { (mat_vec(&to_world, o), mat_vec(&to_world, d)) };
                    sum += scene.line_integral(o, d, t);
                }
            }
            *out = (sum * norm) as f32;
        }
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    });
    stack
}

/// Distance from `p` to the line through `o` along unit `d` (a helper for tests and phantoms).
pub fn distance_to_line(p: Vec3, o: Vec3, d: Vec3) -> f64 {
    let r = sub(p, o);
    let t = gantry_core::geometry::dot(r, d);
    let q = [r[0] - t * d[0], r[1] - t * d[1], r[2] - t * d[2]];
    gantry_core::geometry::norm(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::units::{mu_to_hu, MU_WATER_60KEV_PER_MM};

    #[test]
    fn head_phantom_has_the_stated_hu() {
        let mw = MU_WATER_60KEV_PER_MM;
        let h = Phantom::head(mw);
        let hu = |p: Vec3| mu_to_hu(h.value_at(p), mw);
        assert!((hu([0.0, 0.0, -200.0]) + 1000.0).abs() < 1e-9); // air
        assert!((hu([0.0, 113.0, 0.0]) - 40.0).abs() < 1e-9); // scalp
        assert!((hu([0.0, 108.0, 0.0]) - 1100.0).abs() < 1e-9); // skull
        assert!((hu([0.0, 100.0, 0.0]) - 37.0).abs() < 1e-9); // grey matter
        assert!((hu([0.0, 40.0, 0.0]) - 28.0).abs() < 1e-9); // white matter
        assert!((hu([12.0, -4.0, 12.0]) - 5.0).abs() < 1e-9); // ventricle
        assert!((hu([34.0, 40.0, 18.0]) - 70.0).abs() < 1e-9); // haemorrhage
        assert!((hu([-38.0, 28.0, -6.0]) - 18.0).abs() < 1e-9); // infarct
    }

    #[test]
    fn defrise_discs_are_where_stated() {
        let p = Phantom::defrise(0.02, 100.0, 6.0, 10.0, 11);
        // Discs at z = 16k mm, 6 mm thick; gaps between.
        assert_eq!(p.value_at([0.0, 0.0, 0.0]), 0.02);
        assert_eq!(p.value_at([50.0, 0.0, 32.0 + 2.9]), 0.02);
        assert_eq!(p.value_at([0.0, 0.0, 8.0]), 0.0);
        assert_eq!(p.value_at([0.0, 101.0, 0.0]), 0.0);
        // A ray along z crosses 11 discs of 6 mm.
        assert!((p.line_integral([10.0, 0.0, -200.0], [0.0, 0.0, 1.0]) - 11.0 * 6.0 * 0.02).abs() < 1e-12);
    }

    #[test]
    fn voxelized_volume_integrates_to_the_shape_volume() {
        let r = 20.0;
        let p = Phantom::water_cylinder(r, 30.0, 1.0);
        let g = VolumeGeometry::centered([64, 64, 48], [1.0, 1.0, 1.0], [0.3, -0.2, 0.1]).unwrap();
        let v = p.voxelize(&g, 4);
        let total: f64 = v.data.iter().map(|&x| x as f64).sum();
        let exact = std::f64::consts::PI * r * r * 30.0;
        assert!((total - exact).abs() / exact < 2e-3, "{total} vs {exact}");
    }

    #[test]
    fn voxel_sums_match_line_integrals() {
        // A ray along x through the voxelised phantom sums to its exact line integral.
        let p = Phantom::shepp_logan_3d(60.0);
        let g = VolumeGeometry::centered([256, 3, 3], [0.5, 0.5, 0.5], [0.0, 10.0, 5.0]).unwrap();
        let v = p.voxelize(&g, 1);
        let sum: f64 = v.data.index_axis(Axis(0), 1).index_axis(Axis(0), 1).iter().map(|&x| x as f64 * 0.5).sum();
        let exact = p.line_integral([-100.0, 10.0, 5.0], [1.0, 0.0, 0.0]);
        assert!((sum - exact).abs() < 0.02 * exact, "{sum} vs {exact}");
    }
}
