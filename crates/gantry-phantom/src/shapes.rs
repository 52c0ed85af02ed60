//! Primitive shapes with exact line integrals: ellipsoids and finite elliptic cylinders.

use gantry_core::geometry::{dot, sub, Vec3};
use serde::{Deserialize, Serialize};

/// A 3×3 rotation taking world offsets into the shape's local axes (`local = R · (p − c)`).
pub type Rotation = [[f64; 3]; 3];

pub const NO_ROTATION: Rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// The rotation of the Euler angles (φ, θ, ψ), z–x–z convention as in the 3D Shepp–Logan tables.
pub fn euler_zxz(phi: f64, theta: f64, psi: f64) -> Rotation {
    let (sp, cp) = phi.sin_cos();
    let (st, ct) = theta.sin_cos();
    let (ss, cs) = psi.sin_cos();
    [
        [cs * cp - ct * sp * ss, cs * sp + ct * cp * ss, ss * st],
        [-ss * cp - ct * sp * cs, -ss * sp + ct * cp * cs, cs * st],
        [st * sp, -st * cp, ct],
    ]
}

/// A rotation by `angle` radians about z.
pub fn rot_z(angle: f64) -> Rotation {
    euler_zxz(angle, 0.0, 0.0)
}

fn apply(r: &Rotation, v: Vec3) -> Vec3 {
    [dot(r[0], v), dot(r[1], v), dot(r[2], v)]
}

/// One shape of a phantom; its `value` (μ in 1/mm, or any density) adds to what lies beneath.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Ellipsoid {
        center_mm: Vec3,
        semi_axes_mm: Vec3,
        rotation: Rotation,
        value: f64,
    },
    /// An elliptic cylinder with its axis along local z, of length `2 · half_length_mm`.
    Cylinder {
        center_mm: Vec3,
        radii_mm: [f64; 2],
        half_length_mm: f64,
        rotation: Rotation,
        value: f64,
    },
}

impl Shape {
    pub fn value(&self) -> f64 {
        match self {
            Shape::Ellipsoid { value, .. } | Shape::Cylinder { value, .. } => *value,
        }
    }

    /// Whether the point lies inside (boundary included).
    pub fn contains(&self, p: Vec3) -> bool {
        match self {
            Shape::Ellipsoid { center_mm, semi_axes_mm, rotation, .. } => {
                let q = apply(rotation, sub(p, *center_mm));
                (0..3).map(|a| (q[a] / semi_axes_mm[a]).powi(2)).sum::<f64>() <= 1.0
            }
            Shape::Cylinder { center_mm, radii_mm, half_length_mm, rotation, .. } => {
                let q = apply(rotation, sub(p, *center_mm));
                (q[0] / radii_mm[0]).powi(2) + (q[1] / radii_mm[1]).powi(2) <= 1.0 && q[2].abs() <= *half_length_mm
            }
        }
    }

    /// Length in mm of the chord of the ray `origin + t·dir` (dir a unit vector, t over all reals)
    /// through the shape.
    pub fn chord_mm(&self, origin: Vec3, dir: Vec3) -> f64 {
        // Quick rejection: the line passes outside the bounding sphere.
        let (c, r) = self.bounding_sphere();
        let oc = sub(c, origin);
        let t = dot(oc, dir);
        if dot(oc, oc) - t * t > r * r {
            return 0.0;
        }
        match self {
            Shape::Ellipsoid { center_mm, semi_axes_mm, rotation, .. } => {
                let q0 = apply(rotation, sub(origin, *center_mm));
                let q1 = apply(rotation, dir);
                let q0: Vec3 = std::array::from_fn(|a| q0[a] / semi_axes_mm[a]);
                let q1: Vec3 = std::array::from_fn(|a| q1[a] / semi_axes_mm[a]);
                let a = dot(q1, q1);
                let b = dot(q0, q1);
                let c = dot(q0, q0) - 1.0;
                let disc = b * b - a * c;
                if disc <= 0.0 {
                    0.0
                } else {
                    2.0 * disc.sqrt() / a
                }
            }
            Shape::Cylinder { center_mm, radii_mm, half_length_mm, rotation, .. } => {
                let q0 = apply(rotation, sub(origin, *center_mm));
                let q1 = apply(rotation, dir);
                // In-plane interval.
                let (x0, y0) = (q0[0] / radii_mm[0], q0[1] / radii_mm[1]);
                let (x1, y1) = (q1[0] / radii_mm[0], q1[1] / radii_mm[1]);
                let a = x1 * x1 + y1 * y1;
                let (mut lo, mut hi);
                if a < 1e-300 {
                    if x0 * x0 + y0 * y0 > 1.0 {
                        return 0.0;
                    }
                    lo = f64::NEG_INFINITY;
                    hi = f64::INFINITY;
                } else {
                    let b = x0 * x1 + y0 * y1;
                    let c = x0 * x0 + y0 * y0 - 1.0;
                    let disc = b * b - a * c;
                    if disc <= 0.0 {
                        return 0.0;
                    }
                    let s = disc.sqrt();
                    lo = (-b - s) / a;
                    hi = (-b + s) / a;
                }
                // Slab |z| <= h.
                let h = *half_length_mm;
                if q1[2].abs() < 1e-300 {
                    if q0[2].abs() > h {
                        return 0.0;
                    }
                } else {
                    let t1 = (-h - q0[2]) / q1[2];
                    let t2 = (h - q0[2]) / q1[2];
                    lo = lo.max(t1.min(t2));
                    hi = hi.min(t1.max(t2));
                }
                (hi - lo).max(0.0)
            }
        }
    }

    /// Centre and radius (mm) of a sphere that holds the shape.
    pub fn bounding_sphere(&self) -> (Vec3, f64) {
        match self {
            Shape::Ellipsoid { center_mm, semi_axes_mm, .. } => {
                (*center_mm, semi_axes_mm[0].max(semi_axes_mm[1]).max(semi_axes_mm[2]))
            }
            Shape::Cylinder { center_mm, radii_mm, half_length_mm, .. } => {
                (*center_mm, (radii_mm[0].max(radii_mm[1]).powi(2) + half_length_mm.powi(2)).sqrt())
            }
        }
    }

    /// Half extents (mm) of the axis-aligned bounding box, and its centre.
    pub fn bounding_box(&self) -> (Vec3, Vec3) {
        match self {
            Shape::Ellipsoid { center_mm, semi_axes_mm, rotation, .. } => {
                // p − c = Rᵀ diag(a) s with |s| ≤ 1.
                let half = std::array::from_fn(|r| {
                    (0..3).map(|c| (rotation[c][r] * semi_axes_mm[c]).powi(2)).sum::<f64>().sqrt()
                });
                (*center_mm, half)
            }
            Shape::Cylinder { center_mm, radii_mm, half_length_mm, rotation, .. } => {
                let ext = [radii_mm[0], radii_mm[1], *half_length_mm];
                let half = std::array::from_fn(|r| (0..3).map(|c| (rotation[c][r] * ext[c]).abs()).sum::<f64>());
                (*center_mm, half)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphere_chord_is_exact() {
        let s =
            Shape::Ellipsoid { center_mm: [1.0, 2.0, 3.0], semi_axes_mm: [10.0; 3], rotation: NO_ROTATION, value: 1.0 };
        // A ray at distance 6 from the centre: chord 2·sqrt(100 − 36) = 16.
        let c = s.chord_mm([-100.0, 8.0, 3.0], [1.0, 0.0, 0.0]);
        assert!((c - 16.0).abs() < 1e-12, "{c}");
        assert_eq!(s.chord_mm([-100.0, 12.5, 3.0], [1.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn rotated_ellipsoid_chord_matches_numeric_integration() {
        let s = Shape::Ellipsoid {
            center_mm: [3.0, -2.0, 1.0],
            semi_axes_mm: [20.0, 8.0, 12.0],
            rotation: euler_zxz(0.3, 0.7, -0.4),
            value: 1.0,
        };
        let o = [-60.0, -5.0, 4.0];
        let d = {
            let d = [1.0, 0.13, -0.05];
            let n = dot(d, d).sqrt();
            [d[0] / n, d[1] / n, d[2] / n]
        };
        let n = 400_000;
        let dt = 120.0 / n as f64;
        let numeric: f64 = (0..n)
            .filter(|&i| {
                let t = (i as f64 + 0.5) * dt;
                s.contains([o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]])
            })
            .count() as f64
            * dt;
        let exact = s.chord_mm(o, d);
        assert!(exact > 10.0);
        assert!((numeric - exact).abs() < 2e-3, "{numeric} vs {exact}");
    }

    #[test]
    fn cylinder_chords_through_side_and_caps() {
        let c = Shape::Cylinder {
            center_mm: [0.0; 3],
            radii_mm: [10.0, 10.0],
            half_length_mm: 5.0,
            rotation: NO_ROTATION,
            value: 1.0,
        };
        assert!((c.chord_mm([-50.0, 0.0, 0.0], [1.0, 0.0, 0.0]) - 20.0).abs() < 1e-12);
        assert!((c.chord_mm([0.0, 3.0, -50.0], [0.0, 0.0, 1.0]) - 10.0).abs() < 1e-12);
        // Diagonal in x–z through the centre: leaves through the caps at |z| = 5 → length 10·√2.
        let r = std::f64::consts::FRAC_1_SQRT_2;
        assert!((c.chord_mm([-50.0, 0.0, -50.0], [r, 0.0, r]) - 10.0 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(c.chord_mm([0.0, 11.0, -50.0], [0.0, 0.0, 1.0]), 0.0);
    }
}
