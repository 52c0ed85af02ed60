//! The 3D (cone-angle) redundancy weighting of a full circular turn, for wide detectors, on
//! cone-parallel rays (see `gantry_core::ConeParallelGeometry`).
//!
//! In a full turn every line through a voxel is measured twice, from the two source positions
//! where it meets the orbit (cone-parallel views θ and θ + π); plain FDK gives each half. Away from the mid-plane one of the two
//! rays may miss the detector (the voxel lies outside that view's cone), and plain FDK then
//! loses that half: the edge slices of a wide detector go dark. Here each ray's share is
//!
//! `w = 2·f·Lᵠ / (f·Lᵠ + f_c·L_cᵠ)`,
//!
//! where L and L_c are the in-plane distances from the two sources to the voxel (the farther
//! source sees it at the smaller cone angle, whose data is the more consistent), q the
//! `exponent`, and f, f_c fade each ray out smoothly over `fade_rows` detector rows before the
//! top or bottom edge. Where the conjugate misses, the ray takes the whole weight; where both
//! miss (the corners outside both cones), both take half of the nearest edge row's value, which
//! is exact for objects that do not change along z. The weights are computed per voxel after
//! filtering, as in the 3D-weighted cone-beam FBP of Tang, Hsieh et al. (Phys. Med. Biol. 2005),
//! which is exact in the orbit plane only in parallel geometry (hence the rebinning).

use super::Rays;
use gantry_core::{ConeParallelGeometry, CoreError, Result};

/// The settings of the cone-angle weighting (see the module guide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConeWeighting {
    /// q: how strongly the ray with the smaller cone angle is preferred where both rays hit the
    /// detector (0: equal shares, as plain FDK).
    pub exponent: f64,
    /// Detector rows over which a ray's share fades to zero towards the detector's edge.
    pub fade_rows: f64,
}

impl Default for ConeWeighting {
    fn default() -> Self {
        ConeWeighting { exponent: 0.0, fade_rows: 16.0 }
    }
}

/// The orbit and detector band a cone weighting needs, checked once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Orbit {
    /// z of the orbit plane.
    pub z: f64,
    /// Detector v coordinates (mm) of the first and last row centres.
    v_lo: f64,
    v_hi: f64,
    fade_mm: f64,
    exponent: f64,
}

/// What a view needs to weight the voxels of one column (one in-plane position).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConeColumn {
    /// Lᵠ and L_cᵠ.
    a: f64,
    a_c: f64,
    /// Detector v (mm) per mm of height above the orbit plane, for this ray and its conjugate.
    pub scale: f64,
    pub scale_c: f64,
}

/// The share of one ray at one voxel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Share {
    /// Its own sample, times this weight (0 to 2).
    Own(f64),
    /// Neither ray reaches the detector: half of the nearest edge row's value.
    Extrapolated,
}

/// Below this fraction of full visibility (both rays' fades, weighted), neither ray counts as
/// reaching the detector and the edge rows are extrapolated.
const NONE_VISIBLE: f64 = 1e-6;

#[inline]
fn smoothstep(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

impl Orbit {
    /// The orbit of `rays`: cone beam, every source on one circle about the z axis in one
    /// plane, every detector v axis along the same ±z; or an error naming what is not.
    pub fn new(rays: Rays, cone: &ConeWeighting) -> Result<Orbit> {
        if !(cone.exponent.is_finite() && cone.exponent >= 0.0) {
            return Err(CoreError::invalid("cone weighting exponent", cone.exponent, "must be finite and ≥ 0"));
        }
        if !(cone.fade_rows.is_finite() && cone.fade_rows > 0.0) {
            return Err(CoreError::invalid("cone weighting fade_rows", cone.fade_rows, "must be finite and > 0"));
        }
        match rays {
            Rays::Scan(_) => Err(CoreError::invalid(
                "cone weighting",
                "fan-beam views",
                "runs on cone-parallel rays (rebin the full turn first): in fan geometry, shares applied after filtering are not exact",
            )),
            Rays::ConeParallel(g) => Ok(Self::of_cone_parallel(g, cone)),
        }
    }

    fn of_cone_parallel(g: &ConeParallelGeometry, cone: &ConeWeighting) -> Orbit {
        let (a, b) = (g.row_to_v(0.0), g.row_to_v(g.n_rows as f64 - 1.0));
        Orbit {
            z: g.z_mm,
            v_lo: a.min(b),
            v_hi: a.max(b),
            fade_mm: cone.fade_rows * g.pixel_v_mm,
            exponent: cone.exponent,
        }
    }

    /// The weights of a cone-parallel ray at distance `t` from the axis whose source is `l` and
    /// whose conjugate's is `l_c` from the voxel column (in plane).
    pub fn parallel_column(&self, g: &ConeParallelGeometry, t: f64, l: f64, l_c: f64) -> ConeColumn {
        let (l, l_c) = (l.max(1e-9), l_c.max(1e-9));
        let (a, a_c) = if self.exponent == 0.0 { (1.0, 1.0) } else { (l.powf(self.exponent), l_c.powf(self.exponent)) };
        ConeColumn { a, a_c, scale: g.v_per_height(t, l), scale_c: g.v_per_height(t, l_c) }
    }

    /// How much of a ray's share survives at detector coordinate `v` (mm): 1 inside the band,
    /// fading to 0 at the outermost row centres.
    #[inline]
    pub fn fade(&self, v: f64) -> f64 {
        let inv = 1.0 / self.fade_mm;
        smoothstep((v - self.v_lo) * inv) * smoothstep((self.v_hi - v) * inv)
    }

    /// The share of the ray at a voxel `h` mm above the orbit plane.
    #[inline]
    pub fn share(&self, c: &ConeColumn, h: f64) -> Share {
        let f = self.fade(c.scale * h);
        let f_c = self.fade(c.scale_c * h);
        let den = f * c.a + f_c * c.a_c;
        if den <= NONE_VISIBLE * (c.a + c.a_c) {
            return Share::Extrapolated;
        }
        Share::Own(2.0 * f * c.a / den)
    }

    /// The shares of the ray at the voxels `h0 + dh·k` above the orbit plane, k = 0, 1, …, into
    /// `out`; a voxel both rays miss gets 0 and is listed in `extrapolated` (as an index).
    pub fn fill_shares(&self, c: &ConeColumn, h0: f64, dh: f64, out: &mut [f32], extrapolated: &mut Vec<usize>) {
        let inv = (1.0 / self.fade_mm) as f32;
        let (lo, hi) = (self.v_lo as f32, self.v_hi as f32);
        let step = |t: f32| {
            let t = t.clamp(0.0, 1.0);
            t * t * (3.0 - 2.0 * t)
        };
        let fade = |v: f32| step((v - lo) * inv) * step((hi - v) * inv);
        let (s, s_c) = ((c.scale * h0) as f32, (c.scale_c * h0) as f32);
        let (ds, ds_c) = ((c.scale * dh) as f32, (c.scale_c * dh) as f32);
        let (a, a_c) = (c.a as f32, c.a_c as f32);
        // Near the no-ray threshold, decide in f64 exactly as `share` does.
        let doubtful = (4.0 * NONE_VISIBLE) as f32 * (a + a_c);
        for (k, o) in out.iter_mut().enumerate() {
            let f = fade(s + ds * k as f32) * a;
            let f_c = fade(s_c + ds_c * k as f32) * a_c;
            let den = f + f_c;
            *o = if den > doubtful { 2.0 * f / den } else { f32::NAN };
        }
        for (k, o) in out.iter_mut().enumerate() {
            if o.is_nan() {
                match self.share(c, h0 + dh * k as f64) {
                    Share::Own(w) => *o = w as f32,
                    Share::Extrapolated => {
                        *o = 0.0;
                        extrapolated.push(k);
                    }
                }
            }
        }
    }

    /// Whether the edge row nearest to detector coordinate `v` is the first row (the lowest v).
    pub fn nearest_edge_is_low(&self, v: f64) -> bool {
        (v - self.v_lo).abs() < (v - self.v_hi).abs()
    }

    /// The detector v coordinate (mm) of the edge row nearest to `v`.
    pub fn nearest_edge(&self, v: f64) -> f64 {
        if self.nearest_edge_is_low(v) {
            self.v_lo
        } else {
            self.v_hi
        }
    }

    /// The v coordinates (mm) where a ray's fade changes form: the band edges and the ends of
    /// the fades.
    pub fn breakpoints(&self) -> [f64; 4] {
        [self.v_lo, self.v_lo + self.fade_mm, self.v_hi - self.fade_mm, self.v_hi]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::{DetectorShape, ScanFrame};

    fn geometry() -> ConeParallelGeometry {
        ConeParallelGeometry {
            theta_rad: vec![0.0, std::f64::consts::PI],
            t0_mm: -200.0,
            dt_mm: 0.5,
            n_t: 801,
            radius_mm: 625.0,
            sdd_mm: 1100.0,
            z_mm: 0.0,
            shape: DetectorShape::Cylindrical,
            n_rows: 256,
            pixel_v_mm: 1.1,
            offset_v_mm: 0.0,
            v_sign: 1.0,
            frame: ScanFrame::default(),
        }
    }

    #[test]
    fn conjugate_shares_add_to_two_and_fall_to_the_visible_ray() {
        let g = geometry();
        let orbit = Orbit::new(Rays::ConeParallel(&g), &ConeWeighting::default()).unwrap();
        let (x, y) = (60.0, -40.0);
        // View 0 and view π see the same line from its two ends.
        let (t, l, l_c) = g.ray_through(0, x, y);
        let (t2, l2, l_c2) = g.ray_through(1, x, y);
        assert!((t + t2).abs() < 1e-9 && (l - l_c2).abs() < 1e-9 && (l_c - l2).abs() < 1e-9);
        let col = orbit.parallel_column(&g, t, l, l_c);
        let conj = orbit.parallel_column(&g, t2, l2, l_c2);
        for h in [0.0, 30.0, 60.0, 70.0, 75.0, -72.0] {
            let (Share::Own(a), Share::Own(b)) = (orbit.share(&col, h), orbit.share(&conj, h)) else {
                panic!("both rays reach the detector at h = {h}");
            };
            assert!((a + b - 2.0).abs() < 1e-9, "h {h}: {a} + {b}");
        }
        // Far from the mid-plane the nearer source's ray misses; the other takes it all.
        let (near, far) = if l < l_c { (col, conj) } else { (conj, col) };
        let h = 80.0;
        assert_eq!(orbit.share(&near, h), Share::Own(0.0));
        assert_eq!(orbit.share(&far, h), Share::Own(2.0));
        // Beyond both cones: half of the edge row each.
        assert_eq!(orbit.share(&near, 200.0), Share::Extrapolated);
        assert_eq!(orbit.share(&far, 200.0), Share::Extrapolated);
        // Rays of a fan view are refused.
        let scan = gantry_core::ScanProtocol::clinical_wide_detector().build().unwrap();
        assert!(Orbit::new(Rays::Scan(&scan), &ConeWeighting::default()).is_err());
    }
}
