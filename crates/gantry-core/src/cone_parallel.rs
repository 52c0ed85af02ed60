//! Cone-beam data of a circular orbit rebinned to parallel views in the orbit plane (the
//! "cone-parallel" or wedge geometry of Grass, Köhler and Proksa, PMB 2000).
//!
//! View θ holds, for each signed in-plane distance t from the rotation axis, the ray of the
//! source at β = θ + asin(t/R) (R the orbit radius): in plane, every ray of a view runs along
//! `d(θ) = (−sin θ, cos θ)` through the point `t·(cos θ, sin θ)`. The detector rows are kept: a
//! voxel at height h above the orbit plane, at in-plane distance L from its ray's source,
//! meets row coordinate `v = SDD·h / L` on a cylindrical detector (`SDD·h / (L cos γ)` on a flat
//! one, γ the ray's fan angle).

use crate::error::{CoreError, Result};
use crate::frame::ScanFrame;
use crate::geometry::DetectorShape;

/// The geometry of a rebinned stack `[view][row][t]` (see the module guide).
#[derive(Debug, Clone, PartialEq)]
pub struct ConeParallelGeometry {
    /// View angles θ in radians.
    pub theta_rad: Vec<f64>,
    /// t (mm) of the first column, the spacing of the columns, and their number.
    pub t0_mm: f64,
    pub dt_mm: f64,
    pub n_t: usize,
    /// Orbit radius (source to rotation axis) and source to detector, mm.
    pub radius_mm: f64,
    pub sdd_mm: f64,
    /// z of the orbit plane, mm.
    pub z_mm: f64,
    /// The original detector's shape and rows.
    pub shape: DetectorShape,
    pub n_rows: usize,
    pub pixel_v_mm: f64,
    pub offset_v_mm: f64,
    /// +1 when row v grows with z, −1 when against it.
    pub v_sign: f64,
    /// Where the scanner frame sits in the world (as the scan's).
    pub frame: ScanFrame,
}

impl ConeParallelGeometry {
    /// Checks every field once.
    pub fn validate(&self) -> Result<()> {
        if self.theta_rad.is_empty() {
            return Err(CoreError::invalid("theta_rad", "[]", "needs at least one view"));
        }
        if let Some(t) = self.theta_rad.iter().find(|t| !t.is_finite()) {
            return Err(CoreError::invalid("theta_rad", t, "must be finite"));
        }
        if self.n_t < 2 || self.n_rows < 1 {
            return Err(CoreError::invalid(
                "cone-parallel size",
                format!("{} t × {} rows", self.n_t, self.n_rows),
                "needs at least 2 columns and 1 row",
            ));
        }
        for (name, v) in [
            ("dt_mm", self.dt_mm),
            ("radius_mm", self.radius_mm),
            ("sdd_mm", self.sdd_mm),
            ("pixel_v_mm", self.pixel_v_mm),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::invalid(name, v, "must be finite and positive"));
            }
        }
        if self.sdd_mm <= self.radius_mm {
            return Err(CoreError::invalid("sdd_mm", self.sdd_mm, "the detector must lie beyond the rotation axis"));
        }
        let t_max = self.t0_mm.abs().max((self.t0_mm + (self.n_t as f64 - 1.0) * self.dt_mm).abs());
        if t_max.is_nan() || t_max >= self.radius_mm {
            return Err(CoreError::invalid(
                "t range",
                t_max,
                format!("must stay inside the orbit (radius {} mm)", self.radius_mm),
            ));
        }
        for (name, v) in [("t0_mm", self.t0_mm), ("z_mm", self.z_mm), ("offset_v_mm", self.offset_v_mm)] {
            if !v.is_finite() {
                return Err(CoreError::invalid(name, v, "must be finite"));
            }
        }
        if (self.v_sign.abs() - 1.0).abs() > 1e-12 {
            return Err(CoreError::invalid("v_sign", self.v_sign, "must be +1 or −1"));
        }
        Ok(())
    }

    pub fn n_views(&self) -> usize {
        self.theta_rad.len()
    }

    /// Data shape `[view][row][t]`.
    pub fn shape_vrt(&self) -> [usize; 3] {
        [self.theta_rad.len(), self.n_rows, self.n_t]
    }

    /// t (mm) of column `m`.
    pub fn t_of(&self, m: f64) -> f64 {
        self.t0_mm + m * self.dt_mm
    }

    /// Fractional column of `t_mm`.
    pub fn col_of(&self, t_mm: f64) -> f64 {
        (t_mm - self.t0_mm) / self.dt_mm
    }

    /// Detector v (mm) of row `r` (fractional allowed).
    pub fn row_to_v(&self, r: f64) -> f64 {
        (r - 0.5 * (self.n_rows as f64 - 1.0)) * self.pixel_v_mm + self.offset_v_mm
    }

    /// Fractional row of detector v (mm).
    pub fn v_to_row(&self, v: f64) -> f64 {
        (v - self.offset_v_mm) / self.pixel_v_mm + 0.5 * (self.n_rows as f64 - 1.0)
    }

    /// For the ray of view `i` through in-plane point (x, y): its column t, the in-plane
    /// distance L from its source to the point, and the distance L_c from the conjugate source
    /// (the other end of the same in-plane line on the orbit).
    pub fn ray_through(&self, i: usize, x: f64, y: f64) -> (f64, f64, f64) {
        self.ray_through_at(self.theta_rad[i].sin_cos(), x, y)
    }

    /// [`ConeParallelGeometry::ray_through`] for a view whose (sin θ, cos θ) are given.
    #[inline]
    pub fn ray_through_at(&self, (s, c): (f64, f64), x: f64, y: f64) -> (f64, f64, f64) {
        let t = x * c + y * s;
        let along = -x * s + y * c;
        let half = (self.radius_mm * self.radius_mm - t * t).max(0.0).sqrt();
        (t, half + along, half - along)
    }

    /// Detector v (mm) per mm of height above the orbit plane, for a point at in-plane distance
    /// `l` from the source of a ray at distance `t` from the axis.
    pub fn v_per_height(&self, t: f64, l: f64) -> f64 {
        let depth = match self.shape {
            DetectorShape::Cylindrical => l,
            DetectorShape::Flat => l * (1.0 - (t / self.radius_mm).powi(2)).max(0.0).sqrt(),
        };
        self.v_sign * self.sdd_mm / depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rays_and_their_conjugates_span_the_orbit_chord() {
        let g = ConeParallelGeometry {
            theta_rad: vec![0.3],
            t0_mm: -100.0,
            dt_mm: 1.0,
            n_t: 201,
            radius_mm: 600.0,
            sdd_mm: 1000.0,
            z_mm: 0.0,
            shape: DetectorShape::Cylindrical,
            n_rows: 8,
            pixel_v_mm: 1.0,
            offset_v_mm: 0.0,
            v_sign: 1.0,
            frame: ScanFrame::default(),
        };
        g.validate().unwrap();
        let (t, l, lc) = g.ray_through(0, 40.0, -25.0);
        // The chord at distance t from the centre is 2·√(R² − t²) long.
        assert!((l + lc - 2.0 * (600.0f64.powi(2) - t * t).sqrt()).abs() < 1e-9);
        // The source lies on the orbit: point − L·d is at radius R.
        let (s, c) = 0.3f64.sin_cos();
        let src = [40.0 - l * -s, -25.0 - l * c];
        assert!((src[0].hypot(src[1]) - 600.0).abs() < 1e-9, "{src:?}");
        assert!((t - (40.0 * c - 25.0 * s)).abs() < 1e-12);
        let bad = ConeParallelGeometry { t0_mm: -700.0, ..g };
        assert!(bad.validate().unwrap_err().to_string().contains("t range"));
    }
}
